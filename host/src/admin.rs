//! Managing the caches in a store: list, usage, has, delete, and the three ways to remove entries
//! (clear a scope or the store, flush entries unused for a while, prune the least recently used until
//! the store fits a size). Operations that remove entries first select them, so that a front end can
//! show or confirm the selection, then [`CacheContext::remove`] deletes exactly those entries and
//! their markers. Only objects with our own names ([`crate::layout::classify`]) are ever selected:
//! a bucket shared with other data keeps it.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::cache::CacheContext;
use crate::catalog;
pub use crate::catalog::Entry;
use crate::store::StoreError;

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
}

/// What a removal did.
#[derive(Debug, Default)]
pub struct Removal {
    /// Entries deleted.
    pub deleted: Vec<Entry>,
    /// Entries that could not be deleted, with the store's reason.
    pub failed: Vec<(Entry, String)>,
}

impl CacheContext {
    fn scope_prefix(&self, selection: &ScopeSelection) -> String {
        if !self.layout.scoped() {
            return String::new();
        }
        match selection {
            ScopeSelection::Own => format!("{}/", self.scopes.write),
            ScopeSelection::Named(scope) => format!("{scope}/"),
            ScopeSelection::All => String::new(),
        }
    }

    /// The entries in `selection` whose key starts with `key_prefix`, newest saved first. Reads
    /// every listing page.
    pub fn list_entries(&self, selection: &ScopeSelection, key_prefix: &str) -> Result<Vec<Entry>, StoreError> {
        let mut entries = catalog::list(self.store.as_ref(), self.layout, &self.scope_prefix(selection))?;
        entries.retain(|e| e.name.key.starts_with(key_prefix));
        Ok(entries)
    }

    /// Entries and bytes per scope and in total, over the whole store.
    pub fn usage(&self) -> Result<Usage, StoreError> {
        let mut usage = Usage::default();
        for entry in self.list_entries(&ScopeSelection::All, "")? {
            usage.scopes.entry(entry.name.scope.clone()).or_default().add(&entry);
            usage.total.add(&entry);
        }
        Ok(usage)
    }

    /// The newest entry with exactly `key`, searched in the scopes a restore would read (or only in
    /// `scope`), in any format; like a restore, it finds slash-named entries too ([`crate::layout`]).
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
        }
        Ok(None)
    }

    /// The entries (every format) of exactly `key` in `scope`, default the run's own scope.
    pub fn key_entries(&self, key: &str, scope: Option<&str>) -> Result<Vec<Entry>, StoreError> {
        catalog::find_key(self.store.as_ref(), self.layout, scope.unwrap_or(&self.scopes.write), key)
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
        entries.sort_by(|a, b| a.last_used.cmp(&b.last_used).then(a.saved().cmp(&b.saved())).then_with(|| a.object.name.cmp(&b.object.name)));
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
                    let reason = crate::output::scrub(&err.to_string());
                    removal.failed.push((entry, reason));
                }
            }
        }
        removal
    }
}
