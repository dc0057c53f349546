"""The guest's imports, implemented in Python: `log`, `environment`, `archive-io` and `host-files`.

What each must guarantee is the contract in docs/embedding.md; in short:
- `log.emit` prints the message escaped (it is text from an untrusted archive or template).
- `environment.get` withholds anything that may be a secret, so a key template cannot leak one.
- `archive-io` moves the compressed archive; `read` returns an empty list at the end, and that is where
  the host reports a digest mismatch (the guest only returns ok after reading that end).
- `host-files` does file work beneath the guest's own preopens only. Every path is re-validated with
  the policy and opened component by component with `O_NOFOLLOW` relative to its parent's descriptor,
  so neither `..` nor a symlink (planted by a guest through WASI, say) can lead outside.
"""

import hashlib
import os
import sys

import policy
from wit_values import WitErr, record, variant_case

SECRET_WORDS = ("SECRET", "TOKEN", "PASSWORD", "PASSWD", "CREDENTIAL", "PRIVATE", "_KEY", "AUTH", "SESSION")
DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def escape(message):
    """`message` with control and other unprintable characters escaped, so it cannot inject terminal
    escapes or CI workflow commands."""
    return "".join(c if c.isprintable() else f"\\u{{{ord(c):x}}}" for c in message)


def may_expose_to_templates(name):
    """Whether `{{ env "NAME" }}` may see a variable: never credentials or tokens."""
    upper = name.upper()
    return not upper.startswith(("AWS_", "ACTIONS_")) and not any(word in upper for word in SECRET_WORDS)


def io_error(path, err):
    message = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
    return WitErr(record(path=path, message=message))


class Preopen:
    """A host directory the guest sees at `guest` (read-only unless `writable`)."""

    def __init__(self, host, guest, writable=False):
        self.host, self.guest, self.writable = os.fspath(host), guest, writable


def open_parent(root_fd, components):
    """A descriptor of the directory holding the last of `components`, reached beneath `root_fd`
    without following any symlink. The caller closes it unless it is `root_fd`."""
    fd = root_fd
    try:
        for name in components[:-1]:
            child = os.open(name, DIRECTORY_FLAGS, dir_fd=fd)
            if fd != root_fd:
                os.close(fd)
            fd = child
        return fd
    except OSError:
        if fd != root_fd:
            os.close(fd)
        raise


def open_beneath(root_fd, components, flags, mode=0o600):
    """Opens `components` beneath `root_fd` with `flags`, never following a symlink."""
    if not components:
        return os.dup(root_fd)
    parent = open_parent(root_fd, components)
    try:
        return os.open(components[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=parent)
    finally:
        if parent != root_fd:
            os.close(parent)


def _entry_kind(entry):
    if entry.is_symlink():
        return "symlink"
    if entry.is_dir(follow_symlinks=False):
        return "directory"
    if entry.is_file(follow_symlinks=False):
        return "file"
    return "other"


class OpenFile:
    """The regular file being extracted, and the mode and mtime it gets when complete."""

    def __init__(self, fd, shown, mode, mtime):
        self.fd, self.shown, self.mode, self.mtime = fd, shown, mode, mtime

    def complete(self):
        try:
            os.fchmod(self.fd, policy.sanitize_mode(self.mode, False))
            nanos = self.mtime.seconds * 1_000_000_000 + self.mtime.nanoseconds
            os.utime(self.fd, ns=(nanos, nanos))
        except OSError as err:
            raise io_error(self.shown, err)
        finally:
            os.close(self.fd)


class Session:
    """The state of one guest instance: its preopens, the archive stream of the current call, the
    environment it may read, and the file being extracted."""

    def __init__(self, preopens, env=None, verbose=False):
        self.preopens = {p.guest: p for p in preopens}
        self.env = env if env is not None else dict(os.environ)
        self.verbose = verbose
        self.sink = None
        self.source = None
        self.current = None
        self._fds = {}

    def close(self):
        if self.current is not None:
            os.close(self.current.fd)
            self.current = None
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def root_fd(self, guest_dir, writable=False):
        """The descriptor of the preopen mounted at `guest_dir` (a writable one when `writable`)."""
        preopen = self.preopens.get(guest_dir)
        if preopen is None or (writable and not preopen.writable):
            raise WitErr(record(path=guest_dir, message="not a writable preopen" if writable else "not a preopen"))
        if guest_dir not in self._fds:
            try:
                self._fds[guest_dir] = os.open(preopen.host, DIRECTORY_FLAGS)
            except OSError as err:
                raise io_error(guest_dir, err)
        return self._fds[guest_dir]


def checked(guest_dir, relative):
    """The components of a relative path the policy accepts; never the preopen itself."""
    try:
        components = policy.validate_relative(relative)
    except policy.Violation as violation:
        raise WitErr(record(path=f"{guest_dir}/{relative}", message=str(violation)))
    if not components:
        raise WitErr(record(path=guest_dir, message="the preopen itself is not a file"))
    return components


class HostImports:
    """Every import function of the `cache-guest` world, by interface and name. `session()` returns
    the current instance's `Session`."""

    def __init__(self, session, write_op_type):
        self.session = session
        self.write_op_type = write_op_type

    def functions(self):
        return {
            "log": {"emit": self.emit},
            "environment": {"get": self.get_env},
            "archive-io": {"write": self.write_archive, "read": self.read_archive},
            "host-files": {
                "read-dir": self.read_dir,
                "sha256": self.sha256,
                "read-files": self.read_files,
                "write": self.write,
                "finish": self.finish,
            },
        }

    # --- log and environment ------------------------------------------------------------------

    def emit(self, level, message):
        if level == "warn":
            print(f"warning: {escape(message)}", file=sys.stderr)
        elif self.session().verbose:
            print(f"{level}: {escape(message)}", file=sys.stderr)

    def get_env(self, name):
        if not may_expose_to_templates(name):
            print(f"warning: the key template asked for {escape(name)}, which may hold a secret; it renders as empty", file=sys.stderr)
            return None
        return self.session().env.get(name) or None

    # --- archive-io ---------------------------------------------------------------------------

    def write_archive(self, data):
        sink = self.session().sink
        if sink is None:
            raise WitErr("no output stream is open")
        try:
            sink(data)
        except OSError as err:
            raise WitErr(str(err))

    def read_archive(self, max_bytes):
        source = self.session().source
        if source is None:
            raise WitErr("no input stream is open")
        try:
            return source(min(max_bytes, 4 << 20))
        except (OSError, ValueError) as err:
            raise WitErr(str(err))

    # --- host-files ---------------------------------------------------------------------------

    def read_dir(self, guest_dir, relative):
        session = self.session()
        shown = f"{guest_dir}/{relative}" if relative else guest_dir
        root = session.root_fd(guest_dir)
        try:
            components = policy.validate_relative(relative)
        except policy.Violation as violation:
            raise WitErr(record(path=shown, message=str(violation)))
        try:
            fd = open_beneath(root, components, os.O_RDONLY | os.O_DIRECTORY)
            try:
                entries, skipped = [], []
                with os.scandir(fd) as listing:
                    for entry in listing:
                        try:
                            entry.name.encode("utf-8")
                        except UnicodeEncodeError:
                            skipped.append(os.fsencode(entry.name).decode("utf-8", "replace"))
                            continue
                        entries.append(record(name=entry.name, kind=_entry_kind(entry)))
            finally:
                os.close(fd)
        except OSError as err:
            raise io_error(shown, err)
        entries.sort(key=lambda e: e.name)
        return record(entries=entries, skipped=skipped)

    def _open(self, guest_dir, relative):
        """A regular file beneath a preopen, opened for reading."""
        try:
            return os.fdopen(open_beneath(self.session().root_fd(guest_dir), checked(guest_dir, relative), os.O_RDONLY), "rb")
        except OSError as err:
            raise io_error(f"{guest_dir}/{relative}", err)

    def sha256(self, guest_dir, relatives):
        digests = []
        for relative in relatives:
            with self._open(guest_dir, relative) as file:
                try:
                    digests.append(hashlib.file_digest(file, "sha256").digest())
                except OSError as err:
                    raise io_error(f"{guest_dir}/{relative}", err)
        return digests

    def read_files(self, guest_dir, files):
        contents = []
        for relative, size in files:
            with self._open(guest_dir, relative) as file:
                try:
                    data = file.read(size)
                except OSError as err:
                    raise io_error(f"{guest_dir}/{relative}", err)
            if len(data) < size:
                raise WitErr(record(path=f"{guest_dir}/{relative}", message=f"file shrank while it was archived: {len(data)} of {size} bytes"))
            contents.append(data)
        return contents

    def write(self, guest_dir, ops):
        session = self.session()
        root = session.root_fd(guest_dir, writable=True)
        for op in ops:
            self._apply(session, root, guest_dir, variant_case(self.write_op_type, op))

    def _complete(self, session):
        current, session.current = session.current, None
        if current is not None:
            current.complete()

    def _apply(self, session, root, guest_dir, op):
        tag, payload = op
        if tag == "append":
            if session.current is None:
                raise WitErr(record(path=guest_dir, message="append without a file"))
            self._append(session, payload)
            return
        self._complete(session)
        if tag == "directory":
            self._make_directories(root, guest_dir, payload)
        elif tag == "file":
            relative = payload.relative
            shown = f"{guest_dir}/{relative}"
            try:
                fd = open_beneath(root, checked(guest_dir, relative), os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            except OSError as err:
                raise io_error(shown, err)
            session.current = OpenFile(fd, shown, payload.mode, payload.mtime)
            self._append(session, payload.contents)

    @staticmethod
    def _append(session, data):
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(session.current.fd, view):]
        except OSError as err:
            raise io_error(session.current.shown, err)

    @staticmethod
    def _make_directories(root, guest_dir, relative):
        fd = root
        try:
            for name in checked(guest_dir, relative):
                try:
                    os.mkdir(name, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
                child = os.open(name, DIRECTORY_FLAGS, dir_fd=fd)
                if fd != root:
                    os.close(fd)
                fd = child
        except OSError as err:
            raise io_error(f"{guest_dir}/{relative}", err)
        finally:
            if fd != root:
                os.close(fd)

    def finish(self):
        self._complete(self.session())
