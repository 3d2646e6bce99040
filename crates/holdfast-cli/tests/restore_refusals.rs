//! Bad archives, bad targets and failures half-way: each gives a clear error,
//! a non-zero exit, and leaves files and databases as they were.

mod support;

use support::*;

/// Back up the sample, then clean its databases: a machine ready for restore.
fn prepared() -> Sample {
    let s = Sample::start();
    s.engine_backup(&["--mode=backup", "--file=good", "--log=b.log"])
        .ok();
    s.clean_databases();
    s
}

#[track_caller]
fn assert_untouched(
    s: &Sample,
    tree_before: &std::collections::BTreeMap<
        std::path::PathBuf,
        (Vec<u8>, u32, Option<std::path::PathBuf>),
    >,
) {
    assert_eq!(&tree(&s.root()), tree_before, "install root unchanged");
    assert!(
        checksums(&s.engine("engine")).is_empty(),
        "engine database untouched (still empty)"
    );
    assert!(
        checksums(&s.dwh("ovirt_engine_history")).is_empty(),
        "dwh database untouched (still empty)"
    );
}

fn restore(s: &Sample, file: &str) -> Run {
    s.engine_backup(&[
        "--mode=restore",
        &format!("--file={file}"),
        "--log=r.log",
        "--restore-permissions",
    ])
}

#[test]
fn damaged_archives_are_refused_before_anything_is_written() {
    let s = prepared();
    let good = std::fs::read(s.path("good")).unwrap();
    let before = tree(&s.root());

    std::fs::write(s.path("truncated"), &good[..good.len() * 2 / 3]).unwrap();
    restore(&s, "truncated").fails_with("truncated");
    assert_untouched(&s, &before);

    // An uncompressed archive, so that a flipped byte lands in a member's data.
    s.engine_backup(&[
        "--mode=backup",
        "--archive-compressor=None",
        "--file=plain.tar",
        "--log=b2.log",
    ])
    .ok();
    s.clean_databases();
    let mut bytes = std::fs::read(s.path("plain.tar")).unwrap();
    let at = bytes
        .windows(5)
        .position(|w| w == b"PGDMP")
        .expect("a custom dump in the tar")
        + 200;
    bytes[at] ^= 0x55;
    std::fs::write(s.path("flipped"), &bytes).unwrap();
    restore(&s, "flipped").fails_with("Checksum verification failed");
    assert_untouched(&s, &before);

    restore(&s, "b.log").fails_with("FATAL:");
    assert_untouched(&s, &before);
}

#[test]
fn missing_member_and_wrong_version_are_refused() {
    let s = prepared();
    let before = tree(&s.root());
    // Rebuild the archive without its `version` member (its hash file updated, so
    // only the missing member is wrong).
    let dir = s.path("unpacked");
    std::fs::create_dir(&dir).unwrap();
    let st = std::process::Command::new("tar")
        .arg("-xzf")
        .arg(s.path("good"))
        .arg("-C")
        .arg(&dir)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::remove_file(dir.join("version")).unwrap();
    let sums = std::fs::read_to_string(dir.join("sha256sum")).unwrap();
    let kept: String = sums
        .lines()
        .filter(|l| !l.ends_with("  version"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dir.join("sha256sum"), kept).unwrap();
    let st = std::process::Command::new("tar")
        .arg("-czf")
        .arg(s.path("no-version"))
        .arg("-C")
        .arg(&dir)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    restore(&s, "no-version").fails_with("no 'version' member");
    assert_untouched(&s, &before);

    s.engine_backup_version(&["--mode=restore", "--file=good", "--log=r.log", "--restore-permissions"], "4.4.10")
        .fails_with("Backup was created by version '4.5.7' and can not be restored using the installed version 4.4.10");
    assert_untouched(&s, &before);
}

#[test]
fn custom_dumps_need_a_permissions_option_before_any_write() {
    let s = prepared();
    let before = tree(&s.root());
    s.engine_backup(&["--mode=restore", "--file=good", "--log=r.log"])
        .fails_with("FATAL: Please pass one of --restore-permissions or --no-restore-permissions when restoring a backup with a custom dump format");
    assert_untouched(&s, &before);
}

#[test]
fn non_empty_target_and_server_down_change_nothing() {
    let mut s = prepared();
    s.cluster
        .execute("ovirt_engine_history", "CREATE TABLE leftover (x int)")
        .unwrap();
    let before = tree(&s.root());
    restore(&s, "good")
        .fails_with("Database 'ovirt_engine_history' is not empty (it has table public.leftover)");
    assert_eq!(tree(&s.root()), before);
    assert!(checksums(&s.engine("engine")).is_empty());
    s.cluster
        .execute("ovirt_engine_history", "DROP TABLE leftover")
        .unwrap();

    s.cluster.stop_server().unwrap();
    restore(&s, "good").fails_with("Can't connect to database 'engine'");
    assert_eq!(tree(&s.root()), before);
    s.cluster.start_server().unwrap();
    assert_untouched(&s, &before);
}

#[test]
fn failed_backup_leaves_no_file_and_keeps_the_previous_archive() {
    let mut s = Sample::start();
    s.engine_backup(&["--mode=backup", "--file=nightly", "--log=1.log"])
        .ok();
    let previous = std::fs::read(s.path("nightly")).unwrap();
    s.cluster.stop_server().unwrap();
    let r = s.engine_backup(&["--mode=backup", "--file=nightly", "--log=2.log"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("FATAL: "), "{}", r.stderr);
    assert_eq!(
        std::fs::read(s.path("nightly")).unwrap(),
        previous,
        "the previous archive is untouched"
    );
    let r = s.engine_backup(&["--mode=backup", "--file=fresh", "--log=3.log"]);
    assert_eq!(r.code, 1);
    assert!(
        !s.path("fresh").exists(),
        "no file at --file after a failed backup"
    );
    let leftovers: Vec<_> = std::fs::read_dir(s.dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') || n.contains("tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no temporary files left: {leftovers:?}"
    );
}

#[test]
fn a_failure_after_the_first_write_is_rolled_back() {
    let s = prepared();
    // A profile whose post-restore step fails: files and the engine database
    // have been restored by then.
    let builtin = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../holdfast/src/profile/ovirt-engine.toml"),
    )
    .unwrap();
    let broken = builtin.replace(
        "sql = \"UPDATE vm_dynamic SET status=0",
        "sql = \"SELECT 1/0; UPDATE vm_dynamic SET status=0",
    );
    assert_ne!(broken, builtin);
    std::fs::write(s.path("broken.toml"), broken).unwrap();
    let conf = s
        .root()
        .join("etc/ovirt-engine/engine.conf.d/99-custom.conf");
    std::fs::write(
        &conf,
        "DEMO_NOTE=\"local change that the restore would overwrite\"\n",
    )
    .unwrap();
    let new_dir = s.root().join("etc/pki/ovirt-engine");
    std::fs::remove_dir_all(&new_dir).unwrap();
    let before = tree(&s.root());
    let profile = format!("--profile={}", s.path("broken.toml").display());
    let r = s.engine_backup(&[
        "--mode=restore",
        "--file=good",
        "--log=r.log",
        "--restore-permissions",
        &profile,
    ]);
    r.fails_with("division by zero");
    assert!(
        r.stderr.contains("rolled back:") && r.stderr.contains("nothing remains changed"),
        "{}",
        r.stderr
    );
    assert_untouched(&s, &before);
}

#[test]
fn a_restore_or_backup_during_a_restore_is_refused() {
    let s = prepared();
    let env = holdfast::profile::Environment::load(
        holdfast::profile::Profile::ovirt_engine(),
        holdfast::profile::InstallRoot::new(s.root()).unwrap(),
    )
    .unwrap();
    let before = tree(&s.root());
    // This test process plays a restore in progress.
    let held = holdfast::ops::lock::OperationLock::acquire(
        &env,
        holdfast::ops::lock::LockMode::Exclusive,
        "restore",
    )
    .unwrap();
    restore(&s, "good").fails_with(&format!(
        "another holdfast operation (restore, pid {}) is running on",
        std::process::id()
    ));
    s.engine_backup(&["--mode=backup", "--file=during", "--log=d.log"])
        .fails_with("run this backup again when it has finished");
    assert!(!s.path("during").exists());
    assert_untouched(&s, &before);
    drop(held);
    restore(&s, "good").ok();
}
