//! Real S3 servers on loopback, one per test: `s3s-fs` (strict SigV4), `moto` in server mode, and
//! `rclone serve s3` (a real-world server that ignores conditional writes).
//! Both are installed by `scripts/test`; each server lives in its own temp directory and is killed
//! when the fixture drops.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// `s3s-fs`: checks signatures, skew and payload hashes.
    S3sFs,
    /// `moto_server`: a second implementation of multipart and conditional writes.
    Moto,
    /// `rclone serve s3`: checks signatures but ignores `If-None-Match`, like several real servers.
    Rclone,
}

/// A running server with one empty bucket.
#[derive(Debug)]
pub struct S3Server {
    pub kind: ServerKind,
    pub port: u16,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    child: Child,
    _data: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port").local_addr().expect("local addr").port()
}

fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited early with {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on port {port} within 30 s");
}

impl S3Server {
    /// Starts a server of `kind` with an empty bucket named `bucket`.
    pub fn start(kind: ServerKind) -> Self {
        crate::require_test_script();
        let data = tempfile::tempdir().expect("server data dir");
        let port = free_port();
        let bucket = "cache-bucket".to_string();
        let (access_key, secret_key) = ("AKIDS3CACHETEST".to_string(), "s3cache-test-secret-canary-9f2c".to_string());
        let mut child = match kind {
            ServerKind::S3sFs => {
                std::fs::create_dir_all(data.path().join(&bucket)).expect("bucket dir");
                Command::new("s3s-fs")
                    .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--access-key", &access_key, "--secret-key", &secret_key])
                    .arg(data.path())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start s3s-fs (installed by scripts/test)")
            }
            ServerKind::Rclone => {
                std::fs::create_dir_all(data.path().join(&bucket)).expect("bucket dir");
                Command::new("rclone")
                    .args(["serve", "s3", "--auth-key", &format!("{access_key},{secret_key}"), "--addr", &format!("127.0.0.1:{port}")])
                    .arg(data.path())
                    .env("RCLONE_CONFIG", data.path().join("rclone.conf"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start rclone (installed by scripts/test)")
            }
            ServerKind::Moto => Command::new("moto_server")
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .current_dir(data.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start moto_server (installed by scripts/test)"),
        };
        wait_for_port(port, &mut child, &format!("{kind:?}"));
        let server = Self { kind, port, bucket, access_key, secret_key, child, _data: data };
        if kind == ServerKind::Moto {
            crate::boto3(&server, "s3.create_bucket(Bucket=bucket)");
        }
        server
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server's data directory (s3s-fs keeps objects as files there).
    pub fn data_dir(&self) -> &Path {
        self._data.path()
    }

    /// Writes `bytes` as the object `name` under `prefix` in the bucket, through s3cache's own client:
    /// how tests plant damaged or hand-made entries.
    pub fn put_object(&self, prefix: &str, name: &str, bytes: &[u8]) {
        use std::io::Write;
        let options = s3cache::store::S3Options {
            endpoint: Some(self.endpoint()),
            credentials: Some(s3cache::store::Credentials {
                access_key_id: self.access_key.clone(),
                secret_access_key: self.secret_key.clone(),
                session_token: None,
            }),
            ..s3cache::store::S3Options::default()
        };
        let store = s3cache::open_store(&format!("s3://{}/{prefix}", self.bucket), options).expect("open the store");
        let mut upload = store.put(name, s3cache::store::PutOptions::default()).expect("start the upload");
        upload.write_all(bytes).expect("upload");
        upload.finish().expect("finish the upload");
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
