//! Object names in a store: where entries and their last-used markers live, which archive format an
//! entry has, and how to tell our own objects from anything else in a shared bucket.
//!
//! An entry is `<scope>/<encoded key><suffix>` under the store's prefix, the suffix naming its format
//! (`.tar.zst`, `.tar.gz`, `.tar`), so that `aws s3 ls` shows what each object is. Its last-used marker
//! is an empty object beside it, `<scope>/<encoded key><suffix>.used`, written when a restore uses an
//! entry whose last use is older than [`TOUCH_INTERVAL`]. Markers share the entry's prefix on purpose:
//! the listing a restore makes anyway returns them, so knowing whether a marker is fresh costs no request.
//! Admin verbs act only on names that [`classify`] recognizes; every other object is left alone.
//!
//! **Every name s3cache writes has exactly one `/` after its store's prefix**, the one after the scope.
//! A key may hold `/` (actions/cache allows it), so the key is encoded ([`encode_key`]): each `/` is
//! written as `,`. Keys never contain commas ([`crate::engine::validate_key`] has refused them from the
//! start), so the encoding is injective without escaping anything, it does not lengthen a name, and every
//! key without `/` keeps exactly the object name it always had. It maps a key prefix to a name prefix,
//! so restore keys still list by prefix. Because of the one-slash rule, the objects of a store nested
//! under this one (`s3://bucket/ci` under `s3://bucket`: `ci/<scope>/<key>.tar.zst`, two or more levels
//! down) can never read as this store's entries, and [`classify`] calls every deeper name foreign.
//!
//! The grammar of an entry's name, relative to the store prefix:
//!
//! ```text
//! entry   = scope "/" encoded suffix [".used"]
//! encoded = segment *("," segment)        ; the key's "/"-separated segments, joined by ","
//! segment = 1*(any character but "/", "," and control characters)
//! suffix  = ".tar.zst" / ".tar.gz" / ".tar"
//! protocol-entry = scope "/" escaped ",," 64HEXDIG ".gha" [".used"]
//! ```
//!
//! A segment is never empty (keys have no empty segment), so an encoded key never starts or ends with
//! `,` and never holds `,,`: that sequence carries an entry's version in its name.
//!
//! **Protocol entries**: `s3cache serve` keeps what GitHub's cache protocol clients upload as
//! `<scope>/<escaped key>,,<version>.gha` ([`protocol_entry_object`]): the client's own bytes, with no
//! s3cache manifest, one entry per key and version. Their keys follow the protocol's rules, not the
//! CLI's (empty segments, `%` and any case are allowed), so the escape is wider: `/` is `,` as above,
//! `%` is `%25` and control characters are `%XX`; the version is 64 lowercase hex digits, and the name
//! is read from the right. Admin verbs list, count and evict them like any entry; the CLI's restore
//! passes over them (there is no manifest to check).
//!
//! **Slash-named entries**: before the encoding, a key with `/` was written as it is,
//! `<scope>/a/b.tar.zst` for the key `a/b`. From a parent store such a name cannot be told from a
//! nested store's entry, so no admin verb lists, counts or deletes one; restores (and `has`, and a
//! save's check that its key exists) still find them by exact name or prefix
//! ([`Layout::classify_slash_named`]), so no existing entry becomes unreadable.
//!
//! One dialect names entries differently: Semaphore's `cache` CLI keeps each entry at
//! `<project>/<key>` with no scope and no suffix, and its users' buckets, policies and lifecycle rules
//! depend on that. [`Layout::Flat`] is that naming; it has no markers and no encoding.

use std::borrow::Cow;
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

    /// The name an earlier s3cache gave `key`'s entry, when it differs from [`Layout::entry_object`]:
    /// only for a key with `/`, in the scoped layout.
    pub fn slash_named_object(self, scope: &str, key: &str, format: Format) -> Option<String> {
        (self == Layout::Scoped && key.contains('/')).then(|| format!("{scope}/{key}{}", format.suffix()))
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

    /// Recognizes an object name relative to the store prefix: the single entry point that says
    /// which objects are this store's. Slash-named entries are foreign here.
    pub fn classify(self, name: &str) -> StoreObject {
        match self {
            Layout::Scoped => classify(name),
            // One level under the project, as the real CLI writes; deeper names are another tool's.
            Layout::Flat if !name.is_empty() && !name.contains('/') && !name.chars().any(char::is_control) => {
                StoreObject::Entry(EntryName { scope: String::new(), key: name.to_owned(), format: None, protocol_version: None })
            }
            Layout::Flat => StoreObject::Foreign,
        }
    }

    /// Recognizes a slash-named entry or its marker (`<scope>/a/b.tar.zst` for the key `a/b`, as an
    /// earlier s3cache named it); anything else, today's names included, is foreign. Only restores use
    /// it, on names they list or ask for by a key, never admin verbs: from a parent store the same
    /// name may be a nested store's entry.
    pub fn classify_slash_named(self, name: &str) -> StoreObject {
        if self == Layout::Flat {
            return StoreObject::Foreign;
        }
        let (name, marker) = split_marker(name);
        let Some((scope, rest)) = name.split_once('/') else { return StoreObject::Foreign };
        let Some((key, format)) = split_suffix(rest) else { return StoreObject::Foreign };
        // Earlier versions refused commas in keys as this one does.
        if !key.contains('/') || key.contains(',') || !plain_key(key) || validate_scope_name(scope).is_err() {
            return StoreObject::Foreign;
        }
        named(EntryName::new(scope, key, format), marker)
    }

    /// The listing prefixes that find every entry whose key starts with `key_prefix` in `scope`,
    /// slash-named ones included: the encoded prefix, and the prefix as it is when that differs.
    pub fn listing_prefixes(self, scope: &str, key_prefix: &str) -> Vec<String> {
        match self {
            Layout::Flat => vec![key_prefix.to_owned()],
            Layout::Scoped => {
                let encoded = format!("{scope}/{}", encode_key(key_prefix));
                let as_is = format!("{scope}/{key_prefix}");
                if encoded == as_is { vec![encoded] } else { vec![encoded, as_is] }
            }
        }
    }

    /// Bytes of the longest object name `key` can have in `scope`, relative to the store prefix: its
    /// entry with the longest suffix, plus the marker's suffix (Flat: the key alone).
    pub fn longest_object_bytes(self, scope: &str, key: &str) -> usize {
        match self {
            Layout::Scoped => {
                let suffix = Format::ALL.iter().map(|f| f.suffix().len()).max().unwrap_or(0);
                scope.len() + 1 + encode_key(key).len() + suffix + MARKER_SUFFIX.len()
            }
            Layout::Flat => key.len(),
        }
    }
}

/// The parts of an entry's object name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryName {
    /// The scope; empty in the Flat layout.
    pub scope: String,
    /// The cache key (decoded: with its `/`).
    pub key: String,
    /// The format the name shows; `None` in the Flat layout, whose names do not, and for protocol entries.
    pub format: Option<Format>,
    /// A protocol entry's version (64 hex digits), the client's; `None` for s3cache's own entries.
    pub protocol_version: Option<String>,
}

impl EntryName {
    /// The name of an entry of `key` in `scope`, in `format`.
    pub fn new(scope: &str, key: &str, format: Format) -> Self {
        Self { scope: scope.to_owned(), key: key.to_owned(), format: Some(format), protocol_version: None }
    }

    /// Whether a cache-protocol client wrote it through `s3cache serve` (no manifest: a CLI restore
    /// cannot use it).
    pub fn is_protocol_entry(&self) -> bool {
        self.protocol_version.is_some()
    }

    /// What `list` shows as its format: `zstd`, `gzip`, `tar`, `gha` for a protocol entry, `-` when
    /// the name does not say.
    pub fn format_label(&self) -> &'static str {
        match (self.format, &self.protocol_version) {
            (Some(format), _) => format.name(),
            (None, Some(_)) => "gha",
            (None, None) => "-",
        }
    }
}

/// Suffix of a protocol entry ([`protocol_entry_object`]).
pub const PROTOCOL_SUFFIX: &str = ".gha";
/// What separates a protocol entry's escaped key from its version.
const VERSION_SEPARATOR: &str = ",,";

/// The object name of a protocol entry: `key` (a cache-protocol key) in `scope`, for `version`
/// (64 lowercase hex digits).
pub fn protocol_entry_object(scope: &str, key: &str, version: &str) -> String {
    format!("{}{VERSION_SEPARATOR}{version}{PROTOCOL_SUFFIX}", protocol_key_prefix(scope, key))
}

/// The listing prefix of every protocol entry in `scope` whose key starts with `key_prefix`.
pub fn protocol_key_prefix(scope: &str, key_prefix: &str) -> String {
    let mut name = format!("{scope}/");
    for c in key_prefix.chars() {
        match c {
            '/' => name.push(ENCODED_SLASH),
            '%' => name.push_str("%25"),
            c if c.is_control() => {
                let mut utf8 = [0u8; 4];
                for byte in c.encode_utf8(&mut utf8).bytes() {
                    name.push_str(&format!("%{byte:02X}"));
                }
            }
            c => name.push(c),
        }
    }
    name
}

/// The key and version of a protocol entry's name after its scope, or `None` when `rest` is not one.
fn parse_protocol_entry(rest: &str) -> Option<(String, String)> {
    let (escaped, version) = rest.strip_suffix(PROTOCOL_SUFFIX)?.rsplit_once(VERSION_SEPARATOR)?;
    if version.len() != 64 || !version.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) || escaped.is_empty() {
        return None;
    }
    if escaped.contains('/') || escaped.chars().any(char::is_control) {
        return None;
    }
    let unslashed = escaped.replace(ENCODED_SLASH, "/");
    let key = percent_encoding::percent_decode_str(&unslashed).decode_utf8().ok()?.into_owned();
    // Only the canonical escape of a key is its name.
    (protocol_key_prefix("", &key)[1..] == *escaped).then(|| (key, version.to_owned()))
}

/// What stands for `/` in an encoded key: a character keys never contain.
pub const ENCODED_SLASH: char = ',';

/// A key (or key prefix) as object names hold it: each `/` written as [`ENCODED_SLASH`].
pub fn encode_key(key: &str) -> Cow<'_, str> {
    if key.contains('/') { Cow::Owned(key.replace('/', ",")) } else { Cow::Borrowed(key) }
}

/// The key an encoded key stands for, or `None` when `encoded` is not one (it holds `/`, an empty
/// segment, the reserved `,,`, or a control character).
pub fn decode_key(encoded: &str) -> Option<String> {
    let well_formed = plain_key(encoded) && !encoded.contains('/') && encoded.split(ENCODED_SLASH).all(|segment| !segment.is_empty());
    well_formed.then(|| encoded.replace(ENCODED_SLASH, "/"))
}

/// The object name of the entry for `key` in `scope`, in `format`.
pub fn entry_object(scope: &str, key: &str, format: Format) -> String {
    format!("{scope}/{}{}", encode_key(key), format.suffix())
}

/// The listing prefix that finds every format of `key`'s entry in `scope`, and their markers.
pub fn key_prefix(scope: &str, key: &str) -> String {
    format!("{scope}/{}.tar", encode_key(key))
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

/// Recognizes an object name relative to the store prefix (the scoped layout): exactly one `/`,
/// after a valid scope, then an encoded key and a format suffix.
pub fn classify(name: &str) -> StoreObject {
    let (name, marker) = split_marker(name);
    let Some((scope, rest)) = name.split_once('/') else { return StoreObject::Foreign };
    if validate_scope_name(scope).is_err() {
        return StoreObject::Foreign;
    }
    if let Some((key, version)) = parse_protocol_entry(rest) {
        return named(EntryName { scope: scope.to_owned(), key, format: None, protocol_version: Some(version) }, marker);
    }
    let Some((encoded, format)) = split_suffix(rest) else { return StoreObject::Foreign };
    match decode_key(encoded) {
        Some(key) => named(EntryName::new(scope, &key, format), marker),
        None => StoreObject::Foreign,
    }
}

/// A name without its marker suffix, and whether it had one.
fn split_marker(name: &str) -> (&str, bool) {
    match name.strip_suffix(MARKER_SUFFIX) {
        Some(entry) => (entry, true),
        None => (name, false),
    }
}

/// What is left of `rest` before its format suffix, and the format.
fn split_suffix(rest: &str) -> Option<(&str, Format)> {
    Format::ALL.into_iter().find_map(|f| Some((rest.strip_suffix(f.suffix())?, f)))
}

/// Not empty and without control characters.
fn plain_key(key: &str) -> bool {
    !key.is_empty() && !key.chars().any(char::is_control)
}

fn named(entry: EntryName, marker: bool) -> StoreObject {
    if marker { StoreObject::Marker(entry) } else { StoreObject::Entry(entry) }
}

impl From<Format> for crate::sandbox::bindings::Compression {
    /// The guest's codec for an archive format.
    fn from(format: Format) -> Self {
        use crate::sandbox::bindings::Compression;
        match format {
            Format::Zstd => Compression::Zstd,
            Format::Gzip => Compression::Gzip,
            Format::Tar => Compression::None,
        }
    }
}

/// A scope name given by the user that is not one object-key segment of safe characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scope {scope:?} must be 1-128 characters of A-Z, a-z, 0-9, '.', '_' and '-'")]
pub struct InvalidScope {
    /// The name as given.
    pub scope: String,
}

/// Checks a user-given scope name: one object-key segment of safe characters.
pub fn validate_scope_name(scope: &str) -> Result<(), InvalidScope> {
    let valid = !scope.is_empty()
        && scope.len() <= 128
        && scope != "."
        && scope != ".."
        && scope.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid { Ok(()) } else { Err(InvalidScope { scope: scope.to_owned() }) }
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
        for name in
            ["README", "logs/2026.txt", "local/.tar.zst", "../x/k.tar.zst", "a b/k.tar", "local/k.zip", "k.tar.zst", "local/k.tar.zst.bak"]
        {
            assert_eq!(classify(name), StoreObject::Foreign, "{name}");
        }
    }

    /// The encoding is injective and keeps prefixes; keys without `/` keep the names they always had.
    #[test]
    fn encoding_is_injective_and_keeps_prefixes() {
        let keys = ["a/b", "a-b", "a_b", "a/b/c", "a/bc", "ab/c", "a.b/c", "%2F", "a%2Fb", "npm/linux/x", "é/ü"];
        let mut names: Vec<String> = keys.iter().map(|k| entry_object("local", k, Format::Zstd)).collect();
        for (key, name) in keys.iter().zip(&names) {
            assert_eq!(classify(name), StoreObject::Entry(EntryName::new("local", key, Format::Zstd)), "{name}");
            assert_eq!(name.matches('/').count(), 1, "{name}");
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), keys.len());
        assert_eq!(entry_object("local", "deps-v1%", Format::Tar), "local/deps-v1%.tar");
        assert_eq!(entry_object("local", "npm/linux/x", Format::Gzip), "local/npm,linux,x.tar.gz");
        for (prefix, key) in [("npm/", "npm/linux/x"), ("npm", "npm/linux"), ("npm/li", "npm/linux")] {
            assert!(entry_object("s", key, Format::Zstd).starts_with(&Layout::Scoped.listing_prefixes("s", prefix)[0]), "{prefix}");
        }
    }

    /// The objects of stores nested under this one are never this store's, however they are named;
    /// so are names that break the encoded grammar (the reserved `,,` among them).
    #[test]
    fn nested_stores_and_malformed_names_are_foreign() {
        for name in [
            "big/local/k.tar.zst",
            "big/local/k.tar.zst.used",
            "big/local/a,b.tar.gz",
            "team/ci/local/k.tar.zst",
            "ci-cache/heads-main-1a2b3c4d/deps.tar",
            "local/a,,v1.tar.zst",
            "local/,a.tar.zst",
            "local/a,.tar.zst",
            "local/,.tar.zst",
        ] {
            assert_eq!(classify(name), StoreObject::Foreign, "{name}");
        }
    }

    /// Slash-named entries (an earlier s3cache's names for keys with `/`) are found only by
    /// `classify_slash_named`, which in turn knows nothing of today's names.
    #[test]
    fn slash_named_entries() {
        let entry = EntryName::new("local", "a/b", Format::Gzip);
        assert_eq!(Layout::Scoped.slash_named_object("local", "a/b", Format::Gzip).as_deref(), Some("local/a/b.tar.gz"));
        assert_eq!(Layout::Scoped.slash_named_object("local", "ab", Format::Gzip), None);
        assert_eq!(Layout::Flat.slash_named_object("local", "a/b", Format::Gzip), None);
        assert_eq!(Layout::Scoped.classify_slash_named("local/a/b.tar.gz"), StoreObject::Entry(entry.clone()));
        assert_eq!(Layout::Scoped.classify_slash_named("local/a/b.tar.gz.used"), StoreObject::Marker(entry));
        assert_eq!(Layout::Scoped.classify("local/a/b.tar.gz"), StoreObject::Foreign);
        for name in ["local/k.tar.zst", "local/a,b.tar.zst", "local/a/b,c.tar.zst", "local/a/b.zip", "no scope/a/b.tar", "local/a/\tb.tar"]
        {
            assert_eq!(Layout::Scoped.classify_slash_named(name), StoreObject::Foreign, "{name}");
        }
        assert_eq!(Layout::Flat.classify_slash_named("local/a/b.tar.gz"), StoreObject::Foreign);
        assert_eq!(Layout::Scoped.listing_prefixes("local", "npm/"), vec!["local/npm,".to_string(), "local/npm/".to_string()]);
        assert_eq!(Layout::Scoped.listing_prefixes("local", "npm-"), vec!["local/npm-".to_string()]);
        assert_eq!(Layout::Flat.listing_prefixes("ignored", "npm/"), vec!["npm/".to_string()]);
    }

    /// The longest name is the marker of the entry with the longest suffix.
    #[test]
    fn longest_object_bytes() {
        let marker = Layout::Scoped.marker(&entry_object("local", "a/b", Format::Zstd)).unwrap();
        assert_eq!(Layout::Scoped.longest_object_bytes("local", "a/b"), marker.len());
        assert_eq!(Layout::Flat.longest_object_bytes("local", "a-b"), 3);
    }

    /// The Flat layout names an entry by its key alone, one level deep, and has no markers.
    #[test]
    fn protocol_entries() {
        let version = "0123456789abcdef".repeat(4);
        for key in ["npm-Linux-abc", "a//b", "/lead", "50%/x", "tab\there", "Ünïcode key", "buildkit-blob-1-sha256:ab"] {
            let name = protocol_entry_object("local", key, &version);
            assert_eq!(name.matches('/').count(), 1, "{name}");
            let expected = EntryName { scope: "local".into(), key: key.into(), format: None, protocol_version: Some(version.clone()) };
            assert_eq!(classify(&name), StoreObject::Entry(expected.clone()), "{name}");
            assert_eq!(classify(&format!("{name}.used")), StoreObject::Marker(expected), "{name}");
            let first: String = key.chars().take(2).collect();
            assert!(name.starts_with(&protocol_key_prefix("local", &first)), "{name}");
        }
        assert_eq!(protocol_entry_object("local", "a/b%c", &version), format!("local/a,b%25c,,{version}.gha"));
        assert_eq!(protocol_entry_object("s", "a\nb", &version), format!("s/a%0Ab,,{version}.gha"));
        // Not canonical, not 64 lowercase hex, no key: foreign.
        for name in [
            format!("local/a%2Fb,,{version}.gha"),
            format!("local/a,,{}.gha", version.to_uppercase()),
            format!("local/a,,{}.gha", &version[1..]),
            format!("local/,,{version}.gha"),
            format!("ci/local/a,,{version}.gha"),
        ] {
            assert_eq!(classify(&name), StoreObject::Foreign, "{name}");
        }
    }

    #[test]
    fn flat_layout() {
        assert_eq!(Layout::Flat.entry_object("ignored", "gems-main-abc", Format::Gzip), "gems-main-abc");
        assert_eq!(Layout::Flat.marker("gems-main-abc"), None);
        assert!(
            matches!(Layout::Flat.classify("gems-main-abc"), StoreObject::Entry(EntryName { ref key, format: None, .. }) if key == "gems-main-abc")
        );
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
