//! A full disk and an unwritable temporary directory, on real small
//! filesystems (tmpfs mounts: those tests need root, so they are ignored
//! unless run as root with `cargo test -- --ignored`): the archive's
//! filesystem filling up during a backup, the temporary directory filling up during a backup's dumps and a restore's
//! unpacking, and a temporary directory that cannot be written (a read-only
//! mount, which stops root too, and a path under a file). Each gives a clear
//! message and a non-zero exit, leaves no file at `--file` (a previous archive
//! byte-identical), nothing changed in the install or the databases, and no
//! temporary file. A restore whose files do not fit on the install root's
//! file system is refused before anything is written. Everything temporary goes under `--tmpdir` (deep verify's
//! throwaway cluster, pgpass files and restore lists included), and a deep
//! verify whose `--tmpdir` is too small is refused before anything is written.

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
#[ignore = "needs root: mounts a small tmpfs"]
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
    let fs = SmallFs::mount(&size).expect("needs root: mount a small tmpfs");
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
#[ignore = "needs root: mounts a small tmpfs"]
fn a_full_temporary_directory_during_backup_dumps_leaves_nothing() {
    let s = Sample::start();
    s.cluster.execute("engine", BULK).unwrap();
    let fs = SmallFs::mount("512k").expect("needs root: mount a small tmpfs");
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
#[ignore = "needs root: mounts a small tmpfs"]
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
    let fs = SmallFs::mount("1m").expect("needs root: mount a small tmpfs");
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
#[ignore = "needs root: mounts a small tmpfs"]
fn an_install_root_without_room_for_the_files_is_refused_before_anything_is_written() {
    let s = Sample::start();
    // 3 MiB that do not compress away, among the backed-up conf files.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let bulk: Vec<u8> = (0..3 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(s.root().join("etc/ovirt-engine/bulk.bin"), &bulk).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    run(
        &s,
        tmp.path(),
        &["--mode=backup", "--file=good", "--log=b.log"],
    )
    .ok();
    s.clean_databases();
    // The install root, without the bulk file, on a file system with 2 MiB.
    std::fs::remove_file(s.root().join("etc/ovirt-engine/bulk.bin")).unwrap();
    let fs = SmallFs::mount("2m").expect("needs root: mount a small tmpfs");
    let root = fs.path().join("root");
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(s.root())
        .arg(&root)
        .status()
        .unwrap();
    assert!(copied.success());
    let before = tree(&root);
    let r = start(engine_backup(
        s.dir.path(),
        &root,
        tmp.path(),
        &[
            "--mode=restore",
            "--file=good",
            "--log=r.log",
            "--restore-permissions",
        ],
    ))
    .finish(LIMIT)
    .0;
    r.fails_with("not enough disk space in");
    assert!(
        r.stderr.contains("the restored files need"),
        "names what needs the room: {}",
        r.stderr
    );
    assert_eq!(tree(&root), before, "install root unchanged");
    assert!(checksums(&s.engine("engine")).is_empty());
    assert!(checksums(&s.dwh("ovirt_engine_history")).is_empty());
    assert_eq!(leftovers(tmp.path()), Vec::<String>::new());
}

/// A sample backed up into `good` (through `tmp`) and cleaned for a restore.
fn backed_up_and_cleaned(tmp: &std::path::Path) -> Sample {
    let s = Sample::start();
    run(&s, tmp, &["--mode=backup", "--file=good", "--log=b.log"]).ok();
    s.clean_databases();
    s
}

#[test]
fn a_temporary_directory_under_a_file_is_refused_before_anything_is_done() {
    let tmp = tempfile::tempdir().unwrap();
    let s = backed_up_and_cleaned(tmp.path());
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
    assert_eq!(tree(&s.root()), before, "install root unchanged");
}

#[test]
#[ignore = "needs root: mounts a small tmpfs"]
fn a_read_only_temporary_directory_is_refused_before_anything_is_done() {
    let tmp = tempfile::tempdir().unwrap();
    let s = backed_up_and_cleaned(tmp.path());
    let before = tree(&s.root());
    // A read-only filesystem: unwritable even for root.
    let fs = SmallFs::mount("1m").expect("needs root: mount a small tmpfs");
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

/// Every name that appears in `dir` while it is polled, every 2 ms.
struct DirWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<std::collections::BTreeSet<String>>,
}

impl DirWatch {
    fn start(dir: &std::path::Path) -> DirWatch {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (stop2, dir) = (stop.clone(), dir.to_path_buf());
        let thread = std::thread::spawn(move || {
            let mut seen = std::collections::BTreeSet::new();
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                    seen.insert(e.file_name().to_string_lossy().into_owned());
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            seen
        });
        DirWatch { stop, thread }
    }

    fn finish(self) -> std::collections::BTreeSet<String> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

fn entries(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `holdfast ARGS` for the sample, with `default_tmp` as TMPDIR.
fn hf(s: &Sample, default_tmp: &std::path::Path, args: &[&str]) -> Run {
    start(holdfast(s.dir.path(), &s.root(), default_tmp, args))
        .finish(LIMIT)
        .0
}

#[test]
fn deep_verify_keeps_everything_temporary_under_tmpdir() {
    let s = Sample::start();
    // TMPDIR (the default) and --tmpdir are two different, fresh directories.
    let default_tmp = tempfile::tempdir().unwrap();
    let chosen = tempfile::tempdir().unwrap();
    let hf = |args: &[&str]| hf(&s, default_tmp.path(), args);
    hf(&["backup", "--file", "good"]).ok();
    assert_eq!(entries(default_tmp.path()), Vec::<String>::new());

    let tmpdir = chosen.path().display().to_string();
    let in_default = DirWatch::start(default_tmp.path());
    let in_chosen = DirWatch::start(chosen.path());
    let r = hf(&["verify", "--deep", "--tmpdir", &tmpdir, "good"]);
    let (in_default, in_chosen) = (in_default.finish(), in_chosen.finish());
    r.ok();
    assert!(r.stdout.contains("Deep verify"), "{}", r.stdout);
    assert_eq!(
        in_default,
        Default::default(),
        "deep verify wrote to the default temporary directory"
    );
    for prefix in ["holdfast.", "holdfast-cluster.", "holdfast-pgpass-"] {
        assert!(
            in_chosen.iter().any(|n| n.starts_with(prefix)),
            "no {prefix}* under --tmpdir: {in_chosen:?}"
        );
    }
    assert_eq!(entries(default_tmp.path()), Vec::<String>::new());
    assert_eq!(
        entries(chosen.path()),
        Vec::<String>::new(),
        "left under --tmpdir"
    );
}

#[test]
#[ignore = "needs root: mounts a small tmpfs"]
fn deep_verify_checks_the_room_under_tmpdir_first() {
    let s = Sample::start();
    let default_tmp = tempfile::tempdir().unwrap();
    let hf = |args: &[&str]| hf(&s, default_tmp.path(), args);
    hf(&["backup", "--file", "good"]).ok();
    // Too small for the throwaway cluster: refused before anything is written,
    // while a plain verify fits.
    let fs = SmallFs::mount("24m").expect("needs root: mount a small tmpfs");
    let small = fs.path().display().to_string();
    let r = hf(&["verify", "--deep", "--tmpdir", &small, "good"]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stderr.contains("not enough free space in") && r.stderr.contains("throwaway cluster"),
        "{}",
        r.stderr
    );
    assert_eq!(
        entries(fs.path()),
        Vec::<String>::new(),
        "written before the refusal"
    );
    hf(&["verify", "--tmpdir", &small, "good"]).ok();
    assert_eq!(entries(fs.path()), Vec::<String>::new());
    assert_eq!(entries(default_tmp.path()), Vec::<String>::new());
}
