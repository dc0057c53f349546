//! Helpers that make each integration test read like a short story: a workspace to run in, the real
//! `s3cache` binary, real S3 servers started on loopback, an independent client (boto3), and tree
//! snapshots to compare.

pub mod fake_http;
pub mod gha;
pub mod proxy;
pub mod servers;
pub mod tree;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use servers::{S3Server, ServerKind};
pub use tree::{Snapshot, snapshot};

/// The `s3cache` binary built by `cargo build --release` (the test script does that first), found
/// next to this test executable unless `S3CACHE_BIN` says otherwise.
pub fn binary() -> PathBuf {
    require_test_script();
    if let Some(path) = std::env::var_os("S3CACHE_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>");
    let binary = profile_dir.join("s3cache");
    assert!(binary.exists(), "{} is missing: run `cargo build --release -p s3cache` first (scripts/test does)", binary.display());
    binary
}

/// Stops a test started without `scripts/test` (plain `cargo test --workspace`, an IDE) with a message
/// that says what to run, instead of a failure about a missing server, tool or binary.
pub fn require_test_script() {
    if std::env::var_os("S3CACHE_INTEGRATION_ENV").is_none() {
        panic!(
            "the integration tests need the S3 servers, tools and release build that scripts/test installs and starts: \
             run `scripts/test` (or `scripts/test -- FILTER`); plain `cargo test` runs the unit tests"
        );
    }
}

/// A scratch machine for one test: a workspace to run in, a home directory, and a cache dir for
/// s3cache's own files (the compiled guest).
#[derive(Debug)]
pub struct Machine {
    root: tempfile::TempDir,
    env: Vec<(String, String)>,
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts exit code 0 and returns self.
    #[track_caller]
    pub fn success(self) -> Self {
        assert_eq!(self.code, 0, "s3cache failed:\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }
}

impl Machine {
    pub fn new() -> Self {
        let root = tempfile::tempdir().expect("temp dir");
        for dir in ["workspace", "home", "cache"] {
            std::fs::create_dir_all(root.path().join(dir)).expect("create the machine's dirs");
        }
        let cache_dir = root.path().join("cache").display().to_string();
        // Instance metadata is never probed from tests: its real address is not ours to reach.
        let env = vec![
            ("HOME".to_string(), root.path().join("home").display().to_string()),
            ("S3CACHE_CACHE_DIR".to_string(), cache_dir),
            ("AWS_EC2_METADATA_DISABLED".to_string(), "true".to_string()),
        ];
        Self { root, env }
    }

    /// The working directory runs start in.
    pub fn workspace(&self) -> PathBuf {
        self.root.path().join("workspace")
    }

    /// The home directory (`~`) runs see.
    pub fn home(&self) -> PathBuf {
        self.root.path().join("home")
    }

    /// s3cache's own directory (`S3CACHE_CACHE_DIR`): the compiled guest and the default store.
    pub fn cache_dir(&self) -> PathBuf {
        self.root.path().join("cache")
    }

    /// A directory for anything else a test needs.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let dir = self.root.path().join(name);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    /// Replaces the home directory and the workspace's `.git` by a job's own `~/.bashrc`,
    /// `~/.ssh/authorized_keys` and `.git/HEAD`: what a planted cache entry would replace or wipe.
    /// Returns their snapshot ([`Machine::dotfiles`]).
    pub fn own_dotfiles(&self) -> (Snapshot, Snapshot) {
        let (home, workspace) = (self.home(), self.workspace());
        std::fs::remove_dir_all(&home).expect("remove the home directory");
        let _ = std::fs::remove_dir_all(workspace.join(".git"));
        for (path, content) in [
            (home.join(".bashrc"), "# mine\n"),
            (home.join(".ssh/authorized_keys"), "ssh-ed25519 AAAA mine\n"),
            (workspace.join(".git/HEAD"), "ref: refs/heads/main\n"),
        ] {
            std::fs::create_dir_all(path.parent().unwrap()).expect("create a directory");
            std::fs::write(path, content).expect("write a file");
        }
        self.dotfiles()
    }

    /// Snapshots of the home directory and the workspace, to tell that a run changed neither.
    pub fn dotfiles(&self) -> (Snapshot, Snapshot) {
        (snapshot(&self.home()), snapshot(&self.workspace()))
    }

    /// Removes an environment variable from later runs.
    pub fn unset(&mut self, name: &str) -> &mut Self {
        self.env.retain(|(k, _)| k != name);
        self
    }

    /// Sets an environment variable for every later run.
    pub fn env(&mut self, name: &str, value: impl Into<String>) -> &mut Self {
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.to_owned(), value.into()));
        self
    }

    /// Points runs at `server`'s bucket with its credentials.
    pub fn use_server(&mut self, server: &S3Server, prefix: &str) -> &mut Self {
        self.env("S3CACHE_STORE", format!("s3://{}/{prefix}", server.bucket));
        self.env("AWS_ENDPOINT_URL", server.endpoint());
        self.env("AWS_ACCESS_KEY_ID", &server.access_key);
        self.env("AWS_SECRET_ACCESS_KEY", &server.secret_key);
        self.env("AWS_REGION", "us-east-1");
        self
    }

    /// This machine's environment variables.
    pub fn machine_env(&self) -> Vec<(String, String)> {
        let mut env = self.env.clone();
        env.push(("PATH".into(), std::env::var("PATH").unwrap_or_default()));
        env
    }

    /// Runs `s3cache ARGS` in `dir` with a clean environment plus this machine's variables.
    pub fn run_in(&self, dir: &Path, args: &[&str]) -> Run {
        let mut command = Command::new(binary());
        command.args(args).current_dir(dir).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
        for (name, value) in &self.env {
            command.env(name, value);
        }
        Run::from(command.output().expect("run s3cache"))
    }

    /// Starts `s3cache ARGS` in the workspace and returns at once, stdout and stderr piped, for a
    /// test that signals or kills it while it works.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        let mut command = Command::new(binary());
        command
            .args(args)
            .current_dir(self.workspace())
            .env_clear()
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for (name, value) in self.machine_env() {
            command.env(name, value);
        }
        command.spawn().expect("start s3cache")
    }

    /// Runs `s3cache ARGS` in the workspace.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_in(&self.workspace(), args)
    }

    /// Runs `s3cache ARGS` in the workspace on a pseudo-terminal (util-linux `script`), so that
    /// stdin, stdout and stderr are a terminal; `stdout` is what the terminal showed, both streams.
    pub fn run_on_terminal(&self, args: &[&str]) -> Run {
        let quote = |word: &str| format!("'{}'", word.replace('\'', r"'\''"));
        let line: Vec<String> =
            std::iter::once(binary().display().to_string()).chain(args.iter().map(|a| a.to_string())).map(|w| quote(&w)).collect();
        let mut command = Command::new("script");
        command.args(["--quiet", "--return", "--command", &line.join(" "), "/dev/null"]).current_dir(self.workspace()).env_clear();
        for (name, value) in self.machine_env() {
            command.env(name, value);
        }
        Run::from(command.output().expect("run s3cache under script(1) (util-linux)"))
    }
}

impl Default for Machine {
    fn default() -> Self {
        Self::new()
    }
}

/// A key pair made by `ssh-keygen` (scripts/test installs it), for signed entries.
#[derive(Debug)]
pub struct KeyPair {
    /// The private key's text, `-----BEGIN OPENSSH PRIVATE KEY-----` and all.
    pub private: String,
    /// The public key's `.pub` line.
    pub public: String,
    /// Its `SHA256:...` fingerprint, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    /// The private key's file.
    pub private_path: PathBuf,
    /// The public key's file (`.pub`).
    pub public_path: PathBuf,
}

impl KeyPair {
    /// A new unencrypted ed25519 key pair with `comment`, its files in `dir`.
    pub fn generate(dir: &Path, comment: &str) -> Self {
        Self::generate_with(dir, comment, "ed25519", "")
    }

    /// A new key pair of `kind` (`ed25519`, `rsa`) with `comment`, encrypted with `passphrase`
    /// unless it is empty, its files (`key-COMMENT`, `key-COMMENT.pub`) in `dir`.
    pub fn generate_with(dir: &Path, comment: &str, kind: &str, passphrase: &str) -> Self {
        let file = dir.join(format!("key-{comment}"));
        let made = Command::new("ssh-keygen")
            .args(["-q", "-t", kind, "-N", passphrase, "-C", comment, "-f"])
            .arg(&file)
            .output()
            .expect("ssh-keygen");
        assert!(made.status.success(), "ssh-keygen: {}", String::from_utf8_lossy(&made.stderr));
        let public_path = file.with_extension("pub");
        let listed = Command::new("ssh-keygen").arg("-lf").arg(&public_path).output().expect("ssh-keygen -l");
        let fingerprint = String::from_utf8_lossy(&listed.stdout).split_whitespace().nth(1).expect("a fingerprint").to_owned();
        let read = |path: &Path| std::fs::read_to_string(path).expect("a key file");
        Self { private: read(&file), public: read(&public_path).trim().to_owned(), fingerprint, private_path: file, public_path }
    }

    /// The private key's file, as a flag's value.
    pub fn private_arg(&self) -> &str {
        self.private_path.to_str().expect("a UTF-8 temp path")
    }

    /// The public key's file, as a flag's value.
    pub fn public_arg(&self) -> &str {
        self.public_path.to_str().expect("a UTF-8 temp path")
    }

    /// Asserts that no line of the private key's body appears in `output`.
    #[track_caller]
    pub fn assert_private_key_absent(&self, output: &str) {
        for line in self.private.lines().filter(|line| !line.starts_with("-----")) {
            assert!(!output.contains(line), "a line of the private key was printed:\n{output}");
        }
    }
}

/// Runs a Python snippet with boto3 (the independent client) and returns its stdout.
pub fn boto3(server: &S3Server, script: &str) -> String {
    let prelude = format!(
        concat!(
            "import boto3, json, sys\nfrom botocore.config import Config\ns3 = boto3.client('s3', endpoint_url='{}', ",
            "aws_access_key_id='{}', aws_secret_access_key='{}', region_name='us-east-1', config=Config(s3={{'addressing_style': ",
            "'path'}}))\nbucket = '{}'\n"
        ),
        server.endpoint(),
        server.access_key,
        server.secret_key,
        server.bucket
    );
    let output = Command::new("python3").arg("-c").arg(format!("{prelude}{script}")).output().expect("run python3");
    assert!(output.status.success(), "boto3 script failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Every object key in `server`'s bucket, sorted, as boto3 lists them.
pub fn bucket_keys(server: &S3Server) -> Vec<String> {
    let out = boto3(
        server,
        "p = s3.get_paginator('list_objects_v2')\nprint(json.dumps(sorted(o['Key'] for page in p.paginate(Bucket=bucket) for o in page.get('Contents', []))))",
    );
    serde_json::from_str(&out).unwrap()
}

/// Makes the object `name` (relative to the bucket) look `age` old to the listing: s3s-fs reports a
/// file's modification time as Last-Modified, so no test has to sleep for an entry to age.
pub fn backdate(server: &S3Server, name: &str, age: std::time::Duration) {
    let time = filetime::FileTime::from_system_time(std::time::SystemTime::now() - age);
    filetime::set_file_mtime(server.data_dir().join(&server.bucket).join(name), time).unwrap();
}

/// How an object was published, read back with boto3: storage class, server-side encryption, user
/// metadata (s3cache's own `s3cache-*` left out), tags (`{"KEY": "VALUE"}`) and whether its ACL grants everyone read access.
#[derive(Debug, PartialEq, Eq)]
pub struct Published {
    pub storage_class: Option<String>,
    pub encryption: Option<String>,
    pub metadata: serde_json::Value,
    pub tags: serde_json::Value,
    pub public_read: bool,
}

/// Reads [`Published`] of object `key` in `server`'s bucket.
pub fn published(server: &S3Server, key: &str) -> Published {
    let facts = boto3(
        server,
        &format!(
            "h = s3.head_object(Bucket=bucket, Key='{key}')\n\
             t = s3.get_object_tagging(Bucket=bucket, Key='{key}')['TagSet']\n\
             a = s3.get_object_acl(Bucket=bucket, Key='{key}')['Grants']\n\
             print(json.dumps([h.get('StorageClass'), h.get('ServerSideEncryption'), {{k: v for k, v in h['Metadata'].items() if not k.startswith('s3cache-')}}, {{x['Key']: x['Value'] for x in t}}, any(g['Grantee'].get('URI', '').endswith('AllUsers') and g['Permission'] == 'READ' for g in a)]))"
        ),
    );
    let facts: serde_json::Value = serde_json::from_str(&facts).expect("boto3 printed JSON");
    Published {
        storage_class: facts[0].as_str().map(str::to_owned),
        encryption: facts[1].as_str().map(str::to_owned),
        metadata: facts[2].clone(),
        tags: facts[3].clone(),
        public_read: facts[4] == true,
    }
}
