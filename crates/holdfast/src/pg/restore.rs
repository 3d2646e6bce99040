//! Restoring a dump into an existing database: custom dumps with pg_restore
//! (table of contents filtered first), plain dumps with psql; and reading a
//! custom dump's table of contents.
//!
//! Success is the program's exit code. engine-backup ignored pg_restore's exit
//! code and grepped English `ERROR:` lines against an ignore list, which is why
//! it required `lc_messages = en_US.UTF-8` on the server. holdfast instead keeps
//! the known-benign statements from running at all: it removes from the table of
//! contents the entries that a non-superuser restoring into a database it owns
//! cannot and need not restore (the `public` schema and its comment, extensions
//! and languages that already exist), then any error is a real one.
//!
//! A restore that fails is taken back with [`empty_database`].

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::Stdio;

use crate::pg::{ClientCommand, ConnParams, Finished, PgTools};
use crate::progress::Progress;
use crate::{Error, IoContext, Result};

/// One entry of a custom dump's table of contents, as `pg_restore -l` lists it:
/// `3515; 0 0 ACL public TABLE clusters engine`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TocEntry {
    /// The entry's id inside the dump (what `pg_restore -L` selects by).
    pub dump_id: i32,
    /// OID of the catalog the object lives in (`pg_class` is 1259), 0 for none.
    pub catalog_oid: u32,
    /// OID of the object in the dumped database, 0 for none.
    pub oid: u32,
    /// Kind of entry: `TABLE`, `TABLE DATA`, `ACL`, `SEQUENCE SET`, `BLOB`, …
    pub desc: String,
    /// Schema, `None` where pg_restore prints `-`.
    pub schema: Option<String>,
    /// Object name, or for comments and ACLs the kind and name (`TABLE hosts`).
    pub name: String,
    /// Owning role; empty for entries without an owner.
    pub owner: String,
    /// The line as pg_restore printed it.
    pub line: String,
}

/// Multi-word entry kinds, longest first so that `TABLE DATA` wins over `TABLE`.
const MULTI_WORD_DESCS: &[&str] = &[
    "PUBLICATION TABLES IN SCHEMA",
    "TEXT SEARCH CONFIGURATION",
    "TEXT SEARCH DICTIONARY",
    "MATERIALIZED VIEW DATA",
    "TEXT SEARCH TEMPLATE",
    "FOREIGN DATA WRAPPER",
    "TEXT SEARCH PARSER",
    "SUBSCRIPTION TABLE",
    "PROCEDURAL LANGUAGE",
    "DATABASE PROPERTIES",
    "MATERIALIZED VIEW",
    "SEQUENCE OWNED BY",
    "PUBLICATION TABLE",
    "STATISTICS DATA",
    "OPERATOR FAMILY",
    "CHECK CONSTRAINT",
    "OPERATOR CLASS",
    "SECURITY LABEL",
    "BLOB METADATA",
    "ACCESS METHOD",
    "EVENT TRIGGER",
    "FK CONSTRAINT",
    "FOREIGN TABLE",
    "LARGE OBJECTS",
    "TABLE ATTACH",
    "INDEX ATTACH",
    "LARGE OBJECT",
    "ROW SECURITY",
    "SEQUENCE SET",
    "USER MAPPING",
    "DEFAULT ACL",
    "SHELL TYPE",
    "TABLE DATA",
];

/// Parse `pg_restore -l` output: comment lines (`;`) and blank lines are skipped.
pub fn parse_toc(listing: &str) -> Result<Vec<TocEntry>> {
    listing
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(';'))
        .map(|l| {
            parse_toc_line(l).ok_or_else(|| {
                Error::invalid(format!(
                    "pg_restore -l printed a line that is not a table-of-contents entry: {l:?}"
                ))
            })
        })
        .collect()
}

fn parse_toc_line(line: &str) -> Option<TocEntry> {
    let (id, rest) = line.split_once("; ")?;
    let (catalog, rest) = rest.split_once(' ')?;
    let (oid, rest) = rest.split_once(' ')?;
    let desc = MULTI_WORD_DESCS
        .iter()
        .find(|d| rest.starts_with(*d) && rest[d.len()..].starts_with(' '))
        .map(|d| d.to_string())
        .or_else(|| rest.split_once(' ').map(|(d, _)| d.to_string()))?;
    let rest = &rest[desc.len() + 1..];
    let (schema, rest) = rest.split_once(' ')?;
    let (name, owner) = rest.rsplit_once(' ')?;
    Some(TocEntry {
        dump_id: id.trim().parse().ok()?,
        catalog_oid: catalog.parse().ok()?,
        oid: oid.parse().ok()?,
        desc,
        schema: (schema != "-").then(|| schema.to_string()),
        name: name.to_string(),
        owner: owner.to_string(),
        line: line.to_string(),
    })
}

/// The table of contents of a custom-format dump (`pg_restore -l`).
pub fn list_toc(tools: &PgTools, dump: &Path) -> Result<Vec<TocEntry>> {
    parse_toc(&toc_listing(tools, DumpSource::File(dump))?)
}

/// [`list_toc`] of any [`DumpSource`]: of a stream, pg_restore reads only
/// the head.
pub fn list_toc_of(tools: &PgTools, dump: DumpSource) -> Result<Vec<TocEntry>> {
    parse_toc(&toc_listing(tools, dump)?)
}

/// A custom-format dump for the programs that read only its table of
/// contents (`pg_restore -l`, `pg_restore -s`).
pub enum DumpSource<'a> {
    /// A file (or a directory-format dump) pg_restore opens itself.
    File(&'a Path),
    /// The dump as a stream (a compressed archive member decoded as it is
    /// read), named by `name` in messages. pg_restore reads its head and
    /// stops: nothing is decompressed to disk.
    Stream {
        name: &'a Path,
        input: Box<dyn Read + Send + 'a>,
    },
}

impl DumpSource<'_> {
    /// The file, or the member the stream is read from.
    pub fn name(&self) -> &Path {
        match self {
            DumpSource::File(path) => path,
            DumpSource::Stream { name, .. } => name,
        }
    }

    /// Run `pg_restore ARGS` on the dump; returns how it ended and its stdout.
    pub(crate) fn pg_restore(self, tools: &PgTools, args: &[&str]) -> Result<(Finished, Vec<u8>)> {
        let mut cmd = ClientCommand::offline(tools, "pg_restore");
        cmd.args(args);
        match self {
            DumpSource::File(path) => {
                cmd.arg(path);
                cmd.output()
            }
            DumpSource::Stream { mut input, .. } => cmd.output_fed(&mut input),
        }
    }
}

/// The header `pg_restore -l` prints before the entries: what made the dump.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TocHeader {
    /// Name of the dumped database.
    pub dbname: String,
    /// `CUSTOM`, `DIRECTORY`, `TAR`.
    pub format: String,
    /// Archive format version (`1.14-0`): a pg_restore older than the pg_dump
    /// that wrote it may not read it.
    pub dump_version: String,
    /// Compression inside the dump as pg_restore reports it (`-1`, `0`, `gzip`).
    pub compression: String,
    /// Server version the dump was taken from (`15.18 (Debian 15.18-0+deb12u1)`).
    pub dumped_from: String,
    /// Version of the pg_dump that wrote it.
    pub dumped_by: String,
    /// `TOC Entries` (also counts entries pg_restore does not list).
    pub toc_entries: u32,
}

/// Read the header comment lines of `pg_restore -l` output.
pub fn parse_toc_header(listing: &str) -> TocHeader {
    let mut header = TocHeader::default();
    for line in listing.lines().filter_map(|l| l.strip_prefix(';')) {
        let Some((key, value)) = line.trim().split_once(": ") else {
            continue;
        };
        let value = value.trim().to_string();
        match key {
            "dbname" => header.dbname = value,
            "Format" => header.format = value,
            "Dump Version" => header.dump_version = value,
            "Compression" => header.compression = value,
            "Dumped from database version" => header.dumped_from = value,
            "Dumped by pg_dump version" => header.dumped_by = value,
            "TOC Entries" => header.toc_entries = value.parse().unwrap_or(0),
            _ => {}
        }
    }
    header
}

/// The header and the entries of a custom-format dump's table of contents.
pub fn read_toc(tools: &PgTools, dump: &Path) -> Result<(TocHeader, Vec<TocEntry>)> {
    let listing = toc_listing(tools, DumpSource::File(dump))?;
    Ok((parse_toc_header(&listing), parse_toc(&listing)?))
}

fn toc_listing(tools: &PgTools, source: DumpSource) -> Result<String> {
    let dump = source.name().to_path_buf();
    // A custom-format file, or a directory-format dump (its toc.dat inside).
    if matches!(source, DumpSource::File(_)) && !dump.is_file() && !dump.join("toc.dat").is_file() {
        return Err(Error::usage(format!(
            "{} is neither a custom-format dump nor a directory-format dump",
            dump.display()
        )));
    }
    let (finished, stdout) = source.pg_restore(tools, &["-l"])?;
    if !finished.success() {
        if finished.stderr.contains("unsupported version") {
            return Err(Error::usage(format!(
                "{} was written by a newer pg_dump than pg_restore {} can read: install the \
                 postgresql-client package of the PostgreSQL version that made the dump ({})",
                dump.display(),
                tools.version,
                finished.stderr_lines().join(" | ")
            )));
        }
        return Err(finished.failure(&format!("listing {}", dump.display())));
    }
    String::from_utf8(stdout).map_err(|_| {
        Error::invalid(format!(
            "the table of contents of {} is not UTF-8",
            dump.display()
        ))
    })
}

/// How to restore a custom dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreOptions {
    /// `pg_restore -j`: parallel jobs, at least 1.
    pub jobs: u32,
    /// Restore owners and grants as dumped; `false` adds `--no-owner
    /// --no-privileges` (everything owned by the restoring role, no grants).
    pub restore_permissions: bool,
    /// With `restore_permissions`: `false` restores the grants but not the
    /// owners (`--no-owner`), for a restore under another role than the one
    /// that owned the objects.
    pub restore_owners: bool,
}

/// What a successful restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// The loggable command line.
    pub command: String,
    /// Table-of-contents entries left out, as pg_restore listed them.
    pub skipped: Vec<String>,
    /// What the program wrote to stderr (notices, warnings), for the log.
    pub messages: Vec<String>,
}

/// What already exists in the target database, which decides what to skip.
#[derive(Debug, Default)]
struct TargetState {
    extensions: BTreeSet<String>,
    languages: BTreeSet<String>,
    has_public_schema: bool,
}

/// Why an entry is left out, or `None` to restore it.
fn skip_reason(entry: &TocEntry, target: &TargetState) -> Option<&'static str> {
    let public = target.has_public_schema;
    match (
        entry.desc.as_str(),
        entry.schema.as_deref(),
        entry.name.as_str(),
    ) {
        ("SCHEMA", None, "public") if public => Some("schema public exists"),
        ("COMMENT", None, "SCHEMA public") if public => Some("schema public exists"),
        ("EXTENSION", _, name) if target.extensions.contains(name) => Some("extension exists"),
        ("COMMENT", None, name)
            if named(name, "EXTENSION ").is_some_and(|ext| target.extensions.contains(&ext)) =>
        {
            Some("extension exists")
        }
        ("PROCEDURAL LANGUAGE", _, name) if target.languages.contains(name) => {
            Some("language exists")
        }
        ("COMMENT" | "ACL", None, name)
            if named(name, "LANGUAGE ").is_some_and(|lang| target.languages.contains(&lang)) =>
        {
            Some("language exists")
        }
        _ => None,
    }
}

/// The object of a comment or ACL entry (`EXTENSION "uuid-ossp"`) of one kind,
/// without the identifier quoting pg_dump adds.
fn named(entry_name: &str, kind: &str) -> Option<String> {
    let (name, rest) = leading_identifier(entry_name.strip_prefix(kind)?)?;
    rest.is_empty().then_some(name)
}

/// What the target database already has, over a connection of our own (a
/// psql process per database cost more than the query).
fn target_state(conn: &ConnParams) -> Result<TargetState> {
    let mut client = crate::pg::connect(conn)?;
    let rows = client
        .simple_query(
            "SELECT 'extension', extname FROM pg_extension \
             UNION ALL SELECT 'language', lanname FROM pg_language \
             UNION ALL SELECT 'schema', nspname FROM pg_namespace WHERE nspname = 'public'",
        )
        .map_err(|e| {
            Error::postgres(format!(
                "checking the target database '{}': {}",
                conn.database,
                crate::pg::error_text(&e)
            ))
        })?;
    let mut state = TargetState::default();
    for row in rows {
        let postgres::SimpleQueryMessage::Row(row) = row else {
            continue;
        };
        match (row.get(0), row.get(1)) {
            (Some("extension"), Some(name)) => {
                state.extensions.insert(name.to_string());
            }
            (Some("language"), Some(name)) => {
                state.languages.insert(name.to_string());
            }
            (Some("schema"), Some("public")) => state.has_public_schema = true,
            _ => {}
        }
    }
    Ok(state)
}

/// [`restore_custom`] with a bar of the dump's entries, made by `progress`
/// from their number.
pub fn restore_custom_with_progress(
    conn: &ConnParams,
    tools: &PgTools,
    dump: &Path,
    options: &RestoreOptions,
    progress: &dyn Fn(u64) -> Progress,
) -> Result<RestoreReport> {
    restore_custom_observed(conn, tools, dump, options, Some(progress))
}

fn restore_custom_observed(
    conn: &ConnParams,
    tools: &PgTools,
    dump: &Path,
    options: &RestoreOptions,
    progress: Option<&dyn Fn(u64) -> Progress>,
) -> Result<RestoreReport> {
    // Requests hold a `Jobs` (never 0); a caller of this function directly
    // is told, without any face's option name.
    if options.jobs == 0 {
        return Err(Error::usage("pg_restore needs at least 1 job"));
    }
    let jobs = options.jobs.to_string();
    let mut extra: Vec<&str> = if options.jobs > 1 {
        vec!["-j", &jobs]
    } else {
        Vec::new()
    };
    if options.restore_permissions && !options.restore_owners {
        extra.push("--no-owner");
    }
    run_pg_restore_observed(
        conn,
        tools,
        dump,
        options.restore_permissions,
        &extra,
        None,
        progress,
    )
}

/// Restore a custom-format dump into the (existing, empty) database of `conn`.
///
/// The dump must be a regular file (`pg_restore -j` cannot read a pipe).
pub fn restore_custom(
    conn: &ConnParams,
    tools: &PgTools,
    dump: &Path,
    options: &RestoreOptions,
) -> Result<RestoreReport> {
    restore_custom_observed(conn, tools, dump, options, None)
}

/// Empty again a database that was empty before a restore into it: drop what
/// the restoring role (`params.user`) created, after ending the sessions a
/// killed run left there.
pub fn empty_database(params: &ConnParams) -> Result<()> {
    let mut client = crate::pg::connect(params)?;
    crate::pg::conn::end_orphaned_sessions(&mut client)?;
    client
        .batch_execute("DROP OWNED BY CURRENT_USER CASCADE")
        .map_err(|e| Error::postgres(crate::pg::error_text(&e)))?;
    if let Some(object) = crate::pg::inspect::database_is_empty(&mut client)? {
        return Err(Error::failed(format!("{object} is left")));
    }
    Ok(())
}

/// Restore a custom-format dump all or nothing (`--single-transaction
/// --exit-on-error`, hence without parallel jobs), filtered like
/// [`restore_custom`]: a failure leaves the database as it was.
pub fn restore_custom_atomic(
    conn: &ConnParams,
    tools: &PgTools,
    dump: &Path,
    restore_permissions: bool,
) -> Result<RestoreReport> {
    run_pg_restore(
        conn,
        tools,
        dump,
        restore_permissions,
        &["--single-transaction", "--exit-on-error"],
        None,
    )
}

/// Restore only the entries of a custom dump whose dump ids are `selected`,
/// all or nothing like [`restore_custom_atomic`]: a partial restore into a
/// database that holds other objects.
pub fn restore_entries_atomic(
    conn: &ConnParams,
    tools: &PgTools,
    dump: &Path,
    selected: &BTreeSet<i32>,
    restore_permissions: bool,
) -> Result<RestoreReport> {
    run_pg_restore(
        conn,
        tools,
        dump,
        restore_permissions,
        &["--single-transaction", "--exit-on-error"],
        Some(selected),
    )
}

/// `pg_restore -L <filtered list> [extra] [--no-owner --no-privileges] dump`;
/// with `selected`, the list holds only those entries.
fn run_pg_restore(
    conn: &ConnParams,
    tools: &PgTools,
    dump: &Path,
    restore_permissions: bool,
    extra: &[&str],
    selected: Option<&BTreeSet<i32>>,
) -> Result<RestoreReport> {
    run_pg_restore_observed(
        conn,
        tools,
        dump,
        restore_permissions,
        extra,
        selected,
        None,
    )
}

/// `run_pg_restore`, with a bar of the list's entries when `progress` makes
/// one (given the number of entries): pg_restore runs `--verbose` and each
/// entry it reports advances the bar; those lines are not kept.
fn run_pg_restore_observed(
    conn: &ConnParams,
    tools: &PgTools,
    dump: &Path,
    restore_permissions: bool,
    extra: &[&str],
    selected: Option<&BTreeSet<i32>>,
    progress: Option<&dyn Fn(u64) -> Progress>,
) -> Result<RestoreReport> {
    let listing = toc_listing(tools, DumpSource::File(dump))?;
    let target = target_state(conn)?;

    let mut list = String::new();
    let mut skipped = Vec::new();
    let mut entries = 0u64;
    for line in listing.lines() {
        let entry = parse_toc_line(line).filter(|_| !line.starts_with(';'));
        // pg_restore -L reads the leading dump id of each line, whatever follows.
        let dump_id = (!line.starts_with(';'))
            .then(|| line.split(';').next()?.trim().parse::<i32>().ok())
            .flatten();
        if let (Some(selected), Some(id)) = (selected, dump_id) {
            if !selected.contains(&id) {
                continue;
            }
        }
        let reason = entry.and_then(|entry| skip_reason(&entry, &target));
        match reason {
            Some(reason) => {
                skipped.push(line.to_string());
                list.push_str(&format!(";{line}   -- holdfast: {reason}\n"));
            }
            None => {
                entries += u64::from(dump_id.is_some());
                list.push_str(line);
                list.push('\n');
            }
        }
    }
    let list_dir =
        crate::leftovers::HeldDir::new(&crate::leftovers::temp_parent(), "holdfast-toc-", 6)
            .context(|| "create a directory for the restore list".to_string())?;
    let list_path = list_dir.path().join("toc.list");
    std::fs::write(&list_path, list).context(|| format!("write {}", list_path.display()))?;

    let mut cmd = ClientCommand::connected(tools, "pg_restore", conn)?;
    cmd.arg("-L").arg(&list_path);
    cmd.args(extra);
    if !restore_permissions {
        cmd.args(["--no-owner", "--no-privileges"]);
    }
    let observer = progress.map(|make| {
        cmd.arg("--verbose");
        let bar = make(entries);
        Box::new(move |line: &str| {
            let Some(info) = verbose_info(line) else {
                return false;
            };
            if ENTRY_STARTS.iter().any(|s| info.starts_with(s)) {
                bar.advance(1);
            }
            true
        }) as crate::pg::command::LineObserver
    });
    cmd.arg(dump);
    let finished = cmd
        .spawn_observed(Stdio::null(), Stdio::null(), observer)?
        .wait()?;
    if !finished.success() {
        return Err(restore_failure(&finished, &conn.database));
    }
    Ok(RestoreReport {
        command: finished.description.clone(),
        skipped,
        messages: finished.stderr_lines(),
    })
}

/// How `pg_restore --verbose` starts the line of each list entry it works on.
const ENTRY_STARTS: &[&str] = &[
    "creating ",
    "processing data for ",
    "executing ",
    "processing ",
];

/// The text of a `--verbose` information line of pg_restore (not an error,
/// warning, detail or hint, which are kept for the log and the failure).
fn verbose_info(line: &str) -> Option<&str> {
    let rest = line.trim_end().strip_prefix("pg_restore: ")?;
    let severity = [
        "error:",
        "warning:",
        "detail:",
        "hint:",
        "while ",
        "from TOC",
        "in ",
        "finished with",
    ];
    (!severity.iter().any(|s| rest.starts_with(s))).then_some(rest)
}

/// The failure with pg_restore's own error lines (the `error:` lines and the
/// statement each one was about), not every notice.
fn restore_failure(finished: &crate::pg::Finished, database: &str) -> Error {
    let lines = finished.stderr_lines();
    let errors: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("error:") || l.contains("ERROR:") || l.starts_with("Command was:"))
        .take(12)
        .collect();
    if errors.is_empty() {
        return finished.failure(&format!("into database '{database}'"));
    }
    let status = finished
        .status
        .and_then(|s| s.code())
        .map_or("killed by a signal".to_string(), |c| {
            format!("exit status {c}")
        });
    Error::failed(format!(
        "pg_restore into database '{database}' failed ({status}): {}",
        errors
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    ))
}

/// Restore a plain SQL dump into the (existing, empty) database of `conn`,
/// streaming it into `psql -X -q -v ON_ERROR_STOP=1 --single-transaction -f -`:
/// the first error stops psql and rolls everything back.
///
/// On the way, the statements a non-superuser owner cannot and need not run are
/// left out, as for custom dumps: `COMMENT ON EXTENSION` for an extension that
/// already exists, and `CREATE SCHEMA public` / `COMMENT ON SCHEMA public` (dumps
/// of old servers) where the target has `public`.
///
/// A plain dump from an archive is untrusted text, and psql runs the
/// meta-commands it reads (`\!` runs a shell command, `\o` writes a file). So
/// the dump's own `\restrict KEY` / `\unrestrict KEY` lines (pg_dump
/// 13.22/14.19/15.14/16.10/17.6 and later write them; their key is the
/// archive's, hence known to a forger) are removed, and psql is put into
/// restricted mode with a random key of ours first: it then refuses every
/// meta-command wherever the dump hides one. A line that starts with a
/// meta-command is refused before psql sees it. A psql too old for `\restrict`
/// gets no backslash outside COPY data at all.
pub fn restore_plain(
    conn: &ConnParams,
    tools: &PgTools,
    sql: &mut dyn Read,
) -> Result<RestoreReport> {
    let target = target_state(conn)?;
    let mut cmd = ClientCommand::connected(tools, "psql", conn)?;
    cmd.args([
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "--single-transaction",
        "-f",
        "-",
    ]);
    let mut running = cmd.spawn(Stdio::piped(), Stdio::null())?;
    let mut stdin = running
        .take_stdin()
        .ok_or_else(|| Error::failed("psql started without an input pipe"))?;
    let key = tools.psql_knows_restrict().then(restrict_key).transpose()?;
    let filter = PlainFilter {
        target: &target,
        restrict_key: key.as_deref(),
    };
    let fed = filter.copy(sql, &mut stdin);
    let database = &conn.database;
    let mut write_error = None;
    let (skipped, problem) = match fed {
        Ok(copy) if copy.complete => (copy.skipped, None),
        Ok(_) => (
            Vec::new(),
            Some(Error::invalid(format!(
                "the plain dump for database '{database}' ends before pg_dump's \
                 \"dump complete\" line: it is truncated or not a pg_dump plain dump; \
                 nothing was restored"
            ))),
        ),
        Err(PlainCopyError::Read(e)) => (
            Vec::new(),
            Some(Error::io(
                format!("read the plain dump for database '{database}' (nothing was restored)"),
                e,
            )),
        ),
        Err(PlainCopyError::Hostile { line, text }) => {
            let what = match &key {
                Some(_) => format!(
                    "holds the psql meta-command {:?} on line {line}, which pg_dump never writes: \
                     it is not a genuine pg_dump plain dump",
                    short(&text)
                ),
                None => format!(
                    "has a backslash outside COPY data on line {line} ({:?}), and psql {} cannot \
                     be made to refuse meta-commands (\\restrict needs 13.22, 14.19, 15.14, \
                     16.10, 17.6 or later): install a newer PostgreSQL client to restore it",
                    short(&text),
                    tools.version
                ),
            };
            (
                Vec::new(),
                Some(Error::invalid(format!(
                    "the plain dump for database '{database}' {what}; nothing was restored"
                ))),
            )
        }
        // psql stopped reading: it failed, and says why below.
        Err(PlainCopyError::Write(e)) => {
            write_error = Some(e);
            (Vec::new(), None)
        }
    };
    if let Some(problem) = problem {
        // Killed before its input ends, psql never commits the transaction.
        let finished = running.kill();
        let exited_by_itself = finished.status.and_then(|s| s.code()).is_some();
        if exited_by_itself && !finished.success() {
            return Err(finished.failure(&format!("restoring database '{database}'")));
        }
        return Err(problem);
    }
    drop(stdin);
    let finished = running.wait()?;
    if !finished.success() {
        return Err(finished.failure(&format!("restoring database '{database}'")));
    }
    if let Some(e) = write_error {
        return Err(Error::io(
            format!("feed the plain dump for database '{database}' to psql"),
            e,
        ));
    }
    Ok(RestoreReport {
        command: finished.description.clone(),
        skipped,
        messages: finished.stderr_lines(),
    })
}

/// The line pg_dump writes after everything else of a plain dump (before the
/// closing `\unrestrict`): without it the dump is truncated.
const DUMP_COMPLETE: &str = "-- PostgreSQL database dump complete";

/// What went through to psql.
#[derive(Debug, Default)]
struct PlainCopy {
    /// Lines left out.
    skipped: Vec<String>,
    /// Whether pg_dump's closing line came through.
    complete: bool,
}

#[derive(Debug)]
enum PlainCopyError {
    /// The dump could not be read (decompression, disk): psql must not commit.
    Read(std::io::Error),
    /// psql stopped reading, having failed.
    Write(std::io::Error),
    /// A line psql would run as a meta-command (1-based line number).
    Hostile { line: u64, text: String },
}

/// A key for psql's restricted mode: 32 hex digits from the kernel's random
/// source, so that a dump cannot guess it to leave the mode.
fn restrict_key() -> Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context(|| "read /dev/urandom for psql's restrict key".to_string())?;
    Ok(hex::encode(bytes))
}

/// pg_dump's `\restrict KEY` / `\unrestrict KEY` line (KEY alphanumeric).
fn is_restrict_line(line: &[u8]) -> bool {
    let key = line
        .strip_prefix(b"\\restrict ")
        .or_else(|| line.strip_prefix(b"\\unrestrict "));
    key.is_some_and(|k| !k.is_empty() && k.iter().all(u8::is_ascii_alphanumeric))
}

fn short(text: &str) -> String {
    text.chars().take(60).collect()
}

/// Which lines of a plain dump are left out on the way to psql.
struct PlainFilter<'a> {
    target: &'a TargetState,
    /// psql's restricted-mode key, written before the dump; `None` for a psql
    /// that does not know `\restrict`, which then gets no backslash outside
    /// COPY data.
    restrict_key: Option<&'a str>,
}

impl PlainFilter<'_> {
    /// Copy the dump line by line, leaving COPY data untouched.
    fn copy(&self, sql: &mut dyn Read, out: &mut dyn Write) -> Result<PlainCopy, PlainCopyError> {
        let mut reader = BufReader::with_capacity(256 * 1024, sql);
        let mut line = Vec::new();
        let mut copied = PlainCopy::default();
        let mut in_copy = false;
        let mut number = 0u64;
        if let Some(key) = self.restrict_key {
            writeln!(out, "\\restrict {key}").map_err(PlainCopyError::Write)?;
        }
        // pg_dump heads each statement with `-- Name: …; Type: …; Schema: …`.
        let mut header = String::new();
        loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(PlainCopyError::Read)?;
            if n == 0 {
                return Ok(copied);
            }
            number += 1;
            let text = line.strip_suffix(b"\n").unwrap_or(&line);
            if in_copy {
                // psql ends COPY data at `\.` with either line end.
                in_copy = text != b"\\." && text != b"\\.\r";
            } else if is_restrict_line(text) {
                // Replaced by ours, not content: not listed as skipped.
                continue;
            } else if self.is_refused(text) {
                return Err(PlainCopyError::Hostile {
                    line: number,
                    text: String::from_utf8_lossy(text).trim().to_string(),
                });
            } else if let Ok(text) = std::str::from_utf8(text) {
                if text.starts_with("COPY ") && text.ends_with(" FROM stdin;") {
                    in_copy = true;
                } else if text.starts_with("-- Name: ") {
                    header = text.to_string();
                } else if text == DUMP_COMPLETE {
                    copied.complete = true;
                } else if self.skips(text, &header) {
                    copied.skipped.push(text.to_string());
                    continue;
                }
            }
            out.write_all(&line).map_err(PlainCopyError::Write)?;
        }
    }

    /// Whether a line outside COPY data must not reach psql: one that starts
    /// with a meta-command, or for a psql without restricted mode any backslash.
    fn is_refused(&self, line: &[u8]) -> bool {
        match self.restrict_key {
            Some(_) => line.trim_ascii_start().starts_with(b"\\"),
            None => line.contains(&b'\\'),
        }
    }

    /// Whether one line outside COPY data is left out.
    fn skips(&self, line: &str, header: &str) -> bool {
        let public = self.target.has_public_schema;
        if header.contains("; Type: SCHEMA;") && line == "CREATE SCHEMA public;" {
            return public;
        }
        if !header.contains("; Type: COMMENT;") || !line.ends_with(';') {
            return false;
        }
        if line.starts_with("COMMENT ON SCHEMA public IS ") {
            return public;
        }
        line.strip_prefix("COMMENT ON EXTENSION ")
            .and_then(leading_identifier)
            .is_some_and(|(name, rest)| {
                rest.starts_with(" IS ") && self.target.extensions.contains(&name)
            })
    }
}

/// A SQL identifier at the start of `text` (plain or double-quoted) and the rest.
pub(crate) fn leading_identifier(text: &str) -> Option<(String, &str)> {
    if let Some(quoted) = text.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            if c == '"' {
                if quoted[i + 1..].starts_with('"') {
                    name.push('"');
                    chars.next();
                } else {
                    return Some((name, &quoted[i + 1..]));
                }
            } else {
                name.push(c);
            }
        }
        None
    } else {
        let end = text
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
            .unwrap_or(text.len());
        (end > 0).then(|| (text[..end].to_string(), &text[end..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_toc_lines() {
        let listing = ";\n; Archive created at 2026-11-21 14:48:03 UTC\n;\n\
            6; 2615 33177 SCHEMA - audit engine\n\
            3510; 0 0 ACL public FUNCTION host_event_count(p_host_id bigint) engine\n\
            3499; 0 33355 MATERIALIZED VIEW DATA public host_event_stats_mv engine\n\
            3501; 0 0 BLOBS - BLOBS \n\
            3308; 2606 33254 CONSTRAINT audit host_changes host_changes_pkey engine\n\
            3461; 0 16392 TABLE DATA public clusters engine\n";
        let toc = parse_toc(listing).unwrap();
        assert_eq!(toc.len(), 6);
        assert_eq!(
            toc[0],
            TocEntry {
                dump_id: 6,
                catalog_oid: 2615,
                oid: 33177,
                desc: "SCHEMA".into(),
                schema: None,
                name: "audit".into(),
                owner: "engine".into(),
                line: "6; 2615 33177 SCHEMA - audit engine".into(),
            }
        );
        assert_eq!(toc[1].desc, "ACL");
        assert_eq!(toc[1].name, "FUNCTION host_event_count(p_host_id bigint)");
        assert_eq!(toc[2].desc, "MATERIALIZED VIEW DATA");
        assert_eq!(toc[2].name, "host_event_stats_mv");
        assert_eq!((toc[3].desc.as_str(), toc[3].owner.as_str()), ("BLOBS", ""));
        assert_eq!(toc[4].name, "host_changes host_changes_pkey");
        assert_eq!(toc[5].desc, "TABLE DATA");
        assert!(parse_toc("garbage\n").is_err());
        let header = parse_toc_header(
            ";\n; Archive created at 2026-11-21 14:48:03 UTC\n;     dbname: engine\n\
             ;     TOC Entries: 110\n;     Compression: -1\n;     Dump Version: 1.14-0\n\
             ;     Format: CUSTOM\n\
             ;     Dumped from database version: 15.18 (Debian 15.18-0+deb12u1)\n\
             ;     Dumped by pg_dump version: 15.18 (Debian 15.18-0+deb12u1)\n",
        );
        assert_eq!(header.dbname, "engine");
        assert_eq!(header.toc_entries, 110);
        assert_eq!(header.compression, "-1");
        assert_eq!(header.dump_version, "1.14-0");
        assert_eq!(header.format, "CUSTOM");
        assert_eq!(header.dumped_by, "15.18 (Debian 15.18-0+deb12u1)");
    }

    #[test]
    fn skips_what_exists_in_the_target() {
        let target = TargetState {
            extensions: ["plpgsql".to_string(), "uuid-ossp".to_string()].into(),
            languages: ["plpgsql".to_string()].into(),
            has_public_schema: true,
        };
        let entry = |line: &str| parse_toc_line(line).unwrap();
        for line in [
            "5; 2615 2200 SCHEMA - public postgres",
            "3380; 0 0 COMMENT - SCHEMA public postgres",
            "2; 3079 16385 EXTENSION - uuid-ossp ",
            "3381; 0 0 COMMENT - EXTENSION \"uuid-ossp\" ",
            "3382; 0 0 COMMENT - EXTENSION plpgsql ",
            "7; 2612 13000 PROCEDURAL LANGUAGE - plpgsql postgres",
        ] {
            assert!(skip_reason(&entry(line), &target).is_some(), "{line}");
        }
        for line in [
            "6; 2615 33177 SCHEMA - audit engine",
            "3; 3079 16390 EXTENSION - citext ",
            "3509; 0 0 ACL - SCHEMA public engine",
            "218; 1259 16392 TABLE public clusters engine",
        ] {
            assert!(skip_reason(&entry(line), &target).is_none(), "{line}");
        }
        let no_public = TargetState {
            has_public_schema: false,
            ..TargetState::default()
        };
        assert!(skip_reason(&entry("5; 2615 2200 SCHEMA - public postgres"), &no_public).is_none());
    }

    fn filtered(dump: &str, restrict_key: Option<&str>) -> (String, Vec<String>) {
        let target = TargetState {
            extensions: ["plpgsql".to_string(), "uuid-ossp".to_string()].into(),
            languages: ["plpgsql".to_string()].into(),
            has_public_schema: true,
        };
        let filter = PlainFilter {
            target: &target,
            restrict_key,
        };
        let mut out = Vec::new();
        let copied = filter.copy(&mut dump.as_bytes(), &mut out).unwrap();
        (String::from_utf8(out).unwrap(), copied.skipped)
    }

    #[test]
    fn plain_filter_replaces_the_dumps_restrict_key_by_ours_and_never_touches_data() {
        let dump = "--\n-- PostgreSQL database dump\n--\n\n\\restrict abc123\n\nSET x = 0;\n\
                    COPY public.t (v) FROM stdin;\n\\restrict abc999\n\\.\n\n\\unrestrict abc123\n";
        let without = "--\n-- PostgreSQL database dump\n--\n\n\nSET x = 0;\n\
             COPY public.t (v) FROM stdin;\n\\restrict abc999\n\\.\n\n";
        let (out, skipped) = filtered(dump, None);
        assert_eq!(out, without);
        assert!(skipped.is_empty(), "{skipped:?}");
        let (out, _) = filtered(dump, Some("0f1e"));
        assert_eq!(out, format!("\\restrict 0f1e\n{without}"));
    }

    fn refused_line(dump: &str, restrict_key: Option<&str>) -> Option<(u64, String)> {
        let target = TargetState::default();
        let filter = PlainFilter {
            target: &target,
            restrict_key,
        };
        match filter.copy(&mut dump.as_bytes(), &mut Vec::new()) {
            Err(PlainCopyError::Hostile { line, text }) => Some((line, text)),
            Ok(_) => None,
            Err(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn plain_filter_refuses_meta_commands_outside_copy_data() {
        let key = Some("k");
        for (dump, line) in [
            ("SET x = 0;\n\\! touch /tmp/x\n", 2),
            ("  \\o /tmp/x\n", 1),
            ("\\restrict k\n\\unrestrict k\n\\unrestrict\n", 3),
            ("\\restrict bad-key\n", 1),
            // After COPY data ended by `\.` and a CR LF line end, as psql ends it.
            ("COPY t (v) FROM stdin;\n\\x\n\\.\r\n\\! id\n", 4),
        ] {
            assert_eq!(refused_line(dump, key).map(|r| r.0), Some(line), "{dump:?}");
        }
        // Mid-line: psql refuses it in restricted mode; without that mode no
        // backslash passes outside COPY data.
        let mid = "SELECT 1; \\! id\nCOPY t (v) FROM stdin;\na\\tb\n\\.\n";
        assert_eq!(refused_line(mid, key), None);
        assert_eq!(
            refused_line(mid, None),
            Some((1, "SELECT 1; \\! id".to_string()))
        );
        assert_eq!(
            refused_line("COPY t (v) FROM stdin;\na\\tb\n\\.\n", None),
            None
        );
    }

    #[test]
    fn plain_filter_sees_whether_the_dump_is_complete() {
        let target = TargetState::default();
        let filter = PlainFilter {
            target: &target,
            restrict_key: None,
        };
        let copy = |dump: &str| filter.copy(&mut dump.as_bytes(), &mut Vec::new()).unwrap();
        let complete = "SET x = 0;\n\n--\n-- PostgreSQL database dump complete\n--\n\n";
        assert!(copy(complete).complete);
        assert!(!copy("SET x = 0;\nCOPY t (v) FROM stdin;\n").complete);
        // The closing line inside COPY data is data, not the end of the dump.
        assert!(!copy("COPY t (v) FROM stdin;\n-- PostgreSQL database dump complete\n").complete);
    }

    #[test]
    fn plain_filter_skips_what_exists_in_the_target() {
        let dump = "--\n-- Name: uuid-ossp; Type: EXTENSION; Schema: -; Owner: -\n--\n\n\
            CREATE EXTENSION IF NOT EXISTS \"uuid-ossp\" WITH SCHEMA public;\n\n\
            --\n-- Name: EXTENSION \"uuid-ossp\"; Type: COMMENT; Schema: -; Owner: \n--\n\n\
            COMMENT ON EXTENSION \"uuid-ossp\" IS 'generate universally unique identifiers (UUIDs)';\n\n\
            --\n-- Name: EXTENSION citext; Type: COMMENT; Schema: -; Owner: \n--\n\n\
            COMMENT ON EXTENSION citext IS 'data type for case-insensitive character strings';\n\
            --\n-- Name: public; Type: SCHEMA; Schema: -; Owner: -\n--\n\n\
            CREATE SCHEMA public;\n\
            --\n-- Name: SCHEMA public; Type: COMMENT; Schema: -; Owner: -\n--\n\n\
            COMMENT ON SCHEMA public IS 'standard public schema';\n\
            --\n-- Name: f(); Type: FUNCTION; Schema: public; Owner: -\n--\n\n\
            CREATE FUNCTION public.f() RETURNS void AS '\n\
            COMMENT ON EXTENSION plpgsql IS ''x'';\n' LANGUAGE sql;\n";
        let (out, skipped) = filtered(dump, Some("k"));
        assert_eq!(
            skipped,
            [
                "COMMENT ON EXTENSION \"uuid-ossp\" IS 'generate universally unique identifiers (UUIDs)';",
                "CREATE SCHEMA public;",
                "COMMENT ON SCHEMA public IS 'standard public schema';",
            ]
        );
        assert!(out.contains("CREATE EXTENSION IF NOT EXISTS \"uuid-ossp\""));
        assert!(out.contains("COMMENT ON EXTENSION citext IS"));
        assert!(out.contains("COMMENT ON EXTENSION plpgsql IS ''x'';"));
    }

    #[test]
    fn reads_leading_identifiers() {
        assert_eq!(
            leading_identifier("\"uuid-ossp\" IS 'x'"),
            Some(("uuid-ossp".to_string(), " IS 'x'"))
        );
        assert_eq!(
            leading_identifier("\"a\"\"b\" IS"),
            Some(("a\"b".to_string(), " IS"))
        );
        assert_eq!(
            leading_identifier("citext IS"),
            Some(("citext".to_string(), " IS"))
        );
        assert_eq!(leading_identifier(" IS"), None);
        assert_eq!(leading_identifier("\"open"), None);
    }
}
