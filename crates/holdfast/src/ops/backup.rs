//! Backup: every component in scope into one archive, while the application runs.
//!
//! Order of work: decide what is backed up (reporting what is skipped), check
//! every database connection and pick its pg_dump before anything is written,
//! notify the application, dump the databases and pack the files in parallel
//! (each dump in a snapshot that the manifest's fingerprints are taken in too,
//! mostly from the dump stream itself),
//! then write the archive to a temporary name, fsync and rename it.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender};

use crate::archive::manifest::{DatabaseRecord, RoleRecord, SequenceRecord, TableRecord, ToolInfo};
use crate::archive::{
    pack_files, ArchiveConfig, ArchiveWriter, Codec, FileSet, Manifest, WriterOptions,
};
use crate::log::Log;
use crate::ops::{BackupRequest, DumpPlan, WorkDir};
use crate::pg::{self, custom_format, ConnParams, DumpFormat, PgTools};
use crate::profile::{Component, DatabaseComponent, Environment, SqliteComponent};
use crate::{Error, IoContext, Result};

/// What a backup wrote.
#[derive(Debug)]
pub struct BackupOutcome {
    pub file: PathBuf,
    pub bytes: u64,
    /// Scopes actually backed up.
    pub scopes: Vec<String>,
}

/// One database to dump, with everything checked beforehand.
struct DbJob<'a> {
    component: &'a DatabaseComponent,
    params: ConnParams,
    tools: PgTools,
    settings: DumpPlan,
}

/// Run a backup.
pub fn run(req: &BackupRequest, log: &Log) -> Result<BackupOutcome> {
    // A termination request makes steps fail in their own words: say why.
    run_uninterrupted(req, log).map_err(crate::interrupt::explain)
}

fn run_uninterrupted(req: &BackupRequest, log: &Log) -> Result<BackupOutcome> {
    log.output("Backing up:");
    let _lock = crate::ops::lock::OperationLock::acquire(
        &req.env,
        crate::ops::lock::LockMode::Shared,
        "backup",
    )?;
    let env = &req.env;
    let plan = plan(req, log)?;
    preflight_destination(req)?;
    preflight_compression(req, &plan)?;

    let backed_up: Vec<String> = plan.scopes();
    let notifier = Notifier::new(env, log, &backed_up);
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

/// What will be backed up.
struct Plan<'a> {
    files: bool,
    databases: Vec<DbJob<'a>>,
    sqlite: Vec<&'a SqliteComponent>,
}

impl Plan<'_> {
    fn scopes(&self) -> Vec<String> {
        let mut s = Vec::new();
        if self.files {
            s.push("files".to_string());
        }
        s.extend(self.databases.iter().map(|d| d.component.scope.clone()));
        s.extend(self.sqlite.iter().map(|c| c.scope.clone()));
        s
    }
}

fn plan<'a>(req: &'a BackupRequest, log: &Log) -> Result<Plan<'a>> {
    let env = &req.env;
    let explicit = |scope: &str| {
        req.scopes.len() < env.profile.scopes().len() && req.scopes.iter().any(|s| s == scope)
    };
    let skip = |scope: &str, why: String| {
        if explicit(scope) {
            log.output(&why);
        } else {
            log.line(&why);
        }
    };
    let mut plan = Plan {
        files: false,
        databases: Vec::new(),
        sqlite: Vec::new(),
    };
    for scope in &req.scopes {
        match env.component(scope) {
            Some(Component::Files) => plan.files = true,
            Some(Component::Database(db)) => {
                if db.restore_only {
                    skip(
                        scope,
                        format!(
                            "- {} database: restore only, not backed up (scope '{scope}')",
                            db.backup_label()
                        ),
                    );
                    continue;
                }
                let params = match env.database_params(db)? {
                    Some(p) if env.condition_holds(db.enabled_if.as_ref()) => p,
                    _ => {
                        skip(
                            scope,
                            format!(
                                "- {} database: not configured on this machine, skipped (scope '{scope}')",
                                db.backup_label()
                            ),
                        );
                        continue;
                    }
                };
                let settings = req
                    .dumps
                    .get(scope)
                    .copied()
                    .unwrap_or_else(DumpPlan::engine_backup_default);
                let tools = tools_for(&params)?;
                plan.databases.push(DbJob {
                    component: db,
                    params,
                    tools,
                    settings,
                });
            }
            Some(Component::Sqlite(s)) => {
                let path = env.root.join(&s.path);
                if env.condition_holds(s.enabled_if.as_ref()) && path.is_file() {
                    plan.sqlite.push(s);
                } else {
                    skip(
                        scope,
                        format!(
                            "- {} database: not present on this machine, skipped (scope '{scope}')",
                            s.label
                        ),
                    );
                }
            }
            None => return Err(Error::usage(format!("invalid scope '{scope}'"))),
        }
    }
    if !plan.files && plan.databases.is_empty() && plan.sqlite.is_empty() {
        return Err(Error::usage(
            "nothing to back up: none of the requested scopes is configured on this machine",
        ));
    }
    Ok(plan)
}

/// Connect once to learn the server version, and pick the pg_dump for it.
fn tools_for(params: &ConnParams) -> Result<PgTools> {
    let mut client = pg::connect(params)?;
    let version: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .map_err(|e| {
            Error::postgres(format!(
                "database '{}': {}",
                params.database,
                pg::error_text(&e)
            ))
        })?
        .get(0);
    PgTools::for_server(version)
}

fn preflight_destination(req: &BackupRequest) -> Result<()> {
    let dir = req.file.parent().unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(Error::usage(format!(
            "the directory of --file ({}) does not exist; create it or choose another path",
            dir.display()
        )));
    }
    if req.file.is_dir() {
        return Err(Error::usage(format!(
            "{} is a directory; --file must name a file",
            req.file.display()
        )));
    }
    if req.file.exists() && !req.overwrite {
        return Err(Error::usage(format!(
            "{} exists; choose another --file or pass --overwrite",
            req.file.display()
        )));
    }
    Ok(())
}

/// Refuse a compression level that a codec in use does not take, before
/// anything is written.
fn preflight_compression(req: &BackupRequest, plan: &Plan) -> Result<()> {
    let mut codecs: Vec<Codec> = plan.databases.iter().map(|j| j.settings.codec).collect();
    if plan.files {
        codecs.push(req.files_codec);
    }
    for codec in codecs {
        codec.encoder(std::io::sink(), req.compress_level, 1)?;
    }
    Ok(())
}

/// Dump, pack and write; returns the archive's size.
fn write_archive(req: &BackupRequest, plan: &Plan, log: &Log) -> Result<u64> {
    let env = &req.env;
    let work = WorkDir::new(&req.tmpdir)?;
    log.line(&format!("Creating temp folder {}", work.path().display()));
    let tar = work.join("tar");
    std::fs::create_dir_all(tar.join("db")).context(|| format!("create {}", tar.display()))?;

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
            env.root.join(&s.path).display()
        ));
    }

    let files_path = tar.join("files");
    let threads = req.threads.max(1);
    let (files_result, db_results, sqlite_results) = std::thread::scope(|scope| {
        let files = plan.files.then(|| {
            let path = files_path.clone();
            scope.spawn(move || {
                pack_files_member(
                    env,
                    req.files_codec,
                    req.compress_level,
                    threads,
                    &path,
                    log,
                )
            })
        });
        let dbs: Vec<_> = plan
            .databases
            .iter()
            .map(|job| {
                let path = tar.join(&job.component.member);
                scope.spawn(move || dump_one(job, req.compress_level, threads, &path, log))
            })
            .collect();
        let sqlite: Vec<_> = plan
            .sqlite
            .iter()
            .map(|s| {
                let path = tar.join(&s.member);
                scope.spawn(move || copy_sqlite(&env.root.join(&s.path), &path))
            })
            .collect();
        (
            files.map(joined),
            dbs.into_iter().map(joined).collect::<Vec<_>>(),
            sqlite.into_iter().map(joined).collect::<Vec<_>>(),
        )
    });
    if let Some(r) = files_result {
        r?;
    }
    let mut records = Vec::new();
    for r in db_results {
        records.push(r?);
    }
    for r in sqlite_results {
        r?;
    }

    let mut config = ArchiveConfig::default();
    for db in env.profile.databases.iter().filter(|d| !d.restore_only) {
        let s = req
            .dumps
            .get(&db.scope)
            .copied()
            .unwrap_or_else(DumpPlan::engine_backup_default);
        config.set(
            &db.archive_config_prefix,
            crate::archive::DumpSettings {
                compressor: s.codec,
                format: s.format,
            },
        );
    }

    crate::interrupt::check()?;
    let mut writer = ArchiveWriter::create(
        &req.file,
        WriterOptions {
            codec: req.archive_codec,
            level: None,
            threads,
            overwrite: req.overwrite,
        },
    )?;
    writer.add_bytes("config", config.render())?;
    writer.add_bytes("os_version", format!("{}\n", os_version()))?;
    if plan.files {
        writer.add_file("files", &files_path)?;
    }
    writer.add_bytes("version", format!("{}\n", req.application_version))?;
    for job in &plan.databases {
        writer.add_file(&job.component.member, &tar.join(&job.component.member))?;
    }
    for s in &plan.sqlite {
        writer.add_file(&s.member, &tar.join(&s.member))?;
    }
    let manifest = Manifest {
        format_version: 1,
        tool: ToolInfo {
            name: "holdfast".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        created_at: chrono::Local::now().to_rfc3339(),
        profile: env.profile.name.clone(),
        profile_source: env.profile.source.as_ref().map(|p| p.display().to_string()),
        application_version: req.application_version.clone(),
        host: env.fqdn(),
        scopes: plan.scopes(),
        members: writer.member_records(),
        databases: records,
    };
    writer.add_bytes(
        crate::archive::manifest::MANIFEST_MEMBER,
        manifest.to_json(),
    )?;
    log.line(&format!(
        "Creating sha256sum at {}",
        tar.join("sha256sum").display()
    ));
    log.output(&format!("Packing into file '{}'", req.file.display()));
    log.line(&format!("Creating tarball {}", req.file.display()));
    crate::interrupt::check()?;
    let written = writer.finish()?;
    Ok(std::fs::metadata(&written).map(|m| m.len()).unwrap_or(0))
}

/// A thread's result; a panic becomes an error instead of tearing the backup down.
fn joined<T>(h: std::thread::ScopedJoinHandle<'_, Result<T>>) -> Result<T> {
    h.join()
        .unwrap_or_else(|_| Err(Error::failed("a backup thread panicked")))
}

fn pack_files_member(
    env: &Environment,
    codec: Codec,
    level: Option<i32>,
    threads: u32,
    path: &Path,
    log: &Log,
) -> Result<()> {
    log.line(&format!("Backing up files to {}", path.display()));
    let files = &env.profile.files;
    let mut include: Vec<String> = files.include.clone();
    for c in &files.include_children {
        let dir = env.root.join(&c.dir);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut children: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| !c.except.contains(n))
            .map(|n| format!("{}/{n}", c.dir.trim_end_matches('/')))
            .collect();
        children.sort();
        include.extend(children);
    }
    let set = FileSet {
        include,
        exclude: files.exclude.clone(),
    };
    let out = create_private(path)?;
    let (out, packed) = pack_files(
        env.root.path(),
        &set,
        codec,
        level,
        threads,
        BufWriter::with_capacity(1 << 20, out),
    )?;
    for s in &packed.skipped {
        log.line(&format!("Not backed up (socket, fifo or device): {s}"));
    }
    // Not synced: a staged member is read back into the archive, whose file
    // is synced before it replaces the destination; syncing here too would
    // make the backup wait for the disk twice.
    out.into_inner()
        .map_err(|e| Error::io("flush the files member", e.into_error()))?;
    Ok(())
}

fn create_private(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .context(|| format!("create {}", path.display()))
}

/// Dump one database in a snapshot that the manifest's inspection shares.
///
/// An uncompressed custom dump is also read as it streams past
/// ([`pg::custom_format`]): each table's row fingerprint comes from the rows
/// pg_dump sends, so the server scans the tables once. Relations the stream
/// carries no rows of (materialized views), and every relation of a dump in
/// another format, get a fingerprint computed by the server after the dump.
fn dump_one(
    job: &DbJob,
    level: Option<i32>,
    threads: u32,
    path: &Path,
    log: &Log,
) -> Result<DatabaseRecord> {
    let db = job.component;
    log.line(&format!(
        "Backing up {} database to {}",
        db.scope,
        path.display()
    ));
    let mut client = pg::connect(&job.params)?;
    let sql_err = |e: postgres::Error| {
        Error::postgres(format!(
            "database '{}': {}",
            job.params.database,
            pg::error_text(&e)
        ))
    };
    let (mut tx, snapshot) = pg::inspect::export_snapshot(&mut client)?;
    let options = pg::dump::DumpOptions {
        format: job.settings.format,
        compression: job.settings.pg_dump_compress.map(|c| c.min(9) as u8),
        snapshot: Some(snapshot),
    };
    let readable_stream = options.format == DumpFormat::Custom && options.compression == Some(0);
    log.line(&pg::dump::dump_command(&job.params, &job.tools, &options)?.describe());
    let (inspected, dumped) = std::thread::scope(|s| {
        let dumper = s.spawn(|| dump_to_file(job, &options, readable_stream, level, threads, path));
        let inspected = inspect(&mut tx);
        let dumped = dumper
            .join()
            .unwrap_or_else(|_| Err(Error::failed("the dump thread panicked")));
        (inspected, dumped)
    });
    let (report, stream_sums) = dumped.map_err(|e| {
        Error::failed(format!(
            "Database {} backup failed: {e}",
            job.params.database
        ))
    })?;
    for w in &report.warnings {
        log.line(&format!("pg_dump: {w}"));
    }
    let stream_sums = match stream_sums {
        Some(Ok(sums)) => Some(sums),
        Some(Err(e)) => {
            log.line(&format!(
                "Row fingerprints of database {} not read from the dump ({e}); the server computes them",
                job.params.database
            ));
            None
        }
        None => None,
    };
    let (info, sequences, roles, row_text) = inspected?;
    let tables = table_records(&mut tx, stream_sums.as_ref())?;
    tx.commit().map_err(sql_err)?;
    Ok(DatabaseRecord {
        scope: db.scope.clone(),
        database: job.params.database.clone(),
        member: db.member.clone(),
        dump_format: job.settings.format,
        compressor: job.settings.codec,
        pg_dump_version: report.pg_dump_version,
        server_version: info.server_version.clone(),
        encoding: info.encoding.clone(),
        collate: info.collate.clone(),
        ctype: info.ctype.clone(),
        extensions: info
            .extensions
            .iter()
            .map(|(n, v)| format!("{n} {v}"))
            .collect(),
        roles,
        tables,
        sequences,
        row_text: stream_sums.is_some().then_some(row_text),
    })
}

/// Row fingerprints read from the dump stream, or why they could not be.
type StreamSums = Option<Result<custom_format::TableSums>>;

/// Run pg_dump into the member file through the dump's compressor, with a copy
/// of the stream to the row fingerprinter when `fingerprint` is set.
fn dump_to_file(
    job: &DbJob,
    options: &pg::dump::DumpOptions,
    fingerprint: bool,
    level: Option<i32>,
    threads: u32,
    path: &Path,
) -> Result<(pg::dump::DumpReport, StreamSums)> {
    let file = create_private(path)?;
    let encoder =
        job.settings
            .codec
            .encoder(BufWriter::with_capacity(1 << 20, file), level, threads)?;
    std::thread::scope(|s| {
        let (copies, stream) = if fingerprint {
            let (sender, receiver) = std::sync::mpsc::sync_channel(16);
            let reader = ChannelReader::new(receiver);
            let sums = s.spawn(move || {
                custom_format::table_row_sums(BufReader::with_capacity(1 << 20, reader))
            });
            (Some(sender), Some(sums))
        } else {
            (None, None)
        };
        let mut tee = Tee {
            inner: encoder,
            copies,
        };
        let dumped = pg::dump::dump_database(&job.params, &job.tools, options, &mut tee);
        // Dropping the sender ends the fingerprinter's stream.
        let Tee {
            inner: encoder,
            copies,
        } = tee;
        drop(copies);
        let sums = stream.map(|h| {
            h.join()
                .unwrap_or_else(|_| Err(Error::failed("the row fingerprinter panicked")))
        });
        let report = dumped?;
        let out = encoder.finish().map_err(|e| {
            Error::io(
                format!(
                    "{} failed compressing the backup of database {}",
                    job.settings.codec.option_name(),
                    job.params.database
                ),
                e,
            )
        })?;
        // Not synced, as the files member (see `pack_files_member`).
        out.into_inner()
            .map_err(|e| Error::io("flush the dump", e.into_error()))?;
        Ok((report, sums))
    })
}

/// Passes everything to `inner`, and a copy to the row fingerprinter's
/// thread. Once that thread stops reading (a stream it cannot parse), the
/// copies stop and the dump goes on.
struct Tee<W> {
    inner: W,
    copies: Option<SyncSender<Vec<u8>>>,
}

impl<W: Write> Write for Tee<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(copies) = &self.copies {
            if copies.send(buf[..n].to_vec()).is_err() {
                self.copies = None;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The receiving end of [`Tee`]'s copies as a byte stream; it ends when the
/// sender is dropped.
struct ChannelReader {
    receiver: Receiver<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
}

impl ChannelReader {
    fn new(receiver: Receiver<Vec<u8>>) -> ChannelReader {
        ChannelReader {
            receiver,
            current: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.current.len() {
            match self.receiver.recv() {
                Ok(next) => {
                    self.current = next;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

type Inspected = (
    pg::inspect::DatabaseInfo,
    Vec<SequenceRecord>,
    Vec<RoleRecord>,
    pg::inspect::RowTextSettings,
);

/// What the manifest records besides the tables, read while pg_dump runs.
fn inspect(tx: &mut postgres::Transaction) -> Result<Inspected> {
    let info = pg::inspect::database_info(tx)?;
    let row_text = pg::inspect::row_text_settings(tx)?;
    let sequences = pg::inspect::sequences(tx)?
        .into_iter()
        .map(|s| SequenceRecord {
            name: format!("{}.{}", s.schema, s.name),
            last_value: s.last_value,
            is_called: s.is_called,
        })
        .collect();
    let roles = pg::roles::roles_needed(tx)?
        .into_iter()
        .map(|r| RoleRecord {
            sql: r.create_sql(),
            name: r.name,
        })
        .collect();
    Ok((info, sequences, roles, row_text))
}

/// Every table's record: its fingerprint from the dump stream when the stream
/// carried its rows, else computed by the server in the backup's snapshot.
fn table_records(
    tx: &mut postgres::Transaction,
    stream_sums: Option<&custom_format::TableSums>,
) -> Result<Vec<TableRecord>> {
    let known = |schema: &str, name: &str| {
        stream_sums
            .and_then(|sums| sums.get(&(schema.to_string(), name.to_string())))
            .map(|sum| (sum.rows as i64, sum.fingerprint()))
    };
    Ok(pg::inspect::table_fingerprints_completing(tx, known)?
        .into_iter()
        .map(|t| TableRecord {
            schema: t.schema,
            name: t.name,
            kind: match t.kind {
                pg::inspect::RelationKind::Table => "table".into(),
                pg::inspect::RelationKind::MaterializedView => "materialized view".into(),
            },
            row_count: t.rows.max(0) as u64,
            checksum: t.checksum,
        })
        .collect())
}

/// SQLite's online backup: a consistent copy while the application writes.
fn copy_sqlite(source: &Path, dest: &Path) -> Result<()> {
    let src =
        rusqlite::Connection::open_with_flags(source, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| {
            Error::failed(format!(
                "failed to backup {} with sqlite3: {e}",
                source.display()
            ))
        })?;
    src.busy_timeout(std::time::Duration::from_secs(10))
        .and_then(|_| src.backup(rusqlite::MAIN_DB, dest, None))
        .map_err(|e| {
            Error::failed(format!(
                "failed to backup {} with sqlite3: {e}",
                source.display()
            ))
        })?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o600))
        .context(|| format!("chmod {}", dest.display()))
}

/// `debian12`, `rhel9`: the distribution id and major version, as engine-backup writes it.
pub fn os_version() -> String {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_default()
    };
    let major = get("VERSION_ID")
        .split('.')
        .next()
        .unwrap_or("")
        .to_string();
    format!("{}{major}", get("ID"))
}

/// The application's notification hook (oVirt: `LogEngineBackupEvent`), sent
/// once per scope backed up. A failing notification is logged and warned
/// about, never fatal: the backup itself matters more than its bookkeeping.
struct Notifier<'a> {
    env: &'a Environment,
    log: &'a Log,
    scopes: Vec<String>,
    params: Option<ConnParams>,
}

impl<'a> Notifier<'a> {
    fn new(env: &'a Environment, log: &'a Log, scopes: &[String]) -> Notifier<'a> {
        let params = env
            .profile
            .notify
            .as_ref()
            .and_then(|n| env.profile.database(&n.database))
            .filter(|db| env.condition_holds(db.enabled_if.as_ref()))
            .and_then(|db| env.database_params(db).ok().flatten());
        Notifier {
            env,
            log,
            scopes: scopes.to_vec(),
            params,
        }
    }

    fn send(&self, status: i32, event: &str) {
        let (Some(hook), Some(params)) = (&self.env.profile.notify, &self.params) else {
            return;
        };
        if let Some(c) = &hook.console {
            self.log.output(c);
        }
        if let Err(e) = self.try_send(hook, params, status, event) {
            self.log
                .warning(&format!("Failed notifying the application: {e}"));
        }
    }

    fn try_send(
        &self,
        hook: &crate::profile::NotifyHook,
        params: &ConnParams,
        status: i32,
        event: &str,
    ) -> Result<()> {
        let mut client = pg::connect(params)?;
        let log_path = self
            .log
            .path()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let fqdn = self.env.fqdn();
        for scope in &self.scopes {
            let notify_scope = match self.env.component(scope) {
                Some(Component::Database(d)) => d.notify_scope().to_string(),
                Some(Component::Sqlite(s)) => {
                    s.notify_scope.clone().unwrap_or_else(|| s.scope.clone())
                }
                _ => scope.clone(),
            };
            let message = hook
                .message
                .replace("{event}", event)
                .replace("{scope}", &notify_scope)
                .replace("{log}", &log_path);
            let values: Vec<Box<dyn postgres::types::ToSql + Sync>> = hook
                .params
                .iter()
                .map(|p| -> Box<dyn postgres::types::ToSql + Sync> {
                    match p.as_str() {
                        "scope" => Box::new(notify_scope.clone()),
                        "status" => Box::new(status),
                        "message" => Box::new(message.clone()),
                        "fqdn" => Box::new(fqdn.clone()),
                        _ => Box::new(log_path.clone()),
                    }
                })
                .collect();
            let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                values.iter().map(|b| b.as_ref()).collect();
            self.log.line(&format!(
                "Notifying {notify_scope}: status {status}, {event}"
            ));
            client
                .execute(hook.sql.as_str(), &refs)
                .map_err(|e| Error::postgres(pg::error_text(&e)))?;
        }
        Ok(())
    }
}
