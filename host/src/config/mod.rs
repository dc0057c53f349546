//! Configuration: the settings every front end fills (store, scopes, transfer, publishing, limits),
//! and [`resolve`], the one call that turns them and the environment into a ready [`CacheContext`]:
//! the default store, endpoint and region fallbacks, the credential chain, the sandbox and the CI's
//! scopes. The CLI, the GitHub action, the CI plugins and embedders all come through here, so they
//! behave the same.
//!
//! The settings are also the CLI's global flags (`clap::Args`), with their variables in one place; an
//! embedder builds them with `Settings::default()` and changes what it needs. Each default is defined
//! once, as a constant of the type that owns the setting ([`crate::store::TransportConfig`]'s
//! timeouts, `RetryPolicy`'s attempts, [`crate::store::UploadConfig`]'s parts,
//! [`crate::GuestLimits`], [`crate::sandbox::UnpackLimits`], the touch interval and leftover age);
//! clap's defaults and the library's `Default`s read those constants, and tests check README's option
//! tables and the catalogue's docs (`env_vars.rs`) against them.

pub(crate) mod parse;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use crate::engine::scope::{self, ScopePlan};
use crate::engine::{CacheContext, EnvLookup};
use crate::report::Reporter;
use crate::sandbox::bindings::UnpackLimits;
use crate::store::s3::client::{RetryPolicy, TransportConfig};
use crate::store::s3::credentials::{ChainInputs, resolve_chain};
use crate::store::s3::download::DownloadConfig;
use crate::store::s3::upload::UploadConfig;
use crate::store::s3::{Credentials, Endpoint, EndpointError, PublishOptions};
use crate::{GuestLimits, S3Options, Sandbox, env_vars};

/// Everything that configures a run, whatever the command.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Where caches live: s3://bucket[/prefix], file:///dir, or a public https:// URL (read-only).
    /// Default: a local store under the user cache directory.
    #[arg(long, global = true, env = env_vars::S3CACHE_STORE, value_name = "URL")]
    pub store: Option<String>,
    /// S3 endpoint URL, with its scheme: http:// or https://, then host and port (default:
    /// AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, else AWS itself).
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Region (default: AWS_REGION, AWS_DEFAULT_REGION, else us-east-1).
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// Use path-style addressing (host/bucket/key); automatic for IP and localhost endpoints.
    #[arg(long, global = true)]
    pub path_style: bool,
    /// Use AWS's dual-stack endpoint (when no --endpoint is given).
    #[arg(long, global = true)]
    pub dualstack: bool,
    /// Use S3 Transfer Acceleration (when no --endpoint is given).
    #[arg(long, global = true)]
    pub accelerate: bool,
    /// Send unsigned requests, for a public bucket; saving is refused.
    #[arg(long, global = true, env = env_vars::S3CACHE_ANONYMOUS, value_parser = parse::flags::boolean, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub anonymous: bool,
    /// The profile in ~/.aws/config and ~/.aws/credentials (default: AWS_PROFILE, else `default`).
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// Which scopes the run reads and writes.
    #[command(flatten)]
    pub scope: ScopeSettings,
    /// Timeouts, retries, part sizes and concurrency.
    #[command(flatten)]
    pub transfer: TransferSettings,
    /// Options for new objects.
    #[command(flatten)]
    pub publish: PublishSettings,
    /// The sandbox's limits.
    #[command(flatten)]
    pub limits: LimitSettings,
    /// Signed entries: the key saves sign with, the keys restores trust.
    #[command(flatten)]
    pub signing: SigningSettings,
    /// Refresh an entry's last-used marker on a restore when its last use is older than this (the
    /// precision of flush and prune; 0s refreshes on every hit).
    #[arg(long, global = true, env = env_vars::S3CACHE_TOUCH_INTERVAL, value_parser = parse::flags::duration, default_value = parse::duration_text(crate::archive::layout::TOUCH_INTERVAL), value_name = "DURATION")]
    pub touch_interval: Duration,
    /// prune, flush and clear remove incomplete uploads and temporary files (of writes that were
    /// killed) older than this; younger ones may be saves in progress.
    #[arg(long, global = true, env = env_vars::S3CACHE_LEFTOVER_AGE, value_parser = parse::flags::duration, default_value = parse::duration_text(crate::engine::admin::DEFAULT_LEFTOVER_AGE), value_name = "DURATION")]
    pub leftover_age: Duration,
}

/// Branch isolation.
#[derive(Debug, Clone, Default, Args)]
pub struct ScopeSettings {
    /// Read and write only this scope instead of the CI's ref scopes (current ref, then the pull
    /// request's base, then the default branch).
    #[arg(long, global = true, env = env_vars::S3CACHE_SCOPE, value_name = "NAME")]
    pub scope: Option<String>,
    /// Let untrusted runs (fork pull requests, pull_request_target, workflow_run) save; logged as a warning.
    #[arg(long, global = true, env = env_vars::S3CACHE_ALLOW_UNTRUSTED_SAVE, value_parser = parse::flags::boolean, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub allow_untrusted_save: bool,
}

/// Signed entries (docs/signing.md): what a save signs with and what a restore trusts.
#[derive(Clone, Default, PartialEq, Eq, Args)]
pub struct SigningSettings {
    /// Sign saved entries with this OpenSSH ed25519 private key: its text or the path of its file
    /// (a secret: never printed).
    // The key's text starts with `-----BEGIN`: without allow_hyphen_values clap takes it for an
    // unknown option and echoes it in its error.
    #[arg(long, global = true, env = env_vars::S3CACHE_SIGNING_KEY, value_name = "KEY", hide_env_values = true, allow_hyphen_values = true)]
    pub signing_key: Option<String>,
    /// Restore only entries signed by one of these public keys (`.pub` or `allowed_signers` lines, or
    /// a file of them); set but empty refuses every entry.
    #[arg(long, global = true, env = env_vars::S3CACHE_TRUSTED_KEYS, value_name = "KEYS")]
    pub trusted_keys: Option<String>,
    /// The store's name in entries' manifests, which signed entries must match (default: the store's
    /// location, s3://bucket/prefix).
    #[arg(long, global = true, env = env_vars::S3CACHE_STORE_NAMESPACE, value_name = "NAME")]
    pub store_namespace: Option<String>,
    /// What messages call `signing_key` when a front end took it from a setting of its own (input
    /// `signing-key`, `PLUGIN_SIGNING_KEY`); unset: `--signing-key (S3CACHE_SIGNING_KEY)`.
    #[arg(skip)]
    pub signing_key_source: Option<String>,
    /// What messages call `trusted_keys` when a front end took it from a setting of its own
    /// (`PLUGIN_TRUSTED_KEYS`); unset: `--trusted-keys (S3CACHE_TRUSTED_KEYS)`.
    #[arg(skip)]
    pub trusted_keys_source: Option<String>,
}

impl std::fmt::Debug for SigningSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningSettings")
            .field("signing_key", &self.signing_key.as_ref().map(|_| "***"))
            .field("trusted_keys", &self.trusted_keys)
            .field("store_namespace", &self.store_namespace)
            .field("signing_key_source", &self.signing_key_source)
            .field("trusted_keys_source", &self.trusted_keys_source)
            .finish()
    }
}

impl SigningSettings {
    /// The settings from their variables alone (`S3CACHE_SIGNING_KEY`, `S3CACHE_TRUSTED_KEYS`,
    /// `S3CACHE_STORE_NAMESPACE`), read as the CLI reads them when no flag is given, a variable set
    /// but empty included: for front ends that build their settings in code (Semaphore's `cache`).
    pub fn from_variables() -> Result<Self, clap::Error> {
        let command = Self::augment_args(clap::Command::new("variables").no_binary_name(true));
        <Self as clap::FromArgMatches>::from_arg_matches(&command.try_get_matches_from(Vec::<String>::new())?)
    }

    /// The keys, loaded: a key that cannot be used is an error that names the setting. Its text is
    /// added to `reporter`'s secrets (masked line by line on GitHub Actions); a setting that is set
    /// but empty is a warning that says what happens.
    pub fn load(&self, reporter: &Reporter) -> Result<crate::signing::Signing> {
        // Key text is a secret from the start, even when it does not load; a path is not.
        if let Some(value) = &self.signing_key
            && (value.contains('\n') || value.trim_start().starts_with("-----"))
        {
            reporter.add_secret(value.trim());
        }
        let named = |source: &Option<String>, flag: &str, variable: &str| source.clone().unwrap_or_else(|| format!("{flag} ({variable})"));
        let key_name = named(&self.signing_key_source, "--signing-key", env_vars::S3CACHE_SIGNING_KEY);
        let trusted_name = named(&self.trusted_keys_source, "--trusted-keys", env_vars::S3CACHE_TRUSTED_KEYS);
        // A front end's own setting is named before the flag's error: `PLUGIN_SIGNING_KEY: --signing-key: ...`.
        let from = |source: &Option<String>, error: anyhow::Error| match source {
            Some(source) => error.context(source.clone()),
            None => error,
        };
        let key = match self.signing_key.as_deref() {
            Some(value) if value.trim().is_empty() => {
                reporter.warning(&format!("{key_name} is set but empty: entries are saved unsigned"));
                None
            }
            Some(value) => {
                let key = crate::signing::SigningKey::load(value).map_err(|e| from(&self.signing_key_source, e.into()))?;
                key.mask_lines().iter().for_each(|line| reporter.add_secret(line));
                Some(Arc::new(key))
            }
            None => None,
        };
        let trusted = match self.trusted_keys.as_deref() {
            Some(value) => {
                let trusted = crate::signing::TrustedKeys::parse(value).map_err(|e| from(&self.trusted_keys_source, e.into()))?;
                if trusted.is_empty() {
                    reporter.warning(&format!("{trusted_name} is set but empty: no key is trusted, so every cache entry is refused"));
                }
                Some(Arc::new(trusted))
            }
            None => None,
        };
        if let Some(namespace) = &self.store_namespace
            && namespace.trim().is_empty()
        {
            anyhow::bail!("--store-namespace ({}) is empty; leave it unset for the store's location", env_vars::S3CACHE_STORE_NAMESPACE);
        }
        Ok(crate::signing::Signing { key, trusted, store_namespace: self.store_namespace.clone() })
    }
}

/// What a restore accepts from an untrusted archive, and the guest's own bounds.
#[derive(Debug, Clone, Args)]
pub struct LimitSettings {
    /// Largest uncompressed archive accepted, MiB.
    #[arg(long, global = true, env = env_vars::S3CACHE_MAX_UNPACKED_MB, default_value_t = UnpackLimits::DEFAULT_MAX_TOTAL_BYTES >> 20)]
    pub max_unpacked_mb: u64,
    /// Most archive members accepted.
    #[arg(long, global = true, env = env_vars::S3CACHE_MAX_ENTRIES, default_value_t = UnpackLimits::DEFAULT_MAX_MEMBERS)]
    pub max_entries: u64,
    /// Memory cap of the sandboxed guest, MiB (16-4096).
    #[arg(long, global = true, env = env_vars::S3CACHE_GUEST_MEMORY_MB, default_value_t = (GuestLimits::DEFAULT_MEMORY_BYTES >> 20) as u64, value_parser = clap::value_parser!(u64).range(16..=4096))]
    pub guest_memory_mb: u64,
    /// Longest one call into the guest may run, ms.
    #[arg(long, global = true, env = env_vars::S3CACHE_GUEST_TIMEOUT_MS, default_value_t = GuestLimits::DEFAULT_DEADLINE.as_millis() as u64)]
    pub guest_timeout_ms: u64,
}

/// Options for the objects a save writes.
#[derive(Debug, Clone, Default, Args)]
pub struct PublishSettings {
    /// Canned ACL, e.g. public-read.
    #[arg(long, global = true)]
    pub acl: Option<String>,
    /// Server-side encryption: AES256 (SSE-S3) or aws:kms (SSE-KMS).
    #[arg(long, global = true, value_parser = ["AES256", "aws:kms"])]
    pub sse: Option<String>,
    /// KMS key id for --sse aws:kms.
    #[arg(long, global = true)]
    pub sse_kms_key_id: Option<String>,
    /// Storage class, e.g. STANDARD_IA.
    #[arg(long, global = true)]
    pub storage_class: Option<String>,
    /// An object tag KEY=VALUE; repeatable.
    #[arg(long = "tag", global = true, value_name = "KEY=VALUE", value_parser = parse_pair)]
    pub tags: Vec<(String, String)>,
    /// User metadata KEY=VALUE (x-amz-meta-KEY); repeatable.
    #[arg(long = "metadata", global = true, value_name = "KEY=VALUE", value_parser = parse_pair)]
    pub metadata: Vec<(String, String)>,
}

fn parse_pair(text: &str) -> Result<(String, String), String> {
    let (key, value) = text.split_once('=').ok_or_else(|| format!("expected KEY=VALUE, got {text:?}"))?;
    if key.is_empty() {
        return Err(format!("empty key in {text:?}"));
    }
    Ok((key.to_owned(), value.to_owned()))
}

impl PublishSettings {
    fn options(&self) -> PublishOptions {
        PublishOptions {
            acl: self.acl.clone(),
            server_side_encryption: self.sse.clone(),
            sse_kms_key_id: self.sse_kms_key_id.clone(),
            storage_class: self.storage_class.clone(),
            tags: self.tags.clone(),
            metadata: self.metadata.clone(),
        }
    }
}

/// Retries, timeouts and transfer sizes.
#[derive(Debug, Clone, Args)]
pub struct TransferSettings {
    /// Upload part and download range size, MiB (5-5120).
    #[arg(long, global = true, env = env_vars::S3CACHE_PART_SIZE_MB, default_value_t = (UploadConfig::DEFAULT_PART_SIZE >> 20) as u64, value_parser = clap::value_parser!(u64).range(5..=5120))]
    pub part_size_mb: u64,
    /// Parts or ranges in flight at once (1-64).
    #[arg(long, global = true, env = env_vars::S3CACHE_CONCURRENCY, default_value_t = UploadConfig::DEFAULT_CONCURRENCY as u64, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub concurrency: u64,
    /// Attempts per request, the first included (1-20).
    #[arg(long, global = true, env = env_vars::S3CACHE_MAX_ATTEMPTS, default_value_t = RetryPolicy::DEFAULT_MAX_ATTEMPTS, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub max_attempts: u32,
    /// Backoff before the first retry, ms (doubles per retry, full jitter).
    #[arg(long, global = true, env = env_vars::S3CACHE_RETRY_BASE_MS, default_value_t = RetryPolicy::DEFAULT_BASE_BACKOFF.as_millis() as u64)]
    pub retry_base_ms: u64,
    /// Connect timeout, seconds.
    #[arg(long, global = true, env = env_vars::S3CACHE_CONNECT_TIMEOUT_SECS, default_value_t = TransportConfig::DEFAULT_CONNECT_TIMEOUT.as_secs())]
    pub connect_timeout_secs: u64,
    /// Longest the server may stay silent, seconds: the wait for the first byte of an answer, and
    /// the longest gap between bytes of a body; 0 counts as 1 (CompleteMultipartUpload waits at least 120).
    #[arg(long, global = true, env = env_vars::S3CACHE_STALL_TIMEOUT_SECS, default_value_t = TransportConfig::DEFAULT_STALL_TIMEOUT.as_secs())]
    pub stall_timeout_secs: u64,
    /// Slowest accepted transfer per request, KiB/s; slower bodies are aborted and retried.
    #[arg(long, global = true, env = env_vars::S3CACHE_MIN_THROUGHPUT_KBPS, default_value_t = TransportConfig::DEFAULT_MIN_THROUGHPUT >> 10)]
    pub min_throughput_kbps: u64,
    /// Budget for a whole save or restore, seconds.
    #[arg(long, global = true, env = env_vars::S3CACHE_DEADLINE_SECS, default_value_t = TransportConfig::DEFAULT_DEADLINE.as_secs())]
    pub deadline_secs: u64,
    /// Seconds to add to the local clock when signing (learned from the server when it is off).
    #[arg(long, global = true, env = env_vars::S3CACHE_CLOCK_OFFSET_SECS, default_value_t = 0, allow_hyphen_values = true)]
    pub clock_offset_secs: i64,
}

impl TransferSettings {
    fn transport(&self) -> TransportConfig {
        TransportConfig {
            connect_timeout: Duration::from_secs(self.connect_timeout_secs),
            stall_timeout: Duration::from_secs(self.stall_timeout_secs.max(1)),
            min_throughput: self.min_throughput_kbps.max(1) << 10,
            deadline: Some(Duration::from_secs(self.deadline_secs)),
            retry: RetryPolicy {
                max_attempts: self.max_attempts,
                base_backoff: Duration::from_millis(self.retry_base_ms),
                max_backoff: RetryPolicy::MAX_BACKOFF,
            },
            clock_offset_secs: self.clock_offset_secs,
        }
    }

    /// Uploads' parts; only a free key is written (first writer wins).
    fn upload(&self) -> UploadConfig {
        UploadConfig { part_size: (self.part_size_mb << 20) as usize, concurrency: self.concurrency as usize, if_none_match: true }
    }

    /// Downloads' ranges, the size of upload parts.
    fn download(&self) -> DownloadConfig {
        DownloadConfig { range_size: self.part_size_mb << 20, concurrency: self.concurrency as usize }
    }
}

/// A settings struct with every clap default, for embedders and front ends that fill fields.
fn defaults<T: clap::FromArgMatches + Args>() -> T {
    let command = T::augment_args(clap::Command::new("defaults").no_binary_name(true));
    // Defaults only: the process environment must not leak into a value built in code.
    let command = command.mut_args(|arg| arg.env(None::<&str>));
    T::from_arg_matches(&command.get_matches_from(Vec::<String>::new())).expect("every setting has a default")
}

impl Default for Settings {
    fn default() -> Self {
        defaults()
    }
}

impl Settings {
    /// The settings the CLI has when given no flags: each one from its `S3CACHE_*` variable (the
    /// `env` column of docs/cli.md's options table) where set, else its default. Unlike
    /// [`Settings::default`], this reads the process environment.
    ///
    /// ```no_run
    /// let settings = s3cache::config::Settings::from_env()?; // S3CACHE_STORE=s3://bucket/ci ...
    /// # Ok::<(), clap::Error>(())
    /// ```
    pub fn from_env() -> Result<Self, clap::Error> {
        let command = Self::augment_args(clap::Command::new("s3cache").no_binary_name(true));
        <Self as clap::FromArgMatches>::from_arg_matches(&command.try_get_matches_from(Vec::<String>::new())?)
    }
}

impl Default for TransferSettings {
    fn default() -> Self {
        defaults()
    }
}

impl Default for LimitSettings {
    fn default() -> Self {
        defaults()
    }
}

/// The process environment with `overrides` on top (a front end's translated settings); empty
/// values count as unset.
pub fn process_env(overrides: Vec<(String, String)>) -> EnvLookup {
    Arc::new(move |name| {
        if let Some((_, value)) = overrides.iter().find(|(n, _)| n == name) {
            return Some(value.clone()).filter(|v| !v.is_empty());
        }
        std::env::var(name).ok().filter(|v| !v.is_empty())
    })
}

/// Where s3cache keeps its own files (the compiled guest, the default store).
pub fn cache_dir(env: &EnvLookup) -> Option<PathBuf> {
    env(env_vars::S3CACHE_CACHE_DIR).map(PathBuf::from).or_else(|| dirs::cache_dir().map(|d| d.join("s3cache")))
}

/// Runs the credential chain for an `s3://` store (unless anonymous) and registers what it finds as
/// secrets, so that they are scrubbed from output and masked on GitHub Actions.
fn credentials(settings: &Settings, env: &EnvLookup, url: &str, region: &str, reporter: &Reporter) -> Result<Option<Credentials>> {
    if !url.starts_with("s3://") || settings.anonymous {
        return Ok(None);
    }
    let profile = settings.profile.clone();
    let env = env.clone();
    let lookup = move |name: &str| if name == env_vars::AWS_PROFILE && profile.is_some() { profile.clone() } else { env(name) };
    let inputs = ChainInputs { env: &lookup, home: dirs::home_dir(), region: region.to_owned() };
    let Some(resolved) = resolve_chain(&inputs)? else { return Ok(None) };
    resolved.credentials.secrets().for_each(|secret| reporter.add_secret(secret));
    tracing::debug!(source = %resolved.source, "credentials found");
    Ok(Some(resolved.credentials))
}

/// The store URL the settings name, or the local default (announced once).
pub fn store_url(settings: &Settings, env: &EnvLookup, reporter: &Reporter) -> Result<String> {
    if let Some(url) = &settings.store {
        return Ok(url.clone());
    }
    let dir = cache_dir(env).context("no store given and no cache directory known; set S3CACHE_STORE")?.join("store");
    let url = format!("file://{}", dir.display());
    reporter.notice(&format!("store: {url} (local default; set S3CACHE_STORE or --store for S3)"));
    Ok(url)
}

/// An S3 endpoint setting that cannot be used (exit 2): the setting it came from, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {error}")]
pub struct EndpointSettingError {
    /// `--endpoint`, `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`.
    pub setting: &'static str,
    /// What is wrong with its value.
    pub error: EndpointError,
}

/// The S3 endpoint the settings name and the setting it came from: `--endpoint`, else
/// `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`; `None` means AWS itself.
fn s3_endpoint(settings: &Settings, env: &EnvLookup) -> Option<(&'static str, String)> {
    let from_env = |name: &'static str| env(name).map(|url| (name, url));
    settings
        .endpoint
        .clone()
        .map(|url| ("--endpoint", url))
        .or_else(|| from_env(env_vars::AWS_ENDPOINT_URL_S3))
        .or_else(|| from_env(env_vars::AWS_ENDPOINT_URL))
}

/// Checks the endpoint of an `s3://` store before anything else is done, so that a bad one is refused
/// before the credential chain or the store sends a request. Other stores do not use it.
fn check_endpoint(url: &str, endpoint: Option<&(&'static str, String)>) -> Result<(), EndpointSettingError> {
    match endpoint {
        Some((setting, value)) if url.starts_with("s3://") => {
            Endpoint::parse(value).map(drop).map_err(|error| EndpointSettingError { setting, error })
        }
        _ => Ok(()),
    }
}

/// Whether this runs on GitHub Actions, where the CLI's warnings become annotations and secrets are
/// masked in the job log (the CLI's renderer turns on GitHub's workflow commands).
pub fn on_github_actions(env: &EnvLookup) -> bool {
    env(env_vars::GITHUB_ACTIONS).is_some_and(|v| v == "true")
}

impl LimitSettings {
    /// The bounds of each guest instance.
    fn guest(&self) -> GuestLimits {
        GuestLimits { memory_bytes: (self.guest_memory_mb << 20) as usize, deadline: Duration::from_millis(self.guest_timeout_ms) }
    }

    /// What a restore accepts from an archive.
    fn unpack(&self) -> UnpackLimits {
        UnpackLimits { max_total_bytes: self.max_unpacked_mb << 20, max_members: self.max_entries, ..UnpackLimits::default_limits() }
    }
}

/// The sandbox with the guest limits of the settings, its compiled guest cached in [`cache_dir`].
fn sandbox(limits: &LimitSettings, env: &EnvLookup) -> Result<Sandbox> {
    Sandbox::load(cache_dir(env).as_deref(), limits.guest())
}

fn working_directory() -> Result<PathBuf> {
    std::env::current_dir().context("reading the working directory")
}

/// Renders a key template (`s3cache key`) in the sandbox against the working directory and the
/// environment. It opens no store and looks for no credentials, so it works without either. The
/// guest's warnings go to `reporter`.
pub fn render_key(settings: &Settings, env: EnvLookup, template: &str, reporter: &Reporter) -> Result<String> {
    let sandbox = sandbox(&settings.limits, &env)?;
    Ok(crate::engine::compute_key(&sandbox, &working_directory()?, &env, template, reporter)?)
}

/// Opens the store, loads the sandbox and plans the scopes: everything an operation needs. The
/// context reports as the CLI prints, on stderr ([`Reporter::stderr`]), with GitHub's workflow
/// commands on GitHub Actions; [`resolve_reporting`] takes the reporter to use instead.
pub fn resolve(settings: &Settings, env: EnvLookup) -> Result<CacheContext> {
    let lines = crate::ui::output::Lines::default();
    if on_github_actions(&env) {
        lines.enable_github_actions();
    }
    resolve_reporting(settings, env, Reporter::new(lines))
}

/// [`resolve`], reporting to `reporter`: what resolving says (the default store, a scope override),
/// the credentials it finds (secrets to scrub) and the context's operations.
pub fn resolve_reporting(settings: &Settings, env: EnvLookup, reporter: Reporter) -> Result<CacheContext> {
    let url = store_url(settings, &env, &reporter)?;
    let endpoint = s3_endpoint(settings, &env);
    check_endpoint(&url, endpoint.as_ref())?;
    let region = settings.region.clone().or_else(|| env(env_vars::AWS_REGION)).or_else(|| env(env_vars::AWS_DEFAULT_REGION));
    let credentials = credentials(settings, &env, &url, region.as_deref().unwrap_or("us-east-1"), &reporter)?;
    let transfer = &settings.transfer;
    let options = S3Options {
        endpoint: endpoint.map(|(_, url)| url),
        region,
        path_style: settings.path_style,
        dualstack: settings.dualstack,
        accelerate: settings.accelerate,
        anonymous: settings.anonymous,
        publish: settings.publish.options(),
        credentials,
        transport: transfer.transport(),
        upload: transfer.upload(),
        download: transfer.download(),
    };
    let store = crate::open_store(&url, options)?;
    let limits = &settings.limits;
    let sandbox = sandbox(limits, &env)?;
    let unpack_limits = limits.unpack();
    let scopes = scopes(&settings.scope, &env, &reporter)?;
    let signing = settings.signing.load(&reporter)?;
    Ok(CacheContext {
        signing,
        touch_interval: settings.touch_interval,
        layout: crate::archive::layout::Layout::Scoped,
        cancel: crate::Cancel::default(),
        reporter: Reporter::silent(),
        scopes,
        unpack_limits,
        store: Arc::from(store),
        sandbox: Arc::new(sandbox),
        cwd: working_directory()?,
        home: dirs::home_dir(),
        env,
    }
    .with_reporter(reporter))
}

/// The run's scopes, from `--scope` or the CI's variables; an override of read-only is a warning.
pub fn scopes(settings: &ScopeSettings, env: &EnvLookup, reporter: &Reporter) -> Result<ScopePlan> {
    if let Some(scope) = &settings.scope {
        crate::archive::layout::validate_scope_name(scope)?;
    }
    let event = env(env_vars::ci::GITHUB_EVENT_PATH).and_then(|path| {
        let parsed = std::fs::read(&path).ok().and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok());
        if parsed.is_none() {
            reporter.warning(&format!("could not read the event payload {path}; scoping without it"));
        }
        parsed
    });
    let refs = scope::ci_refs(&|name| env(name), event.as_ref());
    let plan = scope::plan(&refs, settings.scope.as_deref(), settings.allow_untrusted_save);
    if let (Some(why), true) = (&refs.untrusted, settings.allow_untrusted_save) {
        reporter.warning(&format!("{why}, but saving was allowed explicitly (--allow-untrusted-save)"));
    }
    tracing::debug!(read = ?plan.read, write = %plan.write, source = %plan.source, "scopes");
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings built in code get the CLI's defaults and ignore the process environment.
    #[test]
    fn defaults_match_the_cli() {
        let settings = Settings::default();
        assert_eq!(settings.store, None);
        assert_eq!(settings.transfer.part_size_mb, 8);
        assert_eq!(settings.transfer.concurrency, 4);
        assert_eq!(settings.transfer.max_attempts, 3);
        assert_eq!(settings.limits.guest_memory_mb, 1024);
        assert!(!settings.anonymous && !settings.scope.allow_untrusted_save);
        assert_eq!(settings.leftover_age, crate::engine::admin::DEFAULT_LEFTOVER_AGE);
    }

    /// The library's `Default`s (transport, retries, parts, guest and unpack limits) are the CLI's
    /// defaults: the settings built from clap's defaults give the same values.
    #[test]
    fn library_defaults_are_the_cli_defaults() {
        let settings = Settings::default();
        assert_eq!(format!("{:?}", settings.transfer.transport()), format!("{:?}", TransportConfig::default()));
        let (upload, default_upload) = (settings.transfer.upload(), UploadConfig::default());
        assert_eq!((upload.part_size, upload.concurrency), (default_upload.part_size, default_upload.concurrency));
        assert_eq!(format!("{:?}", settings.transfer.download()), format!("{:?}", DownloadConfig::default()));
        assert_eq!(format!("{:?}", settings.limits.guest()), format!("{:?}", GuestLimits::default()));
        assert_eq!(settings.limits.unpack(), UnpackLimits::default_limits());
        assert_eq!(settings.touch_interval, crate::archive::layout::TOUCH_INTERVAL);
    }

    /// `--stall-timeout-secs` is the one bound on silence, whatever was set before it meant that (a
    /// user's `0` still works: it counts as one second).
    #[test]
    fn the_stall_setting_bounds_silence() {
        let mut transfer = TransferSettings::default();
        assert_eq!(transfer.transport().stall_timeout, Duration::from_secs(20));
        transfer.stall_timeout_secs = 7;
        assert_eq!(transfer.transport().stall_timeout, Duration::from_secs(7));
        transfer.stall_timeout_secs = 0;
        assert_eq!(transfer.transport().stall_timeout, Duration::from_secs(1));
    }

    /// Every setting with a variable and a default is documented with that default: in the option
    /// tables of docs/cli.md and docs/s3.md (`| --flag | VARIABLE | default | ...`) and, where the
    /// catalogue's doc comment names a default, in env_vars.rs.
    #[test]
    fn documented_defaults_are_the_cli_defaults() {
        let readme = [
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/cli.md")),
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/s3.md")),
        ]
        .join("\n");
        let catalogue = include_str!("../env_vars.rs");
        // `5,000,000`, `12h` and `off` are how the documents write 5000000, 12h and false.
        let plain = |text: &str| match text.trim().trim_matches('`').replace(',', "").as_str() {
            "off" => "false".to_owned(),
            other => other.to_owned(),
        };
        let command = Settings::augment_args(clap::Command::new("s3cache"));
        let mut checked = 0;
        for arg in command.get_arguments() {
            let (Some(variable), [default]) = (arg.get_env().and_then(|v| v.to_str()), arg.get_default_values()) else { continue };
            let default = default.to_str().expect("a default is text");
            let flag = format!("| `--{}", arg.get_long().expect("settings are long flags"));
            let row = readme.lines().find(|line| line.starts_with(&flag) && line.contains(&format!("| `{variable}` |")));
            let Some(row) = row else {
                assert_eq!(default, "false", "the option tables of docs/cli.md and docs/s3.md have no row for {flag} ({variable})");
                continue;
            };
            assert_eq!(plain(row.split('|').nth(3).expect("a default column")), default, "docs: {row}");
            // The catalogue's doc comment of the variable, its lines joined.
            let declaration = format!("pub const {variable}: &str");
            let before = &catalogue[..catalogue.find(&declaration).unwrap_or_else(|| panic!("{variable} in env_vars.rs"))];
            let doc: Vec<&str> =
                before.lines().rev().take_while(|line| line.starts_with("///")).map(|line| line.trim_start_matches("///").trim()).collect();
            let doc = doc.into_iter().rev().collect::<Vec<_>>().join(" ");
            if let Some((_, after)) = doc.split_once("(default ") {
                let stated = after.split([')', ';']).next().unwrap_or_default();
                assert_eq!(plain(stated), default, "env_vars.rs, {variable}: {doc}");
            }
            checked += 1;
        }
        assert!(checked >= 15, "only {checked} settings found in the docs' option tables");
        let cap = format!("capped at {} s", RetryPolicy::MAX_BACKOFF.as_secs());
        assert!(
            readme.lines().any(|line| line.starts_with("| `--retry-base-ms`") && line.contains(&cap)),
            "docs/s3.md's --retry-base-ms row says {cap}"
        );
    }

    /// The endpoint comes from `--endpoint`, else `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`; one
    /// without a scheme is refused for an `s3://` store, naming the setting it came from.
    #[test]
    fn endpoint_settings() {
        let env = process_env(vec![
            (env_vars::AWS_ENDPOINT_URL.into(), "minio:9000".into()),
            (env_vars::AWS_ENDPOINT_URL_S3.into(), "http://s3:9000".into()),
        ]);
        let mut settings = Settings::default();
        assert_eq!(s3_endpoint(&settings, &env), Some((env_vars::AWS_ENDPOINT_URL_S3, "http://s3:9000".to_owned())));
        let general = process_env(vec![
            (env_vars::AWS_ENDPOINT_URL.into(), "minio:9000".into()),
            (env_vars::AWS_ENDPOINT_URL_S3.into(), String::new()),
        ]);
        let endpoint = s3_endpoint(&settings, &general);
        let err = check_endpoint("s3://b", endpoint.as_ref()).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"AWS_ENDPOINT_URL: endpoint "minio:9000" has no scheme: write http://minio:9000 for a plain-HTTP server or https://minio:9000 for TLS"#
        );
        assert_eq!(check_endpoint("file:///tmp/s", endpoint.as_ref()), Ok(()));
        settings.endpoint = Some("ftp://x".into());
        assert_eq!(check_endpoint("s3://b", s3_endpoint(&settings, &env).as_ref()).unwrap_err().setting, "--endpoint");
    }

    /// Overrides win over the process environment and empty values are unset.
    #[test]
    fn overrides_win() {
        let env = process_env(vec![("S3CACHE_TEST_OVERRIDE".into(), "x".into()), ("S3CACHE_TEST_EMPTY".into(), String::new())]);
        assert_eq!(env("S3CACHE_TEST_OVERRIDE").as_deref(), Some("x"));
        assert_eq!(env("S3CACHE_TEST_EMPTY"), None);
    }
}
