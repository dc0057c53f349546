//! Names that no other process or thread uses at the same time, for temporary files and directories
//! (the file store's uploads, the compiled guest's temporary copy, staging directories): a prefix
//! that says whose they are, then the process id, the clock's nanoseconds and a counter.

use std::sync::atomic::{AtomicU64, Ordering};

/// A name starting with `prefix` that no other process or call uses: pid, time and a counter.
pub(crate) fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos();
    format!("{prefix}{}-{nanos}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}
