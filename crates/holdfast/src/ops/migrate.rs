//! Migrate: move one database of the environment to another server, prove the
//! copy complete, and point the application at it — or undo it.
//!
//! Order of work: every check before the first write (source reachable, target
//! reachable as the admin or the application role, target server not older,
//! extensions and roles available, target database empty, the application
//! stopped or `--online`, conf files present, temporary space); provision role
//! and database on the target; dump the source in an exported snapshot (parallel
//! directory dump, compressed with gzip level 1 so the staging copy is a fraction
//! of the data) while the same snapshot's checksums are taken; restore in
//! parallel jobs; compare every table, sequence and object; rewrite the conf
//! files (dated copies kept) and write a journal that `rollback` uses. The source
//! is only read. A failure drops what was created on the target and puts the conf
//! files back.
//!
//! Phases: [`checks`], then [`copy`] (copy and compare), the conf rewrite and
//! the [`journal`]; on failure [`undo`].

mod checks;
mod copy;
mod journal;

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::log::Log;
use crate::ops::lock::{LockMode, OperationLock};
use crate::ops::provisioning::{self, Target, Undo};
pub use crate::ops::request::MigrateRequest;
use crate::ops::WorkDir;
use crate::pg::{self, ConnParams, PgTools};
use crate::profile::credentials::{conf_rewrites, ConfRewrite};
use crate::profile::{DatabaseComponent, DatabaseCredentials};
use crate::{Error, Result};

pub use journal::{rollback, MigrationJournal, RewrittenFile};

/// What a migration did.
#[derive(Debug)]
pub struct MigrateOutcome {
    pub tables: usize,
    /// Conf files rewritten, with their dated copies.
    pub rewritten: Vec<(PathBuf, PathBuf)>,
    /// The journal `rollback` reads.
    pub journal: PathBuf,
}

pub fn run(req: &MigrateRequest, log: &Log) -> Result<MigrateOutcome> {
    // A termination request makes steps fail in their own words: say why.
    run_uninterrupted(req, log).map_err(crate::interrupt::explain)
}

fn run_uninterrupted(req: &MigrateRequest, log: &Log) -> Result<MigrateOutcome> {
    let env = &req.env;
    let (db, source) = checks::source(req)?;
    log.output(&format!(
        "Migrating the {} database from {} to {}",
        db.label,
        source.display(),
        req.target.display()
    ));
    checks::request(req, &source)?;

    log.output("Checking:");
    let _lock = OperationLock::acquire(env, LockMode::Exclusive, "migrate")?;
    checks::application(req, log)?;
    let mut src_client =
        pg::connect(&source).map_err(|e| Error::postgres(format!("source: {e}")))?;
    let facts = checks::source_facts(&mut src_client, &source, log)?;
    let locale = (facts.info.collate.clone(), facts.info.ctype.clone());
    let (admin, target_version) =
        checks::target(req, &locale, &facts.roles, &facts.extensions, log)?;
    let tools = checks::versions(facts.info.server_version_num, target_version)?;
    log.output(&format!("- client programs: PostgreSQL {}", tools.version));
    let mut changed: BTreeMap<String, DatabaseCredentials> = BTreeMap::new();
    changed.insert(req.scope.clone(), (&req.target).into());
    let rewrites = conf_rewrites(env, env, &changed)?;
    let work = WorkDir::new(&req.tmpdir)?;
    checks::space(&mut src_client, work.path(), &source)?;

    // From here on every change is undone on failure.
    let mut done = Done::default();
    let migrated = Migration {
        req,
        db,
        source: &source,
        tools: &tools,
        admin: admin.as_ref(),
        rewrites: &rewrites,
    }
    .carry_out(&mut src_client, &work, &mut done, log);
    match migrated {
        Ok((tables, journal)) => {
            log.output(&format!(
                "The source database {} was left untouched. To point the application back at it: holdfast migrate --profile {} --install-root {} --rollback {}",
                source.display(),
                env.profile.name,
                env.root.path().display(),
                journal.display()
            ));
            Ok(MigrateOutcome {
                tables,
                rewritten: done.rewritten,
                journal,
            })
        }
        Err(e) => {
            // A database that existed is emptied on failure; one we create is dropped.
            let fills_existing = admin.as_ref().is_none_or(|t| t.existing_owner.is_some());
            Err(undo(req, e, done, fills_existing, log))
        }
    }
}

/// What the migration changed so far, for [`undo`].
#[derive(Default)]
struct Done {
    /// Provisioning's changes on the target server.
    server: Vec<Undo>,
    /// Conf files rewritten, with their dated copies.
    rewritten: Vec<(PathBuf, PathBuf)>,
}

/// Everything the checks decided.
struct Migration<'a> {
    req: &'a MigrateRequest,
    db: &'a DatabaseComponent,
    source: &'a ConnParams,
    tools: &'a PgTools,
    admin: Option<&'a Target>,
    rewrites: &'a [ConfRewrite],
}

impl Migration<'_> {
    /// Provision, copy, compare, point the application at the target, write
    /// the journal; returns the tables compared and the journal's path.
    fn carry_out(
        &self,
        src_client: &mut postgres::Client,
        work: &WorkDir,
        done: &mut Done,
        log: &Log,
    ) -> Result<(usize, PathBuf)> {
        let req = self.req;
        // The target is provisioned while pg_dump runs: neither needs the
        // other. A refusal there kills pg_dump (`SourceDump` dropped).
        let dir = work.join("dump");
        let dumping = copy::start_dump(req, self.source, self.tools, src_client, &dir, log)?;
        self.provision(done, log)?;
        let source_content = dumping.finish()?;
        log.output("Copying:");
        log.output(&format!(
            "- dumped '{}' ({})",
            self.source.database,
            crate::log::count(req.jobs.get() as usize, "job", "jobs")
        ));
        copy::restore(req, self.tools, &dir, log)?;
        log.output("Comparing:");
        let mut tgt = pg::connect(&req.target)?;
        let target_content = copy::content(&mut tgt)?;
        let tables = copy::compare(&source_content, &target_content, log)?;
        log.output("Pointing the application at the target:");
        for rewrite in self.rewrites {
            log.output(&format!("Rewriting {}", rewrite.file.display()));
            let copy = rewrite.apply(chrono::Local::now())?;
            done.rewritten.push((rewrite.file.clone(), copy));
        }
        let journal = journal::write_journal(&req.env, self.db, self.source, req, &done.rewritten)?;
        Ok((tables, journal))
    }

    /// Create or update the target's role and database, each change noted
    /// in `done` as it is made.
    fn provision(&self, done: &mut Done, log: &Log) -> Result<()> {
        let Some(target) = self.admin else {
            return Ok(());
        };
        log.output("Provisioning:");
        provisioning::apply_target(
            target,
            &mut Default::default(),
            &mut |u| {
                done.server.push(u);
                Ok(())
            },
            log,
        )
    }
}

/// Put the conf files back, empty or drop the target database and take back
/// what provisioning created; the error says what was undone and what remains.
fn undo(req: &MigrateRequest, e: Error, mut done: Done, fills_existing: bool, log: &Log) -> Error {
    let e = crate::interrupt::explain(e);
    let mut undone = Vec::new();
    let mut remains = Vec::new();
    for (file, copy) in done.rewritten.iter().rev() {
        match std::fs::rename(copy, file) {
            Ok(()) => undone.push(format!("put back {}", file.display())),
            Err(err) => remains.push(format!(
                "{} (previous content in {}: {err})",
                file.display(),
                copy.display()
            )),
        }
    }
    if fills_existing {
        match pg::restore::empty_database(&req.target) {
            Ok(()) => undone.push(format!(
                "emptied the target database '{}'",
                req.target.database
            )),
            Err(err) => remains.push(format!(
                "the target database '{}' still holds copied objects ({err})",
                req.target.database
            )),
        }
    }
    let (d, r) = provisioning::rollback(&mut done.server, &provisioning::Patience::from_now(), log);
    undone.extend(d);
    remains.extend(r);
    let what = if undone.is_empty() {
        "nothing had been changed".to_string()
    } else {
        format!("undone: {}", undone.join(", "))
    };
    let left = if remains.is_empty() {
        "the source and the conf files are unchanged".to_string()
    } else {
        format!("REMAINS: {}", remains.join("; "))
    };
    log.line(&format!("{what}; {left}"));
    Error::failed(format!("{e}; {what}; {left}"))
}
