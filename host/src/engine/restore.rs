//! Restoring: render the keys, choose an entry ([`crate::engine::candidates`]), and extract it through
//! staging directories that are moved into place only when every member arrived and its digest matched.

use std::io::Read;
use std::time::Instant;

use crate::archive::layout::Format;
use crate::archive::trailer::Manifest;
use crate::archive::unpack;
use crate::cancel::CancelReader;
use crate::engine::candidates::{Chosen, Wanted};
use crate::engine::keys::KeyRenderer;
use crate::engine::request::MemberNames;
use crate::engine::request::{Hit, RestoreOutcome, RestoreRequest};
use crate::engine::{CacheContext, EngineError, ExtractError, Extracted, Naming, guest_roots};
use crate::sandbox::bindings::UnpackLimits;
use crate::sandbox::{Preopen, ReadSource, SandboxError};
use crate::ui::progress;
use crate::workspace::fsmeta;
use crate::workspace::paths::{CachedRoot, resolve_roots};
use crate::workspace::protected::Protected;
use crate::workspace::staging::Staging;

impl CacheContext {
    /// Restores the newest entry matching the key or a restore key into `request.paths`.
    pub fn restore(&self, request: &RestoreRequest) -> Result<RestoreOutcome, EngineError> {
        if self.cancel.is_cancelled() {
            return Ok(RestoreOutcome::Interrupted { primary_key: None });
        }
        Ok(match self.restore_until_cancelled(request)? {
            RestoreOutcome::Miss { primary_key, .. } if self.cancel.is_cancelled() => RestoreOutcome::Interrupted { primary_key },
            outcome => outcome,
        })
    }

    fn restore_until_cancelled(&self, request: &RestoreRequest) -> Result<RestoreOutcome, EngineError> {
        let started = Instant::now();
        let given_roots =
            if request.paths.is_empty() { None } else { Some(resolve_roots(&request.paths, &self.cwd, self.home.as_deref())?) };
        let mut renderer = KeyRenderer::new(&self.sandbox, &self.cwd, &self.env, &self.reporter);
        let primary_key = renderer.render(&request.key)?;
        self.check_key(&primary_key)?;
        let mut restore_keys = Vec::new();
        for template in &request.restore_keys {
            let prefix = renderer.render(template)?;
            self.check_restore_key(&prefix)?;
            restore_keys.push(prefix);
        }
        let miss = |reason: String| Ok(RestoreOutcome::Miss { primary_key: Some(primary_key.clone()), reason, failed: true });

        let restore_keys = if request.exact_key_only { &[][..] } else { &restore_keys[..] };
        let wanted = Wanted { paths: given_roots.is_some().then(|| request.paths.clone()), cross_os: request.cross_os };
        let legacy = request.legacy.as_ref();
        // With trusted keys, a candidate whose archive proves damaged or altered while it is extracted
        // (a valid signature over other bytes) is passed over like any refused one, and the search
        // goes on without it.
        let mut passed_over: Vec<(String, String)> = Vec::new();
        loop {
            let Chosen { entry, manifest, source, signer } =
                match self.choose(&primary_key, restore_keys, request.fallback, &wanted, legacy.is_some_and(|l| l.in_search), &passed_over)
                {
                    Ok(chosen) => chosen,
                    Err(mut search) => {
                        // Older tools' objects are never signed: with trusted keys they are not looked for.
                        let legacy = if self.signing.trusted.is_some() { None } else { legacy };
                        if let Some(outcome) = legacy.and_then(|l| self.restore_legacy_objects(l, &primary_key, started)) {
                            return Ok(outcome);
                        }
                        if self.signing.trusted.is_some() && request.legacy.is_some() {
                            search.rejected.push("older tools' objects were not looked for: they are never signed (--trusted-keys)".into());
                        }
                        let fallbacks = if restore_keys.is_empty() { "" } else { " or its restore keys" };
                        let scopes = self.scopes.read.join(", ");
                        let mut reason = format!("no usable cache entry for key {primary_key:?}{fallbacks} in scopes {scopes}");
                        let damaged = passed_over.iter().map(|(name, why)| format!("{name}: {why}"));
                        search.failed |= !passed_over.is_empty();
                        search.rejected.splice(0..0, damaged);
                        if !search.rejected.is_empty() {
                            reason.push_str(&format!("; passed over: {}", search.rejected.join("; ")));
                        }
                        if let Some(err) = search.store_error {
                            reason = format!("{reason}; the store failed: {err}");
                        }
                        return Ok(RestoreOutcome::Miss { primary_key: Some(primary_key.clone()), reason, failed: search.failed });
                    }
                };
            let matched_key = entry.name.key.clone();
            let sha256 = manifest.as_ref().map(|m| m.sha256.clone()).unwrap_or_default();
            let recorded_paths = manifest.as_ref().map(|m| m.paths.clone()).unwrap_or_default();
            let tar_bytes = manifest.as_ref().map(|m| m.tar_bytes);
            let hit = |Extracted { members, removed_local_files }: Extracted, restored: bool| Hit {
                exact: matched_key == primary_key,
                primary_key: primary_key.clone(),
                matched_key: matched_key.clone(),
                bytes: entry.size(),
                members,
                tar_bytes,
                elapsed: started.elapsed(),
                sha256: sha256.clone(),
                restored,
                scope: entry.name.scope.clone(),
                paths: recorded_paths.clone(),
                removed_local_files,
            };
            let Some(manifest) = manifest else {
                // Another tool's archive found by the search: its members go where it put them.
                let legacy = legacy.expect("only a legacy search yields entries without a manifest");
                if request.lookup_only {
                    return Ok(RestoreOutcome::Hit(hit(Extracted::lookup(0), false)));
                }
                self.announce_legacy(&entry.object.name, legacy);
                let protected = given_roots.is_none().then(|| self.protected());
                let roots = given_roots.clone().unwrap_or_else(|| self.anywhere_roots());
                return match self.extract(
                    &roots,
                    Naming::Other(MemberNames::Plain, &self.cwd),
                    legacy.format,
                    entry.size(),
                    &[],
                    source,
                    protected,
                ) {
                    Ok(extracted) => Ok(RestoreOutcome::Hit(hit(extracted, true))),
                    Err(ExtractError::NotRestored(why) | ExtractError::BadArchive(why)) => {
                        miss(format!("cache entry {matched_key:?} was not restored: {why}"))
                    }
                    Err(ExtractError::Engine(err)) => Err(err),
                };
            };
            if let Some(signer) = &signer {
                self.reporter.notice(&format!("cache entry {} is signed by {signer}", entry.object.name));
            }
            if request.lookup_only {
                return Ok(RestoreOutcome::Hit(hit(Extracted::lookup(manifest.members), false)));
            }
            let protected = given_roots.is_none().then(|| self.protected());
            let roots = match given_roots.clone() {
                Some(roots) => roots,
                None => match self.manifest_roots(&manifest) {
                    Ok(roots) => roots,
                    Err(why) => return miss(format!("cache entry {matched_key:?} was not restored: {why}")),
                },
            };
            let _touch = self.touch(&entry);
            let Some(format) = manifest.archive_format() else { return miss(format!("unknown archive format {:?}", manifest.compression)) };
            return match self.extract(
                &roots,
                self.naming(manifest.plain_names),
                format,
                manifest.archive_bytes,
                &manifest.parts,
                source,
                protected,
            ) {
                Ok(extracted) => Ok(RestoreOutcome::Hit(hit(extracted, true))),
                Err(ExtractError::BadArchive(why)) if self.signing.trusted.is_some() && !self.cancel.is_cancelled() => {
                    self.reporter.notice(&format!("passing over cache entry {}: {why}", entry.object.name));
                    passed_over.push((entry.object.name.clone(), why));
                    continue;
                }
                Err(ExtractError::NotRestored(why) | ExtractError::BadArchive(why)) => {
                    miss(format!("cache entry {matched_key:?} was not restored: {why}"))
                }
                Err(ExtractError::Engine(err)) => Err(err),
            };
        }
    }

    /// Extracts an archive of `format` from `source` into `roots` through staging directories and
    /// moves it into place; returns the member count and the local files removed, or why nothing was changed. `parts` are the
    /// compressed lengths of its independently decodable parts, from the manifest (empty: unknown):
    /// several of them are decoded on every core ([`parallel_unpack`]). With `protected` (a restore
    /// without paths), every staged member is judged by its rules before anything is moved.
    pub(crate) fn extract(
        &self,
        roots: &[CachedRoot],
        naming: Naming<'_>,
        format: Format,
        bytes: u64,
        parts: &[u64],
        source: Box<dyn Read + Send>,
        protected: Option<Protected>,
    ) -> Result<Extracted, ExtractError> {
        let started = Instant::now();
        self.sandbox.expect_heavy_work(bytes);
        crate::workspace::staging::remove_stale(roots);
        let staging = match Staging::create(roots) {
            Ok(staging) => staging,
            Err(err) => return Err(ExtractError::NotRestored(format!("could not create a staging directory: {err}"))),
        };
        // An interrupt removes the staging directories at once, even while this thread waits for data.
        let discard_on_cancel = self.cancel.on_cancel(staging.discard_handle());
        let preopens = staging
            .dirs()
            .iter()
            .enumerate()
            .map(|(i, d)| Preopen { host: d.clone(), guest: format!("/stage/{i}"), writable: true })
            .collect();
        let mut guest = self.instance(preopens)?;
        let bar = progress::bytes_bar("restoring", Some(bytes), self.reporter.shows_progress());
        let source = Box::new(CancelReader { inner: source, cancel: self.cancel.clone() });
        let source = Box::new(progress::CountingReader::new(source, bar.clone()));
        let roots_seen = guest_roots(roots, |i| format!("/stage/{i}"), naming);
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let report = if unpack::applies(format.into(), parts, workers) {
            // Decoders see no directory at all: they only turn compressed bytes into tar.
            let decoder = || self.sandbox.instance(&[], Box::new(|_: &str| None), &self.reporter).map_err(SandboxError::Setup);
            unpack::unpack(&decoder, &mut guest, &roots_seen, format.into(), self.unpack_limits, parts, source, workers)
        } else {
            guest.unpack(&roots_seen, format.into(), self.unpack_limits, Box::new(ReadSource(source)))
        };
        bar.finish_and_clear();
        let report = match report {
            Ok(report) => report,
            Err(err) => return Err(ExtractError::BadArchive(err.to_string())),
        };
        tracing::debug!(members = report.members, elapsed = ?started.elapsed(), "unpacked into staging");
        if let Err(err) = fsmeta::apply_fixups(staging.dirs(), &report.fixups) {
            return Err(ExtractError::NotRestored(err.to_string()));
        }
        tracing::debug!(elapsed = ?started.elapsed(), "applied modes, links and times");
        if let Some(Err(why)) = protected.as_ref().map(|rules| rules.check_staged(roots, staging.dirs())) {
            return Err(ExtractError::NotRestored(format!("{why}; {}", crate::workspace::protected::GIVE_PATHS)));
        }
        // From here the move into place runs to its end: no interrupt may remove what it moves.
        drop(discard_on_cancel);
        if let Err(err) = self.cancel.check() {
            return Err(ExtractError::NotRestored(err.to_string()));
        }
        match staging.commit(roots) {
            Ok(removed_local_files) => Ok(Extracted { members: report.members, removed_local_files }),
            Err(err) => Err(ExtractError::NotRestored(format!("it could not be moved into place: {err}"))),
        }
    }

    /// The roots of a restore that takes its paths from the entry's manifest. The manifest is the
    /// archive's claim, so its paths must resolve into the workspace or the home directory, and not
    /// to what a restore without paths refuses ([`Protected::refused_root`]).
    pub(crate) fn manifest_roots(&self, manifest: &Manifest) -> Result<Vec<CachedRoot>, String> {
        if manifest.paths.is_empty() {
            return Err("the entry records no paths; give the paths to restore".into());
        }
        let roots =
            resolve_roots(&manifest.paths, &self.cwd, self.home.as_deref()).map_err(|e| format!("its recorded paths are unusable: {e}"))?;
        if let Some(why) = self.protected().refused_root(&roots) {
            return Err(format!("{why}; {}", crate::workspace::protected::GIVE_PATHS));
        }
        match roots.iter().find(|r| {
            !(r.prefix == "workspace" || r.prefix.starts_with("workspace/") || r.prefix == "home" || r.prefix.starts_with("home/"))
        }) {
            Some(outside) => Err(format!(
                "its recorded path {} is outside the workspace and the home directory; give the paths to restore",
                outside.dir.display()
            )),
            None => Ok(roots),
        }
    }
}

impl UnpackLimits {
    /// The largest uncompressed archive a restore accepts by default, bytes (`--max-unpacked-mb` 65536).
    pub const DEFAULT_MAX_TOTAL_BYTES: u64 = 64 << 30;
    /// The most members a restore accepts by default (`--max-entries`).
    pub const DEFAULT_MAX_MEMBERS: u64 = 5_000_000;

    /// Generous bounds for real caches that still stop a hostile archive.
    pub fn default_limits() -> Self {
        Self {
            max_total_bytes: Self::DEFAULT_MAX_TOTAL_BYTES,
            max_members: Self::DEFAULT_MAX_MEMBERS,
            max_path_bytes: 4096,
            max_depth: 256,
            max_window_log: 27,
        }
    }
}
