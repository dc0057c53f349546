//! The filesystem work WASI cannot do, done natively and checked again.
//!
//! On save, the host reads what the guest found (mode bits, mtimes, sizes, link targets) with
//! `lstat`; on restore it applies the guest's fixups inside the staging directories: modes, symlinks
//! and mtimes. Every path from the guest is re-validated with `s3cache-policy` first, symlink targets
//! included, and nothing ever follows a symlink: a guest that lies cannot make the host touch
//! anything outside staging.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use filetime::FileTime;
use s3cache_policy::{validate_relative, validate_symlink_target};

use crate::bindings::{Fixup, Found, Member, MemberKind, Timestamp};
use crate::paths::CachedRoot;

/// Something the guest reported that the host refuses or cannot do.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("the guest reported an invalid path {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: expected a {expected:?} in staging, found something else")]
    Unexpected { path: PathBuf, expected: MemberKind },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FsError + '_ {
    move |source| FsError::Io { path: path.to_owned(), source }
}

/// The host path of a guest-reported `(root, relative)` pair, after validating both.
fn checked_path(dirs: &[&Path], root: u32, relative: &str) -> Result<PathBuf, FsError> {
    let invalid = |reason: String| FsError::InvalidPath { path: relative.to_owned(), reason };
    let dir = dirs.get(root as usize).ok_or_else(|| invalid(format!("root {root} does not exist")))?;
    let relative = validate_relative(relative).map_err(|v| invalid(v.to_string()))?;
    Ok(relative.components().iter().fold(dir.to_path_buf(), |path, c| path.join(c)))
}

/// Reads what the guest found, for `pack`. Objects that changed kind since the guest saw them are
/// skipped with a warning; so are symlinks whose targets are not UTF-8.
pub fn describe(roots: &[CachedRoot], found: &[Found]) -> Result<Vec<Member>, FsError> {
    let dirs: Vec<&Path> = roots.iter().map(|r| r.dir.as_path()).collect();
    let mut members = Vec::with_capacity(found.len());
    for item in found {
        let path = checked_path(&dirs, item.root, &item.relative)?;
        let meta = fs::symlink_metadata(&path).map_err(io(&path))?;
        let kind = if meta.file_type().is_symlink() {
            MemberKind::Symlink
        } else if meta.is_dir() {
            MemberKind::Directory
        } else if meta.is_file() {
            MemberKind::File
        } else {
            crate::output::warning(&format!("skipping {}: no longer a file, directory or symlink", path.display()));
            continue;
        };
        if kind != item.kind {
            crate::output::warning(&format!("skipping {}: it changed while the cache was being saved", path.display()));
            continue;
        }
        let link_target = if kind == MemberKind::Symlink {
            match fs::read_link(&path).map_err(io(&path))?.into_os_string().into_string() {
                Ok(target) => Some(target),
                Err(_) => {
                    crate::output::warning(&format!("skipping {}: its target is not UTF-8", path.display()));
                    continue;
                }
            }
        } else {
            None
        };
        members.push(Member {
            root: item.root,
            relative: item.relative.clone(),
            kind,
            mode: meta.mode() & 0o7777,
            size: if kind == MemberKind::File { meta.len() } else { 0 },
            mtime: Timestamp { seconds: meta.mtime(), nanoseconds: meta.mtime_nsec() as u32 },
            link_target,
        });
    }
    Ok(members)
}

/// Applies the guest's fixups inside the staging directories (one per root, in root order).
pub fn apply_fixups(staging: &[PathBuf], fixups: &[Fixup]) -> Result<(), FsError> {
    let dirs: Vec<&Path> = staging.iter().map(PathBuf::as_path).collect();
    let mut directories = Vec::new();
    for fixup in fixups {
        let path = checked_path(&dirs, fixup.root, &fixup.relative)?;
        let mode = s3cache_policy::sanitize_mode(fixup.mode, fixup.kind == MemberKind::Directory);
        let time = file_time(fixup.mtime);
        match fixup.kind {
            MemberKind::File => {
                let meta = fs::symlink_metadata(&path).map_err(io(&path))?;
                if !meta.is_file() {
                    return Err(FsError::Unexpected { path, expected: MemberKind::File });
                }
                fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(io(&path))?;
                filetime::set_symlink_file_times(&path, time, time).map_err(io(&path))?;
            }
            MemberKind::Symlink => {
                let target = fixup.link_target.as_deref().unwrap_or_default();
                let link = validate_relative(&fixup.relative).map_err(|v| FsError::InvalidPath { path: fixup.relative.clone(), reason: v.to_string() })?;
                validate_symlink_target(&link, target)
                    .map_err(|v| FsError::InvalidPath { path: fixup.relative.clone(), reason: format!("symlink target {target:?}: {v}") })?;
                symlink(target, &path).map_err(io(&path))?;
                filetime::set_symlink_file_times(&path, time, time).map_err(io(&path))?;
            }
            MemberKind::Directory => {
                let meta = fs::symlink_metadata(&path).map_err(io(&path))?;
                if !meta.is_dir() {
                    return Err(FsError::Unexpected { path, expected: MemberKind::Directory });
                }
                directories.push((path, mode, time));
            }
        }
    }
    // Children change their parent's mtime, so directories come last, deepest first.
    for (path, mode, time) in directories.into_iter().rev() {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(io(&path))?;
        filetime::set_symlink_file_times(&path, time, time).map_err(io(&path))?;
    }
    Ok(())
}

fn file_time(time: Timestamp) -> FileTime {
    FileTime::from_unix_time(time.seconds, time.nanoseconds)
}
