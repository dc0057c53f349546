//! Where cache archives live. One trait, two backends: S3 (any S3-compatible service) and a local
//! directory, the default when no store is configured so that the tool works with no server.
//!
//! Stores deal in object names relative to their own prefix; the cache engine decides the names.
//! Uploads are streams: a [`Upload`] is written to while the guest compresses, and only
//! [`Upload::finish`] makes the object visible. Dropping an unfinished upload discards it, and so
//! does its [`Upload::abort_handle`], from another thread (an interrupt's clean-up).
//!
//! A writer that could not clean up (killed with SIGKILL, a lost runner) leaves [`Leftover`]s: an
//! incomplete multipart upload, billed until aborted, or a temporary file. [`BlobStore::leftovers`]
//! finds them where the store can list them, and [`BlobStore::remove_leftover`] removes one.

mod file;
pub(crate) mod s3;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::SystemTime;

pub use file::FileStore;
pub use s3::S3Store;

pub use crate::store::s3::client::TransportConfig;
pub use crate::store::s3::download::DownloadConfig;
pub use crate::store::s3::upload::UploadConfig;
use crate::store::s3::{Bucket, Endpoint};
pub use crate::store::s3::{Credentials, PublishOptions, S3Error, S3ErrorKind};

/// An object in a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Name relative to the store's prefix.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written, by the store's clock.
    pub modified: SystemTime,
}

/// What a [`Leftover`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeftoverKind {
    /// An S3 multipart upload that was neither completed nor aborted: its parts are stored and billed.
    Upload,
    /// A `file://` store's temporary file (`.tmp-*`) of a write that never finished.
    TempFile,
}

/// Something a writer that could not clean up left in a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    /// An upload or a temporary file.
    pub kind: LeftoverKind,
    /// The object it was to become, relative to the store prefix; `None` for a temporary file,
    /// whose name does not say.
    pub name: Option<String>,
    /// The upload id, or the temporary file's name in the store directory.
    pub id: String,
    /// The bytes it holds (the parts uploaded, the file's size), when the store says.
    pub bytes: Option<u64>,
    /// When it was started (an upload), or last written to (a file), by the store's clock.
    pub started: SystemTime,
}

/// The leftovers of a store, or why it cannot list them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeftoverListing {
    /// Every leftover under the store prefix (nested stores' included: callers classify names).
    Listed(Vec<Leftover>),
    /// The store or its server cannot list them; the text says why and what to do instead.
    Unlisted(String),
}

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The S3 server refused or failed the request (after retries).
    #[error(transparent)]
    S3(#[from] S3Error),
    /// A local file could not be read or written (the file store, or a stream that was cut).
    #[error("{path}: {source}")]
    Io {
        /// The file or object concerned.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A conditional write ([`PutOptions::if_none_match`]) found the name taken: another writer won.
    #[error("an object named {0:?} already exists")]
    AlreadyExists(String),
    /// The store cannot be written to, and why ([`BlobStore::read_only`]).
    #[error("the store is read-only ({0}); saving needs credentials and an s3:// store")]
    ReadOnly(&'static str),
}

impl StoreError {
    /// Whether the failure is about credentials or permissions (the message then says so).
    pub fn is_access_denied(&self) -> bool {
        matches!(self, StoreError::S3(e) if e.kind == S3ErrorKind::AccessDenied)
    }
}

/// A stream being written to a store.
pub trait Upload: Write + Send {
    /// Makes the object visible and returns its size.
    fn finish(self: Box<Self>) -> Result<u64, StoreError>;
    /// A call that discards this upload from another thread, at once: aborts a multipart upload
    /// without waiting for its parts in flight, removes a temporary file. The upload fails from then
    /// on; after `finish` succeeded the call does nothing. `None` (the default): dropping the upload
    /// is the only way to discard it.
    fn abort_handle(&self) -> Option<Box<dyn FnOnce() + Send>> {
        None
    }
}

/// Options for writing objects.
#[derive(Debug, Clone, Copy, Default)]
pub struct PutOptions {
    /// Only create the object when the name is free.
    pub if_none_match: bool,
}

/// A place to keep cache archives.
pub trait BlobStore: Send + Sync + std::fmt::Debug {
    /// Where this store is, for messages (`s3://bucket/prefix`, `file:///dir`).
    fn location(&self) -> String;
    /// Why writing is impossible (anonymous mode, a public URL), or `None` when it is allowed.
    fn read_only(&self) -> Option<&'static str> {
        None
    }
    /// Whether [`BlobStore::list`] works (a public URL serves objects by name only).
    fn can_list(&self) -> bool {
        true
    }
    /// The object's size and time, or `None` when it does not exist.
    fn head(&self, name: &str) -> Result<Option<ObjectInfo>, StoreError>;
    /// Every object whose name starts with `prefix`.
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError>;
    /// Bytes `start..end` of an object found by `head` or `list`, as a stream. A stream that ends
    /// early or is cut fails with an error; it never just stops.
    fn read(&self, object: &ObjectInfo, start: u64, end: u64) -> Result<Box<dyn Read + Send>, StoreError>;
    /// Starts writing an object.
    fn put(&self, name: &str, options: PutOptions) -> Result<Box<dyn Upload>, StoreError>;
    /// Deletes an object; deleting a missing one succeeds.
    fn delete(&self, name: &str) -> Result<(), StoreError>;
    /// What the store puts before every object name (S3: the store URL's prefix, ending with `/`;
    /// a directory: nothing). It counts towards [`MAX_OBJECT_KEY_BYTES`].
    fn name_prefix(&self) -> &str {
        ""
    }
    /// The incomplete uploads and temporary files under the store prefix. The default: a store that
    /// keeps none it could list.
    fn leftovers(&self) -> Result<LeftoverListing, StoreError> {
        Ok(LeftoverListing::Unlisted("this store does not list unfinished writes".into()))
    }
    /// Removes a leftover found by [`BlobStore::leftovers`] (aborts the upload, deletes the file);
    /// removing one that is gone succeeds.
    fn remove_leftover(&self, leftover: &Leftover) -> Result<(), StoreError> {
        let _ = leftover;
        Ok(())
    }
    /// The resumable multipart uploads of this store, for a server that receives one object in many
    /// requests (`s3cache serve`); `None` (the default) for stores without them.
    fn resumable(&self) -> Option<&dyn ResumableUploads> {
        None
    }
    /// This store with its requests counted and reported by `reporter`, the reporter of one operation
    /// ([`crate::CacheContext::with_reporter`]); `None` (the default): the store sends nothing to report.
    fn reporting_to(&self, reporter: &crate::report::Reporter) -> Option<std::sync::Arc<dyn BlobStore>> {
        let _ = reporter;
        None
    }
}

/// An uploaded part of a [`ResumableUploads`] upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPart {
    /// Its number, 1-based.
    pub number: u32,
    /// Its size in bytes.
    pub size: u64,
    /// The tag completing the upload names it by.
    pub etag: String,
}

/// Multipart uploads that outlive the process that started them: every call names the upload by its
/// id, so that each part can come from a different request, or a different server.
pub trait ResumableUploads: Send + Sync {
    /// Starts an upload that will become the object `name`; returns its id and a random writer id
    /// that completing it checks.
    fn start(&self, name: &str) -> Result<(String, String), StoreError>;
    /// Stores part `number` (1-based) of exactly `length` bytes from `body`, streamed and not retried
    /// (the body is read once); storing a number again replaces that part. Returns the part's tag.
    fn put_part(&self, name: &str, upload_id: &str, number: u32, length: u64, body: &mut dyn Read) -> Result<String, StoreError>;
    /// The parts stored so far, by number.
    fn parts(&self, name: &str, upload_id: &str) -> Result<Vec<StoredPart>, StoreError>;
    /// Makes the object visible from `parts` (number and tag, ascending), only if the name is free:
    /// [`StoreError::AlreadyExists`] when another writer's object is there (checked by `writer_id`).
    fn complete(&self, name: &str, upload_id: &str, writer_id: &str, parts: &[(u32, String)], size: u64) -> Result<(), StoreError>;
    /// Discards an upload and its parts; discarding one that is gone succeeds.
    fn abort(&self, name: &str, upload_id: &str) -> Result<(), StoreError>;
}

/// S3's limit on an object key, in bytes of UTF-8, the store prefix included. Keys are checked against
/// it before any request, whatever the store, so that a key valid in one store is valid in the next.
pub const MAX_OBJECT_KEY_BYTES: usize = 1024;

/// How to reach an `s3://` store; ignored by `file://` stores.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    /// `--endpoint`, `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`: `http://host[:port]` or
    /// `https://host[:port]` (without a scheme, opening the store fails); AWS itself when unset.
    pub endpoint: Option<String>,
    /// `--region`, `AWS_REGION` or `AWS_DEFAULT_REGION`; `us-east-1` when unset.
    pub region: Option<String>,
    /// Force path-style addressing (automatic for IP and localhost endpoints).
    pub path_style: bool,
    /// Use AWS's dual-stack (IPv4 + IPv6) endpoint; only when no endpoint is given.
    pub dualstack: bool,
    /// Use S3 Transfer Acceleration; only when no endpoint is given.
    pub accelerate: bool,
    /// Send requests unsigned, for public buckets; the store is then read-only.
    pub anonymous: bool,
    /// The keys to sign with; `None` (and not anonymous) makes opening an `s3://` store an error.
    pub credentials: Option<Credentials>,
    /// Timeouts, retries and the operation deadline.
    pub transport: TransportConfig,
    /// Multipart part size and upload concurrency.
    pub upload: UploadConfig,
    /// Ranged-read size and download concurrency.
    pub download: DownloadConfig,
    /// ACL, encryption, storage class, tags and metadata of new objects.
    pub publish: PublishOptions,
}

/// A store URL that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreUrlError {
    /// Not a scheme s3cache knows.
    #[error("store {0:?}: expected s3://bucket[/prefix], https://public.host/prefix or file:///absolute/dir")]
    Unsupported(String),
    /// A known scheme, but the URL (or the endpoint) is malformed; the second field says how.
    #[error("store {0:?}: {1}")]
    Invalid(String, String),
    /// An `s3://` store with no credentials and not anonymous.
    #[error(
        "store {0:?} needs credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile, web identity, or use --anonymous for a public bucket"
    )]
    NoCredentials(String),
}

/// Opens the store at `url`.
pub fn open(url: &str, options: S3Options) -> Result<Box<dyn BlobStore>, StoreUrlError> {
    if let Some(path) = url.strip_prefix("file://") {
        if !path.starts_with('/') {
            return Err(StoreUrlError::Invalid(url.into(), "a file:// store needs an absolute path (file:///dir)".into()));
        }
        return Ok(Box::new(FileStore::new(PathBuf::from(path))));
    }
    let region = options.region.clone().unwrap_or_else(|| "us-east-1".into());
    if url.starts_with("http://") || url.starts_with("https://") {
        // A public URL: plain unsigned GET/HEAD under a base path, for read-only consumers.
        let (scheme, rest) = url.split_once("://").expect("checked");
        let (authority, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let endpoint =
            Endpoint::parse(&format!("{scheme}://{authority}")).map_err(|e| StoreUrlError::Invalid(url.into(), e.to_string()))?;
        let bucket = Bucket { endpoint, name: String::new(), region, path_style: true };
        return Ok(Box::new(S3Store::new(bucket, prefix, None, &options)));
    }
    let Some(rest) = url.strip_prefix("s3://") else {
        return Err(StoreUrlError::Unsupported(url.into()));
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(StoreUrlError::Invalid(url.into(), "the bucket name is empty".into()));
    }
    let endpoint = match &options.endpoint {
        Some(endpoint) => Endpoint::parse(endpoint).map_err(|e| StoreUrlError::Invalid(url.into(), e.to_string()))?,
        None if options.accelerate => Endpoint::accelerate(options.dualstack),
        None => Endpoint::aws(&region, options.dualstack),
    };
    let credentials =
        if options.anonymous { None } else { Some(options.credentials.clone().ok_or_else(|| StoreUrlError::NoCredentials(url.into()))?) };
    let path_style = (options.path_style || endpoint.needs_path_style()) && !options.accelerate;
    let bucket = Bucket { endpoint, name: bucket.to_owned(), region, path_style };
    Ok(Box::new(S3Store::new(bucket, prefix, credentials, &options)))
}

/// An upload that stops taking data once the operation is cancelled is still an upload.
impl Upload for crate::cancel::CancelWriter<Box<dyn Upload>> {
    fn finish(self: Box<Self>) -> Result<u64, StoreError> {
        self.inner.finish()
    }

    fn abort_handle(&self) -> Option<Box<dyn FnOnce() + Send>> {
        self.inner.abort_handle()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> S3Options {
        S3Options {
            credentials: Some(Credentials { access_key_id: "AK".into(), secret_access_key: "SK".into(), session_token: None }),
            ..S3Options::default()
        }
    }

    /// Store URLs pick the backend; bad ones say what is expected.
    #[test]
    fn opens_store_urls() {
        assert_eq!(open("file:///tmp/x", options()).unwrap().location(), "file:///tmp/x");
        assert_eq!(open("s3://bucket/some/prefix", options()).unwrap().location(), "s3://bucket/some/prefix/");
        assert!(matches!(open("file://rel", options()), Err(StoreUrlError::Invalid(..))));
        assert!(matches!(open("gs://b", options()), Err(StoreUrlError::Unsupported(..))));
        assert!(matches!(open("s3://b", S3Options::default()), Err(StoreUrlError::NoCredentials(..))));
        let public = open("https://cdn.example.com/caches/ci", S3Options::default()).unwrap();
        assert_eq!(public.location(), "https://cdn.example.com/caches/ci/");
        assert!(public.read_only().is_some());
        let anonymous = open("s3://b", S3Options { anonymous: true, ..S3Options::default() }).unwrap();
        assert!(anonymous.read_only().is_some());
    }

    /// An endpoint without a scheme makes opening an `s3://` store fail with the reason; `file://`
    /// stores do not use the endpoint.
    #[test]
    fn refuses_an_endpoint_without_a_scheme() {
        let bare = || S3Options { endpoint: Some("127.0.0.1:9000".into()), ..options() };
        let err = open("s3://b", bare()).unwrap_err();
        assert!(
            matches!(&err, StoreUrlError::Invalid(url, why) if url == "s3://b" && why.contains("has no scheme: write http://127.0.0.1:9000")),
            "{err}"
        );
        assert!(open("file:///tmp/x", bare()).is_ok());
        assert!(open("s3://b", S3Options { endpoint: Some("http://127.0.0.1:9000".into()), ..options() }).is_ok());
    }
}
