//! SigV4 signing of S3 requests with `aws-sigv4`, the time passed in.
//!
//! S3 differs from other AWS services in two ways the settings below encode: the path is
//! percent-encoded once, not twice, and never normalized (`a/../b` is a key, not a path). The payload
//! is hashed into `x-amz-content-sha256` over plain HTTP; over TLS it is `UNSIGNED-PAYLOAD`, as the AWS
//! CLI does for streaming uploads, which saves a SHA-256 pass over every byte.

use std::time::SystemTime;

use aws_credential_types::Credentials as AwsCredentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings, UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;

use super::key_pair::Credentials;
use super::request::Request;

/// What of the body goes into the signature.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    /// Hash these bytes (the whole body).
    Signed(&'a [u8]),
    /// Send `UNSIGNED-PAYLOAD`.
    Unsigned,
}

/// The headers that sign `request` for `host` at `time`: `authorization`, `x-amz-date`,
/// `x-amz-content-sha256`, and `x-amz-security-token` when there is a session token.
pub fn sign_request(
    request: &Request,
    host: &str,
    payload: Payload<'_>,
    credentials: &Credentials,
    region: &str,
    time: SystemTime,
) -> Result<Vec<(String, String)>, String> {
    sign_for_service(request, host, payload, credentials, region, "s3", time)
}

/// [`sign_request`] for another AWS service (`sts`).
pub fn sign_for_service(
    request: &Request,
    host: &str,
    payload: Payload<'_>,
    credentials: &Credentials,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<Vec<(String, String)>, String> {
    let identity =
        AwsCredentials::new(&credentials.access_key_id, &credentials.secret_access_key, credentials.session_token.clone(), None, "s3cache")
            .into();
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| format!("signing parameters: {e}"))?
        .into();
    let headers = std::iter::once(("host", host)).chain(request.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let body = match payload {
        Payload::Signed(bytes) => SignableBody::Bytes(bytes),
        Payload::Unsigned => SignableBody::UnsignedPayload,
    };
    let signable = SignableRequest::new(request.method, request.url.as_str(), headers, body)
        .map_err(|e| format!("signing {}: {e}", request.operation))?;
    let (instructions, _signature) = sign(signable, &params).map_err(|e| format!("signing {}: {e}", request.operation))?.into_parts();
    let (headers, _query) = instructions.into_parts();
    Ok(headers.into_iter().map(|h| (h.name().to_owned(), h.value().to_owned())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::s3::request::{Bucket, Endpoint};
    use std::time::{Duration, UNIX_EPOCH};

    /// AWS's published example credentials (Signature Version 4 examples in the S3 API reference).
    fn example_credentials() -> Credentials {
        Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        }
    }

    fn example_bucket() -> Bucket {
        Bucket {
            endpoint: Endpoint::parse("https://s3.amazonaws.com").unwrap(),
            name: "examplebucket".into(),
            region: "us-east-1".into(),
            path_style: false,
        }
    }

    /// 2013-05-24T00:00:00Z, the example's timestamp.
    fn example_time() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_369_353_600)
    }

    fn authorization(headers: &[(String, String)]) -> &str {
        &headers.iter().find(|(k, _)| k == "authorization").unwrap().1
    }

    /// AWS example "GET Object": a ranged GET of /test.txt.
    #[test]
    fn matches_the_aws_get_object_example() {
        let bucket = example_bucket();
        let request = bucket.get_object("test.txt", Some((0, 9)));
        let headers =
            sign_request(&request, &bucket.authority(), Payload::Signed(b""), &example_credentials(), "us-east-1", example_time()).unwrap();
        assert_eq!(
            authorization(&headers),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        assert!(headers.contains(&("x-amz-date".into(), "20130524T000000Z".into())));
        assert!(
            headers.contains(&("x-amz-content-sha256".into(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into()))
        );
    }

    /// AWS example "GET Bucket (List Objects)": `?max-keys=2&prefix=J`.
    #[test]
    fn matches_the_aws_list_objects_example() {
        let bucket = example_bucket();
        let request = Request {
            operation: "ListObjects",
            method: "GET",
            url: "https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J".into(),
            headers: vec![],
        };
        let headers =
            sign_request(&request, &bucket.authority(), Payload::Signed(b""), &example_credentials(), "us-east-1", example_time()).unwrap();
        assert!(
            authorization(&headers).ends_with("Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"),
            "{headers:?}"
        );
    }

    /// A session token is sent and signed; over TLS the payload is unsigned.
    #[test]
    fn signs_session_tokens_and_unsigned_payloads() {
        let bucket = example_bucket();
        let mut credentials = example_credentials();
        credentials.session_token = Some("TOKEN".into());
        let request = bucket.put_object("k", &crate::store::s3::PublishOptions::default(), false);
        let headers = sign_request(&request, &bucket.authority(), Payload::Unsigned, &credentials, "us-east-1", example_time()).unwrap();
        assert!(headers.contains(&("x-amz-security-token".into(), "TOKEN".into())));
        assert!(headers.contains(&("x-amz-content-sha256".into(), "UNSIGNED-PAYLOAD".into())));
        assert!(authorization(&headers).contains("x-amz-security-token"));
    }
}
