//! AWS credentials, and where they come from: the AWS SDKs' provider chain, in their order.
//!
//! 1. explicit: `S3CACHE_ACCESS_KEY_ID` / `S3CACHE_SECRET_ACCESS_KEY` / `S3CACHE_SESSION_TOKEN`, which
//!    the CI front ends set from their inputs (or [`crate::S3Options::credentials`] in the library);
//! 2. `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`;
//! 3. the profile (`AWS_PROFILE`, else `default`) in `~/.aws/credentials` and `~/.aws/config`, with
//!    `credential_process` and `role_arn` + `source_profile` (`profile`);
//! 4. web identity: `AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE` (GitHub OIDC) via STS (`remote`);
//! 5. ECS container credentials; 6. EC2 IMDSv2 (`remote`).
//!
//! Then, when `S3CACHE_ASSUME_ROLE_ARN` is set, the credentials found are used to assume that role
//! (STS AssumeRole), as the CI plugins' `assume_role_arn` settings do.
//!
//! Empty values count as unset. A provider that is absent gives way at once; one that is configured
//! but fails is an error that names it, so a typo never silently falls through to another identity.
//! Secrets never reach `Debug` output or logs, and every secret obtained is registered for scrubbing.

mod profile;
mod remote;

use std::path::PathBuf;

use crate::env_vars;
use crate::store::s3::key_pair::Credentials;

/// A credential provider that was configured but failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("credentials from {source_name}: {message}")]
pub struct CredentialError {
    /// The provider (`profile ci`, `web identity`, ...).
    pub source_name: String,
    /// What went wrong.
    pub message: String,
}

impl CredentialError {
    pub(crate) fn new(source_name: impl Into<String>, message: impl Into<String>) -> Self {
        Self { source_name: source_name.into(), message: message.into() }
    }
}

/// Credentials and the provider that gave them.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The credentials.
    pub credentials: Credentials,
    /// e.g. `environment`, `profile ci`, `web identity`, `ECS container`, `EC2 instance metadata`.
    pub source: String,
}

/// What the chain may read.
pub struct ChainInputs<'a> {
    /// The environment variables the providers read.
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// The home directory, for `~/.aws`.
    pub home: Option<PathBuf>,
    /// The region STS is called in when nothing more specific is configured.
    pub region: String,
}

impl std::fmt::Debug for ChainInputs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainInputs").field("home", &self.home).field("region", &self.region).finish_non_exhaustive()
    }
}

impl ChainInputs<'_> {
    /// A variable, with empty counted as unset.
    pub(crate) fn var(&self, name: &str) -> Option<String> {
        (self.env)(name).filter(|v| !v.is_empty())
    }
}

/// Walks the chain and assumes `S3CACHE_ASSUME_ROLE_ARN` with what it found; `None` when no provider
/// is configured at all (a role to assume then is an error: it needs credentials to be assumed with).
pub fn resolve_chain(inputs: &ChainInputs<'_>) -> Result<Option<Resolved>, CredentialError> {
    let base = base_credentials(inputs)?;
    let Some(role_arn) = inputs.var(env_vars::S3CACHE_ASSUME_ROLE_ARN) else { return Ok(base) };
    let source = format!("role {role_arn}");
    let Some(base) = base else {
        return Err(CredentialError::new(
            source,
            format!("{} needs credentials to assume it with, and the chain found none", env_vars::S3CACHE_ASSUME_ROLE_ARN),
        ));
    };
    let session = inputs.var(env_vars::S3CACHE_ASSUME_ROLE_SESSION_NAME).unwrap_or_else(|| "s3cache".into());
    let external_id = inputs.var(env_vars::S3CACHE_ASSUME_ROLE_EXTERNAL_ID);
    let credentials = remote::assume_role(inputs, &base.credentials, &role_arn, &session, external_id.as_deref(), &inputs.region)
        .map_err(|m| CredentialError::new(&source, m))?;
    Ok(Some(Resolved { credentials, source: format!("{source} (assumed with {})", base.source) }))
}

/// The chain's providers in order, before any role is assumed.
fn base_credentials(inputs: &ChainInputs<'_>) -> Result<Option<Resolved>, CredentialError> {
    let explicit = |name: &str| inputs.var(name);
    let explicit = Credentials::from_vars(
        explicit,
        env_vars::S3CACHE_ACCESS_KEY_ID,
        env_vars::S3CACHE_SECRET_ACCESS_KEY,
        env_vars::S3CACHE_SESSION_TOKEN,
    )
    .map_err(|half| CredentialError::new("explicit settings", half.to_string()))?;
    if let Some(credentials) = explicit {
        return Ok(Some(Resolved { credentials, source: "explicit settings".into() }));
    }
    if let Some(credentials) =
        Credentials::from_env(|name| inputs.var(name)).map_err(|half| CredentialError::new("environment", half.to_string()))?
    {
        return Ok(Some(Resolved { credentials, source: "environment".into() }));
    }
    if let Some(resolved) = profile::resolve(inputs)? {
        return Ok(Some(resolved));
    }
    if let Some(resolved) = remote::web_identity(inputs)? {
        return Ok(Some(resolved));
    }
    if let Some(resolved) = remote::container(inputs)? {
        return Ok(Some(resolved));
    }
    remote::instance_metadata(inputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    /// A full pair with a token is read; empty values count as unset.
    #[test]
    fn reads_the_environment() {
        let creds = Credentials::from_env(env(&[("AWS_ACCESS_KEY_ID", "AK"), ("AWS_SECRET_ACCESS_KEY", "SK"), ("AWS_SESSION_TOKEN", "")]))
            .unwrap()
            .unwrap();
        assert_eq!(creds.session_token, None);
        assert_eq!(Credentials::from_env(env(&[("AWS_ACCESS_KEY_ID", "")])).unwrap(), None);
        assert!(Credentials::from_env(env(&[("AWS_ACCESS_KEY_ID", "AK")])).is_err());
    }

    /// `Debug` never shows the secret or the token.
    #[test]
    fn debug_hides_secrets() {
        let creds = Credentials { access_key_id: "AK".into(), secret_access_key: "SECRET".into(), session_token: Some("TOKEN".into()) };
        let shown = format!("{creds:?}");
        assert!(!shown.contains("SECRET") && !shown.contains("TOKEN"), "{shown}");
    }
}
