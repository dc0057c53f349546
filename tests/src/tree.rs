//! Building test trees and comparing them exactly: kind, content, permission bits, symlink targets
//! and modification times (to the nanosecond).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

/// One object as a snapshot sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    File { content_hash: u64, len: u64, mode: u32, mtime: (i64, i64) },
    Dir { mode: u32, mtime: (i64, i64) },
    Symlink { target: String, mtime: (i64, i64) },
}

/// Every object under a directory, by relative path.
pub type Snapshot = BTreeMap<String, Entry>;

fn hash(bytes: &[u8]) -> u64 {
    // FNV-1a: enough to tell contents apart in a test.
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100000001b3))
}

/// Snapshots everything under `dir` (not `dir` itself), without following symlinks.
pub fn snapshot(dir: &Path) -> Snapshot {
    let mut snapshot = Snapshot::new();
    for entry in walkdir::WalkDir::new(dir).min_depth(1).follow_links(false) {
        let entry = entry.expect("walk");
        let relative = entry.path().strip_prefix(dir).unwrap().to_str().unwrap().to_owned();
        let meta = fs::symlink_metadata(entry.path()).unwrap();
        let mtime = (meta.mtime(), meta.mtime_nsec());
        let mode = meta.permissions().mode() & 0o7777;
        let item = if meta.file_type().is_symlink() {
            Entry::Symlink { target: fs::read_link(entry.path()).unwrap().to_str().unwrap().to_owned(), mtime }
        } else if meta.is_dir() {
            Entry::Dir { mode, mtime }
        } else {
            let content = fs::read(entry.path()).unwrap();
            Entry::File { content_hash: hash(&content), len: content.len() as u64, mode, mtime }
        };
        snapshot.insert(relative, item);
    }
    snapshot
}

/// Deterministic pseudo-random bytes (xorshift), incompressible enough to force multipart uploads.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// Writes the tree the foundation tests round-trip under `dir/name`: nested and empty directories, an
/// executable, a relative symlink, a 0-byte file, a non-ASCII name, a long name, and a file of
/// `large_len` random bytes. Mtimes are set with nanoseconds, including on directories.
pub fn write_sample_tree(dir: &Path, name: &str, large_len: usize) {
    let base = dir.join(name);
    fs::create_dir_all(base.join("nested/deeper/deepest")).unwrap();
    fs::create_dir_all(base.join("empty/also-empty")).unwrap();
    fs::create_dir_all(base.join("bin")).unwrap();
    fs::write(base.join("nested/deeper/deepest/leaf.txt"), "leaf\n".repeat(100)).unwrap();
    fs::write(base.join("nested/readme.md"), "# readme\n").unwrap();
    fs::write(base.join("bin/tool"), "#!/bin/sh\necho tool\n").unwrap();
    fs::set_permissions(base.join("bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(base.join("readonly.txt"), "ro").unwrap();
    fs::set_permissions(base.join("readonly.txt"), fs::Permissions::from_mode(0o444)).unwrap();
    symlink("../nested/readme.md", base.join("bin/readme-link")).unwrap();
    symlink("tool", base.join("bin/tool-link")).unwrap();
    fs::write(base.join("zero-bytes"), "").unwrap();
    fs::write(base.join("ünïcødé-名前.txt"), "non-ascii name").unwrap();
    let long = format!("{}.txt", "long-name-".repeat(12));
    fs::write(base.join("nested").join(long), "long name").unwrap();
    fs::write(base.join("large.bin"), noise(large_len, 42)).unwrap();
    let mut stamp = 1_600_000_000i64;
    for entry in walkdir::WalkDir::new(&base).contents_first(true) {
        let entry = entry.unwrap();
        stamp += 7;
        let time = filetime::FileTime::from_unix_time(stamp, (stamp as u32 % 1000) * 1_000_001 % 1_000_000_000);
        filetime::set_symlink_file_times(entry.path(), time, time).unwrap();
    }
}
