//! The server stopped and started again while pg_dump runs (seeded delay
//! within the dump's measured duration): the backup fails with a clear
//! message, leaves no file at `--file` and the previous archive untouched, and
//! a backup after the restart succeeds. (The same during a restore, rolled
//! back once the server is back, is in `provision.rs`:
//! `a_server_stopped_mid_way_*`.)

mod faults_support;
mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faults_support::*;
use support::*;

const LIMIT: Duration = Duration::from_secs(60);
const BULK: &str = "SET ROLE engine; CREATE TABLE bulk AS SELECT g, md5(g::text) AS h, repeat('x', 100) AS pad FROM generate_series(1, 60000) g";

#[test]
fn a_server_restart_mid_dump_fails_the_backup_cleanly() {
    let t0 = Instant::now();
    let s = Sample::start();
    s.cluster.execute("engine", BULK).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (dir, root, port, host) = (
        s.dir.path().to_path_buf(),
        s.root(),
        s.cluster.port(),
        s.cluster.host().to_string(),
    );
    let backup = |file: &str| {
        engine_backup(
            &dir,
            &root,
            tmp.path(),
            &["--mode=backup", &format!("--file={file}"), "--log=b.log"],
        )
    };
    let engine_dump = format!("pg_dump -w -U engine -h {host} -p {port} engine");
    let started = start(backup("nightly"));
    let watch = Watch::start(started.pid(), &[], None);
    started.finish(LIMIT).0.ok();
    let window = watch.finish().lifetime(&engine_dump);
    let previous = std::fs::read(s.path("nightly")).unwrap();
    let Sample { cluster, dir: sdir } = s;
    let cluster = Arc::new(Mutex::new(cluster));
    let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
    for seed in seeds("server-restart-dump", 3) {
        let delay = Rng::new(seed).delay(window);
        let started = start(backup("nightly"));
        let c = cluster.clone();
        let needle = engine_dump.clone();
        let restart: Arc<Mutex<Option<std::thread::JoinHandle<()>>>> = Arc::default();
        let r = restart.clone();
        let trigger: Box<dyn FnMut(&Proc) -> bool + Send> = Box::new(move |p: &Proc| {
            if !p.cmdline.contains(&needle) {
                return false;
            }
            let c = c.clone();
            *r.lock().unwrap() = Some(std::thread::spawn(move || {
                std::thread::sleep(delay);
                let mut c = c.lock().unwrap();
                c.stop_server().unwrap();
                std::thread::sleep(Duration::from_millis(500));
                c.start_server().unwrap();
            }));
            true
        });
        let watch = Watch::start(started.pid(), &[], Some(trigger));
        let (run, took) = started.finish(LIMIT);
        watch.finish();
        // The restart may still be under way.
        if let Some(h) = restart.lock().unwrap().take() {
            h.join().unwrap();
        }
        let what = format!("seed {seed:#x} after {delay:?}: {}", run.stderr);
        eprintln!("{what} (exit {}, {took:?})", run.code);
        *counts.entry("iterations").or_default() += 1;
        let now = std::fs::read(sdir.path().join("nightly")).unwrap();
        if run.code == 0 {
            *counts.entry("completed before the stop").or_default() += 1;
        } else {
            *counts.entry("faults injected").or_default() += 1;
            assert_eq!(run.code, 1, "{what}");
            assert!(run.stderr.contains("FATAL: "), "{what}");
            assert!(now == previous, "{what}: the previous archive changed");
        }
        assert_eq!(leftovers(tmp.path()), Vec::<String>::new(), "{what}");
        assert_eq!(leftovers(sdir.path()), Vec::<String>::new(), "{what}");
        assert!(leftover_clients(port).is_empty(), "{what}");
        std::fs::write(sdir.path().join("nightly"), &previous).unwrap();
    }
    // After the restart, a backup works again.
    start(backup("after")).finish(LIMIT).0.ok();
    tally("server-restart-dump", &counts, t0);
}
