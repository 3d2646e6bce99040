//! The environment's files as they were at a point-in-time restore's target:
//! the newest snapshot of the profile that holds them (a logical snapshot
//! with the `files` scope, or a base backup taken with the profile) at or
//! before that time, put back through the archive restore of scope `files`,
//! with its checks and its rollback journal.

use std::path::{Path, PathBuf};

use crate::log::Log;
use crate::ops::restore::RestoreOutcome;
use crate::ops::RestoreRequest;
use crate::profile::Environment;
use crate::repo::jiff::Timestamp;
use crate::repo::physical::{is_environment, is_physical, ENVIRONMENT_MEMBER};
use crate::repo::{Repo, SnapshotInfo};
use crate::{Error, Result};

/// A snapshot holding the environment's files, and where in it the archive's members are.
#[derive(Debug, Clone)]
pub struct FilesSource {
    pub snapshot: SnapshotInfo,
    under: PathBuf,
}

/// The snapshots of `profile` that hold its files, oldest first.
pub fn candidates(snapshots: &[SnapshotInfo], profile: &str) -> Vec<FilesSource> {
    let mut out: Vec<FilesSource> = snapshots
        .iter()
        .filter(|s| s.tag("profile") == Some(profile))
        .filter_map(|s| {
            let under = if is_physical(s) {
                PathBuf::from(ENVIRONMENT_MEMBER)
            } else if is_environment(s) && s.tags.iter().any(|t| t == "scope:files") {
                PathBuf::new()
            } else {
                return None;
            };
            Some(FilesSource {
                snapshot: s.clone(),
                under,
            })
        })
        .collect();
    out.sort_by(|a, b| a.snapshot.time.cmp(&b.snapshot.time));
    out
}

/// The newest of `candidates` taken at or before `at`.
pub fn choose(candidates: &[FilesSource], profile: &str, at: Timestamp) -> Result<FilesSource> {
    candidates
        .iter()
        .rev()
        .find(|c| c.snapshot.time.timestamp() <= at)
        .cloned()
        .ok_or_else(|| {
            let oldest = candidates.first().map_or_else(
                || "it holds none".to_string(),
                |c| {
                    format!(
                        "the oldest is {} of {}",
                        c.snapshot.short_id(),
                        c.snapshot.time.timestamp().strftime("%Y-%m-%d %H:%M:%S+00")
                    )
                },
            );
            Error::usage(format!(
                "the repository holds no snapshot of profile '{profile}' with its files taken at or before {} ({oldest}); \
                 restore without --profile, or take base backups with --profile",
                at.strftime("%Y-%m-%d %H:%M:%S+00")
            ))
        })
}

/// Put the files of `source` back into `env`'s install root.
pub fn restore(
    repo: &mut Repo,
    source: &FilesSource,
    env: Environment,
    tmpdir: &Path,
    installed_version: Option<&str>,
    log: &Log,
) -> Result<RestoreOutcome> {
    log.output(&format!(
        "Restoring the files of profile '{}' from snapshot {} (taken {})",
        env.profile.name,
        source.snapshot.short_id(),
        source
            .snapshot
            .time
            .timestamp()
            .strftime("%Y-%m-%d %H:%M:%S+00")
    ));
    // Only the files are restored: the snapshot's dumps are not read.
    let archive = crate::ops::repo::materialise_files_under(
        repo,
        &source.snapshot.id,
        &source.under,
        tmpdir,
    )?;
    let req = RestoreRequest::new(
        env,
        vec!["files".to_string()],
        archive.path(),
        tmpdir.to_path_buf(),
        installed_version,
    )?;
    crate::ops::restore::run(&req, log)
}
