//! `s3cache serve` spoken to in raw HTTP, at the edges of its protocols (docs/serve.md): runtime-token
//! JWTs that keep a pull request out of the default branch's scope, Forgejo's HMAC headers and
//! isolation keys, every kind of bad input answered in the protocol's own form with nothing
//! half-written left as an entry, an abandoned upload swept by maintenance, a buildx-shaped v2
//! client (1 MiB blocks with Go SDK ids, ranged downloads), toolkit-shaped v2 blocks assembled into
//! an S3 multipart upload of several parts on moto, and servers sharing a `--url-key-file` honouring
//! each other's data URLs. The Node client's own runs are serve.rs's.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use s3cache::engine::scope::scope_name;
use s3cache::serve::auth::{DEFAULT_JWT_ISSUER, forgejo};
use s3cache_tests::gha::Served;
use s3cache_tests::tree::noise;
use s3cache_tests::{Machine, S3Server, ServerKind, boto3};
use serde_json::{Value, json};

/// The Twirp service's path.
const TWIRP: &str = "twirp/github.actions.results.api.v1.CacheService/";
/// A client's version, as the toolkit sends it: 64 hex digits.
const VERSION: &str = "5b1f0e2a4c6d8e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7081";
/// How long a test waits for maintenance to sweep: a bound that turns a
/// hang into a failure, never the assertion itself.
const PATIENCE: Duration = Duration::from_secs(60);

/// A path in tests/fixtures/serve/.
fn fixture(name: &str) -> String {
    format!("{}/fixtures/serve/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The URL of a path on the server.
trait At {
    fn at(&self, path: &str) -> String;
}

impl At for Served {
    fn at(&self, path: &str) -> String {
        format!("{}/{path}", self.url())
    }
}

/// An answer: status, headers and the whole body.
struct Reply {
    status: u16,
    headers: ureq::http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text()))
    }

    /// Asserts the status and the JSON body.
    #[track_caller]
    fn assert_json(&self, status: u16, body: Value) {
        assert_eq!((self.status, self.json()), (status, body), "{}", self.text());
    }

    /// Asserts the status and an Azure Blob error body with `code` and `message`.
    #[track_caller]
    fn assert_blob_error(&self, status: u16, code: &str, message: &str) {
        let body = format!("<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>");
        assert_eq!((self.status, self.text()), (status, body));
        assert_eq!(self.header("x-ms-error-code"), Some(code));
    }
}

/// Sends one request; every status is an answer, not an error.
fn send(method: &str, url: &str, headers: &[(&str, String)], body: Option<&[u8]>) -> Reply {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut request = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let sent = match body {
        Some(body) => agent.run(request.body(body.to_vec()).expect("a request")),
        None => agent.run(request.body(()).expect("a request")),
    };
    let mut response = sent.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let body = response.body_mut().with_config().limit(64 << 20).read_to_vec().expect("read the answer");
    Reply { status: response.status().as_u16(), headers: response.headers().clone(), body }
}

/// A v2 Twirp call of `method` with `body`, as `token`'s bearer.
fn twirp(serve: &Served, token: &str, method: &str, body: &Value) -> Reply {
    let headers = [("content-type", "application/json".to_owned()), ("authorization", format!("Bearer {token}"))];
    send("POST", &serve.at(&format!("{TWIRP}{method}")), &headers, Some(body.to_string().as_bytes()))
}

/// The upload URL `CreateCacheEntry` hands out for `key`.
#[track_caller]
fn create(serve: &Served, token: &str, key: &str) -> String {
    let reply = twirp(serve, token, "CreateCacheEntry", &json!({ "key": key, "version": VERSION }));
    assert_eq!((reply.status, &reply.json()["ok"]), (200, &json!(true)), "{}", reply.text());
    reply.json()["signed_upload_url"].as_str().expect("an upload URL").to_owned()
}

/// Saves `bytes` as `key` the way the toolkit does for entries up to 128 MiB: CreateCacheEntry, one
/// Put Blob, FinalizeCacheEntryUpload (`size_bytes` a string, as protobuf's JSON writes int64).
#[track_caller]
fn save_v2(serve: &Served, token: &str, key: &str, bytes: &[u8]) {
    let upload = create(serve, token, key);
    let put = send("PUT", &upload, &[("x-ms-blob-type", "BlockBlob".to_owned())], Some(bytes));
    assert_eq!(put.status, 201, "Put Blob: {}", put.text());
    finalize(serve, token, key, bytes.len());
}

/// FinalizeCacheEntryUpload of `size` bytes for `key`, which must succeed.
#[track_caller]
fn finalize(serve: &Served, token: &str, key: &str, size: usize) {
    let body = json!({ "key": key, "version": VERSION, "size_bytes": size.to_string() });
    let finalize = twirp(serve, token, "FinalizeCacheEntryUpload", &body);
    assert_eq!((finalize.status, &finalize.json()["ok"]), (200, &json!(true)), "{}", finalize.text());
}

/// The download URL a v2 lookup of `keys` (the first the primary key) finds, `None` on a miss.
#[track_caller]
fn lookup_v2(serve: &Served, token: &str, keys: &[&str]) -> Option<String> {
    let body = json!({ "key": keys[0], "restore_keys": &keys[1..], "version": VERSION });
    let reply = twirp(serve, token, "GetCacheEntryDownloadURL", &body);
    assert_eq!(reply.status, 200, "{}", reply.text());
    if reply.json() == json!({ "ok": false }) {
        return None;
    }
    assert_eq!((&reply.json()["ok"], &reply.json()["matched_key"]), (&json!(true), &json!(keys[0])), "{}", reply.text());
    Some(reply.json()["signed_download_url"].as_str().expect("a download URL").to_owned())
}

/// The bytes at a download URL.
#[track_caller]
fn download(url: &str) -> Vec<u8> {
    let reply = send("GET", url, &[], None);
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.body
}

/// The entries `list --all-scopes --json` shows, as (scope, key) pairs, sorted.
fn listed(machine: &Machine) -> Vec<(String, String)> {
    let run = machine.run(&["list", "--all-scopes", "--json"]).success();
    let list: Value = serde_json::from_str(&run.stdout).expect("list --json prints JSON");
    let mut entries: Vec<(String, String)> = list["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| (e["scope"].as_str().unwrap().to_owned(), e["key"].as_str().unwrap().to_owned()))
        .collect();
    entries.sort();
    entries
}

fn machine_on(server: &S3Server) -> Machine {
    let mut machine = Machine::new();
    machine.use_server(server, "gha");
    machine
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// A runtime token for repository 4242 granting `ac` (`[(ref, permission)]`), signed by the PEM key
/// `key` in the fixtures under kid `s3cache-test`.
fn token_signed_by(key: &str, ac: &[(&str, u8)]) -> String {
    let ac: Vec<Value> = ac.iter().map(|(scope, permission)| json!({ "Scope": scope, "Permission": permission })).collect();
    let claims = json!({
        "iss": DEFAULT_JWT_ISSUER,
        "exp": now_secs() + 600,
        "nbf": now_secs() - 10,
        "repository_id": "4242",
        "ac": Value::Array(ac).to_string(),
    });
    let header = jsonwebtoken::Header { kid: Some("s3cache-test".into()), ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256) };
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&std::fs::read(fixture(key)).expect("a test key")).expect("an RSA key");
    jsonwebtoken::encode(&header, &claims, &key).expect("a signed token")
}

fn token(ac: &[(&str, u8)]) -> String {
    token_signed_by("jwt-test-key.pem", ac)
}

/// JWT scopes: the default branch saves; a pull request reads it, saves into its own scope and
/// cannot reach the default branch's; a read-only token cannot save; another key's token is refused.
#[test]
fn jwt_scopes_keep_pull_requests_out_of_the_default_branch() {
    let server = S3Server::start(ServerKind::S3sFs);
    let machine = machine_on(&server);
    let serve = Served::start(&machine, &["--jwt-jwks", &fixture("jwks.json")]);
    let main = token(&[("refs/heads/main", 3)]);
    let pull = token(&[("refs/pull/1/merge", 3), ("refs/heads/main", 1)]);
    let (a, b) = (noise(3000, 1), noise(2000, 2));

    save_v2(&serve, &main, "key-a", &a);
    let found = lookup_v2(&serve, &pull, &["key-a"]).expect("the pull request reads main's entry");
    assert_eq!(download(&found), a);
    save_v2(&serve, &pull, "key-b", &b);
    assert_eq!(lookup_v2(&serve, &main, &["key-b"]), None, "main must not see the pull request's entry");
    assert_eq!(download(&lookup_v2(&serve, &pull, &["key-b"]).expect("the pull request reads its own entry")), b);
    let (main_scope, pull_scope) =
        (format!("r4242-{}", scope_name("refs/heads/main")), format!("r4242-{}", scope_name("refs/pull/1/merge")));
    assert_eq!(listed(&machine), vec![(main_scope, "key-a".to_owned()), (pull_scope, "key-b".to_owned())]);

    let read_only = token(&[("refs/heads/main", 1)]);
    twirp(&serve, &read_only, "CreateCacheEntry", &json!({ "key": "key-c", "version": VERSION }))
        .assert_json(200, json!({ "ok": false, "message": "cache write denied: token grants no write scope" }));

    let forged = token_signed_by("jwt-other-key.pem", &[("refs/heads/main", 3)]);
    twirp(&serve, &forged, "GetCacheEntryDownloadURL", &json!({ "key": "key-a", "version": VERSION }))
        .assert_json(403, json!({ "code": "permission_denied", "msg": "cache read denied: bad JWT signature" }));
    let v1 = send(
        "GET",
        &serve.at(&format!("_apis/artifactcache/cache?keys=key-a&version={VERSION}")),
        &[("authorization", format!("Bearer {forged}"))],
        None,
    );
    v1.assert_json(403, json!({ "message": "cache read denied: bad JWT signature" }));
    assert_eq!(listed(&machine).len(), 2);
}

/// One Forgejo job's proxy: its headers, with a MAC over them unless `bad_mac`.
struct ForgejoRun {
    secret: &'static str,
    isolation_key: &'static str,
    bad_mac: bool,
}

const FORGEJO_REPO: &str = "owner/name";
const FORGEJO_HOST: &str = "http://forgejo-proxy.test:4000";
const FORGEJO_RUN_ID: &str = "aB3x";

impl ForgejoRun {
    fn headers(&self) -> Vec<(&'static str, String)> {
        let (run_number, timestamp) = ("17", now_secs().to_string());
        let mut mac = forgejo::mac(self.secret, FORGEJO_REPO, run_number, &timestamp, self.isolation_key);
        if self.bad_mac {
            mac = forgejo::mac("another secret", FORGEJO_REPO, run_number, &timestamp, self.isolation_key);
        }
        let mut headers = vec![
            ("Forgejo-Cache-Repo", FORGEJO_REPO.to_owned()),
            ("Forgejo-Cache-RunNumber", run_number.to_owned()),
            ("Forgejo-Cache-Timestamp", timestamp),
            ("Forgejo-Cache-MAC", mac),
            ("Forgejo-Cache-Host", FORGEJO_HOST.to_owned()),
            ("Forgejo-Cache-RunId", FORGEJO_RUN_ID.to_owned()),
        ];
        if !self.isolation_key.is_empty() {
            headers.push(("Forgejo-Cache-WriteIsolationKey", self.isolation_key.to_owned()));
        }
        headers
    }

    /// Saves `bytes` as `key` over v1: reserve, one chunk, commit.
    #[track_caller]
    fn save(&self, serve: &Served, key: &str, bytes: &[u8]) {
        let headers = self.headers();
        let reserve = json!({ "key": key, "version": VERSION, "cacheSize": bytes.len() });
        let reply = send("POST", &serve.at("_apis/artifactcache/caches"), &headers, Some(reserve.to_string().as_bytes()));
        assert_eq!(reply.status, 200, "{}", reply.text());
        let id = reply.json()["cacheId"].as_u64().expect("a cacheId");
        let chunk_url = serve.at(&format!("_apis/artifactcache/caches/{id}"));
        let mut chunk_headers = headers.clone();
        chunk_headers.push(("content-range", format!("bytes 0-{}/*", bytes.len() - 1)));
        let patch = send("PATCH", &chunk_url, &chunk_headers, Some(bytes));
        assert_eq!(patch.status, 204, "{}", patch.text());
        let commit = send("POST", &chunk_url, &headers, Some(json!({ "size": bytes.len() }).to_string().as_bytes()));
        assert_eq!(commit.status, 204, "{}", commit.text());
    }

    /// The bytes a v1 lookup of `key` finds, fetched at the `archiveLocation` through the (stand-in)
    /// proxy's path; `None` on a miss.
    #[track_caller]
    fn restore(&self, serve: &Served, key: &str) -> Option<Vec<u8>> {
        let reply = send("GET", &serve.at(&format!("_apis/artifactcache/cache?keys={key}&version={VERSION}")), &self.headers(), None);
        if reply.status == 204 {
            return None;
        }
        assert_eq!((reply.status, &reply.json()["cacheKey"]), (200, &json!(key)), "{}", reply.text());
        let location = reply.json()["archiveLocation"].as_str().expect("an archiveLocation").to_owned();
        let path = location
            .strip_prefix(&format!("{FORGEJO_HOST}/{FORGEJO_RUN_ID}/_apis/artifactcache/artifacts/"))
            .unwrap_or_else(|| panic!("archiveLocation {location} is not under the proxy's host and run id"));
        let fetched = send("GET", &serve.at(&format!("{FORGEJO_RUN_ID}/_apis/artifactcache/artifacts/{path}")), &self.headers(), None);
        assert_eq!(fetched.status, 200, "{}", fetched.text());
        Some(fetched.body)
    }
}

/// Forgejo: v1 saves and restores with the proxy's headers and MAC, downloads back through the
/// proxy, a bad MAC refused, isolation keys keeping pull requests apart while the shared scope is read by all.
#[test]
fn forgejo_headers_authenticate_and_isolate() {
    let server = S3Server::start(ServerKind::S3sFs);
    let machine = machine_on(&server);
    let secret_file = machine.scratch("forgejo").join("secret");
    std::fs::write(&secret_file, "runner-cache-secret\n").unwrap();
    let serve = Served::start(&machine, &["--forgejo-secret-file", secret_file.to_str().unwrap()]);
    let run = |isolation_key| ForgejoRun { secret: "runner-cache-secret", isolation_key, bad_mac: false };
    // Short isolation keys: s3s-fs keeps a multipart upload under a file named by the base64 of the
    // object's name, so it cannot start one for a name over about 120 bytes.
    let (shared_run, pr3, pr4) = (run(""), run("pr3"), run("pr4"));
    let (shared, isolated) = (noise(4000, 3), noise(5000, 4));

    shared_run.save(&serve, "shared-key", &shared);
    pr3.save(&serve, "pr-key", &isolated);
    assert_eq!(pr3.restore(&serve, "pr-key"), Some(isolated), "the same isolation key reads its entry");
    assert_eq!(pr4.restore(&serve, "pr-key"), None, "another isolation key must not read it");
    assert_eq!(shared_run.restore(&serve, "pr-key"), None, "a run without an isolation key must not read it");
    for reader in [&shared_run, &pr3, &pr4] {
        assert_eq!(reader.restore(&serve, "shared-key").as_ref(), Some(&shared), "the shared entry is read by every run");
    }
    let (_, shared_scope) = forgejo::scopes(FORGEJO_REPO, "");
    let (_, pr3_scope) = forgejo::scopes(FORGEJO_REPO, "pr3");
    let mut expected = vec![(shared_scope, "shared-key".to_owned()), (pr3_scope, "pr-key".to_owned())];
    expected.sort();
    assert_eq!(listed(&machine), expected);

    let forged = ForgejoRun { bad_mac: true, ..run("") };
    send("GET", &serve.at(&format!("_apis/artifactcache/cache?keys=shared-key&version={VERSION}")), &forged.headers(), None)
        .assert_json(403, json!({ "message": "cache read denied: bad Forgejo cache MAC" }));
}

/// A block id as the Go SDK (buildx) makes it: 16 random bytes, the big-endian index, 44 zeros.
fn go_block_id(index: u32) -> String {
    let mut raw = [0u8; 64];
    raw[..16].copy_from_slice(&noise(16, u64::from(index) + 100));
    raw[16..20].copy_from_slice(&index.to_be_bytes());
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// A query value as the Azure SDKs write it: base64's `+`, `/` and `=` percent-encoded.
fn query_value(text: &str) -> String {
    text.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D")
}

/// A Put Block List body naming `ids` in order.
fn block_list(ids: &[String]) -> Vec<u8> {
    let latest: String = ids.iter().map(|id| format!("<Latest>{id}</Latest>")).collect();
    format!("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>{latest}</BlockList>").into_bytes()
}

/// A data URL signed with `key` as the server signs them (docs/serve.md, "Download and upload URLs"),
/// for a URL the server would not hand out: an expired one.
fn signed_url(serve: &Served, key: &[u8], token: &str, access: &str, expires: u64) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(format!("s3cache-serve-url/1\n{access}\n{expires}\n{token}").as_bytes());
    let sig = hex::encode(mac.finalize().into_bytes());
    serve.at(&format!("_s3cache/blob/{token}?sp={access}&se={expires}&sig={sig}"))
}

/// Bad input of every kind in the design's table: each is a 4xx in the protocol's own form with the
/// exact message, the server keeps serving, and none of the failed saves becomes an entry.
#[test]
fn bad_input_is_refused_and_leaves_no_entry() {
    let server = S3Server::start(ServerKind::S3sFs);
    let machine = machine_on(&server);
    let url_key = b"a url signing key of at least thirty-two bytes".to_vec();
    let key_file = machine.scratch("keys").join("url-key");
    std::fs::write(&key_file, &url_key).unwrap();
    let serve = Served::start(&machine, &["--url-key-file", key_file.to_str().unwrap()]);
    let v1 = |path: &str| serve.at(&format!("prefix/_apis/artifactcache/{path}"));
    let json_body = |value: Value| value.to_string().into_bytes();
    let reserve = |key: &str, size: u64| {
        let reply = send("POST", &v1("caches"), &[], Some(&json_body(json!({ "key": key, "version": VERSION, "cacheSize": size }))));
        assert_eq!(reply.status, 200, "{}", reply.text());
        reply.json()["cacheId"].as_u64().expect("a cacheId")
    };
    let range = |value: &str| vec![("content-range", value.to_owned())];

    // Malformed JSON and missing fields.
    send("POST", &v1("caches"), &[], Some(b"{not json"))
        .assert_json(400, json!({ "message": "the body is not {key, version, cacheSize}: key must be a string at line 1 column 2" }));
    send("POST", &v1("caches"), &[], Some(br#"{"key":"k"}"#))
        .assert_json(400, json!({ "message": "the body is not {key, version, cacheSize}: missing field `version` at line 1 column 11" }));
    twirp(&serve, "t", "CreateCacheEntry", &json!({ "key": 1, "version": VERSION })).assert_json(400,
        json!({ "code": "malformed", "msg": "CreateCacheEntry: the body is not the method's JSON: invalid type: integer `1`, expected a string at line 1 column 8" }),
    );
    // Unknown paths and methods, and binary protobuf.
    send("GET", &v1("nothing"), &[], None).assert_json(404, json!({ "message": "no such endpoint: GET _apis/artifactcache/nothing" }));
    send("GET", &serve.at("elsewhere"), &[], None).assert_json(404, json!({ "message": "no such endpoint: GET /elsewhere" }));
    twirp(&serve, "t", "DeleteCacheEntry", &json!({}))
        .assert_json(404, json!({ "code": "bad_route", "msg": "no method \"DeleteCacheEntry\" in CacheService" }));
    let protobuf = [("content-type", "application/protobuf".to_owned())];
    send("POST", &serve.at(&format!("{TWIRP}GetCacheEntryDownloadURL")), &protobuf, Some(b"\x0a\x01k"))
        .assert_json(404, json!({ "code": "bad_route", "msg": "application/protobuf is not supported; use JSON" }));

    // Chunks: Content-Range missing, garbled, or disagreeing with the body; unknown upload numbers.
    let id = reserve("bad-chunks", 20);
    let chunk = v1(&format!("caches/{id}"));
    send("PATCH", &chunk, &[], Some(b"0123456789"))
        .assert_json(400, json!({ "message": "a chunk needs a Content-Range: bytes START-END/*" }));
    send("PATCH", &chunk, &range("0-9"), Some(b"0123456789"))
        .assert_json(400, json!({ "message": "Content-Range \"0-9\" is not bytes START-END/*" }));
    send("PATCH", &chunk, &range("bytes 0-9/*"), Some(b"01234"))
        .assert_json(400, json!({ "message": "Content-Range \"bytes 0-9/*\" says 10 bytes, Content-Length 5" }));
    send("PATCH", &v1("caches/12345"), &range("bytes 0-9/*"), Some(b"0123456789"))
        .assert_json(404, json!({ "message": "unknown cache id 12345" }));
    send("POST", &v1("caches/abc"), &[], Some(&json_body(json!({ "size": 1 }))))
        .assert_json(404, json!({ "message": "unknown cache id \"abc\"" }));
    // A commit before every byte arrived discards the upload, so the key is free again at once.
    let send_chunk = send("PATCH", &chunk, &range("bytes 0-9/*"), Some(b"0123456789"));
    assert_eq!(send_chunk.status, 204, "{}", send_chunk.text());
    send("POST", &chunk, &[], Some(&json_body(json!({ "size": 20 }))))
        .assert_json(400, json!({ "message": "upload incomplete: bytes 10-19 are missing" }));
    send("POST", &chunk, &[], Some(&json_body(json!({ "size": 20 }))))
        .assert_json(404, json!({ "message": format!("unknown cache id {id}") }));
    reserve("bad-chunks", 20);

    // Blocks: an id without an index, a list naming a block never uploaded.
    let upload = create(&serve, "t", "bad-blocks");
    let plain_id = base64::engine::general_purpose::STANDARD.encode("block-1");
    send("PUT", &format!("{upload}&comp=block&blockid={}", query_value(&plain_id)), &[], Some(b"abc")).assert_blob_error(
        400,
        "InvalidQueryParameterValue",
        &format!("block id \"{plain_id}\" is not one the Azure SDKs make (it must carry the block's index)"),
    );
    let put_block = send("PUT", &format!("{upload}&comp=block&blockid={}", query_value(&go_block_id(0))), &[], Some(b"abc"));
    assert_eq!(put_block.status, 201, "{}", put_block.text());
    send("PUT", &format!("{upload}&comp=blocklist"), &[], Some(&block_list(&[go_block_id(0), go_block_id(1)]))).assert_blob_error(
        400,
        "InvalidBlockList",
        "block 1 was never uploaded",
    );

    // Data URLs: a changed signature, an expired one, a download URL used to upload.
    let tampered = format!("{}{}", &upload[..upload.len() - 1], if upload.ends_with('0') { '1' } else { '0' });
    send("PUT", &tampered, &[("x-ms-blob-type", "BlockBlob".to_owned())], Some(b"abc")).assert_blob_error(
        403,
        "AuthenticationFailed",
        "the URL's signature is missing or does not verify",
    );
    let token = upload.split("_s3cache/blob/").nth(1).unwrap().split('?').next().unwrap();
    let expired = signed_url(&serve, &url_key, token, "w", now_secs() - 10);
    send("PUT", &expired, &[("x-ms-blob-type", "BlockBlob".to_owned())], Some(b"abc")).assert_blob_error(
        403,
        "AuthenticationFailed",
        "the URL expired",
    );
    save_v2(&serve, "t", "good", b"good bytes");
    let download_url = lookup_v2(&serve, "t", &["good"]).expect("the good entry");
    send("PUT", &download_url, &[("x-ms-blob-type", "BlockBlob".to_owned())], Some(b"evil")).assert_blob_error(
        403,
        "AuthorizationPermissionMismatch",
        "the URL does not allow this (a download URL cannot upload)",
    );

    // The server still serves, and only the good save is an entry.
    save_v2(&serve, "t", "after", b"saved after all of it");
    assert_eq!(download(&lookup_v2(&serve, "t", &["after"]).expect("saved after the bad input")), b"saved after all of it");
    assert_eq!(download(&download_url), b"good bytes");
    let keys: Vec<String> = listed(&machine).into_iter().map(|(_, key)| key).collect();
    assert_eq!(keys, vec!["after".to_owned(), "good".to_owned()]);
}

/// The multipart uploads open in the bucket and the server's own records left under the store prefix.
fn leftovers(server: &S3Server) -> (Vec<String>, Vec<String>) {
    let out = boto3(
        server,
        "u = [x['Key'] for x in s3.list_multipart_uploads(Bucket=bucket).get('Uploads', [])]\n\
         o = [x['Key'] for x in s3.list_objects_v2(Bucket=bucket, Prefix='gha/.s3cache-serve/').get('Contents', [])]\n\
         print(json.dumps([sorted(u), sorted(o)]))",
    );
    serde_json::from_str(&out).expect("boto3 printed JSON")
}

/// An upload reserved and given one chunk, never committed, is aborted by maintenance once older than
/// `--upload-timeout`, with every record, and leaves no entry (moto lists multipart uploads).
#[test]
fn an_abandoned_upload_is_swept_by_maintenance() {
    let server = S3Server::start(ServerKind::Moto);
    let machine = machine_on(&server);
    // Three seconds, not one: the test must see the upload and its records before they are swept.
    let serve = Served::start(&machine, &["--upload-timeout", "3s", "--maintenance-interval", "1s"]);
    let reply = send(
        "POST",
        &serve.at("_apis/artifactcache/caches"),
        &[],
        Some(json!({ "key": "abandoned", "version": VERSION, "cacheSize": 100 }).to_string().as_bytes()),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let id = reply.json()["cacheId"].as_u64().expect("a cacheId");
    let chunk = send(
        "PATCH",
        &serve.at(&format!("_apis/artifactcache/caches/{id}")),
        &[("content-range", "bytes 0-49/*".to_owned())],
        Some(&noise(50, 5)),
    );
    assert_eq!(chunk.status, 204, "{}", chunk.text());

    let (uploads, records) = leftovers(&server);
    assert_eq!(uploads.len(), 1, "the reservation's multipart upload: {uploads:?}");
    assert!(uploads[0].starts_with("gha/") && uploads[0].ends_with(&format!(",,{VERSION}.gha")), "{uploads:?}");
    let kinds: Vec<&str> = records.iter().map(|r| r.trim_start_matches("gha/.s3cache-serve/").split('/').next().unwrap()).collect();
    assert_eq!(kinds, vec!["pending", "staged", "v1"], "{records:?}");

    let deadline = Instant::now() + PATIENCE;
    while leftovers(&server) != (vec![], vec![]) {
        assert!(Instant::now() < deadline, "maintenance left {:?}\nserver log:\n{}", leftovers(&server), serve.stderr());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(serve.stderr().lines().any(|line| line == "maintenance: aborted 1 abandoned upload"), "{}", serve.stderr());
    assert_eq!(listed(&machine), vec![]);
}

/// buildx's v2 client: 1 MiB blocks with Go SDK ids, one at a time (staged, then assembled),
/// Put Block List, Finalize with `size_bytes` a JSON number; a lookup whose restore keys repeat the
/// key; ranged downloads from an offset and OpenDAL's `bytes=0-0`; a second reservation refused.
#[test]
fn a_buildx_shaped_client_uploads_blocks_and_reads_ranges() {
    let server = S3Server::start(ServerKind::S3sFs);
    let machine = machine_on(&server);
    let serve = Served::start(&machine, &[]);
    let data = noise(12 * (1 << 20) + (1 << 19), 6);
    let total = data.len();

    let upload = create(&serve, "t", "buildx-blob");
    let ids: Vec<String> = (0..data.chunks(1 << 20).len() as u32).map(go_block_id).collect();
    for (block, id) in data.chunks(1 << 20).zip(&ids) {
        let put = send("PUT", &format!("{upload}&comp=block&blockid={}", query_value(id)), &[], Some(block));
        assert_eq!(put.status, 201, "Put Block {id}: {}", put.text());
    }
    assert_eq!(ids.len(), 13);
    let listed_blocks = send("PUT", &format!("{upload}&comp=blocklist"), &[], Some(&block_list(&ids)));
    assert_eq!(listed_blocks.status, 201, "Put Block List: {}", listed_blocks.text());
    assert_eq!(listed(&machine), vec![], "Put Block List commits nothing");
    let finalize =
        twirp(&serve, "t", "FinalizeCacheEntryUpload", &json!({ "key": "buildx-blob", "version": VERSION, "size_bytes": total }));
    assert_eq!((finalize.status, &finalize.json()["ok"]), (200, &json!(true)), "{}", finalize.text());

    let url = lookup_v2(&serve, "t", &["buildx-blob", "buildx-blob"]).expect("the entry");
    let offset = 5_000_000;
    let tail = send("GET", &url, &[("range", format!("bytes={offset}-"))], None);
    assert_eq!((tail.status, tail.header("content-range")), (206, Some(format!("bytes {offset}-{}/{total}", total - 1).as_str())));
    assert!(tail.body == data[offset..], "the bytes from {offset} differ");
    let stat = send("GET", &url, &[("range", "bytes=0-0".to_owned())], None);
    assert_eq!(
        (stat.status, stat.header("content-range"), stat.body.as_slice()),
        (206, Some(format!("bytes 0-0/{total}").as_str()), &data[..1])
    );
    assert!(download(&url) == data, "the whole entry differs");

    twirp(&serve, "t", "CreateCacheEntry", &json!({ "key": "buildx-blob", "version": VERSION }))
        .assert_json(409, json!({ "code": "already_exists", "msg": "cache entry already exists" }));
    let entries = listed(&machine);
    assert_eq!(entries.iter().map(|(_, key)| key.as_str()).collect::<Vec<_>>(), vec!["buildx-blob"]);
}

/// A block id as the JavaScript SDK (the toolkit) makes it: the base64 of a UUID and the index in 12 digits.
fn js_block_id(index: u32) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("6a1f2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b{index:012}"))
}

/// v2 in several blocks on moto, shaped as the toolkit sends them (JavaScript SDK ids): two blocks of
/// 5 MiB, S3's smallest part, and a short last one, put last first, then Put Block List and Finalize.
/// The full blocks go straight to parts 1 and 2, the short one is staged and copied into part 3: the
/// object moto completes has exactly those parts (its ETag is the MD5 of the three parts' MD5s, then
/// `-3`), holds every byte, leaves no staged piece or open upload, and downloads through the server
/// byte for byte.
#[test]
fn v2_blocks_become_multipart_parts_on_moto() {
    const PART: usize = 5 << 20;
    let server = S3Server::start(ServerKind::Moto);
    let machine = machine_on(&server);
    let serve = Served::start(&machine, &[]);
    let data = noise(2 * PART + 1_500_000, 8);
    let blocks: Vec<&[u8]> = data.chunks(PART).collect();
    assert_eq!(blocks.iter().map(|b| b.len()).collect::<Vec<_>>(), [PART, PART, 1_500_000]);
    let ids: Vec<String> = (0..blocks.len() as u32).map(js_block_id).collect();

    let upload = create(&serve, "t", "toolkit-blocks");
    for (block, id) in blocks.iter().zip(&ids).rev() {
        let put = send("PUT", &format!("{upload}&comp=block&blockid={}", query_value(id)), &[], Some(block));
        assert_eq!(put.status, 201, "Put Block {id}: {}", put.text());
    }
    let listed_blocks = send("PUT", &format!("{upload}&comp=blocklist"), &[], Some(&block_list(&ids)));
    assert_eq!(listed_blocks.status, 201, "Put Block List: {}", listed_blocks.text());
    finalize(&serve, "t", "toolkit-blocks", data.len());

    let entries = listed(&machine);
    assert_eq!(entries.iter().map(|(_, key)| key.as_str()).collect::<Vec<_>>(), ["toolkit-blocks"]);
    let object = format!("gha/{}/toolkit-blocks,,{VERSION}.gha", entries[0].0);
    let stored = boto3(
        &server,
        &format!(
            "import hashlib\n\
             body = s3.get_object(Bucket=bucket, Key='{object}')['Body'].read()\n\
             parts = [body[:{PART}], body[{PART}:{double}], body[{double}:]]\n\
             expected = '\"' + hashlib.md5(b''.join(hashlib.md5(p).digest() for p in parts)).hexdigest() + '-3\"'\n\
             print(json.dumps([s3.head_object(Bucket=bucket, Key='{object}')['ETag'], expected, hashlib.sha256(body).hexdigest()]))",
            double = 2 * PART
        ),
    );
    let [etag, three_parts, sha256]: [String; 3] = serde_json::from_str(&stored).expect("boto3 printed three strings");
    assert_eq!(etag, three_parts, "moto's object is not the three parts 0-5 MiB, 5-10 MiB and the rest");
    assert_eq!(sha256, hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&data)), "moto's object differs from the blocks");
    assert_eq!(leftovers(&server), (vec![], vec![]), "a staged piece or an open upload is left");
    assert!(download(&lookup_v2(&serve, "t", &["toolkit-blocks"]).expect("the entry")) == data, "the download differs");
}

/// `url`, handed out by `from`, sent to `to` instead: the same path and query at another address.
#[track_caller]
fn moved(url: &str, from: &Served, to: &Served) -> String {
    let rest = url.strip_prefix(from.url()).unwrap_or_else(|| panic!("{url} is not at {}", from.url()));
    format!("{}{rest}", to.url())
}

/// Two servers over one bucket with one `--url-key-file` honour each other's data URLs, whose
/// signature covers the path and query but not the address: an upload URL that A hands out takes the
/// entry at B, and a download URL from B serves it at A. A third server with another key refuses both
/// URLs with `403 AuthenticationFailed`, and its refusal writes nothing.
#[test]
fn servers_sharing_a_url_key_honour_each_others_urls() {
    let server = S3Server::start(ServerKind::S3sFs);
    let machine = machine_on(&server);
    let keys = machine.scratch("url-keys");
    let (shared_key, other_key) = (keys.join("shared"), keys.join("other"));
    std::fs::write(&shared_key, "the URL key that servers A and B share").unwrap();
    std::fs::write(&other_key, "another URL key, of thirty-two bytes or more").unwrap();
    let start = |key: &std::path::Path| Served::start(&machine, &["--url-key-file", key.to_str().unwrap()]);
    let (a, b, stranger) = (start(&shared_key), start(&shared_key), start(&other_key));
    let data = noise(300_000, 9);
    let blob = [("x-ms-blob-type", "BlockBlob".to_owned())];
    let refused = "the URL's signature is missing or does not verify";

    let upload = create(&a, "t", "shared-url-key");
    send("PUT", &moved(&upload, &a, &stranger), &blob, Some(&data)).assert_blob_error(403, "AuthenticationFailed", refused);
    let put = send("PUT", &moved(&upload, &a, &b), &blob, Some(&data));
    assert_eq!(put.status, 201, "Put Blob at B: {}", put.text());
    finalize(&a, "t", "shared-url-key", data.len());

    let download_url = lookup_v2(&b, "t", &["shared-url-key"]).expect("B finds the entry");
    assert!(download(&moved(&download_url, &b, &a)) == data, "A's download of B's URL differs");
    send("GET", &moved(&download_url, &b, &stranger), &[], None).assert_blob_error(403, "AuthenticationFailed", refused);
    assert_eq!(listed(&machine).into_iter().map(|(_, key)| key).collect::<Vec<_>>(), ["shared-url-key"]);
}
