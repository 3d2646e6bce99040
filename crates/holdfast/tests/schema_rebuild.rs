//! Views and procedures around the upgrade: `--#source` helpers, pre/post-upgrade
//! scripts, grants kept across the rebuild, and the refresh, drop and recreate
//! commands.

mod schema_support;

use std::time::Duration;

use holdfast::schema::{self, ApplyOptions};
use schema_support::*;

fn apply(db: &Db, dir: &std::path::Path) -> schema::ApplyReport {
    schema::apply(
        &db.params,
        dir,
        &ApplyOptions::default(),
        &mut Said::default().sink(),
    )
    .unwrap()
}

#[test]
fn source_headers_run_their_helpers_first() {
    let db = database();
    let dir = small_tree();
    apply(&db, dir.path());
    std::fs::create_dir(dir.path().join("upgrade/helpers")).unwrap();
    std::fs::write(
        dir.path().join("upgrade/helpers/backfill_sp.sql"),
        "create or replace function __temp_backfill(v text) returns void as $$\n\
         begin insert into upgrade_log (version) values (v); end $$ language plpgsql;\n",
    )
    .unwrap();
    put_script(
        dir.path(),
        "04_02_0060_uses_helper.sql",
        "--#source upgrade/helpers/backfill_sp.sql\nselect __temp_backfill('04020060');\n",
    );
    let mut said = Said::default();
    schema::apply(
        &db.params,
        dir.path(),
        &ApplyOptions::default(),
        &mut said.sink(),
    )
    .unwrap();
    assert!(said.contains("Running helper functions from 'upgrade/helpers/backfill_sp.sql' for 'upgrade/04_02_0060_uses_helper.sql'"));
    assert_eq!(
        db.count("SELECT count(*) FROM upgrade_log WHERE version = '04020060'"),
        1
    );

    put_script(
        dir.path(),
        "04_02_0070_bad_source.sql",
        "--#source create_views.sql\nselect 1;\n",
    );
    let err = schema::apply(
        &db.params,
        dir.path(),
        &ApplyOptions::default(),
        &mut Said::default().sink(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with(
            "upgrade/04_02_0070_bad_source.sql: invalid --#source file 'create_views.sql'"
        ),
        "{err}"
    );
}

#[test]
fn pre_and_post_upgrade_run_around_each_upgrade_only() {
    let db = database();
    let dir = small_tree();
    apply(&db, dir.path());
    apply(&db, dir.path());
    assert_eq!(
        db.q("SELECT string_agg(kind, ',' ORDER BY id) FROM hook_runs"),
        "pre,post"
    );
    put_generated(dir.path(), 4, 2, 60);
    apply(&db, dir.path());
    // pre ran before the script, post after it
    assert_eq!(
        db.q("SELECT string_agg(kind, ',' ORDER BY id) FROM hook_runs"),
        "pre,post,pre,post"
    );
    // a changed view file alone triggers the rebuild (and the hooks)
    let views = dir.path().join("create_views.sql");
    let text = std::fs::read_to_string(&views).unwrap();
    std::fs::write(
        &views,
        format!("{text}CREATE OR REPLACE VIEW extra_view AS SELECT 1 AS one;\n"),
    )
    .unwrap();
    let report = apply(&db, dir.path());
    assert!(report.outcome.rebuilt && report.outcome.installed.is_empty());
    assert_eq!(db.q("SELECT one FROM extra_view"), "1");
    assert_eq!(
        db.count("SELECT count(*) FROM hook_runs WHERE kind = 'post'"),
        3
    );
    // a pre-upgrade failure is reported with its file and line, and nothing changes
    std::fs::write(
        dir.path().join("upgrade/pre_upgrade/0000_config.sql"),
        "select 1;\nselect broken;\n",
    )
    .unwrap();
    let before = db.snapshot();
    let err = schema::apply(
        &db.params,
        dir.path(),
        &ApplyOptions::default(),
        &mut Said::default().sink(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with(
            "upgrade/pre_upgrade/0000_config.sql line 2: ERROR: column \"broken\" does not exist"
        ),
        "{err}"
    );
    assert_eq!(db.snapshot(), before);
}

#[test]
fn grants_on_views_and_functions_survive_the_rebuild() {
    let db = database();
    let dir = small_tree();
    apply(&db, dir.path());
    db.cluster.create_role("reporter", "reporter-pw").unwrap();
    db.cluster
        .execute(
            "engine",
            "SET ROLE engine; GRANT SELECT ON items_view, items_summary TO reporter; \
             GRANT EXECUTE ON FUNCTION GetItemCount() TO reporter; \
             REVOKE EXECUTE ON FUNCTION GetAllItems() FROM PUBLIC; \
             GRANT EXECUTE ON FUNCTION GetAllItems() TO reporter WITH GRANT OPTION",
        )
        .unwrap();
    let acl = |db: &Db| {
        db.q("SELECT string_agg(x, ' ' ORDER BY x) FROM (
                SELECT relname || '=' || relacl::text FROM pg_class WHERE relname IN ('items_view', 'items_summary')
                UNION ALL SELECT proname || '=' || proacl::text FROM pg_proc WHERE proname IN ('getitemcount', 'getallitems')) s(x)")
    };
    let before = acl(&db);
    assert!(before.contains("reporter=r/engine"), "{before}");
    let view_oid = db.q("SELECT 'items_view'::regclass::oid");

    put_generated(dir.path(), 4, 2, 60);
    let report = apply(&db, dir.path());
    assert!(report.outcome.rebuilt);
    assert_ne!(
        db.q("SELECT 'items_view'::regclass::oid"),
        view_oid,
        "the view was recreated"
    );
    assert_eq!(report.outcome.grants_restored, 5);
    let after = acl(&db);
    assert!(
        after.contains("getallitems={engine=X/engine,reporter=X*/engine}"),
        "{after}"
    );
    assert!(
        after.contains("items_summary={engine=arwdDxt/engine,reporter=r/engine}"),
        "{after}"
    );
    assert!(
        after.contains("getitemcount={=X/engine,engine=X/engine,reporter=X/engine}"),
        "{after}"
    );
}

#[test]
fn refresh_drop_and_recreate() {
    let db = database();
    let dir = small_tree();
    apply(&db, dir.path());
    let data = db.q("SELECT string_agg(version, ',' ORDER BY version) FROM upgrade_log");

    // refresh recreates views and procedures and nothing else
    let view_oid = db.q("SELECT 'items_view'::regclass::oid");
    let outcome = schema::refresh(
        &db.params,
        dir.path(),
        &[],
        Duration::from_secs(5),
        &mut Said::default().sink(),
    )
    .unwrap();
    assert!(outcome.rebuilt);
    assert_ne!(db.q("SELECT 'items_view'::regclass::oid"), view_oid);
    assert_eq!(
        db.q("SELECT string_agg(kind, ',' ORDER BY id) FROM hook_runs"),
        "pre,post"
    );
    assert_eq!(
        db.q("SELECT string_agg(version, ',' ORDER BY version) FROM upgrade_log"),
        data
    );

    // drop leaves an empty public schema (extensions stay)
    db.cluster
        .execute(
            "engine",
            "CREATE EXTENSION IF NOT EXISTS pgcrypto SCHEMA public",
        )
        .unwrap();
    schema::drop(
        &db.params,
        Duration::from_secs(5),
        &mut Said::default().sink(),
    )
    .unwrap();
    assert_eq!(
        db.q("SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"),
        "0"
    );
    assert_eq!(
        db.q("SELECT count(*) FROM pg_proc p WHERE pronamespace = 'public'::regnamespace AND NOT EXISTS \
              (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')"),
        "0"
    );
    assert_eq!(
        db.q("SELECT count(*) FROM pg_extension WHERE extname = 'pgcrypto'"),
        "1"
    );

    // recreate = drop + apply, from any state
    apply(&db, dir.path());
    db.cluster
        .execute("engine", "INSERT INTO items (name) VALUES ('added later')")
        .unwrap();
    let report = schema::recreate(
        &db.params,
        dir.path(),
        &ApplyOptions::default(),
        &mut Said::default().sink(),
    )
    .unwrap();
    assert!(report.fresh);
    assert_eq!(db.q("SELECT count(*) FROM items"), "3");
    assert_eq!(db.count("SELECT count(*) FROM schema_version"), 11);
}

#[test]
fn a_rebuild_never_takes_tables_or_triggers_with_it() {
    let db = database();
    let dir = small_tree();
    apply(&db, dir.path());
    // a materialized view on a view would go with a CASCADE: the rebuild refuses
    db.cluster
        .execute(
            "engine",
            "SET ROLE engine; CREATE MATERIALIZED VIEW items_snapshot AS SELECT * FROM items_view",
        )
        .unwrap();
    put_generated(dir.path(), 4, 2, 60);
    let before = db.snapshot();
    let err = schema::apply(
        &db.params,
        dir.path(),
        &ApplyOptions::default(),
        &mut Said::default().sink(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("would also drop materialized view items_snapshot"),
        "{err}"
    );
    assert_eq!(db.snapshot(), before);
    db.cluster
        .execute("engine", "DROP MATERIALIZED VIEW items_snapshot")
        .unwrap();

    // a trigger function is kept (replaced in place), and so is its trigger
    db.cluster
        .execute(
            "engine",
            "SET ROLE engine; CREATE FUNCTION items_touch() RETURNS trigger AS $$ BEGIN NEW.name := upper(NEW.name); RETURN NEW; END $$ LANGUAGE plpgsql; \
             CREATE TRIGGER items_touch BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION items_touch()",
        )
        .unwrap();
    apply(&db, dir.path());
    db.cluster
        .execute("engine", "INSERT INTO items (name) VALUES ('lower')")
        .unwrap();
    assert_eq!(
        db.q("SELECT name FROM items ORDER BY id DESC LIMIT 1"),
        "LOWER"
    );
}
