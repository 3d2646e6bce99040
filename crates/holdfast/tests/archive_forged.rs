//! Forged archives (hand-made damaged ones are `archive_hostile.rs`): the
//! real fixture archives cut at every member boundary and inside every member
//! (and their compressed streams at many points), tar headers declaring absurd
//! sizes, member names that only normalise to a duplicate or an escape (GNU
//! long names, PAX paths), shell code in the `config` member and in conf files
//! (the file it would create must never appear), and manifests that lie about
//! sizes or name paths outside the archive. Each is refused with a one-line
//! error and nothing written outside the reader's temporary directory.

use std::io::Write;
use std::path::{Path, PathBuf};

use holdfast::archive::manifest::{Manifest, MemberRecord, ToolInfo, MANIFEST_FORMAT_VERSION};
use holdfast::archive::{ArchiveConfig, ArchiveReader, Codec, FilesPlan, HashKind, ReadLimits};
use holdfast::conf::ConfValues;
use holdfast::Error;

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/engine-backup-4.5")
        .join(name);
    std::fs::read(path).unwrap()
}

/// Open `bytes` as an archive in a fresh directory. On failure: an Invalid
/// one-line error naming the archive, the temporary directory gone, nothing
/// beside the archive.
fn open_with(bytes: &[u8], limits: ReadLimits) -> holdfast::Result<ArchiveReader> {
    let top = tempfile::tempdir().unwrap();
    let archive = top.path().join("hostile.backup");
    std::fs::write(&archive, bytes).unwrap();
    let temp_parent = top.path().join("tmp");
    std::fs::create_dir(&temp_parent).unwrap();
    let result = ArchiveReader::open_in(&archive, &temp_parent, limits);
    if let Err(e) = &result {
        assert!(matches!(e, Error::Invalid(_)), "not Invalid: {e:?}");
        let msg = e.to_string();
        assert!(!msg.contains('\n'), "multi-line message: {msg}");
        assert!(msg.starts_with(&archive.display().to_string()), "{msg}");
        assert_eq!(std::fs::read_dir(&temp_parent).unwrap().count(), 0);
        let names: Vec<_> = std::fs::read_dir(top.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "something was written beside the archive");
    }
    result
}

#[track_caller]
fn expect_error(bytes: &[u8], want: &str) -> String {
    let err = open_with(bytes, ReadLimits::default())
        .err()
        .unwrap_or_else(|| panic!("accepted; wanted {want:?}"))
        .to_string();
    assert!(err.contains(want), "{err}\n  wanted: {want}");
    err
}

/// Offsets of every tar header of an uncompressed archive, with its data size,
/// and the offset just past the last member's padded data.
fn headers(tar: &[u8]) -> (Vec<(usize, usize)>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 512 <= tar.len() && tar[at..at + 512].iter().any(|b| *b != 0) {
        let size = tar::Header::from_byte_slice(&tar[at..at + 512])
            .entry_size()
            .unwrap() as usize;
        out.push((at, size));
        at += 512 + size.div_ceil(512) * 512;
    }
    (out, at)
}

/// Cut points inside and around one member: at its header, inside the header,
/// at its data, inside the data (first byte, middle, last byte) and at its end.
fn cut_points(header: usize, size: usize) -> Vec<usize> {
    let data = header + 512;
    let mut cuts = vec![header, header + 1, header + 148, header + 511, data];
    if size > 0 {
        cuts.extend([data + 1, data + size / 2, data + size - 1]);
    }
    cuts.push(data + size.div_ceil(512) * 512 - 1);
    cuts.sort();
    cuts.dedup();
    cuts
}

#[test]
fn a_real_archive_cut_at_every_boundary_and_inside_every_member_is_refused() {
    let tar = fixture("uncompressed.backup");
    assert!(open_with(&tar, ReadLimits::default()).is_ok());
    let (members, end) = headers(&tar);
    assert_eq!(members.len(), 9, "., 6 members, db/ and 2 dumps");
    let mut tried = 0;
    for (header, size) in &members {
        for cut in cut_points(*header, *size) {
            expect_error(&tar[..cut], "truncated");
            tried += 1;
        }
    }
    // Past the last member, before the end-of-archive block.
    for cut in [end, end + 1, end + 511] {
        expect_error(&tar[..cut], "truncated");
        tried += 1;
    }
    eprintln!("uncompressed.backup: {tried} truncation points refused");
    assert!(tried >= 60, "{tried}");
}

#[test]
fn every_compressed_form_cut_short_is_refused() {
    let tar = fixture("uncompressed.backup");
    let mut tried = 0;
    // The real gzip archive: 64 cuts spread over the stream, and every cut in
    // its last 16 bytes (the end of the deflate data, CRC32 and length).
    let gz = fixture("default.backup");
    assert!(open_with(&gz, ReadLimits::default()).is_ok());
    let cuts = (0..64)
        .map(|i| gz.len() * i / 64)
        .chain(gz.len() - 16..gz.len());
    for cut in cuts {
        expect_error(&gz[..cut], "truncated");
        tried += 1;
    }
    for codec in [Codec::Xz, Codec::Zstd, Codec::Bzip2] {
        let mut enc = codec.encoder(Vec::new(), None, 1).unwrap();
        enc.write_all(&tar).unwrap();
        let packed = enc.finish().unwrap();
        for i in 0..16 {
            expect_error(&packed[..packed.len() * i / 16], "truncated");
            tried += 1;
        }
        for back in 1..=4 {
            expect_error(&packed[..packed.len() - back], "truncated");
            tried += 1;
        }
    }
    eprintln!("compressed archives: {tried} truncation points refused");
}

// ---- hand-made archives (a GNU tar written byte for byte) ----

enum Kind {
    File(Vec<u8>),
    Dir,
    Symlink(&'static str),
}

struct Entry {
    name: String,
    kind: Kind,
    /// Size written in the header, when it differs from the data's.
    declared: Option<u64>,
}

fn file(name: &str, data: &[u8]) -> Entry {
    Entry {
        name: name.into(),
        kind: Kind::File(data.to_vec()),
        declared: None,
    }
}

fn dir(name: &str) -> Entry {
    Entry {
        name: name.into(),
        kind: Kind::Dir,
        declared: None,
    }
}

fn header_for(name: &[u8], ty: tar::EntryType, size: u64, link: &str) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(ty);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(1_795_272_484);
    {
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name);
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_cksum();
    h
}

fn push_block_aligned(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

fn raw_tar(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let (ty, data, link): (_, &[u8], _) = match &e.kind {
            Kind::File(d) => (tar::EntryType::Regular, d, ""),
            Kind::Dir => (tar::EntryType::Directory, &[], ""),
            Kind::Symlink(t) => (tar::EntryType::Symlink, &[], *t),
        };
        let size = e.declared.unwrap_or(data.len() as u64);
        if e.name.len() > 100 {
            // GNU long name: a `././@LongLink` entry carrying the real name.
            let long = header_for(
                b"././@LongLink",
                tar::EntryType::GNULongName,
                e.name.len() as u64 + 1,
                "",
            );
            out.extend_from_slice(long.as_bytes());
            let mut name = e.name.as_bytes().to_vec();
            name.push(0);
            push_block_aligned(&mut out, &name);
            out.extend_from_slice(header_for(b"./placeholder", ty, size, link).as_bytes());
        } else {
            out.extend_from_slice(header_for(e.name.as_bytes(), ty, size, link).as_bytes());
        }
        push_block_aligned(&mut out, data);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// A PAX extended header giving `path` to the next entry.
fn pax_path(path: &str) -> Vec<u8> {
    let record = |len: usize| format!("{len} path={path}\n");
    let mut len = record(0).len();
    while record(len).len() != len {
        len = record(len).len();
    }
    let body = record(len);
    let mut out = header_for(
        b"./PaxHeaders/x",
        tar::EntryType::XHeader,
        body.len() as u64,
        "",
    )
    .as_bytes()
    .to_vec();
    push_block_aligned(&mut out, body.as_bytes());
    out
}

fn sha256(data: &[u8]) -> String {
    HashKind::Sha256.digest_reader(data).unwrap()
}

fn dump() -> Vec<u8> {
    let mut d = b"PGDMP".to_vec();
    d.extend((0..3000u32).map(|i| (i % 251) as u8));
    d
}

fn sound_files() -> Vec<(String, Vec<u8>)> {
    vec![
        (
            "config".into(),
            ArchiveConfig::default().render().into_bytes(),
        ),
        ("os_version".into(), b"debian12\n".to_vec()),
        ("version".into(), b"4.5.7\n".to_vec()),
        ("db/engine_backup.db".into(), dump()),
    ]
}

fn sha256sum_of(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    files
        .iter()
        .map(|(n, d)| format!("{}  {n}\n", sha256(d)))
        .collect::<String>()
        .into_bytes()
}

/// engine-backup's layout for `files` with a correct sha256sum.
fn layout(files: &[(String, Vec<u8>)]) -> Vec<Entry> {
    let mut entries = vec![dir("./")];
    for (n, d) in files.iter().filter(|(n, _)| !n.starts_with("db/")) {
        entries.push(file(&format!("./{n}"), d));
    }
    entries.push(file("./sha256sum", &sha256sum_of(files)));
    entries.push(dir("./db/"));
    for (n, d) in files.iter().filter(|(n, _)| n.starts_with("db/")) {
        entries.push(file(&format!("./{n}"), d));
    }
    entries
}

#[test]
fn the_hand_made_archive_opens() {
    assert!(open_with(&raw_tar(&layout(&sound_files())), ReadLimits::default()).is_ok());
}

#[test]
fn headers_declaring_absurd_sizes_are_refused_without_reading_them() {
    let started = std::time::Instant::now();
    let mut tried = 0;
    // Over the member cap: refused from the header alone.
    for declared in [5u64 << 40, 1 << 62, u64::MAX - 4096] {
        let mut entries = layout(&sound_files());
        entries.last_mut().unwrap().declared = Some(declared);
        let err = open_with(&raw_tar(&entries), ReadLimits::default())
            .expect_err("a terabyte member was accepted")
            .to_string();
        assert!(
            err.contains("more than the limit") || err.contains("size overflow"),
            "{err}"
        );
        tried += 1;
    }
    // Under the cap but far more than the stream holds: a truncated member,
    // noticed when the data runs out (nothing is allocated up front).
    for declared in [(1u64 << 40) - 1, 8 << 30, 1 << 33] {
        let mut entries = layout(&sound_files());
        entries.last_mut().unwrap().declared = Some(declared);
        expect_error(&raw_tar(&entries), "truncated");
        tried += 1;
    }
    // Declared sizes adding up past the total cap.
    let limits = ReadLimits {
        max_member_bytes: 3200,
        max_total_bytes: 3200,
        ..ReadLimits::default()
    };
    let err = open_with(&raw_tar(&layout(&sound_files())), limits)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("members total more than the limit"), "{err}");
    tried += 1;
    assert!(started.elapsed().as_secs() < 10, "absurd sizes were read");
    eprintln!("{tried} absurd declared sizes refused");
}

#[test]
fn names_that_normalise_to_a_duplicate_are_refused() {
    for spelling in ["config", ".//config", "./././config", "./db/../config"] {
        let mut entries = layout(&sound_files());
        entries.insert(2, file(spelling, b"DB_DUMP_FORMAT=plain\n"));
        let err = open_with(&raw_tar(&entries), ReadLimits::default())
            .err()
            .unwrap_or_else(|| panic!("{spelling} accepted"))
            .to_string();
        assert!(
            err.contains("duplicate member") || err.contains("'..' path component"),
            "{spelling}: {err}"
        );
    }
    // The dump twice, the second one different: never "the last one wins".
    let mut entries = layout(&sound_files());
    entries.push(file("./db/engine_backup.db", b"PGDMP other"));
    expect_error(
        &raw_tar(&entries),
        "duplicate member './db/engine_backup.db'",
    );
    // A second hash file that would bless different data.
    let mut entries = layout(&sound_files());
    entries.push(file("./sha256sum", b""));
    expect_error(&raw_tar(&entries), "duplicate member './sha256sum'");
}

#[test]
fn long_and_pax_names_cannot_smuggle_an_escape() {
    let deep = format!("./{}../../../../tmp/holdfast-evil", "a/".repeat(60));
    let mut entries = layout(&sound_files());
    entries.insert(1, file(&deep, b"evil"));
    expect_error(&raw_tar(&entries), "'..' path component");

    let long_abs = format!("/{}/evil", "x".repeat(120));
    let mut entries = layout(&sound_files());
    entries.insert(1, file(&long_abs, b"evil"));
    expect_error(&raw_tar(&entries), "absolute path");

    // A PAX header renaming a harmless-looking `./os_version` to an escape.
    for (path, want) in [
        ("../../holdfast-evil", "'..' path component"),
        ("/tmp/holdfast-evil", "absolute path"),
        ("./db/../../x.db", "'..' path component"),
    ] {
        let good = raw_tar(&layout(&sound_files()));
        let (heads, _) = headers(&good);
        let os_version = heads[2].0; // ./, ./config, ./os_version
        let mut bytes = good[..os_version].to_vec();
        bytes.extend(pax_path(path));
        bytes.extend_from_slice(&good[os_version..]);
        expect_error(&bytes, want);
    }
}

#[test]
fn a_symlink_or_directory_in_place_of_a_member_is_refused() {
    // `./db` as a symlink out of the temporary directory, then a dump through it.
    let mut entries = layout(&sound_files());
    let at = entries.iter().position(|e| e.name == "./db/").unwrap();
    entries[at] = Entry {
        name: "./db".into(),
        kind: Kind::Symlink("/tmp"),
        declared: None,
    };
    expect_error(&raw_tar(&entries), "member './db' is a symbolic link");
    // A directory named like a member.
    let mut entries = layout(&sound_files());
    entries.insert(1, dir("./files/"));
    expect_error(&raw_tar(&entries), "unexpected directory './files/'");
}

/// A path in a fresh directory that shell code in a test input tries to create.
fn marker() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pwned");
    (dir, path)
}

#[test]
fn shell_code_in_the_config_member_is_never_run() {
    let (_dir, marker) = marker();
    let m = marker.display();
    let attempts = [
        format!("DB_DUMP_FORMAT=$(touch {m})\n"),
        format!("DB_DUMP_FORMAT=custom`touch {m}`\n"),
        format!("DB_DUMP_COMPRESSOR=;touch {m}\n"),
        format!("DB_DUMP_COMPRESSOR=xz|touch {m}\n"),
        format!("DB_DUMP_COMPRESSOR=xz && touch {m}\n"),
        format!("DB_DUMP_FORMAT=\"custom\"; touch {m}\n"),
        format!("touch {m}\n"),
        format!("$(touch {m})=custom\n"),
        format!("DB_DUMP_FORMAT=custom\n`touch {m}`\n"),
        "PATH=/tmp\nDB_DUMP_FORMAT=custom\n".to_string(),
    ];
    for text in &attempts {
        let mut files = sound_files();
        files[0].1 = text.clone().into_bytes();
        let err = expect_error(&raw_tar(&layout(&files)), "config: line");
        assert!(
            err.contains("invalid value")
                || err.contains("unknown key")
                || err.contains("KEY=value"),
            "{err}"
        );
        assert!(!marker.exists(), "{text:?} ran");
    }
    eprintln!("{} config members with shell code refused", attempts.len());
}

#[test]
fn shell_code_in_conf_files_is_data_never_run() {
    let (_dir, marker) = marker();
    let m = marker.display();
    // Refused: command substitution is not something the engine's reader knows.
    for text in [
        format!("ENGINE_DB_PASSWORD=\"$(touch {m})\"\n"),
        format!("ENGINE_DB_PASSWORD=$(touch {m})\n"),
        format!("ENGINE_DB_HOST=localhost; touch {m}\n"),
        format!("ENGINE_DB_HOST=x\ntouch {m}\n"),
    ] {
        let err = ConfValues::new()
            .parse_str(&text, "10-setup-database.conf")
            .expect_err(&text);
        assert!(matches!(err, Error::Invalid(_)), "{err:?}");
        assert!(!err.to_string().contains('\n'));
        assert!(!marker.exists(), "{text:?} ran");
    }
    // Accepted as the literal text it is: backticks and a quoted `;`.
    let mut values = ConfValues::new();
    values
        .parse_str(
            &format!("ENGINE_DB_PASSWORD=\"`touch {m}`\"\nENGINE_DB_USER='x; touch {m}'\n"),
            "10-setup-database.conf",
        )
        .unwrap();
    assert_eq!(
        values.get("ENGINE_DB_PASSWORD"),
        Some(format!("`touch {m}`").as_str())
    );
    assert_eq!(
        values.get("ENGINE_DB_USER"),
        Some(format!("x; touch {m}").as_str())
    );
    assert!(!marker.exists());
}

fn manifest_for(files: &[(String, Vec<u8>)]) -> Manifest {
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
                name: n.clone(),
                size: d.len() as u64,
                sha256: sha256(d),
            })
            .collect(),
        databases: vec![],
    }
}

fn with_manifest(files: &[(String, Vec<u8>)], manifest: &Manifest) -> Vec<u8> {
    let mut all = files.to_vec();
    all.push(("manifest.json".into(), manifest.to_json().into_bytes()));
    raw_tar(&layout(&all))
}

#[test]
fn manifests_that_lie_are_refused() {
    let files = sound_files();
    assert!(open_with(
        &with_manifest(&files, &manifest_for(&files)),
        ReadLimits::default()
    )
    .unwrap()
    .manifest()
    .is_some());
    let mut tried = 0;

    // The right digest with the wrong size.
    let mut m = manifest_for(&files);
    m.members[3].size += 1;
    expect_error(
        &with_manifest(&files, &m),
        "member 'db/engine_backup.db' is 3005 bytes, the manifest says 3006",
    );
    tried += 1;
    // The digest of the sha256sum-listed data of another member.
    let mut m = manifest_for(&files);
    m.members[0].sha256 = sha256(&files[1].1);
    expect_error(&with_manifest(&files, &m), "member 'config' has sha256");
    tried += 1;
    // Upper-case digests are not the lower-case hex the manifest promises.
    let mut m = manifest_for(&files);
    m.members[3].sha256 = m.members[3].sha256.to_uppercase();
    expect_error(
        &with_manifest(&files, &m),
        "member 'db/engine_backup.db' has sha256",
    );
    tried += 1;
    // Members outside the archive: the reader never looks there.
    for name in [
        "/etc/passwd",
        "../../../../etc/passwd",
        "db/../../../etc/hostname",
        "db",
        "",
    ] {
        let mut m = manifest_for(&files);
        m.members.push(MemberRecord {
            name: name.into(),
            size: 0,
            sha256: sha256(b""),
        });
        expect_error(
            &with_manifest(&files, &m),
            &format!("manifest lists member '{name}', which is not in the archive"),
        );
        tried += 1;
    }
    // A manifest from the future, and one with a non-time.
    let mut m = manifest_for(&files);
    m.format_version = MANIFEST_FORMAT_VERSION + 1;
    expect_error(&with_manifest(&files, &m), "is not supported");
    let mut m = manifest_for(&files);
    m.created_at = "yesterday; rm -rf /".into();
    expect_error(&with_manifest(&files, &m), "is not an RFC 3339 time");
    tried += 2;
    eprintln!("{tried} lying manifests refused");
}

// ---- the `files` member ----

#[test]
fn a_files_member_with_absurd_sizes_is_refused() {
    let top = tempfile::tempdir().unwrap();
    let root = top.path().join("root");
    std::fs::create_dir(&root).unwrap();
    for sizes in [
        vec![5u64 << 40],
        vec![6000, u64::MAX - 4096],
        vec![1 << 39, 1 << 39, 1 << 39, 1 << 39, 1 << 39],
    ] {
        let entries: Vec<Entry> = sizes
            .iter()
            .enumerate()
            .map(|(i, size)| Entry {
                name: format!("etc/f{i}"),
                kind: Kind::File(vec![b'x'; 6000.min(*size as usize)]),
                declared: Some(*size),
            })
            .collect();
        let member = top.path().join("files");
        std::fs::write(&member, raw_tar(&entries)).unwrap();
        let err = FilesPlan::new(&member, &root, &[], ReadLimits::default())
            .expect_err("absurd sizes accepted");
        assert!(matches!(err, Error::Invalid(_)), "{err:?}");
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0);
    }
}
