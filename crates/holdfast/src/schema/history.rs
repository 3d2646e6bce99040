//! The `schema_version` table (oVirt's columns, so an oVirt database continues
//! where it is) and holdfast's record of the last rebuild of views and procedures.

use postgres::Client;

use super::script::Version;
use crate::pg::error_text;
use crate::{Error, Result};

/// oVirt's `schema_version` definition (`create_tables.sql`), for layouts whose
/// base does not create it.
const CREATE_HISTORY: &str = "
CREATE SEQUENCE IF NOT EXISTS public.schema_version_seq INCREMENT BY 1 START WITH 1;
CREATE TABLE IF NOT EXISTS public.schema_version (
    id integer DEFAULT nextval('public.schema_version_seq'::regclass) NOT NULL,
    version character varying(10) NOT NULL,
    script character varying(255) NOT NULL,
    checksum character varying(128),
    installed_by character varying(63) NOT NULL,
    started_at timestamp without time zone DEFAULT now(),
    ended_at timestamp without time zone,
    state character varying(15) NOT NULL,
    current boolean NOT NULL,
    comment text DEFAULT ''::text,
    CONSTRAINT schema_version_primary_key PRIMARY KEY (id)
);";

/// holdfast's own bookkeeping lives in a schema of its own, so that the
/// application's schema holds exactly what its scripts create (as after schema.sh).
pub const STATE_SCHEMA: &str = "holdfast";

/// One digest per database: the tree digest of the last successful upgrade or
/// rebuild.
const CREATE_REBUILD_STATE: &str = "
CREATE SCHEMA IF NOT EXISTS holdfast;
CREATE TABLE IF NOT EXISTS holdfast.schema_state (
    digest character varying(32) NOT NULL,
    recorded_at timestamp without time zone NOT NULL DEFAULT now()
);
DROP TABLE IF EXISTS public.holdfast_schema_state;";

/// `INSTALLED` or `SKIPPED`, as oVirt writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Installed,
    Skipped,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Installed => "INSTALLED",
            State::Skipped => "SKIPPED",
        }
    }
}

/// One row of `schema_version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub id: i32,
    /// `None` when the stored text is not an 8-digit version.
    pub version: Option<Version>,
    pub version_text: String,
    pub script: String,
    pub checksum: Option<String>,
    pub installed_by: String,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub state: String,
    pub current: bool,
    pub comment: String,
}

impl Row {
    /// Whether the row counts as applied (`INSTALLED` or `SKIPPED`).
    pub fn is_applied(&self) -> bool {
        matches!(self.state.as_str(), "INSTALLED" | "SKIPPED")
    }
}

/// The whole history, oldest first, and the current version.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub rows: Vec<Row>,
}

impl History {
    /// The version of the row marked current, else the highest applied version.
    pub fn current(&self) -> Option<Version> {
        self.rows
            .iter()
            .filter(|r| r.current)
            .find_map(|r| r.version)
            .or_else(|| {
                self.rows
                    .iter()
                    .filter(|r| r.is_applied())
                    .filter_map(|r| r.version)
                    .max()
            })
    }

    /// The applied row of `version`, if any.
    pub fn applied(&self, version: Version) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.is_applied() && r.version == Some(version))
    }

    /// The version of an `INSTALLED` row whose checksum is `checksum`.
    pub fn installed_with_checksum(&self, checksum: &str) -> Option<Version> {
        self.rows
            .iter()
            .filter(|r| r.state == "INSTALLED")
            .find(|r| r.checksum.as_deref() == Some(checksum))
            .and_then(|r| r.version)
    }
}

/// Whether `public.schema_version` exists.
pub fn exists(client: &mut Client) -> Result<bool> {
    let row = query_one(
        client,
        "SELECT to_regclass('public.schema_version') IS NOT NULL",
    )?;
    Ok(row.get(0))
}

/// Create the history table if the base did not.
pub fn ensure(client: &mut Client) -> Result<()> {
    batch(client, CREATE_HISTORY)
}

/// Read every row, oldest first (empty if the table does not exist).
pub fn read(client: &mut Client) -> Result<History> {
    if !exists(client)? {
        return Ok(History::default());
    }
    let rows = client
        .query(
            "SELECT id, version, script, checksum, installed_by, \
             to_char(started_at, 'YYYY-MM-DD HH24:MI:SS'), to_char(ended_at, 'YYYY-MM-DD HH24:MI:SS'), \
             state, current, coalesce(comment, '') FROM public.schema_version ORDER BY id",
            &[],
        )
        .map_err(|e| sql_error("read schema_version", &e))?;
    Ok(History {
        rows: rows
            .iter()
            .map(|r| {
                let version_text: String = r.get(1);
                Row {
                    id: r.get(0),
                    version: Version::parse(&version_text),
                    version_text: version_text.trim().to_string(),
                    script: r.get(2),
                    checksum: r.get(3),
                    installed_by: r.get(4),
                    started_at: r.get(5),
                    ended_at: r.get(6),
                    state: r.get(7),
                    current: r.get(8),
                    comment: r.get(9),
                }
            })
            .collect(),
    })
}

/// What one applied script leaves in the history.
pub struct Entry<'a> {
    pub version: Version,
    pub script: &'a str,
    pub checksum: &'a str,
    pub state: State,
    pub comment: &'a str,
    /// Database clock when the script started (`clock_timestamp()`), as text.
    pub started_at: &'a str,
}

/// The database clock, for [`Entry::started_at`].
pub fn clock(client: &mut Client) -> Result<String> {
    let row = query_one(client, "SELECT clock_timestamp()::timestamp::text")?;
    Ok(row.get(0))
}

/// Insert one row (`current` false; see [`set_current`]).
pub fn record(client: &mut Client, e: &Entry) -> Result<()> {
    client
        .execute(
            "INSERT INTO public.schema_version \
             (version, script, checksum, installed_by, started_at, ended_at, state, current, comment) \
             VALUES ($1, $2, $3, current_user, $4::text::timestamp, clock_timestamp()::timestamp, $5, false, $6)",
            &[
                &e.version.to_string(),
                &e.script,
                &e.checksum,
                &e.started_at,
                &e.state.as_str(),
                &e.comment,
            ],
        )
        .map_err(|err| sql_error(&format!("record {} in schema_version", e.script), &err))?;
    Ok(())
}

/// Mark the applied row with the highest version (newest id among equals) current.
pub fn set_current(client: &mut Client) -> Result<()> {
    batch(
        client,
        "UPDATE public.schema_version SET current = (id = (
             SELECT id FROM public.schema_version
             WHERE state IN ('INSTALLED', 'SKIPPED') AND trim(version) ~ '^[0-9]+$'
             ORDER BY trim(version)::bigint DESC, id DESC LIMIT 1))
         WHERE current IS DISTINCT FROM (id = (
             SELECT id FROM public.schema_version
             WHERE state IN ('INSTALLED', 'SKIPPED') AND trim(version) ~ '^[0-9]+$'
             ORDER BY trim(version)::bigint DESC, id DESC LIMIT 1))",
    )
}

/// Take a changed file's checksum as the truth for `version`, noting the old one.
pub fn accept_checksum(client: &mut Client, version: Version, old: &str, new: &str) -> Result<()> {
    client
        .execute(
            "UPDATE public.schema_version SET checksum = $2, \
             comment = trim(coalesce(comment, '') || ' ' || $3) \
             WHERE trim(version) = $1 AND state IN ('INSTALLED', 'SKIPPED')",
            &[
                &version.to_string(),
                &new,
                &format!("[changed file accepted; checksum was {old}]"),
            ],
        )
        .map_err(|e| sql_error("update schema_version", &e))?;
    Ok(())
}

/// The digest recorded by the last run, if any (also from the table older
/// holdfast versions kept in `public`).
pub fn recorded_digest(client: &mut Client) -> Result<Option<String>> {
    for table in ["holdfast.schema_state", "public.holdfast_schema_state"] {
        let exists: bool = query_one(
            client,
            &format!("SELECT to_regclass('{table}') IS NOT NULL"),
        )?
        .get(0);
        if !exists {
            continue;
        }
        let rows = client
            .query(
                &format!("SELECT digest FROM {table} ORDER BY recorded_at DESC LIMIT 1"),
                &[],
            )
            .map_err(|e| sql_error(&format!("read {table}"), &e))?;
        return Ok(rows.first().map(|r| r.get(0)));
    }
    Ok(None)
}

/// Record the digest of the tree the database now matches.
pub fn record_digest(client: &mut Client, digest: &str) -> Result<()> {
    batch(client, CREATE_REBUILD_STATE)?;
    batch(client, "DELETE FROM holdfast.schema_state")?;
    client
        .execute(
            "INSERT INTO holdfast.schema_state (digest) VALUES ($1)",
            &[&digest],
        )
        .map_err(|e| sql_error("write holdfast.schema_state", &e))?;
    Ok(())
}

/// Forget the recorded digest, so that the next apply rebuilds views and
/// procedures and runs the pre- and post-upgrade scripts again (as schema.sh's
/// next apply does after a refresh).
pub fn forget_digest(client: &mut Client) -> Result<()> {
    batch(
        client,
        "DROP TABLE IF EXISTS public.holdfast_schema_state; \
         DO $$ BEGIN IF to_regclass('holdfast.schema_state') IS NOT NULL THEN \
           DELETE FROM holdfast.schema_state; END IF; END $$",
    )
}

/// Drop holdfast's bookkeeping schema (with `schema drop`).
pub fn drop_state(client: &mut Client) -> Result<()> {
    batch(
        client,
        "DROP SCHEMA IF EXISTS holdfast CASCADE; DROP TABLE IF EXISTS public.holdfast_schema_state",
    )
}

fn query_one(client: &mut Client, sql: &str) -> Result<postgres::Row> {
    client
        .query_one(sql, &[])
        .map_err(|e| sql_error("inspect the database", &e))
}

fn batch(client: &mut Client, sql: &str) -> Result<()> {
    client
        .batch_execute(sql)
        .map_err(|e| sql_error("update the schema history", &e))
}

fn sql_error(what: &str, e: &postgres::Error) -> Error {
    Error::postgres(format!("cannot {what}: {}", error_text(e)))
}
