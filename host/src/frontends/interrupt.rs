//! SIGINT and SIGTERM for the command line. The first signal cancels the process's [`Cancel`] token,
//! which every operation's context carries: the engine unwinds, its hooks abort the upload or remove
//! the staging directories at once, and the process prints one line (`interrupted: nothing saved`,
//! `interrupted: target left as it was`) and exits 128 + the signal (130, 143). A request to a
//! stalled server cannot hold that up: once the hooks are done (at most [`CLEANUP_BUDGET`] after the
//! signal), the operation gets [`UNWIND_GRACE`] to return by itself, and then the process exits
//! whatever the operation is still waiting for. A second signal exits at once.
//!
//! GitHub Actions sends SIGINT to cancel a step, SIGTERM 7.5 s later and then SIGKILL, so everything
//! has to happen well within 7.5 s.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::Cancel;

/// The longest the process lives after the first signal.
pub const CLEANUP_BUDGET: Duration = Duration::from_secs(2);
/// How long the operation may take to return after the clean-up hooks are done (writing its summary,
/// say) before the process exits without it.
pub const UNWIND_GRACE: Duration = Duration::from_millis(500);

/// What is printed when a save is interrupted.
pub const SAVE_INTERRUPTED: &str = "interrupted: nothing saved";
/// What is printed when a restore is interrupted.
pub const RESTORE_INTERRUPTED: &str = "interrupted: target left as it was";
/// What is printed when anything else is interrupted.
pub const INTERRUPTED: &str = "interrupted";

struct Interrupts {
    cancel: Cancel,
    /// The first signal's number, 0 before one came.
    signal: AtomicI32,
    signalled_at: Mutex<Option<Instant>>,
    /// The line to print when interrupted; `None` once the operation has finished anyway.
    message: Mutex<Option<&'static str>>,
    printed: AtomicBool,
}

static INTERRUPTS: OnceLock<Interrupts> = OnceLock::new();
/// Held by the thread that exits, so that two never call `exit` at once.
static EXITING: Mutex<()> = Mutex::new(());

fn interrupts() -> &'static Interrupts {
    INTERRUPTS.get_or_init(|| Interrupts {
        cancel: Cancel::new(),
        signal: AtomicI32::new(0),
        signalled_at: Mutex::new(None),
        message: Mutex::new(Some(INTERRUPTED)),
        printed: AtomicBool::new(false),
    })
}

/// Handles SIGINT and SIGTERM from now on (once per process; later calls only return the token)
/// and returns the token they cancel. `message` is the line printed when interrupted.
pub fn install(message: &'static str) -> Cancel {
    let state = interrupts();
    *state.message.lock().expect("message lock") = Some(message);
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(listen);
    state.cancel.clone()
}

#[cfg(unix)]
fn listen() {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = match signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) {
        Ok(signals) => signals,
        Err(err) => {
            tracing::warn!(error = %err, "could not handle SIGINT and SIGTERM; an interrupt will not clean up");
            return;
        }
    };
    std::thread::spawn(move || {
        for signal in signals.forever() {
            received(signal);
        }
    });
}

#[cfg(not(unix))]
fn listen() {}

/// The first signal cancels and starts the clock; the second exits now.
fn received(signal: i32) {
    let state = interrupts();
    if state.signal.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst).is_err() {
        exit(signal);
    }
    let signalled = Instant::now();
    *state.signalled_at.lock().expect("clock lock") = Some(signalled);
    let cancel = state.cancel.clone();
    std::thread::spawn(move || cancel.cancel());
    std::thread::spawn(move || {
        await_cleanup(state, signalled);
        std::thread::sleep(UNWIND_GRACE.min(CLEANUP_BUDGET.saturating_sub(signalled.elapsed())));
        exit(signal);
    });
}

/// Waits until the clean-up hooks have run, or [`CLEANUP_BUDGET`] after `signalled`.
fn await_cleanup(state: &Interrupts, signalled: Instant) {
    let left = || CLEANUP_BUDGET.saturating_sub(signalled.elapsed());
    // The signal thread may not have started cancelling yet.
    if state.cancel.wait_timeout(left()) {
        state.cancel.wait_for_cleanup(left());
    }
}

/// Prints the line (once) and exits 128 + `signal`.
fn exit(signal: i32) -> ! {
    let _only_this_thread = EXITING.lock();
    let state = interrupts();
    if !state.printed.swap(true, Ordering::SeqCst)
        && let Some(message) = *state.message.lock().expect("message lock")
    {
        eprintln!("{message}");
    }
    std::process::exit(exit_code(signal))
}

/// The exit code after `signal`: 128 + the signal, as shells report it (130 for SIGINT, 143 for SIGTERM).
pub fn exit_code(signal: i32) -> i32 {
    128 + signal
}

/// Called when the operation has returned: without a signal, `code`; after one, waits for the
/// clean-up hooks (within [`CLEANUP_BUDGET`] of the signal), prints the line and exits 128 + the signal.
pub fn finish(code: u8) -> u8 {
    let Some(state) = INTERRUPTS.get() else { return code };
    let signal = state.signal.load(Ordering::SeqCst);
    if signal == 0 {
        return code;
    }
    let signalled = state.signalled_at.lock().expect("clock lock").unwrap_or_else(Instant::now);
    await_cleanup(state, signalled);
    exit(signal)
}

/// Says that the operation finished anyway (saved, restored, listed) although a signal came: no
/// `interrupted` line is printed then, only the exit code says it.
pub fn completed_anyway() {
    if let Some(state) = INTERRUPTS.get() {
        *state.message.lock().expect("message lock") = None;
    }
}
