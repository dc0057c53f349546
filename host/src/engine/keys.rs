//! Rendering key templates in the guest (`{{ hashFiles ... }}`, `{{ env "NAME" }}`, `{{ branch }}`) and
//! checking rendered keys before any request is sent. A key without `{{` is used as it is, without
//! starting the guest.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::engine::{CacheContext, ConfigError, EngineError, EnvLookup, validate_key, validate_restore_key};
use crate::env_vars;
use crate::report::Reporter;
use crate::sandbox::bindings::TemplateContext;
use crate::sandbox::{GuestEnv, GuestInstance, Preopen, Sandbox, SandboxError};

/// The `{{ branch }}` and friends of this run.
pub(crate) fn template_context(env: &EnvLookup) -> TemplateContext {
    let branch = env_vars::BRANCH_VARIABLES.iter().find_map(|name| env(name).filter(|v| !v.is_empty())).unwrap_or_default();
    TemplateContext {
        os: std::env::consts::OS.into(),
        arch: std::env::consts::ARCH.into(),
        branch,
        epoch: SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs(),
        workspace_dir: "/workspace".into(),
    }
}

/// The helpers of a key template, each as it is called and what it renders to, for `s3cache key
/// --help`. The guest registers them; `tests::help_lists_what_the_guest_has` checks that this list and
/// the guest's agree, names and order.
pub(crate) const TEMPLATE_HELPERS: &[(&str, &str)] = &[
    ("checksum \"FILE\"", "SHA-256 of the file, hex"),
    ("hashFiles \"GLOB\"...", "GitHub's hashFiles of the files matched (\"!GLOB\" excludes); empty if none"),
    ("globHashFiles \"GLOB\"...", "drone-cache's hashFiles: Go globs, pattern by pattern; empty if none"),
    ("md5sum \"FILE\"", "drone-cache's checksum: MD5 of the file, hex; empty if unreadable"),
    ("env \"NAME\"", "the variable's value; empty if unset or if the name may hold a secret"),
];

/// The variables of a key template and what each holds, for `s3cache key --help`; checked against the
/// guest's as [`TEMPLATE_HELPERS`] is.
pub(crate) const TEMPLATE_VARIABLES: &[(&str, &str)] = &[
    ("os", "the operating system: linux, macos, windows"),
    ("arch", "the processor: x86_64, aarch64"),
    ("branch", "the branch: S3CACHE_BRANCH, else the CI's (GITHUB_HEAD_REF, ...)"),
    ("epoch", "seconds since 1970"),
];

/// The names of a [`TEMPLATE_HELPERS`] or [`TEMPLATE_VARIABLES`] table: `checksum, hashFiles, ...`.
pub(crate) fn template_names(table: &[(&'static str, &str)]) -> Vec<&'static str> {
    table.iter().map(|(usage, _)| usage.split(' ').next().unwrap_or(usage)).collect()
}

/// A template that the guest refused, with a hint on a line of its own when it is written in GitHub's
/// expression syntax (`${{ hashFiles('a') }}`, which only the runner expands): the same key in
/// s3cache's spelling.
pub(crate) fn template_error(template: &str, message: String) -> ConfigError {
    match github_spelling(template) {
        Some(ours) => ConfigError::Template(format!(
            "{message}\n  hint: `${{{{ ... }}}}` is GitHub's expression syntax, which only the runner expands; in s3cache write {}",
            crate::report::escape(&ours)
        )),
        None => ConfigError::Template(message),
    }
}

/// `template` with each GitHub expression (`${{ hashFiles('a', 'b') }}`, `${{ runner.os }}`) in
/// s3cache's spelling (`{{ hashFiles "a" "b" }}`, `{{ os }}`); `None` when it has none.
fn github_spelling(template: &str) -> Option<String> {
    let expression = regex::Regex::new(r"\$\{\{\s*(.*?)\s*\}\}").expect("a valid pattern");
    let call = regex::Regex::new(r"^(\w+)\s*\((.*)\)$").expect("a valid pattern");
    if !expression.is_match(template) {
        return None;
    }
    let ours = expression.replace_all(template, |found: &regex::Captures| {
        let inner = &found[1];
        let spelled = match call.captures(inner) {
            Some(parts) => {
                let args = parts[2].split(',').map(|arg| arg.trim().trim_matches(['\'', '"'])).filter(|arg| !arg.is_empty());
                std::iter::once(parts[1].to_owned()).chain(args.map(|arg| format!("{arg:?}"))).collect::<Vec<_>>().join(" ")
            }
            None => match inner {
                "runner.os" => "os".to_owned(),
                "runner.arch" => "arch".to_owned(),
                "github.ref_name" | "github.head_ref" => "branch".to_owned(),
                other => other.to_owned(),
            },
        };
        format!("{{{{ {spelled} }}}}")
    });
    Some(ours.into_owned())
}

/// The workspace as key templates see it: read-only, at `/workspace`.
pub(crate) fn workspace_preopen(cwd: &Path) -> Preopen {
    Preopen { host: cwd.to_path_buf(), guest: "/workspace".into(), writable: false }
}

pub(crate) fn guest_env(env: &EnvLookup) -> GuestEnv {
    let env = env.clone();
    Box::new(move |name| env(name))
}

/// Renders a key template in the sandbox against the workspace `cwd` and the environment: what
/// [`CacheContext::compute_key`] does, for a caller that has no store (`s3cache key`); the guest's
/// warnings go to `reporter`.
pub fn compute_key(sandbox: &Sandbox, cwd: &Path, env: &EnvLookup, template: &str, reporter: &Reporter) -> Result<String, EngineError> {
    KeyRenderer::new(sandbox, cwd, env, reporter).render(template)
}

impl CacheContext {
    /// Renders a key template in the sandbox, without looking at any cached path.
    pub fn compute_key(&self, template: &str) -> Result<String, EngineError> {
        compute_key(&self.sandbox, &self.cwd, &self.env, template, &self.reporter)
    }

    /// Checks a rendered key as [`validate_key`] does, and that its object names in this store fit
    /// S3's limit in every scope the run reads or writes. Sends no request.
    pub fn check_key(&self, key: &str) -> Result<(), ConfigError> {
        validate_key(key, self.layout)?;
        self.check_name_length(key)
    }

    /// [`CacheContext::check_key`] for a restore key (a key prefix, [`validate_restore_key`]).
    pub fn check_restore_key(&self, prefix: &str) -> Result<(), ConfigError> {
        validate_restore_key(prefix, self.layout)?;
        self.check_name_length(prefix)
    }

    /// The longest object name of `key` (a prefix is as long as the shortest key it matches) must fit.
    fn check_name_length(&self, key: &str) -> Result<(), ConfigError> {
        let prefix = self.store.name_prefix();
        let scopes = self.scopes.read.iter().chain(std::iter::once(&self.scopes.write));
        let bytes = prefix.len() + scopes.map(|scope| self.layout.longest_object_bytes(scope, key)).max().unwrap_or(0);
        let limit = crate::store::MAX_OBJECT_KEY_BYTES;
        if bytes > limit {
            return Err(ConfigError::ObjectNameTooLong { key: key.to_owned(), prefix: prefix.to_owned(), bytes, limit });
        }
        Ok(())
    }
}

/// Renders key templates in one guest instance, started only for a template that has something to
/// render: a key without `{{` is the key itself (the guest returns it as is), and CI systems often pass
/// keys they have already expanded.
pub(crate) struct KeyRenderer<'a> {
    sandbox: &'a Sandbox,
    cwd: &'a Path,
    env: &'a EnvLookup,
    reporter: &'a Reporter,
    template_context: TemplateContext,
    guest: Option<GuestInstance>,
}

impl<'a> KeyRenderer<'a> {
    pub(crate) fn new(sandbox: &'a Sandbox, cwd: &'a Path, env: &'a EnvLookup, reporter: &'a Reporter) -> Self {
        Self { sandbox, cwd, env, reporter, template_context: template_context(env), guest: None }
    }

    pub(crate) fn render(&mut self, template: &str) -> Result<String, EngineError> {
        if !template.contains("{{") {
            return Ok(template.to_owned());
        }
        let guest = match &mut self.guest {
            Some(guest) => guest,
            None => self.guest.insert(
                self.sandbox
                    .instance(&[workspace_preopen(self.cwd)], guest_env(self.env), self.reporter)
                    .map_err(EngineError::SandboxStart)?,
            ),
        };
        match guest.resolve(template, &self.template_context, &[]) {
            Ok(resolution) => Ok(resolution.key),
            Err(SandboxError::Guest(err)) => Err(template_error(template, crate::sandbox::describe_guest_error(&err)).into()),
            Err(err) => Err(template_error(template, err.to_string()).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GitHub's expressions get s3cache's spelling in the hint; other templates get no hint.
    #[test]
    fn github_expressions_in_our_spelling() {
        assert_eq!(
            github_spelling("npm-${{ runner.os }}-${{ hashFiles('**/package-lock.json', '!x/**') }}").as_deref(),
            Some(r#"npm-{{ os }}-{{ hashFiles "**/package-lock.json" "!x/**" }}"#)
        );
        assert_eq!(github_spelling(r#"npm-{{ hashFiles "a" }}"#), None);
        let ConfigError::Template(message) = template_error("k-${{ runner.os }}", "unknown variable `runner.os`".into()) else {
            panic!("a template error")
        };
        assert_eq!(
            message,
            "unknown variable `runner.os`\n  hint: `${{ ... }}` is GitHub's expression syntax, which only the runner expands; in s3cache write k-{{ os }}"
        );
    }

    /// `key --help` lists what the guest has: the guest's messages for an unknown helper and an unknown
    /// variable name the same helpers and variables, in the same order, as the two tables.
    #[test]
    fn help_lists_what_the_guest_has() {
        let sandbox = Sandbox::load(None, crate::sandbox::GuestLimits::default()).unwrap();
        let workspace = tempfile::tempdir().unwrap();
        let env: EnvLookup = std::sync::Arc::new(|_: &str| None);
        let refusal =
            |template: &str| compute_key(&sandbox, workspace.path(), &env, template, &Reporter::silent()).unwrap_err().to_string();
        let names = |table| template_names(table).join(", ");
        let helpers = refusal("{{ zzzzzz \"x\" }}");
        assert!(helpers.contains(&format!("; the helpers are {}\n", names(TEMPLATE_HELPERS))), "{helpers}");
        let variables = refusal("{{ zzzzzz }}");
        assert!(variables.contains(&format!("; the variables are {}\n", names(TEMPLATE_VARIABLES))), "{variables}");
    }
}
