//! The safety dump of `apply --backup-to FILE`: a custom-format `pg_dump` taken
//! before anything changes, restored with `pg_restore` if the upgrade fails after
//! part of it was committed.
//!
//! The client programs are found here, privately, by the server's major version
//! under `/usr/lib/postgresql/<major>/bin`, until `holdfast::pg` offers tool
//! discovery. The password reaches them through a 0600 pgpass file, never argv.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use postgres::Client;

use crate::pg::{error_text, ConnParams};
use crate::{Error, IoContext, Result};

/// Where the client programs matching the server are.
pub fn client_bindir(client: &mut Client) -> Result<PathBuf> {
    let num: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .map_err(|e| {
            Error::postgres(format!(
                "cannot read the server version: {}",
                error_text(&e)
            ))
        })?
        .get(0);
    let major = num / 10_000;
    let dir = PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"));
    if !dir.join("pg_dump").is_file() || !dir.join("pg_restore").is_file() {
        return Err(Error::failed(format!(
            "pg_dump/pg_restore for PostgreSQL {major} not found in {}; install the \
             PostgreSQL {major} client (Debian: postgresql-client-{major})",
            dir.display()
        )));
    }
    Ok(dir)
}

/// Environment for a client program: `PGHOST`… and, with a password, `PGPASSFILE`
/// pointing at a 0600 file inside `scratch`.
pub fn client_env(params: &ConnParams, scratch: &Path) -> Result<Vec<(String, String)>> {
    let mut env = vec![
        ("PGHOST".to_string(), params.host.clone()),
        ("PGPORT".to_string(), params.port.to_string()),
        ("PGUSER".to_string(), params.user.clone()),
        ("PGDATABASE".to_string(), params.database.clone()),
        ("PGAPPNAME".to_string(), "holdfast".to_string()),
        ("LC_ALL".to_string(), "C".to_string()),
    ];
    if let Some(password) = &params.password {
        let path = scratch.join("pgpass");
        let escape = |s: &str| s.replace('\\', "\\\\").replace(':', "\\:");
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .context(|| format!("create {}", path.display()))?;
        writeln!(
            file,
            "*:*:*:{}:{}",
            escape(&params.user),
            escape(password.expose())
        )
        .context(|| format!("write {}", path.display()))?;
        env.push(("PGPASSFILE".to_string(), path.display().to_string()));
    }
    Ok(env)
}

/// Take a custom-format dump of the database to `target` (created 0600).
pub fn take(client: &mut Client, params: &ConnParams, target: &Path) -> Result<()> {
    let bindir = client_bindir(client)?;
    let scratch = tempfile::tempdir().context(|| "create a temporary directory".to_string())?;
    let env = client_env(params, scratch.path())?;
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(target)
        .context(|| format!("create {}", target.display()))?;
    let out = Command::new(bindir.join("pg_dump"))
        .arg("--format=custom")
        .arg("--no-password")
        .arg("--file")
        .arg(target)
        .envs(env)
        .output()
        .context(|| format!("run {}", bindir.join("pg_dump").display()))?;
    if !out.status.success() {
        return Err(Error::failed(format!(
            "pg_dump of '{}' to {} failed: {}; nothing was changed",
            params.database,
            target.display(),
            last_line(&out.stderr)
        )));
    }
    Ok(())
}

/// Put the database back as `dump` has it: drop the application's objects on
/// `client`, then `pg_restore` in a single transaction.
///
/// Extensions are left out of the restore (TOC filtered with `-l`/`-L`): the drop
/// kept them, and their `CREATE`/`COMMENT` entries fail for a non-superuser who
/// does not own them (oVirt's `uuid-ossp`).
pub fn restore(client: &mut Client, params: &ConnParams, dump: &Path) -> Result<()> {
    let bindir = client_bindir(client)?;
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
    let scratch = tempfile::tempdir().context(|| "create a temporary directory".to_string())?;
    let env = client_env(params, scratch.path())?;
    let listing = Command::new(bindir.join("pg_restore"))
        .arg("--list")
        .arg(dump)
        .output()
        .context(|| format!("run {}", bindir.join("pg_restore").display()))?;
    if !listing.status.success() {
        return Err(Error::failed(format!(
            "pg_restore --list {} failed: {}",
            dump.display(),
            last_line(&listing.stderr)
        )));
    }
    let toc: String = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .filter(|l| !is_extension_entry(l))
        .map(|l| format!("{l}\n"))
        .collect();
    let toc_path = scratch.path().join("restore.list");
    fs::write(&toc_path, toc).context(|| format!("write {}", toc_path.display()))?;
    let out = Command::new(bindir.join("pg_restore"))
        .arg("--use-list")
        .arg(&toc_path)
        .arg("--no-password")
        .arg("--single-transaction")
        .arg("--exit-on-error")
        .arg(format!("--dbname={}", params.database))
        .arg(dump)
        .envs(env)
        .output()
        .context(|| format!("run {}", bindir.join("pg_restore").display()))?;
    if !out.status.success() {
        return Err(Error::failed(format!(
            "pg_restore of {} into '{}' failed: {}",
            dump.display(),
            params.database,
            last_line(&out.stderr)
        )));
    }
    Ok(())
}

/// A TOC line of an extension or its comment: `3; 3079 16385 EXTENSION - pgcrypto`,
/// `4180; 0 0 COMMENT - EXTENSION pgcrypto`.
fn is_extension_entry(line: &str) -> bool {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if line.trim_start().starts_with(';') || fields.len() < 5 {
        return false;
    }
    fields[3] == "EXTENSION"
        || (fields[3] == "COMMENT" && fields[5..].first() == Some(&"EXTENSION"))
}

fn last_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no message")
        .trim()
        .to_string()
}
