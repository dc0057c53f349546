//! Restoring the archives an older tool wrote (a migration): plain `tar` streams without s3cache's
//! manifest, found by the search or at the old tool's own object names, extracted through the same
//! sandbox and staging, with a notice that there is no digest to check.

use std::time::Instant;

use crate::archive::trailer;
use crate::engine::request::{Hit, Legacy, MemberNames, RestoreOutcome};
use crate::engine::{CacheContext, Extracted, Naming};
use crate::workspace::paths::{CachedRoot, resolve_each, resolve_roots};

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
        self.reporter
            .notice(&format!("restoring {object} without a digest check: it has no s3cache manifest ({} wrote it)", legacy.writer));
    }

    /// Tries an old tool's objects at their own names, after no s3cache entry was found.
    pub(crate) fn restore_legacy_objects(&self, legacy: &Legacy, primary_key: &str, started: Instant) -> Option<RestoreOutcome> {
        for object in &legacy.objects {
            let name = object.name.render(primary_key);
            if !object.fits(&self.cwd, self.home.as_deref()) {
                tracing::debug!(object = %name, paths = ?object.paths, "an old object whose member names this restore cannot place; not tried");
                continue;
            }
            let info = match self.store.head(&name) {
                Ok(Some(info)) if info.size > 0 => info,
                Ok(_) => continue,
                Err(err) => {
                    return Some(RestoreOutcome::Miss {
                        primary_key: Some(primary_key.to_owned()),
                        reason: self.describe_store_error(&err),
                        failed: true,
                    });
                }
            };
            if self.has_trailer(&info) {
                continue; // an s3cache entry: the search has judged it already
            }
            let failed = |why: String| {
                Some(RestoreOutcome::Miss {
                    primary_key: Some(primary_key.to_owned()),
                    reason: format!("{name} was not restored: {why}"),
                    failed: true,
                })
            };
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
            self.announce_legacy(&name, legacy);
            return Some(match self.extract(&roots, Naming::Other(object.names, &self.cwd), legacy.format, info.size, &[], source, None) {
                Ok(Extracted { members, removed_local_files }) => RestoreOutcome::Hit(Hit {
                    primary_key: primary_key.to_owned(),
                    matched_key: name.clone(),
                    exact: false,
                    bytes: info.size,
                    members,
                    tar_bytes: None,
                    elapsed: started.elapsed(),
                    sha256: String::new(),
                    restored: true,
                    scope: String::new(),
                    paths: object.paths.clone(),
                    removed_local_files,
                }),
                Err(err) => return failed(err.to_string()),
            });
        }
        None
    }

    /// Whether an object ends in an s3cache trailer (one ranged GET of its tail).
    fn has_trailer(&self, info: &crate::store::ObjectInfo) -> bool {
        self.read_tail(info).is_ok_and(|tail| trailer::decode(&tail, info.size).is_ok())
    }
}
