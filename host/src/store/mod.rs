//! Where cache archives live. One trait, two backends: S3 (any S3-compatible service) and a local
//! directory, the default when no store is configured so that the tool works with no server.
//!
//! Stores deal in object names relative to their own prefix; the cache engine decides the names.
//! Uploads are streams: a [`Upload`] is written to while the guest compresses, and only
//! [`Upload::finish`] makes the object visible. Dropping an unfinished upload discards it.

mod file;
mod s3;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::SystemTime;

pub use file::FileStore;
pub use s3::S3Store;

use crate::s3::{Bucket, Credentials, Endpoint, PublishOptions, S3Error, S3ErrorKind};
use crate::s3::client::TransportConfig;
use crate::s3::download::DownloadConfig;
use crate::s3::upload::UploadConfig;

/// An object in a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Name relative to the store's prefix.
    pub name: String,
    pub size: u64,
    /// When it was last written, by the store's clock.
    pub modified: SystemTime,
}

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    S3(#[from] S3Error),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("an object named {0:?} already exists")]
    AlreadyExists(String),
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
}

/// How to reach an `s3://` store; ignored by `file://` stores.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    /// `--endpoint`, `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`; AWS itself when unset.
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
    pub credentials: Option<Credentials>,
    pub transport: TransportConfig,
    pub upload: UploadConfig,
    pub download: DownloadConfig,
    pub publish: PublishOptions,
}

/// A store URL that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreUrlError {
    #[error("store {0:?}: expected s3://bucket[/prefix], https://public.host/prefix or file:///absolute/dir")]
    Unsupported(String),
    #[error("store {0:?}: {1}")]
    Invalid(String, String),
    #[error("store {0:?} needs credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile, web identity, or use --anonymous for a public bucket")]
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
        let endpoint = Endpoint::parse(&format!("{scheme}://{authority}")).map_err(|e| StoreUrlError::Invalid(url.into(), e))?;
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
        Some(endpoint) => Endpoint::parse(endpoint).map_err(|e| StoreUrlError::Invalid(url.into(), e))?,
        None if options.accelerate => Endpoint::accelerate(options.dualstack),
        None => Endpoint::aws(&region, options.dualstack),
    };
    let credentials = if options.anonymous {
        None
    } else {
        Some(options.credentials.clone().ok_or_else(|| StoreUrlError::NoCredentials(url.into()))?)
    };
    let path_style = (options.path_style || endpoint.needs_path_style()) && !options.accelerate;
    let bucket = Bucket { endpoint, name: bucket.to_owned(), region, path_style };
    Ok(Box::new(S3Store::new(bucket, prefix, credentials, &options)))
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
}
