//! `holdfast repo backup --physical`: a base backup of the cluster stored as
//! one snapshot; unchanged relation files deduplicate against the last one.
//! With a profile, the snapshot also holds the environment's files as a
//! files-only archive (under [`ENVIRONMENT_MEMBER`]), which a point-in-time
//! restore puts back as they were at its target.

use std::path::{Path, PathBuf};

use crate::log::Log;
use crate::ops::RepoBackupRequest;
use crate::ops::WorkDir;
use crate::pg::basebackup::{self, BaseBackupInfo};
use crate::pg::{ConnParams, PgTools};
use crate::repo::jiff::Timestamp;
use crate::repo::physical::{self, ENVIRONMENT_MEMBER, INFO_MEMBER, PGDATA_MEMBER};
use crate::repo::{Repo, SnapshotInfo};
use crate::{Error, IoContext, Result};

/// What to back up.
#[derive(Debug, Clone)]
pub struct PhysicalBackupRequest {
    /// A normal connection to the cluster (database `postgres`); the base
    /// backup uses the same host, port, user and password over replication.
    pub conn: ConnParams,
    /// Parent of the private staging directory.
    pub tmpdir: PathBuf,
    /// The backup of the environment's files (scope `files`) that goes
    /// into the same snapshot.
    pub environment: Option<RepoBackupRequest>,
}

/// Back the cluster up into one snapshot of `repo`.
pub fn backup(repo: &mut Repo, req: &PhysicalBackupRequest, log: &Log) -> Result<SnapshotInfo> {
    let facts = basebackup::server_facts(&req.conn)?;
    let tools = PgTools::for_server(facts.server_version_num as i32)?;
    let work = WorkDir::new(&req.tmpdir)?;
    let stage = work.join("stage");
    std::fs::create_dir(&stage).context(|| format!("create {}", stage.display()))?;
    let pgdata = stage.join(PGDATA_MEMBER);
    let mut repl = req.conn.clone();
    repl.database = "replication".to_string();
    log.output(&format!(
        "Taking a base backup of {}:{}",
        req.conn.host, req.conn.port
    ));
    let points = basebackup::run(&tools, &repl, &pgdata)?;
    refuse_tablespaces(&pgdata)?;
    let end_text = basebackup::server_now(&req.conn)?;
    let end: Timestamp = end_text
        .parse()
        .map_err(|e| Error::failed(format!("the server's clock said {end_text}: {e}")))?;
    let info = BaseBackupInfo::new(points, &facts, end_text, directories(&pgdata)?);
    crate::durable::replace(
        &stage.join(INFO_MEMBER),
        &serde_json::to_vec_pretty(&info).map_err(|e| Error::failed(e.to_string()))?,
        0o600,
        None,
    )?;
    if let Some(files) = &req.environment {
        crate::ops::repo::stage(files, &stage.join(ENVIRONMENT_MEMBER), work.path(), log)?;
    }
    log.output(&format!(
        "Storing the base backup (WAL {} to {}, timeline {}) in repository '{}'",
        info.start_lsn,
        info.stop_lsn,
        info.timeline,
        repo.location()
    ));
    physical::store(
        repo,
        &stage,
        &crate::repo::wal::hostname(),
        &info,
        req.environment
            .as_ref()
            .map(|r| r.env.profile.name.as_str()),
        end.to_zoned(crate::repo::jiff::tz::TimeZone::UTC),
    )
}

/// Tablespaces live outside the data directory and would not come back.
fn refuse_tablespaces(pgdata: &Path) -> Result<()> {
    let dir = pgdata.join("pg_tblspc");
    let any = std::fs::read_dir(&dir)
        .map(|mut l| l.next().is_some())
        .unwrap_or(false);
    if any {
        return Err(Error::usage(
            "the cluster has tablespaces outside its data directory; physical backups of those are not supported yet",
        ));
    }
    Ok(())
}

/// Every directory under `root`, relative, parents first.
fn directories(root: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        for entry in std::fs::read_dir(&dir).context(|| format!("list {}", dir.display()))? {
            let entry = entry.context(|| format!("list {}", dir.display()))?;
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                let child = rel.join(entry.file_name());
                out.push(child.to_string_lossy().into_owned());
                stack.push(child);
            }
        }
    }
    out.sort();
    Ok(out)
}
