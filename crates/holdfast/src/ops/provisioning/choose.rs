//! Which databases a restore provisions: those the options name, or all of
//! them when engine-backup's automatic provisioning applies (never with new
//! credentials: engine-backup's face refuses provisioning with them, as
//! engine-backup does; the native face provisions the new target).

use std::path::PathBuf;

use crate::log::Log;
use crate::ops::RestoreRequest;
use crate::pg;
use crate::profile::{DatabaseComponent, Environment};
use crate::Result;

use super::plan::admin_for;

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
        if !params.is_local() || pg::connect(&params).is_ok() {
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
