"""s3cache's entry format, outside the WIT world: the trailer after the archive, the entry version,
and where a file store keeps an entry. A host that only embeds the guest does not need this; a host
that shares a store with the `s3cache` binary does (docs/embedding.md, "The entry format").

An object is the archive (what `archive.pack` wrote) followed by a trailer holding a JSON manifest
with the archive's SHA-256 and length. zstd and tar objects end with a zstd skippable frame, gzip
objects with an empty gzip member whose header carries the manifest, so standard tools read the
object as a plain archive. Both end with `json length (u32 LE)` and `S3CACHE1`.
"""

import hashlib
import json
import os
import platform
import struct

ARCHIVE_FORMAT = 1
FOOTER_MAGIC = b"S3CACHE1"
SKIPPABLE_MAGIC = struct.pack("<I", 0x184D2A5E)
GZIP_HEADER = bytes([0x1F, 0x8B, 0x08, 0x04, 0, 0, 0, 0, 0, 0xFF])
GZIP_MEMBER_END = bytes([0x03, 0x00]) + bytes(8)
MAX_MANIFEST_BYTES = (16 << 10) - 64
# The guest's name of each compression, and the object-name suffix of each.
COMPRESSIONS = {"zstd": "zstd", "gzip": "gzip", "tar": "none"}
SUFFIXES = {"zstd": ".tar.zst", "gzip": ".tar.gz", "tar": ".tar"}
LOCAL_SCOPE = "local"


class EntryError(ValueError):
    """An object that is not a usable s3cache entry; the message says why."""


def this_os():
    """The OS name the Rust host records (`std::env::consts::OS`)."""
    return {"darwin": "macos"}.get(platform.system().lower(), platform.system().lower())


def this_arch():
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower(), platform.machine().lower())


def entry_version(paths, format_name, cross_os, os_name=None):
    """The entry's version: SHA-256 over its paths (each followed by a newline), the format name and
    the OS (or `\\0cross-os`), first 8 bytes in hex. A restore uses only entries of its own version."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.encode() + b"\n")
    digest.update(format_name.encode())
    digest.update(b"\0cross-os" if cross_os else (os_name or this_os()).encode())
    return digest.hexdigest()[:16]


def encode_trailer(manifest):
    """The trailer bytes for `manifest` (a dict), in its format's layout."""
    payload = json.dumps(manifest, separators=(",", ":")).encode()
    if len(payload) > MAX_MANIFEST_BYTES:
        raise EntryError(f"the manifest is {len(payload)} bytes, over the limit of {MAX_MANIFEST_BYTES}")
    body = payload + struct.pack("<I", len(payload)) + FOOTER_MAGIC
    if manifest["compression"] == "gzip":
        return GZIP_HEADER + struct.pack("<H", len(body) + 4) + b"S3" + struct.pack("<H", len(body)) + body + GZIP_MEMBER_END
    return SKIPPABLE_MAGIC + struct.pack("<I", len(body)) + body


def decode_trailer(tail, object_size):
    """The manifest in `tail`, the last bytes of an object of `object_size` bytes, after checking its
    framing and that `archive_bytes` is where the trailer starts."""
    gzip = tail.endswith(GZIP_MEMBER_END) and not tail.endswith(FOOTER_MAGIC)
    end = len(tail) - (len(GZIP_MEMBER_END) if gzip else 0)
    if end < 12 or tail[end - 8:end] != FOOTER_MAGIC:
        raise EntryError("the object has no s3cache trailer (not written by s3cache, truncated, or replaced)")
    (json_len,) = struct.unpack("<I", tail[end - 12:end - 8])
    if json_len > MAX_MANIFEST_BYTES:
        raise EntryError(f"the s3cache trailer is malformed: a {json_len}-byte manifest is over the limit")
    body_len = json_len + 12
    header_len = 16 if gzip else 8
    start = end - body_len - header_len
    if start < 0:
        raise EntryError("the s3cache trailer is malformed: the manifest does not fit the object's tail")
    if gzip:
        expected = GZIP_HEADER + struct.pack("<H", body_len + 4) + b"S3" + struct.pack("<H", body_len)
    else:
        expected = SKIPPABLE_MAGIC + struct.pack("<I", body_len)
    if tail[start:start + header_len] != expected:
        raise EntryError("the s3cache trailer is malformed: bad header")
    manifest = json.loads(tail[start + header_len:start + header_len + json_len])
    if (manifest.get("compression") == "gzip") != gzip:
        raise EntryError(f"the s3cache trailer is malformed: a {manifest.get('compression')} manifest in the wrong layout")
    trailer_len = len(tail) - start
    if manifest.get("archive_bytes") != object_size - trailer_len:
        raise EntryError(f"the s3cache trailer is malformed: manifest says {manifest.get('archive_bytes')} archive bytes, the object holds {object_size - trailer_len}")
    return manifest


def new_manifest(sha256, archive_bytes, summary, format_name, level, paths):
    """The manifest of an entry saved from `paths` on this OS (not cross-OS, s3cache's member names)."""
    return {
        "format": ARCHIVE_FORMAT,
        "sha256": sha256,
        "archive_bytes": archive_bytes,
        "os": this_os(),
        "arch": this_arch(),
        "members": summary.members,
        "tar_bytes": getattr(summary, "tar-bytes"),
        "compression": format_name,
        "level": level,
        "version": entry_version(paths, format_name, False),
        "paths": list(paths),
        "cross_os": False,
        "plain_names": False,
    }


def check_restorable(manifest, paths):
    """Refuses a manifest this restore must not use: another archive format version, or an entry
    version other than that of `paths` on this OS."""
    if manifest.get("format") != ARCHIVE_FORMAT:
        raise EntryError(f"archive format {manifest.get('format')} is not {ARCHIVE_FORMAT}")
    name = manifest.get("compression")
    if name not in COMPRESSIONS:
        raise EntryError(f"the manifest's compression {name!r} is not one this host knows")
    accepted = {entry_version(paths, name, False), entry_version(paths, name, True)}
    if manifest.get("version") not in accepted:
        raise EntryError(f"its version differs: saved for paths {manifest.get('paths')}")


def object_name(key, format_name, scope=LOCAL_SCOPE):
    """The object name of `key`'s entry: `<scope>/<encoded key><suffix>`, each `/` of the key written
    as `,` (keys never hold commas)."""
    return f"{scope}/{key.replace('/', ',')}{SUFFIXES[format_name]}"


def file_store_path(store_dir, name):
    """Where s3cache's file store keeps the object `name`: one file, every byte but ASCII letters,
    digits, `-`, `.` and `_` percent-encoded."""
    safe = set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._")
    encoded = "".join(chr(b) if b in safe else f"%{b:02X}" for b in name.encode())
    return os.path.join(store_dir, encoded)


class VerifyingSource:
    """Reads an archive of `manifest["archive_bytes"]` bytes from `file` for `archive-io.read`, and
    fails at its end, instead of reporting the end, unless every byte matched the manifest's SHA-256:
    the guest then returns `stream-failed` and nothing staged is used."""

    def __init__(self, file, manifest):
        self.file, self.manifest = file, manifest
        self.remaining = manifest["archive_bytes"]
        self.digest = hashlib.sha256()
        self.verified = False

    def __call__(self, max_bytes):
        chunk = self.file.read(min(max_bytes, self.remaining))
        self.remaining -= len(chunk)
        self.digest.update(chunk)
        if chunk:
            return chunk
        actual = self.digest.hexdigest()
        if self.remaining != 0 or actual != self.manifest["sha256"]:
            seen = self.manifest["archive_bytes"] - self.remaining
            raise ValueError(f"SHA-256 mismatch: the manifest says {self.manifest['sha256']} ({self.manifest['archive_bytes']} bytes), the archive is {actual} ({seen} bytes)")
        self.verified = True
        return b""
