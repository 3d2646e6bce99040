//! Provisioning for a restore: which databases get their role and database
//! created, everything about them checked before the first write, then the
//! creation itself with every step recorded so that a failure undoes it.
//!
//! A database that exists and is empty is reused (its owner set, the role's
//! password set, the old values kept for the rollback); one that holds objects
//! stops the restore before anything is written. There is never a database or
//! role with a made-up name.

use std::collections::BTreeSet;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::archive::{ArchiveReader, Codec, DumpFormat};
use crate::log::Log;
use crate::ops::verify::seekable_dump;
use crate::ops::RestoreRequest;
use crate::pg::provision::{self, Admin, ClusterInit, InitializedCluster, Locale, ServerFacts};
use crate::pg::{self, ConnParams, PgTools};
use crate::profile::{DatabaseComponent, Environment};
use crate::secret::Password;
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
    /// Roles that hold grants in the dump and do not exist: created with a random password.
    pub extra_roles: Vec<String>,
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

/// One change on the server, and how to take it back.
#[derive(Debug)]
pub enum Undo {
    Cluster(InitializedCluster),
    DropRole(Admin, String),
    DropDatabase(Admin, String),
    DropExtension(Admin, String, String),
    RestorePassword(Admin, String, Option<String>),
    RestoreOwner(Admin, String, String),
}

/// The databases (with their dump members) to provision: those asked for, or
/// all of them when engine-backup's automatic provisioning applies.
pub fn choose<'a>(
    req: &RestoreRequest,
    future: &Environment,
    dbs: &[(&'a DatabaseComponent, PathBuf)],
    log: &Log,
) -> Result<Vec<(&'a DatabaseComponent, PathBuf)>> {
    let p = &req.provision;
    if p.explicit() {
        if let Some((db, _)) = dbs.iter().find(|(d, _)| {
            (p.all || p.scopes.contains(&d.scope)) && req.credentials.contains_key(&d.scope)
        }) {
            return Err(Error::usage(format!(
                "Cannot change credentials if provisioning a database: drop --change-{}-credentials or the provisioning of the {} database",
                db.option_prefix, db.label
            )));
        }
        for s in &p.scopes {
            if !dbs.iter().any(|(d, _)| &d.scope == s) {
                log.warning(&format!(
                    "nothing to provision for scope '{s}': the archive holds no dump for it in the restored scopes"
                ));
            }
        }
        return Ok(dbs
            .iter()
            .filter(|(d, _)| p.all || p.scopes.contains(&d.scope))
            .cloned()
            .collect());
    }
    if !p.auto || !req.credentials.is_empty() || dbs.is_empty() {
        return Ok(Vec::new());
    }
    let mut first = None;
    for (db, _) in dbs {
        let Some(params) = future.database_params(db)? else {
            return Ok(Vec::new());
        };
        if !is_local(&params.host) || pg::connect(&params).is_ok() {
            return Ok(Vec::new());
        }
        first.get_or_insert(params);
    }
    // Without a superuser to provision with (and no cluster to initialise),
    // the restore goes on and its connection check says what is wrong.
    let admin = admin_for(req, &first.expect("dbs is not empty"))?;
    if let Err(e) = admin.check() {
        if !req.provision.init_cluster {
            log.line(&format!("No automatic provisioning: {e}"));
            return Ok(Vec::new());
        }
    }
    log.output("- All databases are local and none is reachable: provisioning them (as engine-backup does)");
    Ok(dbs.to_vec())
}

fn is_local(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "::1") || host.starts_with('/')
}

/// Check everything about the databases to provision and decide what to
/// create; nothing is changed.
pub fn plan(
    req: &RestoreRequest,
    future: &Environment,
    chosen: &[(&DatabaseComponent, PathBuf)],
    archive: &ArchiveReader,
    restore_permissions: bool,
    work: &Path,
    log: &Log,
) -> Result<Plan> {
    let mut plan = Plan::default();
    for (db, member) in chosen {
        let params = app_params(future, db)?;
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
                work,
            )?,
        };
        let recorded = record.map(|r| (r.collate.clone(), r.ctype.clone()));
        let target = check_target(db, params, admin, facts.as_ref(), needs, recorded)?;
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

/// The application's connection from the restored conf, with engine-backup's
/// provisioning preconditions.
fn app_params(future: &Environment, db: &DatabaseComponent) -> Result<ConnParams> {
    let params = future
        .database_params(db)?
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
        }));
    }
    Ok(params)
}

fn admin_for(req: &RestoreRequest, target: &ConnParams) -> Result<Admin> {
    let opts = &req.provision.admin;
    if opts.host.is_none() && !is_local(&target.host) {
        return Err(Error::usage(format!(
            "Can provision database '{}' only on this machine (its host is {}): for a server on another machine pass --admin-host and the superuser's credentials",
            target.database, target.host
        )));
    }
    let params = ConnParams {
        host: opts
            .host
            .clone()
            .unwrap_or_else(|| provision::DEFAULT_SOCKET_DIR.to_string()),
        port: opts.port.unwrap_or(target.port),
        user: opts.user.clone().unwrap_or_else(|| "postgres".into()),
        database: "postgres".into(),
        password: opts.password.clone(),
        secured: false,
        secured_validation: false,
    };
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
pub(super) fn dump_extensions(
    tools: &PgTools,
    member: &Path,
    format: DumpFormat,
    codec: Codec,
    work: &Path,
) -> Result<Vec<String>> {
    Ok(dump_needs(tools, member, format, codec, false, work)?.extensions)
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
    work: &Path,
) -> Result<DumpNeeds> {
    match format {
        DumpFormat::Custom => {
            let dump = seekable_dump(member, codec, work)?;
            let toc = pg::list_toc(tools, &dump);
            let roles = if restore_permissions {
                super::restore::roles_in_dump(tools, &dump)
            } else {
                Ok(BTreeSet::new())
            };
            if dump != member {
                let _ = std::fs::remove_file(&dump);
            }
            Ok(DumpNeeds {
                extensions: provision::extensions_in_toc(&toc?),
                roles: roles?,
            })
        }
        DumpFormat::Plain => {
            let input =
                std::fs::File::open(member).map_err(|e| Error::io_path("open", member, e))?;
            let decoder = codec.decoder(BufReader::with_capacity(1 << 20, input))?;
            let mut reader = BufReader::new(decoder);
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
    })
}

fn missing_extensions(database: &str, missing: &[&String]) -> Error {
    let list: Vec<String> = missing.iter().map(|m| format!("'{m}'")).collect();
    Error::usage(format!(
        "extension {} needed by database '{database}' is not available on the PostgreSQL server; nothing was changed. Install the package that provides it (most come with postgresql-contrib), then restore again",
        list.join(", ")
    ))
}

/// What receives each server change as soon as it is made: a list in memory
/// (migrate), the restore's journal on disk.
pub type Record<'a> = dyn FnMut(Undo) -> Result<()> + 'a;

/// Create what the plan says, recording each change as soon as it is made.
pub fn apply(plan: &mut Plan, record: &mut Record, log: &Log) -> Result<()> {
    log.output("Provisioning PostgreSQL users/databases:");
    if let Some((init, admin)) = &plan.init {
        log.output(&format!(
            "- Initialising the local PostgreSQL cluster ({})",
            init.describe()
        ));
        let hba: Vec<String> = plan
            .targets
            .iter()
            .flat_map(|t| provision::hba_lines(&t.params.database, &t.params.user))
            .collect();
        let cluster = provision::init_cluster(init, &hba)?;
        log.line(&format!(
            "Added to {}: {}",
            cluster.hba_file.display(),
            hba.join(" | ")
        ));
        record(Undo::Cluster(cluster))?;
        admin.check()?;
        let facts = ServerFacts::read(admin)?;
        for t in &mut plan.targets {
            let missing: Vec<&String> = t
                .extensions
                .iter()
                .filter(|e| !facts.available_extensions.contains(*e))
                .collect();
            if !missing.is_empty() {
                return Err(missing_extensions(&t.params.database, &missing));
            }
            let wanted = (t.locale.collate.clone(), t.locale.ctype.clone());
            let mut locale = provision::choose_locale((&wanted.0, &wanted.1), &facts);
            locale.replaces = locale.replaces.or(t.locale.replaces.take());
            t.locale = locale;
        }
    }
    let mut created_roles: BTreeSet<String> = BTreeSet::new();
    for t in &plan.targets {
        apply_target(t, &mut created_roles, record, log)?;
    }
    log.output("Restoring:");
    Ok(())
}

/// Create (or reuse) one target's role, database, extensions and extra roles,
/// recording each change.
pub fn apply_target(
    t: &Target,
    created_roles: &mut BTreeSet<String>,
    record: &mut Record,
    log: &Log,
) -> Result<()> {
    let (p, admin) = (&t.params, &t.admin);
    let password = p.password.as_ref().expect("checked in app_params");
    log.output(&format!("- user '{}', database '{}'", p.user, p.database));
    if t.role_exists || created_roles.contains(&p.user) {
        let old = provision::password_hash(admin, &p.user)?;
        provision::set_password(admin, &p.user, password)?;
        record(Undo::RestorePassword(admin.clone(), p.user.clone(), old))?;
        log.line(&format!("Role '{}' exists: password set", p.user));
    } else {
        provision::create_role(admin, &p.user, password)?;
        record(Undo::DropRole(admin.clone(), p.user.clone()))?;
        created_roles.insert(p.user.clone());
        log.line(&format!(
            "Created role '{}' (scram-sha-256 password)",
            p.user
        ));
    }
    match &t.existing_owner {
        Some(owner) => {
            log.line(&format!(
                "Database '{}' exists and is empty: reused",
                p.database
            ));
            if owner != &p.user {
                provision::set_database_owner(admin, &p.database, &p.user)?;
                record(Undo::RestoreOwner(
                    admin.clone(),
                    p.database.clone(),
                    owner.clone(),
                ))?;
            }
        }
        None => {
            if let Some(wanted) = &t.locale.replaces {
                log.warning(&format!(
                    "the locale {wanted} of the backed-up database is not available on this server; database '{}' is created with {} (install the locale and recreate the database to use it)",
                    p.database, t.locale.collate
                ));
            }
            provision::create_database(admin, &p.database, &p.user, &t.locale)?;
            record(Undo::DropDatabase(admin.clone(), p.database.clone()))?;
            log.line(&format!(
                "Created database '{}' owned by '{}', UTF8, LC_COLLATE {} LC_CTYPE {}",
                p.database, p.user, t.locale.collate, t.locale.ctype
            ));
        }
    }
    for ext in &t.extensions {
        provision::create_extension(admin, &p.database, ext)?;
        if t.existing_owner.is_some() {
            record(Undo::DropExtension(
                admin.clone(),
                p.database.clone(),
                ext.clone(),
            ))?;
        }
        log.line(&format!(
            "Created extension '{ext}' in database '{}'",
            p.database
        ));
    }
    for role in &t.extra_roles {
        if created_roles.contains(role) {
            continue;
        }
        let password: Password = provision::random_password()?;
        provision::create_role(admin, role, &password)
            .map_err(|e| Error::failed(format!("Creating user '{role}' failed: {e}")))?;
        record(Undo::DropRole(admin.clone(), role.clone()))?;
        created_roles.insert(role.clone());
        log.output(&format!(
            "- extra user '{role}' having grants on database {}, created with a random password",
            p.database
        ));
        log.line(&format!(
            "The password of '{role}' is not shown anywhere; to use the role, set one as the PostgreSQL superuser: ALTER ROLE \"{role}\" PASSWORD '<new password>'"
        ));
    }
    Ok(())
}

/// Undo server changes in reverse order, roles last (a role cannot be
/// dropped while a database holds grants to it); returns (done, remains) phrases.
pub fn rollback(
    undo: &mut Vec<Undo>,
    patience: &Patience,
    log: &Log,
) -> (Vec<String>, Vec<String>) {
    let (mut done, mut remains) = (Vec::new(), Vec::new());
    let (roles, others): (Vec<Undo>, Vec<Undo>) = std::mem::take(undo)
        .into_iter()
        .partition(|u| matches!(u, Undo::DropRole(..)));
    let (clusters, others): (Vec<Undo>, Vec<Undo>) = others
        .into_iter()
        .partition(|u| matches!(u, Undo::Cluster(..)));
    // Reversed below: other steps first, then roles, the cluster last.
    let order = clusters.into_iter().chain(roles).chain(others);
    for step in order.collect::<Vec<_>>().into_iter().rev() {
        let (what, result) = match &step {
            Undo::Cluster(c) => (
                format!(
                    "removed the cluster holdfast initialised ({})",
                    c.init.describe()
                ),
                provision::remove_cluster(c),
            ),
            Undo::DropRole(a, r) => (
                format!("dropped role '{r}'"),
                patience
                    .retry(|| a.check())
                    .and_then(|()| provision::drop_role(a, r)),
            ),
            Undo::DropDatabase(a, d) => (
                format!("dropped database '{d}'"),
                patience
                    .retry(|| a.check())
                    .and_then(|()| provision::drop_database(a, d)),
            ),
            Undo::DropExtension(a, d, e) => (
                format!("dropped extension '{e}' from database '{d}'"),
                patience
                    .retry(|| a.check())
                    .and_then(|()| provision::drop_extension(a, d, e)),
            ),
            Undo::RestorePassword(a, r, h) => (
                format!("put back the password of role '{r}'"),
                patience
                    .retry(|| a.check())
                    .and_then(|()| provision::restore_password_hash(a, r, h.as_deref())),
            ),
            Undo::RestoreOwner(a, d, o) => (
                format!("gave database '{d}' back to '{o}'"),
                patience
                    .retry(|| a.check())
                    .and_then(|()| provision::set_database_owner(a, d, o)),
            ),
        };
        match result {
            Ok(()) => done.push(what),
            Err(e) => {
                log.line(&format!("rollback: could not do '{what}': {e}"));
                remains.push(format!("not {what} ({e})"));
            }
        }
    }
    (done, remains)
}

/// How long a rollback waits, in all, for a server that went away (a restart)
/// to come back before it reports what it could not undo. Only reaching the
/// server is retried; each undo step itself runs once.
pub struct Patience {
    deadline: Instant,
}

impl Patience {
    /// The 30 s start now.
    pub fn from_now() -> Patience {
        Patience {
            deadline: Instant::now() + Duration::from_secs(30),
        }
    }

    /// Run `step` until it succeeds or the shared deadline passes.
    pub fn retry(&self, mut step: impl FnMut() -> Result<()>) -> Result<()> {
        loop {
            match step() {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= self.deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }
}
