// What a host must check again itself, whatever the guest says: the extraction policy of `policy/`
// (Rust), for the paths, link targets and modes that cross the WIT boundary. The same cases run
// against this module, the Python host's and the Rust crate (tests/fixtures/policy-cases.json).

/** A path, link target or mode the policy refuses; the message names the rule as the Rust crate does. */
export class Violation extends Error {}

/** The components of a `/`-separated path relative to a root (empty for the root itself). */
export function validateRelative(path) {
  if (path.includes('\0')) throw new Violation('NUL byte in path');
  if (path.startsWith('/')) throw new Violation('absolute path');
  if (path.includes('\\') || /^[A-Za-z]:/.test(path)) throw new Violation('Windows drive, UNC or backslash path');
  const components = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') throw new Violation('`..` component');
    components.push(part);
  }
  return components;
}

/** Checks that `target`, the target of a symlink at `link` (components), stays inside its root. */
export function validateSymlinkTarget(link, target) {
  if (target === '') throw new Violation('empty symlink target');
  if (target.includes('\0')) throw new Violation('NUL byte in path');
  if (target.startsWith('/')) throw new Violation('symlink target is absolute');
  if (target.includes('\\') || Buffer.from(target)[1] === 0x3a) throw new Violation('Windows drive, UNC or backslash path');
  const resolved = link.slice(0, -1);
  let named = false;
  for (const part of target.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (named) throw new Violation('symlink target has `..` after a name, which could climb out through another link');
      if (resolved.length === 0) throw new Violation('symlink target escapes its root');
      resolved.pop();
    } else {
      named = true;
      resolved.push(part);
    }
  }
  if (resolved.length === link.length && resolved.every((c, i) => c === link[i])) throw new Violation('symlink points to itself');
}

/** The mode an extracted object gets (PEP 706's `data` filter, read-only files kept read-only). */
export function sanitizeMode(mode, isDirectory) {
  let sanitized = mode & 0o755;
  if (isDirectory) sanitized |= 0o700;
  else if ((sanitized & 0o100) === 0) sanitized &= ~0o111;
  return sanitized;
}
