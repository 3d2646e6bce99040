//! A full disk and an unwritable temporary directory, on real small
//! filesystems (tmpfs mounts; the tests say SKIPPED where mounting is not
//! permitted): the archive's filesystem filling up during a backup, the
//! temporary directory filling up during a backup's dumps and a restore's
//! unpacking, and a temporary directory that cannot be written (a read-only
//! mount, which stops root too, and a path under a file). Each gives a clear
//! message and a non-zero exit, leaves no file at `--file` (a previous archive
//! byte-identical), nothing changed in the install or the databases, and no
//! temporary file.

mod faults_support;
mod support;

use std::time::Duration;

use faults_support::*;
use support::*;

const LIMIT: Duration = Duration::from_secs(60);
/// About 3 MB of archive that does not compress away.
const BULK: &str = "SET ROLE engine; CREATE TABLE bulk AS SELECT g, md5(g::text) || md5((g * 7)::text) AS h FROM generate_series(1, 60000) g";

fn run(s: &Sample, tmp: &std::path::Path, args: &[&str]) -> Run {
    start(engine_backup(s.dir.path(), &s.root(), tmp, args))
        .finish(LIMIT)
        .0
}

#[test]
fn a_full_disk_during_backup_keeps_the_previous_archive_and_leaves_nothing() {
    let s = Sample::start();
    let tmp = tempfile::tempdir().unwrap();
    run(
        &s,
        tmp.path(),
        &["--mode=backup", "--file=small", "--log=b.log"],
    )
    .ok();
    let previous = std::fs::read(s.path("small")).unwrap();
    s.cluster.execute("engine", BULK).unwrap();
    // Room for the previous archive and 512 KiB more: not for the new one.
    let size = format!("{}k", previous.len() / 1024 + 512);
    let Some(fs) = SmallFs::mount(&size) else {
        eprintln!("SKIPPED: cannot mount a small tmpfs here (needs root)");
        return;
    };
    let nightly = fs.path().join("nightly");
    std::fs::write(&nightly, &previous).unwrap();
    let file = format!("--file={}", nightly.display());
    let r = run(&s, tmp.path(), &["--mode=backup", &file, "--log=b.log"]);
    r.fails_with("No space left on device");
    assert_eq!(
        std::fs::read(&nightly).unwrap(),
        previous,
        "previous archive untouched"
    );
    let fresh = format!("--file={}", fs.path().join("fresh").display());
    run(&s, tmp.path(), &["--mode=backup", &fresh, "--log=b.log"])
        .fails_with("No space left on device");
    assert!(!fs.path().join("fresh").exists(), "no file at --file");
    assert_eq!(leftovers(fs.path()), Vec::<String>::new());
    assert_eq!(leftovers(tmp.path()), Vec::<String>::new());
    assert!(leftover_clients(s.cluster.port()).is_empty());
}

#[test]
fn a_full_temporary_directory_during_backup_dumps_leaves_nothing() {
    let s = Sample::start();
    s.cluster.execute("engine", BULK).unwrap();
    let Some(fs) = SmallFs::mount("512k") else {
        eprintln!("SKIPPED: cannot mount a small tmpfs here (needs root)");
        return;
    };
    let r = run(
        &s,
        fs.path(),
        &["--mode=backup", "--file=nightly", "--log=b.log"],
    );
    r.fails_with("No space left on device");
    assert!(!s.path("nightly").exists());
    assert_eq!(leftovers(fs.path()), Vec::<String>::new());
    assert_eq!(leftovers(s.dir.path()), Vec::<String>::new());
    assert!(leftover_clients(s.cluster.port()).is_empty());
}

#[test]
fn a_full_temporary_directory_during_unpacking_changes_nothing() {
    let s = Sample::start();
    s.cluster.execute("engine", BULK).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    run(
        &s,
        tmp.path(),
        &["--mode=backup", "--file=good", "--log=b.log"],
    )
    .ok();
    s.clean_databases();
    let before = tree(&s.root());
    let Some(fs) = SmallFs::mount("1m") else {
        eprintln!("SKIPPED: cannot mount a small tmpfs here (needs root)");
        return;
    };
    let tmpdir = format!("--tmpdir={}", fs.path().display());
    let r = run(
        &s,
        tmp.path(),
        &[
            "--mode=restore",
            "--file=good",
            "--log=r.log",
            "--restore-permissions",
            &tmpdir,
        ],
    );
    r.fails_with("No space left on device");
    assert!(
        r.stderr.contains("pass another --tmpdir") && !r.stderr.contains("damaged"),
        "a full disk is not a damaged archive: {}",
        r.stderr
    );
    assert_eq!(tree(&s.root()), before, "install root unchanged");
    assert!(checksums(&s.engine("engine")).is_empty());
    assert!(checksums(&s.dwh("ovirt_engine_history")).is_empty());
    assert_eq!(leftovers(fs.path()), Vec::<String>::new());
    assert_eq!(leftovers(tmp.path()), Vec::<String>::new());
}

#[test]
fn an_unwritable_temporary_directory_is_refused_before_anything_is_done() {
    let s = Sample::start();
    let tmp = tempfile::tempdir().unwrap();
    run(
        &s,
        tmp.path(),
        &["--mode=backup", "--file=good", "--log=b.log"],
    )
    .ok();
    s.clean_databases();
    let before = tree(&s.root());

    // A path under a regular file.
    std::fs::write(s.path("plain-file"), "x").unwrap();
    let under_file = s.path("plain-file").join("tmp");
    for mode in ["--mode=backup", "--mode=restore"] {
        let r = run(
            &s,
            &under_file,
            &[mode, "--file=other", "--log=x.log", "--restore-permissions"],
        );
        assert_eq!(r.code, 1, "{}", r.stderr);
        eprintln!("{mode}: {}", r.stderr.trim());
        assert!(r.stderr.contains("tmp"), "{}", r.stderr);
    }
    // A read-only filesystem: unwritable even for root.
    let Some(fs) = SmallFs::mount("1m") else {
        eprintln!("SKIPPED: cannot mount a small tmpfs here (needs root)");
        return;
    };
    let ro = std::process::Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(fs.path())
        .status()
        .unwrap();
    assert!(ro.success());
    let tmpdir = format!("--tmpdir={}", fs.path().display());
    run(
        &s,
        tmp.path(),
        &["--mode=backup", "--file=ro", "--log=b.log", &tmpdir],
    )
    .fails_with("pass a writable one with --tmpdir");
    assert!(!s.path("ro").exists());
    run(
        &s,
        tmp.path(),
        &[
            "--mode=restore",
            "--file=good",
            "--log=r.log",
            "--restore-permissions",
            &tmpdir,
        ],
    )
    .fails_with("pass a writable one with --tmpdir");
    assert_eq!(tree(&s.root()), before, "install root unchanged");
    assert!(checksums(&s.engine("engine")).is_empty());
    assert_eq!(leftovers(tmp.path()), Vec::<String>::new());
    assert_eq!(leftovers(s.dir.path()), Vec::<String>::new());
}
