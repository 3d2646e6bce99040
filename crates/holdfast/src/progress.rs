//! Progress of long steps, as the operations report it; how it is drawn is
//! the face's business (the native face draws bars on a terminal).
//!
//! A [`ProgressSink`] is given to the [`Log`](crate::log::Log) an operation
//! reports to; each long step asks it for a [`Progress`] with a label and,
//! when known, a total, and advances it as bytes pass. Without a sink every
//! call is a no-op, so the operations report progress unconditionally.

use std::sync::Arc;

/// What a step counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    /// Entries of a dump's table of contents, as pg_restore works through them.
    Entries,
    /// Things counted (files, snapshots) by the repository engine.
    Items,
}

/// Where progress goes: one bar per step.
pub trait ProgressSink: Send + Sync {
    /// A new step, `total` units when known.
    fn begin(&self, label: &str, total: Option<u64>, unit: Unit) -> Box<dyn ProgressBar>;
    /// A console line printed while bars may be drawn (above them).
    fn print(&self, line: &str, stderr: bool);
}

/// One step's bar.
pub trait ProgressBar: Send + Sync {
    fn advance(&self, n: u64);
    /// The total became known (or changed).
    fn set_length(&self, total: u64);
    /// The step ended (done or not): the bar stops being drawn.
    fn finish(&self);
}

/// A step's progress: a bar of the log's sink, or nothing.
pub struct Progress(Option<Box<dyn ProgressBar>>);

impl Progress {
    /// A step in `sink`, if there is one.
    pub fn begin(
        sink: Option<&Arc<dyn ProgressSink>>,
        label: &str,
        total: Option<u64>,
        unit: Unit,
    ) -> Progress {
        Progress(sink.map(|s| s.begin(label, total, unit)))
    }

    pub fn advance(&self, n: u64) {
        if let Some(bar) = &self.0 {
            bar.advance(n);
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish();
        }
    }
}

/// A writer that advances a [`Progress`] by the bytes written through it.
pub struct Counted<'p, W> {
    inner: W,
    progress: &'p Progress,
}

impl<'p, W> Counted<'p, W> {
    pub fn new(inner: W, progress: &'p Progress) -> Counted<'p, W> {
        Counted { inner, progress }
    }
}

impl<W: std::io::Write> std::io::Write for Counted<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
