//! oVirt's documented engine-backup command lines, run as written against a
//! sample environment on a real cluster; the data that comes back is compared
//! with the data that went in.

mod support;

use std::os::unix::fs::PermissionsExt;

use support::*;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A console transcript as snapshots pin it: the sample's directory (fresh
/// each run) as `[DIR]`, and every date and time as `[TIME]`.
fn transcript(s: &Sample, text: &str) -> String {
    let text = text.replace(&s.dir.path().display().to_string(), "[DIR]");
    text.lines()
        .map(without_times)
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// `line` with each `YYYY-MM-DD HH:MM:SS`-like stretch (a date, a time, or
/// both) replaced by `[TIME]`.
fn without_times(line: &str) -> String {
    let is_stamp_char =
        |c: char| c.is_ascii_digit() || matches!(c, '-' | ':' | '.' | ' ' | 'T' | '+');
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find(|c: char| c.is_ascii_digit()) {
        let (before, from) = rest.split_at(start);
        out.push_str(before);
        let len = from.find(|c: char| !is_stamp_char(c)).unwrap_or(from.len());
        let stamp = from[..len].trim_end();
        let looks_like_time = stamp.len() >= 8
            && (stamp.matches(':').count() >= 2 || stamp.matches('-').count() >= 2);
        if looks_like_time {
            out.push_str("[TIME]");
            rest = &from[stamp.len()..];
        } else {
            let digits = from
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(from.len());
            out.push_str(&from[..digits]);
            rest = &from[digits..];
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn full_backup_verify_and_restore_over_a_cleaned_install() {
    let s = Sample::start();
    let engine_before = checksums(&s.engine("engine"));
    let dwh_before = checksums(&s.dwh("ovirt_engine_history"));

    let run = s.engine_backup(&["--mode=backup", "--file=backup1", "--log=backup1.log"]);
    run.ok();
    let archive = s.path("backup1");
    assert_eq!(mode(&archive), 0o600);
    assert_eq!(mode(&s.path("backup1.log")), 0o600);
    let console: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        console,
        [
            "Start of engine-backup with mode 'backup'",
            "scope: all",
            &format!("archive file: {}", archive.display()),
            &format!("log file: {}", s.path("backup1.log").display()),
            "Backing up:",
            "Notifying engine",
            "- Files",
            "- Engine database 'engine'",
            "- DWH database 'ovirt_engine_history'",
            &format!("Packing into file '{}'", archive.display()),
            "Notifying engine",
            "Done.",
        ]
    );
    insta::assert_snapshot!("backup_console", transcript(&s, &run.stdout));
    // engine-backup's layout and its default config, byte for byte.
    let names = members(&archive);
    for m in [
        "config",
        "os_version",
        "files",
        "version",
        "sha256sum",
        "manifest.json",
        "db/engine_backup.db",
        "db/dwh_backup.db",
    ] {
        assert!(names.contains(&m.to_string()), "{m} in {names:?}");
    }
    let reader = holdfast::archive::ArchiveReader::open(&archive, Default::default()).unwrap();
    assert_eq!(reader.codec(), holdfast::archive::Codec::Gzip);
    let config = std::fs::read_to_string(reader.member_path("config").unwrap()).unwrap();
    assert_eq!(
        config,
        "DB_DUMP_COMPRESSOR=\nDB_DUMP_FORMAT=custom\nDWH_DB_DUMP_COMPRESSOR=\nDWH_DB_DUMP_FORMAT=custom\n\
         KEYCLOAK_DB_DUMP_COMPRESSOR=\nKEYCLOAK_DB_DUMP_FORMAT=custom\n\
         MANAGEDBLOCK_DB_DUMP_COMPRESSOR=\nMANAGEDBLOCK_DB_DUMP_FORMAT=custom\n",
        "the fixture's default config, byte for byte"
    );
    insta::assert_snapshot!("config_member_default", config);

    assert_eq!(
        std::fs::read_to_string(reader.member_path("version").unwrap()).unwrap(),
        "4.5.7\n"
    );
    let engine_dump = std::fs::read(reader.member_path("db/engine_backup.db").unwrap()).unwrap();
    assert!(engine_dump.starts_with(b"PGDMP"), "custom format dump");
    drop(reader);

    // One notification row per scope backed up (status 1 rows only).
    let rows = s
        .cluster
        .query_text("engine", "SELECT string_agg(scope || ':' || is_passed, ',' ORDER BY scope) FROM engine_backup_log WHERE fqdn = 'demo.example.test'")
        .unwrap();
    assert_eq!(rows.as_deref(), Some("db:true,dwhdb:true,files:true"));

    let log = std::fs::read_to_string(s.path("backup1.log")).unwrap();
    assert!(
        log.contains(": Start of engine-backup mode backup scope all file "),
        "{log}"
    );
    assert!(
        !log.contains("engine-fixture-pw") && !log.contains("dwh:fixture-pw"),
        "no password in the log"
    );

    let run = s.engine_backup(&["--mode=verify", "--file=backup1", "--log=verify.log"]);
    run.ok();
    insta::assert_snapshot!("verify_console", transcript(&s, &run.stdout));

    s.clean_databases();
    let run = s.engine_backup(&[
        "--mode=restore",
        "--file=backup1",
        "--log=restore.log",
        "--restore-permissions",
    ]);
    run.ok();
    assert!(
        run.stdout
            .contains("  - Updating DbJustRestored VdcOption in engine database"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .ends_with("You should now run engine-setup.\nDone.\n"),
        "{}",
        run.stdout
    );
    insta::assert_snapshot!("restore_console", transcript(&s, &run.stdout));
    let engine_after = checksums(&s.engine("engine"));
    // The engine table engine_backup_log gained the notification rows after the dump.
    let mut want = expected_after_restore(&engine_before);
    want.remove("public.engine_backup_log");
    let mut got = engine_after.clone();
    got.remove("public.engine_backup_log");
    assert_eq!(got, want);
    assert_eq!(
        engine_after["public.engine_backup_log"].0, 2,
        "the dump's two rows"
    );
    assert_eq!(checksums(&s.dwh("ovirt_engine_history")), dwh_before);
    // Grants came back with --restore-permissions.
    let acl = s
        .cluster
        .query_text(
            "engine",
            "SELECT relacl::text FROM pg_class WHERE relname = 'clusters'",
        )
        .unwrap()
        .unwrap();
    assert!(acl.contains("reporter=r/engine"), "{acl}");
}

#[test]
fn files_and_engine_scope_backup_and_restore() {
    let s = Sample::start();
    let before = checksums(&s.engine("engine"));
    s.engine_backup(&[
        "--scope=files",
        "--scope=db",
        "--mode=backup",
        "--file=file_name",
        "--log=log_file_name",
    ])
    .ok();
    let names = members(&s.path("file_name"));
    assert!(names.contains(&"db/engine_backup.db".to_string()));
    assert!(
        !names.contains(&"db/dwh_backup.db".to_string()),
        "{names:?}"
    );

    // A restore over a cleaned install with both scopes, and the files put back.
    s.clean_databases();
    let conf = s
        .root()
        .join("etc/ovirt-engine/engine.conf.d/99-custom.conf");
    std::fs::write(&conf, "DEMO_NOTE=\"changed after the backup\"\n").unwrap();
    s.engine_backup(&[
        "--mode=restore",
        "--scope=files",
        "--scope=db",
        "--file=file_name",
        "--log=log_file_name2",
        "--restore-permissions",
    ])
    .ok();
    assert!(std::fs::read_to_string(&conf)
        .unwrap()
        .contains("custom value with spaces"));
    let got = checksums(&s.engine("engine"));
    let mut want = expected_after_restore(&before);
    want.remove("public.engine_backup_log");
    let mut got2 = got.clone();
    got2.remove("public.engine_backup_log");
    assert_eq!(got2, want);
    // The DWH database was not in scope: it stays empty.
    assert!(checksums(&s.dwh("ovirt_engine_history")).is_empty());
}

#[test]
fn dwh_only_restore_without_permissions() {
    let s = Sample::start();
    let before = checksums(&s.dwh("ovirt_engine_history"));
    s.engine_backup(&["--mode=backup", "--file=file_name", "--log=b.log"])
        .ok();
    s.recreate("ovirt_engine_history", "ovirt_engine_history");
    let tree_before = tree(&s.root());
    s.engine_backup(&[
        "--mode=restore",
        "--scope=dwhdb",
        "--file=file_name",
        "--log=log_file_name",
        "--no-restore-permissions",
    ])
    .ok();
    assert_eq!(checksums(&s.dwh("ovirt_engine_history")), before);
    assert_eq!(tree(&s.root()), tree_before, "files were not in scope");
    // Without permissions the grant to reporter is gone.
    let acl = s
        .cluster
        .query_text(
            "ovirt_engine_history",
            "SELECT coalesce(relacl::text, '') FROM pg_class WHERE relname = 'host_hourly_history'",
        )
        .unwrap()
        .unwrap();
    assert!(!acl.contains("reporter"), "{acl}");
}

#[test]
fn small_size_plain_dumps_round_trip() {
    let s = Sample::start();
    let engine_before = checksums(&s.engine("engine"));
    let run = s.engine_backup(&[
        "--mode=backup",
        "--small-size",
        "--file=small",
        "--log=small.log",
    ]);
    run.ok();
    assert!(run.stdout.starts_with(&format!(
        "{}\nPlease note: permissions are not backed up with a plain dump format, thus not restored during restore\n{}\n",
        "#".repeat(78),
        "#".repeat(78)
    )));
    insta::assert_snapshot!("backup_console_small_size", transcript(&s, &run.stdout));
    let reader =
        holdfast::archive::ArchiveReader::open(&s.path("small"), Default::default()).unwrap();
    assert_eq!(reader.codec(), holdfast::archive::Codec::Xz);
    let config = std::fs::read_to_string(reader.member_path("config").unwrap()).unwrap();
    insta::assert_snapshot!("config_member_small_size", config);
    drop(reader);
    s.engine_backup(&["--mode=verify", "--file=small", "--log=v.log"])
        .ok();
    s.clean_databases();
    // All dumps are plain: no permissions option is needed (engine-backup demands one).
    let run = s.engine_backup(&["--mode=restore", "--file=small", "--log=r.log"]);
    run.ok();
    insta::assert_snapshot!("restore_console_plain", transcript(&s, &run.stdout));
    let mut got = checksums(&s.engine("engine"));
    let mut want = expected_after_restore(&engine_before);
    got.remove("public.engine_backup_log");
    want.remove("public.engine_backup_log");
    assert_eq!(got, want);
}

#[test]
fn help_and_argument_errors() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(engine_backup_bin(), &["--help".into()], dir.path());
    r.ok();
    assert!(r.stdout.contains("--archive-compressor=COMPRESSOR"));
    assert!(r.stdout.contains("--db-secured-validation"));

    let r = run(engine_backup_bin(), &["--bogus".into()], dir.path());
    r.fails_with("FATAL: Unknown option '--bogus'. Please see '--help' for details.");

    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let r = run(
        engine_backup_bin(),
        &args(&["--mode=backup", "--archive-compressor=lzma", "--file=x"]),
        dir.path(),
    );
    r.fails_with("FATAL: invalid compressor 'lzma'\nFATAL: failed parsing compressor\n");
    assert!(!dir.path().join("x").exists(), "no file created");

    for (a, msg) in [
        (vec!["--mode=restore"], "FATAL: --file is missing"),
        (vec!["--mode=verify", "--file=nope"], "does not exist"),
        (
            vec!["--mode=restore", "--file=f", "--log=f"],
            "FATAL: --file and --log can not be the same",
        ),
        (
            vec!["--mode=backup", "--db-restore-jobs=x"],
            "FATAL: invalid number of jobs",
        ),
        (
            vec!["--mode=backup", "--dwh-db-restore-jobs=0"],
            "FATAL: invalid number of jobs",
        ),
        (
            vec!["--mode=backup", "--db-restore-jobs=99999999999"],
            "FATAL: invalid number of jobs",
        ),
        (
            vec!["--mode=backup", "--db-dump-format=sql"],
            "FATAL: invalid dump format 'sql'",
        ),
        (
            vec!["--mode=backup", "--scope=everything"],
            "FATAL: invalid scope 'everything'",
        ),
        (vec!["--mode=dance"], "FATAL: invalid mode"),
        (
            vec!["--mode=backup", "--db-host=h"],
            "FATAL: Please use --change-db-credentials to change engine db credentials",
        ),
        (
            vec!["--mode=backup", "--tmpdir=/nonexistent"],
            "FATAL: Temporary directory /nonexistent is missing or not a directory",
        ),
        (
            vec!["--mode=backup", "--he-remove-hosts"],
            "FATAL: hosted-engine cleaning options work only in restore mode",
        ),
    ] {
        let r = run(engine_backup_bin(), &args(&a), dir.path());
        r.fails_with(msg);
    }
    std::fs::write(dir.path().join("f"), "").unwrap();
    let r = run(
        engine_backup_bin(),
        &args(&[
            "--mode=restore",
            "--file=f",
            "--change-db-credentials",
            "--db-host=h",
            "--db-user=u",
            "--db-name=n",
        ]),
        dir.path(),
    );
    r.fails_with("FATAL: --db-passfile or --db-password is missing");
    let r = run(
        engine_backup_bin(),
        &args(&[
            "--mode=restore",
            "--file=f",
            "--change-db-credentials",
            "--db-password",
        ]),
        dir.path(),
    );
    r.fails_with("FATAL: Standard input is not a terminal");
}

#[test]
fn default_file_and_log_names() {
    let s = Sample::start();
    let r = s.engine_backup(&["--mode=backup", "--scope=files"]);
    r.ok();
    let listing = |dir: &str| -> Vec<String> {
        std::fs::read_dir(s.root().join(dir))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect()
    };
    let archives = listing("var/lib/ovirt-engine-backup");
    assert_eq!(archives.len(), 1, "{archives:?}");
    assert!(
        archives[0].starts_with("ovirt-engine-backup-") && archives[0].ends_with(".backup"),
        "{archives:?}"
    );
    let logs = listing("var/log/ovirt-engine-backup");
    assert_eq!(logs.len(), 1);
    assert!(
        logs[0].starts_with("ovirt-engine-backup-") && logs[0].ends_with(".log"),
        "{logs:?}"
    );
    assert!(r.stdout.contains(&format!(
        "archive file: {}",
        s.root()
            .join("var/lib/ovirt-engine-backup")
            .join(&archives[0])
            .display()
    )));
}
