"""Computing keys, saving and restoring with the guest, the way the `s3cache` binary does, against
s3cache's file store (a directory of entries), so that the two hosts share entries.

The guest does everything that touches untrusted bytes or templates: rendering keys, walking the
selected paths, writing and reading tar. This module does what only a host can: it maps paths to
preopened roots, reads mode bits and link targets (`lstat`; WASI cannot see them), extracts into
fresh staging directories, re-checks and applies the fixups the guest returns, and only then moves
the staged tree into place. Paths are relative to the workspace (globs and `!` excludes included);
`~` and absolute paths are the Rust host's business.
"""

import contextlib
import hashlib
import itertools
import os
import shutil
import stat
import sys
import tempfile
import time

import entry
import policy
from guest import GuestError
from host_imports import DIRECTORY_FLAGS, Preopen, escape, open_beneath, open_parent
from wit_values import field, record

GLOB_CHARS = set("*?[{")
STAGING_PREFIX = ".s3cache-staging-"
OLD_PREFIX = ".s3cache-old-"
_unique = itertools.count()


class Miss(Exception):
    """Nothing was saved or restored; `case` is the guest's error case (or `entry`), `detail` a dict."""

    def __init__(self, case, detail):
        super().__init__(f"{case}: {detail}")
        self.case, self.detail = case, detail


def describe_guest_error(err):
    payload = err.payload
    if err.case == "rejected-member":
        return {"member": payload.member, "reason": payload.reason}
    if err.case == "io":
        return {"path": payload.path, "message": payload.message}
    return {"message": payload}


class Root:
    """A directory containing cached paths, its archive prefix, and patterns relative to it."""

    def __init__(self, directory, prefix, include):
        self.dir, self.prefix, self.include, self.exclude = directory, prefix, include, []

    def guest(self, guest_dir):
        return record(guest_dir=guest_dir, member_prefix=self.prefix, include_globs=self.include, exclude_globs=self.exclude)


def resolve_roots(paths, workspace):
    """The roots of workspace-relative `paths`, as `s3cache` resolves them: a path splits at its first
    glob component (a literal path at its last), roots inside others fold into them, and `!` paths
    become excludes of the roots that contain them."""
    roots, excludes = {}, []
    for spec in (line.strip() for path in paths for line in path.splitlines()):
        if not spec:
            continue
        exclude = spec.startswith("!")
        spec = spec[1:].strip() if exclude else spec
        if spec.startswith(("/", "~")):
            raise Miss("unsupported-path", {"message": f"{spec}: this host caches paths inside the workspace only"})
        components = policy.validate_relative(spec)
        if exclude:
            excludes.append(components)
            continue
        if not components:
            raise Miss("unsupported-path", {"message": f"{spec}: the workspace itself; cache something below it"})
        split = next((i for i, c in enumerate(components) if GLOB_CHARS & set(c)), len(components) - 1)
        key = tuple(components[:split])
        pattern = "/".join(components[split:])
        root = roots.setdefault(key, Root(os.path.join(workspace, *key), "/".join(("workspace",) + key), []))
        if pattern not in root.include:
            root.include.append(pattern)
    folded = {}
    for key in sorted(roots, key=lambda k: os.path.join(workspace, *k)):
        outer = next((k for k in folded if key[:len(k)] == k), None)
        if outer is None:
            folded[key] = roots[key]
            continue
        relative = "/".join(key[len(outer):])
        for pattern in roots[key].include:
            if f"{relative}/{pattern}" not in folded[outer].include:
                folded[outer].include.append(f"{relative}/{pattern}")
    for key, root in folded.items():
        for components in excludes:
            if tuple(components[:len(key)]) == key and len(components) > len(key):
                root.exclude.append("/".join(components[len(key):]))
    return list(folded.values())


def template_context(env):
    """`{{ os }}`, `{{ arch }}`, `{{ branch }}` and `{{ epoch }}` as the Rust host fills them."""
    branch_variables = ("S3CACHE_BRANCH", "GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_BRANCH", "DRONE_BRANCH", "CI_COMMIT_REF_NAME", "VELA_BUILD_BRANCH", "SEMAPHORE_GIT_BRANCH")
    branch = next((env[name] for name in branch_variables if env.get(name)), "")
    return record(os=entry.this_os(), arch=entry.this_arch(), branch=branch, epoch=int(time.time()), workspace_dir="/workspace")


def storable_link(root_dir, components, target):
    """The target to store for a symlink, or why it is skipped: an absolute target inside its root is
    made relative, anything a restore would refuse is skipped."""
    if target.startswith("/"):
        inside = os.path.relpath(target, root_dir)
        if inside == ".." or inside.startswith("../") or os.path.isabs(inside):
            raise policy.Violation("absolute target outside its cached path")
        target = "../" * (len(components) - 1) + ("" if inside == "." else inside)
        target = target.rstrip("/") or "."
    policy.validate_symlink_target(components, target)
    return target


def describe(roots, found):
    """The `member` records of what the guest found: mode bits, sizes, mtimes, link targets and hard
    links, read with `lstat` (WASI cannot see them), skipping what changed or cannot be stored."""
    members, inodes = [], {}
    for item in found:
        root = roots[item.root]
        components = policy.validate_relative(item.relative)
        path = os.path.join(root.dir, *components)
        info = os.lstat(path)
        kind = "symlink" if stat.S_ISLNK(info.st_mode) else "directory" if stat.S_ISDIR(info.st_mode) else "file" if stat.S_ISREG(info.st_mode) else None
        if kind != item.kind:
            print(f"warning: skipping {escape(path)}: it changed while the cache was being saved", file=sys.stderr)
            continue
        link_target = None
        if kind == "symlink":
            target = os.readlink(path)
            try:
                link_target = storable_link(root.dir, components, target)
            except policy.Violation as why:
                print(f"warning: skipping symlink {escape(path)} -> {escape(target)}: {why}", file=sys.stderr)
                continue
        elif kind == "file" and info.st_nlink > 1:
            first = inodes.setdefault((info.st_dev, info.st_ino), (item.root, item.relative))
            if first != (item.root, item.relative) and first[0] == item.root:
                kind, link_target = "hardlink", first[1]
        seconds, nanoseconds = divmod(info.st_mtime_ns, 1_000_000_000)
        members.append(record(
            root=item.root, relative=item.relative, kind=kind, mode=info.st_mode & 0o7777,
            size=info.st_size if kind == "file" else 0,
            mtime=record(seconds=seconds, nanoseconds=nanoseconds), link_target=link_target,
            slice=None,  # the whole file: this host packs each file in one piece
        ))
    return members


class Cache:
    """Key, save and restore with `guest` in `workspace`, against the file store in `store_dir`."""

    def __init__(self, guest, workspace, store_dir, env=None):
        self.guest, self.workspace, self.store_dir = guest, os.path.abspath(workspace), store_dir
        self.env = dict(os.environ) if env is None else env

    def _call(self, extra_preopens, interface, function, *args, **streams):
        preopens = [Preopen(self.workspace, "/workspace")] + extra_preopens
        try:
            return self.guest.call(preopens, interface, function, *args, env=self.env, **streams)
        except GuestError as err:
            raise Miss(err.case, describe_guest_error(err))

    def key(self, template):
        return self._call([], "keys", "resolve", template, template_context(self.env), []).key

    def save(self, template, paths, format_name="zstd", level=None):
        """Saves `paths` under the rendered key; returns what happened, as a dict."""
        level = {"zstd": 3, "gzip": 6, "tar": 0}[format_name] if level is None else level
        roots = [r for r in resolve_roots(paths, self.workspace) if os.path.isdir(r.dir)]
        preopens = [Preopen(r.dir, f"/roots/{i}") for i, r in enumerate(roots)]
        guest_roots = [r.guest(f"/roots/{i}") for i, r in enumerate(roots)]
        resolution = self._call(preopens, "keys", "resolve", template, template_context(self.env), guest_roots)
        key = resolution.key
        if not resolution.found:
            return {"nothing-to-save": key}
        name = entry.object_name(key, format_name)
        target = entry.file_store_path(self.store_dir, name)
        if any(os.path.exists(entry.file_store_path(self.store_dir, entry.object_name(key, f))) for f in entry.SUFFIXES):
            return {"already-exists": key}
        members = describe(roots, resolution.found)
        os.makedirs(self.store_dir, exist_ok=True)
        digest, written = hashlib.sha256(), 0
        with tempfile.NamedTemporaryFile(dir=self.store_dir, prefix=".tmp-", delete=False) as out:
            try:
                def sink(chunk):
                    nonlocal written
                    out.write(chunk)
                    digest.update(chunk)
                    written += len(chunk)

                options = record(compression=entry.COMPRESSIONS[format_name], level=level, buffer_size=1 << 20, end_of_archive=True)
                summary = self._call(preopens, "archive", "pack", guest_roots, members, options, sink=sink)
                manifest = entry.new_manifest(digest.hexdigest(), written, summary, format_name, level, paths)
                out.write(entry.encode_trailer(manifest))
                out.flush()
                os.fchmod(out.fileno(), 0o644)
                os.fsync(out.fileno())
            except BaseException:
                os.unlink(out.name)
                raise
        os.replace(out.name, target)
        return {"saved": key, "object": name, "members": summary.members, "bytes": os.path.getsize(target)}

    def find(self, key):
        """The path of `key`'s entry in the store and its format, or a miss."""
        for format_name in entry.SUFFIXES:
            path = entry.file_store_path(self.store_dir, entry.object_name(key, format_name))
            if os.path.exists(path):
                return path
        raise Miss("no-entry", {"message": f"no cache entry for key {key!r}"})

    def restore(self, template, paths):
        """Restores the entry of the rendered key into `paths`; returns what happened, as a dict."""
        key = self.key(template)
        path = self.find(key)
        size = os.path.getsize(path)
        with open(path, "rb") as file:
            file.seek(max(0, size - (16 << 10)))
            try:
                manifest = entry.decode_trailer(file.read(), size)
                entry.check_restorable(manifest, paths)
            except entry.EntryError as why:
                raise Miss("entry", {"message": str(why)})
            file.seek(0)
            roots = resolve_roots(paths, self.workspace)
            with staging(roots) as dirs:
                source = entry.VerifyingSource(file, manifest)
                preopens = [Preopen(d, f"/stage/{i}", writable=True) for i, d in enumerate(dirs)]
                guest_roots = [r.guest(f"/stage/{i}") for i, r in enumerate(roots)]
                limits = record(max_total_bytes=64 << 30, max_members=5_000_000, max_path_bytes=4096, max_depth=256, max_window_log=27)
                report = self._call(preopens, "archive", "unpack", guest_roots, entry.COMPRESSIONS[manifest["compression"]], limits, source=source)
                if not source.verified:
                    raise Miss("stream-failed", {"message": "the guest returned before the end of the archive"})
                try:
                    apply_fixups(dirs, report.fixups)
                except (OSError, policy.Violation) as why:
                    raise Miss("fixup", {"message": str(why)})
                for root, staged in zip(roots, dirs):
                    swap_points = [p for p in root.include if not GLOB_CHARS & set(p)]
                    merge(staged, root.dir, "", swap_points)
        return {"restored": key, "members": report.members}


@contextlib.contextmanager
def staging(roots):
    """An empty staging directory inside each root's directory, removed afterwards."""
    dirs = []
    try:
        for root in roots:
            os.makedirs(root.dir, exist_ok=True)
            staged = os.path.join(root.dir, f"{STAGING_PREFIX}{os.getpid()}-{next(_unique)}")
            os.mkdir(staged, 0o700)
            dirs.append(staged)
        yield dirs
    finally:
        for staged in dirs:
            shutil.rmtree(staged, ignore_errors=True)


def apply_fixups(staging_dirs, fixups):
    """Applies the guest's fixups beneath the staging directories after checking each again with the
    policy: symlinks (target inside the root), hard links (to a regular file staged earlier), and the
    modes and mtimes of directories, deepest last-applied first. Nothing follows a symlink."""
    roots = [os.open(d, DIRECTORY_FLAGS) for d in staging_dirs]
    directories = []
    try:
        for fixup in fixups:
            if fixup.root >= len(roots):
                raise policy.Violation(f"root {fixup.root} does not exist")
            root = roots[fixup.root]
            components = policy.validate_relative(fixup.relative)
            nanos = fixup.mtime.seconds * 1_000_000_000 + fixup.mtime.nanoseconds
            target = field(fixup, "link_target")
            if fixup.kind == "directory":
                directories.append((root, components, policy.sanitize_mode(fixup.mode, True), nanos))
                continue
            if not components:
                raise policy.Violation("a restored root must be a directory")
            parent = open_parent(root, components)
            try:
                if fixup.kind == "symlink":
                    policy.validate_symlink_target(components, target or "")
                    os.symlink(target, components[-1], dir_fd=parent)
                    os.utime(components[-1], ns=(nanos, nanos), dir_fd=parent, follow_symlinks=False)
                elif fixup.kind == "hardlink":
                    source = policy.validate_relative(target or "")
                    source_parent = open_parent(root, source) if source else None
                    if source_parent is None:
                        raise policy.Violation("hard link target is not a regular file stored earlier under the same root")
                    try:
                        if not stat.S_ISREG(os.stat(source[-1], dir_fd=source_parent, follow_symlinks=False).st_mode):
                            raise policy.Violation("hard link target is not a regular file stored earlier under the same root")
                        os.link(source[-1], components[-1], src_dir_fd=source_parent, dst_dir_fd=parent, follow_symlinks=False)
                    finally:
                        if source_parent != root:
                            os.close(source_parent)
                else:
                    fd = open_beneath(root, components, os.O_RDONLY)
                    try:
                        if not stat.S_ISREG(os.fstat(fd).st_mode):
                            raise policy.Violation(f"{fixup.relative}: expected a regular file in staging")
                        os.fchmod(fd, policy.sanitize_mode(fixup.mode, False))
                        os.utime(fd, ns=(nanos, nanos))
                    finally:
                        os.close(fd)
            finally:
                if parent != root:
                    os.close(parent)
        # Children change their parent's mtime, so directories come last, deepest first.
        for root, components, mode, nanos in reversed(directories):
            fd = open_beneath(root, components, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fchmod(fd, mode)
                os.utime(fd, ns=(nanos, nanos))
            finally:
                os.close(fd)
    finally:
        for fd in roots:
            os.close(fd)


def merge(source, target, relative, swap_points):
    """Moves the staged tree into place: swap points (literal paths) and non-directories replace
    their namesake whole, other directories are merged into a real directory there. Never follows a
    symlink that was already in the target."""
    for name in sorted(os.listdir(source)):
        child = f"{relative}/{name}" if relative else name
        staged, placed = os.path.join(source, name), os.path.join(target, name)
        info = os.lstat(staged)
        if stat.S_ISDIR(info.st_mode) and child not in swap_points:
            existing = os.lstat(placed) if os.path.lexists(placed) else None
            if existing is not None and not stat.S_ISDIR(existing.st_mode):
                os.unlink(placed)
                existing = None
            if existing is None:
                os.mkdir(placed)
            merge(staged, placed, child, swap_points)
            os.chmod(placed, stat.S_IMODE(info.st_mode))
            os.utime(placed, ns=(info.st_mtime_ns, info.st_mtime_ns), follow_symlinks=False)
        else:
            replace(staged, placed)


def replace(source, target):
    """Replaces whatever is at `target` (not followed) by `source`, with one rename."""
    old = None
    if os.path.lexists(target):
        old = os.path.join(os.path.dirname(target), f"{OLD_PREFIX}{os.getpid()}-{next(_unique)}")
        os.rename(target, old)
    try:
        os.rename(source, target)
    except OSError:
        if old is not None:
            os.rename(old, target)
        raise
    if old is not None:
        if os.path.isdir(old) and not os.path.islink(old):
            shutil.rmtree(old)
        else:
            os.unlink(old)
