//! Forgejo runner's cache proxy: the `Forgejo-Cache-*` headers it adds to every request it forwards, and
//! the HMAC that authenticates them.
//!
//! As in Forgejo runner (v12, `act/artifactcache/mac.go`): the MAC is the lowercase hex of
//! HMAC-SHA256 keyed with the runner's `cache.secret` (its bytes as they are) over
//! `repo ">" runNumber ">" timestamp ">" writeIsolationKey`, compared in constant time; a timestamp in
//! the future is refused (with 60 s of leeway for clocks here), and, unlike Forgejo, so is one older
//! than `--forgejo-max-age`. Entries are scoped by repository and write-isolation key, not by ref, as
//! Forgejo's own cache server does: a pull request (which has an isolation key) writes its isolated
//! scope and reads it, then the repository's shared scope; other runs write and read the shared scope.
//! Downloads go back through the proxy, at `<Forgejo-Cache-Host>/<Forgejo-Cache-RunId>`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{AuthSettings, Caller, Denied};
use crate::config::parse::duration_text;
use crate::engine::scope::scope_name;

/// The header that marks a request as Forgejo's: the MAC.
pub const MAC_HEADER: &str = "Forgejo-Cache-MAC";
/// The repository's full name, `owner/name`.
pub const REPO_HEADER: &str = "Forgejo-Cache-Repo";
/// The run's number (which Forgejo runner fills with the run's id).
pub const RUN_NUMBER_HEADER: &str = "Forgejo-Cache-RunNumber";
/// When the job started, in Unix seconds.
pub const TIMESTAMP_HEADER: &str = "Forgejo-Cache-Timestamp";
/// A pull request's ref, which keeps its writes apart; absent for other runs.
pub const ISOLATION_HEADER: &str = "Forgejo-Cache-WriteIsolationKey";
/// The proxy's own URL, where downloads must go (not covered by the MAC).
pub const HOST_HEADER: &str = "Forgejo-Cache-Host";
/// The proxy's key for the job, the first segment of its paths (not covered by the MAC).
pub const RUN_ID_HEADER: &str = "Forgejo-Cache-RunId";

/// How far in the future a timestamp may be: the two machines' clocks may differ a little.
const FUTURE_LEEWAY_SECS: u64 = 60;

/// The Forgejo secret from the settings: the file's text without one trailing line break, or the
/// variable's value; an error names the setting when both are given, the file cannot be read, or the
/// secret is empty.
pub(super) fn load_secret(settings: &AuthSettings) -> Result<Option<String>, String> {
    match (&settings.forgejo_secret_file, &settings.forgejo_secret) {
        (Some(_), Some(_)) => {
            Err("--forgejo-secret-file and --forgejo-secret (S3CACHE_SERVE_FORGEJO_SECRET) both give the Forgejo secret: keep one"
                .to_owned())
        }
        (Some(path), None) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("--forgejo-secret-file {}: {e}", path.display()))?;
            let secret = text.strip_suffix('\n').map(|line| line.strip_suffix('\r').unwrap_or(line)).unwrap_or(&text);
            if secret.is_empty() {
                return Err(format!("--forgejo-secret-file {}: the file is empty", path.display()));
            }
            Ok(Some(secret.to_owned()))
        }
        (None, Some(secret)) if secret.is_empty() => Err("--forgejo-secret (S3CACHE_SERVE_FORGEJO_SECRET) is set but empty".to_owned()),
        (None, Some(secret)) => Ok(Some(secret.clone())),
        (None, None) => Ok(None),
    }
}

/// The keyed HMAC over Forgejo's message for these header values.
fn keyed(secret: &str, repo: &str, run_number: &str, timestamp: &str, isolation_key: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(format!("{repo}>{run_number}>{timestamp}>{isolation_key}").as_bytes());
    mac
}

/// The `Forgejo-Cache-MAC` Forgejo runner's proxy sends for these values: lowercase hex.
pub fn mac(secret: &str, repo: &str, run_number: &str, timestamp: &str, isolation_key: &str) -> String {
    hex::encode(keyed(secret, repo, run_number, timestamp, isolation_key).finalize().into_bytes())
}

/// The scopes of a repository's runs: what they read, in order, and where they write. A run with an
/// isolation key writes its own scope and reads it first, then the repository's shared one.
pub fn scopes(repository: &str, isolation_key: &str) -> (Vec<String>, String) {
    // scope_name hashes its exact input, so repositories and keys that sanitize alike stay apart; a
    // header has no line breaks, so the inputs cannot be confused with each other.
    let shared = format!("fj-{}", scope_name(&format!("{repository}\nshared")));
    if isolation_key.is_empty() {
        return (vec![shared.clone()], shared);
    }
    let isolated = format!("fj-{}", scope_name(&format!("{repository}\niso\n{isolation_key}")));
    (vec![isolated.clone(), shared], isolated)
}

/// `<Forgejo-Cache-Host>/<Forgejo-Cache-RunId>` when the request came through Forgejo's proxy: a host
/// that is an http(s) URL and a run id of word characters (the proxy's route, `/(\w+)/_apis/...`).
pub fn download_base(header: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let host = header(HOST_HEADER)?;
    let run_id = header(RUN_ID_HEADER)?;
    let host = host.trim().trim_end_matches('/');
    let url_like = (host.starts_with("http://") || host.starts_with("https://")) && !host.contains(char::is_whitespace);
    let word = !run_id.is_empty() && run_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    (url_like && word).then(|| format!("{host}/{run_id}"))
}

/// Checks Forgejo's headers with the runner's secret.
pub struct ForgejoVerifier {
    secret: String,
    max_age: Duration,
}

impl std::fmt::Debug for ForgejoVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForgejoVerifier").field("secret", &"***").field("max_age", &self.max_age).finish()
    }
}

impl ForgejoVerifier {
    /// A verifier for `secret`; `max_age` zero accepts timestamps of any age.
    pub fn new(secret: String, max_age: Duration) -> Self {
        Self { secret, max_age }
    }

    /// For the start-up line.
    pub fn describe(&self) -> String {
        if self.max_age.is_zero() {
            "Forgejo HMAC (timestamps of any age)".to_owned()
        } else {
            format!("Forgejo HMAC (timestamps up to {} old)", duration_text(self.max_age))
        }
    }

    /// The caller a request with Forgejo's headers is, at `now`: the MAC first, then the timestamp.
    pub fn verify(&self, header: &dyn Fn(&str) -> Option<String>, now: SystemTime) -> Result<Caller, Denied> {
        let required = |name: &str| header(name).ok_or_else(|| Denied(format!("Forgejo request without {name}")));
        let repo = required(REPO_HEADER)?;
        let run_number = required(RUN_NUMBER_HEADER)?;
        let timestamp = required(TIMESTAMP_HEADER)?;
        let given = header(MAC_HEADER).unwrap_or_default();
        let isolation_key = header(ISOLATION_HEADER).unwrap_or_default();
        // Forgejo compares the hex texts, so only lowercase hex can match.
        let lowercase_hex = given.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let matches = lowercase_hex
            && hex::decode(&given)
                .is_ok_and(|bytes| keyed(&self.secret, &repo, &run_number, &timestamp, &isolation_key).verify_slice(&bytes).is_ok());
        if !matches {
            return Err(Denied("bad Forgejo cache MAC".into()));
        }
        let started: u64 = timestamp.parse().map_err(|_| Denied(format!("{TIMESTAMP_HEADER} {timestamp:?} is not a number of seconds")))?;
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        if started > now + FUTURE_LEEWAY_SECS {
            return Err(Denied(format!("{TIMESTAMP_HEADER} is {} s in the future", started - now)));
        }
        if !self.max_age.is_zero() && now.saturating_sub(started) > self.max_age.as_secs() {
            return Err(Denied(format!("{TIMESTAMP_HEADER} is older than --forgejo-max-age ({})", duration_text(self.max_age))));
        }
        let (read_scopes, write_scope) = scopes(&repo, &isolation_key);
        Ok(Caller { read_scopes, write_scope: Ok(write_scope), download_base: download_base(header) })
    }
}

#[cfg(test)]
mod tests {
    use super::super::headers;
    use super::*;

    const SECRET: &str = "s3cret";
    const STARTED: u64 = 1_700_000_000;
    // printf '%s' 'owner/repo>42>1700000000>refs/pull/7/head' | openssl dgst -sha256 -hmac 's3cret'
    const ISOLATED_MAC: &str = "7a0cf274bca97e408228788d92a6de00706abaca8be984a8bd7815735704dc69";
    // printf '%s' 'owner/repo>42>1700000000>' | openssl dgst -sha256 -hmac 's3cret'
    const SHARED_MAC: &str = "8e57747851c0ac16f428381c97778920968925a1a5e07a9d8e9d3fcb400c02de";

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn verifier() -> ForgejoVerifier {
        ForgejoVerifier::new(SECRET.into(), super::super::DEFAULT_FORGEJO_MAX_AGE)
    }

    fn request<'a>(mac: &'a str, timestamp: &'a str, isolation_key: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
        let mut pairs = vec![
            ("forgejo-cache-repo", "owner/repo"),
            ("Forgejo-Cache-RunNumber", "42"),
            ("Forgejo-Cache-Timestamp", timestamp),
            ("Forgejo-Cache-MAC", mac),
            ("Forgejo-Cache-Host", "http://10.0.0.5:40715/"),
            ("Forgejo-Cache-RunId", "aB3x"),
        ];
        pairs.extend(isolation_key.map(|key| ("Forgejo-Cache-WriteIsolationKey", key)));
        pairs
    }

    /// The MAC matches one computed independently with openssl, with and without an isolation key.
    #[test]
    fn mac_matches_openssl() {
        assert_eq!(mac(SECRET, "owner/repo", "42", "1700000000", "refs/pull/7/head"), ISOLATED_MAC);
        assert_eq!(mac(SECRET, "owner/repo", "42", "1700000000", ""), SHARED_MAC);
    }

    /// A pull request's run (isolation key) writes its isolated scope and reads it, then the shared one;
    /// downloads go back through the proxy.
    #[test]
    fn an_isolated_run_writes_its_own_scope() {
        let caller = verifier().verify(&headers(&request(ISOLATED_MAC, "1700000000", Some("refs/pull/7/head"))), at(STARTED + 5));
        let (read, write) = scopes("owner/repo", "refs/pull/7/head");
        assert_eq!(
            caller,
            Ok(Caller {
                read_scopes: read.clone(),
                write_scope: Ok(write.clone()),
                download_base: Some("http://10.0.0.5:40715/aB3x".into())
            })
        );
        assert_eq!(read.len(), 2);
        assert_eq!(read[0], write);
        assert!(write.starts_with("fj-owner-repo-iso-refs-pull-7-head-"), "{write}");
        assert_eq!(read[1], scopes("owner/repo", "").1);
    }

    /// A run without an isolation key writes and reads the repository's shared scope.
    #[test]
    fn a_run_without_isolation_key_shares() {
        let caller = verifier().verify(&headers(&request(SHARED_MAC, "1700000000", None)), at(STARTED)).expect("a good MAC");
        let shared = caller.write_scope.clone().expect("writes");
        assert_eq!(caller.read_scopes, vec![shared.clone()]);
        assert!(shared.starts_with("fj-owner-repo-shared-"), "{shared}");
        assert_eq!(shared.len(), "fj-owner-repo-shared-".len() + 8);
        // An empty isolation header is the same as none, as in Forgejo.
        assert_eq!(verifier().verify(&headers(&request(SHARED_MAC, "1700000000", Some(""))), at(STARTED)), Ok(caller));
    }

    /// Scope names are one path segment, and differ for repositories and keys that sanitize alike.
    #[test]
    fn scope_names_are_segments_that_never_collide() {
        let names = [scopes("owner/repo", "").1, scopes("owner-repo", "").1, scopes("owner/repo", "a/b").1, scopes("owner/repo", "a-b").1];
        for name in &names {
            assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)), "{name}");
        }
        let distinct: std::collections::BTreeSet<&String> = names.iter().collect();
        assert_eq!(distinct.len(), names.len(), "{names:?}");
    }

    /// A wrong MAC, another secret, a changed header, an uppercase MAC or a missing one is refused.
    #[test]
    fn a_bad_mac_is_refused() {
        let bad = Err(Denied("bad Forgejo cache MAC".into()));
        let now = at(STARTED);
        assert_eq!(verifier().verify(&headers(&request(&"0".repeat(64), "1700000000", None)), now), bad);
        let other_secret = ForgejoVerifier::new("other".into(), Duration::ZERO);
        assert_eq!(other_secret.verify(&headers(&request(SHARED_MAC, "1700000000", None)), now), bad);
        // The same MAC with an isolation key added (a pull request claiming the shared scope, or the reverse).
        assert_eq!(verifier().verify(&headers(&request(SHARED_MAC, "1700000000", Some("refs/pull/7/head"))), now), bad);
        assert_eq!(verifier().verify(&headers(&request(ISOLATED_MAC, "1700000000", None)), now), bad);
        assert_eq!(verifier().verify(&headers(&request(&SHARED_MAC.to_uppercase(), "1700000000", None)), now), bad);
        assert_eq!(verifier().verify(&headers(&request("", "1700000000", None)), now), bad);
        let mut pairs = request(SHARED_MAC, "1700000000", None);
        pairs.retain(|(name, _)| *name != "Forgejo-Cache-RunNumber");
        assert_eq!(verifier().verify(&headers(&pairs), now), Err(Denied("Forgejo request without Forgejo-Cache-RunNumber".into())));
    }

    /// A timestamp more than 60 s ahead, or older than the maximum age, is refused; a zero maximum age
    /// accepts any age.
    #[test]
    fn timestamps_are_checked() {
        let pairs = request(SHARED_MAC, "1700000000", None);
        assert!(verifier().verify(&headers(&pairs), at(STARTED - 60)).is_ok());
        assert_eq!(
            verifier().verify(&headers(&pairs), at(STARTED - 61)),
            Err(Denied("Forgejo-Cache-Timestamp is 61 s in the future".into()))
        );
        assert!(verifier().verify(&headers(&pairs), at(STARTED + 86_400)).is_ok());
        assert_eq!(
            verifier().verify(&headers(&pairs), at(STARTED + 86_401)),
            Err(Denied("Forgejo-Cache-Timestamp is older than --forgejo-max-age (1d)".into()))
        );
        let ageless = ForgejoVerifier::new(SECRET.into(), Duration::ZERO);
        assert!(ageless.verify(&headers(&pairs), at(STARTED + 365 * 86_400)).is_ok());
        assert_eq!(ageless.describe(), "Forgejo HMAC (timestamps of any age)");
        let mac = mac(SECRET, "owner/repo", "42", "soon", "");
        assert_eq!(
            verifier().verify(&headers(&request(&mac, "soon", None)), at(STARTED)),
            Err(Denied("Forgejo-Cache-Timestamp \"soon\" is not a number of seconds".into()))
        );
    }

    /// The download base needs an http(s) host and a run id of word characters.
    #[test]
    fn download_base_is_checked() {
        let base = |host: &str, run_id: &str| download_base(&headers(&[("Forgejo-Cache-Host", host), ("Forgejo-Cache-RunId", run_id)]));
        assert_eq!(base("https://proxy:1234", "ab_9"), Some("https://proxy:1234/ab_9".into()));
        assert_eq!(base("ftp://proxy", "ab"), None);
        assert_eq!(base("http://proxy", "a/b"), None);
        assert_eq!(base("http://proxy", ""), None);
        assert_eq!(download_base(&headers(&[("Forgejo-Cache-Host", "http://proxy")])), None);
    }

    /// The secret comes from a file (one trailing line break dropped) or the variable, never both, never empty.
    #[test]
    fn the_secret_is_loaded_from_one_setting() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let file = dir.path().join("secret");
        std::fs::write(&file, "s3cret\r\n").expect("write the secret");
        let from_file = AuthSettings { forgejo_secret_file: Some(file.clone()), ..AuthSettings::default() };
        assert_eq!(load_secret(&from_file), Ok(Some("s3cret".into())));
        std::fs::write(&file, "\n").expect("write an empty secret");
        assert_eq!(load_secret(&from_file), Err(format!("--forgejo-secret-file {}: the file is empty", file.display())));
        let missing = AuthSettings { forgejo_secret_file: Some(dir.path().join("absent")), ..AuthSettings::default() };
        let error = load_secret(&missing).expect_err("no such file");
        assert!(error.starts_with(&format!("--forgejo-secret-file {}: ", dir.path().join("absent").display())), "{error}");
        let both = AuthSettings { forgejo_secret: Some("x".into()), ..from_file };
        assert_eq!(
            load_secret(&both),
            Err("--forgejo-secret-file and --forgejo-secret (S3CACHE_SERVE_FORGEJO_SECRET) both give the Forgejo secret: keep one".into())
        );
        let empty = AuthSettings { forgejo_secret: Some(String::new()), ..AuthSettings::default() };
        assert_eq!(load_secret(&empty), Err("--forgejo-secret (S3CACHE_SERVE_FORGEJO_SECRET) is set but empty".into()));
        assert_eq!(load_secret(&AuthSettings::default()), Ok(None));
    }
}
