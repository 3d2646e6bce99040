//! A base backup of a whole cluster: `pg_basebackup` in plain format with no
//! WAL (`-X none`: the WAL reaches the repository through `holdfast wal push`,
//! and the server waits until the backup's last segment is archived), and
//! what the server says about itself (system identifier, version, segment
//! size, tablespaces) for the snapshot's manifest.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::pg::{ClientCommand, ConnParams, PgTools};
use crate::wal::{format_lsn, parse_lsn, Segment};
use crate::{Error, Result};

/// What a base backup is: where its WAL starts and stops, on which timeline,
/// of which cluster and server version. Stored as `physical.json` beside the
/// data directory in the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseBackupInfo {
    pub start_lsn: String,
    pub stop_lsn: String,
    pub timeline: u32,
    /// The first segment recovery needs.
    pub start_segment: String,
    /// The segment holding the stop LSN: recovery is consistent once past it.
    pub stop_segment: String,
    pub system_identifier: String,
    pub server_version_num: u32,
    pub pg_major: u32,
    pub wal_segment_size: u64,
    /// The server's clock when the backup had ended (RFC 3339).
    pub backup_end: String,
    /// Directories of the data directory, relative, so that empty ones come back.
    #[serde(default)]
    pub directories: Vec<String>,
    /// Tablespaces outside the data directory, stored beside it.
    #[serde(default)]
    pub tablespaces: Vec<Tablespace>,
}

/// A tablespace outside the data directory: its files are stored under
/// their oid beside the data directory, and `pg_tblspc/<oid>` is made again
/// on restore to point where they are restored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tablespace {
    pub oid: u32,
    pub name: String,
    /// Where the server that was backed up keeps it.
    pub location: String,
    /// Its directories, relative, so that empty ones come back.
    #[serde(default)]
    pub directories: Vec<String>,
    /// Bytes of its files (the room a restore needs where it goes).
    #[serde(default)]
    pub bytes: u64,
}

/// What the server reports before a base backup.
#[derive(Debug, Clone)]
pub struct ServerFacts {
    pub system_identifier: String,
    pub server_version_num: u32,
    pub wal_segment_size: u64,
    /// Tablespaces outside the data directory (`directories` and `bytes` still empty).
    pub tablespaces: Vec<Tablespace>,
}

/// Ask the server at `sql` (a normal connection) what it is.
pub fn server_facts(sql: &ConnParams) -> Result<ServerFacts> {
    let mut client = crate::pg::connect(sql)?;
    let row = client
        .query_one(
            "SELECT (SELECT system_identifier FROM pg_control_system())::text, \
                    current_setting('server_version_num')::int, \
                    pg_size_bytes(current_setting('wal_segment_size'))::bigint",
            &[],
        )
        .map_err(|e| {
            Error::postgres(format!(
                "ask the server what it is: {}",
                crate::pg::error_text(&e)
            ))
        })?;
    // In-place tablespaces (a relative location) are directories of the data
    // directory and come with it.
    let tablespaces = client
        .query(
            "SELECT oid::int8, spcname::text, pg_tablespace_location(oid) FROM pg_tablespace \
             WHERE pg_tablespace_location(oid) LIKE '/%' ORDER BY oid",
            &[],
        )
        .map_err(|e| {
            Error::postgres(format!(
                "list the server's tablespaces: {}",
                crate::pg::error_text(&e)
            ))
        })?
        .iter()
        .map(|r| Tablespace {
            oid: r.get::<_, i64>(0) as u32,
            name: r.get(1),
            location: r.get(2),
            directories: Vec::new(),
            bytes: 0,
        })
        .collect();
    Ok(ServerFacts {
        system_identifier: row.get(0),
        server_version_num: row.get::<_, i32>(1) as u32,
        wal_segment_size: row.get::<_, i64>(2) as u64,
        tablespaces,
    })
}

/// The server's clock, RFC 3339.
pub fn server_now(sql: &ConnParams) -> Result<String> {
    let mut client = crate::pg::connect(sql)?;
    let row = client
        .query_one(
            "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
            &[],
        )
        .map_err(|e| Error::postgres(format!("read the server's clock: {}", crate::pg::error_text(&e))))?;
    Ok(row.get(0))
}

/// Run `pg_basebackup` into the new directory `dest` over the replication
/// connection `repl`, each tablespace's location (`relocate`: old, new)
/// written to the new place; returns the start and stop LSN and the timeline.
pub fn run(
    tools: &PgTools,
    repl: &ConnParams,
    dest: &Path,
    relocate: &[(String, std::path::PathBuf)],
) -> Result<(u64, u64, u32)> {
    let mut cmd = ClientCommand::connected(tools, "pg_basebackup", repl)?;
    cmd.arg("-D")
        .arg(dest)
        .args(["-F", "p", "-X", "none", "-c", "fast"])
        .args(["-l", "holdfast base backup"]);
    for (old, new) in relocate {
        // pg_basebackup's syntax: OLDDIR=NEWDIR, an '=' in either escaped.
        let escape = |p: &str| p.replace('=', "\\=");
        cmd.arg("-T").arg(format!(
            "{}={}",
            escape(old),
            escape(&new.to_string_lossy())
        ));
    }
    let (done, _) = cmd.output()?;
    if !done.success() {
        return Err(done.failure("base backup"));
    }
    wal_range(&dest.join("backup_manifest"))
}

/// The WAL range of a backup, from its `backup_manifest` (`WAL-Ranges`: with
/// `-X none` pg_basebackup prints neither point).
fn wal_range(manifest: &Path) -> Result<(u64, u64, u32)> {
    let unreadable = |why: String| {
        Error::failed(format!(
            "the base backup's {} is unreadable: {why}",
            manifest.display()
        ))
    };
    let bytes = std::fs::read(manifest).map_err(|e| unreadable(e.to_string()))?;
    let doc: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| unreadable(e.to_string()))?;
    let ranges = doc["WAL-Ranges"]
        .as_array()
        .filter(|r| !r.is_empty())
        .ok_or_else(|| unreadable("no WAL-Ranges".into()))?;
    // Ranges run from the newest timeline to the oldest: the backup started
    // on the last one listed and ended on the first.
    let first = &ranges[ranges.len() - 1];
    let last = &ranges[0];
    let lsn = |v: &serde_json::Value, key: &str| {
        v[key]
            .as_str()
            .and_then(|t| parse_lsn(t).ok())
            .ok_or_else(|| unreadable(format!("no {key}")))
    };
    let timeline = last["Timeline"]
        .as_u64()
        .ok_or_else(|| unreadable("no Timeline".into()))? as u32;
    Ok((lsn(first, "Start-LSN")?, lsn(last, "End-LSN")?, timeline))
}

impl BaseBackupInfo {
    /// Put together what pg_basebackup and the server reported.
    pub fn new(
        (start, stop, timeline): (u64, u64, u32),
        facts: &ServerFacts,
        backup_end: String,
        directories: Vec<String>,
    ) -> BaseBackupInfo {
        let size = facts.wal_segment_size.max(1);
        BaseBackupInfo {
            start_lsn: format_lsn(start),
            stop_lsn: format_lsn(stop),
            timeline,
            start_segment: Segment::of_lsn(timeline, start, size).to_string(),
            // The stop LSN's record may end exactly on a boundary: the segment before it.
            stop_segment: Segment::of_lsn(timeline, stop.saturating_sub(1), size).to_string(),
            system_identifier: facts.system_identifier.clone(),
            server_version_num: facts.server_version_num,
            pg_major: facts.server_version_num / 10000,
            wal_segment_size: facts.wal_segment_size,
            backup_end,
            directories,
            tablespaces: facts.tablespaces.clone(),
        }
    }
}
