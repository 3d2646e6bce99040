//! The restore's checks of each target database, before anything is written
//! (after provisioning for the databases it creates): reachable with the
//! credentials that will be used, empty, able to get the extensions the dump
//! creates, holding the roles the dump names; and the client programs for
//! its server.

use std::cell::OnceCell;
use std::path::{Path, PathBuf};

use crate::archive::{ArchiveReader, Codec, DumpFormat};
use crate::log::Log;
use crate::ops::unpack::dump_head;
use crate::ops::{provisioning, RestoreRequest};
use crate::pg::{self, ConnParams, PgTools};
use crate::profile::{DatabaseComponent, Environment};
use crate::{Error, Remedy, Result};

use super::prefetch::Decompressed;
use super::selection::Selection;

/// One database to load, checked.
pub(super) struct DbTarget<'a> {
    pub component: &'a DatabaseComponent,
    pub member: PathBuf,
    pub format: DumpFormat,
    pub codec: Codec,
    /// Extensions the dump needs, as the archive's manifest records them.
    recorded_extensions: Option<Vec<String>>,
    pub params: ConnParams,
    /// `None` until the database is checked: provisioned databases are
    /// checked right after they are created.
    pub tools: Option<PgTools>,
    pub jobs: u32,
    /// Created by provisioning: dropped, not emptied, on failure.
    pub created: bool,
    /// The role the restored configuration names, when new credentials
    /// replace it: the dump's owners are not restored.
    pub replaced_owner: Option<String>,
    /// The dump decompressed for pg_restore, once.
    seekable: OnceCell<Seekable>,
}

impl DbTarget<'_> {
    pub fn seekable_dump(&self, work: &Path) -> Result<PathBuf> {
        if let Some(seekable) = self.seekable.get() {
            return Ok(seekable.path().to_path_buf());
        }
        let path = self.codec.seekable_copy(&self.member, work)?;
        let seekable = if path == self.member {
            Seekable::Member(path)
        } else {
            Seekable::Decompressed(Decompressed::Disk(path))
        };
        Ok(self.seekable.get_or_init(|| seekable).path().to_path_buf())
    }

    /// The dump decompressed ahead ([`super::prefetch`]) is the one to read.
    pub fn use_seekable_dump(&self, dump: Decompressed) {
        let _ = self.seekable.set(Seekable::Decompressed(dump));
    }

    /// The database is loaded: its decompressed copy is no longer needed
    /// (the member itself is kept).
    pub fn discard_seekable_dump(&mut self) {
        drop(self.seekable.take());
    }
}

/// What pg_restore reads a custom dump from.
#[derive(Debug)]
enum Seekable {
    /// The member, not compressed.
    Member(PathBuf),
    /// A decompressed copy, gone when dropped.
    Decompressed(Decompressed),
}

impl Seekable {
    fn path(&self) -> &Path {
        match self {
            Seekable::Member(path) => path,
            Seekable::Decompressed(d) => d.path(),
        }
    }
}

/// The profile's message when the application runs (engine-backup's own line
/// for oVirt): a restore needs it stopped.
pub(super) fn application_stopped(env: &Environment) -> Result<()> {
    match env.application_running() {
        Some(message) => Err(Error::usage(message)),
        None => Ok(()),
    }
}

/// Each selected database with the connection the restore will use; those
/// that are not provisioned are checked now.
#[allow(clippy::too_many_arguments)]
pub(super) fn targets<'a>(
    req: &RestoreRequest,
    archive: &ArchiveReader,
    selection: &Selection<'a>,
    plan: &provisioning::Plan,
    future_env: &Environment,
    restore_permissions: bool,
    log: &Log,
) -> Result<Vec<DbTarget<'a>>> {
    log.line("Verifying connection");
    let mut targets = Vec::new();
    for (db, member) in &selection.databases {
        let settings = archive.config().get(&db.archive_config_prefix);
        let provisioned = plan.targets.iter().find(|t| t.scope == db.scope);
        let params = match (provisioned, req.credentials.get(&db.scope)) {
            (Some(t), _) => t.params.clone(),
            (None, Some(p)) => p.clone(),
            (None, None) => future_env.database_params(db)?.ok_or_else(|| {
                Error::usage(format!(
                    "the restored configuration names no {} database user, so there is no database to restore into",
                    db.label
                ))
                .with_remedy(Remedy::OtherTargetDatabase {
                    option_prefix: db.option_prefix.clone(),
                    scope: db.scope.clone(),
                })
            })?,
        };
        let mut target = DbTarget {
            component: db,
            member: member.clone(),
            format: settings.format,
            codec: settings.compressor,
            recorded_extensions: archive
                .manifest()
                .and_then(|m| m.database(&db.member))
                .map(|r| {
                    r.extensions
                        .iter()
                        .filter_map(|e| e.split_whitespace().next().map(str::to_string))
                        .collect()
                }),
            params,
            tools: None,
            jobs: req.jobs_for(&db.scope).get(),
            created: provisioned.is_some_and(|t| t.existing_owner.is_none()),
            replaced_owner: req.replaced_owner(db, future_env)?,
            seekable: OnceCell::new(),
        };
        // Provisioned databases are checked once they exist.
        if provisioned.is_none() {
            target.tools = Some(check_target(&target, restore_permissions, log)?);
        }
        targets.push(target);
    }
    Ok(targets)
}

/// Check the databases provisioning has just created.
pub(super) fn provisioned_targets(
    targets: &mut [DbTarget],
    restore_permissions: bool,
    log: &Log,
) -> Result<()> {
    for t in targets.iter_mut().filter(|t| t.tools.is_none()) {
        let tools = check_target(t, restore_permissions, log).map_err(|e| {
            Error::failed(format!(
                "the provisioned database '{}' is not usable as {}: {e}; check pg_hba.conf allows it ({})",
                t.params.database,
                t.params.user,
                pg::provision::hba_lines(&t.params.database, &t.params.user).join(" / ")
            ))
        })?;
        t.tools = Some(tools);
    }
    Ok(())
}

/// Connect with the credentials the restore will use, check the database is
/// empty, holds the roles the dump needs and can get its extensions; returns
/// the client programs to use.
fn check_target(t: &DbTarget, restore_permissions: bool, log: &Log) -> Result<PgTools> {
    let (params, db, member) = (&t.params, t.component, t.member.as_path());
    let mut client = pg::connect(params).map_err(|e| {
        Error::postgres(format!(
            "Can't connect to database '{}': {e}; check the server and the credentials",
            params.database
        ))
        .with_remedy(Remedy::OtherTargetDatabase {
            option_prefix: db.option_prefix.clone(),
            scope: db.scope.clone(),
        })
    })?;
    let info = pg::inspect::database_info(&mut client)?;
    if let Some(object) = pg::inspect::database_is_empty(&mut client)? {
        return Err(Error::usage(format!(
            "Database '{}' is not empty (it has {object}); restore into an empty database: drop and create it again, owned by {}",
            params.database, params.user
        )));
    }
    let tools = PgTools::for_server(info.server_version_num)?;
    let extensions = match &t.recorded_extensions {
        Some(list) => list.clone(),
        None => provisioning::dump_extensions(&tools, member, t.format, t.codec)?,
    };
    check_extensions(&mut client, params, &extensions)?;
    if t.format == DumpFormat::Custom && restore_permissions {
        // Restored under another role, the dump's owner is not needed.
        let names: Vec<String> = pg::roles::roles_in_dump(&tools, dump_head(member, t.codec)?)?
            .into_iter()
            .filter(|r| Some(r) != t.replaced_owner.as_ref())
            .collect();
        let missing = pg::roles::missing_roles(&mut client, &names)?;
        if !missing.is_empty() {
            let list: Vec<String> = missing.iter().map(|m| format!("'{m}'")).collect();
            return Err(Error::usage(format!(
                "role {} needed by the dump of database '{}' (owner or grantee) does not exist on {}:{}; create it, or restore with --no-restore-permissions",
                list.join(", "),
                params.database,
                params.host,
                params.port
            )));
        }
    }
    log.line(&format!(
        "{}: reachable, empty, server {}",
        params.display(),
        info.server_version
    ));
    Ok(tools)
}

/// Every extension the dump creates is installed in the target database
/// already, or available on the server and creatable by the restoring role
/// (a superuser, or a trusted extension in a database it owns).
fn check_extensions(
    client: &mut postgres::Client,
    params: &ConnParams,
    needed: &[String],
) -> Result<()> {
    for missing in pg::inspect::missing_extensions(client, needed)? {
        let name = &missing.name;
        if !missing.available {
            return Err(Error::usage(format!(
                "extension '{name}' needed by database '{}' is not available on the PostgreSQL server at {}:{}: install the package that provides it (most come with postgresql-contrib), then restore again",
                params.database, params.host, params.port
            )));
        }
        if !missing.creatable {
            return Err(Error::usage(format!(
                "extension '{name}' needed by database '{}' can only be created by a superuser: as the PostgreSQL superuser run 'CREATE EXTENSION \"{name}\"' in that database, or restore with provisioning",
                params.database
            )));
        }
    }
    Ok(())
}
