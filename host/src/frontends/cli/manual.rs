//! What the command line says about itself for a shell and for `man`: completion scripts
//! (`s3cache completions SHELL`, clap_complete) and man pages (`s3cache man [COMMAND]`, clap_mangen),
//! both generated from the same clap definition as `--help`, so they cannot drift from the flags.

use std::io::Write;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::frontends::cli::Cli;

/// The command line's definition, built (globals propagated to every subcommand), without the
/// `help` subcommand (every command has `--help`).
fn definition() -> clap::Command {
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
    clap_mangen::Man::new(page).source(source).render(out).context("writing the man page")
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
        let err = man_page(Some("bogus"), &mut Vec::new()).unwrap_err().to_string();
        assert!(err.starts_with("no man page for \"bogus\": the commands are save, restore, key,"), "{err}");
    }
}
