//! An access key pair: what requests are signed with ([`super::signing`]), wherever the credential
//! chain ([`super::credentials`]) found it.

use crate::env_vars;

/// An access key pair with an optional session token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The access key id (`AKIA...`); not secret.
    pub access_key_id: String,
    /// The secret key; never printed.
    pub secret_access_key: String,
    /// The session token of temporary credentials; never printed.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Credentials {
    /// Reads `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` through `lookup`.
    /// Empty values count as unset, as in the AWS SDKs. `None` when no key pair is set.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, HalfKeyPair> {
        Self::from_vars(lookup, env_vars::AWS_ACCESS_KEY_ID, env_vars::AWS_SECRET_ACCESS_KEY, env_vars::AWS_SESSION_TOKEN)
    }

    /// A key pair (and token) from three named variables; half a pair is an error naming the missing one.
    pub fn from_vars(lookup: impl Fn(&str) -> Option<String>, id: &str, secret: &str, token: &str) -> Result<Option<Self>, HalfKeyPair> {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
        match (get(id), get(secret)) {
            (Some(access_key_id), Some(secret_access_key)) => {
                Ok(Some(Self { access_key_id, secret_access_key, session_token: get(token) }))
            }
            (None, None) => Ok(None),
            (Some(_), None) => Err(HalfKeyPair { set: id.to_owned(), missing: secret.to_owned() }),
            (None, Some(_)) => Err(HalfKeyPair { set: secret.to_owned(), missing: id.to_owned() }),
        }
    }

    /// The secret values, for scrubbing them from any text that leaves the process.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.secret_access_key.as_str()).chain(self.session_token.as_deref())
    }
}

/// Half a key pair: the access key id without its secret, or the secret without its id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{set} is set but {missing} is not")]
pub struct HalfKeyPair {
    /// The variable or profile field that is set.
    pub set: String,
    /// Its missing other half.
    pub missing: String,
}
