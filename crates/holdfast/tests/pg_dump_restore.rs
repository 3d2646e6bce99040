//! Dump and restore between real clusters: the fixture environment dumped by its
//! owning roles over TCP (custom and plain), restored into fresh databases of
//! another cluster with and without permissions, and compared; and the dumps
//! inside the engine-backup 4.5 archives restored and compared with the README.

mod pg_support;

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use holdfast::pg::{
    self, database_info, dump_database, large_objects, list_toc, object_inventory, read_toc,
    restore_custom, restore_plain, sequences, table_checksums, ConnParams, DumpFormat, DumpOptions,
    LargeObject, ObjectInventory, PgTools, RestoreOptions, SequenceValue, TableChecksum,
};
use pg_support::*;
use pgsandbox::Cluster;

/// Everything compared between a source database and its restored copy.
#[derive(Debug, PartialEq)]
struct Content {
    checksums: Vec<TableChecksum>,
    sequences: Vec<SequenceValue>,
    large_objects: Vec<LargeObject>,
}

fn content(conn: &ConnParams) -> (Content, ObjectInventory) {
    let mut client = pg::connect(conn).unwrap();
    (
        Content {
            checksums: table_checksums(&mut client).unwrap(),
            sequences: sequences(&mut client).unwrap(),
            large_objects: large_objects(&mut client).unwrap(),
        },
        object_inventory(&mut client).unwrap(),
    )
}

fn tools_for(conn: &ConnParams) -> PgTools {
    let info = database_info(&mut pg::connect(conn).unwrap()).unwrap();
    PgTools::for_server(info.server_version_num).unwrap()
}

/// The inventory without grants: what must match when privileges were not restored.
fn without_grants(mut inv: ObjectInventory) -> ObjectInventory {
    inv.grants.clear();
    inv
}

#[test]
fn fixture_databases_dump_and_restore_into_another_cluster() {
    let source = Cluster::start().expect("start source cluster");
    load_environment(&source);
    let target = Cluster::start().expect("start target cluster");
    target.create_role("engine", ENGINE_PW).unwrap();
    target.create_role("ovirt_engine_history", DWH_PW).unwrap();
    let tools = tools_for(&engine(&source, "engine"));
    let dir = tempfile::tempdir().unwrap();

    type Connect = fn(&Cluster, &str) -> ConnParams;
    let databases: [(&str, &str, Connect); 2] = [
        ("engine", "engine", engine),
        ("ovirt_engine_history", "ovirt_engine_history", dwh),
    ];
    let mut custom_dumps: Vec<PathBuf> = Vec::new();
    for (db, owner, connect) in databases {
        let (before, before_inv) = content(&connect(&source, db));

        // Custom dump, uncompressed, streamed into a file.
        let custom = dir.path().join(format!("{db}.custom"));
        let report = dump_database(
            &connect(&source, db),
            &tools,
            &DumpOptions::uncompressed(DumpFormat::Custom),
            &mut File::create(&custom).unwrap(),
        )
        .unwrap();
        assert_eq!(report.bytes, std::fs::metadata(&custom).unwrap().len());
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
        assert_eq!(report.pg_dump_version, tools.version);
        assert!(!report.command.contains(ENGINE_PW) && !report.command.contains(DWH_PW));
        assert!(std::fs::read(&custom).unwrap().starts_with(b"PGDMP"));
        let toc = list_toc(&tools, &custom).unwrap();
        // Read as a stream of its compressed copy, of which pg_restore reads
        // only the head, the table of contents and the roles are the same.
        let compressed = zstd::encode_all(File::open(&custom).unwrap(), 1).unwrap();
        let stream = |bytes: &[u8]| pg::restore::DumpSource::Stream {
            name: &custom,
            input: Box::new(zstd::Decoder::new(std::io::Cursor::new(bytes.to_vec())).unwrap()),
        };
        assert_eq!(pg::list_toc_of(&tools, stream(&compressed)).unwrap(), toc);
        assert_eq!(
            pg::roles::roles_in_dump(&tools, stream(&compressed)).unwrap(),
            pg::roles::roles_in_dump(&tools, pg::restore::DumpSource::File(&custom)).unwrap()
        );
        // A stream that breaks off inside the table of contents is an error.
        let head: Vec<u8> = std::fs::read(&custom).unwrap()[..200].to_vec();
        let cut = pg::restore::DumpSource::Stream {
            name: &custom,
            input: Box::new(std::io::Cursor::new(head)),
        };
        assert!(pg::list_toc_of(&tools, cut).is_err());
        for table in &before.checksums {
            assert!(
                toc.iter().any(|e| e.desc.ends_with("DATA")
                    && e.schema.as_deref() == Some(table.schema.as_str())
                    && e.name == table.name),
                "no data entry for {}.{} in the table of contents",
                table.schema,
                table.name
            );
        }

        // Plain dump, engine-backup's flags, into memory.
        let mut plain = Vec::new();
        dump_database(
            &connect(&source, db),
            &tools,
            &DumpOptions::engine_backup(DumpFormat::Plain),
            &mut plain,
        )
        .unwrap();
        let plain_text = String::from_utf8(plain.clone()).unwrap();
        assert!(!plain_text.contains("OWNER TO") && !plain_text.contains("GRANT "));

        // Without permissions, before the grantee role exists on the target.
        let noperm = format!("{db}_noperm");
        target.create_database(&noperm, owner).unwrap();
        let report = restore_custom(
            &connect(&target, &noperm),
            &tools,
            &custom,
            &RestoreOptions {
                jobs: 2,
                restore_permissions: false,
                restore_owners: true,
            },
        )
        .unwrap();
        assert!(report.command.contains("--no-owner --no-privileges"));
        let (after, after_inv) = content(&connect(&target, &noperm));
        assert_eq!(after, before, "{db}: custom restore without permissions");
        assert_eq!(
            without_grants(after_inv.clone()),
            without_grants(before_inv.clone())
        );
        assert!(!after_inv.grants.iter().any(|g| g.contains("reporter")));

        // Plain dump through psql.
        let plain_db = format!("{db}_plain");
        target.create_database(&plain_db, owner).unwrap();
        restore_plain(&connect(&target, &plain_db), &tools, &mut plain.as_slice()).unwrap();
        let (after, after_inv) = content(&connect(&target, &plain_db));
        assert_eq!(after, before, "{db}: plain restore");
        assert_eq!(
            without_grants(after_inv),
            without_grants(before_inv.clone())
        );

        // With permissions while a grantee is missing: a real error, by exit code.
        let failing = format!("{db}_missing_role");
        target.create_database(&failing, owner).unwrap();
        let err = restore_custom(
            &connect(&target, &failing),
            &tools,
            &custom,
            &RestoreOptions {
                jobs: 1,
                restore_permissions: true,
                restore_owners: true,
            },
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("role \"reporter\" does not exist"),
            "{err}"
        );
        custom_dumps.push(custom);
    }

    // With permissions once the grantee exists: owners and grants as in the source.
    target.create_role("reporter", REPORTER_PW).unwrap();
    for ((db, owner, connect), custom) in databases.into_iter().zip(&custom_dumps) {
        let (before, before_inv) = content(&connect(&source, db));
        let perm = format!("{db}_perm");
        target.create_database(&perm, owner).unwrap();
        restore_custom(
            &connect(&target, &perm),
            &tools,
            custom,
            &RestoreOptions {
                jobs: 2,
                restore_permissions: true,
                restore_owners: true,
            },
        )
        .unwrap();
        let (after, after_inv) = content(&connect(&target, &perm));
        assert_eq!(after, before, "{db}: custom restore with permissions");
        assert_eq!(after_inv, before_inv, "{db}: objects, owners and grants");
    }
}

/// Extract `db/*` members of an engine-backup archive into `dir`.
fn extract_dumps(archive: &Path, dir: &Path, decompress: fn(File) -> Box<dyn Read>) {
    let mut tar = tar::Archive::new(decompress(File::open(archive).unwrap()));
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().into_owned();
        let name = path.to_string_lossy().trim_start_matches("./").to_string();
        if let Some(file) = name.strip_prefix("db/").filter(|f| !f.is_empty()) {
            entry.unpack(dir.join(file)).unwrap();
        }
    }
}

#[test]
fn engine_backup_archives_restore_to_the_readme_content() {
    let cluster = Cluster::start().expect("start cluster");
    for (role, password) in [
        ("engine", ENGINE_PW),
        ("ovirt_engine_history", DWH_PW),
        ("reporter", REPORTER_PW),
    ] {
        cluster.create_role(role, password).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();

    // default.backup: gzip tar, custom dumps with pg_dump's own compression.
    let custom_dir = dir.path().join("default");
    std::fs::create_dir(&custom_dir).unwrap();
    extract_dumps(&fixture_dir().join("default.backup"), &custom_dir, |f| {
        Box::new(flate2::read::GzDecoder::new(f))
    });
    cluster.create_database("engine", "engine").unwrap();
    let tools = tools_for(&engine(&cluster, "engine"));
    let (header, toc) = read_toc(&tools, &custom_dir.join("engine_backup.db")).unwrap();
    assert_eq!(toc.len(), 106, "the README's count of entry lines");
    assert_eq!(header.toc_entries, 110);
    assert_eq!(header.compression, "-1");
    assert_eq!(header.dump_version, "1.14-0");
    assert!(header.dumped_by.starts_with("15.18"), "{header:?}");
    assert_eq!(
        list_toc(&tools, &custom_dir.join("dwh_backup.db"))
            .unwrap()
            .len(),
        20
    );

    restore_custom(
        &engine(&cluster, "engine"),
        &tools,
        &custom_dir.join("engine_backup.db"),
        &RestoreOptions {
            jobs: 2,
            restore_permissions: true,
            restore_owners: true,
        },
    )
    .unwrap();
    cluster
        .create_database("ovirt_engine_history", "ovirt_engine_history")
        .unwrap();
    restore_custom(
        &dwh(&cluster, "ovirt_engine_history"),
        &tools,
        &custom_dir.join("dwh_backup.db"),
        &RestoreOptions {
            jobs: 1,
            restore_permissions: true,
            restore_owners: true,
        },
    )
    .unwrap();

    let mut engine_db = pg::connect(&engine(&cluster, "engine")).unwrap();
    assert_eq!(
        table_checksums(&mut engine_db).unwrap(),
        expected_checksums("engine")
    );
    assert_eq!(
        sequences(&mut engine_db).unwrap(),
        expected_engine_sequences()
    );
    assert_eq!(
        large_objects(&mut engine_db).unwrap(),
        expected_large_objects()
    );
    let grants = object_inventory(&mut engine_db).unwrap().grants;
    assert!(grants.contains(&"large object 70001: reporter=r/engine".to_string()));
    let mut dwh_db = pg::connect(&dwh(&cluster, "ovirt_engine_history")).unwrap();
    assert_eq!(
        table_checksums(&mut dwh_db).unwrap(),
        expected_checksums("ovirt_engine_history")
    );
    assert_eq!(sequences(&mut dwh_db).unwrap(), expected_dwh_sequences());

    // small-size.backup: xz tar, xz-compressed plain dumps with \restrict lines.
    let plain_dir = dir.path().join("small-size");
    std::fs::create_dir(&plain_dir).unwrap();
    extract_dumps(&fixture_dir().join("small-size.backup"), &plain_dir, |f| {
        Box::new(liblzma::read::XzDecoder::new(f))
    });
    for (db, owner, member) in [
        ("engine_plain", "engine", "engine_backup.db"),
        ("dwh_plain", "ovirt_engine_history", "dwh_backup.db"),
    ] {
        cluster.create_database(db, owner).unwrap();
        let conn = tcp(
            &cluster,
            owner,
            if owner == "engine" { ENGINE_PW } else { DWH_PW },
            db,
        );
        let mut sql = liblzma::read::XzDecoder::new(BufReader::new(
            File::open(plain_dir.join(member)).unwrap(),
        ));
        restore_plain(&conn, &tools, &mut sql).unwrap();
        let mut client = pg::connect(&conn).unwrap();
        let fixture_db = if owner == "engine" {
            "engine"
        } else {
            "ovirt_engine_history"
        };
        assert_eq!(
            table_checksums(&mut client).unwrap(),
            expected_checksums(fixture_db)
        );
        assert!(!object_inventory(&mut client)
            .unwrap()
            .grants
            .iter()
            .any(|g| g.contains("reporter")));
    }
}

#[test]
fn dump_from_an_exported_snapshot_ignores_later_changes() {
    let cluster = Cluster::start().expect("start cluster");
    cluster.create_role("app", "app-pw-snapshot").unwrap();
    cluster.create_database("appdb", "app").unwrap();
    let conn = tcp(&cluster, "app", "app-pw-snapshot", "appdb");
    let mut client = pg::connect(&conn).unwrap();
    client
        .batch_execute("CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 10)")
        .unwrap();
    let tools = tools_for(&conn);

    let mut exporter = pg::connect(&conn).unwrap();
    let mut tx = exporter
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .start()
        .unwrap();
    let snapshot: String = tx
        .query_one("SELECT pg_export_snapshot()", &[])
        .unwrap()
        .get(0);
    client.batch_execute("INSERT INTO t VALUES (11)").unwrap();

    let mut options = DumpOptions::uncompressed(DumpFormat::Plain);
    options.snapshot = Some(snapshot);
    let mut sql = Vec::new();
    let report = dump_database(&conn, &tools, &options, &mut sql).unwrap();
    assert!(report.command.contains("--snapshot="));
    tx.commit().unwrap();
    let text = String::from_utf8(sql).unwrap();
    assert!(text.contains("\n10\n\\.\n"), "rows 1-10 dumped");
    assert!(
        !text.contains("\n11\n"),
        "the row added after the snapshot is not in the dump"
    );

    let mut now = Vec::new();
    dump_database(
        &conn,
        &tools,
        &DumpOptions::uncompressed(DumpFormat::Plain),
        &mut now,
    )
    .unwrap();
    assert!(String::from_utf8(now).unwrap().contains("\n11\n\\.\n"));
}
