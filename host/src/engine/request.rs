//! Save and restore requests and what they did: a miss, a save that did not happen and an interrupt
//! are values with a reason, never errors.

use std::path::Path;
use std::time::Duration;

use crate::archive::layout::Format;
#[allow(unused_imports)] // for the docs
use crate::cancel::Cancel;
use crate::workspace::paths::resolve_roots;

/// A request to save paths under a key. Built with [`SaveRequest::new`], then its fields set: it is
/// `non_exhaustive` so that settings can be added (signing an entry is planned) without breaking callers.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SaveRequest {
    /// The key, or a key template (`deps-{{ hashFiles "**/Cargo.lock" }}`).
    pub key: String,
    /// The paths to cache: files, directories, globs, `!` exclusions, `~/...`.
    pub paths: Vec<String>,
    /// How the archive is encoded; recorded in the entry's manifest, name and version.
    pub format: Format,
    /// Compression level (zstd 1..=19, gzip 1..=9; ignored for tar); `None`: the format's default
    /// ([`Format::default_level`]). Recorded in the entry, not in its key or version.
    pub compression_level: Option<i32>,
    /// Replace an existing entry instead of keeping the first writer's.
    pub overwrite: bool,
    /// Save for every operating system (actions/cache's `enableCrossOsArchive`).
    pub cross_os: bool,
    /// Name members as `tar` names them (`crate::workspace::paths::plain_prefix`), so that another tool that
    /// extracts with plain `tar` restores them where they belong (Semaphore's compatible mode).
    pub plain_names: bool,
}

impl SaveRequest {
    /// Saves `paths` under `key` as zstd at its default level, keeping an existing entry (the first
    /// writer wins), for this operating system only.
    pub fn new(key: impl Into<String>, paths: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            key: key.into(),
            paths: paths.into_iter().map(Into::into).collect(),
            format: Format::Zstd,
            compression_level: None,
            overwrite: false,
            cross_os: false,
            plain_names: false,
        }
    }
}

/// What a save did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaveOutcome {
    /// The archive was written.
    Saved {
        /// The rendered key.
        key: String,
        /// The object's size, trailer included.
        bytes: u64,
        /// Archive members (files, directories, links).
        members: u64,
        /// The uncompressed tar stream's size: what the entry holds.
        tar_bytes: u64,
        /// How long the save took.
        elapsed: Duration,
        /// SHA-256 of the archive, as recorded in its manifest.
        sha256: String,
    },
    /// An entry with this key exists; entries are immutable, so nothing was written.
    AlreadyExists {
        /// The rendered key.
        key: String,
    },
    /// The paths selected nothing.
    NothingToSave {
        /// The rendered key.
        key: String,
        /// The paths given (not the `!` excludes), as given, every one of which matched nothing.
        unmatched: Vec<String>,
    },
    /// Saving is not allowed in this run (an untrusted event, a read-only store); the reason says why.
    Skipped {
        /// The rendered key, when rendering got that far.
        key: Option<String>,
        /// Why not.
        reason: String,
    },
    /// Something went wrong; nothing was written. The reason says what.
    Failed {
        /// The rendered key, when rendering got that far.
        key: Option<String>,
        /// What went wrong.
        reason: String,
    },
    /// The context's [`Cancel`] token was cancelled: nothing was written (the upload was aborted,
    /// a temporary file removed).
    Interrupted {
        /// The rendered key, when rendering got that far.
        key: Option<String>,
    },
}

/// A request to restore paths. Built with [`RestoreRequest::new`], then its fields set: it is
/// `non_exhaustive` so that settings can be added (verifying an entry's signature is planned) without
/// breaking callers.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RestoreRequest {
    /// The primary key (or template); matched exactly.
    pub key: String,
    /// Ordered fallbacks tried when the primary key misses, as [`Fallback`] says.
    pub restore_keys: Vec<String>,
    /// How restore keys match ([`Fallback::Prefix`], actions/cache's way, unless a dialect says).
    pub fallback: Fallback,
    /// The paths the entry was saved with. Empty: the paths recorded in the entry's manifest, which
    /// must lie in the workspace or the home directory (a restore that "restores what the entry holds").
    pub paths: Vec<String>,
    /// Restore entries saved on another operating system (actions/cache's `enableCrossOsArchive`).
    pub cross_os: bool,
    /// Only check that a restorable entry exists (actions/cache's `lookup-only`); download nothing.
    pub lookup_only: bool,
    /// Ignore restore keys: only the exact key may be restored (release builds).
    pub exact_key_only: bool,
    /// Archives an older tool wrote, without s3cache's manifest, that this restore accepts; `None`
    /// accepts only s3cache's entries.
    pub legacy: Option<Legacy>,
}

impl RestoreRequest {
    /// Restores `paths` from the entry of `key`, with no restore keys: add them to
    /// [`RestoreRequest::restore_keys`] for prefix fallbacks.
    pub fn new(key: impl Into<String>, paths: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            key: key.into(),
            restore_keys: Vec::new(),
            fallback: Fallback::Prefix,
            paths: paths.into_iter().map(Into::into).collect(),
            cross_os: false,
            lookup_only: false,
            exact_key_only: false,
            legacy: None,
        }
    }
}

/// How a restore's fallback keys find entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fallback {
    /// Each restore key is a key prefix; the newest entry of the first prefix that matches anything
    /// wins (actions/cache).
    #[default]
    Prefix,
    /// The primary key and then each restore key is tried exactly and then as an unanchored regular
    /// expression over every key, newest first (the Semaphore `cache` CLI). A key that is not a valid
    /// expression matches nothing beyond itself.
    Pattern,
}

/// Which entry a restore used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The rendered primary key.
    pub primary_key: String,
    /// The key of the entry restored (the primary key, or what a restore key matched).
    pub matched_key: String,
    /// Whether the primary key matched, rather than a restore key.
    pub exact: bool,
    /// The entry's size in the store.
    pub bytes: u64,
    /// Archive members extracted (0 for a lookup).
    pub members: u64,
    /// The uncompressed tar stream's size, from the entry's manifest (`None` for another tool's archive).
    pub tar_bytes: Option<u64>,
    /// How long the restore took.
    pub elapsed: Duration,
    /// SHA-256 of the entry's compressed archive, from its manifest (and verified when restored).
    pub sha256: String,
    /// False for a lookup-only request: the entry exists and is restorable, nothing was downloaded.
    pub restored: bool,
    /// The scope the entry came from.
    pub scope: String,
    /// The paths the entry was saved with (from its manifest).
    pub paths: Vec<String>,
    /// Local files (and symlinks) the restore removed because the entry lacks them: what was under a
    /// path given literally, which the entry's copy replaced as a whole (0 for a lookup).
    pub removed_local_files: u64,
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreOutcome {
    /// An entry was found (and, unless a lookup, restored).
    Hit(Hit),
    /// Nothing was restored; the target is as it was.
    Miss {
        /// The rendered primary key, when rendering got that far.
        primary_key: Option<String>,
        /// Why (`no usable cache entry for key ...`, or what went wrong).
        reason: String,
        /// True when an entry existed (or might have) but could not be restored, as opposed to
        /// there being none.
        failed: bool,
    },
    /// The context's [`Cancel`] token was cancelled: nothing was restored, the target is as it was
    /// and the staging directories are gone.
    Interrupted {
        /// The rendered primary key, when rendering got that far.
        primary_key: Option<String>,
    },
}

/// The archives another tool wrote that a restore accepts during a migration: plain `tar` streams of
/// one format, named as `tar` names members. They are extracted through the same sandbox, policy and
/// staging as s3cache's entries, but there is no digest to check, and a notice says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Legacy {
    /// Who wrote them, for the notice (`the Semaphore cache CLI`).
    pub writer: String,
    /// How those archives are compressed.
    pub format: Format,
    /// Whether a candidate the search finds without s3cache's trailer is such an archive. Its members
    /// may then land anywhere in the workspace or the home directory, as the old tool put them.
    pub in_search: bool,
    /// Objects at the old tool's own names, tried in order when no s3cache entry is found, each
    /// holding its paths (its members must fall under them); one that does not
    /// [fit](LegacyObject::fits) the workspace is passed over.
    pub objects: Vec<LegacyObject>,
}

/// An old tool's object and the paths it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyObject {
    /// The object's name under the store prefix.
    pub name: LegacyName,
    /// The paths, as restore paths (`vendor`, `~/.cache/go-build`).
    pub paths: Vec<String>,
    /// How the old tool named the members.
    pub names: MemberNames,
}

impl LegacyObject {
    /// Whether a restore in `cwd` can place its members: it names paths, they resolve, and plain
    /// names are of paths inside the workspace only (`tar` names others by absolute path). Another
    /// object is not tried.
    pub fn fits(&self, cwd: &Path, home: Option<&Path>) -> bool {
        !self.paths.is_empty()
            && match resolve_roots(&self.paths, cwd, home) {
                Ok(roots) => self.names != MemberNames::Plain || roots.iter().all(|root| root.dir.starts_with(cwd)),
                Err(_) => false,
            }
    }
}

/// An old object's name under the store prefix: fixed, or around the restore's rendered key
/// (drone-cache's `<root>/<key>/<mount>`), so that a front end can name it before the key is rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegacyName {
    /// The name itself.
    Fixed(String),
    /// `before`, the rendered key, `after`.
    AroundKey {
        /// What comes before the key.
        before: String,
        /// What comes after the key.
        after: String,
    },
}

impl LegacyName {
    /// The name, given the rendered key.
    pub fn render(&self, key: &str) -> String {
        match self {
            LegacyName::Fixed(name) => name.clone(),
            LegacyName::AroundKey { before, after } => format!("{before}{key}{after}"),
        }
    }
}

/// How another tool's archive names its members, relative to the path it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemberNames {
    /// As plain `tar` names them: relative to the working directory for paths inside it, by absolute
    /// path (`tar -P`) elsewhere.
    #[default]
    Plain,
    /// Always by absolute path (`/drone/src/vendor/x`: meltwater drone-cache since 1.4).
    Absolute,
    /// Relative to the directory that contains the path (`vendor/x` for `a/b/vendor`: vela-s3-cache).
    FromParent,
}
