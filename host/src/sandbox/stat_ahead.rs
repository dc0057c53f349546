//! The `lstat` of every entry the guest lists while it walks a save's paths, taken on another core.
//!
//! A save needs what WASI cannot see of each member (mode bits, mtime, size, inode): the walk runs in
//! the guest, on one core, and lists directories through `host-files.read-dir`; here each listing's
//! entries are `fstatat`ed by name in that directory, through a duplicate of the descriptor the
//! listing used, on a thread of their own. Names come from the directory itself, so nothing the guest
//! says is resolved: the guest only picks which directories are listed, as it already does. By the
//! time the walk returns, the members' metadata is mostly known and the save does not wait for a
//! second pass (W1's 65k members: the 185 ms step after the walk, on both cores, becomes a lookup).
//! An entry without a recorded `lstat` (one that vanished, or the root itself) is looked up again
//! by [`crate::workspace::fsmeta`].

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{AtFlags, FileType};

/// What a save records of one filesystem object: `lstat`'s answer, without following a symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lstat {
    /// File, directory, symlink or something a cache does not hold.
    pub file_type: FileType,
    /// Permission bits, with setuid, setgid and sticky.
    pub mode: u32,
    /// Length in bytes.
    pub size: u64,
    /// Modification time: seconds since the epoch…
    pub mtime_seconds: i64,
    /// …and nanoseconds.
    pub mtime_nanoseconds: u32,
    /// Hard links to the inode.
    pub links: u64,
    /// Device and inode: which hard links are the same file.
    pub device: u64,
    /// See `device`.
    pub inode: u64,
}

impl Lstat {
    /// The `lstat` of the entry `name` of the open directory `dir`: `fstatat` of the bare name, not
    /// following a symlink, so the kernel walks no path.
    pub fn of_entry(dir: impl AsFd, name: &str) -> rustix::io::Result<Self> {
        rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map(Self::from)
    }
}

impl From<rustix::fs::Stat> for Lstat {
    #[allow(clippy::unnecessary_cast, reason = "the field types of `stat` differ between targets")]
    fn from(stat: rustix::fs::Stat) -> Self {
        Self {
            file_type: FileType::from_raw_mode(stat.st_mode as _),
            mode: stat.st_mode as u32 & 0o7777,
            size: stat.st_size as u64,
            mtime_seconds: stat.st_mtime as i64,
            mtime_nanoseconds: stat.st_mtime_nsec as u32,
            links: stat.st_nlink as u64,
            device: stat.st_dev as u64,
            inode: stat.st_ino as u64,
        }
    }
}

/// The `lstat`s of one listed directory's entries, in the listing's (name) order.
#[derive(Debug, Default)]
pub struct ListedLstats {
    /// The names, each followed by a NUL (which no name contains): one allocation per directory.
    names: String,
    /// Where each name starts and ends in `names`.
    spans: Vec<(usize, usize)>,
    /// Each entry's `lstat`; `None` for one that vanished since it was listed.
    lstats: Vec<Option<Lstat>>,
}

impl ListedLstats {
    /// The `lstat` of the entry `name`.
    pub fn get(&self, name: &str) -> Option<Lstat> {
        let index = self.spans.binary_search_by(|&(start, end)| self.names[start..end].cmp(name)).ok()?;
        self.lstats[index]
    }
}

/// The `lstat`s of what the walk listed, by preopen (its guest path), then by directory (relative to
/// the preopen, empty for the preopen itself).
#[derive(Debug, Default)]
pub struct Lstats(HashMap<String, HashMap<String, ListedLstats>>);

impl Lstats {
    /// The `lstat`s below the preopen `guest_dir`, which this takes.
    pub fn take_preopen(&mut self, guest_dir: &str) -> PreopenLstats {
        PreopenLstats(self.0.remove(guest_dir).unwrap_or_default())
    }
}

/// The `lstat`s below one preopen.
#[derive(Debug, Default)]
pub struct PreopenLstats(HashMap<String, ListedLstats>);

impl PreopenLstats {
    /// The `lstat` of `relative`, if its directory was listed and it was there.
    pub fn get(&self, relative: &str) -> Option<Lstat> {
        let (dir, name) = relative.rsplit_once('/').unwrap_or(("", relative));
        self.0.get(dir)?.get(name)
    }
}

/// One listed directory: where it is, a descriptor of it, and its entries' names in order.
struct Listed {
    guest_dir: String,
    /// The directory's path relative to the preopen, empty for the preopen itself.
    relative: String,
    dir: OwnedFd,
    /// Each name followed by a NUL.
    names: String,
}

/// The thread that takes the `lstat`s, and the way to hand it listings.
#[derive(Debug)]
pub struct StatAhead {
    sender: Sender<Listed>,
    worker: JoinHandle<Lstats>,
}

impl StatAhead {
    /// Starts the thread, which waits for listings.
    pub fn start() -> Self {
        let (sender, receiver) = channel();
        Self { sender, worker: std::thread::spawn(move || take_lstats(&receiver)) }
    }

    /// Queues the entries `names` (in order) of `dir`, listed as `relative` under the preopen `guest_dir`.
    pub fn listed<'a>(&self, guest_dir: &str, relative: &str, dir: OwnedFd, names: impl Iterator<Item = &'a str>) {
        let mut joined = String::new();
        for name in names {
            joined.push_str(name);
            joined.push('\0');
        }
        // The worker only stops when `finish` drops the sender, so a failed send cannot happen.
        let _ = self.sender.send(Listed { guest_dir: guest_dir.to_owned(), relative: relative.to_owned(), dir, names: joined });
    }

    /// Every `lstat` taken, once the queued listings are done.
    pub fn finish(self) -> Lstats {
        drop(self.sender);
        self.worker.join().unwrap_or_default()
    }
}

fn take_lstats(receiver: &Receiver<Listed>) -> Lstats {
    let mut lstats = Lstats::default();
    for listed in receiver {
        let mut spans = Vec::new();
        let mut stats = Vec::new();
        let mut start = 0;
        while let Some(length) = listed.names[start..].find('\0') {
            let name = &listed.names[start..start + length];
            // An entry that vanished since it was listed has none: the save looks it up again.
            stats.push(Lstat::of_entry(&listed.dir, name).ok());
            spans.push((start, start + length));
            start += length + 1;
        }
        let below = lstats.0.entry(listed.guest_dir).or_default();
        below.insert(listed.relative, ListedLstats { names: listed.names, spans, lstats: stats });
    }
    lstats
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// Every listed entry is found by its path relative to the preopen, with what `lstat` says of it
    /// (a symlink as itself); an entry that vanished, one of a directory never listed and a name never
    /// listed have none.
    #[test]
    fn records_each_listed_entry_by_its_path() {
        let root = tempfile::tempdir().unwrap();
        let sub = root.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        for (name, mode) in [("a.js", 0o640), ("b", 0o755), ("c.d", 0o600)] {
            std::fs::write(sub.join(name), name).unwrap();
            std::fs::set_permissions(sub.join(name), std::fs::Permissions::from_mode(mode)).unwrap();
        }
        std::os::unix::fs::symlink("a.js", sub.join("link")).unwrap();
        std::fs::create_dir(sub.join("deeper")).unwrap();
        std::fs::write(sub.join("deeper/x"), "x").unwrap();
        let open = |path: &std::path::Path| {
            rustix::fs::open(path, rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY, rustix::fs::Mode::empty()).unwrap()
        };

        let ahead = StatAhead::start();
        ahead.listed("/roots/0", "", open(root.path()), ["sub"].into_iter());
        ahead.listed("/roots/0", "sub", open(&sub), ["a.js", "b", "c.d", "deeper", "gone", "link"].into_iter());
        let mut lstats = ahead.finish();
        let known = lstats.take_preopen("/roots/0");
        assert!(lstats.take_preopen("/roots/0").get("sub").is_none(), "taken once");

        let expected = |path: &str| Lstat::from(rustix::fs::lstat(root.path().join(path)).unwrap());
        for path in ["sub", "sub/a.js", "sub/b", "sub/c.d", "sub/deeper", "sub/link"] {
            assert_eq!(known.get(path), Some(expected(path)), "{path}");
        }
        assert_eq!(known.get("sub/a.js").map(|l| (l.mode, l.size, l.file_type)), Some((0o640, 4, FileType::RegularFile)));
        assert_eq!(known.get("sub/link").map(|l| l.file_type), Some(FileType::Symlink));
        assert_eq!(known.get("sub/deeper").map(|l| l.file_type), Some(FileType::Directory));
        for missing in ["sub/gone", "sub/deeper/x", "sub/zzz", "sub/a", "a.js", ""] {
            assert_eq!(known.get(missing), None, "{missing}");
        }
    }
}
