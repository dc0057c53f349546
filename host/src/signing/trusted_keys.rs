//! `--trusted-keys`: the public keys whose signatures a restore accepts, and the verification of an
//! entry's signature against them, which names the reason of every refusal.
//!
//! The value is the lines themselves or the path of a file holding them. It is taken as lines when
//! it contains a line break, starts with `#`, or has a whitespace-separated word that is a key type
//! (`ssh-…`, `ecdsa-sha2-…`, `sk-…`), as every key line has; anything else is a path. A line is a
//! plain public key (`ssh-ed25519 AAAA… comment`: `.pub` files, GitHub's `USER.keys`) or an
//! `allowed_signers` line (principals, then options, then the key, as `ssh-keygen -Y verify` reads
//! them). Of the options, `namespaces=` (the line trusts the key only if it lists `s3cache`),
//! `valid-after=` and `valid-before=` are honoured; `cert-authority` and every other option are
//! refused with the line's number, never ignored: a restriction skipped would trust too much.
//!
//! A value that is set but blank parses to an empty set ([`TrustedKeys::is_empty`]) that refuses
//! every entry: a fork's blank secret must not turn verification off.

use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use ssh_key::{PublicKey, SshSig};

use super::{NAMESPACE, fingerprint};

/// The public keys a restore trusts, each with what its line allows.
#[derive(Debug, Clone)]
pub struct TrustedKeys {
    entries: Vec<TrustedKey>,
}

/// One line of `--trusted-keys`.
#[derive(Debug, Clone)]
struct TrustedKey {
    /// The line's number (from 1) in the value or file.
    line: usize,
    key: PublicKey,
    /// An `allowed_signers` line's principals; empty for a plain public key line.
    principals: Vec<String>,
    /// `namespaces="…"` as written, and its patterns; `None` allows every namespace.
    namespaces: Option<(String, Vec<String>)>,
    /// `valid-after="…"` as written, and the time it names.
    valid_after: Option<(String, SystemTime)>,
    /// `valid-before="…"` as written, and the time it names.
    valid_before: Option<(String, SystemTime)>,
}

/// Who signed an entry that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// The signing key's `SHA256:…` fingerprint.
    pub fingerprint: String,
    /// The principals of the `allowed_signers` line that trusted it; empty for a plain key line.
    pub principals: Vec<String>,
    /// The key's comment on that line (often `user@host`), possibly empty.
    pub comment: String,
}

impl fmt::Display for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.fingerprint)?;
        match (self.principals.is_empty(), self.comment.is_empty()) {
            (false, _) => write!(f, " ({})", self.principals.join(",")),
            (true, false) => write!(f, " ({})", self.comment),
            (true, true) => Ok(()),
        }
    }
}

/// Why an entry's signature is not accepted. Each names the signer's fingerprint where the
/// signature could be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[allow(missing_docs, reason = "each variant's doc and message say what its fields hold")]
pub enum Refusal {
    /// `--trusted-keys` is set but blank: nothing is trusted.
    #[error("no key is trusted (the trusted keys are empty)")]
    NoTrustedKeys,
    /// The entry carries no signature.
    #[error("the entry is not signed")]
    NotSigned,
    /// The signature is not a readable SSHSIG, or not one s3cache verifies.
    #[error("the signature is malformed: {reason}")]
    Malformed { reason: String },
    /// The signing key is not among the trusted keys.
    #[error("signed by {fingerprint}, which is not a trusted key")]
    UntrustedKey { fingerprint: String },
    /// A trusted key signed, but for another purpose (`git`, `file`).
    #[error("signed by {fingerprint} for the namespace \"{namespace}\", not \"s3cache\"")]
    WrongNamespace { fingerprint: String, namespace: String },
    /// The signature does not match the bytes: they were altered after signing.
    #[error("signed by {fingerprint}, but the signature does not match the manifest (altered after signing)")]
    Mismatch { fingerprint: String },
    /// The key's line restricts it to namespaces that leave out `s3cache`.
    #[error("signed by {fingerprint}, whose --trusted-keys line {line} allows only namespaces=\"{namespaces}\", not \"s3cache\"")]
    NamespaceNotAllowed { fingerprint: String, line: usize, namespaces: String },
    /// The key's line is valid only after a time still to come.
    #[error("signed by {fingerprint}, whose --trusted-keys line {line} is valid only after {valid_after}")]
    NotYetValid { fingerprint: String, line: usize, valid_after: String },
    /// The key's line was valid only before a time now past.
    #[error("signed by {fingerprint}, whose --trusted-keys line {line} expired at {valid_before}")]
    Expired { fingerprint: String, line: usize, valid_before: String },
}

impl Refusal {
    /// The signing key's fingerprint, where the signature could be read.
    pub fn fingerprint(&self) -> Option<&str> {
        match self {
            Refusal::NoTrustedKeys | Refusal::NotSigned | Refusal::Malformed { .. } => None,
            Refusal::UntrustedKey { fingerprint }
            | Refusal::WrongNamespace { fingerprint, .. }
            | Refusal::Mismatch { fingerprint }
            | Refusal::NamespaceNotAllowed { fingerprint, .. }
            | Refusal::NotYetValid { fingerprint, .. }
            | Refusal::Expired { fingerprint, .. } => Some(fingerprint),
        }
    }
}

/// Why `--trusted-keys` cannot be used. `origin` is "the value" or "the file PATH".
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs, reason = "each variant's doc and message say what its fields hold")]
pub enum TrustedKeysError {
    /// The value is a path, and the file cannot be read.
    #[error("--trusted-keys: cannot read the file {path}: {reason}")]
    Unreadable { path: String, reason: String },
    /// The value or file has no key line (only blanks and comments).
    #[error("--trusted-keys: {origin} holds no public key")]
    NoKeys { origin: String },
    /// A line's key does not decode.
    #[error("--trusted-keys: {origin}, line {line}: not a public key: {reason}")]
    BadKey { origin: String, line: usize, reason: String },
    /// A line's options are not a comma-separated list with balanced quotes.
    #[error("--trusted-keys: {origin}, line {line}: malformed options: {reason}")]
    BadOptions { origin: String, line: usize, reason: String },
    /// `cert-authority`: s3cache trusts keys, not certificates.
    #[error("--trusted-keys: {origin}, line {line}: cert-authority is not supported (s3cache trusts keys, not certificates)")]
    CertAuthority { origin: String, line: usize },
    /// An option s3cache does not honour; ignoring it could trust more than the line says.
    #[error(
        "--trusted-keys: {origin}, line {line}: the option \"{option}\" is not supported (only namespaces, valid-after and valid-before are)"
    )]
    UnknownOption { origin: String, line: usize, option: String },
    /// `valid-after`/`valid-before` is not a time.
    #[error("--trusted-keys: {origin}, line {line}: {option}=\"{value}\" is not a time (YYYYMMDD[HHMM[SS]], optionally ending in Z)")]
    BadTime { origin: String, line: usize, option: String, value: String },
}

impl TrustedKeys {
    /// The keys of `--trusted-keys`'s `value`: the lines themselves or a path (the rule is in the
    /// module's doc). A blank value gives the empty set, which refuses everything.
    pub fn parse(value: &str) -> Result<Self, TrustedKeysError> {
        if value.trim().is_empty() {
            return Ok(Self { entries: Vec::new() });
        }
        let (text, origin) = if looks_like_lines(value) {
            (value.to_owned(), "the value".to_owned())
        } else {
            let path = value.trim();
            let text = std::fs::read_to_string(Path::new(path))
                .map_err(|error| TrustedKeysError::Unreadable { path: path.to_owned(), reason: error.to_string() })?;
            (text, format!("the file {path}"))
        };
        let mut entries = Vec::new();
        for (index, line) in text.lines().enumerate() {
            if let Some(entry) = parse_line(line, index + 1, &origin)? {
                entries.push(entry);
            }
        }
        if entries.is_empty() {
            return Err(TrustedKeysError::NoKeys { origin });
        }
        Ok(Self { entries })
    }

    /// The set of one plain public key, with no restriction.
    pub fn of_key(key: PublicKey) -> Self {
        Self { entries: vec![TrustedKey { line: 1, key, principals: Vec::new(), namespaces: None, valid_after: None, valid_before: None }] }
    }

    /// Whether the value was set but blank: every entry is then refused ([`Refusal::NoTrustedKeys`]).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Checks that `armored` (an SSHSIG's text) signs exactly `message` for the namespace
    /// `s3cache`, by a trusted key whose line allows that namespace and is valid at `at`.
    pub fn verify(&self, message: &[u8], armored: &str, at: SystemTime) -> Result<Signer, Refusal> {
        if self.entries.is_empty() {
            return Err(Refusal::NoTrustedKeys);
        }
        if armored.trim().is_empty() {
            return Err(Refusal::NotSigned);
        }
        let signature = SshSig::from_pem(armored.trim()).map_err(|error| Refusal::Malformed { reason: error.to_string() })?;
        let fingerprint = fingerprint(signature.public_key());
        let candidates: Vec<&TrustedKey> = self.entries.iter().filter(|entry| entry.key.key_data() == signature.public_key()).collect();
        let Some(first) = candidates.first() else {
            return Err(Refusal::UntrustedKey { fingerprint });
        };
        if signature.namespace() != NAMESPACE {
            return Err(Refusal::WrongNamespace { fingerprint, namespace: signature.namespace().to_owned() });
        }
        if !signature.public_key().is_ed25519() {
            return Err(Refusal::Malformed {
                reason: format!("signed by {fingerprint}, an {} key; s3cache verifies ed25519 signatures only", signature.algorithm()),
            });
        }
        first.key.verify(NAMESPACE, message, &signature).map_err(|_| Refusal::Mismatch { fingerprint: fingerprint.clone() })?;
        let mut refusals = candidates.iter().map(|entry| entry.allows(&fingerprint, at));
        let first_refusal = match refusals.next().expect("one candidate at least") {
            Ok(signer) => return Ok(signer),
            Err(refusal) => refusal,
        };
        refusals.find_map(Result::ok).ok_or(first_refusal)
    }
}

impl TrustedKey {
    /// This line's signer, if it allows the namespace `s3cache` at `at`.
    fn allows(&self, fingerprint: &str, at: SystemTime) -> Result<Signer, Refusal> {
        if let Some((written, patterns)) = &self.namespaces
            && !matches_pattern_list(patterns, NAMESPACE)
        {
            return Err(Refusal::NamespaceNotAllowed { fingerprint: fingerprint.to_owned(), line: self.line, namespaces: written.clone() });
        }
        if let Some((written, after)) = &self.valid_after
            && at < *after
        {
            return Err(Refusal::NotYetValid { fingerprint: fingerprint.to_owned(), line: self.line, valid_after: written.clone() });
        }
        if let Some((written, before)) = &self.valid_before
            && at > *before
        {
            return Err(Refusal::Expired { fingerprint: fingerprint.to_owned(), line: self.line, valid_before: written.clone() });
        }
        Ok(Signer { fingerprint: fingerprint.to_owned(), principals: self.principals.clone(), comment: self.key.comment().to_owned() })
    }
}

/// Whether a `--trusted-keys` value is the lines themselves rather than a path (module doc).
fn looks_like_lines(value: &str) -> bool {
    value.contains('\n') || value.trim_start().starts_with('#') || value.split_whitespace().any(is_key_type)
}

/// Whether `word` is an OpenSSH public key type (`ssh-ed25519`, `ecdsa-sha2-nistp256`, `sk-…`).
fn is_key_type(word: &str) -> bool {
    word.starts_with("ssh-") || word.starts_with("ecdsa-sha2-") || word.starts_with("sk-")
}

/// One line: `None` for a blank line or a comment.
fn parse_line(line: &str, number: usize, origin: &str) -> Result<Option<TrustedKey>, TrustedKeysError> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let bad_options = |reason| TrustedKeysError::BadOptions { origin: origin.to_owned(), line: number, reason };
    let first = line.split_whitespace().next().unwrap_or_default();
    // A plain key line starts with the key type; an allowed_signers line with its principals, then
    // its options unless the key type comes next.
    let (principals, options, key_text) = if is_key_type(first) {
        (Vec::new(), "", line)
    } else {
        let rest = line[first.len()..].trim_start();
        let (options, key_text) =
            if rest.split_whitespace().next().is_some_and(is_key_type) { ("", rest) } else { split_options(rest).map_err(bad_options)? };
        (first.split(',').map(str::to_owned).collect(), options, key_text)
    };
    let key = PublicKey::from_openssh(key_text).map_err(|error| TrustedKeysError::BadKey {
        origin: origin.to_owned(),
        line: number,
        reason: error.to_string(),
    })?;
    let mut entry = TrustedKey { line: number, key, principals, namespaces: None, valid_after: None, valid_before: None };
    for option in split_unquoted(options, ',').map_err(bad_options)? {
        let (name, value) = match option.split_once('=') {
            Some((name, value)) => (name, Some(dequote(value))),
            None => (option, None),
        };
        let time = |value: Option<&str>| {
            let value = value.unwrap_or_default();
            parse_time(value).map(|time| (value.to_owned(), time)).ok_or_else(|| TrustedKeysError::BadTime {
                origin: origin.to_owned(),
                line: number,
                option: name.to_owned(),
                value: value.to_owned(),
            })
        };
        match name.to_ascii_lowercase().as_str() {
            "cert-authority" => return Err(TrustedKeysError::CertAuthority { origin: origin.to_owned(), line: number }),
            "namespaces" => {
                let written = value.unwrap_or_default();
                entry.namespaces = Some((written.to_owned(), written.split(',').map(str::to_owned).collect()));
            }
            "valid-after" => entry.valid_after = Some(time(value)?),
            "valid-before" => entry.valid_before = Some(time(value)?),
            _ => return Err(TrustedKeysError::UnknownOption { origin: origin.to_owned(), line: number, option: name.to_owned() }),
        }
    }
    Ok(Some(entry))
}

/// Splits `options key…` at the first whitespace outside double quotes.
fn split_options(text: &str) -> Result<(&str, &str), String> {
    let mut quoted = false;
    for (at, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => return Ok((&text[..at], text[at..].trim_start())),
            _ => {}
        }
    }
    Err(if quoted { "a quote is not closed".to_owned() } else { "no public key after the options".to_owned() })
}

/// Splits at each `separator` outside double quotes.
fn split_unquoted(text: &str, separator: char) -> Result<Vec<&str>, String> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let (mut parts, mut start, mut quoted) = (Vec::new(), 0, false);
    for (at, c) in text.char_indices() {
        if c == '"' {
            quoted = !quoted;
        } else if c == separator && !quoted {
            parts.push(&text[start..at]);
            start = at + c.len_utf8();
        }
    }
    if quoted {
        return Err("a quote is not closed".to_owned());
    }
    parts.push(&text[start..]);
    Ok(parts)
}

/// `"value"` → `value`; an unquoted value as it is.
fn dequote(value: &str) -> &str {
    value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value)
}

/// `YYYYMMDD[HHMM[SS]]`, optionally ending in `Z`, as `ssh-keygen` reads `valid-after`/`valid-before`.
/// Read as UTC with or without the `Z`: ssh-keygen reads a time without `Z` in the machine's zone,
/// which on CI runners is UTC; a zone that differs per runner would make the window differ too.
fn parse_time(value: &str) -> Option<SystemTime> {
    let digits = value.strip_suffix(['Z', 'z']).unwrap_or(value);
    if !digits.bytes().all(|b| b.is_ascii_digit()) || ![8, 12, 14].contains(&digits.len()) {
        return None;
    }
    let field = |from: usize, to: usize| digits.get(from..to).map_or(Some(0), |s| s.parse::<u8>().ok());
    let year: i32 = digits[..4].parse().ok()?;
    let date = time::Date::from_calendar_date(year, time::Month::try_from(field(4, 6)?).ok()?, field(6, 8)?).ok()?;
    let clock = time::Time::from_hms(field(8, 10)?, field(10, 12)?, field(12, 14)?).ok()?;
    let seconds = time::PrimitiveDateTime::new(date, clock).assume_utc().unix_timestamp();
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).ok()?))
}

/// OpenSSH's `match_pattern_list`: a name matches if a pattern (`*`, `?` wildcards) matches it and
/// no negated pattern (`!pattern`) does.
fn matches_pattern_list(patterns: &[String], name: &str) -> bool {
    let mut matched = false;
    for pattern in patterns {
        match pattern.strip_prefix('!') {
            Some(negated) if matches_pattern(negated.as_bytes(), name.as_bytes()) => return false,
            Some(_) => {}
            None => matched |= matches_pattern(pattern.as_bytes(), name.as_bytes()),
        }
    }
    matched
}

/// A glob with `*` (any run) and `?` (any one byte).
fn matches_pattern(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.split_first(), name.split_first()) {
        (None, None) => true,
        (Some((b'*', rest)), _) => matches_pattern(rest, name) || (!name.is_empty() && matches_pattern(pattern, &name[1..])),
        (Some((b'?', rest)), Some((_, name_rest))) => matches_pattern(rest, name_rest),
        (Some((p, rest)), Some((n, name_rest))) if p == n => matches_pattern(rest, name_rest),
        _ => false,
    }
}
