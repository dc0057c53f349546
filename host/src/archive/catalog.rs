//! The entries a store listing shows: each entry's object with its last use, from the entry's own
//! time and its last-used marker ([`crate::archive::layout`]). Restores use it to pick candidates, and the
//! admin verbs to list, count and evict; objects that are not ours are dropped here. Restores also
//! read slash-named entries (an earlier s3cache's names for keys with `/`, [`crate::archive::layout`]); admin
//! verbs never do.

use std::collections::HashMap;
use std::time::SystemTime;

use crate::archive::layout::{self, EntryName, Format, Layout, StoreObject};
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
    group(objects, |name| layout.classify(name))
}

/// [`entries`], and slash-named entries with their markers too, but no protocol entries: what a
/// restore may use.
pub fn restorable_entries(objects: Vec<ObjectInfo>, layout: Layout) -> Vec<Entry> {
    group(objects, |name| match layout.classify(name) {
        StoreObject::Foreign => layout.classify_slash_named(name),
        StoreObject::Entry(entry) | StoreObject::Marker(entry) if entry.is_protocol_entry() => StoreObject::Foreign,
        ours => ours,
    })
}

fn group(objects: Vec<ObjectInfo>, classify: impl Fn(&str) -> StoreObject) -> Vec<Entry> {
    // By the entry's object name: a slash-named entry and today's may share scope, key and format.
    let mut markers: HashMap<String, SystemTime> = HashMap::new();
    let mut found = Vec::new();
    for object in objects {
        match classify(&object.name) {
            StoreObject::Entry(name) => found.push((name, object)),
            StoreObject::Marker(_) => {
                let entry = object.name.strip_suffix(layout::MARKER_SUFFIX).unwrap_or(&object.name).to_owned();
                markers.insert(entry, object.modified);
            }
            StoreObject::Foreign => {}
        }
    }
    let mut entries: Vec<Entry> = found
        .into_iter()
        .map(|(name, object)| {
            let marker = markers.get(&object.name).copied();
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
/// name; neither has markers. Slash-named entries are not among them ([`find_restorable`]).
pub fn find_key(store: &dyn BlobStore, layout: Layout, scope: &str, key: &str) -> Result<Vec<Entry>, StoreError> {
    if layout == Layout::Flat {
        return Ok(entries(store.head(key)?.into_iter().collect(), layout));
    }
    if !store.can_list() {
        return Ok(entries(head_formats(store, |format| Some(layout::entry_object(scope, key, format)))?, layout));
    }
    let mut found = list(store, layout, &layout::key_prefix(scope, key))?;
    found.retain(|e| e.name.key == key && e.name.scope == scope);
    Ok(found)
}

/// The protocol entries of exactly `key` in `scope` (every version), newest first: what `s3cache
/// serve` saved for a cache-protocol client ([`crate::archive::layout`]).
pub fn find_protocol_key(store: &dyn BlobStore, layout: Layout, scope: &str, key: &str) -> Result<Vec<Entry>, StoreError> {
    if !layout.scoped() || !store.can_list() {
        return Ok(Vec::new());
    }
    let mut found = list(store, layout, &format!("{}{}", layout::protocol_key_prefix(scope, key), ",,"))?;
    found.retain(|e| e.name.is_protocol_entry() && e.name.key == key && e.name.scope == scope);
    Ok(found)
}

/// [`find_key`], then the slash-named entries of `key` (only a key with `/` has them): every entry a
/// restore of exactly `key` may use, in the order it tries them.
pub fn find_restorable(store: &dyn BlobStore, layout: Layout, scope: &str, key: &str) -> Result<Vec<Entry>, StoreError> {
    let mut found = find_key(store, layout, scope, key)?;
    // Only a key with `/` had another name; the tar one, `<scope>/<key>.tar`, starts every format's.
    let Some(tar_name) = layout.slash_named_object(scope, key, Format::Tar) else { return Ok(found) };
    let objects = if store.can_list() {
        store.list(&tar_name)?
    } else {
        head_formats(store, |format| layout.slash_named_object(scope, key, format))?
    };
    found.extend(restorable_entries(objects, layout).into_iter().filter(|e| e.name.key == key && e.name.scope == scope));
    Ok(found)
}

/// Every entry in `scope` whose key starts with `key_prefix`, slash-named ones included, newest
/// saved first: the candidates of a restore key.
pub fn list_restorable(store: &dyn BlobStore, layout: Layout, scope: &str, key_prefix: &str) -> Result<Vec<Entry>, StoreError> {
    let mut objects = Vec::new();
    for prefix in layout.listing_prefixes(scope, key_prefix) {
        objects.extend(store.list(&prefix)?);
    }
    let mut found = restorable_entries(objects, layout);
    found.retain(|e| (!layout.scoped() || e.name.scope == scope) && e.name.key.starts_with(key_prefix));
    Ok(found)
}

/// The objects named `name(format)` that exist, asked for one by one.
fn head_formats(store: &dyn BlobStore, name: impl Fn(Format) -> Option<String>) -> Result<Vec<ObjectInfo>, StoreError> {
    let mut found = Vec::new();
    for name in Format::ALL.into_iter().filter_map(name) {
        found.extend(store.head(&name)?);
    }
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

    /// Admin verbs' grouping leaves slash-named entries out; a restore's takes them, each with its own
    /// marker although it shares scope, key and format with today's entry.
    #[test]
    fn slash_named_entries_only_for_restores() {
        let listed = vec![
            object("local/a,b.tar.zst", 100),
            object("local/a,b.tar.zst.used", 300),
            object("local/a/b.tar.zst", 200),
            object("local/a/b.tar.zst.used", 400),
            object("local/c/d.tar.used", 900),
        ];
        let summary = |entries: Vec<Entry>| -> Vec<(String, String, u64)> {
            entries
                .into_iter()
                .map(|e| (e.object.name, e.name.key, e.last_used.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()))
                .collect()
        };
        assert_eq!(summary(entries(listed.clone(), Layout::Scoped)), vec![("local/a,b.tar.zst".into(), "a/b".into(), 300)]);
        assert_eq!(
            summary(restorable_entries(listed, Layout::Scoped)),
            vec![("local/a/b.tar.zst".into(), "a/b".into(), 400), ("local/a,b.tar.zst".into(), "a/b".into(), 300)]
        );
    }
}
