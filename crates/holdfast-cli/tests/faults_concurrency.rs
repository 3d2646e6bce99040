//! Concurrent runs on one install, as real processes: two backups to the same
//! file (seeded start offsets) are serialised by the atomic rename and leave
//! one complete archive; a backup or a second restore started while a restore
//! loads its databases is refused with a message naming the restore and its
//! pid, and the restore completes with the right data; a restore started while
//! a backup runs is refused.

mod faults_support;
mod support;

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use faults_support::*;
use support::*;

const LIMIT: Duration = Duration::from_secs(120);
const BULK: &str = "SET ROLE engine; CREATE TABLE bulk AS SELECT g, md5(g::text) AS h, repeat('x', 100) AS pad FROM generate_series(1, 60000) g";

#[test]
fn two_backups_to_one_file_leave_one_complete_archive() {
    let t0 = Instant::now();
    let s = Sample::start();
    s.cluster.execute("engine", BULK).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let backup = || {
        engine_backup(
            s.dir.path(),
            &s.root(),
            tmp.path(),
            &["--mode=backup", "--file=same", "--log=b.log"],
        )
    };
    let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
    for seed in seeds("two-backups", 3) {
        let offset = Rng::new(seed).delay(Duration::from_millis(300));
        let first = start(backup());
        std::thread::sleep(offset);
        let second = start(backup());
        let (a, _) = first.finish(LIMIT);
        let (b, _) = second.finish(LIMIT);
        *counts.entry("iterations").or_default() += 1;
        for r in [&a, &b] {
            assert!(
                r.code == 0 || r.stderr.contains("FATAL: "),
                "seed {seed:#x}: {}",
                r.stderr
            );
        }
        assert!(
            a.code == 0 || b.code == 0,
            "seed {seed:#x}: neither finished"
        );
        s.engine_backup(&["--mode=verify", "--file=same", "--log=v.log"])
            .ok();
        assert_eq!(leftovers(tmp.path()), Vec::<String>::new());
        assert_eq!(leftovers(s.dir.path()), Vec::<String>::new());
    }
    tally("two-backups", &counts, t0);
}

/// Start a restore; when its pg_restore runs, run `during` (another
/// engine-backup command line) to completion; return both runs.
fn during_a_restore(s: &Sample, tmp: &std::path::Path, during: &[&str]) -> (Run, Run) {
    let restore = engine_backup(
        s.dir.path(),
        &s.root(),
        tmp,
        &[
            "--mode=restore",
            "--file=good",
            "--log=r.log",
            "--restore-permissions",
        ],
    );
    let started = start(restore);
    let (tx, rx) = mpsc::channel();
    let trigger: Box<dyn FnMut(&Proc) -> bool + Send> = Box::new(move |p: &Proc| {
        if p.program() != "pg_restore" {
            return false;
        }
        let _ = tx.send(());
        true
    });
    let watch = Watch::start(started.pid(), &[], Some(trigger));
    rx.recv_timeout(LIMIT).expect("pg_restore started");
    let other = engine_backup(s.dir.path(), &s.root(), tmp, during);
    let (second, _) = start(other).finish(LIMIT);
    let (first, _) = started.finish(LIMIT);
    watch.finish();
    (first, second)
}

#[test]
fn a_backup_or_a_restore_during_a_restore_is_refused() {
    let s = Sample::start();
    s.cluster.execute("engine", BULK).unwrap();
    let engine_before = checksums(&s.engine("engine"));
    let tmp = tempfile::tempdir().unwrap();
    s.engine_backup(&["--mode=backup", "--file=good", "--log=b.log"])
        .ok();
    s.clean_databases();

    let (restore, backup) = during_a_restore(
        &s,
        tmp.path(),
        &["--mode=backup", "--file=during", "--log=d.log"],
    );
    restore.ok();
    backup.fails_with("another holdfast operation (restore, pid ");
    assert!(backup
        .stderr
        .contains("run this backup again when it has finished"));
    assert!(!s.path("during").exists());
    assert_eq!(
        checksums(&s.engine("engine")),
        expected_after_restore(&engine_before)
    );

    s.clean_databases();
    let (restore, second) = during_a_restore(
        &s,
        tmp.path(),
        &[
            "--mode=restore",
            "--file=good",
            "--log=r2.log",
            "--restore-permissions",
        ],
    );
    restore.ok();
    second.fails_with("another holdfast operation (restore, pid ");
    assert_eq!(
        checksums(&s.engine("engine")),
        expected_after_restore(&engine_before)
    );
    assert_eq!(leftovers(tmp.path()), Vec::<String>::new());
}

#[test]
fn a_restore_during_a_backup_is_refused() {
    let s = Sample::start();
    s.cluster.execute("engine", BULK).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    s.engine_backup(&["--mode=backup", "--file=good", "--log=b.log"])
        .ok();
    let before = tree(&s.root());
    let backup = start(engine_backup(
        s.dir.path(),
        &s.root(),
        tmp.path(),
        &["--mode=backup", "--file=nightly", "--log=n.log"],
    ));
    let (tx, rx) = mpsc::channel();
    let trigger: Box<dyn FnMut(&Proc) -> bool + Send> = Box::new(move |p: &Proc| {
        if p.program() != "pg_dump" {
            return false;
        }
        let _ = tx.send(());
        true
    });
    let watch = Watch::start(backup.pid(), &[], Some(trigger));
    rx.recv_timeout(LIMIT).expect("pg_dump started");
    let restore = start(engine_backup(
        s.dir.path(),
        &s.root(),
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
    backup.finish(LIMIT).0.ok();
    watch.finish();
    restore.fails_with("another holdfast operation");
    assert!(restore
        .stderr
        .contains("run this restore again when it has finished"));
    // Refused at the lock, its first step: nothing written (the databases
    // are compared in the test above; here the backup's own notification
    // changes the engine's audit table).
    assert_eq!(tree(&s.root()), before);
    s.engine_backup(&["--mode=verify", "--file=nightly", "--log=v.log"])
        .ok();
}
