//! The entry's trailer: a small JSON manifest (format, SHA-256 and length of the archive, OS, counts,
//! version) appended after the archive, in a shape the archive's own format passes over, so that
//! standard tools read the object as a plain archive with no error and no warning.
//!
//! Keeping the manifest inside the one object makes an entry atomic — there is never a manifest
//! without its archive or the reverse — and lets restore check the digest of every byte before the
//! staged tree is moved into place. Every layout ends its payload with the same footer (`json length`
//! u32 LE + `S3CACHE1`), and each layout is fixed byte for byte, so a reader finds the trailer from the
//! object's end and checks all of it. The payload is `json`, then the footer.
//!
//! * **zstd** (`.tar.zst`): a zstd *skippable frame* — magic `0x184D2A5E` (u32 LE), payload length (u32
//!   LE), payload. `zstd -d` passes over it. The object ends with the footer.
//! * **tar** (`.tar`): the same skippable frame, after the tar's end-of-archive blocks. GNU tar stops
//!   reading at those blocks, so it never sees the frame; the frame's bytes are merely opaque here.
//! * **gzip** (`.tar.gz`): a final, empty gzip member (RFC 1952) whose header carries the payload in an
//!   FEXTRA subfield. `gzip -d` decodes it to nothing, so the output is exactly the tar. Its bytes:
//!
//!   ```text
//!   1f 8b 08 04 00 00 00 00 00 ff   ID1 ID2, CM = deflate, FLG = FEXTRA, MTIME = 0, XFL = 0, OS = unknown
//!   XLEN (u16 LE) = 4 + payload     the extra field: one subfield
//!   53 33 LEN (u16 LE) = payload    subfield id "S3" and its length
//!   payload                         json, json length (u32 LE), "S3CACHE1"
//!   03 00                           deflate: one empty final block (fixed Huffman codes)
//!   00 00 00 00 00 00 00 00         CRC-32 and ISIZE of no data
//!   ```
//!
//!   so the object ends with `03 00` and eight zero bytes, and the footer sits just before them.
//!
//! A **signed** entry's payload is `json`, the armored SSHSIG over exactly those `json` bytes
//! ([`crate::signing`]), then the signed footer: `json length` u32 LE, `signature length` u32 LE,
//! `S3CACHE2`. The signature covers the manifest bytes as they are written; a reader verifies those
//! raw bytes ([`unframe`] hands them out untouched) and only then parses them ([`parse`]), so nothing
//! is ever re-serialized to be checked. An s3cache from before signatures finds no trailer it knows in
//! a signed entry and passes it over: it fails closed.
//!
//! [`decode`] recognizes the layout from those last bytes and refuses a manifest whose compression is
//! not the layout's. The manifest is at most [`MAX_MANIFEST_BYTES`], so every trailer fits in the
//! [`TAIL_FETCH`] bytes a reader fetches, and in gzip's 16-bit extra field.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::archive::layout::Format;

/// Skippable frame magic (`0x184D2A5E`, little endian), one of the 16 reserved values.
const SKIPPABLE_MAGIC: [u8; 4] = 0x184D_2A5E_u32.to_le_bytes();
const FOOTER_MAGIC: &[u8; 8] = b"S3CACHE1";
const FOOTER_LEN: usize = 4 + FOOTER_MAGIC.len();
/// The footer of a signed trailer: `json length`, `signature length`, this magic.
const SIGNED_FOOTER_MAGIC: &[u8; 8] = b"S3CACHE2";
const SIGNED_FOOTER_LEN: usize = 8 + SIGNED_FOOTER_MAGIC.len();
/// Longest signature a trailer carries (an ed25519 SSHSIG is about 300 bytes armored).
pub const MAX_SIGNATURE_BYTES: usize = 2048;
/// The gzip header of the trailer member, up to its extra field: deflate, FEXTRA only, MTIME 0, XFL 0,
/// OS 255 (unknown).
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 0x08, 0x04, 0, 0, 0, 0, 0, 0xff];
/// The extra field's subfield id.
const GZIP_SUBFIELD: [u8; 2] = *b"S3";
/// After the payload: an empty final deflate block, then CRC-32 = 0 and ISIZE = 0.
const GZIP_MEMBER_END: [u8; 10] = [0x03, 0x00, 0, 0, 0, 0, 0, 0, 0, 0];
/// Bytes a reader fetches from the end to find the trailer; manifests are far smaller.
pub const TAIL_FETCH: u64 = 16 << 10;
/// Largest manifest JSON: room is left in [`TAIL_FETCH`] for the largest layout's framing.
pub const MAX_MANIFEST_BYTES: usize = TAIL_FETCH as usize - 64;

/// What the trailer records about an entry. A signed entry's signature covers all of it, so the
/// fields that bind the entry to where it may be used (`key`, `scope`, `store`, `version`) and its
/// `created_ms` are signed with the digest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Archive format version ([`crate::ARCHIVE_FORMAT`]).
    pub format: u32,
    /// SHA-256 of the archive (everything before the trailer), hex.
    pub sha256: String,
    /// Length of the archive in bytes.
    pub archive_bytes: u64,
    /// Operating system that saved the entry (`std::env::consts::OS`).
    pub os: String,
    /// CPU architecture that saved the entry (`std::env::consts::ARCH`).
    pub arch: String,
    /// Number of archive members (files, directories and links; a split file counts once).
    pub members: u64,
    /// Length of the uncompressed tar stream in bytes.
    pub tar_bytes: u64,
    /// The archive's format ([`Format::name`]: `zstd`, `gzip` or `tar`), which decides the trailer's layout.
    pub compression: String,
    /// The compression level it was saved with (0 for tar).
    pub level: i32,
    /// The entry's version ([`crate::engine::entry_version`]): a restore uses only entries whose version
    /// is its own. Empty in entries from before versions existed.
    #[serde(default)]
    pub version: String,
    /// The path list the entry was saved with, to explain a version mismatch.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Whether the entry was saved for any operating system.
    #[serde(default)]
    pub cross_os: bool,
    /// Whether members are named as `tar` names them (relative to the working directory, else by
    /// absolute path) instead of s3cache's `workspace/…`, `home/…`, `abs/…`: entries written for
    /// other tools to read (`crate::workspace::paths::plain_prefix`).
    #[serde(default)]
    pub plain_names: bool,
    /// The compressed length of each part, in archive order: the independently packed zstd frames or
    /// gzip members that a restore decodes in parallel (`crate::archive::unpack`). They add up to
    /// `archive_bytes` ([`decode`] checks). Empty in entries from before parts were recorded, and when
    /// the list would not fit the trailer ([`encode_fitting`]): such entries decode as one stream.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<u64>,
    /// The key the entry was saved under. Empty in entries from before it was recorded.
    #[serde(default)]
    pub key: String,
    /// The scope it was saved in (empty in the Flat layout, which has none).
    #[serde(default)]
    pub scope: String,
    /// The store's namespace (`--store-namespace`, by default the store's location such as
    /// `s3://bucket/prefix`), so that a signed entry copied into another store is refused there.
    /// Empty in entries from before it was recorded.
    #[serde(default)]
    pub store: String,
    /// When it was saved, milliseconds since the Unix epoch (UTC); 0 in entries from before it was
    /// recorded. A restore that checks signatures orders candidates by it, not by the object's
    /// LastModified, which a server-side copy resets.
    #[serde(default)]
    pub created_ms: u64,
}

/// Every field a manifest may have: a signed manifest with any other is refused ([`parse`]).
const MANIFEST_FIELDS: &[&str] = &[
    "format",
    "sha256",
    "archive_bytes",
    "os",
    "arch",
    "members",
    "tar_bytes",
    "compression",
    "level",
    "version",
    "paths",
    "cross_os",
    "plain_names",
    "parts",
    "key",
    "scope",
    "store",
    "created_ms",
];

/// The fields a signed manifest must have, besides those every manifest has: what binds it.
const SIGNED_FIELDS: &[&str] = &["version", "key", "scope", "store", "created_ms"];

impl Manifest {
    /// The archive's format, when `compression` names one this host knows ([`decode`] ensures it does).
    pub fn archive_format(&self) -> Option<Format> {
        Format::from_name(&self.compression)
    }
}

/// Why an object's trailer could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrailerError {
    /// The object does not end with a trailer.
    #[error("the object has no s3cache trailer (not written by s3cache, truncated, or replaced)")]
    Missing,
    /// The trailer is there but cannot be parsed; the text says what is wrong.
    #[error("the s3cache trailer is malformed: {0}")]
    Malformed(String),
    /// The manifest names a compression this version does not know.
    #[error("the manifest's compression {0:?} is not one this s3cache knows (zstd, gzip, tar)")]
    UnknownCompression(String),
    /// The manifest is longer than a trailer may be.
    #[error("the manifest is {0} bytes, over the limit of {MAX_MANIFEST_BYTES} (too many or too long paths)")]
    TooLarge(usize),
    /// A signed manifest lacks a field that binds it, or has one this s3cache does not know: a
    /// signature is honoured only over a manifest that is read completely.
    #[error("the signed manifest {0}")]
    Incomplete(String),
}

/// A trailer's raw parts, as written: the manifest's exact bytes and, in a signed entry, the
/// signature over them. Verify [`Framed::json`] as it is, then [`parse`] it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framed {
    /// The manifest's JSON, byte for byte as the trailer holds it.
    pub json: Vec<u8>,
    /// The armored SSHSIG over `json`, in a signed entry.
    pub signature: Option<String>,
    layout: Layout,
    trailer_len: usize,
}

/// How a format's trailer frames the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// A zstd skippable frame (zstd and tar).
    SkippableFrame,
    /// A final empty gzip member with the payload in its extra field.
    GzipMember,
}

impl Layout {
    fn of(format: Format) -> Self {
        match format {
            Format::Zstd | Format::Tar => Layout::SkippableFrame,
            Format::Gzip => Layout::GzipMember,
        }
    }

    /// The layout whose last bytes `tail` ends with.
    fn recognize(tail: &[u8]) -> Option<Self> {
        if tail.ends_with(FOOTER_MAGIC) || tail.ends_with(SIGNED_FOOTER_MAGIC) {
            Some(Layout::SkippableFrame)
        } else if tail.ends_with(&GZIP_MEMBER_END) {
            Some(Layout::GzipMember)
        } else {
            None
        }
    }

    fn header_len(self) -> usize {
        match self {
            Layout::SkippableFrame => 8,
            Layout::GzipMember => GZIP_HEADER.len() + 2 + 4,
        }
    }

    /// The bytes before a payload of `payload_len` bytes (at most `u16::MAX - 4` for gzip).
    fn header(self, payload_len: usize) -> Vec<u8> {
        let mut header = Vec::with_capacity(self.header_len());
        match self {
            Layout::SkippableFrame => {
                header.extend_from_slice(&SKIPPABLE_MAGIC);
                header.extend_from_slice(&(payload_len as u32).to_le_bytes());
            }
            Layout::GzipMember => {
                header.extend_from_slice(&GZIP_HEADER);
                header.extend_from_slice(&((payload_len + 4) as u16).to_le_bytes());
                header.extend_from_slice(&GZIP_SUBFIELD);
                header.extend_from_slice(&(payload_len as u16).to_le_bytes());
            }
        }
        header
    }

    /// The bytes after the payload.
    fn end(self) -> &'static [u8] {
        match self {
            Layout::SkippableFrame => &[],
            Layout::GzipMember => &GZIP_MEMBER_END,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Layout::SkippableFrame => "skippable frame",
            Layout::GzipMember => "gzip member",
        }
    }
}

/// The trailer for `manifest`, in the layout of its compression.
pub fn encode(manifest: &Manifest) -> Result<Vec<u8>, TrailerError> {
    encode_signed(manifest, None)
}

/// Signs a manifest's exact bytes: returns the armored signature ([`crate::signing::SigningKey::sign`]).
pub type Sign<'a> = &'a dyn Fn(&[u8]) -> String;

/// The trailer for `manifest`, signed by `sign` when given: the signature is made over exactly the
/// JSON bytes the trailer then holds.
pub fn encode_signed(manifest: &Manifest, sign: Option<Sign<'_>>) -> Result<Vec<u8>, TrailerError> {
    let format = manifest.archive_format().ok_or_else(|| TrailerError::UnknownCompression(manifest.compression.clone()))?;
    let layout = Layout::of(format);
    let json = serde_json::to_vec(manifest).expect("manifest serializes");
    let limit = if sign.is_some() { MAX_MANIFEST_BYTES - MAX_SIGNATURE_BYTES } else { MAX_MANIFEST_BYTES };
    if json.len() > limit {
        return Err(TrailerError::TooLarge(json.len()));
    }
    let signature = sign.map(|sign| sign(&json));
    if let Some(signature) = &signature {
        assert!(signature.len() <= MAX_SIGNATURE_BYTES, "an ed25519 SSHSIG is far shorter than the limit");
    }
    Ok(frame(layout, &json, signature.as_deref()))
}

/// The trailer for `manifest` ([`encode_signed`]); when its part list makes it too large, the trailer
/// without the list, so that a very large archive is still saved (and restored as one stream).
pub fn encode_fitting(manifest: &mut Manifest, sign: Option<Sign<'_>>) -> Result<Vec<u8>, TrailerError> {
    match encode_signed(manifest, sign) {
        Err(TrailerError::TooLarge(_)) if !manifest.parts.is_empty() => {
            tracing::debug!(parts = manifest.parts.len(), "the part list does not fit the trailer; the entry will decode as one stream");
            manifest.parts.clear();
            encode_signed(manifest, sign)
        }
        other => other,
    }
}

/// `json`, the signature if any, and the footer, framed in `layout`.
fn frame(layout: Layout, json: &[u8], signature: Option<&str>) -> Vec<u8> {
    let footer_len = if signature.is_some() { SIGNED_FOOTER_LEN } else { FOOTER_LEN };
    let signature = signature.unwrap_or_default().as_bytes();
    let payload_len = json.len() + signature.len() + footer_len;
    let mut trailer = layout.header(payload_len);
    trailer.extend_from_slice(json);
    trailer.extend_from_slice(signature);
    trailer.extend_from_slice(&(json.len() as u32).to_le_bytes());
    if footer_len == SIGNED_FOOTER_LEN {
        trailer.extend_from_slice(&(signature.len() as u32).to_le_bytes());
        trailer.extend_from_slice(SIGNED_FOOTER_MAGIC);
    } else {
        trailer.extend_from_slice(FOOTER_MAGIC);
    }
    trailer.extend_from_slice(layout.end());
    trailer
}

/// Reads the trailer from `tail`, the last bytes of an object of `object_size` bytes. Returns the
/// manifest; its `archive_bytes` is checked against where the trailer starts, and its compression
/// against the trailer's layout. A signed entry's signature is not checked here ([`unframe`]).
pub fn decode(tail: &[u8], object_size: u64) -> Result<Manifest, TrailerError> {
    parse(&unframe(tail)?, object_size)
}

/// Finds the trailer at the end of `tail` and hands out its parts as written, unparsed: the
/// manifest's bytes and the signature, if any.
pub fn unframe(tail: &[u8]) -> Result<Framed, TrailerError> {
    let layout = Layout::recognize(tail).ok_or(TrailerError::Missing)?;
    let payload_end = tail.len() - layout.end().len();
    let magic = |len: usize| (payload_end >= len).then(|| &tail[payload_end - 8..payload_end]);
    let (json_len, signature_len, footer_len) = if magic(SIGNED_FOOTER_LEN) == Some(&SIGNED_FOOTER_MAGIC[..]) {
        let at = payload_end - SIGNED_FOOTER_LEN;
        (read_u32(&tail[at..]), read_u32(&tail[at + 4..]), SIGNED_FOOTER_LEN)
    } else if magic(FOOTER_LEN) == Some(&FOOTER_MAGIC[..]) {
        (read_u32(&tail[payload_end - FOOTER_LEN..]), 0, FOOTER_LEN)
    } else {
        return Err(TrailerError::Missing);
    };
    if json_len > MAX_MANIFEST_BYTES {
        return Err(TrailerError::Malformed(format!("a {json_len}-byte manifest is over the limit")));
    }
    if signature_len > MAX_SIGNATURE_BYTES {
        return Err(TrailerError::Malformed(format!("a {signature_len}-byte signature is over the limit")));
    }
    let payload_len = json_len + signature_len + footer_len;
    let trailer_len = layout.header_len() + payload_len + layout.end().len();
    if trailer_len > tail.len() {
        return Err(TrailerError::Malformed(format!("a {json_len}-byte manifest does not fit the object's tail")));
    }
    let trailer = &tail[tail.len() - trailer_len..];
    if trailer[..layout.header_len()] != layout.header(payload_len) {
        return Err(TrailerError::Malformed(format!("bad {} header", layout.describe())));
    }
    let json = trailer[layout.header_len()..layout.header_len() + json_len].to_vec();
    let signature = if footer_len == SIGNED_FOOTER_LEN {
        let bytes = &trailer[layout.header_len() + json_len..layout.header_len() + json_len + signature_len];
        Some(String::from_utf8(bytes.to_vec()).map_err(|_| TrailerError::Malformed("the signature is not text".into()))?)
    } else {
        None
    };
    Ok(Framed { json, signature, layout, trailer_len })
}

/// A little-endian u32 at the start of `bytes`, as a length.
fn read_u32(bytes: &[u8]) -> usize {
    u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")) as usize
}

/// Parses a trailer's manifest and checks it against the object of `object_size` bytes: its
/// `archive_bytes` against where the trailer starts, its compression against the layout. A signed
/// manifest is read strictly: it must hold the fields that bind it ([`Manifest::key`], `scope`,
/// `store`, `version`, `created_ms`) and no field this s3cache does not know, so that no part of what
/// was signed is ignored. Every manifest refuses a field given twice.
pub fn parse(framed: &Framed, object_size: u64) -> Result<Manifest, TrailerError> {
    let manifest: Manifest = serde_json::from_slice(&framed.json).map_err(|e| TrailerError::Malformed(e.to_string()))?;
    if framed.signature.is_some() {
        let fields: std::collections::BTreeMap<String, serde::de::IgnoredAny> =
            serde_json::from_slice(&framed.json).map_err(|e| TrailerError::Malformed(e.to_string()))?;
        if let Some(unknown) = fields.keys().find(|name| !MANIFEST_FIELDS.contains(&name.as_str())) {
            return Err(TrailerError::Incomplete(format!(
                "has the field {unknown:?}, which this s3cache does not know (saved by a newer one?)"
            )));
        }
        if let Some(missing) = SIGNED_FIELDS.iter().find(|name| !fields.contains_key(**name)) {
            return Err(TrailerError::Incomplete(format!("lacks the field {missing:?}")));
        }
    }
    let format = manifest.archive_format().ok_or_else(|| TrailerError::UnknownCompression(manifest.compression.clone()))?;
    if Layout::of(format) != framed.layout {
        return Err(TrailerError::Malformed(format!("a {} manifest in a {} trailer", manifest.compression, framed.layout.describe())));
    }
    let archive_end = object_size
        .checked_sub(framed.trailer_len as u64)
        .ok_or_else(|| TrailerError::Malformed("object shorter than its trailer".into()))?;
    if manifest.archive_bytes != archive_end {
        return Err(TrailerError::Malformed(format!(
            "manifest says {} archive bytes, the object holds {archive_end}",
            manifest.archive_bytes
        )));
    }
    check_parts(&manifest)?;
    Ok(manifest)
}

/// A manifest's part list must cover the archive exactly, with no empty part: a restore cuts the
/// archive where the list says and decodes each piece on its own.
fn check_parts(manifest: &Manifest) -> Result<(), TrailerError> {
    if manifest.parts.is_empty() {
        return Ok(());
    }
    if let Some(empty) = manifest.parts.iter().position(|&len| len == 0) {
        return Err(TrailerError::Malformed(format!("part {} of {} is empty", empty + 1, manifest.parts.len())));
    }
    let total = manifest.parts.iter().try_fold(0u64, |sum, &len| sum.checked_add(len));
    if total != Some(manifest.archive_bytes) {
        let total = total.map_or_else(|| "more than 2^64".to_owned(), |t| t.to_string());
        return Err(TrailerError::Malformed(format!("its parts add up to {total} bytes, the archive is {}", manifest.archive_bytes)));
    }
    Ok(())
}

/// A running SHA-256 over the bytes that pass through.
#[derive(Debug, Default, Clone)]
pub struct Digest256(Sha256);

impl Digest256 {
    /// Feeds bytes to the digest.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The digest as lower-case hex, as the manifest's `sha256` holds it.
    pub fn hex(self) -> String {
        hex::encode(self.0.finalize())
    }
}

/// Hashes and counts what is written, for the manifest, and passes it on to the upload.
pub struct SealingWriter {
    inner: Box<dyn crate::store::Upload>,
    seen: std::sync::Arc<std::sync::Mutex<(Digest256, u64)>>,
}

/// The digest and length of what a [`SealingWriter`] has passed on so far.
pub type Seal = std::sync::Arc<std::sync::Mutex<(Digest256, u64)>>;

impl SealingWriter {
    /// Wraps `inner`; the returned handle reads the running digest and length.
    pub fn new(inner: Box<dyn crate::store::Upload>) -> (Self, Seal) {
        let seen = Seal::default();
        (Self { inner, seen: seen.clone() }, seen)
    }
}

impl std::fmt::Debug for SealingWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealingWriter").finish_non_exhaustive()
    }
}

impl std::io::Write for SealingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        let mut seen = self.seen.lock().expect("seal lock");
        seen.0.update(&buf[..n]);
        seen.1 += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl crate::store::Upload for SealingWriter {
    fn finish(self: Box<Self>) -> Result<u64, crate::store::StoreError> {
        self.inner.finish()
    }
}

/// Passes an archive through while hashing it, and fails at the end — instead of reporting the end —
/// when the bytes are not the ones the manifest describes. The extractor therefore never finishes on
/// a corrupt or substituted archive, and nothing staged is committed.
///
/// The verdict is reached at the first end of the stream and repeated by every later read: readers
/// such as a bare tar parser ask again after the end.
pub struct VerifyingReader<R> {
    inner: R,
    digest: Digest256,
    seen: u64,
    expected: Manifest,
    /// At the end: `Ok` or the mismatch.
    verdict: Option<Result<(), String>>,
}

impl<R> VerifyingReader<R> {
    /// Reads `inner`, an archive's bytes without the trailer, and checks them against `expected`.
    pub fn new(inner: R, expected: Manifest) -> Self {
        Self { inner, digest: Digest256::default(), seen: 0, expected, verdict: None }
    }
}

impl<R> std::fmt::Debug for VerifyingReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingReader").field("seen", &self.seen).finish_non_exhaustive()
    }
}

impl<R: std::io::Read> std::io::Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some(verdict) = &self.verdict {
            return verdict.clone().map(|()| 0).map_err(std::io::Error::other);
        }
        let n = self.inner.read(buf)?;
        self.digest.update(&buf[..n]);
        self.seen += n as u64;
        if self.seen > self.expected.archive_bytes {
            return Err(std::io::Error::other("the archive is longer than its manifest says"));
        }
        if n == 0 && !buf.is_empty() {
            let actual = std::mem::take(&mut self.digest).hex();
            let verdict = if self.seen != self.expected.archive_bytes || actual != self.expected.sha256 {
                Err(format!(
                    "SHA-256 mismatch: the manifest says {} ({} bytes), the archive is {actual} ({} bytes)",
                    self.expected.sha256, self.expected.archive_bytes, self.seen
                ))
            } else {
                Ok(())
            };
            return self.verdict.insert(verdict).clone().map(|()| 0).map_err(std::io::Error::other);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(archive_bytes: u64, format: Format) -> Manifest {
        Manifest {
            format: 1,
            sha256: "ab".repeat(32),
            archive_bytes,
            os: "linux".into(),
            arch: "x86_64".into(),
            members: 3,
            tar_bytes: 4096,
            compression: format.name().into(),
            level: 3,
            version: "v".into(),
            paths: vec!["target".into()],
            cross_os: false,
            plain_names: false,
            parts: Vec::new(),
            key: "deps-1".into(),
            scope: "main".into(),
            store: "s3://bucket/ci".into(),
            created_ms: 1_765_000_000_000,
        }
    }

    fn object(archive: &[u8], manifest: &Manifest) -> Vec<u8> {
        let mut object = archive.to_vec();
        object.extend(encode(manifest).unwrap());
        object
    }

    /// A trailer appended to an archive reads back from the object's tail, in every layout, whether
    /// the tail is the whole object or its last bytes.
    #[test]
    fn round_trips() {
        for format in Format::ALL {
            let archive = vec![7u8; 20_000];
            let object = object(&archive, &manifest(20_000, format));
            let tail = &object[object.len() - TAIL_FETCH as usize..];
            assert_eq!(decode(tail, object.len() as u64).unwrap(), manifest(20_000, format), "{format}");
            assert_eq!(decode(&object, object.len() as u64).unwrap(), manifest(20_000, format), "{format}");
        }
    }

    /// Each layout's fixed bytes: a skippable frame for zstd and tar, an empty gzip member for gzip.
    #[test]
    fn layouts_are_fixed() {
        let m = manifest(0, Format::Zstd);
        let json_len = serde_json::to_vec(&m).unwrap().len();
        for format in [Format::Zstd, Format::Tar] {
            let trailer = encode(&manifest(0, format)).unwrap();
            assert_eq!(trailer[..4], [0x5e, 0x2a, 0x4d, 0x18]);
            assert_eq!(u32::from_le_bytes(trailer[4..8].try_into().unwrap()) as usize, trailer.len() - 8);
            assert!(trailer.ends_with(b"S3CACHE1"));
        }
        let trailer = encode(&manifest(0, Format::Gzip)).unwrap();
        let json_len = json_len - "zstd".len() + "gzip".len();
        assert_eq!(trailer.len(), 16 + json_len + 12 + 10);
        assert_eq!(trailer[..10], [0x1f, 0x8b, 0x08, 0x04, 0, 0, 0, 0, 0, 0xff]);
        assert_eq!(u16::from_le_bytes([trailer[10], trailer[11]]) as usize, 4 + json_len + 12);
        assert_eq!(&trailer[12..14], b"S3");
        assert_eq!(u16::from_le_bytes([trailer[14], trailer[15]]) as usize, json_len + 12);
        assert_eq!(&trailer[trailer.len() - 22..trailer.len() - 10], [&(json_len as u32).to_le_bytes()[..], b"S3CACHE1"].concat());
        assert_eq!(trailer[trailer.len() - 10..], [3, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    /// No footer, a wrong length, a damaged header, a manifest in another format's layout and a lying
    /// archive length are refused, in every layout.
    #[test]
    fn refuses_bad_trailers() {
        assert_eq!(decode(b"just some zstd bytes", 20), Err(TrailerError::Missing));
        assert_eq!(decode(&[0u8; 4096], 4096), Err(TrailerError::Missing), "a bare tar's zero blocks");
        assert_eq!(decode(b"", 0), Err(TrailerError::Missing));
        for format in Format::ALL {
            let whole = object(&[7; 5], &manifest(5, format));
            let size = whole.len() as u64;
            assert_eq!(
                decode(&whole, size + 1),
                Err(TrailerError::Malformed("manifest says 5 archive bytes, the object holds 6".into())),
                "{format}"
            );
            let expected = Err(TrailerError::Malformed(
                if format == Format::Gzip { "bad gzip member header" } else { "bad skippable frame header" }.into(),
            ));
            let mut broken = whole.clone();
            broken[5] ^= 1;
            assert_eq!(decode(&broken, size), expected, "{format}");
            // The footer's length no longer matches the header's.
            let mut longer = whole.clone();
            let len_at = whole.len() - 12 - if format == Format::Gzip { 10 } else { 0 };
            longer[len_at] += 1;
            assert_eq!(decode(&longer, size), expected, "{format}");
            // Cut at the front: the manifest no longer fits the tail.
            let cut = decode(&whole[8..], size);
            assert!(matches!(&cut, Err(TrailerError::Malformed(m)) if m.ends_with("does not fit the object's tail")), "{format}: {cut:?}");
            // Cut at the end: no trailer at all.
            assert_eq!(decode(&whole[..whole.len() - 1], size - 1), Err(TrailerError::Missing), "{format}");
        }
        // A gzip manifest in a skippable frame, and the reverse.
        for (format, layout, expected) in [
            (Format::Gzip, Layout::SkippableFrame, "a gzip manifest in a skippable frame trailer"),
            (Format::Zstd, Layout::GzipMember, "a zstd manifest in a gzip member trailer"),
            (Format::Tar, Layout::GzipMember, "a tar manifest in a gzip member trailer"),
        ] {
            let trailer = frame(layout, &serde_json::to_vec(&manifest(5, format)).unwrap(), None);
            assert_eq!(decode(&trailer, trailer.len() as u64 + 5), Err(TrailerError::Malformed(expected.into())));
        }
        let unknown = Manifest { compression: "lz4".into(), ..manifest(5, Format::Zstd) };
        let trailer = frame(Layout::SkippableFrame, &serde_json::to_vec(&unknown).unwrap(), None);
        assert_eq!(decode(&trailer, trailer.len() as u64 + 5), Err(TrailerError::UnknownCompression("lz4".into())));
        assert_eq!(encode(&unknown), Err(TrailerError::UnknownCompression("lz4".into())));
    }

    /// A part list must cover the archive exactly, without empty parts; a list too long for the
    /// trailer is left out rather than failing the save.
    #[test]
    fn checks_part_lists() {
        let with_parts = |parts: Vec<u64>| Manifest { parts, ..manifest(10, Format::Zstd) };
        let good = object(&[7; 10], &with_parts(vec![4, 6]));
        assert_eq!(decode(&good, good.len() as u64).unwrap().parts, vec![4, 6]);
        for (parts, expected) in [
            (vec![4, 5], "its parts add up to 9 bytes, the archive is 10"),
            (vec![4, 6, 1], "its parts add up to 11 bytes, the archive is 10"),
            (vec![10, 0], "part 2 of 2 is empty"),
            (vec![u64::MAX, 11], "its parts add up to more than 2^64 bytes, the archive is 10"),
        ] {
            let bad = object(&[7; 10], &with_parts(parts));
            assert_eq!(decode(&bad, bad.len() as u64), Err(TrailerError::Malformed(expected.into())));
        }
        let plain = serde_json::to_string(&manifest(10, Format::Zstd)).unwrap();
        assert!(!plain.contains("parts"), "an entry without parts is written as before: {plain}");
        let mut long = with_parts(vec![1; 9000]);
        long.archive_bytes = 9000;
        assert!(matches!(encode(&long), Err(TrailerError::TooLarge(_))));
        let trailer = encode_fitting(&mut long, None).unwrap();
        assert!(long.parts.is_empty());
        assert_eq!(decode(&trailer, trailer.len() as u64 + 9000).unwrap().parts, Vec::<u64>::new());
    }

    /// A manifest too large for the tail a reader fetches is refused when written, not left unreadable.
    #[test]
    fn refuses_oversized_manifests() {
        let mut huge = manifest(5, Format::Gzip);
        huge.paths = (0..2000).map(|i| format!("some/long/path/number/{i}")).collect();
        assert!(matches!(encode(&huge), Err(TrailerError::TooLarge(n)) if n > MAX_MANIFEST_BYTES));
    }

    /// A signed trailer hands out the manifest's exact bytes and the signature over them, in every
    /// layout; the bytes signed are the bytes written.
    #[test]
    fn signed_trailers_keep_the_signed_bytes() {
        let signed: std::cell::RefCell<Vec<u8>> = Default::default();
        let sign = |json: &[u8]| {
            signed.borrow_mut().extend_from_slice(json);
            "-----BEGIN SSH SIGNATURE-----\nfake\n-----END SSH SIGNATURE-----\n".to_owned()
        };
        for format in Format::ALL {
            signed.borrow_mut().clear();
            let mut object = vec![7u8; 20_000];
            object.extend(encode_signed(&manifest(20_000, format), Some(&sign)).unwrap());
            let framed = unframe(&object[object.len() - TAIL_FETCH as usize..]).unwrap();
            assert_eq!(framed.json, *signed.borrow(), "{format}");
            assert_eq!(framed.signature.as_deref(), Some("-----BEGIN SSH SIGNATURE-----\nfake\n-----END SSH SIGNATURE-----\n"));
            assert_eq!(parse(&framed, object.len() as u64).unwrap(), manifest(20_000, format), "{format}");
            assert!(object.ends_with(if format == Format::Gzip { &GZIP_MEMBER_END[..] } else { b"S3CACHE2" }));
        }
        let unsigned = unframe(&object(&[7; 5], &manifest(5, Format::Zstd))).unwrap();
        assert_eq!(unsigned.signature, None);
    }

    /// A signed manifest is read whole: a field this s3cache does not know, or a missing binding
    /// field, refuses it; an unsigned one of an older s3cache (no key, no store) still reads.
    #[test]
    fn signed_manifests_are_read_strictly() {
        let sign = |_: &[u8]| "sig".to_owned();
        let framed_json = |json: &str, signature: Option<&str>| {
            let trailer = frame(Layout::SkippableFrame, json.as_bytes(), signature);
            (unframe(&trailer).unwrap(), trailer.len() as u64 + 5)
        };
        let json = serde_json::to_string(&manifest(5, Format::Zstd)).unwrap();
        let (good, size) = framed_json(&json, Some("sig"));
        assert_eq!(parse(&good, size).unwrap(), manifest(5, Format::Zstd));
        let extra = json.replacen('{', "{\"trusted\":true,", 1);
        let (framed, size) = framed_json(&extra, Some("sig"));
        assert_eq!(
            parse(&framed, size),
            Err(TrailerError::Incomplete("has the field \"trusted\", which this s3cache does not know (saved by a newer one?)".into()))
        );
        let (framed, size) = framed_json(&extra, None);
        assert!(parse(&framed, size).is_ok(), "an unsigned manifest's unknown field is ignored");
        let old = json.replace(",\"store\":\"s3://bucket/ci\"", "");
        assert_ne!(old, json);
        let (framed, size) = framed_json(&old, Some("sig"));
        assert_eq!(parse(&framed, size), Err(TrailerError::Incomplete("lacks the field \"store\"".into())));
        let (framed, size) = framed_json(&old, None);
        assert_eq!(parse(&framed, size).unwrap().store, "", "an older s3cache's unsigned manifest");
        let twice = json.replacen('{', "{\"key\":\"other\",", 1);
        let (framed, size) = framed_json(&twice, Some("sig"));
        assert!(matches!(parse(&framed, size), Err(TrailerError::Malformed(m)) if m.starts_with("duplicate field `key`")));
        // A signature leaves less room for the manifest.
        let mut big = manifest(5, Format::Zstd);
        big.paths = vec!["p".repeat(MAX_MANIFEST_BYTES - MAX_SIGNATURE_BYTES)];
        assert!(encode(&big).is_ok());
        assert!(matches!(encode_signed(&big, Some(&sign)), Err(TrailerError::TooLarge(_))));
    }

    /// A stream whose bytes or length differ from the manifest fails at its end instead of ending.
    #[test]
    fn verifying_reader_catches_substitutions() {
        use std::io::Read;
        let archive = b"the real archive".to_vec();
        let mut expected = manifest(archive.len() as u64, Format::Zstd);
        expected.sha256 = hex::encode(Sha256::digest(&archive));
        let mut out = Vec::new();
        VerifyingReader::new(&archive[..], expected.clone()).read_to_end(&mut out).unwrap();
        assert_eq!(out, archive);
        let mut fake = VerifyingReader::new(&b"the fake archive"[..], expected.clone());
        let err = fake.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(err.to_string().starts_with("SHA-256 mismatch: the manifest says "), "{err}");
        assert_eq!(fake.read(&mut [0; 8]).unwrap_err().to_string(), err.to_string(), "the verdict stands");
        // Reading again after a good end is another end, not a mismatch of nothing.
        let mut real = VerifyingReader::new(&archive[..], expected.clone());
        real.read_to_end(&mut Vec::new()).unwrap();
        assert_eq!(real.read(&mut [0; 8]).unwrap(), 0);
        assert!(VerifyingReader::new(&archive[..5], expected).read_to_end(&mut Vec::new()).is_err());
    }

    /// `zstd -d` skips the frame: the object still decompresses to the archive alone.
    #[test]
    fn zstd_skips_the_trailer() {
        let compressed = zstd::encode_all(&b"hello tar"[..], 3).unwrap();
        let object = object(&compressed, &manifest(compressed.len() as u64, Format::Zstd));
        assert_eq!(zstd::decode_all(&object[..]).unwrap(), b"hello tar");
    }

    /// A gzip reader takes the trailer for one more (empty, valid) member: the object decompresses to
    /// the archive alone, and the reader consumes every byte.
    #[test]
    fn gzip_reads_the_trailer_as_an_empty_member() {
        use std::io::{Read, Write};
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        encoder.write_all(b"hello tar").unwrap();
        let compressed = encoder.finish().unwrap();
        let object = object(&compressed, &manifest(compressed.len() as u64, Format::Gzip));
        let mut decoder = flate2::read::MultiGzDecoder::new(&object[..]);
        let mut out = Vec::new();
        decoder.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"hello tar");
        let trailer = encode(&manifest(0, Format::Gzip)).unwrap();
        let mut empty = flate2::read::GzDecoder::new(&trailer[..]);
        let mut out = Vec::new();
        empty.read_to_end(&mut out).unwrap();
        assert!(out.is_empty());
        assert_eq!(empty.header().and_then(|h| h.extra()).map(|e| &e[..2]), Some(&b"S3"[..]));
    }
}
