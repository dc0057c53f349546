//! Decoding on every core: the parts a save recorded in the manifest (its independently compressed
//! zstd frames or gzip members) are decompressed by several guest instances at once, and their output
//! is handed, in archive order, to the one instance that parses and checks the tar stream.
//!
//! Every archive byte is still handled in the sandbox: the decoders are guest instances without any
//! preopen (`archive.decompress`), and the parser is the usual `archive.unpack`, reading the parts'
//! concatenation as bare tar, with every check it applies to a whole stream (policy, limits, the
//! end-of-archive blocks and the zero padding after them). The host only cuts the compressed stream
//! where the manifest says and queues bytes. A part list that does not match the real frame
//! boundaries makes a decoder fail (its part ends inside a frame, or starts inside one), so a lying
//! manifest is a corrupt archive, never a different one; [`crate::archive::trailer::decode`] has already
//! checked that the parts cover the archive exactly.
//!
//! Workers take parts in order, each reading its part's compressed bytes whole from the shared source
//! (the download, which hashes as it goes: the worker that takes the last part also reads the digest's
//! verdict), so a worker never waits on a part nobody is decoding. Each part's output waits in a bounded
//! queue until the parser reaches it, and a part larger than [`MAX_PART_BYTES`] is not decoded this way,
//! so memory stays bounded. The first failure in archive order is the one reported, as a sequential
//! decode would: a decoder's `corrupt-stream` rather than the parser's view of it as a failed read.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use crate::sandbox::bindings::{Compression, GuestError, Root, UnpackLimits, UnpackReport};
use crate::sandbox::{ArchiveSource, GuestInstance, SandboxError};

/// Largest part decoded in parallel: our own parts hold about [`crate::archive::pack::PART_BYTES`] of
/// content, so their compressed form is smaller still. An entry with a larger part decodes as one stream.
pub const MAX_PART_BYTES: u64 = 32 << 20;
/// Chunks of decompressed output (each up to 256 KiB) a part may queue ahead of the parser.
const QUEUED_CHUNKS: usize = 16;

/// Whether an archive of `compression` with these parts is worth decoding on `workers` cores.
pub fn applies(compression: Compression, parts: &[u64], workers: usize) -> bool {
    compression != Compression::None && workers > 1 && parts.len() > 1 && parts.iter().all(|&len| len <= MAX_PART_BYTES)
}

/// What a decoder sends for its part: decompressed bytes, then how it ended.
enum Message {
    Bytes(Vec<u8>),
    Done(Result<u64, SandboxError>),
}

/// The compressed archive, shared by the decoders, and the index of the next part to take.
struct Source {
    reader: Box<dyn Read + Send>,
    next: usize,
}

/// Extracts an archive of `compression` whose parts have the compressed lengths `parts` (adding up to
/// the archive read from `source`): `workers` instances from `decoder` decompress the parts, and
/// `parser` extracts their concatenation under `roots`.
pub fn unpack(
    decoder: &(dyn Fn() -> Result<GuestInstance, SandboxError> + Sync),
    parser: &mut GuestInstance,
    roots: &[Root],
    compression: Compression,
    limits: UnpackLimits,
    parts: &[u64],
    source: Box<dyn Read + Send>,
    workers: usize,
) -> Result<UnpackReport, SandboxError> {
    let (senders, receivers): (Vec<_>, Vec<_>) = parts.iter().map(|_| sync_channel::<Message>(QUEUED_CHUNKS)).unzip();
    // Each part's sender goes to the worker that takes the part, so a worker that dies drops it and
    // the parser sees that part end instead of waiting for it.
    let senders: Vec<Mutex<Option<SyncSender<Message>>>> = senders.into_iter().map(|s| Mutex::new(Some(s))).collect();
    let source = Mutex::new(Source { reader: source, next: 0 });
    let abort = AtomicBool::new(false);
    let failure: Arc<Mutex<Option<SandboxError>>> = Arc::default();

    std::thread::scope(|scope| {
        for _ in 0..workers.clamp(1, parts.len()) {
            scope.spawn(|| decode_parts(decoder, compression, limits, parts, &source, &senders, &abort));
        }
        let in_order = InOrder::new(receivers, failure.clone());
        let report = parser.unpack(roots, Compression::None, limits, Box::new(in_order));
        abort.store(true, Ordering::SeqCst);
        // The parser's stream is dropped with its call, so decoders still writing fail and stop.
        match failure.lock().expect("failure lock").take() {
            Some(first) if report.is_err() => Err(first),
            _ => report,
        }
    })
}

/// A decoder's loop: take the next part, read its bytes, decompress them into the part's queue.
fn decode_parts(
    decoder: &(dyn Fn() -> Result<GuestInstance, SandboxError> + Sync),
    compression: Compression,
    limits: UnpackLimits,
    parts: &[u64],
    source: &Mutex<Source>,
    senders: &[Mutex<Option<SyncSender<Message>>>],
    abort: &AtomicBool,
) {
    let mut guest = None;
    loop {
        if abort.load(Ordering::SeqCst) {
            return;
        }
        let (index, input) = {
            let mut source = source.lock().expect("source lock");
            let index = source.next;
            if index == parts.len() || abort.load(Ordering::SeqCst) {
                return;
            }
            source.next += 1;
            (index, read_part(&mut source.reader, parts[index]))
        };
        let sender = senders[index].lock().expect("sender lock").take().expect("each part is taken once");
        let last = index + 1 == parts.len();
        if guest.as_ref().is_some_and(GuestInstance::outdated) {
            guest = None; // the optimized guest is ready: take it for the next parts
        }
        let result = match input {
            Ok(input) => {
                let decoded = match &mut guest {
                    Some(guest) => Ok(guest),
                    None => decoder().map(|g| guest.insert(g)),
                }
                .and_then(|guest| {
                    guest.decompress(compression, limits, Box::new(PartSource { bytes: input, at: 0 }), Box::new(PartSink(sender.clone())))
                })
                .map_err(|err| in_part(err, index, parts.len()));
                // The digest's verdict comes at the end of the source, after the last part; it is read
                // once that part has decoded, so that damage inside it is reported as a sequential
                // decode reports it (by zstd's or gzip's own checksum).
                match decoded {
                    Ok(len) if last => read_end(&mut source.lock().expect("source lock").reader).map(|()| len).map_err(stream_failed),
                    other => other,
                }
            }
            Err(err) => Err(stream_failed(err)),
        };
        let failed = result.is_err();
        if sender.send(Message::Done(result)).is_err() || failed {
            return;
        }
    }
}

/// The `len` bytes of the next part.
fn read_part(reader: &mut Box<dyn Read + Send>, len: u64) -> io::Result<Vec<u8>> {
    let mut input = Vec::with_capacity(len as usize);
    let read = reader.by_ref().take(len).read_to_end(&mut input)?;
    if (read as u64) < len {
        return Err(io::Error::other(format!("the archive ends {} bytes before its last part does", len - read as u64)));
    }
    Ok(input)
}

/// A failed download or a digest mismatch: the host's stream failing, as in a sequential decode.
fn stream_failed(err: io::Error) -> SandboxError {
    SandboxError::Guest(GuestError::StreamFailed(err.to_string()))
}

/// After the last part the source must end; this is where the download's digest is checked.
fn read_end(reader: &mut Box<dyn Read + Send>) -> io::Result<()> {
    match reader.read(&mut [0u8; 1])? {
        0 => Ok(()),
        _ => Err(io::Error::other("the archive is longer than its parts")),
    }
}

/// A decoder's refusal of part `index` (of `count`), saying which part: a part list that does not
/// match the frames shows as a part that ends or starts inside one.
fn in_part(err: SandboxError, index: usize, count: usize) -> SandboxError {
    match err {
        SandboxError::Guest(GuestError::CorruptStream(why)) => {
            SandboxError::Guest(GuestError::CorruptStream(format!("{why} (in part {} of {count})", index + 1)))
        }
        other => other,
    }
}

/// One part's compressed bytes, as its decoder reads them.
struct PartSource {
    bytes: Vec<u8>,
    at: usize,
}

impl ArchiveSource for PartSource {
    fn next_chunk(&mut self, max: usize) -> io::Result<Vec<u8>> {
        let end = self.bytes.len().min(self.at + max);
        let chunk = self.bytes[self.at..end].to_vec();
        self.at = end;
        Ok(chunk)
    }
}

/// The guest's `archive-io.write` for one part's decompressed output.
struct PartSink(SyncSender<Message>);

impl Write for PartSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.send(Message::Bytes(buf.to_vec())).map_err(|_| io::Error::other("the archive reader stopped"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The parts' decompressed bytes in archive order, as the parser reads them: each decoder's chunks
/// are handed to the parser as they are. A part whose decoder failed ends the stream with an error,
/// and the decoder's own error is kept for the report.
struct InOrder {
    receivers: std::vec::IntoIter<Receiver<Message>>,
    current: Option<Receiver<Message>>,
    /// What is left of a chunk larger than the parser asked for.
    rest: Vec<u8>,
    failure: Arc<Mutex<Option<SandboxError>>>,
}

impl InOrder {
    fn new(receivers: Vec<Receiver<Message>>, failure: Arc<Mutex<Option<SandboxError>>>) -> Self {
        Self { receivers: receivers.into_iter(), current: None, rest: Vec::new(), failure }
    }

    /// The next chunk of output, waiting for it; `None` at the end of every part.
    fn next_message(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            let Some(receiver) = &self.current else {
                match self.receivers.next() {
                    Some(next) => {
                        self.current = Some(next);
                        continue;
                    }
                    None => return Ok(None),
                }
            };
            match receiver.recv() {
                Ok(Message::Bytes(bytes)) if bytes.is_empty() => {}
                Ok(Message::Bytes(bytes)) => return Ok(Some(bytes)),
                Ok(Message::Done(Ok(_))) => self.current = None,
                Ok(Message::Done(Err(err))) => {
                    let message = err.to_string();
                    self.failure.lock().expect("failure lock").get_or_insert(err);
                    return Err(io::Error::other(message));
                }
                Err(_) => return Err(io::Error::other("a decoding worker stopped without a result")),
            }
        }
    }
}

impl ArchiveSource for InOrder {
    fn next_chunk(&mut self, max: usize) -> io::Result<Vec<u8>> {
        let mut chunk = if self.rest.is_empty() {
            match self.next_message()? {
                Some(chunk) => chunk,
                None => return Ok(Vec::new()),
            }
        } else {
            std::mem::take(&mut self.rest)
        };
        if chunk.len() > max {
            self.rest = chunk.split_off(max);
        }
        Ok(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_order(parts: Vec<Vec<Message>>) -> (InOrder, Arc<Mutex<Option<SandboxError>>>) {
        let receivers: Vec<_> = parts
            .into_iter()
            .map(|messages| {
                let (sender, receiver) = sync_channel(messages.len());
                for message in messages {
                    sender.send(message).unwrap();
                }
                receiver
            })
            .collect();
        let failure: Arc<Mutex<Option<SandboxError>>> = Arc::default();
        (InOrder::new(receivers, failure.clone()), failure)
    }

    /// The parts' chunks come out whole and in part order; one larger than a read is split.
    #[test]
    fn reads_parts_in_order() {
        let bytes = |b: &[u8]| Message::Bytes(b.to_vec());
        let (mut reader, failure) = in_order(vec![
            vec![bytes(b"ab"), bytes(b"cdefg"), Message::Done(Ok(7))],
            vec![bytes(b""), Message::Done(Ok(0))],
            vec![bytes(b"hij"), Message::Done(Ok(3))],
        ]);
        let chunks: Vec<Vec<u8>> = std::iter::from_fn(|| Some(reader.next_chunk(3).unwrap()).filter(|c| !c.is_empty())).collect();
        assert_eq!(chunks, [&b"ab"[..], b"cde", b"fg", b"hij"]);
        assert!(reader.next_chunk(3).unwrap().is_empty(), "the end stays the end");
        assert!(failure.lock().unwrap().is_none());
    }

    /// A failed part ends the stream with its error, after the bytes before it, and keeps the error.
    #[test]
    fn a_failed_part_ends_the_stream() {
        let corrupt = SandboxError::Guest(GuestError::CorruptStream("zstd: Data corruption detected".into()));
        let (mut reader, failure) =
            in_order(vec![vec![Message::Bytes(b"ok".to_vec()), Message::Done(Ok(2))], vec![Message::Done(Err(corrupt))], vec![]]);
        assert_eq!(reader.next_chunk(16).unwrap(), b"ok");
        assert_eq!(reader.next_chunk(16).unwrap_err().to_string(), "corrupt archive: zstd: Data corruption detected");
        assert!(matches!(failure.lock().unwrap().as_ref(), Some(SandboxError::Guest(GuestError::CorruptStream(_)))));
    }

    /// A part must be as long as the manifest says, and the archive must end after the last.
    #[test]
    fn parts_are_read_whole() {
        let mut reader: Box<dyn Read + Send> = Box::new(&b"0123456789"[..]);
        assert_eq!(read_part(&mut reader, 4).unwrap(), b"0123");
        assert_eq!(read_part(&mut reader, 5).unwrap(), b"45678");
        assert_eq!(read_end(&mut reader).unwrap_err().to_string(), "the archive is longer than its parts");
        read_end(&mut reader).unwrap();
        let mut reader: Box<dyn Read + Send> = Box::new(&b"0123"[..]);
        assert_eq!(read_part(&mut reader, 6).unwrap_err().to_string(), "the archive ends 2 bytes before its last part does");
    }

    #[test]
    fn applies_to_compressed_archives_of_several_small_parts() {
        assert!(applies(Compression::Zstd, &[10, 20], 2));
        assert!(applies(Compression::Gzip, &[10, 20], 4));
        assert!(!applies(Compression::None, &[10, 20], 2));
        assert!(!applies(Compression::Zstd, &[10], 2));
        assert!(!applies(Compression::Zstd, &[10, 20], 1));
        assert!(!applies(Compression::Zstd, &[10, MAX_PART_BYTES + 1], 2));
    }
}
