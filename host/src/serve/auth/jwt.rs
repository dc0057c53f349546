//! GitHub-style runtime tokens (`ACTIONS_RUNTIME_TOKEN`): JWTs signed by a key of a JWKS, whose `ac`
//! claim grants cache scopes.
//!
//! The JWKS comes from a file or a URL; it is read at start and read again when a token names a key it
//! lacks (a rotation), at most once a minute. Only asymmetric keys are used, each for the algorithms of
//! its type (or the one its `alg` names): a symmetric key in a JWKS, which is public, would let anyone
//! sign. `exp` and `nbf` are checked with 60 s of leeway, `iss` always, `aud` when configured.
//!
//! `ac` is a JSON string holding `[{"Scope":"refs/heads/main","Permission":3}]` (an array is accepted
//! too); bit 1 reads, bit 2 writes. A ref becomes a scope through the CLI's own naming
//! ([`scope_name`]), so that with `--repository` pinned the server and the CLI in GitHub Actions share
//! entries; without it every scope is prefixed with `r<repository_id>-`, so repositories never share.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

use super::{AuthSettings, Caller, Denied};
use crate::engine::scope::scope_name;

/// Clock skew allowed on `exp` and `nbf`, in seconds.
const LEEWAY_SECS: u64 = 60;
/// The least time between two reads of the JWKS.
const REFETCH_INTERVAL: Duration = Duration::from_secs(60);
/// The longest a JWKS fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest JWKS read.
const MAX_JWKS_BYTES: u64 = 1 << 20;
/// `Permission` bits of an `ac` grant.
const READ: u64 = 1;
const WRITE: u64 = 2;

/// Where the JWKS is read from.
#[derive(Debug)]
enum KeySource {
    Url(String),
    File(PathBuf),
}

impl KeySource {
    fn parse(value: &str) -> Self {
        if value.starts_with("https://") || value.starts_with("http://") {
            Self::Url(value.to_owned())
        } else {
            Self::File(PathBuf::from(value))
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Url(url) => url.clone(),
            Self::File(path) => path.display().to_string(),
        }
    }

    /// The usable keys of the JWKS, read now.
    fn load(&self) -> Result<Vec<VerifyingKey>, String> {
        let text = match self {
            Self::Url(url) => fetch(url)?,
            Self::File(path) => std::fs::read_to_string(path).map_err(|e| e.to_string())?,
        };
        parse_jwks(&text)
    }
}

/// The body of a GET of `url`.
fn fetch(url: &str) -> Result<String, String> {
    let config = ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(FETCH_TIMEOUT)).build();
    let mut response = crate::store::s3::connection::agent(config).get(url).call().map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    response.body_mut().with_config().limit(MAX_JWKS_BYTES).read_to_string().map_err(|e| e.to_string())
}

/// A key of the JWKS and the algorithms it may verify.
struct VerifyingKey {
    kid: Option<String>,
    key: DecodingKey,
    algorithms: Vec<Algorithm>,
}

/// The keys of a JWKS that can verify signatures; keys of other kinds or uses are skipped.
fn parse_jwks(text: &str) -> Result<Vec<VerifyingKey>, String> {
    #[derive(Deserialize)]
    struct KeySet {
        keys: Vec<Value>,
    }
    let set: KeySet = serde_json::from_str(text).map_err(|e| format!("not a JWKS ({{\"keys\": [...]}}): {e}"))?;
    let keys: Vec<VerifyingKey> =
        set.keys.into_iter().filter_map(|key| serde_json::from_value(key).ok()).filter_map(verifying_key).collect();
    if keys.is_empty() {
        return Err("it holds no RSA, EC (P-256, P-384) or Ed25519 signature key".to_owned());
    }
    Ok(keys)
}

fn verifying_key(jwk: Jwk) -> Option<VerifyingKey> {
    use Algorithm::*;
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let family: &[Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => &[RS256, RS384, RS512, PS256, PS384, PS512],
        AlgorithmParameters::EllipticCurve(params) if params.curve == EllipticCurve::P256 => &[ES256],
        AlgorithmParameters::EllipticCurve(params) if params.curve == EllipticCurve::P384 => &[ES384],
        AlgorithmParameters::OctetKeyPair(params) if params.curve == EllipticCurve::Ed25519 => &[EdDSA],
        // Symmetric ("oct") keys, and curves the backend cannot verify.
        _ => return None,
    };
    let algorithms = match jwk.common.key_algorithm {
        Some(named) => {
            let named = Algorithm::from_str(&named.to_string()).ok()?;
            family.contains(&named).then(|| vec![named])?
        }
        None => family.to_vec(),
    };
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    Some(VerifyingKey { kid: jwk.common.key_id, key, algorithms })
}

/// The JWKS's keys and when they were read.
struct KeyCache {
    keys: Vec<VerifyingKey>,
    read_at: Instant,
}

impl KeyCache {
    /// The key a token's `kid` names; a token without one may use the only key of a one-key JWKS.
    fn find(&self, kid: Option<&str>) -> Option<&VerifyingKey> {
        match kid {
            Some(kid) => self.keys.iter().find(|key| key.kid.as_deref() == Some(kid)),
            None => self.keys.first().filter(|_| self.keys.len() == 1),
        }
    }
}

/// The claims read from a verified token; all optional, so that a missing one gets its own message.
#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    ac: Option<Value>,
    repository_id: Option<Value>,
}

/// One entry of `ac`.
#[derive(Deserialize)]
struct Grant {
    #[serde(rename = "Scope")]
    scope: String,
    #[serde(rename = "Permission")]
    permission: u64,
}

/// Checks runtime tokens against one issuer's JWKS.
pub struct JwtVerifier {
    issuer: String,
    audience: Option<String>,
    repository: Option<String>,
    source: KeySource,
    cache: Mutex<KeyCache>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("repository", &self.repository)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Whether `id` may stand in a scope name: letters, digits and `_` (GitHub's ids are numbers).
fn is_plain_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl JwtVerifier {
    /// A verifier for tokens signed by a key of `jwks` (a URL or a path), read now (`now` starts the
    /// refetch pace); an error names the setting.
    pub fn new(jwks: &str, settings: &AuthSettings, now: Instant) -> Result<Self, String> {
        if settings.jwt_issuer.trim().is_empty() {
            return Err("--jwt-issuer (S3CACHE_SERVE_JWT_ISSUER) is empty".to_owned());
        }
        if let Some(id) = settings.repository.as_deref().filter(|id| !is_plain_id(id)) {
            return Err(format!("--repository (S3CACHE_SERVE_REPOSITORY) must be a repository id of letters, digits and _, not {id:?}"));
        }
        let source = KeySource::parse(jwks);
        let keys = source.load().map_err(|e| format!("--jwt-jwks {}: {e}", source.describe()))?;
        Ok(Self {
            issuer: settings.jwt_issuer.clone(),
            audience: settings.jwt_audience.clone(),
            repository: settings.repository.clone(),
            source,
            cache: Mutex::new(KeyCache { keys, read_at: now }),
        })
    }

    /// For the start-up line.
    pub fn describe(&self) -> String {
        let mut text = format!("JWT from {} (JWKS {})", self.issuer, self.source.describe());
        if let Some(audience) = &self.audience {
            text.push_str(&format!(", audience {audience}"));
        }
        if let Some(repository) = &self.repository {
            text.push_str(&format!(", repository {repository} only"));
        }
        text
    }

    /// The caller `token` is, at `now` (which paces the JWKS's refetches).
    pub fn verify(&self, token: &str, now: Instant) -> Result<Caller, Denied> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Denied("malformed JWT".into()))?;
        let claims = {
            let mut cache = self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let mut refetch_failure = None;
            if cache.find(header.kid.as_deref()).is_none() && now.saturating_duration_since(cache.read_at) >= REFETCH_INTERVAL {
                cache.read_at = now;
                match self.source.load() {
                    Ok(keys) => cache.keys = keys,
                    Err(e) => refetch_failure = Some(e),
                }
            }
            let Some(key) = cache.find(header.kid.as_deref()) else {
                let mut reason = match &header.kid {
                    Some(kid) => format!("JWT key {kid:?} is not in the JWKS (--jwt-jwks)"),
                    None => "JWT names no key (kid) and the JWKS has several".to_owned(),
                };
                if let Some(failure) = refetch_failure {
                    reason.push_str(&format!("; reading the JWKS again failed: {failure}"));
                }
                return Err(Denied(reason));
            };
            if !key.algorithms.contains(&header.alg) {
                return Err(Denied(format!("JWT algorithm {:?} is not one its key allows", header.alg)));
            }
            jsonwebtoken::decode::<Claims>(token, &key.key, &self.validation(header.alg)).map_err(|e| self.refusal(e.kind()))?.claims
        };
        let issuer = claims.iss.unwrap_or_default();
        if issuer != self.issuer {
            return Err(Denied(format!("JWT issuer {issuer:?} is not {:?} (--jwt-issuer)", self.issuer)));
        }
        let prefix = self.scope_prefix(claims.repository_id)?;
        scopes(&grants(claims.ac)?, &prefix)
    }

    /// What jsonwebtoken checks: the signature, `exp` and `nbf` with leeway, `aud` when configured, and
    /// that `exp` and `iss` are there (`iss` itself is compared here, to name it in the refusal).
    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "iss"];
        validation.validate_aud = self.audience.is_some();
        if let Some(audience) = &self.audience {
            validation.set_audience(&[audience]);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        validation
    }

    /// The denial for jsonwebtoken's error.
    fn refusal(&self, kind: &ErrorKind) -> Denied {
        Denied(match kind {
            ErrorKind::InvalidSignature => "bad JWT signature".to_owned(),
            ErrorKind::ExpiredSignature => "JWT expired".to_owned(),
            ErrorKind::ImmatureSignature => "JWT not valid yet (nbf)".to_owned(),
            ErrorKind::InvalidAudience => {
                format!("JWT audience is not {:?} (--jwt-audience)", self.audience.as_deref().unwrap_or_default())
            }
            ErrorKind::MissingRequiredClaim(claim) => format!("JWT has no {claim} claim"),
            ErrorKind::InvalidClaimFormat(claim) => format!("JWT claim {claim} is malformed"),
            _ => "malformed JWT".to_owned(),
        })
    }

    /// What starts the token's scope names: nothing when `--repository` pins the repository (and the
    /// token is for it), else `r<repository_id>-`.
    fn scope_prefix(&self, claim: Option<Value>) -> Result<String, Denied> {
        let id = match claim {
            Some(Value::String(id)) => Some(id),
            Some(Value::Number(id)) => Some(id.to_string()),
            Some(_) => return Err(Denied("JWT claim repository_id is not a string or a number".into())),
            None => None,
        };
        match (&self.repository, id) {
            (Some(pinned), Some(id)) if *pinned == id => Ok(String::new()),
            (Some(pinned), Some(id)) => Err(Denied(format!("JWT is for repository {id:?}, not {pinned:?} (--repository)"))),
            (Some(_), None) => Err(Denied("JWT has no repository_id claim, and --repository accepts one repository only".into())),
            (None, Some(id)) if is_plain_id(&id) => Ok(format!("r{id}-")),
            (None, Some(id)) => Err(Denied(format!("JWT claim repository_id {id:?} is not an id of letters, digits and _"))),
            (None, None) => Err(Denied("JWT has no repository_id claim, which keeps repositories apart unless --repository is set".into())),
        }
    }
}

/// The grants of the `ac` claim: a JSON string holding the list, or the list itself.
fn grants(ac: Option<Value>) -> Result<Vec<Grant>, Denied> {
    let malformed = || Denied(r#"JWT claim ac is not a list of {"Scope", "Permission"}"#.into());
    let list = match ac {
        None => return Err(Denied("JWT has no ac claim (the cache scopes it grants)".into())),
        Some(Value::String(text)) => serde_json::from_str(&text).map_err(|_| malformed())?,
        Some(list) => list,
    };
    serde_json::from_value(list).map_err(|_| malformed())
}

/// The caller the grants make: the readable scopes in the token's order, and its one writable scope.
fn scopes(grants: &[Grant], prefix: &str) -> Result<Caller, Denied> {
    let named = |bit: u64| {
        let mut names: Vec<String> = Vec::new();
        for grant in grants.iter().filter(|grant| grant.permission & bit != 0) {
            let name = format!("{prefix}{}", scope_name(&grant.scope));
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    };
    let read_scopes = named(READ);
    if read_scopes.is_empty() {
        return Err(Denied("token grants no read scope".into()));
    }
    let write_scope = match <[String; 1]>::try_from(named(WRITE)) {
        Ok([scope]) => Ok(scope),
        Err(writable) if writable.is_empty() => Err("token grants no write scope".to_owned()),
        Err(_) => Err("token grants several write scopes".to_owned()),
    };
    Ok(Caller { read_scopes, write_scope, download_base: None })
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::path::Path;

    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::*;

    const KID: &str = "s3cache-test";
    const ISSUER: &str = super::super::DEFAULT_JWT_ISSUER;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/serve").join(name)
    }

    fn signing_key(name: &str) -> EncodingKey {
        EncodingKey::from_rsa_pem(&std::fs::read(fixture(name)).expect("the test key")).expect("an RSA key")
    }

    fn sign_with(key: &str, kid: Option<&str>, claims: &Value) -> String {
        let header = Header { kid: kid.map(str::to_owned), ..Header::new(Algorithm::RS256) };
        jsonwebtoken::encode(&header, claims, &signing_key(key)).expect("a signed token")
    }

    fn sign(claims: &Value) -> String {
        sign_with("jwt-test-key.pem", Some(KID), claims)
    }

    fn now_secs() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    /// GitHub's claims for a token granting `ac` (given as GitHub gives it: a JSON string).
    fn claims(ac: Value) -> Value {
        json!({"iss": ISSUER, "exp": now_secs() + 600, "nbf": now_secs() - 10, "repository_id": "123", "ac": ac.to_string()})
    }

    fn main_token() -> Value {
        claims(json!([{"Scope": "refs/heads/main", "Permission": 3}]))
    }

    fn verifier_with(settings: AuthSettings) -> JwtVerifier {
        JwtVerifier::new(&fixture("jwks.json").display().to_string(), &settings, Instant::now()).expect("the test JWKS")
    }

    fn verifier() -> JwtVerifier {
        verifier_with(AuthSettings::default())
    }

    fn verify(verifier: &JwtVerifier, token: &str) -> Result<Caller, Denied> {
        verifier.verify(token, Instant::now())
    }

    fn denied(reason: &str) -> Result<Caller, Denied> {
        Err(Denied(reason.into()))
    }

    /// A token granting main read and write: main's scope, prefixed with the repository.
    #[test]
    fn a_good_token_reads_and_writes_its_scope() {
        let main = format!("r123-{}", scope_name("refs/heads/main"));
        let expected = Caller { read_scopes: vec![main.clone()], write_scope: Ok(main.clone()), download_base: None };
        assert_eq!(verify(&verifier(), &sign(&main_token())), Ok(expected.clone()));
        assert!(main.starts_with("r123-heads-main-"), "{main}");
        // repository_id as a number, and ac as an already-parsed array, mean the same.
        let mut numeric = main_token();
        numeric["repository_id"] = json!(123);
        numeric["ac"] = json!([{"Scope": "refs/heads/main", "Permission": 3}]);
        assert_eq!(verify(&verifier(), &sign(&numeric)), Ok(expected));
    }

    /// With --repository pinned, scopes are the CLI's own names, so the CLI and the server share them.
    #[test]
    fn a_pinned_repository_uses_the_cli_scope_names() {
        let pinned = verifier_with(AuthSettings { repository: Some("123".into()), ..AuthSettings::default() });
        let caller = verify(&pinned, &sign(&main_token())).expect("the pinned repository");
        assert_eq!(caller.write_scope, Ok(scope_name("refs/heads/main")));
        assert_eq!(caller.read_scopes, vec![scope_name("refs/heads/main")]);
        assert!(pinned.describe().ends_with("jwks.json), repository 123 only"), "{}", pinned.describe());
    }

    /// A pull request's token writes its own scope, reads it then main's, and never writes main's.
    #[test]
    fn a_pull_request_writes_its_own_scope() {
        let token = sign(&claims(json!([{"Scope": "refs/pull/1/merge", "Permission": 3}, {"Scope": "refs/heads/main", "Permission": 1}])));
        let caller = verify(&verifier(), &token).expect("a PR token");
        let pr = format!("r123-{}", scope_name("refs/pull/1/merge"));
        let main = format!("r123-{}", scope_name("refs/heads/main"));
        assert_eq!(caller, Caller { read_scopes: vec![pr.clone(), main.clone()], write_scope: Ok(pr), download_base: None });
        assert_ne!(caller.write_scope, Ok(main));
    }

    /// A token with no writable scope, or several, may read but not write.
    #[test]
    fn write_needs_exactly_one_writable_scope() {
        let read_only = sign(&claims(json!([{"Scope": "refs/heads/main", "Permission": 1}])));
        let caller = verify(&verifier(), &read_only).expect("a read-only token");
        assert_eq!(caller.write_scope, Err("token grants no write scope".to_owned()));
        assert_eq!(caller.read_scopes, vec![format!("r123-{}", scope_name("refs/heads/main"))]);
        let several = sign(&claims(json!([{"Scope": "refs/heads/a", "Permission": 3}, {"Scope": "refs/heads/b", "Permission": 3}])));
        assert_eq!(verify(&verifier(), &several).map(|caller| caller.write_scope), Ok(Err("token grants several write scopes".to_owned())));
        let write_only = sign(&claims(json!([{"Scope": "refs/heads/main", "Permission": 2}])));
        assert_eq!(verify(&verifier(), &write_only), denied("token grants no read scope"));
    }

    /// A token signed by another key, or altered after signing, is refused.
    #[test]
    fn a_bad_signature_is_refused() {
        let forged = sign_with("jwt-other-key.pem", Some(KID), &main_token());
        assert_eq!(verify(&verifier(), &forged), denied("bad JWT signature"));
        // A read-only token whose claims are rewritten to grant writing, its signature kept.
        let token = sign(&claims(json!([{"Scope": "refs/heads/main", "Permission": 1}])));
        let parts: Vec<&str> = token.split('.').collect();
        let payload = sign(&main_token()).split('.').nth(1).expect("a payload").to_owned();
        assert_eq!(verify(&verifier(), &format!("{}.{payload}.{}", parts[0], parts[2])), denied("bad JWT signature"));
        assert_eq!(verify(&verifier(), "not.a.jwt"), denied("malformed JWT"));
        assert_eq!(verify(&verifier(), "nonsense"), denied("malformed JWT"));
    }

    /// exp and nbf are checked with 60 s of leeway.
    #[test]
    fn time_claims_are_checked_with_leeway() {
        let mut expired = main_token();
        expired["exp"] = json!(now_secs() - 3600);
        assert_eq!(verify(&verifier(), &sign(&expired)), denied("JWT expired"));
        let mut just_expired = main_token();
        just_expired["exp"] = json!(now_secs() - 20);
        assert!(verify(&verifier(), &sign(&just_expired)).is_ok());
        let mut early = main_token();
        early["nbf"] = json!(now_secs() + 3600);
        assert_eq!(verify(&verifier(), &sign(&early)), denied("JWT not valid yet (nbf)"));
        let mut no_exp = main_token();
        no_exp.as_object_mut().expect("claims").remove("exp");
        assert_eq!(verify(&verifier(), &sign(&no_exp)), denied("JWT has no exp claim"));
    }

    /// The issuer must be --jwt-issuer's.
    #[test]
    fn a_wrong_issuer_is_refused() {
        let mut other = main_token();
        other["iss"] = json!("https://evil.example");
        assert_eq!(
            verify(&verifier(), &sign(&other)),
            denied(r#"JWT issuer "https://evil.example" is not "https://token.actions.githubusercontent.com" (--jwt-issuer)"#)
        );
        other.as_object_mut().expect("claims").remove("iss");
        assert_eq!(verify(&verifier(), &sign(&other)), denied("JWT has no iss claim"));
    }

    /// With --repository pinned, other repositories' tokens are refused; without it, an id is needed.
    #[test]
    fn repositories_are_checked() {
        let pinned = verifier_with(AuthSettings { repository: Some("123".into()), ..AuthSettings::default() });
        let mut other = main_token();
        other["repository_id"] = json!("456");
        assert_eq!(verify(&pinned, &sign(&other)), denied(r#"JWT is for repository "456", not "123" (--repository)"#));
        other.as_object_mut().expect("claims").remove("repository_id");
        assert_eq!(verify(&pinned, &sign(&other)), denied("JWT has no repository_id claim, and --repository accepts one repository only"));
        assert_eq!(
            verify(&verifier(), &sign(&other)),
            denied("JWT has no repository_id claim, which keeps repositories apart unless --repository is set")
        );
        other["repository_id"] = json!("1-2");
        assert_eq!(verify(&verifier(), &sign(&other)), denied(r#"JWT claim repository_id "1-2" is not an id of letters, digits and _"#));
        let bad_pin = AuthSettings { repository: Some("a/b".into()), ..AuthSettings::default() };
        assert_eq!(
            JwtVerifier::new(&fixture("jwks.json").display().to_string(), &bad_pin, Instant::now()).map(|_| ()),
            Err(r#"--repository (S3CACHE_SERVE_REPOSITORY) must be a repository id of letters, digits and _, not "a/b""#.to_owned())
        );
    }

    /// A token without `ac`, or with one that is not a list of grants, is refused.
    #[test]
    fn the_ac_claim_is_required() {
        let mut no_ac = main_token();
        no_ac.as_object_mut().expect("claims").remove("ac");
        assert_eq!(verify(&verifier(), &sign(&no_ac)), denied("JWT has no ac claim (the cache scopes it grants)"));
        for bad in [json!("not json"), json!({"Scope": "refs/heads/main"}), json!([{"Scope": "refs/heads/main", "Permission": "3"}])] {
            let mut token = main_token();
            token["ac"] = bad;
            assert_eq!(verify(&verifier(), &sign(&token)), denied(r#"JWT claim ac is not a list of {"Scope", "Permission"}"#));
        }
    }

    /// With --jwt-audience, `aud` must be there and name it.
    #[test]
    fn the_audience_is_checked_when_configured() {
        let strict = verifier_with(AuthSettings { jwt_audience: Some("s3cache".into()), ..AuthSettings::default() });
        let mut token = main_token();
        assert_eq!(verify(&strict, &sign(&token)), denied("JWT has no aud claim"));
        token["aud"] = json!("other");
        assert_eq!(verify(&strict, &sign(&token)), denied(r#"JWT audience is not "s3cache" (--jwt-audience)"#));
        token["aud"] = json!("s3cache");
        assert!(verify(&strict, &sign(&token)).is_ok());
        // Without --jwt-audience, any aud is fine.
        token["aud"] = json!("other");
        assert!(verify(&verifier(), &sign(&token)).is_ok());
    }

    /// Keys are found by kid; a token may also not name one when the JWKS has one key; another
    /// algorithm than the key's (HS256 with the public key as its secret) is refused.
    #[test]
    fn keys_and_algorithms_are_matched() {
        assert_eq!(
            verify(&verifier(), &sign_with("jwt-test-key.pem", Some("nope"), &main_token())),
            denied(r#"JWT key "nope" is not in the JWKS (--jwt-jwks)"#)
        );
        assert!(verify(&verifier(), &sign_with("jwt-test-key.pem", None, &main_token())).is_ok());
        let header = Header { kid: Some(KID.into()), ..Header::new(Algorithm::HS256) };
        let confused = jsonwebtoken::encode(&header, &main_token(), &EncodingKey::from_secret(b"public").expect("an HMAC key"))
            .expect("an HS256 token");
        assert_eq!(verify(&verifier(), &confused), denied("JWT algorithm HS256 is not one its key allows"));
    }

    /// Symmetric keys and encryption keys in a JWKS are not used; a JWKS without a usable key is an
    /// error that names the setting.
    #[test]
    fn only_asymmetric_signature_keys_are_used() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("jwks.json");
        std::fs::write(
            &path,
            r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "s"}, {"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"}]}"#,
        )
        .expect("write the JWKS");
        let error = JwtVerifier::new(&path.display().to_string(), &AuthSettings::default(), Instant::now()).map(|_| ());
        assert_eq!(error, Err(format!("--jwt-jwks {}: it holds no RSA, EC (P-256, P-384) or Ed25519 signature key", path.display())));
        std::fs::write(&path, "[]").expect("write a non-JWKS");
        let error =
            JwtVerifier::new(&path.display().to_string(), &AuthSettings::default(), Instant::now()).map(|_| ()).expect_err("not a JWKS");
        assert!(error.starts_with(&format!("--jwt-jwks {}: not a JWKS ({{\"keys\": [...]}}): ", path.display())), "{error}");
    }

    /// A JWKS of the test key plus, when `rotated`, the other key as `rotated`.
    fn jwks(rotated: bool) -> String {
        let mut set: Value = serde_json::from_str(&std::fs::read_to_string(fixture("jwks.json")).expect("the JWKS")).expect("JSON");
        if rotated {
            let mut key = serde_json::to_value(Jwk::from_encoding_key(&signing_key("jwt-other-key.pem"), Algorithm::RS256).expect("a JWK"))
                .expect("JSON");
            key["kid"] = json!("rotated");
            set["keys"].as_array_mut().expect("keys").push(key);
        }
        set.to_string()
    }

    /// A token naming an unknown key makes the JWKS be read again, but at most once a minute.
    #[test]
    fn an_unknown_key_rereads_the_jwks_once_a_minute() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, jwks(false)).expect("write the JWKS");
        let start = Instant::now();
        let verifier = JwtVerifier::new(&path.display().to_string(), &AuthSettings::default(), start).expect("the JWKS");
        std::fs::write(&path, jwks(true)).expect("rotate the JWKS");
        let token = sign_with("jwt-other-key.pem", Some("rotated"), &main_token());
        assert_eq!(
            verifier.verify(&token, start + Duration::from_secs(59)),
            denied(r#"JWT key "rotated" is not in the JWKS (--jwt-jwks)"#)
        );
        assert!(verifier.verify(&token, start + Duration::from_secs(60)).is_ok());
        // A failed reread is named, and the keys read before stay.
        std::fs::remove_file(&path).expect("remove the JWKS");
        let unknown = sign_with("jwt-other-key.pem", Some("gone"), &main_token());
        let refusal = verifier.verify(&unknown, start + Duration::from_secs(120)).expect_err("unknown key");
        assert!(refusal.0.starts_with(r#"JWT key "gone" is not in the JWKS (--jwt-jwks); reading the JWKS again failed: "#), "{refusal}");
        assert!(verifier.verify(&token, start + Duration::from_secs(121)).is_ok());
    }

    /// A JWKS URL is fetched over HTTP (here from a one-request server on loopback).
    #[test]
    fn a_jwks_url_is_fetched() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let url = format!("http://{}/.well-known/jwks", listener.local_addr().expect("its address"));
        let body = jwks(false);
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().expect("the fetch");
            let mut reader = BufReader::new(stream);
            let mut request_line = String::new();
            reader.read_line(&mut request_line).expect("the request line");
            let mut line = String::new();
            while reader.read_line(&mut line).expect("a header") > 2 {
                line.clear();
            }
            let mut stream = reader.into_inner();
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .expect("the answer");
            request_line
        });
        let verifier = JwtVerifier::new(&url, &AuthSettings::default(), Instant::now()).expect("the fetched JWKS");
        assert_eq!(server.join().expect("the server"), "GET /.well-known/jwks HTTP/1.1\r\n");
        assert!(verify(&verifier, &sign(&main_token())).is_ok());
        assert_eq!(verifier.describe(), format!("JWT from https://token.actions.githubusercontent.com (JWKS {url})"));
    }
}
