//! Progress bars for long transfers, shown only when stderr is a terminal whose `TERM` is set and
//! not `dumb` (indicatif's rule), and when the operation's renderer shows them
//! ([`crate::report::Report::shows_progress`]: not with `--no-progress` or `--quiet`).

use std::io::{self, IsTerminal, Read, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::store::{StoreError, Upload};

/// A byte-counting bar labelled `label`; hidden unless stderr is a terminal (`TERM` set, not `dumb`),
/// and never when `shown` is false (the operation's renderer hides bars: `--quiet`, `--no-progress`).
pub fn bytes_bar(label: &str, total: Option<u64>, shown: bool) -> ProgressBar {
    if !shown || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(total) => ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
    };
    let style = ProgressStyle::with_template("{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(label.to_owned());
    bar
}

/// A writer that advances a bar.
pub struct CountingWriter<W> {
    inner: W,
    bar: ProgressBar,
}

impl<W> std::fmt::Debug for CountingWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountingWriter").field("bar", &self.bar).finish_non_exhaustive()
    }
}

impl<W> CountingWriter<W> {
    pub fn new(inner: W, bar: ProgressBar) -> Self {
        Self { inner, bar }
    }
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Upload for CountingWriter<Box<dyn Upload>> {
    fn finish(self: Box<Self>) -> Result<u64, StoreError> {
        self.inner.finish()
    }
}

/// A reader that advances a bar.
pub struct CountingReader<R> {
    inner: R,
    bar: ProgressBar,
}

impl<R> std::fmt::Debug for CountingReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountingReader").field("bar", &self.bar).finish_non_exhaustive()
    }
}

impl<R> CountingReader<R> {
    pub fn new(inner: R, bar: ProgressBar) -> Self {
        Self { inner, bar }
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}
