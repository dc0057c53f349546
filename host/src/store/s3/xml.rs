//! The XML documents S3 answers with, parsed by `quick-xml`'s serde support.

use serde::Deserialize;

/// One page of ListObjectsV2.
#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct ListBucketResult {
    #[serde(default)]
    pub contents: Vec<ListedObject>,
    #[serde(default)]
    pub is_truncated: bool,
    pub next_continuation_token: Option<String>,
}

/// An object in a listing.
#[derive(Debug, Deserialize, PartialEq, Eq, Clone)]
#[serde(rename_all = "PascalCase")]
pub struct ListedObject {
    pub key: String,
    /// ISO 8601 in UTC, e.g. `2026-11-22T01:04:42.000Z`; these sort as strings.
    pub last_modified: String,
    pub size: u64,
}

/// The answer to CreateMultipartUpload.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InitiateMultipartUploadResult {
    pub upload_id: String,
}

/// One page of ListMultipartUploads: uploads started and neither completed nor aborted.
#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct ListMultipartUploadsResult {
    #[serde(default)]
    pub upload: Vec<ListedUpload>,
    #[serde(default)]
    pub is_truncated: bool,
    pub next_key_marker: Option<String>,
    pub next_upload_id_marker: Option<String>,
}

/// An incomplete multipart upload in a listing.
#[derive(Debug, Deserialize, PartialEq, Eq, Clone)]
#[serde(rename_all = "PascalCase")]
pub struct ListedUpload {
    pub key: String,
    pub upload_id: String,
    /// When it was started, ISO 8601 in UTC; empty when the server does not say.
    #[serde(default)]
    pub initiated: String,
}

/// One page of ListParts.
#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct ListPartsResult {
    #[serde(default)]
    pub part: Vec<ListedPart>,
    #[serde(default)]
    pub is_truncated: bool,
    pub next_part_number_marker: Option<String>,
}

/// A part of an incomplete upload.
#[derive(Debug, Deserialize, PartialEq, Eq, Clone)]
#[serde(rename_all = "PascalCase")]
pub struct ListedPart {
    /// Its number, 1-based.
    #[serde(default)]
    pub part_number: u32,
    #[serde(default)]
    pub size: u64,
    /// What CompleteMultipartUpload must name it by.
    #[serde(rename = "ETag", default)]
    pub etag: String,
}

/// An `<Error>` document.
#[derive(Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ErrorDocument {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// Parses `<Error>`; `None` when `body` is some other document (or none). CompleteMultipartUpload can
/// answer 200 with an error body, so callers check successful answers too.
pub fn parse_error(body: &str) -> Option<ErrorDocument> {
    let start = body.trim_start();
    let start = start.strip_prefix("<?xml").map_or(start, |rest| rest.split_once("?>").map_or("", |(_, r)| r).trim_start());
    if !start.starts_with("<Error>") && !start.starts_with("<Error ") {
        return None;
    }
    quick_xml::de::from_str(body).ok()
}

/// Parses a ListObjectsV2 page.
pub fn parse_list(body: &str) -> Result<ListBucketResult, String> {
    quick_xml::de::from_str(body).map_err(|e| format!("unreadable ListObjectsV2 answer: {e}"))
}

/// Parses a ListMultipartUploads page.
pub fn parse_uploads(body: &str) -> Result<ListMultipartUploadsResult, String> {
    quick_xml::de::from_str(body).map_err(|e| format!("unreadable ListMultipartUploads answer: {e}"))
}

/// Parses a ListParts page.
pub fn parse_parts(body: &str) -> Result<ListPartsResult, String> {
    quick_xml::de::from_str(body).map_err(|e| format!("unreadable ListParts answer: {e}"))
}

/// Parses the answer to CreateMultipartUpload.
pub fn parse_initiate(body: &str) -> Result<String, String> {
    quick_xml::de::from_str::<InitiateMultipartUploadResult>(body)
        .map(|r| r.upload_id)
        .map_err(|e| format!("unreadable CreateMultipartUpload answer: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A truncated listing with a continuation token parses.
    #[test]
    fn parses_listings() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>k</Prefix><KeyCount>2</KeyCount>
<IsTruncated>true</IsTruncated><NextContinuationToken>tok</NextContinuationToken>
<Contents><Key>k1</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>"x"</ETag><Size>10</Size><StorageClass>STANDARD</StorageClass></Contents>
<Contents><Key>k2</Key><LastModified>2026-01-02T00:00:00.000Z</LastModified><ETag>"y"</ETag><Size>20</Size></Contents>
</ListBucketResult>"#;
        let list = parse_list(body).unwrap();
        assert!(list.is_truncated);
        assert_eq!(list.next_continuation_token.as_deref(), Some("tok"));
        assert_eq!(list.contents.len(), 2);
        assert_eq!(list.contents[1].size, 20);
        let empty = parse_list("<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>").unwrap();
        assert!(empty.contents.is_empty());
    }

    /// Error documents are recognized, with or without an XML declaration; other documents are not.
    #[test]
    fn recognizes_errors() {
        let error = parse_error("<?xml version=\"1.0\"?>\n<Error><Code>InternalError</Code><Message>oops</Message></Error>").unwrap();
        assert_eq!(error.code, "InternalError");
        assert_eq!(parse_error("<CompleteMultipartUploadResult><ETag>x</ETag></CompleteMultipartUploadResult>"), None);
        assert_eq!(parse_error(""), None);
    }

    /// Incomplete uploads and their parts are read from their listings, continuation markers included.
    #[test]
    fn parses_upload_listings() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>b</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>
<NextKeyMarker>local/b.tar.zst</NextKeyMarker><NextUploadIdMarker>u2</NextUploadIdMarker><MaxUploads>1000</MaxUploads><IsTruncated>true</IsTruncated>
<Upload><Key>local/a.tar.zst</Key><UploadId>u1</UploadId><Initiated>2026-01-01T00:00:00.000Z</Initiated><StorageClass>STANDARD</StorageClass></Upload>
<Upload><Key>local/b.tar.zst</Key><UploadId>u2</UploadId><Initiated>2026-01-02T00:00:00.000Z</Initiated></Upload>
</ListMultipartUploadsResult>"#;
        let page = parse_uploads(body).unwrap();
        assert!(page.is_truncated);
        assert_eq!(page.upload.len(), 2);
        assert_eq!((page.upload[1].key.as_str(), page.upload[1].upload_id.as_str()), ("local/b.tar.zst", "u2"));
        assert_eq!(page.next_upload_id_marker.as_deref(), Some("u2"));
        assert!(
            parse_uploads("<ListMultipartUploadsResult><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>")
                .unwrap()
                .upload
                .is_empty()
        );
        let parts = concat!(
            "<ListPartsResult><IsTruncated>false</IsTruncated><Part><PartNumber>1</PartNumber><ETag>\"x\"</ETag><Size>5242880",
            "</Size></Part><Part><PartNumber>2</PartNumber><Size>7</Size></Part></ListPartsResult>"
        );
        let parts = parse_parts(parts).unwrap();
        assert_eq!(parts.part.iter().map(|p| p.size).sum::<u64>(), 5242887);
    }

    /// The upload id is read from CreateMultipartUpload's answer.
    #[test]
    fn parses_upload_ids() {
        let body = "<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>abc</UploadId></InitiateMultipartUploadResult>";
        assert_eq!(parse_initiate(body).unwrap(), "abc");
    }
}
