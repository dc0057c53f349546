//! Woodpecker's S3 cache plugin (`codeberg.org/landre/woodpecker/cache`: `action: download|upload|clear`),
//! from its documentation (docs/compat/woodpecker-s3-cache.md; its source is not on GitHub, so its
//! object layout is not known and no old objects are read). Woodpecker users of drone-cache or
//! drone-s3-cache use those dialects: Woodpecker passes the same `PLUGIN_*` settings.
//!
//! Layout: s3cache's scoped entries under `s3://<bucket>/<target_path>` (default `CI_REPO`), keyed
//! `<key><key_suffix>`; the key template's `{{ branch }}` is the plugin's branch
//! (`CI_COMMIT_SOURCE_BRANCH`, else `CI_COMMIT_BRANCH`, else `CI_REPO_DEFAULT_BRANCH`) and `{{ arch }}`
//! is `uname -m`'s (`x86_64`), as s3cache's own templates already have them.

use crate::env_vars::{self, ci};
use crate::frontends::Invocation;
use crate::frontends::plugins::{self, CommandLine, Convention, Migration, Setting, Settings, credentials, own, setting, store_url};

/// Every setting of the plugin, in the order of its table in docs/drone-woodpecker.md.
pub const SETTINGS: &[Setting] = &[
    setting("action", &[own("action")], "", "`download` (restore), `upload` (save) or `clear` (delete this key's entry).", Migration::Same),
    setting("bucket", &[own("bucket")], "", "The bucket.", Migration::Same),
    setting("path", &[own("path")], "", "The file or directory to cache (a list works too).", Migration::Same),
    setting(
        "key",
        &[own("key")],
        "{{ branch }}-{{ arch }}",
        "The key: an s3cache template (`{{ branch }}`, `{{ arch }}`, `{{ hashFiles \"...\" }}`...).",
        Migration::Same,
    ),
    setting("key_suffix", &[own("key_suffix")], "", "Appended to the key.", Migration::Same),
    setting("target_path", &[own("target_path")], "$CI_REPO", "The store prefix inside the bucket.", Migration::Same),
    setting("access_key_id", &[own("access_key_id")], "", "Access key id (else the AWS credential chain).", Migration::Same),
    setting("secret_access_key", &[own("secret_access_key")], "", "Secret key; never printed.", Migration::Same),
    setting(
        "region",
        &[own("region")],
        "auto",
        "The region.",
        Migration::Differs("unset, it is `AWS_REGION`, else `us-east-1`; write `auto` for R2."),
    ),
    setting(
        "url",
        &[own("url")],
        "AWS",
        "The S3 endpoint URL, `http://` or `https://`; a bare `host[:port]` is refused (the plugin documents a URL; its source was not read).",
        Migration::Same,
    ),
    setting(
        "overwrite",
        &[own("overwrite")],
        "true",
        "Ignored.",
        Migration::Differs("a restore always replaces each cached path as a whole (it is never merged into what is there)."),
    ),
    setting(
        "compress",
        &[own("compress")],
        "true",
        "`false` saves an uncompressed tar.",
        Migration::Differs("compressed entries are zstd, not gzip."),
    ),
    setting("debug", &[own("debug")], "false", "Verbose diagnostics.", Migration::Same),
    plugins::SIGNING_KEY,
    plugins::TRUSTED_KEYS,
    plugins::STORE_NAMESPACE,
];

/// Whether the environment holds this plugin's settings: its `action`.
pub fn recognizes(env: &dyn Fn(&str) -> Option<String>) -> bool {
    env(&env_vars::plugin_setting("action")).is_some_and(|v| matches!(v.trim(), "download" | "upload" | "clear"))
}

/// Translates the step's settings into an s3cache command line.
pub fn invocation(env: &dyn Fn(&str) -> Option<String>) -> Result<Invocation, String> {
    let settings = Settings::new(SETTINGS, Convention::Plugin, env);
    let action = settings.get("action").unwrap_or_default();
    let mut line = match action.as_str() {
        "download" => CommandLine::new(&["restore"]),
        "upload" => CommandLine::new(&["save"]),
        "clear" => CommandLine::new(&["delete", "--missing-ok"]),
        _ => return Err(settings.invalid("action", "download, upload or clear")),
    };
    let var = |name: &str| env(name).filter(|v| !v.is_empty());
    let target = settings.get("target_path").or_else(|| var(env_vars::plugins::CI_REPO)).unwrap_or_default();
    let bucket =
        settings.get("bucket").ok_or_else(|| format!("{} is required: the bucket to keep caches in", settings.variable("bucket")))?;
    line.global("--store", Some(store_url(&bucket, &[&target])))
        .global("--endpoint", settings.endpoint("url", None)?)
        .global("--region", settings.get("region"))
        .global_switch("--verbose", settings.flag("debug", false)?);
    credentials(&mut line, settings.get("access_key_id"), settings.get("secret_access_key"), None);
    plugins::signing(&mut line, &settings);
    let branch = var(ci::CI_COMMIT_SOURCE_BRANCH).or_else(|| var(ci::CI_COMMIT_BRANCH)).or_else(|| var(ci::CI_REPO_DEFAULT_BRANCH));
    line.variable(env_vars::S3CACHE_BRANCH, branch.clone(), false);
    let key = format!(
        "{}{}",
        settings.get("key").unwrap_or_else(|| "{{ branch }}-{{ arch }}".into()),
        settings.get("key_suffix").unwrap_or_default()
    );
    let paths = settings.list("path");
    match action.as_str() {
        "clear" => {
            // `delete` takes the key literally: the plugin's own placeholders are known here.
            let mut literal = key.clone();
            for (names, value) in [
                (["{{ branch }}", "{{branch}}"], branch.clone().unwrap_or_default()),
                (["{{ arch }}", "{{arch}}"], std::env::consts::ARCH.to_owned()),
            ] {
                for name in names {
                    literal = literal.replace(name, &value);
                }
            }
            if literal.contains("{{") {
                return Err(format!("clear needs a key without file functions: {} is {key:?}", settings.variable("key")));
            }
            line.positional(&literal);
        }
        "upload" => {
            if paths.is_empty() {
                return Err(format!("{} is required: the file or directory to cache", settings.variable("path")));
            }
            let format = if settings.flag("compress", true)? { "zstd" } else { "tar" };
            line.option("--key", Some(key)).option("--format", Some(format)).paths(&paths);
        }
        _ => {
            settings.note_ignored("overwrite");
            line.option("--key", Some(key)).paths(&paths);
        }
    }
    Ok(line.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env_vars::fixed as env;

    /// download/upload/clear become restore/save/delete under the repository's prefix; the plugin's
    /// branch rule feeds `{{ branch }}`.
    #[test]
    fn actions() {
        let base = [
            ("CI", "woodpecker"),
            ("CI_REPO", "acme/app"),
            ("CI_COMMIT_BRANCH", "main"),
            ("CI_COMMIT_SOURCE_BRANCH", "fix"),
            ("PLUGIN_BUCKET", "b"),
            ("PLUGIN_PATH", "node_modules"),
        ];
        let inv = invocation(&env(&[&base[..], &[("PLUGIN_ACTION", "download"), ("PLUGIN_URL", "http://s3:9000")]].concat())).unwrap();
        assert_eq!(
            inv.args.join(" "),
            "--store s3://b/acme/app --endpoint http://s3:9000 restore --key {{ branch }}-{{ arch }} --path node_modules"
        );
        assert_eq!(inv.env, vec![("S3CACHE_BRANCH".to_string(), "fix".to_string())]);
        let inv =
            invocation(&env(
                &[&base[..], &[("PLUGIN_ACTION", "upload"), ("PLUGIN_KEY_SUFFIX", "-v2"), ("PLUGIN_COMPRESS", "false")]].concat()
            ))
            .unwrap();
        assert_eq!(inv.args.join(" "), "--store s3://b/acme/app save --key {{ branch }}-{{ arch }}-v2 --format tar --path node_modules");
        let inv =
            invocation(&env(&[&base[..], &[("PLUGIN_ACTION", "clear"), ("PLUGIN_KEY", "deps"), ("PLUGIN_TARGET_PATH", "t")]].concat()))
                .unwrap();
        assert_eq!(inv.args.join(" "), "--store s3://b/t delete --missing-ok deps");
        let inv = invocation(&env(&[&base[..], &[("PLUGIN_ACTION", "clear")]].concat())).unwrap();
        assert_eq!(inv.args.last().cloned(), Some(format!("fix-{}", std::env::consts::ARCH)));
        let err = invocation(&env(&[&base[..], &[("PLUGIN_ACTION", "sync")]].concat())).unwrap_err();
        assert_eq!(err, r#"PLUGIN_ACTION must be download, upload or clear, not "sync""#);
        let err = invocation(&env(&[&base[..], &[("PLUGIN_ACTION", "download"), ("PLUGIN_URL", "s3:9000")]].concat())).unwrap_err();
        assert!(err.starts_with(r#"PLUGIN_URL: endpoint "s3:9000" has no scheme"#), "{err}");
    }
}
