//! Entries saved through `s3cache serve` (issue 24) under the admin verbs, and the server's own
//! maintenance: with GitHub's own cache client over v1 on s3s-fs, `list`, `usage`, `has`, `inspect`
//! and `delete` treat a protocol entry like any entry, the CLI's `restore` passes over it, a hit
//! through the server refreshes its last-used marker, `flush`, `prune` and `clear` evict it with its
//! marker, and a server with `--max-store-size` or `--max-age` evicts it by itself.

use std::fs;
use std::time::{Duration, Instant};

use s3cache_tests::gha::{GhaClient, Protocol, Served};
use s3cache_tests::tree::noise;
use s3cache_tests::{Machine, Run, S3Server, ServerKind, backdate, bucket_keys, snapshot};

/// The scope of the server and of every CLI run here (`S3CACHE_SCOPE`).
const SCOPE: &str = "serve-admin";

/// The store prefix in the bucket.
const PREFIX: &str = "ci";

/// What `inspect` says of a protocol entry's manifest.
const NO_MANIFEST: &str = "a protocol entry (saved by a cache-protocol client through s3cache serve) has no manifest";

/// How long a poll of the server's maintenance may take before the test gives up: a guard against a
/// hang, far above the one-second interval, never what decides the verdict on a quiet machine.
const MAINTENANCE_GUARD: Duration = Duration::from_secs(60);

/// A machine on a new s3s-fs bucket (store prefix [`PREFIX`], scope [`SCOPE`]), `s3cache serve
/// EXTRA_ARGS...` on it, and a v1 client of that server.
fn serve(extra_args: &[&str]) -> (S3Server, Machine, Served, GhaClient) {
    let server = S3Server::start(ServerKind::S3sFs);
    let mut machine = Machine::new();
    machine.use_server(&server, PREFIX);
    machine.env("S3CACHE_SCOPE", SCOPE);
    let served = Served::start(&machine, extra_args);
    let client = GhaClient::new(Protocol::V1, &served);
    (server, machine, served, client)
}

/// Saves a fresh job directory's `deps/` (a few KiB made from `seed`) through the client as `key`.
fn save(machine: &Machine, client: &GhaClient, key: &str, seed: u64) {
    let job = machine.scratch(&format!("save-{key}"));
    fs::create_dir_all(job.join("deps/nested")).unwrap();
    fs::write(job.join("deps/blob.bin"), noise(4096, seed)).unwrap();
    fs::write(job.join("deps/nested/notes.txt"), format!("saved as {key}\n")).unwrap();
    let saved = client.save(&job, key, &["deps"]);
    assert!(saved.cache_id() > 0, "the save of {key} was refused:\n{}\n{}", saved.stdout, saved.stderr);
}

/// The key the client's restore of `key` in a fresh job directory hit, `None` for a miss.
fn restore(machine: &Machine, client: &GhaClient, key: &str, job: &str) -> Option<String> {
    client.restore(&machine.scratch(job), key, &[], &["deps"]).hit()
}

/// Every object in the bucket, sorted, with the 64-hex-digit version of a protocol entry's name
/// written `VERSION` (the client computes it from the paths and the compression).
fn objects(server: &S3Server) -> Vec<String> {
    bucket_keys(server)
        .into_iter()
        .map(|name| match name.split_once(",,") {
            Some((head, tail)) if tail.len() >= 64 && tail[..64].bytes().all(|b| b.is_ascii_hexdigit()) => {
                format!("{head},,VERSION{}", &tail[64..])
            }
            _ => name,
        })
        .collect()
}

/// The bucket name of the protocol entry `key` as [`objects`] shows it, with `suffix` (`""` or `.used`).
fn entry_object(key: &str, suffix: &str) -> String {
    format!("{PREFIX}/{SCOPE}/{key},,VERSION.gha{suffix}")
}

/// The bucket name (under the bucket, not the store prefix) of the entry `key`, read from `list --json`.
fn stored_name(machine: &Machine, key: &str) -> String {
    let listed = json(&machine.run(&["list", "--json"]).success());
    let entry = listed["entries"].as_array().unwrap().iter().find(|e| e["key"] == key).unwrap_or_else(|| panic!("no {key}: {listed}"));
    format!("{PREFIX}/{}", entry["object"].as_str().unwrap())
}

fn json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\nstderr: {}", run.stdout, run.stderr))
}

/// The keys of an admin verb's `--json` `deleted` list, sorted.
fn deleted_keys(run: &Run) -> Vec<String> {
    let result = json(run);
    let mut keys: Vec<String> = result["deleted"]
        .as_array()
        .unwrap_or_else(|| panic!("no deleted list: {result}"))
        .iter()
        .map(|e| e["key"].as_str().unwrap().to_owned())
        .collect();
    keys.sort();
    keys
}

/// Whether `stderr` has the line `line`, exactly.
fn has_line(stderr: &str, line: &str) -> bool {
    stderr.lines().any(|l| l == line)
}

/// Two saves through the server: `list` shows them with the format `gha`, `usage` counts them,
/// `has` and `inspect` find one by its key (no manifest), and `delete` removes it, so that the
/// client's next restore of it misses.
#[test]
fn serve_admin_verbs_see_protocol_entries() {
    let (server, machine, _served, client) = serve(&[]);
    save(&machine, &client, "a-1", 1);
    save(&machine, &client, "a-2", 2);

    let table = machine.run(&["list"]).success().stdout;
    let mut rows: Vec<Vec<&str>> = table.lines().map(|line| line.split_whitespace().take(3).collect()).collect();
    assert_eq!(rows.remove(0), ["KEY", "SCOPE", "FORMAT"], "{table}");
    rows.sort();
    assert_eq!(rows, [["a-1", SCOPE, "gha"], ["a-2", SCOPE, "gha"]], "{table}");
    let listed = json(&machine.run(&["list", "--json"]).success());
    let entries = listed["entries"].as_array().unwrap();
    assert_eq!(listed["count"], 2, "{listed}");
    for entry in entries {
        assert_eq!((&entry["scope"], &entry["format"]), (&SCOPE.into(), &"gha".into()), "{entry}");
    }
    let bytes: u64 = entries.iter().map(|e| e["bytes"].as_u64().unwrap()).sum();
    let usage = json(&machine.run(&["usage", "--json"]).success());
    assert_eq!((&usage["total"]["entries"], &usage["total"]["bytes"]), (&2.into(), &bytes.into()), "{usage}");
    assert_eq!(usage["scopes"], serde_json::json!([{"scope": SCOPE, "entries": 2, "bytes": bytes}]), "{usage}");

    let has = machine.run(&["has", "a-1"]).success();
    assert_eq!(has.stdout.lines().nth(1).and_then(|row| row.split_whitespace().next()), Some("a-1"), "{}", has.stdout);
    let object = stored_name(&machine, "a-1");
    let in_store = object.strip_prefix(&format!("{PREFIX}/")).unwrap();
    let inspected = machine.run(&["inspect", "a-1"]).success();
    assert_eq!(
        inspected.stdout,
        format!(
            "object:     {in_store}\nmanifest:   none: {NO_MANIFEST}\nsignature:  none (the entry is not signed)\ntrust:      not checked (no --trusted-keys)\n"
        )
    );
    let inspected = json(&machine.run(&["inspect", "a-1", "--json"]).success());
    assert_eq!((&inspected["manifest"], &inspected["manifest_error"]), (&serde_json::Value::Null, &NO_MANIFEST.into()), "{inspected}");

    let deleted = machine.run(&["delete", "a-1", "--json"]);
    assert_eq!(deleted.code, 0, "{}", deleted.stderr);
    assert_eq!(json(&deleted)["deleted_count"], 1, "{}", deleted.stdout);
    assert_eq!(objects(&server), [entry_object("a-2", "")]);
    assert_eq!(restore(&machine, &client, "a-1", "after-delete"), None);
    assert_eq!(restore(&machine, &client, "a-2", "the-other-one").as_deref(), Some("a-2"));
    let gone = machine.run(&["has", "a-1"]);
    assert_eq!((gone.code, gone.stdout.as_str()), (1, ""), "{}", gone.stderr);
    assert!(has_line(&gone.stderr, "no cache entry for key \"a-1\""), "{}", gone.stderr);
}

/// The CLI's `restore` passes over a protocol entry of the same key and scope, by its key or a
/// restore key: a miss (exit 0) that leaves the target as it was and writes no marker.
#[test]
fn serve_admin_cli_restore_passes_over_protocol_entries() {
    let (server, machine, _served, client) = serve(&[]);
    save(&machine, &client, "a-2", 2);
    let deps = machine.workspace().join("deps");
    fs::create_dir_all(&deps).unwrap();
    fs::write(deps.join("mine.txt"), "the job's own file\n").unwrap();
    let before = snapshot(&deps);

    for (args, miss) in [
        (
            &["restore", "--key", "a-2", "--path", "deps"][..],
            format!("cache miss: no usable cache entry for key \"a-2\" in scopes {SCOPE}"),
        ),
        (
            &["restore", "--key", "a-3", "--restore-key", "a-", "--path", "deps"][..],
            format!("cache miss: no usable cache entry for key \"a-3\" or its restore keys in scopes {SCOPE}"),
        ),
    ] {
        let run = machine.run(args);
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
        assert!(has_line(&run.stderr, &miss), "{args:?} did not print {miss:?}:\n{}", run.stderr);
        assert_eq!(snapshot(&deps), before, "{args:?} changed the target");
        assert_eq!(objects(&server), [entry_object("a-2", "")], "{args:?}");
    }
}

/// A hit through the server writes the entry's `.used` marker once its last use is older than the
/// touch interval, and not before.
#[test]
fn serve_admin_a_hit_refreshes_a_stale_marker() {
    let (server, machine, _served, client) = serve(&["--touch-interval", "1h"]);
    save(&machine, &client, "t-1", 3);
    assert_eq!(restore(&machine, &client, "t-1", "fresh").as_deref(), Some("t-1"));
    assert_eq!(objects(&server), [entry_object("t-1", "")], "a fresh entry got a marker");

    backdate(&server, &stored_name(&machine, "t-1"), Duration::from_secs(2 * 3600));
    assert_eq!(restore(&machine, &client, "t-1", "stale").as_deref(), Some("t-1"));
    assert_eq!(objects(&server), [entry_object("t-1", ""), entry_object("t-1", ".used")]);
    let listed = json(&machine.run(&["list", "--json"]).success());
    let entry = &listed["entries"][0];
    assert_ne!(entry["last_used"], entry["saved_at"], "the marker did not count as a use: {entry}");
}

/// `flush` and `prune` evict protocol entries by their last use (a hit through the server counts),
/// and `clear` removes them; each takes the entry's marker with it.
#[test]
fn serve_admin_flush_prune_and_clear_evict_protocol_entries() {
    let (server, machine, _served, client) = serve(&["--touch-interval", "0s"]);
    let age = |key: &str, days: u64| {
        let name = stored_name(&machine, key);
        for object in [name.clone(), format!("{name}.used")] {
            if bucket_keys(&server).contains(&object) {
                backdate(&server, &object, Duration::from_secs(days * 86_400));
            }
        }
    };

    // flush: the entry used three days ago goes at 2d; the fresh one only at 0s.
    save(&machine, &client, "f-old", 4);
    save(&machine, &client, "f-new", 5);
    assert_eq!(restore(&machine, &client, "f-old", "f-old-hit").as_deref(), Some("f-old"));
    age("f-old", 3);
    assert_eq!(deleted_keys(&machine.run(&["flush", "--older-than", "2d", "--json"]).success()), ["f-old"]);
    assert_eq!(objects(&server), [entry_object("f-new", "")]);
    assert_eq!(deleted_keys(&machine.run(&["flush", "--older-than", "0s", "--json"]).success()), ["f-new"]);
    assert_eq!(objects(&server), Vec::<String>::new());

    // prune: of two entries the least recently used goes first, though it was saved later.
    save(&machine, &client, "p-a", 6);
    save(&machine, &client, "p-b", 7);
    age("p-a", 2);
    age("p-b", 1);
    assert_eq!(restore(&machine, &client, "p-a", "p-a-hit").as_deref(), Some("p-a"));
    let listed = json(&machine.run(&["list", "--json"]).success());
    let kept = listed["entries"].as_array().unwrap().iter().find(|e| e["key"] == "p-a").unwrap()["bytes"].as_u64().unwrap();
    assert_eq!(deleted_keys(&machine.run(&["prune", "--max-size", &kept.to_string(), "--json"]).success()), ["p-b"]);
    assert_eq!(objects(&server), [entry_object("p-a", ""), entry_object("p-a", ".used")]);
    assert_eq!(deleted_keys(&machine.run(&["prune", "--max-size", "1", "--json"]).success()), ["p-a"]);
    assert_eq!(objects(&server), Vec::<String>::new());

    // clear: every entry of the scope, markers and all.
    save(&machine, &client, "c-1", 8);
    save(&machine, &client, "c-2", 9);
    assert_eq!(restore(&machine, &client, "c-1", "c-1-hit").as_deref(), Some("c-1"));
    assert_eq!(objects(&server), [entry_object("c-1", ""), entry_object("c-1", ".used"), entry_object("c-2", "")]);
    assert_eq!(deleted_keys(&machine.run(&["clear", "--yes", "--json"]).success()), ["c-1", "c-2"]);
    assert_eq!(objects(&server), Vec::<String>::new());
}

/// Polls until `served` printed the maintenance line `line` and the bucket holds exactly `expected`
/// (as [`objects`] shows them), then asserts that `line` is the only maintenance line it printed.
#[track_caller]
fn await_maintenance(server: &S3Server, served: &Served, line: &str, expected: &[String]) {
    let started = Instant::now();
    loop {
        let held = objects(server);
        if held == expected && has_line(&served.stderr(), line) {
            break;
        }
        assert!(
            started.elapsed() < MAINTENANCE_GUARD,
            "after {MAINTENANCE_GUARD:?}, want the line {line:?} and the bucket holding {expected:?} (it holds {held:?}); the server's stderr:\n{}",
            served.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(served.stderr().lines().filter(|l| l.contains("maintenance:")).collect::<Vec<_>>(), [line], "{}", served.stderr());
}

/// A server started with `--max-store-size 1` evicts an entry saved through it at its next
/// maintenance, and says so on stderr.
#[test]
fn serve_admin_maintenance_evicts_past_max_store_size() {
    let (server, machine, served, client) = serve(&["--max-store-size", "1", "--maintenance-interval", "1s"]);
    save(&machine, &client, "m-1", 10);
    await_maintenance(&server, &served, "maintenance: --max-store-size: deleted 1 entry", &[]);
}

/// A server started with `--max-age 1d` deletes, at its own maintenance, an entry saved two days ago
/// and not used since, and keeps one saved as long ago but hit through a server since (its `.used`
/// marker is fresh); it says so on stderr. The entries are aged while only a server without
/// maintenance runs, and the one with `--max-age` starts after, so its maintenance at start is the
/// one that sees them, whatever the timing.
#[test]
fn serve_admin_maintenance_evicts_past_max_age() {
    let (server, machine, _served, client) = serve(&["--no-maintenance", "--touch-interval", "1h"]);
    save(&machine, &client, "age-unused", 11);
    save(&machine, &client, "age-used", 12);
    for key in ["age-unused", "age-used"] {
        backdate(&server, &stored_name(&machine, key), Duration::from_secs(2 * 86_400));
    }
    assert_eq!(restore(&machine, &client, "age-used", "age-used-hit").as_deref(), Some("age-used"));
    let used = [entry_object("age-used", ""), entry_object("age-used", ".used")];
    assert_eq!(objects(&server), [&[entry_object("age-unused", "")][..], &used].concat());

    let maintainer = Served::start(&machine, &["--max-age", "1d", "--maintenance-interval", "1h"]);
    await_maintenance(&server, &maintainer, "maintenance: --max-age: deleted 1 entry", &used);
    assert_eq!(restore(&machine, &client, "age-used", "age-used-after").as_deref(), Some("age-used"));
    assert_eq!(restore(&machine, &client, "age-unused", "age-unused-after"), None);
}
