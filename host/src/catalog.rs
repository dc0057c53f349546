//! The entries a store listing shows: each entry's object with its last use, from the entry's own
//! time and its last-used marker ([`crate::layout`]). Restores use it to pick candidates, and the
//! admin verbs to list, count and evict; objects that are not ours are dropped here.

use std::collections::HashMap;
use std::time::SystemTime;

use crate::layout::{self, EntryName, Format, Layout, StoreObject};
use crate::store::{BlobStore, ObjectInfo, StoreError};

/// One cache entry in a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its scope, key and format, from its object name.
    pub name: EntryName,
    /// The entry's object (name, compressed size, when it was saved).
    pub object: ObjectInfo,
    /// When a restore last used it (its marker's time), or when it was saved if that is later.
    pub last_used: SystemTime,
    /// Whether a last-used marker exists (it is deleted with the entry).
    pub has_marker: bool,
}

impl Entry {
    /// Size in bytes of the compressed entry.
    pub fn size(&self) -> u64 {
        self.object.size
    }

    /// When the entry was saved.
    pub fn saved(&self) -> SystemTime {
        self.object.modified
    }

    /// Whether a restore at `now` should refresh the marker, given the refresh interval.
    pub fn needs_touch(&self, now: SystemTime, interval: std::time::Duration) -> bool {
        now.duration_since(self.last_used).is_ok_and(|age| age >= interval)
    }
}

/// Groups listed objects into entries with their markers, newest saved first (then by name, for a
/// stable order). Foreign objects and markers without an entry are dropped.
pub fn entries(objects: Vec<ObjectInfo>, layout: Layout) -> Vec<Entry> {
    let mut markers: HashMap<EntryName, SystemTime> = HashMap::new();
    let mut found = Vec::new();
    for object in objects {
        match layout.classify(&object.name) {
            StoreObject::Entry(name) => found.push((name, object)),
            StoreObject::Marker(name) => {
                markers.insert(name, object.modified);
            }
            StoreObject::Foreign => {}
        }
    }
    let mut entries: Vec<Entry> = found
        .into_iter()
        .map(|(name, object)| {
            let marker = markers.get(&name).copied();
            let last_used = marker.map_or(object.modified, |m| m.max(object.modified));
            Entry { name, object, last_used, has_marker: marker.is_some() }
        })
        .collect();
    entries.sort_by(|a, b| b.object.modified.cmp(&a.object.modified).then_with(|| b.object.name.cmp(&a.object.name)));
    entries
}

/// Every entry whose object name starts with `prefix` (a scope, `scope/keyprefix`, or empty for all).
pub fn list(store: &dyn BlobStore, layout: Layout, prefix: &str) -> Result<Vec<Entry>, StoreError> {
    Ok(entries(store.list(prefix)?, layout))
}

/// The entries of exactly `key` in `scope`, in any format, newest first. A store that cannot list (a
/// public URL) is asked for each format's object by name instead, and so is a Flat layout's one
/// name; neither has markers.
pub fn find_key(store: &dyn BlobStore, layout: Layout, scope: &str, key: &str) -> Result<Vec<Entry>, StoreError> {
    if layout == Layout::Flat {
        return Ok(entries(store.head(key)?.into_iter().collect(), layout));
    }
    if !store.can_list() {
        let mut found = Vec::new();
        for format in Format::ALL {
            if let Some(object) = store.head(&layout::entry_object(scope, key, format))? {
                found.push(object);
            }
        }
        return Ok(entries(found, layout));
    }
    let mut found = list(store, layout, &layout::key_prefix(scope, key))?;
    found.retain(|e| e.name.key == key && e.name.scope == scope);
    Ok(found)
}

/// Deletes an entry and its marker (the entry first, so that a failure never leaves an entry
/// without the marker that dates its last use).
pub fn delete(store: &dyn BlobStore, layout: Layout, entry: &Entry) -> Result<(), StoreError> {
    store.delete(&entry.object.name)?;
    if let (true, Some(marker)) = (entry.has_marker, layout.marker(&entry.object.name)) {
        store.delete(&marker)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn object(name: &str, secs: u64) -> ObjectInfo {
        ObjectInfo { name: name.into(), size: secs, modified: SystemTime::UNIX_EPOCH + Duration::from_secs(secs) }
    }

    /// Markers date an entry's last use; foreign objects and orphan markers are dropped; newest first.
    #[test]
    fn groups_entries_and_markers() {
        let listed = vec![
            object("local/a.tar.zst", 100),
            object("local/a.tar.zst.used", 500),
            object("local/b.tar.gz", 200),
            object("local/b.tar.gz.used", 150),
            object("local/gone.tar.used", 900),
            object("notes.txt", 999),
        ];
        let entries = entries(listed, Layout::Scoped);
        let summary: Vec<(&str, u64, bool)> = entries
            .iter()
            .map(|e| (e.name.key.as_str(), e.last_used.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(), e.has_marker))
            .collect();
        assert_eq!(summary, vec![("b", 200, true), ("a", 500, true)]);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(500) + layout::TOUCH_INTERVAL;
        assert!(!entries[1].needs_touch(now - Duration::from_secs(1), layout::TOUCH_INTERVAL));
        assert!(entries[1].needs_touch(now, layout::TOUCH_INTERVAL));
    }
}
