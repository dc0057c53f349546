//! Sending S3 requests: signing, one `ureq` agent with connection reuse, error mapping and retries.
//!
//! Every answer with status ≥ 300, and every 200 whose body is an `<Error>` document, becomes an
//! [`S3Error`] whose kind says what a caller may do about it. Idempotent requests are retried by
//! [`RetryPolicy`] on transport failures, 5xx, 429 and throttling codes; never on other 4xx.

use std::io::Read;
use std::time::{Duration, SystemTime};

use super::credentials::Credentials;
use super::request::{Bucket, Metadata, Request, complete_multipart_body};
use super::signing::{Payload, sign_request};
use super::xml::{self, ListedObject};

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
#[error("{operation} failed: {}{code}{}{message}", status.map(|s| format!("HTTP {s} ")).unwrap_or_default(), if message.is_empty() || code.is_empty() { "" } else { ": " })]
pub struct S3Error {
    pub kind: S3ErrorKind,
    pub operation: &'static str,
    pub status: Option<u16>,
    /// The S3 error code (`NoSuchKey`, `SignatureDoesNotMatch`, ...) or a transport error's name.
    pub code: String,
    pub message: String,
}

impl S3Error {
    fn new(kind: S3ErrorKind, operation: &'static str, status: Option<u16>, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { kind, operation, status, code: code.into(), message: message.into() }
    }

    fn from_status(operation: &'static str, status: u16, document: xml::ErrorDocument) -> Self {
        const THROTTLING: &[&str] = &["SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestLimitExceeded", "InternalError"];
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

/// The retry policy for idempotent requests: AWS "standard" mode in shape — a bounded number of
/// attempts with exponential backoff and full jitter.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in total, the first included.
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubles each time, up to `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 3, base_backoff: Duration::from_millis(100), max_backoff: Duration::from_secs(20) }
    }
}

impl RetryPolicy {
    /// A random delay in `0..=min(max, base * 2^(attempt-1))` before attempt `attempt + 1`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self.base_backoff.saturating_mul(1 << attempt.saturating_sub(1).min(16)).min(self.max_backoff);
        ceiling.mul_f64(fastrand::f64())
    }
}

/// Network settings for the client.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    pub connect_timeout: Duration,
    /// Longest wait for the status line and headers of an answer.
    pub response_timeout: Duration,
    pub retry: RetryPolicy,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self { connect_timeout: Duration::from_secs(10), response_timeout: Duration::from_secs(120), retry: RetryPolicy::default() }
    }
}

/// What HeadObject says about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHead {
    pub size: u64,
    /// `x-amz-meta-*` headers, names without the prefix.
    pub metadata: Metadata,
}

/// An S3 client bound to one bucket.
#[derive(Debug, Clone)]
pub struct S3Client {
    bucket: Bucket,
    credentials: Option<Credentials>,
    agent: ureq::Agent,
    retry: RetryPolicy,
}

impl S3Client {
    /// A client for `bucket`. Without credentials, requests are sent unsigned (public buckets).
    pub fn new(bucket: Bucket, credentials: Option<Credentials>, transport: &TransportConfig) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(transport.connect_timeout))
            .timeout_recv_response(Some(transport.response_timeout))
            .user_agent(concat!("s3cache/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Self { bucket, credentials, agent, retry: transport.retry }
    }

    /// The bucket this client talks to.
    pub fn bucket(&self) -> &Bucket {
        &self.bucket
    }

    /// Sends once: signs, sends, and turns error answers into [`S3Error`].
    fn send_once(&self, request: &Request, body: &[u8]) -> Result<http::Response<ureq::Body>, S3Error> {
        let host = self.bucket.authority();
        let mut builder = http::Request::builder().method(request.method).uri(&request.url);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if let Some(credentials) = &self.credentials {
            let payload = if self.bucket.endpoint.is_tls() { Payload::Unsigned } else { Payload::Signed(body) };
            let signed = sign_request(request, &host, payload, credentials, &self.bucket.region, SystemTime::now())
                .map_err(|e| S3Error::new(S3ErrorKind::Other, request.operation, None, "Signing", e))?;
            for (name, value) in signed {
                builder = builder.header(name, value);
            }
        }
        let transport = |e: ureq::Error| S3Error::new(S3ErrorKind::Transient, request.operation, None, transport_code(&e), e.to_string());
        let invalid = |e: http::Error| S3Error::new(S3ErrorKind::Other, request.operation, None, "InvalidRequest", e.to_string());
        let mut response = if body.is_empty() && matches!(request.method, "GET" | "HEAD" | "DELETE") {
            self.agent.run(builder.body(()).map_err(invalid)?).map_err(transport)?
        } else {
            self.agent.run(builder.body(body).map_err(invalid)?).map_err(transport)?
        };
        let status = response.status().as_u16();
        if status >= 300 {
            let text = if request.method == "HEAD" { String::new() } else { read_small_body(&mut response) };
            let document = xml::parse_error(&text).unwrap_or_default();
            return Err(S3Error::from_status(request.operation, status, document));
        }
        Ok(response)
    }

    /// Sends with retries. Only for idempotent requests whose body is in memory.
    fn send(&self, request: &Request, body: &[u8]) -> Result<http::Response<ureq::Body>, S3Error> {
        let mut attempt = 1;
        loop {
            match self.send_once(request, body) {
                Err(err) if err.retryable() && attempt < self.retry.max_attempts => {
                    let delay = self.retry.backoff(attempt);
                    tracing::debug!(operation = request.operation, attempt, ?delay, error = %err, "retrying");
                    std::thread::sleep(delay);
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    /// Sends and reads the whole (small) answer, failing on an `<Error>` body even with status 200.
    fn send_for_text(&self, request: &Request, body: &[u8]) -> Result<String, S3Error> {
        let mut attempt = 1;
        loop {
            let result = self.send(request, body).and_then(|mut response| {
                let text = response
                    .body_mut()
                    .read_to_string()
                    .map_err(|e| S3Error::new(S3ErrorKind::Transient, request.operation, None, transport_code(&e), e.to_string()))?;
                match xml::parse_error(&text) {
                    Some(document) => Err(S3Error::from_status(request.operation, 500, document)),
                    None => Ok(text),
                }
            });
            match result {
                Err(err) if err.retryable() && attempt < self.retry.max_attempts => {
                    std::thread::sleep(self.retry.backoff(attempt));
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    /// PutObject. With `if_none_match`, fails with `PreconditionFailed` when the key exists.
    pub fn put_object(&self, key: &str, body: &[u8], metadata: &Metadata, if_none_match: bool) -> Result<(), S3Error> {
        self.send(&self.bucket.put_object(key, metadata, if_none_match), body).map(drop)
    }

    /// CreateMultipartUpload; returns the upload id.
    pub fn create_multipart_upload(&self, key: &str, metadata: &Metadata) -> Result<String, S3Error> {
        let request = self.bucket.create_multipart_upload(key, metadata);
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
    pub fn complete_multipart_upload(&self, key: &str, upload_id: &str, parts: &[(u32, String)], if_none_match: bool) -> Result<(), S3Error> {
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
                Ok(Some(ObjectHead { size, metadata }))
            }
            Err(err) if err.kind == S3ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// GetObject as a stream; `None` when there is no such key. A connection that closes before
    /// `Content-Length` bytes arrive makes the reader fail, so a truncated body is never mistaken for
    /// a whole one.
    pub fn get_object(&self, key: &str) -> Result<Option<Box<dyn Read + Send>>, S3Error> {
        match self.send(&self.bucket.get_object(key, None), b"") {
            Ok(response) => Ok(Some(Box::new(response.into_body().into_reader()))),
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
            let page = xml::parse_list(&text).map_err(|e| S3Error::new(S3ErrorKind::Other, request.operation, Some(200), "InvalidResponse", e))?;
            objects.extend(page.contents);
            match page.next_continuation_token {
                Some(token) if page.is_truncated => continuation = Some(token),
                _ => return Ok(objects),
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

    /// Backoff stays under the exponential ceiling and the cap.
    #[test]
    fn backs_off_within_bounds() {
        let policy = RetryPolicy { max_attempts: 5, base_backoff: Duration::from_millis(100), max_backoff: Duration::from_millis(300) };
        for attempt in 1..10 {
            let ceiling = Duration::from_millis(100 * (1 << (attempt - 1))).min(Duration::from_millis(300));
            assert!(policy.backoff(attempt) <= ceiling);
        }
    }

    /// Error messages name the operation, status and code.
    #[test]
    fn formats_errors() {
        let err = S3Error::from_status("GetObject", 403, xml::ErrorDocument { code: "AccessDenied".into(), message: "nope".into() });
        assert_eq!(err.to_string(), "GetObject failed: HTTP 403 AccessDenied: nope");
    }
}
