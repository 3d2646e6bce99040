//! `holdfast wal fetch NAME DEST`: hand PostgreSQL's restore_command one
//! archived file, whole or not at all (temporary name, fsync, rename), and
//! read the following segments of its timeline ahead into the spool so that
//! the next calls need not open the repository.

use std::path::PathBuf;

use super::OpenRepo;
use crate::repo::wal as stored_wal;
use crate::wal::spool::{copy_durably, sha256_file};
use crate::wal::{Spool, WalName};
use crate::{Error, IoContext, Result};

/// What to fetch.
#[derive(Debug, Clone)]
pub struct FetchRequest {
    pub name: String,
    /// Where PostgreSQL wants it (`%p`).
    pub dest: PathBuf,
    pub spool: PathBuf,
    /// Segments read ahead after the asked one.
    pub ahead: usize,
}

/// What a fetch found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOutcome {
    /// Written at DEST; `from_spool` when it had been read ahead.
    Fetched { from_spool: bool },
    /// The archive holds no such file (PostgreSQL's end of the archive).
    Missing,
}

/// Fetch `req.name` into `req.dest`.
pub fn fetch(req: &FetchRequest, open: OpenRepo) -> Result<FetchOutcome> {
    let name = WalName::parse(&req.name)?;
    let spool = Spool::open(&req.spool)?;
    let ready = spool.prefetched(&name);
    if ready.is_file() {
        hand_over(&ready, &req.dest)?;
        forget_older(&spool, &name);
        return Ok(FetchOutcome::Fetched { from_spool: true });
    }
    let mut repo = open()?;
    let index = stored_wal::stored(&repo.snapshots()?);
    if !index.contains_key(&name) {
        return Ok(FetchOutcome::Missing);
    }
    // The asked file, then the next segments of its timeline that the archive holds.
    let mut names = vec![name];
    if let WalName::Segment(seg) = name {
        names.extend(
            index
                .range(name..)
                .skip(1)
                .filter_map(|(n, _)| match n {
                    WalName::Segment(s) if s.timeline == seg.timeline => Some(*n),
                    _ => None,
                })
                .filter(|n| !spool.prefetched(n).is_file())
                .take(req.ahead),
        );
    }
    let incoming = spool.incoming()?;
    stored_wal::fetch(&mut repo, &index, &names, incoming.path())?;
    for n in &names {
        let got = incoming.path().join(n.to_string());
        let sum = sha256_file(&got)?;
        if sum != index[n].sha256 {
            return Err(Error::invalid(format!(
                "{n} came back from the repository with sha256 {sum}, not the {} it was stored with; \
                 run 'holdfast repo check --read-data'",
                index[n].sha256
            )));
        }
        let kept = spool.prefetched(n);
        std::fs::rename(&got, &kept)
            .context(|| format!("move {} to {}", got.display(), kept.display()))?;
    }
    std::fs::File::open(spool.dir().join("in"))
        .and_then(|d| d.sync_all())
        .context(|| format!("sync {}", spool.dir().display()))?;
    hand_over(&ready, &req.dest)?;
    forget_older(&spool, &name);
    Ok(FetchOutcome::Fetched { from_spool: false })
}

/// Copy the spooled file to DEST whole, then drop it from the spool.
fn hand_over(spooled: &std::path::Path, dest: &std::path::Path) -> Result<()> {
    copy_durably(spooled, dest)?;
    let _ = std::fs::remove_file(spooled);
    Ok(())
}

/// Drop read-ahead segments older than `name` on its timeline: recovery has passed them.
fn forget_older(spool: &Spool, name: &WalName) {
    let WalName::Segment(seg) = name else {
        return;
    };
    for n in spool.prefetched_names() {
        if let WalName::Segment(s) = n {
            if s.timeline == seg.timeline && s < *seg {
                let _ = std::fs::remove_file(spool.prefetched(&n));
            }
        }
    }
}
