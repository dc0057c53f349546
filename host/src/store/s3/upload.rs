//! Streaming uploads: a `Write` that cuts the stream into parts and uploads several at once.
//!
//! Small archives (below one part) go up as a single PutObject when the writer is finished, so the
//! object appears whole or not at all. Larger ones become a multipart upload whose parts are sent by
//! worker threads while the guest keeps compressing; memory stays bounded at about
//! `part_size × (concurrency + 2)`. Any failure aborts the upload, so no part is left behind and
//! nothing becomes visible under the key. An interrupt aborts it from another thread through
//! [`MultipartWriter::abort_handle`], without waiting for the parts in flight.

use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::client::{S3Client, S3Error};
use super::request::PublishOptions;

/// Part size and parallelism of uploads.
#[derive(Debug, Clone, Copy)]
pub struct UploadConfig {
    /// Bytes per part (S3 requires at least 5 MiB for all but the last).
    pub part_size: usize,
    /// Parts in flight at once.
    pub concurrency: usize,
    /// Only create the object if the key is free (`If-None-Match: *`).
    pub if_none_match: bool,
}

impl Default for UploadConfig {
    fn default() -> Self {
        Self { part_size: Self::DEFAULT_PART_SIZE, concurrency: Self::DEFAULT_CONCURRENCY, if_none_match: false }
    }
}

impl UploadConfig {
    /// Bytes per part by default (`--part-size-mb` 8); downloads use it as their range size.
    pub const DEFAULT_PART_SIZE: usize = 8 << 20;
    /// Parts in flight by default (`--concurrency`); downloads keep as many ranges in flight.
    pub const DEFAULT_CONCURRENCY: usize = 4;
}

type Part = (u32, Vec<u8>);

/// What the writer and its abort handle share: the upload id while the upload is open, and whether
/// the handle has aborted it (then the writer sends nothing more).
#[derive(Debug, Default)]
struct Abortion {
    upload_id: Option<String>,
    aborted: bool,
}

struct InFlight {
    upload_id: String,
    sender: Option<SyncSender<Part>>,
    workers: Vec<JoinHandle<()>>,
    done: Arc<Mutex<Vec<(u32, String)>>>,
    failure: Arc<Mutex<Option<S3Error>>>,
}

/// A streaming upload of one object.
pub struct MultipartWriter {
    client: Arc<S3Client>,
    key: String,
    publish: PublishOptions,
    config: UploadConfig,
    buffer: Vec<u8>,
    in_flight: Option<InFlight>,
    next_part: u32,
    written: u64,
    finished: bool,
    abortion: Arc<Mutex<Abortion>>,
}

impl std::fmt::Debug for MultipartWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MultipartWriter").field("key", &self.key).field("written", &self.written).finish_non_exhaustive()
    }
}

impl MultipartWriter {
    /// Starts an upload of `key`; nothing is sent until a part is full or [`finish`](Self::finish).
    pub fn new(client: Arc<S3Client>, key: &str, publish: PublishOptions, config: UploadConfig) -> Self {
        let config = UploadConfig { part_size: config.part_size.max(5 << 20), concurrency: config.concurrency.max(1), ..config };
        Self {
            client,
            key: key.to_owned(),
            publish,
            config,
            buffer: Vec::with_capacity(config.part_size),
            in_flight: None,
            next_part: 1,
            written: 0,
            finished: false,
            abortion: Arc::default(),
        }
    }

    /// A call that aborts this upload from another thread (an interrupt's clean-up): the multipart
    /// upload, if one was created, is aborted at once, without waiting for the parts in flight, and the
    /// writer fails from then on. After [`finish`](Self::finish) succeeded it does nothing.
    pub fn abort_handle(&self) -> impl FnOnce() + Send + 'static {
        let (client, key, abortion) = (self.client.clone(), self.key.clone(), self.abortion.clone());
        move || {
            let upload_id = {
                let mut abortion = abortion.lock().expect("abortion lock");
                abortion.aborted = true;
                abortion.upload_id.take()
            };
            if let Some(upload_id) = upload_id {
                abort(&client, &key, &upload_id);
            }
        }
    }

    fn aborted(&self) -> bool {
        self.abortion.lock().expect("abortion lock").aborted
    }

    /// Uploads what is left and makes the object visible. Returns the object's size.
    pub fn finish(mut self) -> Result<u64, S3Error> {
        self.finished = true;
        if self.aborted() {
            self.abort_in_flight();
            return Err(aborted_error());
        }
        if self.in_flight.is_none() {
            let body = std::mem::take(&mut self.buffer);
            self.client.put_object(&self.key, &body, &self.publish, self.config.if_none_match)?;
            return Ok(self.written);
        }
        let result = self.complete();
        if result.is_err() {
            self.abort_in_flight();
        }
        result.map(|()| self.written)
    }

    fn complete(&mut self) -> Result<(), S3Error> {
        if !self.buffer.is_empty() {
            let part = std::mem::take(&mut self.buffer);
            self.dispatch(part).map_err(|e| self.failure().unwrap_or_else(|| io_to_s3(e)))?;
        }
        let in_flight = self.in_flight.as_mut().expect("multipart upload started");
        in_flight.sender = None;
        for worker in in_flight.workers.drain(..) {
            let _ = worker.join();
        }
        if let Some(err) = self.failure() {
            return Err(err);
        }
        if self.aborted() {
            return Err(aborted_error());
        }
        let in_flight = self.in_flight.as_ref().expect("multipart upload started");
        let mut parts = in_flight.done.lock().expect("parts lock").clone();
        parts.sort_by_key(|(n, _)| *n);
        self.client.complete_multipart_upload(&self.key, &in_flight.upload_id, &parts, self.config.if_none_match, self.written)?;
        self.in_flight = None;
        self.abortion.lock().expect("abortion lock").upload_id = None;
        Ok(())
    }

    fn failure(&self) -> Option<S3Error> {
        self.in_flight.as_ref().and_then(|f| f.failure.lock().expect("failure lock").clone())
    }

    fn dispatch(&mut self, part: Vec<u8>) -> io::Result<()> {
        if self.in_flight.is_none() {
            if self.aborted() {
                return Err(crate::cancel::Interrupted.into());
            }
            let upload_id = self.client.create_multipart_upload(&self.key, &self.publish).map_err(io::Error::other)?;
            let mut abortion = self.abortion.lock().expect("abortion lock");
            if abortion.aborted {
                // Aborted while the upload was being created: nobody else knows its id.
                drop(abortion);
                abort(&self.client, &self.key, &upload_id);
                return Err(crate::cancel::Interrupted.into());
            }
            abortion.upload_id = Some(upload_id.clone());
            drop(abortion);
            self.in_flight = Some(self.spawn_workers(upload_id));
        }
        if let Some(err) = self.failure() {
            return Err(io::Error::other(err));
        }
        let number = self.next_part;
        self.next_part += 1;
        let sender = self.in_flight.as_ref().and_then(|f| f.sender.as_ref()).expect("workers running");
        sender
            .send((number, part))
            .map_err(|_| io::Error::other(self.failure().map_or("upload workers stopped".to_string(), |e| e.to_string())))
    }

    fn spawn_workers(&self, upload_id: String) -> InFlight {
        // A rendezvous channel: a part is handed over only when a worker is free, so at most
        // `concurrency` parts are in flight plus the one being filled.
        let (sender, receiver) = sync_channel::<Part>(0);
        let receiver = Arc::new(Mutex::new(receiver));
        let done = Arc::new(Mutex::new(Vec::new()));
        let failure = Arc::new(Mutex::new(None));
        let workers = (0..self.config.concurrency)
            .map(|_| {
                let (client, key, upload_id) = (self.client.clone(), self.key.clone(), upload_id.clone());
                let (receiver, done, failure) = (receiver.clone(), done.clone(), failure.clone());
                std::thread::spawn(move || upload_parts(&client, &key, &upload_id, &receiver, &done, &failure))
            })
            .collect();
        InFlight { upload_id, sender: Some(sender), workers, done, failure }
    }

    fn abort_in_flight(&mut self) {
        if let Some(mut in_flight) = self.in_flight.take() {
            in_flight.sender = None;
            // The abort handle took the id when it aborted the upload: its workers end by themselves.
            let Some(upload_id) = self.abortion.lock().expect("abortion lock").upload_id.take() else { return };
            for worker in in_flight.workers.drain(..) {
                let _ = worker.join();
            }
            abort(&self.client, &self.key, &upload_id);
        }
    }
}

fn abort(client: &S3Client, key: &str, upload_id: &str) {
    if let Err(err) = client.abort_multipart_upload(key, upload_id) {
        tracing::warn!(%key, error = %err, "could not abort the multipart upload; `s3cache prune`, `flush` or `clear` removes it later, or a bucket lifecycle rule");
    }
}

fn aborted_error() -> S3Error {
    S3Error::new(super::S3ErrorKind::Other, "CompleteMultipartUpload", None, "Interrupted", "the upload was aborted")
}

fn upload_parts(
    client: &S3Client,
    key: &str,
    upload_id: &str,
    receiver: &Mutex<Receiver<Part>>,
    done: &Mutex<Vec<(u32, String)>>,
    failure: &Mutex<Option<S3Error>>,
) {
    loop {
        let next = receiver.lock().expect("receiver lock").recv();
        let Ok((number, body)) = next else { return };
        if failure.lock().expect("failure lock").is_some() {
            continue; // drain so the writer never blocks on a full channel
        }
        match client.upload_part(key, upload_id, number, &body) {
            Ok(etag) => done.lock().expect("parts lock").push((number, etag)),
            Err(err) => {
                failure.lock().expect("failure lock").get_or_insert(err);
            }
        }
    }
}

fn io_to_s3(err: io::Error) -> S3Error {
    match err.into_inner().map(|e| e.downcast::<S3Error>()) {
        Some(Ok(s3)) => *s3,
        Some(Err(other)) => S3Error::new(super::S3ErrorKind::Other, "UploadPart", None, "Upload", other.to_string()),
        None => S3Error::new(super::S3ErrorKind::Other, "UploadPart", None, "Upload", "upload failed"),
    }
}

impl Write for MultipartWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = self.config.part_size - self.buffer.len();
        let take = room.min(data.len());
        self.buffer.extend_from_slice(&data[..take]);
        self.written += take as u64;
        if self.buffer.len() == self.config.part_size {
            let part = std::mem::replace(&mut self.buffer, Vec::with_capacity(self.config.part_size));
            self.dispatch(part)?;
        }
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for MultipartWriter {
    /// An upload dropped without `finish` (the guest failed, say) is aborted.
    fn drop(&mut self) {
        if !self.finished {
            self.abort_in_flight();
        }
    }
}
