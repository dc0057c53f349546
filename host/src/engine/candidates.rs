//! Choosing the entry a restore uses: in each read scope, the exact key, then each restore key's
//! entries newest first; candidates of another version (other paths, another OS, another format) are
//! passed over with the reason, so that a miss can say what existed.

use std::io::Read;

use crate::archive::catalog::{self, Entry};
use crate::archive::layout::Format;
use crate::archive::trailer::{self, Manifest, VerifyingReader};
use crate::engine::request::Fallback;
use crate::engine::{CacheContext, entry_version};
use crate::signing::{Signer, TrustedKeys};
use crate::store::StoreError;

/// Most candidate entries a restore examines before it gives up (each costs a ranged GET).
const MAX_CANDIDATES: usize = 10;

/// Entries up to this size are fetched with a single GET.
const SMALL_ENTRY: u64 = 4 << 20;

impl CacheContext {
    /// Reads an entry's trailer and judges it: with trusted keys, its signature over the manifest's
    /// exact bytes and what the manifest binds it to, before any byte of the archive is fetched; then
    /// whether it can be restored here.
    fn examine(&self, entry: &Entry, wanted: &Wanted) -> Result<Examined, Rejection> {
        let found = &entry.object;
        if found.size == 0 {
            return Err(Rejection::Broken("the object is empty".into()));
        }
        // Small entries are read whole in one request, unless the signature must be checked before
        // the archive is fetched; large ones tail first, then streamed.
        let trusted = self.signing.trusted.as_deref();
        let tail_start = if found.size <= SMALL_ENTRY && trusted.is_none() { 0 } else { found.size.saturating_sub(trailer::TAIL_FETCH) };
        let mut tail = self.read_from(found, tail_start).map_err(|e| Rejection::Store(self.describe_store_error(&e)))?;
        let unreadable = |e: trailer::TrailerError| match e {
            trailer::TrailerError::Missing => Rejection::Foreign(e.to_string()),
            other => Rejection::Broken(other.to_string()),
        };
        let framed = trailer::unframe(&tail).map_err(unreadable)?;
        let (manifest, signer) = match trusted {
            Some(trusted) => {
                let (manifest, signer) = self.authenticate(entry, &framed, trusted).map_err(|rejection| match rejection {
                    Rejection::Unverified(why) => Rejection::Unverified(refused_by_trusted_keys(&why)),
                    other => other,
                })?;
                (manifest, Some(signer))
            }
            None => (trailer::parse(&framed, found.size).map_err(unreadable)?, None),
        };
        if manifest.format != crate::ARCHIVE_FORMAT {
            let why = format!("archive format {} is not {} (saved by another s3cache version)", manifest.format, crate::ARCHIVE_FORMAT);
            return Err(Rejection::Version(why));
        }
        if !wanted.fits(&manifest) {
            return Err(Rejection::Version(explain_version_mismatch(&manifest)));
        }
        if wanted.paths.is_none() {
            self.manifest_roots(&manifest).map_err(Rejection::Refused)?;
        }
        // Already read whole: no second request.
        let whole = (tail_start == 0).then(|| {
            tail.truncate(manifest.archive_bytes as usize);
            tail
        });
        Ok(Examined { manifest, signer, whole })
    }

    /// Checks a trailer's signature by `trusted` over exactly the manifest's bytes, then parses those
    /// bytes strictly and checks that they are this entry's: its key and scope, in this store. A
    /// refusal is [`Rejection::Unverified`] with the bare reason.
    pub(crate) fn authenticate(
        &self,
        entry: &Entry,
        framed: &trailer::Framed,
        trusted: &TrustedKeys,
    ) -> Result<(Manifest, Signer), Rejection> {
        let refused = Rejection::Unverified;
        let signer = trusted
            .verify(&framed.json, framed.signature.as_deref().unwrap_or_default(), std::time::SystemTime::now())
            .map_err(|refusal| refused(refusal.to_string()))?;
        let manifest = trailer::parse(framed, entry.object.size).map_err(|e| refused(format!("signed by {signer}, but {e}")))?;
        let store = self.store_namespace();
        let mismatch = if manifest.key != entry.name.key {
            Some(format!("for the key {:?}, not {:?} (copied from another key)", manifest.key, entry.name.key))
        } else if manifest.scope != entry.name.scope {
            Some(format!("for the scope {:?}, not {:?} (copied from another scope)", manifest.scope, entry.name.scope))
        } else if manifest.store != store {
            Some(format!("for the store {:?}, not {store:?} (copied from another store, or set --store-namespace)", manifest.store))
        } else {
            None
        };
        match mismatch {
            Some(why) => Err(refused(format!("signed by {signer} {why}"))),
            None => Ok((manifest, signer)),
        }
    }

    /// A stream of an examined entry's archive that fails at its end unless every byte matches the
    /// manifest's SHA-256.
    fn open_archive(&self, entry: &Entry, examined: Examined) -> Result<(Manifest, Box<dyn Read + Send>), String> {
        let Examined { manifest, whole, .. } = examined;
        let source: Box<dyn Read + Send> = match whole {
            Some(bytes) => Box::new(std::io::Cursor::new(bytes)),
            None => self.store.read(&entry.object, 0, manifest.archive_bytes).map_err(|e| self.describe_store_error(&e))?,
        };
        Ok((manifest.clone(), Box::new(VerifyingReader::new(source, manifest))))
    }

    /// Searches the read scopes in order — in each, the exact key, then every restore-key prefix newest
    /// first — and opens the first candidate of the right version ([`select`]). With `legacy`, a
    /// candidate without s3cache's trailer is another tool's archive, read whole. With trusted keys,
    /// only signed entries are candidates (never another tool's archive), and the entries of one
    /// restore key are tried newest first by their signed creation time.
    pub(crate) fn choose(
        &self,
        primary_key: &str,
        restore_keys: &[String],
        fallback: Fallback,
        wanted: &Wanted,
        legacy: bool,
        passed_over: &[(String, String)],
    ) -> Result<Chosen, Search> {
        // One namespace has one "scope" to search, however many the run's refs name.
        let scopes = if self.layout.scoped() { &self.scopes.read[..] } else { &self.scopes.read[..1] };
        let legacy = legacy && self.signing.trusted.is_none();
        // Candidates passed over after they were chosen (their archive was refused) are left out.
        let groups_of = |scope: &str| {
            let mut groups = self.candidates(scope, primary_key, restore_keys, fallback).map_err(|e| self.describe_store_error(&e))?;
            for group in &mut groups {
                group.retain(|entry| !passed_over.iter().any(|(name, _)| *name == entry.object.name));
            }
            Ok(groups)
        };
        let examine = |entry: &Entry| match self.examine(entry, wanted) {
            Ok(examined) => Ok(Some(examined)),
            Err(Rejection::Foreign(_)) if legacy => Ok(None),
            Err(rejection) => Err(rejection),
        };
        let notice = |entry: &Entry, why: &str| self.reporter.notice(&format!("passing over cache entry {}: {why}", entry.object.name));
        let signed_time = |examined: &Option<Examined>| examined.as_ref().map_or(0, |e| e.manifest.created_ms);
        let rank: Option<Rank<'_, Option<Examined>>> = if self.signing.trusted.is_some() { Some(&signed_time) } else { None };
        let (entry, examined) = select(scopes, groups_of, examine, notice, rank)?;
        let opened = match examined {
            Some(examined) => {
                let signer = examined.signer.clone();
                self.open_archive(&entry, examined).map(|(manifest, source)| (Some(manifest), source, signer))
            }
            None => self
                .store
                .read(&entry.object, 0, entry.size())
                .map(|source| (None, source, None))
                .map_err(|e| self.describe_store_error(&e)),
        };
        match opened {
            Ok((manifest, source, signer)) => Ok(Chosen { entry, manifest, source, signer }),
            Err(err) => Err(Search::default().store_failed(err)),
        }
    }

    /// The candidate entries of one scope, in the order they are tried, in groups. Slash-named entries
    /// (an earlier s3cache's names for keys with `/`) are candidates too: exact ones after today's.
    fn candidates(
        &self,
        scope: &str,
        primary_key: &str,
        restore_keys: &[String],
        fallback: Fallback,
    ) -> Result<Vec<Vec<Entry>>, StoreError> {
        let store = self.store.as_ref();
        let exact = |key: &str| catalog::find_restorable(store, self.layout, scope, key);
        let scope_prefix = if self.layout.scoped() { format!("{scope}/") } else { String::new() };
        let in_scope = |entry: &Entry| !self.layout.scoped() || entry.name.scope == scope;
        let mut groups = vec![exact(primary_key)?];
        match fallback {
            Fallback::Prefix => {
                for prefix in restore_keys {
                    groups.push(catalog::list_restorable(store, self.layout, scope, prefix)?);
                }
            }
            Fallback::Pattern => {
                let mut listing: Option<Vec<Entry>> = None;
                for (index, key) in std::iter::once(primary_key).chain(restore_keys.iter().map(String::as_str)).enumerate() {
                    if index > 0 {
                        groups.push(exact(key)?);
                    }
                    let Ok(pattern) = regex::Regex::new(key) else { continue };
                    let all = match &listing {
                        Some(all) => all,
                        None => listing.insert(catalog::list(store, self.layout, &scope_prefix)?),
                    };
                    groups.push(all.iter().filter(|e| in_scope(e) && pattern.is_match(&e.name.key)).cloned().collect());
                }
            }
        }
        Ok(groups)
    }
}

/// The versions a restore accepts: its paths (or, when it has none, the entry's own), in the entry's
/// own format.
pub(crate) struct Wanted {
    pub(crate) paths: Option<Vec<String>>,
    /// Whether the restore accepts entries saved for every OS on another OS.
    pub(crate) cross_os: bool,
}

impl Wanted {
    /// This OS's entries always fit; entries saved for every OS on another OS fit when cross-OS is on.
    fn fits(&self, manifest: &Manifest) -> bool {
        let Some(format) = Format::from_name(&manifest.compression) else { return false };
        let paths = self.paths.as_ref().unwrap_or(&manifest.paths);
        manifest.version == entry_version(paths, format, false)
            || (manifest.version == entry_version(paths, format, true) && (self.cross_os || manifest.os == std::env::consts::OS))
    }
}

/// A candidate whose trailer was read and accepted.
pub(crate) struct Examined {
    pub(crate) manifest: Manifest,
    /// Who signed it, when the restore checks signatures.
    pub(crate) signer: Option<Signer>,
    /// The archive, when the examination read the object whole.
    whole: Option<Vec<u8>>,
}

/// The entry a restore will use.
pub(crate) struct Chosen {
    pub(crate) entry: Entry,
    /// `None` for another tool's archive (a legacy restore).
    pub(crate) manifest: Option<Manifest>,
    pub(crate) source: Box<dyn Read + Send>,
    /// Who signed it, when the restore checks signatures.
    pub(crate) signer: Option<Signer>,
}

/// A refusal by the trusted keys, as a restore and `inspect` say it.
pub(crate) fn refused_by_trusted_keys(why: &str) -> String {
    format!("refused by --trusted-keys: {why}")
}

/// Ranks an accepted candidate: of one group, the highest wins ([`select`]).
pub(crate) type Rank<'a, T> = &'a dyn Fn(&T) -> u64;

/// The search over a restore's candidates, without the store: `groups_of(scope)` lists a scope's
/// candidates in the order they are tried ([`CacheContext::candidates`]), and `examine` judges one.
/// Scope by scope (a scope is listed only when the ones before it had nothing usable), group by
/// group, the first candidate `examine` accepts wins; the others are passed over with the reason
/// (`passed_over` is told at once), at most [`MAX_CANDIDATES`] are examined, and a store failure ends
/// the search; a candidate listed again by a later group is not judged again. With `rank`, every candidate of a group is examined and the accepted one of highest
/// rank wins (the listing's order breaks ties): a restore that checks signatures ranks by the signed
/// creation time.
pub(crate) fn select<T>(
    scopes: &[String],
    mut groups_of: impl FnMut(&str) -> Result<Vec<Vec<Entry>>, String>,
    mut examine: impl FnMut(&Entry) -> Result<T, Rejection>,
    mut passed_over: impl FnMut(&Entry, &str),
    rank: Option<Rank<'_, T>>,
) -> Result<(Entry, T), Search> {
    let mut search = Search::default();
    let mut examined = 0;
    // A candidate found by two groups (Semaphore's key, then the key as a pattern) is judged once.
    let mut seen = std::collections::HashSet::new();
    for scope in scopes {
        let groups = match groups_of(scope) {
            Ok(groups) => groups,
            Err(err) => return Err(search.store_failed(err)),
        };
        for group in groups {
            let mut accepted: Vec<(Entry, T)> = Vec::new();
            for entry in group {
                if !seen.insert(entry.object.name.clone()) {
                    continue;
                }
                if examined == MAX_CANDIDATES {
                    if let Some(best) = best_ranked(accepted, rank) {
                        return Ok(best);
                    }
                    search.rejected.push(format!("stopped after {MAX_CANDIDATES} candidates"));
                    return Err(search);
                }
                examined += 1;
                let (why, failed) = match examine(&entry) {
                    Ok(judged) if rank.is_none() => return Ok((entry, judged)),
                    Ok(judged) => {
                        accepted.push((entry, judged));
                        continue;
                    }
                    Err(Rejection::Version(why)) => (why, false),
                    Err(
                        Rejection::Broken(why)
                        | Rejection::Foreign(why)
                        | Rejection::Store(why)
                        | Rejection::Refused(why)
                        | Rejection::Unverified(why),
                    ) => (why, true),
                };
                passed_over(&entry, &why);
                search.failed |= failed;
                search.rejected.push(format!("{}: {why}", entry.object.name));
            }
            if let Some(best) = best_ranked(accepted, rank) {
                return Ok(best);
            }
        }
    }
    Err(search)
}

/// The accepted candidate of highest rank; the first of equals.
fn best_ranked<T>(accepted: Vec<(Entry, T)>, rank: Option<Rank<'_, T>>) -> Option<(Entry, T)> {
    let rank = rank?;
    let mut best: Option<(Entry, T)> = None;
    for candidate in accepted {
        if best.as_ref().is_none_or(|(_, b)| rank(&candidate.1) > rank(b)) {
            best = Some(candidate);
        }
    }
    best
}

/// What a search that found nothing usable saw.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Search {
    /// The candidates passed over, each as `<object name>: <why>`, in the order they were examined.
    pub(crate) rejected: Vec<String>,
    /// Whether an entry existed but could not be used for a reason other than its version.
    pub(crate) failed: bool,
    /// What the store said when it failed and ended the search.
    pub(crate) store_error: Option<String>,
}

impl Search {
    pub(crate) fn store_failed(mut self, err: String) -> Self {
        self.failed = true;
        self.store_error = Some(err);
        self
    }
}

/// Why a candidate entry was passed over.
#[derive(Debug)]
pub(crate) enum Rejection {
    /// Made for other paths, another OS or another archive format: not this restore's entry.
    Version(String),
    /// Empty, with a damaged trailer, or otherwise not a readable entry.
    Broken(String),
    /// Without s3cache's trailer: not an s3cache entry (perhaps another tool's archive).
    Foreign(String),
    /// The store failed while reading it.
    Store(String),
    /// A restore without paths cannot use the paths it records ([`CacheContext::manifest_roots`]).
    Refused(String),
    /// Trusted keys are set, and its signature or what the signed manifest binds it to is refused.
    Unverified(String),
}

impl Rejection {
    /// The reason, as a miss names it.
    pub(crate) fn reason(&self) -> &str {
        match self {
            Rejection::Version(why)
            | Rejection::Broken(why)
            | Rejection::Foreign(why)
            | Rejection::Store(why)
            | Rejection::Refused(why)
            | Rejection::Unverified(why) => why,
        }
    }
}

/// Why an entry's version is not the restore's, in the user's terms.
fn explain_version_mismatch(manifest: &Manifest) -> String {
    if manifest.version.is_empty() {
        return "it was saved by an s3cache without entry versions".into();
    }
    let this_os = std::env::consts::OS;
    if !manifest.cross_os && manifest.os != this_os {
        return format!(
            "it was saved on {} for that OS only, this is {this_os} (save and restore with cross-OS enabled to share it)",
            manifest.os
        );
    }
    if manifest.cross_os && manifest.os != this_os {
        return format!("it was saved on {} for every OS; enable cross-OS restore to use it here", manifest.os);
    }
    format!(
        "its version differs: saved for paths {:?}{}; the restore's paths or cross-OS setting are not the same",
        manifest.paths,
        if manifest.cross_os { " with cross-OS" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::archive::layout::Layout;
    use crate::store::ObjectInfo;

    /// An entry of `key` in `scope` saved `age_secs` ago, as a listing finds it.
    fn saved(scope: &str, key: &str, age_secs: u64) -> ObjectInfo {
        let name = Layout::Scoped.entry_object(scope, key, Format::Zstd);
        ObjectInfo { name, size: 100, modified: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 - age_secs) }
    }

    /// The entries of one listing, in the order a restore tries them (newest first).
    fn listed(objects: Vec<ObjectInfo>) -> Vec<Entry> {
        catalog::restorable_entries(objects, Layout::Scoped)
    }

    fn scopes(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    /// The exact key comes first; then a restore key's entries newest first: the newest of another
    /// version is passed over with its reason, the next one is chosen, and the later scope is never listed.
    #[test]
    fn exact_key_then_restore_key_newest_first_passing_over_other_versions() {
        let mut listed_scopes = Vec::new();
        let mut opened = Vec::new();
        let mut notices = Vec::new();
        let groups_of = |scope: &str| {
            listed_scopes.push(scope.to_owned());
            Ok(vec![
                listed(vec![saved(scope, "deps-abc", 50)]),
                listed(vec![saved(scope, "deps-old", 300), saved(scope, "deps-new", 10), saved(scope, "deps-mid", 100)]),
            ])
        };
        let open = |entry: &Entry| {
            opened.push(entry.name.key.clone());
            match entry.name.key.as_str() {
                "deps-abc" | "deps-new" => Err(Rejection::Version("it was saved for other paths".into())),
                _ => Ok(entry.name.key.clone()),
            }
        };
        let (entry, opened_key) = select(
            &scopes(&["pr-7", "main"]),
            groups_of,
            open,
            |e: &Entry, why: &str| notices.push(format!("{}: {why}", e.object.name)),
            None,
        )
        .unwrap();
        assert_eq!((entry.name.scope.as_str(), entry.name.key.as_str(), opened_key.as_str()), ("pr-7", "deps-mid", "deps-mid"));
        assert_eq!(opened, ["deps-abc", "deps-new", "deps-mid"]);
        assert_eq!(listed_scopes, ["pr-7"]);
        assert_eq!(notices, ["pr-7/deps-abc.tar.zst: it was saved for other paths", "pr-7/deps-new.tar.zst: it was saved for other paths"]);
    }

    /// A scope with nothing usable leads to the next: its exact key is tried before anything else.
    /// Entries of another version only are a plain miss (not failed), naming each with its reason.
    #[test]
    fn scope_by_scope_and_a_miss_that_names_what_it_passed_over() {
        let groups_of = |scope: &str| match scope {
            "pr-7" => Ok(vec![Vec::new(), listed(vec![saved(scope, "deps-1", 5)])]),
            _ => Ok(vec![listed(vec![saved(scope, "deps-abc", 5)]), listed(vec![saved(scope, "deps-2", 1)])]),
        };
        let mut order = Vec::new();
        let open = |entry: &Entry| -> Result<(), Rejection> {
            order.push(entry.object.name.clone());
            Err(Rejection::Version(format!("version of {}", entry.name.key)))
        };
        let search = select(&scopes(&["pr-7", "main"]), groups_of, open, |_: &Entry, _: &str| {}, None).unwrap_err();
        assert_eq!(order, ["pr-7/deps-1.tar.zst", "main/deps-abc.tar.zst", "main/deps-2.tar.zst"]);
        let expected = Search {
            rejected: vec![
                "pr-7/deps-1.tar.zst: version of deps-1".into(),
                "main/deps-abc.tar.zst: version of deps-abc".into(),
                "main/deps-2.tar.zst: version of deps-2".into(),
            ],
            failed: false,
            store_error: None,
        };
        assert_eq!(search, expected);
    }

    /// A broken candidate makes the miss a failed one, but the search goes on to the next; a store
    /// failure while listing a later scope ends it, with what the store said.
    #[test]
    fn broken_candidates_and_store_failures() {
        let groups_of = |scope: &str| match scope {
            "pr-7" => Ok(vec![listed(vec![saved(scope, "k", 5)])]),
            _ => Err("ListObjectsV2 failed: HTTP 500".to_owned()),
        };
        let open = |_: &Entry| -> Result<(), Rejection> { Err(Rejection::Broken("the object is empty".into())) };
        let search = select(&scopes(&["pr-7", "main"]), groups_of, open, |_: &Entry, _: &str| {}, None).unwrap_err();
        let expected = Search {
            rejected: vec!["pr-7/k.tar.zst: the object is empty".into()],
            failed: true,
            store_error: Some("ListObjectsV2 failed: HTTP 500".into()),
        };
        assert_eq!(search, expected);
    }

    /// At most ten candidates are examined (each costs a request); the miss says it stopped.
    #[test]
    fn stops_after_ten_candidates() {
        let many: Vec<ObjectInfo> = (0..12).map(|i| saved("main", &format!("deps-{i:02}"), i)).collect();
        let groups_of = |_: &str| Ok(vec![Vec::new(), listed(many.clone())]);
        let open = |_: &Entry| -> Result<(), Rejection> { Err(Rejection::Version("other paths".into())) };
        let search = select(&scopes(&["main"]), groups_of, open, |_: &Entry, _: &str| {}, None).unwrap_err();
        assert_eq!(search.rejected.len(), 11);
        assert_eq!(search.rejected[0], "main/deps-00.tar.zst: other paths");
        assert_eq!(search.rejected[9], "main/deps-09.tar.zst: other paths");
        assert_eq!(search.rejected[10], "stopped after 10 candidates");
        assert!(!search.failed);
    }

    /// With a rank (a restore that checks signatures), every candidate of a group is examined and the
    /// highest wins, whatever the listing's order; a group with none accepted leads to the next; the
    /// first of equal ranks wins.
    #[test]
    fn ranked_groups_pick_the_highest_rank() {
        let groups_of = |scope: &str| {
            Ok(vec![
                listed(vec![saved(scope, "deps-abc", 1)]),
                listed(vec![saved(scope, "deps-copied", 1), saved(scope, "deps-new", 50), saved(scope, "deps-old", 90)]),
            ])
        };
        let signed_at = |entry: &Entry| -> Result<u64, Rejection> {
            match entry.name.key.as_str() {
                "deps-abc" => Err(Rejection::Unverified("refused by --trusted-keys: the entry is not signed".into())),
                "deps-copied" => Ok(100),
                "deps-new" => Ok(300),
                _ => Ok(300),
            }
        };
        let mut notices = Vec::new();
        let rank = |t: &u64| *t;
        let (entry, signed) = select(
            &scopes(&["main"]),
            groups_of,
            signed_at,
            |e: &Entry, why: &str| notices.push(format!("{}: {why}", e.object.name)),
            Some(&rank),
        )
        .unwrap();
        assert_eq!((entry.name.key.as_str(), signed), ("deps-new", 300), "the newest signed, not the newest listed; the first of equals");
        assert_eq!(notices, ["main/deps-abc.tar.zst: refused by --trusted-keys: the entry is not signed"]);
    }

    /// A candidate that two groups list (a key, then the same key as a pattern) is judged once, and
    /// a miss names it once.
    #[test]
    fn a_candidate_listed_twice_is_judged_once() {
        let groups_of =
            |scope: &str| Ok(vec![listed(vec![saved(scope, "gems", 5)]), listed(vec![saved(scope, "gems", 5), saved(scope, "gems-2", 9)])]);
        let mut judged = Vec::new();
        let open = |entry: &Entry| -> Result<(), Rejection> {
            judged.push(entry.name.key.clone());
            Err(Rejection::Unverified("refused by --trusted-keys: the entry is not signed".into()))
        };
        let search = select(&scopes(&["main"]), groups_of, open, |_: &Entry, _: &str| {}, None).unwrap_err();
        assert_eq!(judged, ["gems", "gems-2"]);
        assert_eq!(
            search.rejected,
            [
                "main/gems.tar.zst: refused by --trusted-keys: the entry is not signed",
                "main/gems-2.tar.zst: refused by --trusted-keys: the entry is not signed"
            ]
        );
    }

    fn manifest(os: &str, cross_os: bool, version: &str) -> Manifest {
        let paths = vec!["target".to_owned()];
        Manifest {
            format: crate::ARCHIVE_FORMAT,
            sha256: String::new(),
            archive_bytes: 0,
            os: os.into(),
            arch: "x86_64".into(),
            members: 0,
            tar_bytes: 0,
            compression: "zstd".into(),
            level: 3,
            version: version.into(),
            paths,
            cross_os,
            plain_names: false,
            ..Manifest::default()
        }
    }

    /// Why an entry of another version is passed over, in the user's terms, case by case; and which
    /// versions a restore accepts.
    #[test]
    fn version_mismatch_reasons_and_what_fits() {
        let this_os = std::env::consts::OS;
        let other_os = if this_os == "windows" { "linux" } else { "windows" };
        let paths = vec!["target".to_owned()];
        assert_eq!(explain_version_mismatch(&manifest(this_os, false, "")), "it was saved by an s3cache without entry versions");
        assert_eq!(
            explain_version_mismatch(&manifest(other_os, false, "x")),
            format!("it was saved on {other_os} for that OS only, this is {this_os} (save and restore with cross-OS enabled to share it)")
        );
        assert_eq!(
            explain_version_mismatch(&manifest(other_os, true, "x")),
            format!("it was saved on {other_os} for every OS; enable cross-OS restore to use it here")
        );
        assert_eq!(
            explain_version_mismatch(&manifest(this_os, true, "x")),
            "its version differs: saved for paths [\"target\"] with cross-OS; the restore's paths or cross-OS setting are not the same"
        );
        let here = manifest(this_os, false, &entry_version(&paths, Format::Zstd, false));
        let everywhere = manifest(other_os, true, &entry_version(&paths, Format::Zstd, true));
        let same_paths = Wanted { paths: Some(paths.clone()), cross_os: false };
        assert!(same_paths.fits(&here));
        assert!(!same_paths.fits(&everywhere), "another OS's cross-OS entry needs cross-OS on");
        assert!(Wanted { paths: Some(paths), cross_os: true }.fits(&everywhere));
        assert!(!Wanted { paths: Some(vec!["other".into()]), cross_os: true }.fits(&here));
        assert!(Wanted { paths: None, cross_os: false }.fits(&here), "without paths, the entry's own");
    }
}
