//! Where credentials come from (the AWS SDK chain), secret hygiene, anonymous and public-URL reading,
//! and publishing options, and an instance-metadata endpoint that never answers.

use std::fs;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use s3cache_tests::fake_http::FakeHttp;
use s3cache_tests::{Machine, Published, Run, S3Server, ServerKind, published};

/// A machine pointed at `server` with no credentials in its environment, and a tree to save.
fn bare_machine(server: &S3Server) -> Machine {
    let mut machine = Machine::new();
    machine.use_server(server, "creds");
    machine.unset("AWS_ACCESS_KEY_ID").unset("AWS_SECRET_ACCESS_KEY");
    fs::create_dir_all(machine.workspace().join("out")).unwrap();
    fs::write(machine.workspace().join("out/file"), "cached").unwrap();
    machine
}

#[track_caller]
fn assert_saved(run: &Run, key: &str) {
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains(&format!("saved {key}")), "{}", run.stderr);
}

fn sts_answer(action: &str, server: &S3Server, token: &str) -> String {
    format!(
        "<{action}Response><{action}Result><Credentials><AccessKeyId>{}</AccessKeyId><SecretAccessKey>{}</SecretAccessKey><SessionToken>{token}</SessionToken><Expiration>2030-01-01T00:00:00Z</Expiration></Credentials></{action}Result></{action}Response>",
        server.access_key, server.secret_key
    )
}

fn json_credentials(server: &S3Server, token: &str) -> String {
    format!(
        r#"{{"Code":"Success","AccessKeyId":"{}","SecretAccessKey":"{}","Token":"{token}","Expiration":"2030-01-01T00:00:00Z"}}"#,
        server.access_key, server.secret_key
    )
}

/// Static keys from a named profile in ~/.aws/credentials; an empty AWS_ACCESS_KEY_ID (as
/// configure-aws-credentials leaves behind) counts as unset and the chain goes on to the profile.
#[test]
fn profile_static_keys_and_empty_env() {
    let server = S3Server::start(ServerKind::S3sFs);
    let mut machine = bare_machine(&server);
    fs::create_dir_all(machine.home().join(".aws")).unwrap();
    fs::write(
        machine.home().join(".aws/credentials"),
        format!("[ci]\naws_access_key_id = {}\naws_secret_access_key = {}\n", server.access_key, server.secret_key),
    )
    .unwrap();
    machine.env("AWS_PROFILE", "ci");
    assert_saved(&machine.run(&["save", "--key", "profile", "--path", "out"]), "profile");
    fs::write(
        machine.home().join(".aws/credentials"),
        format!("[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n", server.access_key, server.secret_key),
    )
    .unwrap();
    machine.unset("AWS_PROFILE").env("AWS_ACCESS_KEY_ID", "").env("AWS_SECRET_ACCESS_KEY", "");
    assert_saved(&machine.run(&["save", "--key", "empty-env", "--path", "out"]), "empty-env");
    let run = machine.run(&["save", "--key", "x", "--path", "out", "--profile", "missing"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("profile missing"), "{}", run.stderr);
}

/// `credential_process` in ~/.aws/config.
#[test]
fn profile_credential_process() {
    let server = S3Server::start(ServerKind::S3sFs);
    let mut machine = bare_machine(&server);
    fs::create_dir_all(machine.home().join(".aws")).unwrap();
    let json = format!(r#"{{"Version": 1, "AccessKeyId": "{}", "SecretAccessKey": "{}"}}"#, server.access_key, server.secret_key);
    fs::write(machine.home().join(".aws/config"), format!("[profile tool]\ncredential_process = echo '{json}'\n")).unwrap();
    machine.env("AWS_PROFILE", "tool");
    assert_saved(&machine.run(&["save", "--key", "process", "--path", "out"]), "process");
}

/// `role_arn` + `source_profile`: STS AssumeRole, signed with the source profile's keys.
#[test]
fn profile_assume_role_through_sts() {
    let server = S3Server::start(ServerKind::S3sFs);
    let answer = sts_answer("AssumeRole", &server, "assumed-session-token");
    let sts = FakeHttp::start(move |_| (200, answer.clone()));
    let mut machine = bare_machine(&server);
    fs::create_dir_all(machine.home().join(".aws")).unwrap();
    fs::write(machine.home().join(".aws/credentials"), "[base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = base-secret\n")
        .unwrap();
    fs::write(
        machine.home().join(".aws/config"),
        "[profile deploy]\nrole_arn = arn:aws:iam::123456789012:role/cache\nsource_profile = base\nrole_session_name = ci-run\n",
    )
    .unwrap();
    machine.env("AWS_PROFILE", "deploy").env("AWS_ENDPOINT_URL_STS", sts.url());
    assert_saved(&machine.run(&["save", "--key", "assumed", "--path", "out"]), "assumed");
    let seen = sts.seen();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].body.contains("Action=AssumeRole") && seen[0].body.contains("RoleSessionName=ci%2Drun"), "{}", seen[0].body);
    assert!(seen[0].head.contains("credential=akidbase/"), "AssumeRole must be signed with the source keys: {}", seen[0].head);
}

/// `S3CACHE_ASSUME_ROLE_ARN`: the role is assumed with whatever the chain found (here the environment's
/// keys); with no credentials at all it is an error naming the variable, not an anonymous run.
#[test]
fn assume_role_on_top_of_the_chain() {
    let server = S3Server::start(ServerKind::S3sFs);
    let answer = sts_answer("AssumeRole", &server, "chained-session-token");
    let sts = FakeHttp::start(move |_| (200, answer.clone()));
    let mut machine = bare_machine(&server);
    machine.env("AWS_ENDPOINT_URL_STS", sts.url()).env("S3CACHE_ASSUME_ROLE_ARN", "arn:aws:iam::123456789012:role/ci");
    let run = machine.run(&["save", "--key", "none", "--path", "out"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("credentials from role arn:aws:iam::123456789012:role/ci: S3CACHE_ASSUME_ROLE_ARN needs credentials to assume it with, and the chain found none"), "{}", run.stderr);
    assert!(sts.seen().is_empty());
    machine
        .env("AWS_ACCESS_KEY_ID", "AKIDENVBASE")
        .env("AWS_SECRET_ACCESS_KEY", "env-base-secret")
        .env("S3CACHE_ASSUME_ROLE_SESSION_NAME", "nightly");
    assert_saved(&machine.run(&["save", "--key", "chained", "--path", "out"]), "chained");
    let seen = sts.seen();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].body.contains("RoleSessionName=nightly") && !seen[0].body.contains("ExternalId"), "{}", seen[0].body);
    assert!(seen[0].head.contains("credential=akidenvbase/"), "{}", seen[0].head);
}

/// Web identity (GitHub OIDC): AssumeRoleWithWebIdentity with the token file, unsigned. On GitHub
/// Actions the derived secret and session token are masked before anything else is printed.
#[test]
fn web_identity_and_github_masking() {
    let server = S3Server::start(ServerKind::S3sFs);
    let answer = sts_answer("AssumeRoleWithWebIdentity", &server, "oidc-derived-session-token");
    let sts = FakeHttp::start(move |_| (200, answer.clone()));
    let mut machine = bare_machine(&server);
    let token_file = machine.scratch("oidc").join("token");
    fs::write(&token_file, "eyJ.oidc.token\n").unwrap();
    machine
        .env("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/gha")
        .env("AWS_WEB_IDENTITY_TOKEN_FILE", token_file.display().to_string())
        .env("AWS_ENDPOINT_URL_STS", sts.url())
        .env("GITHUB_ACTIONS", "true");
    let run = machine.run(&["save", "--key", "oidc", "--path", "out"]);
    assert_saved(&run, "oidc");
    let seen = sts.seen();
    assert!(
        seen[0].body.contains("Action=AssumeRoleWithWebIdentity") && seen[0].body.contains("WebIdentityToken=eyJ%2Eoidc%2Etoken"),
        "{}",
        seen[0].body
    );
    assert!(!seen[0].head.contains("authorization:"), "must be unsigned");
    let first_lines: Vec<&str> = run.stdout.lines().take(2).collect();
    assert_eq!(first_lines, vec![format!("::add-mask::{}", server.secret_key).as_str(), "::add-mask::oidc-derived-session-token"]);
}

/// A missing web identity token file is a clear error at once: STS is never asked, and no
/// other source is tried.
#[test]
fn web_identity_without_a_token_file() {
    let server = S3Server::start(ServerKind::S3sFs);
    let sts = FakeHttp::start(|_| (500, String::new()));
    let mut machine = bare_machine(&server);
    machine
        .env("AWS_ROLE_ARN", "arn:aws:iam::1:role/x")
        .env("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/token")
        .env("AWS_ENDPOINT_URL_STS", sts.url());
    let run = machine.run(&["save", "--key", "x", "--path", "out"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.starts_with("error: credentials from web identity: cannot read AWS_WEB_IDENTITY_TOKEN_FILE /nonexistent/token"),
        "{}",
        run.stderr
    );
    assert!(sts.seen().is_empty(), "STS was asked: {:?}", sts.seen().iter().map(|s| &s.head).collect::<Vec<_>>());
}

/// ECS container credentials with the authorization token; a plain-HTTP URI to anything but
/// loopback or the link-local ECS addresses is refused.
#[test]
fn container_credentials() {
    let server = S3Server::start(ServerKind::S3sFs);
    let answer = json_credentials(&server, "ecs-token");
    let ecs = FakeHttp::start(move |_| (200, answer.clone()));
    let mut machine = bare_machine(&server);
    machine
        .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", format!("{}/v2/credentials", ecs.url()))
        .env("AWS_CONTAINER_AUTHORIZATION_TOKEN", "container-auth");
    assert_saved(&machine.run(&["save", "--key", "ecs", "--path", "out"]), "ecs");
    assert!(ecs.seen()[0].head.contains("authorization: container-auth"));
    for uri in ["http://10.1.2.3/creds", "http://evil.example/creds"] {
        machine.env("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri);
        let run = machine.run(&["save", "--key", "x", "--path", "out"]);
        assert_eq!(run.code, 2, "{uri}: {}", run.stderr);
        assert!(run.stderr.contains("refusing"), "{}", run.stderr);
    }
}

/// EC2 instance metadata, IMDSv2: a session token first, then the role's credentials.
#[test]
fn instance_metadata_v2() {
    let server = S3Server::start(ServerKind::S3sFs);
    let answer = json_credentials(&server, "imds-token");
    let imds = FakeHttp::start(move |request| match (request.method.as_str(), request.target.as_str()) {
        ("PUT", "/latest/api/token") => (200, "imds-session".into()),
        (_, _) if !request.head.contains("x-aws-ec2-metadata-token: imds-session") => (401, String::new()),
        ("GET", "/latest/meta-data/iam/security-credentials/") => (200, "cache-role\n".into()),
        ("GET", "/latest/meta-data/iam/security-credentials/cache-role") => (200, answer.clone()),
        _ => (404, String::new()),
    });
    let mut machine = bare_machine(&server);
    machine.env("AWS_EC2_METADATA_DISABLED", "false").env("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url());
    // Generous under a loaded test machine; the default (2 s) is what the silent-endpoint test checks.
    machine.env("AWS_METADATA_SERVICE_TIMEOUT", "10");
    assert_saved(&machine.run(&["save", "--key", "imds", "--path", "out"]), "imds");
    assert_eq!(imds.seen().len(), 3);
}

/// An instance-metadata endpoint that accepts connections and never answers is given up on
/// after its timeout (2 s by default): one connection, the session-token request, held open until
/// the client gives up; the run then ends well within a generous bound of that timeout. With no
/// other source, the error says how to provide credentials.
#[test]
fn silent_instance_metadata_is_given_up_quickly() {
    let server = S3Server::start(ServerKind::S3sFs);
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let holder = held.clone();
    std::thread::spawn(move || {
        for connection in silent.incoming().flatten() {
            holder.lock().unwrap().push(connection); // accepted and never answered
        }
    });
    let mut machine = bare_machine(&server);
    machine.env("AWS_EC2_METADATA_DISABLED", "false").env("AWS_EC2_METADATA_SERVICE_ENDPOINT", endpoint);
    let started = Instant::now();
    let run = machine.run(&["restore", "--key", "x", "--path", "out"]);
    let took = started.elapsed();
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("needs credentials"), "{}", run.stderr);
    assert_eq!(held.lock().unwrap().len(), 1, "one request, the session token's");
    let timeout = Duration::from_secs(2);
    assert!(took >= timeout, "took {took:?}: it gave up before the {timeout:?} timeout");
    assert!(took < timeout + Duration::from_secs(30), "took {took:?}: the {timeout:?} timeout did not stop it");
}

/// On every failure path, no secret, session token, signature or authorization header is printed,
/// even with `--verbose`.
#[test]
fn failures_never_print_secrets() {
    let server = S3Server::start(ServerKind::S3sFs);
    let mut machine = bare_machine(&server);
    machine
        .env("AWS_ACCESS_KEY_ID", server.access_key.clone())
        .env("AWS_SECRET_ACCESS_KEY", "canary-secret-5b2f")
        .env("AWS_SESSION_TOKEN", "canary-token-8e1d");
    let mut runs =
        vec![machine.run(&["save", "--key", "k", "--path", "out", "-v"]), machine.run(&["restore", "--key", "k", "--path", "out", "-v"])];
    machine.env("AWS_ENDPOINT_URL", "http://127.0.0.1:1").env("S3CACHE_RETRY_BASE_MS", "1");
    runs.push(machine.run(&["save", "--key", "k", "--path", "out", "-v"]));
    machine.env("AWS_ENDPOINT_URL", server.endpoint()).env("S3CACHE_CLOCK_OFFSET_SECS", "-3600");
    runs.push(machine.run(&["restore", "--key", "k", "--path", "out", "-v"]));
    for run in runs {
        let text = format!("{}{}", run.stdout, run.stderr).to_ascii_lowercase();
        for forbidden in
            ["canary-secret", "canary-token", "authorization", "x-amz-signature", "x-amz-security-token", "x-amz-credential", "signature="]
        {
            assert!(!text.contains(forbidden), "{forbidden} printed:\n{}", run.stderr);
        }
    }
}

/// Anonymous mode sends unsigned requests even when credentials are set (the strict server then
/// refuses them), and saving is refused with a clear message.
#[test]
fn anonymous_mode_is_unsigned_and_read_only() {
    let server = S3Server::start(ServerKind::S3sFs);
    let mut machine = bare_machine(&server);
    machine.use_server(&server, "creds");
    machine.run(&["save", "--key", "anon", "--path", "out"]).success();
    machine.env("S3CACHE_ANONYMOUS", "true");
    let run = machine.run(&["restore", "--key", "anon", "--path", "out"]).success();
    assert!(run.stderr.contains("403"), "unsigned requests must reach the server unsigned: {}", run.stderr);
    let run = machine.run(&["save", "--key", "anon2", "--path", "out"]).success();
    assert!(run.stderr.contains("read-only (anonymous mode)"), "{}", run.stderr);
}

/// A public URL store (scipio's publicURL consumer): the publisher saves with `--acl public-read`, the
/// consumer restores with unsigned GET/HEAD under a base URL and no credentials; it cannot save.
#[test]
fn public_url_consumers_restore_without_credentials() {
    let server = S3Server::start(ServerKind::Moto);
    let mut publisher = bare_machine(&server);
    publisher.use_server(&server, "public");
    publisher.run(&["save", "--key", "shared", "--path", "out", "--acl", "public-read"]).success();
    let mut consumer = Machine::new();
    consumer.env("S3CACHE_STORE", format!("{}/{}/public", server.endpoint(), server.bucket));
    let run = consumer.run(&["restore", "--key", "shared", "--path", "out"]).success();
    assert!(run.stderr.contains("restored shared"), "{}", run.stderr);
    assert_eq!(fs::read_to_string(consumer.workspace().join("out/file")).unwrap(), "cached");
    let run = consumer.run(&["save", "--key", "mine", "--path", "out"]).success();
    assert!(run.stderr.contains("read-only (a public URL)"), "{}", run.stderr);
}

/// Publishing options reach the object: ACL, SSE-S3, storage class, tags and metadata (checked with
/// boto3 against moto).
#[test]
fn publishing_options_are_applied() {
    let server = S3Server::start(ServerKind::Moto);
    let mut machine = bare_machine(&server);
    machine.use_server(&server, "pub");
    let args = [
        "save",
        "--key",
        "published",
        "--path",
        "out",
        "--acl",
        "public-read",
        "--sse",
        "AES256",
        "--storage-class",
        "STANDARD_IA",
        "--tag",
        "team=ci",
        "--metadata",
        "origin=test",
    ];
    machine.run(&args).success();
    let expected = Published {
        storage_class: Some("STANDARD_IA".into()),
        encryption: Some("AES256".into()),
        metadata: serde_json::json!({ "origin": "test" }),
        tags: serde_json::json!({ "team": "ci" }),
        public_read: true,
    };
    assert_eq!(published(&server, "pub/local/published.tar.zst"), expected);
}
