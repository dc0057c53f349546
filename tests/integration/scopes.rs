//! Cache semantics across runs: branch scopes and trust (rows B1–B9 of the adversarial checklist),
//! entry versions with explainable misses, overwrite, and exact-key-only restores. Each "run" is the
//! real binary with the environment GitHub Actions gives a job, against the strict S3 server.

use std::fs;
use std::path::Path;

use s3cache_tests::{Machine, S3Server, ServerKind, boto3};

/// A machine in a GitHub Actions job for `reference`, with an event payload.
fn job(server: &S3Server, reference: &str, event_name: &str, event: serde_json::Value) -> Machine {
    let mut machine = Machine::new();
    machine.use_server(server, "scoped");
    let event_path = machine.scratch("event").join("event.json");
    fs::write(&event_path, event.to_string()).unwrap();
    machine
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_REF", reference)
        .env("GITHUB_EVENT_NAME", event_name)
        .env("GITHUB_REPOSITORY", "owner/repo")
        .env("GITHUB_EVENT_PATH", event_path.display().to_string());
    machine
}

fn push_event() -> serde_json::Value {
    serde_json::json!({ "repository": { "full_name": "owner/repo", "default_branch": "main" } })
}

fn pull_request_event(head_repo: &str) -> serde_json::Value {
    serde_json::json!({
        "repository": { "full_name": "owner/repo", "default_branch": "main" },
        "pull_request": { "number": 7, "head": { "repo": { "full_name": head_repo } } },
    })
}

fn write(machine: &Machine, content: &str) {
    let dir = machine.workspace().join("deps");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("marker"), content).unwrap();
}

fn restored(machine: &Machine) -> Option<String> {
    fs::read_to_string(machine.workspace().join("deps/marker")).ok()
}

fn keys(server: &S3Server) -> String {
    boto3(server, "print(sorted(o['Key'] for o in s3.list_objects_v2(Bucket=bucket).get('Contents', [])))")
}

/// Feature branches write their own scopes; a sibling never sees them, even through a
/// restore-key prefix that matches a newer entry; both see the default branch's entry.
#[test]
fn branches_are_isolated_and_fall_back_to_the_default_branch() {
    let server = S3Server::start(ServerKind::S3sFs);
    let main = job(&server, "refs/heads/main", "push", push_event());
    write(&main, "main");
    main.run(&["save", "--key", "deps-1", "--path", "deps"]).success();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let feature_a = job(&server, "refs/heads/feature/a", "push", push_event());
    write(&feature_a, "feature-a");
    feature_a.run(&["save", "--key", "deps-2", "--path", "deps"]).success();
    // Same logical key in two scopes: two objects.
    feature_a.run(&["save", "--key", "deps-1", "--path", "deps"]).success();
    let listing = keys(&server);
    assert_eq!(listing.matches("/deps-1.tar.zst").count(), 2, "{listing}");

    let feature_b = job(&server, "refs/heads/feature/b", "push", push_event());
    let run = feature_b
        .run(&["restore", "--key", "deps-9", "--restore-key", "deps-", "--path", "deps", "--summary-json", "summary.json"])
        .success();
    assert!(run.stderr.contains("restored deps-1 (fallback for deps-9)"), "{}", run.stderr);
    assert_eq!(restored(&feature_b).as_deref(), Some("main"), "a sibling's newer entry was used");
    let summary: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(feature_b.workspace().join("summary.json")).unwrap()).unwrap();
    assert!(summary["scope"].as_str().unwrap().starts_with("heads-main-"), "{summary}");

    // The default branch never reads a feature branch's scope.
    let main_again = job(&server, "refs/heads/main", "push", push_event());
    let run = main_again.run(&["restore", "--key", "deps-2", "--path", "deps"]).success();
    assert!(run.stderr.contains("cache miss"), "{}", run.stderr);
}

/// A fork's pull request reads its own scope, then the base and default branches, and does
/// not save (with a line saying why); `pull_request_target` is read-only unless overridden, and the
/// override is a warning. A same-repository pull request saves into its own scope.
#[test]
fn untrusted_events_are_read_only() {
    let server = S3Server::start(ServerKind::S3sFs);
    let main = job(&server, "refs/heads/main", "push", push_event());
    write(&main, "main");
    main.run(&["save", "--key", "deps-1", "--path", "deps"]).success();

    let mut fork = job(&server, "refs/pull/7/merge", "pull_request", pull_request_event("mallory/repo"));
    fork.env("GITHUB_BASE_REF", "main");
    let run = fork.run(&["restore", "--key", "deps-1", "--path", "deps"]).success();
    assert!(run.stderr.contains("restored deps-1"), "{}", run.stderr);
    write(&fork, "poisoned");
    let run = fork.run(&["save", "--key", "deps-poison", "--path", "deps"]).success();
    assert!(run.stderr.contains("not saving") && run.stderr.contains("mallory/repo"), "{}", run.stderr);
    assert!(!keys(&server).contains("deps-poison"), "{}", keys(&server));

    let mut target = job(&server, "refs/heads/main", "pull_request_target", pull_request_event("mallory/repo"));
    let run = target.run(&["save", "--key", "deps-target", "--path", "deps"]).success();
    assert!(run.stderr.contains("not saving") && run.stderr.contains("pull_request_target"), "{}", run.stderr);
    target.env("S3CACHE_ALLOW_UNTRUSTED_SAVE", "true");
    write(&target, "allowed");
    let run = target.run(&["save", "--key", "deps-target", "--path", "deps"]).success();
    assert!(run.stderr.contains("warning:") && run.stderr.contains("allowed explicitly"), "{}", run.stderr);
    assert!(keys(&server).contains("deps-target"));

    let mut own = job(&server, "refs/pull/8/merge", "pull_request", pull_request_event("owner/repo"));
    own.env("GITHUB_BASE_REF", "main");
    write(&own, "own");
    own.run(&["save", "--key", "deps-own", "--path", "deps"]).success();
    assert!(keys(&server).contains("/deps-own.tar.zst"));
}

/// A hostile ref cannot steer the object key; keys with commas, control characters or over 512
/// characters fail the step (exit 2) naming the rule.
#[test]
fn hostile_refs_and_keys() {
    let server = S3Server::start(ServerKind::S3sFs);
    let hostile = job(&server, "refs/heads/../../main\n*", "push", push_event());
    write(&hostile, "x");
    hostile.run(&["save", "--key", "k", "--path", "deps"]).success();
    let listing = keys(&server);
    assert!(!listing.contains("..") && !listing.contains("\\n") && !listing.contains('*'), "{listing}");
    assert!(listing.contains("scoped/heads-main-"), "{listing}");
    for (key, rule) in [("a,b", "commas"), ("a\u{1}b", "control characters")] {
        let run = hostile.run(&["restore", "--key", key, "--path", "deps"]);
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert!(run.stderr.contains(rule), "{}", run.stderr);
    }
    let run = hostile.run(&["save", "--key", &"k".repeat(513), "--path", "deps"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("512"), "{}", run.stderr);
}

/// An exact-key-only restore ignores restore-key matches; an existing exact key is not
/// overwritten (info line, exit 0) unless `--overwrite`.
#[test]
fn exact_key_only_and_first_writer_wins() {
    let server = S3Server::start(ServerKind::S3sFs);
    let mut machine = Machine::new();
    machine.use_server(&server, "release");
    write(&machine, "first");
    machine.run(&["save", "--key", "build-1", "--path", "deps"]).success();
    write(&machine, "second");
    let run = machine.run(&["save", "--key", "build-1", "--path", "deps"]).success();
    assert!(run.stderr.contains("already exists"), "{}", run.stderr);
    fs::remove_dir_all(machine.workspace().join("deps")).unwrap();
    let run = machine.run(&["restore", "--key", "build-2", "--restore-key", "build-", "--path", "deps", "--exact-key-only"]).success();
    assert!(run.stderr.contains("cache miss"), "{}", run.stderr);
    assert_eq!(restored(&machine), None);
    machine.run(&["restore", "--key", "build-1", "--path", "deps"]).success();
    assert_eq!(restored(&machine).as_deref(), Some("first"));

    write(&machine, "replaced");
    machine.run(&["save", "--key", "build-1", "--path", "deps", "--overwrite"]).success();
    fs::remove_dir_all(machine.workspace().join("deps")).unwrap();
    machine.run(&["restore", "--key", "build-1", "--path", "deps"]).success();
    assert_eq!(restored(&machine).as_deref(), Some("replaced"));
}

/// Versions: an entry saved for other paths is passed over — the miss names the candidate and why —
/// and an older entry of the right version is used instead. Cross-OS entries need the flag on both
/// sides only across operating systems.
#[test]
fn version_mismatches_are_explained() {
    let server = S3Server::start(ServerKind::S3sFs);
    let mut machine = Machine::new();
    machine.use_server(&server, "versions");
    write(&machine, "deps only");
    machine.run(&["save", "--key", "v-1", "--path", "deps"]).success();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    fs::create_dir_all(machine.workspace().join("other")).unwrap();
    fs::write(machine.workspace().join("other/file"), "o").unwrap();
    machine.run(&["save", "--key", "v-2", "--path", "deps", "--path", "other"]).success();
    fs::remove_dir_all(machine.workspace().join("deps")).unwrap();

    let run = machine.run(&["restore", "--key", "v-3", "--restore-key", "v-", "--path", "deps"]).success();
    assert!(run.stderr.contains("passing over cache entry local/v-2.tar.zst"), "{}", run.stderr);
    assert!(run.stderr.contains("saved for paths [\"deps\", \"other\"]"), "{}", run.stderr);
    assert!(run.stderr.contains("restored v-1"), "{}", run.stderr);

    let run = machine.run(&["restore", "--key", "v-2", "--path", "deps", "--exact-key-only"]).success();
    assert!(run.stderr.contains("cache miss") && run.stderr.contains("passed over: local/v-2.tar.zst"), "{}", run.stderr);

    // Saved for every OS on this OS: restorable here with or without the flag.
    machine.run(&["save", "--key", "x-1", "--path", "deps", "--enable-cross-os-archive"]).success();
    fs::remove_dir_all(machine.workspace().join("deps")).unwrap();
    machine.run(&["restore", "--key", "x-1", "--path", "deps"]).success();
    assert!(Path::new(&machine.workspace().join("deps/marker")).exists());
}
