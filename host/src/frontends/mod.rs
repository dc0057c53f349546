//! Front ends: each way of running s3cache (the command line, a GitHub action step, CI plugins, the
//! Semaphore `cache` CLI) is a mapping of its own names onto the one engine, and nothing more.
//!
//! The GitHub action ([`github`]) and the CI plugins ([`plugins`]: drone-cache, Harness,
//! drone-s3-cache, Woodpecker, Vela) read their environment and produce an [`Invocation`] — the
//! command line they mean plus the settings it implies — which the CLI ([`cli`]) then runs, so that
//! they get the CLI's exact semantics, defaults, messages and exit codes: a plugin step *is* an
//! `s3cache save` or `restore`.
//!
//! The Semaphore `cache` CLI ([`semaphore`]) does not: it replaces another tool verb for verb, and
//! its contract is that tool's, not s3cache's — its own verbs (`has_key`, `is_not_empty`,
//! `checksum`, lockfile auto-detection, a restore that tries keys as regular expressions), its
//! messages on stdout, and exit 0 on errors unless `CACHE_FAIL_ON_ERROR=true`. No s3cache command line means
//! that, so it resolves the same [`crate::config::Settings`] and drives the engine itself.

pub mod cli;
pub mod detect;
pub mod github;
pub mod interrupt;
pub mod plugins;
pub mod semaphore;

/// Exit code for a miss with `--fail-on-cache-miss`, a failed save or restore with `--fail-on-error`
/// (a save whose paths match no files too), or an admin verb's "no" (`has`, `delete` of a missing key).
pub const EXIT_FAILED: u8 = 1;
/// Exit code for a usage or configuration error.
pub const EXIT_CONFIG: u8 = 2;
/// Exit code for an admin verb whose store requests failed.
pub const EXIT_STORE: u8 = 3;

/// What a front end asks the CLI to run.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Invocation {
    /// The command line, after the program name.
    pub args: Vec<String>,
    /// Variables the run sees on top of the process environment (credentials from a dialect's
    /// settings, e.g. `S3CACHE_ACCESS_KEY_ID`).
    pub env: Vec<(String, String)>,
    /// Setting values to mask before anything is printed.
    pub secrets: Vec<String>,
    /// Set when the step has nothing to do (the post step after an exact hit); the reason is logged.
    pub skip: Option<String>,
    /// A web identity (OIDC) token from the settings: written to a private file for the run, whose
    /// path becomes `AWS_WEB_IDENTITY_TOKEN_FILE` (Harness's OIDC connectors pass the token itself).
    pub web_identity_token: Option<String>,
    /// Objects an old plugin wrote, in its own layout and without s3cache's trailer, that a restore
    /// may fall back to (read-only: nothing writes that layout); named around the restore's key.
    pub legacy: Option<crate::engine::Legacy>,
    /// Signing settings from the front end's own settings (input `signing-key`, `PLUGIN_TRUSTED_KEYS`),
    /// given to the run's settings directly: the key is a secret, kept off the command line (which
    /// verbose mode logs), and a setting set but empty keeps its name for the warning. Each one set
    /// wins over the flag's variable.
    pub signing: crate::config::SigningSettings,
}
