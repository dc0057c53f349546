//! The S3 backend: object names under a key prefix in one bucket. Its leftovers are the incomplete
//! multipart uploads under the prefix (ListMultipartUploads); a server that cannot list them (s3s-fs
//! answers 501 Not Implemented) makes the listing [`LeftoverListing::Unlisted`] with what to do instead.

use std::io::{Read, Write};
use std::sync::Arc;

use crate::store::s3::download::{DownloadConfig, RangedReader};
use crate::store::s3::request::PublishOptions;
use crate::store::s3::upload::{MultipartWriter, UploadConfig};
use crate::store::s3::{Bucket, Credentials, S3Client, S3ErrorKind};
use crate::store::{
    BlobStore, Leftover, LeftoverKind, LeftoverListing, ObjectInfo, PutOptions, ResumableUploads, S3Options, StoreError, StoredPart, Upload,
};

/// A bucket and a prefix (empty, or ending with `/`).
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Arc<S3Client>,
    anonymous: bool,
    prefix: String,
    upload: UploadConfig,
    download: DownloadConfig,
    publish: PublishOptions,
}

impl S3Store {
    /// A store in `bucket` under `prefix`; requests are unsigned (read-only) without `credentials`.
    pub fn new(bucket: Bucket, prefix: &str, credentials: Option<Credentials>, options: &S3Options) -> Self {
        let prefix = prefix.trim_matches('/');
        let prefix = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
        let anonymous = credentials.is_none();
        let metadata = options.publish.clone();
        let client = Arc::new(S3Client::new(bucket, credentials, &options.transport));
        Self { client, anonymous, prefix, upload: options.upload, download: options.download, publish: metadata }
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
}

struct S3Upload {
    writer: MultipartWriter,
    client: Arc<S3Client>,
    key: String,
    /// A random id stored in the object's metadata, to recognize our own object afterwards.
    writer_id: String,
    /// Whether this is a first-writer-wins write, checked after completion.
    conditional: bool,
}

/// The metadata name of the writer id.
const WRITER_ID: &str = "s3cache-writer";

impl Write for S3Upload {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writer.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.writer.flush()
    }
}

impl Upload for S3Upload {
    /// Completes the upload, then checks that the visible object is ours: some S3-compatible servers
    /// ignore `If-None-Match`, so a concurrent saver's object may have replaced ours (or ours theirs).
    /// The check compares a random writer id in the object's metadata, which every server returns
    /// as it was sent (ETags differ between PUT, multipart completion and HEAD on some servers).
    /// Unconditional writes (overwrites, last-used markers) have no race to lose and are not checked.
    fn finish(self: Box<Self>) -> Result<u64, StoreError> {
        let key = self.key.clone();
        let size = self.writer.finish().map_err(|e| match e.kind {
            S3ErrorKind::PreconditionFailed => StoreError::AlreadyExists(key),
            _ => StoreError::S3(e),
        })?;
        if self.conditional {
            check_writer(&self.client, &self.key, &self.writer_id)?;
        }
        Ok(size)
    }

    fn abort_handle(&self) -> Option<Box<dyn FnOnce() + Send>> {
        Some(Box::new(self.writer.abort_handle()))
    }
}

/// Fails with [`StoreError::AlreadyExists`] unless the object visible at `key` was written by
/// `writer_id`: some S3-compatible servers ignore `If-None-Match`, so a concurrent writer's object may
/// have replaced ours (or ours theirs). The random writer id in the object's metadata comes back as
/// it was sent on every server (ETags differ between PUT, multipart completion and HEAD on some).
fn check_writer(client: &S3Client, key: &str, writer_id: &str) -> Result<(), StoreError> {
    let visible = client.head_object(key)?;
    let visible_writer = visible.as_ref().and_then(|head| head.metadata.iter().find(|(k, _)| k == WRITER_ID)).map(|(_, v)| v.as_str());
    if visible_writer != Some(writer_id) {
        return Err(StoreError::AlreadyExists(key.to_owned()));
    }
    Ok(())
}

impl S3Store {
    /// A new random writer id, and the publish options of a new object carrying it.
    fn publish_with_writer_id(&self) -> (String, PublishOptions) {
        let writer_id = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        let mut publish = self.publish.clone();
        publish.metadata.push(("s3cache-format".to_owned(), s3cache_format()));
        publish.metadata.push((WRITER_ID.to_owned(), writer_id.clone()));
        (writer_id, publish)
    }
}

impl ResumableUploads for S3Store {
    fn start(&self, name: &str) -> Result<(String, String), StoreError> {
        if let Some(reason) = self.read_only() {
            return Err(StoreError::ReadOnly(reason));
        }
        let (writer_id, publish) = self.publish_with_writer_id();
        Ok((self.client.create_multipart_upload(&self.key(name), &publish)?, writer_id))
    }

    fn put_part(&self, name: &str, upload_id: &str, number: u32, length: u64, body: &mut dyn Read) -> Result<String, StoreError> {
        Ok(self.client.upload_part_stream(&self.key(name), upload_id, number, length, body)?)
    }

    fn parts(&self, name: &str, upload_id: &str) -> Result<Vec<StoredPart>, StoreError> {
        let parts = self.client.list_parts(&self.key(name), upload_id)?;
        Ok(parts.into_iter().map(|p| StoredPart { number: p.part_number, size: p.size, etag: p.etag }).collect())
    }

    fn complete(&self, name: &str, upload_id: &str, writer_id: &str, parts: &[(u32, String)], size: u64) -> Result<(), StoreError> {
        let key = self.key(name);
        match self.client.complete_multipart_upload(&key, upload_id, parts, true, size) {
            Err(err) if err.kind == S3ErrorKind::PreconditionFailed => return Err(StoreError::AlreadyExists(key)),
            result => result?,
        }
        check_writer(&self.client, &key, writer_id)
    }

    fn abort(&self, name: &str, upload_id: &str) -> Result<(), StoreError> {
        match self.client.abort_multipart_upload(&self.key(name), upload_id) {
            Err(err) if err.kind == S3ErrorKind::NotFound => Ok(()),
            result => Ok(result?),
        }
    }
}

impl BlobStore for S3Store {
    fn resumable(&self) -> Option<&dyn ResumableUploads> {
        Some(self)
    }

    fn reporting_to(&self, reporter: &crate::report::Reporter) -> Option<Arc<dyn BlobStore>> {
        Some(Arc::new(Self { client: Arc::new(self.client.reporting_to(reporter)), ..self.clone() }))
    }

    fn location(&self) -> String {
        let bucket = self.client.bucket();
        if bucket.name.is_empty() {
            return format!("{}://{}/{}", bucket.endpoint.scheme, bucket.endpoint.authority, self.prefix);
        }
        format!("s3://{}/{}", bucket.name, self.prefix)
    }

    fn read_only(&self) -> Option<&'static str> {
        self.anonymous.then_some(if self.client.bucket().name.is_empty() { "a public URL" } else { "anonymous mode" })
    }

    fn can_list(&self) -> bool {
        !self.client.bucket().name.is_empty()
    }

    fn name_prefix(&self) -> &str {
        &self.prefix
    }

    fn head(&self, name: &str) -> Result<Option<ObjectInfo>, StoreError> {
        Ok(self.client.head_object(&self.key(name))?.map(|head| ObjectInfo {
            name: name.to_owned(),
            size: head.size,
            modified: head.modified,
        }))
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let objects = self.client.list_objects(&self.key(prefix))?;
        Ok(objects
            .into_iter()
            .filter_map(|o| {
                let name = o.key.strip_prefix(&self.prefix)?.to_owned();
                Some(ObjectInfo { name, size: o.size, modified: parse_listed_time(&o.last_modified) })
            })
            .collect())
    }

    fn read(&self, object: &ObjectInfo, start: u64, end: u64) -> Result<Box<dyn Read + Send>, StoreError> {
        Ok(Box::new(RangedReader::start(self.client.clone(), &self.key(&object.name), start, end, self.download)))
    }

    fn put(&self, name: &str, options: PutOptions) -> Result<Box<dyn Upload>, StoreError> {
        if let Some(reason) = self.read_only() {
            return Err(StoreError::ReadOnly(reason));
        }
        let config = UploadConfig { if_none_match: options.if_none_match, ..self.upload };
        let (writer_id, publish) = self.publish_with_writer_id();
        let key = self.key(name);
        let writer = MultipartWriter::new(self.client.clone(), &key, publish, config);
        Ok(Box::new(S3Upload { writer, client: self.client.clone(), key, writer_id, conditional: options.if_none_match }))
    }

    fn delete(&self, name: &str) -> Result<(), StoreError> {
        Ok(self.client.delete_object(&self.key(name))?)
    }

    fn leftovers(&self) -> Result<LeftoverListing, StoreError> {
        if !self.can_list() {
            return Ok(LeftoverListing::Unlisted("a public URL cannot list incomplete uploads".into()));
        }
        let uploads = match self.client.list_multipart_uploads(&self.prefix) {
            Ok(uploads) => uploads,
            Err(err) if err.status == Some(501) || err.code == "NotImplemented" => {
                let why = format!(
                    "the server cannot list incomplete uploads ({err}); give the bucket a lifecycle rule that aborts incomplete multipart uploads after a day"
                );
                return Ok(LeftoverListing::Unlisted(why));
            }
            Err(err) => return Err(err.into()),
        };
        let leftovers = uploads
            .into_iter()
            .filter_map(|upload| {
                let name = upload.key.strip_prefix(&self.prefix)?.to_owned();
                // The size is for the report only: a server that cannot list parts leaves it unknown.
                let bytes = self.client.uploaded_bytes(&upload.key, &upload.upload_id).ok();
                // A start the server does not give (or garbles) counts as now: never old enough to abort.
                let started =
                    humantime::parse_rfc3339_weak(upload.initiated.trim_end_matches('Z')).unwrap_or_else(|_| std::time::SystemTime::now());
                Some(Leftover { kind: LeftoverKind::Upload, name: Some(name), id: upload.upload_id, bytes, started })
            })
            .collect();
        Ok(LeftoverListing::Listed(leftovers))
    }

    fn remove_leftover(&self, leftover: &Leftover) -> Result<(), StoreError> {
        let Some(name) = leftover.name.as_deref().filter(|_| leftover.kind == LeftoverKind::Upload) else { return Ok(()) };
        match self.client.abort_multipart_upload(&self.key(name), &leftover.id) {
            Err(err) if err.kind == S3ErrorKind::NotFound => Ok(()),
            result => Ok(result?),
        }
    }
}

/// A listing's `LastModified` (RFC 3339, `2026-11-22T01:04:42.000Z`); the epoch when a server sends
/// something else, so that such an object sorts as oldest rather than failing the listing.
fn parse_listed_time(text: &str) -> std::time::SystemTime {
    humantime::parse_rfc3339_weak(text.trim_end_matches('Z')).unwrap_or(std::time::UNIX_EPOCH)
}

fn s3cache_format() -> String {
    // The compression is in the object's name and manifest; this names the layout version only.
    format!("s3cache/{}", crate::ARCHIVE_FORMAT)
}
