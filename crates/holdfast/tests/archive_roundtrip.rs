//! What ArchiveWriter and pack_files write, ArchiveReader and FilesPlan read
//! back exactly, for every codec.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use holdfast::archive::manifest::{DatabaseRecord, Manifest, ToolInfo, MANIFEST_FORMAT_VERSION};
use holdfast::archive::{
    pack_files, ArchiveConfig, ArchiveReader, ArchiveWriter, Codec, DumpFormat, FileSet, FilesPlan,
    ReadLimits, WriterOptions,
};

fn make_tree(root: &Path) {
    let mk = |rel: &str, mode: u32| {
        let p = root.join(rel);
        std::fs::create_dir_all(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    let put = |rel: &str, data: &[u8], mode: u32| {
        let p = root.join(rel);
        std::fs::write(&p, data).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    mk("etc/app", 0o755);
    mk("etc/app/empty", 0o700);
    mk("etc/app/keys", 0o750);
    mk("etc/app/dir with space", 0o755);
    mk("var/lib/app/backups", 0o755);
    mk("var/lib/app/state", 0o755);
    put("etc/app/app.conf", b"A=\"1\"\n", 0o640);
    put("etc/app/keys/id", b"secret key\n", 0o600);
    put(
        "etc/app/dir with space/näme.txt",
        "ünïcødé\n".as_bytes(),
        0o644,
    );
    put("etc/app/run.sh", b"#!/bin/sh\n", 0o755);
    put("var/lib/app/backups/old.tar", b"skip me", 0o644);
    put(
        "var/lib/app/state/blob.bin",
        &(0..=255u8).collect::<Vec<_>>(),
        0o644,
    );
    put("etc/app/empty-file", b"", 0o644);
    std::os::unix::fs::symlink("app.conf", root.join("etc/app/link.conf")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", root.join("etc/app/dangling")).unwrap();
}

fn file_set() -> FileSet {
    FileSet {
        include: vec!["etc/app".into(), "etc/missing".into(), "var/lib/app".into()],
        exclude: vec!["var/lib/app/backups".into()],
    }
}

/// (relative path, kind, mode, content or link target) of everything under `root`.
fn snapshot(root: &Path) -> Vec<(String, char, u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if m.file_type().is_symlink() {
                let t = std::fs::read_link(&p).unwrap();
                out.push((rel, 'l', 0, t.to_string_lossy().as_bytes().to_vec()));
            } else if m.is_dir() {
                out.push((rel, 'd', m.mode() & 0o7777, vec![]));
                stack.push(p);
            } else {
                out.push((rel, 'f', m.mode() & 0o7777, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn files_member_round_trips_for_every_codec() {
    let src = tempfile::tempdir().unwrap();
    make_tree(src.path());
    let mtime = std::fs::metadata(src.path().join("etc/app/keys/id"))
        .unwrap()
        .mtime();
    for codec in Codec::ALL {
        let (packed, report) =
            pack_files(src.path(), &file_set(), codec, None, 2, Vec::new()).unwrap();
        assert_eq!(Codec::detect(&packed), codec);
        assert!(report.entries.contains(&"etc/app/empty/".to_string()));
        assert!(!report.entries.iter().any(|e| e.contains("backups")));
        assert!(report.entries.iter().all(|e| !e.starts_with('/')));

        let work = tempfile::tempdir().unwrap();
        let member = work.path().join("files");
        std::fs::write(&member, &packed).unwrap();
        let dest = tempfile::tempdir().unwrap();
        let plan = FilesPlan::new(&member, dest.path(), &[], ReadLimits::default()).unwrap();
        plan.apply().unwrap();

        let mut want = snapshot(src.path());
        want.retain(|(p, ..)| !p.starts_with("var/lib/app/backups"));
        // The parents above the included paths are created 0755, not archived.
        for (p, kind, mode, _) in want.iter_mut() {
            if *kind == 'd' && ["etc", "var", "var/lib"].contains(&p.as_str()) {
                *mode = 0o755;
            }
        }
        assert_eq!(snapshot(dest.path()), want, "{codec}");
        let got = std::fs::metadata(dest.path().join("etc/app/keys/id"))
            .unwrap()
            .mtime();
        assert_eq!(got, mtime);
    }
}

/// The tree of [`make_tree`] (in the first directory) packed with `codec`
/// into a `files` member at the path returned (in the second).
fn packed_member(codec: Codec) -> (tempfile::TempDir, tempfile::TempDir, std::path::PathBuf) {
    let src = tempfile::tempdir().unwrap();
    make_tree(src.path());
    let (packed, _) = pack_files(src.path(), &file_set(), codec, None, 1, Vec::new()).unwrap();
    let work = tempfile::tempdir().unwrap();
    let member = work.path().join("files");
    std::fs::write(&member, &packed).unwrap();
    (src, work, member)
}

#[test]
fn a_preview_holds_only_the_wanted_paths_unless_a_link_leads_to_one() {
    let (src, _work, member) = packed_member(Codec::Zstd);
    let preview = |wanted: &[&str]| {
        let dest = tempfile::tempdir().unwrap();
        let wanted: Vec<String> = wanted.iter().map(|w| w.to_string()).collect();
        let plan =
            FilesPlan::preview(&member, dest.path(), &wanted, ReadLimits::default()).unwrap();
        plan.apply_unsynced().unwrap();
        let got: Vec<(String, char)> = snapshot(dest.path())
            .into_iter()
            .map(|(p, kind, ..)| (p, kind))
            .collect();
        let key = std::fs::read(dest.path().join("etc/app/keys/id")).ok();
        (got, plan.bytes(), key)
    };

    // Plain files, and a glob that matches nothing: those files alone, with
    // the directories above them.
    let (got, bytes, key) =
        preview(&["etc/app/app.conf", "etc/app/keys/id", "etc/app/none/*.conf"]);
    let names = |v: &[(String, char)]| {
        v.iter()
            .map(|(p, k)| format!("{k} {p}"))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&got),
        [
            "d etc",
            "d etc/app",
            "f etc/app/app.conf",
            "d etc/app/keys",
            "f etc/app/keys/id"
        ]
    );
    assert_eq!(bytes, 6 + 11);
    assert_eq!(key.as_deref(), Some(&b"secret key\n"[..]));

    // A wanted symlink (here through a glob) may lead anywhere in the tree:
    // then the preview is the whole tree.
    let everything = {
        let mut all = snapshot(src.path());
        all.retain(|(p, ..)| !p.starts_with("var/lib/app/backups"));
        all.into_iter().map(|(p, k, ..)| (p, k)).collect::<Vec<_>>()
    };
    for wanted in [&["etc/app/*.conf"][..], &["etc/app/link.conf"][..]] {
        let (got, ..) = preview(wanted);
        assert_eq!(got, everything, "{wanted:?}");
    }
}

#[test]
fn files_already_in_place_are_left_alone_and_any_difference_is_written() {
    use std::os::unix::fs::FileExt;
    let (_src, _work, member) = packed_member(Codec::Gzip);
    let dest = tempfile::tempdir().unwrap();
    let plan = |dest: &Path| FilesPlan::new(&member, dest, &[], ReadLimits::default()).unwrap();
    let first = plan(dest.path());
    assert!(first.entries().iter().all(|e| !e.already_there));
    first.apply().unwrap();
    let restored = snapshot(dest.path());

    // Everything as the archive has it: no file to keep or write.
    let again = plan(dest.path());
    let files = |p: &FilesPlan, there: bool| -> Vec<String> {
        p.entries()
            .iter()
            .filter(|e| e.already_there == there && e.kind == holdfast::archive::PlannedKind::File)
            .map(|e| e.path.display().to_string())
            .collect()
    };
    assert!(
        files(&again, false).is_empty(),
        "{:?}",
        files(&again, false)
    );
    assert_eq!(files(&again, true).len(), 6);
    assert_eq!(again.bytes(), 0);
    assert!(again
        .existing_paths()
        .iter()
        .all(|p| p.is_dir() || p.is_symlink()));

    // One byte changed in place (same size, time put back), one mode, one
    // time: those three are written again, the others left alone.
    let id = dest.path().join("etc/app/keys/id");
    let mtime = std::fs::metadata(&id).unwrap().modified().unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&id).unwrap();
    f.write_at(b"S", 0).unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    let run = dest.path().join("etc/app/run.sh");
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).unwrap();
    let conf = dest.path().join("etc/app/app.conf");
    std::fs::File::options()
        .write(true)
        .open(&conf)
        .unwrap()
        .set_modified(std::time::SystemTime::now())
        .unwrap();
    let third = plan(dest.path());
    assert_eq!(
        files(&third, false),
        ["etc/app/app.conf", "etc/app/keys/id", "etc/app/run.sh"]
    );
    assert_eq!(third.bytes(), 6 + 11 + 10);
    third.apply().unwrap();
    assert_eq!(snapshot(dest.path()), restored);
}

fn sample_manifest(members: Vec<holdfast::archive::manifest::MemberRecord>) -> Manifest {
    Manifest {
        format_version: MANIFEST_FORMAT_VERSION,
        tool: ToolInfo {
            name: "holdfast".into(),
            version: "0.1.0".into(),
        },
        created_at: "2026-11-21T15:00:00+00:00".into(),
        profile: "ovirt-engine".into(),
        profile_source: None,
        application_version: "4.5.7".into(),
        host: "engine.example.test".into(),
        scopes: vec!["files".into(), "db".into()],
        members,
        databases: vec![DatabaseRecord {
            scope: "db".into(),
            database: "engine".into(),
            member: "db/engine_backup.db".into(),
            dump_format: DumpFormat::Custom,
            compressor: Codec::None,
            pg_dump_version: "15.18".into(),
            server_version: "15.18".into(),
            encoding: "UTF8".into(),
            collate: "C.UTF-8".into(),
            ctype: "C.UTF-8".into(),
            extensions: vec![],
            roles: vec![],
            tables: vec![],
            sequences: vec![],
            row_text: None,
        }],
    }
}

/// Write a complete archive with `codec`; returns the dump bytes used.
fn write_archive(dest: &Path, codec: Codec, overwrite: bool) -> holdfast::Result<Vec<u8>> {
    let work = tempfile::tempdir().unwrap();
    let dump: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let dump_path = work.path().join("engine.dump");
    std::fs::write(&dump_path, &dump).unwrap();
    let src = tempfile::tempdir().unwrap();
    make_tree(src.path());
    let files_path = work.path().join("files");
    let out = std::fs::File::create(&files_path).unwrap();
    pack_files(src.path(), &file_set(), Codec::Xz, None, 1, out).unwrap();

    let mut w = ArchiveWriter::create(
        dest,
        WriterOptions {
            codec,
            level: None,
            threads: 2,
            overwrite,
        },
    )?;
    w.add_bytes("config", ArchiveConfig::default().render())?;
    w.add_bytes("os_version", "debian12\n")?;
    w.add_file("files", &files_path)?;
    w.add_bytes("version", "4.5.7\n")?;
    w.add_file("db/engine_backup.db", &dump_path)?;
    w.add_bytes("db/dwh_backup.db", b"PGDMP dwh".to_vec())?;
    let manifest = sample_manifest(w.member_records());
    w.add_bytes("manifest.json", manifest.to_json())?;
    w.finish()?;
    Ok(dump)
}

/// Member names of an archive in tar order.
fn tar_listing(archive: &Path) -> Vec<String> {
    let file = std::fs::File::open(archive).unwrap();
    let (_, decoder) = Codec::detect_decoder(file).unwrap();
    let mut tar = tar::Archive::new(decoder);
    tar.entries()
        .unwrap()
        .map(|e| String::from_utf8(e.unwrap().path_bytes().into_owned()).unwrap())
        .collect()
}

#[test]
fn archive_round_trips_for_every_codec() {
    for codec in Codec::ALL {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("backup.tar");
        let dump = write_archive(&dest, codec, false).unwrap();
        assert_eq!(std::fs::metadata(&dest).unwrap().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
        assert_eq!(
            tar_listing(&dest),
            [
                "./",
                "./config",
                "./os_version",
                "./files",
                "./version",
                "./manifest.json",
                "./sha256sum",
                "./db/",
                "./db/dwh_backup.db",
                "./db/engine_backup.db"
            ]
        );

        let reader = ArchiveReader::open(&dest, ReadLimits::default()).unwrap();
        assert_eq!(reader.codec(), codec);
        assert_eq!(reader.version(), "4.5.7");
        assert_eq!(reader.os_version(), "debian12");
        assert_eq!(reader.config(), &ArchiveConfig::default());
        let manifest = reader.manifest().unwrap();
        assert_eq!(manifest.members.len(), 6);
        assert_eq!(
            manifest.database("db/engine_backup.db").unwrap().database,
            "engine"
        );
        let got = std::fs::read(reader.member_path("db/engine_backup.db").unwrap()).unwrap();
        assert_eq!(got, dump);
        let sums = std::fs::read_to_string(reader.member_path("sha256sum").unwrap()).unwrap();
        let names: Vec<_> = sums.lines().map(|l| &l[66..]).collect();
        assert_eq!(
            names,
            [
                "config",
                "os_version",
                "files",
                "version",
                "manifest.json",
                "db/dwh_backup.db",
                "db/engine_backup.db"
            ]
        );
        // The dump's mtime is the source file's.
        assert!(reader.member("db/engine_backup.db").unwrap().mtime > 0);

        // The files member extracts.
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
        assert_eq!(
            std::fs::read(root.path().join("etc/app/keys/id")).unwrap(),
            b"secret key\n"
        );
    }
}

#[test]
fn existing_destination_needs_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("backup");
    std::fs::write(&dest, "precious").unwrap();
    let err = write_archive(&dest, Codec::Gzip, false).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(std::fs::read(&dest).unwrap(), b"precious");
    write_archive(&dest, Codec::Gzip, true).unwrap();
    let mut head = [0u8; 2];
    std::fs::File::open(&dest)
        .unwrap()
        .read_exact(&mut head)
        .unwrap();
    assert_eq!(head, [0x1f, 0x8b]);
}

#[test]
fn unfinished_writer_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("backup");
    let mut w = ArchiveWriter::create(&dest, WriterOptions::default()).unwrap();
    let temp = w.temp_path().unwrap().to_path_buf();
    assert_eq!(temp.parent(), Some(dir.path()));
    assert_eq!(std::fs::metadata(&temp).unwrap().mode() & 0o777, 0o600);
    w.add_bytes("version", "4.5.7\n").unwrap();
    assert!(w.add_bytes("version", "again").is_err());
    assert!(w.add_bytes("../evil", "x").is_err());
    assert!(w.add_bytes("sha256sum", "x").is_err());
    drop(w);
    assert!(!temp.exists());
    assert!(!dest.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// engine-backup unpacks with GNU tar and checks with `sha256sum -c`; both
/// must accept what ArchiveWriter writes.
#[test]
fn gnu_tar_and_sha256sum_accept_what_we_write() {
    use std::process::Command;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("backup");
    write_archive(&dest, Codec::Gzip, false).unwrap();
    let listing = Command::new("tar")
        .arg("-tvzf")
        .arg(&dest)
        .output()
        .unwrap();
    assert!(listing.status.success());
    let text = String::from_utf8(listing.stdout).unwrap();
    let names: Vec<_> = text
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    assert_eq!(names[..3], ["./", "./config", "./os_version"]);

    let x = dir.path().join("x");
    std::fs::create_dir(&x).unwrap();
    let unpack = Command::new("tar")
        .arg("-C")
        .arg(&x)
        .arg("-pSsxf")
        .arg(&dest)
        .status()
        .unwrap();
    assert!(unpack.success());
    let check = Command::new("sha256sum")
        .args(["-c", "sha256sum", "--status"])
        .current_dir(&x)
        .status()
        .unwrap();
    assert!(check.success());
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let files = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-xJf")
        .arg(x.join("files"))
        .status()
        .unwrap();
    assert!(files.success());
    assert_eq!(
        std::fs::read(root.join("etc/app/keys/id")).unwrap(),
        b"secret key\n"
    );
    assert_eq!(
        std::fs::read_link(root.join("etc/app/link.conf")).unwrap(),
        Path::new("app.conf")
    );
}
