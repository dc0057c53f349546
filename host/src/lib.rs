//! s3cache: a CI build cache that keeps its archives in any S3-compatible object store and does all
//! archive and key work inside a WASI sandbox.
//!
//! This crate is the native host: it embeds the guest component (`guest/`) with wasmtime, talks SigV4
//! to S3, and applies what WASI cannot (mode bits, symlinks) after checking it again. It is both the
//! `s3cache` command and a library for embedding in other runners:
//!
//! ```no_run
//! use std::sync::Arc;
//! use s3cache::{CacheContext, GuestLimits, RestoreRequest, RestoreOutcome, S3Options, Sandbox};
//!
//! # fn main() -> anyhow::Result<()> {
//! let context = CacheContext {
//!     store: Arc::from(s3cache::open_store("file:///tmp/cache-store", S3Options::default())?),
//!     sandbox: Arc::new(Sandbox::load(None, GuestLimits::default())?),
//!     cwd: std::env::current_dir()?,
//!     home: None,
//!     env: Arc::new(|name| std::env::var(name).ok()),
//!     unpack_limits: s3cache::bindings::UnpackLimits::default_limits(),
//!     scopes: s3cache::scope::ScopePlan::single("ci"),
//!     touch_interval: s3cache::layout::TOUCH_INTERVAL,
//!     layout: s3cache::layout::Layout::Scoped,
//! };
//! let request = RestoreRequest {
//!     key: "deps-v1".into(),
//!     restore_keys: vec!["deps-".into()],
//!     fallback: s3cache::cache::Fallback::Prefix,
//!     paths: vec!["target".into()],
//!     cross_os: false,
//!     lookup_only: false,
//!     exact_key_only: false,
//!     legacy: None,
//! };
//! if let RestoreOutcome::Hit(hit) = context.restore(&request)? {
//!     println!("restored {}", hit.matched_key);
//! }
//! # Ok(())
//! # }
//! ```

pub mod admin;
pub mod bindings;
pub mod cache;
pub mod catalog;
pub mod compiled;
pub mod config;
pub mod env_vars;
pub mod fsmeta;
pub mod frontends;
pub mod host_files;
pub mod layout;
pub mod output;
pub mod parallel_pack;
pub mod parallel_unpack;
pub mod paths;
pub mod progress;
pub mod s3;
pub mod sandbox;
pub mod scope;
pub mod staging;
pub mod store;
pub mod summary;
pub mod trailer;

pub use cache::{CacheContext, ConfigError, Hit, RestoreOutcome, RestoreRequest, SaveOutcome, SaveRequest};
pub use sandbox::{GuestLimits, Sandbox};
pub use store::{BlobStore, S3Options, open as open_store};

/// Version of the archive layout this host writes and reads. Bump when member naming or encoding changes.
pub const ARCHIVE_FORMAT: u32 = 1;
