//! Finding what the user's paths select under each preopened root, without following symlinks.
//!
//! One walker serves both saving (every selected object, directories included, so empty directories
//! survive) and `hashFiles` (selected regular files only). Siblings are visited in name order, so the
//! output is deterministic and parents come before their children. Directories are listed through
//! [`Directories`] — one host call per directory in the component, where a WASI listing would cost a
//! call and a stat per entry — while the decisions (starts, globs, pruning) stay here.

use std::path::Path;

use s3cache_policy::Selector;

use crate::bindings::{Found, MemberKind, Root};
use crate::files::{Directories, EntryKind};
use crate::{GuestError, logging};

/// Everything each root selects, root by root.
pub fn find(roots: &[Root], dirs: &dyn Directories) -> Result<Vec<Found>, GuestError> {
    let mut found = Vec::new();
    for (index, root) in roots.iter().enumerate() {
        let selector = Selector::new(&root.include_globs, &root.exclude_globs)?;
        walk_selected(dirs, &root.guest_dir, &selector, &mut |relative, kind| {
            found.push(Found { root: index as u32, relative: relative.to_owned(), kind });
        })?;
    }
    Ok(found)
}

/// The regular files under `dir` that `selector` selects, as sorted relative paths.
pub fn selected_files(dirs: &dyn Directories, dir: &str, selector: &Selector) -> Result<Vec<String>, GuestError> {
    let mut files = Vec::new();
    walk_selected(dirs, dir, selector, &mut |relative, kind| {
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
fn walk_selected(
    dirs: &dyn Directories,
    dir: &str,
    selector: &Selector,
    visit: &mut dyn FnMut(&str, MemberKind),
) -> Result<(), GuestError> {
    for start in selector.walk_starts() {
        let kind = if start.is_empty() {
            MemberKind::Directory
        } else {
            // The start itself, not followed if it is a symlink; nothing there means nothing to cache.
            let Ok(metadata) = std::fs::symlink_metadata(Path::new(dir).join(start)) else { continue };
            match kind_of(EntryKind::of(metadata.file_type())) {
                Some(kind) => kind,
                None => {
                    logging::warn(&format!("skipping {dir}/{start}: not a file, directory or symlink"));
                    continue;
                }
            }
        };
        visit_entry(dirs, dir, selector, start, kind, visit)?;
    }
    Ok(())
}

fn kind_of(kind: EntryKind) -> Option<MemberKind> {
    match kind {
        EntryKind::File => Some(MemberKind::File),
        EntryKind::Directory => Some(MemberKind::Directory),
        EntryKind::Symlink => Some(MemberKind::Symlink),
        EntryKind::Other => None,
    }
}

/// Visits `relative` and, for a directory that is not excluded, everything below it, in name order.
fn visit_entry(
    dirs: &dyn Directories,
    dir: &str,
    selector: &Selector,
    relative: &str,
    kind: MemberKind,
    visit: &mut dyn FnMut(&str, MemberKind),
) -> Result<(), GuestError> {
    if kind == MemberKind::Directory && selector.excludes(relative) {
        return Ok(());
    }
    if selector.selects(relative) {
        visit(relative, kind);
    }
    if kind != MemberKind::Directory {
        return Ok(());
    }
    let listing = dirs.read_dir(dir, relative)?;
    for name in listing.skipped {
        logging::warn(&format!("skipping {dir}/{}: the name is not UTF-8", join(relative, &name)));
    }
    for (name, kind) in listing.entries {
        let child = join(relative, &name);
        match kind_of(kind) {
            Some(kind) => visit_entry(dirs, dir, selector, &child, kind, visit)?,
            None => logging::warn(&format!("skipping {dir}/{child}: not a file, directory or symlink")),
        }
    }
    Ok(())
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() { name.to_owned() } else { format!("{parent}/{name}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::LocalFiles;
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
        let found = find(&[root(dir.path(), &[], &["skip"])], &LocalFiles::default()).unwrap();
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
        let found = find(&[root(dir.path(), &["a/b", "link"], &[])], &LocalFiles::default()).unwrap();
        let listed: Vec<_> = found.iter().map(|f| (f.relative.as_str(), f.kind)).collect();
        assert_eq!(listed, vec![("a/b", MemberKind::Directory), ("a/b/x.lock", MemberKind::File), ("link", MemberKind::Symlink)]);
    }

    /// `selected_files` keeps regular files only.
    #[test]
    fn selects_files_by_glob() {
        let dir = tree();
        let selector = Selector::new(&["**/*.lock".to_string()], &["skip/**".to_string()]).unwrap();
        assert_eq!(selected_files(&LocalFiles::default(), dir.path().to_str().unwrap(), &selector).unwrap(), vec!["a/b/x.lock"]);
    }
}
