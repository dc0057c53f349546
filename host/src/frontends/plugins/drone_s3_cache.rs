//! drone-plugins/drone-s3-cache's settings (`PLUGIN_*`), on Drone and Woodpecker
//! (docs/compat/drone-s3-cache.md).
//!
//! Layout: the bucket is `root`'s first segment; s3cache's scoped entries live under the rest of
//! `root` plus the repository part of `path` (`<owner>/<repo>`: the default path without its branch),
//! as `<scope>/<filename>`, so branches are isolated by scope instead of by path, and the default
//! branch's scope is the fallback. The old objects (`<root>/<path>/<filename>`, then
//! `<root>/<fallback_path>/<filename>`) are only ever read.

use crate::archive::layout::Format;
use crate::engine::{LegacyName, LegacyObject, MemberNames};
use crate::env_vars::{self, plugins::*};
use crate::frontends::Invocation;
use crate::frontends::plugins::gotemplate::metadata_set;
use crate::frontends::plugins::{
    self, CommandLine, Convention, Migration, Operation, Setting, Settings, Var, any_plugin_setting, credentials, own, setting, store_url,
};

/// Every setting of drone-s3-cache, in the order of its table in docs/drone-woodpecker.md.
pub const SETTINGS: &[Setting] = &[
    setting("mode", &[own("mode")], "", "`restore`, `rebuild` or `flush`.", Migration::Same),
    setting("restore", &[own("restore")], "false", "The older form of `mode: restore`.", Migration::Same),
    setting("rebuild", &[own("rebuild")], "false", "The older form of `mode: rebuild`.", Migration::Same),
    setting("flush", &[own("flush")], "false", "The older form of `mode: flush`.", Migration::Same),
    setting(
        "mount",
        &[own("mount")],
        "",
        "The paths to cache (a list). A restore without it restores the paths the entry recorded.",
        Migration::Same,
    ),
    setting("root", &[own("root")], "", "`<bucket>[/<prefix>]`.", Migration::Same),
    setting(
        "path",
        &[own("path")],
        "<owner>/<repo>/<branch>",
        "Where the cache lives under `root`: its `<owner>/<repo>` part is the store prefix; the branch is s3cache's scope.",
        Migration::Differs("branches are s3cache scopes, so a custom `path` that ends with the branch keeps only the part before it."),
    ),
    setting(
        "fallback_path",
        &[own("fallback_path")],
        "<owner>/<repo>/<default branch>",
        "Read when the branch has no cache: s3cache reads the pull request's base and the default branch's scopes.",
        Migration::Differs("a custom value is read only as an old drone-s3-cache object."),
    ),
    setting("flush_path", &[own("flush_path")], "<owner>/<repo>", "What `flush` covers: every scope under that prefix.", Migration::Same),
    setting(
        "flush_age",
        &[own("flush_age")],
        "30",
        "Days (or a duration: `14d`, `336h`) an entry may go unused before `flush` deletes it.",
        Migration::Differs("ages count from the last restore or save, not the object's upload time."),
    ),
    setting(
        "filename",
        &[own("filename")],
        "archive.tar",
        "The entry's name; `.tar` is uncompressed, `.tgz` or `.tar.gz` gzip.",
        Migration::Same,
    ),
    setting(
        "endpoint",
        &[own("server"), own("endpoint"), Var::Alias(CACHE_S3_ENDPOINT), Var::Alias(CACHE_S3_SERVER), Var::Alias(S3_ENDPOINT)],
        "https://s3.amazonaws.com",
        "The S3 endpoint, `http://` or `https://` (`server` wins over `endpoint`); `s3://bucket` and AWS URLs with a bucket or region in them work as in the plugin. A bare `host[:port]` is refused, as the plugin refused it (`unknown scheme for endpoint`).",
        Migration::Same,
    ),
    setting(
        "accelerated_endpoint",
        &[own("accelerated_endpoint"), Var::Alias(CACHE_S3_ACCELERATED_ENDPOINT)],
        "",
        "Use S3 Transfer Acceleration.",
        Migration::Differs("any value turns on AWS's accelerate endpoint (when no endpoint is set); the host itself is not used."),
    ),
    setting(
        "access_key",
        &[own("access_key"), Var::Alias(CACHE_S3_ACCESS_KEY), Var::Alias(AWS_ACCESS_KEY_ID)],
        "",
        "Access key id.",
        Migration::Same,
    ),
    setting(
        "secret_key",
        &[own("secret_key"), Var::Alias(CACHE_S3_SECRET_KEY), Var::Alias(AWS_SECRET_ACCESS_KEY)],
        "",
        "Secret key; never printed.",
        Migration::Same,
    ),
    setting(
        "session_token",
        &[own("session_token"), Var::Alias(CACHE_S3_SESSION_TOKEN), Var::Alias(AWS_SESSION_TOKEN)],
        "",
        "Session token; never printed.",
        Migration::Same,
    ),
    setting("region", &[own("region"), Var::Alias(CACHE_S3_REGION)], "", "The region.", Migration::Same),
    setting(
        "file_credentials",
        &[own("file_credentials"), Var::Alias(CACHE_FILE_CREDENTIALS), Var::Alias(AWS_SHARED_CREDENTIALS_FILE)],
        "",
        "A credentials file (not together with the keys).",
        Migration::Same,
    ),
    setting(
        "profile",
        &[own("profile"), Var::Alias(CACHE_S3_PROFILE), Var::Alias(AWS_PROFILE)],
        "",
        "The profile in that file.",
        Migration::Differs("also used without `file_credentials` (the AWS config files then)."),
    ),
    plugins::SIGNING_KEY,
    plugins::TRUSTED_KEYS,
    plugins::STORE_NAMESPACE,
];

/// Whether the environment holds drone-s3-cache's own settings.
pub fn recognizes(env: &dyn Fn(&str) -> Option<String>) -> bool {
    any_plugin_setting(
        env,
        &["mode", "root", "flush", "path", "fallback_path", "flush_path", "flush_age", "filename", "server", "file_credentials"],
    )
}

fn mode(settings: &Settings<'_>) -> Result<Operation, String> {
    let flags = [("restore", Operation::Restore), ("rebuild", Operation::Save), ("flush", Operation::Flush)];
    let mut set = Vec::new();
    for (name, mode) in flags {
        if settings.flag(name, false)? {
            set.push(mode);
        }
    }
    match (settings.get("mode"), set.as_slice()) {
        (Some(_), [_, ..]) => {
            Err("mode specified multiple ways: set PLUGIN_MODE or one of PLUGIN_RESTORE, PLUGIN_REBUILD, PLUGIN_FLUSH".into())
        }
        (Some(mode), []) => flags
            .iter()
            .find(|(name, _)| *name == mode)
            .map(|(_, m)| *m)
            .ok_or_else(|| settings.invalid("mode", "restore, rebuild or flush")),
        (None, [one]) => Ok(*one),
        (None, []) => Err("no mode specified: set PLUGIN_MODE to restore, rebuild or flush".into()),
        (None, _) => Err("multiple modes specified (PLUGIN_RESTORE, PLUGIN_REBUILD, PLUGIN_FLUSH)".into()),
    }
}

/// What the endpoint setting says: the endpoint URL (`None`: AWS), and a bucket and region it names.
struct Endpoint {
    url: Option<String>,
    bucket: Option<String>,
    region: Option<String>,
}

/// drone-s3-cache's endpoint rules: `s3://bucket`, AWS URLs (`https://bucket.s3.REGION.amazonaws.com`,
/// `https://s3.REGION.amazonaws.com/bucket`, `https://s3.amazonaws.com`), or any other `http(s)://`
/// server. Without a scheme the plugin's `url.Parse` found no host, so it refused every bare host.
fn parse_endpoint(settings: &Settings<'_>) -> Result<Endpoint, String> {
    let Some(text) = settings.get("endpoint") else { return Ok(Endpoint { url: None, bucket: None, region: None }) };
    if let Some(bucket) = text.strip_prefix("s3://") {
        return Ok(Endpoint { url: None, bucket: Some(bucket.trim_matches('/').to_owned()), region: None });
    }
    // No scheme, no host: not an AWS URL, and refused below as the plugin refused it.
    let (host, path) = text.split_once("://").map_or(("", ""), |(_, rest)| rest.split_once('/').unwrap_or((rest, "")));
    let hostname = host.split(':').next().unwrap_or(host);
    if !hostname.ends_with("amazonaws.com") {
        return Ok(Endpoint { url: settings.endpoint("endpoint", None)?, bucket: None, region: None });
    }
    let labels: Vec<&str> = hostname.split('.').collect();
    let path = path.trim_matches('/');
    let path_bucket = (!path.is_empty()).then(|| path.split('/').next().unwrap_or(path).to_owned());
    match labels.as_slice() {
        [bucket, "s3", region, _, _] => Ok(Endpoint { url: None, bucket: Some((*bucket).to_owned()), region: Some((*region).to_owned()) }),
        ["s3", region, _, _] => Ok(Endpoint { url: None, bucket: path_bucket, region: Some((*region).to_owned()) }),
        ["s3", _, _] => Ok(Endpoint { url: None, bucket: path_bucket, region: None }),
        _ => Err(settings.invalid("endpoint", "an S3 endpoint: unknown AWS domain")),
    }
}

/// The archive format and the entry's key from `filename`.
fn filename_parts(settings: &Settings<'_>) -> Result<(String, Format, String), String> {
    let filename = settings.get("filename").unwrap_or_else(|| "archive.tar".to_owned());
    let (key, format) = if let Some(key) = filename.strip_suffix(".tar.gz").or_else(|| filename.strip_suffix(".tgz")) {
        (key, Format::Gzip)
    } else if let Some(key) = filename.strip_suffix(".tar") {
        (key, Format::Tar)
    } else {
        return Err(settings.invalid("filename", "a name ending in .tar, .tgz or .tar.gz"));
    };
    if key.is_empty() || key.contains('/') {
        return Err(settings.invalid("filename", "a file name (no `/`) ending in .tar, .tgz or .tar.gz"));
    }
    Ok((key.to_owned(), format, filename))
}

/// Translates the step's settings into an s3cache command line.
pub fn invocation(env: &dyn Fn(&str) -> Option<String>) -> Result<Invocation, String> {
    let settings = Settings::new(SETTINGS, Convention::Plugin, env);
    let mode = mode(&settings)?;
    let endpoint = parse_endpoint(&settings)?;
    let root = settings.get("root").unwrap_or_default();
    let root = root.trim_matches('/');
    let (root_bucket, root_prefix) = root.split_once('/').unwrap_or((root, ""));
    let bucket = match (root_bucket.is_empty(), endpoint.bucket.clone()) {
        (false, Some(bucket)) => return Err(format!("bucket {bucket} already specified in endpoint remove from root (PLUGIN_ROOT)")),
        (false, None) => root_bucket.to_lowercase(),
        (true, Some(bucket)) => bucket.to_lowercase(),
        (true, None) => {
            return Err(format!("{} is required: the bucket (and an optional prefix) to keep caches in", settings.variable("root")));
        }
    };
    let region = match (settings.get("region"), endpoint.region.clone()) {
        (Some(region), Some(_)) => return Err(format!("region {region} already specified in endpoint remove from config (PLUGIN_REGION)")),
        (region, from_endpoint) => region.or(from_endpoint),
    };
    let file_credentials = settings.get("file_credentials");
    let (access_key, secret_key) = (settings.get("access_key"), settings.get("secret_key"));
    if file_credentials.is_some() && (access_key.is_some() || secret_key.is_some()) {
        return Err("only one credentials method should be used. Use either access-key and secret-key OR the credentials file (PLUGIN_FILE_CREDENTIALS)".into());
    }
    if let Some(file) = &file_credentials
        && !std::path::Path::new(file).is_file()
    {
        return Err(format!("file {file} does not exist (PLUGIN_FILE_CREDENTIALS)"));
    }

    let owner = metadata_set(".Repo.Owner", env).or_else(|| metadata_set(".Repo.Namespace", env)).unwrap_or_default();
    let repo = metadata_set(".Repo.Name", env).unwrap_or_default();
    let branch = metadata_set(".Commit.Branch", env).unwrap_or_default();
    let default_branch = metadata_set(".Repo.Branch", env).unwrap_or_default();
    let repository = format!("{owner}/{repo}");
    let path = settings.get("path").unwrap_or_else(|| format!("{repository}/{branch}"));
    // The store prefix: the path without its branch (s3cache's scope stands for the branch).
    let path_prefix = path
        .trim_matches('/')
        .strip_suffix(&format!("/{branch}"))
        .filter(|_| !branch.is_empty())
        .unwrap_or(path.trim_matches('/'))
        .to_owned();

    let mut line = CommandLine::new(&[mode.verb()]);
    let prefix = if mode == Operation::Flush { settings.get("flush_path").unwrap_or(repository.clone()) } else { path_prefix };
    line.global("--store", Some(store_url(&bucket, &[root_prefix, &prefix])))
        .global("--endpoint", endpoint.url)
        .global("--region", region)
        .global_switch("--accelerate", settings.get("accelerated_endpoint").is_some())
        .global("--profile", settings.get("profile"));
    line.variable(env_vars::AWS_SHARED_CREDENTIALS_FILE, file_credentials, false);
    credentials(&mut line, access_key, secret_key, settings.get("session_token"));
    plugins::signing(&mut line, &settings);

    match mode {
        Operation::Flush => {
            let age = settings.duration_secs("flush_age")?.unwrap_or(30 * 86_400);
            line.option("--older-than", Some(format!("{age}s")));
        }
        Operation::Save => {
            let (key, format, _) = filename_parts(&settings)?;
            let mounts = settings.list("mount");
            if mounts.is_empty() {
                return Err(format!("cache not specified: {} lists the paths to cache", settings.variable("mount")));
            }
            // drone-s3-cache always replaced the object.
            line.option("--key", Some(key)).option("--format", Some(format.name())).switch("--overwrite", true).paths(&mounts);
        }
        Operation::Restore => {
            let (key, format, filename) = filename_parts(&settings)?;
            let mounts = settings.list("mount");
            line.option("--key", Some(key)).paths(&mounts);
            let fallback = settings.get("fallback_path").unwrap_or_else(|| format!("{repository}/{default_branch}"));
            // The old objects, `<root>/<path>/<filename>` then the fallback's, where they lie under
            // the store prefix (a custom path elsewhere cannot be reached from it).
            let mut unique = Vec::new();
            for old in [path.clone(), fallback] {
                let old = old.trim_matches('/');
                let name = if old == prefix {
                    filename.clone()
                } else {
                    let Some(below) = old.strip_prefix(&format!("{prefix}/")) else { continue };
                    format!("{below}/{filename}")
                };
                let object = LegacyObject { name: LegacyName::Fixed(name), paths: mounts.clone(), names: MemberNames::Plain };
                if !unique.contains(&object) {
                    unique.push(object);
                }
            }
            line.legacy("drone-s3-cache", format, unique);
        }
    }
    Ok(line.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env_vars::fixed as env;

    const DRONE: &[(&str, &str)] =
        &[("DRONE_REPO_OWNER", "acme"), ("DRONE_REPO_NAME", "app"), ("DRONE_COMMIT_BRANCH", "feature/x"), ("DRONE_REPO_BRANCH", "main")];

    fn with(extra: &[(&str, &'static str)]) -> impl Fn(&str) -> Option<String> + use<> {
        env(&[DRONE, extra].concat())
    }

    /// The default path's repository part is the store prefix; the filename is the key and format.
    #[test]
    fn rebuild_and_restore() {
        let inv = invocation(&with(&[
            ("PLUGIN_MODE", "rebuild"),
            ("PLUGIN_ROOT", "caches/ci"),
            ("PLUGIN_MOUNT", "node_modules"),
            ("PLUGIN_ENDPOINT", "http://minio:9000"),
            ("PLUGIN_ACCESS_KEY", "AK"),
            ("PLUGIN_SECRET_KEY", "SK"),
        ]))
        .unwrap();
        assert_eq!(
            inv.args.join(" "),
            "--store s3://caches/ci/acme/app --endpoint http://minio:9000 save --key archive --format tar --overwrite --path node_modules"
        );
        assert_eq!(inv.secrets, vec!["SK"]);
        let inv = invocation(&with(&[
            ("PLUGIN_RESTORE", "true"),
            ("PLUGIN_ROOT", "caches"),
            ("PLUGIN_FILENAME", "deps.tgz"),
            ("PLUGIN_SERVER", "http://a:1"),
            ("PLUGIN_ENDPOINT", "http://b:2"),
        ]))
        .unwrap();
        assert_eq!(inv.args.join(" "), "--store s3://caches/acme/app --endpoint http://a:1 restore --key deps");
        let legacy = inv.legacy.unwrap();
        let names: Vec<String> = legacy.objects.iter().map(|l| l.name.render("")).collect();
        assert_eq!(names, vec!["feature/x/deps.tgz", "main/deps.tgz"]);
        assert_eq!(legacy.format, Format::Gzip);
    }

    /// Flush covers flush_path (default the repository) for flush_age days.
    #[test]
    fn flush() {
        let inv = invocation(&with(&[("PLUGIN_FLUSH", "true"), ("PLUGIN_ROOT", "caches"), ("PLUGIN_FLUSH_AGE", "7")])).unwrap();
        assert_eq!(inv.args.join(" "), "--store s3://caches/acme/app flush --older-than 604800s");
    }

    /// AWS endpoints carry a bucket or region; conflicts, bad modes and filenames are errors.
    #[test]
    fn endpoints_and_errors() {
        let inv = invocation(&with(&[("PLUGIN_MODE", "restore"), ("PLUGIN_ENDPOINT", "https://b1.s3.eu-west-1.amazonaws.com")])).unwrap();
        assert_eq!(inv.args.join(" "), "--store s3://b1/acme/app --region eu-west-1 restore --key archive");
        let err = |extra: &[(&str, &'static str)]| invocation(&with(extra)).unwrap_err();
        assert!(
            err(&[("PLUGIN_MODE", "restore"), ("PLUGIN_ROOT", "x"), ("PLUGIN_ENDPOINT", "s3://y")])
                .contains("already specified in endpoint")
        );
        // Bare hosts, AWS's included, are refused as the plugin refused them, naming the variable.
        assert_eq!(
            err(&[("PLUGIN_MODE", "restore"), ("PLUGIN_ROOT", "x"), ("CACHE_S3_SERVER", "minio:9000")]),
            r#"CACHE_S3_SERVER: endpoint "minio:9000" has no scheme: write http://minio:9000 for a plain-HTTP server or https://minio:9000 for TLS"#
        );
        assert!(
            err(&[("PLUGIN_MODE", "restore"), ("PLUGIN_ENDPOINT", "b1.s3.eu-west-1.amazonaws.com")])
                .starts_with(r#"PLUGIN_ENDPOINT: endpoint "b1.s3.eu-west-1.amazonaws.com" has no scheme"#)
        );
        assert!(
            err(&[("PLUGIN_MODE", "restore"), ("PLUGIN_ROOT", "x"), ("PLUGIN_ENDPOINT", "ftp://minio")])
                .contains("the scheme must be http:// or https://")
        );
        assert!(
            err(&[("PLUGIN_MODE", "restore"), ("PLUGIN_RESTORE", "true"), ("PLUGIN_ROOT", "x")]).contains("mode specified multiple ways")
        );
        assert!(
            err(&[("PLUGIN_MODE", "wipe"), ("PLUGIN_ROOT", "x")]).contains(r#"PLUGIN_MODE must be restore, rebuild or flush, not "wipe""#)
        );
        assert!(err(&[("PLUGIN_ROOT", "x")]).contains("no mode specified"));
        assert!(err(&[("PLUGIN_MODE", "restore"), ("PLUGIN_ROOT", "x"), ("PLUGIN_FILENAME", "a.zip")]).contains("PLUGIN_FILENAME must be"));
        assert!(err(&[("PLUGIN_MODE", "rebuild"), ("PLUGIN_ROOT", "x")]).contains("cache not specified"));
        assert!(
            err(&[
                ("PLUGIN_MODE", "restore"),
                ("PLUGIN_ROOT", "x"),
                ("PLUGIN_FLUSH_AGE", "x"),
                ("PLUGIN_ACCESS_KEY", "a"),
                ("PLUGIN_FILE_CREDENTIALS", "/nope")
            ])
            .contains("only one credentials method")
        );
    }
}
