//! The GitHub Actions runner protocol, for `s3cache github-action restore|save|post`.
//!
//! The runner hands an action its inputs as `INPUT_<NAME>` variables (upper-cased, spaces as `_`),
//! takes outputs and state from the files named by `GITHUB_OUTPUT` and `GITHUB_STATE` (state comes
//! back to the post step as `STATE_<name>`), renders `GITHUB_STEP_SUMMARY` as Markdown, and reads
//! workflow commands (`::add-mask::`, `::group::`, `::warning::`) from the log. This module turns
//! inputs into the ordinary command line — so the action and the CLI cannot drift apart — and writes
//! outputs, state and the summary table from the operation's [`Summary`].

use std::io::Write;

use super::Invocation;
use crate::config::parse;
use crate::env_vars;
use crate::summary::Summary;

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

/// Translates the step's inputs (and, for `post`, the restore's state) into an invocation.
pub fn invocation(step: Step, env: &dyn Fn(&str) -> Option<String>) -> Result<Invocation, String> {
    let mut inv = Invocation::default();
    let mut global = Vec::new();
    let store = match (input(env, "store"), input(env, "bucket")) {
        (Some(store), _) => Some(store),
        (None, Some(bucket)) => Some(match input(env, "prefix") {
            Some(prefix) => format!("s3://{bucket}/{}", prefix.trim_matches('/')),
            None => format!("s3://{bucket}"),
        }),
        (None, None) => None,
    };
    for (option, value) in [("--store", store), ("--endpoint", input(env, "endpoint")), ("--region", input(env, "region")), ("--scope", input(env, "scope"))] {
        if let Some(value) = value {
            global.extend([option.to_owned(), value]);
        }
    }
    for (name, option) in [("path-style", "--path-style"), ("allow-untrusted-save", "--allow-untrusted-save")] {
        if flag(env, name)? {
            global.push(option.to_owned());
        }
    }
    for (name, variable, secret) in [
        ("access-key-id", env_vars::S3CACHE_ACCESS_KEY_ID, false),
        ("secret-access-key", env_vars::S3CACHE_SECRET_ACCESS_KEY, true),
        ("session-token", env_vars::S3CACHE_SESSION_TOKEN, true),
    ] {
        if let Some(value) = input(env, name) {
            if secret {
                inv.secrets.push(value.clone());
            }
            inv.env.push((variable.to_owned(), value));
        }
    }

    let paths = lines(input(env, "path"));
    if paths.is_empty() {
        return Err("input `path` is required: the files, directories and globs to cache, one per line".into());
    }
    let mut command = Vec::new();
    match step {
        Step::Restore => {
            let key = input(env, "key").ok_or("input `key` is required")?;
            command.extend(["restore".to_owned(), "--key".to_owned(), key]);
            for prefix in lines(input(env, "restore-keys")) {
                command.extend(["--restore-key".to_owned(), prefix]);
            }
            for (name, option) in [
                ("fail-on-cache-miss", "--fail-on-cache-miss"),
                ("lookup-only", "--lookup-only"),
                ("enableCrossOsArchive", "--enable-cross-os-archive"),
                ("exact-key-only", "--exact-key-only"),
            ] {
                if flag(env, name)? {
                    command.push(option.to_owned());
                }
            }
        }
        Step::Save | Step::Post => {
            let key = if step == Step::Post {
                let primary = env(&env_vars::github_state(STATE_PRIMARY_KEY)).filter(|k| !k.is_empty());
                let matched = env(&env_vars::github_state(STATE_MATCHED_KEY)).filter(|k| !k.is_empty());
                if primary.is_some() && primary == matched {
                    inv.skip = Some(format!("cache hit on the primary key {}, not saving", primary.as_deref().unwrap_or_default()));
                }
                if flag(env, "lookup-only")? {
                    inv.skip = Some("lookup-only is set, not saving".into());
                }
                primary.or_else(|| input(env, "key")).ok_or("no primary key: the restore step did not run and input `key` is empty")?
            } else {
                input(env, "key").ok_or("input `key` is required")?
            };
            command.extend(["save".to_owned(), "--key".to_owned(), key]);
            if let Some(level) = input(env, "compression-level") {
                command.extend(["--compression-level".to_owned(), level]);
            }
            for (name, option) in [
                ("overwrite", "--overwrite"),
                ("enableCrossOsArchive", "--enable-cross-os-archive"),
                ("fail-on-error", "--fail-on-error"),
            ] {
                if flag(env, name)? {
                    command.push(option.to_owned());
                }
            }
        }
    }
    for path in paths {
        command.extend(["--path".to_owned(), path]);
    }
    inv.args = global.into_iter().chain(command).collect();
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
        Step::Save | Step::Post => vec![("cache-saved", (summary.outcome == "saved").to_string()), ("cache-primary-key", text(&summary.key))],
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
    let size = summary.bytes.map(|b| format!("{:.1} MB", b as f64 / 1e6)).unwrap_or_default();
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
            "--store s3://caches/team --endpoint http://127.0.0.1:9000 restore --key npm-abc --restore-key npm- --lookup-only --path node_modules --path ~/.npm"
        );
        assert_eq!(inv.env, vec![("S3CACHE_SECRET_ACCESS_KEY".to_string(), "s3cr3t-value".to_string())]);
        assert_eq!(inv.secrets, vec!["s3cr3t-value"]);
        let bad = env(&[("INPUT_PATH", "x"), ("INPUT_KEY", "k"), ("INPUT_LOOKUP-ONLY", "yes")]);
        assert!(invocation(Step::Restore, &bad).unwrap_err().contains("lookup-only"));
        assert!(invocation(Step::Restore, &env(&[("INPUT_KEY", "k")])).unwrap_err().contains("path"));
    }

    /// The post step saves under the key the restore computed, and not at all after an exact hit.
    #[test]
    fn post_uses_the_restore_state() {
        let vars = env(&[("INPUT_PATH", "target"), ("INPUT_KEY", "ignored"), ("STATE_s3cache-primary-key", "k1"), ("STATE_s3cache-matched-key", "k0")]);
        let inv = invocation(Step::Post, &vars).unwrap();
        assert_eq!(inv.args.join(" "), "save --key k1 --path target");
        assert_eq!(inv.skip, None);
        let hit = env(&[("INPUT_PATH", "target"), ("STATE_s3cache-primary-key", "k1"), ("STATE_s3cache-matched-key", "k1")]);
        assert!(invocation(Step::Post, &hit).unwrap().skip.unwrap().contains("cache hit"));
    }

    /// Outputs are never empty, values cannot inject records, and the summary table stays a table.
    #[test]
    fn outputs_records_and_summary() {
        let miss = Summary { operation: "restore", outcome: "miss", cache_hit: Some(false), key: Some("k|<b>".into()), ..Summary::default() };
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
