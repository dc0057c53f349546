//! AWS credentials, and where they come from. Secrets never reach `Debug` output or logs.

use crate::env_vars;

/// An access key pair with an optional session token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
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
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, String> {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
        match (get(env_vars::AWS_ACCESS_KEY_ID), get(env_vars::AWS_SECRET_ACCESS_KEY)) {
            (Some(access_key_id), Some(secret_access_key)) => Ok(Some(Self {
                access_key_id,
                secret_access_key,
                session_token: get(env_vars::AWS_SESSION_TOKEN),
            })),
            (None, None) => Ok(None),
            (Some(_), None) => Err(format!("{} is set but {} is not", env_vars::AWS_ACCESS_KEY_ID, env_vars::AWS_SECRET_ACCESS_KEY)),
            (None, Some(_)) => Err(format!("{} is set but {} is not", env_vars::AWS_SECRET_ACCESS_KEY, env_vars::AWS_ACCESS_KEY_ID)),
        }
    }

    /// The secret values, for scrubbing them from any text that leaves the process.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.secret_access_key.as_str()).chain(self.session_token.as_deref())
    }
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
