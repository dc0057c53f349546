//! Credentials from services: STS (AssumeRole, AssumeRoleWithWebIdentity), the ECS container
//! endpoint and EC2's instance metadata (IMDSv2).
//!
//! These calls run before any cache work, so each is short: a 1 s connect timeout and a few seconds in
//! all. An instance-metadata endpoint that does not answer means "not on EC2" and the chain ends; a
//! container URI that is not HTTPS or a link-local/loopback address is refused without a request.

use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::{ChainInputs, CredentialError, Credentials, Resolved};
use crate::env_vars;
use crate::store::s3::connection::describe;
use crate::store::s3::request::{Endpoint, Request};
use crate::store::s3::signing::{Payload, sign_for_service};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
const IMDS_TIMEOUT: Duration = Duration::from_secs(2);

fn agent(total: Duration) -> ureq::Agent {
    agent_with(CONNECT_TIMEOUT, total)
}

fn agent_with(connect: Duration, total: Duration) -> ureq::Agent {
    crate::store::s3::connection::agent(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(connect))
            .timeout_global(Some(total))
            .build(),
    )
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)))
        .collect::<Vec<_>>()
        .join("&")
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsResponse {
    #[serde(alias = "AssumeRoleResult", alias = "AssumeRoleWithWebIdentityResult")]
    result: StsResult,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsResult {
    credentials: StsCredentials,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsCredentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
}

fn sts_endpoint(inputs: &ChainInputs<'_>, region: &str) -> Result<Endpoint, String> {
    let named = |name: &'static str| inputs.var(name).map(|url| (name, url));
    match named(env_vars::AWS_ENDPOINT_URL_STS).or_else(|| named(env_vars::AWS_ENDPOINT_URL)) {
        Some((name, url)) => Endpoint::parse(&url).map_err(|e| format!("{name}: {e}")),
        None => Ok(Endpoint { scheme: "https".into(), authority: format!("sts.{region}.amazonaws.com") }),
    }
}

/// Posts an STS action; signs it when `signer` is given.
fn call_sts(inputs: &ChainInputs<'_>, region: &str, body: &str, signer: Option<&Credentials>) -> Result<Credentials, String> {
    let endpoint = sts_endpoint(inputs, region)?;
    let url = format!("{}://{}/", endpoint.scheme, endpoint.authority);
    let request = Request {
        operation: "STS",
        method: "POST",
        url: url.clone(),
        headers: vec![("content-type".into(), "application/x-www-form-urlencoded".into())],
    };
    let mut builder = http::Request::builder().method("POST").uri(&url).header("content-type", "application/x-www-form-urlencoded");
    if let Some(signer) = signer {
        let headers =
            sign_for_service(&request, &endpoint.authority, Payload::Signed(body.as_bytes()), signer, region, "sts", SystemTime::now())?;
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
    }
    let request = builder.body(body.as_bytes()).map_err(|e| e.to_string())?;
    let mut response = agent(CALL_TIMEOUT).run(request).map_err(|e| format!("STS at {url}: {}", describe(&e, &endpoint.authority)))?;
    let status = response.status();
    let text = response.body_mut().with_config().limit(1 << 20).read_to_string().map_err(|e| e.to_string())?;
    if !status.is_success() {
        let error = crate::store::s3::xml::parse_error(&text).unwrap_or_default();
        return Err(format!("STS answered {status}: {} {}", error.code, error.message).trim_end().to_owned());
    }
    let parsed: StsResponse = quick_xml::de::from_str(&text).map_err(|e| format!("unreadable STS answer: {e}"))?;
    let c = parsed.result.credentials;
    Ok(Credentials { access_key_id: c.access_key_id, secret_access_key: c.secret_access_key, session_token: Some(c.session_token) })
}

/// STS AssumeRole with `base` credentials.
pub(super) fn assume_role(
    inputs: &ChainInputs<'_>,
    base: &Credentials,
    role_arn: &str,
    session: &str,
    external_id: Option<&str>,
    region: &str,
) -> Result<Credentials, String> {
    let mut pairs = vec![("Action", "AssumeRole"), ("Version", "2011-06-15"), ("RoleArn", role_arn), ("RoleSessionName", session)];
    if let Some(external_id) = external_id {
        pairs.push(("ExternalId", external_id));
    }
    call_sts(inputs, region, &form(&pairs), Some(base))
}

/// Web identity (GitHub OIDC, EKS IRSA): `AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE`.
pub(super) fn web_identity(inputs: &ChainInputs<'_>) -> Result<Option<Resolved>, CredentialError> {
    let (Some(role_arn), Some(token_file)) = (inputs.var(env_vars::AWS_ROLE_ARN), inputs.var(env_vars::AWS_WEB_IDENTITY_TOKEN_FILE)) else {
        return Ok(None);
    };
    let source = "web identity";
    let token = std::fs::read_to_string(&token_file)
        .map_err(|e| CredentialError::new(source, format!("cannot read {} {token_file}: {e}", env_vars::AWS_WEB_IDENTITY_TOKEN_FILE)))?;
    let session = inputs.var(env_vars::AWS_ROLE_SESSION_NAME).unwrap_or_else(|| "s3cache".into());
    let body = form(&[
        ("Action", "AssumeRoleWithWebIdentity"),
        ("Version", "2011-06-15"),
        ("RoleArn", &role_arn),
        ("RoleSessionName", &session),
        ("WebIdentityToken", token.trim()),
    ]);
    let credentials = call_sts(inputs, &inputs.region, &body, None).map_err(|m| CredentialError::new(source, m))?;
    Ok(Some(Resolved { credentials, source: source.into() }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct JsonCredentials {
    access_key_id: String,
    secret_access_key: String,
    token: Option<String>,
}

impl From<JsonCredentials> for Credentials {
    fn from(c: JsonCredentials) -> Self {
        Credentials { access_key_id: c.access_key_id, secret_access_key: c.secret_access_key, session_token: c.token }
    }
}

/// Whether a full container-credentials URI may be used: HTTPS, or HTTP to loopback or the ECS/EKS
/// link-local addresses. Anything else could send the token to an attacker.
pub fn container_uri_allowed(uri: &str) -> bool {
    let Some((scheme, rest)) = uri.split_once("://") else { return false };
    let authority = rest.split('/').next().unwrap_or_default();
    let Ok(endpoint) = Endpoint::parse(&format!("{scheme}://{authority}")) else { return false };
    if endpoint.is_tls() {
        return true;
    }
    let host = endpoint.host();
    if host == "localhost" || host == "169.254.170.2" || host == "169.254.170.23" || host == "fd00:ec2::23" {
        return true;
    }
    host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// ECS (and EKS Pod Identity) container credentials.
pub(super) fn container(inputs: &ChainInputs<'_>) -> Result<Option<Resolved>, CredentialError> {
    let source = "ECS container";
    let uri = match (inputs.var(env_vars::AWS_CONTAINER_CREDENTIALS_RELATIVE_URI), inputs.var(env_vars::AWS_CONTAINER_CREDENTIALS_FULL_URI))
    {
        (Some(relative), _) => format!("http://169.254.170.2{relative}"),
        (None, Some(full)) => {
            if !container_uri_allowed(&full) {
                return Err(CredentialError::new(
                    source,
                    format!(
                        "{} must be https, or http to loopback or 169.254.170.2/23; refusing {full}",
                        env_vars::AWS_CONTAINER_CREDENTIALS_FULL_URI
                    ),
                ));
            }
            full
        }
        (None, None) => return Ok(None),
    };
    let token = match inputs.var(env_vars::AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE) {
        Some(file) => Some(
            std::fs::read_to_string(&file).map_err(|e| CredentialError::new(source, format!("cannot read {file}: {e}")))?.trim().to_owned(),
        ),
        None => inputs.var(env_vars::AWS_CONTAINER_AUTHORIZATION_TOKEN),
    };
    let mut request = http::Request::builder().method("GET").uri(&uri);
    if let Some(token) = token {
        request = request.header("authorization", token);
    }
    let request = request.body(()).map_err(|e| CredentialError::new(source, e.to_string()))?;
    let authority = request.uri().authority().map(|a| a.to_string()).unwrap_or_default();
    let mut response =
        agent(CALL_TIMEOUT).run(request).map_err(|e| CredentialError::new(source, format!("{uri}: {}", describe(&e, &authority))))?;
    if !response.status().is_success() {
        return Err(CredentialError::new(source, format!("{uri} answered {}", response.status())));
    }
    let text =
        response.body_mut().with_config().limit(1 << 20).read_to_string().map_err(|e| CredentialError::new(source, e.to_string()))?;
    let credentials: JsonCredentials =
        serde_json::from_str(&text).map_err(|e| CredentialError::new(source, format!("unreadable answer: {e}")))?;
    Ok(Some(Resolved { credentials: credentials.into(), source: source.into() }))
}

/// EC2 instance metadata, version 2 (session token first). Absent or silent means "not on EC2".
pub(super) fn instance_metadata(inputs: &ChainInputs<'_>) -> Result<Option<Resolved>, CredentialError> {
    if inputs.var(env_vars::AWS_EC2_METADATA_DISABLED).is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    let base = inputs.var(env_vars::AWS_EC2_METADATA_SERVICE_ENDPOINT).unwrap_or_else(|| "http://169.254.169.254".into());
    let base = base.trim_end_matches('/');
    // The SDKs' AWS_METADATA_SERVICE_TIMEOUT (seconds) overrides the short default, for connecting too.
    let timeout = inputs
        .var(env_vars::AWS_METADATA_SERVICE_TIMEOUT)
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .map_or(IMDS_TIMEOUT, Duration::from_secs_f64);
    let agent = agent_with(timeout, timeout);
    let source = "EC2 instance metadata";
    let token_request = http::Request::builder()
        .method("PUT")
        .uri(format!("{base}/latest/api/token"))
        .header("x-aws-ec2-metadata-token-ttl-seconds", "21600")
        .body(())
        .map_err(|e| CredentialError::new(source, e.to_string()))?;
    let Ok(mut response) = agent.run(token_request) else {
        return Ok(None); // nothing answers: not on EC2
    };
    if !response.status().is_success() {
        return Ok(None);
    }
    let token = response.body_mut().read_to_string().map_err(|e| CredentialError::new(source, e.to_string()))?;
    let get = |path: &str| -> Result<String, CredentialError> {
        let request = http::Request::builder()
            .method("GET")
            .uri(format!("{base}{path}"))
            .header("x-aws-ec2-metadata-token", token.trim())
            .body(())
            .map_err(|e| CredentialError::new(source, e.to_string()))?;
        let mut response = agent.run(request).map_err(|e| CredentialError::new(source, e.to_string()))?;
        if !response.status().is_success() {
            return Err(CredentialError::new(source, format!("{path} answered {}", response.status())));
        }
        response.body_mut().with_config().limit(1 << 20).read_to_string().map_err(|e| CredentialError::new(source, e.to_string()))
    };
    let roles = get("/latest/meta-data/iam/security-credentials/")?;
    let role =
        roles.lines().next().filter(|r| !r.is_empty()).ok_or_else(|| CredentialError::new(source, "no instance role is attached"))?;
    let text = get(&format!("/latest/meta-data/iam/security-credentials/{role}"))?;
    let credentials: JsonCredentials =
        serde_json::from_str(&text).map_err(|e| CredentialError::new(source, format!("unreadable answer: {e}")))?;
    Ok(Some(Resolved { credentials: credentials.into(), source: source.into() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only HTTPS or loopback/link-local container endpoints are trusted with the token.
    #[test]
    fn checks_container_uris() {
        for ok in [
            "https://creds.example.com/x",
            "http://127.0.0.1:9000/creds",
            "http://localhost/x",
            "http://169.254.170.23/v1/credentials",
            "http://[::1]:80/x",
        ] {
            assert!(container_uri_allowed(ok), "{ok}");
        }
        for bad in ["http://10.1.2.3/creds", "http://evil.example/", "ftp://127.0.0.1/", "127.0.0.1/creds"] {
            assert!(!container_uri_allowed(bad), "{bad}");
        }
    }

    /// STS answers of both actions parse.
    #[test]
    fn parses_sts_answers() {
        let body = concat!(
            "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleWithWebIdentityResult>",
            "<Credentials><AccessKeyId>AK</AccessKeyId><SecretAccessKey>SK</SecretAccessKey><SessionToken>T</SessionToken>",
            "<Expiration>2026-11-22T03:00:00Z</Expiration></Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"
        );
        let parsed: StsResponse = quick_xml::de::from_str(body).unwrap();
        assert_eq!(parsed.result.credentials.session_token, "T");
        let body = concat!(
            "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>AK</AccessKeyId><SecretAccessKey>SK</SecretAccessKey>",
            "<SessionToken>T2</SessionToken></Credentials></AssumeRoleResult></AssumeRoleResponse>"
        );
        let parsed: StsResponse = quick_xml::de::from_str(body).unwrap();
        assert_eq!(parsed.result.credentials.access_key_id, "AK");
    }
}
