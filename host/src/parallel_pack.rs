//! Packing on every core: the member list is cut into parts, guest instances pack parts concurrently,
//! each into its own complete compressed unit (a zstd frame, a gzip member, or bare tar, as
//! `PackOptions::compression` says), and the parts are written to the upload in part order.
//!
//! Compression in wasm runs on one core, so one instance would leave the others idle while a save is
//! compression-bound. Tar parts without end-of-archive blocks concatenate into one tar stream, and so
//! do their compressed forms: concatenated zstd frames are one zstd stream, concatenated gzip members
//! one multi-member gzip file. The result is an ordinary `.tar.zst`, `.tar.gz` or `.tar` that GNU tar,
//! zstd and gzip read. Parts are taken in order and each part's output waits in a bounded
//! queue until the writer reaches it: memory stays bounded (a few MiB per worker) and a worker can
//! never wait on a part nobody is packing.

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use crate::bindings::{Member, PackOptions, PackSummary, Root};
use crate::sandbox::{GuestInstance, SandboxError};

/// Content per part: large enough that frame restarts cost well under 1% of the compression ratio.
pub const PART_BYTES: u64 = 8 << 20;
/// Chunks of output (each up to the guest's buffer size) a part may queue ahead.
const QUEUED_CHUNKS: usize = 64;

/// What a worker sends for its part: archive bytes, then how it ended.
enum Message {
    Bytes(Vec<u8>),
    Done(Result<PackSummary, SandboxError>),
}

/// Why a parallel pack failed.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error(transparent)]
    Guest(#[from] SandboxError),
    #[error("writing the archive: {0}")]
    Output(std::io::Error),
}

/// Splits `members` into contiguous parts of about [`PART_BYTES`] of content each.
pub fn split_parts(members: &[Member], part_bytes: u64) -> Vec<std::ops::Range<usize>> {
    let mut parts = Vec::new();
    let (mut start, mut bytes) = (0, 0u64);
    for (i, member) in members.iter().enumerate() {
        bytes += member.size + 512;
        if bytes >= part_bytes {
            parts.push(start..i + 1);
            (start, bytes) = (i + 1, 0);
        }
    }
    if start < members.len() || parts.is_empty() {
        parts.push(start..members.len());
    }
    parts
}

/// Packs `members` with up to `workers` instances from `instance`, writing one archive, compressed as
/// `options.compression`, to `out`.
pub fn pack(
    instance: &(dyn Fn() -> Result<GuestInstance, SandboxError> + Sync),
    roots: &[Root],
    members: &[Member],
    options: PackOptions,
    workers: usize,
    out: &mut dyn Write,
) -> Result<PackSummary, PackError> {
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
                    let result = match &mut guest {
                        Some(guest) => Ok(guest),
                        None => instance().map(|g| guest.insert(g)),
                    }
                    .and_then(|guest| {
                        let options = PackOptions { end_of_archive: index == last, ..options };
                        guest.pack(roots, &members[parts[index].clone()], options, Box::new(PartSink(sender.clone())))
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
fn write_in_order(receivers: Vec<Receiver<Message>>, out: &mut dyn Write) -> Result<PackSummary, PackError> {
    let mut total = PackSummary { members: 0, tar_bytes: 0, compressed_bytes: 0 };
    for receiver in receivers {
        loop {
            match receiver.recv() {
                Ok(Message::Bytes(bytes)) => out.write_all(&bytes).map_err(PackError::Output)?,
                Ok(Message::Done(summary)) => {
                    let summary = summary?;
                    total.members += summary.members;
                    total.tar_bytes += summary.tar_bytes;
                    total.compressed_bytes += summary.compressed_bytes;
                    break;
                }
                Err(_) => return Err(SandboxError::Trap("a packing worker stopped without a result".into()).into()),
            }
        }
    }
    Ok(total)
}

/// The guest's `archive-io.write` for one part.
struct PartSink(SyncSender<Message>);

impl Write for PartSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.send(Message::Bytes(buf.to_vec())).map_err(|_| std::io::Error::other("the archive writer stopped"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::{MemberKind, Timestamp};

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

    /// Parts are contiguous, cover every member once, and close when they reach the size.
    #[test]
    fn splits_members_into_contiguous_parts() {
        let members: Vec<Member> = [600, 600, 10, 2000, 1].into_iter().map(member).collect();
        assert_eq!(split_parts(&members, 2048), vec![0..2, 2..4, 4..5]);
        assert_eq!(split_parts(&members, 1 << 30), vec![0..5]);
        assert_eq!(split_parts(&[], 2048), vec![0..0]);
        let exact: Vec<Member> = [1536].into_iter().map(member).collect();
        assert_eq!(split_parts(&exact, 2048), vec![0..1]);
    }
}
