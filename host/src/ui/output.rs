//! What the user sees: the line renderer of the CLI and the dialects ([`Lines`]), which turns an
//! operation's events ([`crate::report::Event`]) into warnings and notices on stderr (stdout
//! for the Semaphore dialect) or GitHub's workflow commands. Quiet mode, GitHub mode and stdout are
//! properties of one renderer, not of the process. Text that came from outside (archive member names,
//! server messages, guest logs) is escaped so it cannot inject terminal escapes or CI workflow commands.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::report::{Event, Report, Reporter};
pub use crate::report::{escape, escape_lines};

/// The output of one run of the CLI or a dialect: its line renderer, whose choices (quiet, stdout,
/// GitHub) the front end sets as it learns them, and the reporter that feeds it, which holds the run's
/// secrets. It dereferences to the reporter.
#[derive(Debug, Clone)]
pub struct Terminal {
    /// The renderer.
    pub lines: Arc<Lines>,
    /// The reporter that the run's operations and the front end report to.
    pub reporter: Reporter,
}

impl Terminal {
    /// Lines on stderr, notices shown, no secrets yet.
    pub fn new() -> Self {
        let lines = Arc::new(Lines::default());
        Self { reporter: Reporter::to(lines.clone()), lines }
    }
}

impl std::ops::Deref for Terminal {
    type Target = Reporter;

    fn deref(&self) -> &Reporter {
        &self.reporter
    }
}

/// Renders events as the lines the CLI prints: `warning: ...` (`::warning::...` on GitHub Actions) and
/// notices, retries among them (none when quiet), on stderr, or on stdout for a dialect whose tool writes everything there.
#[derive(Debug, Default)]
pub struct Lines {
    quiet: AtomicBool,
    no_progress: AtomicBool,
    stdout: AtomicBool,
    github: AtomicBool,
}

impl Lines {
    /// Prints no notices from now on (`--quiet`); warnings and errors still show.
    pub fn set_quiet(&self, quiet: bool) {
        self.quiet.store(quiet, Ordering::Relaxed);
    }

    /// Draws no progress bars from now on (`--no-progress`, `--quiet`), terminal or not.
    pub fn hide_progress(&self) {
        self.no_progress.store(true, Ordering::Relaxed);
    }

    /// Prints warnings and notices on stdout from now on, for a dialect whose tool writes everything
    /// there (Semaphore's `cache` CLI).
    pub fn use_stdout(&self) {
        self.stdout.store(true, Ordering::Relaxed);
    }

    /// Turns on GitHub Actions workflow commands (annotations, `::add-mask::`) from now on.
    pub fn enable_github_actions(&self) {
        self.github.store(true, Ordering::Relaxed);
    }

    /// Whether GitHub Actions workflow commands are on ([`Lines::enable_github_actions`]).
    pub fn on_github_actions(&self) -> bool {
        self.github.load(Ordering::Relaxed)
    }

    fn emit(&self, line: String) {
        if self.stdout.load(Ordering::Relaxed) {
            print_stdout(&format!("{line}\n"));
        } else {
            eprintln!("{line}");
        }
    }

    fn warning(&self, text: String) {
        self.emit(if self.on_github_actions() { format!("::warning::{text}") } else { format!("warning: {text}") });
    }

    fn error(&self, text: String) {
        self.emit(if self.on_github_actions() { format!("::error::{text}") } else { format!("error: {text}") });
    }

    fn notice(&self, text: String) {
        if !self.quiet.load(Ordering::Relaxed) {
            self.emit(text);
        }
    }

    /// Starts a collapsible group of log lines on GitHub Actions (`::group::`); nothing elsewhere.
    /// `title` is printed as it is: escape and scrub it first.
    pub fn group(&self, title: &str) {
        if self.on_github_actions() {
            eprintln!("::group::{title}");
        }
    }

    /// Ends the group [`Lines::group`] started.
    pub fn end_group(&self) {
        if self.on_github_actions() {
            eprintln!("::endgroup::");
        }
    }
}

impl Report for Lines {
    fn event(&self, event: Event) {
        match event {
            Event::Notice(text) => self.notice(text),
            Event::Warning(text) => self.warning(text),
            Event::Error(text) => self.error(text),
            // GitHub's restores always give their paths: there it is a plain line, not an annotation.
            Event::Caveat(text) if self.on_github_actions() => self.notice(text),
            Event::Caveat(text) => self.warning(text),
            Event::Retry { operation, attempt, attempts, reason } => self.notice(retry_line(operation, attempt, attempts, &reason)),
            Event::RequestSent { .. } => {}
        }
    }

    /// On GitHub Actions, masks the secret in the job log before anything else can print it.
    fn shows_progress(&self) -> bool {
        !self.no_progress.load(Ordering::Relaxed)
    }

    fn secret_added(&self, secret: &str) {
        if self.on_github_actions() && !secret.contains(['\n', '\r']) {
            print_stdout(&format!("::add-mask::{secret}\n"));
        }
    }
}

impl Reporter {
    /// A reporter that prints as the CLI does outside CI: notices and warnings on stderr.
    pub fn stderr() -> Self {
        Self::new(Lines::default())
    }
}

/// The notice of a retry: `retrying GetObject (attempt 2 of 3): no answer within 20 s
/// (--stall-timeout-secs)`, after attempt `failed` of `attempts` failed with `reason`.
fn retry_line(operation: &str, failed: u32, attempts: u32, reason: &str) -> String {
    format!("retrying {operation} (attempt {} of {attempts}): {reason}", failed + 1)
}

/// A size for people, in IEC units as everything s3cache prints: `1.2 MiB`, `512 B`.
pub fn size(bytes: u64) -> String {
    bytesize::ByteSize::b(bytes).display().iec().to_string()
}

/// `bytes` moved in `elapsed`, for people: `12.5 MiB/s`.
pub fn rate(bytes: u64, elapsed: std::time::Duration) -> String {
    let per_second = (bytes as f64 / elapsed.as_secs_f64().max(1e-3)).round() as u64;
    format!("{}/s", size(per_second))
}

/// `count` with its noun in the right number: `1 entry`, `2 entries`, `0 entries`.
pub fn counted(count: u64, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

/// Writes `text` to stdout and flushes it. A reader that went away (`s3cache list --json | head -1`)
/// is not an error: what it did not read is dropped without a word, and the command ends with its
/// own exit status. Any other failure to write is one `error:` line on stderr.
pub fn print_stdout(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(err) => eprintln!("error: could not write to stdout: {err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A retry is one notice line: the operation, the attempt about to be made and the reason.
    #[test]
    fn retries_are_one_line() {
        let reason = "no answer within 20 s (--stall-timeout-secs)";
        assert_eq!(
            retry_line("GetObject", 1, 3, reason),
            "retrying GetObject (attempt 2 of 3): no answer within 20 s (--stall-timeout-secs)"
        );
    }

    /// Sizes and rates in IEC units; nouns agree with their count.
    #[test]
    fn units_and_plurals() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(1_288_490), "1.2 MiB");
        assert_eq!(rate(10 << 20, std::time::Duration::from_secs(4)), "2.5 MiB/s");
        assert_eq!(rate(0, std::time::Duration::ZERO), "0 B/s");
        assert_eq!((counted(0, "entry", "entries"), counted(1, "entry", "entries")), ("0 entries".into(), "1 entry".into()));
    }

    /// `--quiet` and `--no-progress` hide the bars of the operations that report to these lines, and
    /// only theirs: another operation's renderer still shows them.
    #[test]
    fn progress_is_the_renderers_choice() {
        let (cli, other) = (Terminal::new(), Terminal::new());
        assert!(cli.reporter.shows_progress() && other.reporter.shows_progress());
        cli.lines.hide_progress();
        assert!(!cli.reporter.shows_progress(), "hidden for the operation whose renderer hides them");
        assert!(other.reporter.shows_progress(), "not a process-wide switch");
    }
}
