//! drone-cache's key templates (Go `text/template`, as its users write them) in s3cache's terms.
//!
//! Metadata (`{{ .Commit.Branch }}`, `{{ .Repo.Name }}`, `{{ .Build.Number }}`...) is read here from
//! the CI's variables ([`env_vars::plugins::TEMPLATE_METADATA`]: `DRONE_*`, then Woodpecker's `CI_*`)
//! and becomes literal text; `{{ arch }}` and `{{ os }}` become Go's names (`amd64`, `arm64`,
//! `darwin`), as drone-cache's binary printed them; `{{ epoch }}` and the file functions become s3cache
//! template helpers, which the sandboxed guest evaluates. The result is an s3cache key template.

use crate::env_vars;

/// The s3cache helpers that drone-cache's file functions map onto.
#[derive(Debug, Clone, Copy)]
pub struct FileHelpers {
    /// For `checksum "file"`.
    pub checksum: &'static str,
    /// For `hashFiles "glob"...`.
    pub hash_files: &'static str,
}

/// drone-cache's own algorithms: `checksum` is the MD5 of the file (empty when it is missing), and
/// `hashFiles` is SHA-256 over the raw SHA-256 of each match, pattern by pattern, each pattern's
/// matches in lexical order (Go's `filepath.Glob`: no `**`).
pub const DRONE_CACHE_HELPERS: FileHelpers = FileHelpers { checksum: "md5sum", hash_files: "globHashFiles" };

/// Go's name for this machine's architecture (`runtime.GOARCH`).
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// Go's name for this operating system (`runtime.GOOS`).
pub fn go_os() -> &'static str {
    match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    }
}

/// The value of a metadata field (`.Commit.Branch`), or `None` for a field drone-cache does not have.
pub fn metadata(field: &str, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let (_, vars, default) = env_vars::plugins::TEMPLATE_METADATA.iter().find(|(name, _, _)| *name == field)?;
    Some(vars.iter().find_map(|v| env(v).filter(|v| !v.is_empty())).unwrap_or_else(|| (*default).to_owned()))
}

/// The value of a metadata field when the CI set one (no default).
pub fn metadata_set(field: &str, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let (_, vars, _) = env_vars::plugins::TEMPLATE_METADATA.iter().find(|(name, _, _)| *name == field)?;
    vars.iter().find_map(|v| env(v).filter(|v| !v.is_empty()))
}

/// Text that goes into an s3cache template as it is: no `{{`, no backslash (an escape there).
fn literal(text: &str, what: &str) -> Result<String, String> {
    if text.contains("{{") || text.contains('\\') {
        return Err(format!("{what} {text:?} cannot be part of a key: it contains `{{{{` or a backslash"));
    }
    Ok(text.to_owned())
}

/// The quoted arguments of a function call: Go's "double-quoted" or `raw` strings.
fn string_args(text: &str, function: &str) -> Result<Vec<String>, String> {
    let mut args = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let quote = rest.chars().next().unwrap_or_default();
        if quote != '"' && quote != '`' {
            return Err(format!("`{function}` takes quoted strings, not {rest:?}"));
        }
        let end = rest[1..].find(quote).ok_or_else(|| format!("an unterminated string in `{function}`"))? + 1;
        let arg = &rest[1..end];
        if arg.contains(['"', '\\']) {
            return Err(format!("`{function}` argument {arg:?}: quotes and backslashes are not supported"));
        }
        args.push(arg.to_owned());
        rest = rest[end + 1..].trim_start();
    }
    if args.is_empty() {
        return Err(format!("`{function}` needs a quoted file name or pattern"));
    }
    Ok(args)
}

/// Translates one action (the text between `{{` and `}}`, trim markers removed).
fn action(body: &str, env: &dyn Fn(&str) -> Option<String>, helpers: FileHelpers) -> Result<String, String> {
    let body = body.trim();
    if body.starts_with("/*") && body.ends_with("*/") {
        return Ok(String::new());
    }
    if body.starts_with('.') {
        let value = metadata(body, env).ok_or_else(|| {
            let known: Vec<&str> = env_vars::plugins::TEMPLATE_METADATA.iter().map(|(n, _, _)| *n).collect();
            format!("unknown field {body} (drone-cache has {})", known.join(", "))
        })?;
        return literal(&value, body);
    }
    let (function, args) = body.split_once(char::is_whitespace).unwrap_or((body, ""));
    let quoted = |args: Vec<String>| args.iter().map(|a| format!("\"{a}\"")).collect::<Vec<_>>().join(" ");
    match function {
        "epoch" if args.trim().is_empty() => Ok("{{ epoch }}".into()),
        "arch" if args.trim().is_empty() => Ok(go_arch().into()),
        "os" if args.trim().is_empty() => Ok(go_os().into()),
        "checksum" => {
            let args = string_args(args, "checksum")?;
            if args.len() != 1 {
                return Err("`checksum` takes exactly one file name".into());
            }
            Ok(format!("{{{{ {} {} }}}}", helpers.checksum, quoted(args)))
        }
        "hashFiles" => Ok(format!("{{{{ {} {} }}}}", helpers.hash_files, quoted(string_args(args, "hashFiles")?))),
        _ => Err(format!(
            "`{{{{ {body} }}}}` is not supported: drone-cache keys may use metadata fields (.Commit.Branch, ...), checksum, hashFiles, epoch, arch and os"
        )),
    }
}

/// Translates a drone-cache key template into an s3cache key template.
pub fn translate(template: &str, env: &dyn Fn(&str) -> Option<String>, helpers: FileHelpers) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    let mut trim_next = false;
    while let Some(start) = rest.find("{{") {
        let mut text = &rest[..start];
        if trim_next {
            text = text.trim_start();
        }
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| format!("unclosed action in the key template {template:?}"))?;
        let mut body = &after[..end];
        if let Some(stripped) = body.strip_prefix("- ") {
            text = text.trim_end();
            body = stripped;
        }
        trim_next = false;
        if let Some(stripped) = body.strip_suffix(" -") {
            trim_next = true;
            body = stripped;
        }
        out.push_str(&literal(text, "the text")?);
        out.push_str(&action(body, env, helpers).map_err(|e| format!("in the key template {template:?}: {e}"))?);
        rest = &after[end + 2..];
    }
    let text = if trim_next { rest.trim_start() } else { rest };
    out.push_str(&literal(text, "the text")?);
    Ok(out)
}

/// drone-cache's key when `cache_key` is unset: the hex MD5 of the branch (`DRONE_COMMIT_BRANCH`,
/// default `master`).
pub fn default_key(env: &dyn Fn(&str) -> Option<String>) -> String {
    use md5::Digest;
    let branch = metadata(".Commit.Branch", env).unwrap_or_default();
    hex::encode(md5::Md5::digest(branch.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env_vars::fixed as env;

    /// Metadata becomes text, functions become s3cache helpers, trim markers and comments work.
    #[test]
    fn translates_drone_cache_keys() {
        let vars = env(&[
            ("DRONE_COMMIT_BRANCH", "feature/x"),
            ("DRONE_REPO_NAME", "app"),
            ("CI_PIPELINE_NUMBER", "41"),
            ("DRONE_BUILD_NUMBER", "42"),
        ]);
        let key = translate(r#"{{ .Repo.Name }}-{{ .Commit.Branch }}-{{ .Build.Number }}-{{ checksum "go.mod" }}-{{ hashFiles "go.*" `x/*.sum` }}-{{ epoch }}"#, &vars, DRONE_CACHE_HELPERS).unwrap();
        assert_eq!(key, r#"app-feature/x-42-{{ md5sum "go.mod" }}-{{ globHashFiles "go.*" "x/*.sum" }}-{{ epoch }}"#);
        assert_eq!(translate("{{ arch }}/{{ os }}", &vars, DRONE_CACHE_HELPERS).unwrap(), format!("{}/{}", go_arch(), go_os()));
        assert_eq!(translate("a  {{- /* note */ -}}  b", &vars, DRONE_CACHE_HELPERS).unwrap(), "ab");
        // Woodpecker's names when Drone's are absent; drone-cache's defaults when neither is set.
        let woodpecker = env(&[("CI_COMMIT_BRANCH", "dev"), ("CI_REPO_NAME", "w")]);
        assert_eq!(
            translate("{{ .Repo.Name }}:{{ .Commit.Branch }}:{{ .Build.Event }}", &woodpecker, DRONE_CACHE_HELPERS).unwrap(),
            "w:dev:push"
        );
        assert_eq!(translate("{{ .Commit.Branch }}", &env(&[]), DRONE_CACHE_HELPERS).unwrap(), "master");
    }

    /// Unknown fields and functions, and values that would become template syntax, are errors.
    #[test]
    fn refuses_what_it_cannot_translate() {
        let vars = env(&[("DRONE_COMMIT_BRANCH", "x{{ env \"AWS_SECRET_ACCESS_KEY\" }}")]);
        assert!(translate("{{ .Commit.Nope }}", &vars, DRONE_CACHE_HELPERS).unwrap_err().contains("unknown field .Commit.Nope"));
        assert!(translate("{{ printf \"%s\" 1 }}", &vars, DRONE_CACHE_HELPERS).unwrap_err().contains("not supported"));
        assert!(translate("{{ .Commit.Branch }}", &vars, DRONE_CACHE_HELPERS).unwrap_err().contains("cannot be part of a key"));
        assert!(translate("{{ checksum }}", &vars, DRONE_CACHE_HELPERS).is_err());
        assert!(translate("{{ epoch", &vars, DRONE_CACHE_HELPERS).is_err());
    }

    /// The default key is drone-cache's: md5 of the branch, `master` when unset.
    #[test]
    fn default_key_is_md5_of_the_branch() {
        assert_eq!(default_key(&env(&[])), "eb0a191797624dd3a48fa681d3061212");
        assert_eq!(default_key(&env(&[("DRONE_COMMIT_BRANCH", "main")])), "fad58de7366495db4650cfefac2fcd61");
    }
}
