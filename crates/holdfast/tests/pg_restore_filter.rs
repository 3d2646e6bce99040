//! The table-of-contents and plain-dump filters: a database using an extension
//! (created by the superuser, as provisioning does) restores as its
//! non-superuser owner, where an unfiltered pg_restore fails.

mod pg_support;

use std::process::Stdio;

use holdfast::pg::{
    self, dump_database, restore_custom, restore_plain, table_checksums, ClientCommand, DumpFormat,
    DumpOptions, PgTools, RestoreOptions,
};
use pg_support::tcp;
use pgsandbox::Cluster;

const APP_PW: &str = "app\\pw:with-colon";

fn prepare(cluster: &Cluster, db: &str) {
    cluster
        .execute(
            "postgres",
            &format!("CREATE DATABASE {db} OWNER app TEMPLATE template0"),
        )
        .unwrap();
    cluster
        .execute(db, "CREATE EXTENSION \"uuid-ossp\"")
        .unwrap();
}

#[test]
fn existing_extensions_are_not_restored_again() {
    let source = Cluster::start().expect("start source cluster");
    source.create_role("app", APP_PW).unwrap();
    prepare(&source, "appdb");
    let src = tcp(&source, "app", APP_PW, "appdb");
    pg::connect(&src)
        .unwrap()
        .batch_execute(
            "CREATE TABLE items (id uuid PRIMARY KEY DEFAULT uuid_generate_v5(uuid_ns_url(), 'x'), n int);
             INSERT INTO items (n) VALUES (1);
             INSERT INTO items (id, n) SELECT uuid_generate_v3(uuid_ns_dns(), g::text), g FROM generate_series(2, 50) g;",
        )
        .unwrap();
    let before = table_checksums(&mut pg::connect(&src).unwrap()).unwrap();
    let tools = PgTools::for_server(
        pg::database_info(&mut pg::connect(&src).unwrap())
            .unwrap()
            .server_version_num,
    )
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let custom = dir.path().join("appdb.custom");
    dump_database(
        &src,
        &tools,
        &DumpOptions::uncompressed(DumpFormat::Custom),
        &mut std::fs::File::create(&custom).unwrap(),
    )
    .unwrap();
    let mut plain = Vec::new();
    dump_database(
        &src,
        &tools,
        &DumpOptions::engine_backup(DumpFormat::Plain),
        &mut plain,
    )
    .unwrap();

    let target = Cluster::start().expect("start target cluster");
    target.create_role("app", APP_PW).unwrap();

    // Control: pg_restore of the whole table of contents fails for the owner.
    prepare(&target, "unfiltered");
    let mut unfiltered = ClientCommand::connected(
        &tools,
        "pg_restore",
        &tcp(&target, "app", APP_PW, "unfiltered"),
    )
    .unwrap();
    unfiltered.arg(&custom);
    let finished = unfiltered
        .spawn(Stdio::null(), Stdio::null())
        .unwrap()
        .wait()
        .unwrap();
    assert!(!finished.success(), "{}", finished.stderr);
    assert!(
        finished
            .stderr
            .contains("must be owner of extension uuid-ossp"),
        "{}",
        finished.stderr
    );

    prepare(&target, "custom_restored");
    let report = restore_custom(
        &tcp(&target, "app", APP_PW, "custom_restored"),
        &tools,
        &custom,
        &RestoreOptions {
            jobs: 2,
            restore_permissions: true,
            restore_owners: true,
        },
    )
    .unwrap();
    assert_eq!(report.skipped.len(), 2, "{:?}", report.skipped);
    assert!(report
        .skipped
        .iter()
        .any(|l| l.contains("EXTENSION - uuid-ossp")));
    assert!(
        report
            .skipped
            .iter()
            .any(|l| l.contains("COMMENT - EXTENSION \"uuid-ossp\"")
                || l.contains("COMMENT - EXTENSION uuid-ossp")),
        "{:?}",
        report.skipped
    );
    let after =
        table_checksums(&mut pg::connect(&tcp(&target, "app", APP_PW, "custom_restored")).unwrap())
            .unwrap();
    assert_eq!(after, before);

    prepare(&target, "plain_restored");
    let report = restore_plain(
        &tcp(&target, "app", APP_PW, "plain_restored"),
        &tools,
        &mut plain.as_slice(),
    )
    .unwrap();
    assert_eq!(report.skipped.len(), 1, "{:?}", report.skipped);
    assert!(report.skipped[0].starts_with("COMMENT ON EXTENSION \"uuid-ossp\""));
    let after =
        table_checksums(&mut pg::connect(&tcp(&target, "app", APP_PW, "plain_restored")).unwrap())
            .unwrap();
    assert_eq!(after, before);
}
