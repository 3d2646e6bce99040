//! Network loss: a TCP proxy between holdfast and the server cuts every
//! connection (both directions) after a seeded number of bytes, drawn from a
//! clean run's traffic, mid-dump, mid-restore and mid-migrate. Each run ends
//! within a bounded time with a clear message and a non-zero exit, and leaves
//! no archive, a rolled-back install, or an untouched source and target.

mod faults_support;
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use faults_support::*;
use support::*;

/// A cut must end a run well within this: anything longer is a hang.
const LIMIT: Duration = Duration::from_secs(60);
/// How long the network stays down after a cut: at most this (seeded), well
/// within the 30 s a rollback waits for the server to be reachable again.
const OUTAGE: Duration = Duration::from_secs(3);
const BULK: &str = "SET ROLE engine; CREATE TABLE bulk AS SELECT g, md5(g::text) AS h FROM generate_series(1, 40000) g";

/// The sample, with a second install root whose conf points at a proxy in
/// front of the cluster: everything holdfast does on it goes through the proxy.
struct Behind {
    s: Sample,
    proxy: Proxy,
    tmp: tempfile::TempDir,
}

impl Behind {
    fn start() -> Behind {
        let s = Sample::start();
        s.cluster.execute("engine", BULK).unwrap();
        let proxy = Proxy::start(s.cluster.port());
        let root = s.path("proxied");
        std::fs::create_dir(&root).unwrap();
        holdfast_sample::write_sample_install_root(&root, "127.0.0.1", proxy.port).unwrap();
        Behind {
            s,
            proxy,
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    fn root(&self) -> std::path::PathBuf {
        self.s.path("proxied")
    }

    /// Run engine-backup on the proxied root; returns the run and the bytes it moved.
    fn engine_backup(&self, args: &[&str]) -> (Run, u64, Duration) {
        let before = self.proxy.bytes();
        let cmd = engine_backup(self.s.dir.path(), &self.root(), self.tmp.path(), args);
        let (run, took) = start(cmd).finish(LIMIT);
        (run, self.proxy.bytes() - before, took)
    }

    #[track_caller]
    fn nothing_left(&self, what: &str) {
        assert_eq!(leftovers(self.tmp.path()), Vec::<String>::new(), "{what}");
        assert_eq!(leftovers(self.s.dir.path()), Vec::<String>::new(), "{what}");
        assert!(leftover_clients(self.s.cluster.port()).is_empty(), "{what}");
        assert!(leftover_clients(self.proxy.port).is_empty(), "{what}");
    }
}

#[test]
fn a_connection_cut_mid_backup_leaves_no_archive() {
    let t0 = Instant::now();
    let b = Behind::start();
    let (run, total, took) = b.engine_backup(&["--mode=backup", "--file=clean", "--log=b.log"]);
    run.ok();
    eprintln!("clean backup: {total} bytes through the proxy in {took:?}");
    let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
    for (i, seed) in seeds("network-backup", 4).into_iter().enumerate() {
        let mut rng = Rng::new(seed);
        let at = rng.upto(total);
        let file = format!("cut-{i}");
        let cuts = b.proxy.cuts();
        b.proxy.cut_after(at, rng.delay(OUTAGE));
        let (run, _, took) =
            b.engine_backup(&["--mode=backup", &format!("--file={file}"), "--log=b.log"]);
        let cut = b.proxy.cuts() > cuts;
        b.proxy.heal();
        let what = format!(
            "seed {seed:#x}, cut after {at} of {total} bytes: {}",
            run.stderr
        );
        eprintln!("{what} (exit {}, {took:?})", run.code);
        *counts.entry("iterations").or_default() += 1;
        if run.code == 0 {
            assert!(!cut, "{what}: success through a cut connection");
            *counts.entry("completed before the cut").or_default() += 1;
            continue;
        }
        *counts.entry("faults injected").or_default() += 1;
        assert_eq!(run.code, 1, "{what}");
        assert!(run.stderr.contains("FATAL: "), "{what}");
        assert!(!b.s.path(&file).exists(), "{what}: a file at --file");
        b.nothing_left(&what);
    }
    tally("network-backup", &counts, t0);
}

#[test]
fn a_connection_cut_mid_restore_is_rolled_back() {
    let t0 = Instant::now();
    let b = Behind::start();
    let engine_before = checksums(&b.s.engine("engine"));
    b.engine_backup(&["--mode=backup", "--file=good", "--log=b.log"])
        .0
        .ok();
    b.s.clean_databases();
    let root_before = tree(&b.root());
    let restore = || {
        b.engine_backup(&[
            "--mode=restore",
            "--file=good",
            "--log=r.log",
            "--restore-permissions",
        ])
    };
    let (run, total, took) = restore();
    run.ok();
    assert_eq!(
        checksums(&b.s.engine("engine")),
        expected_after_restore(&engine_before)
    );
    eprintln!("clean restore: {total} bytes through the proxy in {took:?}");
    let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
    for seed in seeds("network-restore", 4) {
        b.s.clean_databases();
        put_back_tree(&b.root(), &root_before);
        let mut rng = Rng::new(seed);
        let at = rng.upto(total);
        let cuts = b.proxy.cuts();
        b.proxy.cut_after(at, rng.delay(OUTAGE));
        let (run, _, took) = restore();
        let cut = b.proxy.cuts() > cuts;
        b.proxy.heal();
        let what = format!(
            "seed {seed:#x}, cut after {at} of {total} bytes: {}",
            run.stderr
        );
        eprintln!("{what} (exit {}, {took:?})", run.code);
        *counts.entry("iterations").or_default() += 1;
        if run.code == 0 {
            assert!(!cut, "{what}: success through a cut connection");
            *counts.entry("completed before the cut").or_default() += 1;
            continue;
        }
        *counts.entry("faults injected").or_default() += 1;
        assert_eq!(run.code, 1, "{what}");
        assert!(run.stderr.contains("FATAL: "), "{what}");
        assert!(
            !run.stderr.contains("REMAINS CHANGED"),
            "{what}: the rollback could not finish"
        );
        assert_eq!(tree(&b.root()), root_before, "{what}: files changed");
        assert!(checksums(&b.s.engine("engine")).is_empty(), "{what}");
        assert!(
            checksums(&b.s.dwh("ovirt_engine_history")).is_empty(),
            "{what}"
        );
        b.nothing_left(&what);
    }
    tally("network-restore", &counts, t0);
}

/// Roles and databases of a server.
fn server_state(c: &pgsandbox::Cluster) -> (String, String) {
    let q = |sql: &str| c.query_text("postgres", sql).unwrap().unwrap_or_default();
    (
        q("SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles"),
        q("SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database"),
    )
}

#[test]
fn a_connection_cut_mid_migrate_leaves_source_and_target_as_they_were() {
    let t0 = Instant::now();
    let s = Sample::start();
    s.cluster.execute("engine", BULK).unwrap();
    let target = pgsandbox::Cluster::start().unwrap();
    let proxy = Proxy::start(target.port());
    let tmp = tempfile::tempdir().unwrap();
    let engine_before = checksums(&s.engine("engine"));
    let root_before = tree(&s.root());
    let target_before = server_state(&target);
    let port = proxy.port.to_string();
    let socket = target.socket_dir().display().to_string();
    let target_port = target.port().to_string();
    let migrate = || {
        let before = proxy.bytes();
        let cmd = holdfast(
            s.dir.path(),
            &s.root(),
            tmp.path(),
            &[
                "migrate",
                "--log",
                "migrate.log",
                "--scope",
                "db",
                "--to-host",
                "127.0.0.1",
                "--to-port",
                &port,
                "--admin-user",
                "postgres",
                "--admin-host",
                &socket,
                "--admin-port",
                &target_port,
            ],
        );
        let (run, took) = start(cmd).finish(LIMIT);
        (run, proxy.bytes() - before, took)
    };
    let reset = || {
        put_back_tree(&s.root(), &root_before);
        target
            .execute("postgres", "DROP DATABASE IF EXISTS engine WITH (FORCE)")
            .unwrap();
        target
            .execute(
                "postgres",
                "DROP ROLE IF EXISTS engine; DROP ROLE IF EXISTS reporter",
            )
            .unwrap();
        assert_eq!(server_state(&target), target_before);
    };
    let (run, total, took) = migrate();
    run.ok();
    eprintln!("clean migrate: {total} bytes through the proxy in {took:?}");
    reset();
    let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
    for seed in seeds("network-migrate", 4) {
        let mut rng = Rng::new(seed);
        let at = rng.upto(total);
        let cuts = proxy.cuts();
        proxy.cut_after(at, rng.delay(OUTAGE));
        let (run, _, took) = migrate();
        let cut = proxy.cuts() > cuts;
        proxy.heal();
        let what = format!(
            "seed {seed:#x}, cut after {at} of {total} bytes: {}",
            run.stderr
        );
        eprintln!("{what} (exit {}, {took:?})", run.code);
        *counts.entry("iterations").or_default() += 1;
        if run.code == 0 {
            assert!(!cut, "{what}: success through a cut connection");
            *counts.entry("completed before the cut").or_default() += 1;
            reset();
            continue;
        }
        *counts.entry("faults injected").or_default() += 1;
        assert_eq!(run.code, 1, "{what}");
        assert!(run.stderr.starts_with("holdfast: error: "), "{what}");
        assert_eq!(tree(&s.root()), root_before, "{what}: conf files changed");
        assert_eq!(checksums(&s.engine("engine")), engine_before, "{what}");
        assert_eq!(
            server_state(&target),
            target_before,
            "{what}: target changed"
        );
        assert_eq!(leftovers(tmp.path()), Vec::<String>::new(), "{what}");
        assert!(leftover_clients(proxy.port).is_empty(), "{what}");
    }
    tally("network-migrate", &counts, t0);
}
