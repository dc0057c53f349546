//! Building S3 requests as plain values: method, fully encoded URL, headers. No I/O and no clock, so
//! every request shape is unit-tested.
//!
//! Addressing follows the AWS SDKs: virtual-host style (`bucket.host/key`) by default, path style
//! (`host/bucket/key`) when asked for or when the endpoint is an IP address or `localhost`, where
//! virtual hosts cannot resolve.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// Characters left as is in a URI component: RFC 3986 unreserved (`A-Z a-z 0-9 - . _ ~`).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
/// In object key paths `/` separates segments and stays.
const KEY_PATH: &AsciiSet = &COMPONENT.remove(b'/');

/// Where the S3 API lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `http` or `https`.
    pub scheme: String,
    /// Host, with `:port` when not the scheme's default.
    pub authority: String,
}

/// An endpoint URL that cannot be used, and how to write it instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// `host[:port]` with no scheme: nothing says whether the server speaks TLS, so nothing is guessed.
    #[error("endpoint {url:?} has no scheme: write http://{url} for a plain-HTTP server or https://{url} for TLS")]
    NoScheme {
        /// The endpoint as given.
        url: String,
    },
    /// A scheme other than `http` or `https` (`ftp://`, `s3://`).
    #[error("endpoint {url:?}: the scheme must be http:// or https://")]
    Scheme {
        /// The endpoint as given.
        url: String,
    },
    /// Not `scheme://host[:port]`: an empty host, a path, user info, or a malformed scheme.
    #[error("endpoint {url:?}: expected http://host[:port] or https://host[:port], with no path or user")]
    Malformed {
        /// The endpoint as given.
        url: String,
    },
}

impl Endpoint {
    /// Parses `https://host[:port]` or `http://host[:port]` (a trailing `/` is allowed). The scheme is
    /// required: a bare `host:port` is an error rather than a guess, since a TLS guess at a plain-HTTP
    /// server only fails later with a handshake error.
    pub fn parse(url: &str) -> Result<Self, EndpointError> {
        let (scheme, rest) = match url.split_once("://") {
            Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
            // `http:host`, `https:/host`: a scheme was meant, but written wrong.
            None if ["http:", "https:"].iter().any(|s| url.get(..s.len()).is_some_and(|p| p.eq_ignore_ascii_case(s))) => {
                return Err(EndpointError::Malformed { url: url.into() });
            }
            None if url.starts_with("//") => return Err(EndpointError::NoScheme { url: url.trim_start_matches('/').into() }),
            None => return Err(EndpointError::NoScheme { url: url.into() }),
        };
        if scheme != "http" && scheme != "https" {
            return Err(EndpointError::Scheme { url: url.into() });
        }
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') || authority.contains('@') {
            return Err(EndpointError::Malformed { url: url.into() });
        }
        let default_port = if scheme == "https" { ":443" } else { ":80" };
        let authority = authority.strip_suffix(default_port).unwrap_or(authority).to_ascii_lowercase();
        Ok(Self { scheme, authority })
    }

    /// AWS's regional endpoint, optionally the dual-stack (IPv4 + IPv6) one.
    pub fn aws(region: &str, dualstack: bool) -> Self {
        let dualstack = if dualstack { "dualstack." } else { "" };
        Self { scheme: "https".into(), authority: format!("s3.{dualstack}{region}.amazonaws.com") }
    }

    /// S3 Transfer Acceleration (virtual-host addressing only).
    pub fn accelerate(dualstack: bool) -> Self {
        let authority = if dualstack { "s3-accelerate.dualstack.amazonaws.com" } else { "s3-accelerate.amazonaws.com" };
        Self { scheme: "https".into(), authority: authority.into() }
    }

    /// The host without the port.
    pub fn host(&self) -> &str {
        if self.authority.starts_with('[') {
            return self.authority.split_once(']').map_or(self.authority.as_str(), |(h, _)| h).trim_start_matches('[');
        }
        self.authority.rsplit_once(':').map_or(&self.authority, |(h, _)| h)
    }

    /// Whether virtual-host addressing cannot work here: an IP address or `localhost`.
    pub fn needs_path_style(&self) -> bool {
        let host = self.host();
        host == "localhost" || host.ends_with(".localhost") || host.parse::<std::net::IpAddr>().is_ok()
    }

    /// Whether requests travel over TLS.
    pub fn is_tls(&self) -> bool {
        self.scheme == "https"
    }
}

/// A bucket at an endpoint, with its region and addressing style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub endpoint: Endpoint,
    pub name: String,
    pub region: String,
    pub path_style: bool,
}

/// An S3 request, ready to sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The S3 API operation, for logs and errors (`PutObject`, ...).
    pub operation: &'static str,
    pub method: &'static str,
    /// Scheme, authority, encoded path and sorted, encoded query.
    pub url: String,
    /// Headers other than `host` and the signing headers, lowercase names.
    pub headers: Vec<(String, String)>,
}

impl Request {
    fn new(operation: &'static str, method: &'static str, url: String) -> Self {
        Self { operation, method, url, headers: Vec::new() }
    }

    pub(crate) fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }
}

/// How new objects are published: access, encryption, storage class, tags and user metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishOptions {
    /// Canned ACL, e.g. `public-read` (`x-amz-acl`).
    pub acl: Option<String>,
    /// `AES256` (SSE-S3) or `aws:kms` (SSE-KMS).
    pub server_side_encryption: Option<String>,
    /// The KMS key for `aws:kms`.
    pub sse_kms_key_id: Option<String>,
    /// e.g. `STANDARD`, `STANDARD_IA`, `INTELLIGENT_TIERING`.
    pub storage_class: Option<String>,
    /// Object tags.
    pub tags: Vec<(String, String)>,
    /// User metadata (`x-amz-meta-*`).
    pub metadata: Vec<(String, String)>,
}

impl Bucket {
    /// The host to connect to and sign for.
    pub fn authority(&self) -> String {
        if self.path_style { self.endpoint.authority.clone() } else { format!("{}.{}", self.name, self.endpoint.authority) }
    }

    /// What `url` (one of this bucket's request URLs) is about, for errors: `s3://BUCKET/KEY`, or for a
    /// listing `s3://BUCKET/PREFIX` (the key or prefix decoded).
    pub fn resource(&self, url: &str) -> String {
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let path = path.split_once('/').map_or("", |(_, path)| path);
        let path = if self.path_style && !self.name.is_empty() { path.split_once('/').map_or("", |(_, key)| key) } else { path };
        let prefix = query.split('&').find_map(|pair| pair.strip_prefix("prefix="));
        let key = if path.is_empty() { prefix.unwrap_or("") } else { path };
        format!("s3://{}/{}", self.name, percent_decode_str(key).decode_utf8_lossy())
    }

    fn url(&self, key: Option<&str>, query: &[(&str, &str)]) -> String {
        let mut url = format!("{}://{}/", self.endpoint.scheme, self.authority());
        if self.path_style && !self.name.is_empty() {
            url.push_str(&utf8_percent_encode(&self.name, COMPONENT).to_string());
            url.push('/');
        }
        if let Some(key) = key {
            url.push_str(&utf8_percent_encode(key, KEY_PATH).to_string());
        }
        if !query.is_empty() {
            let mut pairs: Vec<String> =
                query.iter().map(|(k, v)| format!("{}={}", utf8_percent_encode(k, COMPONENT), utf8_percent_encode(v, COMPONENT))).collect();
            pairs.sort();
            url.push('?');
            url.push_str(&pairs.join("&"));
        }
        url
    }

    /// PutObject of a whole body. With `if_none_match`, the write only succeeds when the key is free.
    pub fn put_object(&self, key: &str, publish: &PublishOptions, if_none_match: bool) -> Request {
        let request = with_publish(Request::new("PutObject", "PUT", self.url(Some(key), &[])), publish);
        if if_none_match { request.header("if-none-match", "*") } else { request }
    }

    /// CreateMultipartUpload.
    pub fn create_multipart_upload(&self, key: &str, publish: &PublishOptions) -> Request {
        with_publish(Request::new("CreateMultipartUpload", "POST", self.url(Some(key), &[("uploads", "")])), publish)
    }

    /// UploadPart number `part` (1-based).
    pub fn upload_part(&self, key: &str, upload_id: &str, part: u32) -> Request {
        let part = part.to_string();
        Request::new("UploadPart", "PUT", self.url(Some(key), &[("partNumber", &part), ("uploadId", upload_id)]))
    }

    /// CompleteMultipartUpload; the body comes from [`complete_multipart_body`].
    pub fn complete_multipart_upload(&self, key: &str, upload_id: &str, if_none_match: bool) -> Request {
        let request = Request::new("CompleteMultipartUpload", "POST", self.url(Some(key), &[("uploadId", upload_id)]))
            .header("content-type", "application/xml");
        if if_none_match { request.header("if-none-match", "*") } else { request }
    }

    /// AbortMultipartUpload.
    pub fn abort_multipart_upload(&self, key: &str, upload_id: &str) -> Request {
        Request::new("AbortMultipartUpload", "DELETE", self.url(Some(key), &[("uploadId", upload_id)]))
    }

    /// GetObject, optionally of the byte range `start..=end`.
    pub fn get_object(&self, key: &str, range: Option<(u64, u64)>) -> Request {
        let request = Request::new("GetObject", "GET", self.url(Some(key), &[]));
        match range {
            Some((start, end)) => request.header("range", format!("bytes={start}-{end}")),
            None => request,
        }
    }

    /// HeadObject.
    pub fn head_object(&self, key: &str) -> Request {
        Request::new("HeadObject", "HEAD", self.url(Some(key), &[]))
    }

    /// One page of ListObjectsV2 under `prefix`.
    pub fn list_objects_v2(&self, prefix: &str, continuation: Option<&str>) -> Request {
        let mut query = vec![("list-type", "2"), ("prefix", prefix)];
        if let Some(token) = continuation {
            query.push(("continuation-token", token));
        }
        Request::new("ListObjectsV2", "GET", self.url(None, &query))
    }

    /// One page of ListMultipartUploads under `prefix`, after the `(key, upload id)` markers of the previous page.
    pub fn list_multipart_uploads(&self, prefix: &str, after: Option<(&str, &str)>) -> Request {
        let mut query = vec![("uploads", ""), ("prefix", prefix)];
        if let Some((key, upload_id)) = after {
            query.push(("key-marker", key));
            query.push(("upload-id-marker", upload_id));
        }
        Request::new("ListMultipartUploads", "GET", self.url(None, &query))
    }

    /// One page of ListParts of an incomplete upload, after part number `after`.
    pub fn list_parts(&self, key: &str, upload_id: &str, after: Option<&str>) -> Request {
        let mut query = vec![("uploadId", upload_id)];
        if let Some(marker) = after {
            query.push(("part-number-marker", marker));
        }
        Request::new("ListParts", "GET", self.url(Some(key), &query))
    }

    /// DeleteObject.
    pub fn delete_object(&self, key: &str) -> Request {
        Request::new("DeleteObject", "DELETE", self.url(Some(key), &[]))
    }
}

fn with_publish(mut request: Request, publish: &PublishOptions) -> Request {
    let optional = [
        ("x-amz-acl", &publish.acl),
        ("x-amz-server-side-encryption", &publish.server_side_encryption),
        ("x-amz-server-side-encryption-aws-kms-key-id", &publish.sse_kms_key_id),
        ("x-amz-storage-class", &publish.storage_class),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            request = request.header(name, value.clone());
        }
    }
    if !publish.tags.is_empty() {
        let encode = |s: &str| utf8_percent_encode(s, COMPONENT).to_string();
        let tagging: Vec<String> = publish.tags.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
        request = request.header("x-amz-tagging", tagging.join("&"));
    }
    for (name, value) in &publish.metadata {
        request = request.header(&format!("x-amz-meta-{}", name.to_ascii_lowercase()), value.clone());
    }
    request
}

/// The XML body of CompleteMultipartUpload for `(part number, etag)` pairs in order.
pub fn complete_multipart_body(parts: &[(u32, String)]) -> String {
    let mut body = String::from("<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    for (number, etag) in parts {
        let etag = etag.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;");
        body.push_str(&format!("<Part><PartNumber>{number}</PartNumber><ETag>{etag}</ETag></Part>"));
    }
    body.push_str("</CompleteMultipartUpload>");
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(endpoint: &str, path_style: bool) -> Bucket {
        Bucket { endpoint: Endpoint::parse(endpoint).unwrap(), name: "my-bucket".into(), region: "us-east-1".into(), path_style }
    }

    /// A request's resource is the bucket and the decoded key, or the prefix of a listing, in either
    /// addressing style.
    #[test]
    fn names_the_resource_of_a_request() {
        for path_style in [true, false] {
            let b = bucket("https://s3.example.test", path_style);
            assert_eq!(b.resource(&b.get_object("team/a b/k.tar.zst", None).url), "s3://my-bucket/team/a b/k.tar.zst");
            assert_eq!(b.resource(&b.list_objects_v2("team/main/", Some("t")).url), "s3://my-bucket/team/main/");
            assert_eq!(b.resource(&b.upload_part("x/é", "id", 2).url), "s3://my-bucket/x/é");
        }
    }

    /// Endpoints parse with or without the default port; IPs and localhost need path style.
    #[test]
    fn parses_endpoints() {
        let e = Endpoint::parse("http://127.0.0.1:9000/").unwrap();
        assert_eq!((e.scheme.as_str(), e.authority.as_str(), e.host()), ("http", "127.0.0.1:9000", "127.0.0.1"));
        assert!(e.needs_path_style());
        assert!(Endpoint::parse("http://localhost:1").unwrap().needs_path_style());
        assert!(Endpoint::parse("http://[::1]:9000").unwrap().needs_path_style());
        let e = Endpoint::parse("https://s3.example.com:443").unwrap();
        assert_eq!(e.authority, "s3.example.com");
        assert!(!e.needs_path_style());
        assert_eq!(
            Endpoint::parse("HTTP://Minio.local:9000").unwrap(),
            Endpoint { scheme: "http".into(), authority: "minio.local:9000".into() }
        );
    }

    /// An endpoint without a scheme is refused, never guessed, and the message says what to write;
    /// other schemes, paths, user info and half-written schemes are refused too.
    #[test]
    fn refuses_endpoints_without_a_scheme() {
        let err = Endpoint::parse("127.0.0.1:9000").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"endpoint "127.0.0.1:9000" has no scheme: write http://127.0.0.1:9000 for a plain-HTTP server or https://127.0.0.1:9000 for TLS"#
        );
        for bare in ["minio.local:9000", "localhost:9000", "minio", "s3.eu-west-1.amazonaws.com", "[::1]:9000"] {
            assert_eq!(Endpoint::parse(bare), Err(EndpointError::NoScheme { url: bare.into() }), "{bare}");
        }
        assert_eq!(Endpoint::parse("//minio:9000"), Err(EndpointError::NoScheme { url: "minio:9000".into() }));
        for other in ["ftp://x", "s3://bucket", "tcp://127.0.0.1:9000"] {
            assert_eq!(Endpoint::parse(other), Err(EndpointError::Scheme { url: other.into() }), "{other}");
        }
        for malformed in ["http://x/path", "http://user@x", "http://", "https:/x", "http:x:9000", "HTTPS:x"] {
            assert_eq!(Endpoint::parse(malformed), Err(EndpointError::Malformed { url: malformed.into() }), "{malformed}");
        }
    }

    /// AWS's dual-stack and accelerate endpoints; a public URL has no bucket segment.
    #[test]
    fn builds_aws_endpoints() {
        assert_eq!(Endpoint::aws("eu-west-1", true).authority, "s3.dualstack.eu-west-1.amazonaws.com");
        assert_eq!(Endpoint::accelerate(false).authority, "s3-accelerate.amazonaws.com");
        let public = Bucket {
            endpoint: Endpoint::parse("https://cdn.example.com").unwrap(),
            name: String::new(),
            region: "auto".into(),
            path_style: true,
        };
        assert_eq!(public.get_object("caches/k", None).url, "https://cdn.example.com/caches/k");
    }

    /// Keys are percent-encoded per segment; `/` stays, spaces and non-ASCII do not.
    #[test]
    fn encodes_object_urls() {
        let b = bucket("http://127.0.0.1:9000", true);
        assert_eq!(b.get_object("a b/ü+x.tar.zst", None).url, "http://127.0.0.1:9000/my-bucket/a%20b/%C3%BC%2Bx.tar.zst");
        let v = bucket("https://s3.us-east-1.amazonaws.com", false);
        assert_eq!(v.head_object("k").url, "https://my-bucket.s3.us-east-1.amazonaws.com/k");
    }

    /// Query parameters are encoded strictly and sorted.
    #[test]
    fn builds_queries() {
        let b = bucket("http://localhost:9000", true);
        assert_eq!(
            b.list_objects_v2("cache/a b", Some("t/1=")).url,
            "http://localhost:9000/my-bucket/?continuation-token=t%2F1%3D&list-type=2&prefix=cache%2Fa%20b"
        );
        assert_eq!(b.upload_part("k", "id+1", 3).url, "http://localhost:9000/my-bucket/k?partNumber=3&uploadId=id%2B1");
        assert_eq!(b.create_multipart_upload("k", &PublishOptions::default()).url, "http://localhost:9000/my-bucket/k?uploads=");
        assert_eq!(
            b.list_multipart_uploads("ci/", Some(("ci/k", "u+1"))).url,
            "http://localhost:9000/my-bucket/?key-marker=ci%2Fk&prefix=ci%2F&upload-id-marker=u%2B1&uploads="
        );
        assert_eq!(b.list_parts("k", "u", Some("7")).url, "http://localhost:9000/my-bucket/k?part-number-marker=7&uploadId=u");
    }

    /// Publishing options become headers; conditional writes add `if-none-match: *`; ranges are inclusive.
    #[test]
    fn sets_headers() {
        let b = bucket("http://localhost:9000", true);
        let publish = PublishOptions {
            acl: Some("public-read".into()),
            server_side_encryption: Some("aws:kms".into()),
            sse_kms_key_id: Some("key-1".into()),
            storage_class: Some("STANDARD_IA".into()),
            tags: vec![("team".into(), "a b".into()), ("ci".into(), "yes".into())],
            metadata: vec![("Format".into(), "1".into())],
        };
        let put = b.put_object("k", &publish, true);
        let expected: Vec<(String, String)> = [
            ("x-amz-acl", "public-read"),
            ("x-amz-server-side-encryption", "aws:kms"),
            ("x-amz-server-side-encryption-aws-kms-key-id", "key-1"),
            ("x-amz-storage-class", "STANDARD_IA"),
            ("x-amz-tagging", "team=a%20b&ci=yes"),
            ("x-amz-meta-format", "1"),
            ("if-none-match", "*"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(put.headers, expected);
        let get = b.get_object("k", Some((0, 99)));
        assert_eq!(get.headers, vec![("range".to_string(), "bytes=0-99".to_string())]);
    }

    /// The completion body lists parts in order with escaped ETags.
    #[test]
    fn builds_completion_body() {
        let body = complete_multipart_body(&[(1, "\"a\"".into()), (2, "\"b\"".into())]);
        assert!(body.contains("<Part><PartNumber>1</PartNumber><ETag>&quot;a&quot;</ETag></Part><Part><PartNumber>2</PartNumber>"));
    }
}
