//! Backup: every component in scope into one archive, while the application runs.
//!
//! Order of work: decide what is backed up (reporting what is skipped), check
//! every database connection and pick its pg_dump before anything is written
//! ([`plan`]), notify the application ([`notify`]), dump the databases and pack
//! the files in parallel ([`stage`]; each dump in a snapshot that the
//! manifest's fingerprints are taken in too, mostly from the dump stream
//! itself, [`dump`]), then write the archive to a temporary name, fsync and
//! rename it ([`pack`]).

mod dump;
mod notify;
mod pack;
mod plan;
pub(crate) mod stage;

use std::path::PathBuf;

use crate::log::Log;
use crate::ops::lock::{LockMode, OperationLock};
use crate::ops::{BackupRequest, WorkDir};
use crate::{IoContext, Result};

pub use pack::os_version;

/// What a backup wrote.
#[derive(Debug)]
pub struct BackupOutcome {
    pub file: PathBuf,
    pub bytes: u64,
    /// Scopes actually backed up.
    pub scopes: Vec<String>,
}

/// Run a backup.
pub fn run(req: &BackupRequest, log: &Log) -> Result<BackupOutcome> {
    // A termination request makes steps fail in their own words: say why.
    run_uninterrupted(req, log).map_err(crate::interrupt::explain)
}

fn run_uninterrupted(req: &BackupRequest, log: &Log) -> Result<BackupOutcome> {
    log.output("Backing up:");
    let _lock = OperationLock::acquire(&req.env, LockMode::Shared, "backup")?;
    let plan = plan::plan(req, log)?;
    plan::preflight_destination(req)?;
    plan::preflight_compression(req, &plan)?;

    let backed_up: Vec<String> = plan.scopes();
    let notifier = notify::Notifier::new(&req.env, log, &backed_up);
    notifier.send(0, "Backup Started");
    let result = write_archive(req, &plan, log).map_err(crate::interrupt::explain);
    match &result {
        Ok(_) => notifier.send(1, "Backup Finished"),
        Err(e) => notifier.send(-1, &e.to_string()),
    }
    let bytes = result?;
    Ok(BackupOutcome {
        file: req.file.clone(),
        bytes,
        scopes: backed_up,
    })
}

/// Dump, pack and write; returns the archive's size.
fn write_archive(req: &BackupRequest, plan: &plan::Plan, log: &Log) -> Result<u64> {
    let work = WorkDir::new(&req.tmpdir)?;
    log.line(&format!("Creating temp folder {}", work.path().display()));
    let tar = work.join("tar");
    std::fs::create_dir_all(tar.join("db")).context(|| format!("create {}", tar.display()))?;
    announce(req, plan, log);
    let records = stage::stage_members(req, plan, &tar, log)?;
    announce_unkept_passwords(req, plan, &records, log);
    pack::pack(req, plan, &tar, records, log)
}

/// Name the login roles whose passwords the archive does not hold: a
/// restore that has to create them gives them new ones. The application's
/// own role is not among them (its password is in its configuration).
/// engine-backup's face reads no passwords and says nothing.
fn announce_unkept_passwords(
    req: &BackupRequest,
    plan: &plan::Plan,
    records: &[crate::archive::manifest::DatabaseRecord],
    log: &Log,
) {
    use crate::archive::manifest::RolePassword;
    if matches!(
        req.role_passwords,
        crate::ops::request::RolePasswords::NotRead
    ) {
        return;
    }
    for (job, record) in plan.databases.iter().zip(records) {
        let unkept: Vec<&str> = record
            .roles
            .iter()
            .filter(|r| r.name != job.params.user)
            .filter(|r| {
                r.attributes
                    .as_ref()
                    .is_some_and(|a| a.login && a.password == RolePassword::NotRead)
            })
            .map(|r| r.name.as_str())
            .collect();
        if !unkept.is_empty() {
            log.output(&format!(
                "- Roles of database '{}' whose passwords are not in the archive (no superuser session: pass --admin-host/--admin-user/--admin-passfile): {}; a restore that creates them gives them new passwords",
                job.params.database,
                unkept.join(", ")
            ));
        }
    }
}

/// One console line per component backed up.
fn announce(req: &BackupRequest, plan: &plan::Plan, log: &Log) {
    if plan.files {
        log.output("- Files");
    }
    for job in &plan.databases {
        log.output(&format!(
            "- {} database '{}'",
            job.component.backup_label(),
            job.params.database
        ));
    }
    for s in &plan.sqlite {
        log.output(&format!(
            "- {} database '{}'",
            s.label,
            req.env.root.join(&s.path).display()
        ));
    }
}
