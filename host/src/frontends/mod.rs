//! Front ends: each way of running s3cache (the command line, a GitHub action step, CI plugins) is a
//! mapping of its own names onto the one engine, and nothing more. A dialect reads its environment
//! and produces an [`Invocation`] — the command line it means plus the settings it implies — which
//! the CLI then runs, so that every dialect gets the CLI's exact semantics and defaults.

pub mod action_files;
pub mod cli;
pub mod github;
mod render;
pub mod semaphore;

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
}
