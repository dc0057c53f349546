//! Which paths under a cached root are selected: the user's globs and `!` excludes, relative to the
//! root. Saving uses it to pick files; restoring uses it to refuse members that the same paths would
//! never have saved.

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

/// A malformed glob pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid glob pattern `{pattern}`: {message}")]
pub struct PatternError {
    pub pattern: String,
    pub message: String,
}

/// Include and exclude patterns of one root.
///
/// A path is selected when it or one of its ancestors matches an include (or there are no includes),
/// and neither it nor any ancestor matches an exclude. `*` does not cross `/`; `**` does.
#[derive(Debug, Clone)]
pub struct Selector {
    include: Option<GlobSet>,
    exclude: GlobSet,
    starts: Vec<String>,
}

impl Selector {
    /// Compiles the patterns. An empty `include` selects the whole tree.
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, PatternError> {
        let starts = walk_starts(include);
        let include = if include.is_empty() { None } else { Some(compile(include)?) };
        Ok(Self { include, exclude: compile(exclude)?, starts })
    }

    /// Where a walker must start so that it sees every selected path and little else: the literal
    /// leading directories of the include patterns (`node_modules` for `node_modules`, `src` for
    /// `src/**/*.rs`, the root for `**/*.lock`), sorted, without any that lie inside another.
    pub fn walk_starts(&self) -> &[String] {
        &self.starts
    }

    /// Whether `relative` (`/`-separated, empty for the root itself) is selected.
    pub fn selects(&self, relative: &str) -> bool {
        let mut included = self.include.is_none();
        for prefix in ancestors_and_self(relative) {
            if !self.exclude.is_empty() && self.exclude.is_match(prefix) {
                return false;
            }
            if !included && let Some(include) = &self.include {
                included = include.is_match(prefix);
            }
            // Without excludes nothing below an included prefix can be refused.
            if included && self.exclude.is_empty() {
                return true;
            }
        }
        included
    }

    /// Whether `relative` is excluded by itself or an ancestor (a walker prunes such directories).
    pub fn excludes(&self, relative: &str) -> bool {
        !self.exclude.is_empty() && ancestors_and_self(relative).any(|p| self.exclude.is_match(p))
    }
}

fn compile(patterns: &[String]) -> Result<GlobSet, PatternError> {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        builder.add(glob(pattern)?);
    }
    builder.build().map_err(|e| PatternError { pattern: patterns.join(" "), message: e.to_string() })
}

fn glob(pattern: &str) -> Result<Glob, PatternError> {
    let trimmed = pattern.trim_end_matches('/');
    GlobBuilder::new(trimmed)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| PatternError { pattern: pattern.to_owned(), message: e.kind().to_string() })
}

fn walk_starts(include: &[String]) -> Vec<String> {
    let mut starts: Vec<String> = if include.is_empty() {
        vec![String::new()]
    } else {
        include
            .iter()
            .map(|pattern| {
                let literal: Vec<&str> = pattern
                    .trim_end_matches('/')
                    .split('/')
                    .take_while(|c| !c.contains(['*', '?', '[', '{', '\\']))
                    .filter(|c| !c.is_empty() && *c != ".")
                    .collect();
                literal.join("/")
            })
            .collect()
    };
    starts.sort();
    starts.dedup();
    let mut kept: Vec<String> = Vec::new();
    for start in starts {
        let inside_kept = kept.iter().any(|k| k.is_empty() || start == *k || start.starts_with(&format!("{k}/")));
        if !inside_kept {
            kept.push(start);
        }
    }
    kept
}

/// `a/b/c` yields `a`, `a/b`, `a/b/c`; the empty path yields nothing.
fn ancestors_and_self(relative: &str) -> impl Iterator<Item = &str> {
    relative.match_indices('/').map(|(i, _)| &relative[..i]).chain((!relative.is_empty()).then_some(relative))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(include: &[&str], exclude: &[&str]) -> Selector {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Selector::new(&own(include), &own(exclude)).unwrap()
    }

    /// No includes selects everything; an exclude prunes a subtree.
    #[test]
    fn whole_tree_with_exclude() {
        let s = selector(&[], &[".cache"]);
        assert!(s.selects("a/b.js"));
        assert!(!s.selects(".cache"));
        assert!(!s.selects(".cache/x/y"));
        assert!(s.selects(".cachex"));
    }

    /// Includes select matching files and everything below matching directories.
    #[test]
    fn includes_select_subtrees() {
        let s = selector(&["**/*.rs", "vendor"], &["vendor/big/**"]);
        assert!(s.selects("src/main.rs"));
        assert!(s.selects("main.rs"));
        assert!(!s.selects("src/main.c"));
        assert!(s.selects("vendor/a/b.c"));
        assert!(!s.selects("vendor/big/x"));
    }

    /// `*` stays within one component.
    #[test]
    fn star_does_not_cross_separators() {
        let s = selector(&["*.lock"], &[]);
        assert!(s.selects("Cargo.lock"));
        assert!(!s.selects("sub/Cargo.lock"));
    }

    /// Walks start at the literal part of each include, outermost only.
    #[test]
    fn computes_walk_starts() {
        assert_eq!(selector(&[], &[]).walk_starts(), [""]);
        assert_eq!(selector(&["node_modules", "src/**/*.rs", "src/lib", "**/*.lock"], &[]).walk_starts(), [""]);
        assert_eq!(selector(&["target/debug", "src/**/*.rs", "src/a/*.c", "srcx"], &[]).walk_starts(), ["src", "srcx", "target/debug"]);
    }

    /// A malformed pattern is an error that names it.
    #[test]
    fn reports_bad_patterns() {
        let err = Selector::new(&["a[".to_string()], &[]).unwrap_err();
        assert_eq!(err.pattern, "a[");
    }
}
