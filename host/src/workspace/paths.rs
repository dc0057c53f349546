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
//!
//! Spellings of one path (`./x`, `x/`, `x`) resolve to the same root; [`plain_spelling`] gives the one
//! spelling an entry's version is computed from, which is the plain one (`x`) as written, so that
//! entries saved before spellings were folded together keep their version.

use std::path::{Component, Path, PathBuf};

use s3cache_policy::Selector;

use crate::sandbox::bindings::Found;

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
    let mut roots: Vec<CachedRoot> = Vec::new();
    let mut excludes: Vec<PathBuf> = Vec::new();
    for line in path_lines(specs) {
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

/// The paths of `specs`, one per non-empty line, trimmed: what [`resolve_roots`] reads.
fn path_lines(specs: &[String]) -> impl Iterator<Item = &str> {
    specs.iter().flat_map(|s| s.lines()).map(str::trim).filter(|l| !l.is_empty())
}

/// The paths of `specs` (not the `!` excludes) that selected nothing: no object of `found` lies at
/// or under them. `roots` are the roots that were walked (those whose directory exists), in the
/// order `found` numbers them; a path in none of them matched nothing.
pub fn unmatched_paths(specs: &[String], cwd: &Path, home: Option<&Path>, roots: &[CachedRoot], found: &[Found]) -> Vec<String> {
    path_lines(specs).filter(|line| !line.starts_with('!') && !selects_any(line, cwd, home, roots, found)).map(str::to_owned).collect()
}

/// Whether the path `line` selects any object of `found`: its pattern, relative to the root that holds
/// it as [`fold_nested`] writes it, selects one of that root's objects.
fn selects_any(line: &str, cwd: &Path, home: Option<&Path>, roots: &[CachedRoot], found: &[Found]) -> bool {
    // A path that does not resolve was refused before anything was walked.
    let Some((dir, pattern)) = absolute(line, cwd, home).ok().and_then(|path| split_at_glob(&path)) else { return true };
    let Some((index, root)) = roots.iter().enumerate().find(|(_, root)| dir.starts_with(&root.dir)) else { return false };
    let relative = dir.strip_prefix(&root.dir).ok().and_then(Path::to_str).unwrap_or_default();
    let pattern = if relative.is_empty() { pattern } else { format!("{relative}/{pattern}") };
    // A malformed glob was refused by the guest's walk before this.
    let Ok(selector) = Selector::new(&[pattern], &[]) else { return true };
    found.iter().any(|object| object.root as usize == index && selector.selects(&object.relative))
}

/// The spelling of one path line that an entry's version is computed from: `./x`, `x/`, `x//` and
/// `x/./` are `x` (and `!./x/` is `!x`), since they resolve to the same root. A line in that plain
/// spelling already is returned as it is, so the version of an entry saved with it does not change.
/// `..` is kept as written, and `~` and a leading `/` stay.
pub fn plain_spelling(line: &str) -> String {
    let line = line.trim();
    if let Some(excluded) = line.strip_prefix('!') {
        return format!("!{}", plain_spelling(excluded));
    }
    let components: Vec<&str> = line.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    let joined = components.join("/");
    if line.starts_with('/') {
        format!("/{joined}")
    } else if joined.is_empty() && !line.is_empty() {
        ".".to_owned()
    } else {
        joined
    }
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

    /// Every spelling of a path gets one spelling; the plain spelling is returned as written.
    #[test]
    fn plain_spellings() {
        for (line, plain) in [
            ("node_modules", "node_modules"),
            ("./node_modules", "node_modules"),
            ("node_modules/", "node_modules"),
            ("node_modules//", "node_modules"),
            ("node_modules/./", "node_modules"),
            (".//a/./b//", "a/b"),
            (" ./x ", "x"),
            ("src/**/*.rs", "src/**/*.rs"),
            ("src/**/", "src/**"),
            ("!./node_modules/.cache/", "!node_modules/.cache"),
            ("~/.cargo/registry/", "~/.cargo/registry"),
            ("//opt//cache/", "/opt/cache"),
            ("/", "/"),
            ("./", "."),
            (".", "."),
            ("a/../b", "a/../b"),
            ("", ""),
        ] {
            assert_eq!(plain_spelling(line), plain, "{line:?}");
        }
    }

    /// A path matched nothing when no object found lies at or under it: a literal path that does not
    /// exist, a glob with no match, a path whose directory was not walked; excludes are not named.
    #[test]
    fn names_paths_that_matched_nothing() {
        let (cwd, home) = (Path::new("/work/repo"), Some(Path::new("/home/u")));
        let specs: Vec<String> = ["node_modules", "./missing/", "src/**/*.rs", "*.lock", "gone/deep/x", "!node_modules/.cache", "~/.npm"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        // Roots as resolve_roots folds them: none inside another.
        let roots = [
            root("/home/u", "home", &[".npm"], &[]),
            root("/work/repo", "workspace", &["node_modules", "missing", "*.lock", "src/**/*.rs", "gone/deep/x"], &["node_modules/.cache"]),
        ];
        let found = |root: u32, relative: &str| Found { root, relative: relative.into(), kind: crate::sandbox::bindings::MemberKind::File };
        let unmatched =
            unmatched_paths(&specs, cwd, home, &roots, &[found(1, "node_modules"), found(1, "node_modules/a"), found(1, "src/lib/a.rs")]);
        assert_eq!(unmatched, ["./missing/", "*.lock", "gone/deep/x", "~/.npm"]);
        let unmatched =
            unmatched_paths(&specs, cwd, home, &roots, &[found(0, ".npm/x"), found(1, "node_modules/a/b"), found(1, "Cargo.lock")]);
        assert_eq!(unmatched, ["./missing/", "src/**/*.rs", "gone/deep/x"]);
        let unmatched = unmatched_paths(&specs, cwd, home, &roots[1..], &[found(0, "src/a.rs")]);
        assert_eq!(unmatched, ["node_modules", "./missing/", "*.lock", "gone/deep/x", "~/.npm"], "a root that does not exist");
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
