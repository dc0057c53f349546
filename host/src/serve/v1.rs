//! The v1 REST protocol (`<base>_apis/artifactcache/…`), as act, Forgejo's and Gitea's runners and
//! GHES's toolkit speak it: look up (`GET cache?keys=&version=`), reserve (`POST caches`), upload
//! chunks (`PATCH caches/{id}` with `Content-Range`, out of order, often chunked with no length) and
//! commit (`POST caches/{id}`). Errors carry a JSON `message`, which the toolkit shows; a denied
//! write's message starts `cache write denied:`, a duplicate is 409 with the `typeKey` buildx looks for.

use serde::Deserialize;

use super::auth::Caller;
use super::http::{Answer, Incoming};
use super::uploads::{self, Pending, Placement, Position, Reservation, ReserveError, UploadError};
use super::{MAX_PIECE, Server, entries};
use crate::archive::layout::StoreObject;

/// Answers a v1 request whose path ends in `rest` after `_apis/artifactcache/`.
pub fn answer(server: &Server, request: &mut Incoming, rest: &str) -> Answer {
    let caller = match server.caller(request) {
        Ok(caller) => caller,
        Err(why) => return Answer::v1_error(403, &format!("cache read denied: {why}")),
    };
    match (request.method, rest) {
        ("GET", "cache") => lookup(server, request, &caller),
        ("GET", rest) if rest.starts_with("artifacts/") => forgejo_download(server, request, &caller, &rest["artifacts/".len()..]),
        ("GET", "caches") => Answer::json(200, &serde_json::json!({ "totalCount": 0, "artifactCaches": [] })),
        ("POST", "caches") => match &caller.write_scope {
            Ok(scope) => reserve(server, request, scope),
            Err(why) => Answer::v1_error(403, &format!("cache write denied: {why}")),
        },
        (method, rest) if rest.starts_with("caches/") => {
            let Ok(id) = rest["caches/".len()..].parse::<u64>() else {
                return Answer::v1_error(404, &format!("unknown cache id {:?}", &rest["caches/".len()..]));
            };
            let Some(scope) = caller.write_scope.as_ref().ok() else {
                return Answer::v1_error(403, &format!("cache write denied: {}", caller.write_scope.clone().unwrap_err()));
            };
            let pending = match upload_of(server, id) {
                Ok(Some(pending)) if pending.scope == *scope => pending,
                Ok(_) => return Answer::v1_error(404, &format!("unknown cache id {id}")),
                Err(err) => return Answer::v1_error(503, &format!("the store failed: {err}")),
            };
            match method {
                "PATCH" => chunk(server, request, &pending),
                "POST" => commit(server, request, &pending),
                _ => Answer::v1_error(405, &format!("{method} is not allowed on caches/{{id}}")),
            }
        }
        _ => Answer::v1_error(404, &format!("no such endpoint: {} _apis/artifactcache/{rest}", request.method)),
    }
}

fn lookup(server: &Server, request: &Incoming, caller: &Caller) -> Answer {
    let scopes = &caller.read_scopes;
    let (Some(keys), Some(version)) = (request.param("keys"), request.param("version")) else {
        return Answer::v1_error(400, "the lookup needs keys and version");
    };
    let keys: Vec<String> = keys.split(',').map(str::to_owned).collect();
    if keys.len() > entries::MAX_KEYS {
        return Answer::v1_error(400, &format!("at most {} keys, not {}", entries::MAX_KEYS, keys.len()));
    }
    match entries::find(server.store.as_ref(), scopes, &keys, version) {
        Ok(Some(entry)) => {
            let _touch = server.context.touch(&entry);
            Answer::json(
                200,
                &serde_json::json!({
                    "cacheKey": entry.name.key,
                    "scope": entry.name.scope,
                    "cacheVersion": version,
                    "creationTime": humantime::format_rfc3339_seconds(entry.saved()).to_string(),
                    "archiveLocation": match &caller.download_base {
                        // Forgejo's proxy takes downloads back through itself, authenticated by its headers.
                        Some(base) => format!("{base}/_apis/artifactcache/artifacts/{}", hex::encode(&entry.object.name)),
                        None => server.download_url(request, &entry.object.name),
                    },
                }),
            )
        }
        Ok(None) => Answer::empty(204),
        Err(err) => Answer::v1_error(503, &format!("the store failed: {err}")),
    }
}

/// A download through Forgejo's proxy (`artifacts/<hex of the entry's name>`): no signature, but the
/// proxy's authenticated headers, and the entry must be in a scope the caller reads.
fn forgejo_download(server: &Server, request: &Incoming, caller: &Caller, token: &str) -> Answer {
    let entry = hex::decode(token).ok().and_then(|name| String::from_utf8(name).ok());
    let readable = entry.as_deref().filter(|name| {
        matches!(crate::archive::layout::classify(name), StoreObject::Entry(e) if e.is_protocol_entry() && caller.read_scopes.contains(&e.scope))
    });
    match readable {
        Some(entry) => super::blob::download(server, request, entry),
        None => Answer::v1_error(404, "no such entry in the scopes this request reads"),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReserveBody {
    key: String,
    version: String,
    cache_size: Option<u64>,
}

fn reserve(server: &Server, request: &mut Incoming, scope: &str) -> Answer {
    let body: ReserveBody = match request
        .small_body(1 << 20)
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| format!("the body is not {{key, version, cacheSize}}: {e}")))
    {
        Ok(body) => body,
        Err(why) => return Answer::v1_error(400, &why),
    };
    if let Some(size) = body.cache_size.filter(|size| *size > server.settings.max_entry_size) {
        return Answer::v1_error(
            400,
            &format!("cache size of {size} bytes is over this server's limit of {} (--max-entry-size)", server.settings.max_entry_size),
        );
    }
    let entry = match entries::entry_name(server.store.as_ref(), scope, &body.key, &body.version) {
        Ok(entry) => entry,
        Err(why) => return Answer::v1_error(400, &why),
    };
    let reservation = Reservation {
        entry: &entry,
        scope,
        key: &body.key,
        version: &body.version,
        announced_size: body.cache_size,
        timeout: server.settings.upload_timeout,
        v1_id: true,
    };
    match uploads::reserve(server.store.as_ref(), &reservation) {
        Ok(pending) => Answer::json(200, &serde_json::json!({ "cacheId": pending.v1_id })),
        Err(ReserveError::Exists) => already_exists(scope, &body.key, &body.version),
        Err(ReserveError::Store(err)) => Answer::v1_error(503, &format!("the store failed: {err}")),
    }
}

fn already_exists(scope: &str, key: &str, version: &str) -> Answer {
    Answer::json(
        409,
        &serde_json::json!({
            "message": format!("Cache already exists. Scope: {scope}, Key: {key}, Version: {version}"),
            "typeKey": "ArtifactCacheItemAlreadyExistsException",
        }),
    )
}

/// The upload a v1 number names: from memory, else from its record in the store.
fn upload_of(server: &Server, id: u64) -> Result<Option<Pending>, crate::store::StoreError> {
    if let Some(pending) = server.v1_uploads.lock().expect("v1 uploads lock").get(&id) {
        return Ok(Some(pending.clone()));
    }
    let found = uploads::read_pending(server.store.as_ref(), &uploads::v1_name(id))?;
    if let Some(pending) = &found {
        server.v1_uploads.lock().expect("v1 uploads lock").insert(id, pending.clone());
    }
    Ok(found)
}

fn chunk(server: &Server, request: &mut Incoming, pending: &Pending) -> Answer {
    let Some(range) = request.header("content-range") else {
        return Answer::v1_error(400, "a chunk needs a Content-Range: bytes START-END/*");
    };
    let (start, end) = match super::http::content_range(range) {
        Ok(span) => span,
        Err(why) => return Answer::v1_error(400, &why),
    };
    let length = end - start + 1;
    if request.body_length.is_some_and(|n| n != length) {
        return Answer::v1_error(
            400,
            &format!("Content-Range {range:?} says {length} bytes, Content-Length {}", request.body_length.unwrap_or_default()),
        );
    }
    if length > MAX_PIECE {
        return Answer::v1_error(413, &format!("a chunk of {length} bytes is over this server's {MAX_PIECE}"));
    }
    if end >= server.settings.max_entry_size || pending.announced_size.is_some_and(|size| end >= size) {
        return Answer::v1_error(413, &format!("bytes {start}-{end} go past the entry's size limit"));
    }
    let whole = start == 0 && pending.announced_size == Some(length);
    let last = pending.announced_size == Some(end + 1);
    let placement = match uploads::place(&pending.upload_id, Position::Offset(start), length, whole, last) {
        Ok(placement) => placement,
        Err(why) => return Answer::v1_error(400, &why),
    };
    match uploads::receive(server.store.as_ref(), &pending.entry, &pending.upload_id, &placement, length, request.body) {
        Ok(()) => {
            tracing::debug!(start, end, staged = matches!(placement, Placement::Staged(_)), "stored a chunk");
            Answer::empty(204)
        }
        Err(err) => upload_error(err, pending),
    }
}

#[derive(Deserialize)]
struct CommitBody {
    size: u64,
}

fn commit(server: &Server, request: &mut Incoming, pending: &Pending) -> Answer {
    let body: CommitBody =
        match request.small_body(1 << 20).and_then(|b| serde_json::from_slice(&b).map_err(|e| format!("the body is not {{size}}: {e}"))) {
            Ok(body) => body,
            Err(why) => return Answer::v1_error(400, &why),
        };
    if body.size > server.settings.max_entry_size {
        return Answer::v1_error(
            413,
            &format!(
                "an entry of {} bytes is over this server's limit of {} (--max-entry-size)",
                body.size, server.settings.max_entry_size
            ),
        );
    }
    let committed = uploads::commit(server.store.as_ref(), pending, body.size, false);
    // Committed or discarded, the number names no upload any more.
    if let Some(id) = pending.v1_id {
        server.v1_uploads.lock().expect("v1 uploads lock").remove(&id);
    }
    match committed {
        Ok(()) => Answer::empty(204),
        Err(err) => upload_error(err, pending),
    }
}

fn upload_error(err: UploadError, pending: &Pending) -> Answer {
    match err {
        UploadError::Client(why) => Answer::v1_error(400, &why),
        UploadError::Exists => already_exists(&pending.scope, &pending.key, &pending.version),
        UploadError::Store(err) => Answer::v1_error(503, &format!("the store failed: {err}")),
    }
}
