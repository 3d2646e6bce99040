//! The real engine-backup 4.5 archives in tests/fixtures open, verify and
//! show the members, config, version and files described in their README.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chrono::{TimeZone, Utc};
use holdfast::archive::{
    ArchiveConfig, ArchiveReader, Codec, DumpFormat, DumpSettings, FilesPlan, HashKind, ReadLimits,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/engine-backup-4.5")
        .join(name)
}

struct Expected {
    name: &'static str,
    codec: Codec,
    members: &'static [(&'static str, u64)],
    small_size: bool,
}

const FULL: &[(&str, u64)] = &[
    ("config", 220),
    ("db/dwh_backup.db", 54347),
    ("db/engine_backup.db", 179015),
    ("files", 1740),
    ("os_version", 9),
    ("sha256sum", 465),
    ("version", 6),
];

fn expected() -> Vec<Expected> {
    vec![
        Expected {
            name: "default.backup",
            codec: Codec::Gzip,
            members: FULL,
            small_size: false,
        },
        Expected {
            name: "small-size.backup",
            codec: Codec::Xz,
            members: &[
                ("config", 222),
                ("db/dwh_backup.db", 30388),
                ("db/engine_backup.db", 122744),
                ("files", 1740),
                ("os_version", 9),
                ("sha256sum", 465),
                ("version", 6),
            ],
            small_size: true,
        },
        Expected {
            name: "uncompressed.backup",
            codec: Codec::None,
            members: &[
                ("config", 220),
                ("db/dwh_backup.db", 54347),
                ("db/engine_backup.db", 179015),
                ("files", 30720),
                ("os_version", 9),
                ("sha256sum", 465),
                ("version", 6),
            ],
            small_size: false,
        },
        Expected {
            name: "db-and-files.backup",
            codec: Codec::Gzip,
            members: &[
                ("config", 220),
                ("db/engine_backup.db", 179015),
                ("files", 1740),
                ("os_version", 9),
                ("sha256sum", 382),
                ("version", 6),
            ],
            small_size: false,
        },
    ]
}

#[test]
fn every_fixture_opens_and_verifies() {
    let dumped_at = Utc
        .with_ymd_and_hms(2026, 11, 21, 14, 48, 0)
        .unwrap()
        .timestamp() as u64;
    for e in expected() {
        let reader = ArchiveReader::open(&fixture(e.name), ReadLimits::default())
            .unwrap_or_else(|err| panic!("{}: {err}", e.name));
        assert_eq!(reader.codec(), e.codec, "{}", e.name);
        assert_eq!(reader.hash_kind(), HashKind::Sha256);
        assert_eq!(reader.version(), "4.5.7");
        assert_eq!(reader.os_version(), "debian12");
        assert!(reader.manifest().is_none());

        let members: Vec<(&str, u64)> = reader
            .members()
            .map(|m| (m.name.as_str(), m.size))
            .collect();
        assert_eq!(members, e.members, "{}", e.name);

        // The tar records minute 14:48 of 2026-11-21 (the README's listing).
        let engine = reader.member("db/engine_backup.db").unwrap();
        assert!(
            engine.mtime >= dumped_at && engine.mtime < dumped_at + 60,
            "{}",
            engine.mtime
        );

        let mut config = ArchiveConfig::default();
        for prefix in ["DB_", "DWH_DB_", "KEYCLOAK_DB_", "MANAGEDBLOCK_DB_"] {
            config.set(prefix, DumpSettings::default());
        }
        if e.small_size {
            let xz_plain = DumpSettings {
                compressor: Codec::Xz,
                format: DumpFormat::Plain,
            };
            config.set("DB_", xz_plain);
            config.set("DWH_DB_", xz_plain);
        }
        assert_eq!(reader.config(), &config, "{}", e.name);
        let config_text = std::fs::read_to_string(reader.member_path("config").unwrap()).unwrap();
        assert_eq!(
            config.render(),
            config_text,
            "render() is byte-identical for {}",
            e.name
        );

        let dumps: Vec<&str> = reader
            .dumps()
            .into_iter()
            .map(|m| m.name.as_str())
            .collect();
        if e.name == "db-and-files.backup" {
            assert_eq!(dumps, ["db/engine_backup.db"]);
        } else {
            assert_eq!(dumps, ["db/dwh_backup.db", "db/engine_backup.db"]);
        }
        let engine_dump =
            std::fs::read(reader.member_path("db/engine_backup.db").unwrap()).unwrap();
        if e.small_size {
            assert_eq!(Codec::detect(&engine_dump), Codec::Xz);
        } else {
            assert!(engine_dump.starts_with(b"PGDMP"));
        }
        let dir_mode = std::fs::metadata(reader.dir())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
    }
}

#[test]
fn temp_dir_is_removed_on_drop() {
    let parent = tempfile::tempdir().unwrap();
    let reader = ArchiveReader::open_in(
        &fixture("default.backup"),
        parent.path(),
        ReadLimits::default(),
    )
    .unwrap();
    let dir = reader.dir().to_path_buf();
    assert!(dir.starts_with(parent.path()) && dir.is_dir());
    drop(reader);
    assert!(!dir.exists());
}

/// (path, mode, bytes, sha256) of every regular file, from the README.
const FILES: &[(&str, u32, u64, &str)] = &[
    (
        "etc/ovirt-engine/hooks/post-backup.sh",
        0o755,
        44,
        "7fb3029a67bf0aff647934cd4a99fbf13e1fdc858f5cdffbbac6acca15113b35",
    ),
    (
        "etc/ovirt-engine/aaa/internal.properties",
        0o600,
        120,
        "44e15849bb5c82078a3833f8d7d32fed844511a22355bf6bfb459fa88824c8e3",
    ),
    (
        "etc/ovirt-engine/custom settings/site notes.txt",
        0o644,
        69,
        "6c996da6f48c55a556be8df52cb2bb170401a0b9c60cee59efc14466b4fce4e1",
    ),
    (
        "etc/ovirt-engine/engine.conf.d/10-setup-database.conf",
        0o640,
        388,
        "63f26381dbc1aa42c795bb14718d0bd35e6ceececfee658fa3f169ff88e08416",
    ),
    (
        "etc/ovirt-engine/engine.conf.d/10-setup-protocols.conf",
        0o644,
        112,
        "6eacd51277f195d0493c2b72ccc642e97a52d18ca7ae01a3f6b989754866e14b",
    ),
    (
        "etc/ovirt-engine/engine.conf.d/99-custom.conf",
        0o644,
        92,
        "a1e3e605077f5baac83e0732775fb6aebb188481fecc64519f901fc5fd3e6db7",
    ),
    (
        "etc/ovirt-engine-dwh/ovirt-engine-dwhd.conf.d/10-setup-database.conf",
        0o640,
        765,
        "531111de2864f4ea66cc8dcf4399dad951c128fa6e52877b022d9c6357d4f562",
    ),
    (
        "etc/pki/ovirt-engine/ca.pem",
        0o644,
        61,
        "0596ec0efa364a0bf99731a93a99fbb66bbca38cd7fc8c66e3d6d213e9c6873d",
    ),
    (
        "etc/pki/ovirt-engine/keys/engine_id_rsa",
        0o600,
        50,
        "078e96e681f4501279550ae119f0e015575e986922ed81de8120be62ccc238fb",
    ),
    (
        "etc/pki/ovirt-engine/keys/dummy.key",
        0o644,
        7,
        "b37e50cedcd3e3f1ff64f4afc0422084ae694253cf399326868e07a35f4a45fb",
    ),
    (
        "etc/ovirt-engine-setup.conf.d/20-setup-ovirt-post.conf",
        0o644,
        132,
        "860a382b9dc26440cde4745908050c8fc4d0fe348d99dc10b2c97e417ca9e786",
    ),
    (
        "var/lib/ovirt-engine/deployments/engine.ear.deployed",
        0o644,
        0,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ),
    (
        "var/lib/ovirt-engine/deployments/x.txt",
        0o644,
        6,
        "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03",
    ),
    (
        "var/lib/ovirt-engine/deployments/blob.bin",
        0o644,
        256,
        "40aff2e9d2d8922e47afd4648e6967497158785fbd1da870e7110266bf944880",
    ),
    (
        "var/lib/ovirt-engine/setup/answers/20240301120000-setup.conf",
        0o600,
        67,
        "a2b7900667d995336c40fe04b9ec2a6aa2e7111bc87f139000e1a811f69b0f98",
    ),
    (
        "var/lib/ovirt-engine/setup-history.txt",
        0o644,
        53,
        "f3e18b62c004eaa177cdafd99f06f08d987d08198287007555a86fec9c204972",
    ),
];

/// (path, mode) of every directory entry, in tar order.
const DIRS: &[(&str, u32)] = &[
    ("etc/ovirt-engine", 0o755),
    ("etc/ovirt-engine/hooks", 0o755),
    ("etc/ovirt-engine/extensions.d", 0o755),
    ("etc/ovirt-engine/aaa", 0o755),
    ("etc/ovirt-engine/custom settings", 0o755),
    ("etc/ovirt-engine/engine.conf.d", 0o755),
    ("etc/ovirt-engine-dwh", 0o755),
    ("etc/ovirt-engine-dwh/ovirt-engine-dwhd.conf.d", 0o755),
    ("etc/pki/ovirt-engine", 0o755),
    ("etc/pki/ovirt-engine/requests", 0o755),
    ("etc/pki/ovirt-engine/keys", 0o750),
    ("etc/ovirt-engine-setup.conf.d", 0o755),
    ("var/lib/ovirt-engine/deployments", 0o755),
    ("var/lib/ovirt-engine/setup", 0o755),
    ("var/lib/ovirt-engine/setup/answers", 0o755),
];

/// Extract the `files` member of `archive` into a new install root.
/// The fixture archives that hold a `files` member.
const FIXTURES_WITH_FILES: [&str; 4] = [
    "default.backup",
    "small-size.backup",
    "uncompressed.backup",
    "db-and-files.backup",
];

pub fn restore_fixture_files(archive: &str, root: &Path) -> FilesPlan {
    let reader = ArchiveReader::open(&fixture(archive), ReadLimits::default()).unwrap();
    let plan = FilesPlan::new(
        &reader.member_path("files").unwrap(),
        root,
        &[],
        ReadLimits::default(),
    )
    .unwrap();
    plan.apply().unwrap();
    plan
}

#[test]
fn files_member_of_every_fixture_extracts_to_the_expected_tree() {
    let jan_2024 = Utc
        .with_ymd_and_hms(2024, 3, 1, 12, 0, 0)
        .unwrap()
        .timestamp();
    for archive in FIXTURES_WITH_FILES {
        let root = tempfile::tempdir().unwrap();
        let plan = restore_fixture_files(archive, root.path());
        assert_eq!(
            plan.entries().len(),
            FILES.len() + DIRS.len() + 1,
            "{archive}"
        );
        assert!(plan.existing_paths().is_empty());
        let parents: Vec<_> = plan
            .missing_parents()
            .iter()
            .map(|p| p.to_str().unwrap())
            .collect();
        assert_eq!(
            parents,
            ["etc", "var", "etc/pki", "var/lib", "var/lib/ovirt-engine"]
        );

        for (path, mode, size, sha) in FILES {
            let p = root.path().join(path);
            let meta = std::fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert!(meta.is_file(), "{path}");
            assert_eq!(meta.mode() & 0o7777, *mode, "{path}");
            assert_eq!(meta.len(), *size, "{path}");
            assert_eq!(meta.mtime(), jan_2024, "{path}");
            assert_eq!(HashKind::Sha256.digest_file(&p).unwrap(), *sha, "{path}");
        }
        for (path, mode) in DIRS {
            let meta = std::fs::symlink_metadata(root.path().join(path)).unwrap();
            assert!(meta.is_dir(), "{path}");
            assert_eq!(meta.mode() & 0o7777, *mode, "{path}");
            assert_eq!(meta.mtime(), jan_2024, "{path}");
        }
        for empty in [
            "etc/ovirt-engine/extensions.d",
            "etc/pki/ovirt-engine/requests",
        ] {
            assert_eq!(
                std::fs::read_dir(root.path().join(empty)).unwrap().count(),
                0
            );
        }
        let link = root.path().join("etc/pki/ovirt-engine/apache-ca.pem");
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("ca.pem"));
        let blob = std::fs::read(
            root.path()
                .join("var/lib/ovirt-engine/deployments/blob.bin"),
        )
        .unwrap();
        assert_eq!(blob, (0..=255u8).collect::<Vec<_>>());

        // Nothing else was created.
        let mut count = 0;
        let mut stack = vec![root.path().to_path_buf()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(dir).unwrap() {
                let e = e.unwrap();
                count += 1;
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                }
            }
        }
        assert_eq!(count, FILES.len() + DIRS.len() + 1 + 5, "{archive}");
    }
}

#[test]
#[ignore = "needs root: restores file owners"]
fn files_member_of_every_fixture_keeps_its_owners() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "needs root: restores file owners"
    );
    for archive in FIXTURES_WITH_FILES {
        let root = tempfile::tempdir().unwrap();
        restore_fixture_files(archive, root.path());
        // The README: uid 101/gid 104.
        let meta =
            std::fs::metadata(root.path().join("var/lib/ovirt-engine/setup-history.txt")).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (101, 104), "{archive}");
        let meta = std::fs::metadata(root.path().join("etc/ovirt-engine/aaa/internal.properties"))
            .unwrap();
        assert_eq!((meta.uid(), meta.gid()), (0, 0), "{archive}");
    }
}

#[test]
fn restoring_over_an_existing_tree_lists_what_is_replaced_and_honours_excludes() {
    let root = tempfile::tempdir().unwrap();
    restore_fixture_files("default.backup", root.path());
    let conf = root
        .path()
        .join("etc/ovirt-engine/engine.conf.d/10-setup-database.conf");
    std::fs::write(&conf, "CHANGED=1\n").unwrap();

    let reader = ArchiveReader::open(&fixture("default.backup"), ReadLimits::default()).unwrap();
    let plan = FilesPlan::new(
        &reader.member_path("files").unwrap(),
        root.path(),
        &[
            "var/lib/ovirt-engine/deployments".to_string(),
            "**/*.pem".to_string(),
        ],
        ReadLimits::default(),
    )
    .unwrap();
    assert!(plan.existing_paths().contains(&conf));
    assert!(plan.entries().iter().all(|e| e.exists));
    assert!(plan.missing_parents().is_empty());
    assert!(!plan
        .entries()
        .iter()
        .any(|e| e.path.starts_with("var/lib/ovirt-engine/deployments")
            || e.path.extension().is_some_and(|x| x == "pem")));
    std::fs::remove_file(root.path().join("var/lib/ovirt-engine/deployments/x.txt")).unwrap();
    plan.apply().unwrap();
    assert_eq!(
        HashKind::Sha256.digest_file(&conf).unwrap(),
        "63f26381dbc1aa42c795bb14718d0bd35e6ceececfee658fa3f169ff88e08416"
    );
    assert!(!root
        .path()
        .join("var/lib/ovirt-engine/deployments/x.txt")
        .exists());
}
