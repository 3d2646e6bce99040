//! Damaged and hostile archives: each is refused with a clear one-line error,
//! and nothing is written outside the reader's temporary directory.

use std::io::Write;
use std::path::Path;

use holdfast::archive::manifest::{Manifest, MemberRecord, ToolInfo, MANIFEST_FORMAT_VERSION};
use holdfast::archive::{ArchiveConfig, ArchiveReader, Codec, FilesPlan, HashKind, ReadLimits};
use holdfast::Error;

#[derive(Clone)]
enum Kind {
    File(Vec<u8>),
    Dir,
    Symlink(&'static str),
    HardLink(&'static str),
    Char,
    Fifo,
}

/// A GNU tar with the names written byte for byte (the tar crate's builder
/// would refuse or normalize the hostile ones).
fn raw_tar(entries: &[(String, Kind)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, kind) in entries {
        let mut h = tar::Header::new_gnu();
        let (ty, data, link): (tar::EntryType, &[u8], &str) = match kind {
            Kind::File(d) => (tar::EntryType::Regular, d, ""),
            Kind::Dir => (tar::EntryType::Directory, &[], ""),
            Kind::Symlink(t) => (tar::EntryType::Symlink, &[], t),
            Kind::HardLink(t) => (tar::EntryType::Link, &[], t),
            Kind::Char => (tar::EntryType::Char, &[], ""),
            Kind::Fifo => (tar::EntryType::Fifo, &[], ""),
        };
        h.set_entry_type(ty);
        h.set_size(data.len() as u64);
        h.set_mode(if matches!(kind, Kind::Dir) {
            0o755
        } else {
            0o644
        });
        h.set_mtime(1_795_272_484);
        h.set_uid(0);
        h.set_gid(0);
        {
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn sha256(data: &[u8]) -> String {
    HashKind::Sha256.digest_reader(data).unwrap()
}

fn dump() -> Vec<u8> {
    let mut d = b"PGDMP".to_vec();
    d.extend((0..5000u32).map(|i| (i % 241) as u8));
    d
}

/// Regular-file members of a sound archive, without the hash file.
fn sound_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("config", ArchiveConfig::default().render().into_bytes()),
        ("os_version", b"debian12\n".to_vec()),
        ("version", b"4.5.7\n".to_vec()),
        ("db/engine_backup.db", dump()),
    ]
}

fn sha256sum_of(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    files
        .iter()
        .map(|(n, d)| format!("{}  {n}\n", sha256(d)))
        .collect::<String>()
        .into_bytes()
}

/// Entries in engine-backup's layout for `files`, with a correct sha256sum.
fn layout(files: &[(&str, Vec<u8>)]) -> Vec<(String, Kind)> {
    let mut entries = vec![("./".to_string(), Kind::Dir)];
    for (n, d) in files.iter().filter(|(n, _)| !n.starts_with("db/")) {
        entries.push((format!("./{n}"), Kind::File(d.clone())));
    }
    entries.push(("./sha256sum".into(), Kind::File(sha256sum_of(files))));
    entries.push(("./db/".into(), Kind::Dir));
    for (n, d) in files.iter().filter(|(n, _)| n.starts_with("db/")) {
        entries.push((format!("./{n}"), Kind::File(d.clone())));
    }
    entries
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = Codec::Gzip.encoder(Vec::new(), None, 1).unwrap();
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// Open `bytes` as an archive; on failure check that the temporary
/// directory's parent is empty again and nothing escaped.
fn open_bytes(bytes: &[u8]) -> holdfast::Result<ArchiveReader> {
    open_with(bytes, ReadLimits::default())
}

fn open_with(bytes: &[u8], limits: ReadLimits) -> holdfast::Result<ArchiveReader> {
    let top = tempfile::tempdir().unwrap();
    let archive = top.path().join("hostile.backup");
    std::fs::write(&archive, bytes).unwrap();
    let temp_parent = top.path().join("tmp");
    std::fs::create_dir(&temp_parent).unwrap();
    let result = ArchiveReader::open_in(&archive, &temp_parent, limits);
    if let Err(e) = &result {
        assert!(
            matches!(e, Error::Invalid(_)),
            "not an Invalid error: {e:?}"
        );
        let msg = e.to_string();
        assert!(!msg.contains('\n'), "multi-line message: {msg}");
        assert!(
            msg.starts_with(&archive.display().to_string()),
            "names the archive: {msg}"
        );
        assert_eq!(
            std::fs::read_dir(&temp_parent).unwrap().count(),
            0,
            "temp dir left behind"
        );
        let mut top_entries: Vec<_> = std::fs::read_dir(top.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        top_entries.sort();
        assert_eq!(
            top_entries,
            ["hostile.backup", "tmp"],
            "something was written outside"
        );
    }
    result
}

fn expect_error(bytes: &[u8], want: &str) {
    let err = open_bytes(bytes)
        .err()
        .unwrap_or_else(|| panic!("accepted; wanted {want:?}"));
    assert!(err.to_string().contains(want), "{err}\n  wanted: {want}");
}

#[test]
fn the_sound_archive_opens() {
    let tar = raw_tar(&layout(&sound_files()));
    let reader = open_bytes(&tar).unwrap();
    assert_eq!(reader.os_version(), "debian12");
    let reader = open_bytes(&gzip(&tar)).unwrap();
    assert_eq!(reader.codec(), Codec::Gzip);
}

#[test]
fn truncation_at_every_member_boundary_is_detected() {
    let tar = raw_tar(&layout(&sound_files()));
    let end = tar.len() - 1024;
    let mut offset = 0;
    let mut cuts = 0;
    while offset < end {
        expect_error(&tar[..offset], "truncated");
        let header = tar::Header::from_byte_slice(&tar[offset..offset + 512]);
        let size = header.entry_size().unwrap();
        offset += 512 + (size as usize).div_ceil(512) * 512;
        cuts += 1;
    }
    expect_error(&tar[..end], "truncated");
    assert_eq!(cuts, 7);
}

#[test]
fn truncation_mid_member_is_detected() {
    let tar = raw_tar(&layout(&sound_files()));
    // Inside the engine dump's data, the last member.
    let cut = tar.len() - 1024 - 2048;
    expect_error(&tar[..cut], "truncated");
    // Inside a header.
    expect_error(&tar[..512 + 100], "truncated");
}

#[test]
fn truncated_or_damaged_compressed_streams_are_detected() {
    let tar = raw_tar(&layout(&sound_files()));
    let gz = gzip(&tar);
    expect_error(&gz[..gz.len() - 6], "gzip stream is damaged or truncated");
    expect_error(&gz[..gz.len() / 2], "gzip stream is damaged or truncated");
    let mut flipped = gz.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x55;
    let err = open_bytes(&flipped).err().unwrap().to_string();
    assert!(
        err.contains("gzip stream is damaged") || err.contains("Checksum verification failed"),
        "{err}"
    );
    for codec in [Codec::Xz, Codec::Zstd, Codec::Bzip2] {
        let mut enc = codec.encoder(Vec::new(), None, 1).unwrap();
        enc.write_all(&tar).unwrap();
        let packed = enc.finish().unwrap();
        expect_error(
            &packed[..packed.len() - 3],
            &format!("{codec} stream is damaged or truncated"),
        );
    }
}

#[test]
fn a_flipped_byte_fails_the_checksum_naming_the_member() {
    let mut tar = raw_tar(&layout(&sound_files()));
    let at = tar.len() - 1024 - 1000;
    tar[at] ^= 0x01;
    expect_error(
        &tar,
        "Checksum verification failed: member 'db/engine_backup.db'",
    );
}

#[test]
fn missing_and_unlisted_members_are_refused() {
    let files = sound_files();
    let mut listed = files.clone();
    listed.push(("db/dwh_backup.db", b"PGDMP dwh".to_vec()));
    let mut entries = layout(&files);
    let at = entries
        .iter()
        .position(|(n, _)| n == "./sha256sum")
        .unwrap();
    entries[at].1 = Kind::File(sha256sum_of(&listed));
    expect_error(
        &raw_tar(&entries),
        "member 'db/dwh_backup.db' listed in sha256sum is missing",
    );

    let mut entries = layout(&files);
    entries.push(("./db/extra_backup.db".into(), Kind::File(b"x".to_vec())));
    expect_error(
        &raw_tar(&entries),
        "member 'db/extra_backup.db' is not listed in sha256sum",
    );

    let without_version: Vec<_> = files
        .iter()
        .filter(|(n, _)| *n != "version")
        .cloned()
        .collect();
    expect_error(
        &raw_tar(&layout(&without_version)),
        "has no 'version' member",
    );
    let without_config: Vec<_> = files
        .iter()
        .filter(|(n, _)| *n != "config")
        .cloned()
        .collect();
    expect_error(&raw_tar(&layout(&without_config)), "has no 'config' member");
}

#[test]
fn no_hash_file_and_legacy_md5sum() {
    let files = sound_files();
    let mut entries = layout(&files);
    entries.retain(|(n, _)| n != "./sha256sum");
    expect_error(&raw_tar(&entries), "No supported hash file found");

    let md5: String = files
        .iter()
        .map(|(n, d)| format!("{}  {n}\n", HashKind::Md5.digest_reader(&d[..]).unwrap()))
        .collect();
    entries.push(("./md5sum".into(), Kind::File(md5.into_bytes())));
    let reader = open_bytes(&raw_tar(&entries)).unwrap();
    assert_eq!(reader.hash_kind(), HashKind::Md5);
    assert_eq!(reader.os_version(), "debian12");

    // os_version absent (archives before 4.4): Unknown.
    let old: Vec<_> = files
        .iter()
        .filter(|(n, _)| *n != "os_version")
        .cloned()
        .collect();
    assert_eq!(
        open_bytes(&raw_tar(&layout(&old))).unwrap().os_version(),
        "Unknown"
    );
}

#[test]
fn duplicated_members_are_refused() {
    let mut entries = layout(&sound_files());
    entries.insert(
        2,
        (
            "./config".into(),
            Kind::File(b"DB_DUMP_FORMAT=plain\n".to_vec()),
        ),
    );
    expect_error(&raw_tar(&entries), "duplicate member './config'");
    let mut entries = layout(&sound_files());
    entries.push(("./db/".into(), Kind::Dir));
    expect_error(&raw_tar(&entries), "duplicate entry './db/'");
}

#[test]
fn traversal_and_unknown_names_are_refused() {
    for (name, want) in [
        ("./../evil", "'..' path component"),
        ("../evil", "'..' path component"),
        ("/tmp/evil", "absolute path"),
        ("./db/../../evil.db", "'..' path component"),
        ("./etc/passwd", "unexpected member './etc/passwd'"),
        ("./db/evil.sh", "unexpected member './db/evil.sh'"),
        ("./db/sub/x.db", "unexpected member"),
    ] {
        let mut entries = layout(&sound_files());
        entries.insert(1, (name.to_string(), Kind::File(b"evil".to_vec())));
        expect_error(&raw_tar(&entries), want);
    }
    let mut entries = layout(&sound_files());
    entries.insert(1, ("./etc/".into(), Kind::Dir));
    expect_error(&raw_tar(&entries), "unexpected directory './etc/'");
}

#[test]
fn links_devices_and_fifos_are_refused() {
    for (kind, want) in [
        (Kind::Symlink("/etc/passwd"), "is a symbolic link"),
        (Kind::HardLink("./config"), "is a hard link"),
        (Kind::Char, "is a character device"),
        (Kind::Fifo, "is a fifo"),
    ] {
        let mut entries = layout(&sound_files());
        entries.insert(1, ("./files".into(), kind));
        expect_error(&raw_tar(&entries), &format!("member './files' {want}"));
    }
}

#[test]
fn config_with_shell_code_is_refused() {
    for (text, want) in [
        (
            "DB_DUMP_FORMAT=$(touch /tmp/holdfast-pwned)\n",
            "config: line 1: invalid value",
        ),
        (
            "DB_DUMP_COMPRESSOR=\nDB_DUMP_FORMAT=custom; touch /tmp/x\n",
            "config: line 2: invalid value",
        ),
        ("DB_DUMP_COMPRESSOR=`id`\n", "config: line 1: invalid value"),
        ("LD_PRELOAD=/tmp/x.so\n", "config: line 1: unknown key"),
    ] {
        let mut files = sound_files();
        files[0].1 = text.as_bytes().to_vec();
        expect_error(&raw_tar(&layout(&files)), want);
    }
}

fn manifest_for(files: &[(&str, Vec<u8>)]) -> Manifest {
    Manifest {
        format_version: MANIFEST_FORMAT_VERSION,
        tool: ToolInfo {
            name: "holdfast".into(),
            version: "0.1.0".into(),
        },
        created_at: "2026-11-21T15:00:00Z".into(),
        profile: "ovirt-engine".into(),
        profile_source: None,
        application_version: "4.5.7".into(),
        host: "h".into(),
        scopes: vec!["db".into()],
        members: files
            .iter()
            .map(|(n, d)| MemberRecord {
                name: n.to_string(),
                size: d.len() as u64,
                sha256: sha256(d),
            })
            .collect(),
        databases: vec![],
    }
}

#[test]
fn manifest_with_wrong_checksums_is_refused() {
    let files = sound_files();
    let mut good = files.clone();
    good.push(("manifest.json", manifest_for(&files).to_json().into_bytes()));
    assert!(open_bytes(&raw_tar(&layout(&good)))
        .unwrap()
        .manifest()
        .is_some());

    let mut manifest = manifest_for(&files);
    manifest.members[3].sha256 = "0".repeat(64);
    let mut bad = files.clone();
    bad.push(("manifest.json", manifest.to_json().into_bytes()));
    expect_error(
        &raw_tar(&layout(&bad)),
        "member 'db/engine_backup.db' has sha256",
    );

    let mut manifest = manifest_for(&files);
    manifest.members.push(MemberRecord {
        name: "db/dwh_backup.db".into(),
        size: 1,
        sha256: "0".repeat(64),
    });
    let mut bad = files.clone();
    bad.push(("manifest.json", manifest.to_json().into_bytes()));
    expect_error(
        &raw_tar(&layout(&bad)),
        "manifest lists member 'db/dwh_backup.db'",
    );

    let mut bad = files.clone();
    bad.push(("manifest.json", b"{\"format_version\": 1".to_vec()));
    expect_error(
        &raw_tar(&layout(&bad)),
        "manifest.json: not a valid manifest",
    );
}

#[test]
fn size_caps_stop_decompression_bombs() {
    let mut files = sound_files();
    files[3].1 = vec![0u8; 1 << 20];
    let tar = raw_tar(&layout(&files));
    let mut enc = Codec::Zstd.encoder(Vec::new(), None, 1).unwrap();
    enc.write_all(&tar).unwrap();
    let packed = enc.finish().unwrap();
    assert!(packed.len() < 10_000);
    let limits = ReadLimits {
        max_member_bytes: 100_000,
        ..ReadLimits::default()
    };
    let err = open_with(&packed, limits).err().unwrap().to_string();
    assert!(err.contains("more than the limit of 100000"), "{err}");
    let limits = ReadLimits {
        max_total_bytes: 500_000,
        ..ReadLimits::default()
    };
    assert!(open_with(&packed, limits).is_err());
    let limits = ReadLimits {
        max_entries: 3,
        ..ReadLimits::default()
    };
    let err = open_with(&packed, limits).err().unwrap().to_string();
    assert!(err.contains("more than 3 entries"), "{err}");
}

#[test]
fn garbage_and_empty_files_are_refused() {
    expect_error(b"", "truncated");
    expect_error(&[0x42u8; 3000], "not a holdfast or engine-backup archive");
    expect_error(&[0x1f, 0x8b, 0, 0, 0], "gzip stream is damaged");
}

// ---- the `files` member ----

/// Plan a restore of `entries` (as an uncompressed files tar) into a fresh
/// root; returns the error text and checks nothing was written.
fn plan_error(entries: &[(String, Kind)], setup: impl FnOnce(&Path, &Path)) -> String {
    let top = tempfile::tempdir().unwrap();
    let root = top.path().join("root");
    let outside = top.path().join("outside");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    setup(&root, &outside);
    let before_root = std::fs::read_dir(&root).unwrap().count();
    let member = top.path().join("files");
    std::fs::write(&member, raw_tar(entries)).unwrap();
    let err = FilesPlan::new(&member, &root, &[], ReadLimits::default())
        .expect_err("plan accepted a hostile files member");
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), before_root);
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    err.to_string()
}

fn e(name: &str, kind: Kind) -> (String, Kind) {
    (name.to_string(), kind)
}

#[test]
fn files_entries_escaping_the_root_are_refused() {
    let f = || Kind::File(b"x".to_vec());
    let nothing = |_: &Path, _: &Path| {};
    assert!(
        plan_error(&[e("etc/", Kind::Dir), e("../outside/evil", f())], nothing)
            .contains("leaves the install root")
    );
    assert!(plan_error(&[e("/outside/evil", f())], nothing).contains("absolute path"));
    assert!(plan_error(&[e("etc/a/../../../outside/x", f())], nothing)
        .contains("leaves the install root"));
    let err = plan_error(
        &[
            e("etc/link", Kind::Symlink("../../outside")),
            e("etc/link/evil", f()),
        ],
        nothing,
    );
    assert!(err.contains("through the symlink 'etc/link'"), "{err}");
    let err = plan_error(&[e("etc/evil", f())], |root, outside| {
        std::os::unix::fs::symlink(outside, root.join("etc")).unwrap();
    });
    assert!(err.contains("leads outside the install root"), "{err}");
    let err = plan_error(&[e("etc/h", Kind::HardLink("../outside/x"))], nothing);
    assert!(err.contains("leaves the install root"), "{err}");
    let err = plan_error(&[e("etc/h", Kind::HardLink("etc/not-in-archive"))], nothing);
    assert!(
        err.contains("not a file restored from this archive"),
        "{err}"
    );
    assert!(plan_error(&[e("dev/null", Kind::Char)], nothing).contains("character device"));
    assert!(plan_error(&[e("run/fifo", Kind::Fifo)], nothing).contains("fifo"));
    assert!(plan_error(&[e("etc/a", f()), e("etc/a", f())], nothing).contains("duplicate entry"));
    let err = plan_error(&[e("etc/a/", Kind::Dir)], |root, _| {
        std::fs::create_dir(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/a"), "file").unwrap();
    });
    assert!(err.contains("is not a directory"), "{err}");
}

#[test]
fn files_symlinks_and_hard_links_inside_the_root_are_restored() {
    let top = tempfile::tempdir().unwrap();
    let root = top.path().join("root");
    std::fs::create_dir(&root).unwrap();
    // An existing symlink at a file's place is replaced, not written through.
    std::fs::create_dir(root.join("etc")).unwrap();
    std::fs::write(top.path().join("victim"), "keep").unwrap();
    std::os::unix::fs::symlink(top.path().join("victim"), root.join("etc/target")).unwrap();
    let member = top.path().join("files");
    std::fs::write(
        &member,
        raw_tar(&[
            e("etc/", Kind::Dir),
            e("etc/target", Kind::File(b"new".to_vec())),
            e("etc/hard", Kind::HardLink("etc/target")),
            e("etc/abs-link", Kind::Symlink("/etc/passwd")),
        ]),
    )
    .unwrap();
    let plan = FilesPlan::new(&member, &root, &[], ReadLimits::default()).unwrap();
    assert_eq!(
        plan.existing_paths(),
        [root.join("etc"), root.join("etc/target")]
    );
    plan.apply().unwrap();
    assert_eq!(std::fs::read(top.path().join("victim")).unwrap(), b"keep");
    assert_eq!(std::fs::read(root.join("etc/target")).unwrap(), b"new");
    assert_eq!(std::fs::read(root.join("etc/hard")).unwrap(), b"new");
    assert_eq!(
        std::fs::read_link(root.join("etc/abs-link")).unwrap(),
        Path::new("/etc/passwd")
    );
}

#[test]
#[ignore = "needs root: changes file owners (left alone otherwise)"]
fn files_owner_follows_names_like_gnu_tar() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "needs root: changes file owners"
    );
    let top = tempfile::tempdir().unwrap();
    let mut tar = Vec::new();
    for (name, user, uid) in [
        ("by-name", "root", 4242u64),
        ("by-number", "no-such-user-holdfast", 4242),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_path(name).unwrap();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(1);
        h.set_mode(0o640);
        h.set_uid(uid);
        h.set_gid(uid);
        h.set_mtime(0);
        h.set_username(user).unwrap();
        h.set_groupname(user).unwrap();
        h.set_cksum();
        tar.extend_from_slice(h.as_bytes());
        tar.extend_from_slice(b"x");
        tar.resize(tar.len().div_ceil(512) * 512, 0);
    }
    tar.extend_from_slice(&[0u8; 1024]);
    let member = top.path().join("files");
    std::fs::write(&member, tar).unwrap();
    let root = top.path().join("root");
    std::fs::create_dir(&root).unwrap();
    FilesPlan::new(&member, &root, &[], ReadLimits::default())
        .unwrap()
        .apply()
        .unwrap();
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(root.join("by-name")).unwrap();
    assert_eq!((m.uid(), m.gid()), (0, 0));
    let m = std::fs::metadata(root.join("by-number")).unwrap();
    assert_eq!((m.uid(), m.gid()), (4242, 4242));
}
