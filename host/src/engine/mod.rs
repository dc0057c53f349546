//! Cache semantics, shared by every front end: computing keys, looking up an exact key then
//! restore-key prefixes scope by scope, skipping saves of keys that exist, and turning every
//! operational failure into a value (a miss, or a save that did not happen) with a reason, never a
//! failed build.
//!
//! Objects are stored as `<store prefix>/<scope>/<encoded key><format suffix>` (scopes: [`crate::engine::scope`],
//! names and the key's encoding: [`crate::archive::layout`]): the archive, then a trailer ([`crate::archive::trailer`]) with the manifest and
//! the archive's SHA-256. The manifest carries the entry's version ([`entry_version`]);
//! a restore passes over candidates of another version and says which it passed over and why. A
//! restore that uses an entry whose last use is older than [`crate::archive::layout::TOUCH_INTERVAL`] refreshes
//! its last-used marker with one small PUT beside the download, for least-recently-used eviction.
//!
//! A save or restore stops when its context's [`Cancel`] token is cancelled: reads and writes of
//! archive data fail from then on, and the upload (aborted) and the staging directories (removed)
//! are cleaned up by hooks on the token at once, whatever the operation's thread is waiting for. The
//! outcome is then `Interrupted`: nothing saved, the target as it was.

pub mod admin;
pub mod scope;
pub(crate) mod summary;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::Digest;

use crate::sandbox::bindings::{GuestError, PackOptions, Root, TemplateContext, UnpackLimits};
use crate::cancel::{Cancel, CancelReader, CancelWriter};
use crate::archive::catalog::{self, Entry};
use crate::archive::layout::{Format, Layout};
pub use crate::workspace::paths::PathError;
use crate::workspace::paths::{CachedRoot, plain_prefix, resolve_each, resolve_roots};
use crate::workspace::protected::Protected;
use crate::engine::scope::ScopePlan;
use crate::sandbox::{GuestEnv, GuestInstance, Preopen, ReadSource, Sandbox, SandboxError};
use crate::workspace::staging::Staging;
use crate::store::{BlobStore, PutOptions, StoreError, Upload};
use crate::archive::trailer::{self, Manifest, SealingWriter, VerifyingReader};
use crate::archive::{pack, unpack};
use crate::env_vars;
use crate::ui::{output, progress};
use crate::workspace::fsmeta;

/// Entries up to this size are fetched with a single GET.
const SMALL_ENTRY: u64 = 4 << 20;
/// Longest key, as in actions/cache.
pub const MAX_KEY_LENGTH: usize = 512;
/// Most candidate entries a restore examines before it gives up (each costs a ranged GET).
const MAX_CANDIDATES: usize = 10;

/// Reads an environment variable; injected so that embedders and tests control the environment.
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Everything a cache operation needs besides its request.
#[derive(Clone)]
pub struct CacheContext {
    /// Where entries are kept ([`crate::open_store`], or an embedder's own [`BlobStore`]).
    pub store: Arc<dyn BlobStore>,
    /// The loaded guest; one per process is enough, instances are cheap.
    pub sandbox: Arc<Sandbox>,
    /// The workspace: relative paths and template files resolve against it.
    pub cwd: PathBuf,
    /// The home directory, for `~` paths; `None` refuses them.
    pub home: Option<PathBuf>,
    /// The environment that key templates (`{{ env "NAME" }}`) and the branch variables read.
    pub env: EnvLookup,
    /// Bounds on what a restore accepts from an archive.
    pub unpack_limits: UnpackLimits,
    /// Where this run reads and writes ([`crate::engine::scope::plan`]; [`ScopePlan::single`] for one scope).
    pub scopes: ScopePlan,
    /// A restore refreshes the last-used marker of an entry whose last use is older than this
    /// ([`crate::archive::layout::TOUCH_INTERVAL`] by default).
    pub touch_interval: Duration,
    /// How entries are named ([`Layout::Scoped`] but for the Semaphore dialect).
    pub layout: Layout,
    /// Cancelling it stops the save or restore in progress ([`SaveOutcome::Interrupted`],
    /// [`RestoreOutcome::Interrupted`]); the CLI cancels it on SIGINT and SIGTERM. Never cancelled by default.
    pub cancel: Cancel,
}

impl CacheContext {
    /// A context for one workspace with the defaults of a local run: the process environment, the
    /// platform's home directory, the default unpack limits, the one scope
    /// [`crate::engine::scope::LOCAL_SCOPE`] and the scoped layout. Change the fields for anything else, or
    /// use [`crate::config::resolve`] to configure it as the CLI does.
    pub fn new(store: Arc<dyn BlobStore>, sandbox: Arc<Sandbox>, cwd: PathBuf) -> Self {
        Self {
            store,
            sandbox,
            cwd,
            home: dirs::home_dir(),
            env: Arc::new(|name| std::env::var(name).ok().filter(|v| !v.is_empty())),
            unpack_limits: UnpackLimits::default_limits(),
            scopes: ScopePlan::single(crate::engine::scope::LOCAL_SCOPE),
            touch_interval: crate::archive::layout::TOUCH_INTERVAL,
            layout: Layout::Scoped,
            cancel: Cancel::default(),
        }
    }
}

impl std::fmt::Debug for CacheContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheContext").field("store", &self.store.location()).field("cwd", &self.cwd).finish_non_exhaustive()
    }
}

/// Something the user has to fix; the operation did not start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A path that cannot be cached (outside the workspace and home, the filesystem root, none given).
    #[error(transparent)]
    Paths(#[from] PathError),
    /// A key that breaks a rule (too long, a comma, a control character, a `..` segment...).
    #[error("invalid key {key:?}: {rule}")]
    InvalidKey {
        /// The key as rendered.
        key: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// A key whose longest object name, with the store prefix, the scope and the suffixes, would be
    /// longer than S3 allows ([`crate::store::MAX_OBJECT_KEY_BYTES`]).
    #[error("invalid key {key:?}: its object names would be up to {bytes} bytes with the store prefix {prefix:?}, the scope and the suffix; S3 allows at most {limit}")]
    ObjectNameTooLong {
        /// The key as rendered.
        key: String,
        /// The store's prefix.
        prefix: String,
        /// Bytes of the longest object name (its last-used marker's).
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// A key template that does not parse or render.
    #[error("{0}")]
    Template(String),
    /// A compression level the format does not have.
    #[error("compression level {level} is out of range for the {format} format: it takes {min} to {max}")]
    CompressionLevel {
        /// The format asked for.
        format: Format,
        /// The level asked for.
        level: i32,
        /// The format's lowest level.
        min: i32,
        /// The format's highest level.
        max: i32,
    },
}

/// Why a save, a restore or a key's rendering did not happen: the request is the user's to fix, or
/// the sandbox could not start. Everything that goes wrong later is an outcome ([`SaveOutcome::Failed`],
/// [`RestoreOutcome::Miss`]), not an error.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The request is the user's to fix.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The guest could not be instantiated.
    #[error("could not start the sandbox: {0:#}")]
    SandboxStart(anyhow::Error),
}

impl From<PathError> for EngineError {
    fn from(err: PathError) -> Self {
        Self::Config(err.into())
    }
}

/// Why [`CacheContext::extract`] did not restore an archive.
#[derive(Debug, thiserror::Error)]
enum ExtractError {
    /// The operation could not go on at all.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// This archive was not restored, and nothing was changed: the reason, for the miss.
    #[error("{0}")]
    NotRestored(String),
}

/// A request to save paths under a key.
#[derive(Debug, Clone)]
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

/// A request to restore paths.
#[derive(Debug, Clone)]
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

/// How the guest is told to name members: s3cache's own prefixes, or another tool's naming.
#[derive(Debug, Clone, Copy)]
enum Naming<'a> {
    S3cache,
    Other(MemberNames, &'a std::path::Path),
}

impl Naming<'_> {
    fn prefix(self, root: &CachedRoot) -> String {
        match self {
            Naming::S3cache => root.prefix.clone(),
            Naming::Other(MemberNames::Plain, cwd) => plain_prefix(root, cwd),
            Naming::Other(MemberNames::Absolute, _) => root.dir.to_string_lossy().into_owned(),
            Naming::Other(MemberNames::FromParent, _) => String::new(),
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

/// The `{{ branch }}` and friends of this run.
fn template_context(env: &EnvLookup) -> TemplateContext {
    let branch = env_vars::BRANCH_VARIABLES.iter().find_map(|name| env(name).filter(|v| !v.is_empty())).unwrap_or_default();
    TemplateContext {
        os: std::env::consts::OS.into(),
        arch: std::env::consts::ARCH.into(),
        branch,
        epoch: SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs(),
        workspace_dir: "/workspace".into(),
    }
}

/// Checks a rendered key against actions/cache's rules, plus ours: at most 512 bytes, not empty, no
/// commas (except in the Flat layout: Semaphore's CLI stores `a,b` as one key, and restores split
/// lists before this), no control characters; and, since a key may hold `/`, not starting or ending
/// with `/`, no empty segment (`a//b`) and no `.` or `..` segment (a whole segment between slashes:
/// `v1..2` is fine), which a server or proxy could resolve as a path. No request is sent before it.
pub fn validate_key(key: &str, layout: Layout) -> Result<(), ConfigError> {
    check_key_text(key, layout, false)
}

/// [`validate_key`] for a restore key, which is a key prefix: it may end with `/` (`npm/` matches
/// `npm/linux-…`), and its last segment, which a key may continue, is not checked for `.` and `..`.
pub fn validate_restore_key(prefix: &str, layout: Layout) -> Result<(), ConfigError> {
    check_key_text(prefix, layout, true)
}

fn check_key_text(key: &str, layout: Layout, is_prefix: bool) -> Result<(), ConfigError> {
    let invalid = |rule| Err(ConfigError::InvalidKey { key: key.to_owned(), rule });
    if key.is_empty() {
        return invalid("a key must not be empty");
    }
    if key.len() > MAX_KEY_LENGTH {
        return invalid("a key must be at most 512 bytes");
    }
    if key.contains(',') && layout.scoped() {
        return invalid("a key must not contain commas");
    }
    if key.chars().any(char::is_control) {
        return invalid("a key must not contain control characters");
    }
    if key.starts_with('/') {
        return invalid("a key must not start with \"/\"");
    }
    if key.ends_with('/') && !is_prefix {
        return invalid("a key must not end with \"/\" (a restore key may: it is a prefix)");
    }
    let segments: Vec<&str> = key.split('/').collect();
    // A prefix's last segment may be the start of a longer one (`deps/.` of `deps/.cache`), or empty.
    let whole = if is_prefix { &segments[..segments.len() - 1] } else { &segments[..] };
    if whole.iter().any(|s| s.is_empty()) {
        return invalid("a key must not contain an empty segment (\"//\")");
    }
    if whole.iter().any(|s| *s == "." || *s == "..") {
        return invalid("a key must not have \".\" or \"..\" as a segment between slashes");
    }
    Ok(())
}

/// An entry's version: SHA-256 (hex, 16 digits) over its path list as given, the archive format
/// ([`Format::name`]) and, unless saved for every OS, the operating system. Like actions/cache's version, it
/// keeps a restore from unpacking an archive made for other paths or another platform under the same key.
pub fn entry_version(paths: &[String], format: Format, cross_os: bool) -> String {
    let mut hasher = sha2::Sha256::new();
    for path in paths {
        hasher.update(path.as_bytes());
        hasher.update(b"\n");
    }
    hasher.update(format.name().as_bytes());
    hasher.update(if cross_os { "\0cross-os" } else { std::env::consts::OS }.as_bytes());
    hex::encode(&hasher.finalize()[..8])
}

/// The level a save of `format` compresses at: `level` when the format takes it (zstd 1..=19, gzip
/// 1..=9), 0 for tar, which has no levels.
fn compression_level(format: Format, level: Option<i32>) -> Result<i32, ConfigError> {
    let level = level.unwrap_or(format.default_level());
    let (min, max) = match format {
        Format::Zstd => (1, 19),
        Format::Gzip => (1, 9),
        Format::Tar => return Ok(0),
    };
    if !(min..=max).contains(&level) {
        return Err(ConfigError::CompressionLevel { format, level, min, max });
    }
    Ok(level)
}

/// The workspace as key templates see it: read-only, at `/workspace`.
fn workspace_preopen(cwd: &Path) -> Preopen {
    Preopen { host: cwd.to_path_buf(), guest: "/workspace".into(), writable: false }
}

fn guest_env(env: &EnvLookup) -> GuestEnv {
    let env = env.clone();
    Box::new(move |name| env(name))
}

/// Renders a key template in the sandbox against the workspace `cwd` and the environment: what
/// [`CacheContext::compute_key`] does, for a caller that has no store (`s3cache key`).
pub fn compute_key(sandbox: &Sandbox, cwd: &Path, env: &EnvLookup, template: &str) -> Result<String, EngineError> {
    KeyRenderer::new(sandbox, cwd, env).render(template)
}

/// The guest's view of `roots`, mounted at `guest_dir(i)`, members named as `naming` says.
fn guest_roots(roots: &[CachedRoot], guest_dir: impl Fn(usize) -> String, naming: Naming<'_>) -> Vec<Root> {
    roots
        .iter()
        .enumerate()
        .map(|(i, r)| Root {
            guest_dir: guest_dir(i),
            member_prefix: naming.prefix(r),
            include_globs: r.include.clone(),
            exclude_globs: r.exclude.clone(),
        })
        .collect()
}

impl CacheContext {
    fn instance(&self, extra: Vec<Preopen>) -> Result<GuestInstance, EngineError> {
        self.sandbox.instance(&self.preopens(extra), self.env_for_guest()).map_err(EngineError::SandboxStart)
    }

    /// The workspace (read-only, for key templates) and `extra`.
    fn preopens(&self, extra: Vec<Preopen>) -> Vec<Preopen> {
        let mut preopens = vec![workspace_preopen(&self.cwd)];
        preopens.extend(extra);
        preopens
    }

    fn env_for_guest(&self) -> GuestEnv {
        guest_env(&self.env)
    }

    /// Renders a key template in the sandbox, without looking at any cached path.
    pub fn compute_key(&self, template: &str) -> Result<String, EngineError> {
        compute_key(&self.sandbox, &self.cwd, &self.env, template)
    }

    /// Checks a rendered key as [`validate_key`] does, and that its object names in this store fit
    /// S3's limit in every scope the run reads or writes. Sends no request.
    pub fn check_key(&self, key: &str) -> Result<(), ConfigError> {
        validate_key(key, self.layout)?;
        self.check_name_length(key)
    }

    /// [`CacheContext::check_key`] for a restore key (a key prefix, [`validate_restore_key`]).
    pub fn check_restore_key(&self, prefix: &str) -> Result<(), ConfigError> {
        validate_restore_key(prefix, self.layout)?;
        self.check_name_length(prefix)
    }

    /// The longest object name of `key` (a prefix is as long as the shortest key it matches) must fit.
    fn check_name_length(&self, key: &str) -> Result<(), ConfigError> {
        let prefix = self.store.name_prefix();
        let scopes = self.scopes.read.iter().chain(std::iter::once(&self.scopes.write));
        let bytes = prefix.len() + scopes.map(|scope| self.layout.longest_object_bytes(scope, key)).max().unwrap_or(0);
        let limit = crate::store::MAX_OBJECT_KEY_BYTES;
        if bytes > limit {
            return Err(ConfigError::ObjectNameTooLong { key: key.to_owned(), prefix: prefix.to_owned(), bytes, limit });
        }
        Ok(())
    }

    /// Saves `request.paths` under the rendered key, unless an entry with that key exists.
    pub fn save(&self, request: &SaveRequest) -> Result<SaveOutcome, EngineError> {
        if self.cancel.is_cancelled() {
            return Ok(SaveOutcome::Interrupted { key: None });
        }
        Ok(match self.save_until_cancelled(request)? {
            SaveOutcome::Failed { key, .. } | SaveOutcome::Skipped { key, .. } if self.cancel.is_cancelled() => SaveOutcome::Interrupted { key },
            outcome => outcome,
        })
    }

    fn save_until_cancelled(&self, request: &SaveRequest) -> Result<SaveOutcome, EngineError> {
        let started = Instant::now();
        let level = compression_level(request.format, request.compression_level)?;
        if let Some(reason) = self.store.read_only() {
            return Ok(SaveOutcome::Failed { key: None, reason: StoreError::ReadOnly(reason).to_string() });
        }
        if let Some(reason) = &self.scopes.read_only {
            return Ok(SaveOutcome::Skipped { key: None, reason: reason.clone() });
        }
        let roots = resolve_roots(&request.paths, &self.cwd, self.home.as_deref())?;
        let existing: Vec<CachedRoot> = roots.into_iter().filter(|r| r.dir.is_dir()).collect();
        let preopens: Vec<Preopen> =
            existing.iter().enumerate().map(|(i, r)| Preopen { host: r.dir.clone(), guest: format!("/roots/{i}"), writable: false }).collect();
        let mut guest = self.instance(preopens.clone())?;
        let guest_roots = guest_roots(&existing, |i| format!("/roots/{i}"), self.naming(request.plain_names));
        let resolution = match guest.resolve(&request.key, &template_context(&self.env), &guest_roots) {
            Ok(resolution) => resolution,
            // A bad template or glob is the user's to fix; an unreadable directory is a failed save.
            Err(SandboxError::Guest(err @ (GuestError::InvalidTemplate(_) | GuestError::InvalidPattern(_)))) => {
                return Err(ConfigError::Template(crate::sandbox::describe_guest_error(&err)).into());
            }
            Err(err) => return Ok(SaveOutcome::Failed { key: None, reason: err.to_string() }),
        };
        tracing::debug!(found = resolution.found.len(), elapsed = ?started.elapsed(), "resolved key and paths");
        let key = resolution.key;
        self.check_key(&key)?;
        let failed = |reason: String| Ok(SaveOutcome::Failed { key: Some(key.clone()), reason });
        if resolution.found.is_empty() {
            return Ok(SaveOutcome::NothingToSave { key });
        }
        let name = self.layout.entry_object(&self.scopes.write, &key, request.format);
        if !request.overwrite {
            // First writer wins per key, whatever the format it saved, and whatever name an earlier
            // s3cache gave it (a slash-named entry of this key is this key's entry).
            match catalog::find_restorable(self.store.as_ref(), self.layout, &self.scopes.write, &key) {
                Ok(found) if !found.is_empty() => return Ok(SaveOutcome::AlreadyExists { key }),
                Ok(_) => {}
                Err(err) => return failed(describe_store_error(&err)),
            }
        }
        let members = match fsmeta::describe(&existing, &resolution.found) {
            Ok(members) => members,
            Err(err) => return failed(err.to_string()),
        };
        tracing::debug!(elapsed = ?started.elapsed(), "read metadata");
        if let Some(why) = self.protected().refused_in_save(&request.paths, &existing, &members) {
            let why = format!("{why}; this entry restores only with its paths given (--path, mount)");
            // The action's restores always give their paths (`~/.cargo/bin` is in actions/cache's
            // own Rust example): there it is a plain line, not an annotation on every save.
            if output::on_github_actions() { output::notice(&why) } else { output::warning(&why) }
        }
        let upload = match self.store.put(&name, PutOptions { if_none_match: !request.overwrite }) {
            Ok(upload) => upload,
            Err(err) => return failed(describe_store_error(&err)),
        };
        // An interrupt aborts the upload at once, even while this thread waits for a part to go out.
        let _abort_on_cancel = upload.abort_handle().map(|abort| self.cancel.on_cancel(abort));
        let upload: Box<dyn Upload> = Box::new(CancelWriter { inner: upload, cancel: self.cancel.clone() });
        let total: u64 = members.iter().map(|m| m.size).sum();
        self.sandbox.expect_heavy_work(total);
        let bar = progress::bytes_bar("saving", Some(total));
        let (mut sealing, seal) = SealingWriter::new(Box::new(progress::CountingWriter::new(upload, bar.clone())));
        let options = PackOptions { compression: request.format.into(), level, buffer_size: 1 << 20, end_of_archive: true };
        let instance = || self.sandbox.instance(&self.preopens(preopens.clone()), self.env_for_guest()).map_err(SandboxError::Setup);
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let packed = pack::pack(&instance, &guest_roots, &members, options, workers, &mut sealing);
        bar.finish_and_clear();
        let pack::Packed { summary, parts } = match packed {
            Ok(packed) => packed,
            Err(err) => return failed(err.to_string()), // dropping the sink aborts the upload
        };
        tracing::debug!(tar_bytes = summary.tar_bytes, compressed = summary.compressed_bytes, elapsed = ?started.elapsed(), "packed");
        let (digest, archive_bytes) = seal.lock().expect("seal lock").clone();
        let mut manifest = Manifest {
            format: crate::ARCHIVE_FORMAT,
            sha256: digest.hex(),
            archive_bytes,
            os: std::env::consts::OS.into(),
            arch: std::env::consts::ARCH.into(),
            members: summary.members,
            tar_bytes: summary.tar_bytes,
            compression: request.format.name().into(),
            level,
            version: entry_version(&request.paths, request.format, request.cross_os),
            paths: request.paths.clone(),
            cross_os: request.cross_os,
            plain_names: request.plain_names,
            parts,
        };
        let written = trailer::encode_fitting(&mut manifest).map_err(|e| e.to_string()).and_then(|t| sealing.write_all(&t).map_err(|e| e.to_string()));
        if let Err(err) = written {
            return failed(format!("writing the manifest: {err}"));
        }
        if let Err(err) = self.cancel.check() {
            return failed(err.to_string()); // dropping the sink aborts the upload
        }
        match Box::new(sealing).finish() {
            Ok(bytes) => Ok(SaveOutcome::Saved { key, bytes, members: summary.members, elapsed: started.elapsed(), sha256: manifest.sha256 }),
            Err(StoreError::AlreadyExists(_)) => Ok(SaveOutcome::AlreadyExists { key }),
            Err(err) => failed(describe_store_error(&err)),
        }
    }

    /// Restores the newest entry matching the key or a restore key into `request.paths`.
    pub fn restore(&self, request: &RestoreRequest) -> Result<RestoreOutcome, EngineError> {
        if self.cancel.is_cancelled() {
            return Ok(RestoreOutcome::Interrupted { primary_key: None });
        }
        Ok(match self.restore_until_cancelled(request)? {
            RestoreOutcome::Miss { primary_key, .. } if self.cancel.is_cancelled() => RestoreOutcome::Interrupted { primary_key },
            outcome => outcome,
        })
    }

    fn restore_until_cancelled(&self, request: &RestoreRequest) -> Result<RestoreOutcome, EngineError> {
        let started = Instant::now();
        let given_roots = if request.paths.is_empty() { None } else { Some(resolve_roots(&request.paths, &self.cwd, self.home.as_deref())?) };
        let mut renderer = KeyRenderer::new(&self.sandbox, &self.cwd, &self.env);
        let primary_key = renderer.render(&request.key)?;
        self.check_key(&primary_key)?;
        let mut restore_keys = Vec::new();
        for template in &request.restore_keys {
            let prefix = renderer.render(template)?;
            self.check_restore_key(&prefix)?;
            restore_keys.push(prefix);
        }
        let miss = |reason: String| Ok(RestoreOutcome::Miss { primary_key: Some(primary_key.clone()), reason, failed: true });

        let restore_keys = if request.exact_key_only { &[][..] } else { &restore_keys[..] };
        let wanted = Wanted { paths: given_roots.is_some().then(|| request.paths.clone()), cross_os: request.cross_os };
        let legacy = request.legacy.as_ref();
        let Chosen { entry, manifest, source } = match self.choose(&primary_key, restore_keys, request.fallback, &wanted, legacy.is_some_and(|l| l.in_search)) {
            Ok(chosen) => chosen,
            Err(search) => {
                if let Some(outcome) = legacy.and_then(|l| self.restore_legacy_objects(l, &primary_key, started)) {
                    return Ok(outcome);
                }
                let fallbacks = if restore_keys.is_empty() { "" } else { " or its restore keys" };
                let scopes = self.scopes.read.join(", ");
                let mut reason = format!("no usable cache entry for key {primary_key:?}{fallbacks} in scopes {scopes}");
                if !search.rejected.is_empty() {
                    reason.push_str(&format!("; passed over: {}", search.rejected.join("; ")));
                }
                if let Some(err) = search.store_error {
                    reason = format!("{reason}; the store failed: {err}");
                }
                return Ok(RestoreOutcome::Miss { primary_key: Some(primary_key.clone()), reason, failed: search.failed });
            }
        };
        let matched_key = entry.name.key.clone();
        let sha256 = manifest.as_ref().map(|m| m.sha256.clone()).unwrap_or_default();
        let recorded_paths = manifest.as_ref().map(|m| m.paths.clone()).unwrap_or_default();
        let hit = |members: u64, restored: bool| Hit {
            exact: matched_key == primary_key,
            primary_key: primary_key.clone(),
            matched_key: matched_key.clone(),
            bytes: entry.size(),
            members,
            elapsed: started.elapsed(),
            sha256: sha256.clone(),
            restored,
            scope: entry.name.scope.clone(),
            paths: recorded_paths.clone(),
        };
        let Some(manifest) = manifest else {
            // Another tool's archive found by the search: its members go where it put them.
            let legacy = legacy.expect("only a legacy search yields entries without a manifest");
            if request.lookup_only {
                return Ok(RestoreOutcome::Hit(hit(0, false)));
            }
            self.announce_legacy(&entry.object.name, legacy);
            let protected = given_roots.is_none().then(|| self.protected());
            let roots = given_roots.unwrap_or_else(|| self.anywhere_roots());
            return match self.extract(&roots, Naming::Other(MemberNames::Plain, &self.cwd), legacy.format, entry.size(), &[], source, protected) {
                Ok(members) => Ok(RestoreOutcome::Hit(hit(members, true))),
                Err(ExtractError::NotRestored(why)) => miss(format!("cache entry {matched_key:?} was not restored: {why}")),
                Err(ExtractError::Engine(err)) => Err(err),
            };
        };
        if request.lookup_only {
            return Ok(RestoreOutcome::Hit(hit(manifest.members, false)));
        }
        let protected = given_roots.is_none().then(|| self.protected());
        let roots = match given_roots {
            Some(roots) => roots,
            None => match self.manifest_roots(&manifest) {
                Ok(roots) => roots,
                Err(why) => return miss(format!("cache entry {matched_key:?} was not restored: {why}")),
            },
        };
        let _touch = self.touch(&entry);
        let Some(format) = manifest.archive_format() else { return miss(format!("unknown archive format {:?}", manifest.compression)) };
        match self.extract(&roots, self.naming(manifest.plain_names), format, manifest.archive_bytes, &manifest.parts, source, protected) {
            Ok(members) => Ok(RestoreOutcome::Hit(hit(members, true))),
            Err(ExtractError::NotRestored(why)) => miss(format!("cache entry {matched_key:?} was not restored: {why}")),
            Err(ExtractError::Engine(err)) => Err(err),
        }
    }

    /// Extracts an archive of `format` from `source` into `roots` through staging directories and
    /// moves it into place; returns the member count, or why nothing was changed. `parts` are the
    /// compressed lengths of its independently decodable parts, from the manifest (empty: unknown):
    /// several of them are decoded on every core ([`parallel_unpack`]). With `protected` (a restore
    /// without paths), every staged member is judged by its rules before anything is moved.
    #[allow(clippy::too_many_arguments)]
    fn extract(
        &self,
        roots: &[CachedRoot],
        naming: Naming<'_>,
        format: Format,
        bytes: u64,
        parts: &[u64],
        source: Box<dyn Read + Send>,
        protected: Option<Protected>,
    ) -> Result<u64, ExtractError> {
        let started = Instant::now();
        self.sandbox.expect_heavy_work(bytes);
        crate::workspace::staging::remove_stale(roots);
        let staging = match Staging::create(roots) {
            Ok(staging) => staging,
            Err(err) => return Err(ExtractError::NotRestored(format!("could not create a staging directory: {err}"))),
        };
        // An interrupt removes the staging directories at once, even while this thread waits for data.
        let discard_on_cancel = self.cancel.on_cancel(staging.discard_handle());
        let preopens = staging.dirs().iter().enumerate().map(|(i, d)| Preopen { host: d.clone(), guest: format!("/stage/{i}"), writable: true }).collect();
        let mut guest = self.instance(preopens)?;
        let bar = progress::bytes_bar("restoring", Some(bytes));
        let source = Box::new(CancelReader { inner: source, cancel: self.cancel.clone() });
        let source = Box::new(progress::CountingReader::new(source, bar.clone()));
        let roots_seen = guest_roots(roots, |i| format!("/stage/{i}"), naming);
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let report = if unpack::applies(format.into(), parts, workers) {
            // Decoders see no directory at all: they only turn compressed bytes into tar.
            let decoder = || self.sandbox.instance(&[], Box::new(|_: &str| None)).map_err(SandboxError::Setup);
            unpack::unpack(&decoder, &mut guest, &roots_seen, format.into(), self.unpack_limits, parts, source, workers)
        } else {
            guest.unpack(&roots_seen, format.into(), self.unpack_limits, Box::new(ReadSource(source)))
        };
        bar.finish_and_clear();
        let report = match report {
            Ok(report) => report,
            Err(err) => return Err(ExtractError::NotRestored(err.to_string())),
        };
        tracing::debug!(members = report.members, elapsed = ?started.elapsed(), "unpacked into staging");
        if let Err(err) = fsmeta::apply_fixups(staging.dirs(), &report.fixups) {
            return Err(ExtractError::NotRestored(err.to_string()));
        }
        tracing::debug!(elapsed = ?started.elapsed(), "applied modes, links and times");
        if let Some(Err(why)) = protected.as_ref().map(|rules| rules.check_staged(roots, staging.dirs())) {
            return Err(ExtractError::NotRestored(format!("{why}; {}", crate::workspace::protected::GIVE_PATHS)));
        }
        // From here the move into place runs to its end: no interrupt may remove what it moves.
        drop(discard_on_cancel);
        if let Err(err) = self.cancel.check() {
            return Err(ExtractError::NotRestored(err.to_string()));
        }
        if let Err(err) = staging.commit(roots) {
            return Err(ExtractError::NotRestored(format!("it could not be moved into place: {err}")));
        }
        Ok(report.members)
    }

    /// What a restore without paths refuses, in this workspace and home directory.
    fn protected(&self) -> Protected {
        Protected::new(&self.cwd, self.home.as_deref())
    }

    /// s3cache's own member names, or plain `tar` names for entries written for other tools.
    fn naming(&self, plain_names: bool) -> Naming<'_> {
        if plain_names { Naming::Other(MemberNames::Plain, &self.cwd) } else { Naming::S3cache }
    }

    /// The roots of an old tool's archive whose path is not known: anything in the workspace, or
    /// (named by absolute path) in the home directory. Staging merges only what the archive holds.
    fn anywhere_roots(&self) -> Vec<CachedRoot> {
        let mut roots = vec![CachedRoot { dir: self.cwd.clone(), prefix: String::new(), include: vec!["**".into()], exclude: Vec::new() }];
        if let Some(home) = self.home.as_ref().filter(|home| **home != self.cwd) {
            roots.push(CachedRoot { dir: home.clone(), prefix: String::new(), include: vec!["**".into()], exclude: Vec::new() });
        }
        roots
    }

    fn announce_legacy(&self, object: &str, legacy: &Legacy) {
        output::notice(&format!("restoring {object} without a digest check: it has no s3cache manifest ({} wrote it)", legacy.writer));
    }

    /// Tries an old tool's objects at their own names, after no s3cache entry was found.
    fn restore_legacy_objects(&self, legacy: &Legacy, primary_key: &str, started: Instant) -> Option<RestoreOutcome> {
        for object in &legacy.objects {
            let name = object.name.render(primary_key);
            if !object.fits(&self.cwd, self.home.as_deref()) {
                tracing::debug!(object = %name, paths = ?object.paths, "an old object whose member names this restore cannot place; not tried");
                continue;
            }
            let info = match self.store.head(&name) {
                Ok(Some(info)) if info.size > 0 => info,
                Ok(_) => continue,
                Err(err) => return Some(RestoreOutcome::Miss { primary_key: Some(primary_key.to_owned()), reason: describe_store_error(&err), failed: true }),
            };
            if self.has_trailer(&info) {
                continue; // an s3cache entry: the search has judged it already
            }
            let failed = |why: String| Some(RestoreOutcome::Miss { primary_key: Some(primary_key.to_owned()), reason: format!("{name} was not restored: {why}"), failed: true });
            let roots = match object.names {
                MemberNames::FromParent => resolve_each(&object.paths, &self.cwd, self.home.as_deref()),
                MemberNames::Plain | MemberNames::Absolute => resolve_roots(&object.paths, &self.cwd, self.home.as_deref()),
            };
            let roots = match roots {
                Ok(roots) => roots,
                Err(err) => return failed(err.to_string()),
            };
            let source = match self.store.read(&info, 0, info.size) {
                Ok(source) => source,
                Err(err) => return failed(describe_store_error(&err)),
            };
            self.announce_legacy(&name, legacy);
            return Some(match self.extract(&roots, Naming::Other(object.names, &self.cwd), legacy.format, info.size, &[], source, None) {
                Ok(members) => RestoreOutcome::Hit(Hit {
                    primary_key: primary_key.to_owned(),
                    matched_key: name.clone(),
                    exact: false,
                    bytes: info.size,
                    members,
                    elapsed: started.elapsed(),
                    sha256: String::new(),
                    restored: true,
                    scope: String::new(),
                    paths: object.paths.clone(),
                }),
                Err(err) => return failed(err.to_string()),
            });
        }
        None
    }

    /// Whether an object ends in an s3cache trailer (one ranged GET of its tail).
    fn has_trailer(&self, info: &crate::store::ObjectInfo) -> bool {
        let start = info.size.saturating_sub(trailer::TAIL_FETCH);
        let mut tail = Vec::new();
        self.store.read(info, start, info.size).is_ok_and(|mut r| r.read_to_end(&mut tail).is_ok()) && trailer::decode(&tail, info.size).is_ok()
    }

    /// Reads an entry's trailer and checks it can be restored here; returns the manifest and a stream of
    /// the archive that fails at its end unless every byte matches the manifest's SHA-256.
    fn open_entry(&self, found: &crate::store::ObjectInfo, wanted: &Wanted) -> Result<(Manifest, Box<dyn Read + Send>), Rejection> {
        if found.size == 0 {
            return Err(Rejection::Broken("the object is empty".into()));
        }
        // Small entries are read whole in one request; large ones tail first, then streamed.
        let tail_start = if found.size <= SMALL_ENTRY { 0 } else { found.size.saturating_sub(trailer::TAIL_FETCH) };
        let mut tail = Vec::new();
        self.store
            .read(found, tail_start, found.size)
            .and_then(|mut r| r.read_to_end(&mut tail).map_err(|e| StoreError::Io { path: found.name.clone().into(), source: e }))
            .map_err(|e| Rejection::Store(describe_store_error(&e)))?;
        let manifest = trailer::decode(&tail, found.size).map_err(|e| match e {
            trailer::TrailerError::Missing => Rejection::Foreign(e.to_string()),
            other => Rejection::Broken(other.to_string()),
        })?;
        if manifest.format != crate::ARCHIVE_FORMAT {
            let why = format!("archive format {} is not {} (saved by another s3cache version)", manifest.format, crate::ARCHIVE_FORMAT);
            return Err(Rejection::Version(why));
        }
        if !wanted.fits(&manifest) {
            return Err(Rejection::Version(explain_version_mismatch(&manifest)));
        }
        if wanted.paths.is_none() {
            self.manifest_roots(&manifest).map_err(Rejection::Refused)?;
        }
        let source: Box<dyn Read + Send> = if tail_start == 0 {
            // Already read whole: no second request.
            tail.truncate(manifest.archive_bytes as usize);
            Box::new(std::io::Cursor::new(tail))
        } else {
            self.store.read(found, 0, manifest.archive_bytes).map_err(|e| Rejection::Store(describe_store_error(&e)))?
        };
        Ok((manifest.clone(), Box::new(VerifyingReader::new(source, manifest))))
    }

    /// Searches the read scopes in order — in each, the exact key, then every restore-key prefix newest
    /// first — and opens the first candidate of the right version. Candidates passed over are recorded
    /// with the reason, so a miss can say what existed.
    fn choose(&self, primary_key: &str, restore_keys: &[String], fallback: Fallback, wanted: &Wanted, legacy: bool) -> Result<Chosen, Search> {
        let mut search = Search::default();
        let mut examined = 0;
        // One namespace has one "scope" to search, however many the run's refs name.
        let scopes = if self.layout.scoped() { &self.scopes.read[..] } else { &self.scopes.read[..1] };
        for scope in scopes {
            let groups = match self.candidates(scope, primary_key, restore_keys, fallback) {
                Ok(groups) => groups,
                Err(err) => return Err(search.store_failed(&err)),
            };
            for entry in groups.into_iter().flatten() {
                if examined == MAX_CANDIDATES {
                    search.rejected.push(format!("stopped after {MAX_CANDIDATES} candidates"));
                    return Err(search);
                }
                examined += 1;
                match self.open_entry(&entry.object, wanted) {
                    Ok((manifest, source)) => return Ok(Chosen { entry, manifest: Some(manifest), source }),
                    Err(Rejection::Foreign(_)) if legacy => match self.store.read(&entry.object, 0, entry.size()) {
                        Ok(source) => return Ok(Chosen { entry, manifest: None, source }),
                        Err(err) => return Err(search.store_failed(&err)),
                    },
                    Err(rejection) => {
                        let (why, failed) = match rejection {
                            Rejection::Version(why) => (why, false),
                            Rejection::Broken(why) | Rejection::Foreign(why) | Rejection::Store(why) | Rejection::Refused(why) => (why, true),
                        };
                        output::notice(&format!("passing over cache entry {}: {why}", entry.object.name));
                        search.failed |= failed;
                        search.rejected.push(format!("{}: {why}", entry.object.name));
                    }
                }
            }
        }
        Err(search)
    }

    /// The candidate entries of one scope, in the order they are tried, in groups. Slash-named entries
    /// (an earlier s3cache's names for keys with `/`) are candidates too: exact ones after today's.
    fn candidates(&self, scope: &str, primary_key: &str, restore_keys: &[String], fallback: Fallback) -> Result<Vec<Vec<Entry>>, StoreError> {
        let store = self.store.as_ref();
        let exact = |key: &str| catalog::find_restorable(store, self.layout, scope, key);
        let scope_prefix = if self.layout.scoped() { format!("{scope}/") } else { String::new() };
        let in_scope = |entry: &Entry| !self.layout.scoped() || entry.name.scope == scope;
        let mut groups = vec![exact(primary_key)?];
        match fallback {
            Fallback::Prefix => {
                for prefix in restore_keys {
                    groups.push(catalog::list_restorable(store, self.layout, scope, prefix)?);
                }
            }
            Fallback::Pattern => {
                let mut listing: Option<Vec<Entry>> = None;
                for (index, key) in std::iter::once(primary_key).chain(restore_keys.iter().map(String::as_str)).enumerate() {
                    if index > 0 {
                        groups.push(exact(key)?);
                    }
                    let Ok(pattern) = regex::Regex::new(key) else { continue };
                    let all = match &listing {
                        Some(all) => all,
                        None => listing.insert(catalog::list(store, self.layout, &scope_prefix)?),
                    };
                    groups.push(all.iter().filter(|e| in_scope(e) && pattern.is_match(&e.name.key)).cloned().collect());
                }
            }
        }
        Ok(groups)
    }

    /// The roots of a restore that takes its paths from the entry's manifest. The manifest is the
    /// archive's claim, so its paths must resolve into the workspace or the home directory, and not
    /// to what a restore without paths refuses ([`Protected::refused_root`]).
    fn manifest_roots(&self, manifest: &Manifest) -> Result<Vec<CachedRoot>, String> {
        if manifest.paths.is_empty() {
            return Err("the entry records no paths; give the paths to restore".into());
        }
        let roots = resolve_roots(&manifest.paths, &self.cwd, self.home.as_deref()).map_err(|e| format!("its recorded paths are unusable: {e}"))?;
        if let Some(why) = self.protected().refused_root(&roots) {
            return Err(format!("{why}; {}", crate::workspace::protected::GIVE_PATHS));
        }
        match roots.iter().find(|r| !(r.prefix == "workspace" || r.prefix.starts_with("workspace/") || r.prefix == "home" || r.prefix.starts_with("home/"))) {
            Some(outside) => Err(format!("its recorded path {} is outside the workspace and the home directory; give the paths to restore", outside.dir.display())),
            None => Ok(roots),
        }
    }

    /// Refreshes `entry`'s last-used marker when it is stale, on a thread beside the restore: one small
    /// PUT, never on the critical path, and its failure (a read-only credential, say) is only logged.
    /// Untrusted and read-only runs write nothing. The returned guard waits for the PUT when dropped.
    fn touch(&self, entry: &Entry) -> Option<Touch> {
        if self.scopes.read_only.is_some() || self.store.read_only().is_some() || !entry.needs_touch(SystemTime::now(), self.touch_interval) {
            return None;
        }
        // A slash-named entry gets no new marker: no admin verb would ever see it.
        if self.layout.classify(&entry.object.name) == crate::archive::layout::StoreObject::Foreign {
            return None;
        }
        let store = self.store.clone();
        let marker = self.layout.marker(&entry.object.name)?;
        let thread = std::thread::spawn(move || {
            let written = store.put(&marker, PutOptions { if_none_match: false }).and_then(|upload| upload.finish());
            if let Err(err) = written {
                tracing::debug!(%marker, "could not refresh the last-used marker: {err}");
            }
        });
        Some(Touch(Some(thread)))
    }
}

/// A marker refresh in flight; dropping it waits for the PUT (bounded by the transport's timeouts).
struct Touch(Option<std::thread::JoinHandle<()>>);

impl Drop for Touch {
    fn drop(&mut self) {
        if let Some(thread) = self.0.take() {
            let _ = thread.join();
        }
    }
}

/// The versions a restore accepts: its paths (or, when it has none, the entry's own), in the entry's
/// own format.
struct Wanted {
    paths: Option<Vec<String>>,
    /// Whether the restore accepts entries saved for every OS on another OS.
    cross_os: bool,
}

impl Wanted {
    /// This OS's entries always fit; entries saved for every OS on another OS fit when cross-OS is on.
    fn fits(&self, manifest: &Manifest) -> bool {
        let Some(format) = Format::from_name(&manifest.compression) else { return false };
        let paths = self.paths.as_ref().unwrap_or(&manifest.paths);
        manifest.version == entry_version(paths, format, false)
            || (manifest.version == entry_version(paths, format, true) && (self.cross_os || manifest.os == std::env::consts::OS))
    }
}

/// The entry a restore will use.
struct Chosen {
    entry: Entry,
    /// `None` for another tool's archive (a legacy restore).
    manifest: Option<Manifest>,
    source: Box<dyn Read + Send>,
}

/// What a search that found nothing usable saw.
#[derive(Default)]
struct Search {
    rejected: Vec<String>,
    /// Whether an entry existed but could not be used for a reason other than its version.
    failed: bool,
    store_error: Option<String>,
}

impl Search {
    fn store_failed(mut self, err: &StoreError) -> Self {
        self.failed = true;
        self.store_error = Some(describe_store_error(err));
        self
    }
}

/// Why a candidate entry was passed over.
enum Rejection {
    /// Made for other paths, another OS or another archive format: not this restore's entry.
    Version(String),
    /// Empty, with a damaged trailer, or otherwise not a readable entry.
    Broken(String),
    /// Without s3cache's trailer: not an s3cache entry (perhaps another tool's archive).
    Foreign(String),
    /// The store failed while reading it.
    Store(String),
    /// A restore without paths cannot use the paths it records ([`CacheContext::manifest_roots`]).
    Refused(String),
}

/// Why an entry's version is not the restore's, in the user's terms.
fn explain_version_mismatch(manifest: &Manifest) -> String {
    if manifest.version.is_empty() {
        return "it was saved by an s3cache without entry versions".into();
    }
    let this_os = std::env::consts::OS;
    if !manifest.cross_os && manifest.os != this_os {
        return format!("it was saved on {} for that OS only, this is {this_os} (save and restore with cross-OS enabled to share it)", manifest.os);
    }
    if manifest.cross_os && manifest.os != this_os {
        return format!("it was saved on {} for every OS; enable cross-OS restore to use it here", manifest.os);
    }
    format!(
        "its version differs: saved for paths {:?}{}; the restore's paths or cross-OS setting are not the same",
        manifest.paths,
        if manifest.cross_os { " with cross-OS" } else { "" }
    )
}

/// Renders key templates in one guest instance, started only for a template that has something to
/// render: a key without `{{` is the key itself (the guest returns it as is), and CI systems often pass
/// keys they have already expanded.
struct KeyRenderer<'a> {
    sandbox: &'a Sandbox,
    cwd: &'a Path,
    env: &'a EnvLookup,
    template_context: TemplateContext,
    guest: Option<GuestInstance>,
}

impl<'a> KeyRenderer<'a> {
    fn new(sandbox: &'a Sandbox, cwd: &'a Path, env: &'a EnvLookup) -> Self {
        Self { sandbox, cwd, env, template_context: template_context(env), guest: None }
    }

    fn render(&mut self, template: &str) -> Result<String, EngineError> {
        if !template.contains("{{") {
            return Ok(template.to_owned());
        }
        let guest = match &mut self.guest {
            Some(guest) => guest,
            None => self.guest.insert(self.sandbox.instance(&[workspace_preopen(self.cwd)], guest_env(self.env)).map_err(EngineError::SandboxStart)?),
        };
        match guest.resolve(template, &self.template_context, &[]) {
            Ok(resolution) => Ok(resolution.key),
            Err(SandboxError::Guest(err)) => Err(ConfigError::Template(crate::sandbox::describe_guest_error(&err)).into()),
            Err(err) => Err(ConfigError::Template(err.to_string()).into()),
        }
    }
}

fn describe_store_error(err: &StoreError) -> String {
    let text = output::scrub(&err.to_string());
    if err.is_access_denied() {
        format!("{text} (check the credentials and that the bucket policy allows s3:GetObject, s3:PutObject and s3:ListBucket)")
    } else {
        text
    }
}

impl UnpackLimits {
    /// The largest uncompressed archive a restore accepts by default, bytes (`--max-unpacked-mb` 65536).
    pub const DEFAULT_MAX_TOTAL_BYTES: u64 = 64 << 30;
    /// The most members a restore accepts by default (`--max-entries`).
    pub const DEFAULT_MAX_MEMBERS: u64 = 5_000_000;

    /// Generous bounds for real caches that still stop a hostile archive.
    pub fn default_limits() -> Self {
        Self { max_total_bytes: Self::DEFAULT_MAX_TOTAL_BYTES, max_members: Self::DEFAULT_MAX_MEMBERS, max_path_bytes: 4096, max_depth: 256, max_window_log: 27 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key limit counts bytes of UTF-8, as the message says; commas and control characters are
    /// refused, commas only where keys are scoped.
    #[test]
    fn key_rules() {
        let rule = |key: &str, layout| match validate_key(key, layout) {
            Ok(()) => None,
            Err(ConfigError::InvalidKey { rule, .. }) => Some(rule),
            Err(other) => panic!("{other}"),
        };
        assert_eq!(rule(&"a".repeat(512), Layout::Scoped), None);
        assert_eq!(rule(&"é".repeat(256), Layout::Scoped), None);
        assert_eq!(rule(&"é".repeat(257), Layout::Scoped), Some("a key must be at most 512 bytes"));
        assert_eq!(rule(&"a".repeat(513), Layout::Scoped), Some("a key must be at most 512 bytes"));
        assert_eq!(rule("", Layout::Scoped), Some("a key must not be empty"));
        assert_eq!(rule("a,b", Layout::Scoped), Some("a key must not contain commas"));
        assert_eq!(rule("a,b", Layout::Flat), None);
        assert_eq!(rule("a\tb", Layout::Scoped), Some("a key must not contain control characters"));
    }

    /// Keys may hold `/`, but not as a path could read it: no `.` or `..` segment, no empty segment,
    /// no `/` at either end; a restore key is a prefix, so it may end with `/` or a partial segment.
    #[test]
    fn key_segment_rules() {
        let rule = |key: &str, is_prefix: bool| match check_key_text(key, Layout::Scoped, is_prefix) {
            Ok(()) => None,
            Err(ConfigError::InvalidKey { rule, .. }) => Some(rule),
            Err(other) => panic!("{other}"),
        };
        let dots = Some("a key must not have \".\" or \"..\" as a segment between slashes");
        let empty = Some("a key must not contain an empty segment (\"//\")");
        for key in ["../etc", "a/../b", "a/..", "..", ".", "a/./b", "./a"] {
            assert_eq!(rule(key, false), dots, "{key}");
        }
        for key in ["a/b/c", "v1..2", "a/..b", "a/.cache", "...", "npm-v1.2/linux"] {
            assert_eq!(rule(key, false), None, "{key}");
            assert_eq!(rule(key, true), None, "{key}");
        }
        assert_eq!(rule("a//b", false), empty);
        assert_eq!(rule("/a", false), Some("a key must not start with \"/\""));
        assert_eq!(rule("/a", true), Some("a key must not start with \"/\""));
        assert_eq!(rule("npm-v1/", false), Some("a key must not end with \"/\" (a restore key may: it is a prefix)"));
        assert_eq!(rule("npm-v1/", true), None);
        assert_eq!(rule("deps/.", true), None);
        assert_eq!(rule("deps/..", true), None);
        assert_eq!(rule("deps/../x", true), dots);
        assert_eq!(rule("../", true), dots);
        assert_eq!(rule("npm//", true), empty);
        assert_eq!(rule("a\u{7f}/b", false), Some("a key must not contain control characters"));
        assert!(validate_restore_key("npm/", Layout::Scoped).is_ok() && validate_key("npm/", Layout::Scoped).is_err());
    }

    /// An old object is tried only when the workspace can place its members (relative names only of
    /// paths inside the workspace), and its name is built around the rendered key.
    #[test]
    fn legacy_objects_that_fit_the_workspace() {
        let (cwd, home) = (Path::new("/ws"), Some(Path::new("/home/u")));
        let object = |paths: &[&str], names| LegacyObject { name: LegacyName::Fixed("old".into()), paths: paths.iter().map(|p| p.to_string()).collect(), names };
        assert!(object(&["node_modules"], MemberNames::Plain).fits(cwd, home));
        assert!(object(&["a", "b"], MemberNames::Plain).fits(cwd, home), "several paths in one object");
        assert!(!object(&["a", "/opt/x"], MemberNames::Plain).fits(cwd, home), "plain names of a path outside the workspace");
        assert!(object(&["~/.m2"], MemberNames::Absolute).fits(cwd, home));
        assert!(object(&["vendor"], MemberNames::Absolute).fits(cwd, home), "drone-cache's absolute names of a workspace path");
        assert!(object(&["a/b"], MemberNames::FromParent).fits(cwd, home), "Vela's names below a nested mount's parent");
        assert!(!object(&[], MemberNames::Absolute).fits(cwd, home), "no paths");
        let around = LegacyName::AroundKey { before: "app/".into(), after: "/vendor".into() };
        assert_eq!(around.render("k1"), "app/k1/vendor");
        assert_eq!(LegacyName::Fixed("deps.tgz".into()).render("k1"), "deps.tgz");
    }
}
