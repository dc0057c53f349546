//! The file services the hot paths delegate: listing directories for the walk, hashing files for
//! keys, and writing extracted members into staging.
//!
//! Per-file WASI calls cost several times a native syscall and wasm has no SHA extensions, so in the
//! component these go to the host's `host-files` import, which does them natively beneath the same
//! preopens (see `component`). [`LocalFiles`] is the same contract over `std::fs`, used by native
//! builds and tests. Either way the guest keeps every decision: which files, which names, in which
//! order, and what the policy allows.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::GuestError;
use crate::bindings::Timestamp;

/// What a directory entry is (symlinks are not followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Directory,
    Symlink,
    /// A socket, FIFO or device: never cached.
    Other,
}

impl EntryKind {
    /// The kind of a `symlink_metadata` file type.
    pub fn of(file_type: std::fs::FileType) -> Self {
        if file_type.is_dir() {
            Self::Directory
        } else if file_type.is_symlink() {
            Self::Symlink
        } else if file_type.is_file() {
            Self::File
        } else {
            Self::Other
        }
    }
}

/// One directory's entries, sorted by name, and the names left out because they are not UTF-8.
#[derive(Debug, Default)]
pub struct Listing {
    pub entries: Vec<(String, EntryKind)>,
    pub skipped: Vec<String>,
}

/// Directory listings under a directory the guest can read.
pub trait Directories {
    /// The entries of `relative` (empty: `dir` itself) under `dir`.
    fn read_dir(&self, dir: &str, relative: &str) -> Result<Listing, GuestError>;
}

/// SHA-256 of files under a directory the guest can read.
pub trait Digests {
    /// The digest of each of `relatives` (paths under `dir`), in the order given.
    fn sha256(&self, dir: &str, relatives: &[String]) -> Result<Vec<[u8; 32]>, GuestError>;
}

/// Contents of small files, read in batches.
pub trait FileReader {
    /// The first `size` bytes of each `(relative, size)` under `dir`; a shorter file is an error.
    fn read_files(&self, dir: &str, files: &[(String, u64)]) -> Result<Vec<Vec<u8>>, GuestError>;
}

/// Where extraction writes: directories and new files under a staging directory, in order.
pub trait StagingWriter {
    /// Creates `relative` and its missing parents under `dir`.
    fn directory(&mut self, dir: &str, relative: &str) -> Result<(), GuestError>;
    /// Creates the new, empty regular file `relative` under `dir`; later `append`s go to it. `mode`
    /// (already sanitized) and `mtime` are applied once the file is complete.
    fn create(&mut self, dir: &str, relative: &str, mode: u32, mtime: Timestamp) -> Result<(), GuestError>;
    /// Appends to the file the last `create` made.
    fn append(&mut self, bytes: &[u8]) -> Result<(), GuestError>;
    /// Returns once everything written is on disk, or the first failure.
    fn finish(&mut self) -> Result<(), GuestError>;
}

const READ_BUFFER: usize = 1 << 20;

/// [`Directories`], [`Digests`], [`FileReader`] and [`StagingWriter`] over `std::fs`, for native builds
/// and tests. Modes and mtimes of extracted files are left to the caller.
#[derive(Debug, Default)]
pub struct LocalFiles {
    current: Option<(String, File)>,
}

impl FileReader for LocalFiles {
    fn read_files(&self, dir: &str, files: &[(String, u64)]) -> Result<Vec<Vec<u8>>, GuestError> {
        files
            .iter()
            .map(|(relative, size)| {
                let path = format!("{dir}/{relative}");
                let mut contents = vec![0; *size as usize];
                File::open(&path).and_then(|mut f| f.read_exact(&mut contents)).map_err(|e| GuestError::io(&path, &e))?;
                Ok(contents)
            })
            .collect()
    }
}

impl Directories for LocalFiles {
    fn read_dir(&self, dir: &str, relative: &str) -> Result<Listing, GuestError> {
        let path = if relative.is_empty() { dir.to_owned() } else { format!("{dir}/{relative}") };
        let io_err = |e: std::io::Error| GuestError::io(path.as_str(), &e);
        let mut listing = Listing::default();
        for entry in fs::read_dir(&path).map_err(io_err)? {
            let entry = entry.map_err(io_err)?;
            let kind = EntryKind::of(entry.file_type().map_err(io_err)?);
            match entry.file_name().into_string() {
                Ok(name) => listing.entries.push((name, kind)),
                Err(name) => listing.skipped.push(name.to_string_lossy().into_owned()),
            }
        }
        listing.entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(listing)
    }
}

impl Digests for LocalFiles {
    fn sha256(&self, dir: &str, relatives: &[String]) -> Result<Vec<[u8; 32]>, GuestError> {
        relatives.iter().map(|relative| sha256_file(&Path::new(dir).join(relative))).collect()
    }
}

fn sha256_file(path: &Path) -> Result<[u8; 32], GuestError> {
    let io_err = |e: std::io::Error| GuestError::io(path.display().to_string(), &e);
    let mut file = File::open(path).map_err(io_err)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; READ_BUFFER];
    loop {
        let n = file.read(&mut buffer).map_err(io_err)?;
        if n == 0 {
            return Ok(hasher.finalize().into());
        }
        hasher.update(&buffer[..n]);
    }
}

impl StagingWriter for LocalFiles {
    fn directory(&mut self, dir: &str, relative: &str) -> Result<(), GuestError> {
        self.current = None;
        let path = format!("{dir}/{relative}");
        fs::create_dir_all(&path).map_err(|e| GuestError::io(&path, &e))
    }

    fn create(&mut self, dir: &str, relative: &str, _mode: u32, _mtime: Timestamp) -> Result<(), GuestError> {
        let path = format!("{dir}/{relative}");
        let file = OpenOptions::new().write(true).create_new(true).open(&path).map_err(|e| GuestError::io(&path, &e))?;
        self.current = Some((path, file));
        Ok(())
    }

    fn append(&mut self, bytes: &[u8]) -> Result<(), GuestError> {
        let (path, file) = self.current.as_mut().ok_or_else(|| GuestError::Other("append without a file".into()))?;
        file.write_all(bytes).map_err(|e| GuestError::io(path.as_str(), &e))
    }

    fn finish(&mut self) -> Result<(), GuestError> {
        self.current = None;
        Ok(())
    }
}
