//! The `s3cache` command: parses flags and the environment once, runs one cache operation, prints
//! the outcome, and maps it to an exit code (see README, "Exit codes").

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use s3cache::cache::{CacheContext, EnvLookup, RestoreOutcome, SaveOutcome};
use s3cache::s3::credentials::{ChainInputs, resolve_chain};
use s3cache::s3::{Credentials, PublishOptions};
use s3cache::s3::client::{RetryPolicy, S3Client, TransportConfig};
use s3cache::s3::download::DownloadConfig;
use s3cache::s3::upload::UploadConfig;
use s3cache::bindings::UnpackLimits;
use s3cache::scope::{self, ScopePlan};
use s3cache::{GuestLimits, RestoreRequest, S3Options, Sandbox, SaveRequest, env_vars, github, output};

/// Exit code for a miss with `--fail-on-cache-miss` or a failure with `--fail-on-error`.
const EXIT_FAILED: u8 = 1;
/// Exit code for a usage or configuration error.
const EXIT_CONFIG: u8 = 2;

/// A CI build cache in any S3-compatible store, with archive handling in a WASI sandbox.
#[derive(Debug, Parser)]
#[command(name = "s3cache", version, about)]
struct Cli {
    #[command(flatten)]
    store: StoreArgs,
    /// Log diagnostics (same as S3CACHE_LOG=debug).
    #[arg(long, short, global = true)]
    verbose: bool,
    /// Write a JSON summary of the save or restore to this file.
    #[arg(long, global = true, env = env_vars::S3CACHE_SUMMARY_JSON, value_name = "FILE")]
    summary_json: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct StoreArgs {
    /// Where caches live: s3://bucket[/prefix] or file:///dir. Default: a local store under the user
    /// cache directory.
    #[arg(long, global = true, env = env_vars::S3CACHE_STORE, value_name = "URL")]
    store: Option<String>,
    /// S3 endpoint URL (default: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, else AWS itself).
    #[arg(long, global = true, value_name = "URL")]
    endpoint: Option<String>,
    /// Region (default: AWS_REGION, AWS_DEFAULT_REGION, else us-east-1).
    #[arg(long, global = true)]
    region: Option<String>,
    /// Use path-style addressing (host/bucket/key); automatic for IP and localhost endpoints.
    #[arg(long, global = true)]
    path_style: bool,
    /// Use AWS's dual-stack endpoint (when no --endpoint is given).
    #[arg(long, global = true)]
    dualstack: bool,
    /// Use S3 Transfer Acceleration (when no --endpoint is given).
    #[arg(long, global = true)]
    accelerate: bool,
    /// Send unsigned requests, for a public bucket; saving is refused.
    #[arg(long, global = true, env = env_vars::S3CACHE_ANONYMOUS, value_parser = clap::builder::BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    anonymous: bool,
    /// The profile in ~/.aws/config and ~/.aws/credentials (default: AWS_PROFILE, else `default`).
    #[arg(long, global = true)]
    profile: Option<String>,
    #[command(flatten)]
    scope: ScopeArgs,
    #[command(flatten)]
    transfer: TransferArgs,
    #[command(flatten)]
    publish: PublishArgs,
    #[command(flatten)]
    limits: LimitArgs,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Scopes (branch isolation)")]
struct ScopeArgs {
    /// Read and write only this scope instead of the CI's ref scopes (current ref, then the pull
    /// request's base, then the default branch).
    #[arg(long, global = true, env = env_vars::S3CACHE_SCOPE, value_name = "NAME")]
    scope: Option<String>,
    /// Let untrusted runs (fork pull requests, pull_request_target, workflow_run) save; logged as a warning.
    #[arg(long, global = true, env = env_vars::S3CACHE_ALLOW_UNTRUSTED_SAVE, value_parser = clap::builder::BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    allow_untrusted_save: bool,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Limits (restores of untrusted archives)")]
struct LimitArgs {
    /// Largest uncompressed archive accepted, MiB.
    #[arg(long, global = true, env = env_vars::S3CACHE_MAX_UNPACKED_MB, default_value_t = 64 << 10)]
    max_unpacked_mb: u64,
    /// Most archive members accepted.
    #[arg(long, global = true, env = env_vars::S3CACHE_MAX_ENTRIES, default_value_t = 5_000_000)]
    max_entries: u64,
    /// Memory cap of the sandboxed guest, MiB.
    #[arg(long, global = true, env = env_vars::S3CACHE_GUEST_MEMORY_MB, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(16..=4096))]
    guest_memory_mb: u64,
    /// Longest one call into the guest may run, ms.
    #[arg(long, global = true, env = env_vars::S3CACHE_GUEST_TIMEOUT_MS, default_value_t = 3_600_000)]
    guest_timeout_ms: u64,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Publishing (new objects)")]
struct PublishArgs {
    /// Canned ACL, e.g. public-read.
    #[arg(long, global = true)]
    acl: Option<String>,
    /// Server-side encryption: AES256 (SSE-S3) or aws:kms (SSE-KMS).
    #[arg(long, global = true, value_parser = ["AES256", "aws:kms"])]
    sse: Option<String>,
    /// KMS key id for --sse aws:kms.
    #[arg(long, global = true)]
    sse_kms_key_id: Option<String>,
    /// Storage class, e.g. STANDARD_IA.
    #[arg(long, global = true)]
    storage_class: Option<String>,
    /// An object tag KEY=VALUE; repeatable.
    #[arg(long = "tag", global = true, value_name = "KEY=VALUE", value_parser = parse_pair)]
    tags: Vec<(String, String)>,
    /// User metadata KEY=VALUE (x-amz-meta-KEY); repeatable.
    #[arg(long = "metadata", global = true, value_name = "KEY=VALUE", value_parser = parse_pair)]
    metadata: Vec<(String, String)>,
}

fn parse_pair(text: &str) -> Result<(String, String), String> {
    let (key, value) = text.split_once('=').ok_or_else(|| format!("expected KEY=VALUE, got {text:?}"))?;
    if key.is_empty() {
        return Err(format!("empty key in {text:?}"));
    }
    Ok((key.to_owned(), value.to_owned()))
}

impl PublishArgs {
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

#[derive(Debug, Args)]
#[command(next_help_heading = "Transfer")]
struct TransferArgs {
    /// Upload part and download range size, MiB.
    #[arg(long, global = true, env = env_vars::S3CACHE_PART_SIZE_MB, default_value_t = 8, value_parser = clap::value_parser!(u64).range(5..=5120))]
    part_size_mb: u64,
    /// Parts or ranges in flight at once.
    #[arg(long, global = true, env = env_vars::S3CACHE_CONCURRENCY, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    concurrency: u64,
    /// Attempts per request, the first included.
    #[arg(long, global = true, env = env_vars::S3CACHE_MAX_ATTEMPTS, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    max_attempts: u32,
    /// Backoff before the first retry, ms (doubles per retry, full jitter).
    #[arg(long, global = true, env = env_vars::S3CACHE_RETRY_BASE_MS, default_value_t = 100)]
    retry_base_ms: u64,
    /// Connect timeout, seconds.
    #[arg(long, global = true, env = env_vars::S3CACHE_CONNECT_TIMEOUT_SECS, default_value_t = 5)]
    connect_timeout_secs: u64,
    /// Grace per request body on top of the minimum throughput, seconds.
    #[arg(long, global = true, env = env_vars::S3CACHE_STALL_TIMEOUT_SECS, default_value_t = 10)]
    stall_timeout_secs: u64,
    /// Slowest accepted transfer per request, KiB/s; slower bodies are aborted and retried.
    #[arg(long, global = true, env = env_vars::S3CACHE_MIN_THROUGHPUT_KBPS, default_value_t = 256)]
    min_throughput_kbps: u64,
    /// Budget for a whole save or restore, seconds.
    #[arg(long, global = true, env = env_vars::S3CACHE_DEADLINE_SECS, default_value_t = 1200)]
    deadline_secs: u64,
    /// Seconds to add to the local clock when signing (learned from the server when it is off).
    #[arg(long, global = true, env = env_vars::S3CACHE_CLOCK_OFFSET_SECS, default_value_t = 0, allow_hyphen_values = true)]
    clock_offset_secs: i64,
}

impl TransferArgs {
    fn transport(&self) -> TransportConfig {
        TransportConfig {
            connect_timeout: Duration::from_secs(self.connect_timeout_secs),
            response_timeout: Duration::from_secs(self.stall_timeout_secs.max(1) * 6),
            min_throughput: self.min_throughput_kbps.max(1) << 10,
            body_grace: Duration::from_secs(self.stall_timeout_secs),
            deadline: Some(Duration::from_secs(self.deadline_secs)),
            retry: RetryPolicy { max_attempts: self.max_attempts, base_backoff: Duration::from_millis(self.retry_base_ms), max_backoff: Duration::from_secs(20) },
            clock_offset_secs: self.clock_offset_secs,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Save paths under a key, unless an entry with that key exists.
    Save(SaveArgs),
    /// Restore paths from the entry with the key, or the newest matching a restore key.
    Restore(RestoreArgs),
    /// Print the key a template renders to.
    Key(KeyArgs),
    /// Run a step of the GitHub action: reads INPUT_* (and STATE_* in post), writes GITHUB_OUTPUT,
    /// GITHUB_STATE and GITHUB_STEP_SUMMARY. Used by action.yml, restore/ and save/.
    GithubAction(GithubActionArgs),
}

#[derive(Debug, Args)]
struct GithubActionArgs {
    /// restore (the action's main step), save, or post (save unless the restore hit the primary key).
    #[arg(value_enum)]
    step: ActionStep,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ActionStep {
    Restore,
    Save,
    Post,
}

#[derive(Debug, Args)]
struct SaveArgs {
    /// The key, or a template such as 'deps-{{ hashFiles "**/Cargo.lock" }}'.
    #[arg(long)]
    key: String,
    /// Paths to cache: files, directories, globs; `!` excludes; `~` is expanded. Repeatable.
    #[arg(long = "path", required = true, value_name = "PATH")]
    paths: Vec<String>,
    /// Archive format: zstd (default), gzip or tar.
    #[arg(long, value_enum, default_value_t)]
    format: s3cache::layout::Format,
    /// Compression level (zstd 1-19, gzip 1-9; ignored for tar).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19))]
    compression_level: i32,
    /// Exit 1 when the save fails (network, store, unreadable files) instead of warning.
    #[arg(long)]
    fail_on_error: bool,
    /// Replace an existing entry with this key instead of keeping the first one.
    #[arg(long)]
    overwrite: bool,
    /// Save for every operating system (restores elsewhere need --enable-cross-os-archive too).
    #[arg(long)]
    enable_cross_os_archive: bool,
}

#[derive(Debug, Args)]
struct RestoreArgs {
    /// The primary key (or template); matched exactly.
    #[arg(long)]
    key: String,
    /// A key prefix to fall back to, newest match first. Repeatable; tried in order.
    #[arg(long = "restore-key", value_name = "PREFIX")]
    restore_keys: Vec<String>,
    /// Paths to restore; must be the same list the cache was saved with.
    #[arg(long = "path", required = true, value_name = "PATH")]
    paths: Vec<String>,
    /// Exit 1 when nothing is restored.
    #[arg(long)]
    fail_on_cache_miss: bool,
    /// Also restore entries saved on another operating system.
    #[arg(long)]
    enable_cross_os_archive: bool,
    /// Only check that an entry exists and is restorable; download nothing.
    #[arg(long)]
    lookup_only: bool,
    /// Restore only the exact key, never a restore-key match (release builds).
    #[arg(long)]
    exact_key_only: bool,
}

#[derive(Debug, Args)]
struct KeyArgs {
    /// The template, e.g. '{{ os }}-{{ checksum "Cargo.lock" }}'.
    #[arg(long)]
    template: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::GithubAction(GithubActionArgs { step }) => github_action(step),
        _ => run(cli).map(|(code, _)| code),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {}", output::scrub(&output::escape(&format!("{err:#}"))));
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

fn init_logging(verbose: bool) {
    let default = if verbose { "warn,s3cache=debug,guest=debug" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env(env_vars::S3CACHE_LOG).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}

/// Variables set from a GitHub action's inputs; they win over the process environment.
static ENV_OVERRIDES: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();

fn env_var(name: &str) -> Option<String> {
    if let Some((_, value)) = ENV_OVERRIDES.get().and_then(|o| o.iter().find(|(n, _)| n == name)) {
        return Some(value.clone());
    }
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A step of the GitHub action: inputs → the same command line as the CLI → outputs, state, summary.
fn github_action(step: ActionStep) -> Result<u8> {
    output::enable_github_actions();
    let step = match step {
        ActionStep::Restore => github::Step::Restore,
        ActionStep::Save => github::Step::Save,
        ActionStep::Post => github::Step::Post,
    };
    let invocation = github::invocation(step, &env_var).map_err(anyhow::Error::msg)?;
    invocation.secrets.iter().for_each(|s| output::register_secret(s));
    let _ = ENV_OVERRIDES.set(invocation.env);
    if let Some(reason) = invocation.skip {
        output::notice(&reason);
        return Ok(0);
    }
    let cli = Cli::try_parse_from(std::iter::once("s3cache".to_owned()).chain(invocation.args))?;
    output::group(&format!("s3cache {}", if step == github::Step::Restore { "restore" } else { "save" }));
    let result = run(cli);
    output::end_group();
    let (code, summary) = result?;
    if let Some(summary) = summary {
        if let Some(path) = env_var(env_vars::GITHUB_OUTPUT) {
            github::append_records(Path::new(&path), &github::outputs(step, &summary)).context("writing GITHUB_OUTPUT")?;
        }
        if let (github::Step::Restore, Some(path)) = (step, env_var(env_vars::GITHUB_STATE)) {
            github::append_records(Path::new(&path), &github::state(&summary)).context("writing GITHUB_STATE")?;
        }
        if let Some(path) = env_var(env_vars::GITHUB_STEP_SUMMARY) {
            let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path).context("opening GITHUB_STEP_SUMMARY")?;
            std::io::Write::write_all(&mut file, github::step_summary(&summary).as_bytes())?;
        }
    }
    Ok(code)
}

fn cache_dir() -> Option<PathBuf> {
    env_var(env_vars::S3CACHE_CACHE_DIR).map(PathBuf::from).or_else(|| dirs::cache_dir().map(|d| d.join("s3cache")))
}

/// Runs the credential chain for an `s3://` store (unless anonymous) and registers what it finds as
/// secrets, so that they are scrubbed from output and masked on GitHub Actions.
fn credentials(args: &StoreArgs, url: &str, region: &str) -> Result<Option<Credentials>> {
    if !url.starts_with("s3://") || args.anonymous {
        return Ok(None);
    }
    let profile = args.profile.clone();
    let env = move |name: &str| if name == env_vars::AWS_PROFILE && profile.is_some() { profile.clone() } else { env_var(name) };
    let inputs = ChainInputs { env: &env, home: dirs::home_dir(), region: region.to_owned() };
    let Some(resolved) = resolve_chain(&inputs)? else { return Ok(None) };
    resolved.credentials.secrets().for_each(output::register_secret);
    tracing::debug!(source = %resolved.source, "credentials found");
    Ok(Some(resolved.credentials))
}

fn context(args: &StoreArgs) -> Result<CacheContext> {
    if env_var(env_vars::GITHUB_ACTIONS).is_some_and(|v| v == "true") {
        output::enable_github_actions();
    }
    let cache_dir = cache_dir();
    let url = match &args.store {
        Some(url) => url.clone(),
        None => {
            let dir = cache_dir.clone().context("no store given and no cache directory known; set S3CACHE_STORE")?.join("store");
            let url = format!("file://{}", dir.display());
            output::notice(&format!("store: {url} (local default; set S3CACHE_STORE or --store for S3)"));
            url
        }
    };
    let region = args.region.clone().or_else(|| env_var(env_vars::AWS_REGION)).or_else(|| env_var(env_vars::AWS_DEFAULT_REGION));
    let credentials = credentials(args, &url, region.as_deref().unwrap_or("us-east-1"))?;
    let options = S3Options {
        endpoint: args.endpoint.clone().or_else(|| env_var(env_vars::AWS_ENDPOINT_URL_S3)).or_else(|| env_var(env_vars::AWS_ENDPOINT_URL)),
        region,
        path_style: args.path_style,
        dualstack: args.dualstack,
        accelerate: args.accelerate,
        anonymous: args.anonymous,
        publish: args.publish.options(),
        credentials,
        transport: args.transfer.transport(),
        upload: UploadConfig { part_size: (args.transfer.part_size_mb << 20) as usize, concurrency: args.transfer.concurrency as usize, if_none_match: true },
        download: DownloadConfig { range_size: args.transfer.part_size_mb << 20, concurrency: args.transfer.concurrency as usize },
    };
    let store = s3cache::open_store(&url, options)?;
    let guest_limits = GuestLimits {
        memory_bytes: (args.limits.guest_memory_mb << 20) as usize,
        deadline: Duration::from_millis(args.limits.guest_timeout_ms),
    };
    let sandbox = Sandbox::load(cache_dir.as_deref(), guest_limits)?;
    let env: EnvLookup = Arc::new(env_var);
    let unpack_limits = UnpackLimits { max_total_bytes: args.limits.max_unpacked_mb << 20, max_members: args.limits.max_entries, ..UnpackLimits::default_limits() };
    let scopes = scopes(&args.scope)?;
    Ok(CacheContext {
        scopes,
        unpack_limits,
        store: Arc::from(store),
        sandbox: Arc::new(sandbox),
        cwd: std::env::current_dir().context("reading the working directory")?,
        home: dirs::home_dir(),
        env,
    })
}

/// The run's scopes, from --scope or the CI's variables; an override of read-only is a warning.
fn scopes(args: &ScopeArgs) -> Result<ScopePlan> {
    if let Some(scope) = &args.scope {
        scope::validate_explicit(scope).map_err(anyhow::Error::msg)?;
    }
    let event = env_var(env_vars::ci::GITHUB_EVENT_PATH).and_then(|path| {
        let parsed = std::fs::read(&path).ok().and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok());
        if parsed.is_none() {
            output::warning(&format!("could not read the event payload {path}; scoping without it"));
        }
        parsed
    });
    let refs = scope::ci_refs(&env_var, event.as_ref());
    let plan = scope::plan(&refs, args.scope.as_deref(), args.allow_untrusted_save);
    if let (Some(why), true) = (&refs.untrusted, args.allow_untrusted_save) {
        output::warning(&format!("{why}, but saving was allowed explicitly (--allow-untrusted-save)"));
    }
    tracing::debug!(read = ?plan.read, write = %plan.write, source = %plan.source, "scopes");
    Ok(plan)
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// Writes the operation's JSON summary where `--summary-json` asked.
fn write_summary(path: Option<&PathBuf>, summary: &serde_json::Value) -> Result<()> {
    if let Some(path) = path {
        std::fs::write(path, serde_json::to_vec_pretty(summary)?).with_context(|| format!("writing the summary to {}", path.display()))?;
    }
    Ok(())
}

/// Completes an operation's JSON summary with what every summary has, and writes it where asked.
fn finish_summary(code: u8, operation: &str, mut summary: serde_json::Value, store: &str, path: Option<&PathBuf>) -> Result<(u8, Option<serde_json::Value>)> {
    summary["operation"] = operation.into();
    summary["http_requests"] = S3Client::requests_sent().into();
    summary["store"] = store.into();
    write_summary(path, &summary)?;
    Ok((code, Some(summary)))
}

fn throughput(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64().max(1e-9)
}

/// Runs a command; returns the exit code and, for saves and restores, the JSON summary.
fn run(cli: Cli) -> Result<(u8, Option<serde_json::Value>)> {
    let context = context(&cli.store)?;
    let store = context.store.location();
    let summary_path = cli.summary_json.as_ref();
    match cli.command {
        Command::Key(args) => {
            println!("{}", context.compute_key(&args.template)?);
            Ok((0, None))
        }
        Command::GithubAction(_) => anyhow::bail!("github-action steps do not nest"),
        Command::Save(args) => {
            let request = SaveRequest {
                key: args.key,
                paths: args.paths,
                format: args.format,
                compression_level: args.compression_level,
                overwrite: args.overwrite,
                cross_os: args.enable_cross_os_archive,
            };
            let outcome = context.save(&request)?;
            let (code, summary) = match &outcome {
                SaveOutcome::Saved { key, bytes, members, elapsed, sha256 } => {
                    output::notice(&format!("saved {key}: {members} entries, {} in {:.2}s", megabytes(*bytes), elapsed.as_secs_f64()));
                    let summary = serde_json::json!({
                        "outcome": "saved", "key": key, "bytes": bytes, "members": members, "sha256": sha256,
                        "elapsed_ms": elapsed.as_millis() as u64, "throughput_mb_s": throughput(*bytes, *elapsed),
                    });
                    (0, summary)
                }
                SaveOutcome::AlreadyExists { key } => {
                    output::notice(&format!("cache entry {key} already exists; not saving (entries are immutable)"));
                    (0, serde_json::json!({ "outcome": "already-exists", "key": key }))
                }
                SaveOutcome::NothingToSave { key } => {
                    output::warning(&format!("nothing to save under {key}: the paths match no files"));
                    (0, serde_json::json!({ "outcome": "nothing-to-save", "key": key }))
                }
                SaveOutcome::Skipped { key, reason } => {
                    output::notice(&format!("not saving: {reason}"));
                    (0, serde_json::json!({ "outcome": "skipped", "key": key, "reason": output::scrub(reason) }))
                }
                SaveOutcome::Failed { key, reason } => {
                    output::warning(&format!("cache {}not saved: {reason}", key.as_ref().map(|k| format!("{k} ")).unwrap_or_default()));
                    let code = if args.fail_on_error { EXIT_FAILED } else { 0 };
                    (code, serde_json::json!({ "outcome": "failed", "key": key, "reason": output::scrub(reason) }))
                }
            };
            let mut summary = summary;
            summary["scope"] = context.scopes.write.clone().into();
            finish_summary(code, "save", summary, &store, summary_path)
        }
        Command::Restore(args) => {
            let request = RestoreRequest {
                key: args.key,
                restore_keys: args.restore_keys,
                paths: args.paths,
                cross_os: args.enable_cross_os_archive,
                lookup_only: args.lookup_only,
                exact_key_only: args.exact_key_only,
            };
            let (code, summary) = match context.restore(&request)? {
                RestoreOutcome::Hit(hit) => {
                    let how = if hit.exact { "exact match".to_string() } else { format!("fallback for {}", hit.primary_key) };
                    if hit.restored {
                        output::notice(&format!(
                            "restored {} ({how}): {} entries, {} in {:.2}s",
                            hit.matched_key,
                            hit.members,
                            megabytes(hit.bytes),
                            hit.elapsed.as_secs_f64()
                        ));
                    } else {
                        output::notice(&format!("cache entry {} exists ({how}); lookup only, nothing restored", hit.matched_key));
                    }
                    let summary = serde_json::json!({
                        "outcome": if hit.restored { "hit" } else { "lookup-hit" }, "cache_hit": true, "exact": hit.exact,
                        "key": hit.primary_key, "matched_key": hit.matched_key, "bytes": hit.bytes, "members": hit.members,
                        "sha256": hit.sha256, "elapsed_ms": hit.elapsed.as_millis() as u64, "scope": hit.scope,
                        "throughput_mb_s": throughput(hit.bytes, hit.elapsed),
                    });
                    (0, summary)
                }
                RestoreOutcome::Miss { primary_key, reason, failed } => {
                    if failed {
                        output::warning(&format!("cache not restored: {reason}"));
                    } else {
                        output::notice(&format!("cache miss: {reason}"));
                    }
                    let code = if args.fail_on_cache_miss { EXIT_FAILED } else { 0 };
                    let summary = serde_json::json!({
                        "outcome": if failed { "failed" } else { "miss" }, "cache_hit": false, "key": primary_key,
                        "reason": output::scrub(&reason),
                    });
                    (code, summary)
                }
            };
            finish_summary(code, "restore", summary, &store, summary_path)
        }
    }
}
