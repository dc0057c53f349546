//! Compression on the host, for zstd saves: the guest writes each part as bare tar and the host
//! compresses it here, with native zstd, on the worker thread that runs that part's guest.
//!
//! Why this is safe: the compressor's only input is the tar stream the guest produced from the job's
//! own files, which the host itself had listed and checked; it reads nothing from the store and
//! parses nothing untrusted. Everything read back from a store is still decompressed and parsed
//! inside the sandbox ([`crate::archive::unpack`]). Why it is worth it: zstd in wasm was 40% of a
//! W1 save's CPU (`perf`); natively the same frames take about a third of that.
//!
//! The frames are written by the guest's own frame writer (the `s3cache-zstd-frames` crate), so the
//! output is exactly what the guest's `pack` writes for the same tar; a unit test in `pack` compares
//! the two byte for byte.
//!
//! gzip stays in the guest: zlib-rs built natively takes other matches than in wasm (its SIMD paths
//! differ), so its bytes would not be the guest's, and the guest's gzip already keeps up with
//! `gzip -6` (docs/benchmark.md).

use std::io::{self, Write};

use s3cache_zstd_frames::FrameWriter;

use crate::sandbox::bindings::Compression;

/// Compresses one part's tar into `W` as the guest's zstd frames.
pub struct Encoder<W: Write>(FrameWriter<W>);

impl<W: Write> Encoder<W> {
    /// An encoder for `compression` at `level` (already checked against the format's range), or
    /// `None` when the host leaves that compression to the guest (gzip, and bare tar, which needs none).
    pub fn new(compression: Compression, level: i32, sink: W) -> io::Result<Option<Self>> {
        if !matches!(compression, Compression::Zstd) {
            return Ok(None);
        }
        Ok(Some(Self(FrameWriter::new(level, sink)?)))
    }

    /// Ends the last frame; returns the compressed bytes written.
    pub fn finish(self) -> io::Result<u64> {
        Ok(self.0.finish()?.1)
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    /// Does nothing, as the frame writer: frames end at a fixed input size and at `finish`.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
