//! Turning the user's paths (`node_modules`, `~/.cargo/registry`, `src/**/*.rs`, `!node_modules/.cache`)
//! into cached roots: a host directory, the logical prefix its members get in the archive, and include
//! and exclude patterns relative to it.
//!
//! A root is the directory *containing* what is cached: `node_modules` becomes the workspace with the
//! include `node_modules`; `src/**/*.rs` becomes `src` with `**/*.rs`. This is decided from the text
//! alone, never from what exists on disk, so saving and restoring compute the same roots. Prefixes are
//! `workspace/…` for paths under the working directory, `home/…` under the home directory and `abs/…`
//! otherwise, so a cache restores to the same place even when the runner's workspace path differs
//! (actions/cache's `../..` names break then).

use std::path::{Component, Path, PathBuf};

/// One cached root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedRoot {
    /// Absolute host directory.
    pub dir: PathBuf,
    /// Archive prefix, e.g. `workspace` or `home/.cargo`.
    pub prefix: String,
    /// Patterns relative to `dir`; never empty.
    pub include: Vec<String>,
    /// `!` patterns relative to `dir`.
    pub exclude: Vec<String>,
}

/// A path the user gave that cannot be cached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The request has no paths.
    #[error("no paths given")]
    NoPaths,
    /// A path starts with `~` and no home directory is known.
    #[error("path {0:?}: `~` needs a home directory, and none is known")]
    NoHome(String),
    /// A path is not valid UTF-8 once made absolute.
    #[error("path {0:?} is not valid UTF-8 once made absolute")]
    NotUtf8(String),
    /// A path is `/` (or a drive root).
    #[error("path {0:?} is the filesystem root; cache something below it")]
    FilesystemRoot(String),
}

/// Resolves path specs (one per entry; entries may hold several lines, as GitHub's `path` input does).
pub fn resolve_roots(specs: &[String], cwd: &Path, home: Option<&Path>) -> Result<Vec<CachedRoot>, PathError> {
    let lines: Vec<&str> = specs.iter().flat_map(|s| s.lines()).map(str::trim).filter(|l| !l.is_empty()).collect();
    let mut roots: Vec<CachedRoot> = Vec::new();
    let mut excludes: Vec<PathBuf> = Vec::new();
    for line in lines {
        if let Some(exclude) = line.strip_prefix('!') {
            excludes.push(absolute(exclude.trim(), cwd, home)?);
            continue;
        }
        let path = absolute(line, cwd, home)?;
        let (dir, pattern) = split_at_glob(&path).ok_or_else(|| PathError::FilesystemRoot(line.to_owned()))?;
        match roots.iter_mut().find(|r| r.dir == dir) {
            Some(root) if !root.include.contains(&pattern) => root.include.push(pattern),
            Some(_) => {}
            None => roots.push(CachedRoot { prefix: prefix_for(&dir, cwd, home, line)?, dir, include: vec![pattern], exclude: Vec::new() }),
        }
    }
    if roots.is_empty() {
        return Err(PathError::NoPaths);
    }
    let roots = fold_nested(roots);
    Ok(roots
        .into_iter()
        .map(|mut root| {
            for exclude in &excludes {
                if let Ok(relative) = exclude.strip_prefix(&root.dir)
                    && let Some(relative) = relative.to_str().filter(|r| !r.is_empty())
                {
                    root.exclude.push(relative.to_owned());
                }
            }
            root
        })
        .collect())
}

/// The roots of each path on its own, merged only where two share a directory: for archives that
/// name members relative to each path's parent (vela-s3-cache), where folding a nested root into an
/// outer one would change what its members are named relative to.
pub fn resolve_each(specs: &[String], cwd: &Path, home: Option<&Path>) -> Result<Vec<CachedRoot>, PathError> {
    let mut roots: Vec<CachedRoot> = Vec::new();
    for spec in specs {
        for root in resolve_roots(std::slice::from_ref(spec), cwd, home)? {
            match roots.iter_mut().find(|r| r.dir == root.dir) {
                Some(same) => {
                    same.include.extend(root.include.into_iter().filter(|p| !same.include.contains(p)).collect::<Vec<_>>());
                    same.exclude.extend(root.exclude);
                }
                None => roots.push(root),
            }
        }
    }
    if roots.is_empty() {
        return Err(PathError::NoPaths);
    }
    Ok(roots)
}

/// The archive prefix of `root` when members are named as `tar` names them: its path relative to
/// `cwd` (empty for `cwd` itself), or its absolute path, with its leading `/` (as `tar -P` keeps it),
/// when it is elsewhere. Older tools' archives are named this way, and entries written for them to
/// read too.
pub fn plain_prefix(root: &CachedRoot, cwd: &Path) -> String {
    match root.dir.strip_prefix(cwd) {
        Ok(relative) => relative.to_string_lossy().replace('\\', "/"),
        Err(_) => root.dir.to_string_lossy().into_owned(),
    }
}

/// Folds a root that lies inside another into the outer one, so no object is archived twice.
fn fold_nested(mut roots: Vec<CachedRoot>) -> Vec<CachedRoot> {
    roots.sort_by(|a, b| a.dir.cmp(&b.dir));
    let mut folded: Vec<CachedRoot> = Vec::new();
    for root in roots {
        let outer = folded.iter_mut().find(|outer| root.dir.starts_with(&outer.dir));
        match outer {
            Some(outer) => {
                let relative = root.dir.strip_prefix(&outer.dir).expect("checked").to_str().expect("utf-8 checked").to_owned();
                for pattern in root.include {
                    let pattern = format!("{relative}/{pattern}");
                    if !outer.include.contains(&pattern) {
                        outer.include.push(pattern);
                    }
                }
            }
            None => folded.push(root),
        }
    }
    folded
}

/// Expands `~`, makes the path absolute against `cwd` and removes `.` and `..` lexically.
fn absolute(spec: &str, cwd: &Path, home: Option<&Path>) -> Result<PathBuf, PathError> {
    let expanded = if spec == "~" || spec.starts_with("~/") {
        let home = home.ok_or_else(|| PathError::NoHome(spec.to_owned()))?;
        home.join(spec.trim_start_matches('~').trim_start_matches('/'))
    } else {
        PathBuf::from(spec)
    };
    let joined = if expanded.is_absolute() { expanded } else { cwd.join(expanded) };
    let normal = normalize(&joined);
    normal.to_str().ok_or_else(|| PathError::NotUtf8(spec.to_owned()))?;
    Ok(normal)
}

/// Removes `.` and `..` from `path` lexically, never looking at the filesystem.
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                normal.pop();
            }
            Component::CurDir => {}
            other => normal.push(other),
        }
    }
    normal
}

/// Splits an absolute path at its first component with a glob character: the directory before it and
/// the pattern from it on. A path without globs splits into its parent and its last component.
fn split_at_glob(path: &Path) -> Option<(PathBuf, String)> {
    let components: Vec<&str> = path.components().skip(1).filter_map(|c| c.as_os_str().to_str()).collect();
    let first_glob = components.iter().position(|c| c.contains(['*', '?', '[', '{']));
    let split = first_glob.unwrap_or(components.len().checked_sub(1)?);
    let dir: PathBuf = std::iter::once("/").chain(components[..split].iter().copied()).collect();
    Some((dir, components[split..].join("/")))
}

fn prefix_for(dir: &Path, cwd: &Path, home: Option<&Path>, spec: &str) -> Result<String, PathError> {
    let (anchor, rest) = if let Ok(rest) = dir.strip_prefix(cwd) {
        ("workspace", rest)
    } else if let Some(rest) = home.and_then(|h| dir.strip_prefix(h).ok()) {
        ("home", rest)
    } else {
        ("abs", dir.strip_prefix("/").unwrap_or(dir))
    };
    let rest = rest.to_str().ok_or_else(|| PathError::NotUtf8(spec.to_owned()))?;
    Ok(if rest.is_empty() { anchor.to_owned() } else { format!("{anchor}/{rest}") })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(specs: &[&str]) -> Vec<CachedRoot> {
        let specs: Vec<String> = specs.iter().map(|s| s.to_string()).collect();
        resolve_roots(&specs, Path::new("/work/repo"), Some(Path::new("/home/u"))).unwrap()
    }

    fn root(dir: &str, prefix: &str, include: &[&str], exclude: &[&str]) -> CachedRoot {
        CachedRoot {
            dir: dir.into(),
            prefix: prefix.into(),
            include: include.iter().map(|s| s.to_string()).collect(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Workspace paths, `~` paths and absolute paths get their anchors; same-directory paths merge.
    #[test]
    fn resolves_anchors() {
        assert_eq!(
            resolve(&["node_modules\n.npm", "~/.cargo/registry/index", "/opt/cache/x", "./a/../b"]),
            vec![
                root("/home/u/.cargo/registry", "home/.cargo/registry", &["index"], &[]),
                root("/opt/cache", "abs/opt/cache", &["x"], &[]),
                root("/work/repo", "workspace", &["node_modules", ".npm", "b"], &[]),
            ]
        );
    }

    /// Globs split at their first wild component; excludes attach to the roots that contain them.
    #[test]
    fn splits_globs_and_attaches_excludes() {
        assert_eq!(
            resolve(&["src/**/*.rs", "!src/gen", "target", "!target/debug/incremental"]),
            vec![root("/work/repo", "workspace", &["target", "src/**/*.rs"], &["src/gen", "target/debug/incremental"])]
        );
        assert_eq!(resolve(&["crates/*/target"]), vec![root("/work/repo/crates", "workspace/crates", &["*/target"], &[])]);
    }

    /// The filesystem root itself and an empty list are refused.
    #[test]
    fn refuses_unusable_paths() {
        let cwd = Path::new("/work/repo");
        assert_eq!(resolve_roots(&["/".into()], cwd, None), Err(PathError::FilesystemRoot("/".into())));
        assert_eq!(resolve_roots(&["  \n".into()], cwd, None), Err(PathError::NoPaths));
        assert_eq!(resolve_roots(&["~/x".into()], cwd, None), Err(PathError::NoHome("~/x".into())));
    }
}
