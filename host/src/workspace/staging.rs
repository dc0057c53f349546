//! Restoring atomically: the guest extracts into fresh staging directories on the same filesystem
//! as each root, and only a complete, validated extraction is moved into place.
//!
//! Moving in never follows a symlink that was already there. A path the user named literally
//! (`node_modules`, `target/debug`) is replaced as a whole by one `rename`, so it is either the old
//! tree or the new one, never a mix; the files of the old tree that the new one lacks are counted
//! before they are deleted, so that the restore can say how many it removed. Under glob paths (`src/**/*.rs`) each restored file replaces its
//! namesake and other files are left alone. If anything fails before the move, the staging
//! directories are deleted and the target is untouched.
//!
//! A staging directory has a lock file beside it (its name + [`LOCK_SUFFIX`]) on which the restoring
//! process holds an exclusive `flock` from before the directory exists until after it is gone. A
//! restore removes the staging directories a killed run left only when it can take their lock: a
//! process id says nothing about a directory shared by steps in other PID namespaces (parallel Drone
//! or Woodpecker steps share the workspace), a lock does, and the kernel drops it when its holder dies.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::unique_name::unique_name;
use crate::workspace::paths::CachedRoot;

/// Names of our temporary directories start with this.
pub const STAGING_PREFIX: &str = ".s3cache-staging-";
/// A staging directory's lock file is its path with this suffix.
pub const LOCK_SUFFIX: &str = ".lock";
const OLD_PREFIX: &str = ".s3cache-old-";
/// Staging directories without a lock file (from s3cache versions before the locks) and replaced
/// copies are removed once this old.
const UNLOCKED_STALE_AGE: Duration = Duration::from_secs(86_400);
/// A lock file whose directory is missing is removed once this old: younger, its process may be
/// between creating the lock and the directory.
const ORPHAN_LOCK_AGE: Duration = Duration::from_secs(60);

/// Deletes the staging directories that a killed run left in the roots: those whose lock is free.
/// Staging directories without a lock file and replaced copies (`.s3cache-old-*`) go once a day old.
pub fn remove_stale(roots: &[CachedRoot]) {
    for root in roots {
        let Ok(entries) = fs::read_dir(&root.dir) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            let age = entry.metadata().ok().and_then(|m| m.modified().ok()).and_then(|t| t.elapsed().ok()).unwrap_or_default();
            if name.starts_with(STAGING_PREFIX) && name.ends_with(LOCK_SUFFIX) {
                let dir = path.with_file_name(name.trim_end_matches(LOCK_SUFFIX));
                if !dir.exists()
                    && age > ORPHAN_LOCK_AGE
                    && let Some(_held) = try_lock(&path)
                {
                    let _ = fs::remove_file(&path);
                }
            } else if name.starts_with(STAGING_PREFIX) && is_dir {
                let lock = lock_path(&path);
                if lock.exists() {
                    // Held: a live restore, here or in another PID namespace. Free: its owner is gone.
                    if let Some(_held) = try_lock(&lock) {
                        remove_logged(&path, true);
                        let _ = fs::remove_file(&lock);
                    }
                } else if age > UNLOCKED_STALE_AGE {
                    remove_logged(&path, true);
                }
            } else if name.starts_with(OLD_PREFIX) && age > UNLOCKED_STALE_AGE {
                remove_logged(&path, is_dir);
            }
        }
    }
}

/// The lock file of the staging directory `dir`.
pub fn lock_path(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(LOCK_SUFFIX);
    dir.with_file_name(name)
}

/// The lock file at `path`, locked by us; `None` when another process holds it (or it is gone).
fn try_lock(path: &Path) -> Option<File> {
    let file = File::open(path).ok()?;
    match file.try_lock() {
        Ok(()) => Some(file),
        Err(fs::TryLockError::WouldBlock) => None,
        Err(fs::TryLockError::Error(err)) => {
            tracing::warn!(path = %path.display(), error = %err, "could not lock a staging directory's lock file; leaving the directory");
            None
        }
    }
}

fn remove_logged(path: &Path, is_dir: bool) {
    let removed = if is_dir { fs::remove_dir_all(path) } else { fs::remove_file(path) };
    match removed {
        Ok(()) => tracing::info!(path = %path.display(), "removed a stale staging directory"),
        Err(err) => tracing::warn!(path = %path.display(), error = %err, "could not remove a stale staging directory"),
    }
}

/// Staging directories, one per root, each with its held lock; deleted on drop unless committed.
#[derive(Debug)]
pub struct Staging {
    dirs: Vec<PathBuf>,
    locks: Vec<(PathBuf, File)>,
}

impl Staging {
    /// Creates an empty staging directory inside each root's directory (creating that too), after
    /// creating and locking its lock file.
    pub fn create(roots: &[CachedRoot]) -> io::Result<Self> {
        let mut staging = Self { dirs: Vec::new(), locks: Vec::new() };
        for root in roots {
            fs::create_dir_all(&root.dir)?;
            let dir = root.dir.join(unique_name(STAGING_PREFIX));
            let lock_file = lock_path(&dir);
            let lock = File::create_new(&lock_file)?;
            staging.locks.push((lock_file, lock));
            staging.locks.last().expect("just pushed").1.lock()?;
            fs::create_dir(&dir)?;
            staging.dirs.push(dir);
        }
        Ok(staging)
    }

    /// The staging directory of each root, in root order.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// A call that removes the staging directories and their lock files from another thread (an
    /// interrupt's clean-up). The locks stay held until the `Staging` is dropped, and nothing is
    /// created in a removed directory, so no other restore can mistake what is left for its own.
    pub fn discard_handle(&self) -> impl FnOnce() + Send + 'static {
        let dirs = self.dirs.clone();
        let locks: Vec<PathBuf> = self.locks.iter().map(|(path, _)| path.clone()).collect();
        move || {
            for dir in &dirs {
                let _ = fs::remove_dir_all(dir);
            }
            for lock in &locks {
                let _ = fs::remove_file(lock);
            }
        }
    }

    /// Moves everything staged into place; returns how many local files (and symlinks) it removed
    /// because the staged copy of a path replaced as a whole lacks them.
    pub fn commit(self, roots: &[CachedRoot]) -> io::Result<u64> {
        let mut removed = 0;
        for (root, staged) in roots.iter().zip(&self.dirs) {
            let swap_points: Vec<&str> = root.include.iter().filter(|p| !p.contains(['*', '?', '[', '{'])).map(String::as_str).collect();
            removed += merge(staged, &root.dir, "", &swap_points)?;
        }
        Ok(removed)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        for dir in &self.dirs {
            if let Err(err) = fs::remove_dir_all(dir)
                && err.kind() != io::ErrorKind::NotFound
            {
                tracing::warn!(dir = %dir.display(), error = %err, "could not remove a staging directory");
            }
        }
        // Still locked while removed; the lock goes with the file handle.
        for (path, _lock) in &self.locks {
            let _ = fs::remove_file(path);
        }
    }
}

/// Moves the contents of `from` into `to`: swap points and non-directories replace their target;
/// other directories are merged into a real directory at the target. Returns the files removed with
/// the directories replaced ([`replace`]).
fn merge(from: &Path, to: &Path, relative: &str, swap_points: &[&str]) -> io::Result<u64> {
    let mut removed = 0;
    let mut entries: Vec<_> = fs::read_dir(from)?.collect::<io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let name_str = name.to_string_lossy();
        let child = if relative.is_empty() { name_str.to_string() } else { format!("{relative}/{name_str}") };
        let source = entry.path();
        let target = to.join(&name);
        if entry.file_type()?.is_dir() && !swap_points.contains(&child.as_str()) {
            ensure_real_directory(&target)?;
            removed += merge(&source, &target, &child, swap_points)?;
            let meta = fs::symlink_metadata(&source)?;
            fs::set_permissions(&target, meta.permissions())?;
            let mtime = filetime::FileTime::from_last_modification_time(&meta);
            filetime::set_symlink_file_times(&target, mtime, mtime)?;
        } else {
            removed += replace(&source, &target)?;
        }
    }
    Ok(removed)
}

/// Makes `path` a real directory: existing directories stay; a symlink or file there is removed
/// (never followed) and replaced by an empty directory.
fn ensure_real_directory(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => {
            fs::remove_file(path)?;
            fs::create_dir(path)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir(path),
        Err(e) => Err(e),
    }
}

/// Replaces whatever is at `target` (a file, a symlink — not followed — or a whole tree) by `source`,
/// with one rename; the old object is moved aside first and deleted after. Returns how many files of
/// a replaced tree `source` lacked ([`files_lacking`]): those are gone with it.
fn replace(source: &Path, target: &Path) -> io::Result<u64> {
    let old = match fs::symlink_metadata(target) {
        Ok(meta) => {
            let parent = target.parent().unwrap_or(Path::new("."));
            let old = parent.join(unique_name(OLD_PREFIX));
            fs::rename(target, &old)?;
            Some((old, meta.is_dir()))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    if let Err(err) = fs::rename(source, target) {
        if let Some((old, _)) = &old {
            let _ = fs::rename(old, target);
        }
        return Err(err);
    }
    let Some((old, is_dir)) = old else { return Ok(0) };
    let lacking = if is_dir { files_lacking(&old, target) } else { 0 };
    let removed = if is_dir { fs::remove_dir_all(&old) } else { fs::remove_file(&old) };
    if let Err(err) = removed {
        tracing::warn!(path = %old.display(), error = %err, "could not remove the replaced copy");
    }
    Ok(lacking)
}

/// The files and symlinks (not directories) under the directory `old` with no namesake under `new`,
/// which is not followed where it is a symlink itself. What cannot be read is not counted.
fn files_lacking(old: &Path, new: &Path) -> u64 {
    let lacking = walkdir::WalkDir::new(old)
        .min_depth(1)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|entry| !entry.file_type().is_dir())
        .filter(|entry| entry.path().strip_prefix(old).is_ok_and(|relative| fs::symlink_metadata(new.join(relative)).is_err()))
        .count();
    lacking as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(dir: &Path, include: &[&str]) -> CachedRoot {
        CachedRoot {
            dir: dir.to_owned(),
            prefix: "workspace".into(),
            include: include.iter().map(|s| s.to_string()).collect(),
            exclude: vec![],
        }
    }

    /// A literal path is replaced whole; a glob path merges; a pre-existing symlink is replaced, not followed.
    #[test]
    fn commits_by_replacing_and_merging() {
        let work = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let dir = work.path();
        fs::create_dir_all(dir.join("node_modules/stale")).unwrap();
        fs::create_dir_all(dir.join("src")).unwrap();
        fs::write(dir.join("src/keep.c"), "keep").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.join("src/linkdir")).unwrap();

        let roots = [root(dir, &["node_modules", "src/**/*.rs"])];
        let staging = Staging::create(&roots).unwrap();
        let staged = &staging.dirs()[0];
        fs::create_dir_all(staged.join("node_modules/fresh")).unwrap();
        fs::create_dir_all(staged.join("src/linkdir")).unwrap();
        fs::write(staged.join("src/a.rs"), "a").unwrap();
        fs::write(staged.join("src/linkdir/b.rs"), "b").unwrap();
        let staged = staged.clone();
        assert_eq!(staging.commit(&roots).unwrap(), 0, "an empty directory is no file");

        assert!(dir.join("node_modules/fresh").is_dir());
        assert!(!dir.join("node_modules/stale").exists());
        assert_eq!(fs::read_to_string(dir.join("src/keep.c")).unwrap(), "keep");
        assert_eq!(fs::read_to_string(dir.join("src/a.rs")).unwrap(), "a");
        assert!(!fs::symlink_metadata(dir.join("src/linkdir")).unwrap().file_type().is_symlink());
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0, "nothing written through the old link");
        assert!(!staged.exists());
        let leftovers: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with(".s3cache"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    /// Replacing a literal path counts the local files and symlinks the staged copy lacks (in any
    /// directory of it); a file replacing a file, and files under a glob path, count nothing.
    #[test]
    fn counts_the_local_files_a_replaced_path_lacked() {
        let work = tempfile::tempdir().unwrap();
        let dir = work.path();
        for file in ["node_modules/kept", "node_modules/stale", "node_modules/old/a", "node_modules/old/b", "src/extra.rs", "lock"] {
            fs::create_dir_all(dir.join(file).parent().unwrap()).unwrap();
            fs::write(dir.join(file), "old").unwrap();
        }
        std::os::unix::fs::symlink("kept", dir.join("node_modules/link")).unwrap();
        let roots = [root(dir, &["node_modules", "lock", "src/**/*.rs"])];
        let staging = Staging::create(&roots).unwrap();
        let staged = &staging.dirs()[0];
        fs::create_dir_all(staged.join("node_modules/old")).unwrap();
        fs::create_dir_all(staged.join("src")).unwrap();
        for file in ["node_modules/kept", "node_modules/old/a", "src/a.rs", "lock"] {
            fs::write(staged.join(file), "new").unwrap();
        }
        assert_eq!(staging.commit(&roots).unwrap(), 3, "stale, old/b and link");
        assert_eq!(fs::read_to_string(dir.join("node_modules/kept")).unwrap(), "new");
        assert!(!dir.join("node_modules/stale").exists() && !dir.join("node_modules/old/b").exists());
        assert_eq!(fs::read_to_string(dir.join("src/extra.rs")).unwrap(), "old");
    }

    /// A staging directory whose lock is held (a live restore, perhaps in another PID namespace) is
    /// kept; one whose lock is free, or a day-old one without a lock file, is removed with its lock.
    #[test]
    fn removes_only_unlocked_staging() {
        let work = tempfile::tempdir().unwrap();
        let roots = [root(work.path(), &["x"])];
        let live = Staging::create(&roots).unwrap();
        // A killed restore's: the directory and its lock file, which nobody holds any more.
        let dead_dir = work.path().join(unique_name(STAGING_PREFIX));
        fs::create_dir(&dead_dir).unwrap();
        fs::write(dead_dir.join("partial"), "x").unwrap();
        File::create(lock_path(&dead_dir)).unwrap();
        let legacy = work.path().join(format!("{STAGING_PREFIX}1-2-3"));
        fs::create_dir(&legacy).unwrap();
        remove_stale(&roots);
        assert!(live.dirs()[0].is_dir() && lock_path(&live.dirs()[0]).exists());
        assert!(!dead_dir.exists() && !lock_path(&dead_dir).exists());
        assert!(legacy.exists(), "a young directory without a lock file is kept");
        let old = filetime::FileTime::from_unix_time(1_000_000_000, 0);
        filetime::set_file_mtime(&legacy, old).unwrap();
        remove_stale(&roots);
        assert!(!legacy.exists());
        assert!(live.dirs()[0].is_dir());
        let handle = live.discard_handle();
        handle();
        drop(live);
        assert_eq!(fs::read_dir(work.path()).unwrap().count(), 0);
    }

    /// Dropping an uncommitted staging removes it and leaves the target alone.
    #[test]
    fn drop_discards_staging() {
        let work = tempfile::tempdir().unwrap();
        let roots = [root(work.path(), &["x"])];
        let staging = Staging::create(&roots).unwrap();
        fs::write(staging.dirs()[0].join("x"), "new").unwrap();
        drop(staging);
        assert_eq!(fs::read_dir(work.path()).unwrap().count(), 0);
    }
}
