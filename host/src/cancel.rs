//! Cancelling an operation from outside: a [`Cancel`] token that the caller creates, hands to the
//! engine ([`crate::CacheContext::cancel`]) and cancels when the user interrupts (the CLI does so on
//! SIGINT and SIGTERM). It is a value, not a process-wide flag, so that an embedder can run several
//! operations and cancel one.
//!
//! The engine checks the token between steps and in every read and write of archive data, so that it
//! unwinds by itself. Unwinding may be slow, though: a request to a stalled server waits for its
//! timeout, the guest may be in the middle of compressing a part. So whatever must not outlive an
//! interrupted operation (a multipart upload billed until aborted, a temporary file, a staging
//! directory) also registers a clean-up hook with [`Cancel::on_cancel`]: `cancel` runs the hooks at
//! once, on the cancelling thread, whatever the operation's own thread is doing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

type Hook = Box<dyn FnOnce() + Send>;

/// A cancellation token; clones share it. [`Cancel::default`] is a token nobody cancels.
#[derive(Clone, Default)]
pub struct Cancel {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    cancelled: AtomicBool,
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    hooks: Vec<(u64, Hook)>,
    next_id: u64,
    /// The hook being run by `cancel`, so that unregistering it waits until it is done.
    running: Option<u64>,
    /// Whether `cancel` has run every hook.
    cleaned_up: bool,
}

impl std::fmt::Debug for Cancel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cancel").field("cancelled", &self.is_cancelled()).finish_non_exhaustive()
    }
}

/// The error an operation stops with once its token is cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted;

impl Interrupted {
    /// Whether an I/O error is this one (a reader or writer that saw the token cancelled).
    pub fn is(err: &std::io::Error) -> bool {
        err.get_ref().is_some_and(|inner| inner.is::<Interrupted>())
    }
}

impl From<Interrupted> for std::io::Error {
    /// Of kind `Other`: `ErrorKind::Interrupted` would make `read_to_end` and `io::copy` try again.
    fn from(err: Interrupted) -> Self {
        std::io::Error::other(err)
    }
}

impl Cancel {
    /// A token nobody has cancelled yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels: every later check fails, waiters wake up, and the registered hooks run now, on this
    /// thread, one after the other. Cancelling again does nothing.
    pub fn cancel(&self) {
        if self.inner.cancelled.swap(true, Ordering::SeqCst) {
            return;
        }
        self.inner.changed.notify_all();
        loop {
            let hook = {
                let mut state = self.inner.state.lock().expect("cancel lock");
                state.running = None;
                match state.hooks.pop() {
                    Some((id, hook)) => {
                        state.running = Some(id);
                        hook
                    }
                    None => {
                        state.cleaned_up = true;
                        break;
                    }
                }
            };
            self.inner.changed.notify_all();
            hook();
        }
        self.inner.changed.notify_all();
    }

    /// Whether the token was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// `Err(Interrupted)` once cancelled.
    pub fn check(&self) -> Result<(), Interrupted> {
        if self.is_cancelled() { Err(Interrupted) } else { Ok(()) }
    }

    /// Waits until the token is cancelled or `timeout` has passed; true when cancelled.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        drop(self.wait_while(timeout, |_| !self.is_cancelled()));
        self.is_cancelled()
    }

    /// After [`Cancel::cancel`]: waits until every hook has run or `timeout` has passed; true when
    /// they all ran. False at once when the token was not cancelled.
    pub fn wait_for_cleanup(&self, timeout: Duration) -> bool {
        self.wait_while(timeout, |state| self.is_cancelled() && !state.cleaned_up).cleaned_up
    }

    /// Waits on the token's changes while `waiting` holds, for at most `timeout`; returns the state
    /// as it was last seen, still locked.
    fn wait_while(&self, timeout: Duration, waiting: impl Fn(&State) -> bool) -> std::sync::MutexGuard<'_, State> {
        let deadline = Instant::now() + timeout;
        let mut state = self.inner.state.lock().expect("cancel lock");
        while waiting(&state) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self.inner.changed.wait_timeout(state, left).expect("cancel lock").0;
        }
        state
    }

    /// Registers `hook` to run when the token is cancelled, until the returned guard is dropped. On
    /// a token already cancelled the hook runs now, on this thread.
    pub fn on_cancel(&self, hook: impl FnOnce() + Send + 'static) -> CancelHook {
        let mut state = self.inner.state.lock().expect("cancel lock");
        if self.is_cancelled() {
            drop(state);
            hook();
            return CancelHook { cancel: self.clone(), id: None };
        }
        let id = state.next_id;
        state.next_id += 1;
        state.hooks.push((id, Box::new(hook)));
        CancelHook { cancel: self.clone(), id: Some(id) }
    }
}

/// A registered clean-up hook; dropping it unregisters the hook, and waits for it to finish when
/// `cancel` is running it, so that after the drop the hook neither runs nor is running.
#[must_use = "dropping the guard unregisters the hook"]
pub struct CancelHook {
    cancel: Cancel,
    id: Option<u64>,
}

impl std::fmt::Debug for CancelHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelHook").field("id", &self.id).finish()
    }
}

impl Drop for CancelHook {
    fn drop(&mut self) {
        let Some(id) = self.id else { return };
        let inner = &self.cancel.inner;
        let mut state = inner.state.lock().expect("cancel lock");
        state.hooks.retain(|(hook, _)| *hook != id);
        while state.running == Some(id) {
            state = inner.changed.wait(state).expect("cancel lock");
        }
    }
}

/// A reader that fails with [`Interrupted`] once the token is cancelled.
pub(crate) struct CancelReader<R> {
    pub(crate) inner: R,
    pub(crate) cancel: Cancel,
}

impl<R: std::io::Read> std::io::Read for CancelReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.cancel.check()?;
        self.inner.read(buf)
    }
}

/// A writer that fails with [`Interrupted`] once the token is cancelled.
pub(crate) struct CancelWriter<W> {
    pub(crate) inner: W,
    pub(crate) cancel: Cancel,
}

impl<W: std::io::Write> std::io::Write for CancelWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.cancel.check()?;
        self.inner.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.cancel.check()?;
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Hooks run once, at the cancel, unless their guard was dropped before; a hook registered on a
    /// cancelled token runs at once; checks and waits see the cancel.
    #[test]
    fn hooks_run_at_the_cancel() {
        let cancel = Cancel::new();
        let ran = Arc::new(AtomicUsize::new(0));
        let counting = || {
            let ran = ran.clone();
            move || {
                ran.fetch_add(1, Ordering::SeqCst);
            }
        };
        let _kept = cancel.on_cancel(counting());
        drop(cancel.on_cancel(counting()));
        assert!(cancel.check().is_ok());
        assert!(!cancel.wait_timeout(Duration::from_millis(10)));
        assert!(!cancel.wait_for_cleanup(Duration::from_millis(10)));
        let other = cancel.clone();
        let canceller = std::thread::spawn(move || other.cancel());
        assert!(cancel.wait_timeout(Duration::from_secs(30)));
        canceller.join().unwrap();
        assert!(cancel.wait_for_cleanup(Duration::from_secs(30)));
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        let _late = cancel.on_cancel(counting());
        assert_eq!(ran.load(Ordering::SeqCst), 2);
        cancel.cancel();
        assert_eq!(ran.load(Ordering::SeqCst), 2);
        assert_eq!(cancel.check(), Err(Interrupted));
        assert!(Interrupted::is(&std::io::Error::from(Interrupted)));
    }

    /// Dropping the guard of a hook that is running waits until it has finished.
    #[test]
    fn dropping_a_running_hook_waits_for_it() {
        let cancel = Cancel::new();
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let finished = Arc::new(AtomicBool::new(false));
        let flag = finished.clone();
        let guard = cancel.on_cancel(move || {
            started_tx.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(200));
            flag.store(true, Ordering::SeqCst);
        });
        let other = cancel.clone();
        let canceller = std::thread::spawn(move || other.cancel());
        started_rx.recv().unwrap();
        drop(guard);
        assert!(finished.load(Ordering::SeqCst), "the guard returned while its hook was running");
        canceller.join().unwrap();
    }
}
