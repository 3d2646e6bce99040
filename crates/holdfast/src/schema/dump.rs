//! The safety dump of `apply --backup-to FILE`: a custom-format `pg_dump` taken
//! before anything changes, restored with `pg_restore` if the upgrade fails after
//! part of it was committed.
//!
//! The client programs are chosen by the server's version ([`PgTools`]); the
//! password reaches them through a 0600 pgpass file, never argv.

use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use postgres::Client;

use crate::pg::dump::{dump_database, DumpFormat, DumpOptions};
use crate::pg::restore::restore_custom_atomic;
use crate::pg::{error_text, ConnParams, PgPass, PgTools};
use crate::{Error, IoContext, Result};

/// Environment for an executable upgrade script: `PGHOST`… and, with a
/// password, `PGPASSFILE` pointing at `pgpass`, which must outlive the script.
pub fn client_env(params: &ConnParams, pgpass: Option<&PgPass>) -> Vec<(String, String)> {
    let mut env = vec![
        ("PGHOST".to_string(), params.host.clone()),
        ("PGPORT".to_string(), params.port.to_string()),
        ("PGUSER".to_string(), params.user.clone()),
        ("PGDATABASE".to_string(), params.database.clone()),
        ("PGAPPNAME".to_string(), "holdfast".to_string()),
        ("LC_ALL".to_string(), "C".to_string()),
    ];
    if let Some(p) = pgpass {
        env.push(("PGPASSFILE".to_string(), p.path().display().to_string()));
    }
    env
}

/// Take a custom-format dump of the database to `target` (created 0600).
pub fn take(client: &mut Client, params: &ConnParams, target: &Path) -> Result<()> {
    let tools = PgTools::for_client(client)?;
    let file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(target)
        .context(|| format!("create {}", target.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let options = DumpOptions {
        format: DumpFormat::Custom,
        compression: None,
        snapshot: None,
        jobs: None,
    };
    dump_database(params, &tools, &options, &mut out).map_err(|e| {
        Error::failed(format!(
            "the safety dump of '{}' to {} failed: {e}; nothing was changed",
            params.database,
            target.display()
        ))
    })?;
    out.into_inner()
        .map_err(|e| Error::io(format!("write {}", target.display()), e.into_error()))?
        .sync_all()
        .context(|| format!("sync {}", target.display()))
}

/// Put the database back as `dump` has it: drop the application's objects on
/// `client`, then restore in a single transaction (extensions the drop kept are
/// left out of the restore list).
pub fn restore(client: &mut Client, params: &ConnParams, dump: &Path) -> Result<()> {
    let tools = PgTools::for_client(client)?;
    let sql_failed = |e: postgres::Error| {
        Error::postgres(format!(
            "cannot clear the database before the restore: {}",
            error_text(&e)
        ))
    };
    client.batch_execute("BEGIN").map_err(sql_failed)?;
    if let Err(e) = super::objects::drop_all(client) {
        let _ = client.batch_execute("ROLLBACK");
        return Err(e);
    }
    client.batch_execute("COMMIT").map_err(sql_failed)?;
    restore_custom_atomic(params, &tools, dump, true).map_err(|e| {
        Error::failed(format!(
            "restoring {} into '{}' failed: {e}",
            dump.display(),
            params.database
        ))
    })?;
    Ok(())
}
