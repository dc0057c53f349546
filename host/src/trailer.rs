//! The entry's trailer: a zstd *skippable frame* appended after the archive's compressed frames,
//! holding a small JSON manifest (format, SHA-256 and length of the compressed archive, OS, counts).
//!
//! A skippable frame is part of the zstd format: `zstd -d` passes over it, so the object stays a
//! standard `.tar.zst`. Keeping the manifest inside the one object makes an entry atomic — there is
//! never a manifest without its archive or the reverse — and lets restore check the digest of every
//! byte before the staged tree is moved into place. The trailer ends with a fixed footer
//! (`json length` u32 LE + `S3CACHE1`) so a reader finds it from the object's end.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Skippable frame magic (`0x184D2A5E`, little endian), one of the 16 reserved values.
const SKIPPABLE_MAGIC: [u8; 4] = 0x184D_2A5E_u32.to_le_bytes();
const FOOTER_MAGIC: &[u8; 8] = b"S3CACHE1";
const FOOTER_LEN: usize = 4 + FOOTER_MAGIC.len();
/// Bytes a reader fetches from the end to find the trailer; manifests are far smaller.
pub const TAIL_FETCH: u64 = 16 << 10;

/// What the trailer records about an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Archive format version ([`crate::ARCHIVE_FORMAT`]).
    pub format: u32,
    /// SHA-256 of the compressed archive (everything before the trailer), hex.
    pub sha256: String,
    /// Length of the compressed archive in bytes.
    pub archive_bytes: u64,
    /// Operating system that saved the entry (`std::env::consts::OS`).
    pub os: String,
    pub arch: String,
    pub members: u64,
    pub tar_bytes: u64,
    pub compression: String,
    pub level: i32,
    /// The entry's version ([`crate::cache::entry_version`]): a restore uses only entries whose version
    /// is its own. Empty in entries from before versions existed.
    #[serde(default)]
    pub version: String,
    /// The path list the entry was saved with, to explain a version mismatch.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Whether the entry was saved for any operating system.
    #[serde(default)]
    pub cross_os: bool,
}

/// Why an object's trailer could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrailerError {
    #[error("the object has no s3cache trailer (not written by s3cache, truncated, or replaced)")]
    Missing,
    #[error("the s3cache trailer is malformed: {0}")]
    Malformed(String),
}

/// The trailer frame for `manifest`.
pub fn encode(manifest: &Manifest) -> Vec<u8> {
    let json = serde_json::to_vec(manifest).expect("manifest serializes");
    let payload_len = json.len() + FOOTER_LEN;
    let mut frame = Vec::with_capacity(8 + payload_len);
    frame.extend_from_slice(&SKIPPABLE_MAGIC);
    frame.extend_from_slice(&(payload_len as u32).to_le_bytes());
    frame.extend_from_slice(&json);
    frame.extend_from_slice(&(json.len() as u32).to_le_bytes());
    frame.extend_from_slice(FOOTER_MAGIC);
    frame
}

/// Reads the trailer from `tail`, the last bytes of an object of `object_size` bytes. Returns the
/// manifest; its `archive_bytes` is checked against where the trailer starts.
pub fn decode(tail: &[u8], object_size: u64) -> Result<Manifest, TrailerError> {
    if tail.len() < FOOTER_LEN || &tail[tail.len() - FOOTER_MAGIC.len()..] != FOOTER_MAGIC {
        return Err(TrailerError::Missing);
    }
    let len_at = tail.len() - FOOTER_LEN;
    let json_len = u32::from_le_bytes(tail[len_at..len_at + 4].try_into().expect("4 bytes")) as usize;
    let frame_len = 8 + json_len + FOOTER_LEN;
    if frame_len > tail.len() {
        return Err(TrailerError::Malformed(format!("a {json_len}-byte manifest does not fit the object's tail")));
    }
    let frame = &tail[tail.len() - frame_len..];
    let payload_len = u32::from_le_bytes(frame[4..8].try_into().expect("4 bytes")) as usize;
    if frame[..4] != SKIPPABLE_MAGIC || payload_len != json_len + FOOTER_LEN {
        return Err(TrailerError::Malformed("bad skippable frame header".into()));
    }
    let manifest: Manifest = serde_json::from_slice(&frame[8..8 + json_len]).map_err(|e| TrailerError::Malformed(e.to_string()))?;
    let archive_end = object_size.checked_sub(frame_len as u64).ok_or_else(|| TrailerError::Malformed("object shorter than its trailer".into()))?;
    if manifest.archive_bytes != archive_end {
        return Err(TrailerError::Malformed(format!("manifest says {} archive bytes, the object holds {archive_end}", manifest.archive_bytes)));
    }
    Ok(manifest)
}

/// A running SHA-256 over the bytes that pass through.
#[derive(Debug, Default, Clone)]
pub struct Digest256(Sha256);

impl Digest256 {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn hex(self) -> String {
        hex::encode(self.0.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(archive_bytes: u64) -> Manifest {
        Manifest {
            format: 1,
            sha256: "ab".repeat(32),
            archive_bytes,
            os: "linux".into(),
            arch: "x86_64".into(),
            members: 3,
            tar_bytes: 4096,
            compression: "zstd".into(),
            level: 3,
            version: "v".into(),
            paths: vec!["target".into()],
            cross_os: false,
        }
    }

    /// A trailer appended to an archive reads back from the object's tail.
    #[test]
    fn round_trips() {
        let archive = vec![7u8; 1000];
        let trailer = encode(&manifest(1000));
        let object: Vec<u8> = archive.iter().copied().chain(trailer.iter().copied()).collect();
        let tail = &object[object.len().saturating_sub(TAIL_FETCH as usize)..];
        assert_eq!(decode(tail, object.len() as u64).unwrap(), manifest(1000));
    }

    /// No footer, a wrong length, or a lying archive length are refused.
    #[test]
    fn refuses_bad_trailers() {
        assert_eq!(decode(b"just some zstd bytes", 20), Err(TrailerError::Missing));
        let trailer = encode(&manifest(5));
        assert!(matches!(decode(&trailer, trailer.len() as u64 + 6), Err(TrailerError::Malformed(_))));
        let mut broken = trailer.clone();
        broken[0] ^= 1;
        assert!(matches!(decode(&broken, broken.len() as u64 + 5), Err(TrailerError::Malformed(_))));
    }

    /// A stream whose bytes or length differ from the manifest fails at its end instead of ending.
    #[test]
    fn verifying_reader_catches_substitutions() {
        use std::io::Read;
        let archive = b"the real archive".to_vec();
        let mut expected = manifest(archive.len() as u64);
        expected.sha256 = hex::encode(Sha256::digest(&archive));
        let mut out = Vec::new();
        VerifyingReader::new(&archive[..], expected.clone()).read_to_end(&mut out).unwrap();
        assert_eq!(out, archive);
        let err = VerifyingReader::new(&b"the fake archive"[..], expected.clone()).read_to_end(&mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("SHA-256 mismatch"), "{err}");
        assert!(VerifyingReader::new(&archive[..5], expected).read_to_end(&mut Vec::new()).is_err());
    }

    /// `zstd -d` skips the frame: the object still decompresses to the archive alone.
    #[test]
    fn zstd_skips_the_trailer() {
        let compressed = zstd::encode_all(&b"hello tar"[..], 3).unwrap();
        let mut object = compressed.clone();
        object.extend(encode(&manifest(compressed.len() as u64)));
        assert_eq!(zstd::decode_all(&object[..]).unwrap(), b"hello tar");
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
pub struct VerifyingReader<R> {
    inner: R,
    digest: Digest256,
    seen: u64,
    expected: Manifest,
}

impl<R> VerifyingReader<R> {
    pub fn new(inner: R, expected: Manifest) -> Self {
        Self { inner, digest: Digest256::default(), seen: 0, expected }
    }
}

impl<R> std::fmt::Debug for VerifyingReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingReader").field("seen", &self.seen).finish_non_exhaustive()
    }
}

impl<R: std::io::Read> std::io::Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.digest.update(&buf[..n]);
        self.seen += n as u64;
        if self.seen > self.expected.archive_bytes {
            return Err(std::io::Error::other("the archive is longer than its manifest says"));
        }
        if n == 0 && !buf.is_empty() {
            let actual = std::mem::take(&mut self.digest).hex();
            if self.seen != self.expected.archive_bytes || actual != self.expected.sha256 {
                return Err(std::io::Error::other(format!(
                    "SHA-256 mismatch: the manifest says {} ({} bytes), the archive is {actual} ({} bytes)",
                    self.expected.sha256, self.expected.archive_bytes, self.seen
                )));
            }
        }
        Ok(n)
    }
}
