"""What a host must check again itself, whatever the guest says: the extraction policy of
`policy/` (Rust), for the paths, link targets and modes that cross the WIT boundary.

The guest already applies these rules to every archive member. A host re-applies them to everything
the guest asks it to do — every `host-files` path, every fixup — so that a guest gone wrong (a bug, or
memory corruption by a hostile archive) still cannot make the host touch anything outside staging.
The cases are shared with the Rust policy crate and the Node host through
`tests/fixtures/policy-cases.json`, so the three implementations cannot drift apart.
"""


class Violation(ValueError):
    """A path, link target or mode that the policy refuses; the message names the rule, in the same
    words as the Rust policy crate."""


def validate_relative(path):
    """The components of `path`, a `/`-separated path relative to a root; empty for the root itself.
    Refuses NUL bytes, absolute paths, Windows drive/UNC/backslash forms and `..` components."""
    if "\0" in path:
        raise Violation("NUL byte in path")
    if path.startswith("/"):
        raise Violation("absolute path")
    raw = path.encode()
    if "\\" in path or (len(raw) >= 2 and raw[:1].isalpha() and raw[1:2] == b":"):
        raise Violation("Windows drive, UNC or backslash path")
    components = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise Violation("`..` component")
        components.append(part)
    return components


def validate_symlink_target(link, target):
    """Checks that `target`, the target of a symlink at `link` (components relative to its root),
    stays inside that root: relative, with `..` only at its start, never above the root, and not
    pointing at itself."""
    if target == "":
        raise Violation("empty symlink target")
    if "\0" in target:
        raise Violation("NUL byte in path")
    if target.startswith("/"):
        raise Violation("symlink target is absolute")
    if "\\" in target or target.encode()[1:2] == b":":
        raise Violation("Windows drive, UNC or backslash path")
    resolved = list(link[:-1])
    named = False
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if named:
                raise Violation("symlink target has `..` after a name, which could climb out through another link")
            if not resolved:
                raise Violation("symlink target escapes its root")
            resolved.pop()
        else:
            named = True
            resolved.append(part)
    if resolved == list(link):
        raise Violation("symlink points to itself")


def sanitize_mode(mode, is_directory):
    """The mode an extracted object gets: no setuid/setgid/sticky, no group/other write; files keep
    group/other execute only with the owner's; directories always get owner rwx."""
    mode &= 0o755
    if is_directory:
        mode |= 0o700
    elif mode & 0o100 == 0:
        mode &= ~0o111
    return mode
