//! What the CI plugin dialects share: a settings table per dialect (each setting's name, the
//! variables it is read from in the replaced plugin's order, its default, what s3cache does with it,
//! and how a migrating user should read it), one way to read a setting's value, and the docs' table
//! generated from it.
//!
//! A setting's value is the first non-empty variable of its list; Vela adds its parameter and secret
//! files after the variables ([`Settings::with_vela_files`]). Values are parsed with
//! [`crate::config::parse`], and a bad one is an error that names the variable it came from.

#[cfg(test)]
pub(crate) mod docs;
pub mod drone_cache;
pub mod drone_s3_cache;
pub mod gotemplate;
pub mod vela;
pub mod woodpecker;

use std::path::PathBuf;

use crate::config::parse;
use crate::env_vars;
use crate::store::s3::Endpoint;

/// A variable a setting is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    /// The convention's own variable for this setting name (`PLUGIN_<NAME>`, `PARAMETER_<NAME>`),
    /// possibly another setting's (drone-s3-cache's `server` wins over its `endpoint`).
    Setting(&'static str),
    /// An alias from [`env_vars::plugins`].
    Alias(&'static str),
}

/// How a migrating user should read a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migration {
    /// Same name, same meaning.
    Same,
    /// Accepted, with a difference the text explains.
    Differs(&'static str),
}

/// One setting of a dialect.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// The name as written under `settings:` or `parameters:`.
    pub name: &'static str,
    /// Where the value comes from, first non-empty wins.
    pub vars: &'static [Var],
    /// The default, as documented (empty: none).
    #[cfg_attr(not(test), allow(dead_code, reason = "documentation, read by the unit test that writes and checks the docs' tables"))]
    pub default: &'static str,
    /// What it does in s3cache.
    #[cfg_attr(not(test), allow(dead_code, reason = "documentation, read by the unit test that writes and checks the docs' tables"))]
    pub doc: &'static str,
    pub migration: Migration,
}

/// A setting read from its own convention variable (`PLUGIN_<NAME>`, `PARAMETER_<NAME>`).
pub const fn own(name: &'static str) -> Var {
    Var::Setting(name)
}

/// Whether any of these settings is set in the `PLUGIN_*` convention: how a dialect recognizes its own.
pub fn any_plugin_setting(env: &dyn Fn(&str) -> Option<String>, names: &[&str]) -> bool {
    names.iter().any(|name| env(&env_vars::plugin_setting(name)).is_some_and(|v| !v.trim().is_empty()))
}

/// What a plugin step does, whatever the dialect calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Restore,
    Save,
    Flush,
}

impl Operation {
    /// The CLI verb.
    pub fn verb(self) -> &'static str {
        match self {
            Operation::Restore => "restore",
            Operation::Save => "save",
            Operation::Flush => "flush",
        }
    }
}

/// Shorthand for table rows.
pub const fn setting(name: &'static str, vars: &'static [Var], default: &'static str, doc: &'static str, migration: Migration) -> Setting {
    Setting { name, vars, default, doc, migration }
}

/// Which convention a dialect's own variables follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Convention {
    /// Drone, Woodpecker, Harness: `PLUGIN_<NAME>`.
    Plugin,
    /// Vela: `PARAMETER_<NAME>`, then `/vela/parameters/s3-cache/<name>` and `/vela/secrets/s3-cache/<name>`.
    Parameter,
}

impl Convention {
    fn variable(self, name: &str) -> String {
        match self {
            Convention::Plugin => env_vars::plugin_setting(name),
            Convention::Parameter => env_vars::vela_parameter(name),
        }
    }
}

/// A dialect's settings, read from one environment.
pub struct Settings<'a> {
    table: &'static [Setting],
    convention: Convention,
    env: &'a dyn Fn(&str) -> Option<String>,
    /// Vela's file sources, in order, after the variables.
    files: Vec<PathBuf>,
}

impl std::fmt::Debug for Settings<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings").field("convention", &self.convention).field("files", &self.files).finish_non_exhaustive()
    }
}

/// A setting's value and where it came from (a variable, or a file's path), for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    pub text: String,
    pub source: String,
}

impl<'a> Settings<'a> {
    pub fn new(table: &'static [Setting], convention: Convention, env: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self { table, convention, env, files: Vec::new() }
    }

    /// Vela's files after the variables: `<dir>/parameters/s3-cache/<name>`, then
    /// `<dir>/secrets/s3-cache/<name>` (the plugin's code's order; its DOCS.md says files win).
    pub fn with_vela_files(mut self, dir: PathBuf) -> Self {
        self.files = vec![dir.join("parameters/s3-cache"), dir.join("secrets/s3-cache")];
        self
    }

    fn spec(&self, name: &str) -> &'static Setting {
        self.table.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("setting {name} is not in the dialect's table"))
    }

    /// The variable a setting's errors name when it has no value: its own convention variable.
    pub fn variable(&self, name: &str) -> String {
        self.convention.variable(name)
    }

    /// The setting's value: the first non-empty variable, then (Vela) the first non-empty file.
    pub fn value(&self, name: &str) -> Option<Value> {
        let spec = self.spec(name);
        for var in spec.vars {
            let variable = match var {
                Var::Setting(setting) => self.convention.variable(setting),
                Var::Alias(alias) => (*alias).to_owned(),
            };
            if let Some(text) = (self.env)(&variable).filter(|v| !v.trim().is_empty()) {
                return Some(Value { text, source: variable });
            }
        }
        for dir in &self.files {
            let path = dir.join(spec.name);
            if let Ok(text) = std::fs::read_to_string(&path) {
                let text = text.trim().to_owned();
                if !text.is_empty() {
                    return Some(Value { text, source: path.display().to_string() });
                }
            }
        }
        None
    }

    /// The value of a setting whose empty value means something (`trusted_keys`: a blank secret
    /// refuses everything): the first variable that is set, empty or not, then (Vela) the first file
    /// that exists.
    pub fn set_value(&self, name: &str) -> Option<Value> {
        let spec = self.spec(name);
        let variables = spec.vars.iter().map(|var| match var {
            Var::Setting(setting) => self.convention.variable(setting),
            Var::Alias(alias) => (*alias).to_owned(),
        });
        let from_variables = variables.into_iter().find_map(|variable| (self.env)(&variable).map(|text| Value { text, source: variable }));
        from_variables.or_else(|| {
            self.files.iter().map(|dir| dir.join(spec.name)).find_map(|path| {
                std::fs::read_to_string(&path).ok().map(|text| Value { text: text.trim().to_owned(), source: path.display().to_string() })
            })
        })
    }

    /// The value, trimmed, or `None`.
    pub fn get(&self, name: &str) -> Option<String> {
        self.value(name).map(|v| v.text.trim().to_owned())
    }

    /// A boolean setting; unset is `default`.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, String> {
        match self.value(name) {
            None => Ok(default),
            Some(value) => parse::boolean(&value.source, &value.text).map_err(|e| e.to_string()),
        }
    }

    /// A list setting (comma-separated, as the plugin conventions pass YAML lists).
    pub fn list(&self, name: &str) -> Vec<String> {
        self.value(name).map(|v| parse::list(&v.text)).unwrap_or_default()
    }

    /// A duration setting, as whole seconds.
    pub fn duration_secs(&self, name: &str) -> Result<Option<u64>, String> {
        match self.value(name) {
            None => Ok(None),
            Some(value) => parse::duration(&value.source, &value.text).map(|d| Some(d.as_secs().max(1))).map_err(|e| e.to_string()),
        }
    }

    /// An integer setting within `range`.
    pub fn integer(&self, name: &str, range: std::ops::RangeInclusive<i64>) -> Result<Option<i64>, String> {
        match self.value(name) {
            None => Ok(None),
            Some(value) => match value.text.trim().parse::<i64>() {
                Ok(n) if range.contains(&n) => Ok(Some(n)),
                _ => Err(parse::SettingError::new(
                    &value.source,
                    &format!("a whole number from {} to {}", range.start(), range.end()),
                    &value.text,
                )
                .to_string()),
            },
        }
    }

    /// An endpoint setting as a URL, checked as `--endpoint` will check it: `http://host[:port]` or
    /// `https://host[:port]`. A bare `host[:port]` gets `bare_scheme` when the replaced plugin added
    /// one (drone-cache adds `https`); with `None`, as for plugins that refused it, it is an error that
    /// names the variable and says what to write.
    pub fn endpoint(&self, name: &str, bare_scheme: Option<&str>) -> Result<Option<String>, String> {
        let Some(value) = self.value(name) else { return Ok(None) };
        let text = value.text.trim().trim_end_matches('/');
        let url = match bare_scheme {
            Some(scheme) if !text.contains("://") => format!("{scheme}://{text}"),
            _ => text.to_owned(),
        };
        Endpoint::parse(&url).map_err(|e| format!("{}: {e}", value.source))?;
        Ok(Some(url))
    }

    /// An error naming the setting's source (or its own variable when unset).
    pub fn invalid(&self, name: &str, expected: &str) -> String {
        let (source, text) = self.value(name).map(|v| (v.source, v.text)).unwrap_or_else(|| (self.variable(name), String::new()));
        parse::SettingError::new(&source, expected, &text).to_string()
    }

    /// The setting's value, or `None` with a notice when it is accepted but has no effect here. The
    /// notice is printed while the dialect's settings are read, before the run has output choices or
    /// secrets: as a plain line on stderr.
    pub fn note_ignored(&self, name: &str) {
        if let (Some(value), Migration::Differs(why)) = (self.value(name), self.spec(name).migration) {
            crate::report::Reporter::stderr().notice(&format!("{} is ignored: {why}", value.source));
        }
    }
}

/// The command line a dialect builds: global options, then the verb and its options, then paths.
#[derive(Debug, Default)]
pub struct CommandLine {
    global: Vec<String>,
    command: Vec<String>,
    paths: Vec<String>,
    invocation: crate::frontends::Invocation,
}

impl CommandLine {
    pub fn new(verb: &[&str]) -> Self {
        Self { command: verb.iter().map(|v| (*v).to_owned()).collect(), ..Self::default() }
    }

    /// A global option with a value (`--store URL`), when there is one.
    pub fn global(&mut self, option: &str, value: Option<impl Into<String>>) -> &mut Self {
        if let Some(value) = value {
            self.global.extend([option.to_owned(), value.into()]);
        }
        self
    }

    /// A global switch (`--path-style`) when `on`.
    pub fn global_switch(&mut self, option: &str, on: bool) -> &mut Self {
        if on {
            self.global.push(option.to_owned());
        }
        self
    }

    /// An option of the verb with a value, when there is one.
    pub fn option(&mut self, option: &str, value: Option<impl Into<String>>) -> &mut Self {
        if let Some(value) = value {
            self.command.extend([option.to_owned(), value.into()]);
        }
        self
    }

    /// A switch of the verb when `on`.
    pub fn switch(&mut self, option: &str, on: bool) -> &mut Self {
        if on {
            self.command.push(option.to_owned());
        }
        self
    }

    /// A positional argument of the verb (`delete KEY`).
    pub fn positional(&mut self, value: &str) -> &mut Self {
        self.command.push(value.to_owned());
        self
    }

    /// `--path P` for each path, after every option.
    pub fn paths(&mut self, paths: &[String]) -> &mut Self {
        self.paths.extend(paths.iter().flat_map(|p| ["--path".to_owned(), p.clone()]));
        self
    }

    /// A variable for the run (a credential for the chain, `AWS_ENDPOINT_URL_STS`); `secret` values
    /// are masked before anything is printed.
    pub fn variable(&mut self, variable: &str, value: Option<String>, secret: bool) -> &mut Self {
        if let Some(value) = value {
            if secret {
                self.invocation.secrets.push(value.clone());
            }
            self.invocation.env.push((variable.to_owned(), value));
        }
        self
    }

    /// A web identity (OIDC) token for the credential chain, which reads it from a file the run writes.
    pub fn web_identity_token(&mut self, token: String) -> &mut Self {
        self.invocation.secrets.push(token.clone());
        self.invocation.web_identity_token = Some(token);
        self
    }

    /// Old-layout objects a restore may fall back to, all of `format`, written by `writer`.
    pub fn legacy(&mut self, writer: &str, format: crate::archive::layout::Format, objects: Vec<crate::engine::LegacyObject>) -> &mut Self {
        self.invocation.legacy =
            (!objects.is_empty()).then(|| crate::engine::Legacy { writer: writer.to_owned(), format, in_search: false, objects });
        self
    }

    pub fn finish(self) -> crate::frontends::Invocation {
        let mut invocation = self.invocation;
        invocation.args = self.global.into_iter().chain(self.command).chain(self.paths).collect();
        invocation
    }
}

/// The explicit credentials of a dialect's settings, for the credential chain's first source.
pub fn credentials(line: &mut CommandLine, access_key: Option<String>, secret_key: Option<String>, session_token: Option<String>) {
    line.variable(env_vars::S3CACHE_ACCESS_KEY_ID, access_key, false)
        .variable(env_vars::S3CACHE_SECRET_ACCESS_KEY, secret_key, true)
        .variable(env_vars::S3CACHE_SESSION_TOKEN, session_token, true);
}

/// The signing settings every dialect's table ends with (docs/signing.md).
pub const SIGNING_KEY: Setting = setting(
    "signing_key",
    &[own("signing_key")],
    "",
    "Sign saved entries with this OpenSSH ed25519 private key (its text or its file's path); pass it from a secret. Never printed. Set but empty (a blank secret): entries are saved unsigned, with a warning naming the variable.",
    Migration::Differs("an s3cache addition (docs/signing.md)."),
);
pub const TRUSTED_KEYS: Setting = setting(
    "trusted_keys",
    &[own("trusted_keys")],
    "",
    "Restore only entries signed by one of these public keys (`.pub` or `allowed_signers` lines, or a file's path); others are refused. Set but empty (a blank secret): every entry is refused, with a warning naming the variable.",
    Migration::Differs("an s3cache addition (docs/signing.md)."),
);
pub const STORE_NAMESPACE: Setting = setting(
    "store_namespace",
    &[own("store_namespace")],
    "the store's location",
    "The store's name in entries' manifests, which signed entries must match (`s3://bucket/prefix` by default).",
    Migration::Differs("an s3cache addition (docs/signing.md)."),
);

/// The signing settings of a dialect ([`SIGNING_KEY`], [`TRUSTED_KEYS`], [`STORE_NAMESPACE`]) for the
/// run. The key and the trusted keys go to the run's settings directly (the key is a secret, kept off
/// the command line) under their variable's name; set but empty, each counts as set, so that a blank
/// secret is a warning and, for trusted keys, refuses everything: verification is never silently off.
pub fn signing(line: &mut CommandLine, settings: &Settings) {
    let given = &mut line.invocation.signing;
    if let Some(key) = settings.set_value(SIGNING_KEY.name) {
        line.invocation.secrets.push(key.text.trim().to_owned());
        (given.signing_key, given.signing_key_source) = (Some(key.text), Some(key.source));
    }
    if let Some(trusted) = settings.set_value(TRUSTED_KEYS.name) {
        (given.trusted_keys, given.trusted_keys_source) = (Some(trusted.text), Some(trusted.source));
    }
    line.global("--store-namespace", settings.get(STORE_NAMESPACE.name));
}

/// A store URL `s3://bucket/prefix` from a bucket and path parts (empty parts and stray slashes dropped).
pub fn store_url(bucket: &str, parts: &[&str]) -> String {
    let prefix: Vec<&str> = parts.iter().flat_map(|p| p.split('/')).filter(|s| !s.is_empty() && *s != ".").collect();
    if prefix.is_empty() { format!("s3://{bucket}") } else { format!("s3://{bucket}/{}", prefix.join("/")) }
}

#[cfg(test)]
/// The docs' table of a dialect: setting, variables, default, and what s3cache does.
pub fn readme_table(table: &[Setting], convention: Convention) -> String {
    let mut out = vec!["| setting | read from | default | in s3cache | migrating |".to_owned(), "|---|---|---|---|---|".to_owned()];
    for setting in table {
        let vars: Vec<String> = setting
            .vars
            .iter()
            .map(|v| match v {
                Var::Setting(name) => format!("`{}`", convention.variable(name)),
                Var::Alias(alias) => format!("`{alias}`"),
            })
            .collect();
        let mut vars = vars.join(", ");
        if convention == Convention::Parameter {
            vars.push_str(&format!(", then the files `parameters/s3-cache/{0}`, `secrets/s3-cache/{0}`", setting.name));
        }
        let default = if setting.default.is_empty() { "—".to_owned() } else { format!("`{}`", setting.default) };
        let (doc, status) = match setting.migration {
            Migration::Same => (setting.doc, "same".to_owned()),
            Migration::Differs(why) => (setting.doc, format!("differs: {why}")),
        };
        out.push(format!("| `{}` | {vars} | {default} | {doc} | {status} |", setting.name));
    }
    out.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env_vars::fixed as env;

    const TABLE: &[Setting] = &[
        setting("mount", &[Var::Setting("mount")], "", "paths", Migration::Same),
        setting(
            "endpoint",
            &[Var::Setting("server"), Var::Setting("endpoint"), Var::Alias("S3_ENDPOINT")],
            "",
            "endpoint",
            Migration::Same,
        ),
        setting("override", &[Var::Setting("override")], "true", "overwrite", Migration::Same),
        setting("secret_key", &[Var::Setting("secret_key")], "", "secret", Migration::Same),
    ];

    /// The first non-empty variable wins, in the table's order; lists are comma-split; a bad
    /// boolean names the variable it came from.
    #[test]
    fn values_in_order() {
        let vars = env(&[
            ("PLUGIN_MOUNT", "a, b,"),
            ("PLUGIN_ENDPOINT", "http://e"),
            ("PLUGIN_SERVER", ""),
            ("S3_ENDPOINT", "http://s"),
            ("PLUGIN_OVERRIDE", "yes please"),
        ]);
        let settings = Settings::new(TABLE, Convention::Plugin, &vars);
        assert_eq!(settings.list("mount"), vec!["a", "b"]);
        assert_eq!(settings.get("endpoint").as_deref(), Some("http://e"));
        assert_eq!(settings.flag("override", true).unwrap_err(), r#"PLUGIN_OVERRIDE must be true or false, not "yes please""#);
        assert_eq!(settings.get("secret_key"), None);
    }

    /// Endpoint settings need a scheme, unless the dialect adds one to a bare host as its plugin did;
    /// the error names the variable the value came from.
    #[test]
    fn endpoints() {
        let vars = env(&[("PLUGIN_SERVER", "minio:9000/"), ("PLUGIN_ENDPOINT", "http://e")]);
        let settings = Settings::new(TABLE, Convention::Plugin, &vars);
        assert_eq!(settings.endpoint("endpoint", Some("https")), Ok(Some("https://minio:9000".into())));
        assert_eq!(
            settings.endpoint("endpoint", None).unwrap_err(),
            r#"PLUGIN_SERVER: endpoint "minio:9000" has no scheme: write http://minio:9000 for a plain-HTTP server or https://minio:9000 for TLS"#
        );
        let vars = env(&[("S3_ENDPOINT", "HTTP://s3:9000")]);
        assert_eq!(Settings::new(TABLE, Convention::Plugin, &vars).endpoint("endpoint", Some("https")), Ok(Some("HTTP://s3:9000".into())));
        let vars = env(&[("S3_ENDPOINT", "ftp://s3")]);
        assert!(
            Settings::new(TABLE, Convention::Plugin, &vars)
                .endpoint("endpoint", Some("https"))
                .unwrap_err()
                .starts_with("S3_ENDPOINT: endpoint \"ftp://s3\": the scheme must be")
        );
        assert_eq!(Settings::new(TABLE, Convention::Plugin, &env(&[])).endpoint("endpoint", None), Ok(None));
    }

    /// Vela's files come after its variables: parameters, then secrets.
    #[test]
    fn vela_files_after_variables() {
        let dir = tempfile::tempdir().unwrap();
        for (sub, value) in [("parameters/s3-cache", "from-parameters\n"), ("secrets/s3-cache", "from-secrets")] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
            std::fs::write(dir.path().join(sub).join("secret_key"), value).unwrap();
        }
        std::fs::write(dir.path().join("secrets/s3-cache/mount"), "m1,m2").unwrap();
        let none = env(&[]);
        let settings = Settings::new(TABLE, Convention::Parameter, &none).with_vela_files(dir.path().to_path_buf());
        assert_eq!(settings.get("secret_key").as_deref(), Some("from-parameters"));
        assert_eq!(settings.list("mount"), vec!["m1", "m2"]);
        let set = env(&[("PARAMETER_SECRET_KEY", "from-env")]);
        let settings = Settings::new(TABLE, Convention::Parameter, &set).with_vela_files(dir.path().to_path_buf());
        assert_eq!(settings.get("secret_key").as_deref(), Some("from-env"));
    }

    /// The signing settings: the key off the command line and among the secrets; trusted keys set but
    /// empty (a blank secret) count as set, under their variable's name; Vela reads them from files too.
    #[test]
    fn signing_settings() {
        const SIGNING: &[Setting] = &[SIGNING_KEY, TRUSTED_KEYS, STORE_NAMESPACE];
        let vars = env(&[("PLUGIN_SIGNING_KEY", "/keys/ci"), ("PLUGIN_TRUSTED_KEYS", ""), ("PLUGIN_STORE_NAMESPACE", "org")]);
        let mut line = CommandLine::new(&["save"]);
        signing(&mut line, &Settings::new(SIGNING, Convention::Plugin, &vars));
        let invocation = line.finish();
        assert_eq!(invocation.args.join(" "), "--store-namespace org save");
        assert_eq!(invocation.secrets, vec!["/keys/ci"]);
        let given = invocation.signing;
        assert_eq!((given.signing_key.as_deref(), given.signing_key_source.as_deref()), (Some("/keys/ci"), Some("PLUGIN_SIGNING_KEY")));
        assert_eq!((given.trusted_keys.as_deref(), given.trusted_keys_source.as_deref()), (Some(""), Some("PLUGIN_TRUSTED_KEYS")));
        let mut line = CommandLine::new(&["restore"]);
        signing(&mut line, &Settings::new(SIGNING, Convention::Plugin, &env(&[])));
        assert_eq!(line.finish().signing, crate::config::SigningSettings::default());

        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("secrets/s3-cache")).unwrap();
        std::fs::write(dir.path().join("secrets/s3-cache/trusted_keys"), "ssh-ed25519 AAAA ci\n").unwrap();
        let mut line = CommandLine::new(&["restore"]);
        signing(&mut line, &Settings::new(SIGNING, Convention::Parameter, &env(&[])).with_vela_files(dir.path().to_path_buf()));
        let given = line.finish().signing;
        let source = dir.path().join("secrets/s3-cache/trusted_keys").display().to_string();
        assert_eq!((given.trusted_keys.as_deref(), given.trusted_keys_source), (Some("ssh-ed25519 AAAA ci"), Some(source)));
    }

    #[test]
    fn store_urls() {
        assert_eq!(store_url("b", &["", "owner/repo/", "."]), "s3://b/owner/repo");
        assert_eq!(store_url("b", &[]), "s3://b");
    }
}
