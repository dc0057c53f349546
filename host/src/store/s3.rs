//! The S3 backend: object names under a key prefix in one bucket.

use std::io::{Read, Write};
use std::sync::Arc;

use super::{BlobStore, ObjectInfo, PutOptions, S3Options, StoreError, Upload};
use crate::s3::request::PublishOptions;
use crate::s3::download::{DownloadConfig, RangedReader};
use crate::s3::upload::{MultipartWriter, UploadConfig};
use crate::s3::{Bucket, Credentials, S3Client, S3ErrorKind};

/// A bucket and a prefix (empty, or ending with `/`).
#[derive(Debug)]
pub struct S3Store {
    client: Arc<S3Client>,
    anonymous: bool,
    prefix: String,
    upload: UploadConfig,
    download: DownloadConfig,
    publish: PublishOptions,
}

impl S3Store {
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

struct S3Upload(MultipartWriter);

impl Write for S3Upload {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl Upload for S3Upload {
    fn finish(self: Box<Self>) -> Result<u64, StoreError> {
        self.0.finish().map_err(|e| match e.kind {
            S3ErrorKind::PreconditionFailed => StoreError::AlreadyExists(String::new()),
            _ => StoreError::S3(e),
        })
    }
}

impl BlobStore for S3Store {
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

    fn head(&self, name: &str) -> Result<Option<ObjectInfo>, StoreError> {
        Ok(self.client.head_object(&self.key(name))?.map(|head| ObjectInfo { name: name.to_owned(), size: head.size, last_modified: String::new() }))
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let objects = self.client.list_objects(&self.key(prefix))?;
        Ok(objects
            .into_iter()
            .filter_map(|o| {
                let name = o.key.strip_prefix(&self.prefix)?.to_owned();
                Some(ObjectInfo { name, size: o.size, last_modified: o.last_modified })
            })
            .collect())
    }

    fn get(&self, object: &ObjectInfo) -> Result<Option<Box<dyn Read + Send>>, StoreError> {
        Ok(Some(Box::new(RangedReader::start(self.client.clone(), &self.key(&object.name), object.size, self.download))))
    }

    fn put(&self, name: &str, options: PutOptions) -> Result<Box<dyn Upload>, StoreError> {
        if let Some(reason) = self.read_only() {
            return Err(StoreError::ReadOnly(reason));
        }
        let config = UploadConfig { if_none_match: options.if_none_match, ..self.upload };
        let mut publish = self.publish.clone();
        publish.metadata.push(("s3cache-format".to_owned(), s3cache_format()));
        Ok(Box::new(S3Upload(MultipartWriter::new(self.client.clone(), &self.key(name), publish, config))))
    }

    fn delete(&self, name: &str) -> Result<(), StoreError> {
        Ok(self.client.delete_object(&self.key(name))?)
    }
}

fn s3cache_format() -> String {
    format!("tar+zstd/{}", crate::ARCHIVE_FORMAT)
}
