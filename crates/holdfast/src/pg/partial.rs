//! One table or schema out of a custom dump: which entries of its table of
//! contents make it up, which of the names it would create a database holds
//! already, the roles it names, and, in a scratch database, renaming it and
//! dumping it again under its new name.
//!
//! pg_restore's own `-t`/`-n` selection brings a table's definition and data
//! but not its indexes, constraints, triggers or owned sequences; the entries
//! are chosen here from the dependencies the dump records
//! ([`crate::pg::custom_format::toc_entries`]) and restored with a list (`-L`).

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use postgres::GenericClient;

use crate::pg::custom_format::{DumpEntry, SECTION_PRE_DATA};
use crate::pg::sql::{qualified, quote_ident};
use crate::pg::{error_text, ClientCommand, ConnParams, PgTools};
use crate::{Error, Result};

/// What a partial restore takes out of one database's dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DumpObject {
    /// A table with its data, indexes, constraints, defaults, triggers,
    /// rules, policies, owned sequences, comments and grants.
    Table { schema: String, name: String },
    /// A schema and everything in it.
    Schema(String),
}

impl DumpObject {
    /// `SCHEMA.TABLE` (names as PostgreSQL stores them, the first dot
    /// separating them); `None` without a dot.
    pub fn table(text: &str) -> Option<DumpObject> {
        let (schema, name) = text.split_once('.')?;
        (!schema.is_empty() && !name.is_empty()).then(|| DumpObject::Table {
            schema: schema.to_string(),
            name: name.to_string(),
        })
    }
}

impl fmt::Display for DumpObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DumpObject::Table { schema, name } => write!(f, "table {schema}.{name}"),
            DumpObject::Schema(name) => write!(f, "schema {name}"),
        }
    }
}

/// Entries that hang off a table (or off another entry of it) and come with it.
const TABLE_PARTS: &[&str] = &[
    "TABLE DATA",
    "INDEX",
    "INDEX ATTACH",
    "CONSTRAINT",
    "CHECK CONSTRAINT",
    "FK CONSTRAINT",
    "DEFAULT",
    "TRIGGER",
    "RULE",
    "POLICY",
    "ROW SECURITY",
    "SEQUENCE",
    "SEQUENCE OWNED BY",
    "SEQUENCE SET",
    "STATISTICS",
    "STATISTICS DATA",
    "COMMENT",
    "ACL",
    "SECURITY LABEL",
];

/// Entries whose tag is `table name`: they belong to the table the tag names,
/// even when they depend on another table too (a foreign key of another
/// table depends on the key it references).
const TAGGED_WITH_TABLE: &[&str] = &[
    "CONSTRAINT",
    "CHECK CONSTRAINT",
    "FK CONSTRAINT",
    "DEFAULT",
    "TRIGGER",
    "RULE",
    "POLICY",
];

/// The dump ids of every entry that makes up `objects`; `Err` names the
/// first object the dump does not hold.
pub fn select(
    entries: &[DumpEntry],
    objects: &[DumpObject],
) -> std::result::Result<BTreeSet<i32>, DumpObject> {
    let mut selected = BTreeSet::new();
    for object in objects {
        let found = match object {
            DumpObject::Table { schema, name } => select_table(entries, schema, name),
            DumpObject::Schema(name) => select_schema(entries, name),
        };
        match found {
            Some(ids) => selected.extend(ids),
            None => return Err(object.clone()),
        }
    }
    Ok(selected)
}

fn select_table(entries: &[DumpEntry], schema: &str, name: &str) -> Option<BTreeSet<i32>> {
    let table = entries
        .iter()
        .find(|e| e.desc == "TABLE" && e.namespace == schema && e.tag == name)?;
    let mut selected = BTreeSet::from([table.dump_id]);
    // `ALTER SEQUENCE s OWNED BY t.c` depends on the sequence only: the
    // owning table is in its SQL.
    for e in entries.iter().filter(|e| {
        e.desc == "SEQUENCE OWNED BY"
            && owner_table(&e.defn) == Some((schema.to_string(), name.to_string()))
    }) {
        selected.insert(e.dump_id);
        selected.extend(e.deps.iter().copied());
    }
    let prefix = format!("{name} ");
    close_over(entries, &mut selected, |e| {
        TABLE_PARTS.contains(&e.desc.as_str())
            && (!TAGGED_WITH_TABLE.contains(&e.desc.as_str())
                || (e.namespace == schema && e.tag.starts_with(&prefix)))
    });
    Some(selected)
}

/// The table of `ALTER SEQUENCE … OWNED BY schema.table.column;`, its
/// names without pg_dump's quoting.
fn owner_table(defn: &str) -> Option<(String, String)> {
    let (_, rest) = defn.split_once(" OWNED BY ")?;
    let (schema, rest) = crate::pg::restore::leading_identifier(rest)?;
    let (table, rest) = crate::pg::restore::leading_identifier(rest.strip_prefix('.')?)?;
    rest.starts_with('.').then_some((schema, table))
}

fn select_schema(entries: &[DumpEntry], name: &str) -> Option<BTreeSet<i32>> {
    let schema = entries
        .iter()
        .find(|e| e.desc == "SCHEMA" && e.namespace.is_empty() && e.tag == name)?;
    let mut selected: BTreeSet<i32> = entries
        .iter()
        .filter(|e| e.namespace == name)
        .map(|e| e.dump_id)
        .collect();
    selected.insert(schema.dump_id);
    // The schema's own comment, grants and security labels have no schema.
    close_over(entries, &mut selected, |e| {
        e.namespace.is_empty() && matches!(e.desc.as_str(), "COMMENT" | "ACL" | "SECURITY LABEL")
    });
    Some(selected)
}

/// Add to `selected`, until nothing changes, each entry `belongs` accepts
/// that depends on a selected one.
fn close_over(
    entries: &[DumpEntry],
    selected: &mut BTreeSet<i32>,
    belongs: impl Fn(&DumpEntry) -> bool,
) {
    loop {
        let more: Vec<i32> = entries
            .iter()
            .filter(|e| !selected.contains(&e.dump_id))
            .filter(|e| e.deps.iter().any(|d| selected.contains(d)) && belongs(e))
            .map(|e| e.dump_id)
            .collect();
        if more.is_empty() {
            return;
        }
        selected.extend(more);
    }
}

/// The foreign keys among `selected` that reference something outside it.
pub fn outgoing_foreign_keys<'a>(
    entries: &'a [DumpEntry],
    selected: &BTreeSet<i32>,
) -> Vec<&'a DumpEntry> {
    entries
        .iter()
        .filter(|e| e.desc == "FK CONSTRAINT" && selected.contains(&e.dump_id))
        .filter(|e| e.deps.iter().any(|d| !selected.contains(d)))
        .collect()
}

/// The schema-qualified relation names the `selected` entries create:
/// tables, sequences, views, indexes, and the indexes behind primary-key,
/// unique and exclusion constraints.
pub fn relation_names(entries: &[DumpEntry], selected: &BTreeSet<i32>) -> Vec<(String, String)> {
    entries
        .iter()
        .filter(|e| selected.contains(&e.dump_id))
        .filter_map(|e| {
            let name = match e.desc.as_str() {
                "TABLE" | "SEQUENCE" | "VIEW" | "MATERIALIZED VIEW" | "FOREIGN TABLE" | "INDEX" => {
                    e.tag.as_str()
                }
                "CONSTRAINT" => e.tag.split_once(' ').map(|(_, c)| c)?,
                _ => return None,
            };
            Some((e.namespace.clone(), name.to_string()))
        })
        .collect()
}

/// The roles the `selected` entries name: their owners and the grantees of
/// their grants.
pub fn roles_of(entries: &[DumpEntry], selected: &BTreeSet<i32>) -> BTreeSet<String> {
    let mut roles = BTreeSet::new();
    for e in entries.iter().filter(|e| selected.contains(&e.dump_id)) {
        if !e.owner.is_empty() {
            roles.insert(e.owner.clone());
        }
        if e.desc == "ACL" || e.desc == "DEFAULT ACL" {
            roles.extend(crate::pg::roles::roles_in_schema_sql(&e.defn));
        }
    }
    roles.remove("postgres");
    roles
}

/// The pre-data entries (schemas, types, functions, table definitions) that
/// are not `selected`: what a scratch database needs so that the selected
/// object's definition finds what it refers to.
pub fn definitions_besides(entries: &[DumpEntry], selected: &BTreeSet<i32>) -> BTreeSet<i32> {
    entries
        .iter()
        .filter(|e| e.section == SECTION_PRE_DATA && !selected.contains(&e.dump_id))
        .map(|e| e.dump_id)
        .collect()
}

/// Those of `names` (schema, relation) that exist in the connected database,
/// as `schema.name`.
pub fn existing_relations(
    client: &mut impl GenericClient,
    names: &[(String, String)],
) -> Result<Vec<String>> {
    let mut found = Vec::new();
    for (schema, name) in names {
        let row = client
            .query_opt(
                "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                  WHERE n.nspname = $1 AND c.relname = $2",
                &[schema, name],
            )
            .map_err(|e| Error::postgres(error_text(&e)))?;
        if row.is_some() {
            found.push(format!("{schema}.{name}"));
        }
    }
    Ok(found)
}

/// Whether the connected database has a schema of that name.
pub fn schema_exists(client: &mut impl GenericClient, name: &str) -> Result<bool> {
    client
        .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&name])
        .map(|r| r.is_some())
        .map_err(|e| Error::postgres(error_text(&e)))
}

/// Rows of a table.
pub fn row_count(client: &mut impl GenericClient, schema: &str, name: &str) -> Result<i64> {
    client
        .query_one(
            &format!("SELECT count(*) FROM {}", qualified(schema, name)),
            &[],
        )
        .map(|r| r.get(0))
        .map_err(|e| Error::postgres(error_text(&e)))
}

/// Tables of a schema and their rows in all.
pub fn schema_tables(client: &mut impl GenericClient, schema: &str) -> Result<(usize, i64)> {
    let tables: Vec<String> = client
        .query(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')",
            &[&schema],
        )
        .map_err(|e| Error::postgres(error_text(&e)))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut rows = 0;
    for t in &tables {
        rows += row_count(client, schema, t)?;
    }
    Ok((tables.len(), rows))
}

/// The new name of an index or sequence of a renamed table: its old table
/// name prefix replaced (`t_pkey` of `t` becomes `t_restored_pkey`), else the
/// new table name put in front.
pub fn renamed_part(part: &str, table: &str, new_table: &str) -> String {
    match part.strip_prefix(table) {
        Some(rest) => format!("{new_table}{rest}"),
        None => format!("{new_table}_{part}"),
    }
}

/// In a scratch database: rename table `schema.name` to `new_schema.new_name`,
/// its indexes (hence its key constraints) and the sequences it owns after
/// it, so that none of their names is the original's. One transaction.
pub fn rename_table(
    client: &mut postgres::Client,
    (schema, name): (&str, &str),
    (new_schema, new_name): (&str, &str),
) -> Result<()> {
    let pg = |e: postgres::Error| Error::postgres(error_text(&e));
    let mut tx = client.transaction().map_err(pg)?;
    let table = qualified(schema, name);
    let parts = tx
        .query(
            "SELECT c.relname::text, c.relkind::text = 'S' FROM pg_index i \
               JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = $1::text::regclass \
             UNION ALL \
             SELECT c.relname::text, true FROM pg_depend d JOIN pg_class c ON c.oid = d.objid \
              WHERE d.classid = 'pg_class'::regclass AND d.refobjid = $1::text::regclass \
                AND d.deptype IN ('a', 'i') AND c.relkind = 'S'",
            &[&table],
        )
        .map_err(pg)?;
    for row in parts {
        let (part, sequence): (String, bool) = (row.get(0), row.get(1));
        tx.batch_execute(&format!(
            "ALTER {} {} RENAME TO {}",
            if sequence { "SEQUENCE" } else { "INDEX" },
            qualified(schema, &part),
            quote_ident(&renamed_part(&part, name, new_name))
        ))
        .map_err(pg)?;
    }
    tx.batch_execute(&format!(
        "ALTER TABLE {table} RENAME TO {}",
        quote_ident(new_name)
    ))
    .map_err(pg)?;
    if new_schema != schema {
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {0}; ALTER TABLE {1} SET SCHEMA {0}",
            quote_ident(new_schema),
            qualified(schema, new_name)
        ))
        .map_err(pg)?;
    }
    tx.commit().map_err(pg)
}

/// In a scratch database: `ALTER SCHEMA old RENAME TO new`.
pub fn rename_schema(client: &mut postgres::Client, old: &str, new: &str) -> Result<()> {
    client
        .batch_execute(&format!(
            "ALTER SCHEMA {} RENAME TO {}",
            quote_ident(old),
            quote_ident(new)
        ))
        .map_err(|e| Error::postgres(error_text(&e)))
}

/// `CREATE DATABASE name OWNER owner` with the encoding and locale of the
/// database `like` describes, from `template0`.
pub fn create_database_like(
    admin: &crate::pg::provision::Admin,
    name: &str,
    owner: &str,
    like: &crate::pg::DatabaseInfo,
) -> Result<()> {
    use crate::pg::sql::quote_literal;
    admin.execute(
        &admin.params().database,
        &format!(
            "CREATE DATABASE {} OWNER {} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}",
            quote_ident(name),
            quote_ident(owner),
            quote_literal(&like.encoding),
            quote_literal(&like.collate),
            quote_literal(&like.ctype)
        ),
    )
}

/// Whether a database of that name exists on the admin's server.
pub fn database_exists(admin: &crate::pg::provision::Admin, name: &str) -> Result<bool> {
    use crate::pg::sql::quote_literal;
    let rows = admin.query(
        &admin.params().database,
        &format!(
            "SELECT 1 FROM pg_database WHERE datname = {}",
            quote_literal(name)
        ),
    )?;
    Ok(!rows.is_empty())
}

/// The databases on the admin's server whose name starts with `prefix`.
pub fn databases_named(admin: &crate::pg::provision::Admin, prefix: &str) -> Result<Vec<String>> {
    let rows = admin.query(
        &admin.params().database,
        "SELECT datname FROM pg_database ORDER BY 1",
    )?;
    Ok(rows
        .into_iter()
        .filter_map(|r| r.into_iter().next())
        .filter(|n| n.starts_with(prefix))
        .collect())
}

/// Dump one object of the database of `conn` into the custom-format file
/// `out`, without owners and grants: `pg_dump -t` brings a table with its
/// indexes, constraints, triggers and owned sequences; `-n` a schema with
/// everything in it.
pub fn dump_object(
    conn: &ConnParams,
    tools: &PgTools,
    object: &DumpObject,
    out: &Path,
) -> Result<String> {
    let mut cmd = ClientCommand::connected(tools, "pg_dump", conn)?;
    cmd.args(["-Fc", "-Z0", "--no-owner", "--no-privileges", "-f"])
        .arg(out);
    // Inside double quotes a pattern's characters are literal.
    let pattern = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
    match object {
        DumpObject::Table { schema, name } => {
            cmd.arg("-t")
                .arg(format!("{}.{}", pattern(schema), pattern(name)));
        }
        DumpObject::Schema(name) => {
            cmd.arg("-n").arg(pattern(name));
        }
    }
    let (finished, _) = cmd.output()?;
    if !finished.success() {
        return Err(finished.failure(&format!("dumping {object} of '{}'", conn.database)));
    }
    Ok(finished.description.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: i32, desc: &str, ns: &str, tag: &str, deps: &[i32]) -> DumpEntry {
        DumpEntry {
            dump_id: id,
            desc: desc.into(),
            tag: tag.into(),
            namespace: ns.into(),
            owner: "app".into(),
            section: if matches!(desc, "TABLE" | "SEQUENCE" | "SEQUENCE OWNED BY" | "DEFAULT") {
                SECTION_PRE_DATA
            } else {
                4
            },
            defn: String::new(),
            deps: deps.to_vec(),
        }
    }

    fn sample() -> Vec<DumpEntry> {
        let mut owned = entry(4, "SEQUENCE OWNED BY", "public", "t_id_seq", &[3]);
        owned.defn = "ALTER SEQUENCE public.t_id_seq OWNED BY public.t.id;\n".into();
        assert_eq!(
            owner_table("ALTER SEQUENCE a.\"S\" OWNED BY \"my schema\".\"T\".id;"),
            Some(("my schema".to_string(), "T".to_string()))
        );
        let mut acl = entry(16, "ACL", "public", "TABLE t", &[2]);
        acl.defn = "GRANT SELECT ON TABLE public.t TO reader;\n".into();
        vec![
            entry(1, "TABLE", "public", "p", &[]),
            entry(2, "TABLE", "public", "t", &[]),
            entry(3, "SEQUENCE", "public", "t_id_seq", &[]),
            owned,
            entry(5, "DEFAULT", "public", "t id", &[2, 3]),
            entry(6, "TABLE DATA", "public", "t", &[2]),
            entry(7, "SEQUENCE SET", "public", "t_id_seq", &[3]),
            entry(8, "CONSTRAINT", "public", "p p_pkey", &[1]),
            entry(9, "CONSTRAINT", "public", "t t_pkey", &[2]),
            entry(10, "INDEX", "public", "t_name_idx", &[2]),
            entry(11, "FK CONSTRAINT", "public", "t t_p_fkey", &[2, 8]),
            entry(12, "FK CONSTRAINT", "public", "p p_t_fkey", &[1, 9]),
            entry(13, "VIEW", "public", "v", &[2]),
            entry(14, "SCHEMA", "", "audit", &[]),
            entry(15, "TABLE", "audit", "log", &[14]),
            acl,
            entry(17, "COMMENT", "", "SCHEMA audit", &[14]),
            entry(18, "COMMENT", "public", "INDEX t_name_idx", &[10]),
        ]
    }

    #[test]
    fn a_table_comes_with_its_parts_and_nothing_else() {
        let entries = sample();
        let t = DumpObject::table("public.t").unwrap();
        let ids = select(&entries, &[t]).unwrap();
        assert_eq!(
            ids,
            BTreeSet::from([2, 3, 4, 5, 6, 7, 9, 10, 11, 16, 18]),
            "not the view, not the other table's key or foreign key"
        );
        let fks: Vec<i32> = outgoing_foreign_keys(&entries, &ids)
            .iter()
            .map(|e| e.dump_id)
            .collect();
        assert_eq!(fks, [11]);
        assert_eq!(
            relation_names(&entries, &ids),
            [
                ("public".to_string(), "t".to_string()),
                ("public".into(), "t_id_seq".into()),
                ("public".into(), "t_pkey".into()),
                ("public".into(), "t_name_idx".into()),
            ]
        );
        assert_eq!(
            roles_of(&entries, &ids),
            BTreeSet::from(["app".to_string(), "reader".to_string()])
        );
        assert_eq!(
            select(&entries, &[DumpObject::table("public.nope").unwrap()]),
            Err(DumpObject::table("public.nope").unwrap())
        );
    }

    #[test]
    fn a_schema_comes_with_everything_in_it() {
        let entries = sample();
        let ids = select(&entries, &[DumpObject::Schema("audit".into())]).unwrap();
        assert_eq!(ids, BTreeSet::from([14, 15, 17]));
        assert!(select(&entries, &[DumpObject::Schema("public".into())]).is_err());
        assert_eq!(
            definitions_besides(&entries, &ids),
            BTreeSet::from([1, 2, 3, 4, 5])
        );
    }

    #[test]
    fn parts_of_a_renamed_table_are_renamed_after_it() {
        assert_eq!(renamed_part("t_pkey", "t", "t_restored"), "t_restored_pkey");
        assert_eq!(renamed_part("t_id_seq", "t", "old"), "old_id_seq");
        assert_eq!(renamed_part("by_name", "t", "old"), "old_by_name");
        assert_eq!(DumpObject::table("public"), None);
        assert_eq!(DumpObject::table(".t"), None);
    }
}
