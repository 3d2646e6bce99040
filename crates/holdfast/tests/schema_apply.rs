//! Fresh apply, no-op re-apply and apply after adding scripts, on a synthetic tree
//! of 300 scripts across four minor versions.

mod schema_support;

use holdfast::schema::{self, Action, ApplyOptions, Permissions};
use md5::{Digest, Md5};
use schema_support::*;

#[test]
fn fresh_apply_then_noop_then_added_scripts() {
    let db = database();
    let dir = tree(&[(4, 1, 75), (4, 2, 75), (4, 3, 75), (4, 4, 75)]);
    let options = ApplyOptions::default();

    // plan on the empty database touches nothing
    let plan = schema::plan(&db.params, dir.path(), &[], &Permissions::default()).unwrap();
    assert!(plan.fresh && plan.rebuild);
    assert_eq!(plan.steps.len(), 301);
    let doc: serde_json::Value = serde_json::from_str(&plan.to_json()).unwrap();
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["fresh"], true);
    assert_eq!(doc["steps"].as_array().unwrap().len(), 301);
    assert_eq!(
        doc["steps"][0]["version"],
        plan.steps[0].version.to_string()
    );
    assert_eq!(
        db.q("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
        "0"
    );

    // fresh apply
    let mut said = Said::default();
    let started = std::time::Instant::now();
    let report = schema::apply(&db.params, dir.path(), &options, &mut said.sink()).unwrap();
    eprintln!("fresh apply of 301 scripts: {:?}", started.elapsed());
    assert!(report.fresh);
    assert_eq!(report.to.unwrap().to_string(), "04040750");
    assert_eq!(report.outcome.installed.len(), 300);
    assert!(said.contains("Creating fresh schema"));
    assert_eq!(db.count("SELECT count(*) FROM schema_version"), 301);
    assert_eq!(
        db.count("SELECT count(*) FROM schema_version WHERE state = 'INSTALLED'"),
        301
    );
    assert_eq!(
        db.q("SELECT version FROM schema_version WHERE current"),
        "04040750"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM schema_version WHERE current"),
        1
    );
    assert_eq!(db.count("SELECT count(*) FROM upgrade_log"), 300);
    assert_eq!(
        db.q("SELECT installed_by FROM schema_version ORDER BY id DESC LIMIT 1"),
        APP_USER
    );
    // the checksum is md5sum of the file, as oVirt stores it
    let rel = "upgrade/04_02_0370_step_37.sql";
    let expected = hex::encode(Md5::digest(std::fs::read(dir.path().join(rel)).unwrap()));
    assert_eq!(
        db.q(&format!(
            "SELECT checksum FROM schema_version WHERE script = '{rel}'"
        )),
        expected
    );
    assert_eq!(db.q("SELECT count(*) FROM items_summary"), "1");
    assert_eq!(db.q("SELECT count(*) FROM GetAllItems()"), "3");
    assert_eq!(
        db.q("SELECT string_agg(kind, ',' ORDER BY id) FROM hook_runs"),
        "pre,post"
    );
    // all scripts ran in version order
    assert_eq!(
        db.q("SELECT bool_and(ok) FROM (SELECT version > lag(version, 1, '') OVER (ORDER BY applied_at) AS ok FROM upgrade_log) s"),
        "t"
    );

    // no-op re-apply: nothing changes, not even the views
    let before = db.snapshot();
    let view_oid = db.q("SELECT 'items_view'::regclass::oid");
    let mut said = Said::default();
    let started = std::time::Instant::now();
    let report = schema::apply(&db.params, dir.path(), &options, &mut said.sink()).unwrap();
    eprintln!("no-op re-apply: {:?}", started.elapsed());
    assert!(!report.fresh && !report.outcome.rebuilt);
    assert!(report.outcome.installed.is_empty());
    assert!(said.contains("Database is up to date."));
    assert_eq!(db.snapshot(), before);
    assert_eq!(db.q("SELECT 'items_view'::regclass::oid"), view_oid);
    let status = schema::status(&db.params, dir.path(), &[]).unwrap();
    assert!(status.pending.is_empty() && status.changed.is_empty() && status.missing.is_empty());
    assert_eq!(status.current.unwrap().to_string(), "04040750");

    // add scripts: one that widens a column the views use, one in a new minor
    put_generated(dir.path(), 4, 4, 760);
    put_script(
        dir.path(),
        "04_05_0010_widen_name.sql",
        "alter table items alter column name type varchar(900);\n\
         insert into upgrade_log (version) values ('04050010');\n",
    );
    let plan = schema::plan(&db.params, dir.path(), &[], &Permissions::default()).unwrap();
    assert!(!plan.fresh && plan.rebuild);
    assert_eq!(
        plan.steps
            .iter()
            .map(|s| s.script.as_str())
            .collect::<Vec<_>>(),
        vec![
            "upgrade/04_04_0760_step_76.sql",
            "upgrade/04_05_0010_widen_name.sql"
        ]
    );
    assert!(plan
        .steps
        .iter()
        .all(|s| s.action == Action::Run { alone: None }));
    assert_eq!(db.snapshot(), before, "plan must not touch the database");

    let report = schema::apply(
        &db.params,
        dir.path(),
        &options,
        &mut Said::default().sink(),
    )
    .unwrap();
    assert_eq!(report.from.unwrap().to_string(), "04040750");
    assert_eq!(report.to.unwrap().to_string(), "04050010");
    assert_eq!(report.outcome.installed.len(), 2);
    assert!(report.outcome.rebuilt);
    assert_eq!(db.count("SELECT count(*) FROM upgrade_log"), 302);
    assert_eq!(
        db.q("SELECT character_maximum_length FROM information_schema.columns WHERE table_name = 'items_view' AND column_name = 'name'"),
        "900"
    );
    assert_eq!(
        db.q("SELECT string_agg(kind, ',' ORDER BY id) FROM hook_runs"),
        "pre,post,pre,post"
    );
    assert_eq!(
        db.q("SELECT version FROM schema_version WHERE current"),
        "04050010"
    );
}

#[test]
fn identical_content_is_recorded_skipped() {
    let db = database();
    let dir = small_tree();
    let body = "select fn_db_add_column('items', 'extra', 'text');\n";
    put_script(dir.path(), "04_02_0060_add_extra.sql", body);
    put_script(dir.path(), "04_02_0070_really_add_extra.sql", body);
    schema::apply(
        &db.params,
        dir.path(),
        &ApplyOptions::default(),
        &mut Said::default().sink(),
    )
    .unwrap();
    assert_eq!(
        db.q("SELECT state || ' ' || comment FROM schema_version WHERE version = '04020070'"),
        "SKIPPED Installed already by 04020060"
    );
    assert_eq!(
        db.q("SELECT version FROM schema_version WHERE current"),
        "04020070"
    );
}

#[test]
fn manifest_layout_without_views() {
    let db = database();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(
        root.join("holdfast-schema.toml"),
        "base = [\"schema.sql\"]\nhelpers = []\nviews = []\nprocedures = []\n\
         upgrade = \"migrations\"\npre_upgrade = \"hooks/pre\"\npost_upgrade = \"hooks/post\"\n",
    )
    .unwrap();
    std::fs::write(root.join("schema.sql"), "create table t (id int);\n").unwrap();
    std::fs::create_dir(root.join("migrations")).unwrap();
    std::fs::write(
        root.join("migrations/01_00_0010_add.sql"),
        "alter table t add column x int;\n",
    )
    .unwrap();
    std::fs::write(
        root.join("migrations/01_00_0020_view.sql"),
        "create view keep_me as select * from t;\n",
    )
    .unwrap();
    let report = schema::apply(
        &db.params,
        root,
        &ApplyOptions::default(),
        &mut Said::default().sink(),
    )
    .unwrap();
    assert_eq!(report.to.unwrap().to_string(), "01000020");
    // the history table was created by holdfast, and a view the layout does not own stays
    assert_eq!(db.count("SELECT count(*) FROM schema_version"), 2);
    std::fs::write(
        root.join("migrations/01_00_0030_more.sql"),
        "alter table t add column y int;\n\
         create function t_count() returns bigint language sql\n\
         begin atomic\n  select count(*) from t;\nend;\n",
    )
    .unwrap();
    schema::apply(
        &db.params,
        root,
        &ApplyOptions::default(),
        &mut Said::default().sink(),
    )
    .unwrap();
    assert_eq!(
        db.q("SELECT count(*) FROM pg_views WHERE viewname = 'keep_me'"),
        "1"
    );
}
