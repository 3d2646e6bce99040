//! `holdfast repo backup --physical`: a base backup of the cluster stored as
//! one snapshot; unchanged relation files deduplicate against the last one.
//! With a profile, the snapshot also holds the environment's files as a
//! files-only archive (under [`ENVIRONMENT_MEMBER`]), which a point-in-time
//! restore puts back as they were at its target. Tablespaces outside the
//! data directory are stored beside it under [`TABLESPACES_MEMBER`]`/<oid>`
//! (their `pg_tblspc` links are not stored: a restore makes them again).

use std::path::{Path, PathBuf};

use crate::log::Log;
use crate::ops::RepoBackupRequest;
use crate::ops::WorkDir;
use crate::pg::basebackup::{self, BaseBackupInfo};
use crate::pg::{ConnParams, PgTools};
use crate::repo::jiff::Timestamp;
use crate::repo::physical::{
    self, ENVIRONMENT_MEMBER, INFO_MEMBER, PGDATA_MEMBER, TABLESPACES_MEMBER,
};
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
    let tablespaces = stage.join(TABLESPACES_MEMBER);
    let relocate: Vec<(String, PathBuf)> = facts
        .tablespaces
        .iter()
        .map(|t| (t.location.clone(), tablespaces.join(t.oid.to_string())))
        .collect();
    let points = basebackup::run(&tools, &repl, &pgdata, &relocate)?;
    unlink_tablespaces(&pgdata, &facts.tablespaces)?;
    let end_text = basebackup::server_now(&req.conn)?;
    let end: Timestamp = end_text
        .parse()
        .map_err(|e| Error::failed(format!("the server's clock said {end_text}: {e}")))?;
    let mut info = BaseBackupInfo::new(points, &facts, end_text, directories(&pgdata)?);
    for t in &mut info.tablespaces {
        let stored = tablespaces.join(t.oid.to_string());
        t.directories = directories(&stored)?;
        t.bytes = crate::ops::workdir::tree_size(&stored)?;
    }
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

/// Remove the `pg_tblspc` links of the tablespaces stored beside the data
/// directory (they point into the staging directory); a link to anything
/// else is a tablespace created while the backup ran, which the backup
/// would lack.
fn unlink_tablespaces(pgdata: &Path, known: &[basebackup::Tablespace]) -> Result<()> {
    let dir = pgdata.join("pg_tblspc");
    let Ok(list) = std::fs::read_dir(&dir) else {
        return Ok(());
    };
    for entry in list {
        let entry = entry.context(|| format!("list {}", dir.display()))?;
        if !entry.file_type().is_ok_and(|t| t.is_symlink()) {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if !known.iter().any(|t| t.oid.to_string() == name) {
            return Err(Error::failed(format!(
                "tablespace {name} was created while the base backup ran; run the backup again"
            )));
        }
        std::fs::remove_file(entry.path())
            .context(|| format!("remove {}", entry.path().display()))?;
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
