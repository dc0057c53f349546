//! Sending S3 requests: signing, one `ureq` agent with connection reuse, error mapping and retries.
//!
//! Every answer with status ≥ 300, and every 200 whose body is an `<Error>` document, becomes an
//! [`S3Error`] whose kind says what a caller may do about it. Idempotent requests are retried by
//! [`RetryPolicy`] on transport failures, 5xx, 429 and throttling codes; never on other 4xx.

use std::io::Read;
use std::sync::Arc;

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime};
use ureq::RequestExt;

use super::key_pair::Credentials;
use super::request::{Bucket, PublishOptions, Request, complete_multipart_body};
use super::signing::{Payload, sign_request};
use super::xml::{self, ListedObject, ListedUpload};
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
#[error("{operation} failed: {}{code}{}{message}", status.map(|s| format!("HTTP {s} {}", reason(s))).unwrap_or_default(), if message.is_empty() || code.is_empty() { "" } else { ": " })]
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
}

impl S3Error {
    pub(crate) fn new(
        kind: S3ErrorKind,
        operation: &'static str,
        status: Option<u16>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self { kind, operation, status, code: code.into(), message: message.into(), server_date: None }
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

/// Network settings for the client.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Longest wait for a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Longest wait for the status line and headers of an answer.
    pub response_timeout: Duration,
    /// The slowest transfer tolerated: a part or range body that moves slower than this (a stall, a
    /// drip) is aborted and retried. Each body gets `size / min_throughput + body_grace`.
    pub min_throughput: u64,
    /// Time every body gets on top of what `min_throughput` allows.
    pub body_grace: Duration,
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
            response_timeout: Self::response_timeout_for(Self::DEFAULT_BODY_GRACE),
            min_throughput: Self::DEFAULT_MIN_THROUGHPUT,
            body_grace: Self::DEFAULT_BODY_GRACE,
            deadline: Some(Self::DEFAULT_DEADLINE),
            retry: RetryPolicy::default(),
            clock_offset_secs: 0,
        }
    }
}

impl TransportConfig {
    /// Connect timeout by default (`--connect-timeout-secs`).
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// Grace per body by default (`--stall-timeout-secs`).
    pub const DEFAULT_BODY_GRACE: Duration = Duration::from_secs(10);
    /// The slowest accepted transfer by default, bytes per second (`--min-throughput-kbps` 256).
    pub const DEFAULT_MIN_THROUGHPUT: u64 = 256 << 10;
    /// A whole operation's budget by default (`--deadline-secs`).
    pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(20 * 60);

    /// The wait for an answer's status line and headers that goes with a body grace: six times the
    /// grace, and at least six seconds.
    pub fn response_timeout_for(body_grace: Duration) -> Duration {
        body_grace.max(Duration::from_secs(1)) * 6
    }

    /// The time a body of `bytes` may take before it counts as stalled.
    pub fn body_timeout(&self, bytes: u64) -> Duration {
        self.body_grace + Duration::from_secs_f64(bytes as f64 / self.min_throughput.max(1) as f64)
    }
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
                .timeout_recv_response(Some(transport.response_timeout))
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

    /// Sends once: signs, sends, and turns error answers into [`S3Error`]. `body_timeout` bounds
    /// sending the request body and receiving the answer's body.
    fn send_once(&self, request: &Request, body: &[u8], body_timeout: Option<Duration>) -> Result<http::Response<ureq::Body>, S3Error> {
        if let Some(err) = self.out_of_time(request.operation) {
            return Err(err);
        }
        if let Some(reporter) = &self.reporter {
            reporter.request_sent(request.operation);
        }
        let host = self.bucket.authority();
        let mut builder = http::Request::builder().method(request.method).uri(&request.url);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if let Some(credentials) = &self.credentials {
            let payload = if self.bucket.endpoint.is_tls() { Payload::Unsigned } else { Payload::Signed(body) };
            let signed = sign_request(request, &host, payload, credentials, &self.bucket.region, self.now())
                .map_err(|e| S3Error::new(S3ErrorKind::Other, request.operation, None, "Signing", e))?;
            for (name, value) in signed {
                builder = builder.header(name, value);
            }
        }
        let transport = |e: ureq::Error| self.transport_error(request.operation, &e);
        let invalid = |e: http::Error| S3Error::new(S3ErrorKind::Other, request.operation, None, "InvalidRequest", e.to_string());
        let timeout = body_timeout.map(|t| self.deadline.map_or(t, |d| t.min(d.saturating_duration_since(Instant::now()))));
        let mut response = if body.is_empty() && matches!(request.method, "GET" | "HEAD" | "DELETE") {
            let request = builder.body(()).map_err(invalid)?;
            request.with_agent(&self.agent).configure().timeout_recv_body(timeout).build().run().map_err(transport)?
        } else {
            let request = builder.body(body).map_err(invalid)?;
            request
                .with_agent(&self.agent)
                .configure()
                .timeout_send_body(timeout)
                .timeout_recv_body(timeout)
                .build()
                .run()
                .map_err(transport)?
        };
        let status = response.status().as_u16();
        if status >= 300 {
            let server_date = response.headers().get("date").and_then(|v| v.to_str().ok()).and_then(|v| httpdate::parse_http_date(v).ok());
            let text = if request.method == "HEAD" { String::new() } else { read_small_body(&mut response) };
            let document = xml::parse_error(&text).unwrap_or_default();
            let mut err = S3Error::from_status(request.operation, status, document);
            err.server_date = server_date;
            return Err(err);
        }
        Ok(response)
    }

    /// A request that could not be sent or read: transient (retried), except a TLS handshake that met a
    /// plain-HTTP server, which no retry mends and whose message says to use `http://`.
    fn transport_error(&self, operation: &'static str, err: &ureq::Error) -> S3Error {
        let message = super::connection::describe(err, &self.bucket.endpoint.authority);
        if super::connection::answered_in_plain_http(err) {
            return S3Error::new(S3ErrorKind::Other, operation, None, "PlainHttpServer", message);
        }
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
    pub(crate) fn with_retries<T>(&self, operation: &'static str, mut attempt: impl FnMut() -> Result<T, S3Error>) -> Result<T, S3Error> {
        let mut tries = 1;
        let mut skew_corrected = false;
        loop {
            match attempt() {
                Err(err) if err.is_clock_skew(self.now()) && !skew_corrected && self.correct_clock(&err) => skew_corrected = true,
                Err(err) if err.retryable() && tries < self.transport.retry.max_attempts && self.out_of_time(operation).is_none() => {
                    let delay = self.transport.retry.backoff(tries);
                    tracing::debug!(operation, attempt = tries, ?delay, error = %err, "retrying");
                    if let Some(reporter) = &self.reporter {
                        reporter.retry(operation, tries, &err.to_string());
                    }
                    std::thread::sleep(delay);
                    tries += 1;
                }
                result => return result,
            }
        }
    }

    /// Sends with retries. Only for idempotent requests whose body is in memory.
    fn send(&self, request: &Request, body: &[u8]) -> Result<http::Response<ureq::Body>, S3Error> {
        let body_timeout = (!body.is_empty()).then(|| self.transport.body_timeout(body.len() as u64));
        self.with_retries(request.operation, || self.send_once(request, body, body_timeout))
    }

    /// Sends and reads the whole (small) answer, failing on an `<Error>` body even with status 200.
    fn send_for_text(&self, request: &Request, body: &[u8]) -> Result<String, S3Error> {
        let body_timeout = Some(self.transport.body_timeout(body.len() as u64 + (1 << 20)));
        self.with_retries(request.operation, || {
            let mut response = self.send_once(request, body, body_timeout)?;
            let text = response
                .body_mut()
                .with_config()
                .limit(64 << 20)
                .read_to_string()
                .map_err(|e| self.transport_error(request.operation, &e))?;
            match xml::parse_error(&text) {
                Some(document) => Err(S3Error::from_status(request.operation, 500, document)),
                None => Ok(text),
            }
        })
    }

    /// GetObject of the inclusive byte range `start..=end`, read whole, with retries; a short, long or
    /// unranged answer is retried like a failed one.
    pub fn get_range(&self, key: &str, start: u64, end: u64) -> Result<Vec<u8>, S3Error> {
        let request = self.bucket.get_object(key, Some((start, end)));
        let expected = end - start + 1;
        let timeout = Some(self.transport.body_timeout(expected));
        self.with_retries(request.operation, || {
            let mut response = self.send_once(&request, b"", timeout)?;
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
            response
                .body_mut()
                .with_config()
                .limit(expected + 1)
                .reader()
                .read_to_end(&mut body)
                .map_err(|e| short(format!("reading bytes {start}-{end}: {e}")))?;
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

    /// CompleteMultipartUpload. A 200 answer with an `<Error>` body is a failure.
    pub fn complete_multipart_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
        if_none_match: bool,
    ) -> Result<(), S3Error> {
        let request = self.bucket.complete_multipart_upload(key, upload_id, if_none_match);
        self.send_for_text(&request, complete_multipart_body(parts).as_bytes()).map(drop)
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
        let mut bytes = 0;
        let mut after: Option<String> = None;
        loop {
            let request = self.bucket.list_parts(key, upload_id, after.as_deref());
            let text = self.send_for_text(&request, b"")?;
            let page = xml::parse_parts(&text)
                .map_err(|e| S3Error::new(S3ErrorKind::Other, request.operation, Some(200), "InvalidResponse", e))?;
            bytes += page.part.iter().map(|p| p.size).sum::<u64>();
            match page.next_part_number_marker {
                Some(marker) if page.is_truncated && after.as_ref() != Some(&marker) => after = Some(marker),
                _ => return Ok(bytes),
            }
        }
    }

    /// DeleteObject. Deleting a missing key succeeds, as in S3.
    pub fn delete_object(&self, key: &str) -> Result<(), S3Error> {
        match self.send(&self.bucket.delete_object(key), b"") {
            Err(err) if err.kind == S3ErrorKind::NotFound => Ok(()),
            result => result.map(drop),
        }
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

    /// Error messages name the operation, status and code.
    #[test]
    fn formats_errors() {
        let err = S3Error::from_status("GetObject", 403, xml::ErrorDocument { code: "AccessDenied".into(), message: "nope".into() });
        assert_eq!(err.to_string(), "GetObject failed: HTTP 403 (Forbidden) AccessDenied: nope");
    }
}
