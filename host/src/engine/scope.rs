//! Cache scopes: the branch isolation an object store does not have.
//!
//! Every entry lives under a scope, `<prefix>/<scope>/<key>.tar.zst`. Saves write only to the current
//! ref's scope; restores read the current ref's scope, then the pull request's base branch, then the
//! default branch, so a feature branch never sees a sibling's entries and nothing a pull request writes
//! can reach the default branch. Scopes come from the CI's own variables (never from key text), and
//! a ref becomes a scope name through [`scope_name`]: readable, sanitized, and suffixed with a hash of
//! the exact ref, so refs that sanitize alike still differ.
//!
//! Jobs that run code from outside the repository with the repository's credentials (a pull request
//! from a fork, `pull_request_target`, `workflow_run`) are read-only unless the user overrides it, which
//! is logged as a warning.

use sha2::{Digest, Sha256};

use crate::env_vars::GITHUB_ACTIONS;
use crate::env_vars::ci::*;

/// The scope of runs outside any recognised CI (a developer's machine).
pub const LOCAL_SCOPE: &str = "local";
/// Longest readable part of a scope name, before its hash.
const READABLE_CHARS: usize = 48;

/// Where a run may read and write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopePlan {
    /// Scopes searched by restores, in order, without duplicates; the first is the run's own.
    pub read: Vec<String>,
    /// The run's own scope, where saves go.
    pub write: String,
    /// Why saves are refused, when they are.
    pub read_only: Option<String>,
    /// Where the scopes came from, for logs.
    pub source: String,
}

impl ScopePlan {
    /// Read and write one scope, e.g. [`LOCAL_SCOPE`] or a runner's own naming.
    pub fn single(scope: &str) -> Self {
        Self { read: vec![scope.to_owned()], write: scope.to_owned(), read_only: None, source: "fixed".into() }
    }
}

/// A ref (e.g. `refs/heads/feature/x`) as an object-key segment: `heads-feature-x-<8 hex of SHA-256>`.
pub fn scope_name(reference: &str) -> String {
    let readable = reference.strip_prefix("refs/").unwrap_or(reference);
    let mut name = String::new();
    for c in readable.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' };
        if !(c == '-' && (name.is_empty() || name.ends_with('-'))) {
            name.push(c);
        }
        if name.len() >= READABLE_CHARS {
            break;
        }
    }
    let name = name.trim_matches('-');
    let hash = hex::encode(&Sha256::digest(reference.as_bytes())[..4]);
    if name.is_empty() { hash } else { format!("{name}-{hash}") }
}

fn branch_ref(branch: &str) -> String {
    if branch.starts_with("refs/") { branch.to_owned() } else { format!("refs/heads/{branch}") }
}

/// The CI facts a plan is made from.
#[derive(Debug, Default, Clone)]
pub struct CiRefs {
    /// Which CI, for logs.
    pub ci: &'static str,
    /// The run's own ref.
    pub current: Option<String>,
    /// A pull request's target branch.
    pub base: Option<String>,
    /// The repository's default branch.
    pub default: Option<String>,
    /// Why this run is untrusted (a fork's pull request, `pull_request_target`...).
    pub untrusted: Option<String>,
}

/// Reads the run's refs from the CI's variables: GitHub Actions (with its event payload), GitLab CI,
/// Drone, Woodpecker and Harness (which share Drone's names), and Vela. Drone, Woodpecker and Harness
/// do not tell a fork's pull request from the repository's own, so their pull requests are read-only
/// (override with `--allow-untrusted-save`); Vela says so in `VELA_PULL_REQUEST_FORK`. `event` is the parsed `GITHUB_EVENT_PATH` file, when there is one.
pub fn ci_refs(env: &dyn Fn(&str) -> Option<String>, event: Option<&serde_json::Value>) -> CiRefs {
    let var = |name: &str| env(name).filter(|v| !v.is_empty());
    if var(GITHUB_ACTIONS).as_deref() == Some("true") {
        let text = |path: &[&str]| {
            let mut value = event?;
            for key in path {
                value = value.get(key)?;
            }
            value.as_str().map(str::to_owned)
        };
        let event_name = var(GITHUB_EVENT_NAME).unwrap_or_default();
        let head_repo = text(&["pull_request", "head", "repo", "full_name"]);
        let this_repo = text(&["repository", "full_name"]).or_else(|| var(GITHUB_REPOSITORY));
        let untrusted = match event_name.as_str() {
            "pull_request_target" | "workflow_run" => Some(format!("a `{event_name}` run executes with the base repository's access")),
            "pull_request" | "pull_request_review" | "pull_request_review_comment" if head_repo.is_some() && head_repo != this_repo => {
                Some(format!("a pull request from the fork {}", head_repo.unwrap_or_default()))
            }
            _ => None,
        };
        return CiRefs {
            ci: "GitHub Actions",
            current: var(GITHUB_REF),
            base: var(GITHUB_BASE_REF).map(|b| branch_ref(&b)),
            default: text(&["repository", "default_branch"]).map(|b| branch_ref(&b)),
            untrusted,
        };
    }
    if var(GITLAB_CI).is_some() {
        let source = var(CI_MERGE_REQUEST_SOURCE_PROJECT_ID);
        let untrusted = (source.is_some() && source != var(CI_MERGE_REQUEST_PROJECT_ID)).then(|| "a merge request from a fork".to_owned());
        return CiRefs {
            ci: "GitLab CI",
            current: var(CI_COMMIT_REF_NAME).map(|b| branch_ref(&b)),
            base: var(CI_MERGE_REQUEST_TARGET_BRANCH_NAME).map(|b| branch_ref(&b)),
            default: var(CI_DEFAULT_BRANCH).map(|b| branch_ref(&b)),
            untrusted,
        };
    }
    if var(SEMAPHORE).as_deref() == Some("true") {
        let pull_request = var(SEMAPHORE_GIT_REF_TYPE).as_deref() == Some("pull-request");
        let target = var(SEMAPHORE_GIT_BRANCH);
        let head_repo = var(SEMAPHORE_GIT_PR_SLUG);
        let untrusted = (pull_request && head_repo.is_some() && head_repo != var(SEMAPHORE_GIT_REPO_SLUG))
            .then(|| format!("a pull request from the fork {}", head_repo.clone().unwrap_or_default()));
        let current = if pull_request {
            var(SEMAPHORE_GIT_PR_BRANCH).map(|b| format!("refs/pull-source/{b}"))
        } else {
            var(SEMAPHORE_GIT_REF).or_else(|| target.as_deref().map(branch_ref))
        };
        return CiRefs {
            ci: "Semaphore",
            current,
            base: if pull_request { target.as_deref().map(branch_ref) } else { None },
            default: None,
            untrusted,
        };
    }
    let harness = crate::env_vars::plugins::HARNESS_MARKERS.iter().any(|name| var(name).is_some());
    let woodpecker = var(CI).as_deref() == Some("woodpecker");
    if var(DRONE).is_some() || woodpecker || harness {
        let ci = if harness {
            "Harness"
        } else if woodpecker {
            "Woodpecker"
        } else {
            "Drone"
        };
        // Woodpecker's own names first there, Drone's (which Harness sets too) elsewhere.
        let pick = |drone: &str, woodpecker_name: &str| {
            if woodpecker { var(woodpecker_name).or_else(|| var(drone)) } else { var(drone).or_else(|| var(woodpecker_name)) }
        };
        let pull_request = pick(DRONE_BUILD_EVENT, CI_PIPELINE_EVENT).is_some_and(|e| e == "pull_request");
        let current =
            if pull_request { pick(DRONE_SOURCE_BRANCH, CI_COMMIT_SOURCE_BRANCH).map(|b| format!("refs/pull-source/{b}")) } else { None }
                .or_else(|| pick(DRONE_TAG, CI_COMMIT_TAG).map(|t| format!("refs/tags/{t}")))
                .or_else(|| pick(DRONE_BRANCH, CI_COMMIT_BRANCH).map(|b| branch_ref(&b)));
        // None of these CIs says whether a pull request comes from a fork, so none is trusted to save.
        let untrusted = pull_request.then(|| format!("a pull request on {ci}, which does not say whether it comes from a fork"));
        return CiRefs {
            ci,
            current,
            base: if pull_request { pick(DRONE_TARGET_BRANCH, CI_COMMIT_TARGET_BRANCH).map(|b| branch_ref(&b)) } else { None },
            default: pick(DRONE_REPO_BRANCH, CI_REPO_DEFAULT_BRANCH).map(|b| branch_ref(&b)),
            untrusted,
        };
    }
    if var(VELA).is_some() || var(VELA_BUILD_EVENT).is_some() {
        let event = var(VELA_BUILD_EVENT).unwrap_or_default();
        let pull_request = event == "pull_request";
        let current = if pull_request { var(VELA_PULL_REQUEST_SOURCE).map(|b| format!("refs/pull-source/{b}")) } else { None }
            .or_else(|| var(VELA_BUILD_REF).filter(|r| event == "tag" && r.starts_with("refs/tags/")))
            .or_else(|| var(VELA_BUILD_BRANCH).map(|b| branch_ref(&b)));
        let untrusted = match (pull_request, var(VELA_PULL_REQUEST_FORK).as_deref()) {
            (false, _) | (true, Some("false")) => None,
            (true, Some("true")) => Some("a pull request from a fork".to_owned()),
            (true, _) => Some("a pull request on Vela, which does not say whether it comes from a fork".to_owned()),
        };
        return CiRefs {
            ci: "Vela",
            current,
            base: if pull_request { var(VELA_PULL_REQUEST_TARGET).map(|b| branch_ref(&b)) } else { None },
            default: var(VELA_REPO_BRANCH).map(|b| branch_ref(&b)),
            untrusted,
        };
    }
    CiRefs::default()
}

/// The plan for a run: `explicit` (the user's `--scope`) wins over the CI's refs; an untrusted run is
/// read-only unless `allow_untrusted_save`.
pub fn plan(refs: &CiRefs, explicit: Option<&str>, allow_untrusted_save: bool) -> ScopePlan {
    let (write, mut read, source) = match (explicit, &refs.current) {
        (Some(scope), _) => (scope.to_owned(), vec![scope.to_owned()], "--scope".to_owned()),
        (None, Some(current)) => {
            let read = [Some(current), refs.base.as_ref(), refs.default.as_ref()].into_iter().flatten().map(|r| scope_name(r)).collect();
            (scope_name(current), read, format!("{} ref {current}", refs.ci))
        }
        (None, None) => (LOCAL_SCOPE.to_owned(), vec![LOCAL_SCOPE.to_owned()], "no CI ref found".to_owned()),
    };
    let mut seen = std::collections::HashSet::new();
    read.retain(|scope| seen.insert(scope.clone()));
    let read_only = match &refs.untrusted {
        Some(why) if !allow_untrusted_save => Some(format!("{why}; saving is disabled (override with --allow-untrusted-save)")),
        _ => None,
    };
    ScopePlan { read, write, read_only, source }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env_vars::fixed as env;

    /// Names are readable, sanitized and distinct for refs that sanitize alike.
    #[test]
    fn scope_names_are_sanitized_and_hashed() {
        let name = scope_name("refs/heads/feature/x");
        assert!(name.starts_with("heads-feature-x-"), "{name}");
        assert_ne!(scope_name("refs/heads/feature/x"), scope_name("refs/heads/feature-x"));
        for hostile in ["refs/heads/../../main", "refs/heads/a\nb", "refs/heads/*", "refs/heads/é/ü", "/", ""] {
            let name = scope_name(hostile);
            assert!(crate::archive::layout::validate_scope_name(&name).is_ok(), "{hostile:?} -> {name:?}");
            assert!(!name.contains(".."), "{name}");
        }
        assert!(scope_name(&format!("refs/heads/{}", "a".repeat(300))).len() <= READABLE_CHARS + 9);
    }

    /// A pull request reads its own scope, then the base branch, then the default branch; writes its own.
    #[test]
    fn pull_requests_read_base_then_default() {
        let event = serde_json::json!({
            "repository": { "full_name": "o/r", "default_branch": "main" },
            "pull_request": { "head": { "repo": { "full_name": "o/r" } } },
        });
        let vars = env(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_REF", "refs/pull/7/merge"),
            ("GITHUB_BASE_REF", "release"),
            ("GITHUB_EVENT_NAME", "pull_request"),
            ("GITHUB_REPOSITORY", "o/r"),
        ]);
        let plan = plan(&ci_refs(&vars, Some(&event)), None, false);
        assert_eq!(plan.write, scope_name("refs/pull/7/merge"));
        assert_eq!(plan.read, vec![scope_name("refs/pull/7/merge"), scope_name("refs/heads/release"), scope_name("refs/heads/main")]);
        assert_eq!(plan.read_only, None);
    }

    /// A push to a feature branch reads only itself and the default branch, never a sibling.
    #[test]
    fn branches_are_isolated() {
        let event = serde_json::json!({ "repository": { "full_name": "o/r", "default_branch": "main" } });
        let a = plan(&ci_refs(&env(&[("GITHUB_ACTIONS", "true"), ("GITHUB_REF", "refs/heads/a")]), Some(&event)), None, false);
        let b = plan(&ci_refs(&env(&[("GITHUB_ACTIONS", "true"), ("GITHUB_REF", "refs/heads/b")]), Some(&event)), None, false);
        let main = plan(&ci_refs(&env(&[("GITHUB_ACTIONS", "true"), ("GITHUB_REF", "refs/heads/main")]), Some(&event)), None, false);
        assert!(!a.read.contains(&b.write) && !b.read.contains(&a.write));
        assert!(!main.read.contains(&a.write));
        assert_eq!(main.read, vec![main.write.clone()]);
        assert_eq!(a.read, vec![a.write.clone(), main.write.clone()]);
    }

    /// Forks, `pull_request_target` and `workflow_run` are read-only unless overridden.
    #[test]
    fn untrusted_runs_are_read_only() {
        let fork = serde_json::json!({
            "repository": { "full_name": "o/r", "default_branch": "main" },
            "pull_request": { "head": { "repo": { "full_name": "mallory/r" } } },
        });
        let vars = env(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_REF", "refs/pull/9/merge"),
            ("GITHUB_BASE_REF", "main"),
            ("GITHUB_EVENT_NAME", "pull_request"),
            ("GITHUB_REPOSITORY", "o/r"),
        ]);
        let refs = ci_refs(&vars, Some(&fork));
        let read_only = plan(&refs, None, false).read_only.expect("fork is read-only");
        assert!(read_only.contains("mallory/r"), "{read_only}");
        assert_eq!(plan(&refs, None, false).read.len(), 2);
        assert_eq!(plan(&refs, None, true).read_only, None);
        for event in ["pull_request_target", "workflow_run"] {
            let vars = env(&[("GITHUB_ACTIONS", "true"), ("GITHUB_REF", "refs/heads/main"), ("GITHUB_EVENT_NAME", event)]);
            assert!(plan(&ci_refs(&vars, None), None, false).read_only.is_some(), "{event}");
        }
    }

    /// Outside CI everything is in the local scope; `--scope` wins; other CIs are read too.
    #[test]
    fn local_explicit_and_other_ci() {
        assert_eq!(plan(&ci_refs(&env(&[]), None), None, false).read, vec![LOCAL_SCOPE]);
        assert_eq!(
            plan(&ci_refs(&env(&[("GITHUB_ACTIONS", "true"), ("GITHUB_REF", "refs/heads/x")]), None), Some("shared"), false).read,
            vec!["shared"]
        );
        let gitlab = ci_refs(&env(&[("GITLAB_CI", "true"), ("CI_COMMIT_REF_NAME", "feat"), ("CI_DEFAULT_BRANCH", "main")]), None);
        assert_eq!(plan(&gitlab, None, false).read, vec![scope_name("refs/heads/feat"), scope_name("refs/heads/main")]);
        let drone = ci_refs(&env(&[("DRONE", "true"), ("DRONE_BRANCH", "main"), ("DRONE_REPO_BRANCH", "main")]), None);
        assert_eq!(plan(&drone, None, false).read, vec![scope_name("refs/heads/main")]);
        let drone_pr = ci_refs(
            &env(&[
                ("DRONE", "true"),
                ("DRONE_BUILD_EVENT", "pull_request"),
                ("DRONE_SOURCE_BRANCH", "fix"),
                ("DRONE_TARGET_BRANCH", "dev"),
                ("DRONE_BRANCH", "dev"),
                ("DRONE_REPO_BRANCH", "main"),
            ]),
            None,
        );
        let plan_pr = plan(&drone_pr, None, false);
        assert_eq!(plan_pr.read, vec![scope_name("refs/pull-source/fix"), scope_name("refs/heads/dev"), scope_name("refs/heads/main")]);
        assert!(plan_pr.read_only.as_deref().is_some_and(|why| why.contains("Drone")), "{plan_pr:?}");
        let tag = ci_refs(&env(&[("DRONE", "true"), ("DRONE_TAG", "v1"), ("DRONE_BRANCH", "main")]), None);
        assert_eq!(tag.current.as_deref(), Some("refs/tags/v1"));
        assert!(
            crate::archive::layout::validate_scope_name("a/b").is_err()
                && crate::archive::layout::validate_scope_name("..").is_err()
                && crate::archive::layout::validate_scope_name("ok-1.2_x").is_ok()
        );
    }

    /// Woodpecker's own names, Harness's markers and Vela's variables make scopes; Vela's fork flag
    /// decides trust, and a pull request without it is not trusted.
    #[test]
    fn woodpecker_harness_and_vela() {
        let woodpecker = ci_refs(
            &env(&[
                ("CI", "woodpecker"),
                ("CI_COMMIT_BRANCH", "feature/x"),
                ("CI_REPO_DEFAULT_BRANCH", "main"),
                ("CI_PIPELINE_EVENT", "push"),
            ]),
            None,
        );
        assert_eq!(woodpecker.ci, "Woodpecker");
        assert_eq!(plan(&woodpecker, None, false).read, vec![scope_name("refs/heads/feature/x"), scope_name("refs/heads/main")]);
        let harness = ci_refs(&env(&[("HARNESS_BUILD_ID", "7"), ("DRONE_BRANCH", "main")]), None);
        assert_eq!((harness.ci, harness.current.as_deref()), ("Harness", Some("refs/heads/main")));
        let vela = |pairs: &[(&str, &str)]| plan(&ci_refs(&env(pairs), None), None, false);
        let push = vela(&[("VELA", "true"), ("VELA_BUILD_EVENT", "push"), ("VELA_BUILD_BRANCH", "feat"), ("VELA_REPO_BRANCH", "main")]);
        assert_eq!(push.read, vec![scope_name("refs/heads/feat"), scope_name("refs/heads/main")]);
        assert_eq!(push.read_only, None);
        let pr = [
            ("VELA", "true"),
            ("VELA_BUILD_EVENT", "pull_request"),
            ("VELA_PULL_REQUEST_SOURCE", "fix"),
            ("VELA_PULL_REQUEST_TARGET", "main"),
            ("VELA_REPO_BRANCH", "main"),
        ];
        let own = vela(&[&pr[..], &[("VELA_PULL_REQUEST_FORK", "false")]].concat());
        assert_eq!((own.write.clone(), own.read_only.clone()), (scope_name("refs/pull-source/fix"), None));
        assert!(vela(&[&pr[..], &[("VELA_PULL_REQUEST_FORK", "true")]].concat()).read_only.is_some());
        assert!(vela(&pr).read_only.is_some());
    }
}
