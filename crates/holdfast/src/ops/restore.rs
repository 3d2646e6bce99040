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

use std::io::BufReader;
use std::path::{Path, PathBuf};

use crate::archive::{ArchiveReader, Codec, DumpFormat, FilesPlan, PlannedKind, ReadLimits};
use crate::log::Log;
use crate::ops::journal::{Journal, KeepBy};
use crate::ops::provisioning;
use crate::ops::verify::seekable_dump;
use crate::ops::{RestoreRequest, WorkDir};
use crate::pg::{self, command::ClientCommand, ConnParams, PgTools};
use crate::profile::{DatabaseComponent, Environment, InstallRoot, PostRestore};
use crate::{Error, IoContext, Remedy, Result};

/// What a restore did.
#[derive(Debug, Default)]
pub struct RestoreOutcome {
    pub files_restored: bool,
    /// Database scopes restored.
    pub databases: Vec<String>,
    /// Conf files rewritten with new credentials, and their dated copies.
    pub rewritten: Vec<(PathBuf, PathBuf)>,
}

use crate::profile::credentials::ConfRewrite;

/// One database to load, checked.
struct DbTarget<'a> {
    component: &'a DatabaseComponent,
    member: PathBuf,
    format: DumpFormat,
    codec: Codec,
    /// Extensions the dump needs, as the archive's manifest records them.
    recorded_extensions: Option<Vec<String>>,
    params: ConnParams,
    /// `None` until the database is checked: provisioned databases are
    /// checked right after they are created.
    tools: Option<PgTools>,
    jobs: u32,
    /// Created by provisioning: dropped, not emptied, on failure.
    created: bool,
    /// The dump decompressed for pg_restore, once: the role check and the
    /// restore read the same file.
    seekable: std::cell::OnceCell<PathBuf>,
}

impl DbTarget<'_> {
    fn seekable_dump(&self, work: &Path) -> Result<PathBuf> {
        if let Some(path) = self.seekable.get() {
            return Ok(path.clone());
        }
        let path = seekable_dump(&self.member, self.codec, work)?;
        Ok(self.seekable.get_or_init(|| path).clone())
    }
}

pub fn run(req: &RestoreRequest, log: &Log) -> Result<RestoreOutcome> {
    // A termination request makes steps fail in their own words: say why.
    run_uninterrupted(req, log).map_err(crate::interrupt::explain)
}

fn run_uninterrupted(req: &RestoreRequest, log: &Log) -> Result<RestoreOutcome> {
    let profile = &req.env.profile;
    log.output("Preparing to restore:");
    let _lock = crate::ops::lock::OperationLock::acquire(
        &req.env,
        crate::ops::lock::LockMode::Exclusive,
        "restore",
    )?;
    check_not_running(&req.env)?;
    for db in &profile.databases {
        if let Some(p) = req.credentials.get(&db.scope) {
            log.output(&format!(
                "- Setting credentials for {} database '{}'",
                db.credentials_label(),
                p.database
            ));
        }
    }
    log.output(&format!("- Unpacking file '{}'", req.file.display()));
    let work = WorkDir::new(&req.tmpdir)?;
    roll_back_interrupted_restore(&req.env, log)?;
    crate::ops::journal::forget_completed(&req.env)?;
    log.line(&format!(
        "Opening tarball {} to {}",
        req.file.display(),
        work.path().display()
    ));
    let archive = ArchiveReader::open_in(&req.file, work.path(), ReadLimits::default())?;
    log.line("Verifying version");
    crate::profile::check_restore_version(
        &profile.version,
        archive.version(),
        &req.installed_version,
    )?;

    // What the archive holds of what was asked for.
    let wanted = |scope: &str| req.scopes.iter().any(|s| s == scope);
    let files_member = archive
        .member("files")
        .filter(|m| m.size > 0 && wanted("files"))
        .and_then(|_| archive.member_path("files"));
    let mut dbs: Vec<(&DatabaseComponent, PathBuf)> = Vec::new();
    for db in &profile.databases {
        if !wanted(&db.scope) {
            continue;
        }
        match archive.member(&db.member).filter(|m| m.size > 0) {
            Some(_) => dbs.push((db, archive.member_path(&db.member).expect("listed"))),
            None => log.line(&format!("{}: not in the archive, not restored", db.scope)),
        }
    }
    let explicit = req.scopes.len() < profile.scopes().len();
    let explicit_missing: Vec<&String> = req
        .scopes
        .iter()
        .filter(|_| explicit)
        .filter(|s| {
            (s.as_str() == "files" && files_member.is_none())
                || profile
                    .database(s)
                    .is_some_and(|d| !dbs.iter().any(|(x, _)| x.scope == d.scope))
        })
        .collect();
    for s in explicit_missing {
        log.warning(&format!(
            "the archive holds nothing for scope '{s}'; it is skipped"
        ));
    }
    // The files plan, and the conf values that will be in force after it.
    let limits = ReadLimits::default();
    let files_plan = match &files_member {
        Some(member) => Some(FilesPlan::new(
            member,
            req.env.root.path(),
            &profile.files.restore_exclude,
            limits,
        )?),
        None => None,
    };
    let future_env = match &files_member {
        Some(member) => {
            let preview = work.join("files.d");
            std::fs::create_dir(&preview).context(|| format!("create {}", preview.display()))?;
            FilesPlan::new(member, &preview, &[], limits)?.apply_unsynced()?;
            if let Some(plan) = &files_plan {
                check_disk_space(&preview, req.env.root.path(), plan, work.path())?;
            }
            Environment::load(profile.clone(), InstallRoot::new(&preview)?)?
        }
        None => req.env.clone(),
    };

    let plain_present = dbs
        .iter()
        .any(|(db, _)| archive.config().get(&db.archive_config_prefix).format == DumpFormat::Plain);
    if plain_present {
        // engine-backup's banner: plain dumps carry no owners or grants.
        let rule = "#".repeat(78);
        log.print(&rule);
        log.print("Please note: permissions are not backed up with a plain dump format, thus not restored during restore");
        log.print(&rule);
    }

    // Provisioning implies restoring permissions unless an option says otherwise.
    let chosen = provisioning::choose(req, &future_env, &dbs, log)?;
    let custom_present = dbs.iter().any(|(db, _)| {
        archive.config().get(&db.archive_config_prefix).format == DumpFormat::Custom
    });
    if custom_present && req.restore_permissions.is_none() && chosen.is_empty() {
        return Err(Error::usage(
            "Please pass one of --restore-permissions or --no-restore-permissions when restoring a backup with a custom dump format",
        ));
    }
    let restore_permissions = req.restore_permissions.unwrap_or(!chosen.is_empty());
    let mut plan = match chosen.is_empty() {
        true => provisioning::Plan::default(),
        false => {
            log.line("Checking what to provision");
            provisioning::plan(
                req,
                &future_env,
                &chosen,
                &archive,
                restore_permissions,
                work.path(),
                log,
            )?
        }
    };

    log.line("Verifying connection");
    let mut targets = Vec::new();
    for (db, member) in &dbs {
        let settings = archive.config().get(&db.archive_config_prefix);
        let provisioned = plan.targets.iter().find(|t| t.scope == db.scope);
        let params = match (provisioned, req.credentials.get(&db.scope)) {
            (Some(t), _) => t.params.clone(),
            (None, Some(p)) => p.clone(),
            (None, None) => future_env.database_params(db)?.ok_or_else(|| {
                Error::usage(format!(
                    "the restored configuration names no {} database user, so there is no database to restore into",
                    db.label
                ))
                .with_remedy(Remedy::OtherTargetDatabase {
                    option_prefix: db.option_prefix.clone(),
                })
            })?,
        };
        let mut target = DbTarget {
            component: db,
            member: member.clone(),
            format: settings.format,
            codec: settings.compressor,
            recorded_extensions: archive
                .manifest()
                .and_then(|m| m.database(&db.member))
                .map(|r| {
                    r.extensions
                        .iter()
                        .filter_map(|e| e.split_whitespace().next().map(str::to_string))
                        .collect()
                }),
            params,
            tools: None,
            jobs: req.jobs_for(&db.scope).get(),
            created: provisioned.is_some_and(|t| t.existing_owner.is_none()),
            seekable: std::cell::OnceCell::new(),
        };
        // Provisioned databases are checked once they exist.
        if provisioned.is_none() {
            target.tools = Some(check_target(
                &target,
                restore_permissions,
                work.path(),
                log,
            )?);
        }
        targets.push(target);
    }
    let rewrites =
        crate::profile::credentials::conf_rewrites(&req.env, &future_env, &req.credentials)?;

    if plan.is_empty() {
        log.output("Restoring:");
    }
    let mut journal = Journal::begin(&req.env, &req.file)?;
    let steps = Steps {
        archive: &archive,
        files_plan: files_plan.as_ref(),
        rewrites: &rewrites,
        restore_permissions,
        work: work.path(),
    };
    let result = restore_all(req, &steps, &mut plan, &mut targets, &mut journal, log);
    match result {
        Ok(outcome) => {
            journal.complete()?;
            if let Some(m) = profile
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
    let _lock = crate::ops::lock::OperationLock::acquire(
        env,
        crate::ops::lock::LockMode::Exclusive,
        "restore",
    )?;
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
    work: &'a Path,
}

fn restore_all(
    req: &RestoreRequest,
    steps: &Steps,
    provision: &mut provisioning::Plan,
    targets: &mut [DbTarget],
    journal: &mut Journal,
    log: &Log,
) -> Result<RestoreOutcome> {
    let mut outcome = RestoreOutcome::default();
    let profile = &req.env.profile;
    let (archive, rewrites) = (steps.archive, steps.rewrites);
    crate::interrupt::check()?;
    if !provision.is_empty() {
        provisioning::apply(provision, &mut |u| journal.server_step(&u), log)?;
    }
    for t in targets.iter_mut().filter(|t| t.tools.is_none()) {
        let tools = check_target(t, steps.restore_permissions, steps.work, log).map_err(|e| {
            Error::failed(format!(
                "the provisioned database '{}' is not usable as {}: {e}; check pg_hba.conf allows it ({})",
                t.params.database,
                t.params.user,
                pg::provision::hba_lines(&t.params.database, &t.params.user).join(" / ")
            ))
        })?;
        t.tools = Some(tools);
    }
    if let Some(plan) = steps.files_plan {
        crate::interrupt::check()?;
        log.output("- Files");
        log.line("Restoring files");
        journal.keep_files(plan, req.env.root.path())?;
        plan.apply()?;
        outcome.files_restored = true;
    }
    let restore_permissions = steps.restore_permissions;
    for t in targets.iter() {
        let tools = t.tools.as_ref().expect("checked above");
        crate::interrupt::check()?;
        log.output(&format!(
            "- {} database '{}'",
            t.component.restore_label(),
            t.params.database
        ));
        log.line(&format!(
            "restoreDB: backupfile {} user {} host {} port {} database {} compressor {} format {:?} jobsnum {}",
            t.member.display(),
            t.params.user,
            t.params.host,
            t.params.port,
            t.params.database,
            t.codec.option_name(),
            t.format,
            t.jobs
        ));
        if !t.created {
            journal.filling(&t.params)?;
        }
        let report = match t.format {
            DumpFormat::Custom => {
                let dump = t.seekable_dump(archive.dir())?;
                pg::restore::restore_custom(
                    &t.params,
                    tools,
                    &dump,
                    &pg::restore::RestoreOptions {
                        jobs: t.jobs,
                        restore_permissions,
                    },
                )
            }
            DumpFormat::Plain => {
                let input = std::fs::File::open(&t.member)
                    .context(|| format!("open {}", t.member.display()))?;
                let mut sql = t.codec.decoder(BufReader::with_capacity(1 << 20, input))?;
                pg::restore::restore_plain(&t.params, tools, &mut sql)
            }
        }
        .map_err(|e| {
            Error::failed(format!(
                "Errors while restoring database {}: {e}",
                t.params.database
            ))
        })?;
        log.line(&report.command);
        for m in &report.messages {
            log.line(m);
        }
        if let Some(post) = profile
            .post_restore
            .as_ref()
            .filter(|p| p.database == t.component.scope)
        {
            if !req.keep_temporary_data {
                run_post_restore(post, &t.params, log)?;
            }
            if let Some(note) = &post.note {
                let mtime = archive
                    .member(&t.component.member)
                    .map(|m| m.mtime)
                    .unwrap_or(0);
                let when = chrono::DateTime::from_timestamp(mtime as i64, 0)
                    .map(|d| {
                        d.with_timezone(&chrono::Local)
                            .format("%Y-%m-%d %H:%M:%S%.9f %z")
                            .to_string()
                    })
                    .unwrap_or_default();
                log.print(&note.replace("{backup_time}", &when));
            }
        }
        outcome.databases.push(t.component.scope.clone());
    }
    for sqlite in &profile.sqlite {
        if !req.scopes.iter().any(|s| s == &sqlite.scope) {
            continue;
        }
        let Some(src) = archive.member_path(&sqlite.member) else {
            continue;
        };
        let dest = req.env.root.join(&sqlite.path);
        log.output(&format!("- {} database '{}'", sqlite.label, dest.display()));
        journal.keep_file(&dest, KeepBy::Copy)?;
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir).context(|| format!("mkdir {}", dir.display()))?;
        }
        std::fs::copy(&src, &dest)
            .context(|| format!("cp {} {}", src.display(), dest.display()))?;
    }
    for rewrite in rewrites {
        let file = &rewrite.file;
        log.output(&format!("Rewriting {}", file.display()));
        journal.rewriting(file)?;
        let copy = rewrite.apply(chrono::Local::now())?;
        journal.rewrote(file, &copy)?;
        log.line(&format!(
            "Backing up {} to {}",
            file.display(),
            copy.display()
        ));
        outcome.rewritten.push((file.clone(), copy));
    }
    Ok(outcome)
}

/// Room for the restored files (unpacked in `preview`) on the install root's
/// filesystem, and for the copies of the files they replace in the work
/// directory, so that a full disk does not stop the restore half-way.
fn check_disk_space(preview: &Path, root: &Path, plan: &FilesPlan, work: &Path) -> Result<()> {
    let needed = tree_size(preview)?;
    let kept: u64 = plan
        .entries()
        .iter()
        .filter(|e| e.exists && e.kind != PlannedKind::Directory)
        .filter_map(|e| std::fs::symlink_metadata(root.join(&e.path)).ok())
        .map(|m| m.len())
        .sum();
    for (dir, bytes, what) in [
        (root, needed, "the restored files"),
        (work, kept, "the copies of the files the restore replaces"),
    ] {
        let free = crate::ops::workdir::available_bytes(dir)?;
        if bytes > free {
            return Err(Error::usage(format!(
                "not enough disk space in {}: {what} need {} KiB and {} KiB are free; free some space, then restore again",
                dir.display(),
                bytes.div_ceil(1024),
                free / 1024
            )));
        }
    }
    Ok(())
}

/// Bytes of the regular files under `dir`.
fn tree_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).context(|| format!("read {}", d.display()))? {
            let entry = entry.context(|| format!("read {}", d.display()))?;
            let meta = entry
                .metadata()
                .context(|| format!("stat {}", entry.path().display()))?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    Ok(total)
}

fn check_not_running(env: &Environment) -> Result<()> {
    match env.application_running() {
        // The profile's message is the whole line (engine-backup's own for oVirt).
        Some(message) => Err(Error::usage(message)),
        None => Ok(()),
    }
}

/// Connect with the credentials the restore will use, check the database is
/// empty, holds the roles the dump needs and can get its extensions; returns
/// the client programs to use.
fn check_target(
    t: &DbTarget,
    restore_permissions: bool,
    work: &Path,
    log: &Log,
) -> Result<PgTools> {
    let (params, db, member) = (&t.params, t.component, t.member.as_path());
    let (format, codec) = (t.format, t.codec);
    let mut client = pg::connect(params).map_err(|e| {
        Error::postgres(format!(
            "Can't connect to database '{}': {e}; check the server and the credentials",
            params.database
        ))
        .with_remedy(Remedy::OtherTargetDatabase {
            option_prefix: db.option_prefix.clone(),
        })
    })?;
    let info = pg::inspect::database_info(&mut client)?;
    if let Some(object) = pg::inspect::database_is_empty(&mut client)? {
        return Err(Error::usage(format!(
            "Database '{}' is not empty (it has {object}); restore into an empty database: drop and create it again, owned by {}",
            params.database, params.user
        )));
    }
    let tools = PgTools::for_server(info.server_version_num)?;
    let extensions = match &t.recorded_extensions {
        Some(list) => list.clone(),
        None => provisioning::dump_extensions(&tools, member, format, codec, work)?,
    };
    check_extensions(&mut client, params, &extensions)?;
    if format == DumpFormat::Custom && restore_permissions {
        let roles = roles_in_dump(&tools, &t.seekable_dump(work)?)?;
        let names: Vec<String> = roles.into_iter().collect();
        let rows = client
            .query(
                "SELECT rolname::text FROM pg_roles WHERE rolname = ANY($1)",
                &[&names],
            )
            .map_err(|e| Error::postgres(pg::error_text(&e)))?;
        let existing: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        let missing: Vec<&String> = names.iter().filter(|n| !existing.contains(n)).collect();
        if !missing.is_empty() {
            let list: Vec<String> = missing.iter().map(|m| format!("'{m}'")).collect();
            return Err(Error::usage(format!(
                "role {} needed by the dump of database '{}' (owner or grantee) does not exist on {}:{}; create it, or restore with --no-restore-permissions",
                list.join(", "),
                params.database,
                params.host,
                params.port
            )));
        }
    }
    log.line(&format!(
        "{}: reachable, empty, server {}",
        params.display(),
        info.server_version
    ));
    Ok(tools)
}

/// Every extension the dump creates is installed in the target database
/// already, or available on the server and creatable by the restoring role
/// (a superuser, or a trusted extension in a database it owns).
fn check_extensions(
    client: &mut postgres::Client,
    params: &ConnParams,
    needed: &[String],
) -> Result<()> {
    let rows = client
        .query(
            "SELECT wanted.name, a.name IS NOT NULL, \
                    coalesce(v.trusted, false) OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) \
               FROM unnest($1::text[]) AS wanted(name) \
               LEFT JOIN pg_available_extensions a ON a.name = wanted.name \
               LEFT JOIN pg_extension e ON e.extname = wanted.name \
               LEFT JOIN pg_available_extension_versions v \
                      ON v.name = a.name AND v.version = a.default_version \
              WHERE e.extname IS NULL AND wanted.name <> 'plpgsql'",
            &[&needed],
        )
        .map_err(|e| Error::postgres(pg::error_text(&e)))?;
    for row in rows {
        let (name, available, creatable): (String, bool, bool) =
            (row.get(0), row.get(1), row.get(2));
        if !available {
            return Err(Error::usage(format!(
                "extension '{name}' needed by database '{}' is not available on the PostgreSQL server at {}:{}: install the package that provides it (most come with postgresql-contrib), then restore again",
                params.database, params.host, params.port
            )));
        }
        if !creatable {
            return Err(Error::usage(format!(
                "extension '{name}' needed by database '{}' can only be created by a superuser: as the PostgreSQL superuser run 'CREATE EXTENSION \"{name}\"' in that database, or restore with provisioning",
                params.database
            )));
        }
    }
    Ok(())
}

/// Owners and grantees named by a custom dump (as engine-backup's extra-user
/// scan does, from the schema's SQL), without PUBLIC and the superuser.
pub(super) fn roles_in_dump(
    tools: &PgTools,
    dump: &Path,
) -> Result<std::collections::BTreeSet<String>> {
    let mut cmd = ClientCommand::offline(tools, "pg_restore");
    cmd.args(["-s", "-f", "-"]).arg(dump);
    let (finished, stdout) = cmd.output()?;
    if !finished.success() {
        return Err(finished.failure("reading the dump's schema"));
    }
    let text = String::from_utf8_lossy(&stdout);
    let mut roles = std::collections::BTreeSet::new();
    for line in text.lines() {
        let target = if line.starts_with("GRANT ") || line.starts_with("REVOKE ") {
            line.rsplit_once(" TO ")
                .or_else(|| line.rsplit_once(" FROM "))
                .map(|(_, r)| r)
        } else if line.starts_with("ALTER ") {
            line.rsplit_once(" OWNER TO ").map(|(_, r)| r)
        } else {
            None
        };
        let Some(target) = target else { continue };
        let target = target
            .trim_end_matches(';')
            .trim_end_matches(" WITH GRANT OPTION");
        for name in target.split(", ") {
            let name = name.trim().trim_matches('"').replace("\"\"", "\"");
            if !name.is_empty() && name != "PUBLIC" && name != "postgres" && name != "CURRENT_USER"
            {
                roles.insert(name);
            }
        }
    }
    Ok(roles)
}

fn run_post_restore(post: &PostRestore, params: &ConnParams, log: &Log) -> Result<()> {
    if let Some(b) = &post.banner {
        log.output(&b.replace("{database}", &params.database));
    }
    let mut client = pg::connect(params)?;
    let fail = |sql: &str, e: postgres::Error| {
        Error::postgres(format!(
            "post-restore step failed ({sql}): {}",
            pg::error_text(&e)
        ))
    };
    for step in &post.steps {
        let matched = match &step.check {
            None => true,
            Some(check) => {
                let rows = client.simple_query(check).map_err(|e| fail(check, e))?;
                let value = rows.iter().find_map(|m| match m {
                    postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                    _ => None,
                });
                value.as_deref() == step.when.as_deref()
            }
        };
        let (sql, console) = if matched {
            (Some(&step.sql), step.console.as_ref())
        } else {
            (step.else_sql.as_ref(), step.else_console.as_ref())
        };
        if let Some(sql) = sql {
            log.line(&format!("post-restore: {sql}"));
            client.batch_execute(sql).map_err(|e| fail(sql, e))?;
            if let Some(c) = console {
                log.output(c);
            }
        }
    }
    Ok(())
}
