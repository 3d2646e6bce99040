//! Verify's reading of each dump: a custom dump's table of contents listed by
//! pg_restore, a plain dump read to pg_dump's closing line, the profile's
//! forbidden setting looked for in the rows of its table; and SQLite's own
//! integrity check for SQLite members.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crate::archive::{Codec, DumpFormat};
use crate::log::Log;
use crate::pg::{self, command::ClientCommand, PgTools};
use crate::profile::ForbiddenOption;
use crate::{Error, Result};

pub(super) fn check_dump(
    tools: &PgTools,
    path: &Path,
    format: DumpFormat,
    codec: Codec,
    forbidden: Option<&ForbiddenOption>,
    work: &Path,
    log: &Log,
) -> Result<()> {
    match format {
        DumpFormat::Custom => {
            let dump = codec.seekable_copy(path, work)?;
            let toc = pg::restore::list_toc(tools, &dump)?;
            log.line(&format!("{}: {} TOC entries", path.display(), toc.len()));
            if let Some(f) = forbidden {
                let (schema, table) = f.table.split_once('.').unwrap_or(("public", &f.table));
                let mut cmd = ClientCommand::offline(tools, "pg_restore");
                cmd.args(["-f", "-", "-a", "-n", schema, "-t", table])
                    .arg(&dump);
                let (finished, stdout) = cmd.output()?;
                if !finished.success() {
                    return Err(finished.failure("reading the data"));
                }
                scan_forbidden(&mut &stdout[..], f)?;
            }
            if dump != path {
                let _ = std::fs::remove_file(&dump);
            }
            Ok(())
        }
        DumpFormat::Plain => {
            let mut decoder = codec.open_decoded(path)?;
            let complete = scan_plain(&mut decoder, forbidden)?;
            if !complete {
                return Err(Error::invalid(
                    "the SQL script is incomplete (no 'PostgreSQL database dump complete' line)",
                ));
            }
            Ok(())
        }
    }
}

/// Read a plain dump to its end; true when pg_dump's closing line is there.
fn scan_plain(sql: &mut dyn Read, forbidden: Option<&ForbiddenOption>) -> Result<bool> {
    let mut reader = BufReader::with_capacity(1 << 20, sql);
    let mut complete = false;
    let mut copy: Option<CopyBlock> = None;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::invalid(format!("cannot read the SQL script: {e}")))?;
        if n == 0 {
            break;
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        if let Some(block) = &copy {
            if text == "\\." {
                copy = None;
            } else if let Some(f) = forbidden {
                block.check_row(text, f)?;
            }
            continue;
        }
        if text.starts_with("-- PostgreSQL database dump complete") {
            complete = true;
        }
        if let Some(f) = forbidden {
            copy = CopyBlock::start(text, f);
        }
    }
    Ok(complete)
}

fn scan_forbidden(sql: &mut dyn Read, f: &ForbiddenOption) -> Result<()> {
    scan_plain(sql, Some(f)).map(|_| ())
}

/// The columns of a `COPY <table> (...) FROM stdin;` block of the forbidden table.
struct CopyBlock {
    key: usize,
    value: usize,
}

impl CopyBlock {
    /// Matches `COPY public.vdc_options (…)` as pg_dump 15 writes it, and the
    /// unqualified `COPY vdc_options (…)` of older versions.
    fn start(line: &str, f: &ForbiddenOption) -> Option<CopyBlock> {
        let rest = line.strip_prefix("COPY ")?;
        let (name, rest) = rest.split_once(' ')?;
        let bare = f.table.rsplit('.').next().unwrap_or(&f.table);
        if name != f.table && name != bare {
            return None;
        }
        let cols = rest.strip_prefix('(')?.split_once(')')?.0;
        let cols: Vec<&str> = cols
            .split(',')
            .map(|c| c.trim().trim_matches('"'))
            .collect();
        Some(CopyBlock {
            key: cols.iter().position(|c| *c == f.key_column)?,
            value: cols.iter().position(|c| *c == f.value_column)?,
        })
    }

    fn check_row(&self, row: &str, f: &ForbiddenOption) -> Result<()> {
        let fields: Vec<&str> = row.split('\t').collect();
        let key = fields.get(self.key).copied().unwrap_or("");
        let value = fields.get(self.value).copied().unwrap_or("\\N");
        if key == f.forbidden_key && !value.is_empty() && value != "\\N" {
            return Err(Error::invalid(f.message.clone()));
        }
        Ok(())
    }
}

pub(super) fn check_sqlite(path: &Path) -> Result<()> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| {
                Error::invalid(format!("{}: not an SQLite database: {e}", path.display()))
            })?;
    let result: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| Error::invalid(format!("{}: {e}", path.display())))?;
    if result != "ok" {
        return Err(Error::invalid(format!(
            "{}: SQLite integrity check: {result}",
            path.display()
        )));
    }
    Ok(())
}
