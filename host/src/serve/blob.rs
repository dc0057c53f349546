//! The data URLs ([`super::urls`]) spoken to in Azure Blob's terms, which the v2 clients use for the
//! bytes themselves: downloads are plain `GET`s (with `Range` or `x-ms-range`: buildx resumes at an
//! offset, OpenDAL asks for `bytes=0-0` to learn the size), uploads are Put Blob (the whole entry in
//! one `PUT`), Put Block (`comp=block&blockid=…`, out of order) and Put Block List
//! (`comp=blocklist`, the order). Every answer to a write is 201, the only success the Azure SDK for
//! JavaScript accepts.
//!
//! A block id carries the block's index, so a block can go straight to its part: the JavaScript SDK's
//! ids are the base64 of a 36-character UUID and a 12-digit index, the Go SDK's (buildx) the base64 of
//! 64 bytes, a 16-byte UUID then a big-endian 32-bit index. Other ids are refused: without an index
//! a block cannot be placed before the list arrives. The list must name blocks 0 to n-1 in order,
//! each stored; it commits nothing, since only `FinalizeCacheEntryUpload` carries the entry's size.

use base64::Engine;

use super::http::{self, Answer, Body, Incoming};
use super::uploads::{self, Position, UploadError};
use super::urls::{Access, UrlError};
use super::{MAX_PIECE, Server};
use crate::store::StoreError;

/// Answers a request to the data URL whose token is `token`.
pub fn answer(server: &Server, request: &mut Incoming, token: &str) -> Answer {
    let access = if matches!(request.method, "GET" | "HEAD") { Access::Read } else { Access::Write };
    let grant = match server.signer.verify(token, &request.query, access) {
        Ok(grant) => grant,
        Err(err @ (UrlError::BadSignature | UrlError::Expired)) => {
            return Answer::blob_error(403, "AuthenticationFailed", &err.to_string());
        }
        Err(err @ UrlError::WrongAccess(_)) => return Answer::blob_error(403, "AuthorizationPermissionMismatch", &err.to_string()),
    };
    match (request.method, grant.upload_id) {
        ("GET" | "HEAD", _) => download(server, request, &grant.entry),
        ("PUT", Some(upload_id)) => match request.param("comp") {
            None => put(server, request, &grant.entry, &upload_id, None),
            Some("block") => match request.param("blockid").map(block_index) {
                Some(Ok(index)) => put(server, request, &grant.entry, &upload_id, Some(index)),
                Some(Err(why)) => Answer::blob_error(400, "InvalidQueryParameterValue", &why),
                None => Answer::blob_error(400, "MissingRequiredQueryParameter", "Put Block needs a blockid"),
            },
            Some("blocklist") => block_list(server, request, &grant.entry, &upload_id),
            Some(other) => Answer::blob_error(400, "InvalidQueryParameterValue", &format!("comp={other} is not supported")),
        },
        (method, _) => Answer::blob_error(405, "UnsupportedHttpVerb", &format!("{method} is not supported here")),
    }
}

/// Streams the entry named `entry`, or the range the request asks for.
pub(super) fn download(server: &Server, request: &Incoming, entry: &str) -> Answer {
    let info = match server.store.head(entry) {
        Ok(Some(info)) => info,
        Ok(None) => return Answer::blob_error(404, "BlobNotFound", "the entry is gone"),
        Err(err) => return Answer::blob_error(503, "ServerBusy", &format!("the store failed: {err}")),
    };
    let asked = request.header("x-ms-range").or(request.header("range"));
    let (status, first, last) = match http::byte_range(asked, info.size) {
        Ok(Some((first, last))) => (206, first, last),
        Ok(None) => (200, 0, info.size.saturating_sub(1)),
        Err(()) => {
            return Answer::blob_error(416, "InvalidRange", "the range is outside the entry")
                .with_header("content-range", format!("bytes */{}", info.size));
        }
    };
    let length = if info.size == 0 { 0 } else { last - first + 1 };
    let mut answer = Answer::empty(status)
        .with_header("content-type", "application/octet-stream")
        .with_header("accept-ranges", "bytes")
        .with_header("x-ms-blob-type", "BlockBlob")
        .with_header("last-modified", httpdate::fmt_http_date(info.modified));
    if status == 206 {
        answer = answer.with_header("content-range", format!("bytes {first}-{last}/{}", info.size));
    }
    if request.method == "HEAD" || length == 0 {
        return answer.with_header("content-length", length.to_string());
    }
    match server.store.read(&info, first, last + 1) {
        Ok(reader) => Answer { body: Body::Stream(reader, length), ..answer },
        Err(err) => Answer::blob_error(503, "ServerBusy", &format!("the store failed: {err}")),
    }
}

/// The index a block id carries, or why it carries none.
fn block_index(id: &str) -> Result<u32, String> {
    let raw = base64::engine::general_purpose::STANDARD.decode(id).map_err(|_| format!("block id {id:?} is not base64"))?;
    match raw.len() {
        // The JavaScript SDK: a UUID's 36 characters, then the index in 12 digits.
        48 if raw[..36].iter().all(|b| b.is_ascii_hexdigit() || *b == b'-') => std::str::from_utf8(&raw[36..])
            .ok()
            .and_then(|digits| digits.parse().ok())
            .ok_or_else(|| format!("block id {id:?} does not end in a block number")),
        // The Go SDK: 16 bytes of UUID, the index (big-endian), zeros.
        64 => Ok(u32::from_be_bytes(raw[16..20].try_into().expect("4 bytes"))),
        _ => Err(format!("block id {id:?} is not one the Azure SDKs make (it must carry the block's index)")),
    }
}

fn put(server: &Server, request: &mut Incoming, entry: &str, upload_id: &str, block: Option<u32>) -> Answer {
    let Some(length) = request.body_length else {
        return Answer::blob_error(411, "MissingContentLengthHeader", "a block needs a Content-Length");
    };
    if length > MAX_PIECE {
        return Answer::blob_error(413, "RequestBodyTooLarge", &format!("a block of {length} bytes is over this server's {MAX_PIECE}"));
    }
    let position = Position::Block(block.unwrap_or(0));
    let placement = match uploads::place(upload_id, position, length, block.is_none(), false) {
        Ok(placement) => placement,
        Err(why) => return Answer::blob_error(400, "InvalidQueryParameterValue", &why),
    };
    match uploads::receive(server.store.as_ref(), entry, upload_id, &placement, length, request.body) {
        Ok(()) => Answer::empty(201).with_header("x-ms-request-server-encrypted", "false"),
        Err(UploadError::Client(why)) => Answer::blob_error(400, "InvalidInput", &why),
        Err(UploadError::Exists) => Answer::blob_error(409, "BlobAlreadyExists", "the entry exists"),
        Err(UploadError::Store(StoreError::S3(err))) if err.code == "NoSuchUpload" => {
            Answer::blob_error(404, "BlobNotFound", "the upload is gone (finished, or abandoned past the upload timeout)")
        }
        Err(UploadError::Store(err)) => Answer::blob_error(503, "ServerBusy", &format!("the store failed: {err}")),
    }
}

fn block_list(server: &Server, request: &mut Incoming, entry: &str, upload_id: &str) -> Answer {
    let body = match request.small_body(4 << 20) {
        Ok(body) => String::from_utf8_lossy(&body).into_owned(),
        Err(why) => return Answer::blob_error(413, "RequestBodyTooLarge", &why),
    };
    let ids = match block_ids(&body) {
        Ok(ids) => ids,
        Err(why) => return Answer::blob_error(400, "InvalidXmlDocument", &why),
    };
    let mut indices = Vec::new();
    for id in ids {
        match block_index(&id) {
            Ok(index) => indices.push(index),
            Err(why) => return Answer::blob_error(400, "InvalidBlockList", &why),
        }
    }
    if let Some((position, index)) = indices.iter().enumerate().find(|(position, index)| **index as usize != *position) {
        return Answer::blob_error(
            400,
            "InvalidBlockList",
            &format!("entry {position} of the list is block {index}, not block {position}"),
        );
    }
    let stored = match stored_blocks(server, entry, upload_id) {
        Ok(stored) => stored,
        Err(err) => return Answer::blob_error(503, "ServerBusy", &format!("the store failed: {err}")),
    };
    if let Some(missing) = indices.iter().find(|index| !stored.contains(index)) {
        return Answer::blob_error(400, "InvalidBlockList", &format!("block {missing} was never uploaded"));
    }
    Answer::empty(201)
}

/// The ids a Put Block List body names, in order (`<Latest>`, `<Uncommitted>` or `<Committed>`).
fn block_ids(body: &str) -> Result<Vec<String>, String> {
    #[derive(serde::Deserialize)]
    struct BlockList {
        #[serde(rename = "$value", default)]
        blocks: Vec<BlockRef>,
    }
    #[derive(serde::Deserialize)]
    enum BlockRef {
        Latest(String),
        Uncommitted(String),
        Committed(String),
    }
    let list: BlockList = quick_xml::de::from_str(body).map_err(|e| format!("the block list is not Azure's XML: {e}"))?;
    Ok(list
        .blocks
        .into_iter()
        .map(|b| match b {
            BlockRef::Latest(id) | BlockRef::Uncommitted(id) | BlockRef::Committed(id) => id,
        })
        .collect())
}

/// The indices of the blocks stored so far: parts (index + 1) and staged blocks.
fn stored_blocks(server: &Server, entry: &str, upload_id: &str) -> Result<Vec<u32>, StoreError> {
    let uploads = uploads::resumable(server.store.as_ref())?;
    let mut stored: Vec<u32> = uploads.parts(entry, upload_id)?.iter().map(|p| p.number - 1).collect();
    for object in server.store.list(&uploads::staged_prefix(upload_id))? {
        if let Some(Position::Block(index)) = uploads::parse_staged(&object.name) {
            stored.push(index);
        }
    }
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both SDKs' ids give their index; anything else is refused by name.
    #[test]
    fn block_ids_carry_indices() {
        let node = base64::engine::general_purpose::STANDARD.encode(format!("{}{:012}", "0f3e2a1b-1111-4222-8333-944445555666", 17));
        assert_eq!(block_index(&node), Ok(17));
        let mut go = [0u8; 64];
        go[..16].copy_from_slice(&[9; 16]);
        go[16..20].copy_from_slice(&300u32.to_be_bytes());
        assert_eq!(block_index(&base64::engine::general_purpose::STANDARD.encode(go)), Ok(300));
        let other = base64::engine::general_purpose::STANDARD.encode("block-1");
        assert_eq!(
            block_index(&other),
            Err(format!("block id {other:?} is not one the Azure SDKs make (it must carry the block's index)"))
        );
        assert_eq!(block_index("***"), Err("block id \"***\" is not base64".into()));
        let list = "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList><Latest>QUFB</Latest><Latest>QkJC</Latest></BlockList>";
        assert_eq!(block_ids(list), Ok(vec!["QUFB".to_owned(), "QkJC".to_owned()]));
        assert!(block_ids("<BlockList><Latest>a</Latest>").unwrap_err().starts_with("the block list is not Azure's XML"));
    }
}
