//! Migrate's checks, all before the first write: the scope and its source,
//! the application stopped (or `--online`), the source's roles and
//! extensions, the target reachable (as the admin, or as the application
//! role) with an empty database, a server not older than the source, and
//! room to stage the copy.

use std::path::Path;

use crate::log::Log;
use crate::ops::provisioning::Target;
use crate::ops::workdir::require_free_space;
use crate::pg::inspect::{self, DatabaseInfo};
use crate::pg::provision::{self, Admin, ServerFacts};
use crate::pg::{self, ConnParams, PgTools};
use crate::profile::DatabaseComponent;
use crate::{Error, Result};

use super::MigrateRequest;

/// The database component of the scope, and where it is now.
pub(super) fn source(req: &MigrateRequest) -> Result<(&DatabaseComponent, ConnParams)> {
    let env = &req.env;
    let db = env.profile.database(&req.scope).ok_or_else(|| {
        Error::usage(format!(
            "scope '{}' is not a database of the {} profile (databases: {})",
            req.scope,
            env.profile.name,
            env.profile
                .databases
                .iter()
                .map(|d| d.scope.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let source = env.database_params(db)?.ok_or_else(|| {
        Error::usage(format!(
            "the {} database is not configured on this machine; nothing to migrate",
            db.label
        ))
    })?;
    Ok((db, source))
}

/// The target is another database.
pub(super) fn request(req: &MigrateRequest, source: &ConnParams) -> Result<()> {
    if req.target.host == source.host
        && req.target.port == source.port
        && req.target.database == source.database
    {
        return Err(Error::usage(
            "the target is the source database; give another --to-host, --to-port or --to-name",
        ));
    }
    Ok(())
}

/// The application stopped, or `--online` accepting that it runs.
pub(super) fn application(req: &MigrateRequest, log: &Log) -> Result<()> {
    match req.env.application_running() {
        Some(message) if !req.online => Err(Error::usage(format!(
            "{message} (to copy while it runs pass --online: writes after the copy's snapshot are lost)"
        ))),
        Some(_) => {
            log.warning("--online: the application is running; what it writes after the copy's snapshot is not migrated");
            Ok(())
        }
        None => Ok(()),
    }
}

/// What the source database is and needs on the target.
pub(super) struct SourceFacts {
    pub info: DatabaseInfo,
    /// Roles that own objects or hold grants, besides the application's.
    pub roles: Vec<String>,
    /// Extensions besides plpgsql.
    pub extensions: Vec<String>,
}

pub(super) fn source_facts(
    client: &mut postgres::Client,
    source: &ConnParams,
    log: &Log,
) -> Result<SourceFacts> {
    let info = inspect::database_info(client)?;
    log.output(&format!(
        "- source: PostgreSQL {} reachable",
        info.server_version
    ));
    let roles = pg::roles::roles_needed(client)?
        .into_iter()
        .map(|r| r.name)
        .filter(|r| r != &source.user)
        .collect();
    let extensions = info
        .extensions
        .iter()
        .map(|(n, _)| n.clone())
        .filter(|n| n != "plpgsql")
        .collect();
    Ok(SourceFacts {
        info,
        roles,
        extensions,
    })
}

/// A dump of a newer server may not load into an older one: the target's
/// major is at least the source's; returns the client programs for both.
pub(super) fn versions(source_version: i32, target_version: i32) -> Result<PgTools> {
    if target_version / 10_000 < source_version / 10_000 {
        return Err(Error::usage(format!(
            "the target server (PostgreSQL {}) is older than the source ({}): a dump of a newer server may not load into an older one; migrate to PostgreSQL {} or newer",
            target_version / 10_000,
            source_version / 10_000,
            source_version / 10_000
        )));
    }
    PgTools::for_server(source_version.max(target_version))
}

/// Reach the target (as the admin, or as the application role), check its
/// database, extensions and roles; returns the provisioning plan and the
/// target server's version.
pub(super) fn target(
    req: &MigrateRequest,
    locale: &(String, String),
    needed_roles: &[String],
    extensions: &[String],
    log: &Log,
) -> Result<(Option<Target>, i32)> {
    let t = &req.target;
    let Some(admin_params) = &req.admin else {
        let mut client = pg::connect(t).map_err(|e| {
            Error::postgres(format!(
                "target: {e}; create the role and an empty database there first, or pass --admin-user so holdfast creates them"
            ))
        })?;
        let info = inspect::database_info(&mut client)?;
        if let Some(object) = inspect::database_is_empty(&mut client)? {
            return Err(not_empty(t, &object));
        }
        let missing_ext: Vec<&String> = extensions
            .iter()
            .filter(|e| !info.extensions.iter().any(|(n, _)| n == *e))
            .collect();
        if !missing_ext.is_empty() {
            return Err(Error::usage(format!(
                "extension(s) {} must be created in the target database by a superuser; pass --admin-user so holdfast creates them",
                list(&missing_ext)
            )));
        }
        let missing = pg::roles::missing_roles(&mut client, needed_roles)?;
        let missing: Vec<&String> = missing.iter().collect();
        if !missing.is_empty() {
            return Err(Error::usage(format!(
                "role(s) {} own objects or hold grants in the source database and do not exist on the target; create them or pass --admin-user",
                list(&missing)
            )));
        }
        log.output(&format!(
            "- target: {} reachable, database empty",
            t.display()
        ));
        return Ok((None, info.server_version_num));
    };
    let admin = Admin::new(admin_params.clone(), PgTools::newest()?);
    admin.check().map_err(|e| {
        Error::postgres(format!("target server as {}: {e}", admin_params.display()))
    })?;
    let facts = ServerFacts::read(&admin)?;
    let missing_ext: Vec<&String> = extensions
        .iter()
        .filter(|e| !facts.available_extensions.contains(*e))
        .collect();
    if !missing_ext.is_empty() {
        return Err(Error::usage(format!(
            "extension(s) {} are not available on the target server; install their packages there first",
            list(&missing_ext)
        )));
    }
    let existing_owner = facts.database_owner(&t.database).map(str::to_string);
    if existing_owner.is_some() {
        if let Some(object) = provision::first_object(&admin, &t.database)? {
            return Err(not_empty(t, &object));
        }
    }
    if t.password.is_none() {
        return Err(Error::usage(
            "the target role needs a password: give --to-passfile (or keep the source's password)",
        ));
    }
    let locale = provision::choose_locale((&locale.0, &locale.1), &facts);
    let target = Target {
        scope: req.scope.clone(),
        params: t.clone(),
        admin,
        role_exists: facts.roles.contains(&t.user),
        existing_owner,
        extensions: extensions.to_vec(),
        locale,
        extra_roles: needed_roles
            .iter()
            .filter(|r| !facts.roles.contains(*r))
            .cloned()
            .collect(),
        // Migrate has no archive record: extra roles get random passwords.
        recorded_roles: Default::default(),
    };
    log.output(&format!(
        "- target: PostgreSQL {}.{} reachable as {} (database '{}' {})",
        facts.server_version_num / 10_000,
        facts.server_version_num % 10_000,
        admin_params.user,
        t.database,
        if target.existing_owner.is_some() {
            "exists and is empty"
        } else {
            "will be created"
        }
    ));
    Ok((Some(target), facts.server_version_num as i32))
}

fn not_empty(t: &ConnParams, object: &str) -> Error {
    Error::usage(format!(
        "Database '{}' on {}:{} is not empty (it has {object}); migrate into an empty database: drop and create it again, or choose another --to-name",
        t.database, t.host, t.port
    ))
}

fn list(items: &[&String]) -> String {
    items
        .iter()
        .map(|i| format!("'{i}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The staged dump is gzip-1 compressed: refuse when the temporary directory
/// has less free space than a quarter of the database.
pub(super) fn space(client: &mut postgres::Client, dir: &Path, source: &ConnParams) -> Result<()> {
    let size = pg::inspect::database_size(client)?;
    require_free_space(dir, (size / 4).max(0) as u64, |free| {
        format!(
            "{} has {} MB free; staging the copy of '{}' ({} MB) needs about {} MB: pass --tmpdir on a larger filesystem",
            dir.display(),
            free / 1_000_000,
            source.database,
            size / 1_000_000,
            size / 4 / 1_000_000
        )
    })
}
