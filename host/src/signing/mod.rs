//! Signed entries (issue 23): the signing key a trusted job signs an entry's manifest with, and the
//! trusted keys a restoring job checks that signature against, before a byte is extracted.
//!
//! The format is OpenSSH's SSHSIG (`ssh-keygen -Y sign`), namespace [`NAMESPACE`], hash sha512, so
//! that `ssh-keygen -Y verify -n s3cache` checks an entry with no s3cache code; the keys are
//! OpenSSH's own (a private key file, `.pub` lines, `allowed_signers` lines). All key parsing and
//! cryptography is RustCrypto's `ssh-key`; this module only decides what is accepted and says why
//! something is refused. It signs and verifies exact bytes and never re-serializes what it checks.
//!
//! - [`signing_key`]: `--signing-key`, an unencrypted ed25519 private key, as text or a path;
//! - [`trusted_keys`]: `--trusted-keys`, public keys and `allowed_signers` lines (their
//!   `namespaces=`, `valid-after=` and `valid-before=`), and the verification that names its refusal.

pub(crate) mod signing_key;
pub(crate) mod trusted_keys;

#[cfg(test)]
mod tests;

pub(crate) use signing_key::{SigningKey, SigningKeyError};
pub(crate) use trusted_keys::{Refusal, Signer, TrustedKeys, TrustedKeysError};

/// The SSHSIG namespace of every s3cache signature: a signature made for another purpose (`git`,
/// `file`) by the same key never verifies as an entry's.
pub(crate) const NAMESPACE: &str = "s3cache";

/// A public key's `SHA256:…` fingerprint, as `ssh-keygen -l` prints it.
pub(crate) fn fingerprint(key: &ssh_key::public::KeyData) -> String {
    key.fingerprint(ssh_key::HashAlg::Sha256).to_string()
}
