//! The Semaphore `cache` CLI, verb for verb, on S3: `cache store|restore|has_key|is_not_empty|list|
//! delete|clear|usage` and `checksum`, with the real CLI's arguments, messages (all on stdout), exit
//! codes and object names, so that a pipeline keeps every line when s3cache is on PATH as `cache`.
//! docs/compat/semaphore-cache-cli.md describes the real CLI this follows.
//!
//! What is kept from it: entries at `<SEMAPHORE_PROJECT_ID>/<key>` (keys with `/` become `-`), the
//! first store of a key wins, `restore a,b` tries each key exactly and then as an unanchored regular
//! expression over the project's keys (newest first), the lockfile auto-detection and its keys, and the
//! error contract: errors print `error: ...` and exit 0 unless `CACHE_FAIL_ON_ERROR=true`. What is ours:
//! the entry is s3cache's verified archive (the digest is checked and the tree staged before anything
//! is replaced), first-writer-wins holds under concurrent stores, and pull requests from forks restore
//! but do not store.
//!
//! The mapping is split from the running: [`parse`] (arguments → [`Verb`]) and [`settings`]
//! (environment → store settings) are pure and unit-tested; `run` executes a verb on the engine.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Instant, SystemTime};

use md5::Digest;

use crate::archive::catalog::Entry;
use crate::archive::layout::{Format, Layout};
use crate::config::{self, Settings, parse};
use crate::engine::admin::ScopeSelection;
use crate::engine::{CacheContext, EnvLookup, Fallback, Legacy, RestoreOutcome, SaveOutcome};
use crate::env_vars::{self, semaphore as vars};
use crate::ui::output::{self, Terminal};
use crate::{RestoreRequest, SaveRequest};

/// A verb of the `cache` CLI with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    /// `store KEY PATH`, or `store` alone: the detected lockfiles' directories.
    Store(Option<(String, String)>),
    /// `restore KEY[,KEY...]`, or `restore` alone: the detected lockfiles' directories.
    Restore(Option<Vec<String>>),
    HasKey(String),
    IsNotEmpty,
    /// `list [--sort-by SIZE|STORE_TIME|ACCESS_TIME]`.
    List(SortBy),
    Delete(String),
    Clear,
    Usage,
    /// `checksum FILE` (also the binary run as `checksum`).
    Checksum(String),
    /// `cache`, `cache help`, `cache --help`.
    Help,
}

/// `list --sort-by`: S3 keeps no access time, so `ACCESS_TIME` sorts by store time, as in the real CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    Size,
    StoreTime,
    AccessTime,
}

/// Arguments the real CLI would not take; it prints the message and its help, and exits 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgError {
    /// `Incorrect number of arguments!`
    Count,
    /// An unknown verb or flag value; the text is the real CLI's.
    Invalid(String),
}

/// Parses the arguments after `cache` as the real CLI does (extra arguments to verbs that take none
/// are ignored; `store`, `restore`, `has_key`, `delete` check their counts).
pub fn parse(args: &[String]) -> Result<Verb, ArgError> {
    let Some((verb, rest)) = args.split_first() else { return Ok(Verb::Help) };
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    match (verb.as_str(), rest.as_slice()) {
        ("store", []) => Ok(Verb::Store(None)),
        ("store", [key, path]) => Ok(Verb::Store(Some((key.to_string(), path.to_string())))),
        ("restore", []) => Ok(Verb::Restore(None)),
        ("restore", [keys]) => Ok(Verb::Restore(Some(keys.split(',').filter(|k| !k.is_empty()).map(str::to_owned).collect()))),
        ("has_key", [key]) => Ok(Verb::HasKey(key.to_string())),
        ("delete", [key]) => Ok(Verb::Delete(key.to_string())),
        ("store" | "restore" | "has_key" | "delete", _) => Err(ArgError::Count),
        ("is_not_empty", _) => Ok(Verb::IsNotEmpty),
        ("clear", _) => Ok(Verb::Clear),
        ("usage", _) => Ok(Verb::Usage),
        ("list", rest) => list_sort(rest).map(Verb::List),
        ("checksum", [file, ..]) => Ok(Verb::Checksum(file.to_string())),
        ("checksum", []) => Err(ArgError::Count),
        ("help" | "--help" | "-h", _) => Ok(Verb::Help),
        (other, _) => Err(ArgError::Invalid(format!("unknown command \"{other}\" for \"cache\""))),
    }
}

fn list_sort(args: &[&str]) -> Result<SortBy, ArgError> {
    let value = match args {
        [] => return Ok(SortBy::StoreTime),
        ["--sort-by" | "-s", value, ..] => value.to_string(),
        [flag, ..] => match flag.strip_prefix("--sort-by=") {
            Some(value) => value.to_owned(),
            None => return Ok(SortBy::StoreTime),
        },
    };
    match value.as_str() {
        "SIZE" => Ok(SortBy::Size),
        "STORE_TIME" => Ok(SortBy::StoreTime),
        "ACCESS_TIME" => Ok(SortBy::AccessTime),
        other => Err(ArgError::Invalid(format!("sorting keys by '{other}' is not supported"))),
    }
}

/// The key as the real CLI stores it: `/` becomes `-`. Returns whether it changed.
pub fn normalize_key(key: &str) -> (String, bool) {
    let normalized = key.replace('/', "-");
    let changed = normalized != key;
    (normalized, changed)
}

/// Why the environment does not configure a store; printed as the real CLI prints it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("no SEMAPHORE_CACHE_BACKEND environment variable set")]
    NoBackend,
    #[error("cache backend '{0}' is not available")]
    Backend(String),
    #[error("no SEMAPHORE_PROJECT_ID set")]
    NoProject,
    #[error("no SEMAPHORE_CACHE_S3_BUCKET set")]
    NoBucket,
    #[error(transparent)]
    Setting(#[from] parse::SettingError),
    /// `SEMAPHORE_CACHE_S3_URL` without `http://` or `https://`: the real CLI handed it to the SDK
    /// verbatim, where every request failed.
    #[error("SEMAPHORE_CACHE_S3_URL: {0}")]
    Endpoint(crate::store::s3::EndpointError),
}

/// The store settings a Semaphore job's environment implies, and the variables the credential chain
/// should see (static keys with a custom URL). Precedence as in the real CLI: with
/// `SEMAPHORE_CACHE_S3_URL`, the static key pair when both are set, else the default chain; without
/// it, the EC2 instance profile when asked for, else the named profile, else the default chain.
pub fn settings(env: &dyn Fn(&str) -> Option<String>) -> Result<(Settings, Vec<(String, String)>), EnvError> {
    let var = |name: &str| env(name).filter(|v| !v.is_empty());
    match var(vars::SEMAPHORE_CACHE_BACKEND) {
        None => return Err(EnvError::NoBackend),
        Some(backend) if backend != "s3" => return Err(EnvError::Backend(backend)),
        Some(_) => {}
    }
    let project = var(vars::SEMAPHORE_PROJECT_ID).ok_or(EnvError::NoProject)?;
    let bucket = var(vars::SEMAPHORE_CACHE_S3_BUCKET).or_else(|| var(vars::SEMAPHORE_AGENT_CACHE_BUCKET_NAME)).ok_or(EnvError::NoBucket)?;
    let mut settings = Settings { store: Some(format!("s3://{bucket}/{project}")), ..Settings::default() };
    let mut overrides = Vec::new();
    if let Some(url) = var(vars::SEMAPHORE_CACHE_S3_URL) {
        crate::store::s3::Endpoint::parse(&url).map_err(EnvError::Endpoint)?;
        settings.endpoint = Some(url);
        settings.path_style = true;
        settings.region = Some("auto".into());
        if let (Some(key), Some(secret)) = (var(vars::SEMAPHORE_CACHE_S3_KEY), var(vars::SEMAPHORE_CACHE_S3_SECRET)) {
            overrides.push((env_vars::S3CACHE_ACCESS_KEY_ID.to_owned(), key));
            overrides.push((env_vars::S3CACHE_SECRET_ACCESS_KEY.to_owned(), secret));
        }
    } else if var(vars::SEMAPHORE_CACHE_USE_EC2_INSTANCE_PROFILE)
        .map(|v| parse::boolean(vars::SEMAPHORE_CACHE_USE_EC2_INSTANCE_PROFILE, &v))
        .transpose()?
        == Some(true)
    {
        // Only the instance profile: the chain's other sources are switched off.
        for name in [
            env_vars::AWS_ACCESS_KEY_ID,
            env_vars::AWS_SECRET_ACCESS_KEY,
            env_vars::AWS_SESSION_TOKEN,
            env_vars::AWS_WEB_IDENTITY_TOKEN_FILE,
            env_vars::AWS_CONTAINER_CREDENTIALS_RELATIVE_URI,
            env_vars::AWS_CONTAINER_CREDENTIALS_FULL_URI,
        ] {
            overrides.push((name.to_owned(), String::new()));
        }
        overrides.push((env_vars::AWS_SHARED_CREDENTIALS_FILE.to_owned(), "/dev/null".into()));
        overrides.push((env_vars::AWS_CONFIG_FILE.to_owned(), "/dev/null".into()));
    } else if let Some(profile) = var(vars::SEMAPHORE_CACHE_AWS_PROFILE) {
        settings.profile = Some(profile);
    }
    Ok((settings, overrides))
}

/// Whether errors fail the command (`CACHE_FAIL_ON_ERROR=true`, exactly, as in the real CLI).
fn fail_on_error(env: &dyn Fn(&str) -> Option<String>) -> bool {
    env(vars::CACHE_FAIL_ON_ERROR).as_deref() == Some("true")
}

/// Whether new entries are written for the real CLI to read too (`S3CACHE_SEMAPHORE_COMPATIBLE=true`):
/// a gzip tar with members named as its `tar czf` names them, and our manifest in a final empty gzip
/// member that `tar xzf` reads as nothing. Otherwise entries are ours: zstd, s3cache's member names.
fn compatible(env: &dyn Fn(&str) -> Option<String>) -> Result<bool, parse::SettingError> {
    env(vars::S3CACHE_SEMAPHORE_COMPATIBLE)
        .filter(|v| !v.is_empty())
        .map_or(Ok(false), |v| parse::boolean(vars::S3CACHE_SEMAPHORE_COMPATIBLE, &v))
}

/// What a restore accepts besides s3cache's entries: the real CLI's own objects, gzip tars without a
/// manifest, at the same names, restored where it would put them (with a notice, without a digest).
fn real_cli_objects() -> Legacy {
    Legacy { writer: "the Semaphore cache CLI".into(), format: Format::Gzip, in_search: true, objects: Vec::new() }
}

/// One directory the auto-detection caches, with its keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    /// The lockfile that was found.
    pub lockfile: &'static str,
    /// The directory cached (absolute for `$HOME` paths).
    pub path: String,
    /// The key a store uses: `<prefix>-<branch>-<md5 of the lockfile>`, normalized.
    pub store_key: String,
    /// The keys a restore tries, in order.
    pub restore_keys: Vec<String>,
}

/// Lockfiles in the order the real CLI looks for them, with the key prefix and directory of each
/// cache they imply (`~` is the home directory).
const LOCKFILES: &[(&str, &[(&str, &str)])] = &[
    (".nvmrc", &[("nvm", "~/.nvm")]),
    ("Gemfile.lock", &[("gems", "vendor/bundle")]),
    ("package-lock.json", &[("node-modules", "node_modules")]),
    ("yarn.lock", &[("yarn-cache", "~/.cache/yarn"), ("node-modules", "node_modules")]),
    ("mix.lock", &[("mix-deps", "deps"), ("mix-build", "_build")]),
    ("requirements.txt", &[("requirements", ".pip_cache")]),
    ("composer.lock", &[("composer", "vendor")]),
    ("pom.xml", &[("maven", ".m2"), ("maven-target", "target")]),
    ("Podfile.lock", &[("pods", "Pods")]),
    ("go.sum", &[("go", "~/go/pkg/mod")]),
];

/// What `store` and `restore` without arguments cache, from the lockfiles in `cwd`. The branch is
/// `SEMAPHORE_GIT_PR_BRANCH`, else `SEMAPHORE_GIT_BRANCH`, else `master`.
pub fn detect(cwd: &Path, home: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> std::io::Result<Vec<Detected>> {
    let var = |name: &str| env(name).filter(|v| !v.is_empty());
    let branch =
        var(env_vars::ci::SEMAPHORE_GIT_PR_BRANCH).or_else(|| var(env_vars::ci::SEMAPHORE_GIT_BRANCH)).unwrap_or_else(|| "master".into());
    let mut found = Vec::new();
    for (lockfile, caches) in LOCKFILES {
        let file = cwd.join(lockfile);
        if !file.is_file() {
            continue;
        }
        let checksum = md5_hex(&file)?;
        for (prefix, path) in caches.iter() {
            let path = match (path.strip_prefix("~/"), home) {
                (Some(rest), Some(home)) => home.join(rest).display().to_string(),
                _ => path.to_string(),
            };
            let mut restore_keys = vec![format!("{prefix}-{branch}-{checksum}"), format!("{prefix}-{branch}")];
            restore_keys.extend(["master", "main"].iter().filter(|b| **b != branch).map(|b| format!("{prefix}-{b}")));
            let restore_keys = restore_keys.iter().map(|k| normalize_key(k).0).collect();
            found.push(Detected { lockfile, path, store_key: normalize_key(&format!("{prefix}-{branch}-{checksum}")).0, restore_keys });
        }
    }
    Ok(found)
}

/// The lowercase hex MD5 of a file, as `checksum` and the lockfile keys use it (Semaphore's keys are
/// MD5, so a migrating project's existing keys still match).
pub fn md5_hex(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = md5::Md5::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// A size as the real CLI prints it: `512.0` below 1024, else `1.5K`, `3.4M`, `2.0G`...
pub fn human_size(bytes: u64) -> String {
    let mut value = bytes as f64;
    let mut unit = "";
    for next in ["K", "M", "G", "T", "P", "E"] {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    format!("{value:.1}{unit}")
}

/// A time as Go's RFC 822 layout prints it in UTC: `02 Jan 06 15:04 UTC`.
fn rfc822(at: SystemTime) -> String {
    let format = time::macros::format_description!("[day] [month repr:short] [year repr:last_two] [hour]:[minute] UTC");
    time::OffsetDateTime::from(at).format(&format).unwrap_or_default()
}

const HELP: &str = "Store and restore caches in S3 (s3cache, speaking the Semaphore cache CLI).

Usage:
  cache [command]

Available Commands:
  store         Store keys in the cache.
  restore       Restore keys from the cache.
  has_key       Check if a key is present in the cache.
  is_not_empty  Check if the cache is not empty.
  list          List all keys in the cache.
  delete        Delete a key from the cache.
  clear         Delete all keys in the cache.
  usage         Get a summary of cache usage.
";

/// What a verb ended with, before the error contract maps it to an exit code.
enum Ending {
    /// Exit with this code.
    Code(u8),
    /// An error: printed as `error: ...`; exit 0 unless `CACHE_FAIL_ON_ERROR=true`.
    Error(String),
    /// An endpoint without a scheme, which no run could use: printed as `error: ...`, exit 2 whatever
    /// `CACHE_FAIL_ON_ERROR` says, as everywhere else.
    Config(String),
}

/// Runs `cache ARGS` (the arguments after the program name); everything goes to stdout.
pub fn main(args: &[String]) -> ExitCode {
    let terminal = Terminal::new();
    terminal.lines.use_stdout();
    let env = config::process_env(Vec::new());
    let ending = match parse(args) {
        Ok(Verb::Help) => {
            print!("{HELP}");
            Ending::Code(0)
        }
        Ok(Verb::Checksum(file)) => checksum(&file),
        Ok(verb) => run(verb, &env, &terminal),
        Err(ArgError::Count) => {
            println!("Incorrect number of arguments!");
            print!("{HELP}");
            Ending::Code(0)
        }
        Err(ArgError::Invalid(why)) => Ending::Error(why),
    };
    let code = match ending {
        Ending::Code(code) => code,
        Ending::Error(why) => {
            println!("error: {}", terminal.scrub(&output::escape(&why)));
            if fail_on_error(&|n| env(n)) { 1 } else { 0 }
        }
        Ending::Config(why) => {
            println!("error: {}", terminal.scrub(&output::escape(&why)));
            crate::frontends::EXIT_CONFIG
        }
    };
    ExitCode::from(crate::frontends::interrupt::finish(code))
}

/// `checksum FILE`: the MD5 of the file, hex, as toolbox's `checksum` prints it.
fn checksum(file: &str) -> Ending {
    match md5_hex(Path::new(file)) {
        Ok(hex) => {
            println!("{hex}");
            Ending::Code(0)
        }
        Err(err) => {
            println!("md5sum: {file}: {err}");
            Ending::Code(1)
        }
    }
}

/// The engine for this job: the project's store in the Flat layout, with the job's trust.
fn context(env: &EnvLookup, terminal: &Terminal) -> Result<CacheContext, Ending> {
    let (mut settings, overrides) = settings(&|n| env(n)).map_err(|e| match e {
        EnvError::Endpoint(_) => Ending::Config(e.to_string()),
        _ => Ending::Error(e.to_string()),
    })?;
    // Signed entries: S3CACHE_SIGNING_KEY, S3CACHE_TRUSTED_KEYS and S3CACHE_STORE_NAMESPACE, as the CLI reads them.
    settings.signing = config::SigningSettings::from_variables().map_err(|e| Ending::Config(e.to_string()))?;
    overrides.iter().filter(|(n, _)| n.contains("SECRET")).for_each(|(_, v)| terminal.add_secret(v));
    let base = env.clone();
    let lookup: EnvLookup = std::sync::Arc::new(move |name| match overrides.iter().find(|(n, _)| n == name) {
        Some((_, value)) => Some(value.clone()).filter(|v| !v.is_empty()),
        None => base(name),
    });
    if config::on_github_actions(&lookup) {
        terminal.lines.enable_github_actions();
    }
    let mut context = config::resolve_reporting(&settings, lookup, terminal.reporter.clone()).map_err(|e| {
        match e.downcast_ref::<config::EndpointSettingError>() {
            Some(_) => Ending::Config(format!("{e:#}")),
            None => Ending::Error(format!("{e:#}")),
        }
    })?;
    context.layout = Layout::Flat;
    context.cancel = crate::frontends::interrupt::install(crate::frontends::interrupt::INTERRUPTED);
    Ok(context)
}

fn run(verb: Verb, env: &EnvLookup, terminal: &Terminal) -> Ending {
    let context = match context(env, terminal) {
        Ok(context) => context,
        Err(ending) => return ending,
    };
    let result = match verb {
        Verb::Store(Some((key, path))) => store(&context, &key, &path, env),
        Verb::Store(None) => store_detected(&context, env),
        Verb::Restore(Some(keys)) => restore(&context, &keys).map(|_| Ending::Code(0)),
        Verb::Restore(None) => restore_detected(&context, env),
        Verb::HasKey(key) => has_key(&context, &key),
        Verb::IsNotEmpty => context
            .list_entries(&ScopeSelection::All, "")
            .map_err(|e| e.to_string())
            .map(|e| Ending::Code(if e.is_empty() { 1 } else { 0 })),
        Verb::List(sort) => list(&context, sort),
        Verb::Delete(key) => delete(&context, &key),
        Verb::Clear => clear(&context),
        Verb::Usage => context.usage().map_err(|e| e.to_string()).map(|usage| {
            println!("FREE SPACE: (unlimited)");
            println!("USED SPACE: {}", human_size(usage.total.bytes));
            Ending::Code(0)
        }),
        Verb::Help | Verb::Checksum(_) => unreachable!("handled before the store is opened"),
    };
    result.unwrap_or_else(Ending::Error)
}

fn normalized(key: &str) -> String {
    let (normalized, changed) = normalize_key(key);
    if changed {
        println!("Key '{key}' is normalized to '{normalized}'.");
    }
    normalized
}

fn seconds(since: Instant) -> String {
    format!("{:.1}s", since.elapsed().as_secs_f64())
}

fn store(context: &CacheContext, key: &str, path: &str, env: &EnvLookup) -> Result<Ending, String> {
    let key = normalized(key);
    if std::fs::symlink_metadata(context.cwd.join(path)).is_err() {
        println!("'{path}' doesn't exist locally.");
        return Ok(Ending::Code(0));
    }
    let compatible = compatible(&|n| env(n)).map_err(|e| e.to_string())?;
    let format = if compatible { Format::Gzip } else { Format::Zstd };
    println!("Uploading '{path}' with cache key '{key}'...");
    let started = Instant::now();
    let request = SaveRequest {
        key: key.clone(),
        paths: vec![path.to_owned()],
        format,
        compression_level: None,
        overwrite: false,
        cross_os: false,
        plain_names: compatible,
    };
    match context.save(&request).map_err(|e| e.to_string())? {
        SaveOutcome::Saved { bytes, .. } => {
            println!("Upload complete. Duration: {}. Size: {} bytes.", seconds(started), human_size(bytes));
            Ok(Ending::Code(0))
        }
        SaveOutcome::AlreadyExists { .. } => {
            println!("Key '{key}' already exists.");
            Ok(Ending::Code(0))
        }
        SaveOutcome::NothingToSave { .. } => {
            println!("'{path}' doesn't exist locally.");
            Ok(Ending::Code(0))
        }
        SaveOutcome::Skipped { reason, .. } => {
            println!("Not storing '{key}': {}.", context.reporter().scrub(&reason));
            Ok(Ending::Code(0))
        }
        SaveOutcome::Failed { reason, .. } => Err(reason),
        SaveOutcome::Interrupted { .. } => Err(crate::frontends::interrupt::SAVE_INTERRUPTED.into()),
    }
}

fn store_detected(context: &CacheContext, env: &EnvLookup) -> Result<Ending, String> {
    let detected = detect(&context.cwd, context.home.as_deref(), &|n| env(n)).map_err(|e| e.to_string())?;
    if detected.is_empty() {
        println!("Nothing to store in cache.");
    }
    for entry in detected {
        println!("Detected {}.", entry.lockfile);
        println!("Using default cache path '{}'.", entry.path);
        if let Ending::Error(why) = store(context, &entry.store_key, &entry.path, env)? {
            return Err(why);
        }
    }
    Ok(Ending::Code(0))
}

/// Restores the first of `keys` that hits (exactly, then as a pattern); misses are not errors.
fn restore(context: &CacheContext, keys: &[String]) -> Result<bool, String> {
    let keys: Vec<String> = keys.iter().map(|k| normalized(k)).collect();
    let Some((first, rest)) = keys.split_first() else { return Ok(false) };
    let request = RestoreRequest {
        key: first.clone(),
        restore_keys: rest.to_vec(),
        fallback: Fallback::Pattern,
        paths: Vec::new(),
        cross_os: false,
        lookup_only: false,
        exact_key_only: false,
        legacy: Some(real_cli_objects()),
    };
    match context.restore(&request).map_err(|e| e.to_string())? {
        RestoreOutcome::Hit(hit) => {
            let asked = keys
                .iter()
                .position(|k| *k == hit.matched_key || regex::Regex::new(k).is_ok_and(|r| r.is_match(&hit.matched_key)))
                .unwrap_or(0);
            keys[..asked].iter().for_each(|k| println!("MISS: '{k}'."));
            println!("HIT: '{}', using key '{}'.", keys[asked], hit.matched_key);
            // The real CLI's own archives record no paths: name what was restored by its key.
            let restored = if hit.paths.is_empty() { hit.matched_key.clone() } else { hit.paths.join(", ") };
            println!("Restored: {restored}.");
            Ok(true)
        }
        RestoreOutcome::Miss { failed: false, .. } => {
            keys.iter().for_each(|k| println!("MISS: '{k}'."));
            Ok(false)
        }
        RestoreOutcome::Miss { reason, .. } => Err(reason),
        RestoreOutcome::Interrupted { .. } => Err(crate::frontends::interrupt::RESTORE_INTERRUPTED.into()),
    }
}

fn restore_detected(context: &CacheContext, env: &EnvLookup) -> Result<Ending, String> {
    let detected = detect(&context.cwd, context.home.as_deref(), &|n| env(n)).map_err(|e| e.to_string())?;
    if detected.is_empty() {
        println!("Nothing to restore from cache.");
    }
    for entry in detected {
        println!("Detected {}.", entry.lockfile);
        println!("Fetching '{}' directory with cache keys '{}'...", entry.path, entry.restore_keys.join(","));
        restore(context, &entry.restore_keys)?;
    }
    Ok(Ending::Code(0))
}

fn has_key(context: &CacheContext, key: &str) -> Result<Ending, String> {
    let key = normalized(key);
    match context.find_entry(&key, None).map_err(|e| e.to_string())? {
        Some(_) => {
            println!("Key '{key}' exists in the cache store.");
            Ok(Ending::Code(0))
        }
        None => {
            println!("Key '{key}' doesn't exist in the cache store.");
            Ok(Ending::Code(1))
        }
    }
}

fn list(context: &CacheContext, sort: SortBy) -> Result<Ending, String> {
    let mut entries: Vec<Entry> = context.list_entries(&ScopeSelection::All, "").map_err(|e| e.to_string())?;
    if entries.is_empty() {
        println!("Cache is empty.");
        return Ok(Ending::Code(0));
    }
    if sort == SortBy::Size {
        entries.sort_by_key(|e| std::cmp::Reverse(e.size()));
    }
    let mut table = format!("{:<60} {:<12} {:<22} {:<22}\n", "NAME", "SIZE", "STORED AT", "ACCESSED AT");
    for entry in &entries {
        let row = format!(
            "{:<60} {:<12} {:<22} {:<22}\n",
            entry.name.key,
            human_size(entry.size()),
            rfc822(entry.saved()),
            rfc822(entry.last_used)
        );
        table.push_str(&output::escape(row.trim_end_matches('\n')));
        table.push('\n');
    }
    println!("{table}");
    Ok(Ending::Code(0))
}

fn delete(context: &CacheContext, key: &str) -> Result<Ending, String> {
    let key = normalized(key);
    let entries = context.key_entries(&key, None).map_err(|e| e.to_string())?;
    if entries.is_empty() {
        println!("Key '{key}' doesn't exist in the cache store.");
        return Ok(Ending::Code(0));
    }
    let removal = context.remove(entries);
    if let Some((_, why)) = removal.failed.first() {
        return Err(why.clone());
    }
    println!("Key '{key}' is deleted.");
    Ok(Ending::Code(0))
}

fn clear(context: &CacheContext) -> Result<Ending, String> {
    let entries = context.list_entries(&ScopeSelection::All, "").map_err(|e| e.to_string())?;
    let removal = context.remove(entries);
    if let Some((_, why)) = removal.failed.first() {
        return Err(format!("clear operation failed, some keys might not have been deleted: {why}"));
    }
    println!("Deleted all caches.");
    Ok(Ending::Code(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env_vars::fixed as env;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    /// Verbs take the real CLI's argument counts; lists split on commas; bad counts are its message.
    #[test]
    fn parses_verbs() {
        assert_eq!(parse(&args("store gems vendor/bundle")), Ok(Verb::Store(Some(("gems".into(), "vendor/bundle".into())))));
        assert_eq!(parse(&args("store")), Ok(Verb::Store(None)));
        assert_eq!(parse(&args("store only-a-key")), Err(ArgError::Count));
        assert_eq!(
            parse(&args("restore gems-main-1,gems-main,gems-")),
            Ok(Verb::Restore(Some(vec!["gems-main-1".into(), "gems-main".into(), "gems-".into()])))
        );
        assert_eq!(parse(&args("has_key a b")), Err(ArgError::Count));
        assert_eq!(parse(&args("list --sort-by SIZE")), Ok(Verb::List(SortBy::Size)));
        assert_eq!(parse(&args("list -s ACCESS_TIME")), Ok(Verb::List(SortBy::AccessTime)));
        assert_eq!(parse(&args("list --sort-by NAME")), Err(ArgError::Invalid("sorting keys by 'NAME' is not supported".into())));
        assert_eq!(parse(&args("clear extra ignored")), Ok(Verb::Clear));
        assert_eq!(parse(&[]), Ok(Verb::Help));
        assert!(matches!(parse(&args("stash")), Err(ArgError::Invalid(_))));
    }

    /// `/` becomes `-`, and nothing else changes.
    #[test]
    fn normalizes_keys() {
        assert_eq!(normalize_key("gems-feature/x-abc"), ("gems-feature-x-abc".into(), true));
        assert_eq!(normalize_key("a,b c.d"), ("a,b c.d".into(), false));
    }

    /// The job's environment becomes the project's store with the real CLI's credential precedence.
    #[test]
    fn maps_the_environment() {
        let base = [("SEMAPHORE_CACHE_BACKEND", "s3"), ("SEMAPHORE_PROJECT_ID", "p-1"), ("SEMAPHORE_CACHE_S3_BUCKET", "caches")];
        let (plain, overrides) = settings(&env(&base)).unwrap();
        assert_eq!(plain.store.as_deref(), Some("s3://caches/p-1"));
        assert_eq!((plain.endpoint, plain.profile, overrides.len()), (None, None, 0));

        let mut url = base.to_vec();
        url.extend([
            ("SEMAPHORE_CACHE_S3_URL", "http://127.0.0.1:9000"),
            ("SEMAPHORE_CACHE_S3_KEY", "AK"),
            ("SEMAPHORE_CACHE_S3_SECRET", "SK"),
            ("SEMAPHORE_CACHE_AWS_PROFILE", "ignored"),
        ]);
        let (custom, overrides) = settings(&env(&url)).unwrap();
        assert_eq!(
            (custom.endpoint.as_deref(), custom.region.as_deref(), custom.path_style),
            (Some("http://127.0.0.1:9000"), Some("auto"), true)
        );
        assert_eq!(custom.profile, None);
        assert_eq!(
            overrides,
            vec![("S3CACHE_ACCESS_KEY_ID".to_string(), "AK".to_string()), ("S3CACHE_SECRET_ACCESS_KEY".to_string(), "SK".to_string())]
        );

        let mut profile = base.to_vec();
        profile.push(("SEMAPHORE_CACHE_AWS_PROFILE", "semaphore"));
        assert_eq!(settings_profile(&profile), Some("semaphore".into()));
        let mut stack =
            vec![("SEMAPHORE_CACHE_BACKEND", "s3"), ("SEMAPHORE_PROJECT_ID", "p-1"), ("SEMAPHORE_AGENT_CACHE_BUCKET_NAME", "stack-bucket")];
        stack.push(("SEMAPHORE_CACHE_USE_EC2_INSTANCE_PROFILE", "true"));
        let (instance, overrides) = settings(&env(&stack)).unwrap();
        assert_eq!(instance.store.as_deref(), Some("s3://stack-bucket/p-1"));
        assert!(overrides.contains(&("AWS_ACCESS_KEY_ID".to_string(), String::new())), "{overrides:?}");

        assert_eq!(settings_error(&[]), "no SEMAPHORE_CACHE_BACKEND environment variable set");
        assert_eq!(settings_error(&[("SEMAPHORE_CACHE_BACKEND", "sftp")]), "cache backend 'sftp' is not available");
        assert_eq!(settings_error(&[("SEMAPHORE_CACHE_BACKEND", "s3")]), "no SEMAPHORE_PROJECT_ID set");
        assert_eq!(settings_error(&[("SEMAPHORE_CACHE_BACKEND", "s3"), ("SEMAPHORE_PROJECT_ID", "p")]), "no SEMAPHORE_CACHE_S3_BUCKET set");
        let mut bare = base.to_vec();
        bare.push(("SEMAPHORE_CACHE_S3_URL", "127.0.0.1:9000"));
        assert!(
            settings_error(&bare)
                .starts_with(r#"SEMAPHORE_CACHE_S3_URL: endpoint "127.0.0.1:9000" has no scheme: write http://127.0.0.1:9000"#)
        );
        let mut bad = base.to_vec();
        bad.push(("SEMAPHORE_CACHE_USE_EC2_INSTANCE_PROFILE", "yes"));
        assert_eq!(settings_error(&bad), "SEMAPHORE_CACHE_USE_EC2_INSTANCE_PROFILE must be true or false, not \"yes\"");
    }

    fn settings_profile(pairs: &[(&str, &str)]) -> Option<String> {
        settings(&env(pairs)).unwrap().0.profile
    }

    fn settings_error(pairs: &[(&str, &str)]) -> String {
        settings(&env(pairs)).unwrap_err().to_string()
    }

    /// Lockfiles give the real CLI's paths and keys: md5 of the lockfile, branch fallbacks.
    #[test]
    fn detects_lockfiles() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("yarn.lock"), "lock").unwrap();
        std::fs::write(dir.path().join("Gemfile.lock"), "gems").unwrap();
        let home = Path::new("/home/semaphore");
        let found =
            detect(dir.path(), Some(home), &env(&[("SEMAPHORE_GIT_BRANCH", "main"), ("SEMAPHORE_GIT_PR_BRANCH", "feature/x")])).unwrap();
        let lock = hex::encode(md5::Md5::digest(b"lock"));
        let summary: Vec<(&str, &str, &str)> = found.iter().map(|d| (d.lockfile, d.path.as_str(), d.store_key.as_str())).collect();
        assert_eq!(
            summary,
            vec![
                ("Gemfile.lock", "vendor/bundle", format!("gems-feature-x-{}", hex::encode(md5::Md5::digest(b"gems"))).as_str()),
                ("yarn.lock", "/home/semaphore/.cache/yarn", format!("yarn-cache-feature-x-{lock}").as_str()),
                ("yarn.lock", "node_modules", format!("node-modules-feature-x-{lock}").as_str()),
            ]
        );
        assert_eq!(
            found[2].restore_keys,
            vec![
                format!("node-modules-feature-x-{lock}"),
                "node-modules-feature-x".into(),
                "node-modules-master".into(),
                "node-modules-main".into()
            ]
        );
        let on_main = detect(dir.path(), Some(home), &env(&[("SEMAPHORE_GIT_BRANCH", "main")])).unwrap();
        assert_eq!(on_main[0].restore_keys[1..], ["gems-main".to_string(), "gems-master".to_string()]);
    }

    /// Sizes print as the real CLI prints them.
    #[test]
    fn sizes_and_times() {
        assert_eq!(human_size(512), "512.0");
        assert_eq!(human_size(1536), "1.5K");
        assert_eq!(human_size(3 << 20), "3.0M");
        assert_eq!(rfc822(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(86_400 * 365 + 3600 * 15 + 240)), "01 Jan 71 15:04 UTC");
    }
}
