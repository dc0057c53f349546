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

pub mod signing_key;
pub mod trusted_keys;

use std::sync::Arc;

#[cfg(test)]
mod tests;

pub use signing_key::{SigningKey, SigningKeyError};
pub use trusted_keys::{Refusal, Signer, TrustedKeys, TrustedKeysError};

/// What a context's saves sign with and its restores trust ([`crate::engine::CacheContext::signing`]).
/// The default signs nothing and restores unsigned entries, as s3cache did before signatures.
#[derive(Debug, Clone, Default)]
pub struct Signing {
    /// Signs the manifest of every entry a save writes (`--signing-key`); a save that has it also
    /// replaces an entry under its key that a restore would refuse (a planted one).
    pub key: Option<Arc<SigningKey>>,
    /// When set, a restore uses only entries signed by one of these for this key, scope and store
    /// (`--trusted-keys`); an empty set refuses every entry.
    pub trusted: Option<Arc<TrustedKeys>>,
    /// The store's name in manifests (`--store-namespace`); `None`: the store's location
    /// ([`crate::store::BlobStore::location`], such as `s3://bucket/prefix`).
    pub store_namespace: Option<String>,
}

/// The SSHSIG namespace of every s3cache signature: a signature made for another purpose (`git`,
/// `file`) by the same key never verifies as an entry's.
pub const NAMESPACE: &str = "s3cache";

/// A public key's `SHA256:…` fingerprint, as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &ssh_key::public::KeyData) -> String {
    key.fingerprint(ssh_key::HashAlg::Sha256).to_string()
}

/// The `SHA256:…` fingerprint of the key that made an armored SSHSIG, when it reads as one; nothing
/// is verified.
pub fn signer_fingerprint(armored: &str) -> Option<String> {
    ssh_key::SshSig::from_pem(armored.trim()).ok().map(|signature| fingerprint(signature.public_key()))
}
