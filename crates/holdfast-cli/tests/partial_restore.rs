//! Partial restore into a running database: one table (under a new name or
//! its own), one schema, one database beside the live one, from an archive
//! and from a repository snapshot; every other table byte-identical before
//! and after (checksums of every table's rows, and pg_dump's definitions),
//! and refusals and failed loads leave the database exactly as it was.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use support::*;

/// The sample with, in its engine database, tables of our own: a parent, a
/// child with a serial key, an index, a foreign key and a grant, and a
/// schema with a table; backed up with the ovirt-engine profile.
fn prepared() -> Sample {
    let s = Sample::start();
    s.cluster
        .execute(
            "engine",
            "CREATE ROLE hf_reader NOLOGIN;
             SET ROLE engine;
             CREATE TABLE hf_parent (id int PRIMARY KEY, name text NOT NULL);
             CREATE TABLE hf_items (
                 id serial PRIMARY KEY,
                 parent_id int NOT NULL REFERENCES hf_parent (id),
                 label text NOT NULL);
             CREATE INDEX hf_items_label_idx ON hf_items (label);
             COMMENT ON TABLE hf_items IS 'items of a parent';
             GRANT SELECT ON hf_items TO hf_reader;
             INSERT INTO hf_parent SELECT g, 'parent ' || g FROM generate_series(1, 5) g;
             INSERT INTO hf_items (parent_id, label)
               SELECT 1 + g % 5, 'item ' || g FROM generate_series(1, 50) g;
             CREATE SCHEMA hf_audit;
             CREATE TABLE hf_audit.events (id bigserial PRIMARY KEY, what text NOT NULL);
             INSERT INTO hf_audit.events (what) SELECT 'event ' || g FROM generate_series(1, 7) g;",
        )
        .expect("create our tables");
    s.holdfast(&[
        "backup",
        "--profile",
        "ovirt-engine",
        "--file",
        "env.backup",
        "--log",
        "backup.log",
    ])
    .ok();
    // Life goes on after the backup.
    s.cluster
        .execute(
            "engine",
            "SET ROLE engine;
             DELETE FROM hf_items WHERE id > 40;
             UPDATE hf_items SET label = 'changed' WHERE id <= 10;
             INSERT INTO hf_audit.events (what) VALUES ('after the backup');",
        )
        .expect("change data");
    s
}

/// What must not change: every table's rows, and pg_dump's definitions of
/// everything (without the objects a test restores, named by `leave_out`
/// patterns for `pg_dump -T` / `-N`).
#[derive(Debug, PartialEq, Eq)]
struct State {
    tables: BTreeMap<String, (i64, String)>,
    schema: String,
}

fn state(s: &Sample, exclude: &[&str]) -> State {
    let mut tables = checksums(&s.engine("engine"));
    tables.retain(|name, _| !exclude.iter().any(|x| excluded(name, x)));
    let mut cmd = Command::new(s.cluster.bindir().join("pg_dump"));
    cmd.args(["-s", "-h"]).arg(s.cluster.socket_dir()).args([
        "-p",
        &s.cluster.port().to_string(),
        "-U",
        "postgres",
    ]);
    for x in exclude {
        match x.strip_prefix("schema:") {
            Some(schema) => cmd.args(["-N", schema]),
            None => cmd.args(["-T", &format!("{x}*")]),
        };
    }
    let out = cmd.arg("engine").output().expect("run pg_dump");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // pg_dump's \restrict key is random per run.
    let schema = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n");
    State { tables, schema }
}

fn excluded(table: &str, pattern: &str) -> bool {
    match pattern.strip_prefix("schema:") {
        Some(schema) => table.starts_with(&format!("{schema}.")),
        None => table.starts_with(pattern),
    }
}

fn text(s: &Sample, sql: &str) -> String {
    s.cluster
        .query_text("engine", sql)
        .expect("query")
        .unwrap_or_default()
}

fn admin(s: &Sample) -> String {
    format!("--admin-host={}", s.cluster.socket_dir().display())
}

/// `holdfast restore --profile ovirt-engine --file env.backup --scope db ARGS`.
fn partial(s: &Sample, args: &[&str]) -> Run {
    let mut all = vec![
        "restore",
        "--profile",
        "ovirt-engine",
        "--file",
        "env.backup",
        "--scope",
        "db",
    ];
    all.extend_from_slice(args);
    s.holdfast(&all)
}

#[test]
fn one_table_under_a_new_name_leaves_every_other_table_byte_identical() {
    let s = prepared();
    let before = state(&s, &["public.hf_items_restored"]);
    let admin = admin(&s);
    let r = partial(
        &s,
        &[
            "--only-table",
            "public.hf_items",
            "--as",
            "hf_items_restored",
            &admin,
            "--log",
            "partial.log",
        ],
    );
    r.ok();
    eprintln!("{}", r.stdout);
    assert!(
        r.stdout.contains(
            "Restored table public.hf_items as public.hf_items_restored into database 'engine': 50 rows"
        ),
        "{}",
        r.stdout
    );
    assert!(r
        .stdout
        .contains("leaving out foreign key hf_items_parent_id_fkey"));
    assert!(r.stdout.trim_end().ends_with("Done."), "{}", r.stdout);
    let log = std::fs::read_to_string(s.path("partial.log")).unwrap();
    assert!(log.contains("Restored table public.hf_items as public.hf_items_restored"));

    // The copy holds the archive's rows, with its key, index and sequence.
    assert_eq!(text(&s, "SELECT count(*) FROM hf_items_restored"), "50");
    assert_eq!(
        text(
            &s,
            "SELECT count(*) FROM hf_items_restored WHERE label = 'changed'"
        ),
        "0"
    );
    assert_eq!(
        text(
            &s,
            "SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes \
              WHERE tablename = 'hf_items_restored'"
        ),
        "hf_items_restored_label_idx,hf_items_restored_pkey"
    );
    assert_eq!(
        text(&s, "SELECT last_value FROM hf_items_restored_id_seq"),
        "50"
    );
    assert_eq!(
        text(
            &s,
            "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'hf_items_restored'"
        ),
        "engine"
    );
    // Every other table, and every definition, as before.
    assert_eq!(state(&s, &["public.hf_items_restored"]), before);
    // No scratch database is left.
    assert_eq!(
        s.cluster
            .query_text(
                "postgres",
                "SELECT count(*) FROM pg_database WHERE datname LIKE 'holdfast_scratch%'"
            )
            .unwrap()
            .as_deref(),
        Some("0")
    );

    // The same name again: refused before anything is written.
    let again = partial(
        &s,
        &[
            "--only-table",
            "public.hf_items",
            "--as",
            "hf_items_restored",
            &admin,
        ],
    );
    again.fails_with("public.hf_items_restored");
    again.fails_with("choose another name with --as");
    assert_eq!(state(&s, &["public.hf_items_restored"]), before);
}

#[test]
fn refusals_and_a_failed_load_leave_the_database_as_it_was() {
    let s = prepared();
    let before = state(&s, &[]);
    let refused = |args: &[&str], text: &str| {
        let r = partial(&s, args);
        r.fails_with(text);
        assert_eq!(r.stderr.trim().lines().count(), 1, "one line: {}", r.stderr);
        assert_eq!(state(&s, &[]), before, "after {args:?}");
    };
    // (b) onto an existing table without --as.
    refused(
        &["--only-table", "public.hf_items", "--no-restore-permissions"],
        "table public.hf_items already exists in database 'engine'; restore it under another name with --as",
    );
    refused(
        &["--only-table", "public.nope", "--no-restore-permissions"],
        "holds no table public.nope",
    );
    refused(
        &["--only-table", "hf_items", "--no-restore-permissions"],
        "name the table with its schema",
    );
    refused(
        &["--only-schema", "hf_audit", "--no-restore-permissions"],
        "schema hf_audit already exists",
    );
    refused(
        &["--only-table", "public.hf_items"],
        "--restore-permissions",
    );
    refused(
        &["--only-database", "db", "--no-restore-permissions"],
        "name the new database with --as",
    );
    refused(
        &[
            "--only-table",
            "public.hf_items",
            "--only-schema",
            "hf_audit",
            "--as",
            "x",
        ],
        "--as renames one table or one schema",
    );
    let unscoped = s.holdfast(&[
        "restore",
        "--profile",
        "ovirt-engine",
        "--file",
        "env.backup",
        "--only-table",
        "public.hf_items",
        "--no-restore-permissions",
    ]);
    unscoped.fails_with("name the one to restore from with --scope");

    // (e) A role the table's grants need is missing: refused with
    // --restore-permissions, before anything is written.
    s.cluster
        .execute(
            "engine",
            "SET ROLE engine; DROP TABLE hf_items; RESET ROLE;
             DROP OWNED BY hf_reader; DROP ROLE hf_reader;",
        )
        .unwrap();
    let before = state(&s, &[]);
    let r = partial(
        &s,
        &["--only-table", "public.hf_items", "--restore-permissions"],
    );
    r.fails_with("role 'hf_reader' needed by what is restored");
    assert_eq!(state(&s, &[]), before);

    // (e) A load that fails half-way (the foreign key finds its parent rows
    // gone, after the table, its rows and its index were created) is one
    // transaction: nothing of it is left.
    s.cluster
        .execute(
            "engine",
            "SET ROLE engine; DELETE FROM hf_parent WHERE id = 3;",
        )
        .unwrap();
    let before = state(&s, &[]);
    let r = partial(
        &s,
        &[
            "--only-table",
            "public.hf_items",
            "--no-restore-permissions",
        ],
    );
    eprintln!("{}", r.stderr);
    r.fails_with("hf_items_parent_id_fkey");
    r.fails_with("rolled back");
    assert_eq!(state(&s, &[]), before);
    assert_eq!(
        text(
            &s,
            "SELECT count(*) FROM pg_class WHERE relname LIKE 'hf_items%'"
        ),
        "0"
    );

    // With the parent row back, the table comes back under its own name
    // with its foreign key, index and sequence.
    s.cluster
        .execute(
            "engine",
            "SET ROLE engine; INSERT INTO hf_parent VALUES (3, 'parent 3');",
        )
        .unwrap();
    let before = state(&s, &["public.hf_items"]);
    let r = partial(
        &s,
        &[
            "--only-table",
            "public.hf_items",
            "--no-restore-permissions",
        ],
    );
    r.ok();
    assert!(
        r.stdout
            .contains("Restored table public.hf_items into database 'engine': 50 rows"),
        "{}",
        r.stdout
    );
    assert_eq!(
        text(
            &s,
            "SELECT count(*) FROM pg_constraint WHERE conname = 'hf_items_parent_id_fkey'"
        ),
        "1"
    );
    assert_eq!(text(&s, "SELECT last_value FROM hf_items_id_seq"), "50");
    assert_eq!(
        text(
            &s,
            "SELECT obj_description('hf_items'::regclass, 'pg_class')"
        ),
        "items of a parent"
    );
    assert_eq!(state(&s, &["public.hf_items"]), before);
}

#[test]
fn a_schema_and_a_database_beside_the_live_one() {
    let s = prepared();
    let admin = admin(&s);
    // (c) a schema under a new name, then under its own once dropped.
    let before = state(&s, &["schema:hf_audit_old"]);
    let r = partial(
        &s,
        &["--only-schema", "hf_audit", "--as", "hf_audit_old", &admin],
    );
    r.ok();
    assert!(
        r.stdout.contains(
            "Restored schema hf_audit as hf_audit_old into database 'engine': 1 tables, 7 rows"
        ),
        "{}",
        r.stdout
    );
    assert_eq!(
        text(
            &s,
            "SELECT count(*) FROM hf_audit_old.events WHERE what = 'after the backup'"
        ),
        "0"
    );
    assert_eq!(state(&s, &["schema:hf_audit_old"]), before);

    s.cluster
        .execute("engine", "SET ROLE engine; DROP SCHEMA hf_audit CASCADE;")
        .unwrap();
    let before = state(&s, &["schema:hf_audit"]);
    partial(&s, &["--only-schema", "hf_audit", "--restore-permissions"]).ok();
    assert_eq!(text(&s, "SELECT count(*) FROM hf_audit.events"), "7");
    assert_eq!(state(&s, &["schema:hf_audit"]), before);

    // (d) the whole database beside the live one.
    let before = state(&s, &[]);
    let r = partial(
        &s,
        &[
            "--only-database",
            "db",
            "--as",
            "engine_yesterday",
            "--no-restore-permissions",
            &admin,
        ],
    );
    r.ok();
    assert!(r.stdout.contains("as 'engine_yesterday'"), "{}", r.stdout);
    assert_eq!(state(&s, &[]), before, "the live database untouched");
    let copy = checksums(&s.engine("engine_yesterday"));
    assert_eq!(copy["public.hf_items"].0, 50);
    assert_eq!(copy["hf_audit.events"].0, 7);
    partial(
        &s,
        &[
            "--only-database",
            "db",
            "--as",
            "engine_yesterday",
            "--no-restore-permissions",
            &admin,
        ],
    )
    .fails_with("database 'engine_yesterday' already exists");
}

#[test]
fn one_table_from_a_repository_snapshot() {
    let s = prepared();
    let password_file = s.path("repo-password");
    std::fs::write(&password_file, "correct horse battery staple\n").unwrap();
    std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let repo = s.path("repo");
    let repo_args = |verb: &str, args: &[&str]| {
        let mut all = vec![
            "repo".to_string(),
            verb.to_string(),
            "--repo".into(),
            repo.display().to_string(),
            "--password-file".into(),
            password_file.display().to_string(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        s.holdfast(&all)
    };
    repo_args("init", &[]).ok();
    repo_args("backup", &["--profile", "ovirt-engine"]).ok();
    s.cluster
        .execute("engine", "SET ROLE engine; DELETE FROM hf_items;")
        .unwrap();
    let before = state(&s, &["public.hf_items_snap"]);
    let admin = admin(&s);
    let r = repo_args(
        "restore",
        &[
            "latest",
            "--profile",
            "ovirt-engine",
            "--scope",
            "db",
            "--only-table",
            "public.hf_items",
            "--as",
            "public.hf_items_snap",
            &admin,
        ],
    );
    r.ok();
    assert!(
        r.stdout
            .contains("as public.hf_items_snap into database 'engine': 40 rows"),
        "{}",
        r.stdout
    );
    assert_eq!(state(&s, &["public.hf_items_snap"]), before);
}

#[test]
fn engine_backup_archives_plain_dumps_and_scratch_databases_of_killed_runs() {
    let s = prepared();
    let admin = admin(&s);
    // A database a killed run left (no process has that id: above pid_max).
    s.cluster
        .execute("postgres", "CREATE DATABASE holdfast_scratch_4194999_0")
        .unwrap();
    // engine-backup's archive: its custom dump compressed by pg_dump itself.
    s.engine_backup(&["--mode=backup", "--file=engine.backup", "--log=eb.log"])
        .ok();
    let before = state(&s, &["public.hf_items_eb"]);
    let r = s.holdfast(&[
        "restore",
        "--profile",
        "ovirt-engine",
        "--file",
        "engine.backup",
        "--scope",
        "db",
        "--only-table",
        "public.hf_items",
        "--as",
        "hf_items_eb",
        &admin,
    ]);
    r.ok();
    assert!(
        r.stdout
            .contains("as public.hf_items_eb into database 'engine': 40 rows"),
        "{}",
        r.stdout
    );
    assert_eq!(state(&s, &["public.hf_items_eb"]), before);
    assert_eq!(
        s.cluster
            .query_text(
                "postgres",
                "SELECT count(*) FROM pg_database WHERE datname LIKE 'holdfast_scratch%'"
            )
            .unwrap()
            .as_deref(),
        Some("0"),
        "the killed run's scratch database is dropped"
    );

    // A plain dump has no table of contents: refused, saying what to do.
    s.holdfast(&[
        "backup",
        "--profile",
        "ovirt-engine",
        "--dump-format",
        "plain",
        "--file",
        "plain.backup",
    ])
    .ok();
    let before = state(&s, &[]);
    s.holdfast(&[
        "restore",
        "--profile",
        "ovirt-engine",
        "--file",
        "plain.backup",
        "--scope",
        "db",
        "--only-table",
        "public.hf_items",
        "--as",
        "x",
        &admin,
    ])
    .fails_with("is plain SQL, which has no table of contents to pick a table or schema from; restore the whole database beside the live one with --only-database db --as NEWNAME");
    assert_eq!(state(&s, &[]), before);
    // ... which works for a plain dump too.
    s.holdfast(&[
        "restore",
        "--profile",
        "ovirt-engine",
        "--file",
        "plain.backup",
        "--only-database",
        "db",
        "--as",
        "engine_plain",
        &admin,
    ])
    .ok();
    assert_eq!(
        checksums(&s.engine("engine_plain"))["public.hf_items"].0,
        40
    );
    assert_eq!(state(&s, &[]), before);
}
