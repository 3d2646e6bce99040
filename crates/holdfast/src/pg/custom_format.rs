//! pg_dump's custom archive format read as it streams past: the header, the
//! table of contents and the data blocks, enough to fingerprint every table's
//! COPY rows while a backup writes the dump, without a second scan of the server.
//!
//! The layout (pg_dump's `pg_backup_archiver.c` and `pg_backup_custom.c`):
//! `PGDMP`, version bytes, integer and offset sizes, format; the compression
//! (an integer up to archive version 1.14, an algorithm byte from 1.15); the
//! creation time and three strings; the TOC entries; then, when the output is
//! not seekable (a pipe, as here), the data blocks in TOC order. An integer is
//! a sign byte and `int_size` little-endian bytes; a string is its length as
//! an integer (-1 for none) and the bytes. A data block is a type byte, the
//! entry's dump id, and chunks of (length, bytes) ending with length 0; a
//! large-object block holds (oid, chunks) pairs ending with oid 0.
//!
//! Only uncompressed archives (`-Z0`) are read: their table data is the text
//! of `COPY ... TO stdout`, one row per line, which [`RowSum`] hashes line by
//! line. Anything else is refused with [`Error::Invalid`], and the caller falls
//! back to fingerprints computed by the server.

use std::collections::BTreeMap;
use std::io::Read;

use xxhash_rust::xxh3::xxh3_64;

use crate::{Error, Result};

/// Prefix of a fingerprint made by [`RowSum`]: the wrapping sum of the xxh3-64
/// hash of every row's COPY text line, as 16 hex digits.
pub const ROW_SUM_PREFIX: &str = "xxh3sum:";

/// Archive versions whose layout this reader knows (1.12, PostgreSQL 9.5 to
/// 1.15, PostgreSQL 16).
const OLDEST: (u8, u8) = (1, 12);
const NEWEST: (u8, u8) = (1, 15);

/// Data block holding one TOC entry's data.
const BLK_DATA: u8 = 1;
/// Data block holding large objects.
const BLK_BLOBS: u8 = 3;

/// Order-independent fingerprint of a table's rows: their number and the
/// wrapping sum of a 64-bit hash of each row's text line (without its `\n`).
/// Equal multisets of rows give equal sums whatever the order they arrive in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowSum {
    /// Rows seen.
    pub rows: u64,
    /// Wrapping sum of `xxh3_64(line)`.
    pub sum: u64,
}

impl RowSum {
    /// Count and hash one row's COPY text line (without the newline).
    pub fn add_row(&mut self, line: &[u8]) {
        self.rows += 1;
        self.sum = self.sum.wrapping_add(xxh3_64(line));
    }

    /// `xxh3sum:` and the sum as 16 hex digits.
    pub fn fingerprint(&self) -> String {
        format!("{ROW_SUM_PREFIX}{:016x}", self.sum)
    }
}

/// Splits COPY text into lines across arbitrary chunk boundaries and feeds
/// each line to a [`RowSum`]. COPY's text format escapes newlines inside
/// values, so every `\n` ends a row. pg_dump ends a table's data with the
/// `\.` line of a script and two empty lines; nothing from `\.` on is a row
/// (a row's backslash is written `\\`, so no row reads `\.`).
#[derive(Debug, Default)]
pub struct RowSplitter {
    partial: Vec<u8>,
    sum: RowSum,
    ended: bool,
}

impl RowSplitter {
    /// Feed the next piece of COPY text.
    pub fn feed(&mut self, mut data: &[u8]) {
        while let Some(end) = memchr::memchr(b'\n', data) {
            if self.partial.is_empty() {
                self.add_line(&data[..end]);
            } else {
                self.partial.extend_from_slice(&data[..end]);
                let line = std::mem::take(&mut self.partial);
                self.add_line(&line);
                self.partial = line;
                self.partial.clear();
            }
            data = &data[end + 1..];
        }
        self.partial.extend_from_slice(data);
    }

    fn add_line(&mut self, line: &[u8]) {
        if self.ended {
            return;
        }
        if line == b"\\." {
            self.ended = true;
        } else {
            self.sum.add_row(line);
        }
    }

    /// The rows seen; a last line without its newline counts as a row.
    pub fn finish(mut self) -> RowSum {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.add_line(&line);
        }
        self.sum
    }
}

/// Row fingerprints of every table whose data an archive carries, by
/// (schema, table name).
pub type TableSums = BTreeMap<(String, String), RowSum>;

/// Read a whole uncompressed custom-format archive from `input` and
/// fingerprint the rows of every `TABLE DATA` entry. Reads `input` to its end
/// even after a large-object block, so a writer feeding it never blocks.
pub fn table_row_sums(input: impl Read) -> Result<TableSums> {
    let mut r = Reader {
        input,
        int_size: 0,
        off_size: 0,
    };
    let version = r.header(false)?;
    let tables: BTreeMap<i64, (String, String)> = r
        .toc(version)?
        .into_iter()
        .filter(|e| e.desc == "TABLE DATA")
        .map(|e| (i64::from(e.dump_id), (e.namespace, e.tag)))
        .collect();
    let mut sums = TableSums::new();
    while let Some(block) = r.byte_or_end()? {
        let id = r.int()?;
        match block {
            BLK_DATA => {
                let mut rows = RowSplitter::default();
                r.chunks(|data| rows.feed(data))?;
                if let Some(table) = tables.get(&id) {
                    sums.insert(table.clone(), rows.finish());
                }
            }
            BLK_BLOBS => loop {
                if r.int()? == 0 {
                    break;
                }
                r.chunks(|_| ())?;
            },
            other => {
                return Err(Error::invalid(format!(
                    "custom dump: unknown data block type {other} (entry {id})"
                )))
            }
        }
    }
    Ok(sums)
}

/// One entry of a custom dump's table of contents with what `pg_restore -l`
/// does not print: its section, its SQL and the entries it depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpEntry {
    /// What `pg_restore -L` selects by.
    pub dump_id: i32,
    /// `TABLE`, `INDEX`, `FK CONSTRAINT`, `ACL`, …
    pub desc: String,
    /// The object's name; for constraints, triggers, defaults and rules the
    /// table's name, a space and the object's (`t t_pkey`); for comments and
    /// ACLs the kind and the name (`TABLE t`).
    pub tag: String,
    /// Schema; empty for objects outside any.
    pub namespace: String,
    pub owner: String,
    /// [`SECTION_PRE_DATA`], [`SECTION_DATA`], [`SECTION_POST_DATA`], or 1 (none).
    pub section: i32,
    /// The SQL that creates it.
    pub defn: String,
    /// Dump ids of the entries it depends on.
    pub deps: Vec<i32>,
}

/// Definitions restored before the data (tables, types, functions, defaults).
pub const SECTION_PRE_DATA: i32 = 2;
/// Table data and sequence values.
pub const SECTION_DATA: i32 = 3;
/// Indexes, constraints, triggers.
pub const SECTION_POST_DATA: i32 = 4;

/// The table of contents of a custom-format archive, compressed or not (only
/// the header and the entries are read, not the data).
pub fn toc_entries(input: impl Read) -> Result<Vec<DumpEntry>> {
    let mut r = Reader {
        input,
        int_size: 0,
        off_size: 0,
    };
    let version = r.header(true)?;
    r.toc(version)
}

struct Reader<R> {
    input: R,
    int_size: usize,
    off_size: usize,
}

impl<R: Read> Reader<R> {
    fn exact(&mut self, buf: &mut [u8]) -> Result<()> {
        self.input.read_exact(buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::invalid("custom dump: the stream ends in the middle of a record")
            } else {
                Error::io("read the dump stream", e)
            }
        })
    }

    fn byte(&mut self) -> Result<u8> {
        let mut b = [0u8];
        self.exact(&mut b)?;
        Ok(b[0])
    }

    /// The next byte, or `None` at a clean end of the stream.
    fn byte_or_end(&mut self) -> Result<Option<u8>> {
        let mut b = [0u8];
        loop {
            return match self.input.read(&mut b) {
                Ok(0) => Ok(None),
                Ok(_) => Ok(Some(b[0])),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => Err(Error::io("read the dump stream", e)),
            };
        }
    }

    fn int(&mut self) -> Result<i64> {
        let negative = self.byte()? != 0;
        let mut value: i64 = 0;
        for i in 0..self.int_size {
            let b = self.byte()? as i64;
            if i < 8 {
                value |= b << (8 * i);
            }
        }
        Ok(if negative { -value } else { value })
    }

    fn string(&mut self) -> Result<Option<Vec<u8>>> {
        let len = self.int()?;
        if len < 0 {
            return Ok(None);
        }
        if len > 1 << 30 {
            return Err(Error::invalid(format!(
                "custom dump: a string of {len} bytes is not plausible"
            )));
        }
        let mut buf = vec![0u8; len as usize];
        self.exact(&mut buf)?;
        Ok(Some(buf))
    }

    fn text(&mut self) -> Result<String> {
        Ok(self
            .string()?
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default())
    }

    /// Check the header; returns the archive version (major, minor). Data
    /// compressed by pg_dump is refused unless `compressed_ok` (the table of
    /// contents is never compressed).
    fn header(&mut self, compressed_ok: bool) -> Result<(u8, u8)> {
        let mut magic = [0u8; 5];
        self.exact(&mut magic)?;
        if &magic != b"PGDMP" {
            return Err(Error::invalid("not a pg_dump custom-format archive"));
        }
        let version = (self.byte()?, self.byte()?);
        let _revision = self.byte()?;
        if version < OLDEST || version > NEWEST {
            return Err(Error::invalid(format!(
                "custom dump: archive version {}.{} is not one this reader knows",
                version.0, version.1
            )));
        }
        self.int_size = self.byte()? as usize;
        self.off_size = self.byte()? as usize;
        if !(1..=16).contains(&self.int_size) || !(1..=16).contains(&self.off_size) {
            return Err(Error::invalid("custom dump: implausible integer sizes"));
        }
        let format = self.byte()?;
        if format != 1 {
            return Err(Error::invalid(format!(
                "custom dump: archive format {format} is not the custom format"
            )));
        }
        let compressed = if version >= (1, 15) {
            self.byte()? != 0
        } else {
            self.int()? != 0
        };
        if compressed && !compressed_ok {
            return Err(Error::invalid(
                "custom dump: the data is compressed (only -Z0 dumps are read)",
            ));
        }
        for _ in 0..7 {
            self.int()?; // creation time: sec, min, hour, mday, mon, year, isdst
        }
        for _ in 0..3 {
            self.string()?; // database name, server version, pg_dump version
        }
        Ok(version)
    }

    /// The TOC entries, in the dump's order.
    fn toc(&mut self, version: (u8, u8)) -> Result<Vec<DumpEntry>> {
        let count = self.int()?;
        let mut entries = Vec::new();
        for _ in 0..count {
            let dump_id = self.int()? as i32;
            let _had_dumper = self.int()?;
            self.string()?; // table oid
            self.string()?; // oid
            let tag = self.text()?;
            let desc = self.text()?;
            let section = self.int()? as i32;
            let defn = self.text()?;
            for _ in 0..2 {
                self.string()?; // drop statement, copy statement
            }
            let namespace = self.text()?;
            self.string()?; // tablespace
            if version >= (1, 14) {
                self.string()?; // table access method
            }
            let owner = self.text()?;
            self.string()?; // "false" (WITH OIDS)
            let mut deps = Vec::new();
            while let Some(dep) = self.string()? {
                if let Some(id) = std::str::from_utf8(&dep).ok().and_then(|d| d.parse().ok()) {
                    deps.push(id);
                }
            }
            let _offset_state = self.byte()?;
            for _ in 0..self.off_size {
                self.byte()?;
            }
            entries.push(DumpEntry {
                dump_id,
                desc,
                tag,
                namespace,
                owner,
                section,
                defn,
                deps,
            });
        }
        Ok(entries)
    }

    /// Pass every chunk of one data stream to `each`, up to its zero length.
    fn chunks(&mut self, mut each: impl FnMut(&[u8])) -> Result<()> {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let len = self.int()?;
            if len == 0 {
                return Ok(());
            }
            if len < 0 {
                return Err(Error::invalid(format!(
                    "custom dump: negative chunk length {len}"
                )));
            }
            let mut left = len as u64;
            while left > 0 {
                let n = left.min(buf.len() as u64) as usize;
                self.exact(&mut buf[..n])?;
                each(&buf[..n]);
                left -= n as u64;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_split_the_same_whatever_the_chunks() {
        let text = b"1\talpha\n2\t\\N\n3\tx\\ny\n";
        let mut whole = RowSplitter::default();
        whole.feed(text);
        let whole = whole.finish();
        assert_eq!(whole.rows, 3);
        for cut in 0..text.len() {
            let mut parts = RowSplitter::default();
            parts.feed(&text[..cut]);
            parts.feed(&text[cut..]);
            assert_eq!(parts.finish(), whole, "cut at {cut}");
        }
    }

    #[test]
    fn the_sum_ignores_row_order_and_the_end_marker() {
        let mut a = RowSplitter::default();
        a.feed(b"1\ta\n2\tb\n");
        let mut b = RowSplitter::default();
        b.feed(b"2\tb\n1\ta\n\\.\n\n\n");
        assert_eq!(a.finish(), b.finish());
        let mut c = RowSplitter::default();
        c.feed(b"1\ta\n2\tc\n");
        let mut a = RowSplitter::default();
        a.feed(b"1\ta\n2\tb\n");
        assert_ne!(a.finish().fingerprint(), c.finish().fingerprint());
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert!(table_row_sums(&b"PGDMX"[..]).is_err());
        let mut head = b"PGDMP".to_vec();
        head.extend([1, 11, 0, 4, 8, 1]);
        let err = table_row_sums(&head[..]).unwrap_err().to_string();
        assert!(err.contains("version 1.11"), "{err}");
        assert!(table_row_sums(&b"PGD"[..]).is_err());
    }
}
