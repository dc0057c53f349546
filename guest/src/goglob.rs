//! Go's `filepath.Glob`, for drone-cache's `hashFiles`: a pattern matches names component by
//! component (`*` and `?` never cross `/`, `[...]` classes, `\` escapes, no `**`), leading dots
//! included; a component without wildcards is taken as it is when it exists. Matches come back in
//! Go's order: each matched directory in turn, its entries sorted by name.

use crate::GuestError;
use crate::files::{Directories, EntryKind};

/// Whether a component has wildcards.
fn has_meta(component: &str) -> bool {
    component.contains(['*', '?', '[', '\\'])
}

/// Go's `filepath.Match` for one component; `None` when the pattern is malformed.
pub fn matches(pattern: &str, name: &str) -> Option<bool> {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    match_from(&pattern, &name)
}

fn match_from(pattern: &[char], name: &[char]) -> Option<bool> {
    let Some((&first, rest)) = pattern.split_first() else { return Some(name.is_empty()) };
    match first {
        '*' => {
            for skip in 0..=name.len() {
                if match_from(rest, &name[skip..])? {
                    return Some(true);
                }
            }
            Some(false)
        }
        '?' => match name.split_first() {
            Some((_, tail)) => match_from(rest, tail),
            None => Some(false),
        },
        '[' => {
            let (matched, after) = class(rest, name.first().copied())?;
            if name.is_empty() || !matched {
                // Still check the rest is well-formed, as Go reports a bad pattern either way.
                return match_from(after, &[]).map(|_| false);
            }
            match_from(after, &name[1..])
        }
        '\\' => {
            let (&literal, after) = rest.split_first()?;
            match name.split_first() {
                Some((&c, tail)) if c == literal => match_from(after, tail),
                _ => Some(false),
            }
        }
        literal => match name.split_first() {
            Some((&c, tail)) if c == literal => match_from(rest, tail),
            _ => Some(false),
        },
    }
}

/// A `[...]` class (after the `[`): whether `c` is in it, and the pattern after the `]`.
fn class(pattern: &[char], c: Option<char>) -> Option<(bool, &[char])> {
    let (negated, mut rest) = match pattern.split_first() {
        Some(('^', rest)) => (true, rest),
        _ => (false, pattern),
    };
    let mut matched = false;
    let mut first = true;
    loop {
        let (&start, after) = rest.split_first()?;
        if start == ']' && !first {
            return Some((matched != negated, after));
        }
        first = false;
        let (start, after) = if start == '\\' { (*after.first()?, &after[1..]) } else { (start, after) };
        let (end, after) = match after {
            ['-', ']', ..] => (start, after),
            ['-', '\\', end, tail @ ..] => (*end, tail),
            ['-', end, tail @ ..] => (*end, tail),
            _ => (start, after),
        };
        if c.is_some_and(|c| start <= c && c <= end) {
            matched = true;
        }
        rest = after;
    }
}

/// Go's `filepath.Glob` of `pattern` under `dir` (the workspace): the matching paths, relative, with
/// their kinds. A malformed pattern is an error; absolute patterns and `..` are refused.
pub fn glob(files: &dyn Directories, dir: &str, pattern: &str) -> Result<Vec<(String, EntryKind)>, GuestError> {
    let invalid = |why: &str| GuestError::InvalidPattern(format!("hashFiles \"{pattern}\": {why}"));
    let pattern = pattern.trim_start_matches("./");
    if pattern.starts_with('/') || pattern.split('/').any(|c| c == "..") {
        return Err(invalid("the pattern must stay inside the workspace"));
    }
    let mut found: Vec<(String, EntryKind)> = vec![(String::new(), EntryKind::Directory)];
    for component in pattern.split('/').filter(|c| !c.is_empty() && *c != ".") {
        let mut next = Vec::new();
        for (parent, kind) in &found {
            if *kind != EntryKind::Directory && *kind != EntryKind::Symlink {
                continue;
            }
            let Ok(listing) = files.read_dir(dir, parent) else { continue };
            for (name, kind) in listing.entries {
                let hit = if has_meta(component) {
                    matches(component, &name).ok_or_else(|| invalid("syntax error in pattern"))?
                } else {
                    name == component
                };
                if hit {
                    next.push((if parent.is_empty() { name } else { format!("{parent}/{name}") }, kind));
                }
            }
        }
        found = next;
    }
    if found.iter().any(|(path, _)| path.is_empty()) {
        return Ok(Vec::new());
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::LocalFiles;

    /// `filepath.Match`'s rules: no `/` crossing, classes, negation, ranges, escapes, dotfiles.
    #[test]
    fn match_rules() {
        assert_eq!(matches("go.*", "go.mod"), Some(true));
        assert_eq!(matches("*", ".hidden"), Some(true));
        assert_eq!(matches("a?c", "abc"), Some(true));
        assert_eq!(matches("[a-c]x", "bx"), Some(true));
        assert_eq!(matches("[^a-c]x", "bx"), Some(false));
        assert_eq!(matches("\\*", "*"), Some(true));
        assert_eq!(matches("*.sum", "go.mod"), Some(false));
        assert_eq!(matches("[", "x"), None);
    }

    /// Matches in Go's order, per directory; literal components; nothing for no match.
    #[test]
    fn globs_in_go_order() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["go.sum", "go.mod", "a/go.mod", "b/go.mod", "b/c/go.mod"] {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, name).unwrap();
        }
        let root = dir.path().to_str().unwrap();
        let names = |pattern: &str| glob(&LocalFiles::default(), root, pattern).unwrap().into_iter().map(|(p, _)| p).collect::<Vec<_>>();
        assert_eq!(names("go.*"), vec!["go.mod", "go.sum"]);
        assert_eq!(names("*/go.mod"), vec!["a/go.mod", "b/go.mod"]);
        assert_eq!(names("**/go.mod"), vec!["a/go.mod", "b/go.mod"], "`**` is `*` in Go");
        assert_eq!(names("./b/c/go.mod"), vec!["b/c/go.mod"]);
        assert!(names("*.lock").is_empty());
        assert!(glob(&LocalFiles::default(), root, "../x").is_err());
    }
}
