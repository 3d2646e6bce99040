//! Refusals and failures: a failing script leaves the database as it was; changed
//! applied scripts, duplicate versions, gaps, out-of-order scripts and psql
//! meta-commands are refused with a message naming the file.

mod schema_support;

use std::collections::BTreeSet;

use holdfast::schema::{self, ApplyOptions, Permissions, Version};
use schema_support::*;

fn apply(
    db: &Db,
    dir: &std::path::Path,
    options: &ApplyOptions,
) -> holdfast::Result<schema::ApplyReport> {
    schema::apply(&db.params, dir, options, &mut Said::default().sink())
}

#[test]
fn a_failing_script_in_the_middle_changes_nothing() {
    let db = database();
    let dir = tree(&[(4, 1, 20), (4, 2, 20)]);
    apply(&db, dir.path(), &ApplyOptions::default()).unwrap();
    let before = db.snapshot();

    for step in [210, 220, 230] {
        put_generated(dir.path(), 4, 2, step);
    }
    put_script(
        dir.path(),
        "04_02_0240_broken.sql",
        "-- this one fails on its third statement\n\
         insert into upgrade_log (version) values ('04020240');\n\
         select fn_db_add_column('items', 'broken', 'int');\n\
         update items\n   set name = no_such_column\n where id = 1;\n",
    );
    put_generated(dir.path(), 4, 2, 250);
    let err = apply(&db, dir.path(), &ApplyOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(
            "upgrade/04_02_0240_broken.sql line 5: ERROR: column \"no_such_column\" does not exist"
        ),
        "{err}"
    );
    assert!(
        err.contains("failing statement (line 4): update items"),
        "{err}"
    );
    assert!(
        err.contains("the database is as it was before this run"),
        "{err}"
    );
    // scripts 0210..0230 ran before the failure and were rolled back with it; the
    // views and functions dropped for the upgrade are back
    assert_eq!(db.snapshot(), before);
    assert_eq!(db.q("SELECT count(*) FROM GetAllItems()"), "3");
}

#[test]
fn a_changed_applied_script_stops_apply_until_accepted() {
    let db = database();
    let dir = small_tree();
    apply(&db, dir.path(), &ApplyOptions::default()).unwrap();
    let rel = "upgrade/04_01_0030_step_3.sql";
    let old_sum = db.q(&format!(
        "SELECT checksum FROM schema_version WHERE script = '{rel}'"
    ));
    std::fs::write(dir.path().join(rel), "select 'edited after the fact';\n").unwrap();
    put_generated(dir.path(), 4, 2, 60);

    let status = schema::status(&db.params, dir.path(), &[]).unwrap();
    assert_eq!(status.changed.len(), 1);
    assert_eq!(status.changed[0].script, rel);
    assert_eq!(status.pending.len(), 1);

    let before = db.snapshot();
    let err = apply(&db, dir.path(), &ApplyOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "1 applied script changed after it was applied: {rel} (checksum {old_sum} recorded"
        )),
        "{err}"
    );
    assert!(err.contains("--accept-changed 04010030"), "{err}");
    assert!(
        err.contains("restore the applied content from version control"),
        "{err}"
    );
    assert_eq!(db.snapshot(), before);

    // a line-ending-only change is not a change
    let crlf = std::fs::read_to_string(dir.path().join("upgrade/04_01_0020_step_2.sql"))
        .unwrap()
        .replace('\n', "\r\n");
    std::fs::write(dir.path().join("upgrade/04_01_0020_step_2.sql"), crlf).unwrap();

    let wrong = ApplyOptions {
        permissions: Permissions {
            accept_changed: BTreeSet::from([Version::parse("04010040").unwrap()]),
            ..Permissions::default()
        },
        ..ApplyOptions::default()
    };
    assert!(apply(&db, dir.path(), &wrong).is_err());
    let accept = ApplyOptions {
        permissions: Permissions {
            accept_changed: BTreeSet::from([Version::parse("04010030").unwrap()]),
            ..Permissions::default()
        },
        ..ApplyOptions::default()
    };
    let report = apply(&db, dir.path(), &accept).unwrap();
    assert_eq!(report.accepted.len(), 1);
    assert_eq!(
        report.outcome.installed,
        vec!["upgrade/04_02_0060_step_6.sql"]
    );
    let row = db.q(&format!(
        "SELECT checksum || ' ' || comment FROM schema_version WHERE script = '{rel}'"
    ));
    assert!(
        row.contains(&format!("[changed file accepted; checksum was {old_sum}]")),
        "{row}"
    );
    assert!(schema::status(&db.params, dir.path(), &[])
        .unwrap()
        .changed
        .is_empty());
}

#[test]
fn duplicate_versions_are_refused() {
    let db = database();
    let dir = small_tree();
    put_script(dir.path(), "04_02_0050_other_name.sql", "select 1;\n");
    let err = apply(&db, dir.path(), &ApplyOptions::default())
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "found duplicate version 04020050: upgrade/04_02_0050_other_name.sql and \
         upgrade/04_02_0050_step_5.sql; give one of them a free number"
    );
    assert_eq!(
        db.q("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
        "0"
    );
}

#[test]
fn bad_names_and_meta_commands_are_refused() {
    let db = database();
    let dir = small_tree();
    put_script(dir.path(), "4_02_0060_short.sql", "select 1;\n");
    let err = apply(&db, dir.path(), &ApplyOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(
            "upgrade/4_02_0060_short.sql: upgrade script names must start with the version MM_mm_nnnn"
        ),
        "{err}"
    );
    std::fs::remove_file(dir.path().join("upgrade/4_02_0060_short.sql")).unwrap();
    put_script(
        dir.path(),
        "04_02_0060_meta.sql",
        "select 1;\n\\set ON_ERROR_STOP 1\n",
    );
    let err = apply(&db, dir.path(), &ApplyOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("upgrade/04_02_0060_meta.sql line 2: psql meta-command"),
        "{err}"
    );
    assert_eq!(
        db.q("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
        "0"
    );
}

#[test]
fn the_gap_rule_holds_against_the_database_version() {
    let db = database();
    let dir = small_tree();
    apply(&db, dir.path(), &ApplyOptions::default()).unwrap();
    // alone in its run, 30 above the database's current version 04020050
    put_generated(dir.path(), 4, 2, 80);
    let before = db.snapshot();
    let err = apply(&db, dir.path(), &ApplyOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("upgrade/04_02_0080_step_8.sql: illegal version 04020080, more than 10 above the last installed version 04020050; renumber it between 04020051 and 04020060"),
        "{err}"
    );
    assert_eq!(db.snapshot(), before);
    // a new minor version starts its own numbering
    std::fs::remove_file(dir.path().join("upgrade/04_02_0080_step_8.sql")).unwrap();
    put_generated(dir.path(), 4, 3, 10);
    put_generated(dir.path(), 4, 3, 20);
    apply(&db, dir.path(), &ApplyOptions::default()).unwrap();
    assert_eq!(
        db.q("SELECT version FROM schema_version WHERE current"),
        "04030020"
    );
}

#[test]
fn out_of_order_scripts_need_permission() {
    let db = database();
    let dir = small_tree();
    apply(&db, dir.path(), &ApplyOptions::default()).unwrap();
    put_script(
        dir.path(),
        "04_02_0015_late_backport.sql",
        "insert into upgrade_log (version) values ('04020015');\n",
    );
    let err = apply(&db, dir.path(), &ApplyOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("below the database's current version 04020050"),
        "{err}"
    );
    assert!(err.contains("--allow-out-of-order"), "{err}");
    let allow = ApplyOptions {
        permissions: Permissions {
            allow_out_of_order: true,
            ..Permissions::default()
        },
        ..ApplyOptions::default()
    };
    let report = apply(&db, dir.path(), &allow).unwrap();
    assert_eq!(
        report.outcome.installed,
        vec!["upgrade/04_02_0015_late_backport.sql"]
    );
    // the current version stays the highest one
    assert_eq!(
        db.q("SELECT version FROM schema_version WHERE current"),
        "04020050"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM upgrade_log WHERE version = '04020015'"),
        1
    );
}

#[test]
fn a_database_with_foreign_tables_is_not_taken_over() {
    let db = database();
    db.cluster.execute("engine", "CREATE TABLE public.someone_elses (id int); ALTER TABLE public.someone_elses OWNER TO engine").unwrap();
    let err = apply(&db, small_tree().path(), &ApplyOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("has tables but no schema_version table"),
        "{err}"
    );
}
