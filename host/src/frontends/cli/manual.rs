//! What the command line says about itself for a shell and for `man`: completion scripts
//! (`s3cache completions SHELL`, clap_complete) and man pages (`s3cache man [COMMAND]`, clap_mangen),
//! both generated from the same clap definition as `--help`, so they cannot drift from the flags.

use std::io::Write;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::frontends::cli::Cli;

/// The command line's definition, built (globals propagated to every subcommand), without the
/// `help` subcommand (every command has `--help`).
pub(crate) fn definition() -> clap::Command {
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    command
}

/// Writes the completion script for `shell`.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn Write) -> Result<()> {
    let mut command = definition();
    let name = command.get_name().to_owned();
    clap_complete::generate(shell, &mut command, name, out);
    Ok(())
}

/// Writes the man page of `s3cache` (section 1), or with `subcommand` that of `s3cache-<subcommand>`.
pub fn man_page(subcommand: Option<&str>, out: &mut dyn Write) -> Result<()> {
    let command = definition();
    let page = match subcommand {
        None => command,
        Some(name) => match command.find_subcommand(name) {
            Some(sub) => sub.clone(),
            None => {
                let names: Vec<&str> = command.get_subcommands().map(clap::Command::get_name).collect();
                anyhow::bail!("no man page for {name:?}: the commands are {}", names.join(", "));
            }
        },
    };
    let source = format!("s3cache {}", env!("CARGO_PKG_VERSION"));
    let mut rendered = Vec::new();
    clap_mangen::Man::new(page).source(source).render(&mut rendered).context("writing the man page")?;
    if subcommand.is_none() {
        // The sections clap_mangen does not make go before VERSION, as man-pages(7) orders them.
        let mut page = String::from_utf8(rendered).context("the man page is not UTF-8")?;
        let sections = [exit_status(), environment(&command_definition_envs()), examples()].concat();
        let at = page.find("\n.SH VERSION").map_or(page.len(), |at| at + 1);
        page.insert_str(at, &sections);
        rendered = page.into_bytes();
    }
    out.write_all(&rendered).context("writing the man page")
}

/// Lines of roff without the preamble [`roff::Roff::render`] starts with (clap_mangen's page has it).
fn roff_lines(roff: &roff::Roff) -> String {
    let preamble = roff::Roff::new().render();
    let text = roff.render();
    text.strip_prefix(&preamble).map(str::to_owned).unwrap_or(text)
}

/// A constant in a catalogue's source, with its doc comment (rustdoc links and backticks removed).
/// Constants right after it without a doc comment of their own share it, as `GITHUB_STATE` shares
/// `GITHUB_OUTPUT`'s.
#[derive(Debug)]
struct Documented {
    names: Vec<String>,
    value: String,
    doc: String,
}

/// The `pub const NAME: <ty> = VALUE;` items of `source` whose type is `ty`, with their docs: every
/// top-level one, and in nested modules (`pub mod NAME {` at the start of a line, named in the
/// doc) those whose name starts with `nested_prefix`. Test-only
/// (`#[cfg(test)]`) constants are left out.
fn documented_consts(source: &str, ty: &str, nested_prefix: &str) -> Vec<Documented> {
    let mut found: Vec<Documented> = Vec::new();
    let mut doc: Vec<&str> = Vec::new();
    let (mut test_only, mut after_const) = (false, false);
    let mut module = "";
    for line in source.lines() {
        let trimmed = line.trim_start();
        if let Some(name) = line.strip_prefix("pub mod ").and_then(|rest| rest.strip_suffix(" {")) {
            module = name;
        }
        if let Some(text) = trimmed.strip_prefix("///") {
            doc.push(text.trim());
            after_const = false;
            continue;
        }
        if trimmed.starts_with("#[") {
            test_only |= trimmed.starts_with("#[cfg(test)]");
            continue;
        }
        let declared = trimmed.strip_prefix("pub const ").and_then(|rest| rest.split_once(&format!(": {ty} = ")));
        match declared {
            Some((name, value)) if !test_only && (line == trimmed || name.starts_with(nested_prefix)) => {
                let value = value.trim_end_matches(';').trim_matches('"').to_owned();
                match found.last_mut() {
                    Some(last) if doc.is_empty() && after_const => last.names.push(name.to_owned()),
                    _ => {
                        // A nested constant says which part of s3cache reads it.
                        let part = if line == trimmed { String::new() } else { format!("(s3cache {module}) ") };
                        found.push(Documented { names: vec![name.to_owned()], value, doc: plain_doc(&format!("{part}{}", doc.join(" "))) });
                    }
                }
                after_const = true;
            }
            _ => after_const = false,
        }
        doc.clear();
        test_only = false;
    }
    found
}

/// A doc comment as man page text: `` [`crate::x::Y`] `` is `Y`, backticks go.
fn plain_doc(doc: &str) -> String {
    let mut text = String::new();
    let mut rest = doc;
    while let Some(start) = rest.find("[`") {
        let Some(end) = rest[start..].find("`]") else { break };
        let item = &rest[start + 2..start + end];
        text.push_str(&rest[..start]);
        text.push_str(item.rsplit("::").next().unwrap_or(item));
        rest = &rest[start + end + 2..];
    }
    text.push_str(rest);
    text.replace('`', "")
}

/// One `.TP` paragraph: `tag` in bold, then `text`.
fn tagged(roff: &mut roff::Roff, tag: &str, text: &str) {
    roff.control("TP", []).text([roff::bold(tag)]).text([roff::roman(text)]);
}

/// EXIT STATUS: 0, the exit-code constants of [`crate::frontends`] with their docs, and the codes
/// after a signal ([`crate::frontends::interrupt::exit_code`]).
fn exit_status() -> String {
    let mut roff = roff::Roff::new();
    roff.control("SH", ["EXIT STATUS"]);
    tagged(
        &mut roff,
        "0",
        "Success: saved, restored, or a cache miss; also a save or restore failure that was only warned about \
         (without --fail-on-error).",
    );
    for code in documented_consts(include_str!("../mod.rs"), "u8", "EXIT_") {
        tagged(&mut roff, &code.value, &code.doc);
    }
    #[cfg(unix)]
    for (signal, name) in [(signal_hook::consts::SIGINT, "SIGINT"), (signal_hook::consts::SIGTERM, "SIGTERM")] {
        let code = crate::frontends::interrupt::exit_code(signal);
        tagged(&mut roff, &code.to_string(), &format!("Interrupted by {name}: the operation cleaned up and stopped."));
    }
    roff_lines(&roff)
}

/// The variables the command line's flags read (clap's `env`), each with its flag.
fn command_definition_envs() -> Vec<(String, String)> {
    let command = definition();
    let mut envs: Vec<(String, String)> = Vec::new();
    let commands = std::iter::once(&command).chain(command.get_subcommands());
    for arg in commands.flat_map(clap::Command::get_arguments) {
        if let (Some(env), Some(long)) = (arg.get_env().and_then(|e| e.to_str()), arg.get_long()) {
            let pair = (env.to_owned(), format!("--{long}"));
            if !envs.contains(&pair) {
                envs.push(pair);
            }
        }
    }
    envs
}

/// ENVIRONMENT: every variable of the catalogue ([`crate::env_vars`]) with its doc and, when a
/// flag reads it, that flag; then any variable a flag reads that the catalogue lacks.
fn environment(flag_envs: &[(String, String)]) -> String {
    let mut roff = roff::Roff::new();
    roff.control("SH", ["ENVIRONMENT"]);
    roff.text([roff::roman("A flag given on the command line wins over its variable.")]);
    let mut listed = Vec::new();
    for variable in documented_consts(include_str!("../../env_vars.rs"), "&str", "S3CACHE_") {
        let names: Vec<String> = if variable.value.ends_with('_') { vec![format!("{}*", variable.value)] } else { variable.names.clone() };
        let flags: Vec<&str> = flag_envs.iter().filter(|(env, _)| variable.names.contains(env)).map(|(_, flag)| flag.as_str()).collect();
        let mut text = variable.doc.clone();
        if !flags.is_empty() {
            text.push_str(&format!(" Sets {}.", flags.join(", ")));
        }
        tagged(&mut roff, &names.join(", "), &text);
        listed.extend(variable.names);
    }
    for (env, flag) in flag_envs.iter().filter(|(env, _)| !listed.contains(env)) {
        tagged(&mut roff, env, &format!("Sets {flag}."));
    }
    roff_lines(&roff)
}

/// Commands the EXAMPLES section shows: what each does and its arguments after `s3cache`.
pub(crate) const EXAMPLES: &[(&str, &[&str])] = &[
    (
        "Restore the dependencies saved for this Cargo.lock, or else the newest saved for any (deps- prefix):",
        &[
            "restore",
            "--key",
            "deps-{{ hashFiles \"**/Cargo.lock\" }}",
            "--restore-key",
            "deps-",
            "--path",
            "target",
            "--path",
            "~/.cargo/registry",
        ],
    ),
    (
        "Save them after the build, under the key the template renders to (an existing entry is kept):",
        &["save", "--key", "deps-{{ hashFiles \"**/Cargo.lock\" }}", "--path", "target", "--path", "~/.cargo/registry"],
    ),
    ("Print the key a template renders to here:", &["key", "--template", "deps-{{ os }}-{{ hashFiles \"**/Cargo.lock\" }}"]),
    ("List the entries of every scope, newest first:", &["list", "--all-scopes"]),
    ("Show what pruning the store to 10 GiB would delete, then do it:", &["prune", "--max-size", "10GiB", "--dry-run"]),
    ("", &["prune", "--max-size", "10GiB"]),
    ("Delete entries nobody restored or saved for two weeks:", &["flush", "--older-than", "14d"]),
];

/// `word` as a POSIX shell reads it back: single-quoted unless it is plain.
pub(crate) fn shell_word(word: &str) -> String {
    if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./~=:,".contains(c)) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// `s3cache ARGS` as a shell line.
pub(crate) fn shell_line(args: &[&str]) -> String {
    std::iter::once("s3cache".to_owned()).chain(args.iter().map(|a| shell_word(a))).collect::<Vec<_>>().join(" ")
}

/// EXAMPLES: [`EXAMPLES`], each a shell line.
fn examples() -> String {
    let mut roff = roff::Roff::new();
    roff.control("SH", ["EXAMPLES"]);
    for (what, args) in EXAMPLES {
        if !what.is_empty() {
            roff.control("PP", []).text([roff::roman(*what)]);
        }
        roff.control("IP", []).text([roff::bold(shell_line(args))]);
    }
    roff_lines(&roff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(write: impl FnOnce(&mut Vec<u8>) -> Result<()>) -> String {
        let mut out = Vec::new();
        write(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// Completes `words` (the last one being typed) with the bash script, run by bash itself.
    fn bash_completes(script: &std::path::Path, words: &[&str]) -> Vec<String> {
        let line = format!(
            "source {}; COMP_WORDS=({}); COMP_CWORD={}; _s3cache s3cache '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display(),
            words.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" "),
            words.len() - 1,
            words[words.len() - 1],
            words[words.len() - 2],
        );
        let output = std::process::Command::new("bash").args(["--norc", "-c", &line]).output().expect("bash");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap().lines().filter(|l| !l.is_empty()).map(str::to_owned).collect()
    }

    /// The bash script names every subcommand, and bash completes commands and each command's flags
    /// with it.
    #[test]
    fn bash_completion_completes_commands_and_flags() {
        let script = text(|out| completions(clap_complete::Shell::Bash, out));
        for command in ["save", "restore", "key", "list", "usage", "has", "delete", "clear", "flush", "prune", "completions", "man"] {
            assert!(script.contains(&format!("s3cache,{command})")), "{command} missing");
        }
        assert!(!script.contains("s3cache,help)"), "the help subcommand is disabled");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s3cache.bash");
        std::fs::write(&file, &script).unwrap();
        assert_eq!(bash_completes(&file, &["s3cache", "re"]), ["restore"]);
        assert_eq!(bash_completes(&file, &["s3cache", "restore", "--fail-on-c"]), ["--fail-on-cache-miss"]);
        assert_eq!(bash_completes(&file, &["s3cache", "restore", "--fail-on"]), ["--fail-on-cache-miss", "--fail-on-error"]);
        assert_eq!(bash_completes(&file, &["s3cache", "save", "--no-pro"]), ["--no-progress"]);
        assert_eq!(bash_completes(&file, &["s3cache", "completions", "z"]), ["zsh"]);
    }

    /// zsh and fish get the flags' descriptions from the same definition.
    #[test]
    fn zsh_and_fish_completions_describe_flags() {
        let zsh = text(|out| completions(clap_complete::Shell::Zsh, out));
        assert!(zsh.starts_with("#compdef s3cache"), "{zsh}");
        assert!(zsh.contains("--lookup-only[Only check that an entry exists and is restorable; download nothing]"), "{zsh}");
        let fish = text(|out| completions(clap_complete::Shell::Fish, out));
        assert!(fish.contains("complete -c s3cache -n \"__fish_s3cache_using_subcommand save\" -l key"), "{fish}");
    }

    /// The main page lists the global flags with their variables and the commands as pages of their
    /// own; a command's page has its own flags and the global ones.
    #[test]
    fn man_pages_list_the_flags() {
        let page = text(|out| man_page(None, out));
        assert!(page.starts_with(".ie \\n(.g .ds Aq \\(aq"), "not roff: {page}");
        let version = env!("CARGO_PKG_VERSION");
        assert!(page.contains(&format!(".TH s3cache 1  \"s3cache {version}\"")), "{page}");
        for flag in ["\\-\\-store", "\\-\\-quiet", "\\-\\-no\\-progress", "\\-\\-concurrency", "\\-\\-guest\\-memory\\-mb"] {
            assert!(page.contains(flag), "{flag} missing");
        }
        assert!(page.contains("S3CACHE_STORE"), "the variables are listed");
        assert!(page.contains("s3cache\\-save(1)") && page.contains("s3cache\\-completions(1)"), "{page}");
        let save = text(|out| man_page(Some("save"), out));
        assert!(save.contains(&format!(".TH s3cache-save 1  \"s3cache {version}\"")), "{save}");
        assert!(save.contains("\\-\\-fail\\-on\\-error") && save.contains("\\-\\-store"), "{save}");
        assert!(!save.contains("EXIT STATUS"), "the extra sections are the main page's");
        let err = man_page(Some("bogus"), &mut Vec::new()).unwrap_err().to_string();
        assert!(err.starts_with("no man page for \"bogus\": the commands are save, restore, key,"), "{err}");
    }

    /// The main page's section `name`: from its `.SH` to the next.
    fn section<'a>(page: &'a str, name: &str) -> &'a str {
        let heading = if name.contains(' ') { format!("\"{name}\"") } else { name.to_owned() };
        let start = page.find(&format!(".SH {heading}\n")).unwrap_or_else(|| panic!("no {name} section:\n{page}"));
        let rest = &page[start + 1..];
        &rest[..rest.find("\n.SH ").map_or(rest.len(), |end| end + 1)]
    }

    /// EXIT STATUS lists 0, every exit-code constant of frontends/mod.rs with its doc, and the codes
    /// after SIGINT and SIGTERM, before VERSION; ENVIRONMENT every `S3CACHE_*` variable of the catalogue
    /// (env_vars.rs) and every variable a flag reads, with the flag; EXAMPLES real commands.
    #[test]
    fn man_page_has_exit_status_environment_and_examples() {
        use crate::frontends::{EXIT_CONFIG, EXIT_FAILED, EXIT_STORE};
        let page = text(|out| man_page(None, out));
        let order: Vec<usize> = [".SH SUBCOMMANDS", ".SH \"EXIT STATUS\"", ".SH ENVIRONMENT", ".SH EXAMPLES", ".SH VERSION"]
            .iter()
            .map(|s| page.find(s).unwrap_or_else(|| panic!("{s} missing:\n{page}")))
            .collect();
        assert!(order.is_sorted(), "{order:?}");

        let status = section(&page, "EXIT STATUS");
        let source = include_str!("../mod.rs");
        assert_eq!(source.matches("pub const EXIT_").count(), 3, "a new exit code: list it below");
        for (code, doc) in [
            (0, "Success: saved, restored, or a cache miss"),
            (EXIT_FAILED, "Exit code for a miss with \\-\\-fail\\-on\\-cache\\-miss"),
            (EXIT_CONFIG, "Exit code for a usage or configuration error."),
            (EXIT_STORE, "Exit code for an admin verb whose store requests failed."),
            (130, "Interrupted by SIGINT"),
            (143, "Interrupted by SIGTERM"),
        ] {
            assert!(status.contains(&format!(".TP\n\\fB{code}\\fR\n{doc}")), "{code} {doc}:\n{status}");
        }

        let environment = section(&page, "ENVIRONMENT");
        // The catalogue is the one place that names a variable (env_vars.rs's rule): every
        // "S3CACHE_..." literal in it, found without the parser the page uses.
        let catalogue = include_str!("../../env_vars.rs");
        let mut named = std::collections::BTreeSet::new();
        for (at, _) in catalogue.match_indices("\"S3CACHE_") {
            let name: String =
                catalogue[at + 1..].chars().take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_').collect();
            named.insert(name);
        }
        // Development only: read by the `generated` test (#[cfg(test)]).
        named.remove(crate::env_vars::S3CACHE_BLESS);
        assert!(named.len() >= 30 && named.contains("S3CACHE_SEMAPHORE_COMPATIBLE"), "{named:?}");
        for name in &named {
            let tag = format!(".TP\n\\fB{}", name);
            assert!(environment.contains(&tag), "{name} missing from ENVIRONMENT:\n{environment}");
        }
        assert!(!environment.contains("S3CACHE_BLESS"));
        let flags = command_definition_envs();
        assert!(flags.len() >= 20, "{flags:?}");
        for (env, flag) in &flags {
            assert!(environment.contains(&format!("\\fB{env}")), "{env} missing");
            assert!(environment.contains(&flag.replace('-', "\\-")), "{flag} of {env} missing");
        }
        assert!(
            environment.contains(
                ".TP\n\\fBS3CACHE_STORE\\fR\nThe store URL: s3://bucket/prefix or file:///dir. Default: a file:// store in the user cache dir. Sets \\-\\-store."
            ),
            "{environment}"
        );
        assert!(environment.contains(".TP\n\\fBGITHUB_OUTPUT, GITHUB_STATE, GITHUB_STEP_SUMMARY\\fR\n"), "{environment}");
        assert!(environment.contains(".TP\n\\fBINPUT_*\\fR\n"), "{environment}");
        assert!(environment.contains(".TP\n\\fBS3CACHE_VELA_DIR\\fR\n(s3cache plugins) Stands in for /vela"), "{environment}");

        let examples = section(&page, "EXAMPLES");
        assert!(examples.contains("\\fBs3cache save \\-\\-key \\*(Aqdeps\\-{{ hashFiles \"**/Cargo.lock\" }}\\*(Aq"), "{examples}");
        assert!(examples.contains("\\fBs3cache prune \\-\\-max\\-size 10GiB \\-\\-dry\\-run\\fR"), "{examples}");
        for (_, args) in EXAMPLES {
            let parsed = <crate::frontends::cli::Cli as clap::Parser>::try_parse_from(std::iter::once(&"s3cache").chain(args.iter()));
            assert!(parsed.is_ok(), "{args:?}: {}", parsed.unwrap_err());
        }
    }
}
