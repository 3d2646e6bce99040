//! Creating what the provisioning plan says, each server change handed to a
//! [`Record`] (the restore's journal, migrate's list) as soon as it is made.

use std::collections::BTreeSet;

use crate::archive::manifest::{RoleAttributes, RolePassword};
use crate::log::Log;
use crate::pg::provision::{self, Admin, InitializedCluster, ServerFacts};
use crate::pg::roles::RoleDef;
use crate::pg::sql::quote_ident;
use crate::{Error, Result};

use super::plan::{missing_extensions, Plan, Target};

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
        let recorded = t.recorded_roles.get(role);
        let kept = recorded.filter(|a| a.password == RolePassword::Kept);
        match recorded {
            Some(attributes) => admin.execute(
                &admin.params().database,
                &recreated_role(role, attributes, log)?.create_sql(),
            ),
            None => provision::create_role(admin, role, &provision::random_password()?),
        }
        .map_err(|e| Error::failed(format!("Creating user '{role}' failed: {e}")))?;
        record(Undo::DropRole(admin.clone(), role.clone()))?;
        created_roles.insert(role.clone());
        if kept.is_some() {
            log.output(&format!(
                "- extra user '{role}' having grants on database {}, created as it was, with its password",
                p.database
            ));
        } else if recorded.is_some_and(|a| a.password == RolePassword::None || !a.login) {
            log.output(&format!(
                "- extra user '{role}' having grants on database {}, created as it was (it had no password)",
                p.database
            ));
        } else {
            log.output(&format!(
                "- extra user '{role}' having grants on database {}, created with a random password",
                p.database
            ));
            log.line(&format!(
                "The password of '{role}' is not shown anywhere; to use the role, set one as the PostgreSQL superuser: ALTER ROLE \"{role}\" PASSWORD '<new password>'"
            ));
        }
    }
    grant_recorded_memberships(t, created_roles, log)
}

/// A role as the archive recorded it, with a new random password when the
/// archive has none, and never a superuser, replication or RLS-bypassing
/// role: those powers are granted by hand, not by whoever wrote an archive.
fn recreated_role(name: &str, a: &RoleAttributes, log: &Log) -> Result<RoleDef> {
    if a.superuser || a.replication || a.bypassrls {
        log.output(&format!(
            "  '{name}' was created without SUPERUSER, REPLICATION or BYPASSRLS, which it had: grant them by hand if it needs them"
        ));
    }
    let password_hash = match (a.password, &a.password_hash) {
        (RolePassword::Kept, Some(hash)) => Some(hash.clone()),
        (RolePassword::None, _) => None,
        _ if a.login => Some(provision::scram_verifier(&provision::random_password()?)),
        _ => None,
    };
    Ok(RoleDef {
        name: name.to_string(),
        login: a.login,
        superuser: false,
        createdb: a.createdb,
        createrole: a.createrole,
        inherit: a.inherit,
        replication: false,
        bypassrls: false,
        connection_limit: a.connection_limit,
        valid_until: a.valid_until.clone(),
        member_of: a.member_of.clone(),
        password_hash,
        password_readable: true,
    })
}

/// The memberships the archive recorded for the roles this target created,
/// in groups the server has; a group it lacks is said, not created.
fn grant_recorded_memberships(
    t: &Target,
    created_roles: &BTreeSet<String>,
    log: &Log,
) -> Result<()> {
    let admin = &t.admin;
    let existing = ServerFacts::read(admin)?.roles;
    for role in t.extra_roles.iter().filter(|r| created_roles.contains(*r)) {
        let Some(recorded) = t.recorded_roles.get(role) else {
            continue;
        };
        for group in &recorded.member_of {
            if !existing.contains(group) {
                log.output(&format!(
                    "  '{role}' was a member of '{group}', which this server does not have: not granted"
                ));
                continue;
            }
            admin.execute(
                &admin.params().database,
                &format!("GRANT {} TO {}", quote_ident(group), quote_ident(role)),
            )?;
        }
    }
    Ok(())
}
