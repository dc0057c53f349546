//! An embedder that brings its own store: an in-memory [`BlobStore`], handed to the engine with the
//! embedded guest. Saves a directory, restores it elsewhere, and lists what the store holds.
//!
//! `cargo run --release --example custom-store -- [DIR]` (default: the current directory's `src`).

use std::collections::BTreeMap;
use std::io::{Cursor, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use s3cache::engine::admin::ScopeSelection;
use s3cache::store::{BlobStore, ObjectInfo, PutOptions, StoreError, Upload};
use s3cache::{CacheContext, GuestLimits, RestoreOutcome, RestoreRequest, Sandbox, SaveOutcome, SaveRequest};

/// Objects by name, with their bytes and write time.
type Objects = Arc<Mutex<BTreeMap<String, (Vec<u8>, SystemTime)>>>;

/// A store that keeps objects in memory.
#[derive(Debug, Default)]
struct MemoryStore {
    objects: Objects,
}

/// An object being written: visible only once finished.
struct MemoryUpload {
    name: String,
    bytes: Vec<u8>,
    if_none_match: bool,
    objects: Objects,
}

impl Write for MemoryUpload {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Upload for MemoryUpload {
    fn finish(self: Box<Self>) -> Result<u64, StoreError> {
        let mut objects = self.objects.lock().unwrap();
        if self.if_none_match && objects.contains_key(&self.name) {
            return Err(StoreError::AlreadyExists(self.name));
        }
        let size = self.bytes.len() as u64;
        objects.insert(self.name, (self.bytes, SystemTime::now()));
        Ok(size)
    }
}

impl BlobStore for MemoryStore {
    fn location(&self) -> String {
        "memory://".into()
    }
    fn head(&self, name: &str) -> Result<Option<ObjectInfo>, StoreError> {
        let objects = self.objects.lock().unwrap();
        Ok(objects.get(name).map(|(bytes, modified)| ObjectInfo { name: name.into(), size: bytes.len() as u64, modified: *modified }))
    }
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let objects = self.objects.lock().unwrap();
        let found = objects.range(prefix.to_owned()..).take_while(|(name, _)| name.starts_with(prefix));
        Ok(found
            .map(|(name, (bytes, modified))| ObjectInfo { name: name.clone(), size: bytes.len() as u64, modified: *modified })
            .collect())
    }
    fn read(&self, object: &ObjectInfo, start: u64, end: u64) -> Result<Box<dyn Read + Send>, StoreError> {
        let objects = self.objects.lock().unwrap();
        let bytes = objects.get(&object.name).map(|(bytes, _)| bytes.clone()).unwrap_or_default();
        let range = bytes.get(start as usize..end as usize).ok_or_else(|| StoreError::Io {
            path: object.name.clone().into(),
            source: std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "range beyond the object"),
        })?;
        Ok(Box::new(Cursor::new(range.to_vec())))
    }
    fn put(&self, name: &str, options: PutOptions) -> Result<Box<dyn Upload>, StoreError> {
        Ok(Box::new(MemoryUpload {
            name: name.into(),
            bytes: Vec::new(),
            if_none_match: options.if_none_match,
            objects: self.objects.clone(),
        }))
    }
    fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.objects.lock().unwrap().remove(name);
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    let source = std::env::args().nth(1).unwrap_or_else(|| "src".into());
    let source = std::fs::canonicalize(&source)?;
    let (parent, name) =
        (source.parent().expect("not the root").to_path_buf(), source.file_name().expect("a name").to_string_lossy().into_owned());

    let store: Arc<dyn BlobStore> = Arc::new(MemoryStore::default());
    let sandbox = Arc::new(Sandbox::load(None, GuestLimits::default())?);
    let saver = CacheContext::new(store.clone(), sandbox.clone(), parent);
    match saver.save(&SaveRequest::new("custom-store-demo", [name.clone()]))? {
        SaveOutcome::Saved { key, bytes, members, .. } => println!("saved {key}: {members} members, {bytes} bytes"),
        other => anyhow::bail!("not saved: {other:?}"),
    }

    // Another workspace restores the same entry from the same store.
    let elsewhere = tempfile::tempdir()?;
    let restorer = CacheContext::new(store, sandbox, elsewhere.path().to_path_buf());
    match restorer.restore(&RestoreRequest::new("custom-store-demo", [name.clone()]))? {
        RestoreOutcome::Hit(hit) => {
            println!("restored {} into {}: {} members", hit.matched_key, elsewhere.path().join(&name).display(), hit.members)
        }
        RestoreOutcome::Miss { reason, .. } => anyhow::bail!("miss: {reason}"),
        RestoreOutcome::Interrupted { .. } => anyhow::bail!("interrupted"),
    }
    for entry in restorer.list_entries(&ScopeSelection::All, "")? {
        println!("in the store: {} ({} bytes)", entry.object.name, entry.size());
    }
    Ok(())
}
