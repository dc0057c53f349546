//! The plugin images' entrypoint contract: the real binary run with no arguments and exactly the
//! environment each CI's runner gives a plugin step (its metadata variables plus the step's settings,
//! as `PLUGIN_*` or `PARAMETER_*`), in a workspace, against real S3 servers, through whole pipelines:
//! restore (miss) → build → rebuild → restore (hit, files identical) → flush; plus a feature branch
//! falling back to the default branch, a fork's pull request that restores but cannot save, Harness's
//! `override: false` and `fail_restore_if_key_not_present`, and a Vela secret read from a file.

use std::fs;
use std::path::Path;
use std::process::Command;

use s3cache_tests::fake_http::FakeHttp;
use s3cache_tests::{Machine, Run, S3Server, ServerKind, binary, boto3, snapshot};

/// One plugin step: the binary with no arguments, the machine's environment plus `vars`.
fn step(machine: &Machine, vars: &[(String, String)]) -> Run {
    let mut command = Command::new(binary());
    command.current_dir(machine.workspace()).env_clear();
    for (name, value) in machine.machine_env() {
        command.env(name, value);
    }
    for (name, value) in vars {
        command.env(name, value);
    }
    let output = command.output().expect("run s3cache");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `pairs` with owned values, `extra` after them (later values win in the child's environment).
fn vars(pairs: &[(&str, &str)], extra: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().chain(extra).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[track_caller]
fn ok(run: &Run, secret: &str) -> String {
    assert_eq!(run.code, 0, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    no_secret(run, secret);
    format!("{}{}", run.stdout, run.stderr)
}

#[track_caller]
fn no_secret(run: &Run, secret: &str) {
    assert!(!run.stdout.contains(secret) && !run.stderr.contains(secret), "a secret was printed:\n{}\n{}", run.stdout, run.stderr);
}

fn objects(server: &S3Server) -> Vec<String> {
    let out = boto3(server, "print(json.dumps(sorted(o['Key'] for o in s3.list_objects_v2(Bucket=bucket).get('Contents', []))))");
    serde_json::from_str(&out).unwrap()
}

fn write(dir: &Path, name: &str, content: &str) {
    let path = dir.join(name);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

/// "npm install": the build the pipeline caches.
fn build(workspace: &Path) {
    write(workspace, "package-lock.json", "{\"lockfileVersion\": 3}");
    write(workspace, "node_modules/left-pad/index.js", "module.exports = s => s;");
    write(workspace, "node_modules/.bin/tool", "#!/bin/sh\necho tool\n");
    fs::set_permissions(workspace.join("node_modules/.bin/tool"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

/// A fresh checkout of the same commit: the lockfile, no dependencies.
fn checkout(machine: &Machine) {
    let _ = fs::remove_dir_all(machine.workspace().join("node_modules"));
    write(&machine.workspace(), "package-lock.json", "{\"lockfileVersion\": 3}");
}

/// A server, a machine, the server's secret key (which no output may contain) and its endpoint.
fn setup(kind: ServerKind) -> (S3Server, Machine, String, String) {
    let server = S3Server::start(kind);
    let (secret, endpoint) = (server.secret_key.clone(), server.endpoint());
    (server, Machine::new(), secret, endpoint)
}

/// The first runs of every pipeline: a restore that misses (its first log line naming the dialect),
/// the build, the rebuild, and a fresh checkout's restore that brings back exactly what was built.
/// Returns the built tree's snapshot.
#[track_caller]
fn miss_build_rebuild_hit(
    machine: &Machine,
    secret: &str,
    restore: &[(String, String)],
    rebuild: &[(String, String)],
    first_line: &str,
) -> s3cache_tests::Snapshot {
    checkout(machine);
    let log = ok(&step(machine, restore), secret);
    assert!(log.lines().next().unwrap_or_default().contains(first_line), "{log}");
    assert!(log.contains("cache miss"), "{log}");
    build(&machine.workspace());
    let built = snapshot(&machine.workspace().join("node_modules"));
    let log = ok(&step(machine, rebuild), secret);
    assert!(log.contains("saved "), "{log}");
    checkout(machine);
    let log = ok(&step(machine, restore), secret);
    assert!(log.contains("restored "), "{log}");
    assert_eq!(snapshot(&machine.workspace().join("node_modules")), built);
    built
}

/// Drone's variables for a push to `branch` of acme/app (a subset of what the runner sets, with
/// everything a cache plugin reads).
fn drone(branch: &str) -> Vec<(String, String)> {
    vars(
        &[
            ("CI", "drone"),
            ("DRONE", "true"),
            ("DRONE_REPO", "acme/app"),
            ("DRONE_REPO_OWNER", "acme"),
            ("DRONE_REPO_NAMESPACE", "acme"),
            ("DRONE_REPO_NAME", "app"),
            ("DRONE_REPO_BRANCH", "main"),
            ("DRONE_BUILD_NUMBER", "17"),
            ("DRONE_BUILD_EVENT", "push"),
            ("DRONE_COMMIT_SHA", "5b9c1f0e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a"),
            ("DRONE_COMMIT_REF", "refs/heads/main"),
            ("DRONE_WORKSPACE", "/drone/src"),
        ],
        &[("DRONE_BRANCH", branch), ("DRONE_COMMIT_BRANCH", branch), ("DRONE_TARGET_BRANCH", branch), ("DRONE_SOURCE_BRANCH", branch)],
    )
}

fn with(mut base: Vec<(String, String)>, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    base.extend(vars(extra, &[]));
    base
}

/// meltwater drone-cache on Drone: the whole pipeline, a feature branch restoring main's entry, a
/// fork's pull request that restores but cannot save, and flush.
#[test]
fn drone_cache_on_drone() {
    let (server, machine, secret, endpoint) = setup(ServerKind::S3sFs);
    let settings = [
        ("PLUGIN_BUCKET", server.bucket.as_str()),
        ("PLUGIN_ENDPOINT", endpoint.as_str()),
        ("PLUGIN_REGION", "us-east-1"),
        ("PLUGIN_PATH_STYLE", "true"),
        ("PLUGIN_ACCESS_KEY", server.access_key.as_str()),
        ("PLUGIN_SECRET_KEY", secret.as_str()),
        ("PLUGIN_MOUNT", "node_modules"),
        ("PLUGIN_CACHE_KEY", "npm-{{ .Repo.Name }}-{{ checksum \"package-lock.json\" }}"),
    ];
    let main = |extra: &[(&str, &str)]| with(with(drone("main"), &settings), extra);

    let built = miss_build_rebuild_hit(
        &machine,
        &secret,
        &main(&[("PLUGIN_RESTORE", "true")]),
        &main(&[("PLUGIN_REBUILD", "true")]),
        "running as meltwater drone-cache on Drone",
    );
    let listing = objects(&server);
    assert!(listing.len() == 1 && listing[0].starts_with("app/heads-main-") && listing[0].ends_with(".tar"), "{listing:?}");
    // The key is drone-cache's own: `checksum` is the lockfile's MD5, so a migrated key keeps its value.
    let md5 = Command::new("md5sum").arg(machine.workspace().join("package-lock.json")).output().unwrap();
    let md5 = String::from_utf8_lossy(&md5.stdout).split_whitespace().next().unwrap().to_owned();
    assert!(listing[0].ends_with(&format!("/npm-app-{md5}.tar")), "{listing:?} {md5}");

    // A feature branch: its own scope misses, the default branch's entry is restored.
    checkout(&machine);
    let feature = with(with(drone("feature/login"), &settings), &[("PLUGIN_RESTORE", "true")]);
    let log = ok(&step(&machine, &feature), &secret);
    assert!(log.contains("restored npm-app-"), "{log}");
    assert_eq!(snapshot(&machine.workspace().join("node_modules")), built);

    // A pull request (Drone cannot tell a fork's): restores the target branch's entry, saves nothing.
    let pull_request = |extra: &[(&str, &str)]| {
        with(
            with(drone("main"), &settings),
            &[
                &[
                    ("DRONE_BUILD_EVENT", "pull_request"),
                    ("DRONE_SOURCE_BRANCH", "evil"),
                    ("DRONE_PULL_REQUEST", "9"),
                    ("DRONE_COMMIT_REF", "refs/pull/9/head"),
                ][..],
                extra,
            ]
            .concat(),
        )
    };
    checkout(&machine);
    let log = ok(&step(&machine, &pull_request(&[("PLUGIN_RESTORE", "true")])), &secret);
    assert!(log.contains("restored npm-app-"), "{log}");
    write(&machine.workspace(), "node_modules/left-pad/index.js", "poisoned");
    let log = ok(&step(&machine, &pull_request(&[("PLUGIN_REBUILD", "true"), ("PLUGIN_CACHE_KEY", "poison")])), &secret);
    assert!(log.contains("not saving") && log.contains("pull request"), "{log}");
    assert_eq!(objects(&server).len(), 1, "{:?}", objects(&server));

    // Flush: nothing is older than 30 days; everything is older than a second.
    let log = ok(&step(&machine, &main(&[("PLUGIN_FLUSH", "true")])), &secret);
    assert!(log.contains("flush: deleted 0 entries"), "{log}");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let log = ok(&step(&machine, &main(&[("PLUGIN_FLUSH", "true"), ("PLUGIN_FLUSH_AGE", "1s")])), &secret);
    assert!(log.contains("flush: deleted 1 entry"), "{log}");
    assert!(objects(&server).is_empty(), "{:?}", objects(&server));

    // Bad settings are errors that name the setting; the step fails.
    let run = step(&machine, &main(&[("PLUGIN_RESTORE", "true"), ("PLUGIN_REBUILD", "true")]));
    assert!(run.code == 2 && run.stderr.contains("mutually exclusive"), "{}", run.stderr);
    let run = step(&machine, &main(&[("PLUGIN_REBUILD", "true"), ("PLUGIN_OVERRIDE", "yes please")]));
    assert!(run.code == 2 && run.stderr.contains(r#"PLUGIN_OVERRIDE must be true or false, not "yes please""#), "{}", run.stderr);
    let run = step(&machine, &main(&[]));
    assert!(run.code == 2 && run.stderr.contains("nothing to do"), "{}", run.stderr);
}

/// What Harness's runner sets for a Save/Restore Cache S3 step (PluginSettingUtils): the settings
/// below, `PLUGIN_EXIT_CODE=true`, the connector's keys, and its `HARNESS_*` and `DRONE_*` variables.
fn harness(server: &S3Server, branch: &str, extra: &[(&str, String)]) -> Vec<(String, String)> {
    let endpoint = server.endpoint();
    let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
    with(
        with(
            drone(branch),
            &[
                ("HARNESS_ACCOUNT_ID", "kmpySmUISimoRrJL6NL73w"),
                ("HARNESS_ORG_ID", "default"),
                ("HARNESS_PROJECT_ID", "app"),
                ("HARNESS_PIPELINE_ID", "build"),
                ("HARNESS_BUILD_ID", "42"),
                ("HARNESS_STAGE_ID", "ci"),
                ("HARNESS_WORKSPACE", "/harness"),
                ("PLUGIN_BUCKET", &server.bucket),
                ("PLUGIN_ENDPOINT", &endpoint),
                ("PLUGIN_REGION", "us-east-1"),
                ("PLUGIN_PATH_STYLE", "true"),
                ("PLUGIN_EXIT_CODE", "true"),
                ("PLUGIN_BACKEND", "s3"),
                ("PLUGIN_BACKEND_OPERATION_TIMEOUT", "3600s"),
                ("PLUGIN_ARCHIVE_FORMAT", "tar"),
                ("PLUGIN_ACCESS_KEY", &server.access_key),
                ("PLUGIN_SECRET_KEY", &server.secret_key),
            ],
        ),
        &extra,
    )
}

/// Harness's Save Cache to S3 / Restore Cache from S3: no repository namespace, `override: false`
/// keeping the first entry, a restore with no mount restoring what the entry holds, and
/// `fail_restore_if_key_not_present` failing the step.
#[test]
fn harness_save_and_restore_cache_s3() {
    let (server, machine, secret, _) = setup(ServerKind::Moto);
    let save = |key: &str| {
        vec![
            ("PLUGIN_CACHE_KEY", key.to_owned()),
            ("PLUGIN_MOUNT", "node_modules".into()),
            ("PLUGIN_REBUILD", "true".into()),
            ("PLUGIN_OVERRIDE", "false".into()),
        ]
    };
    let restore = |key: &str, must: &str| {
        vec![
            ("PLUGIN_CACHE_KEY", key.to_owned()),
            ("PLUGIN_RESTORE", "true".into()),
            ("PLUGIN_FAIL_RESTORE_IF_KEY_NOT_PRESENT", must.to_owned()),
        ]
    };
    let run = |extra: Vec<(&str, String)>| step(&machine, &harness(&server, "main", &extra));

    let first = miss_build_rebuild_hit(
        &machine,
        &secret,
        &harness(&server, "main", &restore("npm-v1", "false")),
        &harness(&server, "main", &save("npm-v1")),
        "running as Harness Save/Restore Cache S3 on Harness",
    );
    let listing = objects(&server);
    assert!(listing.len() == 1 && listing[0].starts_with("heads-main-") && listing[0].ends_with("/npm-v1.tar"), "{listing:?}");

    // override: false (Harness's default): a second save with the key keeps the first entry.
    write(&machine.workspace(), "node_modules/left-pad/index.js", "second build");
    let log = ok(&run(save("npm-v1")), &secret);
    assert!(log.contains("already exists"), "{log}");

    checkout(&machine);
    let log = ok(&run(restore("npm-v1", "false")), &secret);
    assert!(log.contains("restored npm-v1"), "{log}");
    assert_eq!(snapshot(&machine.workspace().join("node_modules")), first);

    // fail_restore_if_key_not_present: a missing key fails the step (exit_code is set by Harness).
    let missing = run(restore("npm-v2", "true"));
    assert_eq!(missing.code, 1, "{}\n{}", missing.stdout, missing.stderr);
    no_secret(&missing, &secret);

    std::thread::sleep(std::time::Duration::from_millis(2100));
    let log = ok(&run(vec![("PLUGIN_FLUSH", "true".into()), ("PLUGIN_FLUSH_AGE", "1s".into())]), &secret);
    assert!(log.contains("flush: deleted 1 entry"), "{log}");
}

/// drone-s3-cache on Drone, with its `CACHE_S3_*` secret aliases: `<root>/<owner>/<repo>` as the
/// store prefix, the filename as the key, a feature branch falling back to main, and flush.
#[test]
fn drone_s3_cache_on_drone() {
    let (server, machine, secret, endpoint) = setup(ServerKind::Moto);
    let settings = [
        ("PLUGIN_ROOT", server.bucket.as_str()),
        ("PLUGIN_ENDPOINT", endpoint.as_str()),
        ("PLUGIN_MOUNT", "node_modules"),
        ("CACHE_S3_ACCESS_KEY", server.access_key.as_str()),
        ("CACHE_S3_SECRET_KEY", secret.as_str()),
        ("CACHE_S3_REGION", "us-east-1"),
    ];
    let on = |branch: &str, extra: &[(&str, &str)]| with(with(drone(branch), &settings), extra);

    let built = miss_build_rebuild_hit(
        &machine,
        &secret,
        &on("main", &[("PLUGIN_MODE", "restore")]),
        &on("main", &[("PLUGIN_MODE", "rebuild")]),
        "running as drone-s3-cache on Drone",
    );
    let listing = objects(&server);
    assert!(listing.len() == 1 && listing[0].starts_with("acme/app/heads-main-") && listing[0].ends_with("/archive.tar"), "{listing:?}");
    checkout(&machine);
    let log = ok(&step(&machine, &on("feature/x", &[("PLUGIN_RESTORE", "true")])), &secret);
    assert!(log.contains("restored archive"), "{log}");
    assert_eq!(snapshot(&machine.workspace().join("node_modules")), built);

    std::thread::sleep(std::time::Duration::from_millis(2100));
    let log = ok(&step(&machine, &on("main", &[("PLUGIN_MODE", "flush"), ("PLUGIN_FLUSH_AGE", "1s")])), &secret);
    assert!(log.contains("flush: deleted 1 entry"), "{log}");
    let run = step(&machine, &on("main", &[("PLUGIN_MODE", "restore"), ("PLUGIN_FLUSH", "true")]));
    assert!(run.code == 2 && run.stderr.contains("mode specified multiple ways"), "{}", run.stderr);
}

/// Woodpecker's variables for a push to `branch` of acme/app.
fn woodpecker(branch: &str) -> Vec<(String, String)> {
    vars(
        &[
            ("CI", "woodpecker"),
            ("CI_REPO", "acme/app"),
            ("CI_REPO_OWNER", "acme"),
            ("CI_REPO_NAME", "app"),
            ("CI_REPO_DEFAULT_BRANCH", "main"),
            ("CI_PIPELINE_NUMBER", "8"),
            ("CI_PIPELINE_EVENT", "push"),
            ("CI_COMMIT_SHA", "5b9c1f0e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a"),
            ("CI_WORKSPACE", "/woodpecker/src/codeberg.org/acme/app"),
            ("CI_SYSTEM_NAME", "woodpecker"),
        ],
        &[("CI_COMMIT_BRANCH", branch), ("CI_COMMIT_REF", &format!("refs/heads/{branch}"))],
    )
}

/// Woodpecker's S3 cache plugin (download/upload/clear) with Woodpecker's own variables: the pipeline,
/// a feature branch falling back to main, a pull request that restores but cannot save; then
/// drone-cache's settings on Woodpecker, whose key metadata comes from `CI_*`.
#[test]
fn woodpecker_cache() {
    let (server, machine, secret, endpoint) = setup(ServerKind::S3sFs);
    let settings = [
        ("PLUGIN_BUCKET", server.bucket.as_str()),
        ("PLUGIN_URL", endpoint.as_str()),
        ("PLUGIN_REGION", "us-east-1"),
        ("PLUGIN_ACCESS_KEY_ID", server.access_key.as_str()),
        ("PLUGIN_SECRET_ACCESS_KEY", secret.as_str()),
        ("PLUGIN_PATH", "node_modules"),
        ("PLUGIN_KEY", "npm-{{ hashFiles \"package-lock.json\" }}"),
    ];
    let on = |branch: &str, extra: &[(&str, &str)]| with(with(woodpecker(branch), &settings), extra);

    let built = miss_build_rebuild_hit(
        &machine,
        &secret,
        &on("main", &[("PLUGIN_ACTION", "download")]),
        &on("main", &[("PLUGIN_ACTION", "upload")]),
        "running as Woodpecker's S3 cache plugin on Woodpecker",
    );
    let listing = objects(&server);
    assert!(listing.len() == 1 && listing[0].starts_with("acme/app/heads-main-") && listing[0].ends_with(".tar.zst"), "{listing:?}");

    checkout(&machine);
    let log = ok(&step(&machine, &on("feature/x", &[("PLUGIN_ACTION", "download")])), &secret);
    assert!(log.contains("restored npm-"), "{log}");
    assert_eq!(snapshot(&machine.workspace().join("node_modules")), built);

    let pull_request = |action: &str| {
        on(
            "main",
            &[
                ("PLUGIN_ACTION", action),
                ("CI_PIPELINE_EVENT", "pull_request"),
                ("CI_COMMIT_SOURCE_BRANCH", "evil"),
                ("CI_COMMIT_TARGET_BRANCH", "main"),
                ("CI_COMMIT_PULL_REQUEST", "5"),
                ("CI_COMMIT_REF", "refs/pull/5/head"),
                ("PLUGIN_KEY", "poison"),
            ],
        )
    };
    checkout(&machine);
    let log = ok(
        &step(
            &machine,
            &on(
                "main",
                &[
                    ("PLUGIN_ACTION", "download"),
                    ("CI_PIPELINE_EVENT", "pull_request"),
                    ("CI_COMMIT_SOURCE_BRANCH", "evil"),
                    ("CI_COMMIT_TARGET_BRANCH", "main"),
                ],
            ),
        ),
        &secret,
    );
    assert!(log.contains("restored npm-"), "{log}");
    let log = ok(&step(&machine, &pull_request("upload")), &secret);
    assert!(log.contains("not saving") && log.contains("pull request on Woodpecker"), "{log}");
    assert_eq!(objects(&server).len(), 1);

    // drone-cache's settings on Woodpecker: `{{ .Commit.Branch }}` is CI_COMMIT_BRANCH.
    let drone_cache = |action: &str| {
        with(
            woodpecker("dev"),
            &[
                (action, "true"),
                ("PLUGIN_BUCKET", &server.bucket),
                ("PLUGIN_ENDPOINT", &endpoint),
                ("PLUGIN_MOUNT", "node_modules"),
                ("PLUGIN_CACHE_KEY", "{{ .Commit.Branch }}-{{ arch }}"),
                ("PLUGIN_ACCESS_KEY", &server.access_key),
                ("PLUGIN_SECRET_KEY", &secret),
            ],
        )
    };
    let log = ok(&step(&machine, &drone_cache("PLUGIN_REBUILD")), &secret);
    assert!(
        log.contains("running as meltwater drone-cache on Woodpecker")
            && (log.contains("saved dev-amd64") || log.contains("saved dev-arm64")),
        "{log}"
    );

    // clear: deletes this key's entry in the run's scope; a second clear finds nothing and passes.
    let log = ok(&step(&machine, &on("main", &[("PLUGIN_ACTION", "clear"), ("PLUGIN_KEY", "npm-"), ("PLUGIN_KEY_SUFFIX", "x")])), &secret);
    assert!(log.contains("no cache entry"), "{log}");
    let key = listing[0].rsplit('/').next().unwrap().trim_end_matches(".tar.zst").to_owned();
    let log = ok(&step(&machine, &on("main", &[("PLUGIN_ACTION", "clear"), ("PLUGIN_KEY", &key)])), &secret);
    assert!(log.contains("delete: deleted 1 entry"), "{log}");
    assert!(!objects(&server).iter().any(|o| o.starts_with("acme/app/")), "{:?}", objects(&server));
}

/// Vela's variables for a push to `branch` of acme/app.
fn vela(branch: &str) -> Vec<(String, String)> {
    vars(
        &[
            ("VELA", "true"),
            ("VELA_REPO_ORG", "acme"),
            ("VELA_REPO_NAME", "app"),
            ("VELA_REPO_FULL_NAME", "acme/app"),
            ("VELA_REPO_BRANCH", "main"),
            ("VELA_BUILD_EVENT", "push"),
            ("VELA_BUILD_NUMBER", "3"),
            ("VELA_BUILD_COMMIT", "5b9c1f0e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a"),
            ("VELA_BUILD_WORKSPACE", "/vela/src/github.com/acme/app"),
        ],
        &[("VELA_BUILD_BRANCH", branch), ("VELA_BUILD_REF", &format!("refs/heads/{branch}"))],
    )
}

/// vela-s3-cache: `PARAMETER_*` with the secret key read from Vela's secret file (S3CACHE_VELA_DIR for
/// `/vela`), the pipeline, a feature branch falling back to main, a fork's pull request
/// (`VELA_PULL_REQUEST_FORK=true`) that restores but cannot save, and flush by age.
#[test]
fn vela_s3_cache() {
    let (server, machine, secret, endpoint) = setup(ServerKind::S3sFs);
    let vela_dir = machine.scratch("vela");
    write(&vela_dir, "secrets/s3-cache/secret_key", &format!("{secret}\n"));
    let dir = vela_dir.display().to_string();
    let settings = [
        ("S3CACHE_VELA_DIR", dir.as_str()),
        ("PARAMETER_BUCKET", server.bucket.as_str()),
        ("PARAMETER_SERVER", endpoint.as_str()),
        ("PARAMETER_REGION", "us-east-1"),
        ("PARAMETER_MOUNT", "node_modules"),
        ("S3_CACHE_ACCESS_KEY", server.access_key.as_str()),
    ];
    let on = |branch: &str, extra: &[(&str, &str)]| with(with(vela(branch), &settings), extra);

    let built = miss_build_rebuild_hit(
        &machine,
        &secret,
        &on("main", &[("PARAMETER_ACTION", "restore")]),
        &on("main", &[("PARAMETER_ACTION", "rebuild")]),
        "running as vela-s3-cache on Vela",
    );
    let listing = objects(&server);
    assert!(listing.len() == 1 && listing[0].starts_with("acme/app/heads-main-") && listing[0].ends_with("/archive.tar.gz"), "{listing:?}");
    checkout(&machine);
    ok(&step(&machine, &on("feature/x", &[("PARAMETER_ACTION", "restore")])), &secret);
    assert_eq!(snapshot(&machine.workspace().join("node_modules")), built);

    let fork = [
        ("VELA_BUILD_EVENT", "pull_request"),
        ("VELA_PULL_REQUEST", "4"),
        ("VELA_PULL_REQUEST_SOURCE", "evil"),
        ("VELA_PULL_REQUEST_TARGET", "main"),
        ("VELA_PULL_REQUEST_FORK", "true"),
    ];
    checkout(&machine);
    ok(&step(&machine, &on("evil", &[&fork[..], &[("PARAMETER_ACTION", "restore")]].concat())), &secret);
    assert_eq!(snapshot(&machine.workspace().join("node_modules")), built);
    let log = ok(
        &step(&machine, &on("evil", &[&fork[..], &[("PARAMETER_ACTION", "rebuild"), ("PARAMETER_FILENAME", "poison.tgz")]].concat())),
        &secret,
    );
    assert!(log.contains("not saving") && log.contains("fork"), "{log}");
    assert_eq!(objects(&server).len(), 1);

    std::thread::sleep(std::time::Duration::from_millis(2100));
    let log = ok(&step(&machine, &on("main", &[("PARAMETER_ACTION", "flush"), ("PARAMETER_AGE", "1s")])), &secret);
    assert!(log.contains("flush: deleted 1 entry"), "{log}");
    let run = step(&machine, &on("main", &[("PARAMETER_ACTION", "wipe")]));
    assert!(run.code == 2 && run.stderr.contains(r#"PARAMETER_ACTION must be restore, rebuild or flush"#), "{}", run.stderr);
}

/// No arguments and no plugin settings: the usual help, exit 2; `s3cache plugin` says what it expected.
#[test]
fn no_dialect_no_arguments() {
    let machine = Machine::new();
    let run = step(&machine, &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("Usage:") || run.stdout.contains("Usage:"), "{}\n{}", run.stdout, run.stderr);
    let run = machine.run(&["plugin"]);
    assert!(run.code == 2 && run.stderr.contains("no CI plugin settings found"), "{}", run.stderr);
}

/// The plugin image's contract, as the CIs run it: `plugin.Dockerfile`'s entrypoint is the binary with
/// no arguments and no `CMD`, and its environment (`S3CACHE_PLUGIN` from the `DIALECT` build argument;
/// empty in the generic image) picks or leaves the dialect. Each variant runs a restore step with the
/// image's variables (the compiled-guest directory replaced by the test machine's).
#[test]
fn plugin_image_entrypoint_contract() {
    let dockerfile = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../plugin.Dockerfile")).unwrap();
    let last_stage = dockerfile.rsplit("\nFROM ").next().unwrap();
    let entrypoints: Vec<&str> = last_stage.lines().filter(|l| l.starts_with("ENTRYPOINT")).collect();
    assert_eq!(entrypoints, vec![r#"ENTRYPOINT ["/usr/local/bin/s3cache"]"#]);
    assert!(!last_stage.lines().any(|l| l.starts_with("CMD")), "a CMD would pass arguments");
    let image_env: Vec<(String, String)> = last_stage
        .lines()
        .filter_map(|l| l.strip_prefix("ENV "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .filter(|(k, _)| k != "S3CACHE_CACHE_DIR")
        .collect();
    assert!(image_env.iter().any(|(k, v)| k == "S3CACHE_PLUGIN" && v == "${DIALECT}"), "{image_env:?}");

    let server = S3Server::start(ServerKind::S3sFs);
    let machine = Machine::new();
    checkout(&machine);
    let endpoint = server.endpoint();
    let settings = [
        ("PLUGIN_RESTORE", "true"),
        ("PLUGIN_MOUNT", "node_modules"),
        ("PLUGIN_ROOT", server.bucket.as_str()),
        ("PLUGIN_ENDPOINT", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", server.access_key.as_str()),
        ("AWS_SECRET_ACCESS_KEY", server.secret_key.as_str()),
    ];
    for (dialect, evidence) in [("", "PLUGIN_* settings of drone-s3-cache"), ("drone-s3-cache", "S3CACHE_PLUGIN=drone-s3-cache")] {
        let image: Vec<(String, String)> = image_env.iter().map(|(k, v)| (k.clone(), v.replace("${DIALECT}", dialect))).collect();
        let run = step(&machine, &[image, with(drone("main"), &settings)].concat());
        let log = ok(&run, &server.secret_key);
        let first = log.lines().next().unwrap_or_default();
        assert!(first.contains("running as drone-s3-cache on Drone") && first.contains(evidence), "{log}");
    }
}

/// Uploads a file as `key`, with boto3.
fn upload(server: &S3Server, file: &Path, key: &str) {
    boto3(server, &format!("s3.upload_file({:?}, bucket, {key:?})", file.display().to_string()));
}

/// Runs GNU tar in `dir` with `args`.
fn gnu_tar(dir: &Path, args: &[&str]) {
    let status = Command::new("tar").args(args).current_dir(dir).status().expect("GNU tar");
    assert!(status.success(), "tar {args:?}");
}

/// The files under `dir` and their contents (old plugins' archives keep mtimes to the second only).
fn contents(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| (e.path().strip_prefix(dir).unwrap().display().to_string(), fs::read(e.path()).unwrap()))
        .collect();
    files.sort();
    files
}

/// Objects the old plugins wrote, in their layout and format (made with GNU tar and gzip, no
/// s3cache trailer), restore through the same extraction policy without a digest and with a notice:
/// vela-s3-cache's `<org>/<repo>/archive.tgz`, drone-s3-cache's `<owner>/<repo>/<branch>/archive.tar`,
/// and drone-cache's `<repo>/<key>/<mount>` (absolute names, `tar -P`) for a mount outside the
/// workspace and for one inside it.
/// Nothing writes that layout: the next rebuild saves an s3cache entry in its scope.
#[test]
fn old_plugin_objects_restore_without_a_digest() {
    let (server, machine, secret, endpoint) = setup(ServerKind::S3sFs);
    let scratch = machine.scratch("old-plugin");
    build(&machine.workspace());
    let built = contents(&machine.workspace().join("node_modules"));
    gnu_tar(&machine.workspace(), &["czf", scratch.join("archive.tgz").to_str().unwrap(), "node_modules"]);
    gnu_tar(&machine.workspace(), &["cf", scratch.join("archive.tar").to_str().unwrap(), "node_modules"]);
    upload(&server, &scratch.join("archive.tgz"), "acme/app/archive.tgz");
    upload(&server, &scratch.join("archive.tar"), "acme/app/main/archive.tar");

    // vela-s3-cache's object.
    checkout(&machine);
    let vela_step = with(
        vela("main"),
        &[
            ("PARAMETER_ACTION", "restore"),
            ("PARAMETER_BUCKET", &server.bucket),
            ("PARAMETER_SERVER", &endpoint),
            ("PARAMETER_MOUNT", "node_modules"),
            ("PARAMETER_ACCESS_KEY", &server.access_key),
            ("PARAMETER_SECRET_KEY", &secret),
        ],
    );
    let log = ok(&step(&machine, &vela_step), &secret);
    assert!(log.contains("restoring archive.tgz without a digest check") && log.contains("vela-s3-cache wrote it"), "{log}");
    assert_eq!(contents(&machine.workspace().join("node_modules")), built);

    // drone-s3-cache's object, on a feature branch: its own path misses, the fallback path's is used.
    checkout(&machine);
    let ds3 = |branch: &str| {
        with(
            drone(branch),
            &[
                ("PLUGIN_RESTORE", "true"),
                ("PLUGIN_ROOT", &server.bucket),
                ("PLUGIN_ENDPOINT", &endpoint),
                ("PLUGIN_MOUNT", "node_modules"),
                ("CACHE_S3_ACCESS_KEY", &server.access_key),
                ("CACHE_S3_SECRET_KEY", &secret),
            ],
        )
    };
    let log = ok(&step(&machine, &ds3("feature/x")), &secret);
    assert!(log.contains("restoring main/archive.tar without a digest check") && log.contains("drone-s3-cache wrote it"), "{log}");
    assert_eq!(contents(&machine.workspace().join("node_modules")), built);

    // drone-cache's object for a mount outside the workspace, named by absolute path.
    let npm = machine.home().join(".npm");
    write(&npm, "_cacache/index", "npm cache index");
    let mount = npm.display().to_string();
    gnu_tar(&machine.home(), &["czPf", scratch.join("npm.tgz").to_str().unwrap(), &mount]);
    let old_name = format!("app/npm-v1/{}", mount.trim_start_matches('/'));
    upload(&server, &scratch.join("npm.tgz"), &old_name);
    fs::remove_dir_all(&npm).unwrap();
    let drone_cache = with(
        drone("main"),
        &[
            ("PLUGIN_RESTORE", "true"),
            ("PLUGIN_BUCKET", &server.bucket),
            ("PLUGIN_ENDPOINT", &endpoint),
            ("PLUGIN_PATH_STYLE", "true"),
            ("PLUGIN_MOUNT", &mount),
            ("PLUGIN_CACHE_KEY", "npm-v1"),
            ("PLUGIN_ARCHIVE_FORMAT", "gzip"),
            ("PLUGIN_ACCESS_KEY", &server.access_key),
            ("PLUGIN_SECRET_KEY", &secret),
        ],
    );
    let log = ok(&step(&machine, &drone_cache), &secret);
    assert!(log.contains(&format!("restoring npm-v1/{} without a digest check", mount.trim_start_matches('/'))), "{log}");
    assert_eq!(fs::read_to_string(npm.join("_cacache/index")).unwrap(), "npm cache index");

    // drone-cache's object of a workspace mount: every member named by its absolute path, as
    // meltwater drone-cache >= 1.4 writes (`tar -P` of the absolute mount), restored into the workspace.
    checkout(&machine);
    let workspace_mount = machine.workspace().join("node_modules").display().to_string();
    build(&machine.workspace());
    gnu_tar(&machine.workspace(), &["czPf", scratch.join("modules.tgz").to_str().unwrap(), &workspace_mount]);
    let modules_name = "app/npm-v2/node_modules".to_string();
    upload(&server, &scratch.join("modules.tgz"), &modules_name);
    checkout(&machine);
    let drone_workspace = with(
        drone("main"),
        &[
            ("PLUGIN_RESTORE", "true"),
            ("PLUGIN_BUCKET", &server.bucket),
            ("PLUGIN_ENDPOINT", &endpoint),
            ("PLUGIN_PATH_STYLE", "true"),
            ("PLUGIN_MOUNT", "node_modules"),
            ("PLUGIN_CACHE_KEY", "npm-v2"),
            ("PLUGIN_ARCHIVE_FORMAT", "gzip"),
            ("PLUGIN_ACCESS_KEY", &server.access_key),
            ("PLUGIN_SECRET_KEY", &secret),
        ],
    );
    let log = ok(&step(&machine, &drone_workspace), &secret);
    assert!(log.contains("restoring npm-v2/node_modules without a digest check"), "{log}");
    assert_eq!(contents(&machine.workspace().join("node_modules")), built);

    // The old objects stay as they were; nothing was written in their layout.
    let listing = objects(&server);
    assert_eq!(
        listing,
        vec![old_name, modules_name, "acme/app/archive.tgz".to_string(), "acme/app/main/archive.tar".to_string()]
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    );
}

/// Old objects that hold several mounts: drone-s3-cache's one archive per step (`tar` names below the
/// workspace), and vela-s3-cache's, which names each mount below its own parent (`tools/vendor` as
/// `vendor/...`); each mount comes back in its own place, exactly.
#[test]
fn old_plugin_objects_with_several_mounts() {
    let (server, machine, secret, endpoint) = setup(ServerKind::S3sFs);
    let scratch = machine.scratch("old-plugin");
    let workspace = machine.workspace();
    build(&workspace);
    write(&workspace, "tools/vendor/lib/gem.rb", "puts 1");
    write(&workspace, "tools/vendor/VERSION", "2.0");
    let modules = contents(&workspace.join("node_modules"));
    let vendor = contents(&workspace.join("tools/vendor"));
    gnu_tar(&workspace, &["cf", scratch.join("archive.tar").to_str().unwrap(), "node_modules", "tools/vendor"]);
    let tools = workspace.join("tools");
    gnu_tar(&workspace, &["czf", scratch.join("archive.tgz").to_str().unwrap(), "node_modules", "-C", tools.to_str().unwrap(), "vendor"]);
    upload(&server, &scratch.join("archive.tar"), "acme/app/main/archive.tar");
    upload(&server, &scratch.join("archive.tgz"), "acme/app/archive.tgz");
    let clean = || {
        for dir in ["node_modules", "tools"] {
            let _ = fs::remove_dir_all(workspace.join(dir));
        }
    };

    clean();
    let ds3 = with(
        drone("main"),
        &[
            ("PLUGIN_RESTORE", "true"),
            ("PLUGIN_ROOT", &server.bucket),
            ("PLUGIN_ENDPOINT", &endpoint),
            ("PLUGIN_MOUNT", "node_modules,tools/vendor"),
            ("CACHE_S3_ACCESS_KEY", &server.access_key),
            ("CACHE_S3_SECRET_KEY", &secret),
        ],
    );
    let log = ok(&step(&machine, &ds3), &secret);
    assert!(log.contains("restoring main/archive.tar without a digest check"), "{log}");
    assert_eq!((contents(&workspace.join("node_modules")), contents(&workspace.join("tools/vendor"))), (modules.clone(), vendor.clone()));

    clean();
    let vela_step = with(
        vela("main"),
        &[
            ("PARAMETER_ACTION", "restore"),
            ("PARAMETER_BUCKET", &server.bucket),
            ("PARAMETER_SERVER", &endpoint),
            ("PARAMETER_MOUNT", "node_modules,tools/vendor"),
            ("PARAMETER_ACCESS_KEY", &server.access_key),
            ("PARAMETER_SECRET_KEY", &secret),
        ],
    );
    let log = ok(&step(&machine, &vela_step), &secret);
    assert!(log.contains("restoring archive.tgz without a digest check"), "{log}");
    assert_eq!((contents(&workspace.join("node_modules")), contents(&workspace.join("tools/vendor"))), (modules, vendor));
    assert!(!workspace.join("vendor").exists(), "vendor/... belongs below tools/, not in the workspace");
}

/// Harness's OIDC AWS connector: `PLUGIN_ASSUME_ROLE` and `PLUGIN_OIDC_TOKEN_ID` become STS
/// AssumeRoleWithWebIdentity (through `sts_endpoint`), the token in a private file that is gone after
/// the run; neither the token nor the derived keys are printed.
#[test]
fn harness_oidc_connector() {
    let (server, machine, secret, _) = setup(ServerKind::S3sFs);
    let answer = format!(
        concat!(
            "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>{}</AccessKeyId>",
            "<SecretAccessKey>{}</SecretAccessKey><SessionToken>harness-session</SessionToken><Expiration>2030-01-01T00:00:00Z",
            "</Expiration></Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"
        ),
        server.access_key, server.secret_key
    );
    let sts = FakeHttp::start(move |_| (200, answer.clone()));
    build(&machine.workspace());
    let mut settings: Vec<(String, String)> = harness(
        &server,
        "main",
        &[("PLUGIN_CACHE_KEY", "oidc".into()), ("PLUGIN_MOUNT", "node_modules".into()), ("PLUGIN_REBUILD", "true".into())],
    )
    .into_iter()
    .filter(|(k, _)| k != "PLUGIN_ACCESS_KEY" && k != "PLUGIN_SECRET_KEY")
    .collect();
    settings.extend(vars(
        &[
            ("PLUGIN_ASSUME_ROLE", "arn:aws:iam::123456789012:role/harness-cache"),
            ("PLUGIN_OIDC_TOKEN_ID", "eyJ.harness.oidc"),
            ("PLUGIN_STS_ENDPOINT", &sts.url()),
        ],
        &[],
    ));
    let run = step(&machine, &settings);
    let log = ok(&run, &secret);
    assert!(log.contains("saved oidc"), "{log}");
    assert!(!log.contains("eyJ.harness.oidc") && !log.contains("harness-session"), "{log}");
    let seen = sts.seen();
    assert!(
        seen[0].body.contains("Action=AssumeRoleWithWebIdentity")
            && seen[0].body.contains("WebIdentityToken=eyJ%2Eharness%2Eoidc")
            && seen[0].body.contains("RoleSessionName=drone%2Dcache"),
        "{}",
        seen[0].body
    );
    let leftovers: Vec<_> = fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".s3cache-oidc-"))
        .collect();
    assert!(leftovers.is_empty(), "the token file must be removed: {leftovers:?}");
}

/// drone-cache's `assume_role_arn` with static keys: STS AssumeRole signed with the step's keys (its
/// external id and drone-cache's session name), and the role's keys sign the S3 requests. The static
/// keys here are not the server's, so the save works only with the assumed role's.
#[test]
fn drone_cache_assume_role_with_static_keys() {
    let (server, machine, secret, endpoint) = setup(ServerKind::S3sFs);
    let answer = format!(
        concat!(
            "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>{}</AccessKeyId><SecretAccessKey>{}</SecretAccessKey>",
            "<SessionToken>role-session-token</SessionToken><Expiration>2030-01-01T00:00:00Z</Expiration></Credentials>",
            "</AssumeRoleResult></AssumeRoleResponse>"
        ),
        server.access_key, server.secret_key
    );
    let sts = FakeHttp::start(move |_| (200, answer.clone()));
    build(&machine.workspace());
    let settings = with(
        drone("main"),
        &[
            ("PLUGIN_REBUILD", "true"),
            ("PLUGIN_BUCKET", &server.bucket),
            ("PLUGIN_ENDPOINT", &endpoint),
            ("PLUGIN_PATH_STYLE", "true"),
            ("PLUGIN_MOUNT", "node_modules"),
            ("PLUGIN_CACHE_KEY", "role"),
            ("PLUGIN_ACCESS_KEY", "AKIDSTEPBASEKEY"),
            ("PLUGIN_SECRET_KEY", "step-base-secret"),
            ("PLUGIN_ASSUME_ROLE_ARN", "arn:aws:iam::123456789012:role/cache-writer"),
            ("PLUGIN_EXTERNAL_ID", "ext-42"),
            ("PLUGIN_STS_ENDPOINT", &sts.url()),
        ],
    );
    let log = ok(&step(&machine, &settings), &secret);
    assert!(log.contains("saved role"), "{log}");
    assert!(!log.contains("step-base-secret") && !log.contains("role-session-token"), "{log}");
    let seen = sts.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let body = &seen[0].body;
    assert!(
        body.contains("Action=AssumeRole&") && body.contains("RoleSessionName=drone%2Dcache") && body.contains("ExternalId=ext%2D42"),
        "{body}"
    );
    assert!(seen[0].head.contains("credential=akidstepbasekey/"), "STS must be called with the step's keys: {}", seen[0].head);
    let listing = objects(&server);
    assert!(listing.len() == 1 && listing[0].starts_with("app/heads-main-") && listing[0].ends_with("/role.tar"), "{listing:?}");
}

/// Issue 20: a Harness Restore Cache step without mounts (the paths come from the entry) refuses
/// entries that hold a startup file, credentials, a program on PATH, a git hook or the whole home
/// directory: the log names the member or recorded path and its rule, the home directory and the
/// workspace stay exactly as they were, and `fail_restore_if_key_not_present` fails the step. Saving
/// them warns; restored with their mounts given they come back, and so does an old drone-cache
/// object of `~/.ssh` (GNU `tar -P`) restored with its mount.
#[test]
fn restores_without_mount_refuse_planting() {
    let (server, machine, secret, endpoint) = setup(ServerKind::S3sFs);
    let (home, workspace) = (machine.home(), machine.workspace());
    let planted = [
        ("~/.bashrc", "a restore without paths refuses ~/.bashrc: it is not a directory and lies directly in the home directory"),
        (
            "~/.ssh/authorized_keys",
            "a restore without paths refuses the recorded path ~/.ssh/authorized_keys: it lies in ~/.ssh, which holds credentials",
        ),
        (
            "~/.aws/credentials",
            "a restore without paths refuses the recorded path ~/.aws/credentials: it lies in ~/.aws, which holds credentials",
        ),
        ("~/.local/bin/x", "a restore without paths refuses the recorded path ~/.local/bin/x: it lies in ~/.local/bin, which is on PATH"),
        (
            ".git/hooks/pre-commit",
            "a restore without paths refuses the recorded path .git/hooks/pre-commit: it lies in .git, which holds git's hooks and configuration",
        ),
        ("~", "a restore without paths refuses the recorded path ~: it is the home directory"),
    ];
    let on_disk = |mount: &str| match mount.strip_prefix("~/") {
        Some(rest) => home.join(rest),
        None => workspace.join(mount),
    };
    for (mount, _) in &planted[..5] {
        let path = on_disk(mount);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, format!("planted at {mount}\n")).unwrap();
    }
    let run = |extra: &[(&str, &str)]| {
        step(&machine, &harness(&server, "main", &extra.iter().map(|(k, v)| (*k, v.to_string())).collect::<Vec<_>>()))
    };
    for (i, (mount, _)) in planted.iter().enumerate() {
        let log = ok(&run(&[("PLUGIN_CACHE_KEY", &format!("plant-{i}")), ("PLUGIN_MOUNT", mount), ("PLUGIN_REBUILD", "true")]), &secret);
        assert!(
            log.contains("saved ")
                && log.contains("warning: a restore without paths refuses ")
                && log.contains("this entry restores only with its paths given (--path, mount)"),
            "{mount}: {log}"
        );
    }

    // Harness sets PLUGIN_EXIT_CODE=true, so a refused entry (a failed restore, not a plain miss)
    // fails the step; with it off, the refusal is only logged.
    let before = machine.own_dotfiles();
    for (i, (mount, refusal)) in planted.iter().enumerate() {
        let refused = run(&[("PLUGIN_CACHE_KEY", &format!("plant-{i}")), ("PLUGIN_RESTORE", "true")]);
        assert_eq!(refused.code, 1, "{mount}: {}\n{}", refused.stdout, refused.stderr);
        no_secret(&refused, &secret);
        let log = format!("{}{}", refused.stdout, refused.stderr);
        assert!(
            log.lines().any(|l| l.starts_with("error: cache not restored: ") && l.contains(refusal)),
            "{mount}: no refusal {refusal:?} in:\n{log}"
        );
        assert!(!log.contains("restored plant-"), "{log}");
        assert_eq!(machine.dotfiles(), before, "{mount} changed the home directory or the workspace");
    }
    let logged = ok(&run(&[("PLUGIN_CACHE_KEY", "plant-0"), ("PLUGIN_RESTORE", "true"), ("PLUGIN_EXIT_CODE", "false")]), &secret);
    assert!(logged.contains(planted[0].1), "{logged}");
    assert_eq!(machine.dotfiles(), before);

    // Given their mounts, the same entries restore as any other.
    for (i, (mount, _)) in planted.iter().enumerate().take(5) {
        let log = ok(&run(&[("PLUGIN_CACHE_KEY", &format!("plant-{i}")), ("PLUGIN_RESTORE", "true"), ("PLUGIN_MOUNT", mount)]), &secret);
        assert!(log.contains(&format!("restored plant-{i}")), "{log}");
        assert_eq!(fs::read_to_string(on_disk(mount)).unwrap(), format!("planted at {mount}\n"));
    }
    fs::remove_dir_all(&home).unwrap();
    let log = ok(&run(&[("PLUGIN_CACHE_KEY", "plant-5"), ("PLUGIN_RESTORE", "true"), ("PLUGIN_MOUNT", "~")]), &secret);
    assert!(log.contains("restored plant-5"), "{log}");
    assert_eq!(fs::read_to_string(home.join(".bashrc")).unwrap(), "planted at ~/.bashrc\n");

    // An old drone-cache object of ~/.ssh, named by absolute path, restores with its mount.
    let ssh = home.join(".ssh");
    let mount = ssh.display().to_string();
    let scratch = machine.scratch("old-plugin");
    gnu_tar(&home, &["czPf", scratch.join("ssh.tgz").to_str().unwrap(), &mount]);
    upload(&server, &scratch.join("ssh.tgz"), &format!("app/ssh-v1/{}", mount.trim_start_matches('/')));
    fs::remove_dir_all(&ssh).unwrap();
    let drone_cache = with(
        drone("main"),
        &[
            ("PLUGIN_RESTORE", "true"),
            ("PLUGIN_BUCKET", &server.bucket),
            ("PLUGIN_ENDPOINT", &endpoint),
            ("PLUGIN_PATH_STYLE", "true"),
            ("PLUGIN_MOUNT", &mount),
            ("PLUGIN_CACHE_KEY", "ssh-v1"),
            ("PLUGIN_ARCHIVE_FORMAT", "gzip"),
            ("PLUGIN_ACCESS_KEY", &server.access_key),
            ("PLUGIN_SECRET_KEY", &secret),
        ],
    );
    let log = ok(&step(&machine, &drone_cache), &secret);
    assert!(log.contains("without a digest check"), "{log}");
    assert_eq!(fs::read_to_string(ssh.join("authorized_keys")).unwrap(), "planted at ~/.ssh/authorized_keys\n");
}

/// Signed entries on Drone (drone-cache's settings): `signing_key` signs a rebuild, `trusted_keys`
/// restores it verified and refuses an unsigned entry, and `trusted_keys` set but empty (a fork's
/// blank secret) refuses everything with a warning naming the variable, even with
/// `S3CACHE_TRUSTED_KEYS` set. The private key is never printed.
#[test]
fn drone_cache_signed_entries() {
    let (server, machine, secret, endpoint) = setup(ServerKind::S3sFs);
    let key = s3cache_tests::KeyPair::generate(&machine.scratch("keys"), "ci");
    let settings = [
        ("PLUGIN_BUCKET", server.bucket.as_str()),
        ("PLUGIN_ENDPOINT", endpoint.as_str()),
        ("PLUGIN_PATH_STYLE", "true"),
        ("PLUGIN_ACCESS_KEY", server.access_key.as_str()),
        ("PLUGIN_SECRET_KEY", secret.as_str()),
        ("PLUGIN_MOUNT", "node_modules"),
    ];
    let main = |extra: &[(&str, &str)]| with(with(drone("main"), &settings), extra);
    let checked = |run: Run| {
        let log = ok(&run, &secret);
        key.assert_private_key_absent(&log);
        log
    };
    checkout(&machine);
    build(&machine.workspace());
    let log = checked(step(
        &machine,
        &main(&[("PLUGIN_REBUILD", "true"), ("PLUGIN_CACHE_KEY", "signed-1"), ("PLUGIN_SIGNING_KEY", &key.private)]),
    ));
    assert!(log.contains("saved signed-1"), "{log}");
    let log = checked(step(&machine, &main(&[("PLUGIN_REBUILD", "true"), ("PLUGIN_CACHE_KEY", "unsigned-1")])));
    assert!(log.contains("saved unsigned-1"), "{log}");

    checkout(&machine);
    let restore = |cache_key: &str, extra: &[(&str, &str)]| {
        step(&machine, &main(&[&[("PLUGIN_RESTORE", "true"), ("PLUGIN_CACHE_KEY", cache_key)], extra].concat()))
    };
    let log = checked(restore("signed-1", &[("PLUGIN_TRUSTED_KEYS", &key.public)]));
    assert!(log.contains(&format!("/signed-1.tar is signed by {} (ci)\n", key.fingerprint)), "{log}");
    assert!(log.contains("restored signed-1"), "{log}");

    checkout(&machine);
    let log = checked(restore("unsigned-1", &[("PLUGIN_TRUSTED_KEYS", &key.public)]));
    assert!(log.contains("/unsigned-1.tar: refused by --trusted-keys: the entry is not signed\n"), "{log}");
    assert!(log.contains("cache miss") || log.contains("cache not restored"), "{log}");
    assert!(!machine.workspace().join("node_modules").exists(), "a refused entry was extracted");

    let log = checked(restore("signed-1", &[("PLUGIN_TRUSTED_KEYS", ""), ("S3CACHE_TRUSTED_KEYS", &key.public)]));
    assert!(log.contains("warning: PLUGIN_TRUSTED_KEYS is set but empty: no key is trusted, so every cache entry is refused\n"), "{log}");
    assert!(log.contains("/signed-1.tar: refused by --trusted-keys: no key is trusted (the trusted keys are empty)\n"), "{log}");
    assert!(!machine.workspace().join("node_modules").exists(), "a refused entry was extracted");
}
