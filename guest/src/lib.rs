//! The s3cache guest: everything that touches untrusted bytes or user templates, compiled to
//! `wasm32-wasip1` and run by the host inside wasmtime as a component.
//!
//! It computes keys ([`template`]), lists what the user's paths select ([`walk`]), writes archives
//! ([`pack`]) and extracts them under the policy of `s3cache-policy` ([`unpack`]). It has no network, no
//! environment and only the directories the host preopens. Every module is plain Rust over `std::fs`
//! and `Read`/`Write`, so `cargo test -p s3cache-guest` exercises it natively; [`component`] is the thin
//! layer that binds it to the WIT world in `wit/`.

pub mod bindings;
#[cfg(test)]
mod codec_tests;
#[cfg(target_arch = "wasm32")]
mod component;
pub mod error;
pub mod files;
pub mod goglob;
pub mod logging;
pub mod pack;
pub mod template;
pub mod unpack;
pub mod walk;

pub use error::GuestError;

/// Format version of archives written by `pack`. Bump when the member layout or encoding changes.
pub const ARCHIVE_FORMAT_VERSION: u32 = 1;
