//! The local-directory backend: one file per object, written to a temporary name and renamed into
//! place, so a reader never sees half an archive. Names are percent-encoded into single file names.
//! A temporary file (`.tmp-*`) that a killed writer left is a [`Leftover`]: every one in the
//! directory is this store's, since a nested store is another directory.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::store::{BlobStore, Leftover, LeftoverKind, LeftoverListing, ObjectInfo, PutOptions, StoreError, Upload};

const FILE_NAME: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_');
const TEMP_PREFIX: &str = ".tmp-";

/// A directory of archives.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    /// A store in `dir` (created on the first write).
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(utf8_percent_encode(name, FILE_NAME).to_string())
    }

    fn info(&self, name: &str, path: &Path) -> Result<Option<ObjectInfo>, StoreError> {
        match fs::metadata(path) {
            Ok(meta) => {
                let modified = meta.modified().unwrap_or(UNIX_EPOCH);
                Ok(Some(ObjectInfo { name: name.to_owned(), size: meta.len(), modified }))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io { path: path.to_owned(), source }),
        }
    }
}

/// Fails instead of ending early when the file is shorter than expected (truncated meanwhile).
struct ExactReader<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.remaining > 0 && !buf.is_empty() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("{} bytes missing", self.remaining)));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

struct FileUpload {
    temp: PathBuf,
    target: PathBuf,
    file: Option<File>,
    written: u64,
    if_none_match: bool,
}

impl Write for FileUpload {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.as_mut().expect("open until finished").write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("open until finished").flush()
    }
}

impl Upload for FileUpload {
    fn finish(mut self: Box<Self>) -> Result<u64, StoreError> {
        let io_err = |path: &Path| {
            let path = path.to_owned();
            move |source| StoreError::Io { path, source }
        };
        let file = self.file.take().expect("open until finished");
        file.sync_all().map_err(io_err(&self.temp))?;
        drop(file);
        if self.if_none_match {
            // A hard link fails when the name exists: first writer wins, atomically.
            match fs::hard_link(&self.temp, &self.target) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(StoreError::AlreadyExists(self.target.display().to_string()));
                }
                result => result.map_err(io_err(&self.target))?,
            }
            let _ = fs::remove_file(&self.temp);
        } else {
            fs::rename(&self.temp, &self.target).map_err(io_err(&self.target))?;
        }
        Ok(self.written)
    }

    fn abort_handle(&self) -> Option<Box<dyn FnOnce() + Send>> {
        let temp = self.temp.clone();
        Some(Box::new(move || {
            let _ = fs::remove_file(&temp);
        }))
    }
}

impl Drop for FileUpload {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.temp);
    }
}

impl BlobStore for FileStore {
    fn location(&self) -> String {
        format!("file://{}", self.dir.display())
    }

    fn head(&self, name: &str) -> Result<Option<ObjectInfo>, StoreError> {
        self.info(name, &self.path(name))
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(StoreError::Io { path: self.dir.clone(), source }),
        };
        let mut objects = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| StoreError::Io { path: self.dir.clone(), source })?;
            let Some(file_name) = entry.file_name().to_str().map(str::to_owned) else { continue };
            if file_name.starts_with(TEMP_PREFIX) {
                continue;
            }
            let Ok(name) = percent_decode_str(&file_name).decode_utf8() else { continue };
            if name.starts_with(prefix) {
                objects.extend(self.info(&name, &entry.path())?);
            }
        }
        Ok(objects)
    }

    fn read(&self, object: &ObjectInfo, start: u64, end: u64) -> Result<Box<dyn Read + Send>, StoreError> {
        let path = self.path(&object.name);
        let io_err = |source| StoreError::Io { path: path.clone(), source };
        let mut file = File::open(&path).map_err(io_err)?;
        file.seek(SeekFrom::Start(start)).map_err(io_err)?;
        Ok(Box::new(ExactReader { inner: file.take(end.saturating_sub(start)), remaining: end.saturating_sub(start) }))
    }

    fn put(&self, name: &str, options: PutOptions) -> Result<Box<dyn Upload>, StoreError> {
        fs::create_dir_all(&self.dir).map_err(|source| StoreError::Io { path: self.dir.clone(), source })?;
        let temp = self.dir.join(crate::unique_name::unique_name(TEMP_PREFIX));
        let file = File::create(&temp).map_err(|source| StoreError::Io { path: temp.clone(), source })?;
        Ok(Box::new(FileUpload { temp, target: self.path(name), file: Some(file), written: 0, if_none_match: options.if_none_match }))
    }

    fn delete(&self, name: &str) -> Result<(), StoreError> {
        remove(self.path(name))
    }

    fn leftovers(&self) -> Result<LeftoverListing, StoreError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(LeftoverListing::Listed(Vec::new())),
            Err(source) => return Err(StoreError::Io { path: self.dir.clone(), source }),
        };
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| StoreError::Io { path: self.dir.clone(), source })?;
            let Some(file_name) = entry.file_name().to_str().filter(|n| n.starts_with(TEMP_PREFIX)).map(str::to_owned) else { continue };
            let Some(meta) = self.info(&file_name, &entry.path())? else { continue };
            found.push(Leftover {
                kind: LeftoverKind::TempFile,
                name: None,
                id: file_name,
                bytes: Some(meta.size),
                started: meta.modified,
            });
        }
        Ok(LeftoverListing::Listed(found))
    }

    fn remove_leftover(&self, leftover: &Leftover) -> Result<(), StoreError> {
        if leftover.kind != LeftoverKind::TempFile || !leftover.id.starts_with(TEMP_PREFIX) || leftover.id.contains('/') {
            return Ok(());
        }
        remove(self.dir.join(&leftover.id))
    }
}

/// Removes a file; a missing one is fine.
fn remove(path: PathBuf) -> Result<(), StoreError> {
    match fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StoreError::Io { path, source: e }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Objects round-trip, list by prefix, and are invisible until finished.
    #[test]
    fn stores_and_lists_objects() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("store"));
        let mut upload = store.put("deps/linux-abc.tar.zst", PutOptions::default()).unwrap();
        upload.write_all(b"hello").unwrap();
        assert!(store.head("deps/linux-abc.tar.zst").unwrap().is_none());
        assert_eq!(upload.finish().unwrap(), 5);
        let mut body = String::new();
        let info = store.head("deps/linux-abc.tar.zst").unwrap().unwrap();
        store.read(&info, 1, 5).unwrap().read_to_string(&mut body).unwrap();
        assert_eq!(body, "ello");
        let listed: Vec<String> = store.list("deps/linux").unwrap().into_iter().map(|o| o.name).collect();
        assert_eq!(listed, vec!["deps/linux-abc.tar.zst"]);
        assert!(store.list("other").unwrap().is_empty());
        store.delete("deps/linux-abc.tar.zst").unwrap();
        assert!(store.read(&info, 0, 5).is_err());
    }

    /// A conditional write loses to an existing object; a dropped upload leaves nothing behind.
    #[test]
    fn first_writer_wins_and_drops_clean_up() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().to_owned());
        let conditional = PutOptions { if_none_match: true };
        store.put("k", conditional).unwrap().finish().unwrap();
        assert!(matches!(store.put("k", conditional).unwrap().finish(), Err(StoreError::AlreadyExists(_))));
        drop(store.put("j", PutOptions::default()).unwrap());
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec!["k"]);
    }

    /// An abort handle removes the temporary file while the upload is open; the upload then fails.
    /// A temporary file left behind is a leftover, and removing it leaves the objects alone.
    #[test]
    fn temp_files_are_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().to_owned());
        store.put("k", PutOptions::default()).unwrap().finish().unwrap();
        let mut aborted = store.put("a", PutOptions::default()).unwrap();
        aborted.write_all(b"partial").unwrap();
        (aborted.abort_handle().unwrap())();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(aborted.finish().is_err());
        let mut left = store.put("j", PutOptions::default()).unwrap();
        left.write_all(b"12345").unwrap();
        std::mem::forget(left); // as if the process were killed
        let LeftoverListing::Listed(found) = store.leftovers().unwrap() else { panic!("a file store lists its leftovers") };
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].kind, found[0].name.as_deref(), found[0].bytes), (LeftoverKind::TempFile, None, Some(5)));
        store.remove_leftover(&found[0]).unwrap();
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec!["k"]);
    }
}
