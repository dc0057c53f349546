//! Types and host imports generated from `wit/` by wit-bindgen. The generated records are used
//! directly by the pure modules; on non-wasm targets the imports are stubs that must not be called, so
//! tests pass their own log, environment and stream implementations instead.

wit_bindgen::generate!({
    world: "cache-guest",
    path: "../wit",
    generate_all,
    additional_derives: [PartialEq, Eq],
});

pub use exports::s3cache::guest::archive::{
    Compression, ContentSlice, Fixup, Member, PackOptions, PackSummary, UnpackLimits, UnpackReport,
};
pub use exports::s3cache::guest::keys::{Found, Resolution, TemplateContext};
pub use s3cache::guest::types::{MemberKind, Root, Timestamp};
