//! The zstd frames of an s3cache archive: every [`FRAME_INPUT`] bytes of tar compressed in one call as
//! a frame of its own, with its content size and checksum.
//!
//! Two places write them: the guest's `pack` in wasm (the WIT contract's compression, for any host),
//! and the s3cache binary, which has the guest write bare tar and compresses it natively
//! (host/src/archive/compress.rs). Both use this crate, so the same tar gives the same bytes either way.
//!
//! One contiguous input per frame spares zstd the streaming encoder's copy into its window buffer and
//! the slower match finder it uses once that buffer wraps. Frames of 2 MiB (zstd -3's window) cost
//! 0.13% in size on W1, concatenate into one zstd stream, and keep the buffers small.

use std::io::{self, Write};

/// Tar bytes per zstd frame.
pub const FRAME_INPUT: usize = 2 << 20;

/// Compresses what is written into zstd frames of up to [`FRAME_INPUT`] bytes of input each, written to
/// `W`; [`FrameWriter::finish`] ends the last one.
pub struct FrameWriter<W: Write> {
    compressor: zstd::bulk::Compressor<'static>,
    pending: Vec<u8>,
    frame: Vec<u8>,
    frames: usize,
    sink: W,
    written: u64,
}

impl<W: Write> std::fmt::Debug for FrameWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameWriter").field("pending", &self.pending.len()).field("frames", &self.frames).finish_non_exhaustive()
    }
}

impl<W: Write> FrameWriter<W> {
    /// A writer at zstd `level` (1..=19), with content checksums.
    pub fn new(level: i32, sink: W) -> io::Result<Self> {
        let mut compressor = zstd::bulk::Compressor::new(level)?;
        compressor.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))?;
        Ok(Self { compressor, pending: Vec::with_capacity(FRAME_INPUT), frame: Vec::new(), frames: 0, sink, written: 0 })
    }

    /// Ends the last frame (a frame of nothing when nothing was written: a part is never empty) and
    /// returns the sink with the compressed bytes written to it.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        self.write_frame()?;
        Ok((self.sink, self.written))
    }

    fn write_frame(&mut self) -> io::Result<()> {
        if self.pending.is_empty() && self.frames > 0 {
            return Ok(());
        }
        self.frame.clear();
        self.frame.reserve(zstd::zstd_safe::compress_bound(self.pending.len()));
        self.compressor.compress_to_buffer(&self.pending, &mut self.frame)?;
        self.pending.clear();
        self.frames += 1;
        self.written += self.frame.len() as u64;
        self.sink.write_all(&self.frame)
    }
}

impl<W: Write> Write for FrameWriter<W> {
    /// Buffers `buf`, writing a frame for every full [`FRAME_INPUT`].
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while !rest.is_empty() {
            let take = rest.len().min(FRAME_INPUT - self.pending.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() == FRAME_INPUT {
                self.write_frame()?;
            }
        }
        Ok(buf.len())
    }

    /// Does nothing: frames end at [`FRAME_INPUT`] bytes and at `finish`, so that the bytes do not
    /// depend on how the writes were cut.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Input is cut into frames of exactly FRAME_INPUT whatever the writes, each frame decodes on its
    /// own and carries its content size, and nothing written still gives one (empty) frame.
    #[test]
    fn cuts_frames_of_fixed_input() {
        let input: Vec<u8> = (0..FRAME_INPUT * 2 + 1000).map(|i| (i % 251) as u8).collect();
        let mut one_write = FrameWriter::new(3, Vec::new()).unwrap();
        one_write.write_all(&input).unwrap();
        let (whole, written) = one_write.finish().unwrap();
        assert_eq!(written, whole.len() as u64);
        let mut small_writes = FrameWriter::new(3, Vec::new()).unwrap();
        input.chunks(7777).for_each(|chunk| small_writes.write_all(chunk).unwrap());
        assert_eq!(small_writes.finish().unwrap().0, whole, "the bytes do not depend on how the writes were cut");
        let mut frames = Vec::new();
        let mut rest = &whole[..];
        while !rest.is_empty() {
            let size = zstd::zstd_safe::find_frame_compressed_size(rest).unwrap();
            let content = zstd::zstd_safe::get_frame_content_size(&rest[..size]).unwrap();
            frames.push(content);
            rest = &rest[size..];
        }
        assert_eq!(frames, [Some(FRAME_INPUT as u64), Some(FRAME_INPUT as u64), Some(1000)]);
        assert_eq!(zstd::decode_all(&whole[..]).unwrap(), input);
        let (empty, _) = FrameWriter::new(3, Vec::new()).unwrap().finish().unwrap();
        assert_eq!(zstd::decode_all(&empty[..]).unwrap(), b"");
        assert!(!empty.is_empty(), "an empty part is still one frame");
    }
}
