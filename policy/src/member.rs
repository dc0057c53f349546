//! Member names: the one place that decides whether a name from an archive (or from the guest) is a
//! safe relative path, and splits it into a cached root and a path inside that root.
//!
//! Our own archives only ever contain `prefix/relative` names with `/` separators, so anything else
//! (absolute, `..`, Windows forms, NUL) is refused rather than "cleaned up".

use crate::Violation;

/// Bounds on member names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathRules {
    /// Longest name in bytes.
    pub max_bytes: usize,
    /// Most components.
    pub max_depth: usize,
}

impl Default for PathRules {
    fn default() -> Self {
        Self { max_bytes: 4096, max_depth: 256 }
    }
}

/// A validated relative path: non-empty components, none of them `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemberPath {
    components: Vec<String>,
}

impl MemberPath {
    /// The components, in order.
    pub fn components(&self) -> &[String] {
        &self.components
    }

    /// The path joined with `/`.
    pub fn as_joined(&self) -> String {
        self.components.join("/")
    }

    /// Whether `prefix` is this path or one of its ancestors, compared component by component.
    pub fn starts_with(&self, prefix: &MemberPath) -> bool {
        self.components.starts_with(&prefix.components)
    }

    /// The remainder after `prefix`, joined with `/` (empty when equal). `None` when not a prefix.
    pub fn strip_prefix(&self, prefix: &MemberPath) -> Option<String> {
        self.starts_with(prefix).then(|| self.components[prefix.components.len()..].join("/"))
    }

    /// Number of components.
    pub fn depth(&self) -> usize {
        self.components.len()
    }
}

/// Validates a member name from an archive. A single trailing `/` (as tar writes for directories) and
/// `.` components are tolerated and dropped; everything unusual is refused.
pub fn validate_member_path(name: &str, rules: PathRules) -> Result<MemberPath, Violation> {
    if name.len() > rules.max_bytes {
        return Err(Violation::TooLong { len: name.len(), max: rules.max_bytes });
    }
    let path = validate_relative(name.strip_suffix('/').unwrap_or(name))?;
    if path.components.is_empty() {
        return Err(Violation::Empty);
    }
    if path.depth() > rules.max_depth {
        return Err(Violation::TooDeep { depth: path.depth(), max: rules.max_depth });
    }
    Ok(path)
}

/// Validates a relative `/`-separated path; the empty string is the root itself and is allowed.
pub fn validate_relative(path: &str) -> Result<MemberPath, Violation> {
    if path.contains('\0') {
        return Err(Violation::NulByte);
    }
    if path.starts_with('/') {
        return Err(Violation::Absolute);
    }
    if path.contains('\\') || looks_like_windows_drive(path) {
        return Err(Violation::WindowsPath);
    }
    let mut components = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => continue,
            ".." => return Err(Violation::ParentComponent),
            other => components.push(other.to_owned()),
        }
    }
    Ok(MemberPath { components })
}

fn looks_like_windows_drive(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str) -> Result<String, Violation> {
        validate_member_path(name, PathRules::default()).map(|p| p.as_joined())
    }

    /// Plain, nested, dotted and non-ASCII names pass and are normalized.
    #[test]
    fn accepts_ordinary_names() {
        assert_eq!(check("workspace/a/b.txt").unwrap(), "workspace/a/b.txt");
        assert_eq!(check("workspace/dir/").unwrap(), "workspace/dir");
        assert_eq!(check("./workspace//x").unwrap(), "workspace/x");
        assert_eq!(check("home/über/日本.txt").unwrap(), "home/über/日本.txt");
        assert_eq!(check("workspace/..foo").unwrap(), "workspace/..foo");
    }

    /// Escapes by `..`, absolute and Windows forms are refused, never stripped.
    #[test]
    fn refuses_escapes() {
        assert_eq!(check("../../evil"), Err(Violation::ParentComponent));
        assert_eq!(check("a/b/../../../evil"), Err(Violation::ParentComponent));
        assert_eq!(check("/etc/passwd"), Err(Violation::Absolute));
        assert_eq!(check("////home/x"), Err(Violation::Absolute));
        assert_eq!(check("C:\\x"), Err(Violation::WindowsPath));
        assert_eq!(check("C:..\\x"), Err(Violation::WindowsPath));
        assert_eq!(check("\\\\server\\share"), Err(Violation::WindowsPath));
        assert_eq!(check("a\0b"), Err(Violation::NulByte));
        assert_eq!(check("."), Err(Violation::Empty));
        assert_eq!(check(""), Err(Violation::Empty));
    }

    /// Length and depth limits apply.
    #[test]
    fn enforces_limits() {
        let rules = PathRules { max_bytes: 10, max_depth: 2 };
        assert!(matches!(validate_member_path("aaaaaaaaaaa", rules), Err(Violation::TooLong { .. })));
        assert!(matches!(validate_member_path("a/b/c", rules), Err(Violation::TooDeep { .. })));
    }

    /// Prefix arithmetic works on components, not bytes.
    #[test]
    fn strips_prefixes_by_component() {
        let path = validate_relative("workspace/node_modules/x").unwrap();
        let prefix = validate_relative("workspace/node_modules").unwrap();
        assert_eq!(path.strip_prefix(&prefix).as_deref(), Some("x"));
        let other = validate_relative("workspace/node").unwrap();
        assert_eq!(path.strip_prefix(&other), None);
    }
}
