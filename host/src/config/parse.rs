//! One parser per kind of setting value: booleans, durations, sizes and lists. Every front end and
//! the CLI parse through these, so `true`, `14d` or `10GB` mean the same everywhere, and a bad value
//! is an error that names the setting and repeats the value.

use std::time::Duration;

/// A setting whose value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting} must be {expected}, not {value:?}")]
pub struct SettingError {
    /// The setting as the user wrote it (`PLUGIN_OVERRIDE`, `--older-than`, input `lookup-only`).
    pub setting: String,
    /// What would have been accepted.
    pub expected: String,
    /// The value given.
    pub value: String,
}

impl SettingError {
    /// The error for `value` of `setting`, which must be `expected`.
    pub fn new(setting: &str, expected: &str, value: &str) -> Self {
        Self { setting: setting.to_owned(), expected: expected.to_owned(), value: value.to_owned() }
    }
}

/// `true` or `false`, in any case, surrounding spaces ignored. Nothing else: `yes`, `1` or `on` are
/// errors, so that a typo never silently means `false`.
pub fn boolean(setting: &str, value: &str) -> Result<bool, SettingError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(SettingError::new(setting, "true or false", value)),
    }
}

/// A duration: a number with a unit (`14d`, `336h`, `90m`, `30s`, `1h30m`, Go's `336h0m0s`), or a bare
/// number of days (drone-s3-cache's `flush_age`).
pub fn duration(setting: &str, value: &str) -> Result<Duration, SettingError> {
    let text = value.trim();
    if let Ok(days) = text.parse::<u64>() {
        return days.checked_mul(86_400).map(Duration::from_secs).ok_or_else(|| SettingError::new(setting, "a duration", value));
    }
    humantime::parse_duration(text)
        .map_err(|_| SettingError::new(setting, "a duration such as 14d, 336h, 90m or 30s (a bare number is days)", value))
}

/// A whole number of seconds as [`duration`] reads it back, in the largest unit that divides it
/// (`1d`, `12h`, `90m`, `0s`): how a default duration is shown (`--help`'s `[default: 12h]`).
pub fn duration_text(value: Duration) -> String {
    let secs = value.as_secs();
    let (count, unit) = [(86_400, "d"), (3600, "h"), (60, "m")]
        .into_iter()
        .find(|(unit, _)| secs > 0 && secs.is_multiple_of(*unit))
        .map_or((secs, "s"), |(size, unit)| (secs / size, unit));
    format!("{count}{unit}")
}

/// A size in bytes: `10GB` (powers of 1000), `500MiB` (powers of 1024), or a bare number of bytes.
pub fn size(setting: &str, value: &str) -> Result<u64, SettingError> {
    value
        .trim()
        .parse::<bytesize::ByteSize>()
        .map(|size| size.as_u64())
        .map_err(|_| SettingError::new(setting, "a size such as 10GB, 500MiB or 1048576", value))
}

/// A comma-separated list (how CI plugin conventions pass lists), items trimmed, empty ones dropped.
pub fn list(value: &str) -> Vec<String> {
    value.split(',').map(str::trim).filter(|item| !item.is_empty()).map(str::to_owned).collect()
}

/// Adapters for clap's `value_parser`, so flags parse exactly like settings.
pub mod flags {
    use std::time::Duration;

    use super::SettingError;

    /// `--older-than`.
    pub fn duration(value: &str) -> Result<Duration, SettingError> {
        super::duration("the duration", value)
    }

    /// `--max-size`.
    pub fn size(value: &str) -> Result<u64, SettingError> {
        super::size("the size", value)
    }

    /// Boolean flags that also take a value (`--anonymous=false`) and their variables.
    pub fn boolean(value: &str) -> Result<bool, SettingError> {
        super::boolean("the value", value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only `true` and `false` are booleans; the error names the setting and the value.
    #[test]
    fn booleans() {
        assert_eq!(boolean("PLUGIN_OVERRIDE", " TRUE "), Ok(true));
        assert_eq!(boolean("PLUGIN_OVERRIDE", "false"), Ok(false));
        let err = boolean("PLUGIN_OVERRIDE", "yes please").unwrap_err();
        assert_eq!(err.to_string(), r#"PLUGIN_OVERRIDE must be true or false, not "yes please""#);
        assert!(boolean("x", "1").is_err() && boolean("x", "").is_err());
    }

    /// Units, Go-style compound durations and bare days all parse; nonsense names the setting.
    #[test]
    fn durations() {
        let hours = |h: u64| Duration::from_secs(h * 3600);
        assert_eq!(duration("age", "14d"), Ok(hours(336)));
        assert_eq!(duration("age", "336h"), Ok(hours(336)));
        assert_eq!(duration("age", "336h0m0s"), Ok(hours(336)));
        assert_eq!(duration("age", "90m"), Ok(Duration::from_secs(5400)));
        assert_eq!(duration("age", "30s"), Ok(Duration::from_secs(30)));
        assert_eq!(duration("age", "1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(duration("flush_age", "30"), Ok(hours(720)));
        let err = duration("PLUGIN_FLUSH_AGE", "soon").unwrap_err();
        assert_eq!(err.setting, "PLUGIN_FLUSH_AGE");
        assert!(err.to_string().ends_with(r#"not "soon""#), "{err}");
        assert!(duration("age", "-3d").is_err() && duration("age", "").is_err());
    }

    /// A duration is written in its largest whole unit and reads back as itself.
    #[test]
    fn duration_texts() {
        for (secs, text) in [(86_400, "1d"), (43_200, "12h"), (5400, "90m"), (90, "90s"), (0, "0s"), (90_000, "25h")] {
            assert_eq!(duration_text(Duration::from_secs(secs)), text);
            assert_eq!(duration("d", text), Ok(Duration::from_secs(secs)));
        }
    }

    /// Decimal and binary units are distinct; a bare number is bytes.
    #[test]
    fn sizes() {
        assert_eq!(size("max", "10GB"), Ok(10_000_000_000));
        assert_eq!(size("max", "500MiB"), Ok(500 << 20));
        assert_eq!(size("max", "1048576"), Ok(1 << 20));
        assert_eq!(size("max", "1.5 KiB"), Ok(1536));
        assert_eq!(size("--max-size", "lots").unwrap_err().setting, "--max-size");
    }

    /// Lists are comma-separated with blanks dropped.
    #[test]
    fn lists() {
        assert_eq!(list(" node_modules, .npm ,,"), vec!["node_modules", ".npm"]);
        assert!(list("").is_empty());
    }
}
