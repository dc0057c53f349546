//! Permission bits: what an extracted file or directory may get, following PEP 706's `data` filter
//! where it fits caches.

/// The mode to apply to an extracted object whose archived mode is `mode`.
///
/// setuid, setgid and sticky bits and group/other write are cleared. Files keep group/other execute
/// only when the owner has execute. Directories always get owner rwx, so that a restore can fill and
/// later replace them. Unlike PEP 706, read-only files stay read-only (Go's module cache relies on it).
pub fn sanitize_mode(mode: u32, is_directory: bool) -> u32 {
    let mut mode = mode & 0o755;
    if is_directory {
        mode |= 0o700;
    } else if mode & 0o100 == 0 {
        mode &= !0o111;
    }
    mode
}

#[cfg(test)]
mod tests {
    use super::*;

    /// High bits and group/other write are cleared; exec survives only with the owner's.
    #[test]
    fn follows_the_data_filter() {
        assert_eq!(sanitize_mode(0o4755, false), 0o755);
        assert_eq!(sanitize_mode(0o2755, false), 0o755);
        assert_eq!(sanitize_mode(0o1777, true), 0o755);
        assert_eq!(sanitize_mode(0o777, false), 0o755);
        assert_eq!(sanitize_mode(0o644, false), 0o644);
        assert_eq!(sanitize_mode(0o455, false), 0o444);
        assert_eq!(sanitize_mode(0o444, false), 0o444);
        assert_eq!(sanitize_mode(0o011, false), 0o000);
        assert_eq!(sanitize_mode(0o000, true), 0o700);
    }
}
