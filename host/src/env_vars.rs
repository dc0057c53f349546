//! Every environment variable s3cache reads, in one documented catalogue. Nothing else in the crate
//! names a variable; the CLI maps them to flags and the library receives typed values. A default
//! stated here, `(default N)`, is checked against the flag's by a test in [`crate::config`].

/// The store URL: `s3://bucket/prefix` or `file:///dir`. Default: a `file://` store in the user cache dir.
pub const S3CACHE_STORE: &str = "S3CACHE_STORE";
/// Where s3cache keeps its own files (the compiled guest, the default store). Default: `s3cache` in the
/// platform's user cache directory (`dirs::cache_dir`: `$XDG_CACHE_HOME` or `~/.cache` on Linux).
pub const S3CACHE_CACHE_DIR: &str = "S3CACHE_CACHE_DIR";
/// Log filter for diagnostics, in `tracing-subscriber`'s `EnvFilter` syntax (e.g. `debug`); when it
/// is set and valid it wins over `--verbose`.
pub const S3CACHE_LOG: &str = "S3CACHE_LOG";

/// Upload part and download range size, in MiB (default 8; S3's minimum part is 5).
pub const S3CACHE_PART_SIZE_MB: &str = "S3CACHE_PART_SIZE_MB";
/// Parts or ranges in flight at once (default 4).
pub const S3CACHE_CONCURRENCY: &str = "S3CACHE_CONCURRENCY";
/// Attempts per request, the first included (default 3).
pub const S3CACHE_MAX_ATTEMPTS: &str = "S3CACHE_MAX_ATTEMPTS";
/// Backoff before the first retry, in milliseconds; doubles per retry, with full jitter (default 100).
pub const S3CACHE_RETRY_BASE_MS: &str = "S3CACHE_RETRY_BASE_MS";
/// Connect timeout in seconds (default 5).
pub const S3CACHE_CONNECT_TIMEOUT_SECS: &str = "S3CACHE_CONNECT_TIMEOUT_SECS";
/// Longest the server may stay silent, in seconds: the wait for the first byte of an answer and the
/// longest gap between bytes of a body; also every body's grace on top of the minimum throughput
/// (default 20).
pub const S3CACHE_STALL_TIMEOUT_SECS: &str = "S3CACHE_STALL_TIMEOUT_SECS";
/// The slowest accepted transfer per request, KiB/s (default 256); slower bodies are aborted and retried.
pub const S3CACHE_MIN_THROUGHPUT_KBPS: &str = "S3CACHE_MIN_THROUGHPUT_KBPS";
/// The budget for one whole save or restore, in seconds (default 1200).
pub const S3CACHE_DEADLINE_SECS: &str = "S3CACHE_DEADLINE_SECS";

/// Seconds to add to the local clock when signing requests (default 0); for machines whose clock is
/// known to be wrong. The offset is also learned from the server when it answers RequestTimeTooSkewed.
pub const S3CACHE_CLOCK_OFFSET_SECS: &str = "S3CACHE_CLOCK_OFFSET_SECS";

/// Largest uncompressed archive a restore accepts, MiB (default 65536): the cap on decompression bombs.
pub const S3CACHE_MAX_UNPACKED_MB: &str = "S3CACHE_MAX_UNPACKED_MB";
/// Most archive members a restore accepts (default 5,000,000).
pub const S3CACHE_MAX_ENTRIES: &str = "S3CACHE_MAX_ENTRIES";
/// Memory cap of the sandboxed guest, MiB (default 1024).
pub const S3CACHE_GUEST_MEMORY_MB: &str = "S3CACHE_GUEST_MEMORY_MB";
/// Longest a single call into the guest may run, milliseconds (default 3,600,000).
pub const S3CACHE_GUEST_TIMEOUT_MS: &str = "S3CACHE_GUEST_TIMEOUT_MS";

/// How stale an entry's last use must be before a restore refreshes its last-used marker (default
/// `12h`; `0s` refreshes on every hit). The precision of `flush` and `prune`.
pub const S3CACHE_TOUCH_INTERVAL: &str = "S3CACHE_TOUCH_INTERVAL";
/// How old an incomplete upload or temporary file must be before `prune`, `flush` and `clear` remove
/// it (default `1d`): younger ones may belong to a save in progress.
pub const S3CACHE_LEFTOVER_AGE: &str = "S3CACHE_LEFTOVER_AGE";

/// `true`: print only warnings and errors, no notices and no progress bar (`--quiet`).
pub const S3CACHE_QUIET: &str = "S3CACHE_QUIET";
/// `true`: never draw a progress bar, even on a terminal (`--no-progress`).
pub const S3CACHE_NO_PROGRESS: &str = "S3CACHE_NO_PROGRESS";

/// A file to write a JSON summary of the operation to (key, matched key, hit, bytes, timings, digest).
pub const S3CACHE_SUMMARY_JSON: &str = "S3CACHE_SUMMARY_JSON";

/// The AWS SDKs' endpoint override for all services: `http://host[:port]` or `https://host[:port]`;
/// without the scheme an `s3://` store is refused (exit 2) before any request.
pub const AWS_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";
/// The AWS SDKs' endpoint override for S3; wins over [`AWS_ENDPOINT_URL`]. Needs the scheme as it does.
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

/// Explicit credentials, set by CI front ends from their inputs; they win over every other source.
pub const S3CACHE_ACCESS_KEY_ID: &str = "S3CACHE_ACCESS_KEY_ID";
/// Explicit secret key; never logged.
pub const S3CACHE_SECRET_ACCESS_KEY: &str = "S3CACHE_SECRET_ACCESS_KEY";
/// Explicit session token; never logged.
pub const S3CACHE_SESSION_TOKEN: &str = "S3CACHE_SESSION_TOKEN";
/// A role to assume (STS AssumeRole) with the credentials the chain found, as CI plugins' role settings do.
pub const S3CACHE_ASSUME_ROLE_ARN: &str = "S3CACHE_ASSUME_ROLE_ARN";
/// The session name of [`S3CACHE_ASSUME_ROLE_ARN`]'s session (default `s3cache`).
pub const S3CACHE_ASSUME_ROLE_SESSION_NAME: &str = "S3CACHE_ASSUME_ROLE_SESSION_NAME";
/// The external id the role's trust policy asks for, if any.
pub const S3CACHE_ASSUME_ROLE_EXTERNAL_ID: &str = "S3CACHE_ASSUME_ROLE_EXTERNAL_ID";
/// Send requests unsigned (public buckets); saving is refused. `true`/`false`.
pub const S3CACHE_ANONYMOUS: &str = "S3CACHE_ANONYMOUS";

/// The profile in the shared config files (default `default`).
pub const AWS_PROFILE: &str = "AWS_PROFILE";
/// The credentials file (default `~/.aws/credentials`).
pub const AWS_SHARED_CREDENTIALS_FILE: &str = "AWS_SHARED_CREDENTIALS_FILE";
/// The config file (default `~/.aws/config`).
pub const AWS_CONFIG_FILE: &str = "AWS_CONFIG_FILE";
/// The role to assume with a web identity token.
pub const AWS_ROLE_ARN: &str = "AWS_ROLE_ARN";
/// The file holding the web identity (OIDC) token.
pub const AWS_WEB_IDENTITY_TOKEN_FILE: &str = "AWS_WEB_IDENTITY_TOKEN_FILE";
/// The session name for assumed roles (default `s3cache`).
pub const AWS_ROLE_SESSION_NAME: &str = "AWS_ROLE_SESSION_NAME";
/// STS endpoint override (else [`AWS_ENDPOINT_URL`]); `http://` or `https://` as they are.
pub const AWS_ENDPOINT_URL_STS: &str = "AWS_ENDPOINT_URL_STS";
/// ECS container credentials path on 169.254.170.2.
pub const AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: &str = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI";
/// Container credentials URL (HTTPS, or HTTP to loopback or 169.254.170.2/23 only).
pub const AWS_CONTAINER_CREDENTIALS_FULL_URI: &str = "AWS_CONTAINER_CREDENTIALS_FULL_URI";
/// The authorization header value for the container endpoint.
pub const AWS_CONTAINER_AUTHORIZATION_TOKEN: &str = "AWS_CONTAINER_AUTHORIZATION_TOKEN";
/// A file holding that value (wins over the variable).
pub const AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: &str = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE";
/// `true` skips the EC2 instance metadata provider.
pub const AWS_EC2_METADATA_DISABLED: &str = "AWS_EC2_METADATA_DISABLED";
/// Seconds each instance-metadata call may take, connecting included (default 2), as in the AWS SDKs.
pub const AWS_METADATA_SERVICE_TIMEOUT: &str = "AWS_METADATA_SERVICE_TIMEOUT";
/// Instance metadata endpoint (default `http://169.254.169.254`).
pub const AWS_EC2_METADATA_SERVICE_ENDPOINT: &str = "AWS_EC2_METADATA_SERVICE_ENDPOINT";
/// GitHub Actions' runner files: step outputs, state for the post step, and the job summary (Markdown).
pub const GITHUB_OUTPUT: &str = "GITHUB_OUTPUT";
pub const GITHUB_STATE: &str = "GITHUB_STATE";
pub const GITHUB_STEP_SUMMARY: &str = "GITHUB_STEP_SUMMARY";
/// Set to `true` by GitHub Actions; secrets obtained at run time are then masked with `::add-mask::`.
pub const GITHUB_ACTIONS: &str = "GITHUB_ACTIONS";
/// Prefix of the variables that carry an action's inputs.
pub const GITHUB_INPUT_PREFIX: &str = "INPUT_";
/// Prefix of the variables that bring `GITHUB_STATE` records back to the post step.
pub const GITHUB_STATE_PREFIX: &str = "STATE_";

/// The variable that carries the action input `name`: `INPUT_` + the name upper-cased, spaces as `_`.
pub fn github_input(name: &str) -> String {
    format!("{GITHUB_INPUT_PREFIX}{}", name.to_uppercase().replace(' ', "_"))
}

/// The variable that brings the state record `name` back to the post step (the name as written).
pub fn github_state(name: &str) -> String {
    format!("{GITHUB_STATE_PREFIX}{name}")
}

/// Development only: set, the `generated` test rewrites the action files and docs/ tables from the
/// input list instead of checking them (`scripts/gen-actions`).
#[cfg(test)]
pub const S3CACHE_BLESS: &str = "S3CACHE_BLESS";

/// The scope to read and write instead of the CI's refs (one object-key segment).
pub const S3CACHE_SCOPE: &str = "S3CACHE_SCOPE";
/// `true` lets untrusted runs (fork pull requests, `pull_request_target`, `workflow_run`) save; logged as a warning.
pub const S3CACHE_ALLOW_UNTRUSTED_SAVE: &str = "S3CACHE_ALLOW_UNTRUSTED_SAVE";
/// The OpenSSH ed25519 private key that signs saved entries: the key's text or the path of its file.
/// A secret: never printed, masked in GitHub's log. Set but empty: entries are saved unsigned, with a warning.
pub const S3CACHE_SIGNING_KEY: &str = "S3CACHE_SIGNING_KEY";
/// The public keys a restore trusts (`.pub` or `allowed_signers` lines, or a file of them): only
/// entries signed by one of them restore. Set but empty: every entry is refused, with a warning.
pub const S3CACHE_TRUSTED_KEYS: &str = "S3CACHE_TRUSTED_KEYS";
/// The store's name in an entry's manifest, which a signed entry must match. Default: the store's
/// location (`s3://bucket/prefix`).
pub const S3CACHE_STORE_NAMESPACE: &str = "S3CACHE_STORE_NAMESPACE";

/// `s3cache serve`: the address to listen on (default 127.0.0.1:8080).
pub const S3CACHE_SERVE_LISTEN: &str = "S3CACHE_SERVE_LISTEN";
/// `s3cache serve`: the URL runners reach the server at, for the URLs it hands out. Default: `http://`
/// and the request's Host header.
pub const S3CACHE_SERVE_PUBLIC_URL: &str = "S3CACHE_SERVE_PUBLIC_URL";
/// `s3cache serve`: a file holding the key (at least 32 bytes) that signs download and upload URLs.
/// Default: a random key per process.
pub const S3CACHE_SERVE_URL_KEY_FILE: &str = "S3CACHE_SERVE_URL_KEY_FILE";
/// `s3cache serve`: the largest entry accepted (default 10GiB).
pub const S3CACHE_SERVE_MAX_ENTRY_SIZE: &str = "S3CACHE_SERVE_MAX_ENTRY_SIZE";
/// `s3cache serve`: how long an upload may stay unfinished before it is aborted (default 6h).
pub const S3CACHE_SERVE_UPLOAD_TIMEOUT: &str = "S3CACHE_SERVE_UPLOAD_TIMEOUT";
/// `s3cache serve`: requests served at once (default 64).
pub const S3CACHE_SERVE_MAX_CONNECTIONS: &str = "S3CACHE_SERVE_MAX_CONNECTIONS";
/// `s3cache serve`: the store size that maintenance evicts least recently used entries down to.
pub const S3CACHE_SERVE_MAX_STORE_SIZE: &str = "S3CACHE_SERVE_MAX_STORE_SIZE";
/// `s3cache serve`: maintenance deletes entries not used for longer than this.
pub const S3CACHE_SERVE_MAX_AGE: &str = "S3CACHE_SERVE_MAX_AGE";
/// `s3cache serve`: how often maintenance runs (default 1h).
pub const S3CACHE_SERVE_MAINTENANCE_INTERVAL: &str = "S3CACHE_SERVE_MAINTENANCE_INTERVAL";
/// `s3cache serve`: `true` runs no maintenance on this server.
pub const S3CACHE_SERVE_NO_MAINTENANCE: &str = "S3CACHE_SERVE_NO_MAINTENANCE";
/// `s3cache serve`: `true` serves without authentication on an address other than loopback (anyone who
/// reaches the server reads and writes every cache); warned of on every start.
pub const S3CACHE_SERVE_INSECURE_NO_AUTH_ON_NETWORK: &str = "S3CACHE_SERVE_INSECURE_NO_AUTH_ON_NETWORK";
/// `s3cache serve`: the JWKS (a URL or a file's path) whose keys sign the runtime tokens (JWT) accepted.
pub const S3CACHE_SERVE_JWT_JWKS: &str = "S3CACHE_SERVE_JWT_JWKS";
/// `s3cache serve`: the issuer tokens must name (default `https://token.actions.githubusercontent.com`).
pub const S3CACHE_SERVE_JWT_ISSUER: &str = "S3CACHE_SERVE_JWT_ISSUER";
/// `s3cache serve`: the audience tokens must name; unset, it is not checked.
pub const S3CACHE_SERVE_JWT_AUDIENCE: &str = "S3CACHE_SERVE_JWT_AUDIENCE";
/// `s3cache serve`: the one repository (`repository_id`) whose tokens are accepted; its scopes are then
/// named as the CLI names them.
pub const S3CACHE_SERVE_REPOSITORY: &str = "S3CACHE_SERVE_REPOSITORY";
/// `s3cache serve`: a file holding Forgejo runner's `cache.secret`, which authenticates its cache proxy.
pub const S3CACHE_SERVE_FORGEJO_SECRET_FILE: &str = "S3CACHE_SERVE_FORGEJO_SECRET_FILE";
/// `s3cache serve`: Forgejo runner's `cache.secret` itself. A secret: never printed.
pub const S3CACHE_SERVE_FORGEJO_SECRET: &str = "S3CACHE_SERVE_FORGEJO_SECRET";
/// `s3cache serve`: how old a Forgejo request's timestamp may be (default `1d`; `0s`: any age).
pub const S3CACHE_SERVE_FORGEJO_MAX_AGE: &str = "S3CACHE_SERVE_FORGEJO_MAX_AGE";

/// CI variables that scopes are made from ([`crate::engine::scope::ci_refs`]); all set by the CI itself.
pub mod ci {
    /// GitHub Actions: the run's ref, a pull request's base branch, the event, the repository, and
    /// the event payload file (for the default branch and a pull request's head repository).
    pub const GITHUB_REF: &str = "GITHUB_REF";
    pub const GITHUB_BASE_REF: &str = "GITHUB_BASE_REF";
    pub const GITHUB_EVENT_NAME: &str = "GITHUB_EVENT_NAME";
    pub const GITHUB_REPOSITORY: &str = "GITHUB_REPOSITORY";
    pub const GITHUB_EVENT_PATH: &str = "GITHUB_EVENT_PATH";
    /// GitLab CI: set in every job; the ref, a merge request's target, the default branch, and the
    /// merge request's source and target projects (they differ for forks).
    pub const GITLAB_CI: &str = "GITLAB_CI";
    pub const CI_COMMIT_REF_NAME: &str = "CI_COMMIT_REF_NAME";
    pub const CI_MERGE_REQUEST_TARGET_BRANCH_NAME: &str = "CI_MERGE_REQUEST_TARGET_BRANCH_NAME";
    pub const CI_DEFAULT_BRANCH: &str = "CI_DEFAULT_BRANCH";
    pub const CI_MERGE_REQUEST_SOURCE_PROJECT_ID: &str = "CI_MERGE_REQUEST_SOURCE_PROJECT_ID";
    pub const CI_MERGE_REQUEST_PROJECT_ID: &str = "CI_MERGE_REQUEST_PROJECT_ID";
    /// Drone (and Woodpecker's Drone-compatible names): the event, branches, and the default branch.
    pub const DRONE: &str = "DRONE";
    pub const DRONE_BUILD_EVENT: &str = "DRONE_BUILD_EVENT";
    pub const DRONE_BRANCH: &str = "DRONE_BRANCH";
    pub const DRONE_SOURCE_BRANCH: &str = "DRONE_SOURCE_BRANCH";
    pub const DRONE_TARGET_BRANCH: &str = "DRONE_TARGET_BRANCH";
    pub const DRONE_REPO_BRANCH: &str = "DRONE_REPO_BRANCH";
    /// Semaphore: set in every job; the branch (on pull requests the target), the pull request's source
    /// branch, the kind of ref, and the project's and the pull request's `owner/repo` (they differ for forks).
    pub const SEMAPHORE: &str = "SEMAPHORE";
    pub const SEMAPHORE_GIT_BRANCH: &str = "SEMAPHORE_GIT_BRANCH";
    pub const SEMAPHORE_GIT_PR_BRANCH: &str = "SEMAPHORE_GIT_PR_BRANCH";
    pub const SEMAPHORE_GIT_REF_TYPE: &str = "SEMAPHORE_GIT_REF_TYPE";
    pub const SEMAPHORE_GIT_REF: &str = "SEMAPHORE_GIT_REF";
    pub const SEMAPHORE_GIT_REPO_SLUG: &str = "SEMAPHORE_GIT_REPO_SLUG";
    pub const SEMAPHORE_GIT_PR_SLUG: &str = "SEMAPHORE_GIT_PR_SLUG";
    /// Woodpecker's own names (`CI=woodpecker`).
    pub const CI: &str = "CI";
    pub const CI_PIPELINE_EVENT: &str = "CI_PIPELINE_EVENT";
    pub const CI_COMMIT_BRANCH: &str = "CI_COMMIT_BRANCH";
    pub const CI_COMMIT_SOURCE_BRANCH: &str = "CI_COMMIT_SOURCE_BRANCH";
    pub const CI_COMMIT_TARGET_BRANCH: &str = "CI_COMMIT_TARGET_BRANCH";
    pub const CI_REPO_DEFAULT_BRANCH: &str = "CI_REPO_DEFAULT_BRANCH";
    /// Tags: Drone's and Woodpecker's tag names (tag events only).
    pub const DRONE_TAG: &str = "DRONE_TAG";
    pub const CI_COMMIT_TAG: &str = "CI_COMMIT_TAG";
    /// Vela (`VELA=true`): the event, the build's branch, a pull request's head and base branches,
    /// whether it comes from a fork (`true`/`false`), the repository's default branch, and the ref.
    pub const VELA: &str = "VELA";
    pub const VELA_BUILD_EVENT: &str = "VELA_BUILD_EVENT";
    pub const VELA_BUILD_BRANCH: &str = "VELA_BUILD_BRANCH";
    pub const VELA_BUILD_REF: &str = "VELA_BUILD_REF";
    pub const VELA_PULL_REQUEST_SOURCE: &str = "VELA_PULL_REQUEST_SOURCE";
    pub const VELA_PULL_REQUEST_TARGET: &str = "VELA_PULL_REQUEST_TARGET";
    pub const VELA_PULL_REQUEST_FORK: &str = "VELA_PULL_REQUEST_FORK";
    pub const VELA_REPO_BRANCH: &str = "VELA_REPO_BRANCH";
}

/// The Semaphore `cache` CLI's settings ([`crate::frontends::semaphore`]), as its agents set them.
pub mod semaphore {
    /// Must be `s3` (the only backend s3cache serves).
    pub const SEMAPHORE_CACHE_BACKEND: &str = "SEMAPHORE_CACHE_BACKEND";
    /// The bucket.
    pub const SEMAPHORE_CACHE_S3_BUCKET: &str = "SEMAPHORE_CACHE_S3_BUCKET";
    /// The aws-agent-stack's name for the bucket; used when `SEMAPHORE_CACHE_S3_BUCKET` is unset.
    pub const SEMAPHORE_AGENT_CACHE_BUCKET_NAME: &str = "SEMAPHORE_AGENT_CACHE_BUCKET_NAME";
    /// A custom endpoint (path-style, region `auto`, as the real CLI does).
    pub const SEMAPHORE_CACHE_S3_URL: &str = "SEMAPHORE_CACHE_S3_URL";
    /// Static credentials, used only with `SEMAPHORE_CACHE_S3_URL` and only when both are set.
    pub const SEMAPHORE_CACHE_S3_KEY: &str = "SEMAPHORE_CACHE_S3_KEY";
    pub const SEMAPHORE_CACHE_S3_SECRET: &str = "SEMAPHORE_CACHE_S3_SECRET";
    /// A profile in `~/.aws/config` and `~/.aws/credentials` (without a custom URL).
    pub const SEMAPHORE_CACHE_AWS_PROFILE: &str = "SEMAPHORE_CACHE_AWS_PROFILE";
    /// `true`: credentials from the EC2 instance profile (without a custom URL).
    pub const SEMAPHORE_CACHE_USE_EC2_INSTANCE_PROFILE: &str = "SEMAPHORE_CACHE_USE_EC2_INSTANCE_PROFILE";
    /// The project: entries live at `<project>/<key>`.
    pub const SEMAPHORE_PROJECT_ID: &str = "SEMAPHORE_PROJECT_ID";
    /// `true` turns errors into exit 1 (default: errors are printed and the command exits 0).
    pub const CACHE_FAIL_ON_ERROR: &str = "CACHE_FAIL_ON_ERROR";
    /// s3cache's own: `true` writes entries the real CLI's `tar xzf` restores too (fleets that still
    /// have agents on it): gzip, members named as `tar czf` names them, the manifest in a last empty member.
    pub const S3CACHE_SEMAPHORE_COMPATIBLE: &str = "S3CACHE_SEMAPHORE_COMPATIBLE";
}

/// The CI plugin front ends ([`crate::frontends::detect`]): the conventions that carry a step's
/// settings, the variables that choose and feed a dialect, and every alias a replaced plugin reads.
pub mod plugins {
    /// Prefix of Drone's, Woodpecker's and Harness's plugin settings: `settings: { cache_key: x }`
    /// arrives as `PLUGIN_CACHE_KEY=x` (lists comma-joined).
    pub const PLUGIN_PREFIX: &str = "PLUGIN_";
    /// Prefix of Vela's step parameters: `parameters: { action: restore }` is `PARAMETER_ACTION`.
    pub const PARAMETER_PREFIX: &str = "PARAMETER_";
    /// Names the dialect when the settings alone are ambiguous: `drone-cache`, `harness`,
    /// `drone-s3-cache`, `woodpecker-cache`, `vela` or `github`.
    pub const S3CACHE_PLUGIN: &str = "S3CACHE_PLUGIN";
    /// Stands in for `/vela` (Vela's parameter and secret files), so that tests need no root.
    pub const S3CACHE_VELA_DIR: &str = "S3CACHE_VELA_DIR";
    /// Set by Harness CI's runner: any of these tells Harness's Save/Restore Cache S3 steps from
    /// Drone running the same plugin.
    pub const HARNESS_MARKERS: &[&str] =
        &["HARNESS_ACCOUNT_ID", "HARNESS_BUILD_ID", "HARNESS_PIPELINE_ID", "HARNESS_STAGE_ID", "HARNESS_WORKSPACE"];

    // The AWS SDKs' own names, which the plugins also read as aliases of their settings.
    pub use super::{AWS_ACCESS_KEY_ID, AWS_PROFILE, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_SHARED_CREDENTIALS_FILE};

    // Aliases of meltwater drone-cache's settings (docs/compat/drone-cache-meltwater.md, section 2).
    pub const S3_BUCKET: &str = "S3_BUCKET";
    pub const S3_ENDPOINT: &str = "S3_ENDPOINT";
    pub const S3_REGION: &str = "S3_REGION";
    pub const CACHE_AWS_ACCESS_KEY_ID: &str = "CACHE_AWS_ACCESS_KEY_ID";
    pub const CACHE_AWS_SECRET_ACCESS_KEY: &str = "CACHE_AWS_SECRET_ACCESS_KEY";
    pub const AWS_PLUGIN_PATH_STYLE: &str = "AWS_PLUGIN_PATH_STYLE";
    pub const AWS_ACL: &str = "AWS_ACL";
    pub const AWS_ENCRYPTION: &str = "AWS_ENCRYPTION";
    pub const AWS_STS_ENDPOINT: &str = "AWS_STS_ENDPOINT";
    pub const AWS_DISABLESSL: &str = "AWS_DISABLESSL";
    pub const AWS_ASSUME_ROLE_ARN: &str = "AWS_ASSUME_ROLE_ARN";
    pub const EXIT_CODE: &str = "EXIT_CODE";
    pub const SKIP_SYMLINKS: &str = "SKIP_SYMLINKS";
    pub const BACKEND_OPERATION_TIMEOUT: &str = "BACKEND_OPERATION_TIMEOUT";

    // Aliases of drone-s3-cache's settings (docs/compat/drone-s3-cache.md, section 2).
    pub const CACHE_S3_ENDPOINT: &str = "CACHE_S3_ENDPOINT";
    pub const CACHE_S3_SERVER: &str = "CACHE_S3_SERVER";
    pub const CACHE_S3_ACCELERATED_ENDPOINT: &str = "CACHE_S3_ACCELERATED_ENDPOINT";
    pub const CACHE_S3_ACCESS_KEY: &str = "CACHE_S3_ACCESS_KEY";
    pub const CACHE_S3_SECRET_KEY: &str = "CACHE_S3_SECRET_KEY";
    pub const CACHE_S3_SESSION_TOKEN: &str = "CACHE_S3_SESSION_TOKEN";
    pub const CACHE_S3_REGION: &str = "CACHE_S3_REGION";
    pub const CACHE_S3_PROFILE: &str = "CACHE_S3_PROFILE";
    pub const CACHE_FILE_CREDENTIALS: &str = "CACHE_FILE_CREDENTIALS";

    // Aliases of vela-s3-cache's parameters (docs/compat/vela-s3-cache.md, section 1).
    pub const S3_CACHE_LOG_LEVEL: &str = "S3_CACHE_LOG_LEVEL";
    pub const S3_CACHE_ACTION: &str = "S3_CACHE_ACTION";
    pub const S3_CACHE_BUCKET: &str = "S3_CACHE_BUCKET";
    pub const S3_CACHE_PREFIX: &str = "S3_CACHE_PREFIX";
    pub const S3_CACHE_PATH: &str = "S3_CACHE_PATH";
    pub const S3_CACHE_FILENAME: &str = "S3_CACHE_FILENAME";
    pub const S3_CACHE_TIMEOUT: &str = "S3_CACHE_TIMEOUT";
    pub const PARAMETER_FLUSH_AGE: &str = "PARAMETER_FLUSH_AGE";
    pub const S3_CACHE_AGE: &str = "S3_CACHE_AGE";
    pub const S3_CACHE_COMPRESSION_LEVEL: &str = "S3_CACHE_COMPRESSION_LEVEL";
    pub const S3_CACHE_MOUNT: &str = "S3_CACHE_MOUNT";
    pub const S3_PRESERVE_PATH: &str = "S3_PRESERVE_PATH";
    pub const S3_CACHE_SERVER: &str = "S3_CACHE_SERVER";
    pub const S3_CACHE_ACCELERATED_ENDPOINT: &str = "S3_CACHE_ACCELERATED_ENDPOINT";
    pub const S3_CACHE_ACCESS_KEY: &str = "S3_CACHE_ACCESS_KEY";
    pub const S3_CACHE_SECRET_KEY: &str = "S3_CACHE_SECRET_KEY";
    pub const S3_CACHE_SESSION_TOKEN: &str = "S3_CACHE_SESSION_TOKEN";
    pub const S3_CACHE_REGION: &str = "S3_CACHE_REGION";
    pub const VELA_REPO_ORG: &str = "VELA_REPO_ORG";
    pub const VELA_REPO_NAME: &str = "VELA_REPO_NAME";
    /// Woodpecker's `owner/name`, the default `target_path` of its cache plugin.
    pub const CI_REPO: &str = "CI_REPO";

    /// drone-cache's template metadata (`{{ .Commit.Branch }}`): each field, the variables it is read
    /// from (Drone's and Harness's `DRONE_*`, then Woodpecker's `CI_*`), and drone-cache's default.
    /// `.Commit.Ref` reads the commit SHA, as drone-cache does (docs/compat, section 3).
    pub const TEMPLATE_METADATA: &[(&str, &[&str], &str)] = &[
        (".Repo.Name", &["DRONE_REPO_NAME", "CI_REPO_NAME"], ""),
        (".Repo.Namespace", &["DRONE_REPO_NAMESPACE", "CI_REPO_OWNER"], ""),
        (".Repo.Owner", &["DRONE_REPO_OWNER", "CI_REPO_OWNER"], ""),
        (".Repo.Branch", &["DRONE_REPO_BRANCH", "CI_REPO_DEFAULT_BRANCH"], ""),
        (".Repo.Link", &["DRONE_REPO_LINK", "CI_REPO_URL"], ""),
        (".Repo.Avatar", &["DRONE_REPO_AVATAR"], ""),
        (".Repo.Private", &["DRONE_REPO_PRIVATE", "CI_REPO_PRIVATE"], "false"),
        (".Repo.Trusted", &["DRONE_REPO_TRUSTED", "CI_REPO_TRUSTED"], "false"),
        (".Build.Number", &["DRONE_BUILD_NUMBER", "CI_PIPELINE_NUMBER"], "0"),
        (".Build.Event", &["DRONE_BUILD_EVENT", "CI_PIPELINE_EVENT"], "push"),
        (".Build.Status", &["DRONE_BUILD_STATUS", "CI_PIPELINE_STATUS"], "success"),
        (".Build.Deploy", &["DRONE_DEPLOY_TO", "CI_PIPELINE_DEPLOY_TARGET"], ""),
        (".Build.Created", &["DRONE_BUILD_CREATED", "CI_PIPELINE_CREATED"], "0"),
        (".Build.Started", &["DRONE_BUILD_STARTED", "CI_PIPELINE_STARTED"], "0"),
        (".Build.Finished", &["DRONE_BUILD_FINISHED", "CI_PIPELINE_FINISHED"], "0"),
        (".Build.Link", &["DRONE_BUILD_LINK", "CI_PIPELINE_URL"], ""),
        (".Commit.Branch", &["DRONE_COMMIT_BRANCH", "CI_COMMIT_BRANCH"], "master"),
        (".Commit.Sha", &["DRONE_COMMIT_SHA", "CI_COMMIT_SHA"], ""),
        (".Commit.Ref", &["DRONE_COMMIT_SHA", "CI_COMMIT_SHA"], ""),
        (".Commit.Remote", &["DRONE_REMOTE_URL", "CI_REPO_CLONE_URL"], ""),
        (".Commit.Link", &["DRONE_COMMIT_LINK", "CI_PIPELINE_FORGE_URL"], ""),
        (".Commit.Message", &["DRONE_COMMIT_MESSAGE", "CI_COMMIT_MESSAGE"], ""),
        (".Commit.Author.Name", &["DRONE_COMMIT_AUTHOR", "CI_COMMIT_AUTHOR"], ""),
        (".Commit.Author.Email", &["DRONE_COMMIT_AUTHOR_EMAIL", "CI_COMMIT_AUTHOR_EMAIL"], ""),
        (".Commit.Author.Avatar", &["DRONE_COMMIT_AUTHOR_AVATAR", "CI_COMMIT_AUTHOR_AVATAR"], ""),
    ];
}

/// The variable that carries the plugin setting `name` (`cache_key` → `PLUGIN_CACHE_KEY`): upper-cased,
/// `.` and `-` as `_`, as Drone and Woodpecker name them.
pub fn plugin_setting(name: &str) -> String {
    format!("{}{}", plugins::PLUGIN_PREFIX, name.to_uppercase().replace(['.', '-'], "_"))
}

/// The variable that carries the Vela parameter `name` (`action` → `PARAMETER_ACTION`).
pub fn vela_parameter(name: &str) -> String {
    format!("{}{}", plugins::PARAMETER_PREFIX, name.to_uppercase().replace(['.', '-'], "_"))
}

/// The branch `{{ branch }}` renders to, before any CI's own variable (the Woodpecker cache
/// dialect sets it from its plugin's branch rule).
pub const S3CACHE_BRANCH: &str = "S3CACHE_BRANCH";

/// Variables that name the current branch, in the order they are consulted for `{{ branch }}`.
pub const BRANCH_VARIABLES: &[&str] = &[
    S3CACHE_BRANCH,
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

/// A fixed environment, for unit tests of code that reads variables through a lookup function.
#[cfg(test)]
pub(crate) fn fixed(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: std::collections::HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |name| map.get(name).cloned()
}

/// Whether a variable may be handed to a key template through `{{ env "NAME" }}`. Anything that looks
/// like a credential is withheld, so a template cannot copy a secret into an object key or a log.
pub fn may_expose_to_templates(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    !WITHHELD_PREFIXES.iter().any(|prefix| upper.starts_with(prefix)) && !WITHHELD_WORDS.iter().any(|word| upper.contains(word))
}

/// Names (upper-cased) starting with one of these are withheld from templates.
pub const WITHHELD_PREFIXES: &[&str] = &["AWS_", "ACTIONS_"];
/// Names (upper-cased) containing one of these are withheld from templates.
pub const WITHHELD_WORDS: &[&str] = &["SECRET", "TOKEN", "PASSWORD", "PASSWD", "CREDENTIAL", "PRIVATE", "_KEY", "AUTH", "SESSION"];

#[cfg(test)]
mod tests {
    use super::*;

    /// Credentials and tokens are withheld from templates; ordinary variables are not.
    #[test]
    fn withholds_secrets_from_templates() {
        for name in
            ["AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "GITHUB_TOKEN", "ACTIONS_RUNTIME_TOKEN", "NPM_AUTH", "MY_API_KEY", "db_password"]
        {
            assert!(!may_expose_to_templates(name), "{name}");
        }
        for name in ["RUNNER_OS", "RUSTC_VERSION", "NODE_VERSION", "CACHE_EPOCH"] {
            assert!(may_expose_to_templates(name), "{name}");
        }
    }

    /// docs/cli.md's `{{ env }}` row lists every withheld prefix and word, in the code's order.
    #[test]
    fn readme_lists_the_withheld_names() {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/cli.md"));
        let row = readme.lines().find(|l| l.starts_with("| `{{ env \"NAME\" }}` |")).expect("docs/cli.md's env template row");
        let listed = |names: &[&str]| names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>();
        let prefixes = listed(WITHHELD_PREFIXES);
        assert!(row.contains(&format!("starts with {}", prefixes.join(" or "))), "{row}");
        let words = listed(WITHHELD_WORDS);
        let (last, rest) = words.split_last().unwrap();
        assert!(row.contains(&format!("contains {} or {last}", rest.join(", "))), "{row}");
    }
}
