//! Base backups in the repository: one snapshot under [`PHYSICAL_ROOT`]
//! holding `pgdata/` (the cluster's files as pg_basebackup wrote them),
//! `physical.json` (what the backup is: [`BaseBackupInfo`]), each tablespace
//! outside the data directory under [`TABLESPACES_MEMBER`]`/<oid>` and, with a
//! profile, the environment's files as a files-only archive's members under
//! [`ENVIRONMENT_MEMBER`]. Tagged `physical` plus the facts a
//! restore chooses by, so choosing needs no tree read.

use std::path::Path;

use rustic_core::jiff::Zoned;

use super::{Repo, SnapshotInfo};
use crate::pg::basebackup::BaseBackupInfo;
use crate::{Error, Result};

/// Snapshot path of base backups.
pub const PHYSICAL_ROOT: &str = "/holdfast/@physical";

/// The tag every base backup snapshot carries.
pub const PHYSICAL_TAG: &str = "physical";

/// The manifest's name in the snapshot.
pub const INFO_MEMBER: &str = "physical.json";

/// The data directory's name in the snapshot.
pub const PGDATA_MEMBER: &str = "pgdata";

/// Where tablespaces outside the data directory are stored, each under its oid.
pub const TABLESPACES_MEMBER: &str = "tablespaces";

/// Where a base backup taken with a profile keeps the environment's files: the
/// members of a files-only archive, as a logical snapshot stores them.
pub const ENVIRONMENT_MEMBER: &str = "environment";

/// A base backup found in the repository.
#[derive(Debug, Clone)]
pub struct BaseBackup {
    pub snapshot: SnapshotInfo,
    pub start_lsn: u64,
    pub stop_lsn: u64,
    pub timeline: u32,
    pub start_segment: String,
    pub stop_segment: String,
    pub pg_major: u32,
    pub system_identifier: String,
    /// When it ended (the snapshot's time).
    pub end: Zoned,
    pub wal_segment_size: u64,
    /// How many tablespaces outside the data directory it holds.
    pub tablespaces: usize,
}

impl BaseBackup {
    /// The cluster's WAL segment size.
    pub fn segment_size(&self) -> u64 {
        self.wal_segment_size
    }
}

/// Store the staged base backup as one snapshot at `end`.
pub fn store(
    repo: &mut Repo,
    staged: &Path,
    host: &str,
    info: &BaseBackupInfo,
    profile: Option<&str>,
    end: Zoned,
) -> Result<SnapshotInfo> {
    let mut tags = vec![
        PHYSICAL_TAG.to_string(),
        format!("timeline:{}", info.timeline),
        format!("start-lsn:{}", info.start_lsn),
        format!("stop-lsn:{}", info.stop_lsn),
        format!("start-wal:{}", info.start_segment),
        format!("stop-wal:{}", info.stop_segment),
        format!("system-id:{}", info.system_identifier),
        format!("pg-major:{}", info.pg_major),
        format!("wal-segment-size:{}", info.wal_segment_size),
    ];
    if !info.tablespaces.is_empty() {
        tags.push(format!("tablespaces:{}", info.tablespaces.len()));
    }
    if let Some(p) = profile {
        tags.push(format!("profile:{p}"));
    }
    repo.backup_dir_tagged(staged, Path::new(PHYSICAL_ROOT), host, &tags, Some(end))
}

/// Whether a snapshot is a base backup.
pub fn is_physical(s: &SnapshotInfo) -> bool {
    s.tags.iter().any(|t| t == PHYSICAL_TAG)
}

/// Whether a snapshot is an environment's (logical) backup: neither WAL nor a base backup.
pub fn is_environment(s: &SnapshotInfo) -> bool {
    !is_physical(s) && !super::wal::is_wal(s)
}

/// Every base backup, oldest first.
pub fn list(snapshots: &[SnapshotInfo]) -> Vec<BaseBackup> {
    snapshots
        .iter()
        .filter(|s| is_physical(s))
        .filter_map(|s| {
            let lsn = |k: &str| s.tag(k).and_then(|v| crate::wal::parse_lsn(v).ok());
            Some(BaseBackup {
                snapshot: s.clone(),
                start_lsn: lsn("start-lsn")?,
                stop_lsn: lsn("stop-lsn")?,
                timeline: s.tag("timeline")?.parse().ok()?,
                start_segment: s.tag("start-wal")?.to_string(),
                stop_segment: s.tag("stop-wal")?.to_string(),
                pg_major: s.tag("pg-major")?.parse().ok()?,
                system_identifier: s.tag("system-id")?.to_string(),
                end: s.time.clone(),
                wal_segment_size: s.tag("wal-segment-size")?.parse().ok()?,
                tablespaces: s
                    .tag("tablespaces")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0),
            })
        })
        .collect()
}

/// The manifest of a base backup snapshot.
pub fn read_info(repo: &mut Repo, snapshot: &str) -> Result<BaseBackupInfo> {
    let path = format!("{PHYSICAL_ROOT}/{INFO_MEMBER}");
    let bytes = repo.read_file(snapshot, &path)?.ok_or_else(|| {
        Error::invalid(format!(
            "snapshot {snapshot} has no {INFO_MEMBER}: not a base backup"
        ))
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::invalid(format!("{INFO_MEMBER} of snapshot {snapshot}: {e}")))
}
