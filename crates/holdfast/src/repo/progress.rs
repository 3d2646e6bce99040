//! rustic_core's progress reports (uploading a snapshot, restoring file
//! contents, reading the index) drawn through holdfast's own
//! [`ProgressSink`]: each rustic bar becomes a bar of the sink, created when
//! rustic first shows it.

use std::sync::{Arc, Mutex};

use rustic_core::{Progress, ProgressBars, ProgressType, RusticProgress};

use crate::progress::{ProgressBar, ProgressSink, Unit};

/// The sink, as rustic_core's progress bars.
#[derive(Clone)]
pub struct SinkBars(pub Arc<dyn ProgressSink>);

impl std::fmt::Debug for SinkBars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SinkBars")
    }
}

impl ProgressBars for SinkBars {
    fn progress(&self, progress_type: ProgressType, prefix: &str) -> Progress {
        Progress::new(SinkProgress {
            sink: self.0.clone(),
            unit: match progress_type {
                ProgressType::Bytes => Unit::Bytes,
                ProgressType::Counter | ProgressType::Spinner => Unit::Items,
            },
            title: Mutex::new(prefix.to_string()),
            length: Mutex::new(None),
            bar: Mutex::new(None),
        })
    }
}

/// One rustic bar: drawn once it advances, with the length and title
/// rustic gave it by then.
struct SinkProgress {
    sink: Arc<dyn ProgressSink>,
    unit: Unit,
    title: Mutex<String>,
    length: Mutex<Option<u64>>,
    bar: Mutex<Option<Box<dyn ProgressBar>>>,
}

impl std::fmt::Debug for SinkProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SinkProgress")
    }
}

impl RusticProgress for SinkProgress {
    fn is_hidden(&self) -> bool {
        false
    }

    fn set_length(&self, len: u64) {
        *self.length.lock().unwrap_or_else(|p| p.into_inner()) = Some(len);
        if let Some(bar) = &*self.bar.lock().unwrap_or_else(|p| p.into_inner()) {
            bar.set_length(len);
        }
    }

    fn set_title(&self, title: &str) {
        *self.title.lock().unwrap_or_else(|p| p.into_inner()) = title.to_string();
    }

    fn inc(&self, inc: u64) {
        let mut bar = self.bar.lock().unwrap_or_else(|p| p.into_inner());
        let bar = bar.get_or_insert_with(|| {
            let title = self.title.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let length = *self.length.lock().unwrap_or_else(|p| p.into_inner());
            self.sink.begin(&title, length, self.unit)
        });
        bar.advance(inc);
    }

    fn finish(&self) {
        if let Some(bar) = self.bar.lock().unwrap_or_else(|p| p.into_inner()).take() {
            bar.finish();
        }
    }
}
