//! The guest's error type, one case per case of the WIT `error` variant, so that the conversion at the
//! boundary is total and every failure reaches the host as a value.

use crate::bindings::s3cache::guest::types as wit;

/// Everything that can go wrong in the guest.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error("invalid key template: {0}")]
    InvalidTemplate(String),
    #[error("{0}")]
    InvalidPattern(String),
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("archive member {member:?} rejected: {reason}")]
    Rejected { member: String, reason: String },
    #[error("corrupt compressed stream: {0}")]
    CorruptStream(String),
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    #[error("archive stream failed: {0}")]
    StreamFailed(String),
    #[error("{0}")]
    Other(String),
}

impl GuestError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<String>, err: &std::io::Error) -> Self {
        Self::Io { path: path.into(), message: err.to_string() }
    }

    /// A member refused by the policy.
    pub fn rejected(member: &str, reason: impl ToString) -> Self {
        Self::Rejected { member: member.to_owned(), reason: reason.to_string() }
    }
}

impl From<s3cache_policy::PatternError> for GuestError {
    fn from(err: s3cache_policy::PatternError) -> Self {
        Self::InvalidPattern(err.to_string())
    }
}

impl From<GuestError> for wit::Error {
    fn from(err: GuestError) -> Self {
        match err {
            GuestError::InvalidTemplate(m) => wit::Error::InvalidTemplate(m),
            GuestError::InvalidPattern(m) => wit::Error::InvalidPattern(m),
            GuestError::Io { path, message } => wit::Error::Io(wit::IoError { path, message }),
            GuestError::Rejected { member, reason } => wit::Error::RejectedMember(wit::Rejection { member, reason }),
            GuestError::CorruptStream(m) => wit::Error::CorruptStream(m),
            GuestError::LimitExceeded(m) => wit::Error::LimitExceeded(m),
            GuestError::StreamFailed(m) => wit::Error::StreamFailed(m),
            GuestError::Other(m) => wit::Error::Other(m),
        }
    }
}
