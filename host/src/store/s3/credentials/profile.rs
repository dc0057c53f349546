//! Shared config files: `~/.aws/credentials` and `~/.aws/config` (or `AWS_SHARED_CREDENTIALS_FILE`
//! and `AWS_CONFIG_FILE`), the profile named by `AWS_PROFILE` (else `default`).
//!
//! A profile gives static keys, a `credential_process` to run, or a `role_arn` to assume with the
//! credentials of its `source_profile` (followed to a bounded depth, so a cycle is an error).

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{ChainInputs, CredentialError, Credentials, Resolved, remote};
use crate::env_vars;

type Section = HashMap<String, String>;

/// Parses the INI-like format: `[section]`, `key = value`, `#`/`;` comments; indented lines (nested
/// settings such as `s3 =` blocks) are ignored.
fn parse(text: &str, config_file: bool) -> HashMap<String, Section> {
    let mut sections: HashMap<String, Section> = HashMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            // In the config file, profiles other than `default` are written `[profile name]`.
            let name = if config_file { name.strip_prefix("profile ").map(str::trim).unwrap_or(name) } else { name };
            current = Some(name.to_owned());
            sections.entry(name.to_owned()).or_default();
            continue;
        }
        if let (Some(section), Some((key, value))) = (&current, line.split_once('=')) {
            sections.get_mut(section).expect("section exists").insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    sections
}

struct Files {
    credentials: HashMap<String, Section>,
    config: HashMap<String, Section>,
}

impl Files {
    fn load(inputs: &ChainInputs<'_>) -> Self {
        let path = |var: &str, default: &str| inputs.var(var).map(PathBuf::from).or_else(|| inputs.home.as_ref().map(|h| h.join(default)));
        let read = |path: Option<PathBuf>, config: bool| {
            path.and_then(|p| std::fs::read_to_string(p).ok()).map(|t| parse(&t, config)).unwrap_or_default()
        };
        Self {
            credentials: read(path(env_vars::AWS_SHARED_CREDENTIALS_FILE, ".aws/credentials"), false),
            config: read(path(env_vars::AWS_CONFIG_FILE, ".aws/config"), true),
        }
    }

    /// The profile's settings, the credentials file winning over the config file.
    fn profile(&self, name: &str) -> Option<Section> {
        let mut merged = self.config.get(name).cloned();
        if let Some(credentials) = self.credentials.get(name) {
            merged.get_or_insert_with(Section::new).extend(credentials.clone());
        }
        merged
    }
}

/// The profile provider; `None` when the profile does not exist (and `AWS_PROFILE` was not set).
pub(super) fn resolve(inputs: &ChainInputs<'_>) -> Result<Option<Resolved>, CredentialError> {
    let explicit = inputs.var(env_vars::AWS_PROFILE);
    let name = explicit.clone().unwrap_or_else(|| "default".into());
    let files = Files::load(inputs);
    if files.profile(&name).is_none() {
        return match explicit {
            Some(_) => Err(CredentialError::new(format!("profile {name}"), "no such profile in ~/.aws/credentials or ~/.aws/config")),
            None => Ok(None),
        };
    }
    let credentials = profile_credentials(&files, &name, inputs, 0)?;
    Ok(credentials.map(|credentials| Resolved { credentials, source: format!("profile {name}") }))
}

fn profile_credentials(files: &Files, name: &str, inputs: &ChainInputs<'_>, depth: usize) -> Result<Option<Credentials>, CredentialError> {
    let source = format!("profile {name}");
    if depth > 4 {
        return Err(CredentialError::new(source, "source_profile chain is too long or circular"));
    }
    let Some(section) = files.profile(name) else {
        return Err(CredentialError::new(source, "no such profile"));
    };
    if let Some(role_arn) = section.get("role_arn") {
        let source_profile = section
            .get("source_profile")
            .ok_or_else(|| CredentialError::new(&source, "role_arn needs a source_profile (credential_source is not supported)"))?;
        // A source profile's own role_arn is ignored when it has static keys, as in the SDKs.
        let base = if files.profile(source_profile).is_some_and(|s| s.contains_key("aws_access_key_id")) {
            static_keys(&files.profile(source_profile).unwrap_or_default(), &format!("profile {source_profile}"))?
        } else {
            profile_credentials(files, source_profile, inputs, depth + 1)?
        };
        let base = base.ok_or_else(|| CredentialError::new(&source, format!("source_profile {source_profile} has no credentials")))?;
        let session = section.get("role_session_name").cloned().unwrap_or_else(|| "s3cache".into());
        let region = section.get("region").cloned().unwrap_or_else(|| inputs.region.clone());
        return remote::assume_role(inputs, &base, role_arn, &session, section.get("external_id").map(String::as_str), &region)
            .map(Some)
            .map_err(|m| CredentialError::new(&source, m));
    }
    if let Some(command) = section.get("credential_process") {
        return run_process(command).map(Some).map_err(|m| CredentialError::new(&source, format!("credential_process: {m}")));
    }
    static_keys(&section, &source)
}

fn static_keys(section: &Section, source: &str) -> Result<Option<Credentials>, CredentialError> {
    let get = |k: &str| section.get(k).filter(|v| !v.is_empty()).cloned();
    Credentials::from_vars(get, "aws_access_key_id", "aws_secret_access_key", "aws_session_token")
        .map_err(|half| CredentialError::new(source, half.to_string()))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ProcessOutput {
    version: u32,
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

const PROCESS_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs a `credential_process` command through the shell, as the SDKs do on Unix, and reads its JSON.
fn run_process(command: &str) -> Result<Credentials, String> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("could not start: {e}"))?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if started.elapsed() > PROCESS_TIMEOUT {
            let _ = child.kill();
            return Err(format!("no answer within {} s", PROCESS_TIMEOUT.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    child.stdout.take().expect("piped").read_to_string(&mut stdout).map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("exited with {status}"));
    }
    let output: ProcessOutput = serde_json::from_str(&stdout).map_err(|e| format!("unreadable output: {e}"))?;
    if output.version != 1 {
        return Err(format!("unsupported Version {}", output.version));
    }
    Ok(Credentials {
        access_key_id: output.access_key_id,
        secret_access_key: output.secret_access_key,
        session_token: output.session_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[profile x]` in the config file, `[x]` in the credentials file, comments and nested blocks.
    #[test]
    fn parses_both_file_flavours() {
        let config = parse(
            "[default]\nregion = eu-west-1\n[profile ci]\nrole_arn = arn:aws:iam::1:role/r\ns3 =\n  addressing_style = path\n# comment\nsource_profile=base\n",
            true,
        );
        assert_eq!(config["ci"]["role_arn"], "arn:aws:iam::1:role/r");
        assert_eq!(config["ci"]["source_profile"], "base");
        assert!(!config["ci"].contains_key("addressing_style"));
        let credentials = parse("[base]\naws_access_key_id = AK\naws_secret_access_key = SK\n", false);
        assert_eq!(credentials["base"]["aws_secret_access_key"], "SK");
    }

    /// credential_process output is read; a failing command is an error.
    #[test]
    fn runs_credential_processes() {
        let creds = run_process(r#"echo '{"Version": 1, "AccessKeyId": "AK", "SecretAccessKey": "SK", "SessionToken": "T"}'"#).unwrap();
        assert_eq!((creds.access_key_id.as_str(), creds.session_token.as_deref()), ("AK", Some("T")));
        assert!(run_process("exit 3").unwrap_err().contains("exit"));
    }
}
