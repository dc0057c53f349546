//! Compression on the host, for zstd saves: the guest writes each part as bare tar and the host
//! compresses it here, with native zstd, on the worker thread that runs that part's guest.
//!
//! Why this is safe: the compressor's only input is the tar stream the guest produced from the job's
//! own files, which the host itself had listed and checked; it reads nothing from the store and
//! parses nothing untrusted. Everything read back from a store is still decompressed and parsed
//! inside the sandbox ([`crate::archive::unpack`]). Why it is worth it: zstd in wasm was 40% of a
//! save's CPU (W1, `perf`), and native zstd does the same work in about a third of the time.
//!
//! The output is exactly what the guest writes for the same tar (docs/embedding.md, `pack`): zstd
//! frames of [`ZSTD_FRAME_INPUT`] bytes of tar, each compressed in one call with its content size
//! and checksum, by the same zstd release. A unit test compares the two byte for byte.
//!
//! gzip stays in the guest: zlib-rs built natively takes other matches than in wasm (its SIMD paths
//! differ), so its bytes would not be the guest's, and the guest's gzip already keeps up with
//! `gzip -6` (docs/benchmark.md).

use std::io::{self, Write};

use crate::sandbox::bindings::Compression;

/// Tar bytes per zstd frame, as in the guest: zstd -3's window, so frames lose almost nothing to
/// their restarts (0.13% on W1).
pub const ZSTD_FRAME_INPUT: usize = 2 << 20;

/// Compresses one part's tar into `W` as zstd frames of up to [`ZSTD_FRAME_INPUT`] bytes of tar,
/// counting what it writes.
pub struct Encoder<W: Write> {
    compressor: zstd::bulk::Compressor<'static>,
    pending: Vec<u8>,
    frame: Vec<u8>,
    frames: usize,
    sink: Counted<W>,
}

/// A writer that counts the bytes written through it.
pub struct Counted<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Write> Encoder<W> {
    /// An encoder for `compression` at `level` (already checked against the format's range), or
    /// `None` when the host leaves that compression to the guest (gzip, and bare tar, which needs none).
    pub fn new(compression: Compression, level: i32, sink: W) -> io::Result<Option<Self>> {
        if !matches!(compression, Compression::Zstd) {
            return Ok(None);
        }
        let mut compressor = zstd::bulk::Compressor::new(level)?;
        compressor.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))?;
        let pending = Vec::with_capacity(ZSTD_FRAME_INPUT);
        Ok(Some(Self { compressor, pending, frame: Vec::new(), frames: 0, sink: Counted { inner: sink, bytes: 0 } }))
    }

    /// Ends the last frame; returns the compressed bytes written.
    pub fn finish(mut self) -> io::Result<u64> {
        self.write_frame()?;
        Ok(self.sink.bytes)
    }

    /// Compresses what is pending as one frame (even nothing, when no frame was written yet: a part
    /// is never empty).
    fn write_frame(&mut self) -> io::Result<()> {
        if self.pending.is_empty() && self.frames > 0 {
            return Ok(());
        }
        self.frame.clear();
        self.frame.reserve(zstd::zstd_safe::compress_bound(self.pending.len()));
        self.compressor.compress_to_buffer(&self.pending, &mut self.frame)?;
        self.pending.clear();
        self.frames += 1;
        self.sink.write_all(&self.frame)
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while !rest.is_empty() {
            let take = rest.len().min(ZSTD_FRAME_INPUT - self.pending.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() == ZSTD_FRAME_INPUT {
                self.write_frame()?;
            }
        }
        Ok(buf.len())
    }

    /// Does nothing: frames end at [`ZSTD_FRAME_INPUT`] bytes of tar and at `finish`, so that the
    /// bytes do not depend on how the guest's writes were cut.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
