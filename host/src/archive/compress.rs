//! Compression on the host, for zstd saves: the guest writes a part as bare tar and the host
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
use std::sync::{Arc, Mutex};

use s3cache_zstd_frames::FrameWriter;

use crate::sandbox::bindings::{Compression, Member, PackOptions, PackSummary, Root};
use crate::sandbox::{GuestInstance, SandboxError};

/// Packs one part into `sink` as `options.compression` says: for zstd, the guest writes bare tar and
/// the host compresses it; gzip and bare tar the guest writes itself.
pub fn pack_part<W: Write + Send + 'static>(
    guest: &mut GuestInstance,
    roots: &[Root],
    members: &[Member],
    options: PackOptions,
    sink: W,
) -> Result<PackSummary, SandboxError> {
    if !matches!(options.compression, Compression::Zstd) {
        return guest.pack(roots, members, options, Box::new(sink));
    }
    let compressing = |err: io::Error| SandboxError::Trap(format!("compressing the archive on the host: {err}"));
    let frames = Arc::new(Mutex::new(FrameWriter::new(options.level, sink).map_err(compressing)?));
    let tar = PackOptions { compression: Compression::None, ..options };
    let summary = guest.pack(roots, members, tar, Box::new(SharedFrames(frames.clone())))?;
    // The guest's sink is dropped when its call returns, so this is the last reference.
    let frames = Arc::into_inner(frames).expect("the guest's sink was dropped").into_inner().expect("frame writer lock");
    let (_, compressed_bytes) = frames.finish().map_err(compressing)?;
    Ok(PackSummary { compressed_bytes, ..summary })
}

/// The guest's `archive-io.write` for a part compressed on the host: the tar goes into the frame
/// writer, which [`pack_part`] finishes once the guest's call has returned.
struct SharedFrames<W: Write>(Arc<Mutex<FrameWriter<W>>>);

impl<W: Write> Write for SharedFrames<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("frame writer lock").write(buf)
    }

    /// Does nothing, as the frame writer: frames end at a fixed input size and at `finish`.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
