//! `apply --dry-run`, `baseline` and `plan` on oVirt-style trees.

mod schema_support;

use holdfast::profile::Profile;
use holdfast::schema::{self, ApplyOptions, Layout, Version};
use schema_support::ovirt_like::{engine_tree, Release};
use schema_support::*;

fn layouts() -> Vec<Layout> {
    Profile::ovirt_engine().schema_layouts
}

fn options(dry_run: bool) -> ApplyOptions {
    ApplyOptions {
        layouts: layouts(),
        dry_run,
        ..ApplyOptions::default()
    }
}

#[test]
fn dry_run_runs_everything_it_can_and_rolls_back() {
    let db = database();
    let tree = tempfile::tempdir().unwrap();
    engine_tree(tree.path(), Release::New);
    let mut said = Said::default();
    let report = schema::apply(&db.params, tree.path(), &options(true), &mut said.sink()).unwrap();
    assert!(report.dry_run);
    assert_eq!(
        report.not_tried,
        vec![(
            "upgrade/04_02_0020_index_images_size.sql".to_string(),
            "CONCURRENTLY at line 1".to_string()
        )]
    );
    assert_eq!(
        report.outcome.installed.len(),
        6,
        "{:?}",
        report.outcome.installed
    );
    assert_eq!(
        db.q("SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"),
        "0"
    );
    assert_eq!(
        db.q("SELECT count(*) FROM pg_namespace WHERE nspname = 'holdfast'"),
        "0"
    );
    assert_eq!(
        db.q("SELECT count(*) FROM pg_db_role_setting WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = 'engine')"),
        "0"
    );

    // The first error is reported and nothing stays.
    std::fs::write(
        tree.path().join("upgrade/04_02_0060_broken.sql"),
        "select 1;\nselect no_such_column from images;\n",
    )
    .unwrap();
    let err = schema::apply(
        &db.params,
        tree.path(),
        &options(true),
        &mut Said::default().sink(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with(
            "upgrade/04_02_0060_broken.sql line 2: ERROR: column \"no_such_column\" does not exist"
        ),
        "{err}"
    );
    assert!(
        err.contains("the database is as it was before this run"),
        "{err}"
    );
    assert_eq!(
        db.q("SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"),
        "0"
    );
}

#[test]
fn baseline_adopts_a_database_and_apply_continues_above_it() {
    let db = database();
    let old = tempfile::tempdir().unwrap();
    engine_tree(old.path(), Release::Old);
    schema::apply(
        &db.params,
        old.path(),
        &options(false),
        &mut Said::default().sink(),
    )
    .unwrap();
    // A database with the objects but without history, as made by other means.
    db.cluster
        .execute(
            "engine",
            "DROP TABLE schema_version; DROP SCHEMA holdfast CASCADE",
        )
        .unwrap();
    let new = tempfile::tempdir().unwrap();
    engine_tree(new.path(), Release::New);
    let recorded = schema::baseline(
        &db.params,
        new.path(),
        &layouts(),
        Version::parse("04010030").unwrap(),
        std::time::Duration::from_secs(5),
        &mut Said::default().sink(),
    );
    // baseline creates schema_version; the base's own table is gone, so it uses oVirt's definition.
    assert_eq!(recorded.unwrap(), 4);
    assert_eq!(
        db.q("SELECT string_agg(version || ':' || state, ',' ORDER BY id) FROM schema_version"),
        "04010000:SKIPPED,04010010:SKIPPED,04010020:SKIPPED,04010030:SKIPPED"
    );
    assert_eq!(
        db.q("SELECT version FROM schema_version WHERE current"),
        "04010030"
    );
    let err = schema::baseline(
        &db.params,
        new.path(),
        &layouts(),
        Version::parse("04010030").unwrap(),
        std::time::Duration::from_secs(5),
        &mut Said::default().sink(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("already has a schema_version history"),
        "{err}"
    );

    let report = schema::apply(
        &db.params,
        new.path(),
        &options(false),
        &mut Said::default().sink(),
    )
    .unwrap();
    assert_eq!(
        report.outcome.installed.len(),
        5,
        "{:?}",
        report.outcome.installed
    );
    assert_eq!(report.to.unwrap().to_string(), "04020050");
    assert!(report.outcome.rebuilt);
}
