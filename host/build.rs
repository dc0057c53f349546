//! Hashes the committed guest component at build time, so that a run names its compiled copies
//! (`crate::sandbox::compiled`) without hashing 2 MB first.

use std::hash::{Hash, Hasher};

fn main() {
    let path = "embedded/s3cache-guest.wasm";
    println!("cargo:rerun-if-changed={path}");
    let component = std::fs::read(path).expect("the committed guest component");
    // `DefaultHasher::new` has fixed keys: the same bytes always give the same name.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    component.hash(&mut hasher);
    println!("cargo:rustc-env=S3CACHE_GUEST_COMPONENT_HASH={:016x}", hasher.finish());
}
