//! Saving: render the key, skip a key that exists (first writer wins), pack the paths in the guest
//! and upload the archive with its trailer; any failure is a [`SaveOutcome`] with a reason.

use std::io::Write;
use std::time::Instant;

use crate::archive::catalog;
use crate::archive::layout::Format;
use crate::archive::pack;
use crate::archive::trailer::{self, Manifest, SealingWriter};
use crate::cancel::CancelWriter;
use crate::engine::keys::{template_context, template_error};
use crate::engine::request::{SaveOutcome, SaveRequest};
use crate::engine::{CacheContext, ConfigError, EngineError, entry_version, guest_roots};
use crate::sandbox::bindings::{GuestError, PackOptions};
use crate::sandbox::{Preopen, SandboxError};
use crate::store::{PutOptions, StoreError, Upload};
use crate::ui::progress;
use crate::workspace::fsmeta;
use crate::workspace::paths::{CachedRoot, resolve_roots, unmatched_paths};

/// The level a save of `format` compresses at: `level` when the format takes it (zstd 1..=19, gzip
/// 1..=9), 0 for tar, which has no levels.
fn compression_level(format: Format, level: Option<i32>) -> Result<i32, ConfigError> {
    let level = level.unwrap_or(format.default_level());
    let (min, max) = match format {
        Format::Zstd => (1, 19),
        Format::Gzip => (1, 9),
        Format::Tar => return Ok(0),
    };
    if !(min..=max).contains(&level) {
        return Err(ConfigError::CompressionLevel { format, level, min, max });
    }
    Ok(level)
}

impl CacheContext {
    /// With a signing key, why the existing entries of a key would be refused by a restore (by the
    /// trusted keys, else by the signing key's own public key), when none of them would be accepted:
    /// the save then replaces the planted entry. `None` when no key signs, or one entry is accepted.
    fn refused_existing(&self, found: &[catalog::Entry]) -> Option<String> {
        let key = self.signing.key.as_deref()?;
        let own;
        let trusted = match self.signing.trusted.as_deref() {
            Some(trusted) => trusted,
            None => {
                own = key.own_trust();
                &own
            }
        };
        let mut refusals = Vec::new();
        for entry in found {
            let verdict = match self.read_tail(&entry.object) {
                // Unreadable now: keep it, as an unsigned save would.
                Err(_) => return None,
                Ok(tail) => match trailer::unframe(&tail) {
                    Ok(framed) => self.authenticate(entry, &framed, trusted).map(drop).map_err(|r| r.reason().to_owned()),
                    Err(err) => Err(err.to_string()),
                },
            };
            match verdict {
                Ok(()) => return None,
                Err(why) => refusals.push(why),
            }
        }
        Some(refusals.join("; "))
    }

    /// Saves `request.paths` under the rendered key, unless an entry with that key exists.
    pub fn save(&self, request: &SaveRequest) -> Result<SaveOutcome, EngineError> {
        if self.cancel.is_cancelled() {
            return Ok(SaveOutcome::Interrupted { key: None });
        }
        Ok(match self.save_until_cancelled(request)? {
            SaveOutcome::Failed { key, .. } | SaveOutcome::Skipped { key, .. } if self.cancel.is_cancelled() => {
                SaveOutcome::Interrupted { key }
            }
            outcome => outcome,
        })
    }

    fn save_until_cancelled(&self, request: &SaveRequest) -> Result<SaveOutcome, EngineError> {
        let started = Instant::now();
        let level = compression_level(request.format, request.compression_level)?;
        if let Some(reason) = self.store.read_only() {
            return Ok(SaveOutcome::Failed { key: None, reason: StoreError::ReadOnly(reason).to_string() });
        }
        if let Some(reason) = &self.scopes.read_only {
            return Ok(SaveOutcome::Skipped { key: None, reason: reason.clone() });
        }
        let roots = resolve_roots(&request.paths, &self.cwd, self.home.as_deref())?;
        let existing: Vec<CachedRoot> = roots.into_iter().filter(|r| r.dir.is_dir()).collect();
        let preopens: Vec<Preopen> = existing
            .iter()
            .enumerate()
            .map(|(i, r)| Preopen { host: r.dir.clone(), guest: format!("/roots/{i}"), writable: false })
            .collect();
        let mut guest = self.instance(preopens.clone())?;
        let guest_roots = guest_roots(&existing, |i| format!("/roots/{i}"), self.naming(request.plain_names));
        let (resolution, mut lstats) = match guest.resolve_for_save(&request.key, &template_context(&self.env), &guest_roots) {
            Ok(resolved) => resolved,
            // A bad template or glob is the user's to fix; an unreadable directory is a failed save.
            Err(SandboxError::Guest(err @ (GuestError::InvalidTemplate(_) | GuestError::InvalidPattern(_)))) => {
                return Err(template_error(&request.key, crate::sandbox::describe_guest_error(&err)).into());
            }
            Err(err) => return Ok(SaveOutcome::Failed { key: None, reason: err.to_string() }),
        };
        tracing::debug!(found = resolution.found.len(), elapsed = ?started.elapsed(), "resolved key and paths");
        let key = resolution.key;
        self.check_key(&key)?;
        let failed = |reason: String| Ok(SaveOutcome::Failed { key: Some(key.clone()), reason });
        let unmatched = unmatched_paths(&request.paths, &self.cwd, self.home.as_deref(), &existing, &resolution.found);
        if resolution.found.is_empty() {
            return Ok(SaveOutcome::NothingToSave { key, unmatched });
        }
        for path in &unmatched {
            self.reporter.warning(&format!("--path {path} matched no files"));
        }
        let name = self.layout.entry_object(&self.scopes.write, &key, request.format);
        let mut overwrite = request.overwrite;
        if !overwrite {
            // First writer wins per key, whatever the format it saved, and whatever name an earlier
            // s3cache gave it (a slash-named entry of this key is this key's entry). A save that signs
            // replaces an entry that a restore would refuse: it was not written by a trusted job.
            match catalog::find_restorable(self.store.as_ref(), self.layout, &self.scopes.write, &key) {
                Ok(found) if found.is_empty() => {}
                Ok(found) => match self.refused_existing(&found) {
                    Some(why) => {
                        self.reporter.notice(&format!("replacing cache entry {name}, which a restore would refuse: {why}"));
                        overwrite = true;
                    }
                    None => return Ok(SaveOutcome::AlreadyExists { key }),
                },
                Err(err) => return failed(self.describe_store_error(&err)),
            }
        }
        let known: Vec<_> = preopens.iter().map(|preopen| lstats.take_preopen(&preopen.guest)).collect();
        let members = match fsmeta::describe(&existing, &resolution.found, &known, &self.reporter) {
            Ok(members) => members,
            Err(err) => return failed(err.to_string()),
        };
        tracing::debug!(elapsed = ?started.elapsed(), "read metadata");
        if let Some(why) = self.protected().refused_in_save(&request.paths, &existing, &members) {
            let why = format!("{why}; this entry restores only with its paths given (--path, mount)");
            // The action's restores always give their paths (`~/.cargo/bin` is in actions/cache's
            // own Rust example): there the renderer makes it a plain line, not an annotation on every save.
            self.reporter.caveat(&why);
        }
        let upload = match self.store.put(&name, PutOptions { if_none_match: !overwrite }) {
            Ok(upload) => upload,
            Err(err) => return failed(self.describe_store_error(&err)),
        };
        // An interrupt aborts the upload at once, even while this thread waits for a part to go out.
        let _abort_on_cancel = upload.abort_handle().map(|abort| self.cancel.on_cancel(abort));
        let upload: Box<dyn Upload> = Box::new(CancelWriter { inner: upload, cancel: self.cancel.clone() });
        let total: u64 = members.iter().map(|m| m.size).sum();
        self.sandbox.expect_heavy_work(total);
        let bar = progress::bytes_bar("saving", Some(total), self.reporter.shows_progress());
        let (mut sealing, seal) = SealingWriter::new(Box::new(progress::CountingWriter::new(upload, bar.clone())));
        let options = PackOptions { compression: request.format.into(), level, buffer_size: 1 << 20, end_of_archive: true };
        let instance =
            || self.sandbox.instance(&self.preopens(preopens.clone()), self.env_for_guest(), &self.reporter).map_err(SandboxError::Setup);
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let packed = pack::pack(&instance, &guest_roots, &members, options, pack::CompressIn::Host, workers, &mut sealing);
        bar.finish_and_clear();
        let pack::Packed { summary, parts } = match packed {
            Ok(packed) => packed,
            Err(err) => return failed(err.to_string()), // dropping the sink aborts the upload
        };
        tracing::debug!(tar_bytes = summary.tar_bytes, compressed = summary.compressed_bytes, elapsed = ?started.elapsed(), "packed");
        let (digest, archive_bytes) = seal.lock().expect("seal lock").clone();
        let mut manifest = Manifest {
            format: crate::ARCHIVE_FORMAT,
            sha256: digest.hex(),
            archive_bytes,
            os: std::env::consts::OS.into(),
            arch: std::env::consts::ARCH.into(),
            members: summary.members,
            tar_bytes: summary.tar_bytes,
            compression: request.format.name().into(),
            level,
            version: entry_version(&request.paths, request.format, request.cross_os),
            paths: request.paths.clone(),
            cross_os: request.cross_os,
            plain_names: request.plain_names,
            parts,
            key: key.clone(),
            scope: self.recorded_scope(),
            store: self.store_namespace(),
            created_ms: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
        };
        let sign = self.signing.key.as_deref().map(|key| move |json: &[u8]| key.sign(json));
        let written = trailer::encode_fitting(&mut manifest, sign.as_ref().map(|s| s as trailer::Sign<'_>))
            .map_err(|e| e.to_string())
            .and_then(|t| sealing.write_all(&t).map_err(|e| e.to_string()));
        if let Err(err) = written {
            return failed(format!("writing the manifest: {err}"));
        }
        if let Err(err) = self.cancel.check() {
            return failed(err.to_string()); // dropping the sink aborts the upload
        }
        match Box::new(sealing).finish() {
            Ok(bytes) => Ok(SaveOutcome::Saved {
                key,
                bytes,
                members: summary.members,
                tar_bytes: summary.tar_bytes,
                elapsed: started.elapsed(),
                sha256: manifest.sha256,
            }),
            Err(StoreError::AlreadyExists(_)) => Ok(SaveOutcome::AlreadyExists { key }),
            Err(err) => failed(self.describe_store_error(&err)),
        }
    }
}
