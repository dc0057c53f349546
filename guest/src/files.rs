//! The two file services the hot paths delegate: hashing files for keys, and writing extracted
//! members into staging.
//!
//! Per-file WASI calls cost several times a native syscall and wasm has no SHA extensions, so in the
//! component both go to the host's `host-files` import, which does them natively beneath the same
//! preopens (see `component`). [`LocalFiles`] is the same contract over `std::fs`, used by native
//! builds and tests. Either way the guest keeps every decision: which files, which names, in which
//! order, and what the policy allows.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::GuestError;

/// SHA-256 of files under a directory the guest can read.
pub trait Digests {
    /// The digest of each of `relatives` (paths under `dir`), in the order given.
    fn sha256(&self, dir: &str, relatives: &[String]) -> Result<Vec<[u8; 32]>, GuestError>;
}

/// Where extraction writes: directories and new files under a staging directory, in order.
pub trait StagingWriter {
    /// Creates `relative` and its missing parents under `dir`.
    fn directory(&mut self, dir: &str, relative: &str) -> Result<(), GuestError>;
    /// Creates the new, empty regular file `relative` under `dir`; later `append`s go to it.
    fn create(&mut self, dir: &str, relative: &str) -> Result<(), GuestError>;
    /// Appends to the file the last `create` made.
    fn append(&mut self, bytes: &[u8]) -> Result<(), GuestError>;
    /// Returns once everything written is on disk, or the first failure.
    fn finish(&mut self) -> Result<(), GuestError>;
}

const READ_BUFFER: usize = 1 << 20;

/// [`Digests`] and [`StagingWriter`] over `std::fs`.
#[derive(Debug, Default)]
pub struct LocalFiles {
    current: Option<(String, File)>,
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

    fn create(&mut self, dir: &str, relative: &str) -> Result<(), GuestError> {
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
