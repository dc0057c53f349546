//! A small S3 client on `aws-sigv4` and `ureq`: just the operations a build cache needs.
//!
//! Requests are built by pure functions ([`request`]), signed by one function with the time injected
//! ([`signing`]), and sent by one place that maps status and XML error codes to [`S3Error`] kinds
//! ([`client`]). Multipart uploads stream from a `Write` with parts in flight on worker threads
//! ([`upload`]).

mod backend;
pub mod client;
pub mod connection;
pub mod credentials;
pub mod download;
pub mod key_pair;
pub mod request;
pub mod signing;
pub mod upload;
pub mod xml;

pub use backend::S3Store;
pub use client::{S3Client, S3Error, S3ErrorKind};
pub use key_pair::Credentials;
pub use request::{Bucket, Endpoint, EndpointError, PublishOptions};
