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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::log::Log;
use crate::ops::provisioning::{self, Target, Undo};
pub use crate::ops::request::MigrateRequest;
use crate::ops::WorkDir;
use crate::pg::command::ClientCommand;
use crate::pg::inspect::{self, ObjectInventory, SequenceValue, TableChecksum};
use crate::pg::provision::{self, Admin, ServerFacts};
use crate::pg::{self, ConnParams, PgTools};
use crate::profile::credentials::conf_rewrites;
use crate::profile::{DatabaseComponent, Environment};
use crate::{Error, IoContext, Result};

/// What a migration did.
#[derive(Debug)]
pub struct MigrateOutcome {
    pub tables: usize,
    /// Conf files rewritten, with their dated copies.
    pub rewritten: Vec<(PathBuf, PathBuf)>,
    /// The journal `rollback` reads.
    pub journal: PathBuf,
}

/// What `holdfast migrate --rollback` needs: the conf files and their copies.
#[derive(Debug, Serialize, Deserialize)]
pub struct MigrationJournal {
    pub scope: String,
    pub source: String,
    pub target: String,
    pub migrated_at: String,
    pub rewritten: Vec<RewrittenFile>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RewrittenFile {
    pub file: PathBuf,
    pub copy: PathBuf,
}

/// One database's content as of one moment.
#[derive(Debug, Clone, PartialEq)]
struct Content {
    tables: Vec<TableChecksum>,
    sequences: Vec<SequenceValue>,
    inventory: ObjectInventory,
}

pub fn run(req: &MigrateRequest, log: &Log) -> Result<MigrateOutcome> {
    // A termination request makes steps fail in their own words: say why.
    run_uninterrupted(req, log).map_err(crate::interrupt::explain)
}

fn run_uninterrupted(req: &MigrateRequest, log: &Log) -> Result<MigrateOutcome> {
    let env = &req.env;
    let db = env.profile.database(&req.scope).ok_or_else(|| {
        Error::usage(format!(
            "scope '{}' is not a database of the {} profile (databases: {})",
            req.scope,
            env.profile.name,
            env.profile
                .databases
                .iter()
                .map(|d| d.scope.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let source = env.database_params(db)?.ok_or_else(|| {
        Error::usage(format!(
            "the {} database is not configured on this machine; nothing to migrate",
            db.label
        ))
    })?;
    log.output(&format!(
        "Migrating the {} database from {} to {}",
        db.label,
        source.display(),
        req.target.display()
    ));
    if req.target.host == source.host
        && req.target.port == source.port
        && req.target.database == source.database
    {
        return Err(Error::usage(
            "the target is the source database; give another --to-host, --to-port or --to-name",
        ));
    }

    log.output("Checking:");
    let _lock = crate::ops::lock::OperationLock::acquire(
        env,
        crate::ops::lock::LockMode::Exclusive,
        "migrate",
    )?;
    match env.application_running() {
        Some(message) if !req.online => {
            return Err(Error::usage(format!(
                "{message} (to copy while it runs pass --online: writes after the copy's snapshot are lost)"
            )))
        }
        Some(_) => log.warning("--online: the application is running; what it writes after the copy's snapshot is not migrated"),
        None => {}
    }
    let mut src_client =
        pg::connect(&source).map_err(|e| Error::postgres(format!("source: {e}")))?;
    let src_info = inspect::database_info(&mut src_client)?;
    log.output(&format!(
        "- source: PostgreSQL {} reachable",
        src_info.server_version
    ));
    let needed_roles: Vec<String> = pg::roles::roles_needed(&mut src_client)?
        .into_iter()
        .map(|r| r.name)
        .filter(|r| r != &source.user)
        .collect();
    let extensions: Vec<String> = src_info
        .extensions
        .iter()
        .map(|(n, _)| n.clone())
        .filter(|n| n != "plpgsql")
        .collect();

    let locale = (src_info.collate.clone(), src_info.ctype.clone());
    let (admin, target_version) = check_target(req, &locale, &needed_roles, &extensions, log)?;
    if target_version / 10_000 < src_info.server_version_num / 10_000 {
        return Err(Error::usage(format!(
            "the target server (PostgreSQL {}) is older than the source ({}): a dump of a newer server may not load into an older one; migrate to PostgreSQL {} or newer",
            target_version / 10_000,
            src_info.server_version_num / 10_000,
            src_info.server_version_num / 10_000
        )));
    }
    let tools = PgTools::for_server(src_info.server_version_num.max(target_version))?;
    log.output(&format!("- client programs: PostgreSQL {}", tools.version));
    let mut changed = BTreeMap::new();
    changed.insert(req.scope.clone(), req.target.clone());
    let rewrites = conf_rewrites(env, env, &changed)?;
    let work = WorkDir::new(&req.tmpdir)?;
    check_space(&mut src_client, work.path(), &source)?;

    // From here on every change is undone on failure.
    let mut undo: Vec<Undo> = Vec::new();
    // A database that existed is emptied on failure; one we create is dropped.
    let fills_existing = admin.as_ref().is_none_or(|t| t.existing_owner.is_some());
    let mut rewritten: Vec<(PathBuf, PathBuf)> = Vec::new();
    let result = (|| -> Result<(usize, PathBuf)> {
        if let Some(target) = &admin {
            log.output("Provisioning:");
            provisioning::apply_target(
                target,
                &mut Default::default(),
                &mut |u| {
                    undo.push(u);
                    Ok(())
                },
                log,
            )?;
        }
        log.output("Copying:");
        let source_content = copy(req, &source, &tools, &mut src_client, work.path(), log)?;
        log.output("Comparing:");
        let mut tgt = pg::connect(&req.target)?;
        let target_content = content(&mut tgt)?;
        let tables = compare(&source_content, &target_content, log)?;
        log.output("Pointing the application at the target:");
        for rewrite in &rewrites {
            log.output(&format!("Rewriting {}", rewrite.file.display()));
            let copy = rewrite.apply(chrono::Local::now())?;
            rewritten.push((rewrite.file.clone(), copy));
        }
        let journal = write_journal(env, db, &source, req, &rewritten)?;
        Ok((tables, journal))
    })();
    match result {
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
                rewritten,
                journal,
            })
        }
        Err(e) => {
            let e = crate::interrupt::explain(e);
            let mut done = Vec::new();
            let mut remains = Vec::new();
            for (file, copy) in rewritten.iter().rev() {
                match std::fs::rename(copy, file) {
                    Ok(()) => done.push(format!("put back {}", file.display())),
                    Err(err) => remains.push(format!(
                        "{} (previous content in {}: {err})",
                        file.display(),
                        copy.display()
                    )),
                }
            }
            if fills_existing {
                match crate::ops::journal::empty_database(&req.target) {
                    Ok(()) => done.push(format!(
                        "emptied the target database '{}'",
                        req.target.database
                    )),
                    Err(err) => remains.push(format!(
                        "the target database '{}' still holds copied objects ({err})",
                        req.target.database
                    )),
                }
            }
            let (d, r) =
                provisioning::rollback(&mut undo, &provisioning::Patience::from_now(), log);
            done.extend(d);
            remains.extend(r);
            let what = if done.is_empty() {
                "nothing had been changed".to_string()
            } else {
                format!("undone: {}", done.join(", "))
            };
            let left = if remains.is_empty() {
                "the source and the conf files are unchanged".to_string()
            } else {
                format!("REMAINS: {}", remains.join("; "))
            };
            log.line(&format!("{what}; {left}"));
            Err(Error::failed(format!("{e}; {what}; {left}")))
        }
    }
}

/// Reach the target (as the admin, or as the application role), check its
/// database, extensions and roles; returns the provisioning plan and the
/// target server's version.
fn check_target(
    req: &MigrateRequest,
    locale: &(String, String),
    needed_roles: &[String],
    extensions: &[String],
    log: &Log,
) -> Result<(Option<Target>, i32)> {
    let t = &req.target;
    let Some(admin_params) = &req.admin else {
        let mut client = pg::connect(t).map_err(|e| {
            Error::postgres(format!(
                "target: {e}; create the role and an empty database there first, or pass --admin-user so holdfast creates them"
            ))
        })?;
        let info = inspect::database_info(&mut client)?;
        if let Some(object) = inspect::database_is_empty(&mut client)? {
            return Err(not_empty(t, &object));
        }
        let missing_ext: Vec<&String> = extensions
            .iter()
            .filter(|e| !info.extensions.iter().any(|(n, _)| n == *e))
            .collect();
        if !missing_ext.is_empty() {
            return Err(Error::usage(format!(
                "extension(s) {} must be created in the target database by a superuser; pass --admin-user so holdfast creates them",
                list(&missing_ext)
            )));
        }
        let rows = client
            .query(
                "SELECT rolname::text FROM pg_roles WHERE rolname = ANY($1)",
                &[&needed_roles],
            )
            .map_err(|e| Error::postgres(pg::error_text(&e)))?;
        let existing: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        let missing: Vec<&String> = needed_roles
            .iter()
            .filter(|r| !existing.contains(r))
            .collect();
        if !missing.is_empty() {
            return Err(Error::usage(format!(
                "role(s) {} own objects or hold grants in the source database and do not exist on the target; create them or pass --admin-user",
                list(&missing)
            )));
        }
        log.output(&format!(
            "- target: {} reachable, database empty",
            t.display()
        ));
        return Ok((None, info.server_version_num));
    };
    let admin = Admin::new(admin_params.clone(), PgTools::newest()?);
    admin.check().map_err(|e| {
        Error::postgres(format!("target server as {}: {e}", admin_params.display()))
    })?;
    let facts = ServerFacts::read(&admin)?;
    let missing_ext: Vec<&String> = extensions
        .iter()
        .filter(|e| !facts.available_extensions.contains(*e))
        .collect();
    if !missing_ext.is_empty() {
        return Err(Error::usage(format!(
            "extension(s) {} are not available on the target server; install their packages there first",
            list(&missing_ext)
        )));
    }
    let existing_owner = facts.database_owner(&t.database).map(str::to_string);
    if existing_owner.is_some() {
        if let Some(object) = provision::first_object(&admin, &t.database)? {
            return Err(not_empty(t, &object));
        }
    }
    if t.password.is_none() {
        return Err(Error::usage(
            "the target role needs a password: give --to-passfile (or keep the source's password)",
        ));
    }
    let locale = provision::choose_locale((&locale.0, &locale.1), &facts);
    let target = Target {
        scope: req.scope.clone(),
        params: t.clone(),
        admin,
        role_exists: facts.roles.contains(&t.user),
        existing_owner,
        extensions: extensions.to_vec(),
        locale,
        extra_roles: needed_roles
            .iter()
            .filter(|r| !facts.roles.contains(*r))
            .cloned()
            .collect(),
    };
    log.output(&format!(
        "- target: PostgreSQL {}.{} reachable as {} (database '{}' {})",
        facts.server_version_num / 10_000,
        facts.server_version_num % 10_000,
        admin_params.user,
        t.database,
        if target.existing_owner.is_some() {
            "exists and is empty"
        } else {
            "will be created"
        }
    ));
    Ok((Some(target), facts.server_version_num as i32))
}

fn not_empty(t: &ConnParams, object: &str) -> Error {
    Error::usage(format!(
        "Database '{}' on {}:{} is not empty (it has {object}); migrate into an empty database: drop and create it again, or choose another --to-name",
        t.database, t.host, t.port
    ))
}

fn list(items: &[&String]) -> String {
    items
        .iter()
        .map(|i| format!("'{i}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The staged dump is gzip-1 compressed: refuse when the temporary directory
/// has less free space than a quarter of the database.
fn check_space(client: &mut postgres::Client, dir: &Path, source: &ConnParams) -> Result<()> {
    let size: i64 = client
        .query_one("SELECT pg_database_size(current_database())", &[])
        .map_err(|e| Error::postgres(pg::error_text(&e)))?
        .get(0);
    let free = crate::ops::workdir::available_bytes(dir)?;
    if (free as i64) < size / 4 {
        return Err(Error::usage(format!(
            "{} has {} MB free; staging the copy of '{}' ({} MB) needs about {} MB: pass --tmpdir on a larger filesystem",
            dir.display(),
            free / 1_000_000,
            source.database,
            size / 1_000_000,
            size / 4 / 1_000_000
        )));
    }
    Ok(())
}

/// Dump the source in an exported snapshot (whose checksums are taken at the
/// same time) and restore into the target; returns the source's content.
fn copy(
    req: &MigrateRequest,
    source: &ConnParams,
    tools: &PgTools,
    src_client: &mut postgres::Client,
    work: &Path,
    log: &Log,
) -> Result<Content> {
    let sql_err = |e: postgres::Error| Error::postgres(format!("source: {}", pg::error_text(&e)));
    let (mut tx, snapshot) = inspect::export_snapshot(src_client)?;
    let dir = work.join("dump");
    let mut dump = ClientCommand::connected(tools, "pg_dump", source)?;
    dump.args(["-E", "UTF8", "--format=directory", "-Z1"])
        .arg(format!("--jobs={}", req.jobs))
        .arg(format!("--snapshot={snapshot}"))
        .arg("-f")
        .arg(&dir);
    log.line(&dump.describe());
    let (content, dumped) = std::thread::scope(|s| {
        let dumper = s.spawn(|| dump.output());
        let content = content(&mut tx);
        (
            content,
            dumper
                .join()
                .unwrap_or_else(|_| Err(Error::failed("the dump thread panicked"))),
        )
    });
    let (finished, _) = dumped?;
    if !finished.success() {
        return Err(finished.failure(&format!("of the source database '{}'", source.database)));
    }
    let content = content?;
    tx.commit().map_err(sql_err)?;
    log.output(&format!(
        "- dumped '{}' ({})",
        source.database,
        crate::log::count(req.jobs.get() as usize, "job", "jobs")
    ));
    let report = pg::restore::restore_custom(
        &req.target,
        tools,
        &dir,
        &pg::restore::RestoreOptions {
            jobs: req.jobs.get(),
            restore_permissions: true,
        },
    )?;
    log.line(&report.command);
    for m in &report.messages {
        log.line(m);
    }
    log.output(&format!(
        "- restored into '{}' ({})",
        req.target.database,
        crate::log::count(req.jobs.get() as usize, "job", "jobs")
    ));
    Ok(content)
}

fn content(client: &mut impl inspect::Snapshot) -> Result<Content> {
    Ok(Content {
        tables: inspect::table_fingerprints(client)?,
        sequences: inspect::sequences(client)?,
        inventory: inspect::object_inventory(client)?,
    })
}

/// Print and log the comparison; an error when anything differs.
fn compare(source: &Content, target: &Content, log: &Log) -> Result<usize> {
    let mut differences = Vec::new();
    log.output(&format!(
        "  {:<40} {:>10} {:>10}  {}",
        "table", "source", "target", "checksum"
    ));
    for s in &source.tables {
        let name = format!("{}.{}", s.schema, s.name);
        match target
            .tables
            .iter()
            .find(|t| t.schema == s.schema && t.name == s.name)
        {
            Some(t) => {
                let same = t.rows == s.rows && t.checksum == s.checksum;
                log.output(&format!(
                    "  {:<40} {:>10} {:>10}  {}",
                    name,
                    s.rows,
                    t.rows,
                    if same { "same" } else { "DIFFERENT" }
                ));
                if !same {
                    differences.push(format!("table {name}"));
                }
            }
            None => {
                log.output(&format!(
                    "  {:<40} {:>10} {:>10}  MISSING",
                    name, s.rows, "-"
                ));
                differences.push(format!("table {name} missing"));
            }
        }
    }
    for t in target.tables.iter().filter(|t| {
        !source
            .tables
            .iter()
            .any(|s| s.schema == t.schema && s.name == t.name)
    }) {
        differences.push(format!("table {}.{} only on the target", t.schema, t.name));
    }
    if source.sequences != target.sequences {
        differences.push("sequence values".into());
    }
    log.output(&format!(
        "  {} {}",
        crate::log::count(source.sequences.len(), "sequence", "sequences"),
        if source.sequences == target.sequences {
            "same"
        } else {
            "DIFFERENT"
        }
    ));
    for (what, a, b) in inventory_parts(&source.inventory, &target.inventory) {
        let same = a == b;
        log.output(&format!(
            "  {:<16} {:>6} {:>6}  {}",
            what,
            a.len(),
            b.len(),
            if same { "same" } else { "DIFFERENT" }
        ));
        if !same {
            let only_source: Vec<&String> = a
                .iter()
                .filter(|x| !b.contains(x))
                .take(3)
                .copied()
                .collect();
            let only_target: Vec<&String> = b
                .iter()
                .filter(|x| !a.contains(x))
                .take(3)
                .copied()
                .collect();
            differences.push(format!(
                "{what} (source only: {only_source:?}, target only: {only_target:?})"
            ));
        }
    }
    if source.inventory.comments != target.inventory.comments {
        differences.push(format!(
            "comments ({} vs {})",
            source.inventory.comments, target.inventory.comments
        ));
    }
    if !differences.is_empty() {
        return Err(Error::failed(format!(
            "the copy differs from the source: {}",
            differences.join("; ")
        )));
    }
    log.output(&format!(
        "- {}, sequences and objects equal on both sides",
        crate::log::count(source.tables.len(), "table", "tables")
    ));
    Ok(source.tables.len())
}

/// Inventory lists to compare; the database's own owner and grant lines name
/// the database, which may be renamed by the migration.
fn inventory_parts<'a>(
    a: &'a ObjectInventory,
    b: &'a ObjectInventory,
) -> Vec<(&'static str, Vec<&'a String>, Vec<&'a String>)> {
    let keep = |v: &'a Vec<String>| -> Vec<&'a String> {
        v.iter().filter(|x| !x.starts_with("database ")).collect()
    };
    vec![
        ("schemas", keep(&a.schemas), keep(&b.schemas)),
        ("tables", keep(&a.tables), keep(&b.tables)),
        ("views", keep(&a.views), keep(&b.views)),
        ("matviews", keep(&a.matviews), keep(&b.matviews)),
        ("sequences", keep(&a.sequences), keep(&b.sequences)),
        ("types", keep(&a.types), keep(&b.types)),
        ("functions", keep(&a.functions), keep(&b.functions)),
        ("indexes", keep(&a.indexes), keep(&b.indexes)),
        ("constraints", keep(&a.constraints), keep(&b.constraints)),
        ("triggers", keep(&a.triggers), keep(&b.triggers)),
        ("policies", keep(&a.policies), keep(&b.policies)),
        ("grants", keep(&a.grants), keep(&b.grants)),
        ("owners", keep(&a.owners), keep(&b.owners)),
    ]
}

fn write_journal(
    env: &Environment,
    db: &DatabaseComponent,
    source: &ConnParams,
    req: &MigrateRequest,
    rewritten: &[(PathBuf, PathBuf)],
) -> Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = env.root.join(&env.profile.archive.backup_dir);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .context(|| format!("create {}", dir.display()))?;
    let now = chrono::Local::now();
    let path = dir.join(format!(
        "holdfast-migrate-{}-{}.json",
        db.scope,
        now.format("%Y%m%d%H%M%S")
    ));
    let journal = MigrationJournal {
        scope: db.scope.clone(),
        source: source.display(),
        target: req.target.display(),
        migrated_at: now.to_rfc3339(),
        rewritten: rewritten
            .iter()
            .map(|(f, c)| RewrittenFile {
                file: f.clone(),
                copy: c.clone(),
            })
            .collect(),
    };
    let text = serde_json::to_string_pretty(&journal)
        .map_err(|e| Error::failed(format!("journal: {e}")))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .context(|| format!("create {}", path.display()))?;
    std::io::Write::write_all(&mut file, text.as_bytes())
        .context(|| format!("write {}", path.display()))?;
    file.sync_all()
        .context(|| format!("sync {}", path.display()))?;
    Ok(path)
}

/// Point the application back at the source: put back the conf files a
/// migration rewrote (the migrated versions are kept beside them).
pub fn rollback(journal_path: &Path, log: &Log) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(journal_path).map_err(|e| {
        Error::usage(format!(
            "cannot read the migration journal {}: {e}; pass the file the migration printed",
            journal_path.display()
        ))
    })?;
    let journal: MigrationJournal = serde_json::from_str(&text).map_err(|e| {
        Error::invalid(format!(
            "{} is not a migration journal: {e}",
            journal_path.display()
        ))
    })?;
    for r in &journal.rewritten {
        if !r.copy.is_file() {
            return Err(Error::usage(format!(
                "the copy {} of {} is gone; nothing was changed",
                r.copy.display(),
                r.file.display()
            )));
        }
    }
    let stamp = chrono::Local::now().format("%Y%m%d%H%M%S");
    let mut restored = Vec::new();
    for r in &journal.rewritten {
        let migrated = PathBuf::from(format!("{}.migrated-{stamp}", r.file.display()));
        std::fs::copy(&r.file, &migrated).context(|| format!("keep {}", r.file.display()))?;
        std::fs::rename(&r.copy, &r.file).context(|| format!("put back {}", r.file.display()))?;
        log.output(&format!(
            "Restored {} (the migrated version is kept as {})",
            r.file.display(),
            migrated.display()
        ));
        restored.push(r.file.clone());
    }
    log.output(&format!(
        "The application points at {} again; the copy on {} is left in place.",
        journal.source, journal.target
    ));
    let done = journal_path.with_extension("rolled-back.json");
    std::fs::rename(journal_path, &done)
        .context(|| format!("rename {}", journal_path.display()))?;
    Ok(restored)
}
