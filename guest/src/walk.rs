//! Finding what the user's paths select under each preopened root, without following symlinks.
//!
//! One walker serves both saving (every selected object, directories included, so empty directories
//! survive) and `hashFiles` (selected regular files only). Siblings are visited in name order, so the
//! output is deterministic and parents come before their children.

use std::path::Path;

use s3cache_policy::Selector;
use walkdir::WalkDir;

use crate::bindings::{Found, MemberKind, Root};
use crate::{GuestError, logging};

/// Everything each root selects, root by root.
pub fn find(roots: &[Root]) -> Result<Vec<Found>, GuestError> {
    let mut found = Vec::new();
    for (index, root) in roots.iter().enumerate() {
        let selector = Selector::new(&root.include_globs, &root.exclude_globs)?;
        walk_selected(Path::new(&root.guest_dir), &selector, |relative, kind| {
            found.push(Found { root: index as u32, relative: relative.to_owned(), kind });
        })?;
    }
    Ok(found)
}

/// The regular files under `dir` that `selector` selects, as sorted relative paths.
pub fn selected_files(dir: &Path, selector: &Selector) -> Result<Vec<String>, GuestError> {
    let mut files = Vec::new();
    walk_selected(dir, selector, |relative, kind| {
        if kind == MemberKind::File {
            files.push(relative.to_owned());
        }
    })?;
    files.sort_unstable();
    Ok(files)
}

/// Calls `visit(relative, kind)` for every selected object under `dir`, walking only from the
/// selector's start points and pruning excluded directories. Objects that are neither file, directory
/// nor symlink (sockets, FIFOs, devices) and names that are not UTF-8 are skipped with a warning.
fn walk_selected(dir: &Path, selector: &Selector, mut visit: impl FnMut(&str, MemberKind)) -> Result<(), GuestError> {
    for start in selector.walk_starts() {
        let start_path = if start.is_empty() { dir.to_path_buf() } else { dir.join(start) };
        if !start.is_empty() && std::fs::symlink_metadata(&start_path).is_err() {
            continue; // nothing there to cache
        }
        let mut entries = WalkDir::new(&start_path).follow_links(false).follow_root_links(false).sort_by_file_name().into_iter();
        while let Some(entry) = entries.next() {
            let entry = entry.map_err(|e| {
                let path = e.path().unwrap_or(dir).display().to_string();
                GuestError::Io { path, message: e.to_string() }
            })?;
            let Ok(relative) = entry.path().strip_prefix(dir) else { continue };
            let Some(relative) = relative.to_str() else {
                logging::warn(&format!("skipping {}: the name is not UTF-8", entry.path().display()));
                continue;
            };
            let file_type = entry.file_type();
            if file_type.is_dir() && selector.excludes(relative) {
                entries.skip_current_dir();
                continue;
            }
            let kind = if file_type.is_dir() {
                MemberKind::Directory
            } else if file_type.is_symlink() {
                MemberKind::Symlink
            } else if file_type.is_file() {
                MemberKind::File
            } else {
                logging::warn(&format!("skipping {}: not a file, directory or symlink", entry.path().display()));
                continue;
            };
            if selector.selects(relative) {
                visit(relative, kind);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("a/b")).unwrap();
        fs::create_dir_all(dir.path().join("skip/deep")).unwrap();
        fs::write(dir.path().join("a/b/x.lock"), "x").unwrap();
        fs::write(dir.path().join("a/y.txt"), "y").unwrap();
        fs::write(dir.path().join("skip/deep/z.lock"), "z").unwrap();
        std::os::unix::fs::symlink("a/y.txt", dir.path().join("link")).unwrap();
        dir
    }

    fn root(dir: &Path, include: &[&str], exclude: &[&str]) -> Root {
        Root {
            guest_dir: dir.to_str().unwrap().to_owned(),
            member_prefix: "workspace".into(),
            include_globs: include.iter().map(|s| s.to_string()).collect(),
            exclude_globs: exclude.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// A whole-tree root lists the root, directories, files and symlinks in order, minus excludes.
    #[test]
    fn lists_whole_tree_in_order() {
        let dir = tree();
        let found = find(&[root(dir.path(), &[], &["skip"])]).unwrap();
        let listed: Vec<_> = found.iter().map(|f| (f.relative.as_str(), f.kind)).collect();
        assert_eq!(
            listed,
            vec![
                ("", MemberKind::Directory),
                ("a", MemberKind::Directory),
                ("a/b", MemberKind::Directory),
                ("a/b/x.lock", MemberKind::File),
                ("a/y.txt", MemberKind::File),
                ("link", MemberKind::Symlink),
            ]
        );
    }

    /// A literal include walks only its own subtree, and a symlinked start is listed, not followed.
    #[test]
    fn walks_from_literal_starts() {
        let dir = tree();
        let found = find(&[root(dir.path(), &["a/b", "link"], &[])]).unwrap();
        let listed: Vec<_> = found.iter().map(|f| (f.relative.as_str(), f.kind)).collect();
        assert_eq!(listed, vec![("a/b", MemberKind::Directory), ("a/b/x.lock", MemberKind::File), ("link", MemberKind::Symlink)]);
    }

    /// `selected_files` keeps regular files only.
    #[test]
    fn selects_files_by_glob() {
        let dir = tree();
        let selector = Selector::new(&["**/*.lock".to_string()], &["skip/**".to_string()]).unwrap();
        assert_eq!(selected_files(dir.path(), &selector).unwrap(), vec!["a/b/x.lock"]);
    }
}
