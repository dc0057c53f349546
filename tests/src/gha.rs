//! GitHub's cache protocol from the client's side (issue 24): `s3cache serve` as a fixture
//! ([`Served`]) and GitHub's own cache client, @actions/cache from tests/gha-client, run with exactly
//! the environment a runner gives a JavaScript action ([`GhaClient`]). The protocol is chosen as a
//! runner chooses it, through the environment, so the same test story runs over v1 REST and v2 Twirp.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{Machine, binary};

/// The line `s3cache serve` prints on stderr once it accepts connections; the base URL follows it.
const LISTENING: &str = "s3cache serve: listening on ";

/// How long a starting server may take to print [`LISTENING`]: a guard against a hang, not a bound
/// that a test asserts (a slow machine compiles the guest's cache first).
const STARTUP_GUARD: Duration = Duration::from_secs(120);

/// The tests/gha-client directory: package.json, the installed node_modules and cache.mjs.
pub fn client_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("gha-client")
}

/// A running `s3cache serve --listen 127.0.0.1:0` with a machine's store settings; killed on drop.
#[derive(Debug)]
pub struct Served {
    child: Child,
    url: String,
    stderr: Arc<Mutex<String>>,
}

impl Served {
    /// Starts `s3cache serve --listen 127.0.0.1:0 EXTRA_ARGS...` in `machine`'s workspace with its
    /// environment, and returns once it printed that it listens. Its stderr is collected for
    /// [`Served::stderr`]; a server that exits before listening fails with what it printed.
    pub fn start(machine: &Machine, extra_args: &[&str]) -> Self {
        let mut command = Command::new(binary());
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra_args)
            .current_dir(machine.workspace())
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (name, value) in machine.machine_env() {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start s3cache serve");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (listening_tx, listening_rx) = mpsc::channel();
        let pipe = child.stderr.take().expect("piped stderr");
        let collected = Arc::clone(&stderr);
        std::thread::spawn(move || collect_stderr(pipe, &collected, listening_tx));
        let url = match listening_rx.recv_timeout(STARTUP_GUARD) {
            Ok(url) => url,
            Err(why) => {
                let _ = child.kill();
                let status = child.wait().expect("wait for s3cache serve");
                let printed = stderr.lock().unwrap().clone();
                panic!("s3cache serve did not print {LISTENING:?} ({why}; {status}); its stderr:\n{printed}");
            }
        };
        Self { child, url, stderr }
    }

    /// `http://127.0.0.1:PORT`, without a trailing `/`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Everything the server printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Appends every line of `pipe` to `collected`, and sends the base URL of the first [`LISTENING`]
/// line to `listening`; dropping the sender at the end tells a waiting [`Served::start`] that the
/// server exited.
fn collect_stderr(pipe: impl Read, collected: &Mutex<String>, listening: mpsc::Sender<String>) {
    let mut listening = Some(listening);
    for line in BufReader::new(pipe).lines() {
        let Ok(line) = line else { break };
        if let Some(url) = listening_url(&line)
            && let Some(sender) = listening.take()
        {
            let _ = sender.send(url);
        }
        let mut text = collected.lock().unwrap();
        text.push_str(&line);
        text.push('\n');
    }
}

/// The `http://HOST:PORT` that a [`LISTENING`] line announces (whatever text follows it).
fn listening_url(line: &str) -> Option<String> {
    let rest = &line[line.find(LISTENING)? + LISTENING.len()..];
    let authority = rest.strip_prefix("http://")?;
    let end = authority.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']' | '-'))).unwrap_or(authority.len());
    (end > 0).then(|| format!("http://{}", &authority[..end]))
}

/// Which of GitHub's cache protocols the client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// The REST API (`_apis/artifactcache/...`) that act, Forgejo, Gitea and GHES serve.
    V1,
    /// Twirp (`/twirp/github.actions.results.api.v1.CacheService/...`) plus Azure-blob-shaped
    /// signed URLs, what github.com serves today.
    V2,
}

/// The path prefix of the v1 base URL: the server routes on the `_apis/artifactcache/...` suffix.
pub const V1_PREFIX: &str = "some/prefix/";

/// A JWT-shaped `ACTIONS_RUNTIME_TOKEN`, as a runner hands one to a step (the v2 client refuses to
/// run without a token; buildx even decodes it). Unsigned: a server without auth settings accepts any
/// token. Header `{"typ":"JWT","alg":"RS256"}`, claims
/// `{"ac":"[{\"Scope\":\"refs/heads/main\",\"Permission\":3}]","iss":"s3cache-tests","nbf":1700000000,"exp":4102444800}`.
pub const RUNTIME_TOKEN: &str = concat!(
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.",
    "eyJhYyI6Ilt7XCJTY29wZVwiOlwicmVmcy9oZWFkcy9tYWluXCIsXCJQZXJtaXNzaW9uXCI6M31dIiwiaXNzIjoiczNjYWNoZS10ZXN0cyIsIm5iZiI6MTcwMDAwMDAwMCwiZXhwIjo0MTAyNDQ0ODAwfQ.",
    "bm90LXNpZ25lZA"
);

/// `node tests/gha-client/cache.mjs` with the environment a runner gives a JavaScript action step.
#[derive(Debug)]
pub struct GhaClient {
    env: Vec<(String, String)>,
    _runner_temp: tempfile::TempDir,
}

impl GhaClient {
    /// A client of `served` over `protocol`:
    /// - v1: `ACTIONS_CACHE_URL=<url>/some/prefix/` (no `ACTIONS_CACHE_SERVICE_V2`) and
    ///   `CACHE_UPLOAD_CHUNK_SIZE=8` (MiB; [`GhaClient::env`] changes it);
    /// - v2: `ACTIONS_CACHE_SERVICE_V2=true`, `ACTIONS_RESULTS_URL=<url>/` and
    ///   `GITHUB_SERVER_URL=https://github.com` (any other host is GHES to the toolkit, which then
    ///   speaks v1 whatever the flag says; its blocks are a fixed 64 MiB, single shot up to 128 MiB);
    ///
    /// and for both `ACTIONS_RUNTIME_TOKEN` ([`RUNTIME_TOKEN`]), a `RUNNER_TEMP` of its own, and this
    /// process's `PATH` (node, tar and zstd: with zstd the toolkit compresses `zstd-without-long`).
    pub fn new(protocol: Protocol, served: &Served) -> Self {
        let runner_temp = tempfile::tempdir().expect("RUNNER_TEMP");
        let mut env = vec![
            ("PATH".to_owned(), std::env::var("PATH").unwrap_or_default()),
            ("RUNNER_TEMP".to_owned(), runner_temp.path().display().to_string()),
            ("ACTIONS_RUNTIME_TOKEN".to_owned(), RUNTIME_TOKEN.to_owned()),
        ];
        match protocol {
            Protocol::V1 => {
                env.push(("ACTIONS_CACHE_URL".to_owned(), format!("{}/{V1_PREFIX}", served.url())));
                env.push(("CACHE_UPLOAD_CHUNK_SIZE".to_owned(), "8".to_owned()));
            }
            Protocol::V2 => {
                env.push(("ACTIONS_CACHE_SERVICE_V2".to_owned(), "true".to_owned()));
                env.push(("ACTIONS_RESULTS_URL".to_owned(), format!("{}/", served.url())));
                env.push(("GITHUB_SERVER_URL".to_owned(), "https://github.com".to_owned()));
            }
        }
        Self { env, _runner_temp: runner_temp }
    }

    /// Sets (or replaces) an environment variable of later runs.
    pub fn env(&mut self, name: &str, value: &str) -> &mut Self {
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// `saveCache(paths, key)` in `dir` (the paths are relative to it, as to a job's workspace).
    pub fn save(&self, dir: &Path, key: &str, paths: &[&str]) -> ClientRun {
        self.run(dir, "save", &[key], paths)
    }

    /// `restoreCache(paths, key, restore_keys)` in `dir`, which the entry is extracted into.
    pub fn restore(&self, dir: &Path, key: &str, restore_keys: &[&str], paths: &[&str]) -> ClientRun {
        let keys: Vec<&str> = std::iter::once(key).chain(restore_keys.iter().copied()).collect();
        self.run(dir, "restore", &keys, paths)
    }

    fn run(&self, dir: &Path, verb: &str, keys: &[&str], paths: &[&str]) -> ClientRun {
        let output = Command::new("node")
            .arg(client_dir().join("cache.mjs"))
            .arg(verb)
            .args(keys)
            .arg("--")
            .args(paths)
            .current_dir(dir)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .expect("run node (installed by scripts/test)");
        ClientRun {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// What one run of the client did: its exit code, the toolkit's log (stdout, ending with the
/// `RESULT {...}` line) and stderr.
#[derive(Debug)]
pub struct ClientRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl ClientRun {
    /// The JSON of the last stdout line, `RESULT {...}`, asserting exit code 0.
    #[track_caller]
    pub fn result(&self) -> serde_json::Value {
        assert_eq!(self.code, 0, "the cache client failed:\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        let last = self.stdout.lines().last().unwrap_or_default();
        let json = last.strip_prefix("RESULT ").unwrap_or_else(|| panic!("no RESULT line last:\n{}", self.stdout));
        serde_json::from_str(json).unwrap_or_else(|e| panic!("RESULT is not JSON ({e}): {json}"))
    }

    /// A save's `cacheId`: -1 when the toolkit refused or failed.
    #[track_caller]
    pub fn cache_id(&self) -> i64 {
        let result = self.result();
        result["cacheId"].as_i64().unwrap_or_else(|| panic!("cacheId is not an integer: {result}\n{}", self.stdout))
    }

    /// A restore's matched key, `None` for a miss.
    #[track_caller]
    pub fn hit(&self) -> Option<String> {
        let result = self.result();
        match &result["hit"] {
            serde_json::Value::Null => None,
            serde_json::Value::String(key) => Some(key.clone()),
            other => panic!("hit is neither a key nor null: {other}\n{}", self.stdout),
        }
    }

    /// The archive's size in bytes, from the toolkit's `Cache Size: ~N MB (BYTES B)` line (a restore
    /// that downloaded, or a v1 save).
    #[track_caller]
    pub fn archive_bytes(&self) -> u64 {
        let line =
            self.stdout.lines().find(|l| l.starts_with("Cache Size: ~")).unwrap_or_else(|| panic!("no Cache Size line:\n{}", self.stdout));
        let bytes = line.rsplit_once('(').and_then(|(_, b)| b.strip_suffix(" B)")).unwrap_or_else(|| panic!("not `(N B)`: {line}"));
        bytes.parse().unwrap_or_else(|e| panic!("{line}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::listening_url;

    #[test]
    fn the_listening_line_gives_the_base_url_whatever_follows_it() {
        let line = "s3cache serve: listening on http://127.0.0.1:41234 (v1: ACTIONS_CACHE_URL=..., scope main)";
        assert_eq!(listening_url(line).as_deref(), Some("http://127.0.0.1:41234"));
        assert_eq!(
            listening_url("s3cache serve: listening on http://127.0.0.1:8080/; store s3://b").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(listening_url("s3cache serve: listening on http://127.0.0.1:9").as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(listening_url("s3cache serve: starting"), None);
    }
}
