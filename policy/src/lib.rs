//! Pure policy shared by the guest and the host: what an archive member may be called, which modes and
//! link targets are allowed, and which paths a cached root selects.
//!
//! Nothing here does I/O. The guest applies these rules while extracting, and the host applies the very
//! same functions again to everything the guest asks it to do (modes, symlinks, moves into place), so
//! a compromised or buggy guest cannot widen what the host touches. The rules follow Python's PEP 706
//! `data` filter.

mod member;
mod mode;
mod selection;
mod symlink;

pub use member::{MemberPath, PathRules, validate_member_path, validate_relative};
pub use mode::sanitize_mode;
pub use selection::{PatternError, Selector};
pub use symlink::validate_symlink_target;

/// Why a path, mode or link was refused. The message names the rule; callers add the member's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("empty path")]
    Empty,
    #[error("absolute path")]
    Absolute,
    #[error("`..` component")]
    ParentComponent,
    #[error("Windows drive, UNC or backslash path")]
    WindowsPath,
    #[error("NUL byte in path")]
    NulByte,
    #[error("path is {len} bytes, over the limit of {max}")]
    TooLong { len: usize, max: usize },
    #[error("path is {depth} components deep, over the limit of {max}")]
    TooDeep { depth: usize, max: usize },
    #[error("not under any restored path")]
    OutsideRoots,
    #[error("not selected by the restored path's patterns")]
    NotSelected,
    #[error("symlink target is absolute")]
    AbsoluteLinkTarget,
    #[error("symlink target escapes its root")]
    EscapingLinkTarget,
    #[error("empty symlink target")]
    EmptyLinkTarget,
    #[error("symlink target has `..` after a name, which could climb out through another link")]
    DotDotAfterName,
    #[error("symlink points to itself")]
    SymlinkLoop,
    #[error("hard link target is not a regular file stored earlier under the same root")]
    BadHardLinkTarget,
}

#[cfg(test)]
mod shared_cases {
    //! The cases every host's re-check must agree on (`tests/fixtures/policy-cases.json`, which the
    //! Python and Node hosts in `examples/` test themselves against), checked against this crate.

    use super::*;

    fn cases() -> serde_json::Value {
        serde_json::from_str(include_str!("../../tests/fixtures/policy-cases.json")).expect("valid JSON")
    }

    fn verdict(result: Result<(), Violation>) -> Option<String> {
        result.err().map(|v| v.to_string())
    }

    #[test]
    fn relative_paths() {
        for case in cases()["relative"].as_array().unwrap() {
            let path = case["path"].as_str().unwrap();
            match validate_relative(path) {
                Ok(components) => assert_eq!(serde_json::json!(components.components()), case["components"], "{path:?}"),
                Err(violation) => assert_eq!(Some(violation.to_string().as_str()), case["violation"].as_str(), "{path:?}"),
            }
        }
    }

    #[test]
    fn symlink_targets() {
        for case in cases()["symlink"].as_array().unwrap() {
            let (link, target) = (case["link"].as_str().unwrap(), case["target"].as_str().unwrap());
            let link = validate_relative(link).unwrap();
            assert_eq!(verdict(validate_symlink_target(&link, target)).as_deref(), case["violation"].as_str(), "{link:?} -> {target:?}");
        }
    }

    #[test]
    fn modes() {
        let octal = |value: &serde_json::Value| u32::from_str_radix(value.as_str().unwrap(), 8).unwrap();
        for case in cases()["mode"].as_array().unwrap() {
            assert_eq!(sanitize_mode(octal(&case["mode"]), case["directory"].as_bool().unwrap()), octal(&case["sanitized"]), "{case}");
        }
    }
}
