//! s3cache: a CI build cache that keeps its archives in any S3-compatible object store and does all
//! archive and key work inside a WASI sandbox.
//!
//! This crate is the native host: it embeds the guest component (`guest/`) with wasmtime, talks SigV4
//! to S3, and applies what WASI cannot (mode bits, symlinks) after checking it again. It is both the
//! `s3cache` command and a library for embedding in other runners:
//!
//! The library's API, for other runners:
//! - the engine: [`CacheContext`] with [`CacheContext::save`], [`CacheContext::restore`] and
//!   [`CacheContext::compute_key`], their requests ([`SaveRequest`], [`RestoreRequest`]) and
//!   outcomes ([`SaveOutcome`], [`RestoreOutcome`]: a miss is a value, not an error), and the
//!   administration in [`admin`] (list, usage, delete, flush, prune);
//! - stores: [`open_store`] by URL (`s3://`, `https://` read-only, `file://`), or your own
//!   [`store::BlobStore`];
//! - configuration as the CLI resolves it: [`config::Settings`] and [`config::resolve`];
//! - the sandbox and its limits: [`Sandbox`], [`GuestLimits`], [`sandbox::UnpackLimits`].
//!
//! Restore, build, save, against the default local store:
//!
//! ```no_run
//! use s3cache::{config, RestoreOutcome, RestoreRequest, SaveRequest};
//!
//! # fn main() -> anyhow::Result<()> {
//! let context = config::resolve(&config::Settings::from_env()?, config::process_env(Vec::new()))?;
//! let key = r#"deps-{{ hashFiles "Cargo.lock" }}"#;
//! if let RestoreOutcome::Miss { reason, .. } = context.restore(&RestoreRequest::new(key, ["target"]))? {
//!     println!("{reason}; building");
//!     // ... build ...
//!     println!("{:?}", context.save(&SaveRequest::new(key, ["target"]))?);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Modules not listed above are the CLI's and the tests'; they are hidden and not part of the API.

#![deny(missing_docs)]

pub mod admin;
pub mod cache;
pub mod cancel;
pub mod config;
pub mod layout;
pub mod sandbox;
pub mod scope;
pub mod store;

#[doc(hidden)]
pub mod bindings;
#[doc(hidden)]
pub mod catalog;
#[doc(hidden)]
pub mod compiled;
#[doc(hidden)]
pub mod env_vars;
#[doc(hidden)]
pub mod frontends;
#[doc(hidden)]
pub mod fsmeta;
#[doc(hidden)]
pub mod host_files;
#[doc(hidden)]
pub mod output;
#[doc(hidden)]
pub mod parallel_pack;
#[doc(hidden)]
pub mod parallel_unpack;
#[doc(hidden)]
pub mod paths;
#[doc(hidden)]
pub mod progress;
#[doc(hidden)]
pub mod protected;
#[doc(hidden)]
pub mod s3;
#[doc(hidden)]
pub mod staging;
#[doc(hidden)]
pub mod summary;
#[doc(hidden)]
pub mod trailer;

pub use cancel::Cancel;
pub use cache::{CacheContext, ConfigError, Hit, RestoreOutcome, RestoreRequest, SaveOutcome, SaveRequest};
pub use sandbox::{GuestLimits, Sandbox};
pub use store::{BlobStore, S3Options, open as open_store};

/// Version of the archive layout this host writes and reads. Bump when member naming or encoding changes.
pub const ARCHIVE_FORMAT: u32 = 1;
