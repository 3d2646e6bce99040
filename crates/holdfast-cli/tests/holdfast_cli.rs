//! The native `holdfast` verbs: faster defaults, deep verify against the
//! manifest, and round trips through every compressor and dump format.

mod support;

use holdfast::archive::{ArchiveReader, Codec};
use support::*;

#[test]
fn holdfast_defaults_round_trip_and_deep_verify() {
    let s = Sample::start();
    let engine_before = checksums(&s.engine("engine"));
    let dwh_before = checksums(&s.dwh("ovirt_engine_history"));
    s.holdfast(&["backup", "--file", "env.backup", "--log", "backup.log"])
        .ok();

    let reader = ArchiveReader::open(&s.path("env.backup"), Default::default()).unwrap();
    assert_eq!(
        reader.codec(),
        Codec::None,
        "outer tar uncompressed: its members are"
    );
    let engine_dump = std::fs::read(reader.member_path("db/engine_backup.db").unwrap()).unwrap();
    assert_eq!(Codec::detect(&engine_dump), Codec::Zstd);
    let files = std::fs::read(reader.member_path("files").unwrap()).unwrap();
    assert_eq!(Codec::detect(&files), Codec::Zstd);
    let manifest = reader.manifest().expect("manifest.json");
    let db = manifest.database("db/engine_backup.db").unwrap();
    let hosts = db.tables.iter().find(|t| t.name == "hosts").unwrap();
    let mut source = holdfast::pg::connect(&s.engine("engine")).unwrap();
    let row_text = db.row_text.as_ref().expect("the dump's row text settings");
    let live = holdfast::pg::inspect::table_fingerprints_of_kind(
        &mut source,
        &holdfast::pg::inspect::RowTextSettings {
            timezone: row_text.timezone.clone(),
            bytea_output: row_text.bytea_output.clone(),
        },
        |_, _, _| holdfast::pg::inspect::FingerprintKind::RowSum,
    )
    .unwrap();
    let live_hosts = live.iter().find(|t| t.name == "hosts").unwrap();
    assert_eq!(hosts.row_count, 40);
    assert!(hosts.checksum.starts_with("xxh3sum:"), "{}", hosts.checksum);
    assert_eq!(
        hosts.checksum, live_hosts.checksum,
        "the manifest describes the data"
    );
    let roles: Vec<&str> = db.roles.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(roles, ["engine", "reporter"]);
    // The application role cannot read pg_authid: its hash is not captured.
    assert!(
        db.roles[0]
            .sql
            .starts_with("CREATE ROLE \"engine\" WITH LOGIN"),
        "{}",
        db.roles[0].sql
    );
    assert!(!db.roles[0].sql.contains("PASSWORD"), "{}", db.roles[0].sql);
    drop(reader);

    let r = s.holdfast(&["verify", "--deep", "env.backup"]);
    r.ok();
    assert!(
        r.stdout
            .contains("- Deep verify: 20 tables restored and compared, all equal"),
        "{}",
        r.stdout
    );

    s.clean_databases();
    s.holdfast(&[
        "restore",
        "--file",
        "env.backup",
        "--restore-permissions",
        "--keep-temporary-data",
    ])
    .ok();
    assert_eq!(checksums(&s.engine("engine")), engine_before);
    assert_eq!(checksums(&s.dwh("ovirt_engine_history")), dwh_before);
}

#[test]
fn deep_verify_detects_a_manifest_that_disagrees_with_the_dump() {
    let s = Sample::start();
    s.holdfast(&["backup", "--file", "env.backup"]).ok();
    // Change the data after the backup and take a second archive whose manifest
    // we then graft onto the first one's dumps: checksums no longer match.
    let unpack = s.path("u");
    std::fs::create_dir(&unpack).unwrap();
    assert!(std::process::Command::new("tar")
        .arg("-xf")
        .arg(s.path("env.backup"))
        .arg("-C")
        .arg(&unpack)
        .status()
        .unwrap()
        .success());
    let manifest_path = unpack.join("manifest.json");
    let text = std::fs::read_to_string(&manifest_path).unwrap();
    let manifest = holdfast::archive::Manifest::parse(text.as_bytes(), "manifest.json").unwrap();
    let db = manifest.database("db/engine_backup.db").unwrap();
    let hosts = &db
        .tables
        .iter()
        .find(|t| t.name == "hosts")
        .unwrap()
        .checksum;
    let lying = text.replace(hosts.as_str(), "h64:12345");
    assert_ne!(text, lying);
    std::fs::write(&manifest_path, &lying).unwrap();
    // Keep sha256sum honest about the manifest, so only its content lies.
    let digest = holdfast::archive::HashKind::Sha256
        .digest_file(&manifest_path)
        .unwrap();
    let sums = std::fs::read_to_string(unpack.join("sha256sum")).unwrap();
    let sums: String = sums
        .lines()
        .map(|l| {
            if l.ends_with("  manifest.json") {
                format!("{digest}  manifest.json\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(unpack.join("sha256sum"), sums).unwrap();
    assert!(std::process::Command::new("tar")
        .arg("-cf")
        .arg(s.path("lying.backup"))
        .arg("-C")
        .arg(&unpack)
        .arg(".")
        .status()
        .unwrap()
        .success());
    let r = s.holdfast(&["verify", "--deep", "lying.backup"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout.contains("public.hosts") && r.stdout.contains("DIFFERENT"),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr
            .contains("deep verify: 1 of 20 tables differ from the manifest"),
        "{}",
        r.stderr
    );
}

#[test]
fn deep_verify_still_reads_the_server_fingerprints_of_older_manifests() {
    let s = Sample::start();
    let live = |database: &str| {
        let params = match database {
            "engine" => s.engine("engine"),
            other => s.dwh(other),
        };
        let mut client = holdfast::pg::connect(&params).unwrap();
        holdfast::pg::inspect::table_fingerprints(&mut client).unwrap()
    };
    let before = [live("engine"), live("ovirt_engine_history")];
    s.holdfast(&["backup", "--file", "env.backup"]).ok();
    // An archive as holdfast wrote it before fingerprints came from the dump
    // stream: the server's h64: values. Tables the backup's notifications
    // changed after the dump keep their xxh3sum: (a manifest of both kinds).
    let unpack = s.path("u");
    std::fs::create_dir(&unpack).unwrap();
    let tar = |args: &[&std::ffi::OsStr]| {
        assert!(std::process::Command::new("tar")
            .args(args)
            .status()
            .unwrap()
            .success())
    };
    tar(&[
        "-xf".as_ref(),
        s.path("env.backup").as_os_str(),
        "-C".as_ref(),
        unpack.as_os_str(),
    ]);
    let manifest_path = unpack.join("manifest.json");
    let text = std::fs::read_to_string(&manifest_path).unwrap();
    let mut manifest =
        holdfast::archive::Manifest::parse(text.as_bytes(), "manifest.json").unwrap();
    let mut replaced = 0;
    for db in &mut manifest.databases {
        let after = live(&db.database);
        let before = &before[usize::from(db.database != "engine")];
        assert!(db.row_text.is_some(), "{}", db.scope);
        for t in &mut db.tables {
            let find = |list: &[holdfast::pg::TableChecksum]| {
                list.iter()
                    .find(|l| l.schema == t.schema && l.name == t.name)
                    .unwrap()
                    .clone()
            };
            let (b, a) = (find(before), find(&after));
            if a == b {
                t.checksum = a.checksum;
                replaced += 1;
            }
        }
    }
    assert!(replaced >= 18, "{replaced} tables with server fingerprints");
    std::fs::write(&manifest_path, manifest.to_json()).unwrap();
    let digest = holdfast::archive::HashKind::Sha256
        .digest_file(&manifest_path)
        .unwrap();
    let sums: String = std::fs::read_to_string(unpack.join("sha256sum"))
        .unwrap()
        .lines()
        .map(|l| {
            if l.ends_with("  manifest.json") {
                format!("{digest}  manifest.json\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(unpack.join("sha256sum"), sums).unwrap();
    tar(&[
        "-cf".as_ref(),
        s.path("old.backup").as_os_str(),
        "-C".as_ref(),
        unpack.as_os_str(),
        ".".as_ref(),
    ]);
    let r = s.holdfast(&["verify", "--deep", "old.backup"]);
    r.ok();
    assert!(
        r.stdout
            .contains("- Deep verify: 20 tables restored and compared, all equal"),
        "{}",
        r.stdout
    );
}

#[test]
fn compression_levels_are_checked_before_anything_is_written() {
    let s = Sample::start();
    let r = s.holdfast(&["backup", "--file", "x.backup", "--compress-level", "25"]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stderr
            .contains("invalid compression level 25 for zstd: use 1 to 19"),
        "{}",
        r.stderr
    );
    assert!(!s.path("x.backup").exists());
    s.holdfast(&["backup", "--file", "x.backup", "--compress-level", "5"])
        .ok();
    s.holdfast(&["verify", "x.backup"]).ok();
}

#[test]
fn every_dump_compressor_and_format_round_trips() {
    let s = Sample::start();
    let engine_before = checksums(&s.engine("engine"));
    let dwh_before = checksums(&s.dwh("ovirt_engine_history"));
    let codecs = ["gzip", "bzip2", "xz", "zstd", "None"];
    for (i, db_codec) in codecs.iter().enumerate() {
        for format in ["custom", "plain"] {
            let archive_codec = codecs[(i + 1) % codecs.len()];
            let files_codec = codecs[(i + 2) % codecs.len()];
            let file = format!("{db_codec}-{format}.backup");
            s.engine_backup(&[
                "--mode=backup",
                &format!("--file={file}"),
                &format!("--log={file}.log"),
                &format!("--archive-compressor={archive_codec}"),
                &format!("--files-compressor={files_codec}"),
                &format!("--db-compressor={db_codec}"),
                &format!("--dwh-db-compressor={db_codec}"),
                &format!("--db-dump-format={format}"),
                &format!("--dwh-db-dump-format={format}"),
            ])
            .ok();
            s.clean_databases();
            s.engine_backup(&[
                "--mode=restore",
                &format!("--file={file}"),
                &format!("--log={file}.restore.log"),
                "--no-restore-permissions",
                "--keep-temporary-data",
            ])
            .ok();
            let mut got = checksums(&s.engine("engine"));
            // Each backup's notification adds rows after its dump.
            got.remove("public.engine_backup_log");
            let mut want = engine_before.clone();
            want.remove("public.engine_backup_log");
            assert_eq!(got, want, "{file}");
            assert_eq!(
                checksums(&s.dwh("ovirt_engine_history")),
                dwh_before,
                "{file}"
            );
        }
    }
}

#[test]
fn every_archive_and_files_compressor_pair_round_trips() {
    let s = Sample::start();
    let codecs = ["gzip", "bzip2", "xz", "zstd", "None"];
    let before = tree(&s.root());
    for a in codecs {
        for f in codecs {
            let file = format!("files-{a}-{f}.backup");
            s.engine_backup(&[
                "--mode=backup",
                "--scope=files",
                &format!("--file={file}"),
                "--log=files.log",
                &format!("--archive-compressor={a}"),
                &format!("--files-compressor={f}"),
            ])
            .ok();
            // Damage the install root, then restore the files scope.
            std::fs::remove_dir_all(s.root().join("etc/pki")).unwrap();
            std::fs::write(
                s.root()
                    .join("etc/ovirt-engine/engine.conf.d/99-custom.conf"),
                "X=1\n",
            )
            .unwrap();
            s.engine_backup(&[
                "--mode=restore",
                "--scope=files",
                &format!("--file={file}"),
                "--log=files-r.log",
            ])
            .ok();
            let mut after = tree(&s.root());
            // The restore's own log sits outside the root; nothing else changed.
            after.retain(|k, _| !k.starts_with("var/log"));
            assert_eq!(after, before, "{a}/{f}");
        }
    }
}

#[test]
fn profile_show_lists_components_without_passwords() {
    let s = Sample::start();
    let r = s.holdfast(&["profile", "show", "ovirt-engine"]);
    r.ok();
    assert!(
        r.stdout.contains(&format!(
            "db: Engine database engine@127.0.0.1:{}/engine (password set)",
            s.cluster.port()
        )),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("keycloakdb: Keycloak database") && r.stdout.contains("not enabled"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("fixture-pw"));
}

#[test]
fn verify_refuses_the_legacy_directory_setting_in_custom_and_plain_dumps() {
    let s = Sample::start();
    s.cluster
        .execute(
            "engine",
            "INSERT INTO vdc_options (option_name, option_value, version) VALUES ('DomainName', 'example.com', 'general')",
        )
        .unwrap();
    for (file, extra) in [
        ("custom.backup", None),
        ("plain.backup", Some("--small-size")),
    ] {
        let mut args = vec![
            "--mode=backup".to_string(),
            format!("--file={file}"),
            "--log=b.log".into(),
        ];
        args.extend(extra.map(str::to_string));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        s.engine_backup(&refs).ok();
        s.engine_backup(&["--mode=verify", &format!("--file={file}"), "--log=v.log"]).fails_with(
            "legacy kerberos/ldap directory integration was in use. Please migrate to ovirt-engine-extension-aaa-ldap and backup/restore again",
        );
    }
}

#[test]
fn grafana_sqlite_database_is_copied_online_and_restored() {
    let s = Sample::start();
    let db_path = s.root().join("var/lib/grafana/grafana.db");
    std::fs::create_dir_all(db_path.parent().unwrap()).unwrap();
    let conn = rusqlite::Connection::open(&db_path).unwrap();
    conn.execute_batch("CREATE TABLE dashboard (id INTEGER PRIMARY KEY, title TEXT); INSERT INTO dashboard (title) VALUES ('hosts'), ('vms');")
        .unwrap();
    let setup = s.root().join("etc/ovirt-engine-setup.conf");
    let mut text = std::fs::read_to_string(&setup).unwrap();
    text.push_str("OVESETUP_GRAFANA_CORE/enable=bool:True\n");
    std::fs::write(&setup, text).unwrap();
    // The backup copies the database while a connection holds it open.
    let r = s.engine_backup(&[
        "--mode=backup",
        "--scope=grafanadb",
        "--file=g.backup",
        "--log=g.log",
    ]);
    r.ok();
    assert!(
        r.stdout
            .contains(&format!("- Grafana database '{}'", db_path.display())),
        "{}",
        r.stdout
    );
    drop(conn);
    assert_eq!(
        members(&s.path("g.backup"))
            .iter()
            .filter(|m| m.starts_with("db/"))
            .collect::<Vec<_>>(),
        ["db/grafana.db"]
    );
    std::fs::remove_file(&db_path).unwrap();
    s.engine_backup(&["--mode=restore", "--file=g.backup", "--log=gr.log"])
        .ok();
    let restored = rusqlite::Connection::open(&db_path).unwrap();
    let titles: String = restored
        .query_row("SELECT group_concat(title, ',') FROM dashboard", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(titles, "hosts,vms");
}
