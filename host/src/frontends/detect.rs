//! Which dialect a plugin image's run speaks. A plugin image runs the binary with no arguments and
//! passes its step's settings in the environment; `s3cache plugin` does the same on purpose.
//!
//! - `S3CACHE_PLUGIN` names the dialect outright (`drone-cache`, `harness`, `drone-s3-cache`,
//!   `woodpecker-cache`, `vela`, `github`).
//! - `INPUT_*` with `GITHUB_ACTIONS=true`: the GitHub action's restore step (its Docker entrypoint).
//! - `PARAMETER_*`: vela-s3-cache.
//! - `PLUGIN_*` (Drone, Woodpecker, Harness): Woodpecker's cache plugin when `action` is `download`,
//!   `upload` or `clear`; drone-s3-cache when a setting only it has is set (`mode`, `root`, `path`,
//!   `filename`, `flush_age`, ...); otherwise meltwater drone-cache, as Harness's Save/Restore Cache S3
//!   steps when the runner's `HARNESS_*` variables are there.

use crate::env_vars::{self, ci, plugins};
use crate::frontends::Invocation;
use crate::frontends::plugins::{drone_cache, drone_s3_cache, vela, woodpecker};

/// A front end a plugin run can speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// The GitHub action's Docker entrypoint (`s3cache github-action restore`).
    GithubAction,
    /// meltwater drone-cache, or Harness's Save/Restore Cache S3 steps.
    DroneCache(drone_cache::Flavour),
    DroneS3Cache,
    WoodpeckerCache,
    Vela,
}

impl Dialect {
    /// How the first log line names it.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::GithubAction => "the GitHub action",
            Dialect::DroneCache(drone_cache::Flavour::DroneCache) => "meltwater drone-cache",
            Dialect::DroneCache(drone_cache::Flavour::Harness) => "Harness Save/Restore Cache S3",
            Dialect::DroneS3Cache => "drone-s3-cache",
            Dialect::WoodpeckerCache => "Woodpecker's S3 cache plugin",
            Dialect::Vela => "vela-s3-cache",
        }
    }

    /// The step's command line.
    pub fn invocation(self, env: &dyn Fn(&str) -> Option<String>) -> Result<Invocation, String> {
        match self {
            Dialect::GithubAction => crate::frontends::github::invocation(crate::frontends::github::Step::Restore, env),
            Dialect::DroneCache(flavour) => drone_cache::invocation(flavour, env),
            Dialect::DroneS3Cache => drone_s3_cache::invocation(env),
            Dialect::WoodpeckerCache => woodpecker::invocation(env),
            Dialect::Vela => vela::invocation(env),
        }
    }
}

/// What was recognized, and from what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    pub dialect: Dialect,
    /// The CI the variables come from (`Drone`, `Woodpecker`, `Harness`, `Vela`, `GitHub Actions`).
    pub ci: &'static str,
    /// What gave it away, for the log.
    pub evidence: String,
}

impl Detected {
    /// The first log line of a plugin run.
    pub fn describe(&self) -> String {
        format!("s3cache {}: running as {} on {} ({})", env!("CARGO_PKG_VERSION"), self.dialect.name(), self.ci, self.evidence)
    }
}

fn is_harness(env: &dyn Fn(&str) -> Option<String>) -> bool {
    plugins::HARNESS_MARKERS.iter().any(|name| env(name).is_some_and(|v| !v.is_empty()))
}

/// The CI whose variables these are.
fn which_ci(env: &dyn Fn(&str) -> Option<String>) -> &'static str {
    let set = |name: &str| env(name).is_some_and(|v| !v.is_empty());
    if is_harness(env) {
        "Harness"
    } else if env(ci::CI).as_deref() == Some("woodpecker") {
        "Woodpecker"
    } else if set(ci::DRONE) {
        "Drone"
    } else if set(ci::VELA) || set(ci::VELA_BUILD_EVENT) {
        "Vela"
    } else if env(env_vars::GITHUB_ACTIONS).as_deref() == Some("true") {
        "GitHub Actions"
    } else {
        "an unrecognized CI"
    }
}

/// Recognizes the dialect from the environment (`env`) and the names of the variables set
/// (`names`); `None` when nothing looks like a plugin step.
pub fn detect(env: &dyn Fn(&str) -> Option<String>, names: &[String]) -> Result<Option<Detected>, String> {
    let has_prefix = |prefix: &str| names.iter().any(|n| n.starts_with(prefix) && env(n).is_some_and(|v| !v.is_empty()));
    let flavour = if is_harness(env) { drone_cache::Flavour::Harness } else { drone_cache::Flavour::DroneCache };
    let found = |dialect: Dialect, evidence: String| Ok(Some(Detected { dialect, ci: which_ci(env), evidence }));
    if let Some(named) = env(plugins::S3CACHE_PLUGIN).filter(|v| !v.is_empty()) {
        let dialect = match named.as_str() {
            "drone-cache" => Dialect::DroneCache(drone_cache::Flavour::DroneCache),
            "harness" => Dialect::DroneCache(drone_cache::Flavour::Harness),
            "drone-s3-cache" => Dialect::DroneS3Cache,
            "woodpecker-cache" => Dialect::WoodpeckerCache,
            "vela" => Dialect::Vela,
            "github" => Dialect::GithubAction,
            _ => {
                return Err(format!(
                    "S3CACHE_PLUGIN must be drone-cache, harness, drone-s3-cache, woodpecker-cache, vela or github, not {named:?}"
                ));
            }
        };
        return found(dialect, format!("{}={named}", plugins::S3CACHE_PLUGIN));
    }
    if env(env_vars::GITHUB_ACTIONS).as_deref() == Some("true") && has_prefix(env_vars::GITHUB_INPUT_PREFIX) {
        return found(Dialect::GithubAction, "INPUT_* settings with GITHUB_ACTIONS=true".into());
    }
    if has_prefix(plugins::PARAMETER_PREFIX) {
        return found(Dialect::Vela, "PARAMETER_* settings".into());
    }
    if !has_prefix(plugins::PLUGIN_PREFIX) {
        return Ok(None);
    }
    if woodpecker::recognizes(env) {
        return found(Dialect::WoodpeckerCache, "PLUGIN_* settings with PLUGIN_ACTION".into());
    }
    if drone_cache::recognizes(env) {
        return found(Dialect::DroneCache(flavour), "PLUGIN_* settings of drone-cache".into());
    }
    if drone_s3_cache::recognizes(env) {
        return found(Dialect::DroneS3Cache, "PLUGIN_* settings of drone-s3-cache".into());
    }
    found(Dialect::DroneCache(flavour), "PLUGIN_* settings; set S3CACHE_PLUGIN=drone-s3-cache if they are drone-s3-cache's".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect_in(pairs: &[(&str, &str)]) -> Option<Detected> {
        let names: Vec<String> = pairs.iter().map(|(k, _)| k.to_string()).collect();
        detect(&env_vars::fixed(pairs), &names).unwrap()
    }

    fn dialect(pairs: &[(&str, &str)]) -> Option<Dialect> {
        detect_in(pairs).map(|d| d.dialect)
    }

    /// Each convention and each plugin's own settings pick the dialect; nothing picks nothing.
    #[test]
    fn recognizes_each_dialect() {
        use drone_cache::Flavour::*;
        assert_eq!(dialect(&[("HOME", "/h")]), None);
        assert_eq!(dialect(&[("INPUT_PATH", "x")]), None, "INPUT_* outside GitHub Actions");
        assert_eq!(dialect(&[("GITHUB_ACTIONS", "true"), ("INPUT_PATH", "x")]), Some(Dialect::GithubAction));
        assert_eq!(dialect(&[("PARAMETER_ACTION", "restore")]), Some(Dialect::Vela));
        assert_eq!(
            dialect(&[("DRONE", "true"), ("PLUGIN_RESTORE", "true"), ("PLUGIN_BUCKET", "b")]),
            Some(Dialect::DroneCache(DroneCache))
        );
        assert_eq!(
            dialect(&[("HARNESS_BUILD_ID", "1"), ("PLUGIN_RESTORE", "true"), ("PLUGIN_BUCKET", "b")]),
            Some(Dialect::DroneCache(Harness))
        );
        assert_eq!(dialect(&[("DRONE", "true"), ("PLUGIN_MODE", "restore"), ("PLUGIN_ROOT", "b")]), Some(Dialect::DroneS3Cache));
        assert_eq!(dialect(&[("CI", "woodpecker"), ("PLUGIN_ACTION", "upload"), ("PLUGIN_BUCKET", "b")]), Some(Dialect::WoodpeckerCache));
        assert_eq!(dialect(&[("PLUGIN_RESTORE", "true"), ("PLUGIN_MOUNT", "x")]), Some(Dialect::DroneCache(DroneCache)));
        assert_eq!(dialect(&[("S3CACHE_PLUGIN", "drone-s3-cache"), ("PLUGIN_RESTORE", "true")]), Some(Dialect::DroneS3Cache));
        let names = vec!["S3CACHE_PLUGIN".to_string()];
        assert!(detect(&env_vars::fixed(&[("S3CACHE_PLUGIN", "gitlab")]), &names).unwrap_err().contains("S3CACHE_PLUGIN must be"));
    }

    /// The first log line names the dialect and the CI.
    #[test]
    fn describes_itself() {
        let line = detect_in(&[("CI", "woodpecker"), ("PLUGIN_REBUILD", "true"), ("PLUGIN_CACHE_KEY", "k")]).unwrap().describe();
        assert!(line.contains("running as meltwater drone-cache on Woodpecker"), "{line}");
    }
}
