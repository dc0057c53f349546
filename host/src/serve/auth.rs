//! Who may use `s3cache serve`, and in which scopes: the server's one authentication step.
//!
//! Three modes, chosen by the settings ([`AuthSettings`]):
//! - **No auth** (nothing configured): any bearer token is accepted and everything reads and writes one
//!   scope. Allowed only on a loopback address unless `--insecure-no-auth-on-network` says otherwise,
//!   because anyone who reaches the server could then read and poison every cache.
//! - **JWT** (`--jwt-jwks`): GitHub-style runtime tokens, checked against a JWKS; the `ac` claim grants
//!   scopes ([`jwt`]).
//! - **Forgejo** (`--forgejo-secret-file` or `S3CACHE_SERVE_FORGEJO_SECRET`): the HMAC headers of
//!   Forgejo runner's cache proxy ([`forgejo`]).
//!
//! JWT and Forgejo may both be on: a request that carries `Forgejo-Cache-MAC` is Forgejo's, any other
//! must bear a JWT. The decision taken here is that the token alone says where a caller may write:
//! exactly one writable scope or none, so a pull request's token, which marks only its own ref
//! writable, can never write the default branch's scope. Secrets (tokens, MACs, the Forgejo secret)
//! appear in no message and no `Debug` output.

pub mod forgejo;
pub mod jwt;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use clap::Args;

use crate::config::parse;
use crate::env_vars;

/// The issuer of GitHub Actions' runtime tokens, `--jwt-issuer`'s default.
pub const DEFAULT_JWT_ISSUER: &str = "https://token.actions.githubusercontent.com";
/// How old a Forgejo request's timestamp may be, `--forgejo-max-age`'s default (Forgejo itself has no
/// limit).
pub const DEFAULT_FORGEJO_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// The flags of `s3cache serve` that choose how callers authenticate (docs/serve.md, "Authentication
/// and scopes"). With none of `--jwt-jwks` and a Forgejo secret, there is no authentication.
#[derive(Clone, PartialEq, Eq, Args)]
pub struct AuthSettings {
    /// Serve without authentication on an address other than loopback: anyone who reaches the server
    /// reads and writes every cache. Warned of on every start; for runners that cannot authenticate.
    #[arg(long, env = env_vars::S3CACHE_SERVE_INSECURE_NO_AUTH_ON_NETWORK, value_parser = parse::flags::boolean, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub insecure_no_auth_on_network: bool,
    /// Accept GitHub-style runtime tokens (JWT) signed by a key of this JWKS: an https:// or http://
    /// URL (fetched at start and again for an unknown key, at most once a minute) or a file's path.
    #[arg(long, env = env_vars::S3CACHE_SERVE_JWT_JWKS, value_name = "URL|PATH")]
    pub jwt_jwks: Option<String>,
    /// The issuer (`iss`) tokens must name.
    #[arg(long, env = env_vars::S3CACHE_SERVE_JWT_ISSUER, default_value = DEFAULT_JWT_ISSUER, value_name = "URL")]
    pub jwt_issuer: String,
    /// The audience (`aud`) tokens must name; unset, `aud` is not checked.
    #[arg(long, env = env_vars::S3CACHE_SERVE_JWT_AUDIENCE, value_name = "AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Accept only tokens of this repository (their `repository_id` claim); its scopes are then named
    /// as the CLI names them in GitHub Actions, so that both share entries. Unset, any repository's
    /// token is accepted and its scopes are prefixed with `r<repository_id>-`.
    #[arg(long, env = env_vars::S3CACHE_SERVE_REPOSITORY, value_name = "ID")]
    pub repository: Option<String>,
    /// Accept requests from Forgejo runner's cache proxy, authenticated by an HMAC with the runner's
    /// `cache.secret`, read from this file (one trailing line break is ignored).
    #[arg(long, env = env_vars::S3CACHE_SERVE_FORGEJO_SECRET_FILE, value_name = "PATH")]
    pub forgejo_secret_file: Option<PathBuf>,
    /// The Forgejo runner's `cache.secret` itself, instead of a file; prefer the variable, since a
    /// flag's value shows in the process list.
    #[arg(long, env = env_vars::S3CACHE_SERVE_FORGEJO_SECRET, value_name = "SECRET", hide_env_values = true, allow_hyphen_values = true)]
    pub forgejo_secret: Option<String>,
    /// Refuse Forgejo requests whose timestamp (the job's start) is older than this; 0s accepts any age,
    /// as Forgejo's own cache server does.
    #[arg(long, env = env_vars::S3CACHE_SERVE_FORGEJO_MAX_AGE, value_parser = parse::flags::duration, default_value = parse::duration_text(DEFAULT_FORGEJO_MAX_AGE), value_name = "DURATION")]
    pub forgejo_max_age: Duration,
}

/// The same flags under the name the `serve` subcommand flattens them by.
pub type ServeAuthArgs = AuthSettings;

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            insecure_no_auth_on_network: false,
            jwt_jwks: None,
            jwt_issuer: DEFAULT_JWT_ISSUER.to_owned(),
            jwt_audience: None,
            repository: None,
            forgejo_secret_file: None,
            forgejo_secret: None,
            forgejo_max_age: DEFAULT_FORGEJO_MAX_AGE,
        }
    }
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field("insecure_no_auth_on_network", &self.insecure_no_auth_on_network)
            .field("jwt_jwks", &self.jwt_jwks)
            .field("jwt_issuer", &self.jwt_issuer)
            .field("jwt_audience", &self.jwt_audience)
            .field("repository", &self.repository)
            .field("forgejo_secret_file", &self.forgejo_secret_file)
            .field("forgejo_secret", &self.forgejo_secret.as_ref().map(|_| "***"))
            .field("forgejo_max_age", &self.forgejo_max_age)
            .finish()
    }
}

/// What an authenticated request may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Scopes the caller may read, in the order to search them.
    pub read_scopes: Vec<String>,
    /// The one scope it may write, or the reason writing is denied (text after "cache write denied: ").
    pub write_scope: Result<String, String>,
    /// Forgejo only: the base URL downloads must go back through: `<Forgejo-Cache-Host>/<Forgejo-Cache-RunId>`
    /// (no trailing slash). Also set without auth, for a request that came through Forgejo's proxy.
    pub download_base: Option<String>,
}

/// Why a request is refused outright (text after "cache read denied: "), e.g. "bad Forgejo cache MAC".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied(pub String);

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The `Authorization` header of a request.
const AUTHORIZATION: &str = "Authorization";

/// Checks each request's credentials and says which scopes it may use; shared by all of the server's
/// threads.
#[derive(Debug)]
pub struct Authenticator {
    mode: Mode,
}

#[derive(Debug)]
enum Mode {
    /// Nothing configured: everyone reads and writes `scope`; `on_network` when the insecure flag let
    /// the server listen on `listen`, an address other than loopback.
    Open { scope: String, listen: SocketAddr, on_network: bool },
    /// At least one of the two is configured.
    Checked { jwt: Option<jwt::JwtVerifier>, forgejo: Option<forgejo::ForgejoVerifier> },
}

impl Authenticator {
    /// The authenticator the settings describe, for a server listening on `listen` whose scope without
    /// authentication is `default_scope`. Refuses to serve without authentication on an address other
    /// than loopback unless `--insecure-no-auth-on-network` is given, and names the flags to set; loads
    /// the JWKS and the Forgejo secret, so that a bad one stops the start.
    pub fn new(settings: &AuthSettings, listen: SocketAddr, default_scope: &str) -> Result<Self, String> {
        let forgejo_secret = forgejo::load_secret(settings)?;
        let jwt = match &settings.jwt_jwks {
            Some(jwks) => Some(jwt::JwtVerifier::new(jwks, settings, Instant::now())?),
            None => None,
        };
        let forgejo = forgejo_secret.map(|secret| forgejo::ForgejoVerifier::new(secret, settings.forgejo_max_age));
        if jwt.is_some() || forgejo.is_some() {
            if settings.insecure_no_auth_on_network {
                return Err("--insecure-no-auth-on-network (S3CACHE_SERVE_INSECURE_NO_AUTH_ON_NETWORK) serves without authentication, \
                     but --jwt-jwks or a Forgejo secret turns authentication on: remove one of them"
                    .to_owned());
            }
            return Ok(Self { mode: Mode::Checked { jwt, forgejo } });
        }
        let on_network = !listen.ip().is_loopback();
        if on_network && !settings.insecure_no_auth_on_network {
            return Err(format!(
                "--listen {listen} is not a loopback address and no authentication is configured: set --jwt-jwks, \
                 --forgejo-secret-file or S3CACHE_SERVE_FORGEJO_SECRET, or accept any caller from the network with \
                 --insecure-no-auth-on-network"
            ));
        }
        Ok(Self { mode: Mode::Open { scope: default_scope.to_owned(), listen, on_network } })
    }

    /// Who makes the request whose headers `header` reads (`header(name)` must match names
    /// case-insensitively), and what it may do.
    pub fn authenticate(&self, header: &dyn Fn(&str) -> Option<String>) -> Result<Caller, Denied> {
        self.authenticate_at(header, SystemTime::now(), Instant::now())
    }

    /// [`Self::authenticate`] at a given time: `now` for timestamps, `clock` for the JWKS's refetch pace.
    fn authenticate_at(&self, header: &dyn Fn(&str) -> Option<String>, now: SystemTime, clock: Instant) -> Result<Caller, Denied> {
        match &self.mode {
            Mode::Open { scope, .. } => Ok(Caller {
                read_scopes: vec![scope.clone()],
                write_scope: Ok(scope.clone()),
                download_base: forgejo::download_base(header),
            }),
            Mode::Checked { jwt, forgejo } => {
                if let Some(forgejo) = forgejo
                    && header(forgejo::MAC_HEADER).is_some()
                {
                    return forgejo.verify(header, now);
                }
                match jwt {
                    Some(jwt) => jwt.verify(&bearer_token(header).ok_or_else(|| Denied("no bearer token".into()))?, clock),
                    None => Err(Denied(format!("no {} header: this server accepts only Forgejo's cache proxy", forgejo::MAC_HEADER))),
                }
            }
        }
    }

    /// One line for the start-up message: which mode, and from where keys come.
    pub fn describe(&self) -> String {
        match &self.mode {
            Mode::Open { on_network: false, scope, .. } => format!("no auth: any token is accepted (loopback only), scope `{scope}`"),
            Mode::Open { on_network: true, scope, .. } => {
                format!("NO AUTH on the network (--insecure-no-auth-on-network): any token is accepted, scope `{scope}`")
            }
            Mode::Checked { jwt, forgejo } => {
                let parts: Vec<String> =
                    jwt.iter().map(jwt::JwtVerifier::describe).chain(forgejo.iter().map(forgejo::ForgejoVerifier::describe)).collect();
                parts.join("; ")
            }
        }
    }

    /// The warning to print on every start, when the server listens on the network without
    /// authentication.
    pub fn warning(&self) -> Option<String> {
        match &self.mode {
            Mode::Open { on_network: true, listen, .. } => Some(format!(
                "--insecure-no-auth-on-network: anyone who can reach {listen} can read and overwrite every cache of this server"
            )),
            _ => None,
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header; none when the header is missing, of another
/// scheme, or empty (v1 clients send `Bearer ` without a token when they have none).
fn bearer_token(header: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let value = header(AUTHORIZATION)?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

/// A header lookup over fixed pairs, names matched case-insensitively as the server's are.
#[cfg(test)]
pub(crate) fn headers<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |name: &str| pairs.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| (*value).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOOPBACK: &str = "127.0.0.1:8080";

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("a socket address")
    }

    fn fixture(name: &str) -> PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/serve").join(name)
    }

    fn forgejo_settings() -> AuthSettings {
        AuthSettings { forgejo_secret: Some("s3cret".into()), ..AuthSettings::default() }
    }

    /// Without settings, on loopback, any token (or none) reads and writes the default scope.
    #[test]
    fn no_auth_on_loopback_uses_the_default_scope() {
        let auth = Authenticator::new(&AuthSettings::default(), addr(LOOPBACK), "local").expect("loopback needs no auth");
        let expected = Caller { read_scopes: vec!["local".into()], write_scope: Ok("local".into()), download_base: None };
        assert_eq!(auth.authenticate(&headers(&[("authorization", "Bearer anything")])), Ok(expected.clone()));
        assert_eq!(auth.authenticate(&headers(&[])), Ok(expected.clone()));
        // A request through Forgejo's proxy downloads through it too.
        let proxied = headers(&[("Forgejo-Cache-Host", "http://10.0.0.5:40715"), ("Forgejo-Cache-RunId", "aB3x")]);
        assert_eq!(auth.authenticate(&proxied), Ok(Caller { download_base: Some("http://10.0.0.5:40715/aB3x".into()), ..expected }));
        assert_eq!(auth.describe(), "no auth: any token is accepted (loopback only), scope `local`");
        assert_eq!(auth.warning(), None);
        let v6 = Authenticator::new(&AuthSettings::default(), addr("[::1]:0"), "local").expect("::1 is loopback");
        assert_eq!(v6.warning(), None);
    }

    /// Without auth, a non-loopback address is refused unless the insecure flag is given, which is then
    /// warned of.
    #[test]
    fn no_auth_on_the_network_needs_the_insecure_flag() {
        let refused = Authenticator::new(&AuthSettings::default(), addr("0.0.0.0:8080"), "local").expect_err("no auth on the network");
        assert_eq!(
            refused,
            "--listen 0.0.0.0:8080 is not a loopback address and no authentication is configured: set --jwt-jwks, \
             --forgejo-secret-file or S3CACHE_SERVE_FORGEJO_SECRET, or accept any caller from the network with \
             --insecure-no-auth-on-network"
        );
        let settings = AuthSettings { insecure_no_auth_on_network: true, ..AuthSettings::default() };
        let auth = Authenticator::new(&settings, addr("0.0.0.0:8080"), "ci").expect("allowed by the flag");
        assert_eq!(auth.describe(), "NO AUTH on the network (--insecure-no-auth-on-network): any token is accepted, scope `ci`");
        assert_eq!(
            auth.warning().as_deref(),
            Some("--insecure-no-auth-on-network: anyone who can reach 0.0.0.0:8080 can read and overwrite every cache of this server")
        );
        assert_eq!(auth.authenticate(&headers(&[])).map(|caller| caller.write_scope), Ok(Ok("ci".to_owned())));
    }

    /// The insecure flag together with authentication is a contradiction, refused.
    #[test]
    fn the_insecure_flag_with_auth_is_refused() {
        let settings = AuthSettings { insecure_no_auth_on_network: true, ..forgejo_settings() };
        assert_eq!(
            Authenticator::new(&settings, addr(LOOPBACK), "local").expect_err("contradiction"),
            "--insecure-no-auth-on-network (S3CACHE_SERVE_INSECURE_NO_AUTH_ON_NETWORK) serves without authentication, \
             but --jwt-jwks or a Forgejo secret turns authentication on: remove one of them"
        );
    }

    /// With authentication configured, a network address is fine, and a request without credentials is
    /// denied with the reason.
    #[test]
    fn configured_auth_denies_requests_without_credentials() {
        let jwt_only = AuthSettings { jwt_jwks: Some(fixture("jwks.json").display().to_string()), ..AuthSettings::default() };
        let auth = Authenticator::new(&jwt_only, addr("0.0.0.0:8080"), "local").expect("JWT on the network");
        assert_eq!(auth.authenticate(&headers(&[])), Err(Denied("no bearer token".into())));
        assert_eq!(auth.authenticate(&headers(&[("Authorization", "Bearer ")])), Err(Denied("no bearer token".into())));
        assert_eq!(auth.authenticate(&headers(&[("Authorization", "Basic eDp5")])), Err(Denied("no bearer token".into())));
        assert_eq!(auth.warning(), None);

        let auth = Authenticator::new(&forgejo_settings(), addr("0.0.0.0:8080"), "local").expect("Forgejo on the network");
        assert_eq!(
            auth.authenticate(&headers(&[("Authorization", "Bearer x")])),
            Err(Denied("no Forgejo-Cache-MAC header: this server accepts only Forgejo's cache proxy".into()))
        );
        assert_eq!(auth.describe(), "Forgejo HMAC (timestamps up to 1d old)");
    }

    /// With both configured, a request with Forgejo's MAC header goes to Forgejo's check, any other to
    /// the JWT check.
    #[test]
    fn both_modes_route_by_the_mac_header() {
        let settings = AuthSettings { jwt_jwks: Some(fixture("jwks.json").display().to_string()), ..forgejo_settings() };
        let auth = Authenticator::new(&settings, addr(LOOPBACK), "local").expect("both");
        assert_eq!(
            auth.authenticate(&headers(&[("forgejo-cache-mac", "00")])),
            Err(Denied("Forgejo request without Forgejo-Cache-Repo".into()))
        );
        assert_eq!(auth.authenticate(&headers(&[("Authorization", "bearer not-a-jwt")])), Err(Denied("malformed JWT".into())));
        assert!(auth.describe().starts_with("JWT from https://token.actions.githubusercontent.com (JWKS "), "{}", auth.describe());
        assert!(auth.describe().ends_with("jwks.json); Forgejo HMAC (timestamps up to 1d old)"), "{}", auth.describe());
    }

    /// The Forgejo secret is never in Debug output, of the settings or of the authenticator.
    #[test]
    fn debug_output_hides_the_secret() {
        let settings = AuthSettings { forgejo_secret: Some("s3cret-value".into()), ..AuthSettings::default() };
        let auth = Authenticator::new(&settings, addr(LOOPBACK), "local").expect("Forgejo");
        for text in [format!("{settings:?}"), format!("{auth:?}")] {
            assert!(!text.contains("s3cret-value"), "{text}");
            assert!(text.contains("***"), "{text}");
        }
    }

    /// `Bearer` is matched in any case and surrounding spaces are ignored.
    #[test]
    fn bearer_tokens_are_read_from_the_authorization_header() {
        assert_eq!(bearer_token(&headers(&[("AUTHORIZATION", "  bEaReR abc.def.ghi ")])), Some("abc.def.ghi".to_owned()));
        assert_eq!(bearer_token(&headers(&[("Authorization", "Bearer")])), None);
        assert_eq!(bearer_token(&headers(&[("Authorization", "Token abc")])), None);
        assert_eq!(bearer_token(&headers(&[])), None);
    }

    /// Every flag has a row in docs/serve.md with its variable and default, and the catalogue's doc of
    /// the variable states the same default.
    #[test]
    fn flags_are_documented_with_their_defaults() {
        let docs = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/serve.md"));
        let catalogue = include_str!("../env_vars.rs");
        let command = AuthSettings::augment_args(clap::Command::new("serve"));
        let mut checked = 0;
        for arg in command.get_arguments() {
            let flag = format!("| `--{}", arg.get_long().expect("long flags"));
            let variable = arg.get_env().and_then(|v| v.to_str()).expect("every flag has a variable");
            let row = docs
                .lines()
                .find(|line| line.strip_prefix(&flag).is_some_and(|rest| rest.starts_with([' ', '`'])))
                .unwrap_or_else(|| panic!("docs/serve.md has no row for {flag}"));
            assert!(row.contains(&format!("| `{variable}` |")), "docs/serve.md: {row}");
            let default = arg.get_default_values().first().map(|v| format!("`{}`", v.to_str().expect("text"))).unwrap_or_default();
            assert_eq!(row.split('|').nth(3).map(str::trim), Some(default.as_str()), "docs/serve.md: {row}");
            let declaration = format!("pub const {variable}: &str");
            let before = &catalogue[..catalogue.find(&declaration).unwrap_or_else(|| panic!("{variable} in env_vars.rs"))];
            let doc: Vec<&str> = before.lines().rev().take_while(|line| line.starts_with("///")).collect();
            let doc = doc.into_iter().rev().map(|line| line.trim_start_matches("///").trim()).collect::<Vec<_>>().join(" ");
            if let Some((_, after)) = doc.split_once("(default ") {
                assert_eq!(after.split([')', ';']).next(), Some(default.as_str()), "env_vars.rs, {variable}: {doc}");
            }
            checked += 1;
        }
        assert_eq!(checked, 8);
    }

    /// The flags parse with their defaults, and each reads its value.
    #[test]
    fn flags_parse_with_their_defaults() {
        #[derive(clap::Parser)]
        struct Serve {
            #[command(flatten)]
            auth: ServeAuthArgs,
        }
        let parsed = <Serve as clap::Parser>::try_parse_from(["serve"]).expect("no flags");
        assert_eq!(parsed.auth, AuthSettings::default());
        let parsed = <Serve as clap::Parser>::try_parse_from([
            "serve",
            "--jwt-jwks",
            "https://example.test/jwks",
            "--jwt-issuer",
            "https://issuer.test",
            "--jwt-audience",
            "s3cache",
            "--repository",
            "123",
            "--forgejo-secret-file",
            "/run/secret",
            "--forgejo-max-age",
            "2h",
            "--insecure-no-auth-on-network",
        ])
        .expect("every flag");
        assert_eq!(
            parsed.auth,
            AuthSettings {
                insecure_no_auth_on_network: true,
                jwt_jwks: Some("https://example.test/jwks".into()),
                jwt_issuer: "https://issuer.test".into(),
                jwt_audience: Some("s3cache".into()),
                repository: Some("123".into()),
                forgejo_secret_file: Some(PathBuf::from("/run/secret")),
                forgejo_secret: None,
                forgejo_max_age: Duration::from_secs(7200),
            }
        );
    }
}
