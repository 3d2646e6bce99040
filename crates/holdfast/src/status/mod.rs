//! What `holdfast status` knows about an archive directory or a repository:
//! the newest backup, read from the archives' manifests or the repository's
//! snapshots themselves (true even when the state directory is lost), and
//! from the run records ([`crate::runlog`]) the last failed backup, the last
//! verify and the last deep verify, and the notifications that failed; for a
//! repository with a continuous archive, the recoverable window, its gaps,
//! and (given the data directory) the WAL the server still waits to archive
//! ([`ContinuousArchive`]).
//!
//! [`verdict`] judges the facts (OK, WARNING, CRITICAL, UNKNOWN, as a
//! Nagios/Icinga plugin) and [`prometheus`] writes them as node_exporter
//! textfile-collector metrics.

pub mod prometheus;
pub mod verdict;

use std::path::Path;

use serde::Serialize;

use crate::repo::jiff::Timestamp;
use crate::repo::{Repo, SnapshotInfo};
use crate::runlog::{self, RunEntry};
use crate::{IoContext, Result};

/// The status document's format version (`holdfast status --json`).
pub const STATUS_VERSION: u32 = 1;

/// Where backups are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A directory of archive files.
    Archives,
    /// A deduplicating repository.
    Repository,
}

impl Kind {
    /// The verbs whose run records tell about this kind of target: backup,
    /// verify, deep verify.
    fn verbs(self) -> [&'static str; 3] {
        match self {
            Kind::Archives => ["backup", "verify", "verify --deep"],
            Kind::Repository => ["repo backup", "repo check", "repo check --read-data"],
        }
    }
}

/// The newest backup.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Backup {
    /// RFC 3339, UTC: when the backup started (the archive's manifest, the snapshot's time).
    pub time: String,
    #[serde(skip)]
    pub timestamp: Timestamp,
    /// The archive file or the snapshot id.
    pub location: String,
    pub profile: Option<String>,
    pub host: Option<String>,
    pub size_bytes: u64,
    pub scopes: Vec<String>,
    /// From the run record of the backup that wrote it, if it is that one.
    pub duration_seconds: Option<f64>,
}

/// One recorded run, as status shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    /// RFC 3339, UTC: when it finished.
    pub time: String,
    #[serde(skip)]
    pub timestamp: Option<Timestamp>,
    pub outcome: String,
    pub exit_code: u8,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tables_compared: Option<u64>,
}

impl Run {
    fn of(e: &RunEntry) -> Run {
        Run {
            time: e.finished.clone(),
            timestamp: e.finished.parse().ok(),
            outcome: e.outcome.clone(),
            exit_code: e.exit_code,
            reason: e.reason.clone(),
            archive: e.archive.clone(),
            tables_compared: e.tables_compared,
        }
    }

    pub fn succeeded(&self) -> bool {
        self.exit_code == 0
    }
}

/// Everything status reports about one target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Facts {
    pub kind: Kind,
    /// The archive directory or the repository location.
    pub target: String,
    pub newest_backup: Option<Backup>,
    /// The last backup that failed, whenever it was.
    pub last_backup_failure: Option<Run>,
    /// The last verify (whatever its result) and the last deep verify.
    pub last_verify: Option<Run>,
    pub last_deep_verify: Option<Run>,
    /// Notifications that could not be delivered, over every recorded run.
    pub notify_failures_total: u64,
    /// The repository's continuous archive, when it has base backups or WAL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continuous_archive: Option<ContinuousArchive>,
}

/// A repository's continuous archive (base backups and WAL), as status shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContinuousArchive {
    pub base_backups: usize,
    /// RFC 3339, UTC: the recoverable window runs from the end of the oldest
    /// base backup to the newest archived WAL.
    pub recoverable_from: Option<String>,
    pub recoverable_to: Option<String>,
    #[serde(skip)]
    pub newest_wal: Option<Timestamp>,
    pub newest_segment: Option<String>,
    /// Segments missing between a kept base backup and the newest segment
    /// (what `holdfast wal check` names), plus base backups off the newest
    /// segment's timeline.
    pub missing_segments: usize,
    /// The server's side, read from its data directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerWal>,
}

/// What the server has not archived yet: `pg_wal` grows while the archive
/// is unreachable.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerWal {
    pub data_directory: String,
    /// Segments marked ready (`pg_wal/archive_status/*.ready`).
    pub ready_segments: u64,
    pub pg_wal_bytes: u64,
}

impl ContinuousArchive {
    /// The continuous archive of `repo` (whose snapshots are `snapshots`),
    /// or `None` when it holds no base backup and no WAL.
    pub fn gather(
        repo: &mut Repo,
        snapshots: &[SnapshotInfo],
    ) -> Result<Option<ContinuousArchive>> {
        let backups = crate::repo::physical::list(snapshots);
        let wal = crate::repo::wal::stored(snapshots);
        if backups.is_empty() && wal.is_empty() {
            return Ok(None);
        }
        let report = crate::ops::wal::check::check_listed(repo, snapshots)?;
        let newest_wal = wal.values().map(|w| w.time.timestamp()).max();
        let window = crate::ops::physical::target::window(&backups, &wal);
        let missing = report
            .backups
            .iter()
            .map(|b| b.missing.len() + usize::from(b.off_lineage))
            .sum();
        Ok(Some(ContinuousArchive {
            base_backups: backups.len(),
            recoverable_from: window.as_ref().map(|w| w.from.timestamp().to_string()),
            recoverable_to: window.and_then(|w| w.to).map(|t| t.timestamp().to_string()),
            newest_wal,
            newest_segment: report.newest,
            missing_segments: missing,
            server: None,
        }))
    }
}

impl ServerWal {
    /// Read the data directory `pgdata` (as its owner or root).
    pub fn read(pgdata: &Path) -> Result<ServerWal> {
        let wal_dir = pgdata.join("pg_wal");
        let mut pg_wal_bytes = 0;
        for entry in
            std::fs::read_dir(&wal_dir).context(|| format!("list {}", wal_dir.display()))?
        {
            let meta = entry
                .and_then(|e| e.metadata())
                .context(|| format!("list {}", wal_dir.display()))?;
            if meta.is_file() {
                pg_wal_bytes += meta.len();
            }
        }
        let status_dir = wal_dir.join("archive_status");
        let mut ready_segments = 0;
        for entry in
            std::fs::read_dir(&status_dir).context(|| format!("list {}", status_dir.display()))?
        {
            let entry = entry.context(|| format!("list {}", status_dir.display()))?;
            if entry.file_name().to_string_lossy().ends_with(".ready") {
                ready_segments += 1;
            }
        }
        Ok(ServerWal {
            data_directory: pgdata.display().to_string(),
            ready_segments,
            pg_wal_bytes,
        })
    }
}

impl Facts {
    /// The facts of `target` from its newest backup and the run records in `state_dir`.
    pub fn gather(kind: Kind, target: &str, newest: Option<Backup>, state_dir: &Path) -> Facts {
        let [backup, verify, deep] = kind.verbs();
        let records: Vec<_> = kind
            .verbs()
            .iter()
            .filter_map(|v| runlog::read(state_dir, v, target))
            .collect();
        let backup_rec = runlog::read(state_dir, backup, target);
        let mut newest = newest;
        if let (Some(n), Some(ok)) = (
            newest.as_mut(),
            backup_rec.as_ref().and_then(|r| r.last_success.as_ref()),
        ) {
            if ok.archive.as_deref() == Some(n.location.as_str()) {
                n.duration_seconds = Some(ok.duration_seconds);
            }
        }
        Facts {
            kind,
            target: target.to_string(),
            newest_backup: newest,
            last_backup_failure: backup_rec
                .as_ref()
                .and_then(|r| r.last_failure.as_ref())
                .map(Run::of),
            last_verify: latest(runlog::read(state_dir, verify, target)),
            last_deep_verify: latest(runlog::read(state_dir, deep, target)),
            notify_failures_total: records.iter().map(|r| r.notify_failures_total).sum(),
            continuous_archive: None,
        }
    }

    /// The profile of the newest backup, for labels.
    pub fn profile(&self) -> Option<&str> {
        self.newest_backup.as_ref()?.profile.as_deref()
    }
}

/// The later of a record's last success and last failure.
fn latest(rec: Option<runlog::RunRecord>) -> Option<Run> {
    let rec = rec?;
    let runs = [rec.last_success.as_ref(), rec.last_failure.as_ref()];
    runs.into_iter()
        .flatten()
        .map(Run::of)
        .max_by_key(|r| r.timestamp)
}

/// The newest archive in `dir`, by the time its head records; files that are
/// not archives are passed over.
pub fn newest_archive(dir: &Path) -> Result<Option<Backup>> {
    let (dated, _) = crate::repo::archives::date_archives(dir)?;
    let Some(newest) = dated.into_iter().max_by_key(|a| a.time.timestamp()) else {
        return Ok(None);
    };
    let manifest = crate::archive::peek_manifest(&newest.path);
    let timestamp = newest.time.timestamp();
    Ok(Some(Backup {
        time: timestamp.to_string(),
        timestamp,
        location: newest.path.display().to_string(),
        profile: Some(newest.group.profile.clone()),
        host: newest.group.host.clone(),
        size_bytes: std::fs::metadata(&newest.path).map_or(0, |m| m.len()),
        scopes: manifest.map(|m| m.scopes).unwrap_or_default(),
        duration_seconds: None,
    }))
}

/// The newest of a repository's snapshots.
pub fn newest_snapshot(snapshots: &[SnapshotInfo]) -> Option<Backup> {
    let s = snapshots.iter().max_by_key(|s| s.time.timestamp())?;
    let timestamp = s.time.timestamp();
    Some(Backup {
        time: timestamp.to_string(),
        timestamp,
        location: s.id.clone(),
        profile: s.tag("profile").map(str::to_string),
        host: Some(s.hostname.clone()),
        size_bytes: s.source_bytes,
        scopes: s
            .tags
            .iter()
            .filter_map(|t| t.strip_prefix("scope:").map(str::to_string))
            .collect(),
        duration_seconds: None,
    })
}
