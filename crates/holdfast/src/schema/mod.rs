//! Versioned schema upgrades with a `schema_version` history.
//!
//! An application's database evolves through upgrade scripts in a tree laid out
//! like oVirt's `dbscripts` ([`layout`]). [`apply`] loads the base into an empty
//! database, then applies each pending `MM_mm_nnnn_Name.sql` once, in version
//! order, recording it in `schema_version` ([`history`]), with the views and stored
//! procedures dropped before and recreated after ([`objects`]), under an advisory
//! lock ([`lock`]), and in one transaction except around scripts that cannot run in
//! one ([`apply`](mod@apply)). [`plan`](fn@plan) and [`status`] look without
//! touching; [`refresh`], [`drop`] and [`recreate`] are the other commands of
//! oVirt's `schema.sh`. [`helpers`] is holdfast's own library of `fn_db_*` SQL
//! helpers that scripts can call.
//!
//! Every entry point opens one connection from [`ConnParams`] and uses it for the
//! whole run; only executable upgrade scripts and `pg_dump`/`pg_restore` run as
//! processes.

pub mod apply;
pub mod dump;
pub mod helpers;
pub mod history;
pub mod layout;
pub mod lock;
pub mod objects;
pub mod plan;
pub mod script;
pub mod sql_text;

use std::path::{Path, PathBuf};
use std::time::Duration;

use postgres::Client;

pub use apply::Outcome;
pub use history::{History, Row};
pub use layout::{Layout, LayoutSource, Tree};
pub use plan::{Action, Changed, Permissions, Plan, Step};
pub use script::Version;

use crate::pg::{self, ConnParams};
use crate::{Error, Result};
use apply::Runner;
use lock::SchemaLock;

/// Options of `apply` and `recreate`.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    pub permissions: Permissions,
    /// How long to wait for another runner on the same database.
    pub lock_timeout: Duration,
    /// Take a custom-format dump here first; restore it if the upgrade fails after
    /// part of it was committed.
    pub backup_to: Option<PathBuf>,
    /// Layouts a profile knows, tried when the tree has no manifest.
    pub layouts: Vec<Layout>,
    /// Run everything in one transaction and roll it back.
    pub dry_run: bool,
}

impl Default for ApplyOptions {
    fn default() -> ApplyOptions {
        ApplyOptions {
            permissions: Permissions::default(),
            lock_timeout: Duration::from_secs(300),
            backup_to: None,
            layouts: Vec::new(),
            dry_run: false,
        }
    }
}

/// What `apply` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyReport {
    /// The database was empty and the base was loaded.
    pub fresh: bool,
    pub from: Option<Version>,
    pub to: Option<Version>,
    pub outcome: Outcome,
    /// Changed applied scripts whose new checksum was accepted.
    pub accepted: Vec<Changed>,
    /// Everything was rolled back (`--dry-run`).
    pub dry_run: bool,
    /// Scripts a dry run could not try, with why.
    pub not_tried: Vec<(String, String)>,
}

/// What `status` found.
#[derive(Debug, Clone)]
pub struct Status {
    /// `None` when the database has no `schema_version` (never applied).
    pub current: Option<Version>,
    pub history: History,
    /// Scripts on disk never applied: (version, path).
    pub pending: Vec<(Version, String)>,
    /// Applied scripts whose file changed.
    pub changed: Vec<Changed>,
    /// Applied rows whose script file is no longer on disk: (version, path).
    pub missing: Vec<(String, String)>,
    /// Rows recorded `SKIPPED`: (version, path, comment).
    pub skipped: Vec<(String, String, String)>,
    /// The layout the tree was read with.
    pub layout: String,
}

impl Status {
    /// `status --json`: one object with the current version, the layout and the
    /// applied, pending, changed, skipped and missing scripts.
    pub fn to_json(&self) -> String {
        let s = self;
        let applied: Vec<serde_json::Value> = s
            .history
            .rows
            .iter()
            .filter(|r| r.state == "INSTALLED")
            .map(|r| {
                serde_json::json!({
                    "version": r.version_text,
                    "script": r.script,
                    "checksum": r.checksum,
                    "installed_by": r.installed_by,
                    "started_at": r.started_at,
                    "ended_at": r.ended_at,
                    "current": r.current,
                })
            })
            .collect();
        let value = serde_json::json!({
            "current_version": s.current.map(|v| v.to_string()),
            "layout": s.layout,
            "applied": applied,
            "pending": s.pending.iter().map(|(v, p)| serde_json::json!({"version": v.to_string(), "script": p})).collect::<Vec<_>>(),
            "changed": s.changed.iter().map(|c| serde_json::json!({"version": c.version.to_string(), "script": c.script, "recorded": c.recorded, "now": c.now})).collect::<Vec<_>>(),
            "skipped": s.skipped.iter().map(|(v, p, c)| serde_json::json!({"version": v, "script": p, "comment": c})).collect::<Vec<_>>(),
            "missing": s.missing.iter().map(|(v, p)| serde_json::json!({"version": v, "script": p})).collect::<Vec<_>>(),
        });
        serde_json::to_string_pretty(&value).unwrap_or_default()
    }
}

/// Apply the tree at `dir` to the database of `params`.
pub fn apply(
    params: &ConnParams,
    dir: &Path,
    options: &ApplyOptions,
    say: &mut dyn FnMut(&str),
) -> Result<ApplyReport> {
    apply_under_lock(params, dir, options, false, say)
}

/// Drop everything the application has in the database, then apply the tree as
/// onto an empty one, all in one transaction when the scripts allow it.
pub fn recreate(
    params: &ConnParams,
    dir: &Path,
    options: &ApplyOptions,
    say: &mut dyn FnMut(&str),
) -> Result<ApplyReport> {
    apply_under_lock(params, dir, options, true, say)
}

/// One connection and the runner's lock around [`apply_locked`]; the lock is
/// released whatever the outcome, and the apply's error wins over the release's.
fn apply_under_lock(
    params: &ConnParams,
    dir: &Path,
    options: &ApplyOptions,
    drop_first: bool,
    say: &mut dyn FnMut(&str),
) -> Result<ApplyReport> {
    let tree = Tree::load(dir, &options.layouts)?;
    let mut client = pg::connect(params)?;
    let lock = SchemaLock::acquire(&mut client, &params.database, options.lock_timeout, say)?;
    let result = apply_locked(&mut client, params, &tree, options, drop_first, say);
    let released = lock.release(&mut client);
    let report = result?;
    released?;
    Ok(report)
}

fn apply_locked(
    client: &mut Client,
    params: &ConnParams,
    tree: &Tree,
    options: &ApplyOptions,
    drop_first: bool,
    say: &mut dyn FnMut(&str),
) -> Result<ApplyReport> {
    if !drop_first && !history::exists(client)? && !objects::public_is_empty(client)? {
        return Err(Error::failed(format!(
            "database '{}' has tables but no schema_version table, so these scripts did not \
             create it; use an empty database, or `holdfast schema recreate` to replace its content",
            params.database
        )));
    }
    if let (Some(_), true) = (&options.backup_to, options.dry_run) {
        return Err(Error::usage(
            "--dry-run changes nothing, so it takes no --backup-to; drop one of them",
        ));
    }
    if let Some(target) = &options.backup_to {
        say(&format!(
            "Backing up database '{}' to {}",
            params.database,
            target.display()
        ));
        dump::take(client, params, target)?;
    }
    let mut runner = Runner::new(client, params, tree, say);
    runner.dry_run = options.dry_run;
    let result = run_plan(&mut runner, options, drop_first);
    match result {
        Ok(report) => Ok(report),
        Err(e) => {
            let in_transaction = runner.in_transaction;
            runner.abort();
            let committed = runner.committed;
            let installed = runner.outcome.installed.len();
            // The views and procedures were dropped in a committed part and the run
            // stopped before their rebuild (schema.sh would leave them dropped):
            // recreate them on what is committed, unless a restore follows.
            let rebuild_note = if runner.views_dropped_committed && options.backup_to.is_none() {
                match runner.rebuild_after_failure() {
                    Ok(()) => "; views and stored procedures were recreated on what was \
                               committed; fix the failing script and apply again"
                        .to_string(),
                    Err(rebuild) => format!(
                        "; views and stored procedures stay dropped, since recreating them \
                         failed too ({rebuild}): fix the failing script and apply again"
                    ),
                }
            } else {
                String::new()
            };
            let state = if !committed {
                "the transaction was rolled back: the database is as it was before this run"
                    .to_string()
            } else if in_transaction {
                format!(
                    "its transaction was rolled back; earlier parts of this run stayed \
                     committed ({} applied and recorded)",
                    crate::log::count(installed, "script", "scripts")
                )
            } else {
                format!(
                    "earlier parts of this run stayed committed ({} applied \
                     and recorded); a script running outside a transaction may have been left \
                     half-done",
                    crate::log::count(installed, "script", "scripts")
                )
            };
            match (&options.backup_to, committed) {
                (Some(dump_file), true) => {
                    (runner.say)(&format!(
                        "Upgrade failed; restoring database '{}' from {}",
                        params.database,
                        dump_file.display()
                    ));
                    match dump::restore(runner.client, params, dump_file) {
                        Ok(()) => Err(Error::failed(format!(
                            "{e}; the database was restored from {}",
                            dump_file.display()
                        ))),
                        Err(restore_error) => Err(Error::failed(format!(
                            "{e}; {state}; restoring {} also failed: {restore_error}",
                            dump_file.display()
                        ))),
                    }
                }
                _ => Err(with_note(e, &format!("{state}{rebuild_note}"))),
            }
        }
    }
}

fn run_plan(runner: &mut Runner, options: &ApplyOptions, drop_first: bool) -> Result<ApplyReport> {
    let fresh = if drop_first {
        runner.begin()?;
        (runner.say)("Dropping the database's objects");
        objects::drop_all(runner.client)?;
        true
    } else {
        !history::exists(runner.client)?
    };
    let before = history::read(runner.client)?;
    if fresh {
        runner.begin()?;
        runner.load_base()?;
    }
    let history = history::read(runner.client)?;
    let digest = if fresh {
        None
    } else {
        history::recorded_digest(runner.client)?
    };
    let plan = plan::decide(
        runner.tree,
        &history,
        fresh,
        digest.as_deref(),
        &options.permissions,
    )?;
    runner.execute(&plan)?;
    let to = history::read(runner.client)?.current();
    if runner.dry_run {
        runner.abort();
        (runner.say)("Dry run: everything was rolled back");
    }
    Ok(ApplyReport {
        fresh,
        from: if fresh { None } else { before.current() },
        to,
        outcome: runner.outcome.clone(),
        accepted: plan.accepted,
        dry_run: runner.dry_run,
        not_tried: runner.not_tried.clone(),
    })
}

/// What `apply` would do, touching nothing. On an empty database the base is not
/// loaded, so versions the base records are not known: every script is listed.
pub fn plan(
    params: &ConnParams,
    dir: &Path,
    layouts: &[Layout],
    permissions: &Permissions,
) -> Result<Plan> {
    let tree = Tree::load(dir, layouts)?;
    let mut client = pg::connect(params)?;
    let exists = history::exists(&mut client)?;
    if !exists && !objects::public_is_empty(&mut client)? {
        return Err(Error::failed(format!(
            "database '{}' has tables but no schema_version table; apply would refuse it",
            params.database
        )));
    }
    let history = history::read(&mut client)?;
    let digest = history::recorded_digest(&mut client)?;
    plan::decide(&tree, &history, !exists, digest.as_deref(), permissions)
}

/// The database's version and history against the tree at `dir`.
pub fn status(params: &ConnParams, dir: &Path, layouts: &[Layout]) -> Result<Status> {
    let tree = Tree::load(dir, layouts)?;
    let mut client = pg::connect(params)?;
    let history = history::read(&mut client)?;
    let pending = tree
        .scripts
        .iter()
        .filter(|s| history.applied(s.version).is_none())
        .map(|s| (s.version, s.rel.clone()))
        .collect();
    let missing = history
        .rows
        .iter()
        .filter(|r| r.is_applied())
        .filter(|r| !tree.scripts.iter().any(|s| Some(s.version) == r.version))
        .map(|r| (r.version_text.clone(), r.script.clone()))
        .collect();
    let skipped = history
        .rows
        .iter()
        .filter(|r| r.state == "SKIPPED")
        .map(|r| (r.version_text.clone(), r.script.clone(), r.comment.clone()))
        .collect();
    Ok(Status {
        current: history.current(),
        changed: plan::changed_scripts(&tree, &history),
        history,
        pending,
        missing,
        skipped,
        layout: tree.layout.name.clone(),
    })
}

/// Drop and recreate the views and procedures, giving back their grants; no
/// upgrade script and no pre- or post-upgrade script runs. What those scripts
/// created and the drop took stays missing until the next `apply`, which
/// therefore rebuilds and runs them again (as schema.sh's next apply does).
pub fn refresh(
    params: &ConnParams,
    dir: &Path,
    layouts: &[Layout],
    lock_timeout: Duration,
    say: &mut dyn FnMut(&str),
) -> Result<Outcome> {
    let tree = Tree::load(dir, layouts)?;
    let mut client = pg::connect(params)?;
    let lock = SchemaLock::acquire(&mut client, &params.database, lock_timeout, say)?;
    let mut runner = Runner::new(&mut client, params, &tree, say);
    let result = runner
        .begin()
        .and_then(|_| runner.drop_views_and_functions())
        .and_then(|_| runner.create_views_and_procedures())
        .and_then(|_| history::forget_digest(runner.client))
        .and_then(|_| runner.commit());
    if result.is_err() {
        runner.abort();
    }
    let outcome = runner.outcome.clone();
    let released = lock.release(&mut client);
    result.map_err(|e| {
        with_note(
            e,
            "the transaction was rolled back: the database is as it was before",
        )
    })?;
    released?;
    Ok(outcome)
}

/// Adopt a database whose objects were made some other way as being at
/// `version`: create `schema_version` and record every script of the tree up to
/// `version` as `SKIPPED` (comment `baseline`), the last one current, without
/// running any. The next `apply` runs the scripts above it and rebuilds views
/// and procedures. Returns the number of scripts recorded.
pub fn baseline(
    params: &ConnParams,
    dir: &Path,
    layouts: &[Layout],
    version: Version,
    lock_timeout: Duration,
    say: &mut dyn FnMut(&str),
) -> Result<usize> {
    let tree = Tree::load(dir, layouts)?;
    let mut client = pg::connect(params)?;
    let lock = SchemaLock::acquire(&mut client, &params.database, lock_timeout, say)?;
    let result = baseline_locked(&mut client, params, &tree, version);
    if result.is_err() {
        let _ = client.batch_execute("ROLLBACK");
    }
    let released = lock.release(&mut client);
    let n = result?;
    released?;
    Ok(n)
}

fn baseline_locked(
    client: &mut Client,
    params: &ConnParams,
    tree: &Tree,
    version: Version,
) -> Result<usize> {
    let history = history::read(client)?;
    if let Some(current) = history.current() {
        return Err(Error::usage(format!(
            "database '{}' already has a schema_version history (at version {current});              baseline adopts only databases without one: use `holdfast schema apply`",
            params.database
        )));
    }
    if objects::public_is_empty(client)? {
        return Err(Error::usage(format!(
            "database '{}' is empty, so there is nothing to adopt; use `holdfast schema apply`              to create its schema",
            params.database
        )));
    }
    let upto: Vec<&script::UpgradeScript> = tree
        .scripts
        .iter()
        .filter(|s| s.version <= version)
        .collect();
    if upto.is_empty() {
        return Err(Error::usage(format!(
            "--version {version}: the tree has no upgrade script at or below it; give the \
             version of the last script the database already has"
        )));
    }
    let sql_failed = |e: postgres::Error| Error::postgres(pg::error_text(&e));
    client.batch_execute("BEGIN").map_err(sql_failed)?;
    history::ensure(client)?;
    for s in &upto {
        let started = history::clock(client)?;
        history::record(
            client,
            &history::Entry {
                version: s.version,
                script: &s.rel,
                checksum: &s.checksum.raw,
                state: history::State::Skipped,
                comment: &format!("baseline {version}: not run by holdfast"),
                started_at: &started,
            },
        )?;
    }
    history::set_current(client)?;
    history::forget_digest(client)?;
    client.batch_execute("COMMIT").map_err(sql_failed)?;
    Ok(upto.len())
}

/// Drop every table, view, sequence, function and type the application has in
/// `public` (extensions stay), in one transaction.
pub fn drop(params: &ConnParams, lock_timeout: Duration, say: &mut dyn FnMut(&str)) -> Result<()> {
    let mut client = pg::connect(params)?;
    let lock = SchemaLock::acquire(&mut client, &params.database, lock_timeout, say)?;
    say(&format!(
        "Dropping the objects of database '{}'",
        params.database
    ));
    let result = client
        .batch_execute("BEGIN")
        .map_err(|e| Error::postgres(pg::error_text(&e)))
        .and_then(|_| objects::drop_all(&mut client))
        .and_then(|_| {
            client
                .batch_execute("COMMIT")
                .map_err(|e| Error::postgres(pg::error_text(&e)))
        });
    if result.is_err() {
        let _ = client.batch_execute("ROLLBACK");
    }
    let released = lock.release(&mut client);
    result?;
    released
}

fn with_note(e: Error, note: &str) -> Error {
    match e {
        Error::Usage(m) => Error::Usage(format!("{m}; {note}")),
        Error::Invalid(m) => Error::Invalid(format!("{m}; {note}")),
        Error::Postgres(m) => Error::Postgres(format!("{m}; {note}")),
        Error::Failed(m) => Error::Failed(format!("{m}; {note}")),
        Error::Io { context, source } => Error::Io {
            context: format!("{context} ({note})"),
            source,
        },
        Error::Remedied { error, remedy } => with_note(*error, note).with_remedy(remedy),
    }
}
