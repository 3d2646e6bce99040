//! Migrate's copy and proof: the source dumped in an exported snapshot
//! (parallel directory dump, gzip level 1) while the same snapshot's
//! checksums are taken, restored into the target in parallel jobs, then every
//! table, sequence and object compared.

use std::path::Path;
use std::process::Stdio;

use crate::log::Log;
use crate::pg::command::RunningCommand;
use crate::pg::dump::{DumpFormat, DumpOptions};
use crate::pg::inspect::{self, ObjectInventory, SequenceValue, TableChecksum};
use crate::pg::{self, ConnParams, PgTools};
use crate::{Error, Result};

use super::MigrateRequest;

/// One database's content as of one moment.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Content {
    tables: Vec<TableChecksum>,
    sequences: Vec<SequenceValue>,
    inventory: ObjectInventory,
}

/// The source's dump under way: pg_dump writing into a directory in the
/// snapshot `tx` exported, while the caller does other work. Dropped
/// unfinished, pg_dump is killed and the snapshot let go.
pub(super) struct SourceDump<'c> {
    // Fields drop in order: pg_dump is gone before its snapshot.
    running: RunningCommand,
    tx: postgres::Transaction<'c>,
    database: String,
}

/// Start dumping the source into the new directory `dir`, in a snapshot
/// exported from `src_client`.
pub(super) fn start_dump<'c>(
    req: &MigrateRequest,
    source: &ConnParams,
    tools: &PgTools,
    src_client: &'c mut postgres::Client,
    dir: &Path,
    log: &Log,
) -> Result<SourceDump<'c>> {
    let (tx, snapshot) = inspect::export_snapshot(src_client)?;
    let dump = pg::dump::directory_dump_command(
        source,
        tools,
        &DumpOptions {
            format: DumpFormat::Directory,
            compression: Some(1),
            snapshot: Some(snapshot),
            jobs: Some(req.jobs.get()),
        },
        dir,
    )?;
    log.line(&dump.describe());
    let running = dump.spawn(Stdio::null(), Stdio::null())?;
    Ok(SourceDump {
        running,
        tx,
        database: source.database.clone(),
    })
}

impl SourceDump<'_> {
    /// Take the snapshot's content (checksums, sequences, objects) while
    /// pg_dump finishes, and wait for it; returns that content.
    pub fn finish(mut self) -> Result<Content> {
        let content = content(&mut self.tx);
        let finished = self.running.wait()?;
        if !finished.success() {
            return Err(finished.failure(&format!("of the source database '{}'", self.database)));
        }
        let content = content?;
        self.tx
            .commit()
            .map_err(|e| Error::postgres(format!("source: {}", pg::error_text(&e))))?;
        Ok(content)
    }
}

/// Restore the dump in `dir` into the target, in parallel jobs.
pub(super) fn restore(req: &MigrateRequest, tools: &PgTools, dir: &Path, log: &Log) -> Result<()> {
    let report = pg::restore::restore_custom(
        &req.target,
        tools,
        dir,
        &pg::restore::RestoreOptions {
            jobs: req.jobs.get(),
            restore_permissions: true,
            restore_owners: true,
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
    Ok(())
}

pub(super) fn content(client: &mut impl inspect::Snapshot) -> Result<Content> {
    Ok(Content {
        tables: inspect::table_fingerprints(client)?,
        sequences: inspect::sequences(client)?,
        inventory: inspect::object_inventory(client)?,
    })
}

/// Print and log the comparison; an error when anything differs.
pub(super) fn compare(source: &Content, target: &Content, log: &Log) -> Result<usize> {
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
