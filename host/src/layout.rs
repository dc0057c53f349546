//! Object names in a store: where entries and their last-used markers live, which archive format an
//! entry has, and how to tell our own objects from anything else in a shared bucket.
//!
//! An entry is `<scope>/<key><suffix>` under the store's prefix, the suffix naming its format
//! (`.tar.zst`, `.tar.gz`, `.tar`), so that `aws s3 ls` shows what each object is. Its last-used marker
//! is an empty object beside it, `<scope>/<key><suffix>.used`, written when a restore uses an entry
//! whose last use is older than [`TOUCH_INTERVAL`]. Markers share the entry's prefix on purpose: the
//! listing a restore makes anyway returns them, so knowing whether a marker is fresh costs no request.
//! Admin verbs act only on names that [`classify`] recognizes; every other object is left alone.
//!
//! One dialect names entries differently: Semaphore's `cache` CLI keeps each entry at
//! `<project>/<key>` with no scope and no suffix, and its users' buckets, policies and lifecycle rules
//! depend on that. [`Layout::Flat`] is that naming; it has no markers.

use std::time::Duration;

/// How an entry's archive is encoded. The name is recorded in the entry's manifest and version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// tar compressed with zstd, in independent frames (the default; fastest).
    #[default]
    Zstd,
    /// tar compressed with gzip, as concatenated gzip members (readable by `tar xzf`).
    Gzip,
    /// Uncompressed tar.
    Tar,
}

impl Format {
    /// Every format, in the order suffixes are matched (longest first).
    pub const ALL: [Format; 3] = [Format::Zstd, Format::Gzip, Format::Tar];

    /// The object-name suffix.
    pub fn suffix(self) -> &'static str {
        match self {
            Format::Zstd => ".tar.zst",
            Format::Gzip => ".tar.gz",
            Format::Tar => ".tar",
        }
    }

    /// The name recorded in manifests and versions, and accepted by `--format`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Zstd => "zstd",
            Format::Gzip => "gzip",
            Format::Tar => "tar",
        }
    }

    /// The compression level a save uses when none is given: zstd's and gzip's own defaults (3, 6).
    pub fn default_level(self) -> i32 {
        match self {
            Format::Zstd => 3,
            Format::Gzip => 6,
            Format::Tar => 0,
        }
    }

    /// The format called `name` ([`Format::name`]).
    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Suffix of a last-used marker, after the entry's own name.
pub const MARKER_SUFFIX: &str = ".used";

/// A restore refreshes an entry's marker when its last use is older than this (by default; the
/// setting is `--touch-interval`): at most one small PUT per entry per interval, and LRU eviction is
/// exact to within it.
pub const TOUCH_INTERVAL: Duration = Duration::from_secs(12 * 3600);

/// How a store names its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// `<scope>/<key><suffix>`, with last-used markers: s3cache's own.
    #[default]
    Scoped,
    /// `<key>`, no scope, no suffix, no markers: the Semaphore `cache` CLI's (the format is in the
    /// entry's manifest only).
    Flat,
}

impl Layout {
    /// The object name of `key`'s entry in `scope` (Flat: the key alone).
    pub fn entry_object(self, scope: &str, key: &str, format: Format) -> String {
        match self {
            Layout::Scoped => entry_object(scope, key, format),
            Layout::Flat => key.to_owned(),
        }
    }

    /// The object name of the last-used marker of the entry stored as `object`; Flat has none.
    pub fn marker(self, object: &str) -> Option<String> {
        match self {
            Layout::Scoped => Some(format!("{object}{MARKER_SUFFIX}")),
            Layout::Flat => None,
        }
    }

    /// Whether entries live in scopes (Flat: one namespace; trust still applies).
    pub fn scoped(self) -> bool {
        self == Layout::Scoped
    }

    /// Recognizes an object name relative to the store prefix.
    pub fn classify(self, name: &str) -> StoreObject {
        match self {
            Layout::Scoped => classify(name),
            // One level under the project, as the real CLI writes; deeper names are another tool's.
            Layout::Flat if !name.is_empty() && !name.contains('/') && !name.chars().any(char::is_control) => {
                StoreObject::Entry(EntryName { scope: String::new(), key: name.to_owned(), format: None })
            }
            Layout::Flat => StoreObject::Foreign,
        }
    }
}

/// The parts of an entry's object name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryName {
    /// The scope; empty in the Flat layout.
    pub scope: String,
    /// The cache key.
    pub key: String,
    /// The format the name shows; `None` in the Flat layout, whose names do not.
    pub format: Option<Format>,
}

impl EntryName {
    /// The name of an entry of `key` in `scope`, in `format`.
    pub fn new(scope: &str, key: &str, format: Format) -> Self {
        Self { scope: scope.to_owned(), key: key.to_owned(), format: Some(format) }
    }
}

/// The object name of the entry for `key` in `scope`, in `format`.
pub fn entry_object(scope: &str, key: &str, format: Format) -> String {
    format!("{scope}/{key}{}", format.suffix())
}

/// The listing prefix that finds every format of `key`'s entry in `scope`, and their markers.
pub fn key_prefix(scope: &str, key: &str) -> String {
    format!("{scope}/{key}.tar")
}

/// What an object in the store is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreObject {
    /// A cache entry.
    Entry(EntryName),
    /// The last-used marker of this entry.
    Marker(EntryName),
    /// Not an object s3cache writes: never listed, counted or deleted.
    Foreign,
}

/// Recognizes an object name relative to the store prefix.
pub fn classify(name: &str) -> StoreObject {
    let (name, marker) = match name.strip_suffix(MARKER_SUFFIX) {
        Some(entry) => (entry, true),
        None => (name, false),
    };
    let Some((scope, rest)) = name.split_once('/') else { return StoreObject::Foreign };
    if crate::scope::validate_explicit(scope).is_err() {
        return StoreObject::Foreign;
    }
    let Some((key, format)) = Format::ALL.into_iter().find_map(|f| Some((rest.strip_suffix(f.suffix())?, f))) else {
        return StoreObject::Foreign;
    };
    if key.is_empty() || key.chars().any(char::is_control) {
        return StoreObject::Foreign;
    }
    let entry = EntryName::new(scope, key, format);
    if marker { StoreObject::Marker(entry) } else { StoreObject::Entry(entry) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Entry and marker names round-trip through `classify`, in every format; keys may hold `/` and dots.
    #[test]
    fn names_round_trip() {
        for format in Format::ALL {
            for key in ["deps-v1", "a/b/c", "x.tar", "x.tar.gz", "npm-linux-1.2"] {
                let entry = EntryName::new("heads-main-1a2b3c4d", key, format);
                let object = Layout::Scoped.entry_object(&entry.scope, key, format);
                let marker = Layout::Scoped.marker(&object).unwrap();
                assert_eq!(classify(&object), StoreObject::Entry(entry.clone()), "{object}");
                assert_eq!(classify(&marker), StoreObject::Marker(entry.clone()), "{marker}");
                assert!(object.starts_with(&key_prefix(&entry.scope, key)));
            }
        }
        assert_eq!(entry_object("local", "k", Format::Gzip), "local/k.tar.gz");
    }

    /// Objects s3cache does not write are foreign, so that a shared bucket keeps them.
    #[test]
    fn foreign_objects() {
        for name in ["README", "logs/2026.txt", "local/.tar.zst", "../x/k.tar.zst", "a b/k.tar", "local/k.zip", "k.tar.zst", "local/k.tar.zst.bak"] {
            assert_eq!(classify(name), StoreObject::Foreign, "{name}");
        }
    }

    /// The Flat layout names an entry by its key alone, one level deep, and has no markers.
    #[test]
    fn flat_layout() {
        assert_eq!(Layout::Flat.entry_object("ignored", "gems-main-abc", Format::Gzip), "gems-main-abc");
        assert_eq!(Layout::Flat.marker("gems-main-abc"), None);
        assert!(matches!(Layout::Flat.classify("gems-main-abc"), StoreObject::Entry(EntryName { ref key, format: None, .. }) if key == "gems-main-abc"));
        assert_eq!(Layout::Flat.classify("a/b"), StoreObject::Foreign);
        assert_eq!(Layout::Flat.classify(""), StoreObject::Foreign);
    }

    /// Format names are the ones manifests and `--format` use.
    #[test]
    fn format_names() {
        for format in Format::ALL {
            assert_eq!(Format::from_name(format.name()), Some(format));
        }
        assert_eq!(Format::from_name("lz4"), None);
        assert_eq!(Format::default(), Format::Zstd);
    }
}
