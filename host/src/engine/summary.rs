//! The summary of a save or restore: one typed record, built from the outcome, that every front end
//! renders its own way (`--summary-json`, GitHub outputs and step summary, a plugin's log line).

use std::time::Duration;

use serde::Serialize;

use crate::engine::{RestoreOutcome, SaveOutcome};
use crate::report::Reporter;

/// What a save or restore did, in the terms of `--summary-json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// `save` or `restore`.
    pub operation: &'static str,
    /// `saved`, `already-exists`, `nothing-to-save`, `skipped`, `failed`, `hit`, `lookup-hit`, `miss`.
    pub outcome: &'static str,
    /// For restores: whether the primary key itself was found, as actions/cache's `cache-hit` output
    /// means it. A restore-key match is `outcome: hit` with `cache_hit: false`; see `exact` and
    /// `matched_key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_hit: Option<bool>,
    /// For hits: whether the primary key matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact: Option<bool>,
    /// The rendered primary key (absent when rendering failed).
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elapsed_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throughput_mb_s: Option<f64>,
    /// The scope written to (saves) or read from (hits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Why nothing was saved or restored, secrets scrubbed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// HTTP requests this process sent.
    pub http_requests: u64,
    /// The store, as `s3://bucket/prefix/` or `file:///dir`.
    pub store: String,
}

/// Megabytes (10^6 bytes) per second, rounded to two decimals.
fn throughput(bytes: u64, elapsed: Duration) -> f64 {
    let exact = bytes as f64 / 1e6 / elapsed.as_secs_f64().max(1e-9);
    (exact * 100.0).round() / 100.0
}

impl Summary {
    /// The summary of a save that wrote to `scope`, its reasons scrubbed of `reporter`'s secrets.
    pub fn of_save(outcome: &SaveOutcome, scope: &str, reporter: &Reporter) -> Self {
        let base = Summary { operation: "save", scope: Some(scope.to_owned()), ..Summary::default() };
        let scrub = |reason: &str| Some(reporter.scrub(reason));
        match outcome {
            SaveOutcome::Saved { key, bytes, members, elapsed, sha256, .. } => Summary {
                outcome: "saved",
                key: Some(key.clone()),
                bytes: Some(*bytes),
                members: Some(*members),
                sha256: Some(sha256.clone()),
                elapsed_ms: Some(elapsed.as_millis() as u64),
                throughput_mb_s: Some(throughput(*bytes, *elapsed)),
                ..base
            },
            SaveOutcome::AlreadyExists { key } => Summary { outcome: "already-exists", key: Some(key.clone()), ..base },
            SaveOutcome::NothingToSave { key, .. } => Summary { outcome: "nothing-to-save", key: Some(key.clone()), ..base },
            SaveOutcome::Skipped { key, reason } => Summary { outcome: "skipped", key: key.clone(), reason: scrub(reason), ..base },
            SaveOutcome::Failed { key, reason } => Summary { outcome: "failed", key: key.clone(), reason: scrub(reason), ..base },
            SaveOutcome::Interrupted { key } => Summary { outcome: "interrupted", key: key.clone(), reason: scrub("interrupted"), ..base },
        }
    }

    /// The summary of a restore, its reason scrubbed of `reporter`'s secrets.
    pub fn of_restore(outcome: &RestoreOutcome, reporter: &Reporter) -> Self {
        let base = Summary { operation: "restore", ..Summary::default() };
        match outcome {
            RestoreOutcome::Hit(hit) => Summary {
                outcome: if hit.restored { "hit" } else { "lookup-hit" },
                cache_hit: Some(hit.exact),
                exact: Some(hit.exact),
                key: Some(hit.primary_key.clone()),
                matched_key: Some(hit.matched_key.clone()),
                bytes: Some(hit.bytes),
                members: Some(hit.members),
                sha256: Some(hit.sha256.clone()),
                elapsed_ms: Some(hit.elapsed.as_millis() as u64),
                throughput_mb_s: Some(throughput(hit.bytes, hit.elapsed)),
                scope: Some(hit.scope.clone()),
                ..base
            },
            RestoreOutcome::Miss { primary_key, reason, failed } => Summary {
                outcome: if *failed { "failed" } else { "miss" },
                cache_hit: Some(false),
                key: primary_key.clone(),
                reason: Some(reporter.scrub(reason)),
                ..base
            },
            RestoreOutcome::Interrupted { primary_key } => Summary {
                outcome: "interrupted",
                cache_hit: Some(false),
                key: primary_key.clone(),
                reason: Some("interrupted".into()),
                ..base
            },
        }
    }

    /// Whether the primary key itself was restored.
    pub fn exact_hit(&self) -> bool {
        self.cache_hit == Some(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `throughput_mb_s` has at most two decimals: `0.24`, not `0.24042332396986993`.
    #[test]
    fn throughput_is_rounded_to_two_decimals() {
        assert_eq!(throughput(240_423, Duration::from_secs(1)), 0.24);
        assert_eq!(throughput(1_006_000, Duration::from_millis(1000)), 1.01);
        assert_eq!(throughput(10_000_000, Duration::from_secs(3)), 3.33);
        assert_eq!(serde_json::to_string(&throughput(240_423, Duration::from_secs(1))).unwrap(), "0.24");
    }
}
