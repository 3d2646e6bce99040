//! `scripts/install --binary FILE --destdir DIR --prefix /usr`: the tree it
//! makes, and that the installed `engine-backup` name is engine-backup's face.

use std::path::Path;
use std::process::Command;

#[test]
fn install_into_a_destdir() {
    let dest = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/install");
    let out = Command::new("bash")
        .arg(&script)
        .args([
            "--binary",
            env!("CARGO_BIN_EXE_holdfast"),
            "--prefix",
            "/usr",
            "--destdir",
        ])
        .arg(dest.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    let usr = dest.path().join("usr");
    for file in [
        "bin/holdfast",
        "share/man/man1/holdfast.1",
        "share/man/man1/holdfast-backup.1",
        "share/man/man1/holdfast-schedule.1",
        "share/man/man8/engine-backup.8",
        "share/bash-completion/completions/holdfast",
        "share/zsh/site-functions/_holdfast",
        "share/fish/vendor_completions.d/holdfast.fish",
        "share/doc/holdfast/examples/archives/holdfast-ovirt-engine-backup.service",
        "share/doc/holdfast/examples/archives/holdfast-ovirt-engine-backup.timer",
        "share/doc/holdfast/examples/archives/holdfast-ovirt-engine-verify.service",
        "share/doc/holdfast/examples/archives/holdfast-ovirt-engine-notify-failure@.service",
        "share/doc/holdfast/examples/repo/holdfast-ovirt-engine-check.timer",
        "share/doc/holdfast/examples/holdfast-ovirt-engine.cron",
    ] {
        let path = usr.join(file);
        let meta = std::fs::metadata(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(meta.len() > 0, "{file} is empty");
    }
    let link = usr.join("bin/engine-backup");
    assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("holdfast"));

    // The example units name the installed executable and start with their
    // own header, not the dry run's path line.
    let service = std::fs::read_to_string(
        usr.join("share/doc/holdfast/examples/repo/holdfast-ovirt-engine-backup.service"),
    )
    .unwrap();
    assert!(service.starts_with("# Written by"), "{service}");
    assert!(
        service.contains(" /usr/bin/holdfast repo backup "),
        "{service}"
    );
    assert!(!service.ends_with("\n\n"), "{service:?}");

    let help = Command::new(&link).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.starts_with("engine-backup: back up and restore an oVirt engine environment"),
        "{help}"
    );
}
