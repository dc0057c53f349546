//! The HTTP side of the server, kept apart from the protocols: a request's parts as the handlers see
//! them ([`Incoming`]), their answers ([`Answer`]: a status, headers and a body in memory or
//! streamed), the error bodies of each protocol, and the parsing of queries, `Content-Range` and
//! `Range`.

use std::io::Read;

/// A request as the handlers see it: method, the path without its query, the decoded query, and
/// the headers by lowercase name.
pub(crate) struct Incoming<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    /// The body's length when the request says (`Content-Length`); `None` for a chunked body.
    pub body_length: Option<u64>,
    pub body: &'a mut dyn Read,
}

impl Incoming<'_> {
    /// The first header called `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The first query parameter called `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The body read whole, as long as it is at most `limit` bytes; `Err` says why not.
    pub fn small_body(&mut self, limit: u64) -> Result<Vec<u8>, String> {
        if self.body_length.is_some_and(|n| n > limit) {
            return Err(format!("the request body is over {limit} bytes"));
        }
        let mut body = Vec::new();
        self.body.take(limit + 1).read_to_end(&mut body).map_err(|e| format!("reading the request body: {e}"))?;
        if body.len() as u64 > limit {
            return Err(format!("the request body is over {limit} bytes"));
        }
        Ok(body)
    }
}

/// What an answer's body is.
pub(crate) enum Body {
    Bytes(Vec<u8>),
    /// A stream of exactly this many bytes.
    Stream(Box<dyn Read + Send>, u64),
}

/// An answer: status, headers and body.
pub(crate) struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Answer {
    /// An answer with no body.
    pub fn empty(status: u16) -> Self {
        Self { status, headers: Vec::new(), body: Body::Bytes(Vec::new()) }
    }

    /// A JSON answer.
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self::empty(status).with_body("application/json", serde_json::to_vec(value).expect("JSON values serialize"))
    }

    /// A v1 REST error: the toolkit shows the `message` field.
    pub fn v1_error(status: u16, message: &str) -> Self {
        Self::json(status, &serde_json::json!({ "message": message }))
    }

    /// A Twirp error: `code` is Twirp's (`invalid_argument`, `not_found`, ...), `msg` what the toolkit shows.
    pub fn twirp_error(status: u16, code: &str, message: &str) -> Self {
        Self::json(status, &serde_json::json!({ "code": code, "msg": message }))
    }

    /// An Azure Blob error: its code in the body and in `x-ms-error-code`.
    pub fn blob_error(status: u16, code: &str, message: &str) -> Self {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>{}</Message></Error>",
            xml_escape(message)
        );
        Self::empty(status).with_body("application/xml", body.into_bytes()).with_header("x-ms-error-code", code)
    }

    /// This answer with a header added.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    fn with_body(self, content_type: &str, body: Vec<u8>) -> Self {
        Self { body: Body::Bytes(body), ..self.with_header("content-type", content_type) }
    }
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A query string's parameters, percent-decoded (`+` is a space, as forms write it).
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    let decode = |text: &str| percent_encoding::percent_decode_str(&text.replace('+', " ")).decode_utf8_lossy().into_owned();
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) => (decode(name), decode(value)),
            None => (decode(pair), String::new()),
        })
        .collect()
}

/// The first and last byte of a `Content-Range: bytes S-E/*` (or `/TOTAL`).
pub fn content_range(value: &str) -> Result<(u64, u64), String> {
    let bad = || format!("Content-Range {value:?} is not bytes START-END/*");
    let range = value.trim().strip_prefix("bytes ").ok_or_else(bad)?;
    let (span, _total) = range.split_once('/').ok_or_else(bad)?;
    let (start, end) = span.split_once('-').ok_or_else(bad)?;
    let (start, end): (u64, u64) = (start.trim().parse().map_err(|_| bad())?, end.trim().parse().map_err(|_| bad())?);
    if end < start {
        return Err(format!("Content-Range {value:?} ends before it starts"));
    }
    Ok((start, end))
}

/// What a `Range` header asks of an object of `size` bytes: `Ok(None)` for the whole object,
/// `Ok(Some((first, last)))` for one satisfiable range, `Err(())` for an unsatisfiable one.
pub fn byte_range(value: Option<&str>, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else { return Ok(None) };
    // One range only; a list of them is answered whole, as servers may.
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.split_once('-') else { return Ok(None) };
    let (first, last) = match (first.trim(), last.trim()) {
        ("", suffix) => {
            let suffix: u64 = suffix.parse().map_err(|_| ())?;
            if suffix == 0 {
                return Err(());
            }
            (size.saturating_sub(suffix), size.saturating_sub(1))
        }
        (first, "") => (first.parse().map_err(|_| ())?, size.saturating_sub(1)),
        (first, last) => {
            let (first, last): (u64, u64) = (first.parse().map_err(|_| ())?, last.parse().map_err(|_| ())?);
            if last < first {
                return Ok(None);
            }
            (first, last.min(size.saturating_sub(1)))
        }
    };
    if first >= size { Err(()) } else { Ok(Some((first, last))) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_queries_and_ranges() {
        assert_eq!(
            query_pairs("keys=a%2Cb&version=v&blockid=YWJj%3D%3D&x"),
            vec![
                ("keys".into(), "a,b".into()),
                ("version".into(), "v".into()),
                ("blockid".into(), "YWJj==".into()),
                ("x".into(), "".into())
            ]
        );
        assert_eq!(content_range("bytes 0-33554431/*"), Ok((0, 33_554_431)));
        assert_eq!(content_range("bytes 5-4/*"), Err("Content-Range \"bytes 5-4/*\" ends before it starts".into()));
        assert_eq!(content_range("5-9"), Err("Content-Range \"5-9\" is not bytes START-END/*".into()));
        assert_eq!(byte_range(None, 10), Ok(None));
        assert_eq!(byte_range(Some("bytes=0-0"), 10), Ok(Some((0, 0))));
        assert_eq!(byte_range(Some("bytes=4-"), 10), Ok(Some((4, 9))));
        assert_eq!(byte_range(Some("bytes=-3"), 10), Ok(Some((7, 9))));
        assert_eq!(byte_range(Some("bytes=2-100"), 10), Ok(Some((2, 9))));
        assert_eq!(byte_range(Some("bytes=10-"), 10), Err(()));
        assert_eq!(byte_range(Some("bytes=0-0"), 0), Err(()));
    }
}
