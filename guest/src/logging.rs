//! Messages to the host's log. In the component they go through the `log` import; natively (tests)
//! they go to stderr.

#[cfg(target_arch = "wasm32")]
use crate::bindings::s3cache::guest::log::{Level, emit};

/// Logs a warning: something was skipped but the operation goes on.
pub fn warn(message: &str) {
    #[cfg(target_arch = "wasm32")]
    emit(Level::Warn, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("guest warning: {message}");
}

/// Logs detail for verbose runs.
pub fn debug(message: &str) {
    #[cfg(target_arch = "wasm32")]
    emit(Level::Debug, message);
    #[cfg(not(target_arch = "wasm32"))]
    let _ = message;
}
