//! Hostile and damaged archives (path escapes, links, modes, bombs, damaged streams, guest limits, interrupted
//! restores and integrity): each is built, planted in the strict server under a key with a valid trailer, and
//! restored by the real binary. Afterwards nothing outside the target has changed (a sentinel tree
//! next to it and a directory elsewhere are compared byte for byte), the target is untouched, the
//! outcome is a miss whose warning names the member, and no staging is left behind.

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use s3cache::archive::trailer::{self, Manifest};
use s3cache_tests::tree::noise;
use s3cache_tests::{Machine, Run, S3Server, ServerKind, Snapshot, snapshot};
use sha2::{Digest, Sha256};

struct Victim {
    server: S3Server,
    machine: Machine,
    outside: PathBuf,
    before: [Snapshot; 3],
}

fn victim() -> Victim {
    let server = S3Server::start(ServerKind::S3sFs);
    let mut machine = Machine::new();
    machine.use_server(&server, "hostile");
    let workspace = machine.workspace();
    fs::create_dir_all(workspace.join("target/keep")).unwrap();
    fs::write(workspace.join("target/keep/old"), "old build").unwrap();
    fs::create_dir_all(workspace.join("sentinel/deep")).unwrap();
    fs::write(workspace.join("sentinel/deep/file"), "sentinel").unwrap();
    fs::write(workspace.join("evil"), "pre-existing").unwrap();
    let outside = machine.scratch("outside");
    fs::write(outside.join("precious"), "outside").unwrap();
    let before = [snapshot(&workspace.join("target")), snapshot(&workspace), snapshot(&outside)];
    Victim { server, machine, outside, before }
}

impl Victim {
    /// Compresses `tar` with zstd, appends a valid trailer, and stores it under `key`.
    fn plant(&self, key: &str, tar: &[u8], os: &str) {
        let compressed = zstd::encode_all(tar, 3).unwrap();
        self.plant_compressed(key, &compressed, os);
    }

    fn plant_compressed(&self, key: &str, compressed: &[u8], os: &str) {
        self.plant_for(key, compressed, os, &["target"]);
    }

    /// Plants an entry whose version fits a restore of `paths`: for this OS, or for every OS when
    /// `os` is another one.
    fn plant_for(&self, key: &str, compressed: &[u8], os: &str, paths: &[&str]) {
        let mut object = compressed.to_vec();
        object.extend(trailer_for(compressed, os, paths, Vec::new()));
        self.plant_raw(key, &object);
    }

    /// Compresses `tar` as three zstd frames, cut at a third and two thirds of its bytes (inside
    /// members and headers, wherever they fall), with a valid trailer whose part list names the frames:
    /// the restore decodes them in parallel instances and parses their concatenation.
    fn plant_in_parts(&self, key: &str, tar: &[u8]) {
        let cuts = [0, tar.len() / 3, tar.len() * 2 / 3, tar.len()];
        let frames: Vec<Vec<u8>> = cuts.windows(2).map(|w| zstd::encode_all(&tar[w[0]..w[1]], 3).unwrap()).collect();
        let compressed = frames.concat();
        let parts = frames.iter().map(|f| f.len() as u64).collect();
        let mut object = compressed.clone();
        object.extend(trailer_for(&compressed, std::env::consts::OS, &["target"], parts));
        self.plant_raw(key, &object);
    }

    fn plant_raw(&self, key: &str, object: &[u8]) {
        let name = s3cache::archive::layout::entry_object(s3cache::engine::scope::LOCAL_SCOPE, key, s3cache::archive::layout::Format::Zstd);
        self.server.put_object("hostile", &name, object);
    }

    fn plant_case(&self, case: &str) {
        self.plant(case, &hostile_tar(&self.machine, case), std::env::consts::OS);
    }

    fn restore(&self, key: &str) -> Run {
        self.machine.run(&["restore", "--key", key, "--path", "target"])
    }

    /// A miss that names `expected`, with nothing changed anywhere.
    #[track_caller]
    fn assert_refused(&self, run: &Run, expected: &str) {
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(run.stderr.contains("warning: cache not restored"), "{}", run.stderr);
        assert!(run.stderr.contains(expected), "expected {expected:?} in: {}", run.stderr);
        self.assert_nothing_changed();
    }

    #[track_caller]
    fn assert_nothing_changed(&self) {
        let workspace = self.machine.workspace();
        assert_eq!(snapshot(&workspace.join("target")), self.before[0], "the target changed");
        assert_eq!(snapshot(&workspace), self.before[1], "the workspace changed (sentinel, staging left behind?)");
        assert_eq!(snapshot(&self.outside), self.before[2], "a directory outside changed");
    }
}

/// The tar of a case of `fixtures/hostile.py`.
fn hostile_tar(machine: &Machine, case: &str) -> Vec<u8> {
    let tar = machine.scratch("cases").join(format!("{case}.tar"));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/hostile.py");
    let status = Command::new("python3").arg(script).arg(case).arg(&tar).status().unwrap();
    assert!(status.success(), "building {case}");
    fs::read(&tar).unwrap()
}

/// Every refused case and members outside the restored path: a miss naming the rule,
/// whether the archive decodes as one stream or its parts decode in parallel.
#[test]
fn refuses_every_hostile_archive() {
    let v = victim();
    let cases = [
        ("a1-dotdot", "`..` component"),
        ("a1-nested-dotdot", "`..` component"),
        ("a2-absolute", "absolute path"),
        ("a2-slashes", "absolute path"),
        ("a2-drive", "Windows"),
        ("a2-unc", "Windows"),
        ("a3-abs-link-then-write", "symlink target is absolute"),
        ("a4-dotdot-link-then-deep-write", "below a symlink"),
        ("a5-escaping-link", "escapes its root"),
        ("a6-abs-link-then-dir", "symlink target is absolute"),
        ("a7-chain", "escapes its root"),
        ("a7-loop", "points to itself"),
        ("a7-dotdot-through-link", "after a name"),
        ("a8-hardlink-abs", "hard link target"),
        ("a8-hardlink-dotdot", "hard link target"),
        ("a8-hardlink-to-symlink", "hard link target is not a regular file"),
        ("a8-hardlink-forward", "hard link target is not a regular file"),
        ("a9-duplicate", "duplicate member"),
        ("a10-root-link", "not selected"),
        ("a10-dot", "empty path"),
        ("a11-chardev", "unsupported entry type"),
        ("a11-blockdev", "unsupported entry type"),
        ("a11-fifo", "unsupported entry type"),
        ("a11-unknown", "unsupported entry type"),
        ("a20-deep", "components deep"),
        ("a20-long-name", "over the limit of 4096"),
        ("a23-rejected-command-name", "`..` component"),
        ("outside-root", "not selected by the restored path"),
    ];
    for (case, expected) in cases {
        v.plant_case(case);
        let run = v.restore(case);
        v.assert_refused(&run, expected);
        // Nothing from an archive name can start a workflow command.
        assert!(!run.stdout.lines().chain(run.stderr.lines()).any(|l| l.starts_with("::")), "{case}: {}", run.stderr);
        let in_parts = format!("{case}-in-parts");
        v.plant_in_parts(&in_parts, &hostile_tar(&v.machine, case));
        let parallel = v.restore(&in_parts);
        v.assert_refused(&parallel, expected);
        assert_eq!(refusal(&parallel).replace(&in_parts, case), refusal(&run), "{case}: the same reason either way");
    }
}

/// The warning a refused restore printed.
fn refusal(run: &Run) -> String {
    run.stderr.lines().find(|l| l.starts_with("warning: cache not restored")).unwrap_or_default().to_owned()
}

/// Damaged and oversized streams in parallel parts: each part is checked by its decoder (zstd's own
/// checksum, the window cap, the unpacked-size cap across parts), a flipped byte in a later part is
/// named by its part, and the tar checks (truncation, data after the end) apply to the parts'
/// concatenation as to one stream.
#[test]
fn refuses_damaged_parts() {
    let mut v = victim();
    let text: Vec<u8> = b"compressible cache content ".iter().copied().cycle().take(300_000).collect();
    let tar = tar_of(&[("workspace/target/a", &text), ("workspace/target/b", &text)]);
    v.plant_in_parts("parts-ok", &tar);
    let elsewhere = v.machine.scratch("parts-ok");
    v.machine.run_in(&elsewhere, &["restore", "--key", "parts-ok", "--path", "target"]).success();
    assert_eq!(fs::read(elsewhere.join("target/b")).unwrap(), text);

    // The frames recompressed with a flipped byte in the second (the attacker reseals the trailer).
    let cuts = [0, tar.len() / 3, tar.len() * 2 / 3, tar.len()];
    let mut frames: Vec<Vec<u8>> = cuts
        .windows(2)
        .map(|w| {
            let mut encoder = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
            encoder.include_checksum(true).unwrap();
            encoder.write_all(&tar[w[0]..w[1]]).unwrap();
            encoder.finish().unwrap()
        })
        .collect();
    let middle = frames[1].len() / 2;
    frames[1][middle] ^= 0xff;
    let parts = frames.iter().map(|f| f.len() as u64).collect();
    let compressed = frames.concat();
    let mut object = compressed.clone();
    object.extend(trailer_for(&compressed, std::env::consts::OS, &["target"], parts));
    v.plant_raw("parts-corrupt", &object);
    let run = v.restore("parts-corrupt");
    v.assert_refused(&run, "corrupt archive: zstd: ");
    assert!(refusal(&run).ends_with("(in part 2 of 3)"), "{}", run.stderr);

    // Truncated (no end-of-archive blocks), and data after the end, across parts.
    v.plant_in_parts("parts-truncated", &tar[..tar.len() - 1024]);
    v.assert_refused(&v.restore("parts-truncated"), "the archive ends without its end-of-archive blocks");
    let mut garbage = tar.clone();
    garbage.extend(b"not zero padding".iter().cycle().take(3000));
    v.plant_in_parts("parts-garbage", &garbage);
    v.assert_refused(&v.restore("parts-garbage"), "data after the end of the tar archive");

    // A bomb split in parts: the unpacked-size cap holds across them.
    let bomb = tar_of(&[("workspace/target/zeros", &vec![0u8; 48 << 20])]);
    v.plant_in_parts("parts-bomb", &bomb);
    v.machine.env("S3CACHE_MAX_UNPACKED_MB", "16");
    v.assert_refused(&v.restore("parts-bomb"), "limit exceeded");
}

/// Setuid, setgid, sticky and group/other write are cleared; owners in the archive are ignored.
#[test]
fn sanitizes_modes_and_owners() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let v = victim();
    v.plant_case("a12-modes");
    v.restore("a12-modes").success();
    let target = v.machine.workspace().join("target");
    let mode = |name: &str| fs::symlink_metadata(target.join(name)).unwrap().permissions().mode() & 0o7777;
    assert_eq!((mode("setuid"), mode("setgid"), mode("sticky"), mode("world")), (0o755, 0o755, 0o755, 0o755));
    // The archive names owners 4242 and 4343; at least one is not the runner's, and as root (as the
    // tests run) the extractor could give either. Both files must belong to the runner, who made the
    // workspace.
    let owner = |path: PathBuf| fs::metadata(path).map(|m| (m.uid(), m.gid())).unwrap();
    let own = owner(v.machine.workspace());
    assert_eq!((owner(target.join("owned-4242")), owner(target.join("owned-4343"))), (own, own));
}

/// Names that are legal on Linux restore as they are (case pairs, Windows device names,
/// newlines and escapes, a trailing slash on a file), and none of them reaches the log unescaped.
#[test]
fn restores_names_linux_accepts_and_logs_them_escaped() {
    let v = victim();
    for case in ["a21-case", "a22-windows-names", "a23-commands", "a24-trailing-slash"] {
        v.plant_case(case);
        let run = v.restore(case).success();
        assert!(run.stderr.contains(&format!("restored {case}")), "{}", run.stderr);
        assert!(!run.stdout.lines().chain(run.stderr.lines()).any(|l| l.starts_with("::")), "{case}: {}", run.stderr);
    }
    let target = v.machine.workspace().join("target");
    assert!(target.join("plain").is_file());
}

/// Bounded memory and time against bombs, huge headers, truncation, garbage, corrupt zstd
/// and oversized windows.
#[test]
fn survives_damaged_and_oversized_streams() {
    let mut v = victim();
    // A pax header claiming 1 GiB, with far less behind it.
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::XHeader);
    header.set_path("PaxHeaders/x").unwrap();
    header.set_size(1 << 30);
    header.set_cksum();
    let mut huge = header.as_bytes().to_vec();
    huge.extend(vec![b'9'; 4096]);
    v.plant("a16-huge-header", &huge, std::env::consts::OS);
    v.assert_refused(&v.restore("a16-huge-header"), "corrupt archive");

    // A pax size that disagrees with the ustar size, hiding an inner entry in the data.
    let inner = tar_of(&[("workspace/target/smuggled", b"hidden".as_slice())]);
    let mut outer = pax_header(&[("size", "0")]);
    let mut carrier = tar::Header::new_ustar();
    carrier.set_path("workspace/target/carrier").unwrap();
    carrier.set_size(inner.len() as u64);
    carrier.set_mode(0o644);
    carrier.set_cksum();
    outer.extend_from_slice(carrier.as_bytes());
    outer.extend_from_slice(&inner);
    v.plant("a14-pax-size", &outer, std::env::consts::OS);
    v.assert_refused(&v.restore("a14-pax-size"), "disagrees with the header size");

    // A pax path followed by a GNU long name for the same member.
    let mut ambiguous = pax_header(&[("path", "workspace/target/from-pax")]);
    let long_name = b"workspace/target/from-gnu\0";
    let mut gnu = tar::Header::new_gnu();
    gnu.set_entry_type(tar::EntryType::GNULongName);
    gnu.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
    gnu.set_size(long_name.len() as u64);
    gnu.set_cksum();
    ambiguous.extend_from_slice(gnu.as_bytes());
    ambiguous.extend_from_slice(long_name);
    ambiguous.extend(vec![0u8; 512 - long_name.len()]);
    ambiguous.extend(tar_of(&[("workspace/target/short", b"x".as_slice())]));
    v.plant("a15-pax-then-gnu", &ambiguous, std::env::consts::OS);
    v.assert_refused(&v.restore("a15-pax-then-gnu"), "disagrees with the GNU long name");

    // A truncated tar, a bad header checksum, and garbage after the end marker.
    let good = tar_of(&[("workspace/target/f", b"data".as_slice())]);
    v.plant("a17-truncated", &good[..700], std::env::consts::OS);
    v.assert_refused(&v.restore("a17-truncated"), "corrupt archive");
    let mut bad_sum = good.clone();
    bad_sum[148] ^= 1;
    v.plant("a17-checksum", &bad_sum, std::env::consts::OS);
    v.assert_refused(&v.restore("a17-checksum"), "corrupt archive");
    let mut garbage = good.clone();
    garbage.extend(b"trailing garbage that is not zero padding".iter().cycle().take(2048));
    v.plant("a17-garbage", &garbage, std::env::consts::OS);
    v.assert_refused(&v.restore("a17-garbage"), "after the end");

    // A corrupt zstd block and a truncated frame, with the trailer digest recomputed by the
    // attacker so that only zstd's own checks stand in the way.
    let text: Vec<u8> = b"compressible cache content ".iter().copied().cycle().take(200_000).collect();
    let mut encoder = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
    encoder.include_checksum(true).unwrap();
    encoder.write_all(&tar_of(&[("workspace/target/f", &text)])).unwrap();
    let compressed = encoder.finish().unwrap();
    let mut corrupt = compressed.clone();
    let middle = corrupt.len() / 2;
    corrupt[middle] ^= 0xff;
    v.plant_compressed("a18-corrupt", &corrupt, std::env::consts::OS);
    v.assert_refused(&v.restore("a18-corrupt"), "corrupt archive");
    v.plant_compressed("a18-truncated-frame", &compressed[..compressed.len() - 10], std::env::consts::OS);
    v.assert_refused(&v.restore("a18-truncated-frame"), "corrupt archive");

    // A window beyond the 128 MiB cap, and a bomb beyond the unpacked-size cap.
    let mut encoder = zstd::stream::Encoder::new(Vec::new(), 1).unwrap();
    encoder.window_log(28).unwrap();
    encoder.long_distance_matching(true).unwrap();
    encoder.write_all(&tar_of(&[("workspace/target/f", b"small".as_slice())])).unwrap();
    v.plant_compressed("a19-window", &encoder.finish().unwrap(), std::env::consts::OS);
    v.assert_refused(&v.restore("a19-window"), "corrupt archive");
    let bomb = tar_of(&[("workspace/target/zeros", &vec![0u8; 64 << 20])]);
    v.plant("a19-bomb", &bomb, std::env::consts::OS);
    v.machine.env("S3CACHE_MAX_UNPACKED_MB", "16");
    v.assert_refused(&v.restore("a19-bomb"), "limit exceeded");

    // More members than allowed.
    v.machine.env("S3CACHE_MAX_ENTRIES", "1000");
    v.plant_case("a20-many");
    v.assert_refused(&v.restore("a20-many"), "more than 1000 members");
}

/// A pax extended header block carrying `records`, for the member that follows.
fn pax_header(records: &[(&str, &str)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (key, value) in records {
        let record_len = |digits: usize| digits + 1 + key.len() + 1 + value.len() + 1;
        let mut len = record_len(1);
        while len.to_string().len() != len - record_len(0) {
            len = record_len(len.to_string().len());
        }
        body.extend(format!("{len} {key}={value}\n").into_bytes());
    }
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::XHeader);
    header.set_path("PaxHeaders/member").unwrap();
    header.set_size(body.len() as u64);
    header.set_cksum();
    let mut bytes = header.as_bytes().to_vec();
    bytes.extend(&body);
    bytes.extend(vec![0u8; (512 - body.len() % 512) % 512]);
    bytes
}

/// A valid trailer (manifest frame) describing `compressed` (in `parts`, when not empty), for a restore
/// of `paths` on `os`.
fn trailer_for(compressed: &[u8], os: &str, paths: &[&str], parts: Vec<u64>) -> Vec<u8> {
    let paths: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
    let cross_os = os != std::env::consts::OS;
    let manifest = Manifest {
        format: s3cache::ARCHIVE_FORMAT,
        sha256: hex::encode(Sha256::digest(compressed)),
        archive_bytes: compressed.len() as u64,
        os: os.into(),
        arch: std::env::consts::ARCH.into(),
        members: 0,
        tar_bytes: 0,
        compression: "zstd".into(),
        level: 3,
        version: s3cache::engine::entry_version(&paths, s3cache::archive::layout::Format::Zstd, cross_os),
        paths,
        cross_os,
        plain_names: false,
        parts,
        ..Manifest::default()
    };
    trailer::encode(&manifest).unwrap()
}

fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut header = tar::Header::new_ustar();
        header.set_path(name).unwrap();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append(&header, *data).unwrap();
    }
    builder.into_inner().unwrap()
}

/// Integrity: a flipped byte (caught by zstd's own checksum in a zstd entry, and by the manifest's
/// SHA-256 alone in a bare tar entry), a truncated object, a missing trailer, a trailer without its
/// archive, an empty object and an HTML page are all misses, each for its own reason; nothing is
/// restored.
#[test]
fn integrity_failures_are_misses() {
    let v = victim();
    let mut machine = Machine::new();
    machine.use_server(&v.server, "hostile");
    write_target(&machine);
    machine.run(&["save", "--key", "real", "--path", "target"]).success();
    let object = v.server.data_dir().join(&v.server.bucket).join("hostile/local/real.tar.zst");
    let bytes = fs::read(&object).unwrap();

    // A byte flipped in storage inside a zstd frame: zstd's content checksum sees it first.
    let mut flipped = bytes.clone();
    flipped[bytes.len() / 3] ^= 1;
    v.plant_raw("flipped", &flipped);
    v.assert_refused(&v.restore("flipped"), "cache entry \"flipped\" was not restored: corrupt archive: zstd: ");
    // The same in a bare tar entry, which has no codec checksum: only the manifest's digest sees it.
    machine.run(&["save", "--key", "real-tar", "--format", "tar", "--path", "target"]).success();
    let tar_name =
        |key: &str| s3cache::archive::layout::entry_object(s3cache::engine::scope::LOCAL_SCOPE, key, s3cache::archive::layout::Format::Tar);
    let mut flipped_tar = fs::read(v.server.data_dir().join(&v.server.bucket).join("hostile").join(tar_name("real-tar"))).unwrap();
    flipped_tar[5000] ^= 1; // inside debug/app's content, past the headers
    v.server.put_object("hostile", &tar_name("flipped-tar"), &flipped_tar);
    v.assert_refused(
        &v.restore("flipped-tar"),
        "cache entry \"flipped-tar\" was not restored: archive transfer failed: SHA-256 mismatch: the manifest says ",
    );
    v.plant_raw("truncated", &bytes[..bytes.len() - 100]);
    v.assert_refused(
        &v.restore("truncated"),
        "local/truncated.tar.zst: the object has no s3cache trailer (not written by s3cache, truncated, or replaced)",
    );
    v.plant_raw("no-trailer", &zstd::encode_all(&tar_of(&[("workspace/target/f", b"x".as_slice())])[..], 3).unwrap());
    v.assert_refused(&v.restore("no-trailer"), "local/no-trailer.tar.zst: the object has no s3cache trailer");
    v.plant_raw("empty", b"");
    v.assert_refused(&v.restore("empty"), "local/empty.tar.zst: the object is empty");
    // A manifest whose archive is missing (the object holds the trailer alone).
    let archive = zstd::encode_all(&tar_of(&[("workspace/target/f", b"x".as_slice())])[..], 3).unwrap();
    v.plant_raw("manifest-only", &trailer_for(&archive, std::env::consts::OS, &["target"], Vec::new()));
    v.assert_refused(
        &v.restore("manifest-only"),
        &format!(
            "local/manifest-only.tar.zst: the s3cache trailer is malformed: manifest says {} archive bytes, the object holds 0",
            archive.len()
        ),
    );
    v.plant_raw("html", b"<html><body>502 Bad Gateway</body></html>");
    v.assert_refused(&v.restore("html"), "local/html.tar.zst: the object has no s3cache trailer");
}

fn write_target(machine: &Machine) {
    let target = machine.workspace().join("target");
    fs::create_dir_all(target.join("debug")).unwrap();
    fs::write(target.join("debug/app"), noise(300_000, 9)).unwrap();
}

/// An entry saved on another OS is refused unless cross-OS restore is enabled.
#[test]
fn refuses_other_operating_systems_unless_enabled() {
    let v = victim();
    let tar = tar_of(&[("workspace/target/from-windows", b"x".as_slice())]);
    v.plant("windows", &tar, "windows");
    let run = v.restore("windows").success();
    assert!(run.stderr.contains("cache miss") && run.stderr.contains("saved on windows for every OS"), "{}", run.stderr);
    v.assert_nothing_changed();
    let run = v.machine.run(&["restore", "--key", "windows", "--path", "target", "--enable-cross-os-archive"]).success();
    assert!(run.stderr.contains("restored windows"), "{}", run.stderr);
    assert!(v.machine.workspace().join("target/from-windows").exists());
}

/// A symlink already in the destination (planted by a checkout) is replaced, never followed.
#[test]
fn never_writes_through_existing_symlinks() {
    let v = victim();
    let target = v.machine.workspace().join("target");
    std::os::unix::fs::symlink(&v.outside, target.join("thatlink")).unwrap();
    let tar = tar_of(&[("workspace/target/thatlink/file", b"payload".as_slice())]);
    v.plant_for("through-link", &zstd::encode_all(&tar[..], 3).unwrap(), std::env::consts::OS, &["target/**"]);
    let run = v.machine.run(&["restore", "--key", "through-link", "--path", "target/**"]).success();
    assert!(run.stderr.contains("restored through-link"), "{}", run.stderr);
    assert_eq!(snapshot(&v.outside), v.before[2], "written through the link");
    assert_eq!(fs::read_to_string(target.join("thatlink/file")).unwrap(), "payload");
}

/// A26 and hard links: our saver keeps an absolute link that points inside the cached path (as a
/// relative link), skips one that points outside with a warning, and hard links round-trip as links.
#[test]
fn applies_the_link_policies_end_to_end() {
    use std::os::unix::fs::MetadataExt;
    let v = victim();
    let venv = v.machine.workspace().join("venv");
    fs::create_dir_all(venv.join("bin")).unwrap();
    fs::create_dir_all(venv.join("lib")).unwrap();
    fs::write(venv.join("bin/python3.11"), "interpreter").unwrap();
    std::os::unix::fs::symlink(venv.join("bin/python3.11"), venv.join("bin/python3")).unwrap();
    std::os::unix::fs::symlink("/usr/bin/python3", venv.join("bin/python")).unwrap();
    std::os::unix::fs::symlink(venv.join("lib"), venv.join("lib64")).unwrap();
    fs::hard_link(venv.join("bin/python3.11"), venv.join("bin/python-hardlink")).unwrap();
    let run = v.machine.run(&["save", "--key", "venv", "--path", "venv"]).success();
    assert!(run.stderr.contains("skipping symlink") && run.stderr.contains("/usr/bin/python3"), "{}", run.stderr);
    fs::remove_dir_all(&venv).unwrap();
    v.machine.run(&["restore", "--key", "venv", "--path", "venv"]).success();
    assert_eq!(fs::read_link(venv.join("bin/python3")).unwrap().to_str().unwrap(), "../../venv/bin/python3.11");
    assert_eq!(fs::read_to_string(venv.join("bin/python3")).unwrap(), "interpreter");
    assert_eq!(fs::read_link(venv.join("lib64")).unwrap().to_str().unwrap(), "../venv/lib");
    assert!(!venv.join("bin/python").exists() && fs::symlink_metadata(venv.join("bin/python")).is_err());
    let (a, b) = (fs::metadata(venv.join("bin/python3.11")).unwrap(), fs::metadata(venv.join("bin/python-hardlink")).unwrap());
    assert_eq!(a.ino(), b.ino(), "hard link restored as a link");
}

/// A restore killed mid-extraction leaves the target untouched; the next run cleans the stale
/// staging directory and restores the saved tree exactly. The kill lands mid-extraction for certain:
/// the download comes through the fault proxy at 512 KiB/s (about 24 s for the whole entry), and the
/// restore is killed, still running, once its staging directory holds an extracted file.
#[test]
fn killed_restores_leave_the_target_untouched() {
    use s3cache_tests::proxy::{Fault, FaultProxy, Rule};
    let v = victim();
    let mut saver = Machine::new();
    saver.use_server(&v.server, "hostile");
    let target = saver.workspace().join("target");
    for i in 0..3000 {
        let dir = target.join(format!("d{}", i / 100));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(format!("f{i}")), noise(4000, i)).unwrap();
    }
    saver.run(&["save", "--key", "big", "--path", "target"]).success();
    let saved = snapshot(&target);

    let proxy = FaultProxy::start(v.server.port);
    proxy.add(Rule::always(Fault::Throttle { bytes_per_sec: 512 << 10 }));
    let mut env = v.machine.machine_env();
    env.retain(|(name, _)| name != "AWS_ENDPOINT_URL");
    env.push(("AWS_ENDPOINT_URL".into(), proxy.endpoint()));
    let mut child = Command::new(s3cache_tests::binary())
        .args(["restore", "--key", "big", "--path", "target"])
        .current_dir(v.machine.workspace())
        .env_clear()
        .envs(env)
        .spawn()
        .unwrap();
    let extracted_file = |workspace: &std::path::Path| {
        fs::read_dir(workspace)
            .unwrap()
            .map(|e| e.unwrap().path())
            // Directories only: the lock file beside a staging directory exists before it does.
            .filter(|p| p.is_dir() && p.file_name().unwrap().to_string_lossy().starts_with(".s3cache-staging"))
            .any(|staging| walkdir::WalkDir::new(staging).into_iter().filter_map(Result::ok).any(|e| e.file_type().is_file()))
    };
    let waited = std::time::Instant::now();
    while !extracted_file(&v.machine.workspace()) {
        assert!(child.try_wait().unwrap().is_none(), "the restore ended before it extracted anything");
        assert!(waited.elapsed() < std::time::Duration::from_secs(120), "no extracted file in staging after 2 minutes");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(child.try_wait().unwrap().is_none(), "the restore finished before the kill");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(snapshot(&v.machine.workspace().join("target")), v.before[0], "the killed restore changed the target");

    v.machine.run(&["restore", "--key", "big", "--path", "target"]).success();
    let leftovers: Vec<_> = fs::read_dir(v.machine.workspace())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with(".s3cache"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(snapshot(&v.machine.workspace().join("target")), saved, "the next restore is the saved tree, contents, modes and times");
}

/// A guest over its memory cap or its deadline stops; the host reports a miss that names
/// which cap it was, and removes staging.
#[test]
fn guest_limits_turn_into_misses() {
    let mut v = victim();
    let mut encoder = zstd::stream::Encoder::new(Vec::new(), 1).unwrap();
    encoder.window_log(27).unwrap();
    encoder.write_all(&tar_of(&[("workspace/target/f", &noise(200_000, 1))])).unwrap();
    v.plant_compressed("wide-window", &encoder.finish().unwrap(), std::env::consts::OS);
    v.machine.env("S3CACHE_GUEST_MEMORY_MB", "64");
    // The 128 MiB window cannot be allocated under a 64 MiB cap: the reason is the cap, not corruption.
    let run = v.restore("wide-window");
    v.assert_refused(&run, "cache entry \"wide-window\" was not restored: the sandboxed guest reached its memory cap of 64 MiB (raise --guest-memory-mb or S3CACHE_GUEST_MEMORY_MB): corrupt archive: zstd: Allocation error : not enough memory");
    // 2 GiB of zeros take seconds to extract; the deadline stops the guest long before.
    let mut encoder = zstd::stream::Encoder::new(Vec::new(), 1).unwrap();
    let mut header = tar::Header::new_ustar();
    header.set_path("workspace/target/zeros").unwrap();
    header.set_size(2 << 30);
    header.set_mode(0o644);
    header.set_cksum();
    encoder.write_all(header.as_bytes()).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..2048 {
        encoder.write_all(&zeros).unwrap();
    }
    encoder.write_all(&[0u8; 1024]).unwrap();
    v.plant_compressed("slow", &encoder.finish().unwrap(), std::env::consts::OS);
    v.machine.unset("S3CACHE_GUEST_MEMORY_MB").env("S3CACHE_GUEST_TIMEOUT_MS", "300");
    v.assert_refused(&v.restore("slow"), "cache entry \"slow\" was not restored: the sandboxed guest stopped at its deadline of 300 ms for one call (raise --guest-timeout-ms or S3CACHE_GUEST_TIMEOUT_MS)");
}

/// A small tmpfs mounted for one test (the machines this project runs on are root); unmounted on drop.
struct TinyFs(PathBuf);

impl TinyFs {
    fn mount(at: PathBuf, size: &str) -> Self {
        fs::create_dir_all(&at).unwrap();
        let status = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(&at).status().unwrap();
        assert!(status.success(), "mounting a tmpfs needs root");
        Self(at)
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// The disk fills up during extraction: a miss with a clear error, staging removed, the target as
/// it was.
#[test]
fn a_full_disk_is_a_clean_miss() {
    let v = victim();
    let mut saver = Machine::new();
    saver.use_server(&v.server, "hostile");
    fs::create_dir_all(saver.workspace().join("target")).unwrap();
    fs::write(saver.workspace().join("target/big"), noise(8 << 20, 4)).unwrap();
    saver.run(&["save", "--key", "too-big", "--path", "target"]).success();

    let tiny = TinyFs::mount(v.machine.scratch("tiny"), "4m");
    fs::create_dir_all(tiny.0.join("target")).unwrap();
    fs::write(tiny.0.join("target/old"), "old").unwrap();
    let run = v.machine.run_in(&tiny.0, &["restore", "--key", "too-big", "--path", "target"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("warning: cache not restored") && run.stderr.contains("No space left"), "{}", run.stderr);
    let names: Vec<_> = fs::read_dir(&tiny.0).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names, vec!["target"], "staging left behind");
    assert_eq!(fs::read_to_string(tiny.0.join("target/old")).unwrap(), "old");
}
