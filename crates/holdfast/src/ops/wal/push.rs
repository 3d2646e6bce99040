//! `holdfast wal push PATH`: archive one file PostgreSQL hands to
//! archive_command, and with it every other file it has marked ready
//! (`pg_wal/archive_status/<name>.ready`), in one snapshot.
//!
//! Exit 0 means the file is in the repository (the snapshot is written and
//! checked) and recorded in the spool. A file already stored with the same
//! content succeeds at once; with other content it fails.

use std::path::{Path, PathBuf};

use super::OpenRepo;
use crate::repo::wal as stored_wal;
use crate::wal::spool::{mismatch, sha256_file};
use crate::wal::{Spool, WalName};
use crate::{Error, IoContext, Result};

/// What to push.
#[derive(Debug, Clone)]
pub struct PushRequest {
    /// The file as PostgreSQL gives it (`%p`, relative to the data directory).
    pub path: PathBuf,
    pub spool: PathBuf,
    /// At most this many files per snapshot (the asked one included).
    pub batch: usize,
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// The spool or the repository already held the file with this content.
    AlreadyStored,
    /// Stored these files (the asked one first) in snapshot `snapshot`.
    Stored {
        files: Vec<WalName>,
        snapshot: String,
    },
}

/// Push `req.path` and the files ready beside it.
pub fn push(req: &PushRequest, open: OpenRepo) -> Result<PushOutcome> {
    let name = name_of(&req.path)?;
    let spool = Spool::open(&req.spool)?;
    let sum = sha256_file(&req.path)?;
    if let Some(stored) = spool.stored(&name) {
        return if stored == sum {
            Ok(PushOutcome::AlreadyStored)
        } else {
            Err(mismatch(&name, &stored, &sum))
        };
    }
    let mut batch = vec![(name, req.path.clone(), sum)];
    for (n, p) in ready_beside(&req.path, &spool, req.batch.saturating_sub(1)) {
        let s = sha256_file(&p)?;
        batch.push((n, p, s));
    }
    let mut repo = open()?;
    let index = stored_wal::stored(&repo.snapshots()?);
    let mut to_store = Vec::new();
    for (n, p, s) in batch {
        match index.get(&n) {
            Some(w) if w.sha256 == s => spool.record_stored(&n, &s)?,
            Some(w) if n == name => return Err(mismatch(&n, &w.sha256, &s)),
            // Another ready file that clashes fails when PostgreSQL asks for it.
            Some(_) => {}
            None => to_store.push((n, p, s)),
        }
    }
    if to_store.is_empty() {
        return Ok(PushOutcome::AlreadyStored);
    }
    let staging = spool.incoming()?;
    for (n, p, _) in &to_store {
        stage(p, &staging.path().join(n.to_string()))?;
    }
    let files: Vec<(WalName, String)> = to_store.iter().map(|(n, _, s)| (*n, s.clone())).collect();
    let snapshot = stored_wal::store(&mut repo, staging.path(), &stored_wal::hostname(), &files)?;
    for (n, s) in &files {
        spool.record_stored(n, s)?;
    }
    Ok(PushOutcome::Stored {
        files: files.into_iter().map(|(n, _)| n).collect(),
        snapshot: snapshot.id,
    })
}

/// The WAL name of a path's last component.
pub fn name_of(path: &Path) -> Result<WalName> {
    let file = path
        .file_name()
        .and_then(|f| f.to_str())
        .ok_or_else(|| Error::usage(format!("{} names no file", path.display())))?;
    WalName::parse(file)
}

/// Up to `max` other files PostgreSQL marked ready in the directory of
/// `path` and the spool has no record of: history files first, then oldest first.
fn ready_beside(path: &Path, spool: &Spool, max: usize) -> Vec<(WalName, PathBuf)> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let Ok(list) = std::fs::read_dir(dir.join("archive_status")) else {
        return Vec::new();
    };
    let asked = name_of(path).ok();
    let mut ready: Vec<WalName> = list
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let f = e.file_name();
            WalName::parse(f.to_str()?.strip_suffix(".ready")?).ok()
        })
        .filter(|n| Some(*n) != asked && spool.stored(n).is_none())
        .filter(|n| dir.join(n.to_string()).is_file())
        .collect();
    ready.sort_by_key(|n| (!n.is_probe(), *n));
    ready.truncate(max);
    ready
        .into_iter()
        .map(|n| (n, dir.join(n.to_string())))
        .collect()
}

/// Put `from` at `to` for the snapshot: a hard link when both are on one file
/// system (a ready segment is not recycled before it is archived), else a copy.
fn stage(from: &Path, to: &Path) -> Result<()> {
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to)
        .map(|_| ())
        .context(|| format!("copy {} to {}", from.display(), to.display()))
}
