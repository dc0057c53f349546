//! The archive formats end to end (`save --format zstd|gzip|tar`): each is saved by the real binary
//! under a name that says its format, read as a plain archive by zstd, gzip and GNU tar with no
//! diagnostics, restored exactly, and refused cleanly — nothing restored, nothing staged left — when
//! its bytes are damaged or cut short.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use s3cache::archive::layout::Format;
use s3cache::archive::trailer::{self, Manifest};
use s3cache_tests::tree::write_sample_tree;
use s3cache_tests::{Machine, S3Server, ServerKind, Snapshot, boto3, snapshot};
use sha2::{Digest, Sha256};

/// Larger than two packing parts (8 MiB each), so the archive is several zstd frames or gzip members.
const LARGE: usize = 20 << 20;
const PREFIX: &str = "formats";

/// A tree saved in one format, and the object it made.
struct Saved {
    server: S3Server,
    machine: Machine,
    tree: Snapshot,
    object: Vec<u8>,
    manifest: Manifest,
}

fn save(format: Format, level: &str) -> Saved {
    let server = S3Server::start(ServerKind::S3sFs);
    let mut machine = Machine::new();
    machine.use_server(&server, PREFIX);
    write_sample_tree(&machine.workspace(), "project", LARGE);
    let tree = snapshot(&machine.workspace().join("project"));
    let key = format!("tree-{format}");
    let run = machine.run(&["save", "--key", &key, "--format", format.name(), "--compression-level", level, "--path", "project"]).success();
    assert!(run.stderr.contains(&format!("saved {key}: ")), "{}", run.stderr);

    // The object's name says its format; an independent client lists exactly that.
    let name = format!("{PREFIX}/local/{key}{}", format.suffix());
    let listing = boto3(&server, "print(json.dumps([o['Key'] for o in s3.list_objects_v2(Bucket=bucket)['Contents']]))");
    assert_eq!(serde_json::from_str::<Vec<String>>(&listing).unwrap(), vec![name.clone()]);
    let object = fs::read(server.data_dir().join(&server.bucket).join(&name)).unwrap();
    let manifest = trailer::decode(&object, object.len() as u64).unwrap();
    assert_eq!(manifest.compression, format.name());
    assert_eq!(manifest.sha256, hex::encode(Sha256::digest(&object[..manifest.archive_bytes as usize])));
    Saved { server, machine, tree, object, manifest }
}

/// What a standard tool did.
struct Tool {
    stdout: Vec<u8>,
}

/// Runs `program args` with `stdin`; it must exit 0 and write nothing to stderr.
#[track_caller]
fn run_tool(program: &str, args: &[&str], stdin: &[u8]) -> Tool {
    let mut child = Command::new(program).args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        // A reader may stop early (tar at its end-of-archive blocks): a broken pipe is its right.
        let _ = input.write_all(&stdin);
    });
    let output = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert_eq!(
        (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned()),
        (Some(0), String::new()),
        "{program} {args:?}: exit code and stderr"
    );
    Tool { stdout: output.stdout }
}

/// GNU tar extracts `archive` (read with `tar_args`, e.g. `-xf -` or `-xzf -`) into a fresh directory
/// with no diagnostics and gets exactly the saved tree: contents, modes, symlinks, mtimes.
#[track_caller]
fn assert_gnu_tar_extracts(saved: &Saved, tar_args: &[&str], archive: &[u8], into: &Path) {
    let mut args = tar_args.to_vec();
    let into = into.display().to_string();
    args.extend(["-C", &into]);
    run_tool("tar", &args, archive);
    assert_eq!(snapshot(&Path::new(&into).join("workspace/project")), saved.tree, "tar {tar_args:?}");
}

/// The archive part of a bare tar object (which no tool needs to strip: GNU tar stops before the trailer).
fn tar_stream(saved: &Saved) -> &[u8] {
    &saved.object[..saved.manifest.archive_bytes as usize]
}

/// Restores the key into a fresh workspace; returns it and the run.
fn restore_elsewhere(saved: &Saved, key: &str, name: &str) -> (std::path::PathBuf, s3cache_tests::Run) {
    let elsewhere = saved.machine.scratch(name).join("workspace");
    fs::create_dir_all(&elsewhere).unwrap();
    let run = saved.machine.run_in(&elsewhere, &["restore", "--key", key, "--path", "project"]);
    (elsewhere, run)
}

/// Restores the saved entry with the binary into an empty workspace: the same tree, exactly.
#[track_caller]
fn assert_restores_exactly(saved: &Saved, format: Format) {
    let key = format!("tree-{format}");
    let (elsewhere, run) = restore_elsewhere(saved, &key, "restore-exact");
    let run = run.success();
    assert!(run.stderr.contains(&format!("restored {key} (exact match)")), "{}", run.stderr);
    assert_eq!(snapshot(&elsewhere.join("project")), saved.tree);
    assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 1, "only the restored path, no staging left");
}

/// Plants `object` under `key` in `format` and restores it: the restore is refused with the warning
/// `cache not restored: <reason>`, and nothing is left in the target.
#[track_caller]
fn assert_refused(saved: &Saved, format: Format, key: &str, object: &[u8], reason: &str) {
    saved.server.put_object(PREFIX, &s3cache::archive::layout::entry_object(s3cache::engine::scope::LOCAL_SCOPE, key, format), object);
    let (elsewhere, run) = restore_elsewhere(saved, key, key);
    assert_eq!(run.code, 0, "a damaged entry is a miss, not a failed build: {}", run.stderr);
    let warning = run.stderr.lines().find(|l| l.starts_with("warning: ")).unwrap_or_else(|| panic!("no warning: {}", run.stderr));
    assert_eq!(warning, format!("warning: cache not restored: {reason}"), "{format} {key}");
    assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0, "{format} {key}: something was left in the target");
}

/// `object` with its archive replaced by `archive` and a trailer that describes it truthfully (no
/// part list: the archive decodes as one stream): only the guest's own checks of the stream stand in
/// the way.
fn resealed(saved: &Saved, archive: &[u8]) -> Vec<u8> {
    let manifest = Manifest {
        sha256: hex::encode(Sha256::digest(archive)),
        archive_bytes: archive.len() as u64,
        parts: Vec::new(),
        ..saved.manifest.clone()
    };
    let mut object = archive.to_vec();
    object.extend(trailer::encode(&manifest).unwrap());
    object
}

/// How a format's damage is reported.
struct Damage {
    /// Why an archive with one byte flipped in the middle is refused.
    flipped: String,
    /// Why an archive cut at two thirds (under a truthful trailer) is refused.
    cut: &'static str,
    /// Where the archive can be cut between two complete parts (frames, members, tar members), and
    /// why that shorter archive is refused.
    boundary: usize,
    boundary_reason: &'static str,
}

/// Where a decoder's refusal of the byte at `offset` points: the part holding it, when the entry's
/// parts are decoded in parallel (compressed formats); nowhere for bare tar, read as one stream.
fn in_part(saved: &Saved, format: Format, offset: u64) -> String {
    if format == Format::Tar {
        return String::new();
    }
    let parts = &saved.manifest.parts;
    let index = parts.iter().scan(0, |end, len| {
        *end += len;
        Some(*end)
    });
    let index = index.take_while(|&end| end <= offset).count();
    format!(" (in part {} of {})", index + 1, parts.len())
}

/// Damage common to every format: a flipped archive byte, the object cut short (trailer lost), and
/// the archive cut short under a truthful trailer (the digest matches; the stream itself is short),
/// in the middle of a part or between two parts.
#[track_caller]
fn assert_damage_is_refused(saved: &Saved, format: Format, damage: Damage) {
    let mut flipped = saved.object.clone();
    let middle = saved.manifest.archive_bytes / 2;
    flipped[middle as usize] ^= 0x01;
    let reason = format!("cache entry \"flipped\" was not restored: {}{}", damage.flipped, in_part(saved, format, middle));
    assert_refused(saved, format, "flipped", &flipped, &reason);

    let suffix = format.suffix();
    let no_trailer = "the object has no s3cache trailer (not written by s3cache, truncated, or replaced)";
    let reason = format!("no usable cache entry for key \"truncated\" in scopes local; passed over: local/truncated{suffix}: {no_trailer}");
    assert_refused(saved, format, "truncated", &saved.object[..saved.object.len() - 100], &reason);

    let cut = resealed(saved, &tar_stream(saved)[..saved.manifest.archive_bytes as usize * 2 / 3]);
    assert_refused(saved, format, "cut", &cut, &format!("cache entry \"cut\" was not restored: corrupt archive: {}", damage.cut));
    let at_boundary = resealed(saved, &tar_stream(saved)[..damage.boundary]);
    let reason = format!("cache entry \"boundary\" was not restored: corrupt archive: {}", damage.boundary_reason);
    assert_refused(saved, format, "boundary", &at_boundary, &reason);
}

/// The parts a compressed entry records: at least three for its 20 MiB tree, each a frame or member
/// that decodes on its own to at most a part's content (so `large.bin` spans several), and adding up
/// to the archive. A part list that no longer matches the frames, or no longer adds up, is refused.
#[track_caller]
fn assert_parts_are_independent(saved: &Saved, format: Format, decode: impl Fn(&[u8]) -> Vec<u8>) {
    let parts = &saved.manifest.parts;
    assert!(parts.len() >= 3, "{format}: {parts:?}");
    assert_eq!(parts.iter().sum::<u64>(), saved.manifest.archive_bytes);
    let (mut at, mut tar) = (0, Vec::new());
    for &len in parts {
        let part = decode(&tar_stream(saved)[at..at + len as usize]);
        assert!(part.len() <= (8 << 20) + (64 << 10), "{format}: a part of {} bytes", part.len());
        tar.extend(part);
        at += len as usize;
    }
    assert_eq!(tar.len() as u64, saved.manifest.tar_bytes);

    // One byte moved from the first part to the second: the sum holds, the first part now ends inside
    // its frame or member.
    let mut moved = saved.manifest.clone();
    moved.parts[0] -= 1;
    moved.parts[1] += 1;
    let mut object = tar_stream(saved).to_vec();
    object.extend(trailer::encode(&moved).unwrap());
    saved.server.put_object(PREFIX, &s3cache::archive::layout::entry_object(s3cache::engine::scope::LOCAL_SCOPE, "moved", format), &object);
    let (elsewhere, run) = restore_elsewhere(saved, "moved", "moved");
    let warning = run.stderr.lines().find(|l| l.starts_with("warning: ")).unwrap_or_else(|| panic!("no warning: {}", run.stderr));
    let prefix = format!("warning: cache not restored: cache entry \"moved\" was not restored: corrupt archive: {}: ", format.name());
    assert!(warning.starts_with(&prefix) && warning.ends_with(&format!(" (in part 1 of {})", parts.len())), "{warning}");
    assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0, "{format}: something was left in the target");

    // Parts that do not add up to the archive: the entry is passed over before anything is fetched.
    let mut uneven = saved.manifest.clone();
    uneven.parts[0] += 1;
    let mut object = tar_stream(saved).to_vec();
    object.extend(trailer::encode(&uneven).unwrap());
    let (total, archive) = (saved.manifest.archive_bytes + 1, saved.manifest.archive_bytes);
    let reason = format!(
        "no usable cache entry for key \"uneven\" in scopes local; passed over: local/uneven{}: the s3cache trailer is malformed: its parts add up to {total} bytes, the archive is {archive}",
        format.suffix()
    );
    assert_refused(saved, format, "uneven", &object, &reason);
}

/// Where the second of the compressed parts starts (a zstd frame or gzip member header `magic`).
fn second_part(saved: &Saved, magic: &[u8]) -> usize {
    let archive = tar_stream(saved);
    1 + archive[1..].windows(magic.len()).position(|w| w == magic).expect("a second part")
}

/// zstd: `zstd -dc` reads the object (frames, then the skippable trailer) as exactly the tar, GNU tar
/// extracts that exactly, the binary restores it exactly, and damage is refused.
#[test]
fn zstd_objects_are_plain_tar_zst() {
    let saved = save(Format::Zstd, "3");
    assert_eq!(saved.manifest.level, 3);
    let tar = run_tool("zstd", &["-dc"], &saved.object).stdout;
    assert_eq!(tar.len() as u64, saved.manifest.tar_bytes);
    assert_gnu_tar_extracts(&saved, &["-xf", "-"], &tar, &saved.machine.scratch("zstd-tar"));
    assert_restores_exactly(&saved, Format::Zstd);
    assert_parts_are_independent(&saved, Format::Zstd, |part| zstd::decode_all(part).unwrap());
    let damage = Damage {
        flipped: "corrupt archive: zstd: Restored data doesn't match checksum".into(),
        cut: "zstd: incomplete frame",
        boundary: second_part(&saved, &[0x28, 0xb5, 0x2f, 0xfd]),
        // The 20 MiB file is split across the parts: the first part ends inside it.
        boundary_reason: "tar: archive ends inside a file",
    };
    assert_damage_is_refused(&saved, Format::Zstd, damage);
}

/// gzip: `gzip -dc` reads the object (members, then the empty trailer member) as exactly the tar,
/// `tar -xzf` extracts it exactly, the binary restores it exactly, and damage is refused.
#[test]
fn gzip_objects_are_plain_tar_gz() {
    let saved = save(Format::Gzip, "6");
    assert_eq!(saved.manifest.level, 6);
    let members = saved.object.windows(4).filter(|w| *w == [0x1f, 0x8b, 0x08, 0x00]).count();
    assert!(members >= 2, "one gzip member per packing part expected, found {members}");
    let tar = run_tool("gzip", &["-dc"], &saved.object).stdout;
    assert_eq!(tar.len() as u64, saved.manifest.tar_bytes);
    assert_gnu_tar_extracts(&saved, &["-xf", "-"], &tar, &saved.machine.scratch("gzip-tar"));
    assert_gnu_tar_extracts(&saved, &["-xzf", "-"], &saved.object, &saved.machine.scratch("tar-xz"));
    assert_restores_exactly(&saved, Format::Gzip);
    assert_parts_are_independent(&saved, Format::Gzip, |part| {
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(part).read_to_end(&mut tar).unwrap();
        tar
    });
    let damage = Damage {
        flipped: "corrupt archive: gzip: corrupt gzip stream does not have a matching checksum".into(),
        cut: "gzip: incomplete deflate stream",
        boundary: second_part(&saved, &[0x1f, 0x8b, 0x08, 0x00]),
        boundary_reason: "tar: archive ends inside a file",
    };
    assert_damage_is_refused(&saved, Format::Gzip, damage);
}

/// tar: GNU tar extracts the object itself (it stops at the end-of-archive blocks, before the
/// trailer), the binary restores it exactly, and damage is refused.
#[test]
fn tar_objects_are_plain_tar() {
    let saved = save(Format::Tar, "12");
    assert_eq!(saved.manifest.level, 0, "tar has no level: the given one is ignored");
    assert_eq!(saved.manifest.archive_bytes, saved.manifest.tar_bytes);
    assert_gnu_tar_extracts(&saved, &["-xf", "-"], &saved.object, &saved.machine.scratch("tar"));
    assert_restores_exactly(&saved, Format::Tar);
    // Bare tar has no checksum over file data: the manifest's digest catches the flipped byte.
    let mut flipped = tar_stream(&saved).to_vec();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    let (expected, actual) = (&saved.manifest.sha256, hex::encode(Sha256::digest(&flipped)));
    let bytes = saved.manifest.archive_bytes;
    let damage = Damage {
        flipped: format!(
            "archive transfer failed: SHA-256 mismatch: the manifest says {expected} ({bytes} bytes), the archive is {actual} ({bytes} bytes)"
        ),
        cut: "tar: archive ends inside a file",
        // Without its two zero blocks.
        boundary: bytes as usize - 1024,
        boundary_reason: "tar: the archive ends without its end-of-archive blocks (truncated)",
    };
    assert_damage_is_refused(&saved, Format::Tar, damage);
}

/// Every format holds the same tar stream: zstd and gzip decompress to the bare tar object's archive.
#[test]
fn every_format_holds_the_same_tar() {
    let tar = save(Format::Tar, "3");
    let bare = tar_stream(&tar).to_vec();
    let zstd = save(Format::Zstd, "3");
    assert_eq!(run_tool("zstd", &["-dc"], &zstd.object).stdout, bare);
    let gzip = save(Format::Gzip, "1");
    assert_eq!(run_tool("gzip", &["-dc"], &gzip.object).stdout, bare);
}

/// A gzip level above 9 (or below 1) is the user's to fix: exit 2 naming the setting, nothing saved.
#[test]
fn gzip_levels_out_of_range_are_an_error() {
    let server = S3Server::start(ServerKind::S3sFs);
    let mut machine = Machine::new();
    machine.use_server(&server, PREFIX);
    write_sample_tree(&machine.workspace(), "project", 1024);
    for level in ["10", "19"] {
        let run = machine.run(&["save", "--key", "k", "--format", "gzip", "--compression-level", level, "--path", "project"]);
        assert_eq!(run.code, 2, "{}", run.stderr);
        let expected = format!("error: compression level {level} is out of range for the gzip format: it takes 1 to 9");
        assert_eq!(run.stderr.lines().last(), Some(expected.as_str()), "{}", run.stderr);
    }
    let listing = boto3(&server, "print(s3.list_objects_v2(Bucket=bucket).get('KeyCount'))");
    assert_eq!(listing.trim(), "0", "nothing saved");
}
