//! The run record: what the last operations of one verb on one target ended
//! with, kept so that `holdfast status` can say when the last night failed
//! and why, and when an archive was last verified.
//!
//! One small JSON file per (verb, target) in the state directory
//! ([`crate::ops::journal::state_dir`]): `run-<verb>-<hash of the target>.json`,
//! holding the last success, the last failure and how many notifications
//! could not be delivered. The target is the directory of the archive
//! (backup, verify, restore), the repository location (`repo` verbs) or the
//! install root (migrate). Each write goes to a temporary name (0600), is
//! fsynced and renamed over the old file, so a reader sees the old or the new
//! record, never half of one.
//!
//! The record is a convenience, not the truth about backups: `status` reads
//! the newest backup from the archives or the repository themselves, so it
//! is right even when this file is lost. Only failures (which leave no
//! archive) and verifications (which change none) are known from here alone.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Error, IoContext, Result};

/// The record format this code writes.
pub const RECORD_VERSION: u32 = 1;

/// What one (verb, target) last did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub version: u32,
    /// The verb as typed (`backup`, `verify --deep`, `repo backup`, ...).
    pub verb: String,
    /// The archive directory, repository location or install root.
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<RunEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<RunEntry>,
    /// Notifications that could not be delivered, over all runs.
    #[serde(default)]
    pub notify_failures_total: u64,
}

/// One run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunEntry {
    /// RFC 3339, UTC.
    pub started: String,
    pub finished: String,
    pub duration_seconds: f64,
    /// `success`, `warnings`, `failed`, `usage error` or `interrupted`.
    pub outcome: String,
    pub exit_code: u8,
    /// The reason of the `--log` outcome line (empty on success).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The archive written, verified or restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Deep verify: the tables whose rows and checksums were compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tables_compared: Option<u64>,
    /// Notifications of this run that could not be delivered.
    #[serde(default)]
    pub notify_failures: u64,
}

impl RunEntry {
    /// Whether the run did everything asked.
    pub fn succeeded(&self) -> bool {
        self.exit_code == 0
    }
}

/// The record file of a (verb, target) in `dir`.
pub fn record_path(dir: &Path, verb: &str, target: &str) -> PathBuf {
    let digest = Sha256::digest(target.as_bytes());
    let key = hex::encode(&digest[..8]);
    let verb: String = verb
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    dir.join(format!("run-{verb}-{key}.json"))
}

/// The record of a (verb, target), if one was written and is readable.
pub fn read(dir: &Path, verb: &str, target: &str) -> Option<RunRecord> {
    let bytes = std::fs::read(record_path(dir, verb, target)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Record a run: it replaces the last success or the last failure, and adds
/// its undelivered notifications to the total.
pub fn record(dir: &Path, verb: &str, target: &str, entry: RunEntry) -> Result<()> {
    let mut rec = read(dir, verb, target).unwrap_or_default();
    rec.version = RECORD_VERSION;
    rec.verb = verb.to_string();
    rec.target = target.to_string();
    rec.notify_failures_total += entry.notify_failures;
    if entry.succeeded() {
        rec.last_success = Some(entry);
    } else {
        rec.last_failure = Some(entry);
    }
    write_atomically(&record_path(dir, verb, target), &rec)
}

/// Write `rec` to `path` durably ([`crate::durable`]), 0600.
fn write_atomically(path: &Path, rec: &RunRecord) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    if !dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .context(|| format!("create state directory {}", dir.display()))?;
    }
    let json = serde_json::to_vec_pretty(rec)
        .map_err(|e| Error::failed(format!("encode run record: {e}")))?;
    crate::durable::replace(path, &json, 0o600, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn entry(code: u8, reason: &str) -> RunEntry {
        RunEntry {
            started: "2026-12-07T00:00:00Z".into(),
            finished: "2026-12-07T00:00:01Z".into(),
            duration_seconds: 1.0,
            outcome: if code == 0 { "success" } else { "failed" }.into(),
            exit_code: code,
            reason: reason.into(),
            notify_failures: 1,
            ..RunEntry::default()
        }
    }

    #[test]
    fn keeps_the_last_success_and_the_last_failure() {
        let dir = tempfile::tempdir().unwrap();
        record(dir.path(), "backup", "/b", entry(0, "")).unwrap();
        record(dir.path(), "backup", "/b", entry(1, "no space")).unwrap();
        let rec = read(dir.path(), "backup", "/b").unwrap();
        assert!(rec.last_success.unwrap().succeeded());
        assert_eq!(rec.last_failure.unwrap().reason, "no space");
        assert_eq!(rec.notify_failures_total, 2);
        let path = record_path(dir.path(), "backup", "/b");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(read(dir.path(), "backup", "/other").is_none());
        assert!(path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("run-backup-"));
        assert!(record_path(dir.path(), "verify --deep", "/b")
            .to_string_lossy()
            .contains("run-verify-deep-"));
    }
}
