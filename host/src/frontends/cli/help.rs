//! What `--help` shows. The settings are global flags (so `s3cache --store URL save ...` works), and
//! clap would list all of them in every command's help and at the top. Here each shared flag says
//! which commands it applies to ([`SHARED`]): a command's help shows its own flags first, then only
//! the shared ones that apply to it, under their headings; the top level shows the commands and the
//! output flags. A flag is hidden from help only, never refused: `restore --acl x` parses as before.

use clap::{Command, CommandFactory};

use crate::frontends::cli::{Cli, manual};

/// The commands that open a store.
const STORE_COMMANDS: &[&str] = &["save", "restore", "list", "usage", "has", "inspect", "delete", "clear", "flush", "prune"];
/// The commands that run the sandboxed guest.
const GUEST_COMMANDS: &[&str] = &["save", "restore", "key"];
/// The commands that transfer an archive.
const TRANSFER_COMMANDS: &[&str] = &["save", "restore"];
/// The commands that remove leftovers of interrupted saves, or list them.
const LEFTOVER_COMMANDS: &[&str] = &["usage", "clear", "flush", "prune"];
/// The commands that show a shared flag everywhere.
const EVERY_COMMAND: &[&str] = &[];
/// The shared flags the top-level help shows; the rest are in the help of the commands they apply to.
const TOP_LEVEL: &[&str] = &["store", "verbose", "quiet"];

/// Each shared (global) flag by its id, its help heading, and the commands whose help shows it
/// ([`EVERY_COMMAND`]: all of them). A unit test fails when a global flag is missing here.
pub(crate) const SHARED: &[(&str, &str, &[&str])] = &[
    ("verbose", OUTPUT, EVERY_COMMAND),
    ("quiet", OUTPUT, EVERY_COMMAND),
    ("no_progress", OUTPUT, TRANSFER_COMMANDS),
    ("summary_json", OUTPUT, TRANSFER_COMMANDS),
    ("store", STORE, STORE_COMMANDS),
    ("endpoint", STORE, STORE_COMMANDS),
    ("region", STORE, STORE_COMMANDS),
    ("path_style", STORE, STORE_COMMANDS),
    ("dualstack", STORE, STORE_COMMANDS),
    ("accelerate", STORE, STORE_COMMANDS),
    ("anonymous", STORE, STORE_COMMANDS),
    ("profile", STORE, STORE_COMMANDS),
    ("scope", SCOPES, &["save", "restore", "list", "has", "inspect", "delete", "clear"]),
    ("allow_untrusted_save", SCOPES, &["save"]),
    ("part_size_mb", TRANSFER, TRANSFER_COMMANDS),
    ("concurrency", TRANSFER, TRANSFER_COMMANDS),
    ("max_attempts", TRANSFER, STORE_COMMANDS),
    ("retry_base_ms", TRANSFER, STORE_COMMANDS),
    ("connect_timeout_secs", TRANSFER, STORE_COMMANDS),
    ("stall_timeout_secs", TRANSFER, STORE_COMMANDS),
    ("min_throughput_kbps", TRANSFER, TRANSFER_COMMANDS),
    ("deadline_secs", TRANSFER, STORE_COMMANDS),
    ("clock_offset_secs", TRANSFER, STORE_COMMANDS),
    ("acl", PUBLISHING, &["save"]),
    ("sse", PUBLISHING, &["save"]),
    ("sse_kms_key_id", PUBLISHING, &["save"]),
    ("storage_class", PUBLISHING, &["save"]),
    ("tags", PUBLISHING, &["save"]),
    ("metadata", PUBLISHING, &["save"]),
    ("max_unpacked_mb", LIMITS, &["restore"]),
    ("max_entries", LIMITS, &["restore"]),
    ("guest_memory_mb", LIMITS, GUEST_COMMANDS),
    ("guest_timeout_ms", LIMITS, GUEST_COMMANDS),
    ("signing_key", SIGNING, &["save"]),
    ("trusted_keys", SIGNING, &["save", "restore", "inspect"]),
    ("store_namespace", SIGNING, &["save", "restore", "inspect"]),
    ("touch_interval", STORE, &["restore"]),
    ("leftover_age", STORE, LEFTOVER_COMMANDS),
];

const OUTPUT: &str = "Output";
const STORE: &str = "Store";
const SCOPES: &str = "Scopes (branch isolation)";
const TRANSFER: &str = "Transfer";
const PUBLISHING: &str = "Publishing (new objects)";
const LIMITS: &str = "Limits (the sandbox)";
const SIGNING: &str = "Signed entries";

/// The command line's definition with its help arranged as the module says, and examples after the
/// top-level help and after the help of each command that has some. Parsing is unchanged.
pub(crate) fn arranged() -> Command {
    let mut command = Cli::command();
    // Before clap propagates the global flags into the subcommands (it does so when it builds the
    // command), each subcommand gets its own copy with the heading and visibility that fit it; clap
    // propagates only the flags a subcommand does not define already. The copy is still global, so
    // its value is shared with the top level as before.
    for &(id, heading, commands) in SHARED {
        let shared = command.get_arguments().find(|arg| arg.get_id() == id).cloned();
        let Some(shared) = shared else { continue };
        let names: Vec<String> = command.get_subcommands().map(|sub| sub.get_name().to_owned()).collect();
        for name in names {
            let applies = commands.is_empty() || commands.contains(&name.as_str());
            let copy = shared.clone().help_heading(heading).hide(!applies);
            command = command.mut_subcommand(name, |sub| sub.arg(copy));
        }
        command = command.mut_arg(id, |arg| arg.help_heading(heading).hide(!TOP_LEVEL.contains(&id)));
    }
    let names: Vec<String> = command.get_subcommands().map(|sub| sub.get_name().to_owned()).collect();
    for name in names {
        let examples = examples(|args| args.first() == Some(&name.as_str()));
        if !examples.is_empty() {
            command = command.mut_subcommand(name, |sub| {
                // After what the command says there already (`key` lists its helpers and variables).
                let before = sub.get_after_help().map(|text| format!("{text}\n\n")).unwrap_or_default();
                sub.after_help(format!("{before}Examples:\n{examples}"))
            });
        }
    }
    let footer = "Each command's --help shows the options that apply to it; `s3cache man | man -l -` is the manual.";
    command.after_help(format!("{footer}\n\nExamples:\n{}", examples(|_| true)))
}

/// The examples of [`manual::EXAMPLES`] whose arguments `select` takes, as indented shell lines, each
/// under its description. Lines are broken here, under clap's width, so that a long command goes on
/// with a `\` (and still pastes into a shell) and a long description stays a comment.
fn examples(select: impl Fn(&[&str]) -> bool) -> String {
    let mut text = String::new();
    for (what, args) in manual::EXAMPLES.iter().filter(|(_, args)| select(args)) {
        if !what.is_empty() {
            text.push_str(&broken(what.split(' '), "  # ", "  # ", ""));
        }
        text.push_str(&broken(command_words(args), "  ", "      ", " \\"));
    }
    text
}

/// `s3cache ARGS` as shell words, a flag and its value kept as one word so that no line ends between
/// them.
fn command_words(args: &[&str]) -> Vec<String> {
    let mut words = vec!["s3cache".to_owned()];
    let mut args = args.iter().peekable();
    while let Some(arg) = args.next() {
        let mut word = manual::shell_word(arg);
        if arg.starts_with("--") && args.peek().is_some_and(|value| !value.starts_with('-')) {
            word = format!("{word} {}", manual::shell_word(args.next().expect("peeked")));
        }
        words.push(word);
    }
    words
}

/// Help lines are at most this wide (clap wraps wider ones, at 100 columns).
const HELP_WIDTH: usize = 96;

/// `words` joined by spaces into lines of at most [`HELP_WIDTH`] columns: the first starts with
/// `first`, the others with `then`, and every line but the last ends with `carry_on`.
fn broken<W: AsRef<str>>(words: impl IntoIterator<Item = W>, first: &str, then: &str, carry_on: &str) -> String {
    let mut lines = vec![first.to_owned()];
    let mut empty = true;
    for word in words {
        let word = word.as_ref();
        let line = lines.last_mut().expect("there is always a line");
        if empty {
            line.push_str(word);
        } else if line.len() + 1 + word.len() + carry_on.len() > HELP_WIDTH {
            lines.push(format!("{then}{word}"));
        } else {
            line.push(' ');
            line.push_str(word);
        }
        empty = false;
    }
    lines.join(&format!("{carry_on}\n")) + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every global flag of the definition has a row in SHARED, and every row names a real flag and
    /// real commands.
    #[test]
    fn long_examples_are_broken_to_paste() {
        let key = "k".repeat(60);
        let words = command_words(&["restore", "--key", &key, "--path", "target", "--path", "~/.cargo/registry"]);
        assert_eq!(
            broken(words, "  ", "      ", " \\"),
            format!("  s3cache restore --key {key} \\\n      --path target --path ~/.cargo/registry\n")
        );
        assert_eq!(broken(["a", "b"], "  # ", "  # ", ""), "  # a b\n");
    }

    #[test]
    fn every_shared_flag_is_placed() {
        let command = manual::definition();
        let globals: Vec<String> = command.get_arguments().filter(|a| a.is_global_set()).map(|a| a.get_id().to_string()).collect();
        let placed: Vec<String> = SHARED.iter().map(|(id, _, _)| id.to_string()).collect();
        let mut missing: Vec<&String> = globals.iter().filter(|id| !placed.contains(id)).collect();
        missing.sort();
        assert!(missing.is_empty(), "global flags without a row in help::SHARED: {missing:?}");
        let names: Vec<&str> = command.get_subcommands().map(|s| s.get_name()).collect();
        for (id, _, commands) in SHARED {
            assert!(globals.iter().any(|g| g == id), "{id} is not a global flag");
            assert!(commands.iter().all(|c| names.contains(c)), "{id}: {commands:?} names an unknown command");
        }
    }
}
