//! Binds the pure modules to the WIT world: the exported `keys` and `archive` interfaces, the host's
//! `archive-io` stream adapted to `Read`/`Write`, and `host-files` behind the `files` traits.

use std::io::{self, Read, Write};

use crate::bindings::exports::s3cache::guest::{archive, keys};
use crate::bindings::s3cache::guest::host_files::{self, NewFile, WriteOp};
use crate::bindings::s3cache::guest::types::Error;
use crate::bindings::s3cache::guest::{archive_io, environment};
use crate::bindings::{
    Compression, Member, PackOptions, PackSummary, Resolution, Root, TemplateContext, Timestamp, UnpackLimits, UnpackReport,
};
use crate::files::{Digests, Directories, EntryKind, FileReader, Listing, StagingWriter};
use crate::unpack::SourceFailed;
use crate::{GuestError, pack, template, unpack, walk};

struct Component;

impl keys::Guest for Component {
    fn resolve(template: String, context: TemplateContext, roots: Vec<Root>) -> Result<Resolution, Error> {
        let key = template::render(&template, &context, &|name: &str| environment::get(name), &HostFiles)?;
        let found = walk::find(&roots, &HostFiles)?;
        Ok(Resolution { key, found })
    }
}

impl archive::Guest for Component {
    fn pack(roots: Vec<Root>, members: Vec<Member>, options: PackOptions) -> Result<PackSummary, Error> {
        Ok(pack::pack(&roots, &members, &options, &HostFiles, HostSink)?)
    }

    fn unpack(roots: Vec<Root>, compression: Compression, limits: UnpackLimits) -> Result<UnpackReport, Error> {
        Ok(unpack::unpack(&roots, compression, &limits, HostSource, &mut HostWriter::default(), 1 << 20)?)
    }

    fn decompress(compression: Compression, limits: UnpackLimits) -> Result<u64, Error> {
        Ok(unpack::decompress(compression, &limits, HostSource, HostSink, DECOMPRESSED_CHUNK)?)
    }
}

/// Bytes per `archive-io.write` of decompressed output: large enough that crossings are few, small
/// enough that the host's queues of them stay small.
const DECOMPRESSED_CHUNK: usize = 256 << 10;

/// `archive-io.write` as a `Write`.
struct HostSink;

impl Write for HostSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        archive_io::write(buf).map_err(io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `archive-io.read` as a `Read`. Host errors are marked so they are not mistaken for corrupt data.
struct HostSource;

impl Read for HostSource {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let max = buf.len().min(u32::MAX as usize) as u32;
        let chunk = archive_io::read(max).map_err(|e| io::Error::other(SourceFailed(e)))?;
        if chunk.len() > buf.len() {
            return Err(io::Error::other(SourceFailed(format!("host returned {} bytes for a read of {max}", chunk.len()))));
        }
        buf[..chunk.len()].copy_from_slice(&chunk);
        Ok(chunk.len())
    }
}

/// `host-files.read-dir` and `host-files.sha256`: the host lists and hashes natively (hashing in parallel).
struct HostFiles;

impl Digests for HostFiles {
    fn sha256(&self, dir: &str, relatives: &[String]) -> Result<Vec<[u8; 32]>, GuestError> {
        let digests = host_files::sha256(dir, relatives).map_err(io_error)?;
        if digests.len() != relatives.len() {
            return Err(GuestError::Other(format!("the host returned {} digests for {} files", digests.len(), relatives.len())));
        }
        digests
            .into_iter()
            .map(|d| d.try_into().map_err(|_| GuestError::Other("the host returned a digest that is not 32 bytes".into())))
            .collect()
    }
}

impl Directories for HostFiles {
    fn read_dir(&self, dir: &str, relative: &str) -> Result<Listing, GuestError> {
        let listing = host_files::read_dir(dir, relative).map_err(io_error)?;
        let entries = listing
            .entries
            .into_iter()
            .map(|e| {
                let kind = match e.kind {
                    host_files::EntryKind::File => EntryKind::File,
                    host_files::EntryKind::Directory => EntryKind::Directory,
                    host_files::EntryKind::Symlink => EntryKind::Symlink,
                    host_files::EntryKind::Other => EntryKind::Other,
                };
                (e.name, kind)
            })
            .collect();
        Ok(Listing { entries, skipped: listing.skipped })
    }
}

impl FileReader for HostFiles {
    fn read_files(&self, dir: &str, files: &[(String, u64)]) -> Result<Vec<Vec<u8>>, GuestError> {
        host_files::read_files(dir, files).map_err(io_error)
    }
}

fn io_error(err: host_files::IoError) -> GuestError {
    GuestError::Io { path: err.path, message: err.message }
}

/// Batches queued per `host-files.write` call: few boundary crossings, bounded memory.
const BATCH_BYTES: usize = 1 << 20;
const BATCH_OPS: usize = 512;

/// `host-files.write` as a [`StagingWriter`]: operations are batched per staging directory and the host
/// applies them on its writer thread.
#[derive(Default)]
struct HostWriter {
    dir: String,
    ops: Vec<WriteOp>,
    bytes: usize,
}

impl HostWriter {
    fn push(&mut self, dir: &str, op: WriteOp) -> Result<(), GuestError> {
        if dir != self.dir {
            self.flush()?;
            dir.clone_into(&mut self.dir);
        }
        self.ops.push(op);
        if self.ops.len() >= BATCH_OPS || self.bytes >= BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), GuestError> {
        if !self.ops.is_empty() {
            host_files::write(&self.dir, &self.ops).map_err(io_error)?;
            self.ops.clear();
            self.bytes = 0;
        }
        Ok(())
    }
}

impl StagingWriter for HostWriter {
    fn directory(&mut self, dir: &str, relative: &str) -> Result<(), GuestError> {
        self.push(dir, WriteOp::Directory(relative.to_owned()))
    }

    fn create(&mut self, dir: &str, relative: &str, mode: u32, mtime: Timestamp) -> Result<(), GuestError> {
        self.push(dir, WriteOp::File(NewFile { relative: relative.to_owned(), contents: Vec::new(), mode, mtime }))
    }

    fn append(&mut self, bytes: &[u8]) -> Result<(), GuestError> {
        self.bytes += bytes.len();
        // A small file travels whole in its `file` op.
        if let Some(WriteOp::File(NewFile { contents, .. }) | WriteOp::Append(contents)) = self.ops.last_mut() {
            contents.extend_from_slice(bytes);
            if self.bytes >= BATCH_BYTES {
                self.flush()?;
            }
            return Ok(());
        }
        let dir = self.dir.clone();
        self.push(&dir, WriteOp::Append(bytes.to_vec()))
    }

    fn finish(&mut self) -> Result<(), GuestError> {
        self.flush()?;
        host_files::finish().map_err(io_error)
    }
}

crate::bindings::export!(Component with_types_in crate::bindings);
