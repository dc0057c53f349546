//! What the user sees: warnings and notices on stderr, with text that came from outside (archive
//! member names, server messages, guest logs) escaped so it cannot inject terminal escapes or CI
//! workflow commands, and with every registered secret value scrubbed.

use std::sync::Mutex;

/// Secret values to scrub from text: the process keeps one ([`register_secret`], [`scrub`]).
#[derive(Debug, Default)]
pub struct Secrets(Mutex<Vec<String>>);

impl Secrets {
    pub const fn new() -> Self {
        Self(Mutex::new(Vec::new()))
    }

    /// Adds a secret; returns false for values too short to scrub (under 4 bytes), which are not kept.
    pub fn add(&self, secret: &str) -> bool {
        if secret.len() < 4 {
            return false;
        }
        self.0.lock().expect("secrets lock").push(secret.to_owned());
        true
    }

    /// Replaces every secret value in `text` with `***`.
    pub fn scrub(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in self.0.lock().expect("secrets lock").iter() {
            text = text.replace(secret.as_str(), "***");
        }
        text
    }
}

static SECRETS: Secrets = Secrets::new();
static GITHUB_ACTIONS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static STDOUT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Prints no notices from now on (`--quiet`); warnings and errors still show.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, std::sync::atomic::Ordering::Relaxed);
}

/// Prints warnings and notices on stdout from now on, for a dialect whose tool writes everything
/// there (Semaphore's `cache` CLI).
pub fn use_stdout() {
    STDOUT.store(true, std::sync::atomic::Ordering::Relaxed);
}

fn emit(line: String) {
    if STDOUT.load(std::sync::atomic::Ordering::Relaxed) {
        println!("{line}");
    } else {
        eprintln!("{line}");
    }
}

/// Turns on GitHub Actions workflow commands (`::add-mask::`) for what is printed from now on.
pub fn enable_github_actions() {
    GITHUB_ACTIONS.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Whether GitHub Actions workflow commands are on ([`enable_github_actions`]).
pub fn on_github_actions() -> bool {
    GITHUB_ACTIONS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Registers a secret value; it is replaced by `***` in everything printed from now on. On GitHub
/// Actions it is also masked in the job log with `::add-mask::`, before anything else can print it.
pub fn register_secret(secret: &str) {
    if SECRETS.add(secret) && GITHUB_ACTIONS.load(std::sync::atomic::Ordering::Relaxed) && !secret.contains(['\n', '\r']) {
        println!("::add-mask::{secret}");
    }
}

/// Replaces registered secret values in `text` with `***`.
pub fn scrub(text: &str) -> String {
    SECRETS.scrub(text)
}

/// Escapes control characters (newlines, carriage returns, ANSI escapes) as `\n`, `\u{1b}`, ...
/// Printable text, non-ASCII included, is kept.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    escaped
}

/// Prints a warning (on stderr, unless [`use_stdout`]); on GitHub Actions as a `::warning::` annotation.
pub fn warning(message: &str) {
    if GITHUB_ACTIONS.load(std::sync::atomic::Ordering::Relaxed) {
        emit(format!("::warning::{}", scrub(&escape(message))));
    } else {
        emit(format!("warning: {}", scrub(&escape(message))));
    }
}

/// Starts a collapsible group of log lines on GitHub Actions (`::group::`); nothing elsewhere.
pub fn group(title: &str) {
    if GITHUB_ACTIONS.load(std::sync::atomic::Ordering::Relaxed) {
        eprintln!("::group::{}", scrub(&escape(title)));
    }
}

/// Ends the group [`group`] started.
pub fn end_group() {
    if GITHUB_ACTIONS.load(std::sync::atomic::Ordering::Relaxed) {
        eprintln!("::endgroup::");
    }
}

/// Prints a notice (progress, results), unless [`set_quiet`].
pub fn notice(message: &str) {
    if !QUIET.load(std::sync::atomic::Ordering::Relaxed) {
        emit(scrub(&escape(message)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Newlines and escapes are shown, not obeyed; printable Unicode stays.
    #[test]
    fn escapes_control_characters() {
        assert_eq!(escape("a\n::add-mask::x\r\u{1b}[31m"), "a\\n::add-mask::x\\r\\u{1b}[31m");
        assert_eq!(escape("über/日本"), "über/日本");
    }

    /// Registered secrets never survive into printed text; values too short to scrub safely are not
    /// kept. A registry of its own, so that no other test's secrets change what this one sees.
    #[test]
    fn scrubs_secrets() {
        let secrets = Secrets::new();
        assert_eq!(secrets.scrub("key=s3cr3t-value!"), "key=s3cr3t-value!");
        assert!(secrets.add("s3cr3t-value"));
        assert!(!secrets.add("abc"));
        assert_eq!(secrets.scrub("key=s3cr3t-value! abc"), "key=***! abc");
        assert!(secrets.add("other-token"));
        assert_eq!(secrets.scrub("s3cr3t-value other-token"), "*** ***");
    }
}
