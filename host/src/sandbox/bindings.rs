//! Host bindings generated from `wit/` by `wasmtime::component::bindgen!`: the `cache-guest` world,
//! its records, and the traits for the imports the host implements (in [`crate::sandbox`]).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "cache-guest",
    additional_derives: [PartialEq, Eq],
});

pub use self::exports::s3cache::guest::archive::{
    Compression, ContentSlice, Fixup, Member, PackOptions, PackSummary, UnpackLimits, UnpackReport,
};
pub use self::exports::s3cache::guest::keys::{Found, Resolution, TemplateContext};
pub use self::s3cache::guest::types::{Error as GuestError, MemberKind, Root, Timestamp};
