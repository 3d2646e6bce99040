//! Restore onto an existing, cleaned install: all or nothing.
//!
//! Every check runs before the first write: the application stopped, the
//! archive's checksums and version, the permissions option, each target
//! database reachable with the credentials that will be used, empty, and
//! holding the roles the dump needs, the conf files to rewrite present. Then
//! files are restored (existing ones kept aside first), databases loaded, the
//! profile's post-restore steps run and conf files rewritten. If a step fails,
//! the [`Journal`] puts the files back, empties the databases it filled and
//! restores the conf files, and says what it did and what remains.
//!
//! With provisioning ([`super::provisioning`]) the roles and databases are
//! created first, as the server's superuser, and dropped again on failure.
//!
//! Phases, in order: [`selection`] (what the archive holds of what was asked),
//! [`files`] (the files plan and the configuration it brings), the
//! provisioning plan, [`checks`] (each target database), then the writing
//! part ([`restore_all`]): provisioning, [`files`], [`databases`], conf
//! rewrites.

mod checks;
mod databases;
mod files;
mod prefetch;
mod selection;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use crate::archive::{ArchiveReader, DumpFormat, FilesPlan};
use crate::log::Log;
use crate::ops::journal::Journal;
use crate::ops::lock::{LockMode, OperationLock};
use crate::ops::provisioning;
use crate::ops::{RestoreRequest, WorkDir};
use crate::profile::credentials::ConfRewrite;
use crate::profile::{DatabaseCredentials, Environment};
use crate::{Error, Result};

use checks::DbTarget;
use selection::Selection;

/// What a restore did.
#[derive(Debug, Default)]
pub struct RestoreOutcome {
    pub files_restored: bool,
    /// Database scopes restored.
    pub databases: Vec<String>,
    /// Conf files rewritten with new credentials, and their dated copies.
    pub rewritten: Vec<(PathBuf, PathBuf)>,
}

pub fn run(req: &RestoreRequest, log: &Log) -> Result<RestoreOutcome> {
    // A termination request makes steps fail in their own words: say why.
    run_uninterrupted(req, log).map_err(crate::interrupt::explain)
}

fn run_uninterrupted(req: &RestoreRequest, log: &Log) -> Result<RestoreOutcome> {
    let profile = &req.env.profile;
    log.output("Preparing to restore:");
    let _lock = OperationLock::acquire(&req.env, LockMode::Exclusive, "restore")?;
    checks::application_stopped(&req.env)?;
    announce_new_credentials(req, log);
    log.output(&format!("- Unpacking file '{}'", req.file.display()));
    let work = WorkDir::new(&req.tmpdir)?;
    roll_back_interrupted_restore(&req.env, log)?;
    let archive =
        crate::ops::unpack::unpack(&req.file, &work, profile, Some(&req.installed_version), log)?;
    let selection = Selection::of(req, &archive, log);
    // The dumps start decompressing now, in the work directory only, while
    // everything is checked; a refused restore stops them.
    let queue = prefetch::DumpQueue::of(&selection, &archive, work.path());
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let (sender, prefetched) = prefetch::channel(&stop);
        s.spawn({
            let stop = &stop;
            move || queue.run(sender, stop)
        });
        check_and_restore(req, &work, &archive, &selection, prefetched, log)
    })
}

/// Everything after unpacking: the checks, then the writing part.
fn check_and_restore(
    req: &RestoreRequest,
    work: &WorkDir,
    archive: &ArchiveReader,
    selection: &Selection,
    prefetched: prefetch::Prefetched,
    log: &Log,
) -> Result<RestoreOutcome> {
    let files_plan = files::plan(req, selection)?;
    let future_env = files::future_environment(req, selection, files_plan.as_ref(), work)?;
    warn_plain_dumps_carry_no_permissions(archive, selection, log);
    let (mut plan, restore_permissions) =
        provisioning_plan(req, &future_env, selection, archive, log)?;
    let mut targets = checks::targets(
        req,
        archive,
        selection,
        &plan,
        &future_env,
        restore_permissions,
        log,
    )?;
    let credentials: BTreeMap<String, DatabaseCredentials> = req
        .credentials
        .iter()
        .map(|(scope, p)| (scope.clone(), p.into()))
        .collect();
    let rewrites = crate::profile::credentials::conf_rewrites(&req.env, &future_env, &credentials)?;

    if plan.is_empty() {
        log.output("Restoring:");
    }
    // From here the install changes: the last restore that completed no
    // longer says what it holds (a restore refused above leaves that note).
    crate::ops::journal::forget_completed(&req.env)?;
    let mut journal = Journal::begin(&req.env, &req.file)?;
    let steps = Steps {
        archive,
        files_plan: files_plan.as_ref(),
        rewrites: &rewrites,
        restore_permissions,
    };
    let result = restore_all(
        req,
        &steps,
        &mut plan,
        &mut targets,
        &prefetched,
        &mut journal,
        log,
    );
    // A failed restore rolls back without decompressing on beside it.
    drop(prefetched);
    finish(req, result, journal, log)
}

fn announce_new_credentials(req: &RestoreRequest, log: &Log) {
    for db in &req.env.profile.databases {
        if let Some(p) = req.credentials.get(&db.scope) {
            log.output(&format!(
                "- Setting credentials for {} database '{}'",
                db.credentials_label(),
                p.database
            ));
        }
    }
}

/// engine-backup's banner: plain dumps carry no owners or grants.
fn warn_plain_dumps_carry_no_permissions(
    archive: &ArchiveReader,
    selection: &Selection,
    log: &Log,
) {
    if selection.has_format(archive, DumpFormat::Plain) {
        let rule = "#".repeat(78);
        log.print(&rule);
        log.print("Please note: permissions are not backed up with a plain dump format, thus not restored during restore");
        log.print(&rule);
    }
}

/// The databases to provision, what provisioning them takes, and whether
/// permissions are restored: provisioning implies it unless an option says
/// otherwise.
fn provisioning_plan(
    req: &RestoreRequest,
    future_env: &Environment,
    selection: &Selection,
    archive: &ArchiveReader,
    log: &Log,
) -> Result<(provisioning::Plan, bool)> {
    let chosen = provisioning::choose(req, future_env, &selection.databases, log)?;
    if selection.has_format(archive, DumpFormat::Custom)
        && req.restore_permissions.is_none()
        && chosen.is_empty()
    {
        return Err(Error::usage(
            "Please pass one of --restore-permissions or --no-restore-permissions when restoring a backup with a custom dump format",
        ));
    }
    let restore_permissions = req.restore_permissions.unwrap_or(!chosen.is_empty());
    if chosen.is_empty() {
        return Ok((provisioning::Plan::default(), restore_permissions));
    }
    log.line("Checking what to provision");
    let plan = provisioning::plan(req, future_env, &chosen, archive, restore_permissions, log)?;
    Ok((plan, restore_permissions))
}

/// Complete the journal, or roll back what the restore changed.
fn finish(
    req: &RestoreRequest,
    result: Result<RestoreOutcome>,
    mut journal: Journal,
    log: &Log,
) -> Result<RestoreOutcome> {
    match result {
        Ok(outcome) => {
            journal.complete()?;
            if let Some(m) = req
                .env
                .profile
                .post_restore
                .as_ref()
                .and_then(|p| p.final_message.clone())
            {
                log.output(&m);
            }
            Ok(outcome)
        }
        Err(e) => {
            let e = crate::interrupt::explain(e);
            log.line(&format!("FATAL: {e}"));
            let report = journal.rollback(log);
            Err(Error::failed(format!("{e}; {report}")))
        }
    }
}

/// `holdfast restore --rollback-interrupted`: undo what a restore that was
/// killed (its journal is still there) had changed, and nothing else. Returns
/// the rollback's report, or `None` when no restore was interrupted.
/// What the killed run left in `tmpdir` is removed too.
pub fn rollback_interrupted(env: &Environment, tmpdir: &Path, log: &Log) -> Result<Option<String>> {
    let _lock = OperationLock::acquire(env, LockMode::Exclusive, "restore")?;
    let _work = WorkDir::new(tmpdir)?;
    roll_back_interrupted_restore(env, log)
}

/// Roll back the restore whose journal is still there, if any, saying so on
/// the console; fail when it could not be undone completely.
fn roll_back_interrupted_restore(env: &Environment, log: &Log) -> Result<Option<String>> {
    let Some(mut journal) = Journal::find(env)? else {
        return Ok(None);
    };
    log.output(&format!(
        "- Rolling back an interrupted {}",
        journal.describe()
    ));
    let report = journal.rollback(log);
    if report.contains("REMAINS CHANGED") {
        return Err(Error::failed(format!(
            "the interrupted restore could not be rolled back completely: {report}"
        )));
    }
    log.output(&format!("  {report}"));
    Ok(Some(report))
}

/// What the checks decided, for the writing part.
struct Steps<'a> {
    archive: &'a ArchiveReader,
    files_plan: Option<&'a FilesPlan>,
    rewrites: &'a [ConfRewrite],
    restore_permissions: bool,
}

/// The writing part, each change journaled before it is made.
fn restore_all(
    req: &RestoreRequest,
    steps: &Steps,
    provision: &mut provisioning::Plan,
    targets: &mut [DbTarget],
    prefetched: &prefetch::Prefetched,
    journal: &mut Journal,
    log: &Log,
) -> Result<RestoreOutcome> {
    let mut outcome = RestoreOutcome::default();
    crate::interrupt::check()?;
    if !provision.is_empty() {
        provisioning::apply(provision, &mut |u| journal.server_step(&u), log)?;
    }
    checks::provisioned_targets(targets, steps.restore_permissions, log)?;
    if let Some(plan) = steps.files_plan {
        files::keep_replaced(req, plan, journal, log)?;
    }
    // The files are written and synced on a thread beside the databases'
    // load: no database step reads them, and syncing a few hundred conf
    // files is mostly waiting. Whatever fails, both are done before the
    // journal rolls back.
    std::thread::scope(|s| {
        let writing = steps.files_plan.map(|plan| s.spawn(|| plan.apply()));
        let loaded = restore_databases(req, steps, targets, prefetched, journal, &mut outcome, log);
        let written = writing.map_or(Ok(()), |w| {
            w.join()
                .unwrap_or_else(|_| Err(Error::failed("writing the restored files panicked")))
        });
        written.and(loaded)
    })?;
    outcome.files_restored = steps.files_plan.is_some();
    files::restore_sqlite(req, steps.archive, journal, log)?;
    outcome.rewritten = files::rewrite_conf(steps.rewrites, journal, log)?;
    Ok(outcome)
}

/// Load each database in turn, as its dump comes out of the prefetch.
fn restore_databases(
    req: &RestoreRequest,
    steps: &Steps,
    targets: &mut [DbTarget],
    prefetched: &prefetch::Prefetched,
    journal: &mut Journal,
    outcome: &mut RestoreOutcome,
    log: &Log,
) -> Result<()> {
    for (i, t) in targets.iter_mut().enumerate() {
        prefetched.supply(i, t)?;
        databases::restore(
            req,
            steps.archive,
            steps.restore_permissions,
            t,
            journal,
            log,
        )?;
        t.discard_seekable_dump();
        outcome.databases.push(t.component.scope.clone());
    }
    Ok(())
}
