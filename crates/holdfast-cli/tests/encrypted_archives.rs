//! Archives encrypted to an age public key (`backup --encrypt-to`): the file
//! is an age file with a checksum file beside it, holds no readable secret,
//! and verify without the identity checks only what it can (a warning says
//! the contents were not verified; a changed byte is a failure); with the
//! identity verify and restore work as for a plain archive, and a wrong
//! identity is refused.

mod support;

use std::os::unix::fs::PermissionsExt;

use secrecy::ExposeSecret;
use support::*;

#[test]
fn an_encrypted_archive_is_written_verified_and_restored() {
    let s = Sample::start();
    let key = age::x25519::Identity::generate();
    let recipient = key.to_public().to_string();
    std::fs::write(
        s.path("key.txt"),
        format!("{}\n", key.to_string().expose_secret()),
    )
    .unwrap();
    let other = age::x25519::Identity::generate();
    std::fs::write(
        s.path("other.txt"),
        format!("{}\n", other.to_string().expose_secret()),
    )
    .unwrap();

    // A bad recipient is refused, nothing written.
    let bad = s.holdfast(&["backup", "--file", "bad.backup", "--encrypt-to", "age1nope"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    bad.fails_with("--encrypt-to age1nope: not an age public key");
    assert!(!s.path("bad.backup").exists());

    s.holdfast(&["backup", "--file", "e.backup", "--encrypt-to", &recipient])
        .ok();
    let bytes = std::fs::read(s.path("e.backup")).unwrap();
    assert!(bytes.starts_with(b"age-encryption.org/v1\n"));
    let needle = b"engine-fixture-pw";
    assert!(
        !bytes.windows(needle.len()).any(|w| w == needle),
        "the database password is readable in the encrypted archive"
    );
    let sums = std::fs::read_to_string(s.path("e.backup.sha256")).unwrap();
    assert!(sums.ends_with("  e.backup\n"), "{sums}");
    assert_eq!(
        std::fs::metadata(s.path("e.backup"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    // Without the identity: the outer checks, and exit 3 (not verified).
    let outer = s.holdfast(&["verify", "e.backup"]);
    assert_eq!(outer.code, 3, "{}\n{}", outer.stdout, outer.stderr);
    assert!(outer.stdout.contains("its SHA-256"), "{}", outer.stdout);
    assert!(
        outer
            .stderr
            .contains("WARNING: the archive's contents were not verified"),
        "{}",
        outer.stderr
    );
    // One changed byte is found without the identity.
    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x55;
    std::fs::write(s.path("f.backup"), &flipped).unwrap();
    std::fs::copy(s.path("e.backup.sha256"), s.path("f.backup.sha256")).unwrap();
    let changed = s.holdfast(&["verify", "f.backup"]);
    assert_eq!(changed.code, 1, "{}", changed.stderr);
    assert!(
        changed
            .stderr
            .contains("the file changed since it was written"),
        "{}",
        changed.stderr
    );

    // With the identity: a full verify; another identity is refused.
    let full = s.holdfast(&["verify", "e.backup", "--identity", "key.txt"]);
    full.ok();
    assert!(full.stdout.contains("Done."), "{}", full.stdout);
    let wrong = s.holdfast(&["verify", "e.backup", "--identity", "other.txt"]);
    assert_eq!(wrong.code, 2, "{}", wrong.stderr);
    wrong.fails_with("cannot decrypt");

    // Restore needs the identity, then restores as from a plain archive.
    let before = checksums(&s.engine("engine"));
    s.clean_databases();
    s.holdfast(&["restore", "--file", "e.backup", "--restore-permissions"])
        .fails_with("is encrypted (age): pass --identity FILE");
    s.holdfast(&[
        "restore",
        "--file",
        "e.backup",
        "--identity",
        "key.txt",
        "--restore-permissions",
    ])
    .ok();
    // The tables oVirt's post-restore steps leave alone come back as they were.
    let after = checksums(&s.engine("engine"));
    for table in [
        "public.hosts",
        "public.events",
        "public.vm_static",
        "audit.host_changes",
    ] {
        assert_eq!(after[table], before[table], "{table}");
    }
}
