//! The guest in hosts we did not write: the Python host (wasmtime-py, `examples/python-host`) and the
//! Node host (jco, `examples/node-host`) run as programs in the same workspaces and against the same
//! file store as the `s3cache` binary. For each: the keys it computes are the binary's, an entry it
//! saves is restored exactly by the binary and the reverse, and a hostile or forged entry is refused
//! with the same error variant, member and reason by every host, leaving nothing behind.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use s3cache::archive::layout::Format;
use s3cache::archive::trailer::{self, Manifest};
use s3cache_tests::tree::{Entry, write_sample_tree};
use s3cache_tests::{Machine, Run, Snapshot, snapshot};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Host {
    Python,
    Node,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the tests crate is in the repository").to_owned()
}

/// Where the Python host keeps its compiled guest, shared by the tests of one run (compiling takes
/// seconds; the host writes the file atomically).
fn compiled_guest_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temp dir")).path()
}

impl Host {
    /// Runs the host with `args` in `dir`, with the machine's environment only, against the file store
    /// the binary uses by default there.
    fn run_in(self, machine: &Machine, dir: &Path, args: &[&str]) -> Run {
        let store = machine.cache_dir().join("store");
        let mut command = match self {
            Host::Python => {
                let mut command = Command::new("python3");
                command.arg(repo().join("examples/python-host/s3cache_host.py")).arg("--cache-dir").arg(compiled_guest_dir());
                command
            }
            Host::Node => {
                let script = repo().join("examples/node-host/s3cache-host.mjs");
                assert!(
                    repo().join("examples/node-host/node_modules").is_dir(),
                    "examples/node-host/node_modules is missing: run `npm ci` there (scripts/test does)"
                );
                let mut command = Command::new("node");
                command.arg(script);
                command
            }
        };
        command.arg("--store").arg(&store).args(args).current_dir(dir).env_clear();
        for (name, value) in machine.machine_env() {
            command.env(name, value);
        }
        let output = command.output().unwrap_or_else(|e| panic!("run the {self:?} host: {e}"));
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn run(self, machine: &Machine, args: &[&str]) -> Run {
        self.run_in(machine, &machine.workspace(), args)
    }

    /// The one JSON line a save or restore prints, without its timing.
    #[track_caller]
    fn result(self, run: &Run) -> serde_json::Value {
        let mut value: serde_json::Value = serde_json::from_str(run.stdout.trim())
            .unwrap_or_else(|e| panic!("{self:?} host output {:?}: {e}\n{}", run.stdout, run.stderr));
        value.as_object_mut().expect("an object").remove("seconds");
        value
    }

    /// A snapshot as this host restores it: Node's `fs` sets times as floating-point seconds, which
    /// libuv takes to the microsecond, so its mtimes are rounded to the nearest microsecond.
    fn as_restored(self, snapshot: &Snapshot) -> Snapshot {
        let micros = |(s, ns): (i64, i64)| {
            let rounded = (ns + 500) / 1000 * 1000;
            if rounded == 1_000_000_000 { (s + 1, 0) } else { (s, rounded) }
        };
        match self {
            Host::Python => snapshot.clone(),
            Host::Node => snapshot
                .iter()
                .map(|(path, entry)| {
                    let entry = match entry.clone() {
                        Entry::File { content_hash, len, mode, mtime } => Entry::File { content_hash, len, mode, mtime: micros(mtime) },
                        Entry::Dir { mode, mtime } => Entry::Dir { mode, mtime: micros(mtime) },
                        Entry::Symlink { target, mtime } => Entry::Symlink { target, mtime: micros(mtime) },
                    };
                    (path.clone(), entry)
                })
                .collect(),
        }
    }
}

/// A workspace with lock files for key templates, and `CACHE_EPOCH` and a secret in the environment.
fn key_workspace() -> Machine {
    let mut machine = Machine::new();
    machine.env("CACHE_EPOCH", "7").env("MY_API_KEY", "do-not-render");
    let ws = machine.workspace();
    for (file, text) in
        [("Cargo.lock", "lock v1\n"), ("sub/a.lock", "a"), ("sub/deeper/b.lock", "b"), ("ignored/c.lock", "c"), ("notes.txt", "n")]
    {
        fs::create_dir_all(ws.join(file).parent().unwrap()).unwrap();
        fs::write(ws.join(file), text).unwrap();
    }
    machine
}

fn keys_match(host: Host) {
    let machine = key_workspace();
    let templates = [
        "plain-key",
        r#"deps-{{ os }}-{{ arch }}-{{ hashFiles "**/*.lock" "!ignored/**" }}"#,
        r#"{{ checksum "Cargo.lock" }}-{{ env "CACHE_EPOCH" }}-{{ env "MY_API_KEY" }}-{{ hashFiles "nothing/**" }}"#,
        r#"md5-{{ md5sum "sub/a.lock" }}"#,
    ];
    for template in templates {
        let ours = machine.run(&["key", "--template", template]).success().stdout;
        let theirs = host.run(&machine, &["key", "--template", template]);
        assert_eq!((theirs.code, theirs.stdout.as_str()), (0, ours.as_str()), "{host:?} {template}: {}", theirs.stderr);
    }
    // The keys are real ones: the platform, a 64-digit digest, the variable, and the secret withheld.
    let key = machine.run(&["key", "--template", templates[1]]).success().stdout;
    let digest = key.trim().strip_prefix(&format!("deps-{}-{}-", std::env::consts::OS, std::env::consts::ARCH)).unwrap();
    assert!(digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()), "{key}");
    let key = host.run(&machine, &["key", "--template", templates[2]]).stdout;
    assert_eq!(key.trim(), format!("{}-7--", hex::encode(Sha256::digest(b"lock v1\n"))));
    // A template neither host can parse is the same error variant in both.
    let theirs = host.run(&machine, &["save", "--key", "{{ broken", "--path", "sub"]);
    assert_eq!((theirs.code, &host.result(&theirs)["error"]), (1, &serde_json::json!("invalid-template")), "{}", theirs.stdout);
    let ours = machine.run(&["save", "--key", "{{ broken", "--path", "sub"]);
    assert!(ours.code != 0 && ours.stderr.contains("invalid key template: "), "{}", ours.stderr);
}

/// An entry the foreign host saves (in `format`) restores exactly with the binary, and the binary's
/// restores exactly with the foreign host.
fn archives_round_trip(host: Host, format: Format) {
    let machine = Machine::new();
    write_sample_tree(&machine.workspace(), "project", 1 << 20);
    let saved = snapshot(&machine.workspace().join("project"));

    // Foreign host saves, s3cache restores.
    let key = format!("by-{host:?}-{format}");
    let run = host.run(&machine, &["save", "--key", &key, "--path", "project", "--format", format.name()]);
    let object = format!("local/{key}{}", format.suffix());
    assert_eq!(host.result(&run)["object"], serde_json::json!(object), "{}", run.stderr);
    let stored = fs::read(machine.cache_dir().join("store").join(object.replace('/', "%2F"))).unwrap();
    let manifest = trailer::decode(&stored, stored.len() as u64).unwrap();
    assert_eq!((manifest.compression.as_str(), manifest.paths.clone()), (format.name(), vec!["project".to_string()]));
    assert_eq!(manifest.sha256, hex::encode(Sha256::digest(&stored[..manifest.archive_bytes as usize])));
    let elsewhere = machine.scratch(&format!("restore-{key}"));
    let run = machine.run_in(&elsewhere, &["restore", "--key", &key, "--path", "project"]).success();
    assert!(run.stderr.contains(&format!("restored {key} (exact match)")), "{}", run.stderr);
    assert_eq!(snapshot(&elsewhere.join("project")), saved);
    assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 1, "nothing but the restored path");

    // s3cache saves, the foreign host restores.
    let key = format!("for-{host:?}-{format}");
    machine.run(&["save", "--key", &key, "--path", "project", "--format", format.name()]).success();
    let elsewhere = machine.scratch(&format!("restore-{key}"));
    let run = host.run_in(&machine, &elsewhere, &["restore", "--key", &key, "--path", "project"]);
    assert_eq!(host.result(&run), serde_json::json!({ "restored": key, "members": saved.len() + 1 }), "{}", run.stderr);
    assert_eq!(snapshot(&elsewhere.join("project")), host.as_restored(&saved));
    assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 1, "nothing but the restored path");
}

/// Plants `tar`, compressed with zstd, in the default file store under `key` for `--path target`,
/// with a trailer whose digest is `sha256` (the real one when `None`).
fn plant(machine: &Machine, key: &str, tar: &[u8], sha256: Option<String>) {
    let compressed = zstd::encode_all(tar, 3).unwrap();
    let paths = vec!["target".to_string()];
    let manifest = Manifest {
        format: s3cache::ARCHIVE_FORMAT,
        sha256: sha256.unwrap_or_else(|| hex::encode(Sha256::digest(&compressed))),
        archive_bytes: compressed.len() as u64,
        os: std::env::consts::OS.into(),
        arch: std::env::consts::ARCH.into(),
        members: 0,
        tar_bytes: tar.len() as u64,
        compression: "zstd".into(),
        level: 3,
        version: s3cache::engine::entry_version(&paths, Format::Zstd, false),
        paths,
        cross_os: false,
        plain_names: false,
        parts: Vec::new(),
        ..Manifest::default()
    };
    let mut object = compressed;
    object.extend(trailer::encode(&manifest).unwrap());
    let store = machine.cache_dir().join("store");
    fs::create_dir_all(&store).unwrap();
    fs::write(store.join(format!("local%2F{key}.tar.zst")), object).unwrap();
}

fn hostile_tar(machine: &Machine, case: &str) -> Vec<u8> {
    let tar = machine.scratch("cases").join(format!("{case}.tar"));
    let status = Command::new("python3").arg(repo().join("tests/fixtures/hostile.py")).arg(case).arg(&tar).status().unwrap();
    assert!(status.success(), "building {case}");
    fs::read(tar).unwrap()
}

/// Hostile members and a forged digest: every host refuses with the same error variant and text, and
/// the workspace is left as it was.
fn refusals_match(host: Host) {
    let machine = Machine::new();
    let escape = hostile_tar(&machine, "a1-dotdot");
    plant(&machine, "dotdot", &escape, None);
    plant(&machine, "escaping-link", &hostile_tar(&machine, "a5-escaping-link"), None);
    let benign = hostile_tar(&machine, "a12-modes");
    plant(&machine, "forged", &benign, Some("ab".repeat(32)));
    let before = snapshot(&machine.workspace());
    let compressed_len = zstd::encode_all(&benign[..], 3).unwrap().len();
    let actual = hex::encode(Sha256::digest(zstd::encode_all(&benign[..], 3).unwrap()));
    let mismatch = format!(
        "SHA-256 mismatch: the manifest says {} ({compressed_len} bytes), the archive is {actual} ({compressed_len} bytes)",
        "ab".repeat(32)
    );
    let cases = [
        ("dotdot", serde_json::json!({ "error": "rejected-member", "member": "workspace/target/../../evil", "reason": "`..` component" })),
        (
            "escaping-link",
            serde_json::json!({ "error": "rejected-member", "member": "workspace/target/l", "reason": "symlink target escapes its root" }),
        ),
        ("forged", serde_json::json!({ "error": "stream-failed", "message": mismatch })),
    ];
    for (key, mut expected) in cases {
        let theirs = host.run(&machine, &["restore", "--key", key, "--path", "target"]);
        expected["miss"] = serde_json::json!(key);
        assert_eq!((theirs.code, host.result(&theirs)), (1, expected.clone()), "{host:?} {key}: {}", theirs.stderr);
        let ours = machine.run(&["restore", "--key", key, "--path", "target"]).success();
        let why = match expected["error"].as_str().unwrap() {
            "rejected-member" => {
                format!("archive member {} rejected: {}", expected["member"].as_str().unwrap(), expected["reason"].as_str().unwrap())
            }
            _ => format!("archive transfer failed: {}", expected["message"].as_str().unwrap()),
        };
        let warning = ours.stderr.lines().find(|l| l.starts_with("warning: ")).unwrap_or_default();
        assert_eq!(warning, format!("warning: cache not restored: cache entry {key:?} was not restored: {why}"), "{key}");
        assert_eq!(snapshot(&machine.workspace()), before, "{host:?} {key}: the workspace changed (staging left behind?)");
    }
}

#[test]
fn python_host_computes_the_rust_hosts_keys() {
    keys_match(Host::Python);
}

#[test]
fn node_host_computes_the_rust_hosts_keys() {
    keys_match(Host::Node);
}

#[test]
fn python_host_archives_round_trip_with_s3cache() {
    archives_round_trip(Host::Python, Format::Zstd);
    archives_round_trip(Host::Python, Format::Gzip);
}

#[test]
fn node_host_archives_round_trip_with_s3cache() {
    archives_round_trip(Host::Node, Format::Zstd);
    archives_round_trip(Host::Node, Format::Tar);
}

#[test]
fn python_host_refuses_what_s3cache_refuses() {
    refusals_match(Host::Python);
}

#[test]
fn node_host_refuses_what_s3cache_refuses() {
    refusals_match(Host::Node);
}

/// Each host's own re-check (its `policy` module) gives the Rust policy crate's verdict on every case
/// of tests/fixtures/policy-cases.json, which the crate's unit tests check against the crate itself.
#[test]
fn foreign_policies_agree_with_the_rust_crate() {
    let python =
        Command::new("python3").args(["-m", "unittest", "test_policy"]).current_dir(repo().join("examples/python-host")).output().unwrap();
    let stderr = String::from_utf8_lossy(&python.stderr);
    assert!(python.status.success() && stderr.contains("Ran 3 tests") && stderr.trim_end().ends_with("OK"), "{stderr}");
    let node = Command::new("node").args(["--test", "policy.test.mjs"]).current_dir(repo().join("examples/node-host")).output().unwrap();
    let stdout = String::from_utf8_lossy(&node.stdout);
    assert!(node.status.success() && stdout.contains("# pass 3") && stdout.contains("# fail 0"), "{stdout}");
}
