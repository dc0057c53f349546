//! Interrupts and leftovers (issue 20). SIGINT and SIGTERM during a save or a restore clean up — no
//! incomplete upload, no temporary file, no staging directory, the target as it was — and the
//! process says so in one line and exits 130 or 143 within 5 s of the signal, even with requests
//! stuck at the server. What a SIGKILL leaves is reported by `usage` and removed by `prune` once older
//! than the leftover age; a staging directory whose lock is held by a live process is kept.

use std::fs::{self, File};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use s3cache_tests::proxy::{Fault, FaultProxy, Rule};
use s3cache_tests::tree::noise;
use s3cache_tests::{Machine, S3Server, ServerKind, boto3, snapshot};

/// The signals and the exit code each must give.
const SIGNALS: [(&str, i32); 2] = [("INT", 130), ("TERM", 143)];
/// The bound from the signal to the exit. The implementation exits within 2 s even when the
/// server stalls (and well below that when it answers), so a busy machine has three seconds of margin.
const EXIT_BOUND: Duration = Duration::from_secs(5);
/// A request the proxy holds back this long is stuck, as far as a test is concerned.
const STUCK: Duration = Duration::from_secs(60);

/// Waits, polling, until `condition` holds; a generous deadline only turns a hang into a failure.
#[track_caller]
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !condition() {
        assert!(Instant::now() < deadline, "gave up waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `signal` (`INT`, `TERM`, `KILL`) to the process; returns when it was sent.
fn signal(child: &Child, signal: &str) -> Instant {
    let sent = Instant::now();
    let status = Command::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()).status().expect("run kill");
    assert!(status.success(), "kill -{signal} failed");
    sent
}

/// How the process ended: exit code, stderr, and the time from `sent` to its exit (measured by
/// polling, so at most 20 ms late). A process still running after a minute is killed and fails.
fn ended(mut child: Child, sent: Instant) -> (i32, String, Duration) {
    let took = loop {
        if child.try_wait().expect("poll the process").is_some() {
            break sent.elapsed();
        }
        if sent.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("s3cache still ran a minute after the signal");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = child.wait_with_output().expect("collect the output");
    (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stderr).into_owned(), took)
}

#[track_caller]
fn assert_interrupted(how: (i32, String, Duration), code: i32, line: &str) {
    let (actual, stderr, took) = how;
    assert_eq!(actual, code, "{stderr}");
    assert!(took < EXIT_BOUND, "exited {took:?} after the signal\n{stderr}");
    assert_eq!(stderr.lines().filter(|l| l.starts_with("interrupted")).collect::<Vec<_>>(), [line], "{stderr}");
    assert_eq!(stderr.lines().last(), Some(line), "{stderr}");
}

/// The incomplete multipart uploads in the bucket, as `key` (boto3, straight to the server).
fn incomplete_uploads(server: &S3Server) -> Vec<String> {
    let listed = boto3(server, "print(json.dumps([u['Key'] for u in s3.list_multipart_uploads(Bucket=bucket).get('Uploads', [])]))");
    serde_json::from_str(&listed).expect("boto3 printed JSON")
}

fn objects(server: &S3Server) -> Vec<String> {
    let listed = boto3(server, "print(json.dumps([o['Key'] for o in s3.list_objects_v2(Bucket=bucket).get('Contents', [])]))");
    serde_json::from_str(&listed).expect("boto3 printed JSON")
}

/// A machine with 30 MB of random bytes under `out`, saving to `server` under `prefix` through
/// `proxy` in 5 MiB parts.
fn uploader(server: &S3Server, proxy: &FaultProxy, prefix: &str) -> Machine {
    let mut machine = Machine::new();
    machine.use_server(server, prefix).env("AWS_ENDPOINT_URL", proxy.endpoint()).env("S3CACHE_PART_SIZE_MB", "5");
    fs::create_dir_all(machine.workspace().join("out")).unwrap();
    fs::write(machine.workspace().join("out/blob"), noise(30 << 20, 7)).unwrap();
    machine
}

/// SIGINT and SIGTERM while a multipart save is uploading, its parts stuck at a server that does not
/// answer: the upload is aborted (moto lists no incomplete upload), no object appears, the process
/// prints `interrupted: nothing saved` and exits 130 or 143 within 5 s.
#[test]
fn interrupted_s3_save_aborts_its_upload() {
    let server = S3Server::start(ServerKind::Moto);
    for (name, code) in SIGNALS {
        let proxy = FaultProxy::start(server.port);
        proxy.add(Rule::new("PUT", "partNumber=", Fault::Delay(STUCK), usize::MAX));
        let machine = uploader(&server, &proxy, "ci");
        let child = machine.spawn(&["save", "--key", "k", "--path", "out", "--format", "tar"]);
        wait_until("the first part is on its way", || proxy.count("PUT", "partNumber=") >= 1);
        assert_eq!(incomplete_uploads(&server), ["ci/local/k.tar"], "the upload exists before the signal");
        let sent = signal(&child, name);
        assert_interrupted(ended(child, sent), code, "interrupted: nothing saved");
        assert_eq!(incomplete_uploads(&server), Vec::<String>::new(), "SIG{name} left the upload");
        assert_eq!(objects(&server), Vec::<String>::new());
        assert_eq!(proxy.count("DELETE", "uploadId="), 1, "{:#?}", proxy.requests());
    }
}

/// A second signal exits at once, with its own code: SIGTERM right after SIGINT, while the clean-up
/// of the first waits for a server that does not answer, ends the process with 143.
#[test]
fn second_signal_exits_at_once() {
    let server = S3Server::start(ServerKind::Moto);
    let proxy = FaultProxy::start(server.port);
    proxy.add(Rule::new("PUT", "partNumber=", Fault::Delay(STUCK), usize::MAX));
    proxy.add(Rule::new("DELETE", "uploadId=", Fault::Delay(STUCK), usize::MAX));
    let machine = uploader(&server, &proxy, "ci");
    let child = machine.spawn(&["save", "--key", "k", "--path", "out", "--format", "tar"]);
    wait_until("the first part is on its way", || proxy.count("PUT", "partNumber=") >= 1);
    let sent = signal(&child, "INT");
    wait_until("the interrupt's abort is on its way", || proxy.count("DELETE", "uploadId=") == 1);
    signal(&child, "TERM");
    assert_interrupted(ended(child, sent), 143, "interrupted: nothing saved");
}

/// SIGINT and SIGTERM while a save writes to a `file://` store: its temporary file is removed, the
/// store directory is empty, and the process says so and exits 130 or 143 within 5 s.
#[test]
fn interrupted_file_save_removes_its_temp_file() {
    for (name, code) in SIGNALS {
        let mut machine = Machine::new();
        let store = machine.scratch("store");
        machine.env("S3CACHE_STORE", format!("file://{}", store.display()));
        fs::create_dir_all(machine.workspace().join("out")).unwrap();
        fs::write(machine.workspace().join("out/blob"), noise(48 << 20, 3)).unwrap();
        // zstd's highest level keeps the save busy for seconds after its first bytes are written.
        let child = machine.spawn(&["save", "--key", "k", "--path", "out", "--compression-level", "19"]);
        let temp_file_written = || {
            fs::read_dir(&store).is_ok_and(|entries| {
                entries.flatten().any(|e| e.file_name().to_string_lossy().starts_with(".tmp-") && e.metadata().is_ok_and(|m| m.len() > 0))
            })
        };
        wait_until("the save writes its temporary file", temp_file_written);
        let sent = signal(&child, name);
        assert_interrupted(ended(child, sent), code, "interrupted: nothing saved");
        let left: Vec<_> = fs::read_dir(&store).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(left.is_empty(), "SIG{name} left {left:?}");
    }
}

/// SIGINT and SIGTERM while a restore extracts, the rest of the archive stuck at the server: the
/// target is byte-identical to before, no staging directory or lock file is left, and the process
/// prints `interrupted: target left as it was` and exits 130 or 143 within 5 s.
#[test]
fn interrupted_restore_leaves_the_target_as_it_was() {
    let server = S3Server::start(ServerKind::S3sFs);
    let mut machine = Machine::new();
    machine.use_server(&server, "ci").env("S3CACHE_PART_SIZE_MB", "5");
    fs::create_dir_all(machine.workspace().join("out")).unwrap();
    fs::write(machine.workspace().join("out/blob"), noise(24 << 20, 5)).unwrap();
    machine.run(&["save", "--key", "k", "--path", "out", "--format", "tar"]).success();
    fs::remove_dir_all(machine.workspace().join("out")).unwrap();
    fs::create_dir_all(machine.workspace().join("out/mine")).unwrap();
    fs::write(machine.workspace().join("out/mine/local.txt"), "the local version").unwrap();
    let before = snapshot(&machine.workspace().join("out"));
    for (name, code) in SIGNALS {
        let proxy = FaultProxy::start(server.port);
        // The trailer and the first range arrive; every later range is stuck.
        proxy.add(Rule::new("GET", "/local/k.tar", Fault::Delay(Duration::ZERO), 2));
        proxy.add(Rule::new("GET", "/local/k.tar", Fault::Delay(STUCK), usize::MAX));
        machine.env("AWS_ENDPOINT_URL", proxy.endpoint());
        let child = machine.spawn(&["restore", "--key", "k", "--path", "out"]);
        let staging = |workspace: &Path| {
            fs::read_dir(workspace)
                .unwrap()
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(".s3cache-staging-") && e.path().is_dir())
        };
        wait_until("the restore extracts into its staging directory", || staging(&machine.workspace()));
        let sent = signal(&child, name);
        assert_interrupted(ended(child, sent), code, "interrupted: target left as it was");
        assert_eq!(snapshot(&machine.workspace().join("out")), before, "SIG{name} changed the target");
        let left: Vec<_> = fs::read_dir(machine.workspace())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n != "out")
            .collect();
        assert!(left.is_empty(), "SIG{name} left {left:?}");
    }
}

/// A staging directory whose lock is held — its restore is alive, perhaps in another PID namespace
/// (a held lock stands in for it; the pid in its name exists nowhere) — survives another restore in
/// the same workspace; one whose lock is free is removed with its lock file.
#[test]
fn staging_with_a_held_lock_is_kept() {
    let mut machine = Machine::new();
    machine.env("S3CACHE_STORE", format!("file://{}", machine.scratch("store").display()));
    fs::create_dir_all(machine.workspace().join("out")).unwrap();
    fs::write(machine.workspace().join("out/a.txt"), "a").unwrap();
    machine.run(&["save", "--key", "k", "--path", "out"]).success();
    let workspace = machine.workspace();
    let staging = |name: &str| {
        let dir = workspace.join(format!(".s3cache-staging-{name}"));
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("partial"), "x").unwrap();
        let lock = File::create(workspace.join(format!(".s3cache-staging-{name}.lock"))).unwrap();
        (dir, lock)
    };
    let (live, live_lock) = staging("999999999-1-1");
    live_lock.lock().unwrap();
    let (dead, dead_lock) = staging("999999998-1-1");
    drop(dead_lock);
    machine.run(&["restore", "--key", "k", "--path", "out"]).success();
    assert!(live.join("partial").exists(), "a live restore's staging directory was removed");
    assert!(workspace.join(".s3cache-staging-999999999-1-1.lock").exists());
    assert!(!dead.exists(), "a dead restore's staging directory was kept");
    assert!(!workspace.join(".s3cache-staging-999999998-1-1.lock").exists());
    assert_eq!(fs::read_to_string(workspace.join("out/a.txt")).unwrap(), "a");
}

/// A save under `prefix` killed with SIGKILL after its first 5 MiB part was stored, the rest stuck:
/// its incomplete upload stays on the server.
fn killed_save(server: &S3Server, prefix: &str) {
    let proxy = FaultProxy::start(server.port);
    proxy.add(Rule::new("PUT", "partNumber=1&", Fault::Delay(Duration::ZERO), 1));
    proxy.add(Rule::new("PUT", "partNumber=", Fault::Delay(STUCK), usize::MAX));
    let machine = uploader(server, &proxy, prefix);
    let child = machine.spawn(&["save", "--key", "k", "--path", "out", "--format", "tar"]);
    let parts = format!(
        "u = [u for u in s3.list_multipart_uploads(Bucket=bucket).get('Uploads', []) if u['Key'] == '{prefix}/local/k.tar']\nprint(len(u) == 1 and len(s3.list_parts(Bucket=bucket, Key=u[0]['Key'], UploadId=u[0]['UploadId']).get('Parts', [])))"
    );
    wait_until("the first part is stored", || boto3(server, &parts).trim() == "1");
    let sent = signal(&child, "KILL");
    let (code, _, _) = ended(child, sent);
    assert_eq!(code, -1, "killed by a signal, no exit code");
}

/// A machine that runs admin verbs on `server` under `prefix`, straight to the server.
fn admin(server: &S3Server, prefix: &str) -> Machine {
    let mut machine = Machine::new();
    machine.use_server(server, prefix);
    machine
}

fn json(run: s3cache_tests::Run) -> serde_json::Value {
    serde_json::from_str(&run.success().stdout).expect("--json prints JSON")
}

/// After a SIGKILL mid-upload, `usage` reports the incomplete upload with its size; `prune` keeps it
/// while younger than the leftover age and aborts it once older. moto dates every upload 2010-11-10
/// (a fixed `Initiated`), so the age that keeps it here is a century; the default of a day aborts it.
#[test]
fn killed_save_is_reported_and_pruned() {
    let server = S3Server::start(ServerKind::Moto);
    killed_save(&server, "ci");
    assert_eq!(incomplete_uploads(&server), ["ci/local/k.tar"]);
    let mut machine = admin(&server, "ci");
    let usage = json(machine.run(&["usage", "--json"]));
    assert_eq!(usage["leftovers"].as_array().unwrap().len(), 1, "{usage:#}");
    let leftover = &usage["leftovers"][0];
    assert_eq!(
        (leftover["kind"].as_str(), leftover["object"].as_str(), leftover["bytes"].as_u64()),
        (Some("upload"), Some("local/k.tar"), Some(5 << 20)),
        "{usage:#}"
    );
    assert_eq!(
        (usage["leftover_bytes"].as_u64(), usage["leftovers_unlisted"].is_null(), usage["leftover_age_secs"].as_u64()),
        (Some(5 << 20), true, Some(86_400))
    );
    let table = machine.run(&["usage"]).success();
    assert!(table.stdout.contains("incomplete upload") && table.stdout.contains("local/k.tar"), "{}", table.stdout);
    assert!(
        table.stderr.contains("1 leftover of interrupted saves holds 5.0 MiB; prune, flush and clear remove those older than 1day"),
        "{}",
        table.stderr
    );

    machine.env("S3CACHE_LEFTOVER_AGE", "36500d");
    let young = json(machine.run(&["prune", "--max-size", "10GB", "--json"]));
    assert_eq!(young["leftovers_removed"], serde_json::json!([]), "{young:#}");
    assert_eq!(incomplete_uploads(&server), ["ci/local/k.tar"], "an upload younger than the age may be a save in progress");

    machine.unset("S3CACHE_LEFTOVER_AGE");
    let old = json(machine.run(&["prune", "--max-size", "10GB", "--json"]));
    assert_eq!(old["leftovers_removed"].as_array().unwrap().len(), 1, "{old:#}");
    assert_eq!(old["leftovers_removed"][0]["object"], "local/k.tar");
    assert_eq!(incomplete_uploads(&server), Vec::<String>::new());
    assert_eq!(json(machine.run(&["usage", "--json"]))["leftovers"], serde_json::json!([]));
}

/// A store at the bucket's prefix `ci` aborts its own incomplete upload and leaves the one of the
/// store nested at `ci/team` alone: that name is not one it writes. The nested store aborts its own.
#[test]
fn bucket_root_store_leaves_nested_leftovers_alone() {
    let server = S3Server::start(ServerKind::Moto);
    killed_save(&server, "ci");
    killed_save(&server, "ci/team");
    let mut outer = admin(&server, "ci");
    outer.env("S3CACHE_LEFTOVER_AGE", "0s");
    let usage = json(outer.run(&["usage", "--json"]));
    let seen: Vec<_> = usage["leftovers"].as_array().unwrap().iter().map(|l| l["object"].as_str().unwrap().to_owned()).collect();
    assert_eq!(seen, ["local/k.tar"], "{usage:#}");
    let pruned = json(outer.run(&["prune", "--max-size", "10GB", "--json"]));
    assert_eq!(pruned["leftovers_removed"].as_array().unwrap().len(), 1, "{pruned:#}");
    assert_eq!(incomplete_uploads(&server), ["ci/team/local/k.tar"]);
    let mut nested = admin(&server, "ci/team");
    nested.env("S3CACHE_LEFTOVER_AGE", "0s");
    nested.run(&["flush", "--older-than", "30d"]).success();
    assert_eq!(incomplete_uploads(&server), Vec::<String>::new());
}

/// A server that cannot list incomplete uploads (s3s-fs) makes `usage` say so and what to do,
/// rather than report none.
#[test]
fn unlisted_uploads_are_named() {
    let server = S3Server::start(ServerKind::S3sFs);
    let machine = admin(&server, "ci");
    let usage = json(machine.run(&["usage", "--json"]));
    let why = usage["leftovers_unlisted"].as_str().unwrap_or_else(|| panic!("{usage:#}"));
    // The store error names the listing: the bucket and the store's prefix.
    assert!(why.starts_with("the server cannot list incomplete uploads (ListMultipartUploads of s3://cache-bucket/ci"), "{why}");
    assert!(why.contains(" failed: HTTP 501"), "{why}");
    assert!(why.ends_with("give the bucket a lifecycle rule that aborts incomplete multipart uploads after a day"), "{why}");
    let table = machine.run(&["usage"]).success();
    assert!(table.stderr.contains("incomplete uploads not listed: the server cannot list incomplete uploads"), "{}", table.stderr);
}

/// A `file://` save killed with SIGKILL leaves its temporary file: `usage` reports it, and `flush`
/// deletes it once older than the leftover age, leaving the store directory empty.
#[test]
fn killed_file_save_leaves_a_temp_file_that_flush_removes() {
    let mut machine = Machine::new();
    let store = machine.scratch("store");
    machine.env("S3CACHE_STORE", format!("file://{}", store.display()));
    fs::create_dir_all(machine.workspace().join("out")).unwrap();
    fs::write(machine.workspace().join("out/blob"), noise(48 << 20, 9)).unwrap();
    let child = machine.spawn(&["save", "--key", "k", "--path", "out", "--compression-level", "19"]);
    let temp_files = || {
        fs::read_dir(&store)
            .map(|entries| entries.flatten().filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-")).count())
            .unwrap_or(0)
    };
    wait_until("the save writes its temporary file", || temp_files() == 1);
    let sent = signal(&child, "KILL");
    ended(child, sent);
    let usage = json(machine.run(&["usage", "--json"]));
    assert_eq!(usage["leftovers"].as_array().unwrap().len(), 1, "{usage:#}");
    assert_eq!((usage["leftovers"][0]["kind"].as_str(), usage["leftovers"][0]["object"].is_null()), (Some("temp-file"), true));
    machine.run(&["flush", "--older-than", "30d"]).success();
    assert_eq!(temp_files(), 1, "younger than a day: kept");
    machine.env("S3CACHE_LEFTOVER_AGE", "0s");
    let flushed = json(machine.run(&["flush", "--older-than", "30d", "--json"]));
    assert_eq!(flushed["leftovers_removed"][0]["kind"], "temp-file", "{flushed:#}");
    assert_eq!(fs::read_dir(&store).unwrap().count(), 0);
}
