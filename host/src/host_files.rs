//! The guest's `host-files` import: hashing and extraction writes done natively, beneath the guest's
//! own preopens.
//!
//! The guest decides which files and names; this module only does the I/O, faster than WASI can
//! (SHA extensions, parallel reads, no per-call WASI overhead, a writer thread that overlaps with
//! decoding). It grants nothing new: each call names a preopen by its guest path, every relative path
//! is re-validated with the policy crate, and files are opened through `cap-std`, which resolves them
//! strictly beneath that directory (no `..`, no symlink escapes). Writes go only to writable preopens
//! and only create: a file that exists is an error.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use cap_std::ambient_authority;
use cap_std::fs::{Dir, File, OpenOptions};
use sha2::{Digest, Sha256};

use crate::bindings::s3cache::guest::host_files::{Host, WriteOp};
use crate::bindings::s3cache::guest::types::IoError;
use crate::sandbox::Preopen;

/// Batches the guest may queue ahead of the writer thread (each at most about 1 MiB).
const QUEUED_BATCHES: usize = 16;
const READ_BUFFER: usize = 256 * 1024;

/// The `host-files` state of one guest instance.
#[derive(Debug)]
pub struct HostFiles {
    preopens: Vec<Preopen>,
    writer: Option<Writer>,
}

impl HostFiles {
    pub fn new(preopens: &[Preopen]) -> Self {
        Self { preopens: preopens.to_vec(), writer: None }
    }

    fn preopen(&self, guest_dir: &str, writable: bool) -> Result<&Preopen, IoError> {
        self.preopens
            .iter()
            .find(|p| p.guest == guest_dir && (p.writable || !writable))
            .ok_or_else(|| io_error(guest_dir, if writable { "not a writable preopen" } else { "not a preopen" }))
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
    fn sha256(&mut self, dir: String, relatives: Vec<String>) -> Result<Vec<Vec<u8>>, IoError> {
        let files = &self.files;
        let preopen = files.preopen(&dir, false)?;
        let root = open_dir(preopen)?;
        let paths = relatives.iter().map(|r| checked(&dir, r)).collect::<Result<Vec<_>, _>>()?;
        sha256_parallel(&root, &paths).map_err(|(i, e)| io_error(&format!("{dir}/{}", relatives[i]), e))
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

/// The writer thread of one extraction. After the first failure it keeps draining (so the guest never
/// blocks on a full queue) but applies nothing more; the failure is reported by the next call.
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

fn apply_batches(receiver: Receiver<Batch>, failure: &Mutex<Option<IoError>>) {
    let mut dirs: HashMap<String, Dir> = HashMap::new();
    let mut current: Option<(String, File)> = None;
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
            *failure.lock().expect("failure lock") = Some(err);
        }
    }
}

fn apply(dir: &Dir, guest: &str, op: WriteOp, current: &mut Option<(String, File)>) -> Result<(), IoError> {
    match op {
        WriteOp::Directory(relative) => {
            *current = None;
            let path = checked(guest, &relative)?;
            dir.create_dir_all(&path).map_err(|e| io_error(&format!("{guest}/{relative}"), e))
        }
        WriteOp::File((relative, contents)) => {
            let path = checked(guest, &relative)?;
            let shown = format!("{guest}/{relative}");
            let mut file = dir.open_with(&path, OpenOptions::new().write(true).create_new(true)).map_err(|e| io_error(&shown, e))?;
            file.write_all(&contents).map_err(|e| io_error(&shown, e))?;
            *current = Some((shown, file));
            Ok(())
        }
        WriteOp::Append(bytes) => {
            let (shown, file) = current.as_mut().ok_or_else(|| io_error(guest, "append without a file"))?;
            file.write_all(&bytes).map_err(|e| io_error(shown, e))
        }
    }
}
