//! go-vela/vela-s3-cache's parameters (`PARAMETER_*`, aliases, and Vela's parameter and secret files;
//! docs/compat/vela-s3-cache.md).
//!
//! Precedence follows the plugin's code, not its DOCS.md (which says files win): the variables in
//! the table's order, then `/vela/parameters/s3-cache/<name>`, then `/vela/secrets/s3-cache/<name>`
//! (`S3CACHE_VELA_DIR` stands in for `/vela`).
//!
//! Layout: s3cache's scoped entries under `s3://<bucket>/<prefix>/<org>/<repo>` (or
//! `s3://<bucket>/<path>` when `path` is set, which replaces prefix, org and repo as in the plugin),
//! keyed by `filename` without its extension. The plugin kept one cache per repository for every
//! branch; s3cache scopes it by branch (reading the default branch's as the fallback). The old object,
//! `<prefix>/<org>/<repo>/<filename>` (tar.gz), is only ever read.

use std::path::PathBuf;

use crate::archive::layout::Format;
use crate::engine::{LegacyName, LegacyObject, MemberNames};
use crate::env_vars::plugins::*;
use crate::frontends::Invocation;
use crate::frontends::plugins::{self, CommandLine, Convention, Migration, Setting, Settings, Var, credentials, own, setting, store_url};

/// Every parameter of vela-s3-cache, in the order of its table in docs/vela.md.
pub const SETTINGS: &[Setting] = &[
    setting("action", &[own("action"), Var::Alias(S3_CACHE_ACTION)], "", "`restore`, `rebuild` or `flush`.", Migration::Same),
    setting(
        "bucket",
        &[own("bucket"), own("root"), Var::Alias(S3_CACHE_BUCKET)],
        "",
        "The bucket (`root` is its older name).",
        Migration::Same,
    ),
    setting(
        "prefix",
        &[own("prefix"), Var::Alias(S3_CACHE_PREFIX)],
        "",
        "A prefix inside the bucket, before `<org>/<repo>`.",
        Migration::Same,
    ),
    setting("path", &[own("path"), Var::Alias(S3_CACHE_PATH)], "", "Replaces `<prefix>/<org>/<repo>`.", Migration::Same),
    setting(
        "filename",
        &[own("filename"), Var::Alias(S3_CACHE_FILENAME)],
        "archive.tgz",
        "The entry's name (its extension is dropped from the key).",
        Migration::Same,
    ),
    setting(
        "mount",
        &[own("mount"), Var::Alias(S3_CACHE_MOUNT)],
        "",
        "The paths to cache (a list). A restore without it restores the paths the entry recorded.",
        Migration::Same,
    ),
    setting(
        "preserve_path",
        &[own("preserve_path"), Var::Alias(S3_PRESERVE_PATH)],
        "false",
        "Ignored.",
        Migration::Differs(
            "s3cache always restores each path where it was saved (relative to the workspace), never flattened into the working directory.",
        ),
    ),
    setting(
        "timeout",
        &[own("timeout"), Var::Alias(S3_CACHE_TIMEOUT)],
        "10m",
        "The budget for the whole restore or rebuild (Go duration; days work too).",
        Migration::Same,
    ),
    setting(
        "age",
        &[own("age"), Var::Alias(PARAMETER_FLUSH_AGE), Var::Alias(S3_CACHE_AGE)],
        "336h",
        "How long unused entries are kept by `flush` (Go duration; `14d` works too).",
        Migration::Differs("ages count from the last restore or save; days are accepted."),
    ),
    setting(
        "compression_level",
        &[own("compression_level"), Var::Alias(S3_CACHE_COMPRESSION_LEVEL)],
        "-1",
        "gzip level 1-9; -1 or 0 is the default.",
        Migration::Same,
    ),
    setting(
        "server",
        &[own("server"), Var::Alias(CACHE_S3_SERVER), Var::Alias(S3_CACHE_SERVER)],
        "AWS",
        "The S3 endpoint, `http://` or `https://` (a bare `host[:port]` is refused, as the plugin refused it).",
        Migration::Differs("optional: without it, AWS."),
    ),
    setting(
        "accelerated_endpoint",
        &[own("accelerated_endpoint"), Var::Alias(CACHE_S3_ACCELERATED_ENDPOINT), Var::Alias(S3_CACHE_ACCELERATED_ENDPOINT)],
        "",
        "Use S3 Transfer Acceleration.",
        Migration::Differs("any value turns on AWS's accelerate endpoint; the host itself is not used."),
    ),
    setting(
        "access_key",
        &[own("access_key"), Var::Alias(S3_CACHE_ACCESS_KEY), Var::Alias(CACHE_S3_ACCESS_KEY), Var::Alias(AWS_ACCESS_KEY_ID)],
        "",
        "Access key id.",
        Migration::Differs("optional: without it, the AWS credential chain."),
    ),
    setting(
        "secret_key",
        &[own("secret_key"), Var::Alias(S3_CACHE_SECRET_KEY), Var::Alias(CACHE_S3_SECRET_KEY), Var::Alias(AWS_SECRET_ACCESS_KEY)],
        "",
        "Secret key; never printed.",
        Migration::Differs("optional, as access_key."),
    ),
    setting(
        "session_token",
        &[own("session_token"), Var::Alias(S3_CACHE_SESSION_TOKEN), Var::Alias(CACHE_S3_SESSION_TOKEN), Var::Alias(AWS_SESSION_TOKEN)],
        "",
        "Session token; never printed.",
        Migration::Same,
    ),
    setting(
        "region",
        &[own("region"), Var::Alias(CACHE_S3_REGION), Var::Alias(S3_CACHE_REGION)],
        "",
        "The signing region.",
        Migration::Differs("used (the plugin parsed it and never used it)."),
    ),
    setting(
        "log_level",
        &[own("log_level"), Var::Alias(S3_CACHE_LOG_LEVEL)],
        "info",
        "`trace` or `debug` turn on diagnostics.",
        Migration::Same,
    ),
    setting("org", &[own("org"), Var::Alias(VELA_REPO_ORG)], "$VELA_REPO_ORG", "The repository's organization.", Migration::Same),
    setting("repo", &[own("repo"), Var::Alias(VELA_REPO_NAME)], "$VELA_REPO_NAME", "The repository's name.", Migration::Same),
    plugins::SIGNING_KEY,
    plugins::TRUSTED_KEYS,
    plugins::STORE_NAMESPACE,
];

/// Vela's directory of parameter and secret files.
fn vela_dir(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    PathBuf::from(env(S3CACHE_VELA_DIR).filter(|d| !d.is_empty()).unwrap_or_else(|| "/vela".into()))
}

/// The key and its format from `filename`: the name without `.tgz`, `.tar.gz` or `.tar`.
fn key_of(filename: &str) -> String {
    let key = [".tar.gz", ".tgz", ".tar"].iter().find_map(|ext| filename.strip_suffix(ext)).unwrap_or(filename);
    if key.is_empty() { filename.to_owned() } else { key.to_owned() }
}

/// Translates the step's parameters into an s3cache command line.
pub fn invocation(env: &dyn Fn(&str) -> Option<String>) -> Result<Invocation, String> {
    let settings = Settings::new(SETTINGS, Convention::Parameter, env).with_vela_files(vela_dir(env));
    let action =
        settings.get("action").ok_or_else(|| "no config action provided: set PARAMETER_ACTION to restore, rebuild or flush".to_owned())?;
    let mut line = match action.as_str() {
        "restore" => CommandLine::new(&["restore"]),
        "rebuild" => CommandLine::new(&["save"]),
        "flush" => CommandLine::new(&["flush"]),
        _ => return Err(settings.invalid("action", "restore, rebuild or flush (Valid actions: flush, rebuild, restore)")),
    };
    let bucket = settings.get("bucket").ok_or_else(|| format!("no bucket provided: set {}", settings.variable("bucket")))?;
    let namespace = match settings.get("path") {
        Some(path) => path,
        None => {
            let org = settings.get("org").ok_or_else(|| "no repo owner provided (PARAMETER_ORG or VELA_REPO_ORG)".to_owned())?;
            let repo = settings.get("repo").ok_or_else(|| "no repo name provided (PARAMETER_REPO or VELA_REPO_NAME)".to_owned())?;
            [settings.get("prefix").unwrap_or_default(), org, repo].join("/")
        }
    };
    line.global("--endpoint", settings.endpoint("server", None)?);
    let verbose = matches!(settings.get("log_level").as_deref(), Some("t" | "trace" | "d" | "debug"));
    line.global("--store", Some(store_url(&bucket, &[&namespace])))
        .global("--region", settings.get("region"))
        .global_switch("--accelerate", settings.get("accelerated_endpoint").is_some())
        .global_switch("--verbose", verbose);
    credentials(&mut line, settings.get("access_key"), settings.get("secret_key"), settings.get("session_token"));
    plugins::signing(&mut line, &settings);
    if action == "flush" {
        let age = settings.duration_secs("age")?.unwrap_or(336 * 3600);
        line.option("--older-than", Some(format!("{age}s")));
        return Ok(line.finish());
    }
    let timeout = settings.duration_secs("timeout")?.unwrap_or(600);
    line.global("--deadline-secs", Some(timeout.to_string()));
    let filename = settings.get("filename").unwrap_or_else(|| "archive.tgz".into());
    if filename.contains('/') {
        return Err(settings.invalid("filename", "a file name without `/`"));
    }
    let key = key_of(&filename);
    let mounts = settings.list("mount");
    line.option("--key", Some(key));
    if action == "rebuild" {
        if mounts.is_empty() {
            return Err(format!("no mount provided: set {}", settings.variable("mount")));
        }
        settings.note_ignored("preserve_path");
        let level = settings.integer("compression_level", -1..=9)?.filter(|l| *l > 0);
        line.option("--format", Some(Format::Gzip.name()))
            .option("--compression-level", level.map(|l| l.to_string()))
            .switch("--overwrite", true)
            .paths(&mounts);
    } else {
        line.paths(&mounts);
        // The old object, `<namespace>/<filename>`: the filename under the store prefix.
        line.legacy(
            "vela-s3-cache",
            Format::Gzip,
            vec![LegacyObject { name: LegacyName::Fixed(filename), paths: mounts, names: MemberNames::FromParent }],
        );
    }
    Ok(line.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env_vars::fixed as env;

    /// Parameters and aliases become a command line under `<prefix>/<org>/<repo>`; `path` replaces it.
    #[test]
    fn actions() {
        let base = [
            ("VELA_REPO_ORG", "acme"),
            ("VELA_REPO_NAME", "app"),
            ("S3CACHE_VELA_DIR", "/nonexistent"),
            ("PARAMETER_BUCKET", "b"),
            ("PARAMETER_SERVER", "http://s3:9000"),
        ];
        let with = |extra: &[(&str, &str)]| invocation(&env(&[&base[..], extra].concat()));
        let inv = with(&[
            ("PARAMETER_ACTION", "rebuild"),
            ("PARAMETER_MOUNT", "vendor,.cache"),
            ("PARAMETER_PREFIX", "ci"),
            ("S3_CACHE_COMPRESSION_LEVEL", "9"),
        ])
        .unwrap();
        assert_eq!(
            inv.args.join(" "),
            "--endpoint http://s3:9000 --store s3://b/ci/acme/app --deadline-secs 600 save --key archive --format gzip --compression-level 9 --overwrite --path vendor --path .cache"
        );
        let inv = with(&[
            ("PARAMETER_ACTION", "restore"),
            ("PARAMETER_PATH", "shared/x"),
            ("PARAMETER_FILENAME", "deps.tgz"),
            ("PARAMETER_TIMEOUT", "1m"),
        ])
        .unwrap();
        assert_eq!(inv.args.join(" "), "--endpoint http://s3:9000 --store s3://b/shared/x --deadline-secs 60 restore --key deps");
        assert_eq!(inv.legacy.unwrap().objects[0].name.render(""), "deps.tgz");
        let inv = with(&[("PARAMETER_ACTION", "flush"), ("PARAMETER_AGE", "14d")]).unwrap();
        assert_eq!(inv.args.join(" "), "--endpoint http://s3:9000 --store s3://b/acme/app flush --older-than 1209600s");
        assert!(with(&[("PARAMETER_ACTION", "sweep")]).unwrap_err().contains(r#"PARAMETER_ACTION must be restore, rebuild or flush"#));
        assert!(
            with(&[("PARAMETER_ACTION", "flush"), ("PARAMETER_AGE", "soon")]).unwrap_err().starts_with("PARAMETER_AGE must be a duration")
        );
        assert!(with(&[("PARAMETER_ACTION", "rebuild")]).unwrap_err().contains("no mount provided"));
        let bare =
            invocation(&env(&[&base[..4], &[("S3_CACHE_SERVER", "s3:9000"), ("PARAMETER_ACTION", "restore")]].concat())).unwrap_err();
        assert!(bare.starts_with(r#"S3_CACHE_SERVER: endpoint "s3:9000" has no scheme: write http://s3:9000"#), "{bare}");
    }

    /// A secret from Vela's files, with the plugin's code's precedence: variables, then parameter
    /// files, then secret files.
    #[test]
    fn secrets_from_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("secrets/s3-cache")).unwrap();
        std::fs::write(dir.path().join("secrets/s3-cache/secret_key"), "from-file\n").unwrap();
        let vela = dir.path().display().to_string();
        let vars = [
            ("VELA_REPO_ORG", "acme"),
            ("VELA_REPO_NAME", "app"),
            ("S3CACHE_VELA_DIR", vela.as_str()),
            ("PARAMETER_BUCKET", "b"),
            ("PARAMETER_ACTION", "restore"),
        ];
        let inv = invocation(&env(&vars)).unwrap();
        assert_eq!(inv.env, vec![("S3CACHE_SECRET_ACCESS_KEY".to_string(), "from-file".to_string())]);
        assert_eq!(inv.secrets, vec!["from-file"]);
        let inv = invocation(&env(&[&vars[..], &[("S3_CACHE_SECRET_KEY", "from-env")]].concat())).unwrap();
        assert_eq!(inv.secrets, vec!["from-env"]);
    }
}
