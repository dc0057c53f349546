//! The library API that other runners embed: stores opened by URL and every S3 operation the engine
//! uses, against the strict server, cross-checked with boto3.

use std::io::{Read, Write};

use s3cache::store::Credentials;
use s3cache::store::{BlobStore, PutOptions, S3Options, StoreError};
use s3cache_tests::{S3Server, ServerKind, boto3};

fn open(server: &S3Server, prefix: &str) -> Box<dyn BlobStore> {
    let options = S3Options {
        endpoint: Some(server.endpoint()),
        region: Some("us-east-1".into()),
        credentials: Some(Credentials {
            access_key_id: server.access_key.clone(),
            secret_access_key: server.secret_key.clone(),
            session_token: None,
        }),
        ..S3Options::default()
    };
    s3cache::open_store(&format!("s3://{}/{prefix}", server.bucket), options).unwrap()
}

fn put(store: &dyn BlobStore, name: &str, body: &[u8], options: PutOptions) -> Result<u64, StoreError> {
    let mut upload = store.put(name, options).unwrap();
    upload.write_all(body).unwrap();
    upload.finish()
}

/// The settings and environment of a run against `server`'s bucket under `repo`, its guest cached in `machine`.
fn settings_for(server: &S3Server, machine: &s3cache_tests::Machine) -> (s3cache::config::Settings, s3cache::engine::EnvLookup) {
    let settings = s3cache::config::Settings {
        store: Some(format!("s3://{}/repo", server.bucket)),
        endpoint: Some(server.endpoint()),
        region: Some("us-east-1".into()),
        ..s3cache::config::Settings::default()
    };
    let env = s3cache::config::process_env(vec![
        ("S3CACHE_ACCESS_KEY_ID".into(), server.access_key.clone()),
        ("S3CACHE_SECRET_ACCESS_KEY".into(), server.secret_key.clone()),
        ("S3CACHE_CACHE_DIR".into(), machine.cache_dir().display().to_string()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
    ]);
    (settings, env)
}

/// A restore of `vendor` under `key` that also accepts drone-cache's gzip object `KEY/vendor`.
fn drone_cache_vendor_request(key: &str, in_search: bool) -> s3cache::engine::RestoreRequest {
    use s3cache::engine::{Legacy, LegacyName, LegacyObject, MemberNames};
    let mut request = s3cache::engine::RestoreRequest::new(key, ["vendor"]);
    request.legacy = Some(Legacy {
        writer: "drone-cache".into(),
        format: s3cache::archive::layout::Format::Gzip,
        in_search,
        objects: vec![LegacyObject {
            name: LegacyName::AroundKey { before: String::new(), after: "/vendor".into() },
            paths: vec!["vendor".into()],
            names: MemberNames::Plain,
        }],
    });
    request
}

/// PutObject, HeadObject, GetObject, ListObjectsV2 (all pages) and DeleteObject against s3s-fs.
#[test]
fn store_operations_against_s3s_fs() {
    let server = S3Server::start(ServerKind::S3sFs);
    let store = open(&server, "lib");
    assert_eq!(put(&*store, "a b/ü.bin", b"hello", PutOptions::default()).unwrap(), 5);
    let info = store.head("a b/ü.bin").unwrap().unwrap();
    assert_eq!(info.size, 5);
    assert!(store.head("missing").unwrap().is_none());
    let mut body = String::new();
    store.read(&info, 0, 5).unwrap().read_to_string(&mut body).unwrap();
    assert_eq!(body, "hello");
    let mut tail = String::new();
    store.read(&info, 3, 5).unwrap().read_to_string(&mut tail).unwrap();
    assert_eq!(tail, "lo");

    // More objects than one ListObjectsV2 page holds (1000), created with the independent client.
    boto3(&server, "[s3.put_object(Bucket=bucket, Key=f'lib/many/{i:04}', Body=b'x') for i in range(1100)]");
    assert_eq!(store.list("many/").unwrap().len(), 1100);
    assert_eq!(store.list("a b/").unwrap().len(), 1);

    store.delete("a b/ü.bin").unwrap();
    store.delete("a b/ü.bin").unwrap();
    assert!(store.head("a b/ü.bin").unwrap().is_none());
    let keys = boto3(&server, "print(s3.list_objects_v2(Bucket=bucket, Prefix='lib/a')['KeyCount'])");
    assert_eq!(keys.trim(), "0");
}

/// A conditional write loses to an existing key, on both servers.
#[test]
fn conditional_writes_keep_the_first_writer() {
    for kind in [ServerKind::S3sFs, ServerKind::Moto] {
        let server = S3Server::start(kind);
        let store = open(&server, "");
        let first = PutOptions { if_none_match: true };
        put(&*store, "k", b"first", first).unwrap();
        assert!(matches!(put(&*store, "k", b"second", first), Err(StoreError::AlreadyExists(_))), "{kind:?}");
        let mut body = String::new();
        let info = store.head("k").unwrap().unwrap();
        store.read(&info, 0, info.size).unwrap().read_to_string(&mut body).unwrap();
        assert_eq!(body, "first", "{kind:?}");
    }
}

/// An embedder's restore that accepts an old tool's objects at their own names (drone-cache's
/// `<root>/<key>/<mount>`, a GNU `tar czf` of the mount): used only when no s3cache entry is found,
/// extracted into the mount with a notice and no digest, and refused when a member leaves the mount.
#[test]
fn restores_old_tools_objects_at_their_own_names() {
    use s3cache::engine::RestoreOutcome;
    let server = S3Server::start(ServerKind::S3sFs);
    let machine = s3cache_tests::Machine::new();
    let old = machine.scratch("old");
    std::fs::create_dir_all(old.join("vendor/lib")).unwrap();
    std::fs::write(old.join("vendor/lib/a.go"), "package lib\n").unwrap();
    std::fs::write(old.join("outside.txt"), "not mine\n").unwrap();
    let tgz = |members: &[&str]| {
        let out = std::process::Command::new("tar").arg("czf").arg("-").args(members).current_dir(&old).output().unwrap();
        assert!(out.status.success());
        out.stdout
    };
    server.put_object("repo", "deps-1/vendor", &tgz(&["vendor"]));
    server.put_object("repo", "deps-2/vendor", &tgz(&["vendor", "outside.txt"]));

    let (settings, env) = settings_for(&server, &machine);
    let mut context = s3cache::config::resolve(&settings, env).unwrap();
    context.cwd = machine.workspace();
    let request = |key: &str| drone_cache_vendor_request(key, false);
    let RestoreOutcome::Hit(hit) = context.restore(&request("deps-1")).unwrap() else { panic!("the old object was not restored") };
    assert_eq!((hit.matched_key.as_str(), hit.sha256.as_str(), hit.exact), ("deps-1/vendor", "", false));
    assert_eq!(std::fs::read_to_string(machine.workspace().join("vendor/lib/a.go")).unwrap(), "package lib\n");

    let RestoreOutcome::Miss { reason, failed, .. } = context.restore(&request("deps-2")).unwrap() else {
        panic!("a member outside the mount was accepted")
    };
    assert!(failed && reason.contains("archive member outside.txt rejected: not selected by the restored path's patterns"), "{reason}");
    assert!(!machine.workspace().join("outside.txt").exists());
}

/// Two operations on one context, each with its own reporter, hear only of themselves: their own
/// requests (counted apart), their own notices, and only their own secrets scrubbed.
#[test]
fn operations_report_to_their_own_reporters() {
    use std::sync::{Arc, Mutex};

    use s3cache::report::{Event, Reporter};
    use s3cache::{RestoreOutcome, RestoreRequest, SaveOutcome, SaveRequest};
    let server = S3Server::start(ServerKind::S3sFs);
    let machine = s3cache_tests::Machine::new();
    std::fs::create_dir_all(machine.workspace().join("vendor")).unwrap();
    std::fs::write(machine.workspace().join("vendor/a.txt"), "a\n").unwrap();
    let (settings, env) = settings_for(&server, &machine);
    let mut context = s3cache::config::resolve_reporting(&settings, env, Reporter::silent()).unwrap();
    context.cwd = machine.workspace();
    let collecting = || {
        let events: Arc<Mutex<Vec<Event>>> = Arc::default();
        let sink = events.clone();
        (events, Reporter::new(move |event| sink.lock().unwrap().push(event)))
    };
    let (save_events, save_reporter) = collecting();
    let (restore_events, restore_reporter) = collecting();
    restore_reporter.add_secret("deps-1");
    let saving = context.clone().with_reporter(save_reporter.clone());
    let restoring = context.clone().with_reporter(restore_reporter.clone());

    let saved = saving.save(&SaveRequest::new("deps-1", ["vendor"])).unwrap();
    assert!(matches!(saved, SaveOutcome::Saved { .. }), "{saved:?}");
    // Other paths: the entry's version differs, so the restore passes over it with a notice.
    let restored = restoring.restore(&RestoreRequest::new("deps-1", ["other"])).unwrap();
    assert!(matches!(restored, RestoreOutcome::Miss { failed: false, .. }), "{restored:?}");

    let requests = |events: &[Event]| events.iter().filter(|e| matches!(e, Event::RequestSent { .. })).count() as u64;
    let notices = |events: &[Event]| {
        events.iter().filter_map(|e| if let Event::Notice(text) = e { Some(text.clone()) } else { None }).collect::<Vec<_>>()
    };
    let (save_events, restore_events) = (save_events.lock().unwrap().clone(), restore_events.lock().unwrap().clone());
    assert!(save_reporter.requests_sent() > 0 && restore_reporter.requests_sent() > 0);
    assert_eq!(requests(&save_events), save_reporter.requests_sent());
    assert_eq!(requests(&restore_events), restore_reporter.requests_sent());
    assert_eq!(notices(&save_events), Vec::<String>::new());
    let notices = notices(&restore_events);
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(notices[0].starts_with("passing over cache entry local/***.tar.zst: its version differs"), "{notices:?}");
    assert_eq!(context.reporter().requests_sent(), 0, "the base context's reporter heard of neither");
}

/// The library's examples, as built by `cargo test` next to the binary.
fn example(name: &str) -> std::path::PathBuf {
    let path = s3cache_tests::binary().parent().unwrap().join("examples").join(name);
    assert!(path.exists(), "{} is missing: `cargo test` builds the examples", path.display());
    path
}

/// Runs an example in `dir` with the machine's environment only.
fn run_example(machine: &s3cache_tests::Machine, name: &str, dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let mut command = std::process::Command::new(example(name));
    command.args(args).current_dir(dir).env_clear();
    for (key, value) in machine.machine_env() {
        command.env(key, value);
    }
    let out = command.output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// examples/restore-save.rs against a real S3 server: a miss builds and saves, the next run restores,
/// and the `s3cache` binary restores the entry the library saved, exactly.
#[test]
fn restore_save_example_interoperates_with_the_binary() {
    let server = S3Server::start(ServerKind::S3sFs);
    let mut machine = s3cache_tests::Machine::new();
    machine.use_server(&server, "example");
    let workspace = machine.workspace();
    let (code, stdout, stderr) = run_example(&machine, "restore-save", &workspace, &["deps-v1", "out"]);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].starts_with("miss: no usable cache entry for key \"deps-v1\""), "{stdout}");
    assert!(lines[1].starts_with("saved deps-v1 ("), "{stdout}");

    let (code, stdout, stderr) = run_example(&machine, "restore-save", &workspace, &["deps-v1", "out"]);
    assert_eq!((code, stdout.as_str()), (0, "restored deps-v1 (2 members)\n"), "{stderr}");

    std::fs::remove_dir_all(workspace.join("out")).unwrap();
    let run = machine.run(&["restore", "--key", "deps-v1", "--path", "out"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(workspace.join("out/built.txt")).unwrap(), "built by the example\n");
}

/// examples/custom-store.rs: an embedder's own in-memory store saves a tree, a second workspace
/// restores it, and the listing shows the one entry in the local scope.
#[test]
fn custom_store_example_round_trips_through_its_own_store() {
    let machine = s3cache_tests::Machine::new();
    let workspace = machine.workspace();
    std::fs::create_dir_all(workspace.join("src/nested")).unwrap();
    std::fs::write(workspace.join("src/a.rs"), "fn a() {}\n").unwrap();
    std::fs::write(workspace.join("src/nested/b.rs"), "fn b() {}\n").unwrap();
    let (code, stdout, stderr) = run_example(&machine, "custom-store", &workspace, &["src"]);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(lines[0].starts_with("saved custom-store-demo: 4 members, "), "{stdout}");
    assert!(lines[1].starts_with("restored custom-store-demo into ") && lines[1].ends_with("/src: 4 members"), "{stdout}");
    assert!(lines[2].starts_with("in the store: local/custom-store-demo.tar.zst ("), "{stdout}");
}

/// Signing through the library: a context with a [`s3cache::signing::SigningKey`] saves a signed
/// entry, one with [`s3cache::signing::TrustedKeys`] restores it, and with trusted keys an older
/// tool's object at its own name is not even looked for (it can carry no signature).
#[test]
fn signed_entries_through_the_library() {
    use std::sync::Arc;

    use s3cache::engine::{RestoreOutcome, RestoreRequest, SaveOutcome, SaveRequest};
    use s3cache::signing::{SigningKey, TrustedKeys};
    let server = S3Server::start(ServerKind::S3sFs);
    let machine = s3cache_tests::Machine::new();
    let key = s3cache_tests::KeyPair::generate(&machine.scratch("keys"), "lib");
    std::fs::create_dir_all(machine.workspace().join("vendor")).unwrap();
    std::fs::write(machine.workspace().join("vendor/a.txt"), "a\n").unwrap();
    let (settings, env) = settings_for(&server, &machine);
    let mut context = s3cache::config::resolve(&settings, env).unwrap();
    context.cwd = machine.workspace();
    context.signing.key = Some(Arc::new(SigningKey::load(&key.private).unwrap()));
    assert!(matches!(context.save(&SaveRequest::new("deps-1", ["vendor"])).unwrap(), SaveOutcome::Saved { .. }));

    let mut restoring = context.clone();
    restoring.signing.key = None;
    restoring.signing.trusted = Some(Arc::new(TrustedKeys::parse(key.public_arg()).unwrap()));
    std::fs::remove_dir_all(machine.workspace().join("vendor")).unwrap();
    let RestoreOutcome::Hit(hit) = restoring.restore(&RestoreRequest::new("deps-1", ["vendor"])).unwrap() else { panic!("not restored") };
    assert_eq!((hit.matched_key.as_str(), hit.exact), ("deps-1", true));
    assert_eq!(std::fs::read_to_string(machine.workspace().join("vendor/a.txt")).unwrap(), "a\n");

    // An older tool's object at its own name: restored without trusted keys, not looked for with them.
    let out = std::process::Command::new("tar").args(["czf", "-", "vendor"]).current_dir(machine.workspace()).output().unwrap();
    server.put_object("repo", "old-1/vendor", &out.stdout);
    let request = drone_cache_vendor_request("old-1", true);
    let RestoreOutcome::Miss { reason, .. } = restoring.restore(&request).unwrap() else { panic!("an unsigned old object was restored") };
    assert_eq!(
        reason,
        "no usable cache entry for key \"old-1\" in scopes local; passed over: older tools' objects were not looked for: they are never signed (--trusted-keys)"
    );
    assert!(matches!(context.restore(&request).unwrap(), RestoreOutcome::Hit(_)), "without trusted keys it restores");
}
