//! `pack` → `unpack` natively, for every compression: exact round trips, parts that concatenate into
//! one archive, what standard decoders make of our bytes, and clean `corrupt-stream` refusals of
//! damaged, truncated and foreign streams.

use std::fs;
use std::io::Read;
use std::path::Path;

use crate::GuestError;
use crate::bindings::{Compression, ContentSlice, Member, MemberKind, PackOptions, Root, Timestamp, UnpackLimits, UnpackReport};
use crate::files::LocalFiles;
use crate::{pack, unpack};

const ALL: [Compression; 3] = [Compression::Zstd, Compression::Gzip, Compression::None];

fn root(dir: &Path) -> Root {
    Root {
        guest_dir: dir.display().to_string(),
        member_prefix: "workspace/target".into(),
        include_globs: Vec::new(),
        exclude_globs: Vec::new(),
    }
}

fn member(relative: &str, kind: MemberKind, size: u64) -> Member {
    Member {
        root: 0,
        relative: relative.into(),
        kind,
        mode: 0o644,
        size,
        mtime: Timestamp { seconds: 1_700_000_000, nanoseconds: 5 },
        link_target: None,
        slice: None,
    }
}

/// Bytes that compress a little, so that gzip and zstd have matches and literals to code.
fn contents(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if i % 3 == 0 { b'a' + (i % 7) as u8 } else { state as u8 }
        })
        .collect()
}

/// A source tree with a directory, small files (read in batches) and a large one (streamed).
struct Tree {
    dir: tempfile::TempDir,
    members: Vec<Member>,
}

fn tree() -> Tree {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("sub")).unwrap();
    let files =
        [("a.txt", contents(1000, 1)), ("sub/b.bin", contents(300_000, 2)), ("sub/c", contents(0, 3)), ("sub/d", contents(70_000, 4))];
    let mut members = vec![member("", MemberKind::Directory, 0), member("sub", MemberKind::Directory, 0)];
    for (name, bytes) in &files {
        fs::write(dir.path().join(name), bytes).unwrap();
        members.push(member(name, MemberKind::File, bytes.len() as u64));
    }
    Tree { dir, members }
}

fn options(compression: Compression, end_of_archive: bool) -> PackOptions {
    let level = if compression == Compression::Zstd { 3 } else { 6 };
    PackOptions { compression, level, buffer_size: 1 << 16, end_of_archive }
}

fn pack_part(tree: &Tree, members: &[Member], options: PackOptions) -> Result<Vec<u8>, GuestError> {
    let mut out = Vec::new();
    let summary = pack::pack(&[root(tree.dir.path())], members, &options, &LocalFiles::default(), &mut out)?;
    assert_eq!(summary.compressed_bytes, out.len() as u64);
    assert_eq!(summary.members, members.len() as u64);
    Ok(out)
}

fn limits() -> UnpackLimits {
    UnpackLimits { max_total_bytes: 1 << 30, max_members: 1000, max_path_bytes: 4096, max_depth: 64, max_window_log: 27 }
}

fn unpack_into(dir: &Path, compression: Compression, archive: &[u8], limits: &UnpackLimits) -> Result<UnpackReport, GuestError> {
    unpack::unpack(&[root(dir)], compression, limits, archive, &mut LocalFiles::default(), 1 << 16)
}

/// Every file of `tree` is in `dir` with the same bytes.
#[track_caller]
fn assert_same_files(tree: &Tree, dir: &Path) {
    for member in tree.members.iter().filter(|m| m.kind == MemberKind::File) {
        let theirs = fs::read(dir.join(&member.relative)).unwrap_or_else(|e| panic!("{}: {e}", member.relative));
        assert_eq!(theirs, fs::read(tree.dir.path().join(&member.relative)).unwrap(), "{}", member.relative);
    }
}

/// The tar stream inside `archive`, decoded by the reference decoders (zstd, flate2's multi-member
/// gzip reader), not by `unpack`.
fn reference_decode(compression: Compression, archive: &[u8]) -> Vec<u8> {
    match compression {
        Compression::Zstd => zstd::decode_all(archive).unwrap(),
        Compression::Gzip => {
            let mut tar = Vec::new();
            flate2::read::MultiGzDecoder::new(archive).read_to_end(&mut tar).unwrap();
            tar
        }
        Compression::None => archive.to_vec(),
    }
}

/// Each compression round-trips the tree exactly; the bytes are its own format (gzip's magic, bare
/// tar) and a reference decoder finds the same tar, ending in its two zero blocks.
#[test]
fn every_compression_round_trips() {
    let tree = tree();
    for compression in ALL {
        let archive = pack_part(&tree, &tree.members, options(compression, true)).unwrap();
        let tar = reference_decode(compression, &archive);
        assert_eq!(tar.len() % 512, 0);
        assert!(tar.ends_with(&[0; 1024]), "{compression:?}");
        match compression {
            Compression::Zstd => assert_eq!(archive[..4], [0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Gzip => assert_eq!(archive[..3], [0x1f, 0x8b, 0x08]),
            Compression::None => assert_eq!(&archive[257..262], b"ustar"),
        }
        let out = tempfile::tempdir().unwrap();
        let report = unpack_into(out.path(), compression, &archive, &limits()).unwrap();
        assert_eq!(report.members, tree.members.len() as u64, "{compression:?}");
        assert_eq!(report.bytes, 371_000);
        assert_same_files(&tree, out.path());
    }
}

/// Parts packed separately (only the last ends the archive) concatenate into one archive: several
/// zstd frames, a multi-member gzip file, or one tar.
#[test]
fn concatenated_parts_are_one_archive() {
    let tree = tree();
    for compression in ALL {
        let (first, second) = tree.members.split_at(3);
        let mut archive = pack_part(&tree, first, options(compression, false)).unwrap();
        archive.extend(pack_part(&tree, second, options(compression, true)).unwrap());
        if compression == Compression::Gzip {
            let members = archive.windows(3).filter(|w| *w == [0x1f, 0x8b, 0x08]).count();
            assert!(members >= 2, "two gzip members expected");
        }
        let whole = pack_part(&tree, &tree.members, options(compression, true)).unwrap();
        assert_eq!(reference_decode(compression, &archive), reference_decode(compression, &whole), "{compression:?}");
        let out = tempfile::tempdir().unwrap();
        let report = unpack_into(out.path(), compression, &archive, &limits()).unwrap();
        assert_eq!(report.members, tree.members.len() as u64);
        assert_same_files(&tree, out.path());
    }
}

/// The reason `unpack` refused `archive`, which must be `corrupt-stream`.
#[track_caller]
fn corrupt_reason(compression: Compression, archive: &[u8]) -> String {
    let out = tempfile::tempdir().unwrap();
    match unpack_into(out.path(), compression, archive, &limits()) {
        Err(GuestError::CorruptStream(reason)) => reason,
        other => panic!("{compression:?}: expected corrupt-stream, got {other:?}"),
    }
}

/// A flipped byte, a truncation, trailing garbage, a missing end-of-archive and another format's bytes
/// are each a clean `corrupt-stream`, for every compression.
#[test]
fn damaged_streams_are_corrupt() {
    let tree = tree();
    for compression in ALL {
        let archive = pack_part(&tree, &tree.members, options(compression, true)).unwrap();
        let layer = match compression {
            Compression::Zstd => "zstd: ",
            Compression::Gzip => "gzip: ",
            Compression::None => "tar: ",
        };

        // A byte flipped in the middle of a large file's data: the checksum of zstd's frame or
        // gzip's member fails; bare tar has no checksum over data, so flip a byte of the first ustar
        // header (after its pax header) instead: its header checksum fails.
        let mut flipped = archive.clone();
        let at = if compression == Compression::None { 1024 + 100 } else { archive.len() / 2 };
        flipped[at] ^= 0x40;
        let reason = corrupt_reason(compression, &flipped);
        assert!(reason.starts_with(layer), "{compression:?}: {reason}");

        // Truncated in the middle of a member, and cut before the end-of-archive blocks.
        let reason = corrupt_reason(compression, &archive[..archive.len() * 2 / 3]);
        assert!(reason.starts_with(layer), "{compression:?}: {reason}");
        let no_end = pack_part(&tree, &tree.members, options(compression, false)).unwrap();
        assert_eq!(corrupt_reason(compression, &no_end), format!("{layer}the archive ends without its end-of-archive blocks (truncated)"));

        // Bytes after the archive that are not part of it.
        let mut garbage = archive.clone();
        garbage.extend_from_slice(b"not an archive, not padding");
        let reason = corrupt_reason(compression, &garbage);
        match compression {
            Compression::None => assert_eq!(reason, "data after the end of the tar archive"),
            _ => assert!(reason.starts_with(layer), "{compression:?}: {reason}"),
        }

        // Another compression's bytes, and an empty stream.
        for other in ALL.into_iter().filter(|&c| c != compression) {
            let foreign = pack_part(&tree, &tree.members, options(other, true)).unwrap();
            let reason = corrupt_reason(compression, &foreign);
            assert!(reason.starts_with(layer), "{other:?} read as {compression:?}: {reason}");
        }
        let empty = match compression {
            Compression::Zstd => "zstd: incomplete frame",
            Compression::Gzip => "gzip: unexpected end of file",
            Compression::None => "tar: the archive ends without its end-of-archive blocks (truncated)",
        };
        assert_eq!(corrupt_reason(compression, b""), empty, "{compression:?}");
    }
}

/// A stream that decompresses beyond `max-total-bytes` stops with `limit-exceeded`, in every format.
#[test]
fn decompression_is_bounded() {
    let tree = tree();
    for compression in ALL {
        let archive = pack_part(&tree, &tree.members, options(compression, true)).unwrap();
        let out = tempfile::tempdir().unwrap();
        let small = UnpackLimits { max_total_bytes: 100_000, ..limits() };
        match unpack_into(out.path(), compression, &archive, &small) {
            Err(GuestError::LimitExceeded(reason)) => assert!(reason.contains("100000"), "{reason}"),
            other => panic!("{compression:?}: expected limit-exceeded, got {other:?}"),
        }
    }
}

/// Levels outside a compression's range are refused before anything is written; `none` has none.
#[test]
fn levels_are_checked() {
    let tree = tree();
    for (compression, level) in [(Compression::Gzip, 0), (Compression::Gzip, 10), (Compression::Zstd, 0), (Compression::Zstd, 20)] {
        let options = PackOptions { level, ..options(compression, true) };
        match pack_part(&tree, &tree.members, options) {
            Err(GuestError::Other(reason)) => assert!(reason.starts_with(&format!("compression level {level} is not in")), "{reason}"),
            other => panic!("{compression:?} level {level}: {other:?}"),
        }
    }
    let options = PackOptions { level: 42, ..options(Compression::None, true) };
    assert!(pack_part(&tree, &tree.members, options).is_ok());
}

fn root_named(dir: &Path, prefix: &str) -> Root {
    Root { guest_dir: dir.display().to_string(), member_prefix: prefix.into(), include_globs: Vec::new(), exclude_globs: Vec::new() }
}

/// The names of every member of a bare tar, in order.
fn names(tar: &[u8]) -> Vec<String> {
    let mut archive = tar::Archive::new(tar);
    archive.entries().unwrap().map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned()).collect()
}

/// Other tools' naming: an empty prefix names members by their path below the root, a `/` prefix by
/// absolute path; each kind of root takes only its own kind of name, and `//` stays refused.
#[test]
fn relative_and_absolute_member_names() {
    let tree = tree();
    let files = &tree.members[1..];
    for (prefix, first) in [("", "sub"), ("/home/u/app", "/home/u/app/sub")] {
        let mut tar = Vec::new();
        let mut options = options(Compression::None, true);
        options.level = 0;
        pack::pack(&[root_named(tree.dir.path(), prefix)], files, &options, &LocalFiles::default(), &mut tar).unwrap();
        assert_eq!(names(&tar)[0], first);
        let out = tempfile::tempdir().unwrap();
        let unpack = |prefix: &str| {
            unpack::unpack(&[root_named(out.path(), prefix)], Compression::None, &limits(), &tar[..], &mut LocalFiles::default(), 1 << 16)
        };
        let other = if prefix.is_empty() { "/home/u/app" } else { "" };
        let refused = unpack(other).unwrap_err();
        // An absolute name with no root for absolute names is refused as absolute, as always.
        let why = if prefix.is_empty() { "not under any restored path" } else { "absolute path" };
        assert!(matches!(&refused, GuestError::Rejected { member, reason } if member == first && reason == why), "{refused:?}");
        unpack(prefix).unwrap();
        assert_same_files(&tree, out.path());
    }
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(1);
    header.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut header, "x", &b"x"[..]).unwrap();
    let mut tar = builder.into_inner().unwrap();
    tar[..2].copy_from_slice(b"//");
    tar[2] = b'x';
    let header = tar::Header::from_byte_slice(&tar[..512]);
    let mut fixed = header.clone();
    fixed.set_cksum();
    tar[..512].copy_from_slice(fixed.as_bytes());
    let out = tempfile::tempdir().unwrap();
    let refused =
        unpack::unpack(&[root_named(out.path(), "/")], Compression::None, &limits(), &tar[..], &mut LocalFiles::default(), 1 << 16)
            .unwrap_err();
    assert!(matches!(&refused, GuestError::Rejected { member, .. } if member == "//x"), "{refused:?}");
}

/// Two roots with the same (empty) prefix, as vela-s3-cache names the mounts `a/vendor` and
/// `node_modules` (each below its own parent): their include patterns route each member to its own
/// root, and a member neither selects is refused as not selected.
#[test]
fn roots_sharing_a_prefix_are_told_apart_by_their_patterns() {
    let mut builder = tar::Builder::new(Vec::new());
    for name in ["vendor/lib.rb", "node_modules/x.js"] {
        let mut header = tar::Header::new_ustar();
        header.set_size(2);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, name, &b"ok"[..]).unwrap();
    }
    let tar = builder.into_inner().unwrap();
    let (parent_a, workspace) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let with_include = |dir: &Path, include: &str| Root { include_globs: vec![include.into()], ..root_named(dir, "") };
    let roots = [with_include(parent_a.path(), "vendor"), with_include(workspace.path(), "node_modules")];
    unpack::unpack(&roots, Compression::None, &limits(), &tar[..], &mut LocalFiles::default(), 1 << 16).unwrap();
    let listing = |dir: &Path| walkdir_files(dir);
    assert_eq!(
        (listing(parent_a.path()), listing(workspace.path())),
        (vec!["vendor/lib.rb".to_string()], vec!["node_modules/x.js".to_string()])
    );
    let fresh = tempfile::tempdir().unwrap();
    let refused = unpack::unpack(
        &[with_include(fresh.path(), "vendor")],
        Compression::None,
        &limits(),
        &tar[..],
        &mut LocalFiles::default(),
        1 << 16,
    )
    .unwrap_err();
    assert!(
        matches!(&refused, GuestError::Rejected { member, reason } if member == "node_modules/x.js" && reason == "not selected by the restored path's patterns"),
        "{refused:?}"
    );
}

/// The regular files below `dir`, relative and sorted.
fn walkdir_files(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    files.sort();
    files
}

/// A large file split into slices across parts (headers in the first, padding in the last) packs to
/// the same tar as whole, in every compression; a slice outside the file is refused.
#[test]
fn slices_of_a_file_concatenate_to_the_whole_member() {
    let tree = tree();
    // sub/b.bin (300 000 bytes) in three slices, the first sharing its part with the files before it.
    let big = tree.members.iter().position(|m| m.relative == "sub/b.bin").unwrap();
    let slice = |offset: u64, length: u64| Member { slice: Some(ContentSlice { offset, length }), ..tree.members[big].clone() };
    let mut first: Vec<Member> = tree.members[..big].to_vec();
    first.push(slice(0, 100_000));
    let mut last = vec![slice(250_001, 49_999)];
    last.extend_from_slice(&tree.members[big + 1..]);
    for compression in ALL {
        let mut archive = pack_part(&tree, &first, options(compression, false)).unwrap();
        let mut out = Vec::new();
        let middle = pack::pack(
            &[root(tree.dir.path())],
            &[slice(100_000, 150_001)],
            &options(compression, false),
            &LocalFiles::default(),
            &mut out,
        )
        .unwrap();
        assert_eq!(middle.members, 0, "a slice without the headers adds no member");
        archive.extend(out);
        let mut out = Vec::new();
        let tail = pack::pack(&[root(tree.dir.path())], &last, &options(compression, true), &LocalFiles::default(), &mut out).unwrap();
        assert_eq!(tail.members, last.len() as u64 - 1);
        archive.extend(out);
        let whole = pack_part(&tree, &tree.members, options(compression, true)).unwrap();
        assert_eq!(reference_decode(compression, &archive), reference_decode(compression, &whole), "{compression:?}");
        let dir = tempfile::tempdir().unwrap();
        unpack_into(dir.path(), compression, &archive, &limits()).unwrap();
        assert_same_files(&tree, dir.path());
    }
    for (offset, length) in [(299_999, 2), (0, 0), (u64::MAX, 2)] {
        let refused = pack_part(&tree, &[slice(offset, length)], options(Compression::Zstd, true)).unwrap_err();
        let expected = format!("workspace/target/sub/b.bin: slice {offset}+{length} is not within the 300000 bytes of a regular file");
        assert!(matches!(&refused, GuestError::Other(reason) if *reason == expected), "{refused:?}");
    }
    let directory = Member { slice: Some(ContentSlice { offset: 0, length: 1 }), ..tree.members[1].clone() };
    assert!(
        matches!(pack_part(&tree, &[directory], options(Compression::Zstd, true)), Err(GuestError::Other(reason)) if reason.contains("not within the 0 bytes"))
    );
}

/// `decompress` turns each part (one or more frames or members) into exactly its tar bytes, so
/// parts decoded apart concatenate to the stream `unpack` reads as bare tar; a part that ends
/// inside a frame or member, another format, an empty part and output over the limit are refused.
#[test]
fn decompress_decodes_each_part_on_its_own() {
    let tree = tree();
    let (first, second) = tree.members.split_at(3);
    for compression in [Compression::Zstd, Compression::Gzip] {
        let parts =
            [pack_part(&tree, first, options(compression, false)).unwrap(), pack_part(&tree, second, options(compression, true)).unwrap()];
        let decode = |part: &[u8], limits: &UnpackLimits| {
            let mut out = Vec::new();
            unpack::decompress(compression, limits, part, &mut out, 1 << 16).map(|n| {
                assert_eq!(n, out.len() as u64);
                out
            })
        };
        let mut tar = Vec::new();
        for part in &parts {
            tar.extend(decode(part, &limits()).unwrap());
        }
        assert_eq!(tar, reference_decode(compression, &parts.concat()), "{compression:?}");
        assert_eq!(decode(&parts.concat(), &limits()).unwrap(), tar, "two frames in one part");
        let dir = tempfile::tempdir().unwrap();
        unpack_into(dir.path(), Compression::None, &tar, &limits()).unwrap();
        assert_same_files(&tree, dir.path());

        let layer = if compression == Compression::Zstd { "zstd: " } else { "gzip: " };
        let cut = [&parts[0][..], &parts[1][..parts[1].len() / 2]].concat();
        for damaged in [&parts[0][..parts[0].len() - 1], &cut[..], &parts[0][1..]] {
            match decode(damaged, &limits()) {
                Err(GuestError::CorruptStream(reason)) => assert!(reason.starts_with(layer), "{compression:?}: {reason}"),
                other => panic!("{compression:?}: expected corrupt-stream, got {other:?}"),
            }
        }
        let other = if compression == Compression::Zstd { Compression::Gzip } else { Compression::Zstd };
        assert!(matches!(decode(&pack_part(&tree, first, options(other, false)).unwrap(), &limits()), Err(GuestError::CorruptStream(_))));
        let small = UnpackLimits { max_total_bytes: 1000, ..limits() };
        assert!(matches!(decode(&parts[1], &small), Err(GuestError::LimitExceeded(reason)) if reason.contains("1000")));
    }
    assert!(
        matches!(unpack::decompress(Compression::Zstd, &limits(), &b""[..], Vec::new(), 1 << 16), Err(GuestError::CorruptStream(reason)) if reason == "zstd: incomplete frame")
    );
    assert!(matches!(unpack::decompress(Compression::None, &limits(), &b"x"[..], Vec::new(), 1 << 16), Err(GuestError::Other(_))));
}

/// zstd writes a part as frames of at most 2 MiB of tar each, every one decodable on its own and
/// recording its content size; together they are the part's tar.
#[test]
fn zstd_parts_are_frames_of_bounded_tar() {
    let tree = tree();
    fs::write(tree.dir.path().join("sub/big"), contents(5 << 20, 9)).unwrap();
    let mut members = tree.members.clone();
    members.push(member("sub/big", MemberKind::File, 5 << 20));
    let archive = pack_part(&tree, &members, options(Compression::Zstd, true)).unwrap();
    let (mut at, mut sizes) = (0, Vec::new());
    while at < archive.len() {
        let len = zstd::zstd_safe::find_frame_compressed_size(&archive[at..]).unwrap();
        let frame = &archive[at..at + len];
        let size = zstd::zstd_safe::get_frame_content_size(frame).unwrap().expect("frames record their content size");
        assert_eq!(zstd::decode_all(frame).unwrap().len() as u64, size);
        sizes.push(size);
        at += len;
    }
    let tar = reference_decode(Compression::Zstd, &archive);
    assert_eq!(sizes.iter().sum::<u64>(), tar.len() as u64);
    assert!(sizes.len() == 3 && sizes[..2].iter().all(|&s| s == 2 << 20), "{sizes:?}");
}
