//! Network and server faults, injected by the test
//! proxy in front of the strict server. Every row ends in success after retries or a clean miss or
//! skipped save: exit 0, the target untouched, no object half-visible, and nothing hangs.

use std::fs;
use std::time::{Duration, Instant};

use s3cache_tests::proxy::{Fault, FaultProxy, Gate, Rule};
use s3cache_tests::tree::{noise, write_sample_tree};
use s3cache_tests::{Machine, Run, S3Server, ServerKind, Snapshot, boto3, snapshot};

/// The operation deadline every scenario configures.
const DEADLINE: Duration = Duration::from_secs(60);

/// Nothing hangs: a run ends within its configured deadline, with a generous margin for a loaded
/// machine (process start, the guest, the kernel), so that only a missing bound fails this.
#[track_caller]
fn assert_bounded_by_the_deadline(started: Instant) {
    let margin = Duration::from_secs(60);
    assert!(started.elapsed() < DEADLINE + margin, "took {:?}, over the {DEADLINE:?} deadline and {margin:?} of margin", started.elapsed());
}

struct Scenario {
    server: S3Server,
    proxy: FaultProxy,
    machine: Machine,
    /// The tree as saved.
    saved: Snapshot,
}

/// s3s-fs with a proxy in front; a tree saved under `k` directly (no faults), then `out` replaced by
/// a local version so that "untouched" can be checked. Retries and timeouts are fast.
fn scenario(big: bool) -> Scenario {
    scenario_on(ServerKind::S3sFs, big)
}

fn scenario_on(kind: ServerKind, big: bool) -> Scenario {
    let server = S3Server::start(kind);
    let proxy = FaultProxy::start(server.port);
    let mut machine = Machine::new();
    machine.use_server(&server, "faults");
    for (name, value) in [
        ("S3CACHE_RETRY_BASE_MS", "20"),
        ("S3CACHE_STALL_TIMEOUT_SECS", "1"),
        ("S3CACHE_MIN_THROUGHPUT_KBPS", "2048"),
        ("S3CACHE_PART_SIZE_MB", "5"),
        ("S3CACHE_DEADLINE_SECS", &DEADLINE.as_secs().to_string()),
    ] {
        machine.env(name, value);
    }
    write_sample_tree(&machine.workspace(), "out", if big { 12 << 20 } else { 4096 });
    let saved = snapshot(&machine.workspace().join("out"));
    machine.run(&["save", "--key", "k", "--path", "out"]).success();
    fs::remove_dir_all(machine.workspace().join("out")).unwrap();
    fs::create_dir_all(machine.workspace().join("out")).unwrap();
    fs::write(machine.workspace().join("out/local-only"), "mine").unwrap();
    machine.env("AWS_ENDPOINT_URL", proxy.endpoint());
    Scenario { server, proxy, machine, saved }
}

impl Scenario {
    fn restore(&self) -> Run {
        self.machine.run(&["restore", "--key", "k", "--path", "out"])
    }

    #[track_caller]
    fn assert_restored(&self, run: &Run) {
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(run.stderr.contains("restored k"), "{}\n{:#?}", run.stderr, self.proxy.requests());
        assert_eq!(snapshot(&self.machine.workspace().join("out")), self.saved);
    }

    #[track_caller]
    fn assert_untouched_miss(&self, run: &Run) {
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(run.stderr.contains("warning: cache not restored"), "{}\n{:#?}", run.stderr, self.proxy.requests());
        let out = self.machine.workspace().join("out");
        assert_eq!(fs::read_dir(&out).unwrap().count(), 1, "target changed: {:?}", snapshot(&out).keys());
        assert_eq!(fs::read_to_string(out.join("local-only")).unwrap(), "mine");
        let leftovers: Vec<_> = fs::read_dir(self.machine.workspace())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().starts_with(".s3cache"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

/// Connection refused, and a name that does not resolve: retries, then a miss, exit 0.
#[test]
fn unreachable_endpoints_are_a_miss() {
    let s = scenario(false);
    for endpoint in ["http://127.0.0.1:1", "http://s3cache-no-such-host.invalid:9000"] {
        let mut machine = Machine::new();
        machine.use_server(&s.server, "faults").env("AWS_ENDPOINT_URL", endpoint).env("S3CACHE_RETRY_BASE_MS", "20");
        fs::create_dir_all(machine.workspace().join("out")).unwrap();
        let run = machine.run(&["restore", "--key", "k", "--path", "out"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(run.stderr.contains("warning: cache not restored"), "{endpoint}: {}", run.stderr);
    }
}

/// 503 SlowDown twice on the key's listing, then success; the attempts stay within the configured three.
#[test]
fn slow_down_is_retried() {
    let s = scenario(false);
    s.proxy.add(Rule::new("GET", "list-type=2", Fault::Status { status: 503, code: "SlowDown".into() }, 2));
    let run = s.restore();
    s.assert_restored(&run);
    assert_eq!(s.proxy.count("GET", "list-type=2"), 3);
}

/// 500, 502, 504, RequestTimeout and a connection cut inside the headers are all retried.
#[test]
fn server_errors_and_resets_are_retried() {
    let s = scenario(false);
    s.proxy.add(Rule::new("GET", "/k.tar.zst", Fault::Status { status: 500, code: "InternalError".into() }, 1));
    s.proxy.add(Rule::new("GET", "/k.tar.zst", Fault::Status { status: 502, code: "BadGateway".into() }, 1));
    let run = s.restore();
    s.assert_restored(&run);
    let s = scenario(false);
    s.proxy.add(Rule::new("GET", "/k.tar.zst", Fault::Status { status: 504, code: "GatewayTimeout".into() }, 1));
    s.proxy.add(Rule::new("GET", "/k.tar.zst", Fault::Status { status: 400, code: "RequestTimeout".into() }, 1));
    let run = s.restore();
    s.assert_restored(&run);
    let s = scenario(false);
    s.proxy.add(Rule::new("GET", "/k.tar.zst", Fault::Cut { after: 0.0 }, 2));
    let run = s.restore();
    s.assert_restored(&run);
}

/// 403 and other 4xx are not retried; 403 is a warning that says what to check.
#[test]
fn client_errors_are_not_retried() {
    let s = scenario(false);
    s.proxy.add(Rule::always(Fault::Status { status: 403, code: "AccessDenied".into() }));
    let run = s.restore();
    s.assert_untouched_miss(&run);
    assert!(run.stderr.contains("check the credentials"), "{}", run.stderr);
    assert_eq!(s.proxy.requests().len(), 1, "{:#?}", s.proxy.requests());
    let s = scenario(false);
    s.proxy.add(Rule::new("GET", "/k.tar.zst", Fault::Status { status: 400, code: "InvalidArgument".into() }, usize::MAX));
    let run = s.restore();
    s.assert_untouched_miss(&run);
    assert_eq!(s.proxy.count("GET", "/k.tar.zst"), 1);
}

/// A body that stalls after 10 % is abandoned by the watchdog and the range fetched again: one
/// GET more than a clean restore makes, and a hit (had the operation's deadline fired instead, the
/// restore would be a miss).
#[test]
fn stalled_bodies_are_resumed() {
    let s = scenario(true);
    s.assert_restored(&s.restore());
    let clean = s.proxy.count("GET", "/k.tar.zst");
    s.proxy.add(Rule::new("GET", "/k.tar.zst", Fault::Stall { after: 0.1 }, 1));
    let started = Instant::now();
    let run = s.restore();
    s.assert_restored(&run);
    assert_eq!(s.proxy.count("GET", "/k.tar.zst") - clean, clean + 1, "{:#?}", s.proxy.requests());
    assert_eq!(s.proxy.requests().iter().filter(|r| r.ends_with("-> Stall { after: 0.1 }")).count(), 1);
    assert_bounded_by_the_deadline(started);
}

/// A body that drips one byte a second is aborted by the per-request response timeout (not the
/// operation's deadline); with every attempt dripping, a miss after the configured three attempts.
#[test]
fn dripping_bodies_end_in_a_miss() {
    let s = scenario(false);
    s.proxy.add(Rule::new("GET", "/k.tar.zst", Fault::Drip, usize::MAX));
    let started = Instant::now();
    let run = s.restore();
    s.assert_untouched_miss(&run);
    assert!(
        run.stderr.contains(
            "local/k.tar.zst: GetObject of s3://cache-bucket/faults/local/k.tar.zst failed: Timeout: no answer within 1 s (--stall-timeout-secs)"
        ),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("time budget"), "the deadline fired, not the request timeout: {}", run.stderr);
    assert_eq!(s.proxy.count("GET", "/k.tar.zst"), 3, "{:#?}", s.proxy.requests());
    assert_bounded_by_the_deadline(started);
}

/// A body cut short is detected: retried when it happens once, a miss when it keeps happening.
#[test]
fn truncated_bodies_are_never_extracted() {
    let s = scenario(true);
    s.proxy.add(Rule::new("GET", "/k.tar.zst", Fault::Cut { after: 0.6 }, 1));
    let run = s.restore();
    s.assert_restored(&run);
    let s = scenario(true);
    s.proxy.add(Rule::new("GET", "/k.tar.zst", Fault::Cut { after: 0.6 }, usize::MAX));
    let run = s.restore();
    s.assert_untouched_miss(&run);
}

/// A 200 answer with an HTML page instead of the archive is a miss.
#[test]
fn html_instead_of_an_archive_is_a_miss() {
    let s = scenario(false);
    s.proxy.add(Rule::new("GET", "/k.tar.zst", Fault::Html, usize::MAX));
    let run = s.restore();
    s.assert_untouched_miss(&run);
}

/// One byte flipped in transit fails the archive's checksum: a miss, nothing extracted.
#[test]
fn flipped_bytes_are_a_miss() {
    let s = scenario(false);
    s.proxy.add(Rule::new("GET", "/k.tar.zst", Fault::FlipByte, usize::MAX));
    let run = s.restore();
    s.assert_untouched_miss(&run);
}

fn save_through_proxy(s: &Scenario, key: &str) -> Run {
    fs::write(s.machine.workspace().join("out/big.bin"), noise(12 << 20, 7)).unwrap();
    s.machine.run(&["save", "--key", key, "--path", "out"])
}

fn visible_keys(server: &S3Server) -> String {
    boto3(server, "print(sorted(o['Key'] for o in s3.list_objects_v2(Bucket=bucket).get('Contents', [])))")
}

/// The server goes away during a multipart upload: a warning, exit 0, the upload aborted, and
/// no object under the key.
#[test]
fn server_lost_during_multipart_upload_is_a_clean_failure() {
    let s = scenario(false);
    s.proxy.add(Rule::new("PUT", "partNumber=1", Fault::Refuse, usize::MAX));
    let run = save_through_proxy(&s, "lost");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("warning: cache lost not saved"), "{}", run.stderr);
    assert!(s.proxy.count("DELETE", "uploadId=") >= 1, "no AbortMultipartUpload: {:#?}", s.proxy.requests());
    assert!(!visible_keys(&s.server).contains("lost"), "{}", visible_keys(&s.server));
}

/// C10 on moto, which can list multipart uploads: a failed save leaves no upload behind.
#[test]
fn failed_uploads_leave_no_parts_behind() {
    let s = scenario_on(ServerKind::Moto, false);
    s.proxy.add(Rule::new("PUT", "partNumber=2", Fault::Status { status: 400, code: "InvalidPart".into() }, usize::MAX));
    let run = save_through_proxy(&s, "partial");
    assert!(run.stderr.contains("warning: cache partial not saved"), "{}", run.stderr);
    let uploads = boto3(&s.server, "print(len(s3.list_multipart_uploads(Bucket=bucket).get('Uploads', [])))");
    assert_eq!(uploads.trim(), "0");
    assert!(!visible_keys(&s.server).contains("partial"));
}

/// CompleteMultipartUpload answering 200 with an `<Error>` body is a failure, and retried.
#[test]
fn complete_with_an_error_body_is_retried() {
    let s = scenario(false);
    s.proxy.add(Rule::new("POST", "uploadId=", Fault::Status { status: 200, code: "InternalError".into() }, 1));
    let run = save_through_proxy(&s, "completed");
    assert!(run.stderr.contains("saved completed"), "{}\n{:#?}", run.stderr, s.proxy.requests());
    assert_eq!(s.proxy.count("POST", "uploadId="), 2);
    assert!(visible_keys(&s.server).contains("faults/local/completed.tar.zst"));
}

/// Issue 22: CompleteMultipartUpload completes at the server, but its answer is lost. The retry
/// finds the upload gone (`NoSuchUpload`), a HEAD finds the object with the size sent, and the save
/// succeeds, after one notice of the retry.
#[test]
fn a_lost_completion_answer_is_checked_with_head() {
    // moto answers a Complete of a finished upload with NoSuchUpload, as AWS does (s3s-fs says
    // AccessDenied, which is not retried).
    let s = scenario_on(ServerKind::Moto, false);
    s.proxy.add(Rule::new("POST", "uploadId=", Fault::Lose, 1));
    let run = save_through_proxy(&s, "answer-lost");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("saved answer-lost"), "{}\n{:#?}", run.stderr, s.proxy.requests());
    let retries: Vec<&str> = run.stderr.lines().filter(|line| line.starts_with("retrying ")).collect();
    assert_eq!(retries, ["retrying CompleteMultipartUpload (attempt 2 of 3): io: Peer disconnected"], "{}", run.stderr);
    assert_eq!(s.proxy.count("POST", "uploadId="), 2, "{:#?}", s.proxy.requests());
    assert!(visible_keys(&s.server).contains("faults/local/answer-lost.tar.zst"));
}

/// Issue 22: a server that accepts connections and never answers. Each attempt ends after
/// `--stall-timeout-secs`, each retry prints one notice naming the timeout that fired and its
/// setting, and the failure names it too (`--fail-on-error`: exit 1).
#[test]
fn a_server_that_never_answers_is_named() {
    // The kernel accepts connections into the listener's backlog; nobody ever reads or writes them.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut machine = Machine::new();
    for (name, value) in [
        ("S3CACHE_STORE", "s3://bucket/silent".to_owned()),
        ("AWS_ENDPOINT_URL", format!("http://{}", silent.local_addr().unwrap())),
        ("AWS_ACCESS_KEY_ID", "AKIDSILENT".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "silent-secret".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("S3CACHE_STALL_TIMEOUT_SECS", "1".to_owned()),
        ("S3CACHE_MAX_ATTEMPTS", "3".to_owned()),
        ("S3CACHE_RETRY_BASE_MS", "20".to_owned()),
    ] {
        machine.env(name, value);
    }
    fs::create_dir_all(machine.workspace().join("out")).unwrap();
    let run = machine.run(&["restore", "--key", "k", "--path", "out", "--fail-on-error"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    // One line per retry, naming the operation, the attempt and the timeout that fired with its
    // setting; then the error, which says the same.
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stderr);
    assert_eq!(
        lines[..2],
        [
            "retrying ListObjectsV2 (attempt 2 of 3): no answer within 1 s (--stall-timeout-secs)",
            "retrying ListObjectsV2 (attempt 3 of 3): no answer within 1 s (--stall-timeout-secs)"
        ]
    );
    assert!(lines[2].starts_with("error: cache not restored: no usable cache entry for key \"k\" in scopes "), "{}", run.stderr);
    assert!(
        lines[2].ends_with("; the store failed: ListObjectsV2 of s3://bucket/silent/local/k.tar failed: Timeout: no answer within 1 s (--stall-timeout-secs)"),
        "{}",
        run.stderr
    );
    drop(silent);
}

/// CompleteMultipartUpload 409 ConditionalRequestConflict: a warning, no object.
#[test]
fn completion_conflict_gives_up_cleanly() {
    let s = scenario(false);
    s.proxy.add(Rule::new("POST", "uploadId=", Fault::Status { status: 409, code: "ConditionalRequestConflict".into() }, usize::MAX));
    let run = save_through_proxy(&s, "conflict");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("warning: cache conflict not saved"), "{}", run.stderr);
    assert!(!visible_keys(&s.server).contains("conflict"));
}

/// Two jobs save one key at once on a server that ignores `If-None-Match` (rclone): both finish, the
/// entry is the later completion's tree, whole, and that job's post-write check reports its save.
/// Where the server honours `If-None-Match`, the later completion loses cleanly instead.
#[test]
fn concurrent_saves_of_one_key_leave_one_whole_entry() {
    let mut s = scenario_on(ServerKind::Rclone, false);
    let slow = s.machine.scratch("slow");
    let fast = s.machine.scratch("fast");
    for (dir, id) in [(&slow, "slow"), (&fast, "fast")] {
        fs::create_dir_all(dir.join("out")).unwrap();
        fs::write(dir.join("out/id"), id).unwrap();
        fs::write(dir.join("out/big.bin"), noise(6 << 20, id.len() as u64)).unwrap();
    }
    let (slow_run, fast_run) = race(&mut s, &slow, &fast);
    assert_eq!((slow_run.code, fast_run.code), (0, 0), "{}\n{}", slow_run.stderr, fast_run.stderr);
    let check = s.machine.scratch("check");
    let run = s.machine.run_in(&check, &["restore", "--key", "shared", "--path", "out"]).success();
    let winner = fs::read_to_string(check.join("out/id"))
        .unwrap_or_else(|e| panic!("{e}: {}\nslow: {}\nfast: {}", run.stderr, slow_run.stderr, fast_run.stderr));
    assert_eq!(winner, "slow", "the later completion is the visible object on a server without conditional writes");
    assert_eq!(snapshot(&check.join("out")), snapshot(&slow.join("out")), "the entry is one job's tree, whole");
    assert!(slow_run.stderr.contains("saved shared"), "{}", slow_run.stderr);

    let mut s = scenario(false);
    let (slow_run, fast_run) = race(&mut s, &slow, &fast);
    assert!(fast_run.stderr.contains("saved shared"), "{}", fast_run.stderr);
    assert!(slow_run.stderr.contains("already exists"), "{}", slow_run.stderr);
}

/// Two saves of the key `shared` from `slow` and `fast`: the slow job's completion is held at the
/// proxy until the fast job has finished, so the order never depends on the machine's load. Both run
/// with a long stall timeout, so the held completion is not timed out and retried meanwhile.
fn race(s: &mut Scenario, slow: &std::path::Path, fast: &std::path::Path) -> (Run, Run) {
    let gate = Gate::default();
    s.proxy.add(Rule::new("POST", "uploadId=", Fault::Hold(gate.clone()), 1));
    s.machine.env("S3CACHE_STALL_TIMEOUT_SECS", "120");
    let (machine, proxy) = (&s.machine, &s.proxy);
    std::thread::scope(|scope| {
        let slow_job = scope.spawn(|| machine.run_in(slow, &["save", "--key", "shared", "--path", "out"]));
        wait_until("the slow job's completion is held", || proxy.count("POST", "uploadId=") == 1);
        let fast_run = machine.run_in(fast, &["save", "--key", "shared", "--path", "out"]);
        gate.open();
        (slow_job.join().unwrap(), fast_run)
    })
}

/// Waits until `condition` holds, failing after a deadline generous enough for a loaded machine.
#[track_caller]
fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A clock 20 minutes behind: the strict server answers RequestTimeTooSkewed, the request is
/// signed again with the server's time, and the restore succeeds.
#[test]
fn clock_skew_is_corrected() {
    let mut s = scenario(false);
    s.machine.env("S3CACHE_CLOCK_OFFSET_SECS", "-1200");
    let run = s.restore();
    s.assert_restored(&run);
    assert!(run.stderr.contains("local clock differs"), "{}", run.stderr);
}

/// Credentials that expired mid-job: a warning, the save skipped, exit 0.
#[test]
fn expired_credentials_skip_the_save() {
    let s = scenario(false);
    s.proxy.add(Rule::always(Fault::Status { status: 400, code: "ExpiredToken".into() }));
    let run = save_through_proxy(&s, "expired");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("warning: cache expired not saved") && run.stderr.contains("400"), "{}", run.stderr);
    assert_eq!(s.proxy.requests().len(), 1, "not retried: {:#?}", s.proxy.requests());
}

/// 50 restores of one key and 20 saves of different keys at once: all intact.
#[test]
fn parallel_restores_and_saves_stay_intact() {
    let s = scenario(false);
    let results: Vec<(std::path::PathBuf, Run)> = std::thread::scope(|scope| {
        let restores: Vec<_> = (0..50)
            .map(|i| {
                let dir = s.machine.scratch(&format!("runner-{i}"));
                let machine = &s.machine;
                scope.spawn(move || {
                    let run = machine.run_in(&dir, &["restore", "--key", "k", "--path", "out"]);
                    (dir, run)
                })
            })
            .collect();
        let saves: Vec<_> = (0..20)
            .map(|i| {
                let dir = s.machine.scratch(&format!("saver-{i}"));
                fs::create_dir_all(dir.join("out")).unwrap();
                fs::write(dir.join("out/id"), i.to_string()).unwrap();
                let machine = &s.machine;
                scope.spawn(move || {
                    let run = machine.run_in(&dir, &["save", "--key", &format!("parallel-{i}"), "--path", "out"]);
                    (dir, run)
                })
            })
            .collect();
        restores.into_iter().chain(saves).map(|h| h.join().unwrap()).collect()
    });
    for (dir, run) in &results[..50] {
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(snapshot(&dir.join("out")), s.saved, "{}", dir.display());
    }
    for (_, run) in &results[50..] {
        assert!(run.stderr.contains("saved parallel-"), "{}", run.stderr);
    }
    let check = s.machine.scratch("check");
    for i in 0..20 {
        s.machine.run_in(&check, &["restore", "--key", &format!("parallel-{i}"), "--path", "out"]).success();
        assert_eq!(fs::read_to_string(check.join("out/id")).unwrap(), i.to_string());
    }
}

/// The bar: with 10 % of connections dropped and 5 % of answers stalled, a multipart save
/// and a ranged restore both complete correctly, against s3s-fs and against moto.
#[test]
fn save_and_restore_through_a_flaky_network() {
    flaky_network(ServerKind::S3sFs);
    flaky_network(ServerKind::Moto);
}

fn flaky_network(kind: ServerKind) {
    let mut s = scenario_on(kind, false);
    s.machine.env("S3CACHE_MAX_ATTEMPTS", "8");
    write_sample_tree(&s.machine.workspace(), "flaky", 12 << 20);
    let saved = snapshot(&s.machine.workspace().join("flaky"));
    s.proxy.random_faults(0.10, 0.05, 2026);
    let run = s.machine.run(&["save", "--key", "flaky", "--path", "flaky"]);
    assert!(run.stderr.contains("saved flaky"), "{}\n{:#?}", run.stderr, s.proxy.requests());
    fs::remove_dir_all(s.machine.workspace().join("flaky")).unwrap();
    let run = s.machine.run(&["restore", "--key", "flaky", "--path", "flaky"]);
    assert!(run.stderr.contains("restored flaky"), "{}\n{:#?}", run.stderr, s.proxy.requests());
    assert_eq!(snapshot(&s.machine.workspace().join("flaky")), saved);
    assert!(s.proxy.requests().iter().any(|r| !r.ends_with("pass")), "no fault was injected");
}
