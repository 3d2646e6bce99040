//! Archives made by oVirt's engine-backup 4.5 verify and restore with holdfast,
//! and the restored content equals what the fixture README says engine-backup's
//! own restore produced.

mod support;

use std::path::PathBuf;

use support::*;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../holdfast/tests/fixtures/engine-backup-4.5")
        .join(name)
}

/// The README's "after engine-backup restore" checksums of `engine`.
const ENGINE_AFTER: &[(&str, i64, &str)] = &[
    ("audit.host_changes", 7, "b52d3dc49f92fecaaaf6d0dc996ddb6c"),
    ("public.async_tasks", 0, "d41d8cd98f00b204e9800998ecf8427e"),
    (
        "public.async_tasks_entities",
        0,
        "d41d8cd98f00b204e9800998ecf8427e",
    ),
    (
        "public.business_entity_snapshot",
        0,
        "d41d8cd98f00b204e9800998ecf8427e",
    ),
    ("public.clusters", 4, "0c12ad52d3d61184bb844f4a8d8677bd"),
    (
        "public.command_entities",
        0,
        "d41d8cd98f00b204e9800998ecf8427e",
    ),
    ("public.documents", 2, "a444afb5762c702c1d65162061e0a217"),
    (
        "public.dwh_history_timekeeping",
        3,
        "e017fd84f5c31f840f823ded6ac1a799",
    ),
    (
        "public.engine_backup_log",
        2,
        "e0286c7bd5355e6d829bc86072e1fbbf",
    ),
    ("public.events", 2501, "2701ca33e8d2bbfe7a3b33f291dd1f71"),
    (
        "public.host_event_stats_mv",
        40,
        "7127caab7ba3596a0b14ed8d0760109b",
    ),
    ("public.hosts", 40, "05f14a8f646423dad14e60e05a70c74e"),
    ("public.job", 0, "d41d8cd98f00b204e9800998ecf8427e"),
    ("public.step", 0, "d41d8cd98f00b204e9800998ecf8427e"),
    ("public.vdc_options", 8, "43981de64c0ff674679adcaeee5267b2"),
    ("public.vm_dynamic", 30, "cc186d51b363d7e4276f6d085ad1b6f5"),
    ("public.vm_static", 30, "c2b626a2ba2eddc8e01c2352fe56239c"),
];

const DWH_AFTER: &[(&str, i64, &str)] = &[
    (
        "public.history_configuration",
        3,
        "fcc54c72c7725ad649f96cf46c3beb6e",
    ),
    (
        "public.host_configuration",
        40,
        "7582ac4293a86c1aa261b7826a17c460",
    ),
    (
        "public.host_hourly_history",
        3000,
        "5d2e35bcf46355e4493f8c88e24fa153",
    ),
];

fn table(rows: &[(&str, i64, &str)]) -> std::collections::BTreeMap<String, (i64, String)> {
    rows.iter()
        .map(|(t, n, s)| (t.to_string(), (*n, s.to_string())))
        .collect()
}

/// A fresh cluster with the fixture's three roles and empty target databases,
/// and an empty install root (the archive's files are restored into it).
fn target() -> (pgsandbox::Cluster, tempfile::TempDir) {
    let c = pgsandbox::Cluster::start().unwrap();
    for (role, pw) in holdfast_sample::SAMPLE_ROLES {
        c.create_role(role, pw).unwrap();
    }
    c.create_database("engine_restored", "engine").unwrap();
    c.create_database("ovirt_engine_history_restored", "ovirt_engine_history")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("root")).unwrap();
    (c, dir)
}

fn restore_fixture(name: &str, permissions: &str) -> (pgsandbox::Cluster, tempfile::TempDir, Run) {
    let (c, dir) = target();
    let passfile = dir.path().join("dwh.pass");
    std::fs::write(&passfile, "dwh:fixture-pw\n").unwrap();
    let args: Vec<String> = [
        "--mode=restore".to_string(),
        format!("--file={}", fixture(name).display()),
        "--log=restore.log".into(),
        "--change-db-credentials".into(),
        "--db-host=127.0.0.1".into(),
        format!("--db-port={}", c.port()),
        "--db-user=engine".into(),
        "--db-password=engine-fixture-pw".into(),
        "--db-name=engine_restored".into(),
        "--change-dwh-db-credentials".into(),
        "--dwh-db-host=127.0.0.1".into(),
        format!("--dwh-db-port={}", c.port()),
        "--dwh-db-user=ovirt_engine_history".into(),
        format!("--dwh-db-passfile={}", passfile.display()),
        "--dwh-db-name=ovirt_engine_history_restored".into(),
        permissions.into(),
        format!("--install-root={}", dir.path().join("root").display()),
        "--installed-version=4.5.7".into(),
    ]
    .into_iter()
    .collect();
    let r = run(engine_backup_bin(), &args, dir.path());
    (c, dir, r)
}

#[test]
fn fixture_archives_verify() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("root")).unwrap();
    for name in [
        "default.backup",
        "small-size.backup",
        "uncompressed.backup",
        "db-and-files.backup",
    ] {
        let r = run(
            engine_backup_bin(),
            &[
                "--mode=verify".into(),
                format!("--file={}", fixture(name).display()),
                format!("--log={name}.verify.log"),
                format!("--install-root={}", dir.path().join("root").display()),
                "--installed-version=4.5.7".into(),
            ],
            dir.path(),
        );
        r.ok();
        assert!(
            r.stdout.contains("- Engine database '"),
            "{name}: {}",
            r.stdout
        );
        assert!(r.stdout.ends_with("Done.\n"), "{name}");
    }
    // An installed version older than the archive is refused with engine-backup's text.
    let r = run(
        engine_backup_bin(),
        &[
            "--mode=verify".into(),
            format!("--file={}", fixture("default.backup").display()),
            "--log=v.log".into(),
            format!("--install-root={}", dir.path().join("root").display()),
            "--installed-version=4.5.6".into(),
        ],
        dir.path(),
    );
    r.fails_with("Backup was created by version '4.5.7' and can not be restored using the installed version 4.5.6");
}

#[test]
fn default_fixture_restores_like_engine_backup() {
    let (c, dir, r) = restore_fixture("default.backup", "--restore-permissions");
    r.ok();
    let out: Vec<&str> = r.stdout.lines().collect();
    for line in [
        "- Setting credentials for Engine database 'engine_restored'",
        "- Setting credentials for DWH database 'ovirt_engine_history_restored'",
        "- Files",
        "- Engine database 'engine_restored'",
        "  - Cleaning up temporary tables in engine database 'engine_restored'",
        "  - Updating DbJustRestored VdcOption in engine database",
        "  - Resetting DwhCurrentlyRunning in dwh_history_timekeeping in engine database",
        "  - Resetting HA VM status",
        "- DWH database 'ovirt_engine_history_restored'",
        "You should now run engine-setup.",
        "Done.",
    ] {
        assert!(out.contains(&line), "missing {line:?} in:\n{}", r.stdout);
    }
    assert_eq!(
        checksums(&tcp(&c, "engine", "engine-fixture-pw", "engine_restored")),
        table(ENGINE_AFTER)
    );
    assert_eq!(
        checksums(&tcp(
            &c,
            "ovirt_engine_history",
            "dwh:fixture-pw",
            "ovirt_engine_history_restored"
        )),
        table(DWH_AFTER)
    );
    // Grants, including the column grant and the large object's ACL.
    let col = c
        .query_text(
            "ovirt_engine_history_restored",
            "SELECT string_agg(attname || '=' || attacl::text, ',' ORDER BY attname) FROM pg_attribute \
              WHERE attrelid = 'host_configuration'::regclass AND attacl IS NOT NULL",
        )
        .unwrap()
        .unwrap();
    assert!(
        col.contains("host_id={reporter=r/ovirt_engine_history}"),
        "{col}"
    );
    let lo = c
        .query_text(
            "engine_restored",
            "SELECT lomacl::text FROM pg_largeobject_metadata WHERE oid = 70001",
        )
        .unwrap()
        .unwrap();
    assert!(lo.contains("reporter=r/engine"), "{lo}");
    // The conf files now point at the new databases and keep everything else.
    let root = dir.path().join("root");
    let engine_conf =
        std::fs::read_to_string(root.join("etc/ovirt-engine/engine.conf.d/10-setup-database.conf"))
            .unwrap();
    assert!(
        engine_conf.contains("ENGINE_DB_DATABASE=\"engine_restored\""),
        "{engine_conf}"
    );
    assert!(engine_conf.contains(&format!("ENGINE_DB_PORT=\"{}\"", c.port())));
    assert!(engine_conf.contains(
        "ENGINE_DB_URL=\"jdbc:postgresql://${ENGINE_DB_HOST}:${ENGINE_DB_PORT}/${ENGINE_DB_DATABASE}?sslfactory=org.postgresql.ssl.NonValidatingFactory\""
    ));
    let dwh_conf = std::fs::read_to_string(
        root.join("etc/ovirt-engine-dwh/ovirt-engine-dwhd.conf.d/10-setup-database.conf"),
    )
    .unwrap();
    assert!(
        dwh_conf.contains("ENGINE_DB_DATABASE=\"engine_restored\""),
        "{dwh_conf}"
    );
    assert!(dwh_conf.contains("DWH_DB_DATABASE=\"ovirt_engine_history_restored\""));
    assert!(dwh_conf.contains("DWH_DB_PASSWORD=\"dwh:fixture-pw\""));
    // The application's reader reads the new credentials back.
    let env = holdfast::profile::Environment::load(
        holdfast::profile::Profile::ovirt_engine(),
        holdfast::profile::InstallRoot::new(&root).unwrap(),
    )
    .unwrap();
    let dwh = env
        .database_params(env.profile.database("dwhdb").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(dwh.database, "ovirt_engine_history_restored");
    assert_eq!(dwh.password.unwrap().expose(), "dwh:fixture-pw");
    // A dated copy of each rewritten file is kept.
    let copies = std::fs::read_dir(root.join("etc/ovirt-engine/engine.conf.d"))
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("10-setup-database.conf.")
        })
        .count();
    assert_eq!(copies, 1);
}

#[test]
fn small_size_fixture_restores_without_a_permissions_option() {
    // engine-backup itself demands a permissions option here (its check counts
    // absent databases); holdfast looks only at the dumps that are present.
    let (c, _dir, r) = restore_fixture("small-size.backup", "--keep-temporary-data");
    r.ok();
    let mut want = table(ENGINE_AFTER);
    // --keep-temporary-data: the engine's clean-up steps did not run.
    for (t, n, s) in [
        ("public.async_tasks", 12, "5f6a6b7f2eaacbc055f3e8dc13ea2080"),
        (
            "public.async_tasks_entities",
            24,
            "ebe8397be6178345a14727ef4aafc28b",
        ),
        (
            "public.business_entity_snapshot",
            10,
            "e325f5be6bf194e3a6984262c5888751",
        ),
        (
            "public.command_entities",
            15,
            "1bfea76bc6f559e2738aef1884a3df6b",
        ),
        (
            "public.dwh_history_timekeeping",
            3,
            "bf1c3ea56c818de1c4850e2526d95e68",
        ),
        ("public.job", 8, "690005ff81b463cd301a98d4fa898180"),
        ("public.step", 24, "a9611ba97cfa308bbc1d61f2990fa7d9"),
        ("public.vdc_options", 8, "b8dae41b609f7b18f4a84734b1063a95"),
        ("public.vm_dynamic", 30, "b0481a3d4d62f6d60ed7d6aee198d75a"),
    ] {
        want.insert(t.to_string(), (n, s.to_string()));
    }
    assert_eq!(
        checksums(&tcp(&c, "engine", "engine-fixture-pw", "engine_restored")),
        want
    );
    assert_eq!(
        checksums(&tcp(
            &c,
            "ovirt_engine_history",
            "dwh:fixture-pw",
            "ovirt_engine_history_restored"
        )),
        table(DWH_AFTER)
    );
}

#[test]
fn uncompressed_and_db_and_files_fixtures_restore() {
    let (c, _dir, r) = restore_fixture("uncompressed.backup", "--no-restore-permissions");
    r.ok();
    assert_eq!(
        checksums(&tcp(&c, "engine", "engine-fixture-pw", "engine_restored")),
        table(ENGINE_AFTER)
    );
    let (c, _dir, r) = restore_fixture("db-and-files.backup", "--restore-permissions");
    r.ok();
    assert_eq!(
        checksums(&tcp(&c, "engine", "engine-fixture-pw", "engine_restored")),
        table(ENGINE_AFTER)
    );
    // The archive has no DWH dump: the DWH target stays empty.
    assert!(checksums(&tcp(
        &c,
        "ovirt_engine_history",
        "dwh:fixture-pw",
        "ovirt_engine_history_restored"
    ))
    .is_empty());
}
