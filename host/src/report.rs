//! What an operation reports instead of printing: notices, warnings, S3 requests and retries, as
//! [`Event`]s sent to the [`Report`] its caller supplied. A [`Reporter`] travels with the operation
//! (in its [`crate::CacheContext`], beside the cancellation token) and owns what is per operation: the
//! secret values scrubbed from every event's text and the count of requests sent. Nothing is global,
//! so one process can run many operations, each with its own reporter, without mixing them.
//!
//! The CLI's renderer (`crate::ui::output::Lines`) turns the events into the lines it prints; an
//! embedder collects them, logs them, or drops them ([`Reporter::silent`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Something an operation reports. Texts are escaped (control characters shown, not obeyed) and the
/// operation's secrets are scrubbed from them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Progress and results: what the CLI prints unless `--quiet`.
    Notice(String),
    /// Something the user should look at (a file skipped, a setting overridden); not a failure.
    Warning(String),
    /// What makes the command fail (its exit code says so): a save or restore failure that
    /// `--fail-on-error` turns into one, a store failure of an admin verb.
    Error(String),
    /// A warning about the entry being saved rather than about the run (its paths include what a
    /// restore without paths refuses): the CLI prints it as a warning, and on GitHub Actions, whose
    /// restores always give their paths, as a plain line instead of an annotation.
    Caveat(String),
    /// A request was sent to S3 (retries included).
    RequestSent {
        /// The S3 operation (`GetObject`, `PutObject`, ...).
        operation: &'static str,
    },
    /// A failed S3 request is tried again after a backoff.
    Retry {
        /// The S3 operation.
        operation: &'static str,
        /// The attempt that failed (1 for the first); the next one is `attempt + 1`.
        attempt: u32,
        /// Attempts in all, the first included (`--max-attempts`).
        attempts: u32,
        /// Why it failed.
        reason: String,
    },
}

/// Where an operation's [`Event`]s go. Implemented for closures (`|event| ...`).
pub trait Report: Send + Sync {
    /// Receives one event; called from the operation's threads, in the order things happen on each.
    fn event(&self, event: Event);

    /// A secret value was added to the operation's reporter ([`Reporter::add_secret`]); from now on it
    /// is scrubbed from every event. A renderer may mask it elsewhere too (GitHub's `::add-mask::`).
    fn secret_added(&self, _secret: &str) {}

    /// Whether the operation may draw progress bars for its transfers (on stderr, and only when stderr
    /// is a terminal whose `TERM` is set and not `dumb`). Yes unless the renderer says otherwise (the
    /// CLI's `--quiet` and `--no-progress`).
    fn shows_progress(&self) -> bool {
        true
    }
}

impl<F: Fn(Event) + Send + Sync> Report for F {
    fn event(&self, event: Event) {
        self(event)
    }
}

/// Secret values to scrub from text.
#[derive(Debug, Default)]
pub struct Secrets(Mutex<Vec<String>>);

impl Secrets {
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

/// An operation's reporting: where its events go, the secrets scrubbed from them and its request
/// count. Clones share all three; give each operation a new one to keep them apart.
#[derive(Clone)]
pub struct Reporter {
    sink: Arc<dyn Report>,
    secrets: Arc<Secrets>,
    requests: Arc<AtomicU64>,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter").field("requests", &self.requests_sent()).finish_non_exhaustive()
    }
}

impl Reporter {
    /// A reporter that sends events to `sink`, with no secrets yet and no requests counted.
    pub fn new(sink: impl Report + 'static) -> Self {
        Self::to(Arc::new(sink))
    }

    /// [`Reporter::new`] for a sink that is shared already.
    pub fn to(sink: Arc<dyn Report>) -> Self {
        Self { sink, secrets: Arc::default(), requests: Arc::default() }
    }

    /// A reporter that drops every event (it still counts requests and scrubs secrets).
    pub fn silent() -> Self {
        Self::new(|_: Event| {})
    }

    /// Adds a secret value: it is replaced by `***` in every event from now on, and the sink is told
    /// ([`Report::secret_added`]). Values under 4 bytes are too short to scrub and are ignored.
    pub fn add_secret(&self, secret: &str) {
        if self.secrets.add(secret) {
            self.sink.secret_added(secret);
        }
    }

    /// `text` with this operation's secret values replaced by `***`.
    pub fn scrub(&self, text: &str) -> String {
        self.secrets.scrub(text)
    }

    /// Whether the operation may draw progress bars ([`Report::shows_progress`] of its sink).
    pub fn shows_progress(&self) -> bool {
        self.sink.shows_progress()
    }

    /// Requests sent to S3 by this reporter's operations so far, retries included.
    pub fn requests_sent(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Reports a notice.
    pub fn notice(&self, message: &str) {
        self.sink.event(Event::Notice(self.clean(message)));
    }

    /// Reports a warning.
    pub fn warning(&self, message: &str) {
        self.sink.event(Event::Warning(self.clean(message)));
    }

    /// Reports an [`Event::Error`]: what makes the command fail.
    pub fn error(&self, message: &str) {
        self.sink.event(Event::Error(self.clean(message)));
    }

    /// Reports a [`Event::Caveat`].
    pub(crate) fn caveat(&self, message: &str) {
        self.sink.event(Event::Caveat(self.clean(message)));
    }

    /// Counts a request and reports it.
    pub(crate) fn request_sent(&self, operation: &'static str) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.sink.event(Event::RequestSent { operation });
    }

    /// Reports a retry: `attempt` of `attempts` failed because of `reason`.
    pub(crate) fn retry(&self, operation: &'static str, attempt: u32, attempts: u32, reason: &str) {
        self.sink.event(Event::Retry { operation, attempt, attempts, reason: self.clean(reason) });
    }

    fn clean(&self, text: &str) -> String {
        self.scrub(&escape(text))
    }
}

impl Default for Reporter {
    /// [`Reporter::stderr`].
    fn default() -> Self {
        Self::stderr()
    }
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

/// [`escape`] for a message of several lines (a template error with its excerpt, `  1:5 | npm-{{ os`):
/// each line is escaped, and a line break is kept only before a line indented by two spaces whose text
/// does not start a CI workflow command (`::`, `##[`); any other is shown as `\n`. So a message's own
/// layout prints as lines, while text from outside still cannot start a line of its own.
pub fn escape_lines(text: &str) -> String {
    let mut lines = text.split('\n');
    let mut escaped = escape(lines.next().unwrap_or_default());
    for line in lines {
        let trimmed = line.trim_start();
        let continuation = line.starts_with("  ") && !trimmed.starts_with("::") && !trimmed.starts_with("##[");
        escaped.push_str(if continuation { "\n" } else { "\\n" });
        escaped.push_str(&escape(line));
    }
    escaped
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

    /// Indented continuation lines stay lines; a break before anything else, or before a workflow
    /// command however indented, is shown as `\n`.
    #[test]
    fn keeps_indented_lines() {
        assert_eq!(escape_lines("bad\n  1:2 | {{\n      | ^\r"), "bad\n  1:2 | {{\n      | ^\\r");
        assert_eq!(escape_lines("bad\n::warning::x\n   ::error::y\n  ##[error]z"), "bad\\n::warning::x\\n   ::error::y\\n  ##[error]z");
    }

    /// Registered secrets never survive into reported text; values too short to scrub safely are not
    /// kept. Each reporter has its own.
    #[test]
    fn scrubs_secrets() {
        let secrets = Secrets::default();
        assert_eq!(secrets.scrub("key=s3cr3t-value!"), "key=s3cr3t-value!");
        assert!(secrets.add("s3cr3t-value"));
        assert!(!secrets.add("abc"));
        assert_eq!(secrets.scrub("key=s3cr3t-value! abc"), "key=***! abc");
        assert!(secrets.add("other-token"));
        assert_eq!(secrets.scrub("s3cr3t-value other-token"), "*** ***");
    }

    /// Two reporters keep their events, secrets and request counts apart.
    #[test]
    fn reporters_do_not_mix() {
        let seen = |log: &Arc<Mutex<Vec<Event>>>| {
            let log = log.clone();
            Reporter::new(move |event| log.lock().unwrap().push(event))
        };
        let (first_log, second_log) = (Arc::default(), Arc::default());
        let (first, second) = (seen(&first_log), seen(&second_log));
        first.add_secret("first-secret");
        first.notice("using first-secret\n");
        second.notice("using first-secret");
        first.request_sent("GetObject");
        second.retry("PutObject", 1, 3, "HTTP 503");
        assert_eq!(*first_log.lock().unwrap(), [Event::Notice("using ***\\n".into()), Event::RequestSent { operation: "GetObject" }]);
        let second_events = vec![
            Event::Notice("using first-secret".into()),
            Event::Retry { operation: "PutObject", attempt: 1, attempts: 3, reason: "HTTP 503".into() },
        ];
        assert_eq!(*second_log.lock().unwrap(), second_events);
        assert_eq!((first.requests_sent(), second.requests_sent()), (1, 0));
    }
}
