//! The log file and the console, in engine-backup's formats.
//!
//! Log lines are `YYYY-mm-dd HH:MM:SS <pid>: <message>`; a console line is also
//! logged as `OUTPUT: <line>`, a fatal error as `FATAL: <message>`. The log file
//! is created 0600, and every line passes through the [`Redactor`] first, so a
//! password that reaches a message is masked before it is written anywhere.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::progress::{Progress, ProgressSink, Unit};
use crate::secret::Redactor;
use crate::{Error, Result};

/// Where an operation reports: the log file (if any) and the console.
pub struct Log {
    file: Option<Mutex<File>>,
    path: Option<PathBuf>,
    pid: u32,
    quiet: bool,
    /// Console lines go to stderr: stdout carries a JSON document.
    console_on_stderr: bool,
    /// Where long steps report their progress, if anywhere.
    progress: Option<Arc<dyn ProgressSink>>,
    /// Items an operation reports for a machine reader (`--json`), by kind.
    records: Mutex<serde_json::Map<String, serde_json::Value>>,
    /// Warnings given so far: a run that gave any did not do everything asked.
    warnings: AtomicUsize,
}

impl Log {
    /// Open (append to) a log file, creating it 0600, and make an existing one 0600.
    pub fn create(path: &Path) -> Result<Log> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::io_path("create log file", path, e))?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io_path("chmod 0600 log file", path, e))?;
        Ok(Log {
            file: Some(Mutex::new(file)),
            path: Some(path.to_path_buf()),
            pid: std::process::id(),
            quiet: false,
            console_on_stderr: false,
            progress: None,
            records: Mutex::new(serde_json::Map::new()),
            warnings: AtomicUsize::new(0),
        })
    }

    /// Console only, no log file.
    pub fn console_only() -> Log {
        Log {
            file: None,
            path: None,
            pid: std::process::id(),
            quiet: false,
            console_on_stderr: false,
            progress: None,
            records: Mutex::new(serde_json::Map::new()),
            warnings: AtomicUsize::new(0),
        }
    }

    /// Log file only: console lines are logged but not printed.
    pub fn quiet(mut self) -> Log {
        self.quiet = true;
        self
    }

    /// Console lines on stderr instead of stdout (`--json` keeps stdout for
    /// its document).
    pub fn console_on_stderr(mut self) -> Log {
        self.console_on_stderr = true;
        self
    }

    /// Long steps report their progress to `sink`.
    pub fn with_progress(mut self, sink: Arc<dyn ProgressSink>) -> Log {
        self.progress = Some(sink);
        self
    }

    /// A long step's progress in bytes (nothing without a sink).
    pub fn progress(&self, label: &str, total: Option<u64>) -> Progress {
        Progress::begin(self.progress.as_ref(), label, total, Unit::Bytes)
    }

    /// A long step's progress in dump entries (nothing without a sink).
    pub fn progress_entries(&self, label: &str, total: u64) -> Progress {
        Progress::begin(self.progress.as_ref(), label, Some(total), Unit::Entries)
    }

    /// Where progress is drawn, for engines that take their own bars (the
    /// repository's).
    pub fn progress_sink(&self) -> Option<Arc<dyn ProgressSink>> {
        self.progress.clone()
    }

    /// Whether progress is drawn: steps that must run differently to report
    /// it (pg_restore --verbose) only do so then.
    pub fn shows_progress(&self) -> bool {
        self.progress.is_some()
    }

    /// Add `item` to the list `kind` of what this run reports for a
    /// machine reader (deep verify's per-table verdicts under `tables`).
    pub fn record(&self, kind: &str, item: serde_json::Value) {
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        match records
            .entry(kind.to_string())
            .or_insert_with(|| serde_json::Value::Array(Vec::new()))
        {
            serde_json::Value::Array(list) => list.push(item),
            other => *other = serde_json::Value::Array(vec![item]),
        }
    }

    /// Everything [`Log::record`] was given, by kind.
    pub fn records(&self) -> serde_json::Map<String, serde_json::Value> {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The log file's path, if there is one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// How many warnings were given: the native face then reports the run as
    /// completed with warnings rather than as a success.
    pub fn warnings(&self) -> usize {
        self.warnings.load(Ordering::SeqCst)
    }

    /// A line in the log file only.
    pub fn line(&self, message: &str) {
        let Some(file) = &self.file else { return };
        let stamp = chrono::Local::now().format("%Y-%m-%d %H:%M:%S");
        let text = Redactor::global().redact(message);
        let mut out = String::new();
        for l in text.split('\n') {
            out.push_str(&format!("{stamp} {}: {l}\n", self.pid));
        }
        let mut f = file.lock().unwrap_or_else(|e| e.into_inner());
        let _ = f.write_all(out.as_bytes());
    }

    /// Text written to the log as it is (a child program's output), redacted.
    pub fn block(&self, text: &str) {
        let Some(file) = &self.file else { return };
        if text.is_empty() {
            return;
        }
        let mut text = Redactor::global().redact(text);
        if !text.ends_with('\n') {
            text.push('\n');
        }
        let mut f = file.lock().unwrap_or_else(|e| e.into_inner());
        let _ = f.write_all(text.as_bytes());
    }

    /// A console line (stdout), also logged as `OUTPUT: …`.
    pub fn output(&self, message: &str) {
        self.line(&format!("OUTPUT: {message}"));
        self.print(message);
    }

    /// A console line that does not go to the log (engine-backup prints its
    /// banners with `cat`).
    pub fn print(&self, message: &str) {
        if self.quiet {
            return;
        }
        let line = Redactor::global().redact(message);
        match &self.progress {
            Some(sink) => sink.print(&line, self.console_on_stderr),
            None if self.console_on_stderr => eprintln!("{line}"),
            None => println!("{line}"),
        }
    }

    /// A fatal error: logged as `FATAL: …` and printed on stderr.
    pub fn fatal(&self, message: &str) {
        self.line(&format!("FATAL: {message}"));
        eprintln!("FATAL: {}", Redactor::global().redact(message));
    }

    /// A warning on stderr and in the log; counted (see [`Log::warnings`]).
    pub fn warning(&self, message: &str) {
        self.warnings.fetch_add(1, Ordering::SeqCst);
        self.line(&format!("WARNING: {message}"));
        if !self.quiet {
            let line = format!("WARNING: {}", Redactor::global().redact(message));
            match &self.progress {
                Some(sink) => sink.print(&line, true),
                None => eprintln!("{line}"),
            }
        }
    }
}

/// `1 table`, `2 tables`: a count with its noun in the right number.
pub fn count(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Password;

    #[test]
    fn log_file_is_0600_with_engine_backup_line_format_and_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let _pw = Password::new("log-secret-pw");
        let log = Log::create(&path).unwrap().quiet();
        log.line("Start of engine-backup mode backup scope all file /tmp/f");
        log.output("connecting with log-secret-pw");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let re_prefix = |l: &str| {
            let (date, rest) = l.split_at(19);
            chrono::NaiveDateTime::parse_from_str(date, "%Y-%m-%d %H:%M:%S").is_ok()
                && rest.starts_with(&format!(" {}: ", std::process::id()))
        };
        assert!(lines.iter().all(|l| re_prefix(l)), "{text}");
        assert!(
            lines[1].ends_with("OUTPUT: connecting with ********"),
            "{text}"
        );
        assert!(!text.contains("log-secret-pw"));
    }
}
