//! What `repo forget` keeps of the continuous archive: a keep policy decides
//! the base backups; then `--keep-pitr-within` keeps the base backup that
//! recovery to the start of that window needs, and every WAL snapshot holding
//! a file that the oldest kept base backup needs (from its start segment on)
//! or a timeline history file stays. WAL before that goes.

use std::collections::BTreeSet;

use crate::repo::jiff::{Span, Zoned};
use crate::repo::physical;
use crate::repo::retention::Verdict;
use crate::repo::wal::is_wal;
use crate::repo::SnapshotInfo;
use crate::wal::WalName;
use crate::Result;

/// A WAL snapshot forget removes, and why.
#[derive(Debug, Clone)]
pub struct WalRemoval {
    pub snapshot: SnapshotInfo,
    pub files: usize,
}

/// Keep (in `verdicts`) the base backup that recovery to `now - within`
/// needs: the newest that ended before that time, else the oldest.
pub fn keep_window_base(
    verdicts: &mut [Verdict<SnapshotInfo>],
    within: Option<&Span>,
    now: &Zoned,
) -> Result<()> {
    let Some(within) = within else {
        return Ok(());
    };
    let start = now
        .checked_sub(*within)
        .map_err(|e| crate::Error::usage(format!("--keep-pitr-within: {e}")))?;
    let snapshots: Vec<SnapshotInfo> = verdicts.iter().map(|v| v.item.clone()).collect();
    let backups = physical::list(&snapshots);
    let anchor = backups
        .iter()
        .filter(|b| b.end <= start)
        .max_by(|a, b| a.end.cmp(&b.end))
        .or_else(|| backups.iter().min_by(|a, b| a.end.cmp(&b.end)));
    if let Some(anchor) = anchor {
        for v in verdicts.iter_mut() {
            if v.item.id == anchor.snapshot.id && !v.keep {
                v.keep = true;
                v.reasons.push("pitr-within".into());
            }
        }
    }
    Ok(())
}

/// The WAL snapshots no kept base backup needs: every file in them is a
/// segment before the oldest kept base backup's start. With no base backup
/// kept, nothing goes (there is nothing to measure by).
pub fn removable_wal(all: &[SnapshotInfo], verdicts: &[Verdict<SnapshotInfo>]) -> Vec<WalRemoval> {
    let going: BTreeSet<&str> = verdicts
        .iter()
        .filter(|v| !v.keep)
        .map(|v| v.item.id.as_str())
        .collect();
    let kept: Vec<_> = physical::list(all)
        .into_iter()
        .filter(|b| !going.contains(b.snapshot.id.as_str()))
        .collect();
    let Some(oldest) = kept.iter().min_by_key(|b| b.start_lsn) else {
        return Vec::new();
    };
    let size = oldest.segment_size().max(1);
    let per_log = (1u64 << 32) / size;
    let first_needed = oldest.start_lsn / size;
    all.iter()
        .filter(|s| is_wal(s))
        .filter_map(|s| {
            let names: Vec<WalName> = s
                .tags
                .iter()
                .filter_map(|t| WalName::parse(t.strip_prefix("wal:")?.split('@').next()?).ok())
                .collect();
            let before = !names.is_empty()
                && names.iter().all(|n| {
                    n.segment()
                        .is_some_and(|seg| seg.number(per_log) < first_needed)
                });
            before.then(|| WalRemoval {
                snapshot: s.clone(),
                files: names.len(),
            })
        })
        .collect()
}
