//! Symlink targets: a link restored from an archive must point inside its own root.
//!
//! The target is resolved lexically from the link's directory. Links to absolute paths are refused here;
//! a caller that allows some (a documented policy for virtualenvs, say) decides that before calling.

use crate::{MemberPath, Violation};

/// Checks that `target`, the target of a symlink at `link` (relative to its root), stays inside that
/// root.
///
/// Lexical containment is not enough on its own: with `d -> .`, a link `e -> d/..` stays inside
/// lexically but resolves to the root's parent. So `..` may only lead a target (`../../pkg/cli.js`):
/// those steps climb the link's own parent directories, which are real directories (the extractor
/// refuses members below symlinks); the names that follow may pass through other links, each of which
/// is confined the same way. A link that resolves to itself is refused as a loop.
pub fn validate_symlink_target(link: &MemberPath, target: &str) -> Result<(), Violation> {
    if target.is_empty() {
        return Err(Violation::EmptyLinkTarget);
    }
    if target.contains('\0') {
        return Err(Violation::NulByte);
    }
    if target.starts_with('/') {
        return Err(Violation::AbsoluteLinkTarget);
    }
    if target.contains('\\') || target.as_bytes().get(1) == Some(&b':') {
        return Err(Violation::WindowsPath);
    }
    // Depth of the link's directory below the root; each `..` climbs one level.
    let mut depth = link.depth().saturating_sub(1) as isize;
    let mut resolved: Vec<&str> = link.components()[..link.depth().saturating_sub(1)].iter().map(String::as_str).collect();
    let mut named = false;
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." if named => return Err(Violation::DotDotAfterName),
            ".." => {
                depth -= 1;
                resolved.pop();
                if depth < 0 {
                    return Err(Violation::EscapingLinkTarget);
                }
            }
            name => {
                named = true;
                depth += 1;
                resolved.push(name);
            }
        }
    }
    if resolved.iter().copied().eq(link.components().iter().map(String::as_str)) {
        return Err(Violation::SymlinkLoop);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate_relative;

    fn check(link: &str, target: &str) -> Result<(), Violation> {
        validate_symlink_target(&validate_relative(link).unwrap(), target)
    }

    /// Relative links that stay inside (node_modules/.bin style) pass.
    #[test]
    fn accepts_inside_links() {
        assert_eq!(check(".bin/tool", "../tool/bin/cli.js"), Ok(()));
        assert_eq!(check("a/b/c", "../../x"), Ok(()));
        assert_eq!(check("link", "target"), Ok(()));
        assert_eq!(check("a/b/lib64", "lib"), Ok(()));
    }

    /// Absolute, escaping and empty targets are refused.
    #[test]
    fn refuses_escaping_links() {
        assert_eq!(check("l", "/etc"), Err(Violation::AbsoluteLinkTarget));
        assert_eq!(check("l", ".."), Err(Violation::EscapingLinkTarget));
        assert_eq!(check("a/l", "../../outside"), Err(Violation::EscapingLinkTarget));
        assert_eq!(check("a/l", "b/../../../x"), Err(Violation::DotDotAfterName));
        assert_eq!(check("l", ""), Err(Violation::EmptyLinkTarget));
        assert_eq!(check("e", "d/.."), Err(Violation::DotDotAfterName));
        assert_eq!(check("a/l", "./b/../c"), Err(Violation::DotDotAfterName));
        assert_eq!(check("a", "a"), Err(Violation::SymlinkLoop));
        assert_eq!(check("x/a", "../x/a"), Err(Violation::SymlinkLoop));
    }
}
