//! Protocol entries by key and version: the names the server gives them
//! ([`crate::archive::layout::protocol_entry_object`]) and how a lookup finds one. No index but the
//! store's listing: any number of servers over one bucket see the same entries.
//!
//! A lookup tries the caller's scopes in order; in each, every key in turn, first exactly, then as
//! a prefix of longer keys (newest first), always with the same version: act's and GitHub's order.

use sha2::Digest;

use crate::archive::catalog::{self, Entry};
use crate::archive::layout::{self, Layout};
use crate::store::{BlobStore, MAX_OBJECT_KEY_BYTES, StoreError};

/// The most characters (UTF-16 units, as the toolkit counts them) in a key.
pub const MAX_KEY_CHARS: usize = 512;
/// The most keys one lookup may name.
pub const MAX_KEYS: usize = 10;

/// A client's version as names hold it: 64 lowercase hex digits as they are (what the toolkit and
/// buildx send), anything else by its SHA-256.
pub fn normalize_version(version: &str) -> String {
    if version.len() == 64 && version.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        version.to_owned()
    } else {
        hex::encode(sha2::Sha256::digest(version.as_bytes()))
    }
}

/// Checks a key as the protocol allows it: 1 to 512 characters, no comma.
pub fn validate_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("the key is empty".into());
    }
    if key.encode_utf16().count() > MAX_KEY_CHARS {
        return Err(format!("the key {key:?} is longer than {MAX_KEY_CHARS} characters"));
    }
    if key.contains(',') {
        return Err(format!("the key {key:?} contains a comma"));
    }
    Ok(())
}

/// The object name of `key`'s entry in `scope` for `version` (normalized), or why there can be none.
pub fn entry_name(store: &dyn BlobStore, scope: &str, key: &str, version: &str) -> Result<String, String> {
    validate_key(key)?;
    let name = layout::protocol_entry_object(scope, key, &normalize_version(version));
    let bytes = store.name_prefix().len() + name.len() + layout::MARKER_SUFFIX.len();
    if bytes > MAX_OBJECT_KEY_BYTES {
        return Err(format!("key too long for this store: its object name would be {bytes} bytes, over S3's {MAX_OBJECT_KEY_BYTES}"));
    }
    Ok(name)
}

/// The entry a lookup of `keys` (the first the primary key) for `version` finds in `scopes`.
pub fn find(store: &dyn BlobStore, scopes: &[String], keys: &[String], version: &str) -> Result<Option<Entry>, StoreError> {
    let version = normalize_version(version);
    let mut unique: Vec<&String> = Vec::new();
    for key in keys {
        if !unique.contains(&key) && validate_key(key).is_ok() {
            unique.push(key);
        }
    }
    for scope in scopes {
        for key in &unique {
            // One listing holds the exact entry and the longer keys' entries, newest first.
            let mut listed = catalog::list(store, Layout::Scoped, &layout::protocol_key_prefix(scope, key))?;
            listed.retain(|e| {
                e.name.protocol_version.as_deref() == Some(version.as_str())
                    && e.name.scope == *scope
                    && e.name.key.starts_with(key.as_str())
            });
            if let Some(exact) = listed.iter().position(|e| e.name.key == **key) {
                return Ok(Some(listed.swap_remove(exact)));
            }
            if let Some(newest) = listed.into_iter().next() {
                return Ok(Some(newest));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_keys() {
        let hex64 = "ab".repeat(32);
        assert_eq!(normalize_version(&hex64), hex64);
        assert_eq!(normalize_version("1"), hex::encode(sha2::Sha256::digest(b"1")));
        assert_eq!(normalize_version(&hex64.to_uppercase()).len(), 64);
        assert_ne!(normalize_version(&hex64.to_uppercase()), hex64);
        assert_eq!(validate_key(""), Err("the key is empty".into()));
        assert_eq!(validate_key("a,b"), Err("the key \"a,b\" contains a comma".into()));
        assert!(validate_key(&"é".repeat(512)).is_ok());
        assert!(validate_key(&"é".repeat(513)).unwrap_err().contains("longer than 512"));
    }
}
