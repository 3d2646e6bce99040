//! What a database holds, for `verify --deep`, tests and migrate: per-table
//! content checksums, sequence values, large objects, an inventory of objects,
//! the emptiness check before a restore, and facts about the database itself.
//! Fingerprints come in two kinds ([`FingerprintKind`]): summed by the server,
//! or summed here over the rows' COPY text as a backup's dump stream carries it.
//!
//! Every query reads the catalogs of the connected database; user objects are
//! those outside `pg_catalog`, `information_schema` and the `pg_toast`/`pg_temp`
//! schemas, and not members of an extension.

use postgres::{Client, GenericClient, IsolationLevel, Transaction};

use std::io::Read;

use crate::pg::custom_format::{RowSplitter, ROW_SUM_PREFIX};
use crate::pg::error_text;
use crate::pg::sql::qualified;
use crate::{Error, Result};

/// Condition on `n` (a `pg_namespace` row) that keeps user schemas only.
const USER_SCHEMA: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema') \
     AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'";

/// Settings under which a row's text form is the same on every server and
/// client: the fixture README's checksum definition.
const CHECKSUM_SETTINGS: &str = "SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, MDY'; \
     SET LOCAL IntervalStyle = 'postgres'; SET LOCAL bytea_output = 'hex'; \
     SET LOCAL extra_float_digits = 1";

/// Checksum reported for a materialized view that was never populated (it
/// cannot be read; restoring a dump keeps it unpopulated).
pub const UNPOPULATED: &str = "unpopulated";

/// Kind of a relation whose rows are checksummed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RelationKind {
    /// An ordinary table (`relkind` `r`).
    Table,
    /// A materialized view (`relkind` `m`).
    MaterializedView,
}

/// Row count and content checksum of one table or materialized view.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableChecksum {
    /// Schema name, unquoted.
    pub schema: String,
    /// Relation name, unquoted.
    pub name: String,
    /// Table or materialized view.
    pub kind: RelationKind,
    /// `count(*)`.
    pub rows: i64,
    /// `md5` of the rows' text forms, sorted bytewise and joined with `|`
    /// (`d41d8cd98f00b204e9800998ecf8427e` for no rows), or [`UNPOPULATED`].
    pub checksum: String,
}

/// One sequence's state.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SequenceValue {
    /// Schema name, unquoted.
    pub schema: String,
    /// Sequence name, unquoted.
    pub name: String,
    /// `last_value` of the sequence.
    pub last_value: i64,
    /// Whether `last_value` was already handed out (`nextval` returns the next one).
    pub is_called: bool,
}

/// One large object's content.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LargeObject {
    /// The large object's OID (kept by dump and restore).
    pub oid: u32,
    /// Length in bytes.
    pub length: i64,
    /// md5 of the content, hex.
    pub md5: String,
}

/// The objects of a database as sorted lists of descriptions, enough to say
/// whether two databases have the same schema, owners and grants. OIDs are
/// never part of a description, so a restored copy compares equal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectInventory {
    /// User schemas (`public` included).
    pub schemas: Vec<String>,
    /// `schema.name` of ordinary and partitioned tables.
    pub tables: Vec<String>,
    /// `schema.name` of views.
    pub views: Vec<String>,
    /// `schema.name` of materialized views.
    pub matviews: Vec<String>,
    /// `schema.name` of sequences.
    pub sequences: Vec<String>,
    /// `schema.name` of foreign tables.
    pub foreign_tables: Vec<String>,
    /// Enum, domain, range and standalone composite types.
    pub types: Vec<String>,
    /// `schema.name(identity arguments) kind` of functions, procedures, aggregates.
    pub functions: Vec<String>,
    /// `schema.index: definition`.
    pub indexes: Vec<String>,
    /// `schema.table constraint: definition` (and domain constraints).
    pub constraints: Vec<String>,
    /// `schema.table trigger: definition`.
    pub triggers: Vec<String>,
    /// `schema.table policy: command roles`.
    pub policies: Vec<String>,
    /// `<kind> <object>: <aclitem>` for every privilege granted on the database,
    /// its schemas, relations, columns, functions, types, large objects, and
    /// default privileges.
    pub grants: Vec<String>,
    /// `<kind> <object>: <owner>` for the database and every object above.
    pub owners: Vec<String>,
    /// Number of comments on objects of this database (and on the database).
    pub comments: i64,
}

/// The connected database and its server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseInfo {
    /// Database name.
    pub name: String,
    /// Owning role.
    pub owner: String,
    /// `150018` for 15.18.
    pub server_version_num: i32,
    /// As the server reports it (`15.18 (Debian 15.18-0+deb12u1)`).
    pub server_version: String,
    /// Database encoding (`UTF8`).
    pub encoding: String,
    /// `LC_COLLATE` of the database.
    pub collate: String,
    /// `LC_CTYPE` of the database.
    pub ctype: String,
    /// Installed extensions and their versions, sorted by name.
    pub extensions: Vec<(String, String)>,
}

fn pg_error(what: &str) -> impl Fn(postgres::Error) -> Error + '_ {
    move |e| Error::postgres(format!("{what}: {}", error_text(&e)))
}

/// `md5(coalesce(string_agg(t::text, '|' ORDER BY t::text COLLATE "C"), ''))`
/// and `count(*)` of one table, with the digest computed here as the sorted rows
/// stream in: the same value as that query, without its 1 GB limit (a text
/// value cannot be larger, so the query fails on big tables).
fn stream_checksum(tx: &mut Transaction<'_>, schema: &str, name: &str) -> Result<(i64, String)> {
    use md5::{Digest, Md5};
    let what = format!("checksum {schema}.{name}");
    let sql = format!(
        "SELECT t::text FROM {} t ORDER BY t::text COLLATE \"C\"",
        qualified(schema, name)
    );
    let no_params: [&(dyn postgres::types::ToSql + Sync); 0] = [];
    let mut rows = tx
        .query_raw(sql.as_str(), no_params)
        .map_err(pg_error(&what))?;
    let mut digest = Md5::new();
    let mut count: i64 = 0;
    while let Some(row) =
        postgres::fallible_iterator::FallibleIterator::next(&mut rows).map_err(pg_error(&what))?
    {
        if count > 0 {
            digest.update(b"|");
        }
        let text: Option<&str> = row.get(0);
        digest.update(text.unwrap_or("").as_bytes());
        count += 1;
    }
    Ok((count, hex::encode(digest.finalize())))
}

/// Open a read-only repeatable-read transaction and export its snapshot, so
/// that pg_dump (`--snapshot`) and this session's inspection see the same
/// moment; the snapshot stays valid while the transaction is open.
pub fn export_snapshot(client: &mut Client) -> Result<(Transaction<'_>, String)> {
    let mut tx = client.snapshot()?;
    let name: String = tx
        .query_one("SELECT pg_export_snapshot()", &[])
        .map_err(pg_error("export a snapshot"))?
        .get(0);
    Ok((tx, name))
}

/// A connection that can read every table as of one moment: a client opens a
/// read-only repeatable-read transaction; an open transaction (a backup's, whose
/// snapshot pg_dump shares) opens a savepoint and keeps its own snapshot.
pub trait Snapshot: GenericClient {
    fn snapshot(&mut self) -> Result<Transaction<'_>>;
}

impl Snapshot for Client {
    fn snapshot(&mut self) -> Result<Transaction<'_>> {
        self.build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(pg_error("start a read-only transaction"))
    }
}

impl Snapshot for Transaction<'_> {
    fn snapshot(&mut self) -> Result<Transaction<'_>> {
        self.transaction().map_err(pg_error("start a savepoint"))
    }
}

/// Row count and checksum of every user table and materialized view, sorted by
/// schema and name (bytewise), computed in one snapshot.
pub fn table_checksums(client: &mut impl Snapshot) -> Result<Vec<TableChecksum>> {
    per_table(client, stream_checksum)
}

/// Row count and an order-independent fingerprint of every user table and
/// materialized view (`h64:` and the sum of a 64-bit hash of each row's text),
/// computed by the server in one scan without sorting: what migrate compares,
/// what backups recorded in their manifest before [`FingerprintKind::RowSum`],
/// and what they still record for relations a dump carries no rows of
/// (materialized views). Much cheaper than [`table_checksums`] on big tables;
/// like any hash sum it proves equality of content, not order. Equal servers
/// of the same architecture agree.
pub fn table_fingerprints(client: &mut impl Snapshot) -> Result<Vec<TableChecksum>> {
    per_table(client, server_fingerprint)
}

/// How [`table_fingerprints`] marks its values.
pub const FINGERPRINT_PREFIX: &str = "h64:";

/// How a table's fingerprint was computed; the prefix of the value says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FingerprintKind {
    /// `h64:`: summed by the server ([`table_fingerprints`]).
    ServerHash,
    /// `xxh3sum:`: summed by the client over the rows' COPY text lines, from
    /// the dump stream at backup time ([`crate::pg::custom_format`]) or from
    /// `COPY ... TO STDOUT` ([`copy_row_sum`]).
    RowSum,
}

impl FingerprintKind {
    /// The kind of a recorded fingerprint, `None` for one this code cannot
    /// compute (a whole-table md5 of [`table_checksums`], [`UNPOPULATED`]).
    pub fn of(fingerprint: &str) -> Option<FingerprintKind> {
        if fingerprint.starts_with(FINGERPRINT_PREFIX) {
            Some(FingerprintKind::ServerHash)
        } else if fingerprint.starts_with(ROW_SUM_PREFIX) {
            Some(FingerprintKind::RowSum)
        } else {
            None
        }
    }
}

/// The settings of pg_dump's session that shape the COPY text of a row and
/// that pg_dump leaves at the role's and database's defaults. pg_dump itself
/// sets DateStyle ISO, IntervalStyle postgres, extra_float_digits 3 and the
/// client encoding (holdfast dumps with `-E UTF8`); [`copy_row_sum`] sets the
/// same. `lc_monetary` (the `money` type) is not carried.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RowTextSettings {
    /// `TimeZone`: how `timestamptz` values are written.
    pub timezone: String,
    /// `bytea_output`: `hex` or `escape`.
    pub bytea_output: String,
}

impl Default for RowTextSettings {
    fn default() -> RowTextSettings {
        RowTextSettings {
            timezone: "UTC".into(),
            bytea_output: "hex".into(),
        }
    }
}

/// The [`RowTextSettings`] of the connected session: those a pg_dump that
/// connects as the same role to the same database gets.
pub fn row_text_settings(client: &mut impl GenericClient) -> Result<RowTextSettings> {
    let row = client
        .query_one(
            "SELECT current_setting('TimeZone'), current_setting('bytea_output')",
            &[],
        )
        .map_err(pg_error("read the session settings"))?;
    Ok(RowTextSettings {
        timezone: row.get(0),
        bytea_output: row.get(1),
    })
}

/// Row count and [`RowSum`] fingerprint of one table, from `COPY ... TO STDOUT`
/// in pg_dump's text settings: the value a backup computed from its dump
/// stream for the same rows.
pub fn copy_row_sum(
    tx: &mut Transaction<'_>,
    settings: &RowTextSettings,
    schema: &str,
    name: &str,
) -> Result<(i64, String)> {
    let what = format!("fingerprint {schema}.{name}");
    tx.batch_execute(
        "SET LOCAL DateStyle = 'ISO'; SET LOCAL IntervalStyle = 'postgres'; \
         SET LOCAL extra_float_digits = 3",
    )
    .map_err(pg_error("set pg_dump's settings"))?;
    tx.execute(
        "SELECT set_config('TimeZone', $1, true), set_config('bytea_output', $2, true)",
        &[&settings.timezone, &settings.bytea_output],
    )
    .map_err(pg_error("set the dump's time zone and bytea output"))?;
    let mut reader = tx
        .copy_out(format!("COPY {} TO STDOUT", qualified(schema, name)).as_str())
        .map_err(pg_error(&what))?;
    let mut rows = RowSplitter::default();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| Error::io(what.clone(), e))?;
        if n == 0 {
            break;
        }
        rows.feed(&buf[..n]);
    }
    drop(reader);
    let sum = rows.finish();
    Ok((sum.rows as i64, sum.fingerprint()))
}

/// `h64:` fingerprint and row count of one relation, computed by the server
/// under the checksum settings.
fn server_fingerprint(tx: &mut Transaction<'_>, schema: &str, name: &str) -> Result<(i64, String)> {
    let what = format!("fingerprint {schema}.{name}");
    tx.batch_execute(CHECKSUM_SETTINGS)
        .map_err(pg_error("set the checksum settings"))?;
    let row = tx
        .query_one(
            &format!(
                "SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)::numeric), 0)::text FROM {} t",
                qualified(schema, name)
            ),
            &[],
        )
        .map_err(pg_error(&what))?;
    Ok((
        row.get(0),
        format!("{FINGERPRINT_PREFIX}{}", row.get::<_, String>(1)),
    ))
}

/// Fingerprints of every user table and materialized view, each of the kind
/// `kind` picks (given schema, name and relation kind): what deep verify
/// computes to compare with a manifest. Materialized views can only be
/// [`FingerprintKind::ServerHash`] (COPY does not read them); asking for
/// [`FingerprintKind::RowSum`] of one gives its server hash.
pub fn table_fingerprints_of_kind(
    client: &mut impl Snapshot,
    settings: &RowTextSettings,
    kind: impl Fn(&str, &str, RelationKind) -> FingerprintKind,
) -> Result<Vec<TableChecksum>> {
    per_relation(client, |tx, schema, name, relation| {
        match (kind(schema, name, relation), relation) {
            (FingerprintKind::RowSum, RelationKind::Table) => {
                copy_row_sum(tx, settings, schema, name)
            }
            _ => server_fingerprint(tx, schema, name),
        }
    })
}

/// Fingerprints of every user table and materialized view where `known` has
/// one (what a backup took from its dump stream), and the server's `h64:` for
/// the rest, in one snapshot.
pub fn table_fingerprints_completing(
    client: &mut impl Snapshot,
    known: impl Fn(&str, &str) -> Option<(i64, String)>,
) -> Result<Vec<TableChecksum>> {
    per_relation(client, |tx, schema, name, _| match known(schema, name) {
        Some(found) => Ok(found),
        None => server_fingerprint(tx, schema, name),
    })
}

/// Every user table and materialized view with what `measure` says of it, in
/// one snapshot, sorted by schema and name.
fn per_table(
    client: &mut impl Snapshot,
    measure: impl Fn(&mut Transaction<'_>, &str, &str) -> Result<(i64, String)>,
) -> Result<Vec<TableChecksum>> {
    per_relation(client, |tx, schema, name, _| measure(tx, schema, name))
}

/// [`per_table`], telling `measure` the relation's kind too.
fn per_relation(
    client: &mut impl Snapshot,
    measure: impl Fn(&mut Transaction<'_>, &str, &str, RelationKind) -> Result<(i64, String)>,
) -> Result<Vec<TableChecksum>> {
    let mut tx = client.snapshot()?;
    tx.batch_execute(CHECKSUM_SETTINGS)
        .map_err(pg_error("set the checksum settings"))?;
    let relations = tx
        .query(
            &format!(
                "SELECT n.nspname::text, c.relname::text, c.relkind = 'm', c.relispopulated \
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                  WHERE c.relkind IN ('r', 'm') AND {USER_SCHEMA} \
                  ORDER BY n.nspname COLLATE \"C\", c.relname COLLATE \"C\""
            ),
            &[],
        )
        .map_err(pg_error("list tables"))?;
    let mut sums = Vec::with_capacity(relations.len());
    for row in relations {
        let (schema, name): (String, String) = (row.get(0), row.get(1));
        let kind = if row.get(2) {
            RelationKind::MaterializedView
        } else {
            RelationKind::Table
        };
        let populated: bool = row.get(3);
        let (rows, checksum) = if populated {
            measure(&mut tx, &schema, &name, kind)?
        } else {
            (0, UNPOPULATED.to_string())
        };
        sums.push(TableChecksum {
            schema,
            name,
            kind,
            rows,
            checksum,
        });
    }
    tx.commit().map_err(pg_error("end the transaction"))?;
    Ok(sums)
}

/// `last_value` and `is_called` of every user sequence, sorted by schema and name.
pub fn sequences(client: &mut impl Snapshot) -> Result<Vec<SequenceValue>> {
    let mut tx = client.snapshot()?;
    let names = tx
        .query(
            &format!(
                "SELECT n.nspname::text, c.relname::text \
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                  WHERE c.relkind = 'S' AND {USER_SCHEMA} \
                  ORDER BY n.nspname COLLATE \"C\", c.relname COLLATE \"C\""
            ),
            &[],
        )
        .map_err(pg_error("list sequences"))?;
    let mut values = Vec::with_capacity(names.len());
    for row in names {
        let (schema, name): (String, String) = (row.get(0), row.get(1));
        let state = tx
            .query_one(
                &format!(
                    "SELECT last_value, is_called FROM {}",
                    qualified(&schema, &name)
                ),
                &[],
            )
            .map_err(pg_error(&format!("read sequence {schema}.{name}")))?;
        values.push(SequenceValue {
            schema,
            name,
            last_value: state.get(0),
            is_called: state.get(1),
        });
    }
    tx.commit().map_err(pg_error("end the transaction"))?;
    Ok(values)
}

/// Every large object's oid, length and md5, sorted by oid.
pub fn large_objects(client: &mut impl Snapshot) -> Result<Vec<LargeObject>> {
    let rows = client
        .query(
            "SELECT m.oid, length(lo_get(m.oid))::bigint, md5(lo_get(m.oid)) \
               FROM pg_largeobject_metadata m ORDER BY m.oid",
            &[],
        )
        .map_err(pg_error("read large objects"))?;
    Ok(rows
        .iter()
        .map(|r| LargeObject {
            oid: r.get(0),
            length: r.get(1),
            md5: r.get(2),
        })
        .collect())
}

/// Object, not a member of an extension: `NOT EXISTS` on `pg_depend` for a
/// catalog and an oid column.
fn not_in_extension(catalog: &str, oid: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{catalog}'::regclass \
         AND d.objid = {oid} AND d.deptype = 'e')"
    )
}

fn text_list(client: &mut impl GenericClient, what: &str, sql: &str) -> Result<Vec<String>> {
    let mut list: Vec<String> = client
        .query(sql, &[])
        .map_err(pg_error(&format!("list {what}")))?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    list.sort();
    Ok(list)
}

/// Inventory of the user objects of the connected database.
pub fn object_inventory(client: &mut impl GenericClient) -> Result<ObjectInventory> {
    let rel = |kinds: &str| {
        format!(
            "SELECT format('%I.%I', n.nspname, c.relname) \
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE c.relkind IN ({kinds}) AND {USER_SCHEMA} AND {}",
            not_in_extension("pg_class", "c.oid")
        )
    };
    let user_class = format!(
        "{USER_SCHEMA} AND {}",
        not_in_extension("pg_class", "c.oid")
    );
    let mut inv = ObjectInventory {
        schemas: text_list(
            client,
            "schemas",
            &format!(
                "SELECT format('%I', n.nspname) FROM pg_namespace n WHERE {USER_SCHEMA} AND {}",
                not_in_extension("pg_namespace", "n.oid")
            ),
        )?,
        tables: text_list(client, "tables", &rel("'r', 'p'"))?,
        views: text_list(client, "views", &rel("'v'"))?,
        matviews: text_list(client, "materialized views", &rel("'m'"))?,
        sequences: text_list(client, "sequences", &rel("'S'"))?,
        foreign_tables: text_list(client, "foreign tables", &rel("'f'"))?,
        ..ObjectInventory::default()
    };
    inv.types = text_list(
        client,
        "types",
        &format!(
            "SELECT format('%I.%I %s', n.nspname, t.typname, t.typtype) \
               FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
              WHERE {USER_SCHEMA} AND {} \
                AND (t.typtype IN ('e', 'd', 'r', 'm') \
                     OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))",
            not_in_extension("pg_type", "t.oid")
        ),
    )?;
    inv.functions = text_list(
        client,
        "functions",
        &format!(
            "SELECT format('%I.%I(%s) %s', n.nspname, p.proname, \
                           pg_get_function_identity_arguments(p.oid), p.prokind) \
               FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
              WHERE {USER_SCHEMA} AND {}",
            not_in_extension("pg_proc", "p.oid")
        ),
    )?;
    inv.indexes = text_list(
        client,
        "indexes",
        &format!(
            "SELECT format('%I.%I: ', n.nspname, c.relname) || pg_get_indexdef(c.oid) \
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE c.relkind IN ('i', 'I') AND {user_class}"
        ),
    )?;
    inv.constraints = text_list(
        client,
        "constraints",
        &format!(
            "SELECT format('%I.%I %I: ', n.nspname, coalesce(c.relname, t.typname), con.conname) \
                    || pg_get_constraintdef(con.oid) \
               FROM pg_constraint con JOIN pg_namespace n ON n.oid = con.connamespace \
               LEFT JOIN pg_class c ON c.oid = con.conrelid \
               LEFT JOIN pg_type t ON t.oid = con.contypid \
              WHERE {USER_SCHEMA} AND {}",
            not_in_extension("pg_constraint", "con.oid")
        ),
    )?;
    inv.triggers = text_list(
        client,
        "triggers",
        &format!(
            "SELECT format('%I.%I %I: ', n.nspname, c.relname, tg.tgname) \
                    || pg_get_triggerdef(tg.oid) \
               FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid \
               JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE NOT tg.tgisinternal AND {user_class}"
        ),
    )?;
    inv.policies = text_list(
        client,
        "policies",
        &format!(
            "SELECT format('%I.%I %I: %s %s', n.nspname, c.relname, p.polname, p.polcmd, \
                           array_to_string(ARRAY(SELECT CASE WHEN r = 0 THEN 'PUBLIC' \
                               ELSE pg_get_userbyid(r)::text END FROM unnest(p.polroles) r \
                               ORDER BY 1), ',')) \
               FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid \
               JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {user_class}"
        ),
    )?;
    inv.grants = text_list(client, "grants", &grants_query())?;
    inv.owners = text_list(client, "owners", &owners_query())?;
    inv.comments = client
        .query_one(
            "SELECT (SELECT count(*) FROM pg_description d \
                      WHERE d.objoid >= 16384 AND NOT EXISTS (SELECT 1 FROM pg_depend e \
                        WHERE e.classid = d.classoid AND e.objid = d.objoid AND e.deptype = 'e')) \
                  + (SELECT count(*) FROM pg_shdescription s JOIN pg_database db \
                       ON db.oid = s.objoid AND s.classoid = 'pg_database'::regclass \
                      WHERE db.datname = current_database())",
            &[],
        )
        .map_err(pg_error("count comments"))?
        .get(0);
    Ok(inv)
}

/// `<kind> <object>: <aclitem>` for every ACL entry on user objects.
fn grants_query() -> String {
    let ext = |catalog: &str, oid: &str| not_in_extension(catalog, oid);
    format!(
        "SELECT 'database: ' || a::text FROM pg_database db, unnest(db.datacl) a \
          WHERE db.datname = current_database() \
         UNION ALL \
         SELECT format('schema %I: ', n.nspname) || a::text \
           FROM pg_namespace n, unnest(n.nspacl) a WHERE {USER_SCHEMA} AND {schema_ext} \
         UNION ALL \
         SELECT format('relation %I.%I: ', n.nspname, c.relname) || a::text \
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, unnest(c.relacl) a \
          WHERE {USER_SCHEMA} AND {class_ext} \
         UNION ALL \
         SELECT format('column %I.%I.%I: ', n.nspname, c.relname, att.attname) || a::text \
           FROM pg_attribute att JOIN pg_class c ON c.oid = att.attrelid \
           JOIN pg_namespace n ON n.oid = c.relnamespace, unnest(att.attacl) a \
          WHERE {USER_SCHEMA} AND {class_ext} \
         UNION ALL \
         SELECT format('function %I.%I(%s): ', n.nspname, p.proname, \
                       pg_get_function_identity_arguments(p.oid)) || a::text \
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace, unnest(p.proacl) a \
          WHERE {USER_SCHEMA} AND {proc_ext} \
         UNION ALL \
         SELECT format('type %I.%I: ', n.nspname, t.typname) || a::text \
           FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace, unnest(t.typacl) a \
          WHERE {USER_SCHEMA} AND {type_ext} \
         UNION ALL \
         SELECT format('large object %s: ', m.oid) || a::text \
           FROM pg_largeobject_metadata m, unnest(m.lomacl) a \
         UNION ALL \
         SELECT format('default privileges for %s in %s on %s: ', pg_get_userbyid(da.defaclrole), \
                       coalesce(quote_ident(n.nspname), 'all schemas'), da.defaclobjtype) || a::text \
           FROM pg_default_acl da LEFT JOIN pg_namespace n ON n.oid = da.defaclnamespace, \
                unnest(da.defaclacl) a",
        schema_ext = ext("pg_namespace", "n.oid"),
        class_ext = ext("pg_class", "c.oid"),
        proc_ext = ext("pg_proc", "p.oid"),
        type_ext = ext("pg_type", "t.oid"),
    )
}

/// `<kind> <object>: <owner>` for the database and its user objects.
fn owners_query() -> String {
    let ext = |catalog: &str, oid: &str| not_in_extension(catalog, oid);
    format!(
        "SELECT 'database: ' || pg_get_userbyid(db.datdba) FROM pg_database db \
          WHERE db.datname = current_database() \
         UNION ALL \
         SELECT format('schema %I: ', n.nspname) || pg_get_userbyid(n.nspowner) \
           FROM pg_namespace n WHERE {USER_SCHEMA} AND {schema_ext} \
         UNION ALL \
         SELECT format('relation %I.%I: ', n.nspname, c.relname) || pg_get_userbyid(c.relowner) \
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE c.relkind NOT IN ('i', 'I', 't', 'c') AND {USER_SCHEMA} AND {class_ext} \
         UNION ALL \
         SELECT format('function %I.%I(%s): ', n.nspname, p.proname, \
                       pg_get_function_identity_arguments(p.oid)) || pg_get_userbyid(p.proowner) \
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
          WHERE {USER_SCHEMA} AND {proc_ext} \
         UNION ALL \
         SELECT format('type %I.%I: ', n.nspname, t.typname) || pg_get_userbyid(t.typowner) \
           FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
          WHERE t.typtype IN ('e', 'd', 'r', 'm') AND {USER_SCHEMA} AND {type_ext} \
         UNION ALL \
         SELECT format('large object %s: ', m.oid) || pg_get_userbyid(m.lomowner) \
           FROM pg_largeobject_metadata m",
        schema_ext = ext("pg_namespace", "n.oid"),
        class_ext = ext("pg_class", "c.oid"),
        proc_ext = ext("pg_proc", "p.oid"),
        type_ext = ext("pg_type", "t.oid"),
    )
}

/// An extension a dump creates that the connected database does not have yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingExtension {
    pub name: String,
    /// The server has its files (`pg_available_extensions`).
    pub available: bool,
    /// The connected role may create it: a superuser, or a trusted extension.
    pub creatable: bool,
}

/// Those of `needed` not installed in the connected database (`plpgsql`
/// aside), with whether the server has them and the role may create them.
pub fn missing_extensions(
    client: &mut impl GenericClient,
    needed: &[String],
) -> Result<Vec<MissingExtension>> {
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
        .map_err(|e| Error::postgres(error_text(&e)))?;
    Ok(rows
        .iter()
        .map(|row| MissingExtension {
            name: row.get(0),
            available: row.get(1),
            creatable: row.get(2),
        })
        .collect())
}

/// Bytes the connected database takes on disk (`pg_database_size`).
pub fn database_size(client: &mut impl GenericClient) -> Result<i64> {
    Ok(client
        .query_one("SELECT pg_database_size(current_database())", &[])
        .map_err(|e| Error::postgres(error_text(&e)))?
        .get(0))
}

/// The first user object found in the connected database, or `None` when it is
/// empty enough to restore into: only extensions, languages and an empty
/// `public` schema are allowed.
pub fn database_is_empty(client: &mut impl GenericClient) -> Result<Option<String>> {
    let probes = [
        format!(
            "SELECT format('schema %I', n.nspname) FROM pg_namespace n \
              WHERE {USER_SCHEMA} AND n.nspname <> 'public' AND {}",
            not_in_extension("pg_namespace", "n.oid")
        ),
        format!(
            "SELECT format('%s %I.%I', CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'table' \
                    WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' \
                    WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table' \
                    WHEN 'c' THEN 'type' ELSE 'relation' END, n.nspname, c.relname) \
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c') AND {USER_SCHEMA} AND {}",
            not_in_extension("pg_class", "c.oid")
        ),
        format!(
            "SELECT format('function %I.%I(%s)', n.nspname, p.proname, \
                           pg_get_function_identity_arguments(p.oid)) \
               FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
              WHERE {USER_SCHEMA} AND {}",
            not_in_extension("pg_proc", "p.oid")
        ),
        format!(
            "SELECT format('type %I.%I', n.nspname, t.typname) \
               FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
              WHERE t.typtype IN ('b', 'e', 'd', 'r', 'p') AND t.typrelid = 0 \
                AND NOT (t.typcategory = 'A' AND t.typelem <> 0) \
                AND {USER_SCHEMA} AND {}",
            not_in_extension("pg_type", "t.oid")
        ),
        format!(
            "SELECT format('operator %I.%s', n.nspname, o.oprname) \
               FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace \
              WHERE {USER_SCHEMA} AND {}",
            not_in_extension("pg_operator", "o.oid")
        ),
        format!(
            "SELECT format('collation %I.%I', n.nspname, co.collname) \
               FROM pg_collation co JOIN pg_namespace n ON n.oid = co.collnamespace \
              WHERE {USER_SCHEMA} AND {}",
            not_in_extension("pg_collation", "co.oid")
        ),
        format!(
            "SELECT format('text search configuration %I.%I', n.nspname, ts.cfgname) \
               FROM pg_ts_config ts JOIN pg_namespace n ON n.oid = ts.cfgnamespace \
              WHERE {USER_SCHEMA} AND {}",
            not_in_extension("pg_ts_config", "ts.oid")
        ),
        "SELECT format('large object %s', m.oid) FROM pg_largeobject_metadata m".to_string(),
    ];
    for probe in probes {
        let row = client
            .query_opt(&format!("{probe} ORDER BY 1 LIMIT 1"), &[])
            .map_err(pg_error("check whether the database is empty"))?;
        if let Some(row) = row {
            return Ok(Some(row.get(0)));
        }
    }
    Ok(None)
}

/// Facts about the connected database and its server.
pub fn database_info(client: &mut impl GenericClient) -> Result<DatabaseInfo> {
    let row = client
        .query_one(
            "SELECT db.datname::text, pg_get_userbyid(db.datdba)::text, \
                    current_setting('server_version_num')::int, current_setting('server_version'), \
                    pg_encoding_to_char(db.encoding)::text, db.datcollate::text, db.datctype::text \
               FROM pg_database db WHERE db.datname = current_database()",
            &[],
        )
        .map_err(pg_error("read the database's settings"))?;
    let extensions = client
        .query(
            "SELECT extname::text, extversion FROM pg_extension ORDER BY extname COLLATE \"C\"",
            &[],
        )
        .map_err(pg_error("list extensions"))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    Ok(DatabaseInfo {
        name: row.get(0),
        owner: row.get(1),
        server_version_num: row.get(2),
        server_version: row.get(3),
        encoding: row.get(4),
        collate: row.get(5),
        ctype: row.get(6),
        extensions,
    })
}

/// What a dump of the connected database will roughly hold, in bytes: the
/// size of its tables' and materialized views' data on disk (with TOAST,
/// without indexes, which a dump does not carry). For progress only. Sizing
/// a table takes a lock: one held by another session (the dump would wait
/// for it too) makes this fall back to the planner's page counts, which
/// take none.
pub fn dump_size_estimate(client: &mut postgres::Client) -> Result<u64> {
    let err = |e: postgres::Error| {
        Error::postgres(format!("estimate the dump's size: {}", error_text(&e)))
    };
    // Every user table and materialized view, with its TOAST table.
    const USER_RELATIONS: &str = "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_class t ON t.oid = c.reltoastrelid \
         WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')";
    client
        .batch_execute("SET lock_timeout = '200ms'")
        .map_err(err)?;
    let exact = client.query_one(
        &format!("SELECT coalesce(sum(pg_table_size(c.oid)), 0)::bigint {USER_RELATIONS}"),
        &[],
    );
    let size = match exact {
        Ok(row) => Ok(row.get::<_, i64>(0)),
        Err(_) => client
            .query_one(
                &format!(
                    "SELECT (coalesce(sum(c.relpages + coalesce(t.relpages, 0)), 0) \
                     * current_setting('block_size')::bigint)::bigint {USER_RELATIONS}"
                ),
                &[],
            )
            .map(|row| row.get::<_, i64>(0)),
    };
    // Reset whichever way the estimate went: the session may be used on.
    client.batch_execute("RESET lock_timeout").map_err(err)?;
    Ok(size.map_err(err)?.max(0) as u64)
}
