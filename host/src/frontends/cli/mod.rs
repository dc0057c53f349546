//! The `s3cache` command line: flags and subcommands, the run of one operation, what it prints, and
//! its exit code (docs/cli.md, "Exit codes and messages"). Other front ends produce a command line and run it here.

mod help;
pub mod manual;
mod render;

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use clap::{Args, FromArgMatches, Parser, Subcommand};

use crate::archive::layout::Format;
use crate::config::{self, Settings, parse};
use crate::engine::admin::ScopeSelection;
use crate::engine::keys::{TEMPLATE_HELPERS, TEMPLATE_VARIABLES, template_names};
use crate::engine::summary::Summary;
use crate::engine::{CacheContext, EnvLookup, RestoreOutcome, SaveOutcome};
use crate::frontends::{EXIT_CONFIG, EXIT_FAILED, EXIT_STORE, Invocation, github, interrupt};
use crate::report::Reporter;
use crate::ui::output::{self, Terminal};
use crate::{RestoreRequest, SaveRequest, env_vars};

/// A CI build cache in any S3-compatible store, with archive handling in a WASI sandbox.
#[derive(Debug, Parser)]
#[command(name = "s3cache", version, about, arg_required_else_help = true)]
pub struct Cli {
    #[command(flatten)]
    settings: Settings,
    /// Log diagnostics (S3CACHE_LOG=warn,s3cache=debug,guest=debug); ignored when S3CACHE_LOG is set.
    #[arg(long, short, global = true)]
    verbose: bool,
    /// Print only warnings and errors: no notices, no progress bar.
    #[arg(long, short, global = true, env = env_vars::S3CACHE_QUIET, value_parser = parse::flags::boolean, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    quiet: bool,
    /// Never draw a progress bar (one is drawn on stderr only when it is a terminal and TERM is set, not dumb).
    #[arg(long, global = true, env = env_vars::S3CACHE_NO_PROGRESS, value_parser = parse::flags::boolean, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    no_progress: bool,
    /// Write a JSON summary of the save or restore to this file; `-` writes it to stdout.
    #[arg(long, global = true, env = env_vars::S3CACHE_SUMMARY_JSON, value_name = "FILE")]
    summary_json: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Save paths under a key, unless an entry with that key exists.
    Save(SaveArgs),
    /// Restore paths from the entry with the key, or the newest matching a restore key.
    Restore(RestoreArgs),
    /// Print the key a template renders to.
    #[command(after_help = template_reference())]
    Key(KeyArgs),
    /// List entries, newest first: key, scope, format, size, saved, last used.
    List(ListArgs),
    /// Entries and bytes per scope and in total, over the whole store.
    Usage(JsonArgs),
    /// Exit 0 when an entry with exactly KEY exists in the scopes a restore reads, else 1.
    Has(KeyedArgs),
    /// Delete the entry with exactly KEY (every format); exit 1 when there is none.
    Delete(DeleteArgs),
    /// Show the manifest and signature of the entry with exactly KEY, and whether the trusted keys
    /// accept it; exit 1 when there is none or they refuse it.
    Inspect(KeyedArgs),
    /// Delete every entry of a scope, or of the whole store; asks first, or needs --yes.
    Clear(ClearArgs),
    /// Delete entries not used (saved or restored) for longer than a duration, in every scope.
    Flush(FlushArgs),
    /// Delete the least recently used entries until the store holds at most a size.
    Prune(PruneArgs),
    /// Serve GitHub's cache protocol (v1 and v2) from the store, for actions/cache, act, Forgejo
    /// and Gitea runners and buildx; runs until SIGINT or SIGTERM.
    Serve(Box<crate::serve::ServeArgs>),
    /// The Semaphore `cache` CLI: `s3cache semaphore store|restore|has_key|...` (also the binary run
    /// as `cache` or `checksum`).
    #[command(disable_help_flag = true)]
    Semaphore {
        /// The verb and its arguments, as `cache` takes them.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run a step of the GitHub action: reads INPUT_* (and STATE_* in post), writes GITHUB_OUTPUT,
    /// GITHUB_STATE and GITHUB_STEP_SUMMARY. Used by action.yml, restore/ and save/.
    GithubAction(GithubActionArgs),
    /// Print a shell completion script on stdout, e.g. `s3cache completions bash > /etc/bash_completion.d/s3cache`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout, e.g. `s3cache man > /usr/local/share/man/man1/s3cache.1`;
    /// with COMMAND, the page of that command (`s3cache man save > s3cache-save.1`).
    Man {
        /// A command (save, restore, list...), for its own page.
        command: Option<String>,
    },
    /// Run as a CI plugin step: recognize the dialect from the environment (PLUGIN_* of Drone,
    /// Woodpecker and Harness; PARAMETER_* of Vela; INPUT_* of the GitHub action) and run it. A
    /// plugin image runs s3cache with no arguments, which does the same.
    Plugin,
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
    #[arg(long, long_help = with_template_names("The key, or a template such as 'deps-{{ hashFiles \"**/Cargo.lock\" }}'."))]
    key: String,
    /// Paths to cache: files, directories, globs; `!` excludes; `~` is expanded. Repeatable.
    #[arg(long = "path", required = true, value_name = "PATH")]
    paths: Vec<String>,
    /// Archive format: zstd (default), gzip or tar.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    /// Compression level: zstd 1-19 (default 3), gzip 1-9 (default 6); ignored for tar.
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=19))]
    compression_level: Option<i32>,
    /// Exit 1 when the save fails (network, store, unreadable files) or no --path matches a file,
    /// instead of warning.
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
    #[arg(long, long_help = with_template_names("The primary key (or template); matched exactly."))]
    key: String,
    /// A key prefix to fall back to, newest match first. Repeatable; tried in order.
    #[arg(long = "restore-key", value_name = "PREFIX")]
    restore_keys: Vec<String>,
    /// Paths to restore; must be the same list the cache was saved with. A literal path (not a glob)
    /// is replaced by the entry's copy: local files under it that the entry lacks are removed. None:
    /// the paths the entry recorded, which must lie in the workspace or the home directory.
    #[arg(long = "path", value_name = "PATH")]
    paths: Vec<String>,
    /// Exit 1 when nothing is restored.
    #[arg(long)]
    fail_on_cache_miss: bool,
    /// Exit 1 when the restore fails (network, store, credentials, a damaged or refused entry) instead
    /// of warning; a miss with no entry to restore still exits 0 unless --fail-on-cache-miss.
    #[arg(long)]
    fail_on_error: bool,
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

/// `key --help`'s closing section: every helper and variable of a key template, one line each.
fn template_reference() -> String {
    let width = TEMPLATE_HELPERS.iter().chain(TEMPLATE_VARIABLES).map(|(usage, _)| usage.len()).max().unwrap_or_default();
    let lines = |table: &[(&str, &str)]| table.iter().map(|(usage, what)| format!("\n  {usage:width$}  {what}")).collect::<String>();
    format!(
        "A template is text with {{{{ HELPER \"ARGUMENT\"... }}}} and {{{{ VARIABLE }}}}; file paths are relative to the working \
         directory. A helper that matches or reads no file renders empty, with a warning.\n\nHelpers:{}\n\nVariables:{}",
        lines(TEMPLATE_HELPERS),
        lines(TEMPLATE_VARIABLES)
    )
}

/// The long help of a `--key`: `help`, then the names a template can use.
fn with_template_names(help: &str) -> String {
    format!(
        "{help}\n\nA template may use the helpers {} and the variables {}; `s3cache key --help` says what each renders.",
        template_names(TEMPLATE_HELPERS).join(", "),
        template_names(TEMPLATE_VARIABLES).join(", ")
    )
}

#[derive(Debug, Args)]
struct KeyArgs {
    /// The template, e.g. '{{ os }}-{{ checksum "Cargo.lock" }}'.
    #[arg(long)]
    template: String,
}

#[derive(Debug, Args)]
struct JsonArgs {
    /// Print one JSON document (exact bytes, RFC 3339 times) instead of a table.
    #[arg(long)]
    json: bool,
}

/// Which scopes an admin verb covers: the run's own (default), one, or all.
#[derive(Debug, Args)]
struct ScopeChoice {
    /// Every scope in the store (wins over --scope and S3CACHE_SCOPE).
    #[arg(long)]
    all_scopes: bool,
}

impl ScopeChoice {
    fn selection(&self, settings: &Settings) -> ScopeSelection {
        match (&settings.scope.scope, self.all_scopes) {
            (_, true) => ScopeSelection::All,
            (Some(scope), false) => ScopeSelection::Named(scope.clone()),
            (None, false) => ScopeSelection::Own,
        }
    }
}

#[derive(Debug, Args)]
struct ListArgs {
    #[command(flatten)]
    scopes: ScopeChoice,
    /// Only keys that start with this.
    #[arg(long, value_name = "P", default_value = "")]
    prefix: String,
    #[command(flatten)]
    output: JsonArgs,
}

#[derive(Debug, Args)]
struct KeyedArgs {
    /// The exact key (not a template).
    key: String,
    #[command(flatten)]
    output: JsonArgs,
}

#[derive(Debug, Args)]
struct DeleteArgs {
    #[command(flatten)]
    keyed: KeyedArgs,
    /// Exit 0 when there is no such entry (a plugin's "clear" step).
    #[arg(long)]
    missing_ok: bool,
}

#[derive(Debug, Args)]
struct ClearArgs {
    #[command(flatten)]
    scopes: ScopeChoice,
    /// Delete without asking (needed when not on a terminal).
    #[arg(long)]
    yes: bool,
    #[command(flatten)]
    dry_run: DryRunArgs,
    #[command(flatten)]
    output: JsonArgs,
}

#[derive(Debug, Args)]
struct DryRunArgs {
    /// Print what would be deleted (entries and leftovers) and delete nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Args)]
struct FlushArgs {
    /// Entries unused for longer than this go: 14d, 336h, 90m, 30s, or a bare number of days.
    #[arg(long, value_name = "DURATION", value_parser = parse::flags::duration)]
    older_than: Duration,
    #[command(flatten)]
    dry_run: DryRunArgs,
    #[command(flatten)]
    output: JsonArgs,
}

#[derive(Debug, Args)]
struct PruneArgs {
    /// The size the store must fit: 10GB (powers of 1000), 500MiB (powers of 1024), or bytes.
    #[arg(long, value_name = "SIZE", value_parser = parse::flags::size)]
    max_size: u64,
    #[command(flatten)]
    dry_run: DryRunArgs,
    #[command(flatten)]
    output: JsonArgs,
}

/// The process: parse the command line, run it, print the error chain once, exit. Run as `cache` or
/// `checksum` (a link or copy by that name), or as `s3cache semaphore ...`, it is the Semaphore CLI.
pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let program =
        args.first().map(|a| Path::new(a).file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned()).unwrap_or_default();
    match (program.as_str(), args.get(1).map(String::as_str)) {
        ("cache", _) => return crate::frontends::semaphore::main(&args[1..]),
        ("checksum", _) => return crate::frontends::semaphore::main(&[&["checksum".to_owned()], &args[1..]].concat()),
        (_, Some("semaphore")) => return crate::frontends::semaphore::main(&args[2..]),
        _ => {}
    }
    // A plugin image runs the binary with no arguments: its settings are in the environment.
    let plugin_run = args.len() == 1 && !matches!(detected_plugin(), Ok(None));
    let terminal = Terminal::new();
    let result = if plugin_run {
        plugin(false, &terminal)
    } else {
        // Parsed by the definition whose help is arranged for people (help.rs); the flags are the same.
        let cli = Cli::from_arg_matches(&help::arranged().get_matches()).unwrap_or_else(|err| err.exit());
        cli.apply_output_choices(&terminal);
        match cli.command {
            Command::Plugin => plugin(cli.verbose, &terminal),
            // Rendered whole, then written: a closed pipe (`| head`) ends the output quietly.
            Command::Completions { shell } => {
                let mut text = Vec::new();
                crate::frontends::cli::manual::completions(shell, &mut text)
                    .map(|()| output::print_stdout(&String::from_utf8_lossy(&text)))
                    .map(|()| 0)
            }
            Command::Man { command } => {
                let mut text = Vec::new();
                crate::frontends::cli::manual::man_page(command.as_deref(), &mut text)
                    .map(|()| output::print_stdout(&String::from_utf8_lossy(&text)))
                    .map(|()| 0)
            }
            Command::GithubAction(GithubActionArgs { step }) => {
                init_logging(cli.verbose);
                github_action(step, &terminal)
            }
            _ => {
                init_logging(cli.verbose);
                run(cli, config::process_env(Vec::new()), None, &terminal).map(|(code, _)| code)
            }
        }
    };
    let code = match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", terminal.scrub(&output::escape_lines(&format!("{err:#}"))));
            EXIT_CONFIG
        }
    };
    // After SIGINT or SIGTERM: the clean-up's end, one line, exit 130 or 143.
    ExitCode::from(interrupt::finish(code))
}

impl Cli {
    /// `--quiet` and `--no-progress`, for everything printed from now on.
    fn apply_output_choices(&self, terminal: &Terminal) {
        terminal.lines.set_quiet(self.quiet);
        if self.quiet || self.no_progress {
            terminal.lines.hide_progress();
        }
    }
}

/// The dialect the process environment speaks, if any.
fn detected_plugin() -> Result<Option<crate::frontends::detect::Detected>, String> {
    let env = config::process_env(Vec::new());
    let names: Vec<String> = std::env::vars_os().filter_map(|(name, _)| name.into_string().ok()).collect();
    crate::frontends::detect::detect(&|name| env(name), &names)
}

/// A plugin step: say which dialect this is, translate its settings, run them. Logging starts once
/// the settings are read, so that a dialect's debug setting (`--verbose` in its command line) counts.
fn plugin(verbose: bool, terminal: &Terminal) -> Result<u8> {
    let detected = detected_plugin().map_err(anyhow::Error::msg);
    let detected = match detected {
        Ok(Some(detected)) => detected,
        Ok(None) => {
            init_logging(verbose);
            anyhow::bail!(
                "no CI plugin settings found: expected PLUGIN_* (Drone, Woodpecker, Harness), PARAMETER_* (Vela) or INPUT_* with GITHUB_ACTIONS=true; see s3cache --help"
            );
        }
        Err(err) => {
            init_logging(verbose);
            return Err(err);
        }
    };
    terminal.notice(&detected.describe());
    if detected.dialect == crate::frontends::detect::Dialect::GithubAction {
        init_logging(verbose);
        return github_action(ActionStep::Restore, terminal);
    }
    // The dialects see a variable set but empty as set: `trusted_keys` from a blank secret refuses
    // every entry. Their other settings skip empty values themselves.
    let invocation = detected.dialect.invocation(&|name| std::env::var(name).ok());
    init_logging(verbose || invocation.as_ref().is_ok_and(|i| i.args.iter().any(|a| a == "--verbose")));
    let invocation = invocation.map_err(anyhow::Error::msg)?;
    tracing::debug!(args = ?invocation.args, "plugin command line");
    run_invocation(invocation, terminal).map(|(code, _)| code)
}

fn init_logging(verbose: bool) {
    let default = if verbose { "warn,s3cache=debug,guest=debug" } else { "warn" };
    let filter =
        tracing_subscriber::EnvFilter::try_from_env(env_vars::S3CACHE_LOG).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only for a person at a terminal: a log piped into a file or a CI log gets plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colour).with_target(false).init();
}

/// Runs what a front end translated its settings into.
fn run_invocation(mut invocation: Invocation, terminal: &Terminal) -> Result<(u8, Option<Summary>)> {
    invocation.secrets.iter().for_each(|s| terminal.add_secret(s));
    let mut cli = Cli::try_parse_from(std::iter::once("s3cache".to_owned()).chain(invocation.args))?;
    cli.apply_output_choices(terminal);
    given_signing(&mut cli.settings.signing, invocation.signing);
    let token_file = match invocation.web_identity_token.take() {
        Some(token) => Some(TokenFile::write(&token)?),
        None => None,
    };
    if let Some(file) = &token_file {
        invocation.env.push((env_vars::AWS_WEB_IDENTITY_TOKEN_FILE.to_owned(), file.0.display().to_string()));
    }
    run(cli, config::process_env(invocation.env), invocation.legacy, terminal)
}

/// A front end's own signing settings over the flags' variables: each one it sets wins, with its name.
fn given_signing(settings: &mut config::SigningSettings, given: config::SigningSettings) {
    if given.signing_key.is_some() {
        (settings.signing_key, settings.signing_key_source) = (given.signing_key, given.signing_key_source);
    }
    if given.trusted_keys.is_some() {
        (settings.trusted_keys, settings.trusted_keys_source) = (given.trusted_keys, given.trusted_keys_source);
    }
    if given.store_namespace.is_some() {
        settings.store_namespace = given.store_namespace;
    }
}

/// A web identity token in a file only this user can read, removed when the run ends.
struct TokenFile(PathBuf);

impl TokenFile {
    fn write(token: &str) -> Result<Self> {
        let path = std::env::temp_dir().join(crate::unique_name::unique_name(".s3cache-oidc-"));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options
            .open(&path)
            .and_then(|mut file| file.write_all(token.as_bytes()))
            .with_context(|| format!("writing the web identity token to {}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for TokenFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A step of the GitHub action: inputs → the same command line as the CLI → outputs, state, summary.
fn github_action(step: ActionStep, terminal: &Terminal) -> Result<u8> {
    terminal.lines.enable_github_actions();
    let step = match step {
        ActionStep::Restore => github::Step::Restore,
        ActionStep::Save => github::Step::Save,
        ActionStep::Post => github::Step::Post,
    };
    let env = config::process_env(Vec::new());
    let mut invocation = github::invocation(step, &|name| env(name)).map_err(anyhow::Error::msg)?;
    if let Some(reason) = invocation.skip.take() {
        invocation.secrets.iter().for_each(|s| terminal.add_secret(s));
        terminal.notice(&reason);
        return Ok(0);
    }
    terminal
        .lines
        .group(&terminal.scrub(&output::escape(&format!("s3cache {}", if step == github::Step::Restore { "restore" } else { "save" }))));
    let result = run_invocation(invocation, terminal);
    terminal.lines.end_group();
    let (code, summary) = result?;
    if let Some(summary) = summary {
        if let Some(path) = env(env_vars::GITHUB_OUTPUT) {
            github::append_records(Path::new(&path), &github::outputs(step, &summary)).context("writing GITHUB_OUTPUT")?;
        }
        if let (github::Step::Restore, Some(path)) = (step, env(env_vars::GITHUB_STATE)) {
            github::append_records(Path::new(&path), &github::state(&summary)).context("writing GITHUB_STATE")?;
        }
        if let Some(path) = env(env_vars::GITHUB_STEP_SUMMARY) {
            let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path).context("opening GITHUB_STEP_SUMMARY")?;
            file.write_all(github::step_summary(&summary).as_bytes())?;
        }
    }
    Ok(code)
}

/// The end of a save's or restore's final line: `12 members, 4.0 MiB (1.1 MiB stored) in 0.84 s,
/// 1.3 MiB/s`. The size is the tar stream's (unknown for another tool's archive); the stored size and
/// the throughput are the object's, what crossed the network.
fn transfer_line(members: u64, tar_bytes: Option<u64>, stored: u64, elapsed: std::time::Duration) -> String {
    let size = tar_bytes.map_or_else(
        || format!("{} stored", output::size(stored)),
        |tar| format!("{} ({} stored)", output::size(tar), output::size(stored)),
    );
    format!(
        "{}, {size} in {:.2} s, {}",
        output::counted(members, "member", "members"),
        elapsed.as_secs_f64(),
        output::rate(stored, elapsed)
    )
}

/// Completes a summary with what every summary has (the requests its operation sent, counted by
/// `reporter`), and writes it where `--summary-json` asked: a file, or stdout for `-`.
fn finish_summary(mut summary: Summary, store: &str, path: Option<&PathBuf>, reporter: &Reporter) -> Result<Summary> {
    summary.http_requests = reporter.requests_sent();
    summary.store = store.to_owned();
    match path {
        Some(path) if path.as_os_str() == "-" => output::print_stdout(&format!("{}\n", serde_json::to_string_pretty(&summary)?)),
        Some(path) => std::fs::write(path, serde_json::to_vec_pretty(&summary)?)
            .with_context(|| format!("writing the summary to {}", path.display()))?,
        None => {}
    }
    Ok(summary)
}

/// Runs a command; returns the exit code and, for saves and restores, the summary.
fn run(cli: Cli, env: EnvLookup, legacy: Option<crate::engine::Legacy>, terminal: &Terminal) -> Result<(u8, Option<Summary>)> {
    // On GitHub Actions, warnings become annotations and secrets are masked in the job log.
    if config::on_github_actions(&env) {
        terminal.lines.enable_github_actions();
    }
    match &cli.command {
        // A key needs only the sandbox and the workspace: no store, no credentials.
        Command::Key(args) => {
            output::print_stdout(&format!("{}\n", config::render_key(&cli.settings, env, &args.template, terminal)?));
            return Ok((0, None));
        }
        Command::GithubAction(_) | Command::Plugin => anyhow::bail!("github-action and plugin steps do not nest"),
        Command::Semaphore { .. } => anyhow::bail!("the Semaphore CLI runs before the command line is parsed"),
        Command::Completions { .. } | Command::Man { .. } => anyhow::bail!("completions and man are printed before anything runs"),
        _ => {}
    }
    let mut context = config::resolve_reporting(&cli.settings, env, terminal.reporter.clone())?;
    // A key given to `has` or `delete` follows the rules of saved keys, before any request.
    if let Command::Has(KeyedArgs { key, .. })
    | Command::Inspect(KeyedArgs { key, .. })
    | Command::Delete(DeleteArgs { keyed: KeyedArgs { key, .. }, .. }) = &cli.command
    {
        context.check_key(key)?;
    }
    context.cancel = interrupt::install(match cli.command {
        Command::Save(_) => interrupt::SAVE_INTERRUPTED,
        Command::Restore(_) => interrupt::RESTORE_INTERRUPTED,
        _ => interrupt::INTERRUPTED,
    });
    let store = context.store.location();
    let summary_path = cli.summary_json.as_ref();
    let settings = &cli.settings;
    match cli.command {
        Command::Save(args) => {
            let request = SaveRequest {
                key: args.key,
                paths: args.paths,
                format: args.format,
                compression_level: args.compression_level,
                overwrite: args.overwrite,
                cross_os: args.enable_cross_os_archive,
                plain_names: false,
            };
            let outcome = context.save(&request)?;
            let code = report_save(&outcome, args.fail_on_error, context.reporter());
            let summary = finish_summary(
                Summary::of_save(&outcome, &context.scopes.write, context.reporter()),
                &store,
                summary_path,
                context.reporter(),
            )?;
            Ok((code, Some(summary)))
        }
        Command::Restore(args) => {
            let request = RestoreRequest {
                key: args.key,
                restore_keys: args.restore_keys,
                fallback: crate::engine::Fallback::Prefix,
                paths: args.paths,
                cross_os: args.enable_cross_os_archive,
                lookup_only: args.lookup_only,
                exact_key_only: args.exact_key_only,
                legacy,
            };
            let outcome = context.restore(&request)?;
            let code = report_restore(&outcome, args.fail_on_cache_miss, args.fail_on_error, context.reporter());
            let summary = finish_summary(Summary::of_restore(&outcome, context.reporter()), &store, summary_path, context.reporter())?;
            Ok((code, Some(summary)))
        }
        Command::Serve(args) => match crate::serve::run(&context, &args) {
            Ok(code) => Ok((code, None)),
            Err(why) => {
                context.reporter().error(&why);
                Ok((super::EXIT_CONFIG, None))
            }
        },
        command => Ok((admin(command, settings, &context), None)),
    }
}

/// Prints what a save did; returns its exit code.
fn report_save(outcome: &SaveOutcome, fail_on_error: bool, out: &Reporter) -> u8 {
    match outcome {
        SaveOutcome::Saved { key, bytes, members, tar_bytes, elapsed, .. } => {
            out.notice(&format!("saved {key}: {}", transfer_line(*members, Some(*tar_bytes), *bytes, *elapsed)));
        }
        SaveOutcome::AlreadyExists { key } => {
            out.notice(&format!("cache entry {key} already exists; not saving (entries are immutable; --overwrite replaces one)"))
        }
        SaveOutcome::NothingToSave { key, unmatched } => {
            let message = format!("nothing to save under {key}: no --path matched a file ({})", unmatched.join(", "));
            // Tolerated unless --fail-on-error: then nothing saved is a failed save.
            if fail_on_error {
                out.error(&message);
                return EXIT_FAILED;
            }
            out.warning(&message);
        }
        SaveOutcome::Skipped { reason, .. } => out.notice(&format!("not saving: {reason}")),
        SaveOutcome::Failed { key, reason } => {
            let message = format!("cache {}not saved: {reason}", key.as_ref().map(|k| format!("{k} ")).unwrap_or_default());
            // `error:` when it fails the command, `warning:` when it is tolerated.
            return if fail_on_error {
                out.error(&message);
                EXIT_FAILED
            } else {
                out.warning(&message);
                0
            };
        }
        // The interrupt's own line is printed on the way out (frontends/interrupt.rs).
        SaveOutcome::Interrupted { .. } => return 0,
    }
    interrupt::completed_anyway();
    0
}

/// Prints what a restore did; returns its exit code: 1 for any miss with `fail_on_cache_miss`, and for a
/// failed one (an entry that could not be restored, a store that failed) with `fail_on_error`.
fn report_restore(outcome: &RestoreOutcome, fail_on_cache_miss: bool, fail_on_error: bool, out: &Reporter) -> u8 {
    match outcome {
        RestoreOutcome::Hit(hit) => {
            interrupt::completed_anyway();
            let how = if hit.exact { "exact match".to_string() } else { format!("fallback for {}", hit.primary_key) };
            if hit.restored {
                let removed = match hit.removed_local_files {
                    0 => String::new(),
                    files => format!("; removed {} the entry lacks", output::counted(files, "local file", "local files")),
                };
                out.notice(&format!(
                    "restored {} ({how}): {}{removed}",
                    hit.matched_key,
                    transfer_line(hit.members, hit.tar_bytes, hit.bytes, hit.elapsed)
                ));
            } else {
                out.notice(&format!("cache entry {} exists ({how}); lookup only, nothing restored", hit.matched_key));
            }
            0
        }
        RestoreOutcome::Miss { reason, failed, .. } => {
            let fails = fail_on_cache_miss || (*failed && fail_on_error);
            let message = if *failed { format!("cache not restored: {reason}") } else { format!("cache miss: {reason}") };
            // `error:` when it fails the command; a tolerated failure is a warning, a miss a notice.
            match (fails, *failed) {
                (true, _) => out.error(&message),
                (false, true) => out.warning(&message),
                (false, false) => out.notice(&message),
            }
            if fails { EXIT_FAILED } else { 0 }
        }
        // The interrupt's own line is printed on the way out (frontends/interrupt.rs).
        RestoreOutcome::Interrupted { .. } => 0,
    }
}

/// Runs an admin verb, prints its result, and returns its exit code. Store failures are printed
/// here (exit 3): unlike a save or restore, an admin verb is not a build step to keep green.
fn admin(command: Command, settings: &Settings, context: &CacheContext) -> u8 {
    let out = context.reporter();
    let result = match command {
        Command::List(args) => context.list_entries(&args.scopes.selection(settings), &args.prefix).map(|entries| {
            render::entries(&entries, args.output.json, out);
            0
        }),
        Command::Usage(args) => context.usage().map(|usage| {
            render::usage(&usage, settings.leftover_age, args.json, out);
            0
        }),
        Command::Has(args) => context.find_entry(&args.key, settings.scope.scope.as_deref()).map(|entry| {
            render::found(entry.as_ref(), &args.key, args.output.json, out);
            if entry.is_some() { 0 } else { EXIT_FAILED }
        }),
        Command::Inspect(args) => context.inspect(&args.key, settings.scope.scope.as_deref()).map(|found| {
            render::inspection(found.as_ref(), &args.key, args.output.json, out);
            match found {
                Some(found) if !matches!(found.verdict, Some(Err(_))) => 0,
                _ => EXIT_FAILED,
            }
        }),
        Command::Delete(DeleteArgs { keyed: args, missing_ok }) => {
            context.key_entries(&args.key, settings.scope.scope.as_deref()).map(|entries| {
                if entries.is_empty() {
                    let scope = settings.scope.scope.as_deref().unwrap_or(&context.scopes.write);
                    if args.output.json {
                        // The same document as a delete that deleted something, with nothing in it.
                        render::removal("delete", &crate::engine::admin::Removal::default(), serde_json::json!({}), false, true, out);
                    } else {
                        out.notice(&format!("no cache entry for key {:?} in scope {scope}", args.key));
                    }
                    return if missing_ok { 0 } else { EXIT_FAILED };
                }
                finish_removal("delete", context.remove(entries), serde_json::json!({}), false, args.output.json, out)
            })
        }
        Command::Clear(args) => {
            clear(context, settings, &args.scopes.selection(settings), args.yes, args.dry_run.dry_run, args.output.json)
        }
        Command::Flush(args) => context.stale_entries(args.older_than, SystemTime::now()).map(|stale| {
            let extra = serde_json::json!({ "older_than_secs": args.older_than.as_secs() });
            let removal = removal(context, settings, &ScopeSelection::All, stale, args.dry_run.dry_run);
            finish_removal("flush", removal, extra, args.dry_run.dry_run, args.output.json, out)
        }),
        Command::Prune(args) => context.eviction_candidates(args.max_size).map(|(evict, before)| {
            let removal = removal(context, settings, &ScopeSelection::All, evict, args.dry_run.dry_run);
            let after = before.bytes - removal.deleted.iter().map(|e| e.size()).sum::<u64>();
            let extra = serde_json::json!({ "max_bytes": args.max_size, "bytes_before": before.bytes, "bytes_after": after });
            finish_removal("prune", removal, extra, args.dry_run.dry_run, args.output.json, out)
        }),
        Command::Save(_)
        | Command::Restore(_)
        | Command::Key(_)
        | Command::GithubAction(_)
        | Command::Semaphore { .. }
        | Command::Plugin
        | Command::Serve(_)
        | Command::Completions { .. }
        | Command::Man { .. } => {
            unreachable!("not an admin verb")
        }
    };
    result.unwrap_or_else(|err| {
        out.error(&format!("the store failed: {err}"));
        EXIT_STORE
    })
}

/// Deletes `entries`, then the leftovers in `selection` older than the leftover age; with `dry_run`,
/// only finds those leftovers and deletes nothing.
fn removal(
    context: &CacheContext,
    settings: &Settings,
    selection: &ScopeSelection,
    entries: Vec<crate::engine::admin::Entry>,
    dry_run: bool,
) -> crate::engine::admin::Removal {
    if dry_run {
        return context.planned_removal(entries, selection, settings.leftover_age, SystemTime::now());
    }
    let mut removal = context.remove(entries);
    context.remove_leftovers(selection, settings.leftover_age, SystemTime::now(), &mut removal);
    removal
}

fn finish_removal(
    verb: &str,
    removal: crate::engine::admin::Removal,
    extra: serde_json::Value,
    dry_run: bool,
    as_json: bool,
    out: &Reporter,
) -> u8 {
    render::removal(verb, &removal, extra, dry_run, as_json, out);
    if removal.failed.is_empty() && removal.leftovers_failed.is_empty() { 0 } else { EXIT_STORE }
}

/// `clear`: shows what it would delete and asks on a terminal; elsewhere it needs `--yes`. A dry
/// run asks nothing.
fn clear(
    context: &CacheContext,
    settings: &Settings,
    selection: &ScopeSelection,
    yes: bool,
    dry_run: bool,
    as_json: bool,
) -> Result<u8, crate::store::StoreError> {
    let out = context.reporter();
    let entries = context.list_entries(selection, "")?;
    let store = context.store.location();
    // For people, a phrase; for --json, the scope's name, or null for every scope of the store.
    let scope = match selection {
        ScopeSelection::Own => Some(context.scopes.write.clone()),
        ScopeSelection::Named(scope) => Some(scope.clone()),
        ScopeSelection::All => None,
    };
    let what = scope.as_ref().map_or_else(|| format!("every scope of {store}"), |scope| format!("scope {scope}"));
    let tally = crate::engine::admin::Tally::of(&entries);
    if !yes && !dry_run && !entries.is_empty() {
        let question = format!("delete {} ({}) in {what}?", output::counted(tally.entries, "entry", "entries"), output::size(tally.bytes));
        if !std::io::stdin().is_terminal() {
            out.error(&format!("not clearing: {question} Pass --yes to confirm when not on a terminal"));
            return Ok(EXIT_CONFIG);
        }
        eprint!("{question} [y/N] ");
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            out.notice("not clearing");
            return Ok(EXIT_FAILED);
        }
    }
    let removal = removal(context, settings, selection, entries, dry_run);
    Ok(finish_removal("clear", removal, serde_json::json!({ "scope": scope, "store": store }), dry_run, as_json, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("s3cache").chain(args.iter().copied()))
    }

    fn selection(args: &[&str]) -> ScopeSelection {
        let cli = parse(args).unwrap();
        match &cli.command {
            Command::List(list) => list.scopes.selection(&cli.settings),
            Command::Clear(clear) => clear.scopes.selection(&cli.settings),
            other => panic!("not list or clear: {other:?}"),
        }
    }

    /// Admin verbs act on the run's own scope unless `--scope` names one or `--all-scopes` asks for all
    /// (which wins, so that a CI-wide `S3CACHE_SCOPE` does not stop a store-wide clear).
    #[test]
    fn admin_scope_selection() {
        assert_eq!(selection(&["list"]), ScopeSelection::Own);
        assert_eq!(selection(&["--scope", "feature-1", "list"]), ScopeSelection::Named("feature-1".into()));
        assert_eq!(selection(&["clear", "--all-scopes", "--yes"]), ScopeSelection::All);
        assert_eq!(selection(&["--scope", "x", "clear", "--all-scopes"]), ScopeSelection::All);
    }

    /// Durations and sizes parse as the settings do, and bad ones name the flag's value.
    #[test]
    fn admin_values() {
        let Command::Flush(flush) = parse(&["flush", "--older-than", "14d"]).unwrap().command else { panic!("flush") };
        assert_eq!(flush.older_than, Duration::from_secs(14 * 86_400));
        let Command::Flush(flush) = parse(&["flush", "--older-than", "30"]).unwrap().command else { panic!("flush") };
        assert_eq!(flush.older_than, Duration::from_secs(30 * 86_400));
        let Command::Prune(prune) = parse(&["prune", "--max-size", "500MiB"]).unwrap().command else { panic!("prune") };
        assert_eq!(prune.max_size, 500 << 20);
        let err = parse(&["prune", "--max-size", "big"]).unwrap_err().to_string();
        assert!(err.contains("the size must be a size such as 10GB, 500MiB or 1048576, not \"big\""), "{err}");
        let err = parse(&["--anonymous=yes", "list"]).unwrap_err().to_string();
        assert!(err.contains("must be true or false, not \"yes\""), "{err}");
    }

    /// Every dialect's command line is one the CLI accepts, so no dialect can drift from its flags.
    #[test]
    fn dialect_invocations_parse() {
        use crate::frontends::detect::Dialect;
        use crate::frontends::plugins::drone_cache::Flavour;
        let common = [
            ("DRONE_REPO_NAME", "app"),
            ("DRONE_REPO_OWNER", "acme"),
            ("VELA_REPO_ORG", "acme"),
            ("VELA_REPO_NAME", "app"),
            ("S3CACHE_VELA_DIR", "/nonexistent"),
        ];
        let cases: &[(Dialect, &[(&str, &str)])] = &[
            (
                Dialect::DroneCache(Flavour::DroneCache),
                &[
                    ("PLUGIN_REBUILD", "true"),
                    ("PLUGIN_BUCKET", "b"),
                    ("PLUGIN_MOUNT", "m"),
                    ("PLUGIN_ENCRYPTION", "AES256"),
                    ("PLUGIN_ACL", "private"),
                    ("PLUGIN_COMPRESSION_LEVEL", "5"),
                    ("PLUGIN_DEBUG", "true"),
                ],
            ),
            (
                Dialect::DroneCache(Flavour::Harness),
                &[
                    ("PLUGIN_RESTORE", "true"),
                    ("PLUGIN_BUCKET", "b"),
                    ("PLUGIN_STRICT_KEY_MATCHING", "false"),
                    ("PLUGIN_FAIL_RESTORE_IF_KEY_NOT_PRESENT", "true"),
                    ("PLUGIN_BACKEND_OPERATION_TIMEOUT", "60s"),
                ],
            ),
            (Dialect::DroneCache(Flavour::DroneCache), &[("PLUGIN_FLUSH", "true"), ("PLUGIN_BUCKET", "b")]),
            (
                Dialect::DroneS3Cache,
                &[
                    ("PLUGIN_MODE", "rebuild"),
                    ("PLUGIN_ROOT", "b"),
                    ("PLUGIN_MOUNT", "m"),
                    ("PLUGIN_ACCELERATED_ENDPOINT", "x"),
                    ("PLUGIN_PROFILE", "p"),
                ],
            ),
            (Dialect::DroneS3Cache, &[("PLUGIN_MODE", "flush"), ("PLUGIN_ROOT", "b")]),
            (
                Dialect::WoodpeckerCache,
                &[("PLUGIN_ACTION", "upload"), ("PLUGIN_BUCKET", "b"), ("PLUGIN_PATH", "m"), ("PLUGIN_DEBUG", "true")],
            ),
            (Dialect::WoodpeckerCache, &[("PLUGIN_ACTION", "clear"), ("PLUGIN_BUCKET", "b"), ("PLUGIN_KEY", "k")]),
            (
                Dialect::Vela,
                &[("PARAMETER_ACTION", "rebuild"), ("PARAMETER_BUCKET", "b"), ("PARAMETER_MOUNT", "m"), ("PARAMETER_LOG_LEVEL", "debug")],
            ),
            (Dialect::Vela, &[("PARAMETER_ACTION", "restore"), ("PARAMETER_BUCKET", "b")]),
        ];
        for (dialect, settings) in cases {
            let env = crate::env_vars::fixed(&[&common[..], settings].concat());
            let invocation = dialect.invocation(&env).unwrap();
            let parsed = Cli::try_parse_from(std::iter::once("s3cache".to_owned()).chain(invocation.args.clone()));
            assert!(parsed.is_ok(), "{dialect:?} {:?}: {}", invocation.args, parsed.unwrap_err());
        }
    }

    /// Boolean flags that take an optional value take it only after `=`, so a command may follow
    /// them; their variables set them too.
    #[test]
    fn optional_boolean_values() {
        let cli = parse(&["--allow-untrusted-save", "--quiet", "--no-progress", "--anonymous", "list"]).unwrap();
        assert!(cli.settings.scope.allow_untrusted_save && cli.quiet && cli.no_progress && cli.settings.anonymous);
        assert!(matches!(cli.command, Command::List(_)));
        let cli = parse(&["-q", "--no-progress=false", "--anonymous=false", "key", "--template", "k"]).unwrap();
        assert!(cli.quiet && !cli.no_progress && !cli.settings.anonymous);
        let err = parse(&["--quiet=maybe", "list"]).unwrap_err().to_string();
        assert!(err.contains("must be true or false, not \"maybe\""), "{err}");
    }

    /// A restore exits 1 on a failed miss only with --fail-on-error, on any miss with
    /// --fail-on-cache-miss, and 0 otherwise.
    #[test]
    fn restore_exit_codes() {
        let miss = |failed| RestoreOutcome::Miss { primary_key: Some("k".into()), reason: "why".into(), failed };
        let code = |failed, on_miss, on_error| report_restore(&miss(failed), on_miss, on_error, &Reporter::silent());
        assert_eq!([code(false, false, false), code(false, false, true), code(false, true, false)], [0, 0, EXIT_FAILED]);
        assert_eq!([code(true, false, false), code(true, false, true), code(true, true, false)], [0, EXIT_FAILED, EXIT_FAILED]);
        let Command::Restore(restore) = parse(&["restore", "--key", "k", "--fail-on-error"]).unwrap().command else { panic!("restore") };
        assert!(restore.fail_on_error && !restore.fail_on_cache_miss);
    }

    /// Saves default to zstd; `--format` picks the others.
    #[test]
    fn save_formats() {
        let Command::Save(save) = parse(&["save", "--key", "k", "--path", "p"]).unwrap().command else { panic!("save") };
        assert_eq!(save.format, Format::Zstd);
        let Command::Save(save) = parse(&["save", "--key", "k", "--path", "p", "--format", "gzip"]).unwrap().command else {
            panic!("save")
        };
        assert_eq!(save.format, Format::Gzip);
        assert!(parse(&["save", "--key", "k", "--path", "p", "--format", "lz4"]).is_err());
    }
}
