//! Endpoints and failed restores (issue 20). An endpoint without `http://` or `https://` is refused
//! (exit 2) before any request, wherever it is set; drone-cache's settings alone keep adding the
//! scheme the plugin added. A plain-HTTP server reached with `https://` is named as that. And
//! `restore --fail-on-error` (Harness's `PLUGIN_EXIT_CODE`) fails a restore that failed — wrong
//! credentials, a damaged entry — while a plain miss still passes.

use std::fs;
use std::io::{ErrorKind, Read};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use s3cache_tests::{Machine, Run, S3Server, ServerKind, binary, boto3};

/// A loopback port nobody serves, which tells whether anything connected to it.
struct Port {
    listener: TcpListener,
    port: u16,
}

impl Port {
    fn new() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener.set_nonblocking(true).expect("non-blocking accept");
        let port = listener.local_addr().expect("local addr").port();
        Self { listener, port }
    }

    /// `127.0.0.1:PORT`, with no scheme.
    fn bare(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Whether a connection reached the port (it waits in the accept queue even once closed).
    fn was_reached(&self) -> bool {
        match self.listener.accept() {
            Ok(_) => true,
            Err(err) if err.kind() == ErrorKind::WouldBlock => false,
            Err(err) => panic!("accept: {err}"),
        }
    }

    /// The next connection, waited for with a generous deadline (a busy machine starts slowly).
    fn next_connection(&self) -> TcpStream {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            match self.listener.accept() {
                Ok((socket, _)) => {
                    socket.set_nonblocking(false).expect("blocking socket");
                    socket.set_read_timeout(Some(Duration::from_secs(60))).expect("read timeout");
                    return socket;
                }
                Err(err) if err.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(err) => panic!("no connection reached port {}: {err}", self.port),
            }
        }
    }
}

/// A machine whose store is `s3://cache-bucket/ci` with static keys, and no endpoint set yet.
fn machine_without_endpoint() -> Machine {
    let mut machine = Machine::new();
    machine
        .env("S3CACHE_STORE", "s3://cache-bucket/ci")
        .env("AWS_ACCESS_KEY_ID", "AKID")
        .env("AWS_SECRET_ACCESS_KEY", "not-a-real-secret")
        .env("AWS_REGION", "us-east-1");
    machine
}

/// The message for an endpoint `url` with no scheme, set by `setting`.
fn no_scheme(setting: &str, url: &str) -> String {
    format!("{setting}: endpoint \"{url}\" has no scheme: write http://{url} for a plain-HTTP server or https://{url} for TLS")
}

/// The run was refused as a configuration error: exit 2, exactly `error: <message>` on `stream`,
/// nothing sent to `port`, nothing restored.
#[track_caller]
fn assert_refused(run: &Run, stream: &str, message: &str, port: &Port, machine: &Machine) {
    assert_eq!(run.code, 2, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    let printed = if stream == "stdout" { &run.stdout } else { &run.stderr };
    let line = printed
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line on {stream}: {}{}", run.stdout, run.stderr));
    assert_eq!(line, format!("error: {message}"));
    assert!(!port.was_reached(), "a request was sent for {message}");
    assert!(!machine.workspace().join("out").exists(), "something was restored");
}

/// `--endpoint`, `AWS_ENDPOINT_URL_S3` and `AWS_ENDPOINT_URL` without `http://` or `https://` (a bare
/// `host:port`, `localhost:port`, `//host:port`), with another scheme, or half-written: exit 2 with
/// a message naming the setting, and no connection to the port they name.
#[test]
fn endpoints_without_a_scheme_are_refused_before_any_request() {
    let port = Port::new();
    let bare = port.bare();
    let localhost = format!("localhost:{}", port.port);
    let cases: Vec<(&str, String, String)> = vec![
        ("--endpoint", bare.clone(), no_scheme("--endpoint", &bare)),
        ("--endpoint", localhost.clone(), no_scheme("--endpoint", &localhost)),
        ("--endpoint", format!("//{bare}"), no_scheme("--endpoint", &bare)),
        ("--endpoint", format!("ftp://{bare}"), format!("--endpoint: endpoint \"ftp://{bare}\": the scheme must be http:// or https://")),
        (
            "--endpoint",
            format!("http:/{bare}"),
            format!("--endpoint: endpoint \"http:/{bare}\": expected http://host[:port] or https://host[:port], with no path or user"),
        ),
        ("AWS_ENDPOINT_URL_S3", bare.clone(), no_scheme("AWS_ENDPOINT_URL_S3", &bare)),
        ("AWS_ENDPOINT_URL", bare.clone(), no_scheme("AWS_ENDPOINT_URL", &bare)),
    ];
    for (setting, value, message) in cases {
        let mut machine = machine_without_endpoint();
        let restore = if setting == "--endpoint" {
            machine.run(&["--endpoint", &value, "restore", "--key", "k", "--path", "out", "--fail-on-error"])
        } else {
            machine.env(setting, value.as_str()).run(&["restore", "--key", "k", "--path", "out"])
        };
        assert_refused(&restore, "stderr", &message, &port, &machine);
    }
    // A save and an admin verb are refused the same way.
    let machine = machine_without_endpoint();
    fs::create_dir_all(machine.workspace().join("src")).unwrap();
    assert_refused(
        &machine.run(&["--endpoint", &bare, "save", "--key", "k", "--path", "src"]),
        "stderr",
        &no_scheme("--endpoint", &bare),
        &port,
        &machine,
    );
    assert_refused(&machine.run(&["--endpoint", &bare, "list"]), "stderr", &no_scheme("--endpoint", &bare), &port, &machine);
    // A file:// store uses no endpoint: a stray AWS_ENDPOINT_URL does not stop it.
    let mut local = Machine::new();
    local.env("AWS_ENDPOINT_URL", bare.as_str());
    local.run(&["list"]).success();
    assert!(!port.was_reached());
}

/// The dialects whose plugin refused a bare host (drone-s3-cache, Woodpecker's, vela-s3-cache, the
/// Semaphore CLI's custom URL) and the GitHub action's input refuse it too: exit 2 naming the variable
/// or input, nothing sent.
#[test]
fn dialect_endpoints_without_a_scheme_are_refused() {
    let port = Port::new();
    let bare = port.bare();
    let plugin = |vars: &[(&str, &str)]| {
        let mut machine = Machine::new();
        machine.env("DRONE_REPO_OWNER", "acme").env("DRONE_REPO_NAME", "app").env("DRONE_COMMIT_BRANCH", "main");
        for (name, value) in vars {
            machine.env(name, *value);
        }
        let run = machine.run(&[]);
        (machine, run)
    };
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[("PLUGIN_MODE", "restore"), ("PLUGIN_ROOT", "cache-bucket"), ("PLUGIN_ENDPOINT", &bare)], "PLUGIN_ENDPOINT"),
        (&[("PLUGIN_RESTORE", "true"), ("PLUGIN_ROOT", "cache-bucket"), ("CACHE_S3_SERVER", &bare)], "CACHE_S3_SERVER"),
        (&[("PLUGIN_ACTION", "download"), ("PLUGIN_BUCKET", "cache-bucket"), ("PLUGIN_PATH", "out"), ("PLUGIN_URL", &bare)], "PLUGIN_URL"),
        (
            &[
                ("PARAMETER_ACTION", "restore"),
                ("PARAMETER_BUCKET", "cache-bucket"),
                ("VELA_REPO_ORG", "acme"),
                ("VELA_REPO_NAME", "app"),
                ("S3CACHE_VELA_DIR", "/nonexistent"),
                ("PARAMETER_SERVER", &bare),
            ],
            "PARAMETER_SERVER",
        ),
    ];
    for (vars, setting) in cases {
        let (machine, run) = plugin(vars);
        assert_refused(&run, "stderr", &no_scheme(setting, &bare), &port, &machine);
    }

    let mut action = Machine::new();
    for (name, value) in
        [("GITHUB_ACTIONS", "true"), ("INPUT_PATH", "out"), ("INPUT_KEY", "k"), ("INPUT_BUCKET", "cache-bucket"), ("INPUT_ENDPOINT", &bare)]
    {
        action.env(name, value);
    }
    let run = action.run(&["github-action", "restore"]);
    assert_refused(&run, "stderr", &no_scheme("input `endpoint`", &bare), &port, &action);

    // The Semaphore CLI prints errors on stdout; these exit 2 even without CACHE_FAIL_ON_ERROR.
    let mut semaphore = Machine::new();
    for (name, value) in [
        ("SEMAPHORE_CACHE_BACKEND", "s3"),
        ("SEMAPHORE_PROJECT_ID", "p-1"),
        ("SEMAPHORE_CACHE_S3_BUCKET", "cache-bucket"),
        ("SEMAPHORE_CACHE_S3_URL", &bare),
    ] {
        semaphore.env(name, value);
    }
    let run = semaphore.run(&["semaphore", "restore", "k"]);
    assert_refused(&run, "stdout", &no_scheme("SEMAPHORE_CACHE_S3_URL", &bare), &port, &semaphore);
    semaphore
        .unset("SEMAPHORE_CACHE_S3_URL")
        .env("AWS_ENDPOINT_URL", bare.as_str())
        .env("AWS_ACCESS_KEY_ID", "AKID")
        .env("AWS_SECRET_ACCESS_KEY", "not-a-real-secret");
    let run = semaphore.run(&["semaphore", "restore", "k"]);
    assert_refused(&run, "stdout", &no_scheme("AWS_ENDPOINT_URL", &bare), &port, &semaphore);
}

/// Starts a drone-cache restore step (the binary with no arguments) whose endpoint is `endpoint`.
fn drone_cache_restore(endpoint: &str, extra: &[(&str, &str)]) -> (Machine, std::process::Child) {
    let machine = Machine::new();
    let mut command = Command::new(binary());
    command.current_dir(machine.workspace()).env_clear().stdout(Stdio::null()).stderr(Stdio::piped());
    command.envs(machine.machine_env());
    let settings = [
        ("DRONE_REPO_NAME", "app"),
        ("PLUGIN_RESTORE", "true"),
        ("PLUGIN_BUCKET", "cache-bucket"),
        ("PLUGIN_CACHE_KEY", "k"),
        ("PLUGIN_MOUNT", "out"),
        ("PLUGIN_ENDPOINT", endpoint),
        ("PLUGIN_PATH_STYLE", "true"),
        ("PLUGIN_ACCESS_KEY", "AKID"),
        ("PLUGIN_SECRET_KEY", "not-a-real-secret"),
        ("S3CACHE_MAX_ATTEMPTS", "1"),
    ];
    command.envs(settings.iter().chain(extra).copied());
    let child = command.spawn().expect("start s3cache");
    (machine, child)
}

/// drone-cache's `endpoint` keeps accepting a bare host as the plugin's AWS SDK did: over TLS by
/// default (the first byte sent is a TLS handshake record), over plain HTTP with `disablessl`.
#[test]
fn drone_cache_adds_the_scheme_its_plugin_added() {
    for (extra, expect_tls) in [(&[][..], true), (&[("PLUGIN_DISABLESSL", "true")][..], false)] {
        let port = Port::new();
        let (_machine, mut child) = drone_cache_restore(&port.bare(), extra);
        let mut first = [0u8; 4];
        port.next_connection().read_exact(&mut first).expect("the first bytes of the request");
        // Whatever else it tries (the old layout's objects) is closed at once, until it ends.
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for s3cache") {
                break status;
            }
            assert!(Instant::now() < deadline, "s3cache did not end");
            if !port.was_reached() {
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        let mut stderr = String::new();
        child.stderr.take().expect("piped stderr").read_to_string(&mut stderr).expect("read stderr");
        if expect_tls {
            assert_eq!(first[0], 0x16, "expected a TLS handshake record, got {first:?}");
        } else {
            assert_eq!(&first, b"GET ", "expected a plain HTTP request");
        }
        assert_eq!(status.code(), Some(0), "a failed restore without exit_code passes: {stderr}");
        assert!(stderr.contains("warning: cache not restored"), "{stderr}");
    }
}

/// A plain-HTTP server reached with `https://` fails the restore with a message saying so and what
/// to write, once (no retry mends it); with --fail-on-error the step fails.
#[test]
fn a_plain_http_server_reached_with_https_says_use_http() {
    let server = S3Server::start(ServerKind::S3sFs);
    let mut machine = Machine::new();
    machine.use_server(&server, "ci");
    let authority = format!("127.0.0.1:{}", server.port);
    machine.env("AWS_ENDPOINT_URL", format!("https://{authority}"));
    let run = machine.run(&["restore", "--key", "k", "--path", "out", "--summary-json", "summary.json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let expected =
        format!("the server answered in plain HTTP: use http://{authority} instead of https://{authority} (the TLS handshake read: ");
    let warning = run.stderr.lines().find(|l| l.starts_with("warning: cache not restored")).unwrap_or_else(|| panic!("{}", run.stderr));
    assert!(warning.contains(&format!("PlainHttpServer: {expected}")) && warning.contains("InvalidContentType"), "{warning}");
    let summary: serde_json::Value = serde_json::from_slice(&fs::read(machine.workspace().join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["http_requests"], 1, "a plain-HTTP answer is not retried");
    let failed = machine.run(&["restore", "--key", "k", "--path", "out", "--fail-on-error"]);
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert!(failed.stderr.contains(&expected), "{}", failed.stderr);
    assert!(!machine.workspace().join("out").exists());
}

/// A machine on `server` with `out` saved under `k` (as tar, so that only the digest guards its
/// bytes), and `out` removed again.
fn saved_entry(kind: ServerKind) -> (S3Server, Machine) {
    let server = S3Server::start(kind);
    let mut machine = Machine::new();
    machine.use_server(&server, "ci");
    let out = machine.workspace().join("out");
    fs::create_dir_all(&out).unwrap();
    fs::write(out.join("data.bin"), s3cache_tests::tree::noise(64 << 10, 7)).unwrap();
    machine.run(&["save", "--key", "k", "--path", "out", "--format", "tar"]).success();
    fs::remove_dir_all(&out).unwrap();
    (server, machine)
}

/// The only warning line of a run.
#[track_caller]
fn warning(run: &Run) -> String {
    labelled(run, "warning: ")
}

/// The first line of a run's stderr that starts with `label`.
#[track_caller]
fn labelled(run: &Run, label: &str) -> String {
    run.stderr.lines().find(|l| l.starts_with(label)).unwrap_or_else(|| panic!("no {label:?} line: {}", run.stderr)).to_owned()
}

/// `restore --fail-on-error`: a miss with no entry still exits 0 (s3s-fs and moto); a restore refused
/// by the server for a wrong secret exits 1 with the reason, and 0 without the flag.
#[test]
fn restore_fail_on_error_fails_a_failed_restore_not_a_miss() {
    for kind in [ServerKind::S3sFs, ServerKind::Moto] {
        let (_server, mut machine) = saved_entry(kind);
        let miss = machine.run(&["restore", "--key", "other", "--path", "out", "--fail-on-error"]);
        assert_eq!(miss.code, 0, "{kind:?}: a plain miss passes: {}", miss.stderr);
        assert!(miss.stderr.contains("cache miss: no usable cache entry for key \"other\" in scopes local"), "{}", miss.stderr);
        let missing = machine.run(&["restore", "--key", "other", "--path", "out", "--fail-on-error", "--fail-on-cache-miss"]);
        assert_eq!(missing.code, 1, "{kind:?}: --fail-on-cache-miss still fails a miss");

        if kind == ServerKind::S3sFs {
            // moto accepts any signature; s3s-fs checks it.
            machine.env("AWS_SECRET_ACCESS_KEY", "a-wrong-secret");
            let failed = machine.run(&["restore", "--key", "k", "--path", "out", "--fail-on-error"]);
            assert_eq!(failed.code, 1, "{}", failed.stderr);
            let reason = labelled(&failed, "error: ");
            assert!(
                reason.starts_with("error: cache not restored: ")
                    && reason.contains("HTTP 403")
                    && reason.contains("SignatureDoesNotMatch"),
                "{reason}"
            );
            let tolerated = machine.run(&["restore", "--key", "k", "--path", "out"]);
            // Tolerated, the same line is a warning.
            assert_eq!((tolerated.code, warning(&tolerated)), (0, reason.replacen("error: ", "warning: ", 1)));
        }
        assert!(!machine.workspace().join("out").exists(), "{kind:?}: nothing restored");
    }
}

/// A byte flipped in the stored archive (with boto3, behind s3cache's back) is a refused entry:
/// `--fail-on-error` makes it exit 1, naming the digest mismatch; without it, a warning and exit 0.
#[test]
fn restore_fail_on_error_fails_a_digest_mismatch() {
    let (server, machine) = saved_entry(ServerKind::Moto);
    let flipped = boto3(
        &server,
        "key = [o['Key'] for o in s3.list_objects_v2(Bucket=bucket)['Contents'] if o['Key'].endswith('/k.tar')][0]\n\
         body = bytearray(s3.get_object(Bucket=bucket, Key=key)['Body'].read())\n\
         body[len(body) // 3] ^= 0x01\n\
         s3.put_object(Bucket=bucket, Key=key, Body=bytes(body))\n\
         print(key)",
    );
    assert!(flipped.trim().starts_with("ci/"), "{flipped}");
    let failed = machine.run(&["restore", "--key", "k", "--path", "out", "--fail-on-error"]);
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    let reason = labelled(&failed, "error: ");
    assert!(
        reason.starts_with("error: cache not restored: cache entry \"k\" was not restored: ") && reason.contains("SHA-256 mismatch"),
        "{reason}"
    );
    let tolerated = machine.run(&["restore", "--key", "k", "--path", "out"]);
    assert_eq!((tolerated.code, warning(&tolerated)), (0, reason.replacen("error: ", "warning: ", 1)));
    assert!(!machine.workspace().join("out").exists(), "nothing restored");
}

/// Harness sets `PLUGIN_EXIT_CODE=true`: a Restore Cache from S3 step whose connector has a wrong
/// secret fails (exit 1) without printing it; with `exit_code` false it passes with a warning.
#[test]
fn harness_exit_code_fails_a_restore_with_a_wrong_secret() {
    let (server, _) = saved_entry(ServerKind::S3sFs);
    let endpoint = server.endpoint();
    let step = |exit_code: &str| {
        let mut machine = Machine::new();
        for (name, value) in [
            ("HARNESS_BUILD_ID", "42"),
            ("HARNESS_WORKSPACE", "/harness"),
            ("DRONE_REPO_NAME", "app"),
            ("DRONE_COMMIT_BRANCH", "main"),
            ("PLUGIN_RESTORE", "true"),
            ("PLUGIN_CACHE_KEY", "k"),
            ("PLUGIN_BUCKET", &server.bucket),
            ("PLUGIN_ENDPOINT", &endpoint),
            ("PLUGIN_PATH_STYLE", "true"),
            ("PLUGIN_REGION", "us-east-1"),
            ("PLUGIN_ACCESS_KEY", &server.access_key),
            ("PLUGIN_SECRET_KEY", "a-wrong-secret-for-harness"),
            ("PLUGIN_EXIT_CODE", exit_code),
            ("PLUGIN_BACKEND", "s3"),
        ] {
            machine.env(name, value);
        }
        machine.run(&[])
    };
    let failed = step("true");
    assert_eq!(failed.code, 1, "{}{}", failed.stdout, failed.stderr);
    assert!(
        failed.stderr.contains("running as Harness") && labelled(&failed, "error: ").contains("SignatureDoesNotMatch"),
        "{}",
        failed.stderr
    );
    assert!(!failed.stderr.contains("a-wrong-secret-for-harness") && !failed.stdout.contains("a-wrong-secret-for-harness"));
    let tolerated = step("false");
    assert_eq!(tolerated.code, 0, "{}", tolerated.stderr);
    assert!(warning(&tolerated).contains("SignatureDoesNotMatch"));
}
