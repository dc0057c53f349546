//! Symlink targets: a link restored from an archive must point inside its own root.
//!
//! The target is resolved lexically from the link's directory. Links to absolute paths are refused here;
//! a caller that allows some (a documented policy for virtualenvs, say) decides that before calling.

use crate::{MemberPath, Violation};

/// Checks that `target`, the target of a symlink at `link` (relative to its root), stays inside that
/// root when resolved lexically. Intermediate symlinks are not followed: the extractor refuses members
/// below a symlink, so lexical resolution is the whole story.
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
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return Err(Violation::EscapingLinkTarget);
                }
            }
            _ => depth += 1,
        }
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
        assert_eq!(check("a/link", "./b/../c"), Ok(()));
    }

    /// Absolute, escaping and empty targets are refused.
    #[test]
    fn refuses_escaping_links() {
        assert_eq!(check("l", "/etc"), Err(Violation::AbsoluteLinkTarget));
        assert_eq!(check("l", ".."), Err(Violation::EscapingLinkTarget));
        assert_eq!(check("a/l", "../../outside"), Err(Violation::EscapingLinkTarget));
        assert_eq!(check("a/l", "b/../../../x"), Err(Violation::EscapingLinkTarget));
        assert_eq!(check("l", ""), Err(Violation::EmptyLinkTarget));
    }
}
