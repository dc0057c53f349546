//! Saving and restoring trees end to end, checked field by field and cross-checked with tools that
//! are not ours: boto3 for the object, GNU tar and zstd for the archive.

use std::fs;
use std::process::Command;

use s3cache_tests::tree::{noise, write_sample_tree};
use s3cache_tests::{Machine, S3Server, ServerKind, boto3, snapshot};

/// Larger than two 8 MiB parts once compressed (random bytes do not compress), so saves go multipart.
const LARGE: usize = 20 << 20;

fn round_trip(kind: ServerKind) {
    let server = S3Server::start(kind);
    let mut machine = Machine::new();
    machine.use_server(&server, "ci/cache");
    write_sample_tree(&machine.workspace(), "project", LARGE);
    let saved = snapshot(&machine.workspace().join("project"));

    let run = machine.run(&["save", "--key", "tree-v1", "--path", "project"]).success();
    assert!(run.stderr.contains("saved tree-v1"), "{}", run.stderr);

    // An independent client sees the object under the documented layout: <prefix>/<scope>/<key>.tar.zst.
    let listing = boto3(&server, "print(json.dumps([[o['Key'], o['Size']] for o in s3.list_objects_v2(Bucket=bucket)['Contents']]))");
    let objects: Vec<(String, u64)> = serde_json::from_str(&listing).unwrap();
    assert_eq!(objects.len(), 1, "{objects:?}");
    assert_eq!(objects[0].0, "ci/cache/local/tree-v1.tar.zst");
    assert!(objects[0].1 > 16 << 20, "a multipart-sized archive expected, got {}", objects[0].1);

    // GNU tar and zstd read the archive and extract the same bytes.
    let archive = machine.scratch("download").join("cache.tar.zst");
    boto3(&server, &format!("s3.download_file(bucket, 'ci/cache/local/tree-v1.tar.zst', '{}')", archive.display()));
    let extracted = machine.scratch("gnu-tar");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("zstd -dc '{}' | tar -xf - -C '{}'", archive.display(), extracted.display()))
        .status()
        .unwrap();
    assert!(status.success(), "zstd | tar failed");
    let by_gnu_tar = snapshot(&extracted.join("workspace/project"));
    assert_eq!(by_gnu_tar.keys().collect::<Vec<_>>(), saved.keys().collect::<Vec<_>>());
    for (path, entry) in &saved {
        if let s3cache_tests::tree::Entry::File { content_hash, .. } = entry {
            let s3cache_tests::tree::Entry::File { content_hash: theirs, .. } = &by_gnu_tar[path] else {
                panic!("{path} is not a file for GNU tar")
            };
            assert_eq!(content_hash, theirs, "{path}");
        }
    }

    // Restoring into a fresh workspace elsewhere reproduces the tree exactly.
    let elsewhere = machine.scratch("other-runner/workspace");
    let run = machine.run_in(&elsewhere, &["restore", "--key", "tree-v1", "--path", "project"]).success();
    assert!(run.stderr.contains("restored tree-v1 (exact match)"), "{}", run.stderr);
    assert_eq!(snapshot(&elsewhere.join("project")), saved);
    let leftovers: Vec<_> =
        fs::read_dir(&elsewhere).unwrap().map(|e| e.unwrap().file_name()).filter(|n| n.to_string_lossy().starts_with(".s3cache")).collect();
    assert!(leftovers.is_empty(), "staging left behind: {leftovers:?}");
}

/// A tree with every supported kind of object round-trips exactly through s3s-fs (strict SigV4).
#[test]
fn round_trips_a_tree_through_s3s_fs() {
    round_trip(ServerKind::S3sFs);
}

/// The same round trip through moto's server mode.
#[test]
fn round_trips_a_tree_through_moto() {
    round_trip(ServerKind::Moto);
}

/// With no store configured, the local file:// default works with no server at all.
#[test]
fn round_trips_through_the_default_local_store() {
    let machine = Machine::new();
    write_sample_tree(&machine.workspace(), "deps", 1 << 20);
    let saved = snapshot(&machine.workspace().join("deps"));
    let run = machine.run(&["save", "--key", "local", "--path", "deps"]).success();
    assert!(run.stderr.contains("store: file://"), "{}", run.stderr);
    assert!(machine.cache_dir().join("store/local%2Flocal.tar.zst").exists());
    fs::remove_dir_all(machine.workspace().join("deps")).unwrap();
    machine.run(&["restore", "--key", "local", "--path", "deps"]).success();
    assert_eq!(snapshot(&machine.workspace().join("deps")), saved);
}

/// Paths outside the workspace (`~/...`) and globs restore to the same places on another machine.
#[test]
fn restores_home_paths_and_globs() {
    let server = S3Server::start(ServerKind::S3sFs);
    let mut machine = Machine::new();
    machine.use_server(&server, "");
    write_sample_tree(&machine.home(), ".cargo/registry", 1024);
    fs::create_dir_all(machine.workspace().join("src/sub")).unwrap();
    fs::write(machine.workspace().join("src/a.rs"), "fn a() {}").unwrap();
    fs::write(machine.workspace().join("src/sub/b.rs"), "fn b() {}").unwrap();
    fs::write(machine.workspace().join("src/notes.txt"), "not cached").unwrap();
    let home_saved = snapshot(&machine.home().join(".cargo/registry"));
    machine.run(&["save", "--key", "mixed", "--path", "~/.cargo/registry", "--path", "src/**/*.rs"]).success();

    let mut other = Machine::new();
    other.use_server(&server, "");
    fs::create_dir_all(other.workspace().join("src")).unwrap();
    fs::write(other.workspace().join("src/keep.txt"), "mine").unwrap();
    other.run(&["restore", "--key", "mixed", "--path", "~/.cargo/registry", "--path", "src/**/*.rs"]).success();
    assert_eq!(snapshot(&other.home().join(".cargo/registry")), home_saved);
    assert_eq!(fs::read_to_string(other.workspace().join("src/sub/b.rs")).unwrap(), "fn b() {}");
    assert_eq!(fs::read_to_string(other.workspace().join("src/keep.txt")).unwrap(), "mine", "glob restores merge");
    assert!(!other.workspace().join("src/notes.txt").exists());
}

/// Real-world shapes round-trip exactly: a node_modules tree with `.bin` links and nested packages,
/// and a cargo `target/` with executables, fingerprints, dep-info and nanosecond mtimes.
#[test]
fn round_trips_node_modules_and_cargo_target_fixtures() {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let server = S3Server::start(ServerKind::S3sFs);
    let mut machine = Machine::new();
    machine.use_server(&server, "fixtures");
    let ws = machine.workspace();
    for (package, bin) in [("typescript", "tsc"), ("eslint", "eslint"), ("@scope/tool", "tool")] {
        let dir = ws.join("node_modules").join(package);
        fs::create_dir_all(dir.join("bin")).unwrap();
        fs::create_dir_all(dir.join("lib/nested/node_modules/dep")).unwrap();
        fs::write(dir.join("package.json"), format!("{{\"name\":\"{package}\",\"bin\":\"bin/{bin}.js\"}}")).unwrap();
        fs::write(dir.join(format!("bin/{bin}.js")), "#!/usr/bin/env node\nrequire('../lib')\n").unwrap();
        fs::set_permissions(dir.join(format!("bin/{bin}.js")), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(dir.join("lib/index.js"), "module.exports = 1;\n".repeat(50)).unwrap();
        fs::write(dir.join("lib/nested/node_modules/dep/index.js"), "exports.x = 2;\n").unwrap();
        fs::create_dir_all(ws.join("node_modules/.bin")).unwrap();
        symlink(format!("../{package}/bin/{bin}.js"), ws.join("node_modules/.bin").join(bin)).unwrap();
    }
    let debug = ws.join("target/debug");
    for dir in [".fingerprint/app-1a2b3c", "deps", "build/app-4d5e/out", "incremental/app-x/s-abc"] {
        fs::create_dir_all(debug.join(dir)).unwrap();
    }
    fs::write(debug.join("app"), noise(2 << 20, 11)).unwrap();
    fs::set_permissions(debug.join("app"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::hard_link(debug.join("app"), debug.join("deps/app-1a2b3c")).unwrap();
    fs::write(debug.join(".fingerprint/app-1a2b3c/bin-app"), "9f8e7d6c5b4a3210").unwrap();
    fs::write(debug.join(".fingerprint/app-1a2b3c/bin-app.json"), "{\"rustc\":1,\"features\":\"[]\"}").unwrap();
    fs::write(debug.join("deps/app-1a2b3c.d"), "/src/main.rs:\n").unwrap();
    fs::write(debug.join("incremental/app-x/s-abc/query-cache.bin"), noise(10_000, 5)).unwrap();
    fs::write(debug.join(".cargo-lock"), "").unwrap();
    let mut stamp = 1_700_000_000i64;
    for entry in walkdir::WalkDir::new(&ws).contents_first(true).min_depth(1) {
        let entry = entry.unwrap();
        stamp += 3;
        let time = filetime::FileTime::from_unix_time(stamp, (stamp as u32 * 7919) % 1_000_000_000);
        filetime::set_symlink_file_times(entry.path(), time, time).unwrap();
    }
    let saved = (snapshot(&ws.join("node_modules")), snapshot(&ws.join("target")));
    machine.run(&["save", "--key", "fixtures", "--path", "node_modules", "--path", "target"]).success();

    let elsewhere = machine.scratch("fresh-runner");
    machine.run_in(&elsewhere, &["restore", "--key", "fixtures", "--path", "node_modules", "--path", "target"]).success();
    assert_eq!(snapshot(&elsewhere.join("node_modules")), saved.0);
    assert_eq!(snapshot(&elsewhere.join("target")), saved.1);
    assert_eq!(fs::read_to_string(elsewhere.join("node_modules/.bin/tsc")).unwrap(), "#!/usr/bin/env node\nrequire('../lib')\n");
}
