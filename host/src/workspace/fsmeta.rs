//! The filesystem work WASI cannot do, done natively and checked again.
//!
//! On save, the host reads what the guest found (mode bits, mtimes, sizes, link targets) with
//! `lstat`; on restore it applies the guest's fixups inside the staging directories: modes, symlinks
//! and mtimes. Every path from the guest is re-validated with `s3cache-policy` first, symlink targets
//! included, and nothing ever follows a symlink: a guest that lies cannot make the host touch
//! anything outside staging.

use std::collections::{HashMap, hash_map};
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use filetime::FileTime;
use rustix::fd::OwnedFd;
use rustix::fs::{FileType, Mode, OFlags};
use s3cache_policy::{MemberPath, validate_relative, validate_symlink_target};

use crate::sandbox::bindings::{Fixup, Found, Member, MemberKind, Timestamp};
use crate::sandbox::stat_ahead::{Lstat, PreopenLstats};
use crate::workspace::paths::CachedRoot;

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

/// The root directory and the policy's reading of a guest-reported `(root, relative)` pair, after
/// validating both.
fn checked<'a>(dirs: &[&'a Path], root: u32, relative: &str) -> Result<(&'a Path, MemberPath), FsError> {
    let invalid = |reason: String| FsError::InvalidPath { path: relative.to_owned(), reason };
    let dir = dirs.get(root as usize).ok_or_else(|| invalid(format!("root {root} does not exist")))?;
    Ok((dir, validate_relative(relative).map_err(|v| invalid(v.to_string()))?))
}

/// The host path of a guest-reported `(root, relative)` pair, after validating both.
fn checked_path(dirs: &[&Path], root: u32, relative: &str) -> Result<PathBuf, FsError> {
    let (dir, relative) = checked(dirs, root, relative)?;
    Ok(relative.components().iter().fold(dir.to_path_buf(), |path, c| path.join(c)))
}

/// Reads what the guest found, for `pack`.
///
/// - A file that is a hard link to one already listed under the same root becomes a `hardlink` member.
/// - Symlinks follow the absolute-link policy (see docs/security.md): an absolute target inside
///   the link's own cached root is stored as the equivalent relative link; any other absolute target,
///   and any relative target that a restore would refuse, is skipped with a warning — saving it would
///   make every restore of the entry fail.
/// - Objects that changed kind since the guest saw them, and links whose targets are not UTF-8, are
///   skipped with a warning to `reporter`.
pub fn describe(
    roots: &[CachedRoot],
    found: &[Found],
    known: &[PreopenLstats],
    reporter: &crate::report::Reporter,
) -> Result<Vec<Member>, FsError> {
    let dirs: Vec<&Path> = roots.iter().map(|r| r.dir.as_path()).collect();
    let mut members = Vec::with_capacity(found.len());
    let mut inodes: HashMap<(u64, u64), (u32, String)> = HashMap::new();
    for (item, stat) in found.iter().zip(lstat_all(&dirs, found, known)) {
        let stat = stat?;
        let path = || checked_path(&dirs, item.root, &item.relative);
        let Some(mut kind) = member_kind(stat.file_type) else {
            reporter.warning(&format!("skipping {}: no longer a file, directory or symlink", path()?.display()));
            continue;
        };
        if kind != item.kind {
            reporter.warning(&format!("skipping {}: it changed while the cache was being saved", path()?.display()));
            continue;
        }
        let link_target = if kind == MemberKind::Symlink {
            let path = path()?;
            let target = match fs::read_link(&path).map_err(io(&path))?.into_os_string().into_string() {
                Ok(target) => target,
                Err(_) => {
                    reporter.warning(&format!("skipping {}: its target is not UTF-8", path.display()));
                    continue;
                }
            };
            match storable_link(dirs[item.root as usize], &item.relative, &target) {
                Ok(target) => Some(target),
                Err(reason) => {
                    reporter.warning(&format!("skipping symlink {} -> {target}: {reason}", path.display()));
                    continue;
                }
            }
        } else if kind == MemberKind::File && stat.links > 1 {
            match inodes.entry((stat.device, stat.inode)) {
                hash_map::Entry::Occupied(first) if first.get().0 == item.root => {
                    kind = MemberKind::Hardlink;
                    Some(first.get().1.clone())
                }
                hash_map::Entry::Occupied(_) => None,
                hash_map::Entry::Vacant(slot) => {
                    slot.insert((item.root, item.relative.clone()));
                    None
                }
            }
        } else {
            None
        };
        members.push(Member {
            root: item.root,
            relative: item.relative.clone(),
            kind,
            mode: stat.mode,
            size: if kind == MemberKind::File { stat.size } else { 0 },
            mtime: Timestamp { seconds: stat.mtime_seconds, nanoseconds: stat.mtime_nanoseconds },
            link_target,
            slice: None,
        });
    }
    Ok(members)
}

/// The member kind of a file type, if it is one a cache holds.
fn member_kind(file_type: FileType) -> Option<MemberKind> {
    match file_type {
        FileType::Symlink => Some(MemberKind::Symlink),
        FileType::Directory => Some(MemberKind::Directory),
        FileType::RegularFile => Some(MemberKind::File),
        _ => None,
    }
}

/// Items per thread below which [`lstat_all`] stays on one thread.
const LSTAT_CHUNK: usize = 2048;

/// The `lstat` of every found item, in order: those the walk's listings recorded (`known`, by root
/// and relative path; [`crate::sandbox::stat_ahead`]), and the others looked up on every core.
fn lstat_all(dirs: &[&Path], found: &[Found], known: &[PreopenLstats]) -> Vec<Result<Lstat, FsError>> {
    let lstat = |parent: &mut ParentDir, item: &Found| match known.get(item.root as usize).and_then(|known| known.get(&item.relative)) {
        // Listed or not, a path the guest reports is checked like every other.
        Some(known) => checked(dirs, item.root, &item.relative).map(|_| known),
        None => parent.lstat(dirs, item),
    };
    let lstat_chunk = move |chunk: &[Found]| {
        let mut parent = ParentDir::default();
        chunk.iter().map(|item| lstat(&mut parent, item)).collect::<Vec<_>>()
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(found.len().div_ceil(LSTAT_CHUNK)).max(1);
    if threads == 1 {
        return lstat_chunk(found);
    }
    std::thread::scope(|scope| {
        let workers: Vec<_> = found.chunks(found.len().div_ceil(threads)).map(|chunk| scope.spawn(move || lstat_chunk(chunk))).collect();
        workers.into_iter().flat_map(|worker| worker.join().expect("an lstat worker panicked")).collect()
    })
}

/// The directory of the previous member, open, for the members the walk's listings did not hold (a
/// path's start, one that vanished meanwhile; a save of literal paths has many): members come in walk
/// order, so most share their parent with the one before, and `fstatat` of the bare name spares the
/// kernel a walk of the whole path per member, as `find` and GNU tar do (W1's 65k members on 2 cores,
/// before the listings held them: 250 → 185 ms).
#[derive(Default)]
struct ParentDir {
    open: Option<(u32, Vec<String>, OwnedFd)>,
}

impl ParentDir {
    /// The `lstat` of one found item: its name relative to its open parent directory.
    fn lstat(&mut self, dirs: &[&Path], item: &Found) -> Result<Lstat, FsError> {
        let failed = |source: rustix::io::Errno| match checked_path(dirs, item.root, &item.relative) {
            Ok(path) => FsError::Io { path, source: source.into() },
            Err(invalid) => invalid,
        };
        let (dir, relative) = checked(dirs, item.root, &item.relative)?;
        let Some((name, parent)) = relative.components().split_last() else {
            return rustix::fs::lstat(dir).map(Lstat::from).map_err(failed);
        };
        let reuse = matches!(&self.open, Some((root, open, _)) if *root == item.root && open.as_slice() == parent);
        if !reuse {
            self.open = None;
            let path = parent.iter().fold(dir.to_path_buf(), |path, c| path.join(c));
            let fd = rustix::fs::open(&path, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).map_err(failed)?;
            self.open = Some((item.root, parent.to_vec(), fd));
        }
        let (_, _, fd) = self.open.as_ref().expect("opened above");
        Lstat::of_entry(fd, name).map_err(failed)
    }
}

/// The target to store for a symlink at `relative` under `root`, or why it is skipped.
fn storable_link(root: &Path, relative: &str, target: &str) -> Result<String, String> {
    let link = validate_relative(relative).map_err(|v| v.to_string())?;
    let target = if target.starts_with('/') {
        let inside = Path::new(target).strip_prefix(root).map_err(|_| "absolute target outside its cached path".to_string())?;
        let inside = inside.to_str().ok_or("target is not UTF-8")?;
        let ups = "../".repeat(link.depth().saturating_sub(1));
        let relative_target = format!("{ups}{inside}");
        if relative_target.is_empty() { ".".to_owned() } else { relative_target.trim_end_matches('/').to_owned() }
    } else {
        target.to_owned()
    };
    validate_symlink_target(&link, &target).map_err(|v| v.to_string())?;
    Ok(target)
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
                let link = validate_relative(&fixup.relative)
                    .map_err(|v| FsError::InvalidPath { path: fixup.relative.clone(), reason: v.to_string() })?;
                validate_symlink_target(&link, target).map_err(|v| FsError::InvalidPath {
                    path: fixup.relative.clone(),
                    reason: format!("symlink target {target:?}: {v}"),
                })?;
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
            MemberKind::Hardlink => {
                let target = fixup.link_target.as_deref().unwrap_or_default();
                let target_path = checked_path(&dirs, fixup.root, target)?;
                let meta = fs::symlink_metadata(&target_path).map_err(io(&target_path))?;
                if !meta.is_file() {
                    return Err(FsError::Unexpected { path: target_path, expected: MemberKind::File });
                }
                fs::hard_link(&target_path, &path).map_err(io(&path))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Absolute links inside their root become relative; others, and links a restore would refuse, are skipped.
    #[test]
    fn applies_the_symlink_policy() {
        let root = Path::new("/work/venv");
        assert_eq!(storable_link(root, "bin/python3", "/work/venv/bin/python3.11"), Ok("../bin/python3.11".into()));
        assert_eq!(storable_link(root, "lib64", "/work/venv/lib"), Ok("lib".into()));
        assert!(storable_link(root, "bin/python", "/usr/bin/python3").unwrap_err().contains("outside"));
        assert!(storable_link(root, "l", "../../etc").is_err());
        assert_eq!(storable_link(root, ".bin/tool", "../tool/cli.js"), Ok("../tool/cli.js".into()));
    }

    /// Members listed by the walk take its `lstat`s, one it did not list (the path's start) is looked up,
    /// a second name of an inode becomes a hard link, and a path the guest reports is refused when it
    /// is invalid, even if a listing holds it.
    #[test]
    fn describes_listed_and_unlisted_members() {
        use crate::sandbox::stat_ahead::StatAhead;
        use std::os::unix::fs::MetadataExt;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("cache");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("a.txt"), "12345").unwrap();
        fs::set_permissions(dir.join("a.txt"), fs::Permissions::from_mode(0o751)).unwrap();
        fs::hard_link(dir.join("a.txt"), dir.join("b.txt")).unwrap();
        let open = |path: &Path| rustix::fs::open(path, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        let ahead = StatAhead::start();
        ahead.listed("/roots/0", "cache", open(&dir), ["a.txt", "b.txt"].into_iter());
        ahead.listed("/roots/0", "cache/..", open(root.path()), ["cache"].into_iter());
        let known = [ahead.finish().take_preopen("/roots/0")];
        let roots =
            [CachedRoot { dir: root.path().to_owned(), prefix: "workspace".into(), include: vec!["cache".into()], exclude: vec![] }];
        let found = |relative: &str, kind| Found { root: 0, relative: relative.into(), kind };
        let members = describe(
            &roots,
            &[found("cache", MemberKind::Directory), found("cache/a.txt", MemberKind::File), found("cache/b.txt", MemberKind::File)],
            &known,
            &crate::report::Reporter::silent(),
        )
        .unwrap();
        let shown: Vec<_> = members.iter().map(|m| (m.relative.as_str(), m.kind, m.mode, m.size, m.link_target.as_deref())).collect();
        let directory_mode = fs::metadata(&dir).unwrap().mode() & 0o7777;
        assert_eq!(
            shown,
            [
                ("cache", MemberKind::Directory, directory_mode, 0, None),
                ("cache/a.txt", MemberKind::File, 0o751, 5, None),
                ("cache/b.txt", MemberKind::Hardlink, 0o751, 0, Some("cache/a.txt")),
            ]
        );
        let refused = describe(&roots, &[found("cache/../cache", MemberKind::Directory)], &known, &crate::report::Reporter::silent());
        assert!(matches!(refused, Err(FsError::InvalidPath { ref path, .. }) if path == "cache/../cache"), "{refused:?}");
    }

    /// Fixups with escaping paths or links are refused by the host, whatever the guest says.
    #[test]
    fn refuses_hostile_fixups() {
        let staging = tempfile::tempdir().unwrap();
        let dirs = [staging.path().to_owned()];
        let fixup = |relative: &str, kind, link: Option<&str>| Fixup {
            root: 0,
            relative: relative.into(),
            kind,
            mode: 0o644,
            mtime: Timestamp { seconds: 0, nanoseconds: 0 },
            link_target: link.map(str::to_owned),
        };
        for bad in [
            fixup("../escape", MemberKind::File, None),
            fixup("/abs", MemberKind::Directory, None),
            fixup("l", MemberKind::Symlink, Some("/etc/passwd")),
            fixup("l", MemberKind::Symlink, Some("../outside")),
            fixup("h", MemberKind::Hardlink, Some("../../etc/shadow")),
            Fixup { root: 7, ..fixup("x", MemberKind::File, None) },
        ] {
            assert!(apply_fixups(&dirs, std::slice::from_ref(&bad)).is_err(), "{bad:?}");
        }
        assert_eq!(fs::read_dir(staging.path()).unwrap().count(), 0);
    }
}
