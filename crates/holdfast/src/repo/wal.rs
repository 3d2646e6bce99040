//! WAL files in the repository: each `wal push` run stores the files it
//! gathered as one snapshot under [`WAL_ROOT`], tagged `wal` and, per file,
//! `wal:<name>@<sha256>`. The tags are the archive's index: listing the
//! snapshots tells which snapshot holds a file and what its content must be,
//! without reading a tree.

use std::collections::BTreeMap;
use std::path::Path;

use rustic_core::jiff;

use super::{Repo, SnapshotInfo};
use crate::wal::WalName;
use crate::Result;

/// Snapshot path of WAL snapshots (not a profile's: `@` starts no profile name).
pub const WAL_ROOT: &str = "/holdfast/@wal";

/// The tag every WAL snapshot carries.
pub const WAL_TAG: &str = "wal";

/// Where one archived file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredWal {
    pub snapshot: String,
    pub sha256: String,
    pub time: jiff::Zoned,
}

/// Every archived file, by name, from the snapshots' tags.
pub fn stored(snapshots: &[SnapshotInfo]) -> BTreeMap<WalName, StoredWal> {
    let mut out = BTreeMap::new();
    for s in snapshots.iter().filter(|s| is_wal(s)) {
        for tag in &s.tags {
            let Some(rest) = tag.strip_prefix("wal:") else {
                continue;
            };
            let Some((name, sum)) = rest.split_once('@') else {
                continue;
            };
            let Ok(name) = WalName::parse(name) else {
                continue;
            };
            out.entry(name).or_insert_with(|| StoredWal {
                snapshot: s.id.clone(),
                sha256: sum.to_string(),
                time: s.time.clone(),
            });
        }
    }
    out
}

/// Whether a snapshot is one of WAL files.
pub fn is_wal(s: &SnapshotInfo) -> bool {
    s.tags.iter().any(|t| t == WAL_TAG)
}

/// Store the files of `staged` (named by `files`: name and sha256) as one WAL snapshot.
pub fn store(
    repo: &mut Repo,
    staged: &Path,
    host: &str,
    files: &[(WalName, String)],
) -> Result<SnapshotInfo> {
    let mut tags = vec![WAL_TAG.to_string()];
    tags.extend(files.iter().map(|(n, sum)| format!("wal:{n}@{sum}")));
    repo.backup_dir_tagged(staged, Path::new(WAL_ROOT), host, &tags, None)
}

/// Read `names` back into `dest` (under their names), in one index read.
pub fn fetch(
    repo: &mut Repo,
    index: &BTreeMap<WalName, StoredWal>,
    names: &[WalName],
    dest: &Path,
) -> Result<Vec<std::path::PathBuf>> {
    let wanted: Vec<(String, String)> = names
        .iter()
        .filter_map(|n| {
            index
                .get(n)
                .map(|w| (w.snapshot.clone(), format!("{WAL_ROOT}/{n}")))
        })
        .collect();
    repo.restore_selected(&wanted, dest)
}

/// The name of this machine, as WAL and base backup snapshots record it.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}
