//! The conf files of the engine-backup 4.5 fixture, read as the engine reads
//! them and rewritten as a restore with new credentials does.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use chrono::{Local, TimeZone};
use holdfast::archive::{ArchiveReader, FilesPlan, ReadLimits};
use holdfast::conf::{quote_value, rewrite_keys, ConfValue, ConfValues};

fn install_root() -> tempfile::TempDir {
    let archive = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/engine-backup-4.5/default.backup");
    let reader = ArchiveReader::open(&archive, ReadLimits::default()).unwrap();
    let root = tempfile::tempdir().unwrap();
    FilesPlan::new(
        &reader.member_path("files").unwrap(),
        root.path(),
        &[],
        ReadLimits::default(),
    )
    .unwrap()
    .apply()
    .unwrap();
    root
}

const ENGINE_URL: &str =
    "jdbc:postgresql://127.0.0.1:54329/engine?sslfactory=org.postgresql.ssl.NonValidatingFactory";

#[test]
fn engine_conf_d_reads_as_the_engine_does() {
    let root = install_root();
    // The engine defaults file is absent from the fixture: skipped like the engine does.
    let mut values = ConfValues::new();
    let read = values
        .read_sources(
            root.path(),
            &[
                "usr/share/ovirt-engine/services/ovirt-engine/ovirt-engine.conf",
                "etc/ovirt-engine/engine.conf",
                "etc/ovirt-engine/engine.conf.d/*.conf",
            ],
        )
        .unwrap();
    let names: Vec<_> = read
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "10-setup-database.conf",
            "10-setup-protocols.conf",
            "99-custom.conf"
        ]
    );
    assert_eq!(values.get("ENGINE_DB_HOST"), Some("127.0.0.1"));
    assert_eq!(values.get("ENGINE_DB_PORT"), Some("54329"));
    assert_eq!(values.get("ENGINE_DB_PASSWORD"), Some("engine-fixture-pw"));
    assert_eq!(values.get("ENGINE_DB_URL"), Some(ENGINE_URL));
    assert_eq!(values.get("ENGINE_FQDN"), Some("engine.example.test"));
    assert_eq!(values.get("ENGINE_PROXY_HTTPS_PORT"), Some("443"));
    assert_eq!(
        values.get("FIXTURE_CUSTOM_NOTE"),
        Some("custom value with spaces and 'quotes'")
    );
}

#[test]
fn dwh_conf_keeps_the_colon_in_the_password() {
    let root = install_root();
    let mut values = ConfValues::new();
    values
        .read_sources(
            root.path(),
            &["etc/ovirt-engine-dwh/ovirt-engine-dwhd.conf.d/*.conf"],
        )
        .unwrap();
    assert_eq!(values.get("DWH_DB_PASSWORD"), Some("dwh:fixture-pw"));
    assert_eq!(values.get("DWH_DB_USER"), Some("ovirt_engine_history"));
    assert_eq!(values.get("ENGINE_DB_URL"), Some(ENGINE_URL));
    assert_eq!(
        values.get("DWH_DB_URL"),
        Some("jdbc:postgresql://127.0.0.1:54329/ovirt_engine_history?sslfactory=org.postgresql.ssl.NonValidatingFactory")
    );
    assert_eq!(values.len(), 18);
}

fn conf(root: &Path, rel: &str) -> PathBuf {
    root.join(rel)
}

#[test]
fn rewriting_the_database_name_matches_engine_backups_result() {
    let root = install_root();
    let path = conf(
        root.path(),
        "etc/ovirt-engine/engine.conf.d/10-setup-database.conf",
    );
    let before = std::fs::read(&path).unwrap();
    let now = Local.with_ymd_and_hms(2026, 11, 21, 15, 0, 0).unwrap();
    let copy = rewrite_keys(
        &path,
        &[(
            "ENGINE_DB_DATABASE".into(),
            ConfValue::Literal("engine_restored".into()),
        )],
        now,
    )
    .unwrap();
    assert_eq!(
        copy.file_name().unwrap(),
        "10-setup-database.conf.20261121150000"
    );
    assert_eq!(std::fs::read(&copy).unwrap(), before);
    let text = std::fs::read_to_string(&path).unwrap();
    let expected = String::from_utf8(before).unwrap().replace(
        "ENGINE_DB_DATABASE=\"engine\"",
        "ENGINE_DB_DATABASE=\"engine_restored\"",
    );
    assert_eq!(text, expected);
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777,
        0o640
    );

    let mut values = ConfValues::new();
    values.read_file(&path).unwrap();
    assert_eq!(
        values.get("ENGINE_DB_URL"),
        Some("jdbc:postgresql://127.0.0.1:54329/engine_restored?sslfactory=org.postgresql.ssl.NonValidatingFactory")
    );
}

#[test]
fn rewritten_passwords_with_shell_characters_read_back() {
    let root = install_root();
    let path = conf(
        root.path(),
        "etc/ovirt-engine-dwh/ovirt-engine-dwhd.conf.d/10-setup-database.conf",
    );
    let password = r#"p:a"s$s`w\o'rd ${DWH_DB_HOST} #x"#;
    rewrite_keys(
        &path,
        &[
            ("DWH_DB_PASSWORD".into(), ConfValue::Literal(password.into())),
            (
                "DWH_DB_URL".into(),
                ConfValue::Raw(
                    "\"jdbc:postgresql://${DWH_DB_HOST}:${DWH_DB_PORT}/${DWH_DB_DATABASE}?ssl=true\""
                        .into(),
                ),
            ),
        ],
        Local::now(),
    )
    .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(&format!("DWH_DB_PASSWORD={}\n", quote_value(password))));
    let mut values = ConfValues::new();
    values.read_file(&path).unwrap();
    assert_eq!(values.get("DWH_DB_PASSWORD"), Some(password));
    assert_eq!(
        values.get("DWH_DB_URL"),
        Some("jdbc:postgresql://127.0.0.1:54329/ovirt_engine_history?ssl=true")
    );
    assert_eq!(values.get("ENGINE_DB_PASSWORD"), Some("engine-fixture-pw"));
}
