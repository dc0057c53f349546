//! Managing the caches in a store: list, usage, has, delete, and the three ways to remove entries
//! (clear a scope or the store, flush entries unused for a while, prune the least recently used until
//! the store fits a size). Operations that remove entries first select them, so that a front end can
//! show or confirm the selection, then [`CacheContext::remove`] deletes exactly those entries and
//! their markers. Only objects with our own names ([`crate::archive::layout::classify`]) are ever selected:
//! a bucket shared with other data keeps it.
//!
//! Writers that could not clean up (SIGKILL, a lost runner) leave [`Leftover`]s: incomplete multipart
//! uploads, billed until aborted, and a `file://` store's temporary files. `usage` reports them, and
//! `prune`, `flush` and `clear` remove those older than the leftover age
//! ([`DEFAULT_LEFTOVER_AGE`]): younger ones may be writes in progress. An upload belongs to this store
//! when its name is one of ours by the same [`crate::archive::layout::Layout::classify`] as entries, so a
//! bucket-root store leaves a nested store's uploads alone.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::archive::catalog;
pub use crate::archive::catalog::Entry;
use crate::archive::layout::StoreObject;
use crate::engine::CacheContext;
pub use crate::store::{Leftover, LeftoverKind};
use crate::store::{LeftoverListing, StoreError};

/// How old an incomplete upload or temporary file must be before `prune`, `flush` and `clear` remove
/// it (by default; the setting is `--leftover-age`). A day is far longer than any save takes.
pub const DEFAULT_LEFTOVER_AGE: Duration = Duration::from_secs(86_400);

/// Which scopes an admin operation covers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ScopeSelection {
    /// The run's own scope: where its saves go (`local` outside CI).
    #[default]
    Own,
    /// One named scope.
    Named(String),
    /// Every scope under the store prefix.
    All,
}

/// Entries and bytes of one scope, or of the whole store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    /// How many entries.
    pub entries: u64,
    /// Their size in the store, in bytes.
    pub bytes: u64,
}

impl Tally {
    fn add(&mut self, entry: &Entry) {
        self.entries += 1;
        self.bytes += entry.size();
    }

    /// The tally of `entries`.
    pub fn of<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Self {
        let mut tally = Tally::default();
        entries.into_iter().for_each(|e| tally.add(e));
        tally
    }
}

/// What `usage` reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Per scope, by scope name.
    pub scopes: BTreeMap<String, Tally>,
    /// The whole store.
    pub total: Tally,
    /// The store's incomplete uploads and temporary files, whatever their age.
    pub leftovers: Leftovers,
}

/// A store's leftovers, or why they could not be listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// Those found that belong to this store.
    pub found: Vec<Leftover>,
    /// Why the store could not list (some of) them: the server cannot list incomplete uploads, or
    /// the listing failed. `None` when the listing is complete.
    pub unlisted: Option<String>,
}

impl Leftovers {
    /// The bytes they hold, as far as the store says.
    pub fn bytes(&self) -> u64 {
        self.found.iter().filter_map(|l| l.bytes).sum()
    }
}

/// What a removal did.
#[derive(Debug, Default)]
pub struct Removal {
    /// Entries deleted.
    pub deleted: Vec<Entry>,
    /// Entries that could not be deleted, with the store's reason.
    pub failed: Vec<(Entry, String)>,
    /// Leftovers removed (incomplete uploads aborted, temporary files deleted).
    pub leftovers_removed: Vec<Leftover>,
    /// Leftovers that could not be removed, with the store's reason.
    pub leftovers_failed: Vec<(Leftover, String)>,
    /// Why leftovers could not be listed, if they could not.
    pub leftovers_unlisted: Option<String>,
}

impl CacheContext {
    /// The one scope `selection` names, or `None` for every scope (and in a layout without scopes).
    fn selected_scope<'a>(&'a self, selection: &'a ScopeSelection) -> Option<&'a str> {
        match selection {
            _ if !self.layout.scoped() => None,
            ScopeSelection::Own => Some(self.scopes.write.as_str()),
            ScopeSelection::Named(scope) => Some(scope.as_str()),
            ScopeSelection::All => None,
        }
    }

    fn scope_prefix(&self, selection: &ScopeSelection) -> String {
        self.selected_scope(selection).map_or_else(String::new, |scope| format!("{scope}/"))
    }

    /// The entries in `selection` whose key starts with `key_prefix`, newest saved first. Reads
    /// every listing page.
    pub fn list_entries(&self, selection: &ScopeSelection, key_prefix: &str) -> Result<Vec<Entry>, StoreError> {
        let mut entries = catalog::list(self.store.as_ref(), self.layout, &self.scope_prefix(selection))?;
        entries.retain(|e| e.name.key.starts_with(key_prefix));
        Ok(entries)
    }

    /// Entries and bytes per scope and in total, over the whole store, and its leftovers.
    pub fn usage(&self) -> Result<Usage, StoreError> {
        let mut usage = Usage::default();
        for entry in self.list_entries(&ScopeSelection::All, "")? {
            usage.scopes.entry(entry.name.scope.clone()).or_default().add(&entry);
            usage.total.add(&entry);
        }
        usage.leftovers = self.leftovers(&ScopeSelection::All);
        Ok(usage)
    }

    /// The leftovers in `selection` that belong to this store: uploads of names that are ours (in
    /// the selected scopes), and, for the whole store, its temporary files. A listing that fails is
    /// reported in [`Leftovers::unlisted`], not as an error: leftovers never stop an admin verb.
    pub fn leftovers(&self, selection: &ScopeSelection) -> Leftovers {
        let listed = match self.store.leftovers() {
            Ok(LeftoverListing::Listed(listed)) => listed,
            Ok(LeftoverListing::Unlisted(why)) => return Leftovers { found: Vec::new(), unlisted: Some(why) },
            Err(err) => {
                return Leftovers { found: Vec::new(), unlisted: Some(self.reporter.scrub(&format!("listing them failed: {err}"))) };
            }
        };
        let scope = self.selected_scope(selection);
        let belongs = |leftover: &Leftover| match leftover.name.as_deref().map(|name| self.layout.classify(name)) {
            None => scope.is_none(),
            Some(StoreObject::Entry(name) | StoreObject::Marker(name)) => scope.is_none_or(|scope| name.scope == scope),
            Some(StoreObject::Foreign) => false,
        };
        Leftovers { found: listed.into_iter().filter(belongs).collect(), unlisted: None }
    }

    /// The leftovers in `selection` that are older than `older_than` at `now`: those
    /// [`Self::remove_leftovers`] removes.
    pub fn old_leftovers(&self, selection: &ScopeSelection, older_than: Duration, now: SystemTime) -> Leftovers {
        let mut leftovers = self.leftovers(selection);
        leftovers.found.retain(|leftover| now.duration_since(leftover.started).is_ok_and(|age| age >= older_than));
        leftovers
    }

    /// What [`Self::remove`] and [`Self::remove_leftovers`] would do, doing nothing: `entries` as
    /// deleted and the old leftovers as removed, as a dry run shows them.
    pub fn planned_removal(&self, entries: Vec<Entry>, selection: &ScopeSelection, older_than: Duration, now: SystemTime) -> Removal {
        let leftovers = self.old_leftovers(selection, older_than, now);
        Removal { deleted: entries, leftovers_removed: leftovers.found, leftovers_unlisted: leftovers.unlisted, ..Removal::default() }
    }

    /// Removes the leftovers in `selection` that are older than `older_than` at `now`, and records
    /// what it did in `removal`; goes on past failures.
    pub fn remove_leftovers(&self, selection: &ScopeSelection, older_than: Duration, now: SystemTime, removal: &mut Removal) {
        let leftovers = self.old_leftovers(selection, older_than, now);
        removal.leftovers_unlisted = leftovers.unlisted;
        for leftover in leftovers.found {
            match self.store.remove_leftover(&leftover) {
                Ok(()) => removal.leftovers_removed.push(leftover),
                Err(err) => {
                    let reason = self.reporter.scrub(&err.to_string());
                    removal.leftovers_failed.push((leftover, reason));
                }
            }
        }
    }

    /// The newest entry with exactly `key`, searched in the scopes a restore would read (or only in
    /// `scope`), in any format; like a restore, it finds slash-named entries too, and unlike a restore,
    /// protocol entries ([`crate::archive::layout`]) when the scope has no other.
    pub fn find_entry(&self, key: &str, scope: Option<&str>) -> Result<Option<Entry>, StoreError> {
        let scopes = match scope {
            Some(scope) => vec![scope.to_owned()],
            None if self.layout.scoped() => self.scopes.read.clone(),
            None => self.scopes.read[..1].to_vec(),
        };
        for scope in scopes {
            if let Some(entry) = catalog::find_restorable(self.store.as_ref(), self.layout, &scope, key)?.into_iter().next() {
                return Ok(Some(entry));
            }
            if let Some(entry) = catalog::find_protocol_key(self.store.as_ref(), self.layout, &scope, key)?.into_iter().next() {
                return Ok(Some(entry));
            }
        }
        Ok(None)
    }

    /// The entries (every format, and protocol entries of every version) of exactly `key` in `scope`,
    /// default the run's own scope.
    pub fn key_entries(&self, key: &str, scope: Option<&str>) -> Result<Vec<Entry>, StoreError> {
        let scope = scope.unwrap_or(&self.scopes.write);
        let mut entries = catalog::find_key(self.store.as_ref(), self.layout, scope, key)?;
        entries.extend(catalog::find_protocol_key(self.store.as_ref(), self.layout, scope, key)?);
        Ok(entries)
    }

    /// Entries not used (restored or saved) since `older_than` before `now`, over the whole store.
    pub fn stale_entries(&self, older_than: Duration, now: SystemTime) -> Result<Vec<Entry>, StoreError> {
        let mut entries = self.list_entries(&ScopeSelection::All, "")?;
        entries.retain(|e| now.duration_since(e.last_used).is_ok_and(|age| age > older_than));
        entries.sort_by_key(|e| e.last_used);
        Ok(entries)
    }

    /// The least recently used entries whose removal brings the store to at most `max_bytes`, oldest
    /// use first (ties: the older save, then the name).
    pub fn eviction_candidates(&self, max_bytes: u64) -> Result<(Vec<Entry>, Tally), StoreError> {
        let mut entries = self.list_entries(&ScopeSelection::All, "")?;
        let total = Tally::of(&entries);
        entries
            .sort_by(|a, b| a.last_used.cmp(&b.last_used).then(a.saved().cmp(&b.saved())).then_with(|| a.object.name.cmp(&b.object.name)));
        let mut bytes = total.bytes;
        let evict = entries.into_iter().take_while(|e| {
            let over = bytes > max_bytes;
            if over {
                bytes -= e.size();
            }
            over
        });
        Ok((evict.collect(), total))
    }

    /// Deletes `entries` and their markers; goes on past failures and reports them.
    pub fn remove(&self, entries: Vec<Entry>) -> Removal {
        let mut removal = Removal::default();
        for entry in entries {
            match catalog::delete(self.store.as_ref(), self.layout, &entry) {
                Ok(()) => removal.deleted.push(entry),
                Err(err) => {
                    let reason = self.reporter.scrub(&err.to_string());
                    removal.failed.push((entry, reason));
                }
            }
        }
        removal
    }
}
