//! The guest's `host-files` import: directory listings, hashing and extraction writes done natively,
//! beneath the guest's own preopens.
//!
//! The guest decides which files and names; this module only does the I/O, faster than WASI can
//! (SHA extensions, parallel reads, no per-call WASI overhead, writer threads that overlap with
//! decoding and create files on every core). It grants nothing new: each call names a preopen by its
//! guest path, every relative path is re-validated with the policy crate, and files are opened through
//! `cap-std`, which resolves them strictly beneath that directory (no `..`, no symlink escapes).
//! Writes go only to writable preopens and only create: a file that exists is an error.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use cap_std::ambient_authority;
use cap_std::fs::{Dir, File, OpenOptions};
use sha2::{Digest, Sha256};

use crate::sandbox::Preopen;
use crate::sandbox::bindings::s3cache::guest::host_files::{DirEntry, DirListing, EntryKind, Host, NewFile, WriteOp};
use crate::sandbox::bindings::s3cache::guest::types::IoError;
use crate::sandbox::bindings::s3cache::guest::types::Timestamp;
use crate::sandbox::stat_ahead::{Lstats, StatAhead};

/// Batches the guest may queue ahead of the writer thread (each at most about 1 MiB).
const QUEUED_BATCHES: usize = 16;
const READ_BUFFER: usize = 256 * 1024;

/// The `host-files` state of one guest instance.
#[derive(Debug)]
pub struct HostFiles {
    preopens: Vec<Preopen>,
    /// Preopens opened for listing and reading, by guest path.
    opened: HashMap<String, Dir>,
    writer: Option<Writer>,
    /// While a save's walk runs: the `lstat`s of what it lists.
    stat_ahead: Option<StatAhead>,
}

impl HostFiles {
    pub fn new(preopens: &[Preopen]) -> Self {
        Self { preopens: preopens.to_vec(), opened: HashMap::new(), writer: None, stat_ahead: None }
    }

    /// From now on, every listing's entries are `lstat`ed on another core ([`StatAhead`]).
    pub fn start_stat_ahead(&mut self) {
        self.stat_ahead = Some(StatAhead::start());
    }

    /// The `lstat`s taken since [`Self::start_stat_ahead`], which this stops.
    pub fn finish_stat_ahead(&mut self) -> Lstats {
        self.stat_ahead.take().map(StatAhead::finish).unwrap_or_default()
    }

    fn preopen(&self, guest_dir: &str, writable: bool) -> Result<&Preopen, IoError> {
        self.preopens
            .iter()
            .find(|p| p.guest == guest_dir && (p.writable || !writable))
            .ok_or_else(|| io_error(guest_dir, if writable { "not a writable preopen" } else { "not a preopen" }))
    }
}

impl HostFiles {
    /// The preopen mounted at `guest_dir`, opened once for reading.
    fn readable(&mut self, guest_dir: &str) -> Result<&Dir, IoError> {
        if !self.opened.contains_key(guest_dir) {
            let dir = open_dir(self.preopen(guest_dir, false)?)?;
            self.opened.insert(guest_dir.to_owned(), dir);
        }
        Ok(&self.opened[guest_dir])
    }
}

fn io_error(path: &str, message: impl ToString) -> IoError {
    IoError { path: path.to_owned(), message: message.to_string() }
}

/// A relative path the policy accepts, as a `cap-std` path; `guest_dir` is only for messages.
fn checked(guest_dir: &str, relative: &str) -> Result<PathBuf, IoError> {
    let path = s3cache_policy::validate_relative(relative).map_err(|v| io_error(&format!("{guest_dir}/{relative}"), v))?;
    if path.components().is_empty() {
        return Err(io_error(guest_dir, "the preopen itself is not a file"));
    }
    Ok(PathBuf::from(path.as_joined()))
}

fn open_dir(preopen: &Preopen) -> Result<Dir, IoError> {
    Dir::open_ambient_dir(&preopen.host, ambient_authority()).map_err(|e| io_error(&preopen.guest, e))
}

impl Host for crate::sandbox::GuestState {
    fn read_dir(&mut self, dir: String, relative: String) -> Result<DirListing, IoError> {
        let shown = if relative.is_empty() { dir.clone() } else { format!("{dir}/{relative}") };
        let stat_ahead = self.files.stat_ahead.is_some();
        let root = self.files.readable(&dir)?;
        let below;
        let listed = if relative.is_empty() {
            root
        } else {
            below = root.open_dir(checked(&dir, &relative)?).map_err(|e| io_error(&shown, e))?;
            &below
        };
        let mut listing = DirListing { entries: Vec::new(), skipped: Vec::new() };
        for entry in listed.entries().map_err(|e| io_error(&shown, e))? {
            let entry = entry.map_err(|e| io_error(&shown, e))?;
            let file_type = entry.file_type().map_err(|e| io_error(&shown, e))?;
            let kind = if file_type.is_dir() {
                EntryKind::Directory
            } else if file_type.is_symlink() {
                EntryKind::Symlink
            } else if file_type.is_file() {
                EntryKind::File
            } else {
                EntryKind::Other
            };
            match entry.file_name().into_string() {
                Ok(name) => listing.entries.push(DirEntry { name, kind }),
                Err(name) => listing.skipped.push(name.to_string_lossy().into_owned()),
            }
        }
        listing.entries.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        // For a save's walk, a duplicate of the descriptor this listing used, to `lstat` the entries by name in.
        let duplicate = if stat_ahead { listed.try_clone().ok() } else { None };
        if let (Some(ahead), Some(duplicate)) = (&self.files.stat_ahead, duplicate) {
            ahead.listed(&dir, &relative, duplicate.into(), listing.entries.iter().map(|e| e.name.as_str()));
        }
        Ok(listing)
    }

    fn sha256(&mut self, dir: String, relatives: Vec<String>) -> Result<Vec<Vec<u8>>, IoError> {
        let paths = relatives.iter().map(|r| checked(&dir, r)).collect::<Result<Vec<_>, _>>()?;
        let root = self.files.readable(&dir)?;
        sha256_parallel(root, &paths).map_err(|(i, e)| io_error(&format!("{dir}/{}", relatives[i]), e))
    }

    fn read_files(&mut self, dir: String, files: Vec<(String, u64)>) -> Result<Vec<Vec<u8>>, IoError> {
        let root = self.files.readable(&dir)?;
        files
            .iter()
            .map(|(relative, size)| {
                let shown = format!("{dir}/{relative}");
                let file = root.open(checked(&dir, relative)?).map_err(|e| io_error(&shown, e))?;
                // Read into spare capacity: no zeroing of bytes that are about to be overwritten.
                let mut contents = Vec::with_capacity(*size as usize);
                file.take(*size).read_to_end(&mut contents).map_err(|e| io_error(&shown, e))?;
                if contents.len() as u64 != *size {
                    let read = contents.len();
                    return Err(io_error(&shown, format!("file shrank while it was archived: {read} of {size} bytes")));
                }
                Ok(contents)
            })
            .collect()
    }

    fn write(&mut self, dir: String, ops: Vec<WriteOp>) -> Result<(), IoError> {
        let files = &mut self.files;
        let preopen = files.preopen(&dir, true)?.clone();
        let writer = match &mut files.writer {
            Some(writer) => writer,
            None => files.writer.insert(Writer::start()),
        };
        writer.send(Batch { preopen, ops })
    }

    fn finish(&mut self) -> Result<(), IoError> {
        match self.files.writer.take() {
            Some(writer) => writer.finish(),
            None => Ok(()),
        }
    }
}

/// SHA-256 of each path under `root`, read on every core; on failure, the index of the file and why.
fn sha256_parallel(root: &Dir, paths: &[PathBuf]) -> Result<Vec<Vec<u8>>, (usize, std::io::Error)> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(paths.len().div_ceil(64)).max(1);
    let per_thread = paths.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = paths
            .chunks(per_thread)
            .enumerate()
            .map(|(chunk, slice)| {
                scope.spawn(move || {
                    let mut buffer = vec![0u8; READ_BUFFER];
                    slice
                        .iter()
                        .enumerate()
                        .map(|(i, path)| sha256_file(root, path, &mut buffer).map_err(|e| (chunk * per_thread + i, e)))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut digests = Vec::with_capacity(paths.len());
        for handle in handles {
            digests.extend(handle.join().expect("hashing thread panicked")?);
        }
        Ok(digests)
    })
}

fn sha256_file(root: &Dir, path: &Path, buffer: &mut [u8]) -> std::io::Result<Vec<u8>> {
    let mut file = root.open(path)?;
    let mut hasher = Sha256::new();
    loop {
        match file.read(buffer) {
            Ok(0) => return Ok(hasher.finalize().to_vec()),
            Ok(n) => hasher.update(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Operations for one preopen, in order.
struct Batch {
    preopen: Preopen,
    ops: Vec<WriteOp>,
}

/// The writer threads of one extraction: one takes the guest's batches in order, creates directories
/// itself and deals the files out to [`file_writers`] threads (a file and its appends to one of them),
/// so that a tree of many small files is created on every core. After the first failure they keep
/// draining (so the guest never blocks on a full queue) but apply nothing more; the failure is
/// reported by the next call.
#[derive(Debug)]
struct Writer {
    sender: Option<SyncSender<Batch>>,
    thread: Option<JoinHandle<()>>,
    failure: Arc<Mutex<Option<IoError>>>,
}

impl Writer {
    fn start() -> Self {
        let (sender, receiver) = sync_channel(QUEUED_BATCHES);
        let failure = Arc::new(Mutex::new(None));
        let recorded = failure.clone();
        let thread = std::thread::spawn(move || apply_batches(receiver, &recorded));
        Self { sender: Some(sender), thread: Some(thread), failure }
    }

    fn failed(&self) -> Result<(), IoError> {
        match self.failure.lock().expect("failure lock").clone() {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    fn send(&mut self, batch: Batch) -> Result<(), IoError> {
        self.failed()?;
        let sender = self.sender.as_ref().expect("sender lives until finish");
        if sender.send(batch).is_err() {
            return Err(io_error("staging", "the writer thread stopped"));
        }
        Ok(())
    }

    fn finish(mut self) -> Result<(), IoError> {
        self.stop();
        self.failed()
    }

    fn stop(&mut self) {
        drop(self.sender.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            self.failure.lock().expect("failure lock").get_or_insert_with(|| io_error("staging", "the writer thread panicked"));
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The file being written, and the mode and mtime it gets once complete.
struct OpenFile {
    shown: String,
    file: File,
    mode: u32,
    mtime: Timestamp,
}

impl OpenFile {
    /// Applies the mode (sanitized again) and mtime through the open descriptor, then closes it.
    fn complete(self) -> Result<(), IoError> {
        use std::os::unix::fs::PermissionsExt;
        let file = self.file.into_std();
        let mode = s3cache_policy::sanitize_mode(self.mode, false);
        file.set_permissions(std::fs::Permissions::from_mode(mode)).map_err(|e| io_error(&self.shown, e))?;
        let time = system_time(self.mtime);
        file.set_times(std::fs::FileTimes::new().set_modified(time).set_accessed(time)).map_err(|e| io_error(&self.shown, e))
    }
}

fn system_time(time: Timestamp) -> std::time::SystemTime {
    let nanos = std::time::Duration::from_nanos(u64::from(time.nanoseconds));
    if time.seconds >= 0 {
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(time.seconds as u64) + nanos
    } else {
        std::time::UNIX_EPOCH - std::time::Duration::from_secs(time.seconds.unsigned_abs()) + nanos
    }
}

/// Completes the open file, if any.
fn complete(current: &mut Option<OpenFile>) -> Result<(), IoError> {
    current.take().map_or(Ok(()), OpenFile::complete)
}

/// Threads that create files, beside the one that deals them out: one per core, at most 4.
fn file_writers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4)
}

/// Creates each batch's directories in order and deals its files out to the file writers. A file's
/// parent directories come in earlier operations, so they exist before any writer gets the file.
fn apply_batches(receiver: Receiver<Batch>, failure: &Mutex<Option<IoError>>) {
    let writers = file_writers();
    std::thread::scope(|scope| {
        let senders: Vec<SyncSender<Batch>> = (0..writers)
            .map(|_| {
                let (sender, receiver) = sync_channel(QUEUED_BATCHES);
                scope.spawn(move || write_files(receiver, failure));
                sender
            })
            .collect();
        let mut dirs: HashMap<String, Dir> = HashMap::new();
        // The writer of the file that `append`s continue.
        let mut writer = 0;
        for batch in receiver {
            if failure.lock().expect("failure lock").is_some() {
                continue;
            }
            let guest = batch.preopen.guest.clone();
            let mut shares: Vec<Vec<WriteOp>> = (0..writers).map(|_| Vec::new()).collect();
            let dir = match dirs.get(&guest) {
                Some(dir) => Ok(dir),
                None => open_dir(&batch.preopen).map(|dir| &*dirs.entry(guest.clone()).or_insert(dir)),
            };
            let dealt = dir.and_then(|dir| {
                batch.ops.into_iter().try_for_each(|op| {
                    match op {
                        WriteOp::Directory(_) => return apply(dir, &guest, op, &mut None),
                        WriteOp::File(_) => writer = (writer + 1) % writers,
                        WriteOp::Append(_) => {}
                    }
                    shares[writer].push(op);
                    Ok(())
                })
            });
            if let Err(err) = dealt {
                failure.lock().expect("failure lock").get_or_insert(err);
                continue;
            }
            for (sender, ops) in senders.iter().zip(shares) {
                if !ops.is_empty() {
                    // A writer that stopped has recorded why; the next call reports it.
                    let _ = sender.send(Batch { preopen: batch.preopen.clone(), ops });
                }
            }
        }
    });
}

/// Applies the files dealt to one writer, in order.
fn write_files(receiver: Receiver<Batch>, failure: &Mutex<Option<IoError>>) {
    let mut dirs: HashMap<String, Dir> = HashMap::new();
    let mut current: Option<OpenFile> = None;
    for batch in receiver {
        if failure.lock().expect("failure lock").is_some() {
            continue;
        }
        let guest = batch.preopen.guest.clone();
        let result = match dirs.get(&guest) {
            Some(dir) => Ok(dir),
            None => open_dir(&batch.preopen).map(|dir| &*dirs.entry(guest.clone()).or_insert(dir)),
        }
        .and_then(|dir| batch.ops.into_iter().try_for_each(|op| apply(dir, &guest, op, &mut current)));
        if let Err(err) = result {
            current = None;
            failure.lock().expect("failure lock").get_or_insert(err);
        }
    }
    if let Err(err) = complete(&mut current) {
        failure.lock().expect("failure lock").get_or_insert(err);
    }
}

fn apply(dir: &Dir, guest: &str, op: WriteOp, current: &mut Option<OpenFile>) -> Result<(), IoError> {
    match op {
        WriteOp::Directory(relative) => {
            complete(current)?;
            let path = checked(guest, &relative)?;
            dir.create_dir_all(&path).map_err(|e| io_error(&format!("{guest}/{relative}"), e))
        }
        WriteOp::File(NewFile { relative, contents, mode, mtime }) => {
            complete(current)?;
            let path = checked(guest, &relative)?;
            let shown = format!("{guest}/{relative}");
            let mut file = dir.open_with(&path, OpenOptions::new().write(true).create_new(true)).map_err(|e| io_error(&shown, e))?;
            file.write_all(&contents).map_err(|e| io_error(&shown, e))?;
            *current = Some(OpenFile { shown, file, mode, mtime });
            Ok(())
        }
        WriteOp::Append(bytes) => {
            let open = current.as_mut().ok_or_else(|| io_error(guest, "append without a file"))?;
            open.file.write_all(&bytes).map_err(|e| io_error(&open.shown, e))
        }
    }
}
