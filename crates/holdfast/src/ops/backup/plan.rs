//! What a backup covers, decided before anything is written: each scope's
//! component present on this machine (what is skipped is said), each database
//! reachable with the client programs for its server; the destination and the
//! compression level checked.

use std::path::Path;

use crate::archive::Codec;
use crate::log::Log;
use crate::ops::request::RolePasswords;
use crate::ops::{BackupRequest, DumpPlan};
use crate::pg::provision::Admin;
use crate::pg::{self, ConnParams, PgTools};
use crate::profile::{Component, DatabaseComponent, SqliteComponent};
use crate::{Error, Result};

/// One database to dump, with everything checked beforehand.
pub(super) struct DbJob<'a> {
    pub component: &'a DatabaseComponent,
    pub params: ConnParams,
    pub tools: PgTools,
    pub settings: DumpPlan,
    /// The superuser session the roles' password verifiers are read with.
    pub admin: Option<Admin>,
    /// Roughly what the dump will hold, in bytes, for its progress bar.
    pub size_estimate: Option<u64>,
}

/// What will be backed up.
pub(super) struct Plan<'a> {
    pub files: bool,
    pub databases: Vec<DbJob<'a>>,
    pub sqlite: Vec<&'a SqliteComponent>,
}

impl Plan<'_> {
    pub fn scopes(&self) -> Vec<String> {
        let mut s = Vec::new();
        if self.files {
            s.push("files".to_string());
        }
        s.extend(self.databases.iter().map(|d| d.component.scope.clone()));
        s.extend(self.sqlite.iter().map(|c| c.scope.clone()));
        s
    }
}

pub(super) fn plan<'a>(req: &'a BackupRequest, log: &Log) -> Result<Plan<'a>> {
    let env = &req.env;
    let explicit = |scope: &str| {
        req.scopes.len() < env.profile.scopes().len() && req.scopes.iter().any(|s| s == scope)
    };
    let skip = |scope: &str, why: String| {
        if explicit(scope) {
            log.output(&why);
        } else {
            log.line(&why);
        }
    };
    let mut plan = Plan {
        files: false,
        databases: Vec::new(),
        sqlite: Vec::new(),
    };
    for scope in &req.scopes {
        match env.component(scope) {
            Some(Component::Files) => plan.files = true,
            Some(Component::Database(db)) => {
                if db.restore_only {
                    skip(
                        scope,
                        format!(
                            "- {} database: restore only, not backed up (scope '{scope}')",
                            db.backup_label()
                        ),
                    );
                    continue;
                }
                let params = match env.database_params(db)? {
                    Some(p) if env.condition_holds(db.enabled_if.as_ref()) => p,
                    _ => {
                        skip(
                            scope,
                            format!(
                                "- {} database: not configured on this machine, skipped (scope '{scope}')",
                                db.backup_label()
                            ),
                        );
                        continue;
                    }
                };
                let settings = req
                    .dumps
                    .get(scope)
                    .copied()
                    .unwrap_or_else(DumpPlan::engine_backup_default);
                let mut client = pg::connect(&params)?;
                let tools = PgTools::for_client(&mut client)?;
                let admin = password_reader(req, &params, &tools, &mut client, log)?;
                let size_estimate = pg::inspect::dump_size_estimate(&mut client).ok();
                plan.databases.push(DbJob {
                    component: db,
                    params,
                    tools,
                    settings,
                    admin,
                    size_estimate,
                });
            }
            Some(Component::Sqlite(s)) => {
                let path = env.root.join(&s.path);
                if env.condition_holds(s.enabled_if.as_ref()) && path.is_file() {
                    plan.sqlite.push(s);
                } else {
                    skip(
                        scope,
                        format!(
                            "- {} database: not present on this machine, skipped (scope '{scope}')",
                            s.label
                        ),
                    );
                }
            }
            None => return Err(Error::usage(format!("invalid scope '{scope}'"))),
        }
    }
    if !plan.files && plan.databases.is_empty() && plan.sqlite.is_empty() {
        return Err(Error::usage(
            "nothing to back up: none of the requested scopes is configured on this machine",
        ));
    }
    Ok(plan)
}

/// The superuser session that reads the password verifiers of the roles
/// database `params` needs, as the request says; checked to reach the same
/// server. An explicit connection that does not work refuses the backup;
/// the local default is only tried.
fn password_reader(
    req: &BackupRequest,
    params: &ConnParams,
    tools: &PgTools,
    client: &mut postgres::Client,
    log: &Log,
) -> Result<Option<Admin>> {
    let opts = match &req.role_passwords {
        RolePasswords::NotRead => return Ok(None),
        RolePasswords::LocalSuperuser => {
            if !params.is_local() {
                log.line(&format!(
                    "Role passwords of database '{}' not read: its server is on another machine and no superuser connection was given",
                    params.database
                ));
                return Ok(None);
            }
            crate::ops::AdminOptions::default()
        }
        RolePasswords::Admin(opts) => opts.clone(),
    };
    let admin = Admin::new(opts.params(params.port), tools.clone());
    let reached = admin.check().and_then(|()| {
        if pg::roles::same_server(&admin, client, &params.database)? {
            Ok(())
        } else {
            Err(Error::usage(format!(
                "{} is another server than database '{}' ({})",
                admin.params().display(),
                params.database,
                params.display()
            )))
        }
    });
    match (reached, &req.role_passwords) {
        (Ok(()), _) => {
            log.line(&format!(
                "Role passwords of database '{}' read as {}",
                params.database,
                admin.params().display()
            ));
            Ok(Some(admin))
        }
        (Err(e), RolePasswords::Admin(_)) => Err(Error::usage(format!(
            "cannot read the role passwords of database '{}' as the superuser: {e}; fix --admin-host, --admin-port, --admin-user or --admin-passfile, or leave them out to back up without the passwords",
            params.database
        ))),
        (Err(e), _) => {
            log.line(&format!(
                "Role passwords of database '{}' not read: no local superuser session ({e})",
                params.database
            ));
            Ok(None)
        }
    }
}

pub(super) fn preflight_destination(req: &BackupRequest) -> Result<()> {
    let dir = req.file.parent().unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(Error::usage(format!(
            "the directory of --file ({}) does not exist; create it or choose another path",
            dir.display()
        )));
    }
    if req.file.is_dir() {
        return Err(Error::usage(format!(
            "{} is a directory; --file must name a file",
            req.file.display()
        )));
    }
    if req.file.exists() && !req.overwrite {
        return Err(Error::usage(format!(
            "{} exists; choose another --file or pass --overwrite",
            req.file.display()
        )));
    }
    Ok(())
}

/// Refuse a compression level that a codec in use does not take, before
/// anything is written.
pub(super) fn preflight_compression(req: &BackupRequest, plan: &Plan) -> Result<()> {
    let mut codecs: Vec<Codec> = plan.databases.iter().map(|j| j.settings.codec).collect();
    if plan.files {
        codecs.push(req.files_codec);
    }
    for codec in codecs {
        codec.encoder(std::io::sink(), req.compress_level, 1)?;
    }
    Ok(())
}
