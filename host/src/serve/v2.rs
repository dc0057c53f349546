//! The v2 Twirp protocol (`…/twirp/github.actions.results.api.v1.CacheService/<Method>`), as the
//! current toolkit and buildx speak it: JSON with protobuf field names, 64-bit numbers as strings
//! (buildx sends `size_bytes` as a number). `CreateCacheEntry` reserves and hands out an upload URL,
//! the client uploads there in Azure Blob's calls ([`super::blob`]), and `FinalizeCacheEntryUpload`
//! commits; `GetCacheEntryDownloadURL` looks up. A miss is `{ok: false}`; a denied write is
//! `{ok: false, message: "cache write denied: …"}` (the toolkit recognizes only that form); a
//! duplicate is Twirp's `already_exists`.

use serde::Deserialize;

use super::http::{Answer, Incoming};
use super::uploads::{self, Reservation, ReserveError, UploadError};
use super::{Server, entries, urls};

/// Answers a v2 request for `method`.
pub fn answer(server: &Server, request: &mut Incoming, method: &str) -> Answer {
    if request.method != "POST" {
        return Answer::twirp_error(404, "bad_route", &format!("{} is not a Twirp call (POST)", request.method));
    }
    if request.header("content-type").is_some_and(|t| t.starts_with("application/protobuf")) {
        return Answer::twirp_error(404, "bad_route", "application/protobuf is not supported; use JSON");
    }
    let body = match request.small_body(1 << 20) {
        Ok(body) => body,
        Err(why) => return Answer::twirp_error(400, "malformed", &why),
    };
    let caller = match server.caller(request) {
        Ok(caller) => caller,
        Err(why) => return Answer::twirp_error(403, "permission_denied", &format!("cache read denied: {why}")),
    };
    let parsed: Result<Call, String> = match method {
        "CreateCacheEntry" => parse(&body).map(Call::Create),
        "FinalizeCacheEntryUpload" => parse(&body).map(Call::Finalize),
        "GetCacheEntryDownloadURL" => parse(&body).map(Call::Lookup),
        other => return Answer::twirp_error(404, "bad_route", &format!("no method {other:?} in CacheService")),
    };
    let call = match parsed {
        Ok(call) => call,
        Err(why) => return Answer::twirp_error(400, "malformed", &format!("{method}: {why}")),
    };
    match call {
        Call::Lookup(lookup) => {
            let mut keys = vec![lookup.key];
            keys.extend(lookup.restore_keys);
            if keys.len() > entries::MAX_KEYS + 1 {
                return Answer::twirp_error(400, "invalid_argument", &format!("at most {} keys", entries::MAX_KEYS));
            }
            match entries::find(server.store.as_ref(), &caller.read_scopes, &keys, &lookup.version) {
                Ok(Some(entry)) => {
                    let _touch = server.context.touch(&entry);
                    Answer::json(
                        200,
                        &serde_json::json!({
                            "ok": true,
                            "signed_download_url": server.download_url(request, &entry.object.name),
                            "matched_key": entry.name.key,
                        }),
                    )
                }
                Ok(None) => Answer::json(200, &serde_json::json!({ "ok": false })),
                Err(err) => Answer::twirp_error(503, "unavailable", &format!("the store failed: {err}")),
            }
        }
        Call::Create(create) => {
            let scope = match &caller.write_scope {
                Ok(scope) => scope,
                Err(why) => return refused(&format!("cache write denied: {why}")),
            };
            let entry = match entries::entry_name(server.store.as_ref(), scope, &create.key, &create.version) {
                Ok(entry) => entry,
                Err(why) => return Answer::twirp_error(400, "invalid_argument", &why),
            };
            let reservation = Reservation {
                entry: &entry,
                scope,
                key: &create.key,
                version: &create.version,
                announced_size: None,
                timeout: server.settings.upload_timeout,
                v1_id: false,
            };
            match uploads::reserve(server.store.as_ref(), &reservation) {
                Ok(pending) => {
                    let grant = urls::Grant { entry, upload_id: Some(pending.upload_id) };
                    let url = server.signer.sign(&grant, urls::Access::Write, server.settings.upload_timeout);
                    Answer::json(
                        200,
                        &serde_json::json!({ "ok": true, "signed_upload_url": format!("{}/{url}", server.public_base(request)) }),
                    )
                }
                Err(ReserveError::Exists) => already_exists(),
                Err(ReserveError::Store(err)) => Answer::twirp_error(503, "unavailable", &format!("the store failed: {err}")),
            }
        }
        Call::Finalize(finalize) => {
            let scope = match &caller.write_scope {
                Ok(scope) => scope,
                Err(why) => return refused(&format!("cache write denied: {why}")),
            };
            let size = match finalize.size_bytes.as_u64() {
                Ok(size) => size,
                Err(why) => return Answer::twirp_error(400, "malformed", &format!("{method}: size_bytes {why}")),
            };
            if size > server.settings.max_entry_size {
                return refused(&format!(
                    "an entry of {size} bytes is over this server's limit of {} (--max-entry-size)",
                    server.settings.max_entry_size
                ));
            }
            let entry = match entries::entry_name(server.store.as_ref(), scope, &finalize.key, &finalize.version) {
                Ok(entry) => entry,
                Err(why) => return Answer::twirp_error(400, "invalid_argument", &why),
            };
            let pending = match uploads::read_pending(server.store.as_ref(), &uploads::pending_name(&entry)) {
                Ok(Some(pending)) => pending,
                Ok(None) => return Answer::twirp_error(404, "not_found", "no upload in progress for this key and version"),
                Err(err) => return Answer::twirp_error(503, "unavailable", &format!("the store failed: {err}")),
            };
            match uploads::commit(server.store.as_ref(), &pending, size, true) {
                Ok(()) => Answer::json(200, &serde_json::json!({ "ok": true, "entry_id": entry_id(&entry).to_string() })),
                Err(UploadError::Client(why)) => Answer::twirp_error(400, "invalid_argument", &why),
                Err(UploadError::Exists) => already_exists(),
                Err(UploadError::Store(err)) => Answer::twirp_error(503, "unavailable", &format!("the store failed: {err}")),
            }
        }
    }
}

/// `{ok: false, message}`: how the toolkit learns of a denied write or a refused entry.
fn refused(message: &str) -> Answer {
    Answer::json(200, &serde_json::json!({ "ok": false, "message": message }))
}

fn already_exists() -> Answer {
    Answer::twirp_error(409, "already_exists", "cache entry already exists")
}

/// A number for an entry, as `entry_id` (the toolkit prints it): from its name, so that every server says the same.
fn entry_id(entry: &str) -> u64 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(entry.as_bytes());
    (u64::from_be_bytes(digest[..8].try_into().expect("8 bytes")) >> 11).max(1)
}

enum Call {
    Create(CreateBody),
    Finalize(FinalizeBody),
    Lookup(LookupBody),
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("the body is not the method's JSON: {e}"))
}

#[derive(Deserialize)]
struct CreateBody {
    key: String,
    version: String,
}

#[derive(Deserialize)]
struct FinalizeBody {
    key: String,
    version: String,
    /// Absent when 0: protobuf's JSON leaves default values out.
    #[serde(default = "Int64::zero")]
    size_bytes: Int64,
}

#[derive(Deserialize)]
struct LookupBody {
    key: String,
    #[serde(default)]
    restore_keys: Vec<String>,
    version: String,
}

/// A protobuf int64 in JSON: a string (protobuf's rule) or a number (what buildx sends).
#[derive(Deserialize)]
#[serde(untagged)]
enum Int64 {
    Number(u64),
    Text(String),
}

impl Int64 {
    fn zero() -> Self {
        Int64::Number(0)
    }

    fn as_u64(&self) -> Result<u64, String> {
        match self {
            Int64::Number(n) => Ok(*n),
            Int64::Text(text) => text.parse().map_err(|_| format!("{text:?} is not a number of bytes")),
        }
    }
}
