//! Packing on every core: the member list is cut into parts of about [`PART_BYTES`] of content, guest
//! instances pack parts concurrently, each into its own complete compressed unit (zstd frames, a gzip
//! member, or bare tar, as `PackOptions::compression` says), and the parts are written to the upload
//! in part order. Their compressed lengths go into the manifest, so that a restore can decode them in
//! parallel too ([`crate::archive::unpack`]).
//!
//! Where a part is compressed is [`CompressIn`]: for zstd, the s3cache binary has the guest write
//! bare tar and compresses it natively on the same worker thread ([`crate::archive::compress`] says
//! why that is safe); the guest's own compression gives the same bytes, and stays for other hosts.
//!
//! One instance would leave the other cores idle while a save is compression-bound. A file larger
//! than a part is split across parts as content slices (its headers in the first, its padding in the
//! last), so that a tree of one large binary keeps every core busy as well. Tar parts without
//! end-of-archive blocks concatenate into one tar stream, and so do their compressed forms:
//! concatenated zstd frames are one zstd stream, concatenated gzip members one multi-member gzip file.
//! The result is an ordinary `.tar.zst`, `.tar.gz` or `.tar` that GNU tar, zstd and gzip read. Parts
//! are taken in order and each part's output waits in a bounded queue until the writer reaches it:
//! memory stays bounded (a few MiB per worker) and a worker can never wait on a part nobody is packing.

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use crate::archive::compress;
use crate::sandbox::bindings::{ContentSlice, Member, MemberKind, PackOptions, PackSummary, Root};
use crate::sandbox::{GuestInstance, SandboxError};

/// Where the parts are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressIn {
    /// For zstd, the guest writes bare tar and the host compresses it natively: the same bytes, in
    /// about a third of the CPU time. gzip and bare tar are written by the guest as with `Guest`.
    Host,
    /// The guest compresses (`PackOptions::compression`), as any host of the WIT contract gets it.
    /// The binary never asks for it; the unit test holds `Host` to its bytes.
    #[cfg_attr(not(test), expect(dead_code, reason = "the reference that the unit test compares Host with"))]
    Guest,
}

/// Content per part: the unit one guest instance packs (as one or more frames) and a restore decodes
/// on its own, large enough that a part's restarts cost well under 1% of the compression ratio.
pub const PART_BYTES: u64 = 8 << 20;
/// A part's output waits in chunks of at most this size…
const CHUNK_BYTES: usize = 256 << 10;
/// …and at most this many, so a worker ahead of the writer holds at most 8 MiB of output: a whole
/// part of incompressible content, so it finishes its part instead of waiting on the writer (W6 save
/// to a file store 0.41 → 0.38 s with 4 MiB → 8 MiB; peak RSS +15 MB).
const QUEUED_CHUNKS: usize = 32;

/// What a worker sends for its part: archive bytes, then how it ended.
enum Message {
    Bytes(Vec<u8>),
    Done(Result<PackSummary, SandboxError>),
}

/// Tar header bytes counted per member when filling a part.
const HEADER_BYTES: u64 = 512;

/// What a parallel pack wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    /// The parts' summaries added up.
    pub summary: PackSummary,
    /// Each part's compressed length, in order; they add up to `summary.compressed_bytes`.
    pub parts: Vec<u64>,
}

/// Why a parallel pack failed.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error(transparent)]
    Guest(#[from] SandboxError),
    #[error("writing the archive: {0}")]
    Output(std::io::Error),
}

/// One member of a part: its index in the member list, and the slice of its content the part holds
/// when the file is split across parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub member: usize,
    pub slice: Option<ContentSlice>,
}

/// Splits `members` into parts of about `part_bytes` of content and headers each, in order. A regular
/// file larger than `part_bytes` that does not fit the rest of the current part is split: its first
/// slice fills that part, further slices fill whole parts, and the last starts the next one.
pub fn split_parts(members: &[Member], part_bytes: u64) -> Vec<Vec<Piece>> {
    let mut parts = Vec::new();
    let (mut part, mut bytes) = (Vec::new(), 0u64);
    let mut close = |part: &mut Vec<Piece>, bytes: &mut u64| {
        if *bytes >= part_bytes {
            parts.push(std::mem::take(part));
            *bytes = 0;
        }
    };
    for (index, member) in members.iter().enumerate() {
        let size = if member.kind == MemberKind::File { member.size } else { 0 };
        if size <= part_bytes || bytes + HEADER_BYTES + size <= part_bytes {
            part.push(Piece { member: index, slice: None });
            bytes += HEADER_BYTES + size;
            close(&mut part, &mut bytes);
            continue;
        }
        let mut offset = 0;
        while offset < size {
            let header = if offset == 0 { HEADER_BYTES } else { 0 };
            let length = part_bytes.saturating_sub(bytes + header).max(1).min(size - offset);
            part.push(Piece { member: index, slice: Some(ContentSlice { offset, length }) });
            bytes += header + length;
            offset += length;
            close(&mut part, &mut bytes);
        }
    }
    if !part.is_empty() || parts.is_empty() {
        parts.push(part);
    }
    parts
}

/// The members one part hands the guest: each piece's member, with its slice.
fn part_members(members: &[Member], part: &[Piece]) -> Vec<Member> {
    part.iter().map(|piece| Member { slice: piece.slice, ..members[piece.member].clone() }).collect()
}

/// Packs `members` with up to `workers` instances from `instance`, writing one archive, compressed as
/// `options.compression` where `compress_in` says, to `out`.
pub fn pack(
    instance: &(dyn Fn() -> Result<GuestInstance, SandboxError> + Sync),
    roots: &[Root],
    members: &[Member],
    options: PackOptions,
    compress_in: CompressIn,
    workers: usize,
    out: &mut dyn Write,
) -> Result<Packed, PackError> {
    let parts = split_parts(members, PART_BYTES);
    let (senders, receivers): (Vec<_>, Vec<_>) = parts.iter().map(|_| sync_channel::<Message>(QUEUED_CHUNKS)).unzip();
    let senders: Vec<Mutex<Option<SyncSender<Message>>>> = senders.into_iter().map(|s| Mutex::new(Some(s))).collect();
    let next = AtomicUsize::new(0);
    let abort = AtomicBool::new(false);
    let last = parts.len() - 1;

    std::thread::scope(|scope| {
        for _ in 0..workers.clamp(1, parts.len()) {
            scope.spawn(|| {
                let mut guest = None;
                loop {
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    if index > last || abort.load(Ordering::SeqCst) {
                        return;
                    }
                    let sender = senders[index].lock().expect("sender lock").take().expect("each part is taken once");
                    if guest.as_ref().is_some_and(GuestInstance::outdated) {
                        guest = None; // the optimized guest is ready: take it for the next parts
                    }
                    let result = match &mut guest {
                        Some(guest) => Ok(guest),
                        None => instance().map(|g| guest.insert(g)),
                    }
                    .and_then(|guest| {
                        let options = PackOptions { end_of_archive: index == last, ..options };
                        let members = part_members(members, &parts[index]);
                        match compress_in {
                            CompressIn::Guest => guest.pack(roots, &members, options, Box::new(PartSink(sender.clone()))),
                            CompressIn::Host => compress::pack_part(guest, roots, &members, options, PartSink(sender.clone())),
                        }
                    });
                    let failed = result.is_err();
                    let _ = sender.send(Message::Done(result));
                    if failed {
                        return;
                    }
                }
            });
        }
        let result = write_in_order(receivers, out);
        if result.is_err() {
            abort.store(true, Ordering::SeqCst);
        }
        result
    })
}

/// Writes each part's bytes to `out` in part order and adds up the summaries. Returning early drops
/// the receivers, so workers still packing fail their next write and stop.
fn write_in_order(receivers: Vec<Receiver<Message>>, out: &mut dyn Write) -> Result<Packed, PackError> {
    let mut total = PackSummary { members: 0, tar_bytes: 0, compressed_bytes: 0 };
    let mut parts = Vec::with_capacity(receivers.len());
    for receiver in receivers {
        loop {
            match receiver.recv() {
                Ok(Message::Bytes(bytes)) => out.write_all(&bytes).map_err(PackError::Output)?,
                Ok(Message::Done(summary)) => {
                    let summary = summary?;
                    total.members += summary.members;
                    total.tar_bytes += summary.tar_bytes;
                    total.compressed_bytes += summary.compressed_bytes;
                    parts.push(summary.compressed_bytes);
                    break;
                }
                Err(_) => return Err(SandboxError::Trap("a packing worker stopped without a result".into()).into()),
            }
        }
    }
    Ok(Packed { summary: total, parts })
}

/// The guest's `archive-io.write` for one part.
struct PartSink(SyncSender<Message>);

impl Write for PartSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for chunk in buf.chunks(CHUNK_BYTES) {
            self.0.send(Message::Bytes(chunk.to_vec())).map_err(|_| std::io::Error::other("the archive writer stopped"))?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::bindings::{Compression, MemberKind, Timestamp};

    fn member(size: u64) -> Member {
        Member {
            root: 0,
            relative: "f".into(),
            kind: MemberKind::File,
            mode: 0o644,
            size,
            mtime: Timestamp { seconds: 0, nanoseconds: 0 },
            link_target: None,
            slice: None,
        }
    }

    fn whole(member: usize) -> Piece {
        Piece { member, slice: None }
    }

    fn slice(member: usize, offset: u64, length: u64) -> Piece {
        Piece { member, slice: Some(ContentSlice { offset, length }) }
    }

    /// Parts are contiguous, cover every member once, and close when they reach the size.
    #[test]
    fn splits_members_into_contiguous_parts() {
        let members: Vec<Member> = [600, 600, 10, 2000, 1].into_iter().map(member).collect();
        assert_eq!(split_parts(&members, 2048), vec![vec![whole(0), whole(1)], vec![whole(2), whole(3)], vec![whole(4)]]);
        assert_eq!(split_parts(&members, 1 << 30), vec![(0..5).map(whole).collect::<Vec<_>>()]);
        assert_eq!(split_parts(&[], 2048), vec![Vec::<Piece>::new()]);
        let exact: Vec<Member> = [1536].into_iter().map(member).collect();
        assert_eq!(split_parts(&exact, 2048), vec![vec![whole(0)]]);
    }

    /// A file larger than a part is split into slices: the first fills the current part (after its
    /// header), the middle ones fill whole parts, the last starts the next part; together they cover
    /// the file exactly once. Directories and files that fit are never split.
    #[test]
    fn splits_large_files_across_parts() {
        let mut members: Vec<Member> = [1000, 10_000, 100].into_iter().map(member).collect();
        members.push(Member { kind: MemberKind::Directory, ..member(0) });
        let parts = split_parts(&members, 4096);
        assert_eq!(
            parts,
            vec![vec![whole(0), slice(1, 0, 2072)], vec![slice(1, 2072, 4096)], vec![slice(1, 6168, 3832), whole(2)], vec![whole(3)],]
        );
        let covered: u64 = parts.iter().flatten().filter(|p| p.member == 1).map(|p| p.slice.unwrap().length).sum();
        assert_eq!(covered, 10_000);
        // A large file that fits the rest of its part stays whole; one that starts a part is split.
        assert_eq!(split_parts(&[member(3000)], 4096), vec![vec![whole(0)]]);
        assert_eq!(split_parts(&[member(5000)], 4096), vec![vec![slice(0, 0, 3584)], vec![slice(0, 3584, 1416)]]);
        // The guest gets each piece's member with its slice.
        let guest = part_members(&members, &parts[2]);
        assert_eq!(guest[0].slice, Some(ContentSlice { offset: 6168, length: 3832 }));
        assert_eq!((guest[0].size, guest[1].slice, guest.len()), (10_000, None, 2));
    }

    /// Compressing on the host gives exactly the bytes and part lengths the guest's own compression
    /// gives, for zstd (several frames per part, a file split across parts); gzip and bare tar are
    /// the same either way.
    #[test]
    fn compressing_on_the_host_writes_the_guests_bytes() {
        use crate::report::Reporter;
        use crate::sandbox::{GuestLimits, Preopen, Sandbox};

        let dir = tempfile::tempdir().unwrap();
        let text: Vec<u8> = (0..11u32 << 20).map(|i| b"abcdefgh"[(i % 6 + i / 4096 % 3) as usize]).collect();
        std::fs::write(dir.path().join("large.txt"), &text).unwrap();
        std::fs::write(dir.path().join("small.txt"), b"hello").unwrap();
        let file = |relative: &str, size: u64| Member { relative: relative.into(), ..member(size) };
        let members =
            vec![Member { kind: MemberKind::Directory, mode: 0o755, ..file("", 0) }, file("large.txt", 11 << 20), file("small.txt", 5)];
        let roots =
            [Root { guest_dir: "/roots/0".into(), member_prefix: "workspace/x".into(), include_globs: vec![], exclude_globs: vec![] }];
        let sandbox = Sandbox::load(None, GuestLimits::default()).unwrap();
        let preopens = [Preopen { host: dir.path().to_path_buf(), guest: "/roots/0".into(), writable: false }];
        let instance = || sandbox.instance(&preopens, Box::new(|_: &str| None), &Reporter::silent()).map_err(SandboxError::Setup);
        for (compression, level) in [(Compression::Zstd, 3), (Compression::Gzip, 6), (Compression::None, 0)] {
            let options = PackOptions { compression, level, buffer_size: 1 << 20, end_of_archive: true };
            let packed = |compress_in| {
                let mut out = Vec::new();
                let packed = pack(&instance, &roots, &members, options, compress_in, 2, &mut out).unwrap();
                (out, packed)
            };
            let (guest, host) = (packed(CompressIn::Guest), packed(CompressIn::Host));
            assert_eq!(host.1.parts.len(), 2, "{compression:?}: the large file is split across two parts");
            assert_eq!(host.1, guest.1, "{compression:?}");
            assert!(host.0 == guest.0, "{compression:?}: {} bytes on the host, {} in the guest", host.0.len(), guest.0.len());
            assert_eq!(host.1.summary.compressed_bytes, host.0.len() as u64);
        }
    }
}
