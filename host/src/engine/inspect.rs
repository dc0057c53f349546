//! `inspect`: an entry's trailer as it is stored — the manifest's exact bytes, the signature over
//! them, and, with trusted keys, whether a restore would accept it and why not — so that anyone can
//! check an entry with `ssh-keygen -Y verify` and no s3cache code.

use crate::engine::candidates::refused_by_trusted_keys;

use crate::archive::catalog::Entry;
use crate::archive::trailer::{self, Manifest};
use crate::engine::CacheContext;
use crate::store::StoreError;

/// What `inspect` found for a key.
#[derive(Debug)]
pub struct Inspection {
    /// The entry (the first of the read scopes that has the key).
    pub entry: Entry,
    /// The trailer's manifest, byte for byte as stored (what a signature covers), or why the object
    /// has no readable trailer.
    pub manifest_text: Result<String, String>,
    /// The manifest parsed, when it parses.
    pub manifest: Option<Manifest>,
    /// The armored SSHSIG over the manifest, in a signed entry.
    pub signature: Option<String>,
    /// The fingerprint of the key that made the signature, when it reads.
    pub signed_by: Option<String>,
    /// With trusted keys: `Ok` with the signer when a restore would accept the entry's signature and
    /// what it binds, else the reason of the refusal. `None` without trusted keys.
    pub verdict: Option<Result<String, String>>,
}

impl CacheContext {
    /// Reads the trailer of the entry with exactly `key`, in `scope` or else in the scopes a restore
    /// reads; `None` when there is no such entry.
    pub fn inspect(&self, key: &str, scope: Option<&str>) -> Result<Option<Inspection>, StoreError> {
        let Some(entry) = self.find_entry(key, scope)? else { return Ok(None) };
        if entry.name.is_protocol_entry() {
            let why = "a protocol entry (saved by a cache-protocol client through s3cache serve) has no manifest".to_owned();
            let verdict = self.signing.trusted.as_ref().map(|_| Err(refused_by_trusted_keys(&why)));
            return Ok(Some(Inspection { entry, manifest_text: Err(why), manifest: None, signature: None, signed_by: None, verdict }));
        }
        let tail = self.read_tail(&entry.object)?;
        let framed = match trailer::unframe(&tail) {
            Ok(framed) => framed,
            Err(err) => {
                let verdict = self.signing.trusted.as_ref().map(|_| Err(refused_by_trusted_keys(&err.to_string())));
                let inspection =
                    Inspection { entry, manifest_text: Err(err.to_string()), manifest: None, signature: None, signed_by: None, verdict };
                return Ok(Some(inspection));
            }
        };
        let manifest_text = String::from_utf8(framed.json.clone()).map_err(|_| "the manifest is not UTF-8 text".to_owned());
        let manifest = trailer::parse(&framed, entry.object.size).ok();
        let signed_by = framed.signature.as_deref().and_then(crate::signing::signer_fingerprint);
        let verdict = self.signing.trusted.as_deref().map(|trusted| {
            self.authenticate(&entry, &framed, trusted)
                .map(|(_, signer)| signer.to_string())
                .map_err(|r| refused_by_trusted_keys(r.reason()))
        });
        Ok(Some(Inspection { entry, manifest_text, manifest, signature: framed.signature, signed_by, verdict }))
    }
}
