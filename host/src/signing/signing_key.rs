//! `--signing-key`: the OpenSSH private key a trusted job signs entries with.
//!
//! The value is the key's text (CI secrets are values; it starts with
//! `-----BEGIN OPENSSH PRIVATE KEY-----`) or the path of a key file. Only unencrypted ed25519 keys
//! are accepted: a job cannot type a passphrase, and one algorithm keeps the trusted side simple.
//! The key is a secret: no error or `Debug` output contains its text, and
//! [`SigningKey::mask_lines`] gives each line of it for GitHub's `::add-mask::`.

use std::fmt;
use std::path::Path;

use ssh_key::{HashAlg, LineEnding, PrivateKey};

use super::{NAMESPACE, fingerprint};

/// How the text of an OpenSSH private key begins; a value that does is the key itself.
const KEY_TEXT_BEGINS: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";

/// A path longer than this, or with a line break, is not echoed in an error: it may be a
/// mistyped key rather than a path.
const LONGEST_ECHOED_PATH: usize = 512;

/// An unencrypted ed25519 private key, ready to sign entries.
pub struct SigningKey {
    key: PrivateKey,
    /// The lines of the key's text other than its BEGIN and END markers, for `::add-mask::`.
    secret_lines: Vec<String>,
}

/// Why `--signing-key` cannot be used. No variant carries the key's text.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs, reason = "each variant's doc and message say what its fields hold")]
pub enum SigningKeyError {
    /// The value is not key text, and no file by that name can be read.
    #[error("--signing-key: cannot read the key file {path}: {reason}")]
    Unreadable { path: String, reason: String },
    /// The value is neither key text nor something that looks like a path.
    #[error("--signing-key: the value is neither an OpenSSH private key (text starting with {KEY_TEXT_BEGINS}) nor the path of one")]
    NeitherTextNorPath,
    /// The text does not decode as an OpenSSH private key.
    #[error("--signing-key: {origin} is not an OpenSSH private key: {reason}")]
    Malformed { origin: String, reason: String },
    /// The key is protected by a passphrase, which a CI job cannot type.
    #[error(
        "--signing-key: {origin} is protected by a passphrase; s3cache needs an unencrypted key (remove it from a copy with ssh-keygen -p -N '' -f COPY)"
    )]
    Encrypted { origin: String },
    /// The key is not ed25519.
    #[error("--signing-key: {origin} is an {algorithm} key; s3cache signs with ed25519 keys only (ssh-keygen -t ed25519)")]
    NotEd25519 { origin: String, algorithm: String },
}

impl SigningKey {
    /// The key of `--signing-key`'s `value`: the key's text if it starts with
    /// `-----BEGIN OPENSSH PRIVATE KEY-----` (after leading blanks), else the path of a key file.
    pub fn load(value: &str) -> Result<Self, SigningKeyError> {
        let trimmed = value.trim();
        let (text, origin) = if trimmed.starts_with(KEY_TEXT_BEGINS) {
            (trimmed.to_owned(), "the key text".to_owned())
        } else if trimmed.is_empty() || trimmed.contains('\n') || trimmed.len() > LONGEST_ECHOED_PATH {
            return Err(SigningKeyError::NeitherTextNorPath);
        } else {
            let text = std::fs::read_to_string(Path::new(trimmed))
                .map_err(|error| SigningKeyError::Unreadable { path: trimmed.to_owned(), reason: error.to_string() })?;
            (text, format!("the key file {trimmed}"))
        };
        let key = PrivateKey::from_openssh(&text)
            .map_err(|error| SigningKeyError::Malformed { origin: origin.clone(), reason: error.to_string() })?;
        if key.is_encrypted() {
            return Err(SigningKeyError::Encrypted { origin });
        }
        if !key.public_key().key_data().is_ed25519() {
            return Err(SigningKeyError::NotEd25519 { origin, algorithm: key.algorithm().to_string() });
        }
        let secret_lines =
            text.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with("-----")).map(str::to_owned).collect();
        Ok(Self { key, secret_lines })
    }

    /// An armored SSHSIG (`-----BEGIN SSH SIGNATURE-----`) over exactly `message`, for the
    /// namespace `s3cache`, with sha512 as `ssh-keygen -Y sign` does.
    pub fn sign(&self, message: &[u8]) -> String {
        let signature =
            self.key.sign(NAMESPACE, HashAlg::Sha512, message).expect("an ed25519 key signs any message for a non-empty namespace");
        signature.to_pem(LineEnding::LF).expect("a signature made here encodes")
    }

    /// The set of this key's public key alone: what a save that signs checks an existing entry
    /// against when no trusted keys are given.
    pub fn own_trust(&self) -> super::TrustedKeys {
        super::TrustedKeys::of_key(self.key.public_key().clone())
    }

    /// The public key's `SHA256:…` fingerprint, as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        fingerprint(self.key.public_key().key_data())
    }

    /// Each line of the key's text (markers left out), to hide with GitHub's `::add-mask::`, which
    /// masks one line at a time.
    pub fn mask_lines(&self) -> &[String] {
        &self.secret_lines
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.fingerprint())
    }
}
