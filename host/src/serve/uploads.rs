//! Uploads in progress, kept in the store and nowhere else, so that any server over the same bucket
//! can take the next request of an upload that another one started.
//!
//! A reservation starts an S3 multipart upload at the entry's final name and writes a small
//! *pending* object (`.s3cache-serve/pending/<sha256 of the entry's name>.json`, [`Pending`]) with
//! `If-None-Match`: its name follows from the entry, so it is also the lock that makes a second
//! reservation of the same key and version fail while the first is in progress. v1 clients name
//! their upload by a number, so a reservation for them also writes `.s3cache-serve/v1/<id>.json`, a
//! copy of the pending object. Names under `.s3cache-serve/` have two slashes: no admin verb ever
//! lists or counts them ([`crate::archive::layout`]).
//!
//! **Pieces to parts.** S3 parts are at least 5 MiB except the last, at most 10,000, and cannot be
//! read back before the upload completes. A piece of at least 5 MiB whose position says its part
//! number goes straight into that part, streamed: a v1 chunk of length L at an offset that is a
//! multiple of L goes to part offset / L + 1 (clients send chunks of one size, so consecutive chunks
//! get consecutive numbers, and a part's offset is its number less one times its size), a v2 block at
//! index + 1. Anything else (the last chunk, whose place the toolkit's announced size gives away, the
//! short last block, buildx's 1 MiB blocks, odd chunk sizes) is *staged* as an object of its own
//! under `.s3cache-serve/staged/`. The commit lists the parts and the staged pieces, checks that
//! together they cover the entry's bytes exactly once, copies each run of staged pieces into parts of
//! at least 8 MiB (streamed from the store, so that nothing is held in memory) in the numbers free
//! after the part before them, completes the upload with `If-None-Match` and removes the staged,
//! pending and v1 objects. Part numbers stay consecutive for every client known, which some servers
//! (s3s-fs) require. UploadPartCopy is not used: it cannot join pieces under 5 MiB, and it would copy
//! every byte of the large ones a second time.
//!
//! An upload whose pending object is older than the upload timeout is abandoned: [`sweep`] aborts it
//! and removes what it left, and a new reservation of the same entry does the same first.

use std::io::{Read, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::store::{BlobStore, ObjectInfo, PutOptions, ResumableUploads, StoreError};

/// Every part but the last is at least this long (S3's rule).
pub const MIN_PART: u64 = 5 << 20;
/// The most parts an upload may have (S3's rule).
pub const MAX_PARTS: u32 = 10_000;
/// The size of the parts a commit assembles from staged pieces (when there is that much).
const ASSEMBLED_PART: u64 = 8 << 20;
/// Where the server keeps its own objects, under the store prefix.
pub const SERVE_DIR: &str = ".s3cache-serve/";

/// An upload in progress, as its pending object records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The entry's object name, where the multipart upload will complete.
    pub entry: String,
    pub upload_id: String,
    /// The random id in the upload's metadata, which completing it checks ([`ResumableUploads::complete`]).
    pub writer_id: String,
    pub scope: String,
    pub key: String,
    pub version: String,
    /// When it was reserved, in milliseconds since the epoch.
    pub created_ms: u64,
    /// The size a v1 client announced (`cacheSize`), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announced_size: Option<u64>,
    /// The number a v1 client names the upload by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v1_id: Option<u64>,
}

impl Pending {
    /// Whether it was reserved longer than `timeout` ago: abandoned.
    pub fn is_stale(&self, timeout: Duration) -> bool {
        now_ms().saturating_sub(self.created_ms) > timeout.as_millis() as u64
    }
}

/// Where a piece of an entry is in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// A v1 chunk: its first byte's offset.
    Offset(u64),
    /// A v2 block: its index in the block list.
    Block(u32),
}

/// Where a received piece is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Straight into this part of the upload.
    Part(u32),
    /// As an object of its own, to be copied into a part at commit.
    Staged(String),
}

/// Why a reservation failed.
#[derive(Debug, thiserror::Error)]
pub enum ReserveError {
    /// The entry exists, or another upload of it is in progress.
    #[error("an entry with this key and version exists or is being saved")]
    Exists,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why receiving a piece or committing failed.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The client's fault: the text says what (an answer of 400).
    #[error("{0}")]
    Client(String),
    /// Another writer's entry won the name.
    #[error("an entry with this key and version exists")]
    Exists,
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

fn sha256_hex(text: &str) -> String {
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// The pending object of the entry named `entry`.
pub fn pending_name(entry: &str) -> String {
    format!("{SERVE_DIR}pending/{}.json", sha256_hex(entry))
}

/// The object that maps a v1 upload number to its upload.
pub fn v1_name(id: u64) -> String {
    format!("{SERVE_DIR}v1/{id}.json")
}

/// Where the staged pieces of an upload live.
pub fn staged_prefix(upload_id: &str) -> String {
    format!("{SERVE_DIR}staged/{}/", &sha256_hex(upload_id)[..32])
}

fn staged_name(upload_id: &str, position: Position) -> String {
    match position {
        Position::Offset(offset) => format!("{}o{offset:020}", staged_prefix(upload_id)),
        Position::Block(index) => format!("{}b{index:010}", staged_prefix(upload_id)),
    }
}

pub fn parse_staged(name: &str) -> Option<Position> {
    let last = name.rsplit('/').next()?;
    match last.split_at_checked(1)? {
        ("o", digits) => digits.parse().ok().map(Position::Offset),
        ("b", digits) => digits.parse().ok().map(Position::Block),
        _ => None,
    }
}

/// Where a piece of `length` bytes at `position` goes. `whole`: it is the entire entry (a v2 Put
/// Blob, or a v1 chunk from 0 to the announced size), the only part; `last`: a v1 chunk that ends
/// where the announced size does.
pub fn place(upload_id: &str, position: Position, length: u64, whole: bool, last: bool) -> Result<Placement, String> {
    let part = match position {
        _ if whole => Some(1),
        Position::Offset(offset) if !last && length >= MIN_PART && offset % length == 0 => Some(offset / length + 1),
        Position::Block(index) if length >= MIN_PART => Some(u64::from(index) + 1),
        _ => None,
    };
    match part {
        Some(number) if number > u64::from(MAX_PARTS) => {
            Err(format!("the piece at {position:?} would be part {number}, over S3's {MAX_PARTS}; use larger chunks"))
        }
        Some(number) => Ok(Placement::Part(number as u32)),
        None => Ok(Placement::Staged(staged_name(upload_id, position))),
    }
}

/// Writes a small object whole; with `if_none_match`, fails with [`StoreError::AlreadyExists`] when the name is taken.
pub fn put_small(store: &dyn BlobStore, name: &str, bytes: &[u8], if_none_match: bool) -> Result<(), StoreError> {
    let mut upload = store.put(name, PutOptions { if_none_match })?;
    upload.write_all(bytes).map_err(|source| StoreError::Io { path: name.into(), source })?;
    upload.finish().map(drop)
}

/// Reads a small object whole; `None` when there is none.
pub fn read_small(store: &dyn BlobStore, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(info) = store.head(name)? else { return Ok(None) };
    let mut bytes = Vec::with_capacity(info.size as usize);
    store.read(&info, 0, info.size)?.read_to_end(&mut bytes).map_err(|source| StoreError::Io { path: name.into(), source })?;
    Ok(Some(bytes))
}

/// The pending object of `entry`, if any (one that cannot be parsed counts as none).
pub fn read_pending(store: &dyn BlobStore, name: &str) -> Result<Option<Pending>, StoreError> {
    Ok(read_small(store, name)?.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
}

/// The store's resumable uploads, or the error that says `serve` needs an S3 store.
pub fn resumable(store: &dyn BlobStore) -> Result<&dyn ResumableUploads, StoreError> {
    store.resumable().ok_or(StoreError::ReadOnly("this store has no multipart uploads; s3cache serve needs an s3:// store"))
}

/// Reserves the entry `entry` (of `key` and `version` in `scope`): starts its upload and writes its
/// What to reserve: the entry `entry` (of `key` and `version` in `scope`), the size the client
/// announced if it did, whether the client names uploads by number (v1), and after how long a pending
/// upload of the same entry counts as abandoned.
pub struct Reservation<'a> {
    pub entry: &'a str,
    pub scope: &'a str,
    pub key: &'a str,
    pub version: &'a str,
    pub announced_size: Option<u64>,
    pub timeout: Duration,
    pub v1_id: bool,
}

/// Makes a [`Reservation`]: starts the upload at the entry's name and writes its pending object (and
/// v1 number object). A pending object older than the timeout is abandoned and replaced.
pub fn reserve(store: &dyn BlobStore, reservation: &Reservation<'_>) -> Result<Pending, ReserveError> {
    let Reservation { entry, scope, key, version, announced_size, timeout, v1_id } = *reservation;
    let uploads = resumable(store)?;
    if store.head(entry)?.is_some() {
        return Err(ReserveError::Exists);
    }
    let pending_object = pending_name(entry);
    if let Some(existing) = read_pending(store, &pending_object)? {
        if !existing.is_stale(timeout) {
            return Err(ReserveError::Exists);
        }
        tracing::info!(entry = %existing.entry, "replacing an abandoned upload");
        discard(store, &existing)?;
    }
    let (upload_id, writer_id) = uploads.start(entry)?;
    let mut pending = Pending {
        entry: entry.to_owned(),
        upload_id,
        writer_id,
        scope: scope.to_owned(),
        key: key.to_owned(),
        version: version.to_owned(),
        created_ms: now_ms(),
        announced_size,
        v1_id: None,
    };
    let written = (|| {
        if v1_id {
            pending.v1_id = Some(write_v1_id(store, &pending)?);
        }
        put_small(store, &pending_object, &serde_json::to_vec(&pending).expect("pending serializes"), true)
    })();
    match written {
        Ok(()) => Ok(pending),
        Err(err) => {
            let _ = uploads.abort(entry, &pending.upload_id);
            if let Some(id) = pending.v1_id {
                let _ = store.delete(&v1_name(id));
            }
            Err(match err {
                StoreError::AlreadyExists(_) => ReserveError::Exists,
                other => ReserveError::Store(other),
            })
        }
    }
}

/// Draws a v1 number (a safe JavaScript integer, never 0) no other upload holds, and writes its object.
fn write_v1_id(store: &dyn BlobStore, pending: &Pending) -> Result<u64, StoreError> {
    let mut tries = 0;
    loop {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).expect("the operating system's random source");
        let id = (u64::from_le_bytes(bytes) >> 11).max(1);
        let record = Pending { v1_id: Some(id), ..pending.clone() };
        match put_small(store, &v1_name(id), &serde_json::to_vec(&record).expect("pending serializes"), true) {
            Err(StoreError::AlreadyExists(_)) if tries < 3 => tries += 1,
            result => return result.map(|()| id),
        }
    }
}

/// Stores a piece of exactly `length` bytes from `body` where `placement` says.
pub fn receive(
    store: &dyn BlobStore,
    pending_entry: &str,
    upload_id: &str,
    placement: &Placement,
    length: u64,
    body: &mut dyn Read,
) -> Result<(), UploadError> {
    match placement {
        Placement::Part(number) => match resumable(store)?.put_part(pending_entry, upload_id, *number, length, body) {
            Ok(_) => Ok(()),
            Err(StoreError::S3(err)) if err.code == "IncompleteBody" => Err(UploadError::Client(err.message)),
            Err(err) => Err(err.into()),
        },
        Placement::Staged(name) => {
            let mut upload = store.put(name, PutOptions::default())?;
            let copied =
                std::io::copy(&mut body.take(length), &mut upload).map_err(|source| StoreError::Io { path: name.into(), source })?;
            if copied != length {
                return Err(UploadError::Client(format!("the body held {copied} of the {length} bytes announced")));
            }
            upload.finish()?;
            Ok(())
        }
    }
}

/// A piece of the entry as the commit finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub offset: u64,
    pub size: u64,
    pub source: Source,
}

/// Where a piece is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Part { number: u32, etag: String },
    Staged(String),
}

/// A part of the completed upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinalPart {
    /// Stored already.
    Stored { number: u32, etag: String },
    /// To be copied from these byte ranges (name, start, end exclusive) of staged pieces.
    Assembled { number: u32, size: u64, slices: Vec<(String, u64, u64)> },
}

/// The pieces in entry order with their offsets, from the parts and staged objects found: checks
/// that they cover `0..total` exactly once. v1 pieces (`by_block` false) are placed by offset (a
/// part's is its number less one times its size), v2 blocks by index.
pub fn arrange(
    parts: Vec<(u32, u64, String)>,
    staged: Vec<(Position, u64, String)>,
    by_block: bool,
    total: u64,
) -> Result<Vec<Piece>, String> {
    let mut pieces: Vec<(u64, Piece)> = Vec::new();
    for (number, size, etag) in parts {
        let order = if by_block { u64::from(number) - 1 } else { (u64::from(number) - 1) * size };
        pieces.push((order, Piece { offset: order, size, source: Source::Part { number, etag } }));
    }
    for (position, size, name) in staged {
        let order = match position {
            Position::Offset(offset) => offset,
            Position::Block(index) => u64::from(index),
        };
        pieces.push((order, Piece { offset: order, size, source: Source::Staged(name) }));
    }
    pieces.sort_by_key(|(order, piece)| (*order, matches!(piece.source, Source::Staged(_))));
    let mut cursor = 0;
    let mut arranged: Vec<Piece> = Vec::new();
    for (expected_index, (order, mut piece)) in pieces.into_iter().enumerate() {
        if by_block {
            if order != expected_index as u64 {
                return Err(if order < expected_index as u64 {
                    format!("block {order} was stored twice, in two sizes")
                } else {
                    format!("block {expected_index} is missing")
                });
            }
            piece.offset = cursor;
        } else if piece.offset > cursor {
            return Err(format!("bytes {cursor}-{} are missing", piece.offset - 1));
        } else if piece.offset < cursor {
            return Err(format!("the chunk at {} overlaps the bytes before it (which end at {cursor})", piece.offset));
        }
        cursor += piece.size;
        arranged.push(piece);
    }
    match cursor.cmp(&total) {
        std::cmp::Ordering::Equal => Ok(arranged),
        std::cmp::Ordering::Less => Err(format!("bytes {cursor}-{} are missing", total - 1)),
        std::cmp::Ordering::Greater => Err(format!("{cursor} bytes were uploaded, more than the {total} committed")),
    }
}

/// The parts of the completed upload: stored parts as they are, runs of staged pieces copied into
/// parts of at least [`ASSEMBLED_PART`] bytes (or one part, when the run is shorter) numbered between
/// the stored parts around them.
pub fn plan(pieces: &[Piece]) -> Result<Vec<FinalPart>, String> {
    let mut parts = Vec::new();
    let mut previous_number = 0u32;
    let mut index = 0;
    while index < pieces.len() {
        if let Source::Part { number, etag } = &pieces[index].source {
            parts.push(FinalPart::Stored { number: *number, etag: etag.clone() });
            previous_number = *number;
            index += 1;
            continue;
        }
        let run_start = index;
        while index < pieces.len() && matches!(pieces[index].source, Source::Staged(_)) {
            index += 1;
        }
        let run = &pieces[run_start..index];
        let next_number = pieces.get(index).map(|p| match &p.source {
            Source::Part { number, .. } => *number,
            Source::Staged(_) => unreachable!("the run ends at a stored part"),
        });
        let run_bytes: u64 = run.iter().map(|p| p.size).sum();
        let (first, last) = (run[0].offset, run[0].offset + run_bytes - 1);
        if next_number.is_some() && run_bytes < MIN_PART {
            return Err(format!("bytes {first}-{last} arrived in pieces too small to store before the next part; use chunks of one size"));
        }
        let count = (run_bytes / ASSEMBLED_PART).max(1);
        let free = u64::from(next_number.unwrap_or(MAX_PARTS + 1) - previous_number - 1);
        if count > free {
            return Err(format!("bytes {first}-{last} need {count} parts where {free} are free; use chunks of one size"));
        }
        let mut slices = run.iter().map(|p| match &p.source {
            Source::Staged(name) => (name.clone(), p.size),
            Source::Part { .. } => unreachable!("runs are staged pieces"),
        });
        let mut current = slices.next();
        let mut used = 0;
        for n in 0..count {
            let size = if n + 1 == count { run_bytes - (run_bytes / count) * (count - 1) } else { run_bytes / count };
            let mut wanted = size;
            let mut part_slices = Vec::new();
            while wanted > 0 {
                let (name, piece_size) = current.clone().expect("the run holds the part's bytes");
                let take = (piece_size - used).min(wanted);
                part_slices.push((name, used, used + take));
                used += take;
                wanted -= take;
                if used == piece_size {
                    current = slices.next();
                    used = 0;
                }
            }
            previous_number += 1;
            parts.push(FinalPart::Assembled { number: previous_number, size, slices: part_slices });
        }
    }
    Ok(parts)
}

/// Completes `pending` as an entry of `total` bytes: arranges and plans its pieces, copies staged
/// runs into parts, completes the upload, and removes the staged, pending and v1 objects. A commit
/// that fails discards the upload, so that the key is free for the next attempt at once rather than
/// after the upload timeout: no client resumes an upload whose commit it saw fail.
pub fn commit(store: &dyn BlobStore, pending: &Pending, total: u64, blocks: bool) -> Result<(), UploadError> {
    let committed = try_commit(store, pending, total, blocks);
    if committed.is_err()
        && let Err(err) = discard(store, pending)
    {
        tracing::warn!(entry = %pending.entry, "could not discard an upload whose commit failed: {err}");
    }
    committed
}

fn try_commit(store: &dyn BlobStore, pending: &Pending, total: u64, blocks: bool) -> Result<(), UploadError> {
    let uploads = resumable(store)?;
    let parts = uploads.parts(&pending.entry, &pending.upload_id)?;
    let staged_objects = store.list(&staged_prefix(&pending.upload_id))?;
    let staged = staged_objects.iter().filter_map(|o| Some((parse_staged(&o.name)?, o.size, o.name.clone()))).collect();
    let parts = parts.into_iter().map(|p| (p.number, p.size, p.etag)).collect();
    let pieces = arrange(parts, staged, blocks, total).map_err(|why| UploadError::Client(format!("upload incomplete: {why}")))?;
    let plan = plan(&pieces).map_err(|why| UploadError::Client(format!("chunk layout not storable: {why}")))?;
    let mut completed = Vec::with_capacity(plan.len());
    for part in plan {
        match part {
            FinalPart::Stored { number, etag } => completed.push((number, etag)),
            FinalPart::Assembled { number, size, slices } => {
                let mut reader = StagedReader { store, slices: slices.into_iter(), current: None };
                let etag = uploads.put_part(&pending.entry, &pending.upload_id, number, size, &mut reader)?;
                completed.push((number, etag));
            }
        }
    }
    match uploads.complete(&pending.entry, &pending.upload_id, &pending.writer_id, &completed, total) {
        Err(StoreError::AlreadyExists(_)) => return Err(UploadError::Exists),
        result => result?,
    }
    remove_records(store, pending, &staged_objects);
    Ok(())
}

/// Reads byte ranges of staged objects one after another.
struct StagedReader<'a, I: Iterator<Item = (String, u64, u64)>> {
    store: &'a dyn BlobStore,
    slices: I,
    current: Option<Box<dyn Read + Send>>,
}

impl<I: Iterator<Item = (String, u64, u64)>> Read for StagedReader<'_, I> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some(reader) = &mut self.current {
                let n = reader.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
                self.current = None;
            }
            let Some((name, start, end)) = self.slices.next() else { return Ok(0) };
            let info = ObjectInfo { name, size: end, modified: UNIX_EPOCH };
            self.current = Some(self.store.read(&info, start, end).map_err(std::io::Error::other)?);
        }
    }
}

/// Aborts `pending`'s upload and removes its staged, pending and v1 objects.
pub fn discard(store: &dyn BlobStore, pending: &Pending) -> Result<(), StoreError> {
    resumable(store)?.abort(&pending.entry, &pending.upload_id)?;
    let staged = store.list(&staged_prefix(&pending.upload_id))?;
    remove_records(store, pending, &staged);
    Ok(())
}

fn remove_records(store: &dyn BlobStore, pending: &Pending, staged: &[ObjectInfo]) {
    let mut names: Vec<String> = staged.iter().map(|o| o.name.clone()).collect();
    names.push(pending_name(&pending.entry));
    names.extend(pending.v1_id.map(v1_name));
    for name in names {
        if let Err(err) = store.delete(&name) {
            tracing::warn!(object = %name, "could not remove an upload's record: {err}");
        }
    }
}

/// Aborts the uploads whose pending objects are older than `timeout` and removes every record the
/// server keeps that is older than that; returns how many uploads it aborted.
pub fn sweep(store: &dyn BlobStore, timeout: Duration) -> Result<usize, StoreError> {
    let now = SystemTime::now();
    let old = |o: &ObjectInfo| now.duration_since(o.modified).is_ok_and(|age| age > timeout);
    let mut aborted = 0;
    for object in store.list(&format!("{SERVE_DIR}pending/"))?.into_iter().filter(old) {
        if let Some(pending) = read_pending(store, &object.name)?
            && pending.is_stale(timeout)
        {
            discard(store, &pending)?;
            aborted += 1;
        }
    }
    for object in store.list(SERVE_DIR)?.into_iter().filter(old) {
        if !object.name.starts_with(&format!("{SERVE_DIR}pending/")) {
            store.delete(&object.name)?;
        }
    }
    Ok(aborted)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn part(number: u32, size: u64) -> (u32, u64, String) {
        (number, size, format!("e{number}"))
    }

    #[test]
    fn places_pieces() {
        let staged = |p| Ok(Placement::Staged(staged_name("u", p)));
        assert_eq!(place("u", Position::Offset(32 * MIB), 8 * MIB, false, false), Ok(Placement::Part(5)));
        assert_eq!(place("u", Position::Offset(32 * MIB), 6 * MIB, false, true), staged(Position::Offset(32 * MIB)));
        assert_eq!(place("u", Position::Offset(5 * MIB), 6 * MIB, false, false), staged(Position::Offset(5 * MIB)));
        assert_eq!(place("u", Position::Offset(64 * MIB), MIB, false, false), staged(Position::Offset(64 * MIB)));
        assert_eq!(place("u", Position::Offset(0), 100, true, true), Ok(Placement::Part(1)));
        assert_eq!(place("u", Position::Block(3), 64 * MIB, false, false), Ok(Placement::Part(4)));
        assert_eq!(place("u", Position::Block(3), MIB, false, false), staged(Position::Block(3)));
        assert!(place("u", Position::Block(10_000), 64 * MIB, false, false).unwrap_err().contains("over S3's 10000"));
        assert_eq!(parse_staged(&staged_name("u", Position::Offset(5))), Some(Position::Offset(5)));
        assert_eq!(parse_staged(&staged_name("u", Position::Block(7))), Some(Position::Block(7)));
    }

    /// The toolkit's v1 upload: 8 MiB chunks as parts 1-3, the last one staged and assembled as part 4.
    #[test]
    fn v1_chunks_with_a_staged_tail() {
        let parts = vec![part(1, 8 * MIB), part(2, 8 * MIB), part(3, 8 * MIB)];
        let staged = vec![(Position::Offset(24 * MIB), 3 * MIB, "s/o24".to_owned())];
        let pieces = arrange(parts, staged, false, 27 * MIB).unwrap();
        let planned = plan(&pieces).unwrap();
        assert_eq!(
            planned,
            vec![
                FinalPart::Stored { number: 1, etag: "e1".into() },
                FinalPart::Stored { number: 2, etag: "e2".into() },
                FinalPart::Stored { number: 3, etag: "e3".into() },
                FinalPart::Assembled { number: 4, size: 3 * MIB, slices: vec![("s/o24".into(), 0, 3 * MIB)] },
            ]
        );
        assert_eq!(
            arrange(vec![part(1, 8 * MIB), part(3, 8 * MIB)], vec![], false, 24 * MIB),
            Err("bytes 8388608-16777215 are missing".into())
        );
        assert_eq!(arrange(vec![part(1, 8 * MIB)], vec![], false, 9 * MIB), Err("bytes 8388608-9437183 are missing".into()));
        assert_eq!(
            arrange(vec![part(1, 8 * MIB), part(2, 6 * MIB)], vec![], false, 14 * MIB),
            Err("the chunk at 6291456 overlaps the bytes before it (which end at 8388608)".into())
        );
    }

    /// buildx's v2 upload: 1 MiB blocks, all staged, joined into 8 MiB parts and a remainder.
    #[test]
    fn small_v2_blocks_are_assembled() {
        let staged: Vec<_> = (0..20).map(|i| (Position::Block(i), MIB, format!("s/b{i}"))).collect();
        let pieces = arrange(vec![], staged, true, 20 * MIB).unwrap();
        let planned = plan(&pieces).unwrap();
        assert_eq!(planned.len(), 2);
        let FinalPart::Assembled { number: 1, size, slices } = &planned[0] else { panic!("{planned:?}") };
        assert_eq!((*size, slices.len(), slices[0].clone()), (10 * MIB, 10, ("s/b0".to_owned(), 0, MIB)));
        let FinalPart::Assembled { number: 2, size, slices } = &planned[1] else { panic!("{planned:?}") };
        assert_eq!((*size, slices.first().unwrap().0.as_str(), slices.len()), (10 * MIB, "s/b10", 10));
        assert_eq!(arrange(vec![], vec![(Position::Block(1), MIB, "b1".into())], true, MIB), Err("block 0 is missing".into()));
    }

    /// The toolkit's v2 upload: 64 MiB blocks stored as parts, the short last one staged.
    #[test]
    fn large_v2_blocks_are_parts() {
        let parts = vec![part(1, 64 * MIB), part(2, 64 * MIB)];
        let pieces = arrange(parts, vec![(Position::Block(2), 8 * MIB, "s/b2".into())], true, 136 * MIB).unwrap();
        assert_eq!(pieces[2].offset, 128 * MIB);
        let planned = plan(&pieces).unwrap();
        assert_eq!(planned[2], FinalPart::Assembled { number: 3, size: 8 * MIB, slices: vec![("s/b2".into(), 0, 8 * MIB)] });
    }

    /// A run of staged pieces too short to be a part, before a stored part, cannot be stored.
    #[test]
    fn unstorable_layouts_are_named() {
        let pieces = vec![
            Piece { offset: 0, size: 6 * MIB, source: Source::Part { number: 1, etag: "a".into() } },
            Piece { offset: 6 * MIB, size: 2 * MIB, source: Source::Staged("s".into()) },
            Piece { offset: 8 * MIB, size: 8 * MIB, source: Source::Part { number: 2, etag: "b".into() } },
        ];
        assert_eq!(
            plan(&pieces),
            Err("bytes 6291456-8388607 arrived in pieces too small to store before the next part; use chunks of one size".into())
        );
    }
}
