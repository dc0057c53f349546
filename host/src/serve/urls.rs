//! The data URLs the server hands out: where a client downloads an entry (v1 `archiveLocation`, v2
//! `signed_download_url`) and uploads blocks (v2 `signed_upload_url`). Clients fetch them without
//! any other credential, so each carries its own authority: an HMAC-SHA256 over what it grants and
//! until when, with a key only the servers know.
//!
//! The shape is `<base>/_s3cache/blob/<token>?sp=<r|w>&se=<unix expiry>&sig=<64 hex>`. Three path
//! segments after the base, so that the Azure SDK finds an account, a container and a blob in it on
//! IP hosts and names alike; a `sig` long enough that the toolkit's masking of it in logs garbles
//! nothing else. The token is the hex of a small JSON document ([`Grant`]). The signature is checked,
//! in constant time, before anything in the URL is parsed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The path segment that starts a data URL's own part.
pub const DATA_PATH: &str = "_s3cache/blob/";

/// What a data URL lets its bearer do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The entry's object name, under the store prefix.
    pub entry: String,
    /// For an upload URL, the multipart upload its blocks go to; `None`: a download URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
}

/// Signs and checks data URLs with one key.
pub struct UrlSigner {
    key: Vec<u8>,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UrlSigner { key: <redacted> }")
    }
}

/// Why a data URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Missing, malformed or wrong signature parameters.
    #[error("the URL's signature is missing or does not verify")]
    BadSignature,
    /// Signed correctly, but past its expiry.
    #[error("the URL expired")]
    Expired,
    /// Signed for reading and used to write, or the other way round.
    #[error("the URL does not allow this ({0})")]
    WrongAccess(&'static str),
}

/// What a URL grants: reading or writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

impl Access {
    fn letter(self) -> &'static str {
        match self {
            Access::Read => "r",
            Access::Write => "w",
        }
    }
}

impl UrlSigner {
    /// The smallest key accepted, in bytes.
    pub const MIN_KEY_BYTES: usize = 32;

    /// A signer with `key`; `None`: a random key, so that only this process verifies its URLs.
    pub fn new(key: Option<Vec<u8>>) -> Self {
        let key = key.unwrap_or_else(|| {
            let mut random = vec![0u8; 32];
            getrandom::fill(&mut random).expect("the operating system's random source");
            random
        });
        Self { key }
    }

    fn mac(&self, access: &str, expires: u64, token: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(format!("s3cache-serve-url/1\n{access}\n{expires}\n{token}").as_bytes());
        mac
    }

    /// The path and query (after the base URL) of a URL granting `grant` for `access` until `lifetime` from now.
    pub fn sign(&self, grant: &Grant, access: Access, lifetime: Duration) -> String {
        let token = hex::encode(serde_json::to_vec(grant).expect("a grant serializes"));
        let expires = (SystemTime::now() + lifetime).duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let sig = hex::encode(self.mac(access.letter(), expires, &token).finalize().into_bytes());
        format!("{DATA_PATH}{token}?sp={}&se={expires}&sig={sig}", access.letter())
    }

    /// The grant of a data URL whose token is `token` and whose query holds `sp`, `se` and `sig`,
    /// when its signature verifies, it has not expired and it allows `access`.
    pub fn verify(&self, token: &str, query: &[(String, String)], access: Access) -> Result<Grant, UrlError> {
        let param = |name: &str| query.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        let (Some(sp), Some(se), Some(sig)) = (param("sp"), param("se"), param("sig")) else { return Err(UrlError::BadSignature) };
        let expires: u64 = se.parse().map_err(|_| UrlError::BadSignature)?;
        let sig = hex::decode(sig).map_err(|_| UrlError::BadSignature)?;
        self.mac(sp, expires, token).verify_slice(&sig).map_err(|_| UrlError::BadSignature)?;
        if SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() > expires {
            return Err(UrlError::Expired);
        }
        if sp != access.letter() {
            return Err(UrlError::WrongAccess(if access == Access::Read {
                "an upload URL cannot download"
            } else {
                "a download URL cannot upload"
            }));
        }
        let json = hex::decode(token).map_err(|_| UrlError::BadSignature)?;
        serde_json::from_slice(&json).map_err(|_| UrlError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(url: &str) -> (String, Vec<(String, String)>) {
        let (path, query) = url.split_once('?').unwrap();
        (path.strip_prefix(DATA_PATH).unwrap().to_owned(), crate::serve::http::query_pairs(query))
    }

    /// A URL verifies with its own key and access only; any change to it, or another key, fails.
    #[test]
    fn signs_and_verifies() {
        let signer = UrlSigner::new(Some(vec![7; 32]));
        let grant = Grant { entry: "local/k,,ab.gha".into(), upload_id: Some("u1".into()) };
        let url = signer.sign(&grant, Access::Write, Duration::from_secs(60));
        let (token, pairs) = query(&url);
        assert_eq!(pairs.iter().find(|(n, _)| n == "sig").unwrap().1.len(), 64);
        assert_eq!(signer.verify(&token, &pairs, Access::Write), Ok(grant.clone()));
        assert_eq!(signer.verify(&token, &pairs, Access::Read), Err(UrlError::WrongAccess("an upload URL cannot download")));
        assert_eq!(UrlSigner::new(Some(vec![8; 32])).verify(&token, &pairs, Access::Write), Err(UrlError::BadSignature));
        let mut other = token.clone();
        other.replace_range(0..2, "00");
        assert_eq!(signer.verify(&other, &pairs, Access::Write), Err(UrlError::BadSignature));
        let later: Vec<_> =
            pairs.iter().map(|(n, v)| if n == "se" { (n.clone(), "9999999999".into()) } else { (n.clone(), v.clone()) }).collect();
        assert_eq!(signer.verify(&token, &later, Access::Write), Err(UrlError::BadSignature));
        let expired = signer.sign(&grant, Access::Read, Duration::ZERO);
        let (token, mut pairs) = query(&expired);
        // One second in the past, signed as such.
        let se: u64 = pairs.iter().find(|(n, _)| n == "se").unwrap().1.parse().unwrap();
        let sig = hex::encode(signer.mac("r", se - 1, &token).finalize().into_bytes());
        pairs = vec![("sp".into(), "r".into()), ("se".into(), (se - 1).to_string()), ("sig".into(), sig)];
        assert_eq!(signer.verify(&token, &pairs, Access::Read), Err(UrlError::Expired));
    }
}
