//! Parallel ranged downloads, reassembled in order into one `Read`.
//!
//! Worker threads fetch fixed-size byte ranges (aligned with the upload's default part size) and hand
//! them to the reader, which yields them in order as soon as the next one is there. Workers stay at
//! most `concurrency` ranges ahead of the reader, so memory is bounded by about
//! `(concurrency + 1) × range size` whatever the object's size. Each range has its own retries and
//! stall timeout; a failure that retries cannot fix ends the stream with an error, never with
//! silently missing bytes.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use super::client::{S3Client, S3Error};
use super::upload::UploadConfig;

/// Range size and parallelism of downloads.
#[derive(Debug, Clone, Copy)]
pub struct DownloadConfig {
    /// Bytes per ranged GET.
    pub range_size: u64,
    /// Ranges in flight at once.
    pub concurrency: usize,
}

impl Default for DownloadConfig {
    fn default() -> Self {
        Self { range_size: UploadConfig::DEFAULT_PART_SIZE as u64, concurrency: UploadConfig::DEFAULT_CONCURRENCY }
    }
}

#[derive(Default)]
struct Shared {
    /// Fetched ranges not yet read, by index.
    ready: BTreeMap<u64, Vec<u8>>,
    /// The next range index a worker should fetch.
    next_to_fetch: u64,
    /// The range index the reader waits for.
    next_to_read: u64,
    failure: Option<S3Error>,
}

struct State {
    shared: Mutex<Shared>,
    changed: Condvar,
    cancelled: AtomicBool,
}

/// An object being downloaded in parallel ranges.
pub struct RangedReader {
    state: Arc<State>,
    ranges: u64,
    current: io::Cursor<Vec<u8>>,
    workers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for RangedReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangedReader").field("ranges", &self.ranges).finish_non_exhaustive()
    }
}

impl RangedReader {
    /// Starts downloading bytes `start..end` of `key`.
    pub fn start(client: Arc<S3Client>, key: &str, start: u64, end: u64, config: DownloadConfig) -> Self {
        let range_size = config.range_size.max(1 << 20);
        let span = Span { start, end: end.max(start), range_size };
        let ranges = (span.end - span.start).div_ceil(range_size);
        // Ranges fetched ahead of the reader: enough to keep every worker busy, no more.
        let window = (config.concurrency as u64).max(1);
        let state = Arc::new(State { shared: Mutex::new(Shared::default()), changed: Condvar::new(), cancelled: AtomicBool::new(false) });
        let workers = (0..config.concurrency.clamp(1, ranges.max(1) as usize))
            .map(|_| {
                let (client, key, state) = (client.clone(), key.to_owned(), state.clone());
                std::thread::spawn(move || fetch_ranges(&client, &key, span, ranges, window, &state))
            })
            .collect();
        Self { state, ranges, current: io::Cursor::new(Vec::new()), workers }
    }
}

/// The bytes to fetch, cut into ranges of `range_size`.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u64,
    end: u64,
    range_size: u64,
}

fn fetch_ranges(client: &S3Client, key: &str, span: Span, ranges: u64, window: u64, state: &State) {
    loop {
        let index = {
            let mut shared = state.shared.lock().expect("download lock");
            loop {
                if state.cancelled.load(Ordering::Relaxed) || shared.failure.is_some() || shared.next_to_fetch >= ranges {
                    return;
                }
                if shared.next_to_fetch < shared.next_to_read + window {
                    break;
                }
                shared = state.changed.wait(shared).expect("download lock");
            }
            shared.next_to_fetch += 1;
            shared.next_to_fetch - 1
        };
        let start = span.start + index * span.range_size;
        let end = (start + span.range_size).min(span.end) - 1;
        let result = client.get_range(key, start, end);
        let mut shared = state.shared.lock().expect("download lock");
        match result {
            Ok(bytes) => {
                shared.ready.insert(index, bytes);
            }
            Err(err) => {
                shared.failure.get_or_insert(err);
            }
        }
        state.changed.notify_all();
    }
}

impl Read for RangedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = self.current.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            let mut shared = self.state.shared.lock().expect("download lock");
            if shared.next_to_read >= self.ranges {
                return Ok(0);
            }
            loop {
                let next = shared.next_to_read;
                if let Some(bytes) = shared.ready.remove(&next) {
                    shared.next_to_read += 1;
                    self.current = io::Cursor::new(bytes);
                    self.state.changed.notify_all();
                    break;
                }
                if let Some(err) = &shared.failure {
                    return Err(io::Error::other(err.clone()));
                }
                shared = self.state.changed.wait(shared).expect("download lock");
            }
        }
    }
}

impl Drop for RangedReader {
    fn drop(&mut self) {
        self.state.cancelled.store(true, Ordering::Relaxed);
        self.state.changed.notify_all();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}
