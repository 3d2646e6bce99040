//! A directory of archive files under a keep policy (`holdfast prune-archives`):
//! each archive is dated by the backup time it records, never by its file
//! name or mtime, and the same restic retention as for snapshots decides.
//!
//! Archives are grouped by the profile and host they record, as `repo forget`
//! groups snapshots by host and path (the path names the profile), and the
//! policy is applied to each group on its own: `--keep-last 1` keeps the
//! newest archive of every application in the directory, not one of them all.
//! engine-backup's archives record no manifest: they are oVirt's
//! (`ovirt-engine`), with no host recorded, and form a group of their own.
//!
//! The backup time is the manifest's `created_at` for holdfast archives and,
//! for engine-backup's own (no manifest), the tar mtime of the `version`
//! member, which engine-backup writes at backup time. Only the archive's head
//! is read: the members before the database dumps.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use rustic_core::jiff::tz::TimeZone;
use rustic_core::jiff::{Timestamp, Zoned};

use super::retention::{Retention, Verdict};
use crate::archive::manifest::MANIFEST_MEMBER;
use crate::archive::{Codec, Manifest};
use crate::{Error, IoContext, Result};

/// A manifest larger than this is not one of ours.
const MAX_MANIFEST_BYTES: u64 = 64 << 20;

/// Where an archive's time came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSource {
    /// `manifest.json`'s `created_at`.
    Manifest,
    /// The tar header of `version` (engine-backup archives).
    VersionMember,
}

/// The profile engine-backup's archives are made with.
const ENGINE_BACKUP_PROFILE: &str = "ovirt-engine";

/// An archive file, its backup time and the group it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatedArchive {
    pub path: PathBuf,
    pub time: Zoned,
    pub source: TimeSource,
    pub group: ArchiveGroup,
}

/// What archives are judged together: those of one profile on one host.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ArchiveGroup {
    pub profile: String,
    /// `None` for engine-backup's archives, which record no host.
    pub host: Option<String>,
}

impl std::fmt::Display for ArchiveGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.host {
            Some(host) => write!(f, "profile {}, host {host}", self.profile),
            None => write!(
                f,
                "profile {}, host not recorded (engine-backup archives)",
                self.profile
            ),
        }
    }
}

/// One group's verdicts, newest first.
#[derive(Debug)]
pub struct GroupVerdicts {
    pub group: ArchiveGroup,
    pub verdicts: Vec<Verdict<DatedArchive>>,
}

/// A file of the directory that is not a readable archive: always kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub path: PathBuf,
    pub why: String,
}

/// What prune-archives decided and did.
#[derive(Debug)]
pub struct ArchivePrune {
    /// Ordered by group.
    pub groups: Vec<GroupVerdicts>,
    pub skipped: Vec<Skipped>,
    /// Whether the archives marked to go were deleted (false on a dry run).
    pub removed: bool,
}

impl ArchivePrune {
    /// Every verdict, group after group.
    pub fn verdicts(&self) -> impl Iterator<Item = &Verdict<DatedArchive>> {
        self.groups.iter().flat_map(|g| g.verdicts.iter())
    }
}

/// Apply `policy` to each group of archives in `dir` (not recursing) and, unless
/// `dry_run`, delete those it does not keep. Every archive is dated before
/// the first deletion; a failed deletion says what was deleted and what is left.
pub fn prune_archives(
    dir: &Path,
    policy: &Retention,
    now: &Zoned,
    dry_run: bool,
) -> Result<ArchivePrune> {
    policy.keep_options()?;
    if !dir.is_dir() {
        return Err(Error::usage(format!(
            "{} is not a directory; give the directory that holds the archives",
            dir.display()
        )));
    }
    let (dated, skipped) = date_archives(dir)?;
    let mut by_group: std::collections::BTreeMap<ArchiveGroup, Vec<(DatedArchive, Zoned)>> =
        std::collections::BTreeMap::new();
    for a in dated {
        by_group
            .entry(a.group.clone())
            .or_default()
            .push((a.clone(), a.time));
    }
    let mut groups = Vec::new();
    for (group, items) in by_group {
        groups.push(GroupVerdicts {
            group,
            verdicts: policy.apply(items, now)?,
        });
    }
    let doomed: Vec<&Verdict<DatedArchive>> = groups
        .iter()
        .flat_map(|g| g.verdicts.iter())
        .filter(|v| !v.keep)
        .collect();
    if !dry_run {
        let mut deleted = Vec::new();
        for v in &doomed {
            if let Err(e) = std::fs::remove_file(&v.item.path) {
                let left = doomed.len() - deleted.len();
                return Err(Error::io(
                    format!(
                        "delete {} (deleted before it: {}; {left} archive(s) due for deletion remain)",
                        v.item.path.display(),
                        if deleted.is_empty() {
                            "none".to_string()
                        } else {
                            deleted.join(", ")
                        }
                    ),
                    e,
                ));
            }
            deleted.push(v.item.path.display().to_string());
        }
    }
    Ok(ArchivePrune {
        groups,
        skipped,
        removed: !dry_run,
    })
}

/// Date every regular file of `dir`; files that are not archives are skipped.
pub fn date_archives(dir: &Path) -> Result<(Vec<DatedArchive>, Vec<Skipped>)> {
    let mut dated = Vec::new();
    let mut skipped = Vec::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .context(|| format!("list {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .context(|| format!("list {}", dir.display()))?;
    paths.sort();
    for path in paths {
        let is_file = std::fs::symlink_metadata(&path)
            .map(|m| m.is_file())
            .unwrap_or(false);
        if !is_file {
            continue;
        }
        match read_head(&path) {
            Ok(head) => dated.push(DatedArchive {
                path,
                time: head.time,
                source: head.source,
                group: head.group,
            }),
            Err(why) => skipped.push(Skipped { path, why }),
        }
    }
    Ok((dated, skipped))
}

/// The backup time an archive records, read from its head.
pub fn backup_time(path: &Path) -> std::result::Result<(Zoned, TimeSource), String> {
    read_head(path).map(|h| (h.time, h.source))
}

/// What an archive's head records: when, and for which profile and host.
struct Head {
    time: Zoned,
    source: TimeSource,
    group: ArchiveGroup,
}

fn read_head(path: &Path) -> std::result::Result<Head, String> {
    let file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let (_, decoder) = Codec::detect_decoder(file).map_err(|e| format!("cannot read: {e}"))?;
    let mut tar = tar::Archive::new(decoder);
    let mut version_mtime = None;
    let entries = tar
        .entries()
        .map_err(|e| format!("not a tar archive: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("not a readable archive: {e}"))?;
        let name = entry
            .path()
            .map(|p| p.to_string_lossy().trim_start_matches("./").to_string())
            .map_err(|e| format!("bad member name: {e}"))?;
        match name.as_str() {
            "version" => version_mtime = entry.header().mtime().ok(),
            MANIFEST_MEMBER => {
                if entry.size() > MAX_MANIFEST_BYTES {
                    return Err(format!("{MANIFEST_MEMBER} is implausibly large"));
                }
                let mut bytes = Vec::new();
                entry
                    .read_to_end(&mut bytes)
                    .map_err(|e| format!("cannot read {MANIFEST_MEMBER}: {e}"))?;
                let manifest =
                    Manifest::parse(&bytes, MANIFEST_MEMBER).map_err(|e| e.to_string())?;
                let time: Timestamp = manifest.created_at.parse().map_err(|e| {
                    format!(
                        "{MANIFEST_MEMBER}: created_at {:?}: {e}",
                        manifest.created_at
                    )
                })?;
                return Ok(Head {
                    time: time.to_zoned(TimeZone::system()),
                    source: TimeSource::Manifest,
                    group: ArchiveGroup {
                        profile: manifest.profile,
                        host: Some(manifest.host),
                    },
                });
            }
            // The dumps follow the manifest: no need to read them.
            n if n == "sha256sum" || n.starts_with("db") => break,
            _ => {}
        }
    }
    match version_mtime {
        Some(secs) => {
            let secs = i64::try_from(secs).map_err(|_| "version member's time is out of range")?;
            let time =
                Timestamp::from_second(secs).map_err(|e| format!("version member's time: {e}"))?;
            Ok(Head {
                time: time.to_zoned(TimeZone::system()),
                source: TimeSource::VersionMember,
                group: ArchiveGroup {
                    profile: ENGINE_BACKUP_PROFILE.to_string(),
                    host: None,
                },
            })
        }
        None => Err("not an engine-backup or holdfast archive (no version member)".to_string()),
    }
}
