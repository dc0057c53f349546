//! Front ends: each way of running s3cache (the command line, a GitHub action step, CI plugins) is a
//! mapping of its own names onto the one engine, and nothing more. A dialect reads its environment
//! and produces an [`Invocation`] — the command line it means plus the settings it implies — which
//! the CLI then runs, so that every dialect gets the CLI's exact semantics and defaults.

pub mod cli;
pub mod detect;
pub mod github;
pub mod interrupt;
pub mod legacy;
pub mod plugins;
pub mod semaphore;

/// Exit code for a miss with `--fail-on-cache-miss`, a failed save or restore with `--fail-on-error`,
/// or an admin verb's "no" (`has`, `delete` of a missing key).
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
    /// may fall back to (read-only: nothing writes that layout).
    pub legacy: Vec<LegacyObject>,
}

/// An object in a replaced plugin's layout: plain tar or tar.gz, no manifest, no digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyObject {
    /// The object's name under the invocation's store prefix.
    pub object: LegacyName,
    pub format: crate::archive::layout::Format,
    /// The paths the object holds, as the step names them (its `mount`s).
    pub paths: Vec<String>,
    /// How the archive's member names spell that path.
    pub names: LegacyNames,
    /// The plugin that wrote it, for the notice a restore of it prints.
    pub writer: &'static str,
}

/// An old object's name: fixed, or around the restore's rendered key (drone-cache's
/// `<root>/<key>/<mount>`, whose key may need the sandbox to render).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegacyName {
    Fixed(String),
    AroundKey { before: String, after: String },
}

impl LegacyName {
    /// The name, given the rendered key.
    pub fn object(&self, key: &str) -> String {
        match self {
            LegacyName::Fixed(name) => name.clone(),
            LegacyName::AroundKey { before, after } => format!("{before}{key}{after}"),
        }
    }
}

/// How an old plugin's archive names its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyNames {
    /// The mount's absolute path (`/drone/src/vendor/x`): meltwater drone-cache since 1.4.
    Absolute,
    /// Relative to the working directory (`vendor/x`; absolute mounts without their leading `/`):
    /// drone-s3-cache, and Harness's fork for `./` mounts.
    Relative,
    /// Relative to the mount's parent directory (`vendor/x` for mount `a/b/vendor`): vela-s3-cache.
    FromParent,
}
