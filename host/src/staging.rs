//! Restoring atomically: the guest extracts into fresh staging directories on the same filesystem
//! as each root, and only a complete, validated extraction is moved into place.
//!
//! Moving in never follows a symlink that was already there. A path the user named literally
//! (`node_modules`, `target/debug`) is replaced as a whole by one `rename`, so it is either the old
//! tree or the new one, never a mix. Under glob paths (`src/**/*.rs`) each restored file replaces its
//! namesake and other files are left alone. If anything fails before the move, the staging
//! directories are deleted and the target is untouched.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::paths::CachedRoot;

/// Names of our temporary directories start with this.
pub const STAGING_PREFIX: &str = ".s3cache-staging-";
const OLD_PREFIX: &str = ".s3cache-old-";

/// A name starting with `prefix` that no other process or call uses: pid, time and a counter.
pub(crate) fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos();
    format!("{prefix}{}-{nanos}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Deletes staging and replaced-copy directories that a killed run left in the roots: those whose
/// process is gone (the pid is part of the name), or that are a day old.
pub fn remove_stale(roots: &[CachedRoot]) {
    for root in roots {
        let Ok(entries) = fs::read_dir(&root.dir) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(STAGING_PREFIX).or_else(|| name.strip_prefix(OLD_PREFIX)) else { continue };
            let pid_gone = rest.split('-').next().and_then(|pid| pid.parse::<u32>().ok()).is_some_and(|pid| !process_alive(pid));
            let old = entry.metadata().ok().and_then(|m| m.modified().ok()).and_then(|t| t.elapsed().ok()).is_some_and(|age| age.as_secs() > 86_400);
            if pid_gone || old {
                let path = entry.path();
                let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
                match removed {
                    Ok(()) => tracing::info!(path = %path.display(), "removed a stale staging directory"),
                    Err(err) => tracing::warn!(path = %path.display(), error = %err, "could not remove a stale staging directory"),
                }
            }
        }
    }
}

fn process_alive(pid: u32) -> bool {
    pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists() || !Path::new("/proc/self").exists()
}

/// Staging directories, one per root; deleted on drop unless committed.
#[derive(Debug)]
pub struct Staging {
    dirs: Vec<PathBuf>,
}

impl Staging {
    /// Creates an empty staging directory inside each root's directory (creating that too).
    pub fn create(roots: &[CachedRoot]) -> io::Result<Self> {
        let mut staging = Self { dirs: Vec::new() };
        for root in roots {
            fs::create_dir_all(&root.dir)?;
            let dir = root.dir.join(unique(STAGING_PREFIX));
            fs::create_dir(&dir)?;
            staging.dirs.push(dir);
        }
        Ok(staging)
    }

    /// The staging directory of each root, in root order.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Moves everything staged into place.
    pub fn commit(self, roots: &[CachedRoot]) -> io::Result<()> {
        for (root, staged) in roots.iter().zip(&self.dirs) {
            let swap_points: Vec<&str> = root.include.iter().filter(|p| !p.contains(['*', '?', '[', '{'])).map(String::as_str).collect();
            merge(staged, &root.dir, "", &swap_points)?;
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        for dir in &self.dirs {
            if let Err(err) = fs::remove_dir_all(dir) {
                if err.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(dir = %dir.display(), error = %err, "could not remove a staging directory");
                }
            }
        }
    }
}

/// Moves the contents of `from` into `to`: swap points and non-directories replace their target;
/// other directories are merged into a real directory at the target.
fn merge(from: &Path, to: &Path, relative: &str, swap_points: &[&str]) -> io::Result<()> {
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
            merge(&source, &target, &child, swap_points)?;
            let meta = fs::symlink_metadata(&source)?;
            fs::set_permissions(&target, meta.permissions())?;
            let mtime = filetime::FileTime::from_last_modification_time(&meta);
            filetime::set_symlink_file_times(&target, mtime, mtime)?;
        } else {
            replace(&source, &target)?;
        }
    }
    Ok(())
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
/// with one rename; the old object is moved aside first and deleted after.
fn replace(source: &Path, target: &Path) -> io::Result<()> {
    let old = match fs::symlink_metadata(target) {
        Ok(meta) => {
            let parent = target.parent().unwrap_or(Path::new("."));
            let old = parent.join(unique(OLD_PREFIX));
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
    if let Some((old, is_dir)) = old {
        let removed = if is_dir { fs::remove_dir_all(&old) } else { fs::remove_file(&old) };
        if let Err(err) = removed {
            tracing::warn!(path = %old.display(), error = %err, "could not remove the replaced copy");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(dir: &Path, include: &[&str]) -> CachedRoot {
        CachedRoot { dir: dir.to_owned(), prefix: "workspace".into(), include: include.iter().map(|s| s.to_string()).collect(), exclude: vec![] }
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
        staging.commit(&roots).unwrap();

        assert!(dir.join("node_modules/fresh").is_dir());
        assert!(!dir.join("node_modules/stale").exists());
        assert_eq!(fs::read_to_string(dir.join("src/keep.c")).unwrap(), "keep");
        assert_eq!(fs::read_to_string(dir.join("src/a.rs")).unwrap(), "a");
        assert!(!fs::symlink_metadata(dir.join("src/linkdir")).unwrap().file_type().is_symlink());
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0, "nothing written through the old link");
        assert!(!staged.exists());
        let leftovers: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).filter(|n| n.starts_with(".s3cache")).collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
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
