//! Scripts that cannot run in a transaction: applied alone with everything before
//! them committed; executable scripts; `--backup-to` restoring the database when a
//! failure comes after committed work.

mod schema_support;

use holdfast::schema::{self, Action, ApplyOptions, Permissions};
use schema_support::*;

#[test]
fn a_non_transactional_script_runs_alone_between_committed_stretches() {
    let db = database();
    let dir = small_tree();
    schema::apply(
        &db.params,
        dir.path(),
        &ApplyOptions::default(),
        &mut Said::default().sink(),
    )
    .unwrap();
    put_generated(dir.path(), 4, 2, 60);
    put_script(
        dir.path(),
        "04_02_0070_index.sql",
        "create index concurrently items_name_idx on items (name);\n\
         insert into upgrade_log (version) values ('04020070');\n",
    );
    put_script(
        dir.path(),
        "04_02_0080_declared.sql",
        "-- holdfast:no-transaction\nalter table items add column declared int;\n",
    );
    put_generated(dir.path(), 4, 2, 90);

    let plan = schema::plan(&db.params, dir.path(), &[], &Permissions::default()).unwrap();
    let alone: Vec<_> = plan
        .steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::Run { alone: Some(why) } => Some(why.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        alone,
        vec![
            "CONCURRENTLY at line 1",
            "declared no-transaction in its header"
        ]
    );

    let mut said = Said::default();
    let report = schema::apply(
        &db.params,
        dir.path(),
        &ApplyOptions::default(),
        &mut said.sink(),
    )
    .unwrap();
    assert_eq!(report.outcome.installed.len(), 4);
    assert!(said.contains("Running 'upgrade/04_02_0070_index.sql' on its own, outside a transaction (CONCURRENTLY at line 1)"));
    assert_eq!(
        db.q("SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_name_idx'::regclass"),
        "t"
    );
    assert_eq!(
        db.q("SELECT version FROM schema_version WHERE current"),
        "04020090"
    );
    assert_eq!(db.count("SELECT count(*) FROM upgrade_log"), 13);
    assert_eq!(db.q("SELECT count(*) FROM GetAllItems()"), "3");
}

#[test]
fn a_failure_after_a_non_transactional_script_keeps_what_committed_and_the_views() {
    let db = database();
    let dir = small_tree();
    schema::apply(
        &db.params,
        dir.path(),
        &ApplyOptions::default(),
        &mut Said::default().sink(),
    )
    .unwrap();
    put_generated(dir.path(), 4, 2, 60);
    put_script(dir.path(), "04_02_0070_vacuum.sql", "vacuum items;\n");
    put_generated(dir.path(), 4, 2, 80);
    put_script(dir.path(), "04_02_0090_broken.sql", "select 1/0;\n");

    let err = schema::apply(
        &db.params,
        dir.path(),
        &ApplyOptions::default(),
        &mut Said::default().sink(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("upgrade/04_02_0090_broken.sql line 1: ERROR: division by zero"),
        "{err}"
    );
    assert!(
        err.contains("earlier parts of this run stayed committed"),
        "{err}"
    );
    // Views and procedures were dropped once, before 0060, and committed with it;
    // after the failure they are recreated on what committed.
    assert!(
        err.contains("views and stored procedures were recreated on what was committed"),
        "{err}"
    );
    // 0060 and the VACUUM committed; 0080 was in the failed transaction
    assert_eq!(
        db.q("SELECT version FROM schema_version WHERE current"),
        "04020070"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM upgrade_log WHERE version IN ('04020060', '04020080')"),
        1
    );
    assert_eq!(db.q("SELECT count(*) FROM GetAllItems()"), "3");
    assert_eq!(db.q("SELECT count(*) FROM items_summary"), "1");
}

#[test]
fn backup_to_restores_the_database_when_a_later_part_fails() {
    let db = database();
    let dir = small_tree();
    schema::apply(
        &db.params,
        dir.path(),
        &ApplyOptions::default(),
        &mut Said::default().sink(),
    )
    .unwrap();
    let before = db.snapshot();
    put_generated(dir.path(), 4, 2, 60);
    put_script(dir.path(), "04_02_0070_vacuum.sql", "vacuum items;\n");
    put_script(
        dir.path(),
        "04_02_0080_broken.sql",
        "select no_such_function();\n",
    );
    let scratch = tempfile::tempdir().unwrap();
    let dump = scratch.path().join("before-upgrade.dump");
    let options = ApplyOptions {
        backup_to: Some(dump.clone()),
        ..ApplyOptions::default()
    };
    let mut said = Said::default();
    let err = schema::apply(&db.params, dir.path(), &options, &mut said.sink())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("upgrade/04_02_0080_broken.sql line 1"),
        "{err}"
    );
    assert!(err.contains("the database was restored from"), "{err}");
    assert!(said.contains("Backing up database 'engine'"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&dump).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(db.snapshot(), before);
}

#[test]
fn executable_scripts_run_as_processes_with_connection_settings() {
    let db = database();
    let dir = small_tree();
    schema::apply(
        &db.params,
        dir.path(),
        &ApplyOptions::default(),
        &mut Said::default().sink(),
    )
    .unwrap();
    let psql = db.cluster.bindir().join("psql");
    let script = dir.path().join("upgrade/04_02_0060_shell.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nset -e\n\
             test -n \"$DBFUNC_DB_PGPASSFILE\" && test \"$DBFUNC_DB_USER\" = engine\n\
             test -z \"$PGPASSWORD\"\n\
             '{}' -w -v ON_ERROR_STOP=1 -c \"insert into upgrade_log (version) values ('04020060')\"\n",
            psql.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let report = schema::apply(
        &db.params,
        dir.path(),
        &ApplyOptions::default(),
        &mut Said::default().sink(),
    )
    .unwrap();
    assert_eq!(
        report.outcome.installed,
        vec!["upgrade/04_02_0060_shell.sh"]
    );
    assert_eq!(
        db.count("SELECT count(*) FROM upgrade_log WHERE version = '04020060'"),
        1
    );
    assert_eq!(
        db.q("SELECT state FROM schema_version WHERE version = '04020060'"),
        "INSTALLED"
    );

    // a failing one is named, and its history row is not written
    let bad = dir.path().join("upgrade/04_02_0070_bad.sh");
    std::fs::write(&bad, "#!/bin/sh\necho 'cannot do it' >&2\nexit 3\n").unwrap();
    std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = schema::apply(
        &db.params,
        dir.path(),
        &ApplyOptions::default(),
        &mut Said::default().sink(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("upgrade/04_02_0070_bad.sh: the executable script failed (exit status: 3): cannot do it"), "{err}");
    assert_eq!(
        db.count("SELECT count(*) FROM schema_version WHERE version = '04020070'"),
        0
    );
}
