//! Every environment variable s3cache reads, in one documented catalogue. Nothing else in the crate
//! names a variable; the CLI maps them to flags and the library receives typed values.

/// The store URL: `s3://bucket/prefix` or `file:///dir`. Default: a `file://` store in the user cache dir.
pub const S3CACHE_STORE: &str = "S3CACHE_STORE";
/// Where s3cache keeps its own files (the compiled guest, the default store). Default: `~/.cache/s3cache`.
pub const S3CACHE_CACHE_DIR: &str = "S3CACHE_CACHE_DIR";
/// Log filter for diagnostics, in `tracing-subscriber`'s `EnvFilter` syntax (e.g. `debug`).
pub const S3CACHE_LOG: &str = "S3CACHE_LOG";

/// Upload part and download range size, in MiB (default 16; S3's minimum part is 5).
pub const S3CACHE_PART_SIZE_MB: &str = "S3CACHE_PART_SIZE_MB";
/// Parts or ranges in flight at once (default 4).
pub const S3CACHE_CONCURRENCY: &str = "S3CACHE_CONCURRENCY";
/// Attempts per request, the first included (default 3).
pub const S3CACHE_MAX_ATTEMPTS: &str = "S3CACHE_MAX_ATTEMPTS";
/// Backoff before the first retry, in milliseconds; doubles per retry, with full jitter (default 100).
pub const S3CACHE_RETRY_BASE_MS: &str = "S3CACHE_RETRY_BASE_MS";
/// Connect timeout in seconds (default 5).
pub const S3CACHE_CONNECT_TIMEOUT_SECS: &str = "S3CACHE_CONNECT_TIMEOUT_SECS";
/// Seconds of grace for every request body on top of the minimum throughput (default 10).
pub const S3CACHE_STALL_TIMEOUT_SECS: &str = "S3CACHE_STALL_TIMEOUT_SECS";
/// The slowest accepted transfer per request, KiB/s (default 256); slower bodies are aborted and retried.
pub const S3CACHE_MIN_THROUGHPUT_KBPS: &str = "S3CACHE_MIN_THROUGHPUT_KBPS";
/// The budget for one whole save or restore, in seconds (default 1200).
pub const S3CACHE_DEADLINE_SECS: &str = "S3CACHE_DEADLINE_SECS";

/// Seconds to add to the local clock when signing requests (default 0); for machines whose clock is
/// known to be wrong. The offset is also learned from the server when it answers RequestTimeTooSkewed.
pub const S3CACHE_CLOCK_OFFSET_SECS: &str = "S3CACHE_CLOCK_OFFSET_SECS";

/// The AWS SDKs' endpoint override for all services.
pub const AWS_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";
/// The AWS SDKs' endpoint override for S3; wins over [`AWS_ENDPOINT_URL`].
pub const AWS_ENDPOINT_URL_S3: &str = "AWS_ENDPOINT_URL_S3";
/// The region, as the AWS SDKs read it.
pub const AWS_REGION: &str = "AWS_REGION";
/// The region, older name; used when [`AWS_REGION`] is unset.
pub const AWS_DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";
/// Access key id; empty counts as unset.
pub const AWS_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
/// Secret access key; empty counts as unset. Never logged.
pub const AWS_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
/// Session token for temporary credentials; never logged.
pub const AWS_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";

/// Variables that name the current branch, in the order they are consulted for `{{ branch }}`.
pub const BRANCH_VARIABLES: &[&str] = &[
    "S3CACHE_BRANCH",
    "GITHUB_HEAD_REF",
    "GITHUB_REF_NAME",
    "CI_COMMIT_BRANCH",
    "DRONE_BRANCH",
    "CI_COMMIT_REF_NAME",
    "VELA_BUILD_BRANCH",
    "SEMAPHORE_GIT_BRANCH",
    "BUILDKITE_BRANCH",
    "BRANCH_NAME",
];

/// Whether a variable may be handed to a key template through `{{ env "NAME" }}`. Anything that looks
/// like a credential is withheld, so a template cannot copy a secret into an object key or a log.
pub fn may_expose_to_templates(name: &str) -> bool {
    const SECRET_WORDS: &[&str] = &["SECRET", "TOKEN", "PASSWORD", "PASSWD", "CREDENTIAL", "PRIVATE", "_KEY", "AUTH", "SESSION"];
    let upper = name.to_ascii_uppercase();
    !upper.starts_with("AWS_") && !upper.starts_with("ACTIONS_") && !SECRET_WORDS.iter().any(|word| upper.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Credentials and tokens are withheld from templates; ordinary variables are not.
    #[test]
    fn withholds_secrets_from_templates() {
        for name in ["AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "GITHUB_TOKEN", "ACTIONS_RUNTIME_TOKEN", "NPM_AUTH", "MY_API_KEY", "db_password"] {
            assert!(!may_expose_to_templates(name), "{name}");
        }
        for name in ["RUNNER_OS", "RUSTC_VERSION", "NODE_VERSION", "CACHE_EPOCH"] {
            assert!(may_expose_to_templates(name), "{name}");
        }
    }
}
