//! `holdfast wal check`: is the archive continuous from each base backup's
//! first segment to the newest segment, following timelines through their
//! history files? Gaps are reported by name.

use crate::repo::physical;
use crate::repo::wal::{self as stored_wal, WAL_ROOT};
use crate::repo::Repo;
use crate::wal::history::{self, Lineage};
use crate::wal::{Segment, WalName};
use crate::{Error, Result};

/// What the check found for one base backup.
#[derive(Debug, Clone)]
pub struct BackupContinuity {
    pub snapshot: String,
    pub start_segment: String,
    /// Segments missing between the backup's start and the newest segment.
    pub missing: Vec<String>,
    /// Set when the backup's timeline is not an ancestor of the newest one.
    pub off_lineage: bool,
}

/// The whole archive's check.
#[derive(Debug, Clone)]
pub struct CheckReport {
    pub newest: Option<String>,
    pub backups: Vec<BackupContinuity>,
}

impl CheckReport {
    pub fn is_continuous(&self) -> bool {
        self.backups
            .iter()
            .all(|b| b.missing.is_empty() && !b.off_lineage)
    }
}

/// Check the archive of `repo`.
pub fn check(repo: &mut Repo) -> Result<CheckReport> {
    let snapshots = repo.snapshots()?;
    check_listed(repo, &snapshots)
}

/// Check the archive of `repo` whose snapshots were just listed as `snapshots`.
pub fn check_listed(
    repo: &mut Repo,
    snapshots: &[crate::repo::SnapshotInfo],
) -> Result<CheckReport> {
    let backups = physical::list(snapshots);
    let index = stored_wal::stored(snapshots);
    let Some(size) = backups.first().map(|b| b.segment_size().max(1)) else {
        return Ok(CheckReport {
            newest: None,
            backups: Vec::new(),
        });
    };
    let per_log = (1u64 << 32) / size;
    let newest = index
        .keys()
        .filter_map(|n| match n {
            WalName::Segment(s) => Some(*s),
            _ => None,
        })
        .max_by_key(|s| (s.timeline, s.number(per_log)));
    let Some(newest) = newest else {
        return Ok(CheckReport {
            newest: None,
            backups: backups
                .iter()
                .map(|b| BackupContinuity {
                    snapshot: b.snapshot.id.clone(),
                    start_segment: b.start_segment.clone(),
                    missing: vec![b.start_segment.clone()],
                    off_lineage: false,
                })
                .collect(),
        });
    };
    let lineage = lineage_of(repo, &index, newest.timeline, size)?;
    let last = newest.number(per_log);
    let mut out = Vec::new();
    for b in &backups {
        let start = b.start_lsn / size;
        let mut missing = Vec::new();
        if lineage.contains(b.timeline) {
            for n in start..=last.max(b.stop_lsn.saturating_sub(1) / size) {
                let seg = Segment::from_number(lineage.timeline_of(n), n, per_log);
                if !index.contains_key(&WalName::Segment(seg)) {
                    missing.push(seg.to_string());
                }
            }
        }
        out.push(BackupContinuity {
            snapshot: b.snapshot.id.clone(),
            start_segment: b.start_segment.clone(),
            missing,
            off_lineage: !lineage.contains(b.timeline),
        });
    }
    Ok(CheckReport {
        newest: Some(newest.to_string()),
        backups: out,
    })
}

/// The lineage of `timeline`, from its history file in the archive.
fn lineage_of(
    repo: &mut Repo,
    index: &std::collections::BTreeMap<WalName, stored_wal::StoredWal>,
    timeline: u32,
    size: u64,
) -> Result<Lineage> {
    if timeline <= 1 {
        return Ok(Lineage::new(timeline, &[], size));
    }
    let name = WalName::History(timeline);
    let stored = index.get(&name).ok_or_else(|| {
        Error::failed(format!(
            "the archive lacks {name}, so timeline {timeline} cannot be followed back"
        ))
    })?;
    let bytes = repo
        .read_file(&stored.snapshot, &format!("{WAL_ROOT}/{name}"))?
        .ok_or_else(|| Error::invalid(format!("{name} is tagged but missing from its snapshot")))?;
    let branches = history::parse(&String::from_utf8_lossy(&bytes))?;
    Ok(Lineage::new(timeline, &branches, size))
}
