//! The cache entry as bytes: object names and what they encode ([`layout`]), the listing of a store
//! as entries (`catalog`), the archive's trailer with the manifest and the SHA-256 that every
//! restore verifies ([`trailer`]), and the parallel paths that pack and unpack an archive's parts on
//! several threads while the guest does the tar work (`pack`, `unpack`), with a save's compression
//! done natively (`compress`).

pub(crate) mod catalog;
pub(crate) mod compress;
pub mod layout;
pub(crate) mod pack;
pub mod trailer;
pub(crate) mod unpack;
