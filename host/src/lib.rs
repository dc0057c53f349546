//! s3cache: a CI build cache that keeps its archives in any S3-compatible object store and does the
//! key and tar work, and all decoding of what it reads back, inside a WASI sandbox.
//!
//! This crate is the native host: it embeds the guest component (`guest/`) with wasmtime, talks SigV4
//! to S3, and applies what WASI cannot (mode bits, symlinks) after checking it again. It is both the
//! `s3cache` command and a library for embedding in other runners:
//!
//! The library's API, for other runners:
//! - the engine: [`CacheContext`] with [`CacheContext::save`], [`CacheContext::restore`] and
//!   [`CacheContext::compute_key`], their requests ([`SaveRequest`], [`RestoreRequest`]) and
//!   outcomes ([`SaveOutcome`], [`RestoreOutcome`]: a miss is a value, not an error), and the
//!   administration in [`engine::admin`] (list, usage, delete, flush, prune);
//! - what an operation reports instead of printing: [`Event`]s sent to the [`Report`] of the
//!   operation's [`Reporter`] ([`CacheContext::with_reporter`]), which also scrubs its secrets and
//!   counts its requests;
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
//! The source is grouped in layers that only point down (docs/how-it-works.md, "Source layout"):
//! the leaves `env_vars`, [`cancel`], [`report`] and `unique_name`; [`store`] (with the S3 transport); `ui`
//! (output and progress); [`sandbox`] (the guest); `workspace` (the job's files, staging); [`archive`]
//! (names, trailers, parallel pack and unpack); [`engine`] (save, restore, admin, scopes); [`config`]
//! (settings and `resolve`); and `frontends` (the CLI and every CI dialect). Modules not linked here
//! are the crate's own.

#![deny(missing_docs)]

pub mod archive;
pub mod cancel;
pub mod config;
pub mod engine;
pub mod report;
pub mod sandbox;
pub mod serve;
pub mod signing;
pub mod store;

pub(crate) mod env_vars;
pub(crate) mod frontends;
#[cfg(test)]
mod import_graph;
pub(crate) mod ui;
pub(crate) mod unique_name;
pub(crate) mod workspace;

pub use cancel::Cancel;
pub use engine::{CacheContext, ConfigError, EngineError, Hit, RestoreOutcome, RestoreRequest, SaveOutcome, SaveRequest};
/// The `s3cache` command (`main.rs`): the command-line front end, which runs every dialect.
#[doc(hidden)]
pub use frontends::cli::main as command_main;
pub use report::{Event, Report, Reporter};
pub use sandbox::{GuestLimits, Sandbox};
pub use store::{BlobStore, S3Options, open as open_store};

/// Version of the archive layout this host writes and reads. Bump when member naming or encoding changes.
pub const ARCHIVE_FORMAT: u32 = 1;
