//! Key templates: Handlebars with the helpers CI cache users know from drone-cache and GitLab.
//!
//! `{{ checksum "file" }}` and `{{ hashFiles "glob" "!glob" }}` select files by walking the workspace
//! preopen and hash them through [`Digests`] (natively, by the host, in the component); `{{ os }}`, `{{ arch }}`, `{{ branch }}` and `{{ epoch }}` come from the host's context;
//! `{{ env "NAME" }}` asks the host, which withholds secrets. Rendering is strict: an unknown variable
//! or helper is an error, never an empty string, and nothing is HTML-escaped. Errors are described for
//! people (`describe`: the nearest name, the template with a caret); a file-hashing helper whose
//! patterns match nothing renders as empty, as GitHub's `hashFiles` does, with a warning naming them.
//!
//! Bump [`KEY_ALGORITHM_VERSION`] whenever any hash input or algorithm below changes.

use handlebars::{Context, Handlebars, Helper, HelperDef, HelperResult, Output, RenderContext, RenderErrorReason};
use s3cache_policy::Selector;
use sha2::{Digest, Sha256};

use crate::GuestError;
use crate::bindings::TemplateContext;
use crate::files::{Digests, Directories};
use crate::walk;

mod describe;

/// Version of the key algorithms (`checksum`, `hashFiles`). Bump when any hash input changes.
pub const KEY_ALGORITHM_VERSION: u32 = 1;

/// Looks up an environment variable on the host's terms.
pub type EnvLookup<'a> = &'a (dyn Fn(&str) -> Option<String> + Sync);

/// Lists and hashes files for `checksum` and `hashFiles`.
pub trait TemplateFiles: Digests + Directories + Sync {}
impl<T: Digests + Directories + Sync> TemplateFiles for T {}

/// Renders `template`. A template without `{{` is returned unchanged without touching the disk.
pub fn render(template: &str, context: &TemplateContext, env: EnvLookup<'_>, files: &dyn TemplateFiles) -> Result<String, GuestError> {
    if !template.contains("{{") {
        return Ok(template.to_owned());
    }
    let workspace = context.workspace_dir.as_str();
    // One list of each: what is registered is what error messages name.
    let helpers: [(&str, Box<dyn HelperDef + Send + Sync + '_>); 5] = [
        ("checksum", Box::new(Checksum { workspace, files })),
        ("hashFiles", Box::new(HashFiles { workspace, files })),
        ("globHashFiles", Box::new(GlobHashFiles { workspace, files })),
        ("md5sum", Box::new(Md5Sum { workspace })),
        ("env", Box::new(Env { lookup: env })),
    ];
    let variables = [
        ("os", serde_json::json!(context.os)),
        ("arch", serde_json::json!(context.arch)),
        ("branch", serde_json::json!(context.branch)),
        ("epoch", serde_json::json!(context.epoch)),
    ];
    let names = describe::Names {
        helpers: helpers.iter().map(|(name, _)| *name).collect(),
        variables: variables.iter().map(|(name, _)| *name).collect(),
    };
    let mut registry = Handlebars::new();
    registry.set_strict_mode(true);
    registry.register_escape_fn(handlebars::no_escape);
    for (name, helper) in helpers {
        registry.register_helper(name, helper);
    }
    let data: serde_json::Map<String, serde_json::Value> = variables.into_iter().map(|(name, value)| (name.to_owned(), value)).collect();
    registry.render_template(template, &data).map_err(|e| GuestError::InvalidTemplate(describe::describe(&e, template, &names)))
}

/// GitHub's `hashFiles` algorithm: SHA-256 over the SHA-256 digests of every selected regular file,
/// in sorted relative-path order; the empty string when nothing matches.
pub fn hash_files(workspace: &str, selector: &Selector, files: &dyn TemplateFiles) -> Result<String, GuestError> {
    let selected = walk::selected_files(files, workspace, selector)?;
    if selected.is_empty() {
        return Ok(String::new());
    }
    let mut combined = Sha256::new();
    for digest in files.sha256(workspace, &selected)? {
        combined.update(digest);
    }
    Ok(hex::encode(combined.finalize()))
}

fn string_params<'a>(helper: &'a Helper<'_>, name: &'static str) -> Result<Vec<&'a str>, RenderErrorReason> {
    let params: Option<Vec<&str>> = helper.params().iter().map(|p| p.value().as_str()).collect();
    match params {
        Some(p) if !p.is_empty() => Ok(p),
        _ => Err(RenderErrorReason::Other(format!("`{name}` takes one or more quoted strings"))),
    }
}

fn single_param<'a>(helper: &'a Helper<'_>, name: &'static str) -> Result<&'a str, RenderErrorReason> {
    match string_params(helper, name)?.as_slice() {
        [one] => Ok(one),
        _ => Err(RenderErrorReason::Other(format!("`{name}` takes exactly one quoted string"))),
    }
}

/// The one quoted file name of a file function, as a path that stays inside the workspace.
fn file_param(helper: &Helper<'_>, name: &'static str) -> Result<s3cache_policy::MemberPath, RenderErrorReason> {
    let relative = single_param(helper, name)?;
    s3cache_policy::validate_relative(relative).map_err(|v| RenderErrorReason::Other(format!("{name} \"{relative}\": {v}")))
}

/// Warns that the patterns of a file-hashing helper matched no file, so the key holds an empty hash
/// where the helper stands (`npm-` for `npm-{{ hashFiles "**/package-lock.json" }}`): a key that
/// hashes nothing is the same for every revision of the files it meant to hash.
fn warn_matched_nothing(helper: &str, patterns: &[&str]) {
    crate::logging::warn(&matched_nothing(helper, patterns));
}

/// The warning of [`warn_matched_nothing`]: `hashFiles "a" "!b" matched no files; it renders as empty`.
fn matched_nothing(helper: &str, patterns: &[&str]) -> String {
    let quoted: Vec<String> = patterns.iter().map(|pattern| format!("\"{pattern}\"")).collect();
    format!("{helper} {} matched no files; it renders as empty", quoted.join(" "))
}

fn other(err: GuestError) -> RenderErrorReason {
    RenderErrorReason::Other(err.to_string())
}

struct Checksum<'a> {
    workspace: &'a str,
    files: &'a dyn TemplateFiles,
}

impl HelperDef for Checksum<'_> {
    fn call<'reg: 'rc, 'rc>(
        &self,
        helper: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let relative = file_param(helper, "checksum")?;
        let [digest] = self.files.sha256(self.workspace, &[relative.as_joined()]).map_err(other)?[..] else {
            return Err(RenderErrorReason::Other("the host returned no digest".into()).into());
        };
        out.write(&hex::encode(digest))?;
        Ok(())
    }
}

struct HashFiles<'a> {
    workspace: &'a str,
    files: &'a dyn TemplateFiles,
}

impl HelperDef for HashFiles<'_> {
    fn call<'reg: 'rc, 'rc>(
        &self,
        helper: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let patterns = string_params(helper, "hashFiles")?;
        let (exclude, include): (Vec<_>, Vec<_>) = patterns.iter().map(|p| p.trim_start_matches("./")).partition(|p| p.starts_with('!'));
        let include: Vec<String> = include.into_iter().map(str::to_owned).collect();
        let exclude: Vec<String> = exclude.into_iter().map(|p| p[1..].trim_start_matches("./").to_owned()).collect();
        if include.is_empty() {
            return Err(RenderErrorReason::Other("`hashFiles` needs at least one pattern without `!`".into()).into());
        }
        let selector = Selector::new(&include, &exclude).map_err(|e| other(e.into()))?;
        let hash = hash_files(self.workspace, &selector, self.files).map_err(other)?;
        if hash.is_empty() {
            warn_matched_nothing("hashFiles", &patterns);
        }
        out.write(&hash)?;
        Ok(())
    }
}

/// drone-cache's `checksum`: the MD5 of the file, hex; the empty string when it cannot be read (as
/// drone-cache, which logs and goes on).
struct Md5Sum<'a> {
    workspace: &'a str,
}

impl HelperDef for Md5Sum<'_> {
    fn call<'reg: 'rc, 'rc>(
        &self,
        helper: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        use md5::Digest as _;
        let relative = file_param(helper, "md5sum")?;
        match std::fs::read(std::path::Path::new(self.workspace).join(relative.as_joined())) {
            Ok(bytes) => out.write(&hex::encode(md5::Md5::digest(&bytes)))?,
            Err(err) => crate::logging::warn(&format!(
                "checksum \"{}\": {err}; the key gets an empty checksum, as in drone-cache",
                relative.as_joined()
            )),
        }
        Ok(())
    }
}

/// drone-cache's `hashFiles`: for each pattern in turn, Go's `filepath.Glob` (no `**`; matches in
/// lexical order per directory), the raw SHA-256 of every regular file matched; the hex SHA-256 of
/// those digests concatenated, or the empty string when nothing matched.
struct GlobHashFiles<'a> {
    workspace: &'a str,
    files: &'a dyn TemplateFiles,
}

impl HelperDef for GlobHashFiles<'_> {
    fn call<'reg: 'rc, 'rc>(
        &self,
        helper: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let patterns = string_params(helper, "globHashFiles")?;
        let mut matched = Vec::new();
        for &pattern in &patterns {
            for (path, kind) in crate::goglob::glob(self.files, self.workspace, pattern).map_err(other)? {
                // Directories and anything unreadable contribute nothing, as in drone-cache.
                if kind == crate::files::EntryKind::File || kind == crate::files::EntryKind::Symlink {
                    matched.push(path);
                }
            }
        }
        if matched.is_empty() {
            warn_matched_nothing("globHashFiles", &patterns);
            return Ok(());
        }
        let mut combined = Sha256::new();
        for path in matched {
            if let Ok([digest]) = self.files.sha256(self.workspace, std::slice::from_ref(&path)).as_deref() {
                combined.update(digest);
            }
        }
        out.write(&hex::encode(combined.finalize()))?;
        Ok(())
    }
}

struct Env<'a> {
    lookup: EnvLookup<'a>,
}

impl HelperDef for Env<'_> {
    fn call<'reg: 'rc, 'rc>(
        &self,
        helper: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let name = single_param(helper, "env")?;
        out.write(&(self.lookup)(name).unwrap_or_default())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::LocalFiles;
    use std::fs;
    use std::path::Path;

    fn context(dir: &Path) -> TemplateContext {
        TemplateContext {
            os: "linux".into(),
            arch: "x86_64".into(),
            branch: "main".into(),
            epoch: 1_700_000_000,
            workspace_dir: dir.to_str().unwrap().into(),
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    /// A literal key is returned as is.
    #[test]
    fn literal_keys_pass_through() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(render("plain-key", &context(dir.path()), &no_env, &LocalFiles::default()).unwrap(), "plain-key");
    }

    /// Context variables and env lookups render; an unknown variable is an error that names it.
    #[test]
    fn renders_context_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let env = |name: &str| (name == "RUSTC").then(|| "1.95".to_string());
        let key = render(
            "{{ os }}-{{ arch }}-{{ branch }}-{{ epoch }}-{{ env \"RUSTC\" }}-{{ env \"NOPE\" }}",
            &context(dir.path()),
            &env,
            &LocalFiles::default(),
        )
        .unwrap();
        assert_eq!(key, "linux-x86_64-main-1700000000-1.95-");
        let err = render("{{ nope }}", &context(dir.path()), &no_env, &LocalFiles::default()).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }

    /// `checksum` is the SHA-256 of the file; `hashFiles` follows GitHub's algorithm with excludes.
    #[test]
    fn hashes_files() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("sub")).unwrap();
        fs::write(dir.path().join("Cargo.lock"), "abc").unwrap();
        fs::write(dir.path().join("sub/Cargo.lock"), "def").unwrap();
        let ctx = context(dir.path());
        let sha_abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(render("{{ checksum \"Cargo.lock\" }}", &ctx, &no_env, &LocalFiles::default()).unwrap(), sha_abc);

        let mut both = Sha256::new();
        both.update(hex::decode(sha_abc).unwrap());
        both.update(Sha256::digest(b"def"));
        let expected = hex::encode(both.finalize());
        assert_eq!(render("{{ hashFiles \"**/Cargo.lock\" }}", &ctx, &no_env, &LocalFiles::default()).unwrap(), expected);
        assert_eq!(
            render("{{ hashFiles \"**/Cargo.lock\" \"!sub\" }}", &ctx, &no_env, &LocalFiles::default()).unwrap(),
            hex::encode(Sha256::digest(hex::decode(sha_abc).unwrap()))
        );
        assert_eq!(render("x{{ hashFiles \"*.none\" }}", &ctx, &no_env, &LocalFiles::default()).unwrap(), "x");
    }

    /// drone-cache's functions: MD5 `checksum` (empty for a missing file) and its `hashFiles` (Go
    /// globs, pattern by pattern, SHA-256 over the raw digests).
    #[test]
    fn drone_cache_functions() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("go.mod"), "abc").unwrap();
        fs::write(dir.path().join("go.sum"), "def").unwrap();
        let ctx = context(dir.path());
        let render = |t: &str| render(t, &ctx, &no_env, &LocalFiles::default()).unwrap();
        assert_eq!(render("{{ md5sum \"go.mod\" }}"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(render("x{{ md5sum \"missing\" }}"), "x");
        let mut both = Sha256::new();
        both.update(Sha256::digest(b"abc"));
        both.update(Sha256::digest(b"def"));
        let expected = hex::encode(both.finalize());
        assert_eq!(render("{{ globHashFiles \"go.*\" }}"), expected);
        // Pattern order, then each pattern's matches in order: go.sum, then go.mod and go.sum again.
        let mut order = Sha256::new();
        for content in [&b"def"[..], b"abc", b"def"] {
            order.update(Sha256::digest(content));
        }
        assert_eq!(render("{{ globHashFiles \"go.sum\" \"go.*\" }}"), hex::encode(order.finalize()));
        assert_eq!(render("x{{ globHashFiles \"*.lock\" }}"), "x");
    }

    /// Errors say what is wrong, with the nearest name for a misspelt one, and show where: the line
    /// and column, the template's line and a caret.
    #[test]
    fn errors_show_the_position() {
        let dir = tempfile::tempdir().unwrap();
        let err = render("npm-{{ hashFile \"x\" }}", &context(dir.path()), &no_env, &LocalFiles::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid key template: unknown helper `hashFile`; did you mean `hashFiles`? (the helpers are checksum, hashFiles, globHashFiles, md5sum, env)\n  1:5 | npm-{{ hashFile \"x\" }}\n      |     ^"
        );
    }

    /// The warning for patterns that match nothing quotes each of them.
    #[test]
    fn matched_nothing_names_the_patterns() {
        assert_eq!(
            matched_nothing("hashFiles", &["**/a.lock", "!b/**"]),
            "hashFiles \"**/a.lock\" \"!b/**\" matched no files; it renders as empty"
        );
    }

    /// A missing file or an escaping path is an error naming the file.
    #[test]
    fn checksum_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = render("{{ checksum \"missing.lock\" }}", &context(dir.path()), &no_env, &LocalFiles::default()).unwrap_err();
        assert!(err.to_string().contains("missing.lock"), "{err}");
        let err = render("{{ checksum \"../x\" }}", &context(dir.path()), &no_env, &LocalFiles::default()).unwrap_err();
        assert!(err.to_string().contains(".."), "{err}");
    }
}
