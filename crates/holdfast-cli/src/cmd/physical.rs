//! `holdfast repo backup --physical` and `holdfast repo restore --physical`:
//! base backups of a whole cluster and point-in-time recovery from them with
//! the WAL `holdfast wal push` archived.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use holdfast::log::Log;
use holdfast::ops::physical::backup::{self, PhysicalBackupRequest};
use holdfast::ops::physical::environment;
use holdfast::ops::physical::recover;
use holdfast::ops::physical::restore::{self, PhysicalRestoreRequest};
use holdfast::ops::physical::target::{self, Target};
use holdfast::ops::RepoBackupRequest;
use holdfast::pg::ConnParams;
use holdfast::profile::Environment;
use holdfast::repo::jiff::Timestamp;
use holdfast::repo::Repo;
use holdfast::{Error, IoContext, Password};

use super::EnvArgs;
use crate::shared::absolute;

/// The environment variable holding the cluster password when --passfile is not given.
pub const PASSWORD_ENV: &str = "HOLDFAST_DB_PASSWORD";

#[derive(Debug, Args)]
pub struct PhysicalBackupArgs {
    /// A base backup of the whole cluster (pg_basebackup; its WAL comes
    /// from 'holdfast wal push'), with the profile's files when --profile is given.
    #[arg(long)]
    pub physical: bool,
    /// The cluster's host or socket directory (with --physical).
    #[arg(
        long,
        requires = "physical",
        value_name = "HOST|DIR",
        default_value = "localhost"
    )]
    pub host: String,
    /// The cluster's port (with --physical).
    #[arg(
        long,
        requires = "physical",
        value_name = "PORT",
        default_value_t = 5432
    )]
    pub port: u16,
    /// A role with the REPLICATION attribute (with --physical) [default: postgres].
    #[arg(long, requires = "physical", value_name = "USER")]
    pub user: Option<String>,
    /// File whose first line is the role's password (else HOLDFAST_DB_PASSWORD, else none).
    #[arg(long, requires = "physical", value_name = "FILE")]
    pub passfile: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PhysicalRestoreArgs {
    /// Point-in-time recovery of a whole cluster from the newest base backup
    /// before the target and the archived WAL (default target: the end of the
    /// archive); with --profile, the profile's files as they were at the target.
    #[arg(long)]
    pub physical: bool,
    /// Recover up to this time, e.g. '2026-12-07 05:25:19+00'.
    #[arg(long, requires = "physical", value_name = "TIME", group = "to")]
    pub to_time: Option<String>,
    /// Recover up to this WAL location, e.g. 0/3000060.
    #[arg(long, requires = "physical", value_name = "LSN", group = "to")]
    pub to_lsn: Option<String>,
    /// Recover up to this transaction id.
    #[arg(long, requires = "physical", value_name = "XID", group = "to")]
    pub to_xid: Option<String>,
    /// Recover up to this named restore point (pg_create_restore_point).
    #[arg(long, requires = "physical", value_name = "NAME", group = "to")]
    pub to_name: Option<String>,
    /// The new data directory (must be missing or empty).
    #[arg(long, requires = "physical", value_name = "DIR")]
    pub pgdata: Option<PathBuf>,
    /// Restore the tablespace NAME (or oid) into DIR, which must be missing or
    /// empty [default: where the backed-up server had it]; repeatable.
    #[arg(long, requires = "physical", value_name = "NAME=DIR")]
    pub tablespace_map: Vec<String>,
    /// The port the recovered server listens on [default: the data directory's own].
    #[arg(long, requires = "physical", value_name = "PORT")]
    pub port: Option<u16>,
    /// Restore and configure the recovery, but do not start the server.
    #[arg(long, requires = "physical")]
    pub no_start: bool,
    /// Pause at the target instead of promoting (resume with pg_wal_replay_resume()).
    #[arg(long, requires = "physical", conflicts_with = "no_start")]
    pub pause: bool,
    /// How long to wait for the server to reach the target, in seconds.
    #[arg(
        long,
        requires = "physical",
        value_name = "SECONDS",
        default_value_t = 3600
    )]
    pub recovery_timeout: u64,
}

impl PhysicalBackupArgs {
    fn conn(&self) -> holdfast::Result<ConnParams> {
        let password = if let Some(path) = &self.passfile {
            Some(Password::from_file(path).context(|| format!("read {}", path.display()))?)
        } else {
            std::env::var(PASSWORD_ENV).ok().map(Password::new)
        };
        Ok(ConnParams {
            host: self.host.clone(),
            port: self.port,
            user: self.user.clone().unwrap_or_else(|| "postgres".into()),
            database: "postgres".into(),
            password,
            secured: false,
            secured_validation: false,
        })
    }
}

/// `repo backup --physical`.
pub fn backup(
    repo: &mut Repo,
    a: &PhysicalBackupArgs,
    env: &EnvArgs,
    log: &Log,
) -> holdfast::Result<()> {
    let tmpdir = env.tmpdir()?;
    // With a profile, its files go into the snapshot as a files-only backup.
    let environment = match env.given_profile() {
        Some(_) => Some(RepoBackupRequest::new(
            env.environment()?,
            vec!["files".to_string()],
            tmpdir.clone(),
            env.installed_version.as_deref(),
        )?),
        None => None,
    };
    let req = PhysicalBackupRequest {
        conn: a.conn()?,
        tmpdir,
        environment,
    };
    let s = backup::backup(repo, &req, log)?;
    log.output(&super::repo::snapshot_saved("Base backup snapshot", &s));
    log.output("Done.");
    Ok(())
}

/// `repo restore --physical`.
pub fn restore(
    repo: &mut Repo,
    a: &PhysicalRestoreArgs,
    env: &EnvArgs,
    password: Password,
    log: &Log,
) -> holdfast::Result<()> {
    let pgdata = a
        .pgdata
        .as_deref()
        .map(absolute)
        .ok_or_else(|| Error::usage("--physical needs --pgdata DIR, the new data directory"))?;
    let target = if let Some(t) = &a.to_time {
        Target::time(t)?
    } else if let Some(l) = &a.to_lsn {
        Target::lsn(l)?
    } else if let Some(x) = &a.to_xid {
        Target::xid(x)?
    } else if let Some(n) = &a.to_name {
        Target::Name(n.clone())
    } else {
        Target::Latest
    };
    // The profile's files are restored as they were at the time recovery
    // reaches, which only a started recovery tells unless the target is a time.
    let files = match env.given_profile() {
        Some(_) => Some(env.environment()?),
        None => None,
    };
    if files.is_some() && a.no_start && !matches!(target, Target::Time(_)) {
        return Err(Error::usage(
            "--profile with --no-start needs --to-time: the files are restored as they were at the time \
             recovery reaches, unknown until the server has recovered",
        ));
    }
    let tablespace_map = a
        .tablespace_map
        .iter()
        .map(|m| match m.split_once('=') {
            Some((name, dir)) if !name.is_empty() && !dir.is_empty() => {
                Ok((name.to_string(), absolute(Path::new(dir))))
            }
            _ => Err(Error::usage(format!(
                "--tablespace-map {m}: give NAME=DIR, e.g. --tablespace-map app_data=/srv/pg/app_data"
            ))),
        })
        .collect::<holdfast::Result<Vec<_>>>()?;
    let holdfast = std::env::current_exe().map_err(|e| Error::io("find this program", e))?;
    let req = PhysicalRestoreRequest {
        target,
        pgdata,
        port: a.port,
        pause: a.pause,
        holdfast,
        location: repo.location().to_string(),
        rest_password: repo.location().rest_password().cloned(),
        rest_cacert: repo.location().rest_cacert().map(PathBuf::from),
        s3_credentials: repo.location().s3_credentials_file(),
        password,
        environment: files,
        tablespace_map,
    };
    let prepared = restore::prepare(repo, &req, log)?;
    if a.no_start {
        if let (Some(files), Target::Time(at)) = (req.environment.clone(), &req.target) {
            restore_files(repo, files, *at, env, log)?;
        }
        log.output(&format!(
            "{} is restored and configured for recovery; start the server to recover",
            prepared.pgdata.display()
        ));
        log.output("Done.");
        return Ok(());
    }
    let reached = recover::start_and_wait(&prepared, Duration::from_secs(a.recovery_timeout), log)?;
    if let Some(line) = &reached.stopped {
        log.output(&format!("Recovery stopped: {line}"));
    }
    match &reached.last_transaction {
        Some(t) => log.output(&format!("Recovered to {t} (the last transaction replayed)")),
        None => log.output("Recovered to the end of the archive"),
    }
    log.output(if reached.paused {
        "The server is paused at the target; SELECT pg_wal_replay_resume() promotes it"
    } else {
        "The server is promoted and running"
    });
    if let Some(files) = req.environment.clone() {
        // As of the target time, else of the last transaction replayed, else of the backup.
        let at = match (&req.target, &reached.last_transaction) {
            (Target::Time(t), _) => *t,
            (_, Some(t)) => target::parse_time(t)?,
            (_, None) => prepared.backup.end.timestamp(),
        };
        restore_files(repo, files, at, env, log)?;
    }
    log.output("Done.");
    Ok(())
}

/// The profile's files as they were at `at`.
fn restore_files(
    repo: &mut Repo,
    files: Environment,
    at: Timestamp,
    env: &EnvArgs,
    log: &Log,
) -> holdfast::Result<()> {
    let profile = files.profile.name.clone();
    let source = environment::choose(
        &environment::candidates(&repo.snapshots()?, &profile),
        &profile,
        at,
    )?;
    environment::restore(
        repo,
        &source,
        files,
        &env.tmpdir()?,
        env.installed_version.as_deref(),
        log,
    )?;
    Ok(())
}
