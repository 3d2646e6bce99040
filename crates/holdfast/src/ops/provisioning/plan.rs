//! The provisioning plan: for each database to provision, the application's
//! credentials from the restored configuration, the superuser connection,
//! what the server has (or that a local cluster is to be initialised), what
//! the dump needs (extensions, roles named in grants) and the locale; all
//! checked, nothing changed.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufReader;
use std::path::{Path, PathBuf};

use crate::archive::manifest::RoleAttributes;
use crate::archive::{ArchiveReader, Codec, DumpFormat};
use crate::log::Log;
use crate::ops::unpack::dump_head;
use crate::ops::RestoreRequest;
use crate::pg::provision::{self, Admin, ClusterInit, Locale, ServerFacts};
use crate::pg::{self, ConnParams, PgTools};
use crate::profile::{DatabaseComponent, Environment};
use crate::{Error, Remedy, Result};

/// One database to provision, checked.
#[derive(Debug)]
pub struct Target {
    pub scope: String,
    /// The application's connection, from the restored configuration.
    pub params: ConnParams,
    pub admin: Admin,
    pub role_exists: bool,
    /// Owner of the database when it exists (it is empty).
    pub existing_owner: Option<String>,
    /// Extensions to create as superuser before the restore.
    pub extensions: Vec<String>,
    pub locale: Locale,
    /// Roles that hold grants in the dump and do not exist: created as the
    /// archive recorded them, else with a random password.
    pub extra_roles: Vec<String>,
    /// What the archive recorded of the roles its database needs.
    pub recorded_roles: BTreeMap<String, RoleAttributes>,
}

/// Everything provisioning will do, decided before the first write.
#[derive(Debug, Default)]
pub struct Plan {
    /// Initialise and start the local cluster first.
    pub init: Option<(ClusterInit, Admin)>,
    pub targets: Vec<Target>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    pub fn provisions(&self, scope: &str) -> bool {
        self.targets.iter().any(|t| t.scope == scope)
    }
}

/// Check everything about the databases to provision and decide what to
/// create; nothing is changed.
pub fn plan(
    req: &RestoreRequest,
    future: &Environment,
    chosen: &[(&DatabaseComponent, PathBuf)],
    archive: &ArchiveReader,
    restore_permissions: bool,
    log: &Log,
) -> Result<Plan> {
    let mut plan = Plan::default();
    for (db, member) in chosen {
        let params = app_params(req, future, db)?;
        let admin = admin_for(req, &params)?;
        let facts = facts_or_init(req, &admin, &params.database, &mut plan.init, log)?;
        let settings = archive.config().get(&db.archive_config_prefix);
        let tools = match &facts {
            Some(f) => PgTools::for_server(f.server_version_num as i32)?,
            None => PgTools::newest()?,
        };
        let record = archive.manifest().and_then(|m| m.database(&db.member));
        // A plain dump names no grants: the manifest's extension list spares
        // decompressing the whole dump once more.
        let needs = match (settings.format, record) {
            (DumpFormat::Plain, Some(r)) => DumpNeeds {
                extensions: r
                    .extensions
                    .iter()
                    .filter_map(|e| e.split_whitespace().next().map(str::to_string))
                    .collect(),
                roles: BTreeSet::new(),
            },
            _ => dump_needs(
                &tools,
                member,
                settings.format,
                settings.compressor,
                restore_permissions,
            )?,
        };
        let mut needs = needs;
        if let Some(old_owner) = req.replaced_owner(db, future)? {
            needs.roles.remove(&old_owner);
        }
        let recorded = record.map(|r| (r.collate.clone(), r.ctype.clone()));
        let mut target = check_target(db, params, admin, facts.as_ref(), needs, recorded)?;
        target.recorded_roles = record
            .map(|r| {
                r.roles
                    .iter()
                    .filter_map(|role| Some((role.name.clone(), role.attributes.clone()?)))
                    .collect()
            })
            .unwrap_or_default();
        plan.targets.push(target);
    }
    Ok(plan)
}

/// What the server has, or `None` when it is a local cluster that is not
/// initialised and `--init-cluster` asks to create it (recorded in `init`).
fn facts_or_init(
    req: &RestoreRequest,
    admin: &Admin,
    database: &str,
    init: &mut Option<(ClusterInit, Admin)>,
    log: &Log,
) -> Result<Option<ServerFacts>> {
    if let Some((_, planned)) = init {
        if planned.params() == admin.params() {
            return Ok(None);
        }
    }
    let e = match admin.check() {
        Ok(()) => return ServerFacts::read(admin).map(Some),
        Err(e) => e,
    };
    let Some(why) = no_server_reason(admin, &e) else {
        return Err(Error::usage(format!(
            "Can't provision database '{database}': {e}; pass the superuser's connection with --admin-host, --admin-port, --admin-user and --admin-passfile"
        )));
    };
    if !req.provision.init_cluster || init.is_some() {
        return Err(Error::usage(format!(
            "Can't connect to PostgreSQL as superuser to provision database '{database}': {why}; if PostgreSQL is installed but not initialised, pass --init-cluster to initialise and start it; for a server on another machine pass --admin-host, --admin-user and --admin-passfile"
        )));
    }
    let planned = cluster_init(req, admin)?;
    if planned.exists() {
        return Err(Error::usage(format!(
            "the PostgreSQL cluster ({}) exists but its server does not answer at {}: start it, then restore again",
            planned.describe(),
            admin.params().display()
        )));
    }
    log.line(&format!(
        "The local cluster will be initialised: {}",
        planned.describe()
    ));
    *init = Some((planned, admin.clone()));
    Ok(None)
}

/// The application's connection: the new credentials given for it, else the
/// restored conf's, with engine-backup's provisioning preconditions.
fn app_params(
    req: &RestoreRequest,
    future: &Environment,
    db: &DatabaseComponent,
) -> Result<ConnParams> {
    let given = req.credentials.get(&db.scope).cloned();
    let params = match given {
        Some(p) => Some(p),
        None => future.database_params(db)?,
    };
    let params = params
        .filter(|p| !p.database.is_empty() && p.password.as_ref().is_some_and(|pw| !pw.is_empty()));
    let Some(params) = params else {
        return Err(Error::usage(format!(
            "Some database credentials missing - cannot provision the {} database: the restored configuration needs its user, database name and password",
            db.label
        )));
    };
    if params.secured || params.secured_validation {
        return Err(Error::usage(format!(
            "Cannot provision database '{}' with a secured connection: create its role and an empty database by hand, then restore without provisioning it",
            params.database
        ))
        .with_remedy(Remedy::OtherTargetDatabase {
            option_prefix: db.option_prefix.clone(),
            scope: db.scope.clone(),
        }));
    }
    Ok(params)
}

pub(super) fn admin_for(req: &RestoreRequest, target: &ConnParams) -> Result<Admin> {
    let opts = &req.provision.admin;
    if opts.host.is_none() && !target.is_local() {
        return Err(Error::usage(format!(
            "Can provision database '{}' only on this machine (its host is {}): for a server on another machine pass --admin-host and the superuser's credentials",
            target.database, target.host
        )));
    }
    let params = opts.params(target.port);
    Ok(Admin::new(params, PgTools::newest()?))
}

/// Why no server answers, when that is the problem (no socket file): a local
/// cluster that is not initialised or not started.
fn no_server_reason(admin: &Admin, e: &Error) -> Option<String> {
    let p = admin.params();
    if !p.is_socket() {
        return None;
    }
    let socket = Path::new(&p.host).join(format!(".s.PGSQL.{}", p.port));
    (!socket.exists()).then(|| {
        format!(
            "no PostgreSQL server is running with a socket at {} ({e})",
            socket.display()
        )
    })
}

fn cluster_init(req: &RestoreRequest, admin: &Admin) -> Result<ClusterInit> {
    let p = admin.params();
    match &req.provision.init_data_dir {
        Some(dir) => Ok(ClusterInit::Initdb {
            bindir: PgTools::newest()?.bindir,
            data_dir: dir.clone(),
            socket_dir: PathBuf::from(&p.host),
            port: p.port,
        }),
        None => ClusterInit::for_this_machine(Path::new(&p.host), p.port),
    }
}

/// The extensions a dump creates.
pub(crate) fn dump_extensions(
    tools: &PgTools,
    member: &Path,
    format: DumpFormat,
    codec: Codec,
) -> Result<Vec<String>> {
    Ok(dump_needs(tools, member, format, codec, false)?.extensions)
}

/// What a dump needs on the server: extensions, and roles named in grants.
struct DumpNeeds {
    extensions: Vec<String>,
    roles: BTreeSet<String>,
}

fn dump_needs(
    tools: &PgTools,
    member: &Path,
    format: DumpFormat,
    codec: Codec,
    restore_permissions: bool,
) -> Result<DumpNeeds> {
    match format {
        DumpFormat::Custom => {
            let toc = pg::list_toc_of(tools, dump_head(member, codec)?)?;
            let roles = if restore_permissions {
                pg::roles::roles_in_dump(tools, dump_head(member, codec)?)?
            } else {
                BTreeSet::new()
            };
            Ok(DumpNeeds {
                extensions: provision::extensions_in_toc(&toc),
                roles,
            })
        }
        DumpFormat::Plain => {
            let mut reader = BufReader::new(codec.open_decoded(member)?);
            Ok(DumpNeeds {
                extensions: provision::extensions_in_sql(&mut reader)?,
                roles: BTreeSet::new(),
            })
        }
    }
}

fn check_target(
    db: &DatabaseComponent,
    params: ConnParams,
    admin: Admin,
    facts: Option<&ServerFacts>,
    needs: DumpNeeds,
    recorded: Option<(String, String)>,
) -> Result<Target> {
    let fresh = ServerFacts::default();
    let known = facts.is_some();
    let facts = facts.unwrap_or(&fresh);
    let existing_owner = facts.database_owner(&params.database).map(str::to_string);
    let mut installed = BTreeSet::new();
    if existing_owner.is_some() {
        if let Some(object) = provision::first_object(&admin, &params.database)? {
            return Err(Error::usage(format!(
                "Database '{}' is not empty (it has {object}); nothing was changed. Clean it first: as the PostgreSQL superuser run 'DROP DATABASE \"{}\"' (provisioning creates it again)",
                params.database, params.database
            ))
            .with_remedy(Remedy::OtherTargetDatabase {
                option_prefix: db.option_prefix.clone(),
                scope: db.scope.clone(),
            }));
        }
        installed = provision::installed_extensions(&admin, &params.database)?;
    }
    let wanted: Vec<String> = needs
        .extensions
        .into_iter()
        .filter(|e| e != "plpgsql" && !installed.contains(e))
        .collect();
    if known {
        let missing: Vec<&String> = wanted
            .iter()
            .filter(|e| !facts.available_extensions.contains(*e))
            .collect();
        if !missing.is_empty() {
            return Err(missing_extensions(&params.database, &missing));
        }
    }
    let (collate, ctype) = recorded.unwrap_or_else(|| {
        (
            provision::DEFAULT_LOCALE.to_string(),
            provision::DEFAULT_LOCALE.to_string(),
        )
    });
    let locale = provision::choose_locale((&collate, &ctype), facts);
    let extra_roles = needs
        .roles
        .into_iter()
        .filter(|r| r != &params.user && r != &admin.params().user && !facts.roles.contains(r))
        .collect();
    Ok(Target {
        scope: db.scope.clone(),
        role_exists: facts.roles.contains(&params.user),
        params,
        admin,
        existing_owner,
        extensions: wanted,
        locale,
        extra_roles,
        recorded_roles: BTreeMap::new(),
    })
}

pub(super) fn missing_extensions(database: &str, missing: &[&String]) -> Error {
    let list: Vec<String> = missing.iter().map(|m| format!("'{m}'")).collect();
    Error::usage(format!(
        "extension {} needed by database '{database}' is not available on the PostgreSQL server; nothing was changed. Install the package that provides it (most come with postgresql-contrib), then restore again",
        list.join(", ")
    ))
}
