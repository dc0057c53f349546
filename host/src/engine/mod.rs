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
//!
//! The files, one concept each: [`request`] (what is asked, including older tools' objects to accept, and what happened), `keys` (rendering and
//! checking keys), `save`, `restore`, `candidates` (choosing the entry a restore uses), `legacy`
//! (restoring older tools' archives), `touch` (last-used markers), [`crate::report`] (what an operation reports:
//! notices, warnings, requests and retries, instead of printing), the administration ([`admin`]), `inspect` (an entry's manifest and signature, [`inspect`]),
//! scopes ([`scope`]) and the cancellation token ([`crate::cancel`]).

pub mod admin;
pub(crate) mod candidates;
pub mod inspect;
pub(crate) mod keys;
pub(crate) mod legacy;
pub mod request;
pub(crate) mod restore;
pub(crate) mod save;
pub mod scope;
pub(crate) mod summary;
mod touch;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sha2::Digest;

use crate::archive::layout::{Format, Layout};
use crate::cancel::Cancel;
use crate::engine::keys::{guest_env, workspace_preopen};
use crate::engine::scope::ScopePlan;
use crate::report::Reporter;
use crate::sandbox::bindings::{Root, UnpackLimits};
use crate::sandbox::{GuestEnv, GuestInstance, Preopen, Sandbox};
use crate::signing::Signing;
use crate::store::{BlobStore, StoreError};
pub use crate::workspace::paths::PathError;
use crate::workspace::paths::{CachedRoot, plain_prefix, plain_spelling};
use crate::workspace::protected::Protected;

pub use keys::compute_key;
pub use request::{Fallback, Hit, Legacy, LegacyName, LegacyObject, MemberNames, RestoreOutcome, RestoreRequest, SaveOutcome, SaveRequest};

/// Longest key, as in actions/cache.
pub const MAX_KEY_LENGTH: usize = 512;

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
    /// What saves sign with and restores trust ([`Signing`]; by default, nothing: entries are
    /// neither signed nor checked).
    pub signing: Signing,
    /// Where the operations report what happens, with their secrets and request count
    /// ([`CacheContext::with_reporter`]).
    pub(crate) reporter: Reporter,
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
            signing: Signing::default(),
            reporter: Reporter::silent(),
        }
        .with_reporter(Reporter::stderr())
    }

    /// This context reporting to `reporter`: its operations' notices and warnings go there, its
    /// secrets are scrubbed from them, and the S3 requests of its store are counted there. Like the
    /// cancellation token, a reporter belongs to an operation: give each operation that runs beside
    /// others a context with its own (`context.clone().with_reporter(...)`). Set [`CacheContext::store`]
    /// before this, so that the store counts its requests here.
    pub fn with_reporter(mut self, reporter: Reporter) -> Self {
        if let Some(store) = self.store.reporting_to(&reporter) {
            self.store = store;
        }
        self.reporter = reporter;
        self
    }

    /// Where this context's operations report ([`CacheContext::with_reporter`]; by default, lines on
    /// stderr as the CLI prints them).
    pub fn reporter(&self) -> &Reporter {
        &self.reporter
    }

    /// The store's name in this context's manifests: `--store-namespace`, else the store's location
    /// without a trailing `/` (`s3://bucket/prefix`, `file:///dir`).
    pub fn store_namespace(&self) -> String {
        self.signing.store_namespace.clone().unwrap_or_else(|| self.store.location().trim_end_matches('/').to_owned())
    }

    /// The scope an entry saved now records: the write scope, or none in the Flat layout.
    fn recorded_scope(&self) -> String {
        if self.layout.scoped() { self.scopes.write.clone() } else { String::new() }
    }

    /// The bytes of `object` from `start` to its end, in one ranged GET: its tail, where the trailer is.
    pub(crate) fn read_from(&self, object: &crate::store::ObjectInfo, start: u64) -> Result<Vec<u8>, StoreError> {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut self.store.read(object, start, object.size)?, &mut bytes)
            .map_err(|e| StoreError::Io { path: object.name.clone().into(), source: e })?;
        Ok(bytes)
    }

    /// The last [`crate::archive::trailer::TAIL_FETCH`] bytes of `object` ([`CacheContext::read_from`]).
    pub(crate) fn read_tail(&self, object: &crate::store::ObjectInfo) -> Result<Vec<u8>, StoreError> {
        self.read_from(object, object.size.saturating_sub(crate::archive::trailer::TAIL_FETCH))
    }

    /// A store failure as a miss or a failed save says it: scrubbed, with what to check when access was denied.
    fn describe_store_error(&self, err: &StoreError) -> String {
        let text = self.reporter.scrub(&err.to_string());
        if err.is_access_denied() {
            format!("{text} (check the credentials and that the bucket policy allows s3:GetObject, s3:PutObject and s3:ListBucket)")
        } else {
            text
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
    #[error(
        "invalid key {key:?}: its object names would be up to {bytes} bytes with the store prefix {prefix:?}, the scope and the suffix; S3 allows at most {limit}"
    )]
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
pub(crate) enum ExtractError {
    /// The operation could not go on at all.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// This archive was not restored, and nothing was changed: the reason, for the miss.
    #[error("{0}")]
    NotRestored(String),
    /// The archive itself is refused (damaged, altered, hostile, over a limit, its digest wrong) and
    /// nothing was changed: another candidate may still do.
    #[error("{0}")]
    BadArchive(String),
}

/// What [`CacheContext::extract`] moved into place.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Extracted {
    /// Archive members extracted.
    pub members: u64,
    /// Local files the entry lacks, removed with the paths it replaced as a whole ([`Hit::removed_local_files`]).
    pub removed_local_files: u64,
}

impl Extracted {
    /// A lookup's: the entry's `members` counted, nothing extracted, nothing removed.
    pub(crate) fn lookup(members: u64) -> Self {
        Self { members, removed_local_files: 0 }
    }
}

/// How the guest is told to name members: s3cache's own prefixes, or another tool's naming.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Naming<'a> {
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

/// An entry's version: SHA-256 (hex, 16 digits) over its path list, each line in its plain spelling
/// (`./x`, `x/` and `x` are one path, `x`), the archive format ([`Format::name`]) and,
/// unless saved for every OS, the operating system. Like actions/cache's version, it keeps a restore
/// from unpacking an archive made for other paths or another platform under the same key. Paths
/// already in their plain spelling hash as they did before spellings were folded together.
pub fn entry_version(paths: &[String], format: Format, cross_os: bool) -> String {
    let mut hasher = sha2::Sha256::new();
    for path in paths {
        let lines: Vec<String> = path.split('\n').map(plain_spelling).collect();
        hasher.update(lines.join("\n").as_bytes());
        hasher.update(b"\n");
    }
    hasher.update(format.name().as_bytes());
    hasher.update(if cross_os { "\0cross-os" } else { std::env::consts::OS }.as_bytes());
    hex::encode(&hasher.finalize()[..8])
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
        self.sandbox.instance(&self.preopens(extra), self.env_for_guest(), &self.reporter).map_err(EngineError::SandboxStart)
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

    /// What a restore without paths refuses, in this workspace and home directory.
    fn protected(&self) -> Protected {
        Protected::new(&self.cwd, self.home.as_deref())
    }

    /// s3cache's own member names, or plain `tar` names for entries written for other tools.
    fn naming(&self, plain_names: bool) -> Naming<'_> {
        if plain_names { Naming::Other(MemberNames::Plain, &self.cwd) } else { Naming::S3cache }
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

    /// The plain spelling of a path keeps the version entries were saved with before spellings were
    /// folded together (the literals are what the code computed then); the other spellings share it.
    #[test]
    fn versions_of_path_spellings() {
        let version = |paths: &[&str]| entry_version(&paths.iter().map(|p| p.to_string()).collect::<Vec<_>>(), Format::Zstd, true);
        assert_eq!(version(&["node_modules"]), "6b02069fe6250b3c");
        assert_eq!(version(&["node_modules", "~/.npm"]), "cfd46b08a879e881");
        for spelling in ["./node_modules", "node_modules/", "node_modules//", "node_modules/./", " ./node_modules/ "] {
            assert_eq!(version(&[spelling]), "6b02069fe6250b3c", "{spelling:?}");
        }
        assert_eq!(version(&["./node_modules\n~/.npm/"]), version(&["node_modules\n~/.npm"]), "lines of one value");
        assert_eq!(version(&["node_modules\n~/.npm"]), version(&["node_modules", "~/.npm"]), "lines of one value or values");
        assert_ne!(version(&["node_modules"]), version(&["../node_modules"]));
    }

    /// An old object is tried only when the workspace can place its members (relative names only of
    /// paths inside the workspace), and its name is built around the rendered key.
    #[test]
    fn legacy_objects_that_fit_the_workspace() {
        let (cwd, home) = (std::path::Path::new("/ws"), Some(std::path::Path::new("/home/u")));
        let object = |paths: &[&str], names| LegacyObject {
            name: LegacyName::Fixed("old".into()),
            paths: paths.iter().map(|p| p.to_string()).collect(),
            names,
        };
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
