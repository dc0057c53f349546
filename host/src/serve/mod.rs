//! `s3cache serve`: GitHub's cache protocol on the store, so that unmodified `actions/cache`, the
//! `setup-*` actions' caches, act, Forgejo and Gitea runners and buildx keep their caches in the
//! user's bucket. Both versions are served from one port: v1 REST (`_apis/artifactcache/…`, act,
//! Forgejo, Gitea, GHES) and v2 Twirp (`twirp/github.actions.results.api.v1.CacheService/…`, the
//! current toolkit and buildx) with its Azure-Blob-shaped data URLs. Routes are matched on the path's
//! suffix, so any path prefix works.
//!
//! The server keeps no state of its own: entries are objects named by scope, key and version
//! (`entries.rs`), uploads in progress are S3 multipart uploads with small records beside them
//! (`uploads.rs`), and data URLs carry their own signature (`urls.rs`). Any number of servers can run
//! over one bucket, next to the CLI and its admin verbs, which list, count and evict these entries
//! like their own.
//!
//! One thread serves each request, at most `--max-connections` at once; a body streams from the
//! socket straight into an S3 part, so memory stays bounded whatever the entry's size.

pub mod auth;
mod blob;
mod entries;
mod http;
mod uploads;
mod urls;
mod v1;
mod v2;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::engine::CacheContext;
use crate::env_vars;
use crate::store::BlobStore;
use crate::ui::output::counted;
use http::{Answer, Incoming};
use urls::UrlSigner;

/// The settings of `s3cache serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// The address to listen on; `127.0.0.1:0` picks a free port.
    #[arg(long, env = env_vars::S3CACHE_SERVE_LISTEN, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The URL runners reach this server at, for the download and upload URLs it hands out
    /// (default: http:// and the request's Host header).
    #[arg(long, env = env_vars::S3CACHE_SERVE_PUBLIC_URL, value_name = "URL")]
    pub public_url: Option<String>,
    /// A file holding the key (at least 32 bytes) that signs download and upload URLs; servers
    /// sharing a bucket need the same one (default: a random key, so URLs work on this server only).
    #[arg(long, env = env_vars::S3CACHE_SERVE_URL_KEY_FILE, value_name = "PATH")]
    pub url_key_file: Option<PathBuf>,
    /// The largest entry accepted.
    #[arg(long, env = env_vars::S3CACHE_SERVE_MAX_ENTRY_SIZE, value_name = "SIZE", default_value = "10GiB", value_parser = crate::config::parse::flags::size)]
    pub max_entry_size: u64,
    /// How long an upload may stay unfinished; older ones are aborted and leave no entry.
    #[arg(long, env = env_vars::S3CACHE_SERVE_UPLOAD_TIMEOUT, value_name = "DURATION", default_value = "6h", value_parser = crate::config::parse::flags::duration)]
    pub upload_timeout: Duration,
    /// The most requests served at once; more wait for a turn.
    #[arg(long, env = env_vars::S3CACHE_SERVE_MAX_CONNECTIONS, value_name = "N", default_value_t = 64)]
    pub max_connections: usize,
    /// Keep the store at most this size: maintenance deletes the least recently used entries (as prune).
    #[arg(long, env = env_vars::S3CACHE_SERVE_MAX_STORE_SIZE, value_name = "SIZE", value_parser = crate::config::parse::flags::size)]
    pub max_store_size: Option<u64>,
    /// Delete entries not used for longer than this at each maintenance (as flush).
    #[arg(long, env = env_vars::S3CACHE_SERVE_MAX_AGE, value_name = "DURATION", value_parser = crate::config::parse::flags::duration)]
    pub max_age: Option<Duration>,
    /// How often maintenance runs (abandoned uploads, and --max-store-size and --max-age), give or
    /// take a tenth; it also runs at start.
    #[arg(long, env = env_vars::S3CACHE_SERVE_MAINTENANCE_INTERVAL, value_name = "DURATION", default_value = "1h", value_parser = crate::config::parse::flags::duration)]
    pub maintenance_interval: Duration,
    /// How callers authenticate, and the scopes they get ([`auth`]).
    #[command(flatten)]
    pub auth: auth::AuthSettings,
    /// Run no maintenance here (another server over the same bucket does it).
    #[arg(long, env = env_vars::S3CACHE_SERVE_NO_MAINTENANCE, value_parser = crate::config::parse::flags::boolean, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub no_maintenance: bool,
}

/// The largest piece (v1 chunk, v2 block or blob) one request may carry.
pub const MAX_PIECE: u64 = 256 << 20;
/// How long a download URL stays valid.
const DOWNLOAD_URL_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// A running server's shared parts.
pub(crate) struct Server<'a> {
    context: &'a CacheContext,
    store: Arc<dyn BlobStore>,
    settings: &'a ServeArgs,
    signer: UrlSigner,
    authenticator: auth::Authenticator,
    /// v1 upload numbers already looked up: their records never change.
    v1_uploads: Mutex<std::collections::HashMap<u64, uploads::Pending>>,
}

impl<'a> Server<'a> {
    /// A server over `context`'s store and scope with `settings`; fails when the URL key file is unusable.
    pub(crate) fn new(context: &'a CacheContext, settings: &'a ServeArgs) -> Result<Self, String> {
        let key = match &settings.url_key_file {
            Some(path) => {
                let key = std::fs::read(path).map_err(|e| format!("--url-key-file {}: {e}", path.display()))?;
                let key = key.trim_ascii().to_vec();
                if key.len() < UrlSigner::MIN_KEY_BYTES {
                    return Err(format!("--url-key-file {}: the key must be at least {} bytes", path.display(), UrlSigner::MIN_KEY_BYTES));
                }
                Some(key)
            }
            None => None,
        };
        Ok(Self {
            context,
            store: context.store.clone(),
            settings,
            signer: UrlSigner::new(key),
            authenticator: auth::Authenticator::new(&settings.auth, settings.listen, &context.scopes.write)?,
            v1_uploads: Mutex::new(Default::default()),
        })
    }

    /// Who `request` comes from, and which scopes it reads and writes ([`auth`]); the text of a
    /// refusal follows `cache read denied: `.
    fn caller(&self, request: &Incoming) -> Result<auth::Caller, String> {
        let header = |name: &str| request.header(&name.to_ascii_lowercase()).map(str::to_owned);
        self.authenticator.authenticate(&header).map_err(|denied| denied.0)
    }

    /// The base of the URLs handed out: `--public-url`, else `http://` and the request's Host.
    fn public_base(&self, request: &Incoming) -> String {
        match &self.settings.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", request.header("host").unwrap_or("127.0.0.1")),
        }
    }

    /// A download URL for the entry named `entry`.
    fn download_url(&self, request: &Incoming, entry: &str) -> String {
        let grant = urls::Grant { entry: entry.to_owned(), upload_id: None };
        format!("{}/{}", self.public_base(request), self.signer.sign(&grant, urls::Access::Read, DOWNLOAD_URL_LIFETIME))
    }

    /// Answers one request.
    pub(crate) fn answer(&self, request: &mut Incoming) -> Answer {
        let path = request.path.to_owned();
        if let Some((_, rest)) = path.split_once("_apis/artifactcache/") {
            return v1::answer(self, request, rest);
        }
        if let Some((_, method)) = path.split_once("twirp/github.actions.results.api.v1.CacheService/") {
            return v2::answer(self, request, method);
        }
        if let Some((_, token)) = path.split_once(urls::DATA_PATH) {
            return blob::answer(self, request, token);
        }
        Answer::v1_error(404, &format!("no such endpoint: {} {}", request.method, request.path))
    }
}

/// Counts requests in flight and makes the one over the limit wait.
struct Slots {
    free: Mutex<usize>,
    changed: Condvar,
}

impl Slots {
    fn take(&self) {
        let mut free = self.free.lock().expect("slots lock");
        while *free == 0 {
            free = self.changed.wait(free).expect("slots lock");
        }
        *free -= 1;
    }

    fn give(&self) {
        *self.free.lock().expect("slots lock") += 1;
        self.changed.notify_one();
    }
}

/// Serves until the context is cancelled (SIGINT, SIGTERM): returns the exit code.
pub fn run(context: &CacheContext, settings: &ServeArgs) -> Result<u8, String> {
    let server = Server::new(context, settings)?;
    if server.store.resumable().is_none() {
        return Err(format!(
            "s3cache serve needs an s3:// store with credentials; {} cannot hold uploads in progress",
            context.store.location()
        ));
    }
    let http = tiny_http::Server::http(settings.listen).map_err(|e| format!("--listen {}: {e}", settings.listen))?;
    let address = http.server_addr().to_ip().map_or_else(|| settings.listen.to_string(), |a| a.to_string());
    let key_note = if settings.url_key_file.is_some() {
        ""
    } else {
        "; data URLs are signed with a random key (one server only: set --url-key-file to share a bucket)"
    };
    context.reporter().notice(&format!(
        "s3cache serve: listening on http://{address} (v1: ACTIONS_CACHE_URL=http://{address}/, v2: ACTIONS_RESULTS_URL=http://{address}/) over {}; {}{key_note}",
        context.store.location(),
        server.authenticator.describe(),
    ));
    if let Some(warning) = server.authenticator.warning() {
        context.reporter().warning(&warning);
    }
    let slots = Slots { free: Mutex::new(settings.max_connections.max(1)), changed: Condvar::new() };
    std::thread::scope(|threads| {
        if !settings.no_maintenance {
            threads.spawn(|| maintain(&server));
        }
        while !context.cancel.is_cancelled() {
            let request = match http.recv_timeout(Duration::from_millis(200)) {
                Ok(Some(request)) => request,
                Ok(None) => continue,
                Err(err) => {
                    tracing::warn!("accepting a request failed: {err}");
                    continue;
                }
            };
            slots.take();
            let (server, slots) = (&server, &slots);
            threads.spawn(move || {
                serve_one(server, request);
                slots.give();
            });
        }
    });
    Ok(0)
}

/// Runs maintenance at start and then every interval (give or take a tenth, so that servers started
/// together drift apart) until the context is cancelled. Several servers may run it over one bucket:
/// every step is idempotent (an abort or a delete of what is gone succeeds), so overlapping runs at
/// worst evict a little more than needed.
fn maintain(server: &Server) {
    let context = server.context;
    loop {
        match uploads::sweep(server.store.as_ref(), server.settings.upload_timeout) {
            Ok(0) => {}
            Ok(aborted) => context
                .reporter()
                .notice(&format!("maintenance: aborted {}", counted(aborted as u64, "abandoned upload", "abandoned uploads"))),
            Err(err) => context.reporter().warning(&format!("maintenance: could not sweep abandoned uploads: {err}")),
        }
        let now = std::time::SystemTime::now();
        if let Some(age) = server.settings.max_age {
            match context.stale_entries(age, now) {
                Ok(stale) => report_removal(context, "--max-age", context.remove(stale)),
                Err(err) => context.reporter().warning(&format!("maintenance: --max-age: the store failed: {err}")),
            }
        }
        if let Some(max_bytes) = server.settings.max_store_size {
            match context.eviction_candidates(max_bytes) {
                Ok((evict, _)) => report_removal(context, "--max-store-size", context.remove(evict)),
                Err(err) => context.reporter().warning(&format!("maintenance: --max-store-size: the store failed: {err}")),
            }
        }
        let interval = server.settings.maintenance_interval.mul_f64(0.9 + fastrand::f64() * 0.2);
        let until = std::time::Instant::now() + interval;
        while std::time::Instant::now() < until {
            if context.cancel.is_cancelled() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200).min(interval));
        }
    }
}

fn report_removal(context: &CacheContext, setting: &str, removal: crate::engine::admin::Removal) {
    if !removal.deleted.is_empty() {
        context
            .reporter()
            .notice(&format!("maintenance: {setting}: deleted {}", counted(removal.deleted.len() as u64, "entry", "entries")));
    }
    for (entry, why) in removal.failed {
        context.reporter().warning(&format!("maintenance: {setting}: could not delete {}: {why}", entry.object.name));
    }
}

/// Answers one tiny_http request; a panic in a handler answers 500 and leaves the server serving.
fn serve_one(server: &Server, mut request: tiny_http::Request) {
    let method = request.method().as_str().to_owned();
    let url = request.url().to_owned();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let headers = request.headers().iter().map(|h| (h.field.as_str().as_str().to_ascii_lowercase(), h.value.as_str().to_owned())).collect();
    let body_length = request.body_length().map(|n| n as u64);
    let answer = {
        let mut incoming =
            Incoming { method: &method, path, query: http::query_pairs(query), headers, body_length, body: request.as_reader() };
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| server.answer(&mut incoming)))
            .unwrap_or_else(|_| Answer::v1_error(500, "the server failed on this request"))
    };
    tracing::debug!(%method, route = route_name(path), status = answer.status, "answered");
    let mut headers: Vec<tiny_http::Header> =
        answer.headers.iter().filter_map(|(n, v)| tiny_http::Header::from_bytes(n.as_bytes(), v.as_bytes()).ok()).collect();
    headers.push(tiny_http::Header::from_bytes("x-ms-request-id", request_id()).expect("a valid header"));
    let status = tiny_http::StatusCode(answer.status);
    let sent = match answer.body {
        http::Body::Bytes(bytes) => {
            let length = bytes.len();
            request.respond(tiny_http::Response::new(status, headers, std::io::Cursor::new(bytes), Some(length), None))
        }
        http::Body::Stream(reader, length) => {
            request.respond(tiny_http::Response::new(status, headers, reader, Some(length as usize), None))
        }
    };
    if let Err(err) = sent {
        tracing::debug!("the client went away before the answer was sent: {err}");
    }
}

/// What a path is, for logs: never the tokens it holds.
fn route_name(path: &str) -> &'static str {
    if path.contains("_apis/artifactcache/") {
        "v1"
    } else if path.contains("twirp/") {
        "v2"
    } else if path.contains(urls::DATA_PATH) {
        "data URL"
    } else {
        "unknown"
    }
}

/// A random request id, as Azure sends one with every answer (buildx's client needs it).
fn request_id() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}
