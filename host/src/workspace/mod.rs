//! The job's files as the host sees them: cached paths and their roots ([`paths`]), file metadata
//! that WASI cannot carry (modes, symlinks; [`fsmeta`]), the staging directories a restore extracts
//! into before it commits ([`staging`]), and the places a restore must never write ([`protected`]).

pub mod fsmeta;
pub mod paths;
pub mod protected;
pub mod staging;
