//! The GitHub Actions runner protocol, for `s3cache github-action restore|save|post`.
//!
//! The runner hands an action its inputs as `INPUT_<NAME>` variables (upper-cased, spaces as `_`),
//! takes outputs and state from the files named by `GITHUB_OUTPUT` and `GITHUB_STATE` (state comes
//! back to the post step as `STATE_<name>`), renders `GITHUB_STEP_SUMMARY` as Markdown, and reads
//! workflow commands (`::add-mask::`, `::group::`, `::warning::`) from the log. This module turns
//! inputs into the ordinary command line — so the action and the CLI cannot drift apart — and writes
//! outputs, state and the summary table from the operation's [`Summary`].

#[cfg(test)]
mod action_files;

use std::io::Write;

use crate::config::parse;
use crate::engine::summary::Summary;
use crate::env_vars;
use crate::frontends::Invocation;
use crate::store::s3::Endpoint;

/// Which step of the action runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `main` of the action, or the `restore` sub-action.
    Restore,
    /// The `save` sub-action.
    Save,
    /// `post` of the action: saves unless the restore hit the primary key.
    Post,
}

/// Which actions take an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsedBy {
    /// The restore side: the Docker action and `restore/`.
    Restore,
    /// The save side: the Docker action (its post step) and `save/`.
    Save,
    /// Both sides, every action.
    All,
    /// The composite actions only (`restore/`, `save/`): read by `action/find-binary.sh`.
    Composites,
}

impl UsedBy {
    fn restore(self) -> bool {
        matches!(self, UsedBy::Restore | UsedBy::All)
    }

    fn save(self) -> bool {
        matches!(self, UsedBy::Save | UsedBy::All)
    }
}

/// How an input becomes part of the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mapping {
    /// One `OPTION VALUE` per line of the input (`path`, `restore-keys`).
    Lines(&'static str),
    /// The primary key (the post step takes it from the restore's state).
    Key,
    /// `OPTION VALUE` when set.
    Value(&'static str),
    /// `OPTION` when `true`; `false` or empty leave it out; anything else is an error.
    Flag(&'static str),
    /// `--endpoint URL` when set; a URL without `http://` or `https://` is an error naming the input.
    Endpoint,
    /// A variable for the credential chain; `secret` values are masked before anything is printed.
    Credential { variable: &'static str, secret: bool },
    /// The signing key, a secret: given to the run's settings, never on the command line (which
    /// verbose mode logs); each line of it is masked once it loads.
    SigningKey,
    /// Parts of the store URL (`store`, or `bucket` and `prefix`).
    Store,
    /// Not the binary's: the composite actions' binary finder reads it.
    Finder,
}

/// One input of the actions: its name, default (`None`: required), which actions take it, what it
/// means and how it maps onto the CLI. The action files and docs/github-actions.md's table are generated from
/// [`INPUTS`] (see the `generated` test), so the three actions and the docs cannot drift apart.
#[derive(Debug, Clone, Copy)]
pub struct Input {
    pub name: &'static str,
    pub default: Option<&'static str>,
    pub used_by: UsedBy,
    #[cfg_attr(not(test), allow(dead_code, reason = "documentation, read by the unit test that writes and checks the action files"))]
    pub doc: &'static str,
    /// The description in `save/action.yml`, where it differs.
    #[cfg_attr(not(test), allow(dead_code, reason = "documentation, read by the unit test that writes and checks the action files"))]
    pub save_doc: Option<&'static str>,
    pub mapping: Mapping,
}

const fn input_def(name: &'static str, default: Option<&'static str>, used_by: UsedBy, mapping: Mapping, doc: &'static str) -> Input {
    Input { name, default, used_by, doc, save_doc: None, mapping }
}

/// Every input of `action.yml`, `restore/action.yml` and `save/action.yml`, in their order.
pub const INPUTS: &[Input] = &[
    Input {
        save_doc: Some("Files, directories and globs to cache, one per line (`!` excludes; `~` expands)."),
        ..input_def(
            "path",
            None,
            UsedBy::All,
            Mapping::Lines("--path"),
            "Files, directories and globs to cache, one per line (`!` excludes; `~` expands). Same list for save and restore.",
        )
    },
    Input {
        save_doc: Some("Key to save under (at most 512 bytes, no commas)."),
        ..input_def("key", None, UsedBy::All, Mapping::Key, "Key to restore (matched exactly) and to save under.")
    },
    input_def(
        "restore-keys",
        Some(""),
        UsedBy::Restore,
        Mapping::Lines("--restore-key"),
        "Ordered key prefixes, one per line, tried when `key` misses; the newest match of the first prefix wins.",
    ),
    input_def(
        "fail-on-cache-miss",
        Some("false"),
        UsedBy::Restore,
        Mapping::Flag("--fail-on-cache-miss"),
        "Fail the job when no entry is restored.",
    ),
    input_def(
        "fail-on-restore-error",
        Some("false"),
        UsedBy::Restore,
        Mapping::Flag("--fail-on-error"),
        "Fail the step when the restore fails (network, store, credentials, a damaged or refused entry) instead of warning; a plain miss still passes unless `fail-on-cache-miss`.",
    ),
    input_def(
        "lookup-only",
        Some("false"),
        UsedBy::Restore,
        Mapping::Flag("--lookup-only"),
        "Only check that a restorable entry exists; download nothing.",
    ),
    Input {
        save_doc: Some("Save for every OS (restores elsewhere need it too)."),
        ..input_def(
            "enableCrossOsArchive",
            Some("false"),
            UsedBy::All,
            Mapping::Flag("--enable-cross-os-archive"),
            "Save for every OS, and restore entries saved on another OS that way.",
        )
    },
    input_def(
        "exact-key-only",
        Some("false"),
        UsedBy::Restore,
        Mapping::Flag("--exact-key-only"),
        "Ignore `restore-keys` matches (release builds).",
    ),
    input_def(
        "overwrite",
        Some("false"),
        UsedBy::Save,
        Mapping::Flag("--overwrite"),
        "Replace an existing entry with this key instead of keeping the first one.",
    ),
    input_def(
        "format",
        Some("zstd"),
        UsedBy::Save,
        Mapping::Value("--format"),
        "Archive format: `zstd`, `gzip` or `tar`; restores read all three.",
    ),
    input_def(
        "compression-level",
        Some(""),
        UsedBy::Save,
        Mapping::Value("--compression-level"),
        "Compression level: zstd 1-19 (default 3), gzip 1-9 (default 6); recorded in the entry, not in its key.",
    ),
    input_def(
        "fail-on-error",
        Some("false"),
        UsedBy::Save,
        Mapping::Flag("--fail-on-error"),
        "Fail the step when saving fails (network, store, unreadable files) or no path matches a file, instead of warning.",
    ),
    input_def(
        "acl",
        Some(""),
        UsedBy::Save,
        Mapping::Value("--acl"),
        "Canned ACL of the saved object, e.g. `public-read` (needs `s3:PutObjectAcl`). Default: the bucket's.",
    ),
    input_def(
        "sse",
        Some(""),
        UsedBy::Save,
        Mapping::Value("--sse"),
        "Server-side encryption of the saved object: `AES256` (SSE-S3) or `aws:kms` (SSE-KMS). Default: the bucket's.",
    ),
    input_def("sse-kms-key-id", Some(""), UsedBy::Save, Mapping::Value("--sse-kms-key-id"), "KMS key id for `sse: aws:kms`."),
    input_def(
        "storage-class",
        Some(""),
        UsedBy::Save,
        Mapping::Value("--storage-class"),
        "Storage class of the saved object, e.g. `STANDARD_IA`.",
    ),
    input_def(
        "tags",
        Some(""),
        UsedBy::Save,
        Mapping::Lines("--tag"),
        "Object tags of the saved object, one `KEY=VALUE` per line (needs `s3:PutObjectTagging`).",
    ),
    input_def(
        "metadata",
        Some(""),
        UsedBy::Save,
        Mapping::Lines("--metadata"),
        "User metadata of the saved object (`x-amz-meta-KEY`), one `KEY=VALUE` per line.",
    ),
    input_def("bucket", Some(""), UsedBy::All, Mapping::Store, "S3 bucket to keep caches in (alternative to `store`)."),
    input_def("prefix", Some(""), UsedBy::All, Mapping::Store, "Key prefix inside the bucket, e.g. `team/project`."),
    input_def(
        "store",
        Some(""),
        UsedBy::All,
        Mapping::Store,
        "Full store URL, `s3://bucket/prefix` (wins over `bucket`/`prefix`). Default: the S3CACHE_STORE environment variable.",
    ),
    input_def(
        "endpoint",
        Some(""),
        UsedBy::All,
        Mapping::Endpoint,
        "S3 endpoint URL for S3-compatible stores (MinIO, R2, Ceph...), `http://host[:port]` or `https://host[:port]`; without the scheme the step fails. Default: AWS, or AWS_ENDPOINT_URL.",
    ),
    input_def("region", Some(""), UsedBy::All, Mapping::Value("--region"), "Region. Default: AWS_REGION, else us-east-1."),
    input_def(
        "path-style",
        Some("false"),
        UsedBy::All,
        Mapping::Flag("--path-style"),
        "Use path-style addressing (`host/bucket/key`); automatic for IP and localhost endpoints.",
    ),
    input_def(
        "access-key-id",
        Some(""),
        UsedBy::All,
        Mapping::Credential { variable: env_vars::S3CACHE_ACCESS_KEY_ID, secret: false },
        "Access key id. Default: the AWS credential chain (env, profile, web identity/OIDC, ECS, IMDS).",
    ),
    input_def(
        "secret-access-key",
        Some(""),
        UsedBy::All,
        Mapping::Credential { variable: env_vars::S3CACHE_SECRET_ACCESS_KEY, secret: true },
        "Secret access key; masked in the log.",
    ),
    input_def(
        "session-token",
        Some(""),
        UsedBy::All,
        Mapping::Credential { variable: env_vars::S3CACHE_SESSION_TOKEN, secret: true },
        "Session token for temporary credentials; masked in the log.",
    ),
    input_def(
        "scope",
        Some(""),
        UsedBy::All,
        Mapping::Value("--scope"),
        "Read and write only this scope instead of the branch scopes (current ref, then the PR base, then the default branch).",
    ),
    input_def(
        "allow-untrusted-save",
        Some("false"),
        UsedBy::All,
        Mapping::Flag("--allow-untrusted-save"),
        "Let fork pull requests, `pull_request_target` and `workflow_run` save (logged as a warning).",
    ),
    input_def(
        "signing-key",
        Some(""),
        UsedBy::Save,
        Mapping::SigningKey,
        "Sign saved entries with this OpenSSH ed25519 private key (its text, or the path of its file): pass it from a secret (`secrets.CACHE_SIGNING_KEY` in an expression), never as plain text. Masked in the log line by line. An existing entry at the key that `trusted-keys` (else this key) does not verify is replaced.",
    ),
    input_def(
        "trusted-keys",
        Some(""),
        UsedBy::All,
        Mapping::Value("--trusted-keys"),
        "Restore only entries signed by one of these public keys: `.pub` or `allowed_signers` lines, or the path of a file of them; others are refused (a miss, with the reason in the log). Empty means not set, as the runner passes an input not given as empty: then the `S3CACHE_TRUSTED_KEYS` variable applies, which refuses every entry when set but empty.",
    ),
    input_def(
        "store-namespace",
        Some(""),
        UsedBy::All,
        Mapping::Value("--store-namespace"),
        "The store's name in entries' manifests, which signed entries must match. Default: the store's location, `s3://bucket/prefix`.",
    ),
    input_def(
        "binary",
        Some(""),
        UsedBy::Composites,
        Mapping::Finder,
        "Path to an s3cache binary to use. Default: `s3cache` on PATH, else the release binary for this runner, verified against the sha256 pinned in action/checksums.txt.",
    ),
];

/// Reads an input the way the runner passes it ([`env_vars::github_input`]), trimmed; empty is unset.
pub fn input(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    env(&env_vars::github_input(name)).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn flag(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Result<bool, String> {
    match input(env, name) {
        None => Ok(false),
        Some(value) => parse::boolean(&format!("input `{name}`"), &value).map_err(|e| e.to_string()),
    }
}

/// Lines of a multi-line input (actions/cache's `path` and `restore-keys`), trimmed, blanks dropped.
fn lines(value: Option<String>) -> Vec<String> {
    value.unwrap_or_default().lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

/// The state names the restore step leaves for the post step.
pub const STATE_PRIMARY_KEY: &str = "s3cache-primary-key";
pub const STATE_MATCHED_KEY: &str = "s3cache-matched-key";

/// The store URL from `store`, or from `bucket` and `prefix`.
fn store_url(env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    match (input(env, "store"), input(env, "bucket")) {
        (Some(store), _) => Some(store),
        (None, Some(bucket)) => Some(match input(env, "prefix") {
            Some(prefix) => format!("s3://{bucket}/{}", prefix.trim_matches('/')),
            None => format!("s3://{bucket}"),
        }),
        (None, None) => None,
    }
}

/// The post step's primary key: the restore's, or `key`; `skip` is set after an exact hit.
fn post_key(env: &dyn Fn(&str) -> Option<String>, inv: &mut Invocation) -> Result<String, String> {
    let primary = env(&env_vars::github_state(STATE_PRIMARY_KEY)).filter(|k| !k.is_empty());
    let matched = env(&env_vars::github_state(STATE_MATCHED_KEY)).filter(|k| !k.is_empty());
    if primary.is_some() && primary == matched {
        inv.skip = Some(format!("cache hit on the primary key {}, not saving", primary.as_deref().unwrap_or_default()));
    }
    if flag(env, "lookup-only")? {
        inv.skip = Some("lookup-only is set, not saving".into());
    }
    primary.or_else(|| input(env, "key")).ok_or_else(|| "no primary key: the restore step did not run and input `key` is empty".into())
}

/// Translates the step's inputs (and, for `post`, the restore's state) into an invocation: every
/// input of [`INPUTS`] that the step takes, mapped as its [`Mapping`] says.
pub fn invocation(step: Step, env: &dyn Fn(&str) -> Option<String>) -> Result<Invocation, String> {
    let mut inv = Invocation::default();
    let restoring = step == Step::Restore;
    let mut global = Vec::new();
    if let Some(store) = store_url(env) {
        global.extend(["--store".to_owned(), store]);
    }
    let mut command = vec![if restoring { "restore" } else { "save" }.to_owned()];
    let mut tail = Vec::new();
    for spec in INPUTS.iter().filter(|i| if restoring { i.used_by.restore() } else { i.used_by.save() }) {
        // Global flags are accepted after the command too, so every input follows it.
        let out = &mut command;
        match spec.mapping {
            Mapping::Key => {
                let key = match step {
                    Step::Post => post_key(env, &mut inv)?,
                    _ => input(env, spec.name).ok_or_else(|| format!("input `{}` is required", spec.name))?,
                };
                out.extend(["--key".to_owned(), key]);
            }
            Mapping::Lines(option) => {
                let values = lines(input(env, spec.name));
                if spec.default.is_none() && values.is_empty() {
                    return Err(format!("input `{}` is required: the files, directories and globs to cache, one per line", spec.name));
                }
                // Paths go last, after the command's own options.
                let out = if option == "--path" { &mut tail } else { out };
                values.into_iter().for_each(|value| out.extend([option.to_owned(), value]));
            }
            Mapping::Value(option) => {
                if let Some(value) = input(env, spec.name) {
                    out.extend([option.to_owned(), value]);
                }
            }
            Mapping::Flag(option) => {
                if flag(env, spec.name)? {
                    out.push(option.to_owned());
                }
            }
            Mapping::Endpoint => {
                if let Some(value) = input(env, spec.name) {
                    Endpoint::parse(&value).map_err(|e| format!("input `{}`: {e}", spec.name))?;
                    out.extend(["--endpoint".to_owned(), value]);
                }
            }
            Mapping::Credential { variable, secret } => {
                if let Some(value) = input(env, spec.name) {
                    if secret {
                        inv.secrets.push(value.clone());
                    }
                    inv.env.push((variable.to_owned(), value));
                }
            }
            Mapping::SigningKey => {
                if let Some(value) = input(env, spec.name) {
                    inv.secrets.push(value.clone());
                    inv.signing.signing_key = Some(value);
                    inv.signing.signing_key_source = Some(format!("input `{}`", spec.name));
                }
            }
            Mapping::Store | Mapping::Finder => {}
        }
    }
    inv.args = global.into_iter().chain(command).chain(tail).collect();
    Ok(inv)
}

/// Appends `name=value` records to a runner file (`GITHUB_OUTPUT`, `GITHUB_STATE`), in the
/// delimiter form so that no value can inject another record.
pub fn append_records(path: &std::path::Path, records: &[(&str, String)]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    for (name, value) in records {
        let mut delimiter = format!("s3cache_{}", fastrand::u64(..));
        while value.contains(&delimiter) {
            delimiter = format!("s3cache_{}", fastrand::u64(..));
        }
        write!(file, "{name}<<{delimiter}\n{value}\n{delimiter}\n")?;
    }
    Ok(())
}

/// The step's outputs, from the operation's summary: actions/cache's names, never empty.
pub fn outputs(step: Step, summary: &Summary) -> Vec<(&'static str, String)> {
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    match step {
        Step::Restore => vec![
            ("cache-hit", summary.exact_hit().to_string()),
            ("cache-primary-key", text(&summary.key)),
            ("cache-matched-key", text(&summary.matched_key)),
            ("cache-size", summary.bytes.unwrap_or(0).to_string()),
            ("cache-scope", text(&summary.scope)),
        ],
        Step::Save | Step::Post => {
            vec![("cache-saved", (summary.outcome == "saved").to_string()), ("cache-primary-key", text(&summary.key))]
        }
    }
}

/// The restore step's state for the post step.
pub fn state(summary: &Summary) -> Vec<(&'static str, String)> {
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    vec![(STATE_PRIMARY_KEY, text(&summary.key)), (STATE_MATCHED_KEY, text(&summary.matched_key))]
}

/// A Markdown table row set for `GITHUB_STEP_SUMMARY`.
pub fn step_summary(summary: &Summary) -> String {
    // Keys are user text: keep the table intact and inert.
    let cell = |text: &str| text.replace('|', "\\|").replace(['\n', '\r'], " ").replace('<', "&lt;");
    let text = |value: &Option<String>| cell(value.as_deref().unwrap_or_default());
    let size = summary.bytes.map(crate::ui::output::size).unwrap_or_default();
    let time = summary.elapsed_ms.map(|ms| format!("{:.2} s", ms as f64 / 1000.0)).unwrap_or_default();
    format!(
        "### s3cache {}\n\n| outcome | key | matched key | scope | size | time |\n|---|---|---|---|---|---|\n| {} | {} | {} | {} | {size} | {time} |\n\n",
        summary.operation,
        summary.outcome,
        text(&summary.key),
        text(&summary.matched_key),
        text(&summary.scope),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env_vars::fixed as env;

    /// actions/cache's inputs become the CLI's options; multi-line inputs become repeated options.
    #[test]
    fn restore_inputs_become_options() {
        let vars = env(&[
            ("INPUT_PATH", "node_modules\n  ~/.npm \n\n"),
            ("INPUT_KEY", "npm-abc"),
            ("INPUT_RESTORE-KEYS", "npm-\n"),
            ("INPUT_BUCKET", "caches"),
            ("INPUT_PREFIX", "/team/"),
            ("INPUT_ENDPOINT", "http://127.0.0.1:9000"),
            ("INPUT_LOOKUP-ONLY", "true"),
            ("INPUT_ENABLECROSSOSARCHIVE", "false"),
            ("INPUT_SECRET-ACCESS-KEY", "s3cr3t-value"),
        ]);
        let inv = invocation(Step::Restore, &vars).unwrap();
        assert_eq!(
            inv.args.join(" "),
            "--store s3://caches/team restore --key npm-abc --restore-key npm- --lookup-only --endpoint http://127.0.0.1:9000 --path node_modules --path ~/.npm"
        );
        assert_eq!(inv.env, vec![("S3CACHE_SECRET_ACCESS_KEY".to_string(), "s3cr3t-value".to_string())]);
        assert_eq!(inv.secrets, vec!["s3cr3t-value"]);
        let bad = env(&[("INPUT_PATH", "x"), ("INPUT_KEY", "k"), ("INPUT_LOOKUP-ONLY", "yes")]);
        assert!(invocation(Step::Restore, &bad).unwrap_err().contains("lookup-only"));
        assert!(invocation(Step::Restore, &env(&[("INPUT_KEY", "k")])).unwrap_err().contains("path"));
        let bare = env(&[("INPUT_PATH", "x"), ("INPUT_KEY", "k"), ("INPUT_ENDPOINT", "127.0.0.1:9000")]);
        assert!(invocation(Step::Save, &bare).unwrap_err().starts_with(r#"input `endpoint`: endpoint "127.0.0.1:9000" has no scheme"#));
    }

    /// The signing key goes to the run's settings and the secrets, never onto the command line; the
    /// trusted keys and the store namespace become options on both sides; empty inputs are not set.
    #[test]
    fn signing_inputs() {
        let key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n-----END OPENSSH PRIVATE KEY-----";
        let vars = env(&[
            ("INPUT_PATH", "x"),
            ("INPUT_KEY", "k"),
            ("INPUT_SIGNING-KEY", key),
            ("INPUT_TRUSTED-KEYS", "ssh-ed25519 AAAA ci\n"),
            ("INPUT_STORE-NAMESPACE", "org/project"),
        ]);
        let save = invocation(Step::Save, &vars).unwrap();
        assert_eq!(save.args.join(" "), "save --key k --trusted-keys ssh-ed25519 AAAA ci --store-namespace org/project --path x");
        assert_eq!(save.signing.signing_key.as_deref(), Some(key));
        assert_eq!(save.signing.signing_key_source.as_deref(), Some("input `signing-key`"));
        assert_eq!(save.secrets, vec![key]);
        let restore = invocation(Step::Restore, &vars).unwrap();
        assert_eq!(restore.args.join(" "), "restore --key k --trusted-keys ssh-ed25519 AAAA ci --store-namespace org/project --path x");
        assert_eq!(restore.signing, crate::config::SigningSettings::default());
        let empty = env(&[("INPUT_PATH", "x"), ("INPUT_KEY", "k"), ("INPUT_SIGNING-KEY", ""), ("INPUT_TRUSTED-KEYS", " ")]);
        let save = invocation(Step::Save, &empty).unwrap();
        assert_eq!((save.args.join(" "), save.signing), ("save --key k --path x".to_owned(), crate::config::SigningSettings::default()));
    }

    /// The restore side has its own fail-on-error input; the save side's `fail-on-error` keeps its
    /// meaning and is not the restore's.
    #[test]
    fn fail_on_error_inputs() {
        let vars = env(&[("INPUT_PATH", "x"), ("INPUT_KEY", "k"), ("INPUT_FAIL-ON-RESTORE-ERROR", "true")]);
        assert_eq!(invocation(Step::Restore, &vars).unwrap().args.join(" "), "restore --key k --fail-on-error --path x");
        assert_eq!(invocation(Step::Post, &vars).unwrap().args.join(" "), "save --key k --path x");
        let vars = env(&[("INPUT_PATH", "x"), ("INPUT_KEY", "k"), ("INPUT_FAIL-ON-ERROR", "true")]);
        assert_eq!(invocation(Step::Restore, &vars).unwrap().args.join(" "), "restore --key k --path x");
        assert_eq!(invocation(Step::Save, &vars).unwrap().args.join(" "), "save --key k --fail-on-error --path x");
    }

    /// The publishing inputs of the save side become the global publishing options; the restore side
    /// takes none of them.
    #[test]
    fn publishing_inputs_become_options() {
        let vars = env(&[
            ("INPUT_PATH", "target"),
            ("INPUT_KEY", "k"),
            ("INPUT_ACL", "public-read"),
            ("INPUT_SSE", "aws:kms"),
            ("INPUT_SSE-KMS-KEY-ID", "alias/ci"),
            ("INPUT_STORAGE-CLASS", "STANDARD_IA"),
            ("INPUT_TAGS", "team=ci\n  cost=low \n"),
            ("INPUT_METADATA", "origin=gha"),
        ]);
        let inv = invocation(Step::Save, &vars).unwrap();
        assert_eq!(
            inv.args.join(" "),
            "save --key k --acl public-read --sse aws:kms --sse-kms-key-id alias/ci --storage-class STANDARD_IA --tag team=ci --tag cost=low --metadata origin=gha --path target"
        );
        assert_eq!(invocation(Step::Restore, &vars).unwrap().args.join(" "), "restore --key k --path target");
    }

    /// The post step saves under the key the restore computed, and not at all after an exact hit.
    #[test]
    fn post_uses_the_restore_state() {
        let vars = env(&[
            ("INPUT_PATH", "target"),
            ("INPUT_KEY", "ignored"),
            ("STATE_s3cache-primary-key", "k1"),
            ("STATE_s3cache-matched-key", "k0"),
        ]);
        let inv = invocation(Step::Post, &vars).unwrap();
        assert_eq!(inv.args.join(" "), "save --key k1 --path target");
        assert_eq!(inv.skip, None);
        let hit = env(&[("INPUT_PATH", "target"), ("STATE_s3cache-primary-key", "k1"), ("STATE_s3cache-matched-key", "k1")]);
        assert!(invocation(Step::Post, &hit).unwrap().skip.unwrap().contains("cache hit"));
    }

    /// Outputs are never empty, values cannot inject records, and the summary table stays a table.
    #[test]
    fn outputs_records_and_summary() {
        let miss =
            Summary { operation: "restore", outcome: "miss", cache_hit: Some(false), key: Some("k|<b>".into()), ..Summary::default() };
        let outputs = outputs(Step::Restore, &miss);
        assert_eq!(outputs[0], ("cache-hit", "false".to_string()));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("out");
        append_records(&file, &[("cache-primary-key", "a\nevil=1".into())]).unwrap();
        let written = std::fs::read_to_string(&file).unwrap();
        let delimiter = written.lines().next().unwrap().split("<<").nth(1).unwrap().to_owned();
        assert_eq!(written, format!("cache-primary-key<<{delimiter}\na\nevil=1\n{delimiter}\n"));
        let table = step_summary(&miss);
        assert!(table.contains("| miss | k\\|&lt;b> |"), "{table}");
    }
}
