//! meltwater drone-cache's settings (`PLUGIN_*`), on Drone and Woodpecker, and the same plugin as
//! Harness CI's Save Cache to S3 / Restore Cache from S3 steps run it (Harness's fork,
//! drone-plugins/drone-meltwater-cache). docs/compat/drone-cache-meltwater.md has the source study.
//!
//! Layout: s3cache's own scoped entries under `s3://<bucket>/<remote_root>` (drone-cache; default
//! remote_root: the repository name) or `s3://<bucket>` (Harness, which does not namespace by
//! repository), so branches are isolated and the first writer wins. The old layout,
//! `<remote_root>/<key>/<mount>` (Harness: `<key>/<mount>`), is only ever read.

use crate::archive::layout::Format;
use crate::engine::{LegacyName, LegacyObject, MemberNames};
use crate::env_vars::{self, plugins::*};
use crate::frontends::Invocation;
use crate::frontends::plugins::gotemplate;
use crate::frontends::plugins::{
    self, CommandLine, Convention, Migration, Operation, Setting, Settings, Var, any_plugin_setting, credentials, own, setting, store_url,
};

/// Which runner passes the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// Drone or Woodpecker running meltwater/drone-cache.
    DroneCache,
    /// Harness CI's Save/Restore Cache S3 steps (Harness's fork of the plugin).
    Harness,
}

/// Every setting of drone-cache and Harness's fork that s3cache reads, in the order of its table in docs/drone-woodpecker.md.
pub const SETTINGS: &[Setting] = &[
    setting("restore", &[own("restore")], "false", "Restore the cache.", Migration::Same),
    setting(
        "rebuild",
        &[own("rebuild")],
        "false",
        "Save the cache (`restore` and `rebuild` together, or neither, is an error).",
        Migration::Same,
    ),
    setting(
        "flush",
        &[own("flush")],
        "false",
        "Delete entries not used for `flush_age`.",
        Migration::Differs("an s3cache addition: drone-cache has no working flush."),
    ),
    setting(
        "flush_age",
        &[own("flush_age")],
        "30d",
        "How long unused entries are kept by `flush` (`14d`, `336h`, or days).",
        Migration::Differs("an s3cache addition."),
    ),
    setting(
        "mount",
        &[own("mount")],
        "",
        "The paths to cache (a list; globs, `**` and `~` work).",
        Migration::Differs(
            "on Harness, `$VAR` and `~` are expanded as the fork does. Restoring with no mount (Harness's Restore Cache step) restores the paths the entry recorded, inside the workspace or home only.",
        ),
    ),
    setting(
        "cache_key",
        &[own("cache_key")],
        "md5 of the branch",
        "The key, a drone-cache Go template: metadata fields (`{{ .Commit.Branch }}`...), `checksum`, `hashFiles`, `epoch`, `arch` (`amd64`), `os`.",
        Migration::Differs(
            "a template that does not parse, or names an unknown field, is an error (drone-cache falls back to md5 of the branch on the latter).",
        ),
    ),
    setting(
        "remote_root",
        &[own("remote_root")],
        "the repository name",
        "The store prefix inside the bucket.",
        Migration::Differs("ignored on Harness, as Harness's fork ignores it."),
    ),
    setting(
        "local_root",
        &[own("local_root")],
        "",
        "Ignored.",
        Migration::Differs("ignored, as drone-cache has ignored it since 1.4 (paths are relative to the workspace)."),
    ),
    setting(
        "override",
        &[own("override")],
        "true (Harness: false)",
        "Replace an existing entry with the same key (`false`: the first entry is kept).",
        Migration::Same,
    ),
    setting(
        "archive_format",
        &[own("archive_format")],
        "tar",
        "Archive format: `tar`, `gzip` or `zstd`.",
        Migration::Differs("an unknown format is an error (drone-cache falls back to tar)."),
    ),
    setting(
        "compression_level",
        &[own("compression_level")],
        "-1 (the format's default)",
        "Compression level: gzip 1-9, zstd 1-19; 0 or below is the format's default.",
        Migration::Same,
    ),
    setting(
        "skip_symlinks",
        &[own("skip_symlinks"), Var::Alias(SKIP_SYMLINKS)],
        "false",
        "Ignored.",
        Migration::Differs(
            "s3cache always stores symlinks that stay inside their cached path, and skips (with a warning) those that point elsewhere.",
        ),
    ),
    setting(
        "exit_code",
        &[own("exit_code"), Var::Alias(EXIT_CODE)],
        "false",
        "Fail the step (exit 1) when saving fails or the mounts match no files, when a restore fails (the store failed, wrong credentials, a damaged or refused entry), or when a restore of given mounts finds nothing.",
        Migration::Same,
    ),
    setting(
        "fail_restore_if_key_not_present",
        &[own("fail_restore_if_key_not_present")],
        "false",
        "Fail the restore step when no entry has the key.",
        Migration::Same,
    ),
    setting(
        "strict_key_matching",
        &[own("strict_key_matching")],
        "true",
        "`false`: a restore also takes the newest entry whose key starts with `cache_key`.",
        Migration::Same,
    ),
    setting(
        "backend_operation_timeout",
        &[own("backend_operation_timeout"), Var::Alias(BACKEND_OPERATION_TIMEOUT)],
        "3m",
        "The budget for the whole save or restore (Go duration, e.g. `3m`, `600s`).",
        Migration::Differs("bounds the whole operation, not each mount's transfer."),
    ),
    setting("backend", &[own("backend")], "s3", "Must be `s3`.", Migration::Same),
    setting(
        "bucket",
        &[own("bucket"), Var::Alias(S3_BUCKET)],
        "",
        "The bucket (required unless `S3CACHE_STORE` names the store).",
        Migration::Same,
    ),
    setting(
        "endpoint",
        &[own("endpoint"), Var::Alias(S3_ENDPOINT)],
        "AWS",
        "The S3 endpoint URL. A bare `host[:port]` gets `https://`, or `http://` with `disablessl` or (drone-cache, not Harness) an `sts_endpoint` that is not `https://`, as the plugin's AWS SDK did.",
        Migration::Same,
    ),
    setting("region", &[own("region"), Var::Alias(S3_REGION)], "", "The region (else `AWS_REGION`, else `us-east-1`).", Migration::Same),
    setting("path_style", &[own("path_style"), Var::Alias(AWS_PLUGIN_PATH_STYLE)], "false", "Path-style addressing.", Migration::Same),
    setting(
        "access_key",
        &[own("access_key"), Var::Alias(AWS_ACCESS_KEY_ID), Var::Alias(CACHE_AWS_ACCESS_KEY_ID)],
        "",
        "Access key id (else the AWS credential chain).",
        Migration::Same,
    ),
    setting(
        "secret_key",
        &[own("secret_key"), Var::Alias(AWS_SECRET_ACCESS_KEY), Var::Alias(CACHE_AWS_SECRET_ACCESS_KEY)],
        "",
        "Secret key; never printed.",
        Migration::Same,
    ),
    setting("session_token", &[own("session_token"), Var::Alias(AWS_SESSION_TOKEN)], "", "Session token; never printed.", Migration::Same),
    setting(
        "acl",
        &[own("acl"), Var::Alias(AWS_ACL)],
        "",
        "Canned ACL for new objects.",
        Migration::Differs("sent only when set (drone-cache always sends `private`, the bucket's default anyway)."),
    ),
    setting(
        "encryption",
        &[own("encryption"), Var::Alias(AWS_ENCRYPTION)],
        "",
        "Server-side encryption: `AES256` or `aws:kms`.",
        Migration::Same,
    ),
    setting(
        "sts_endpoint",
        &[own("sts_endpoint"), Var::Alias(AWS_STS_ENDPOINT)],
        "",
        "The STS endpoint for the credential chain's role sources; a bare host gets a scheme as `endpoint` does.",
        Migration::Same,
    ),
    setting(
        "disablessl",
        &[own("disablessl"), Var::Alias(AWS_DISABLESSL)],
        "false",
        "`true`: a bare-host `endpoint` or `sts_endpoint` is reached over `http://`.",
        Migration::Differs(
            "Harness's fork removed it, so it is ignored there; elsewhere only bare hosts are affected (an endpoint's own `https://` stays, and AWS itself is always reached over HTTPS).",
        ),
    ),
    setting(
        "assume_role_arn",
        &[own("assume_role_arn"), own("assume_role"), Var::Alias(AWS_ASSUME_ROLE_ARN)],
        "",
        "A role to assume: with `oidc_token_id` (Harness's OIDC connector) through STS AssumeRoleWithWebIdentity, otherwise through STS AssumeRole with the static keys (or the AWS credential chain).",
        Migration::Same,
    ),
    setting("external_id", &[own("external_id")], "", "The external id for `assume_role_arn` with static keys.", Migration::Same),
    setting(
        "user_role_arn",
        &[own("user_role_arn")],
        "",
        "Not supported: a second role chained on the first is an error.",
        Migration::Differs(
            "Harness's fork chains this role on top of the first; s3cache assumes one role (use a profile with `role_arn` and `source_profile` chains instead).",
        ),
    ),
    setting("oidc_token_id", &[own("oidc_token_id")], "", "Harness's OIDC token, for `assume_role_arn`; never printed.", Migration::Same),
    setting(
        "assume_role_session_name",
        &[own("assume_role_session_name")],
        "drone-cache",
        "The session name of the assumed role.",
        Migration::Same,
    ),
    setting(
        "debug",
        &[own("debug")],
        "false",
        "Verbose diagnostics (never the environment's secrets).",
        Migration::Differs("drone-cache's debug printed every variable, secrets included; s3cache does not."),
    ),
    plugins::SIGNING_KEY,
    plugins::TRUSTED_KEYS,
    plugins::STORE_NAMESPACE,
];

/// Whether the environment holds drone-cache's own settings (not drone-s3-cache's or Woodpecker's).
pub fn recognizes(env: &dyn Fn(&str) -> Option<String>) -> bool {
    let only_ours = [
        "cache_key",
        "bucket",
        "archive_format",
        "remote_root",
        "exit_code",
        "override",
        "backend",
        "fail_restore_if_key_not_present",
        "strict_key_matching",
        "backend_operation_timeout",
    ];
    any_plugin_setting(env, &only_ours)
}

/// Harness's fork expands `~` (the first occurrence) and `$VAR`/`${VAR}` in mounts.
fn expand_mount(mount: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut rest = mount;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, tail) = match after.strip_prefix('{') {
            Some(braced) => match braced.find('}') {
                Some(end) => (&braced[..end], &braced[end + 1..]),
                None => ("", after),
            },
            None => {
                let end = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        if name.is_empty() {
            out.push('$');
            rest = after;
        } else {
            out.push_str(&env(name).unwrap_or_default());
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

/// drone-cache's object name for one mount, `filepath.Join(root, key, mount)`, under the store
/// prefix (which is the root): `<key>/<mount>`, cleaned of empty and `.` segments.
fn legacy_name(mount: &str) -> LegacyName {
    let mount = mount.split('/').filter(|s| !s.is_empty() && *s != ".").collect::<Vec<_>>().join("/");
    LegacyName::AroundKey { before: String::new(), after: format!("/{mount}") }
}

/// The scheme a bare-host endpoint gets, as the plugin's AWS SDK added it: meltwater drone-cache's
/// `setSSLMode` turns TLS off with `disablessl`, or with an `sts_endpoint` that does not start with
/// `https://` (for S3 too); Harness's fork always adds `https://` and has no `disablessl`.
fn bare_host_scheme(settings: &Settings<'_>, harness: bool) -> Result<&'static str, String> {
    if harness {
        settings.note_ignored("disablessl");
        return Ok("https");
    }
    let plain_sts = settings.get("sts_endpoint").is_some_and(|sts| !sts.starts_with("https://"));
    Ok(if settings.flag("disablessl", false)? || plain_sts { "http" } else { "https" })
}

/// Translates the step's settings into an s3cache command line.
pub fn invocation(flavour: Flavour, env: &dyn Fn(&str) -> Option<String>) -> Result<Invocation, String> {
    let settings = Settings::new(SETTINGS, Convention::Plugin, env);
    let harness = flavour == Flavour::Harness;
    let operation = match (settings.flag("restore", false)?, settings.flag("rebuild", false)?, settings.flag("flush", false)?) {
        (true, true, _) => {
            return Err("rebuild and restore are mutually exclusive, please set only one of them (PLUGIN_REBUILD, PLUGIN_RESTORE)".into());
        }
        (true, false, false) => Operation::Restore,
        (false, true, false) => Operation::Save,
        (false, false, true) => Operation::Flush,
        (false, false, false) => return Err("nothing to do: set PLUGIN_RESTORE or PLUGIN_REBUILD (or PLUGIN_FLUSH) to true".into()),
        _ => return Err("flush cannot be combined with restore or rebuild (PLUGIN_FLUSH)".into()),
    };
    let role = settings.get("assume_role_arn");
    let oidc_token = settings.get("oidc_token_id");
    if let Some(chained) = settings.value("user_role_arn") {
        return Err(format!(
            "{} is not supported by s3cache: it assumes one role (assume_role_arn); for a chain of roles use a profile with role_arn and source_profile (AWS_CONFIG_FILE)",
            chained.source
        ));
    }
    if let Some(backend) = settings.get("backend").filter(|b| b != "s3") {
        return Err(settings.invalid("backend", &format!("s3 (s3cache keeps caches in S3-compatible stores; {backend:?} is not one)")));
    }
    for ignored in ["local_root", "skip_symlinks"] {
        settings.note_ignored(ignored);
    }

    let mut line = CommandLine::new(&[operation.verb()]);
    // Harness's fork does not namespace by repository; drone-cache defaults to the repository name.
    let root = if harness {
        if settings.get("remote_root").is_some() {
            settings.note_ignored("remote_root");
        }
        String::new()
    } else {
        settings.get("remote_root").or_else(|| gotemplate::metadata(".Repo.Name", env)).unwrap_or_default()
    };
    let bucket = settings.get("bucket");
    match &bucket {
        Some(bucket) => line.global("--store", Some(store_url(bucket, &[&root]))),
        None if env(env_vars::S3CACHE_STORE).is_some_and(|store| !store.is_empty()) => &mut line,
        None => return Err(format!("{} is required: the bucket to keep caches in", settings.variable("bucket"))),
    };
    let bare_scheme = bare_host_scheme(&settings, harness)?;
    line.global("--endpoint", settings.endpoint("endpoint", Some(bare_scheme))?)
        .global("--region", settings.get("region"))
        .global_switch("--path-style", settings.flag("path_style", false)?)
        .global("--acl", settings.get("acl"))
        .global_switch("--verbose", settings.flag("debug", false)?);
    if let Some(sse) = settings.get("encryption") {
        if sse != "AES256" && sse != "aws:kms" {
            return Err(settings.invalid("encryption", "AES256 or aws:kms"));
        }
        line.global("--sse", Some(sse));
    }
    line.global("--deadline-secs", settings.duration_secs("backend_operation_timeout")?.map(|s| s.to_string()));
    line.variable(env_vars::AWS_ENDPOINT_URL_STS, settings.endpoint("sts_endpoint", Some(bare_scheme))?, false);
    credentials(&mut line, settings.get("access_key"), settings.get("secret_key"), settings.get("session_token"));
    plugins::signing(&mut line, &settings);
    let session = settings.get("assume_role_session_name").unwrap_or_else(|| "drone-cache".into());
    match (role, oidc_token) {
        // Harness's OIDC connector: the credential chain's web identity source, with the token in a file.
        (Some(role), Some(token)) => {
            line.variable(env_vars::AWS_ROLE_ARN, Some(role), false)
                .variable(env_vars::AWS_ROLE_SESSION_NAME, Some(session), false)
                .web_identity_token(token);
        }
        // drone-cache's AssumeRole with the static keys (or whatever the chain finds).
        (Some(role), None) => {
            line.variable(env_vars::S3CACHE_ASSUME_ROLE_ARN, Some(role), false)
                .variable(env_vars::S3CACHE_ASSUME_ROLE_SESSION_NAME, Some(session), false)
                .variable(env_vars::S3CACHE_ASSUME_ROLE_EXTERNAL_ID, settings.get("external_id"), false);
        }
        (None, _) => {}
    }
    let exit_code = settings.flag("exit_code", false)?;

    if operation == Operation::Flush {
        let age = settings.duration_secs("flush_age")?.unwrap_or(30 * 86_400);
        line.option("--older-than", Some(format!("{age}s")));
        return Ok(line.finish());
    }

    let key = match settings.value("cache_key") {
        Some(template) => {
            gotemplate::translate(&template.text, env, gotemplate::DRONE_CACHE_HELPERS).map_err(|e| format!("{}: {e}", template.source))?
        }
        None => gotemplate::default_key(env),
    };
    let mounts: Vec<String> = settings.list("mount").into_iter().map(|m| if harness { expand_mount(&m, env) } else { m }).collect();
    line.option("--key", Some(key.clone()));
    match operation {
        Operation::Save => {
            if mounts.is_empty() {
                return Err(format!("{} is required to rebuild: the paths to cache", settings.variable("mount")));
            }
            let format = match settings.get("archive_format").as_deref() {
                None | Some("tar") => Format::Tar,
                Some("gzip") => Format::Gzip,
                Some("zstd") => Format::Zstd,
                Some(_) => return Err(settings.invalid("archive_format", "tar, gzip or zstd")),
            };
            let level = settings.integer("compression_level", -1..=22)?.filter(|l| *l > 0);
            let max_level = if format == Format::Gzip { 9 } else { 19 };
            if level.is_some_and(|l| l > max_level) {
                return Err(settings.invalid("compression_level", &format!("at most {max_level} for {}", format.name())));
            }
            line.option("--format", Some(format.name()))
                .option("--compression-level", level.map(|l| l.to_string()))
                .switch("--overwrite", settings.flag("override", !harness)?)
                .switch("--fail-on-error", exit_code)
                .paths(&mounts);
        }
        Operation::Restore => {
            let must_hit = settings.flag("fail_restore_if_key_not_present", false)? || (exit_code && !mounts.is_empty());
            let strict = settings.flag("strict_key_matching", true)?;
            line.option("--restore-key", (!strict).then(|| key.clone()))
                .switch("--fail-on-cache-miss", must_hit)
                .switch("--fail-on-error", exit_code)
                .paths(&mounts);
            let format = match settings.get("archive_format").as_deref() {
                Some("gzip") => Format::Gzip,
                Some("zstd") => Format::Zstd,
                _ => Format::Tar,
            };
            // The old plugin's objects, one per mount, for a restore that finds no entry of ours.
            if bucket.is_some() {
                let legacy = mounts
                    .iter()
                    .map(|mount| LegacyObject {
                        name: legacy_name(mount),
                        paths: vec![mount.clone()],
                        names: if harness && mount.starts_with("./") { MemberNames::Plain } else { MemberNames::Absolute },
                    })
                    .collect();
                line.legacy(if harness { "Harness's drone-cache" } else { "meltwater drone-cache" }, format, legacy);
            }
        }
        Operation::Flush => unreachable!("handled above"),
    }
    Ok(line.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env_vars::fixed as env;

    fn args(flavour: Flavour, pairs: &[(&str, &str)]) -> String {
        invocation(flavour, &env(pairs)).unwrap().args.join(" ")
    }

    /// A Drone rebuild: the repository-named store prefix, the translated key, drone-cache's
    /// defaults (tar, override) and exit_code as --fail-on-error; secrets go to the chain, masked.
    #[test]
    fn drone_rebuild() {
        let pairs = [
            ("DRONE_REPO_NAME", "app"),
            ("DRONE_COMMIT_BRANCH", "main"),
            ("PLUGIN_REBUILD", "true"),
            ("PLUGIN_BUCKET", "caches"),
            ("PLUGIN_MOUNT", "node_modules,.npm"),
            ("PLUGIN_CACHE_KEY", "{{ .Commit.Branch }}-{{ checksum \"package-lock.json\" }}"),
            ("PLUGIN_ENDPOINT", "minio:9000"),
            ("PLUGIN_PATH_STYLE", "true"),
            ("PLUGIN_EXIT_CODE", "true"),
            ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
        ];
        let inv = invocation(Flavour::DroneCache, &env(&pairs)).unwrap();
        assert_eq!(
            inv.args.join(" "),
            "--store s3://caches/app --endpoint https://minio:9000 --path-style save --key main-{{ md5sum \"package-lock.json\" }} --format tar --overwrite --fail-on-error --path node_modules --path .npm"
        );
        assert_eq!(inv.env, vec![("S3CACHE_SECRET_ACCESS_KEY".to_string(), "s3cr3t".to_string())]);
        assert_eq!(inv.secrets, vec!["s3cr3t"]);
    }

    /// A Drone restore: the default key is md5 of the branch; the old layout's objects are listed.
    #[test]
    fn drone_restore_and_legacy() {
        let pairs = [
            ("DRONE_REPO_NAME", "app"),
            ("PLUGIN_RESTORE", "true"),
            ("PLUGIN_BUCKET", "caches"),
            ("PLUGIN_MOUNT", "vendor/"),
            ("PLUGIN_ARCHIVE_FORMAT", "gzip"),
        ];
        let inv = invocation(Flavour::DroneCache, &env(&pairs)).unwrap();
        assert_eq!(inv.args.join(" "), "--store s3://caches/app restore --key eb0a191797624dd3a48fa681d3061212 --path vendor/");
        assert_eq!(
            inv.legacy,
            Some(crate::engine::Legacy {
                writer: "meltwater drone-cache".into(),
                format: Format::Gzip,
                in_search: false,
                objects: vec![LegacyObject { name: legacy_name("vendor/"), paths: vec!["vendor/".into()], names: MemberNames::Absolute }]
            })
        );
        // Under the store prefix s3://caches/app: the old object app/<key>/vendor.
        assert_eq!(inv.legacy.unwrap().objects[0].name.render("k1"), "k1/vendor");
    }

    /// Harness: no repository namespace, override off by default, no mount on restore (the entry's
    /// paths), fail_restore_if_key_not_present, and strict_key_matching off as a key prefix.
    #[test]
    fn harness_steps() {
        let save = [
            ("HARNESS_BUILD_ID", "1"),
            ("DRONE_REPO_NAME", "app"),
            ("PLUGIN_REBUILD", "true"),
            ("PLUGIN_BUCKET", "b"),
            ("PLUGIN_MOUNT", "~/.m2,$WS/target"),
            ("WS", "/ws"),
            ("PLUGIN_EXIT_CODE", "true"),
            ("PLUGIN_OVERRIDE", "false"),
            ("PLUGIN_BACKEND_OPERATION_TIMEOUT", "600s"),
            ("PLUGIN_ARCHIVE_FORMAT", "zstd"),
        ];
        assert_eq!(
            args(Flavour::Harness, &save),
            "--store s3://b --deadline-secs 600 save --key eb0a191797624dd3a48fa681d3061212 --format zstd --fail-on-error --path ~/.m2 --path /ws/target"
        );
        let restore = [
            ("PLUGIN_RESTORE", "true"),
            ("PLUGIN_BUCKET", "b"),
            ("PLUGIN_CACHE_KEY", "k"),
            ("PLUGIN_EXIT_CODE", "true"),
            ("PLUGIN_FAIL_RESTORE_IF_KEY_NOT_PRESENT", "true"),
            ("PLUGIN_STRICT_KEY_MATCHING", "false"),
        ];
        assert_eq!(args(Flavour::Harness, &restore), "--store s3://b restore --key k --restore-key k --fail-on-cache-miss --fail-on-error");
        // Harness always sets exit_code: a failed restore fails the step, but without mounts a miss
        // still passes unless asked.
        assert_eq!(args(Flavour::Harness, &restore[..4]), "--store s3://b restore --key k --fail-on-error");
    }

    /// Bad settings are errors that name the variable; unsupported ones are refused.
    #[test]
    fn bad_settings() {
        let err = |pairs: &[(&str, &str)]| invocation(Flavour::DroneCache, &env(pairs)).unwrap_err();
        assert!(err(&[("PLUGIN_RESTORE", "true"), ("PLUGIN_REBUILD", "true")]).contains("mutually exclusive"));
        assert!(err(&[("PLUGIN_BUCKET", "b")]).contains("nothing to do"));
        assert_eq!(
            err(&[("PLUGIN_REBUILD", "true"), ("PLUGIN_BUCKET", "b"), ("PLUGIN_MOUNT", "m"), ("PLUGIN_OVERRIDE", "yes please")]),
            r#"PLUGIN_OVERRIDE must be true or false, not "yes please""#
        );
        assert!(
            err(&[("PLUGIN_REBUILD", "true"), ("PLUGIN_BUCKET", "b"), ("PLUGIN_MOUNT", "x"), ("PLUGIN_ARCHIVE_FORMAT", "rar")])
                .contains("PLUGIN_ARCHIVE_FORMAT must be tar, gzip or zstd")
        );
        assert!(
            err(&[("PLUGIN_RESTORE", "true"), ("PLUGIN_BUCKET", "b"), ("PLUGIN_USER_ROLE_ARN", "arn:y")])
                .starts_with("PLUGIN_USER_ROLE_ARN is not supported by s3cache")
        );
        // drone-cache's AssumeRole with static keys: the engine's role step, with the external id.
        let assume = invocation(
            Flavour::DroneCache,
            &env(&[
                ("PLUGIN_RESTORE", "true"),
                ("PLUGIN_BUCKET", "b"),
                ("AWS_ASSUME_ROLE_ARN", "arn:aws:iam::1:role/r"),
                ("PLUGIN_EXTERNAL_ID", "x-1"),
            ]),
        )
        .unwrap();
        let role_env: Vec<_> =
            assume.env.iter().filter(|(k, _)| k.starts_with("S3CACHE_ASSUME_ROLE")).map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            role_env,
            [
                "S3CACHE_ASSUME_ROLE_ARN=arn:aws:iam::1:role/r",
                "S3CACHE_ASSUME_ROLE_SESSION_NAME=drone-cache",
                "S3CACHE_ASSUME_ROLE_EXTERNAL_ID=x-1"
            ]
        );
        assert_eq!(assume.web_identity_token, None);
        // Harness's OIDC connector: web identity, the token kept out of the command line and masked.
        let oidc = invocation(
            Flavour::Harness,
            &env(&[
                ("PLUGIN_RESTORE", "true"),
                ("PLUGIN_BUCKET", "b"),
                ("PLUGIN_ASSUME_ROLE", "arn:aws:iam::1:role/c"),
                ("PLUGIN_OIDC_TOKEN_ID", "eyJ.t"),
            ]),
        )
        .unwrap();
        assert_eq!(oidc.web_identity_token.as_deref(), Some("eyJ.t"));
        assert!(oidc.secrets.contains(&"eyJ.t".to_string()) && !oidc.args.join(" ").contains("eyJ"));
        assert!(
            oidc.env.contains(&("AWS_ROLE_ARN".to_string(), "arn:aws:iam::1:role/c".to_string()))
                && oidc.env.contains(&("AWS_ROLE_SESSION_NAME".to_string(), "drone-cache".to_string()))
        );
        assert!(err(&[("PLUGIN_RESTORE", "true")]).contains("PLUGIN_BUCKET is required"));
        assert!(err(&[("PLUGIN_REBUILD", "true"), ("PLUGIN_BUCKET", "b")]).contains("PLUGIN_MOUNT is required"));
        assert!(
            err(&[("PLUGIN_RESTORE", "true"), ("PLUGIN_BUCKET", "b"), ("PLUGIN_CACHE_KEY", "{{ .Nope }}")])
                .starts_with("PLUGIN_CACHE_KEY: ")
        );
    }

    /// A bare-host endpoint gets `https://` as the plugin's SDK added it, `http://` with `disablessl` or
    /// a plain-HTTP `sts_endpoint` (drone-cache only); an endpoint with a scheme keeps it, and a wrong
    /// scheme is refused naming the variable.
    #[test]
    fn bare_host_endpoints() {
        let base = [("PLUGIN_RESTORE", "true"), ("PLUGIN_BUCKET", "b"), ("PLUGIN_CACHE_KEY", "k")];
        let run = |flavour, extra: &[(&str, &str)]| invocation(flavour, &env(&[&base[..], extra].concat()));
        let endpoint = |flavour, extra: &[(&str, &str)]| run(flavour, extra).unwrap().args[3].clone();
        assert_eq!(endpoint(Flavour::DroneCache, &[("PLUGIN_ENDPOINT", "minio:9000")]), "https://minio:9000");
        assert_eq!(endpoint(Flavour::DroneCache, &[("S3_ENDPOINT", "minio:9000"), ("PLUGIN_DISABLESSL", "true")]), "http://minio:9000");
        assert_eq!(
            endpoint(Flavour::DroneCache, &[("PLUGIN_ENDPOINT", "https://minio:9000"), ("AWS_DISABLESSL", "true")]),
            "https://minio:9000"
        );
        let plain_sts = run(Flavour::DroneCache, &[("PLUGIN_ENDPOINT", "minio:9000"), ("PLUGIN_STS_ENDPOINT", "sts:8000")]).unwrap();
        assert_eq!(plain_sts.args[3], "http://minio:9000");
        assert!(plain_sts.env.contains(&("AWS_ENDPOINT_URL_STS".to_string(), "http://sts:8000".to_string())), "{:?}", plain_sts.env);
        assert_eq!(endpoint(Flavour::Harness, &[("PLUGIN_ENDPOINT", "minio:9000"), ("PLUGIN_DISABLESSL", "true")]), "https://minio:9000");
        let err = run(Flavour::DroneCache, &[("PLUGIN_ENDPOINT", "s3://minio:9000")]).unwrap_err();
        assert_eq!(err, r#"PLUGIN_ENDPOINT: endpoint "s3://minio:9000": the scheme must be http:// or https://"#);
        assert!(
            run(Flavour::DroneCache, &[("PLUGIN_ENDPOINT", "minio:9000"), ("PLUGIN_DISABLESSL", "maybe")])
                .unwrap_err()
                .starts_with("PLUGIN_DISABLESSL must be true or false")
        );
    }

    #[test]
    fn mounts_expand_like_harness() {
        let vars = env(&[("A", "x"), ("HOME", "/h")]);
        assert_eq!(expand_mount("$A/${A}/$/${", &vars), "x/x/$/${");
        assert_eq!(legacy_name("/root/.cache/").render("k"), "k/root/.cache");
        assert_eq!(legacy_name("./target").render("k"), "k/target");
    }
}
