//! Dumping one database for a backup: pg_dump in a snapshot that the
//! manifest's inspection shares, its stream compressed into the member file
//! and, for an uncompressed custom dump, read on the way for each table's row
//! fingerprint.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender};

use crate::archive::manifest::{
    DatabaseRecord, RoleAttributes, RolePassword, RoleRecord, RowTextRecord, SequenceRecord,
    TableRecord,
};
use crate::archive::DumpFormat as ArchivedFormat;
use crate::log::Log;
use crate::ops::workdir::create_private_file;
use crate::ops::DumpPlan;
use crate::pg::dump::{DumpFormat, DumpOptions};
use crate::pg::{self, custom_format};
use crate::progress::Progress;
use crate::{Error, Result};

use super::plan::DbJob;

/// pg_dump's options for a dump made as `plan` says, in `snapshot`.
fn dump_options(plan: &DumpPlan, snapshot: String) -> DumpOptions {
    DumpOptions {
        format: match plan.format {
            ArchivedFormat::Plain => DumpFormat::Plain,
            ArchivedFormat::Custom => DumpFormat::Custom,
        },
        compression: plan.pg_dump_compress.map(|c| c.min(9) as u8),
        snapshot: Some(snapshot),
        jobs: None,
    }
}

/// Dump one database in a snapshot that the manifest's inspection shares.
///
/// An uncompressed custom dump is also read as it streams past
/// ([`pg::custom_format`]): each table's row fingerprint comes from the rows
/// pg_dump sends, so the server scans the tables once. Relations the stream
/// carries no rows of (materialized views), and every relation of a dump in
/// another format, get a fingerprint computed by the server after the dump.
pub(super) fn dump_one(
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
    let options = dump_options(&job.settings, snapshot);
    let readable_stream = options.format == DumpFormat::Custom && options.compression == Some(0);
    log.line(&pg::dump::dump_command(&job.params, &job.tools, &options)?.describe());
    let (inspected, dumped) = std::thread::scope(|s| {
        let dumper = s.spawn(|| {
            let progress = log.progress(
                &format!("database '{}'", job.params.database),
                job.size_estimate,
            );
            dump_to_file(
                job,
                &options,
                readable_stream,
                level,
                threads,
                path,
                &progress,
            )
        });
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
    let (info, sequences, mut roles, row_text) = inspected?;
    let tables = table_records(&mut tx, stream_sums.as_ref())?;
    tx.commit().map_err(sql_err)?;
    if let Some(admin) = &job.admin {
        pg::roles::read_password_hashes(admin, &mut roles)?;
    }
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
        roles: roles.into_iter().map(role_record).collect(),
        tables,
        sequences,
        row_text: stream_sums.is_some().then_some(RowTextRecord {
            timezone: row_text.timezone,
            bytea_output: row_text.bytea_output,
        }),
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
    progress: &Progress,
) -> Result<(pg::dump::DumpReport, StreamSums)> {
    let file = create_private_file(path)?;
    let encoder =
        job.settings
            .codec
            .encoder(BufWriter::with_capacity(1 << 20, file), level, threads)?;
    std::thread::scope(|s| {
        let (copies, stream) = if fingerprint {
            let (sender, receiver) = std::sync::mpsc::sync_channel(4);
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
            pending: Vec::new(),
            progress,
        };
        let dumped = pg::dump::dump_database(&job.params, &job.tools, options, &mut tee);
        tee.send_pending();
        // Dropping the sender ends the fingerprinter's stream.
        let Tee {
            inner: encoder,
            copies,
            ..
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
/// thread, in blocks of [`COPY_BLOCK`]. Once that thread stops reading (a
/// stream it cannot parse), the copies stop and the dump goes on.
struct Tee<'p, W> {
    inner: W,
    copies: Option<SyncSender<Vec<u8>>>,
    /// Bytes not yet sent to the fingerprinter.
    pending: Vec<u8>,
    /// The dump's bar: bytes as pg_dump writes them.
    progress: &'p Progress,
}

/// The fingerprinter's bytes go over in blocks this large: one wake-up per
/// 256 KiB rather than per pipe read, with little memory in flight.
const COPY_BLOCK: usize = 256 << 10;

impl<W> Tee<'_, W> {
    /// Hand what is pending to the fingerprinter.
    fn send_pending(&mut self) {
        let block = std::mem::take(&mut self.pending);
        if block.is_empty() {
            return;
        }
        if let Some(copies) = &self.copies {
            if copies.send(block).is_err() {
                self.copies = None;
            }
        }
    }
}

impl<W: Write> Write for Tee<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.progress.advance(n as u64);
        if self.copies.is_some() {
            if self.pending.capacity() == 0 {
                self.pending.reserve(COPY_BLOCK);
            }
            self.pending.extend_from_slice(&buf[..n]);
            if self.pending.len() >= COPY_BLOCK {
                self.send_pending();
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
    Vec<pg::roles::RoleDef>,
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
    let roles = pg::roles::roles_needed(tx)?;
    Ok((info, sequences, roles, row_text))
}

/// A role as the manifest records it: what it was, and whether its
/// password could be read.
fn role_record(r: pg::roles::RoleDef) -> RoleRecord {
    // A stored value that is no SCRAM or md5 verifier is not recreated.
    let (password, hash) = match (r.password_hash.clone(), r.password_readable) {
        (Some(h), _) if pg::roles::is_password_hash(&h) => (RolePassword::Kept, Some(h)),
        (Some(_), _) | (None, false) => (RolePassword::NotRead, None),
        (None, true) => (RolePassword::None, None),
    };
    RoleRecord {
        sql: r.create_sql(),
        attributes: Some(RoleAttributes {
            login: r.login,
            superuser: r.superuser,
            createdb: r.createdb,
            createrole: r.createrole,
            inherit: r.inherit,
            replication: r.replication,
            bypassrls: r.bypassrls,
            connection_limit: r.connection_limit,
            valid_until: r.valid_until,
            member_of: r.member_of,
            password,
            password_hash: hash,
        }),
        name: r.name,
    }
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
