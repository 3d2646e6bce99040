//! Partial restore: one table, schema or database of an archive into a
//! running server, leaving every other object as it is.
//!
//! Unlike [`super::restore`], nothing of the install changes: no files, no
//! conf rewrites, no roles provisioned, and the application may run. What
//! is written is new objects only, and every check runs before the first
//! write: the object is in the archive's dump, its names (and those of its
//! indexes and sequences) are free in the target, the roles its grants name
//! exist when permissions are restored.
//!
//! - [`objects`]: a table or schema, under its own name straight from the
//!   dump's table of contents, or under a new one by way of a scratch
//!   database;
//! - [`database`]: a whole database, beside the live one under a new name;
//! - [`scratch`]: the throwaway databases both use, dropped on every path
//!   and swept by the next run when holdfast was killed.
//!
//! No journal is needed: each load into a database that holds other
//! objects is one transaction (`pg_restore --single-transaction`), which a
//! failure or a kill rolls back; a new database is filled under a scratch
//! name and renamed only once complete.

mod database;
mod objects;
mod scratch;

use std::path::PathBuf;

use crate::archive::{ArchiveReader, Codec, DumpFormat};
use crate::log::Log;
use crate::ops::lock::{LockMode, OperationLock};
use crate::ops::{PartialRequest, PartialTarget, WorkDir};
use crate::pg::{self, ConnParams, DatabaseInfo, PgTools};
use crate::profile::DatabaseComponent;
use crate::{Error, Remedy, Result};

/// What a partial restore did, one line per object, as the console says it.
#[derive(Debug, Default)]
pub struct PartialOutcome {
    pub restored: Vec<String>,
}

pub fn run(req: &PartialRequest, log: &Log) -> Result<PartialOutcome> {
    // A termination request makes steps fail in their own words: say why.
    run_uninterrupted(req, log).map_err(crate::interrupt::explain)
}

fn run_uninterrupted(req: &PartialRequest, log: &Log) -> Result<PartialOutcome> {
    let r = &req.restore;
    log.output("Preparing to restore part of an archive:");
    let _lock = OperationLock::acquire(&r.env, LockMode::Exclusive, "restore")?;
    log.output(&format!("- Unpacking file '{}'", r.file.display()));
    let work = WorkDir::new(&r.tmpdir)?;
    let archive = crate::ops::unpack::unpack(
        &r.file,
        &work,
        &r.env.profile,
        Some(&r.installed_version),
        log,
    )?;
    let source = Source::choose(req, &archive)?;
    let live = Live::connect(req, &source, log)?;
    match &req.target {
        PartialTarget::Objects(list) => objects::restore(req, list, &source, &live, &work, log),
        PartialTarget::Database(_) => database::restore(req, &source, &live, &work, log),
    }
}

/// The dump a partial restore reads.
pub(crate) struct Source<'a> {
    pub db: &'a DatabaseComponent,
    pub member: PathBuf,
    pub format: DumpFormat,
    pub codec: Codec,
}

impl<'a> Source<'a> {
    /// The scope `--only-database` names, else the one database the archive
    /// holds among the `--scope`s asked for.
    fn choose(req: &'a PartialRequest, archive: &ArchiveReader) -> Result<Source<'a>> {
        let profile = &req.restore.env.profile;
        let held = |db: &DatabaseComponent| {
            archive
                .member(&db.member)
                .filter(|m| m.size > 0)
                .and_then(|_| archive.member_path(&db.member))
        };
        let db = match &req.target {
            PartialTarget::Database(scope) => {
                let db = profile.database(scope).ok_or_else(|| {
                    Error::usage(format!(
                        "--only-database {scope}: not a database scope of profile {}",
                        profile.name
                    ))
                })?;
                if held(db).is_none() {
                    return Err(Error::usage(format!(
                        "the archive holds no dump of database scope '{scope}'"
                    )));
                }
                db
            }
            PartialTarget::Objects(_) => {
                let candidates: Vec<&DatabaseComponent> = profile
                    .databases
                    .iter()
                    .filter(|db| req.restore.scopes.contains(&db.scope) && held(db).is_some())
                    .collect();
                match candidates.as_slice() {
                    [db] => *db,
                    [] => {
                        return Err(Error::usage(
                            "the archive holds no database dump of the scopes asked for",
                        ))
                    }
                    several => {
                        let scopes: Vec<&str> = several.iter().map(|d| d.scope.as_str()).collect();
                        return Err(Error::usage(format!(
                            "the archive holds the databases of scopes {}: name the one to restore from with --scope",
                            scopes.join(", ")
                        )));
                    }
                }
            }
        };
        let settings = archive.config().get(&db.archive_config_prefix);
        Ok(Source {
            db,
            member: held(db).expect("checked above"),
            format: settings.format,
            codec: settings.compressor,
        })
    }
}

/// The application's live database, as the install's configuration names it.
pub(crate) struct Live {
    pub params: ConnParams,
    pub info: DatabaseInfo,
    pub tools: PgTools,
}

impl Live {
    fn connect(req: &PartialRequest, source: &Source, log: &Log) -> Result<Live> {
        let db = source.db;
        // A --target names another running database; else the install's.
        let given = req.restore.credentials.get(&db.scope).cloned();
        let configured = match given {
            Some(p) => Some(p),
            None => req.restore.env.database_params(db)?,
        };
        let params = configured.ok_or_else(|| {
            Error::usage(format!(
                "the install's configuration names no {} database, so there is no running database to restore into",
                db.label
            ))
        })?;
        let mut client = pg::connect(&params).map_err(|e| {
            Error::postgres(format!(
                "Can't connect to database '{}': {e}; check the server and the credentials",
                params.database
            ))
            .with_remedy(Remedy::OtherTargetDatabase {
                option_prefix: db.option_prefix.clone(),
                scope: db.scope.clone(),
            })
        })?;
        let info = pg::database_info(&mut client)?;
        let tools = PgTools::for_server(info.server_version_num)?;
        log.line(&format!(
            "{}: reachable, server {}",
            params.display(),
            info.server_version
        ));
        Ok(Live {
            params,
            info,
            tools,
        })
    }

    /// A new session in the live database.
    pub fn client(&self) -> Result<postgres::Client> {
        pg::connect(&self.params)
    }

    /// The same server and user, another database.
    pub fn params_for(&self, database: &str) -> ConnParams {
        ConnParams {
            database: database.to_string(),
            ..self.params.clone()
        }
    }
}

/// `--restore-permissions` or `--no-restore-permissions`, which a custom
/// dump needs as a full restore does.
fn restore_permissions(req: &PartialRequest, format: DumpFormat) -> Result<bool> {
    match (req.restore.restore_permissions, format) {
        (Some(p), _) => Ok(p),
        (None, DumpFormat::Plain) => Ok(false),
        (None, _) => Err(Error::usage(
            "Please pass one of --restore-permissions or --no-restore-permissions when restoring a backup with a custom dump format",
        )),
    }
}

/// Refuse when a role the restored objects name is not on the server.
fn check_roles(live: &Live, roles: Vec<String>) -> Result<()> {
    let missing = pg::roles::missing_roles(&mut live.client()?, &roles)?;
    if missing.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = missing.iter().map(|m| format!("'{m}'")).collect();
    Err(Error::usage(format!(
        "role {} needed by what is restored (owner or grantee) does not exist on {}:{}; create it, or restore with --no-restore-permissions",
        list.join(", "),
        live.params.host,
        live.params.port
    )))
}
