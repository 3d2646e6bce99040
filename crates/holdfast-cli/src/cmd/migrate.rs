//! `holdfast migrate`: move one database of the environment to another server
//! and point the application at it; `--rollback` points it back.

use std::path::PathBuf;

use clap::Args;
use holdfast::log::Log;
use holdfast::ops::migrate::{self, MigrateRequest};
use holdfast::ops::Jobs;
use holdfast::pg::ConnParams;
use holdfast::{Error, Password};

use super::EnvArgs;

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub env: EnvArgs,
    /// The database to move: a database scope of the profile (db, dwhdb, …).
    #[arg(long, default_value = "db", value_name = "SCOPE")]
    pub scope: String,
    /// Target server host (or a unix-socket directory).
    #[arg(long, value_name = "HOST", required_unless_present = "rollback")]
    pub to_host: Option<String>,
    #[arg(long, default_value_t = 5432, value_name = "PORT")]
    pub to_port: u16,
    /// Database name on the target (default: the same name).
    #[arg(long, value_name = "NAME")]
    pub to_name: Option<String>,
    /// Application role on the target (default: the same role).
    #[arg(long, value_name = "USER")]
    pub to_user: Option<String>,
    /// File whose first line is the application role's password on the target
    /// (default: HOLDFAST_TO_PASSWORD, else the current password).
    #[arg(long, value_name = "FILE")]
    pub to_passfile: Option<PathBuf>,
    /// The target's TLS setting written into the application's conf.
    #[arg(long)]
    pub to_secured: bool,
    /// A superuser on the target server, to create the role and database there
    /// (without it they must exist, the database empty).
    #[arg(long, value_name = "USER")]
    pub admin_user: Option<String>,
    /// Host of the admin connection (default: --to-host).
    #[arg(long, value_name = "HOST")]
    pub admin_host: Option<String>,
    /// Port of the admin connection (default: --to-port).
    #[arg(long, value_name = "PORT")]
    pub admin_port: Option<u16>,
    /// File whose first line is the admin's password (default: HOLDFAST_ADMIN_PASSWORD,
    /// or none: peer/trust over a socket).
    #[arg(long, value_name = "FILE")]
    pub admin_passfile: Option<PathBuf>,
    /// pg_dump and pg_restore jobs.
    #[arg(long, default_value_t = Jobs::DEFAULT.get(), value_name = "N")]
    pub jobs: u32,
    /// Copy while the application runs (what it writes after the copy starts is lost).
    #[arg(long)]
    pub online: bool,
    /// Undo a migration: put back the conf files its journal names.
    #[arg(long, value_name = "JOURNAL", conflicts_with_all = ["to_host", "admin_user"])]
    pub rollback: Option<PathBuf>,
}

fn first_line(path: &std::path::Path) -> holdfast::Result<Password> {
    Password::from_file(path).map_err(|e| {
        Error::usage(format!(
            "Can not read password file {}: {e}",
            path.display()
        ))
    })
}

pub fn run(a: MigrateArgs, log: &Log) -> holdfast::Result<()> {
    if let Some(journal) = &a.rollback {
        migrate::rollback(journal, log)?;
        log.output("Done.");
        return Ok(());
    }
    let env = a.env.environment()?;
    let db = env.profile.database(&a.scope).ok_or_else(|| {
        Error::usage(format!(
            "scope '{}' is not a database of the {} profile",
            a.scope, env.profile.name
        ))
    })?;
    let source = env.database_params(db)?.ok_or_else(|| {
        Error::usage(format!(
            "the {} database is not configured on this machine",
            db.label
        ))
    })?;
    let password = match (&a.to_passfile, std::env::var("HOLDFAST_TO_PASSWORD").ok()) {
        (Some(f), _) => Some(first_line(f)?),
        (None, Some(p)) => Some(Password::new(p)),
        (None, None) => source.password.clone(),
    };
    let host = a.to_host.clone().expect("clap requires --to-host");
    let target = ConnParams {
        host: host.clone(),
        port: a.to_port,
        user: a.to_user.clone().unwrap_or_else(|| source.user.clone()),
        database: a.to_name.clone().unwrap_or_else(|| source.database.clone()),
        password,
        secured: a.to_secured,
        secured_validation: false,
    };
    let admin = match &a.admin_user {
        None => None,
        Some(user) => Some(ConnParams {
            host: a.admin_host.clone().unwrap_or(host),
            port: a.admin_port.unwrap_or(a.to_port),
            user: user.clone(),
            database: "postgres".into(),
            password: match (
                &a.admin_passfile,
                std::env::var("HOLDFAST_ADMIN_PASSWORD").ok(),
            ) {
                (Some(f), _) => Some(first_line(f)?),
                (None, Some(p)) => Some(Password::new(p)),
                (None, None) => None,
            },
            secured: false,
            secured_validation: false,
        }),
    };
    let req = MigrateRequest {
        scope: a.scope.clone(),
        target,
        admin,
        jobs: Jobs::new(a.jobs)?,
        online: a.online,
        tmpdir: a.env.tmpdir()?,
        env,
    };
    let outcome = migrate::run(&req, log)?;
    log.output(&format!(
        "Migrated: {} compared equal; journal {}",
        holdfast::log::count(outcome.tables, "table", "tables"),
        outcome.journal.display()
    ));
    log.output("Done.");
    Ok(())
}
