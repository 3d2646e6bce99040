//! `holdfast wal fetch NAME DEST`: hand PostgreSQL's restore_command one
//! archived file, whole or not at all (temporary name, fsync, rename), and
//! read the following segments of its timeline ahead into the spool so that
//! the next calls need not open the repository.
//!
//! A point-in-time restore also leaves an [`ArchiveListing`] in the spool:
//! the archive's names as the restore saw them. A name it does not list is
//! missing without a repository open (a key derivation each): recovery
//! probes for history files that do not exist at its start and at promotion.

use std::path::PathBuf;

use super::OpenRepo;
use crate::repo::wal as stored_wal;
use crate::wal::spool::{copy_durably, sha256_file};
use crate::wal::{Spool, WalName};
use crate::{Error, IoContext, Result};

/// Segments read ahead after an asked one, unless told otherwise.
pub const DEFAULT_AHEAD: usize = 16;

/// What to fetch.
#[derive(Debug, Clone)]
pub struct FetchRequest {
    pub name: String,
    /// Where PostgreSQL wants it (`%p`).
    pub dest: PathBuf,
    pub spool: PathBuf,
    /// Segments read ahead after the asked one.
    pub ahead: usize,
    /// The archive as a restore saw it: names it does not list are missing.
    pub listing: Option<PathBuf>,
}

/// The archive's file names at one moment, one per line, written by a
/// point-in-time restore beside its spool.
pub struct ArchiveListing;

impl ArchiveListing {
    /// Write the names of `index` to `path` (durably, 0600).
    pub fn write(
        path: &std::path::Path,
        index: &std::collections::BTreeMap<WalName, stored_wal::StoredWal>,
    ) -> Result<()> {
        let mut text = String::new();
        for name in index.keys() {
            text.push_str(&name.to_string());
            text.push('\n');
        }
        crate::durable::replace(path, text.as_bytes(), 0o600, None)
    }

    /// Whether the listing at `path` names `name`.
    fn lists(path: &std::path::Path, name: &WalName) -> Result<bool> {
        let text = std::fs::read_to_string(path).context(|| format!("read {}", path.display()))?;
        let wanted = name.to_string();
        Ok(text.lines().any(|l| l == wanted))
    }
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
    if let Some(listing) = &req.listing {
        if !ArchiveListing::lists(listing, &name)? {
            return Ok(FetchOutcome::Missing);
        }
    }
    let mut repo = open()?;
    let index = stored_wal::stored(&repo.snapshots()?);
    if !index.contains_key(&name) {
        return Ok(FetchOutcome::Missing);
    }
    let names = with_following(&index, &spool, name, req.ahead);
    read_into_spool(&mut repo, &index, &spool, &names)?;
    hand_over(&ready, &req.dest)?;
    forget_older(&spool, &name);
    Ok(FetchOutcome::Fetched { from_spool: false })
}

/// `name`, then the next `ahead` segments of its timeline that the archive
/// holds and the spool lacks.
pub fn with_following(
    index: &std::collections::BTreeMap<WalName, stored_wal::StoredWal>,
    spool: &Spool,
    name: WalName,
    ahead: usize,
) -> Vec<WalName> {
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
                .take(ahead),
        );
    }
    names
}

/// Read `names` from the archive into the spool in one pass, each checked
/// against its SHA-256 and renamed into place whole.
pub fn read_into_spool(
    repo: &mut crate::repo::Repo,
    index: &std::collections::BTreeMap<WalName, stored_wal::StoredWal>,
    spool: &Spool,
    names: &[WalName],
) -> Result<()> {
    let incoming = spool.incoming()?;
    stored_wal::fetch(repo, index, names, incoming.path())?;
    for n in names {
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
        .context(|| format!("sync {}", spool.dir().display()))
}

/// Copy the spooled file to DEST whole. It stays in the spool until a later
/// segment of its timeline is asked for: at the end of recovery PostgreSQL
/// asks for the last segment again.
fn hand_over(spooled: &std::path::Path, dest: &std::path::Path) -> Result<()> {
    copy_durably(spooled, dest)
}

/// Drop read-ahead segments older than `name` on its timeline, and those of
/// older timelines: recovery has passed them.
fn forget_older(spool: &Spool, name: &WalName) {
    let WalName::Segment(seg) = name else {
        return;
    };
    for n in spool.prefetched_names() {
        if let WalName::Segment(s) = n {
            // Recovery never goes back to an older timeline: what was read
            // ahead there past the switch is of no use either.
            if s.timeline < seg.timeline || (s.timeline == seg.timeline && s < *seg) {
                let _ = std::fs::remove_file(spool.prefetched(&n));
            }
        }
    }
}
