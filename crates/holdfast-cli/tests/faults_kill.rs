//! Kills at random points (seeded; `HOLDFAST_FAULT_ITERATIONS` runs more):
//! pg_dump during a backup, pg_restore during a restore, and holdfast itself
//! (SIGTERM and SIGKILL) during both, with the delay drawn from the measured
//! duration of a clean run. After each: a backup left either a complete
//! archive that verifies or no file at `--file` (a previous archive there
//! byte-identical); a restore either completed or was rolled back (files
//! byte-identical, databases empty); no temporary file, no client program and
//! no password in any argv or environment left behind.
//!
//! SIGKILL cannot be caught, so a killed restore cannot roll back itself: no
//! client program, nor any worker pg_restore forked for `-j`, is alive a
//! second after the kill (the guardian kills their process groups), and the
//! next run finds the restore's journal and rolls it back
//! (`holdfast restore --rollback-interrupted`, or the next restore before it
//! starts), saying so; the machine is then either restored or exactly as it
//! was (tables, roles, files byte for byte).

mod faults_support;
mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use faults_support::*;
use support::*;

const LIMIT: Duration = Duration::from_secs(120);
const SECRETS: &[&str] = &["engine-fixture-pw", "dwh:fixture-pw"];
/// Enough rows that pg_dump and pg_restore run for a noticeable time.
const BULK: &str = "SET ROLE engine; CREATE TABLE bulk AS SELECT g, md5(g::text) AS h, repeat('x', 100) AS pad FROM generate_series(1, 60000) g";

#[derive(Debug, Clone, Copy)]
enum Fault {
    /// SIGKILL to the client program (pg_dump or pg_restore).
    KillClient,
    /// SIGTERM to holdfast (engine-backup) itself.
    TermSelf,
    /// SIGKILL to holdfast itself.
    KillSelf,
}

const FAULTS: [Fault; 3] = [Fault::KillClient, Fault::TermSelf, Fault::KillSelf];

fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with(|c| c != 'Z')))
        .unwrap_or(false)
}

/// Send `sig` to `pid` after `delay` on another thread; sets `fired` if it was running.
fn kill_self_after(pid: u32, delay: Duration, sig: &'static str, fired: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        std::thread::sleep(delay);
        if running(pid) {
            signal(pid, sig);
            fired.store(true, Ordering::Relaxed);
        }
    });
}

/// Start `cmd` with `fault` injected after a delay drawn below `window`
/// (measured from the start of the run, or of the client program).
fn run_with_fault(
    cmd: std::process::Command,
    fault: Fault,
    client: &str,
    window: Duration,
    rng: &mut Rng,
) -> (Run, Seen, bool) {
    let fired = Arc::new(AtomicBool::new(false));
    let delay = rng.delay(window);
    let started = start(cmd);
    let trigger = match fault {
        Fault::KillClient => Some(kill_program_after(
            client.to_string(),
            delay,
            "KILL",
            fired.clone(),
        )),
        _ => None,
    };
    let watch = Watch::start(started.pid(), SECRETS, trigger);
    match fault {
        Fault::TermSelf => kill_self_after(started.pid(), delay, "TERM", fired.clone()),
        Fault::KillSelf => kill_self_after(started.pid(), delay, "KILL", fired.clone()),
        Fault::KillClient => {}
    }
    let (run, _) = started.finish(LIMIT);
    let seen = watch.finish();
    (run, seen, fired.load(Ordering::Relaxed))
}

/// The command line of the engine database's pg_dump.
fn engine_dump(s: &Sample) -> String {
    format!(
        "pg_dump -w -U engine -h {} -p {} engine",
        s.cluster.host(),
        s.cluster.port()
    )
}

/// The command line of the engine database's pg_restore.
fn engine_restore(s: &Sample) -> String {
    format!("-p {} -d engine", s.cluster.port())
}

#[test]
fn backups_killed_at_random_points_leave_a_verified_archive_or_none() {
    let t0 = Instant::now();
    let s = Sample::start();
    s.cluster.execute("engine", BULK).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let backup = |file: &str| {
        engine_backup(
            s.dir.path(),
            &s.root(),
            tmp.path(),
            &[
                "--mode=backup",
                &format!("--file={file}"),
                "--log=backup.log",
            ],
        )
    };
    // A clean run, timed: the window the delays are drawn from.
    let started = start(backup("previous"));
    let watch = Watch::start(started.pid(), SECRETS, None);
    let (run, clean) = started.finish(LIMIT);
    let seen = watch.finish();
    run.ok();
    assert!(seen.leaks.is_empty(), "{:?}", seen.leaks);
    let dump_window = seen.lifetime(&engine_dump(&s));
    let previous = std::fs::read(s.path("previous")).unwrap();
    eprintln!("clean backup: {clean:?}, pg_dump ran {dump_window:?}");

    let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
    for (i, seed) in seeds("backup-kill", 6).into_iter().enumerate() {
        let mut rng = Rng::new(seed);
        let fault = FAULTS[i % FAULTS.len()];
        let over_previous = rng.upto(1) == 0;
        let file = if over_previous {
            "previous".to_string()
        } else {
            format!("fresh-{i}")
        };
        let window = match fault {
            Fault::KillClient => dump_window,
            _ => clean + clean / 5,
        };
        let (run, seen, fired) =
            run_with_fault(backup(&file), fault, &engine_dump(&s), window, &mut rng);
        let what = format!(
            "seed {seed:#x} {fault:?} into {file}: {run:?}",
            run = run.stderr
        );
        *counts.entry("iterations").or_default() += 1;
        eprintln!(
            "seed {seed:#x} {fault:?} fired={fired}: exit {} {}",
            run.code,
            run.stderr.lines().last().unwrap_or("")
        );
        if fired {
            *counts.entry("faults injected").or_default() += 1;
        }
        assert!(seen.leaks.is_empty(), "{what}: {:?}", seen.leaks);
        assert!(
            leftover_clients(s.cluster.port()).is_empty(),
            "{what}: client programs left"
        );
        if run.code == 0 {
            *counts.entry("completed anyway").or_default() += 1;
            s.engine_backup(&[
                "--mode=verify",
                &format!("--file={file}"),
                "--log=verify.log",
            ])
            .ok();
        } else {
            match fault {
                Fault::KillClient => assert!(run.stderr.contains("FATAL: "), "{what}"),
                Fault::TermSelf => assert!(
                    run.code == -1 || run.stderr.contains("interrupted by SIGTERM"),
                    "{what}"
                ),
                Fault::KillSelf => assert_eq!(run.code, -1, "{what}"),
            }
            // The archive may have been renamed into place just before the
            // kill: then it is complete. Otherwise nothing changed at --file.
            let now = std::fs::read(s.path(&file)).ok();
            let untouched = match over_previous {
                true => now.as_deref() == Some(previous.as_slice()),
                false => now.is_none(),
            };
            if !untouched {
                assert!(now.is_some(), "{what}: the previous archive is gone");
                *counts.entry("completed before the kill").or_default() += 1;
                s.engine_backup(&[
                    "--mode=verify",
                    &format!("--file={file}"),
                    "--log=verify.log",
                ])
                .ok();
            }
        }
        // Even after SIGKILL: the next run sweeps what a killed one left.
        if matches!(fault, Fault::KillSelf) {
            std::thread::sleep(Duration::from_millis(1200));
            let started = start(backup(&file));
            started.finish(LIMIT).0.ok();
        }
        assert_eq!(leftovers(tmp.path()), Vec::<String>::new(), "{what}");
        assert_eq!(leftovers(s.dir.path()), Vec::<String>::new(), "{what}");
        if over_previous {
            return_previous(&s, &previous);
        }
    }
    tally("backup-kill", &counts, t0);
}

/// Put the first archive back at "previous", so every iteration compares with it.
fn return_previous(s: &Sample, previous: &[u8]) {
    std::fs::write(s.path("previous"), previous).unwrap();
}

#[test]
fn restores_killed_at_random_points_complete_or_roll_back() {
    let t0 = Instant::now();
    let s = Sample::start();
    s.cluster.execute("engine", BULK).unwrap();
    let engine_before = checksums(&s.engine("engine"));
    let dwh_before = checksums(&s.dwh("ovirt_engine_history"));
    s.engine_backup(&["--mode=backup", "--file=good", "--log=b.log"])
        .ok();
    s.clean_databases();
    let root_before = tree(&s.root());
    let tmp = tempfile::tempdir().unwrap();
    let restore = || {
        engine_backup(
            s.dir.path(),
            &s.root(),
            tmp.path(),
            &[
                "--mode=restore",
                "--file=good",
                "--log=restore.log",
                "--restore-permissions",
            ],
        )
    };
    let restored_completely = |what: &str| {
        assert_eq!(
            checksums(&s.engine("engine")),
            expected_after_restore(&engine_before),
            "{what}"
        );
        assert_eq!(
            checksums(&s.dwh("ovirt_engine_history")),
            dwh_before,
            "{what}"
        );
    };
    let reset = || {
        s.clean_databases();
        put_back_tree(&s.root(), &root_before);
        assert_eq!(tree(&s.root()), root_before);
        forget_completed_notes(&s.path("state"));
    };

    let started = start(restore());
    let watch = Watch::start(started.pid(), SECRETS, None);
    let (run, clean) = started.finish(LIMIT);
    let seen = watch.finish();
    run.ok();
    assert!(seen.leaks.is_empty(), "{:?}", seen.leaks);
    restored_completely("clean run");
    let restore_window = seen.lifetime(&engine_restore(&s));
    eprintln!("clean restore: {clean:?}, pg_restore ran {restore_window:?}");
    reset();

    let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
    for (i, seed) in seeds("restore-kill", 6).into_iter().enumerate() {
        let mut rng = Rng::new(seed);
        let fault = FAULTS[i % FAULTS.len()];
        let window = match fault {
            Fault::KillClient => restore_window,
            _ => clean + clean / 5,
        };
        let (run, seen, fired) =
            run_with_fault(restore(), fault, &engine_restore(&s), window, &mut rng);
        let what = format!("seed {seed:#x} {fault:?}: {}", run.stderr);
        *counts.entry("iterations").or_default() += 1;
        eprintln!(
            "seed {seed:#x} {fault:?} fired={fired}: exit {} {}",
            run.code,
            run.stderr.lines().last().unwrap_or("")
        );
        if fired {
            *counts.entry("faults injected").or_default() += 1;
        }
        assert!(seen.leaks.is_empty(), "{what}: {:?}", seen.leaks);
        assert!(
            leftover_clients(s.cluster.port()).is_empty(),
            "{what}: client programs left"
        );
        if run.code == 0 {
            *counts.entry("completed anyway").or_default() += 1;
            restored_completely(&what);
        } else if matches!(fault, Fault::KillSelf) && completed_note_in(&s.path("state")) {
            // Killed after its journal was completed (while it cleaned up):
            // the restore is whole, as its note says. The same restore again
            // refuses the full databases, and sweeps the killed run's work
            // directory (a second later, as below).
            *counts.entry("completed before the kill").or_default() += 1;
            restored_completely(&what);
            std::thread::sleep(Duration::from_millis(1200));
            let again = start(restore()).finish(LIMIT).0;
            assert!(
                again.stderr.contains("is not empty"),
                "{what}: {}",
                again.stderr
            );
            restored_completely(&what);
        } else if matches!(fault, Fault::KillSelf) {
            // The same restore again rolls the killed one back from its
            // journal, then completes. (A second later, so that it sweeps the
            // killed run's work directory.)
            std::thread::sleep(Duration::from_millis(1200));
            let again = start(restore()).finish(LIMIT).0;
            again.ok();
            if again.stdout.contains("Rolling back an interrupted restore") {
                assert!(again.stdout.contains("nothing remains changed"), "{what}");
                *counts.entry("rolled back by the next run").or_default() += 1;
            }
            restored_completely(&what);
        } else {
            assert!(
                run.stderr.contains("nothing remains changed")
                    || run.stderr.contains("interrupted by SIGTERM"),
                "{what}"
            );
            if matches!(fault, Fault::TermSelf) {
                assert!(run.stderr.contains("interrupted by SIGTERM"), "{what}");
                // 128 + SIGTERM, as a shell reports a process it ended.
                assert_eq!(run.code, 143, "{what}");
            } else {
                assert_eq!(run.code, 1, "{what}");
            }
            assert_eq!(tree(&s.root()), root_before, "{what}: files changed");
            assert!(checksums(&s.engine("engine")).is_empty(), "{what}");
            assert!(
                checksums(&s.dwh("ovirt_engine_history")).is_empty(),
                "{what}"
            );
            *counts.entry("rolled back").or_default() += 1;
        }
        // A killed restore's kept copies are in its journal, which the next
        // run removed: nothing is left in the temporary directory.
        assert_eq!(leftovers(tmp.path()), Vec::<String>::new(), "{what}");
        reset();
    }
    tally("restore-kill", &counts, t0);
}

/// Roles and databases on a server, to prove nothing was added.
fn server_state(c: &pgsandbox::Cluster) -> (String, String) {
    let q = |sql: &str| c.query_text("postgres", sql).unwrap().unwrap_or_default();
    (
        q("SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles"),
        q("SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database"),
    )
}

#[test]
fn provisioning_restores_terminated_at_random_points_roll_back_roles_and_databases() {
    let t0 = Instant::now();
    // The sample backed up, then its cluster replaced by an empty one on the
    // same port: a fresh machine, where the restore creates roles and databases.
    let s = Sample::start();
    s.cluster.execute("engine", BULK).unwrap();
    s.engine_backup(&["--mode=backup", "--file=good", "--log=b.log"])
        .ok();
    let Sample { cluster, dir } = s;
    let port = cluster.port();
    drop(cluster);
    let cluster = pgsandbox::Cluster::builder().port(port).start().unwrap();
    let s = Sample { cluster, dir };
    let root_before = tree(&s.root());
    let state_before = server_state(&s.cluster);
    let tmp = tempfile::tempdir().unwrap();
    let admin = format!("--admin-host={}", s.cluster.socket_dir().display());
    let restore = || {
        engine_backup(
            s.dir.path(),
            &s.root(),
            tmp.path(),
            &[
                "--mode=restore",
                "--file=good",
                "--log=r.log",
                "--provision-all-databases",
                &admin,
            ],
        )
    };
    let reset = || {
        for db in ["engine", "ovirt_engine_history"] {
            s.cluster
                .execute(
                    "postgres",
                    &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
                )
                .unwrap();
        }
        s.cluster
            .execute(
                "postgres",
                "DROP ROLE IF EXISTS engine; DROP ROLE IF EXISTS ovirt_engine_history; \
                 DROP ROLE IF EXISTS reporter",
            )
            .unwrap();
        put_back_tree(&s.root(), &root_before);
        assert_eq!(server_state(&s.cluster), state_before);
    };
    let (run, clean) = start(restore()).finish(LIMIT);
    run.ok();
    reset();
    let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
    for seed in seeds("provision-term", 3) {
        let mut rng = Rng::new(seed);
        let window = clean + clean / 5;
        let (run, seen, fired) = run_with_fault(restore(), Fault::TermSelf, "", window, &mut rng);
        let what = format!("seed {seed:#x}: {}", run.stderr);
        eprintln!("{what} (exit {})", run.code);
        *counts.entry("iterations").or_default() += 1;
        if fired {
            *counts.entry("faults injected").or_default() += 1;
        }
        assert!(seen.leaks.is_empty(), "{what}: {:?}", seen.leaks);
        assert!(leftover_clients(port).is_empty(), "{what}");
        if run.code == 0 {
            *counts.entry("completed anyway").or_default() += 1;
        } else {
            assert_eq!(run.code, 143, "{what}");
            assert!(run.stderr.contains("interrupted by SIGTERM"), "{what}");
            assert!(!run.stderr.contains("REMAINS CHANGED"), "{what}");
            assert_eq!(tree(&s.root()), root_before, "{what}: files changed");
            assert_eq!(
                server_state(&s.cluster),
                state_before,
                "{what}: server changed"
            );
            *counts.entry("rolled back").or_default() += 1;
        }
        assert_eq!(leftovers(tmp.path()), Vec::<String>::new(), "{what}");
        reset();
    }
    tally("provision-term", &counts, t0);
}

/// Tables, rows per table: a database whose `pg_restore -j 4` takes seconds
/// (data, then a primary key and an index per table, so that workers run
/// long statements at any moment).
const WIDE_TABLES: u32 = 16;
const WIDE_ROWS: u32 = 20_000;

/// How long after the kill client programs may still be seen.
const CHILD_GRACE: Duration = Duration::from_secs(1);

/// Poll for client programs of `port` from the kill on; how long the last one lived.
fn clients_survived(port: u16, since: Instant) -> (Duration, Vec<String>) {
    // How long after the kill a client program was last seen alive: the end
    // of the last scan of /proc that found one (an upper bound of that
    // sighting), zero when the first scan found none. Timing the scan that
    // finds none instead would measure how long /proc takes to read on a
    // loaded machine, not how long the clients lived.
    let mut last = Vec::new();
    let mut last_seen = Duration::ZERO;
    loop {
        let now: Vec<String> = clients_of(port).into_iter().map(|p| p.cmdline).collect();
        if now.is_empty() {
            return (last_seen, last);
        }
        last_seen = since.elapsed();
        last = now;
        if last_seen > CHILD_GRACE * 3 {
            return (last_seen, last);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn restores_sigkilled_with_four_jobs_leave_the_machine_restored_or_as_it_was() {
    let t0 = Instant::now();
    let s = Sample::start();
    let mut sql = String::from("SET ROLE engine;");
    for t in 0..WIDE_TABLES {
        sql.push_str(&format!(
            "CREATE TABLE wide_{t} AS SELECT g AS id, md5(g::text) AS h, g % 97 AS k, \
             repeat('x', 60) AS pad FROM generate_series(1, {WIDE_ROWS}) g; \
             ALTER TABLE wide_{t} ADD PRIMARY KEY (id); \
             CREATE INDEX wide_{t}_h ON wide_{t} (h, k);"
        ));
    }
    s.cluster.execute("engine", &sql).unwrap();
    let engine_before = checksums(&s.engine("engine"));
    let dwh_before = checksums(&s.dwh("ovirt_engine_history"));
    let roles_before = server_state(&s.cluster).0;
    s.engine_backup(&["--mode=backup", "--file=good", "--log=b.log"])
        .ok();
    s.clean_databases();
    // The files as the archive has them, then as this machine has them: a
    // local change to a conf file, so that a rollback that did not put the
    // replaced files back would show.
    let root_restored = tree(&s.root());
    let conf = s
        .root()
        .join("etc/ovirt-engine/engine.conf.d/10-setup-database.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str("# changed on this machine after the backup\n");
    std::fs::write(&conf, text).unwrap();
    let root_before = tree(&s.root());
    let tmp = tempfile::tempdir().unwrap();
    let restore = || {
        holdfast(
            s.dir.path(),
            &s.root(),
            tmp.path(),
            &[
                "restore",
                "--file",
                "good",
                "--restore-permissions",
                "--jobs",
                "4",
            ],
        )
    };
    let rollback = || {
        holdfast(
            s.dir.path(),
            &s.root(),
            tmp.path(),
            &["restore", "--rollback-interrupted"],
        )
    };
    let restored = |what: &str| {
        assert_eq!(
            checksums(&s.engine("engine")),
            expected_after_restore(&engine_before),
            "{what}"
        );
        assert_eq!(
            checksums(&s.dwh("ovirt_engine_history")),
            dwh_before,
            "{what}"
        );
        assert_eq!(tree(&s.root()), root_restored, "{what}: files");
        assert_eq!(server_state(&s.cluster).0, roles_before, "{what}: roles");
    };
    let as_it_was = |what: &str| {
        assert!(checksums(&s.engine("engine")).is_empty(), "{what}");
        assert!(
            checksums(&s.dwh("ovirt_engine_history")).is_empty(),
            "{what}"
        );
        assert_eq!(tree(&s.root()), root_before, "{what}: files changed");
        assert_eq!(server_state(&s.cluster).0, roles_before, "{what}: roles");
    };
    let reset = || {
        s.clean_databases();
        put_back_tree(&s.root(), &root_before);
        forget_completed_notes(&s.path("state"));
    };
    let journals = || {
        std::fs::read_dir(s.path("state"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    // Journals only: not the record of the last completed
                    // restore, nor the run records `holdfast status` reads.
                    .filter(|n| !n.ends_with(".completed") && !n.starts_with("run-"))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };

    // A clean run, timed: the window the kill points are drawn from.
    let started = start(restore());
    let watch = Watch::start(started.pid(), SECRETS, None);
    let (run, clean) = started.finish(LIMIT);
    let seen = watch.finish();
    run.ok();
    restored("clean run");
    let restores: Vec<&(String, Duration, Duration)> = seen
        .lifetimes
        .values()
        .filter(|(cmd, _, _)| cmd.contains(&engine_restore(&s)))
        .collect();
    // Kill points: from the start until shortly after the engine database's
    // pg_restore and its workers are gone (the rest is quick).
    let window = restores
        .iter()
        .map(|(_, _, last)| *last)
        .max()
        .unwrap_or(clean)
        + Duration::from_millis(300);
    eprintln!(
        "clean restore -j 4: {clean:?}, {} pg_restore processes, kill window {window:?}",
        restores.len()
    );
    assert!(restores.len() >= 3, "pg_restore -j 4 forked no workers");
    reset();

    let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
    let mut longest = Duration::ZERO;
    let mut kill_points = Vec::new();
    for (i, seed) in seeds("restore-sigkill-j4", 3).into_iter().enumerate() {
        let mut rng = Rng::new(seed);
        let delay = rng.delay(window);
        let mut started = start(restore());
        std::thread::sleep(delay.saturating_sub(started.at.elapsed()));
        let running_at_kill = clients_of(s.cluster.port()).len();
        signal(started.pid(), "KILL");
        let killed = Instant::now();
        let _ = started.child.wait();
        let (survived, last) = clients_survived(s.cluster.port(), killed);
        let run = started.finish(LIMIT).0;
        let what = format!("seed {seed:#x} kill at {delay:?}");
        kill_points.push(format!("{:.2}", delay.as_secs_f64()));
        longest = longest.max(survived);
        *counts.entry("iterations").or_default() += 1;
        if running_at_kill > 0 {
            *counts
                .entry("killed with client programs running")
                .or_default() += 1;
        }
        assert!(
            survived <= CHILD_GRACE,
            "{what}: client programs alive {survived:?} after the kill: {last:?}"
        );
        if run.code == 0 {
            // Finished before the kill landed.
            *counts.entry("finished before the kill").or_default() += 1;
        }
        // The next run: alternately only the rollback, or the same restore
        // again (which rolls the interrupted one back first).
        std::thread::sleep(Duration::from_millis(1100));
        if i % 2 == 0 {
            let next = start(rollback()).finish(LIMIT).0;
            next.ok();
            let said = next.stdout.clone();
            eprintln!(
                "{what}: {running_at_kill} clients at the kill, last seen alive {survived:?} after it; \
                 next run: {}",
                said.lines().last().unwrap_or("")
            );
            if said.contains("the install is back as it was") {
                assert!(
                    said.contains("Rolling back an interrupted restore of"),
                    "{said}"
                );
                as_it_was(&what);
                *counts
                    .entry("rolled back by --rollback-interrupted")
                    .or_default() += 1;
            } else if said.contains("completed") && said.contains("the install is restored") {
                restored(&what);
                *counts.entry("had completed").or_default() += 1;
            } else {
                assert!(
                    said.contains("no restore of this install root left changes unfinished"),
                    "{what}: {said}"
                );
                as_it_was(&what);
                *counts.entry("killed before the first change").or_default() += 1;
            }
        } else {
            // Whether the killed restore had completed, as its note says
            // before the next restore runs.
            let completed = completed_note_in(&s.path("state"));
            let next = start(restore()).finish(LIMIT).0;
            if next.code != 0 && completed {
                // The killed restore had completed: a second one finds the
                // databases full, and says so.
                assert!(
                    next.stderr.contains("is not empty"),
                    "{what}: {}",
                    next.stderr
                );
                *counts.entry("had completed").or_default() += 1;
            } else {
                next.ok();
            }
            if next.stdout.contains("Rolling back an interrupted restore") {
                assert!(
                    next.stdout.contains("nothing remains changed"),
                    "{}",
                    next.stdout
                );
                *counts.entry("rolled back by the next restore").or_default() += 1;
            }
            eprintln!(
                "{what}: {running_at_kill} clients at the kill, last seen alive {survived:?} after it; \
                 next restore completed"
            );
            restored(&what);
        }
        assert_eq!(journals(), Vec::<String>::new(), "{what}: journal left");
        assert_eq!(leftovers(tmp.path()), Vec::<String>::new(), "{what}");
        reset();
    }
    eprintln!(
        "kill points (s): {}; longest a client program was seen alive after the kill: {longest:?}",
        kill_points.join(", ")
    );
    tally("restore-sigkill-j4", &counts, t0);
}

/// Whether a restore's journal in `state` was completed (its `.completed`
/// note is there).
fn completed_note_in(state: &std::path::Path) -> bool {
    std::fs::read_dir(state)
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".completed"))
        })
        .unwrap_or(false)
}

/// The databases were emptied by the test: no completed restore describes
/// the install any more.
fn forget_completed_notes(state: &std::path::Path) {
    for e in std::fs::read_dir(state).into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().ends_with(".completed") {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
}
