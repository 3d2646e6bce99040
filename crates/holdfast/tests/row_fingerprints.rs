//! Row fingerprints read from a pg_dump custom stream agree with those computed
//! by `COPY ... TO STDOUT` on the source and on a restored copy, for awkward
//! types and settings; and they notice a changed row.

mod pg_support;

use holdfast::pg::custom_format::table_row_sums;
use holdfast::pg::inspect::{
    row_text_settings, table_fingerprints_of_kind, FingerprintKind, RelationKind, RowTextSettings,
    TableChecksum,
};
use holdfast::pg::{self, dump_database, ConnParams, DumpFormat, DumpOptions, PgTools};
use pg_support::*;
use pgsandbox::Cluster;

/// Tables whose COPY text depends on the session's settings (time zone, bytea
/// output, float digits, interval style), plus NULLs, escapes, a dropped and a
/// generated column, a table without columns, an empty table, a materialized
/// view and a large object.
const SCHEMA: &str = r#"
CREATE TABLE kinds (
    id int PRIMARY KEY,
    gone text,
    t text, ts timestamptz, d date, i interval, f float8, r real, n numeric,
    b bytea, j jsonb, a int[], u uuid, m money
);
ALTER TABLE kinds DROP COLUMN gone;
ALTER TABLE kinds ADD COLUMN twice int GENERATED ALWAYS AS (id * 2) STORED;
INSERT INTO kinds (id, t, ts, d, i, f, r, n, b, j, a, u, m)
SELECT g,
       CASE WHEN g % 5 = 0 THEN NULL WHEN g % 5 = 1 THEN '' ELSE E'tab\there\nnewline \\ back ' || g END,
       timestamptz '2024-03-31 01:30:00+00' + g * interval '37 minutes',
       date '2000-02-28' + g,
       make_interval(0, g, 0, g, g, g, g / 7.0),
       g / 3.0, (g / 7.0)::real, g::numeric / 11,
       decode(md5(g::text), 'hex'),
       jsonb_build_object('g', g, 's', 'ü€'),
       ARRAY[g, NULL, -g],
       md5(g::text)::uuid,
       g * 1.25
  FROM generate_series(1, 500) g;
CREATE TABLE nocolumns ();
INSERT INTO nocolumns DEFAULT VALUES;
INSERT INTO nocolumns DEFAULT VALUES;
CREATE TABLE empty (x int);
CREATE SCHEMA "odd schema";
CREATE TABLE "odd schema"."Mixed Case" (v text);
INSERT INTO "odd schema"."Mixed Case" VALUES ('a'), ('a'), ('\.');
CREATE MATERIALIZED VIEW totals AS SELECT count(*) AS c FROM kinds;
SELECT lo_from_bytea(0, 'large object bytes');
"#;

fn tools_for(conn: &ConnParams) -> PgTools {
    let mut client = pg::connect(conn).unwrap();
    let v: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .unwrap()
        .get(0);
    PgTools::for_server(v).unwrap()
}

fn custom_dump(conn: &ConnParams) -> Vec<u8> {
    let mut out = Vec::new();
    dump_database(
        conn,
        &tools_for(conn),
        &DumpOptions::uncompressed(DumpFormat::Custom),
        &mut out,
    )
    .unwrap();
    out
}

fn copy_fingerprints(conn: &ConnParams, settings: &RowTextSettings) -> Vec<TableChecksum> {
    let mut client = pg::connect(conn).unwrap();
    table_fingerprints_of_kind(&mut client, settings, |_, _, _| FingerprintKind::RowSum).unwrap()
}

/// The stream's fingerprints as `TableChecksum`s of the tables `like` lists.
fn stream_fingerprints(dump: &[u8], like: &[TableChecksum]) -> Vec<(String, String, i64, String)> {
    let sums = table_row_sums(dump).unwrap();
    like.iter()
        .filter(|t| t.kind == RelationKind::Table)
        .map(|t| {
            let s = sums
                .get(&(t.schema.clone(), t.name.clone()))
                .unwrap_or_else(|| panic!("{}.{} not in the stream", t.schema, t.name));
            (
                t.schema.clone(),
                t.name.clone(),
                s.rows as i64,
                s.fingerprint(),
            )
        })
        .collect()
}

fn as_tuples(tables: &[TableChecksum]) -> Vec<(String, String, i64, String)> {
    tables
        .iter()
        .filter(|t| t.kind == RelationKind::Table)
        .map(|t| (t.schema.clone(), t.name.clone(), t.rows, t.checksum.clone()))
        .collect()
}

#[test]
fn stream_and_copy_fingerprints_agree_across_a_restore() {
    let source = Cluster::start().expect("start source cluster");
    source.create_role("app", "app-pw-rows").unwrap();
    source.create_database("appdb", "app").unwrap();
    // A time zone and bytea output unlike the verifying side's defaults: the
    // dump's session gets them from the database, and the settings travel.
    source
        .execute(
            "postgres",
            "ALTER DATABASE appdb SET TimeZone = 'America/St_Johns'; \
             ALTER DATABASE appdb SET bytea_output = 'escape'",
        )
        .unwrap();
    let conn = tcp(&source, "app", "app-pw-rows", "appdb");
    pg::connect(&conn).unwrap().batch_execute(SCHEMA).unwrap();

    let settings = {
        let mut client = pg::connect(&conn).unwrap();
        row_text_settings(&mut client).unwrap()
    };
    assert_eq!(settings.timezone, "America/St_Johns");
    assert_eq!(settings.bytea_output, "escape");

    let dump = custom_dump(&conn);
    let on_source = copy_fingerprints(&conn, &settings);
    let from_stream = stream_fingerprints(&dump, &on_source);
    assert_eq!(from_stream, as_tuples(&on_source));
    let kinds = on_source.iter().find(|t| t.name == "kinds").unwrap();
    assert_eq!(kinds.rows, 500);
    assert!(kinds.checksum.starts_with("xxh3sum:"), "{}", kinds.checksum);
    let nocolumns = on_source.iter().find(|t| t.name == "nocolumns").unwrap();
    assert_eq!(nocolumns.rows, 2, "rows of no columns are empty lines");
    let mixed = on_source.iter().find(|t| t.name == "Mixed Case").unwrap();
    assert_eq!(mixed.rows, 3);
    let totals = on_source.iter().find(|t| t.name == "totals").unwrap();
    assert!(
        totals.checksum.starts_with("h64:"),
        "a materialized view has no COPY data: {}",
        totals.checksum
    );

    // Restored on another cluster with other defaults, copied under the
    // source's settings: the same fingerprints.
    let target = Cluster::start().expect("start target cluster");
    target.create_role("app", "app-pw-rows").unwrap();
    target.create_database("appdb", "app").unwrap();
    let target_conn = tcp(&target, "app", "app-pw-rows", "appdb");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &dump).unwrap();
    pg::restore_custom(
        &target_conn,
        &tools_for(&target_conn),
        file.path(),
        &pg::RestoreOptions {
            jobs: 1,
            restore_permissions: true,
            restore_owners: true,
        },
    )
    .unwrap();
    let restored = copy_fingerprints(&target_conn, &settings);
    assert_eq!(as_tuples(&restored), as_tuples(&on_source));
    // Under other settings the text differs, and so do the fingerprints.
    let other = copy_fingerprints(&target_conn, &RowTextSettings::default());
    let kinds_other = other.iter().find(|t| t.name == "kinds").unwrap();
    assert_ne!(kinds_other.checksum, kinds.checksum);

    // One changed value changes the fingerprint; the row count stays.
    pg::connect(&target_conn)
        .unwrap()
        .batch_execute("UPDATE kinds SET f = f + 1e-12 WHERE id = 250")
        .unwrap();
    let changed = copy_fingerprints(&target_conn, &settings);
    let kinds_changed = changed.iter().find(|t| t.name == "kinds").unwrap();
    assert_eq!(kinds_changed.rows, 500);
    assert_ne!(kinds_changed.checksum, kinds.checksum);
}

#[test]
fn compressed_and_plain_dumps_are_refused() {
    let cluster = Cluster::start().expect("start cluster");
    cluster.create_role("app", "app-pw-refuse").unwrap();
    cluster.create_database("appdb", "app").unwrap();
    let conn = tcp(&cluster, "app", "app-pw-refuse", "appdb");
    pg::connect(&conn)
        .unwrap()
        .batch_execute("CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
        .unwrap();
    let tools = tools_for(&conn);
    for options in [
        DumpOptions::engine_backup(DumpFormat::Custom),
        DumpOptions::uncompressed(DumpFormat::Plain),
    ] {
        let mut out = Vec::new();
        dump_database(&conn, &tools, &options, &mut out).unwrap();
        let err = table_row_sums(&out[..]).unwrap_err().to_string();
        assert!(
            err.contains("compressed") || err.contains("not a pg_dump custom-format"),
            "{err}"
        );
    }
    // A stream cut short is an error, not a partial answer.
    let full = custom_dump(&conn);
    assert!(table_row_sums(&full[..full.len() - 3]).is_err());
}
