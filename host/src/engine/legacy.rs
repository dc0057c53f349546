//! Restoring the archives an older tool wrote (a migration): plain `tar` streams without s3cache's
//! manifest, found by the search or at the old tool's own object names, extracted through the same
//! sandbox and staging, with a notice that there is no digest to check.

use std::io::Read;
use std::time::Instant;

use crate::archive::layout::Format;
use crate::archive::trailer;
use crate::engine::request::{Hit, RestoreOutcome};
use crate::engine::{CacheContext, Naming};
use crate::workspace::paths::{CachedRoot, resolve_each, resolve_roots};

/// one format, named as `tar` names members. They are extracted through the same sandbox, policy and
/// staging as s3cache's entries, but there is no digest to check, and a notice says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Legacy {
    /// Who wrote them, for the notice (`the Semaphore cache CLI`).
    pub writer: String,
    /// How those archives are compressed.
    pub format: Format,
    /// Whether a candidate the search finds without s3cache's trailer is such an archive. Its members
    /// may then land anywhere in the workspace or the home directory, as the old tool put them.
    pub in_search: bool,
    /// Objects at the old tool's own names, tried in order when no s3cache entry is found, each
    /// holding its paths (its members must fall under them).
    pub objects: Vec<LegacyObject>,
}

/// An old tool's object and the paths it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyObject {
    /// The object's name under the store prefix.
    pub name: String,
    /// The paths, as restore paths (`vendor`, `~/.cache/go-build`).
    pub paths: Vec<String>,
    /// How the old tool named the members.
    pub names: MemberNames,
}

/// How another tool's archive names its members, relative to the path it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemberNames {
    /// As plain `tar` names them: relative to the working directory for paths inside it, by absolute
    /// path (`tar -P`) elsewhere.
    #[default]
    Plain,
    /// Always by absolute path (`/drone/src/vendor/x`: meltwater drone-cache since 1.4).
    Absolute,
    /// Relative to the directory that contains the path (`vendor/x` for `a/b/vendor`: vela-s3-cache).
    FromParent,
}

impl CacheContext {
    /// The roots of an old tool's archive whose path is not known: anything in the workspace, or
    /// (named by absolute path) in the home directory. Staging merges only what the archive holds.
    pub(crate) fn anywhere_roots(&self) -> Vec<CachedRoot> {
        let mut roots = vec![CachedRoot { dir: self.cwd.clone(), prefix: String::new(), include: vec!["**".into()], exclude: Vec::new() }];
        if let Some(home) = self.home.as_ref().filter(|home| **home != self.cwd) {
            roots.push(CachedRoot { dir: home.clone(), prefix: String::new(), include: vec!["**".into()], exclude: Vec::new() });
        }
        roots
    }

    pub(crate) fn announce_legacy(&self, object: &str, legacy: &Legacy) {
        self.reporter.notice(&format!("restoring {object} without a digest check: it has no s3cache manifest ({} wrote it)", legacy.writer));
    }

    /// Tries an old tool's objects at their own names, after no s3cache entry was found.
    pub(crate) fn restore_legacy_objects(&self, legacy: &Legacy, primary_key: &str, started: Instant) -> Option<RestoreOutcome> {
        for object in &legacy.objects {
            let info = match self.store.head(&object.name) {
                Ok(Some(info)) if info.size > 0 => info,
                Ok(_) => continue,
                Err(err) => return Some(RestoreOutcome::Miss { primary_key: Some(primary_key.to_owned()), reason: self.describe_store_error(&err), failed: true }),
            };
            if self.has_trailer(&info) {
                continue; // an s3cache entry: the search has judged it already
            }
            let failed = |why: String| Some(RestoreOutcome::Miss { primary_key: Some(primary_key.to_owned()), reason: format!("{} was not restored: {why}", object.name), failed: true });
            let roots = match object.names {
                MemberNames::FromParent => resolve_each(&object.paths, &self.cwd, self.home.as_deref()),
                MemberNames::Plain | MemberNames::Absolute => resolve_roots(&object.paths, &self.cwd, self.home.as_deref()),
            };
            let roots = match roots {
                Ok(roots) => roots,
                Err(err) => return failed(err.to_string()),
            };
            let source = match self.store.read(&info, 0, info.size) {
                Ok(source) => source,
                Err(err) => return failed(self.describe_store_error(&err)),
            };
            self.announce_legacy(&object.name, legacy);
            return Some(match self.extract(&roots, Naming::Other(object.names, &self.cwd), legacy.format, info.size, &[], source, None) {
                Ok(Ok(members)) => RestoreOutcome::Hit(Hit {
                    primary_key: primary_key.to_owned(),
                    matched_key: object.name.clone(),
                    exact: false,
                    bytes: info.size,
                    members,
                    elapsed: started.elapsed(),
                    sha256: String::new(),
                    restored: true,
                    scope: String::new(),
                    paths: object.paths.clone(),
                }),
                Ok(Err(why)) => return failed(why),
                Err(err) => return failed(err.to_string()),
            });
        }
        None
    }

    /// Whether an object ends in an s3cache trailer (one ranged GET of its tail).
    fn has_trailer(&self, info: &crate::store::ObjectInfo) -> bool {
        let start = info.size.saturating_sub(trailer::TAIL_FETCH);
        let mut tail = Vec::new();
        self.store.read(info, start, info.size).is_ok_and(|mut r| r.read_to_end(&mut tail).is_ok()) && trailer::decode(&tail, info.size).is_ok()
    }
}
