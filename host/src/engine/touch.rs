//! Refreshing an entry's last-used marker when a restore uses it, for least-recently-used eviction:
//! one small PUT on a thread beside the download, whose failure is only logged.

use std::time::SystemTime;

use crate::archive::catalog::Entry;
use crate::engine::CacheContext;
use crate::store::PutOptions;

impl CacheContext {
    /// Refreshes `entry`'s last-used marker when it is stale, on a thread beside the restore: one small
    /// PUT, never on the critical path, and its failure (a read-only credential, say) is only logged.
    /// Untrusted and read-only runs write nothing. The returned guard waits for the PUT when dropped.
    pub(crate) fn touch(&self, entry: &Entry) -> Option<Touch> {
        if self.scopes.read_only.is_some() || self.store.read_only().is_some() || !entry.needs_touch(SystemTime::now(), self.touch_interval)
        {
            return None;
        }
        // A slash-named entry gets no new marker: no admin verb would ever see it.
        if self.layout.classify(&entry.object.name) == crate::archive::layout::StoreObject::Foreign {
            return None;
        }
        let store = self.store.clone();
        let marker = self.layout.marker(&entry.object.name)?;
        let thread = std::thread::spawn(move || {
            let written = store.put(&marker, PutOptions { if_none_match: false }).and_then(|upload| upload.finish());
            if let Err(err) = written {
                tracing::debug!(%marker, "could not refresh the last-used marker: {err}");
            }
        });
        Some(Touch(Some(thread)))
    }
}

/// A marker refresh in flight; dropping it waits for the PUT (bounded by the transport's timeouts).
pub(crate) struct Touch(Option<std::thread::JoinHandle<()>>);

impl Drop for Touch {
    fn drop(&mut self) {
        if let Some(thread) = self.0.take() {
            let _ = thread.join();
        }
    }
}
