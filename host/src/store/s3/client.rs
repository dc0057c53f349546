//! Sending S3 requests: signing, one `ureq` agent with connection reuse, error mapping and retries.
//!
//! Every answer with status ≥ 300, and every 200 whose body is an `<Error>` document, becomes an
//! [`S3Error`] whose kind says what a caller may do about it. Idempotent requests are retried by
//! [`RetryPolicy`] on transport failures, 5xx, 429 and throttling codes; never on other 4xx; each
//! retry is reported, with its reason, to the operation's reporter.
//!
//! No request waits in silence for longer than a person can predict from the settings
//! ([`TransportConfig`]): the connect timeout, then the stall timeout for the first byte of the answer
//! and for every gap between bytes, and the minimum throughput for a whole body; only
//! CompleteMultipartUpload gets a longer, fixed bound. A timeout's message names the one that fired
//! and its setting, in place of the HTTP library's words.

use std::io::Read;
use std::sync::Arc;

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime};
use ureq::RequestExt;

use super::key_pair::Credentials;
use super::request::{Bucket, PublishOptions, Request, complete_multipart_body};
use super::signing::{Payload, sign_request};
use super::xml::{self, ListedObject, ListedPart, ListedUpload};
use crate::report::Reporter;

/// What kind of failure an S3 call had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3ErrorKind {
    /// 404: no such key, upload or bucket.
    NotFound,
    /// 412 (or 409 on a conditional write): the key exists.
    PreconditionFailed,
    /// 401/403: wrong or missing credentials, or a policy forbids it.
    AccessDenied,
    /// Worth retrying: transport errors, timeouts, 5xx, throttling.
    Transient,
    /// Anything else (other 4xx, unreadable answers).
    Other,
}

/// A failed S3 call.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation}{} failed: {}{code}{}{message}", if resource.is_empty() { String::new() } else { format!(" of {resource}") }, status.map(|s| format!("HTTP {s} {}", reason(s))).unwrap_or_default(), if message.is_empty() || code.is_empty() { "" } else { ": " })]
pub struct S3Error {
    /// What kind of failure, which decides whether it is retried.
    pub kind: S3ErrorKind,
    /// The S3 operation that failed (`PutObject`, `GetObject`, ...).
    pub operation: &'static str,
    /// The HTTP status, when the server answered.
    pub status: Option<u16>,
    /// The S3 error code (`NoSuchKey`, `SignatureDoesNotMatch`, ...) or a transport error's name.
    pub code: String,
    /// The server's error message, or the transport error's text.
    pub message: String,
    /// The server's clock, from the answer's `Date` header, when it had one.
    pub server_date: Option<SystemTime>,
    /// What the request was about (`s3://bucket/key`, or the prefix of a listing); empty when the
    /// failure came before a request.
    pub resource: String,
}

impl S3Error {
    pub(crate) fn new(
        kind: S3ErrorKind,
        operation: &'static str,
        status: Option<u16>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self { kind, operation, status, code: code.into(), message: message.into(), server_date: None, resource: String::new() }
    }

    /// Whether the server refused the request because our clock is off: it says so, or (HEAD answers
    /// have no body to say it in) a 403 carries a `Date` more than five minutes from `signed_at`.
    pub fn is_clock_skew(&self, signed_at: SystemTime) -> bool {
        let Some(server) = self.server_date else { return false };
        let named = matches!(self.code.as_str(), "RequestTimeTooSkewed" | "RequestExpired" | "InvalidSignatureException");
        named || (self.status == Some(403) && self.code.is_empty() && seconds_ahead(server, signed_at).abs() > 300)
    }

    pub(crate) fn from_status(operation: &'static str, status: u16, document: xml::ErrorDocument) -> Self {
        const THROTTLING: &[&str] =
            &["SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestLimitExceeded", "InternalError"];
        let kind = match status {
            404 => S3ErrorKind::NotFound,
            412 => S3ErrorKind::PreconditionFailed,
            401 | 403 => S3ErrorKind::AccessDenied,
            429 | 500..=599 => S3ErrorKind::Transient,
            _ if THROTTLING.contains(&document.code.as_str()) => S3ErrorKind::Transient,
            _ => S3ErrorKind::Other,
        };
        Self::new(kind, operation, Some(status), document.code, document.message)
    }

    /// Why it failed, without the operation: the transport's words for a request that got no answer,
    /// else the status, code and message (`HTTP 503 (Service Unavailable) SlowDown: ...`).
    pub fn reason(&self) -> String {
        let text = self.to_string();
        match self.status {
            None if !self.message.is_empty() => self.message.clone(),
            _ => text.split_once(" failed: ").map_or(text.as_str(), |(_, reason)| reason).to_owned(),
        }
    }

    /// Whether trying again may succeed.
    pub fn retryable(&self) -> bool {
        self.kind == S3ErrorKind::Transient
    }
}

/// How many whole seconds `clock` is ahead of `reference` (negative when behind).
fn seconds_ahead(clock: SystemTime, reference: SystemTime) -> i64 {
    match clock.duration_since(reference) {
        Ok(ahead) => ahead.as_secs() as i64,
        Err(behind) => -(behind.duration().as_secs() as i64),
    }
}

/// The status's reason phrase, so that a bodiless answer (HEAD) still reads well.
fn reason(status: u16) -> String {
    let phrase = http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
    if phrase.is_empty() { String::new() } else { format!("({phrase}) ") }
}

/// The retry policy for idempotent requests: AWS "standard" mode in shape — a bounded number of
/// attempts with exponential backoff and full jitter.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in total, the first included.
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubles each time, up to `max_backoff`.
    pub base_backoff: Duration,
    /// The longest backoff, however many retries came before ([`RetryPolicy::MAX_BACKOFF`]).
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: Self::DEFAULT_MAX_ATTEMPTS, base_backoff: Self::DEFAULT_BASE_BACKOFF, max_backoff: Self::MAX_BACKOFF }
    }
}

impl RetryPolicy {
    /// Attempts per request by default, the first included (`--max-attempts`).
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
    /// Backoff before the first retry by default (`--retry-base-ms`).
    pub const DEFAULT_BASE_BACKOFF: Duration = Duration::from_millis(100);
    /// The cap on every backoff; not a setting.
    pub const MAX_BACKOFF: Duration = Duration::from_secs(20);

    /// The longest delay before attempt `attempt + 1`: `min(max, base * 2^(attempt-1))`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        self.base_backoff.saturating_mul(1 << attempt.saturating_sub(1).min(16)).min(self.max_backoff)
    }

    /// A delay drawn uniformly from `0..=ceiling(attempt)` (full jitter) before attempt `attempt + 1`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        self.ceiling(attempt).mul_f64(fastrand::f64())
    }
}

/// Network settings for the client. Two bounds a person can predict hold every request: the
/// connection must open within `connect_timeout`, and after that the server may stay silent for at
/// most `stall_timeout` at a time (before the first byte of its answer, and between any two bytes
/// read or written). `min_throughput` ends a body that trickles on without stalling, and
/// CompleteMultipartUpload waits [`TransportConfig::COMPLETE_TIMEOUT`] for its answer.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Longest wait for a TCP (and TLS) connection (`--connect-timeout-secs`).
    pub connect_timeout: Duration,
    /// Longest silence of the server (`--stall-timeout-secs`): the wait for the status line and
    /// headers of an answer, and the longest gap between bytes of a body, read or written. Every body
    /// also gets this on top of what `min_throughput` allows.
    pub stall_timeout: Duration,
    /// The slowest transfer tolerated: a part or range body that moves slower than this (a drip) is
    /// aborted and retried. Each body gets `size / min_throughput + stall_timeout`.
    pub min_throughput: u64,
    /// The whole operation's budget: no request starts, and no retry is made, after it runs out.
    pub deadline: Option<Duration>,
    /// Attempts and backoff of failed requests.
    pub retry: RetryPolicy,
    /// Seconds to add to the local clock when signing, for a machine whose clock is known to be off.
    /// The client also learns the offset from the server's `RequestTimeTooSkewed` answers.
    pub clock_offset_secs: i64,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            stall_timeout: Self::DEFAULT_STALL_TIMEOUT,
            min_throughput: Self::DEFAULT_MIN_THROUGHPUT,
            deadline: Some(Self::DEFAULT_DEADLINE),
            retry: RetryPolicy::default(),
            clock_offset_secs: 0,
        }
    }
}

/// The setting a timeout message names for [`TransportConfig::stall_timeout`].
const STALL_SETTING: &str = "--stall-timeout-secs";

impl TransportConfig {
    /// Connect timeout by default (`--connect-timeout-secs`).
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// The longest silence by default (`--stall-timeout-secs`).
    pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(20);
    /// The slowest accepted transfer by default, bytes per second (`--min-throughput-kbps` 256).
    pub const DEFAULT_MIN_THROUGHPUT: u64 = 256 << 10;
    /// A whole operation's budget by default (`--deadline-secs`).
    pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(20 * 60);
    /// How long CompleteMultipartUpload may stay silent (or `stall_timeout`, when that is longer); not a
    /// setting. Some servers (MinIO, Ceph, AWS for large objects) assemble the parts before they
    /// answer, which takes longer than any other request may stay silent.
    pub const COMPLETE_TIMEOUT: Duration = Duration::from_secs(120);

    /// The time a body of `bytes` may take before it counts as too slow.
    pub fn body_timeout(&self, bytes: u64) -> Duration {
        self.stall_timeout + self.at_min_throughput(bytes)
    }

    /// The time `bytes` take at the minimum throughput.
    fn at_min_throughput(&self, bytes: u64) -> Duration {
        Duration::from_secs_f64(bytes as f64 / self.min_throughput.max(1) as f64)
    }

    /// The bounds of a request whose request or answer body has `body_bytes` (none: no body bound).
    fn limits(&self, body_bytes: Option<u64>) -> Limits {
        Limits {
            silence: self.stall_timeout,
            silence_setting: STALL_SETTING,
            body: body_bytes.map(|bytes| self.body_timeout(bytes)),
            body_setting: "--min-throughput-kbps",
        }
    }

    /// The bounds of a CompleteMultipartUpload whose request and answer bodies have `body_bytes`:
    /// [`Self::COMPLETE_TIMEOUT`] of silence, unless `stall_timeout` is longer.
    fn complete_limits(&self, body_bytes: u64) -> Limits {
        let (silence, silence_setting) = if self.stall_timeout >= Self::COMPLETE_TIMEOUT {
            (self.stall_timeout, STALL_SETTING)
        } else {
            (Self::COMPLETE_TIMEOUT, "CompleteMultipartUpload's own bound")
        };
        Limits { silence, silence_setting, body: Some(silence + self.at_min_throughput(body_bytes)), ..self.limits(None) }
    }

    /// What a timeout that fired under `limits` means, naming the setting that bounds it.
    fn describe_timeout(&self, which: ureq::Timeout, limits: &Limits) -> String {
        let silence = (seconds(limits.silence), limits.silence_setting);
        match (which, limits.body) {
            (ureq::Timeout::Connect, _) => {
                format!("could not connect within {} (--connect-timeout-secs)", seconds(self.connect_timeout))
            }
            (ureq::Timeout::RecvResponse, _) => format!("no answer within {} ({})", silence.0, silence.1),
            (ureq::Timeout::PerRead, _) => format!("no data for {} ({})", silence.0, silence.1),
            (ureq::Timeout::PerWrite, _) => format!("the server took no data for {} ({})", silence.0, silence.1),
            (ureq::Timeout::RecvBody | ureq::Timeout::SendBody, Some(_)) if limits.body_setting == "--deadline-secs" => {
                "the operation's time budget ran out (--deadline-secs)".to_owned()
            }
            (ureq::Timeout::RecvBody | ureq::Timeout::SendBody, Some(body)) => format!(
                "the body took longer than {}, slower than {} KiB/s ({})",
                seconds(body),
                self.min_throughput >> 10,
                limits.body_setting
            ),
            (other, _) => format!("timeout: {other}"),
        }
    }
}

/// The bounds one request runs under and the settings they come from, so that a timeout can say
/// which one fired.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Limits {
    /// The wait for the answer's status line and headers, and the longest gap between bytes.
    silence: Duration,
    /// The setting `silence` comes from.
    silence_setting: &'static str,
    /// The bound on sending the request body and on receiving the answer's body; `None`: none.
    body: Option<Duration>,
    /// The setting `body` comes from: `--min-throughput-kbps`, or `--deadline-secs` when the
    /// operation's budget ends sooner.
    body_setting: &'static str,
}

impl Limits {
    /// These limits with the body bound cut to `budget_left`, the time the operation has left.
    fn within(self, budget_left: Option<Duration>) -> Self {
        match (self.body, budget_left) {
            (Some(body), Some(left)) if left < body => Self { body: Some(left), body_setting: "--deadline-secs", ..self },
            _ => self,
        }
    }
}

/// A duration for a message: `20 s`, `1.5 s`.
fn seconds(duration: Duration) -> String {
    if duration.subsec_millis() == 0 { format!("{} s", duration.as_secs()) } else { format!("{:.1} s", duration.as_secs_f64()) }
}

/// What HeadObject says about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHead {
    pub size: u64,
    /// `Last-Modified`; the epoch when the server sent none.
    pub modified: std::time::SystemTime,
    /// `x-amz-meta-*` headers, names without the prefix.
    pub metadata: Vec<(String, String)>,
}

/// An S3 client bound to one bucket.
#[derive(Debug, Clone)]
pub struct S3Client {
    bucket: Bucket,
    credentials: Option<Credentials>,
    agent: ureq::Agent,
    transport: TransportConfig,
    deadline: Option<Instant>,
    /// Seconds to add to the local clock when signing, learned from a RequestTimeTooSkewed answer.
    clock_offset: Arc<AtomicI64>,
    /// The operation that counts this client's requests and hears of its retries, if any.
    reporter: Option<Reporter>,
}

impl S3Client {
    /// A client for `bucket`. Without credentials, requests are sent unsigned (public buckets).
    pub fn new(bucket: Bucket, credentials: Option<Credentials>, transport: &TransportConfig) -> Self {
        let agent = super::connection::agent(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .timeout_connect(Some(transport.connect_timeout))
                .user_agent(concat!("s3cache/", env!("CARGO_PKG_VERSION")))
                .build(),
        );
        let deadline = transport.deadline.map(|d| Instant::now() + d);
        Self {
            bucket,
            credentials,
            agent,
            transport: transport.clone(),
            deadline,
            clock_offset: Arc::new(AtomicI64::new(transport.clock_offset_secs)),
            reporter: None,
        }
    }

    fn now(&self) -> SystemTime {
        let offset = self.clock_offset.load(Ordering::Relaxed);
        let now = SystemTime::now();
        if offset >= 0 { now + Duration::from_secs(offset as u64) } else { now - Duration::from_secs(offset.unsigned_abs()) }
    }

    fn out_of_time(&self, operation: &'static str) -> Option<S3Error> {
        let deadline = self.deadline?;
        (Instant::now() >= deadline)
            .then(|| S3Error::new(S3ErrorKind::Other, operation, None, "Deadline", "the operation's time budget ran out"))
    }

    /// The bucket this client talks to.
    pub fn bucket(&self) -> &Bucket {
        &self.bucket
    }

    /// This client (sharing its connections and learned clock offset), counting its requests and
    /// reporting its retries to `reporter`: one operation's.
    pub fn reporting_to(&self, reporter: &Reporter) -> Self {
        Self { reporter: Some(reporter.clone()), ..self.clone() }
    }

    /// Sends once: signs, sends, and turns error answers into [`S3Error`], all within `limits`
    /// ([`Self::limits_now`]).
    fn send_once(&self, request: &Request, body: &[u8], limits: &Limits) -> Result<http::Response<ureq::Body>, S3Error> {
        let payload = if self.bucket.endpoint.is_tls() { Payload::Unsigned } else { Payload::Signed(body) };
        let builder = self.signed_builder(request, payload)?;
        let transport = |e: ureq::Error| self.transport_error(request.operation, &e, limits);
        let invalid = |e: http::Error| S3Error::new(S3ErrorKind::Other, request.operation, None, "InvalidRequest", e.to_string());
        let silence = Some(limits.silence);
        let response = if body.is_empty() && matches!(request.method, "GET" | "HEAD" | "DELETE") {
            let request = builder.body(()).map_err(invalid)?;
            let config = request.with_agent(&self.agent).configure();
            let config = config.timeout_recv_response(silence).timeout_per_read(silence).timeout_per_write(silence);
            config.timeout_recv_body(limits.body).build().run().map_err(transport)?
        } else {
            let request = builder.body(body).map_err(invalid)?;
            let config = request.with_agent(&self.agent).configure();
            let config = config.timeout_recv_response(silence).timeout_per_read(silence).timeout_per_write(silence);
            config.timeout_send_body(limits.body).timeout_recv_body(limits.body).build().run().map_err(transport)?
        };
        self.refuse_error_status(request, response)
    }

    /// A request builder for `request`, with its headers and (with credentials) its signature over
    /// `payload`; counts the request as sent. Fails when the operation's budget has run out.
    fn signed_builder(&self, request: &Request, payload: Payload<'_>) -> Result<http::request::Builder, S3Error> {
        if let Some(err) = self.out_of_time(request.operation) {
            return Err(err);
        }
        if let Some(reporter) = &self.reporter {
            reporter.request_sent(request.operation);
        }
        let mut builder = http::Request::builder().method(request.method).uri(&request.url);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if let Some(credentials) = &self.credentials {
            let signed = sign_request(request, &self.bucket.authority(), payload, credentials, &self.bucket.region, self.now())
                .map_err(|e| S3Error::new(S3ErrorKind::Other, request.operation, None, "Signing", e))?;
            for (name, value) in signed {
                builder = builder.header(name, value);
            }
        }
        Ok(builder)
    }

    /// `response`, or the [`S3Error`] its status ≥ 300 and `<Error>` body say.
    fn refuse_error_status(
        &self,
        request: &Request,
        mut response: http::Response<ureq::Body>,
    ) -> Result<http::Response<ureq::Body>, S3Error> {
        let status = response.status().as_u16();
        if status >= 300 {
            let server_date = response.headers().get("date").and_then(|v| v.to_str().ok()).and_then(|v| httpdate::parse_http_date(v).ok());
            let text = if request.method == "HEAD" { String::new() } else { read_small_body(&mut response) };
            let document = xml::parse_error(&text).unwrap_or_default();
            let mut err = S3Error::from_status(request.operation, status, document);
            err.server_date = server_date;
            if err.code == "NoSuchBucket" {
                // The server's own words ("The specified bucket does not exist") name no bucket.
                err.message = format!(
                    "there is no bucket {:?} at {}; check the store URL (--store) and the endpoint (--endpoint)",
                    self.bucket.name, self.bucket.endpoint.authority
                );
            }
            return Err(err);
        }
        Ok(response)
    }

    /// `limits` with the body bound cut to what is left of the operation's budget: for one attempt.
    fn limits_now(&self, limits: Limits) -> Limits {
        limits.within(self.deadline.map(|d| d.saturating_duration_since(Instant::now())))
    }

    /// A request that could not be sent or read: transient (retried), except a TLS handshake that met a
    /// plain-HTTP server, which no retry mends and whose message says to use `http://`. A timeout says
    /// which of `limits` fired and the setting that bounds it.
    fn transport_error(&self, operation: &'static str, err: &ureq::Error, limits: &Limits) -> S3Error {
        if super::connection::answered_in_plain_http(err) {
            let message = super::connection::describe(err, &self.bucket.endpoint.authority);
            return S3Error::new(S3ErrorKind::Other, operation, None, "PlainHttpServer", message);
        }
        let message = match err {
            ureq::Error::Timeout(which) => self.transport.describe_timeout(*which, limits),
            other => super::connection::describe(other, &self.bucket.endpoint.authority),
        };
        S3Error::new(S3ErrorKind::Transient, operation, None, transport_code(err), message)
    }

    /// Adopts the server's clock after a skew error; true when the offset changed.
    fn correct_clock(&self, err: &S3Error) -> bool {
        let Some(server) = err.server_date else { return false };
        let offset = seconds_ahead(server, SystemTime::now());
        let previous = self.clock_offset.swap(offset, Ordering::Relaxed);
        if previous != offset {
            tracing::warn!(offset_seconds = offset, "the local clock differs from the server's; signing with the server's time");
        }
        previous != offset
    }

    /// Runs `attempt` under the retry policy: transient failures are retried with backoff, a clock
    /// skew answer is retried once at once with the server's time, and nothing is retried after the
    /// deadline. Only for idempotent requests.
    /// A failure that is given up on names what `request` was about.
    pub(crate) fn with_retries<T>(&self, request: &Request, mut attempt: impl FnMut() -> Result<T, S3Error>) -> Result<T, S3Error> {
        let operation = request.operation;
        let mut tries = 1;
        let mut skew_corrected = false;
        loop {
            match attempt() {
                Err(err) if err.is_clock_skew(self.now()) && !skew_corrected && self.correct_clock(&err) => skew_corrected = true,
                Err(err) if err.retryable() && tries < self.transport.retry.max_attempts && self.out_of_time(operation).is_none() => {
                    let delay = self.transport.retry.backoff(tries);
                    tracing::debug!(operation, attempt = tries, ?delay, error = %err, "retrying");
                    if let Some(reporter) = &self.reporter {
                        reporter.retry(operation, tries, self.transport.retry.max_attempts, &err.reason());
                    }
                    std::thread::sleep(delay);
                    tries += 1;
                }
                result => {
                    return result.map_err(|mut err| {
                        if err.resource.is_empty() {
                            err.resource = self.bucket.resource(&request.url);
                        }
                        err
                    });
                }
            }
        }
    }

    /// Sends with retries. Only for idempotent requests whose body is in memory.
    fn send(&self, request: &Request, body: &[u8]) -> Result<http::Response<ureq::Body>, S3Error> {
        let limits = self.transport.limits((!body.is_empty()).then_some(body.len() as u64));
        self.with_retries(request, || self.send_once(request, body, &self.limits_now(limits)))
    }

    /// Sends and reads the whole (small) answer, failing on an `<Error>` body even with status 200.
    fn send_for_text(&self, request: &Request, body: &[u8]) -> Result<String, S3Error> {
        let limits = self.transport.limits(Some(body.len() as u64 + (1 << 20)));
        self.with_retries(request, || self.text_once(request, body, limits))
    }

    /// One attempt of [`Self::send_for_text`], under `limits`.
    fn text_once(&self, request: &Request, body: &[u8], limits: Limits) -> Result<String, S3Error> {
        let limits = self.limits_now(limits);
        let mut response = self.send_once(request, body, &limits)?;
        let text = response
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .map_err(|e| self.transport_error(request.operation, &e, &limits))?;
        match xml::parse_error(&text) {
            Some(document) => Err(S3Error::from_status(request.operation, 500, document)),
            None => Ok(text),
        }
    }

    /// GetObject of the inclusive byte range `start..=end`, read whole, with retries; a short, long or
    /// unranged answer is retried like a failed one.
    pub fn get_range(&self, key: &str, start: u64, end: u64) -> Result<Vec<u8>, S3Error> {
        let request = self.bucket.get_object(key, Some((start, end)));
        let expected = end - start + 1;
        let limits = self.transport.limits(Some(expected));
        self.with_retries(&request, || {
            let limits = self.limits_now(limits);
            let mut response = self.send_once(&request, b"", &limits)?;
            let short = |message: String| S3Error::new(S3ErrorKind::Transient, "GetObject", None, "IncompleteBody", message);
            // 206 is the norm; some servers (rclone) answer 200 with the right Content-Range.
            let content_range = response.headers().get("content-range").and_then(|v| v.to_str().ok()).unwrap_or_default();
            let ranged = content_range.starts_with(&format!("bytes {start}-{end}/"));
            let status = response.status().as_u16();
            if !(status == 206 || (status == 200 && (ranged || start == 0))) {
                return Err(short(format!(
                    "expected 206 Partial Content for bytes {start}-{end}, got {} {content_range}",
                    response.status()
                )));
            }
            let mut body = Vec::with_capacity(expected as usize);
            response.body_mut().with_config().limit(expected + 1).reader().read_to_end(&mut body).map_err(|e| {
                match e.get_ref().and_then(|inner| inner.downcast_ref::<ureq::Error>()) {
                    Some(err) => self.transport_error(request.operation, err, &limits),
                    None => short(format!("reading bytes {start}-{end}: {e}")),
                }
            })?;
            if body.len() as u64 != expected {
                return Err(short(format!("bytes {start}-{end}: got {} of {expected}", body.len())));
            }
            Ok(body)
        })
    }

    /// PutObject. With `if_none_match`, fails with `PreconditionFailed` when the key exists.
    pub fn put_object(&self, key: &str, body: &[u8], publish: &PublishOptions, if_none_match: bool) -> Result<(), S3Error> {
        self.send(&self.bucket.put_object(key, publish, if_none_match), body).map(drop)
    }

    /// CreateMultipartUpload; returns the upload id.
    pub fn create_multipart_upload(&self, key: &str, publish: &PublishOptions) -> Result<String, S3Error> {
        let request = self.bucket.create_multipart_upload(key, publish);
        let text = self.send_for_text(&request, b"")?;
        xml::parse_initiate(&text).map_err(|e| S3Error::new(S3ErrorKind::Other, request.operation, Some(200), "InvalidResponse", e))
    }

    /// UploadPart; returns the part's ETag.
    pub fn upload_part(&self, key: &str, upload_id: &str, part: u32, body: &[u8]) -> Result<String, S3Error> {
        let request = self.bucket.upload_part(key, upload_id, part);
        let response = self.send(&request, body)?;
        response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| S3Error::new(S3ErrorKind::Other, request.operation, Some(200), "InvalidResponse", "no ETag in the answer"))
    }

    /// UploadPart of exactly `length` bytes read from `body`, streamed: nothing is held in memory, so
    /// the payload is signed as `UNSIGNED-PAYLOAD` (over plain HTTP too) and checked instead by its MD5,
    /// which S3 returns as the part's ETag (when the ETag is a plain MD5). Not retried: the body is
    /// read once. Returns the ETag. A body shorter or longer than `length` sends no part.
    pub fn upload_part_stream(&self, key: &str, upload_id: &str, part: u32, length: u64, body: &mut dyn Read) -> Result<String, S3Error> {
        let request = self.bucket.upload_part(key, upload_id, part).header("content-length", length.to_string());
        let limits = self.limits_now(self.transport.limits(Some(length)));
        let builder = self.signed_builder(&request, Payload::Unsigned)?;
        let invalid = |e: http::Error| S3Error::new(S3ErrorKind::Other, request.operation, None, "InvalidRequest", e.to_string());
        let mut counted = Md5Reader { inner: body.take(length), md5: <md5::Md5 as md5::Digest>::new(), bytes: 0 };
        let sent = {
            let request = builder.body(ureq::SendBody::from_reader(&mut counted)).map_err(invalid)?;
            let silence = Some(limits.silence);
            let config = request.with_agent(&self.agent).configure();
            let config = config.timeout_recv_response(silence).timeout_per_read(silence).timeout_per_write(silence);
            config.timeout_send_body(limits.body).timeout_recv_body(limits.body).build().run()
        };
        let short = |message: String| S3Error::new(S3ErrorKind::Other, request.operation, None, "IncompleteBody", message);
        if counted.bytes != length {
            return Err(short(format!("part {part}: the body held {} of the {length} bytes announced", counted.bytes)));
        }
        let response = self.refuse_error_status(&request, sent.map_err(|e| self.transport_error(request.operation, &e, &limits))?)?;
        let etag = response.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let etag =
            etag.ok_or_else(|| S3Error::new(S3ErrorKind::Other, request.operation, Some(200), "InvalidResponse", "no ETag in the answer"))?;
        let expected = hex::encode(md5::Digest::finalize(counted.md5));
        let plain = etag.trim_matches('"');
        if plain.len() == 32 && plain.bytes().all(|b| b.is_ascii_hexdigit()) && !plain.eq_ignore_ascii_case(&expected) {
            return Err(S3Error::new(
                S3ErrorKind::Transient,
                request.operation,
                Some(200),
                "BadDigest",
                format!("part {part}: the server stored MD5 {plain}, the bytes sent have {expected}"),
            ));
        }
        Ok(etag)
    }

    /// Every part of an incomplete upload, in part-number order, reading all pages.
    pub fn list_parts(&self, key: &str, upload_id: &str) -> Result<Vec<ListedPart>, S3Error> {
        let mut parts = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let request = self.bucket.list_parts(key, upload_id, after.as_deref());
            let text = self.send_for_text(&request, b"")?;
            let page = xml::parse_parts(&text)
                .map_err(|e| S3Error::new(S3ErrorKind::Other, request.operation, Some(200), "InvalidResponse", e))?;
            parts.extend(page.part);
            match page.next_part_number_marker {
                Some(marker) if page.is_truncated && after.as_ref() != Some(&marker) => after = Some(marker),
                _ => {
                    parts.sort_by_key(|p| p.part_number);
                    return Ok(parts);
                }
            }
        }
    }

    /// CompleteMultipartUpload of an object of `size` bytes, with its own, longer bound
    /// ([`TransportConfig::COMPLETE_TIMEOUT`]). A 200 answer with an `<Error>` body is a failure. A
    /// retry that finds the upload gone (`NoSuchUpload`) asks HEAD whether an earlier attempt completed
    /// it and only its answer was lost ([`completed_before`]).
    pub fn complete_multipart_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
        if_none_match: bool,
        size: u64,
    ) -> Result<(), S3Error> {
        let request = self.bucket.complete_multipart_upload(key, upload_id, if_none_match);
        let body = complete_multipart_body(parts);
        let limits = self.transport.complete_limits(body.len() as u64 + (1 << 20));
        let mut attempts = 0;
        let result = self.with_retries(&request, || {
            attempts += 1;
            self.text_once(&request, body.as_bytes(), limits)
        });
        match result {
            Err(err) if attempts > 1 && err.code == "NoSuchUpload" => completed_before(err, key, self.head_object(key)?.as_ref(), size),
            result => result.map(drop),
        }
    }

    /// AbortMultipartUpload.
    pub fn abort_multipart_upload(&self, key: &str, upload_id: &str) -> Result<(), S3Error> {
        self.send(&self.bucket.abort_multipart_upload(key, upload_id), b"").map(drop)
    }

    /// HeadObject; `None` when there is no such key.
    pub fn head_object(&self, key: &str) -> Result<Option<ObjectHead>, S3Error> {
        match self.send(&self.bucket.head_object(key), b"") {
            Ok(response) => {
                let headers = response.headers();
                let size = headers.get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0);
                let metadata = headers
                    .iter()
                    .filter_map(|(name, value)| {
                        let name = name.as_str().strip_prefix("x-amz-meta-")?;
                        Some((name.to_owned(), value.to_str().ok()?.to_owned()))
                    })
                    .collect();
                let modified = headers
                    .get("last-modified")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| httpdate::parse_http_date(v).ok())
                    .unwrap_or(std::time::UNIX_EPOCH);
                Ok(Some(ObjectHead { size, modified, metadata }))
            }
            Err(err) if err.kind == S3ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Every object under `prefix`, reading all pages.
    pub fn list_objects(&self, prefix: &str) -> Result<Vec<ListedObject>, S3Error> {
        let mut objects = Vec::new();
        let mut continuation: Option<String> = None;
        loop {
            let request = self.bucket.list_objects_v2(prefix, continuation.as_deref());
            let text = self.send_for_text(&request, b"")?;
            let page =
                xml::parse_list(&text).map_err(|e| S3Error::new(S3ErrorKind::Other, request.operation, Some(200), "InvalidResponse", e))?;
            objects.extend(page.contents);
            match page.next_continuation_token {
                Some(token) if page.is_truncated => continuation = Some(token),
                _ => return Ok(objects),
            }
        }
    }

    /// Every incomplete multipart upload under `prefix`, reading all pages.
    pub fn list_multipart_uploads(&self, prefix: &str) -> Result<Vec<ListedUpload>, S3Error> {
        let mut uploads = Vec::new();
        let mut after: Option<(String, String)> = None;
        loop {
            let request = self.bucket.list_multipart_uploads(prefix, after.as_ref().map(|(k, u)| (k.as_str(), u.as_str())));
            let text = self.send_for_text(&request, b"")?;
            let page = xml::parse_uploads(&text)
                .map_err(|e| S3Error::new(S3ErrorKind::Other, request.operation, Some(200), "InvalidResponse", e))?;
            uploads.extend(page.upload);
            match (page.is_truncated, page.next_key_marker, page.next_upload_id_marker) {
                (true, Some(key), Some(upload_id)) if after.as_ref() != Some(&(key.clone(), upload_id.clone())) => {
                    after = Some((key, upload_id))
                }
                _ => return Ok(uploads),
            }
        }
    }

    /// The bytes an incomplete upload holds: the sum of its parts' sizes, reading all pages.
    pub fn uploaded_bytes(&self, key: &str, upload_id: &str) -> Result<u64, S3Error> {
        Ok(self.list_parts(key, upload_id)?.iter().map(|p| p.size).sum())
    }

    /// DeleteObject. Deleting a missing key succeeds, as in S3.
    pub fn delete_object(&self, key: &str) -> Result<(), S3Error> {
        match self.send(&self.bucket.delete_object(key), b"") {
            Err(err) if err.kind == S3ErrorKind::NotFound => Ok(()),
            result => result.map(drop),
        }
    }
}

/// The verdict on a retried CompleteMultipartUpload that answered `err`, `NoSuchUpload`: the upload
/// is gone, as it is when an earlier attempt completed it and only that answer was lost. The object
/// HEAD found under `key` decides: there with the `size` bytes sent, the upload did complete;
/// otherwise it did not, and `err` says so.
fn completed_before(err: S3Error, key: &str, visible: Option<&ObjectHead>, size: u64) -> Result<(), S3Error> {
    let found = match visible {
        Some(head) if head.size == size => return Ok(()),
        Some(head) => format!("{key} holds {} bytes, not the {size} sent", head.size),
        None => format!("there is no object {key}"),
    };
    let message = format!("the upload was gone when the request was retried, and {found}: it was not completed");
    Err(S3Error { message, ..err })
}

/// A body being sent, hashed and counted on the way.
struct Md5Reader<R> {
    inner: R,
    md5: md5::Md5,
    bytes: u64,
}

impl<R: Read> Read for Md5Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        md5::Digest::update(&mut self.md5, &buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

fn read_small_body(response: &mut http::Response<ureq::Body>) -> String {
    response.body_mut().with_config().limit(64 * 1024).read_to_string().unwrap_or_default()
}

fn transport_code(err: &ureq::Error) -> &'static str {
    match err {
        ureq::Error::Timeout(_) => "Timeout",
        ureq::Error::HostNotFound => "HostNotFound",
        ureq::Error::ConnectionFailed => "ConnectionFailed",
        ureq::Error::Io(_) => "ConnectionError",
        _ => "TransportError",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Status codes and S3 error codes map to the kinds callers act on.
    #[test]
    fn classifies_errors() {
        let doc = |code: &str| xml::ErrorDocument { code: code.into(), message: String::new() };
        assert_eq!(S3Error::from_status("GetObject", 404, doc("NoSuchKey")).kind, S3ErrorKind::NotFound);
        assert_eq!(S3Error::from_status("PutObject", 412, doc("PreconditionFailed")).kind, S3ErrorKind::PreconditionFailed);
        assert_eq!(S3Error::from_status("PutObject", 403, doc("SignatureDoesNotMatch")).kind, S3ErrorKind::AccessDenied);
        assert!(S3Error::from_status("PutObject", 503, doc("SlowDown")).retryable());
        assert!(S3Error::from_status("PutObject", 400, doc("RequestTimeout")).retryable());
        assert!(!S3Error::from_status("PutObject", 400, doc("InvalidArgument")).retryable());
    }

    /// The ceiling doubles from the base up to the cap; the delays are spread over the whole of
    /// `0..ceiling` (full jitter): never above it, and neither stuck at zero nor at the top.
    #[test]
    fn backs_off_within_bounds() {
        let policy = RetryPolicy { max_attempts: 5, base_backoff: Duration::from_millis(100), max_backoff: Duration::from_millis(300) };
        let ceilings: Vec<u128> = (1..6).map(|attempt| policy.ceiling(attempt).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 300, 300, 300]);
        assert_eq!(RetryPolicy::default().ceiling(40), Duration::from_secs(20));
        fastrand::seed(7); // this test thread's generator: the same draws every run
        for attempt in 1..6 {
            let ceiling = policy.ceiling(attempt);
            let delays: Vec<Duration> = (0..1000).map(|_| policy.backoff(attempt)).collect();
            assert!(delays.iter().all(|d| *d <= ceiling), "attempt {attempt}: a delay over {ceiling:?}");
            let (low, high) = (delays.iter().min().unwrap(), delays.iter().max().unwrap());
            assert!(*low < ceiling / 10 && *high > ceiling * 9 / 10, "attempt {attempt}: {low:?}..{high:?} of {ceiling:?}");
            let mean = delays.iter().sum::<Duration>() / 1000;
            assert!(mean > ceiling * 2 / 5 && mean < ceiling * 3 / 5, "attempt {attempt}: mean {mean:?} of {ceiling:?}");
        }
    }

    /// The settings give two predictable bounds: `--stall-timeout-secs` of silence before an answer and
    /// between bytes, and each body's time at the minimum throughput on top; CompleteMultipartUpload
    /// gets its own, longer bound unless the setting is longer still. Each timeout names its setting.
    #[test]
    fn timeouts_follow_the_settings() {
        let config = TransportConfig::default();
        assert_eq!(config.stall_timeout, Duration::from_secs(20));
        let limits = config.limits(Some(8 << 20));
        assert_eq!((limits.silence, limits.body), (Duration::from_secs(20), Some(Duration::from_secs(52))));
        assert_eq!(config.limits(None).body, None);
        let complete = config.complete_limits(0);
        assert_eq!((complete.silence, complete.body), (Duration::from_secs(120), Some(Duration::from_secs(120))));
        let message = |which, limits: &Limits| config.describe_timeout(which, limits);
        assert_eq!(message(ureq::Timeout::Connect, &limits), "could not connect within 5 s (--connect-timeout-secs)");
        assert_eq!(message(ureq::Timeout::RecvResponse, &limits), "no answer within 20 s (--stall-timeout-secs)");
        assert_eq!(message(ureq::Timeout::PerRead, &limits), "no data for 20 s (--stall-timeout-secs)");
        assert_eq!(message(ureq::Timeout::PerWrite, &limits), "the server took no data for 20 s (--stall-timeout-secs)");
        assert_eq!(
            message(ureq::Timeout::RecvBody, &limits),
            "the body took longer than 52 s, slower than 256 KiB/s (--min-throughput-kbps)"
        );
        assert_eq!(message(ureq::Timeout::RecvResponse, &complete), "no answer within 120 s (CompleteMultipartUpload's own bound)");
        assert_eq!(message(ureq::Timeout::Resolve, &limits), "timeout: resolve");
        // The operation's budget cuts the body bound when it ends sooner, and is named then.
        let late = limits.within(Some(Duration::from_millis(1500)));
        assert_eq!(late.body, Some(Duration::from_millis(1500)));
        assert_eq!(message(ureq::Timeout::SendBody, &late), "the operation's time budget ran out (--deadline-secs)");
        assert_eq!(limits.within(Some(Duration::from_secs(600))), limits);
        let patient = TransportConfig { stall_timeout: Duration::from_secs(300), ..config.clone() };
        let complete = patient.complete_limits(0);
        assert_eq!((complete.silence, complete.silence_setting), (Duration::from_secs(300), "--stall-timeout-secs"));
        assert_eq!(seconds(Duration::from_millis(2500)), "2.5 s");
    }

    /// A server that accepts and never answers fails the request after `--stall-timeout-secs`, named
    /// as that; one that sends the head and part of the body, then nothing, fails as a body that
    /// stopped, not as a slow one.
    #[test]
    fn silent_servers_are_named() {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mute, _) = listener.accept().unwrap();
            let (mut halting, _) = listener.accept().unwrap();
            let mut head = [0u8; 1];
            std::io::Read::read(&mut halting, &mut head).unwrap();
            halting
                .write_all(b"HTTP/1.1 206 Partial Content\r\ncontent-range: bytes 0-1048575/1048576\r\ncontent-length: 1048576\r\n\r\nabc")
                .unwrap();
            (mute, halting)
        });
        let bucket = Bucket {
            endpoint: super::super::Endpoint::parse(&format!("http://127.0.0.1:{port}")).unwrap(),
            name: "b".into(),
            region: "us-east-1".into(),
            path_style: true,
        };
        let transport = TransportConfig {
            stall_timeout: Duration::from_secs(1),
            retry: RetryPolicy { max_attempts: 1, ..RetryPolicy::default() },
            ..TransportConfig::default()
        };
        let client = S3Client::new(bucket, None, &transport);
        let mute = client.get_range("k", 0, 9).unwrap_err();
        assert_eq!(mute.to_string(), "GetObject of s3://b/k failed: Timeout: no answer within 1 s (--stall-timeout-secs)");
        assert_eq!(mute.reason(), "no answer within 1 s (--stall-timeout-secs)");
        // A mebibyte may take 4 s at the default minimum throughput: the silence fires first.
        let halting = client.get_range("k", 0, (1 << 20) - 1).unwrap_err();
        assert_eq!(halting.to_string(), "GetObject of s3://b/k failed: Timeout: no data for 1 s (--stall-timeout-secs)");
        drop(server.join().unwrap());
    }

    /// A retried CompleteMultipartUpload that finds its upload gone succeeded if the object is there
    /// with the size sent; otherwise the error says what HEAD found.
    #[test]
    fn a_lost_completion_is_checked() {
        let gone = || {
            S3Error::from_status("CompleteMultipartUpload", 404, xml::ErrorDocument { code: "NoSuchUpload".into(), message: "gone".into() })
        };
        let head = |size| ObjectHead { size, modified: std::time::UNIX_EPOCH, metadata: Vec::new() };
        assert!(completed_before(gone(), "c/k.tar.zst", Some(&head(42)), 42).is_ok());
        let short = completed_before(gone(), "c/k.tar.zst", Some(&head(7)), 42).unwrap_err();
        assert_eq!(
            short.to_string(),
            "CompleteMultipartUpload failed: HTTP 404 (Not Found) NoSuchUpload: the upload was gone when the request was retried, \
             and c/k.tar.zst holds 7 bytes, not the 42 sent: it was not completed"
        );
        let absent = completed_before(gone(), "c/k.tar.zst", None, 42).unwrap_err();
        assert_eq!(absent.kind, S3ErrorKind::NotFound);
        assert_eq!(
            absent.reason(),
            "HTTP 404 (Not Found) NoSuchUpload: the upload was gone when the request was retried, and there is no object c/k.tar.zst: \
             it was not completed"
        );
    }

    /// Error messages name the operation, status and code.
    #[test]
    fn formats_errors() {
        let err = S3Error::from_status("GetObject", 403, xml::ErrorDocument { code: "AccessDenied".into(), message: "nope".into() });
        assert_eq!(err.to_string(), "GetObject failed: HTTP 403 (Forbidden) AccessDenied: nope");
    }
}
