//! Restore onto a fresh machine: the sample is backed up, its cluster is
//! replaced by an empty one on the same port (no application role or
//! database), and engine-backup's provisioning command lines bring it back.
//! Failures leave the machine exactly as it was.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use pgsandbox::Cluster;
use support::*;

const PASSWORDS: &[&str] = &["engine-fixture-pw", "dwh:fixture-pw", "reporter-fixture-pw"];

/// The sample backed up, then its cluster replaced by an empty one on the
/// same port: the archive's conf points at a server without the application.
struct Fresh {
    s: Sample,
    engine_before: BTreeMap<String, (i64, String)>,
    dwh_before: BTreeMap<String, (i64, String)>,
}

fn fresh_machine(prepare_source: &str) -> Fresh {
    let s = Sample::start();
    if !prepare_source.is_empty() {
        s.cluster.execute("engine", prepare_source).unwrap();
    }
    let engine_before = checksums(&s.engine("engine"));
    let dwh_before = checksums(&s.dwh("ovirt_engine_history"));
    s.engine_backup(&["--mode=backup", "--file=good", "--log=b.log"])
        .ok();
    let Sample { cluster, dir } = s;
    let port = cluster.port();
    drop(cluster);
    let cluster = Cluster::builder()
        .port(port)
        .start()
        .expect("fresh cluster");
    Fresh {
        s: Sample { cluster, dir },
        engine_before,
        dwh_before,
    }
}

impl Fresh {
    fn admin_host(&self) -> String {
        format!("--admin-host={}", self.s.cluster.socket_dir().display())
    }

    fn restore(&self, extra: &[&str]) -> Run {
        let admin = self.admin_host();
        let mut args = vec!["--mode=restore", "--file=good", "--log=r.log", &admin];
        args.extend_from_slice(extra);
        self.s.engine_backup(&args)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.s.path("r.log")).unwrap()
    }
}

/// Roles and databases on the server, to prove nothing was added.
fn server_state(c: &Cluster) -> (String, String) {
    let q = |sql: &str| c.query_text("postgres", sql).unwrap().unwrap_or_default();
    (
        q("SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles"),
        q("SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database"),
    )
}

#[track_caller]
fn assert_no_password_shown(f: &Fresh, run: &Run) {
    let log = f.log();
    for pw in PASSWORDS {
        assert!(!log.contains(pw), "password {pw} in the log");
        assert!(
            !run.stdout.contains(pw) && !run.stderr.contains(pw),
            "password {pw} on the console"
        );
    }
}

#[test]
fn provision_db_and_dwh_without_permissions() {
    let f = fresh_machine("CREATE EXTENSION \"uuid-ossp\"");
    let run = f.restore(&[
        "--provision-db",
        "--provision-dwh-db",
        "--no-restore-permissions",
    ]);
    run.ok();
    assert!(
        run.stdout
            .contains("Provisioning PostgreSQL users/databases:"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("- user 'engine', database 'engine'"),
        "{}",
        run.stdout
    );
    // The passwords from the archive's conf work (scram over TCP).
    assert_eq!(
        checksums(&f.s.engine("engine")),
        expected_after_restore(&f.engine_before)
    );
    assert_eq!(checksums(&f.s.dwh("ovirt_engine_history")), f.dwh_before);
    let c = &f.s.cluster;
    let q = |db: &str, sql: &str| c.query_text(db, sql).unwrap().unwrap_or_default();
    assert_eq!(
        q(
            "postgres",
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'engine'"
        ),
        "engine"
    );
    assert_eq!(
        q(
            "postgres",
            "SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = 'engine'"
        ),
        "UTF8"
    );
    assert!(q(
        "postgres",
        "SELECT rolpassword FROM pg_authid WHERE rolname = 'engine'"
    )
    .starts_with("SCRAM-SHA-256$"));
    assert_eq!(
        q(
            "engine",
            "SELECT extname FROM pg_extension WHERE extname = 'uuid-ossp'"
        ),
        "uuid-ossp"
    );
    // Without permissions no extra role is created and no grant restored.
    assert_eq!(
        q(
            "postgres",
            "SELECT count(*) FROM pg_roles WHERE rolname = 'reporter'"
        ),
        "0"
    );
    assert_no_password_shown(&f, &run);
}

#[test]
fn provision_all_databases_restores_permissions_with_extra_roles() {
    let f = fresh_machine("");
    let run = f.restore(&["--provision-all-databases"]);
    run.ok();
    assert!(
        run.stdout
            .contains("- extra user 'reporter' having grants on database"),
        "{}",
        run.stdout
    );
    let log = f.log();
    assert!(
        log.contains("ALTER ROLE \"reporter\" PASSWORD"),
        "how to set it is said"
    );
    let c = &f.s.cluster;
    let acl = c
        .query_text(
            "engine",
            "SELECT relacl::text FROM pg_class WHERE relname = 'hosts'",
        )
        .unwrap()
        .unwrap_or_default();
    assert!(acl.contains("reporter=r/engine"), "{acl}");
    // reporter got a random password, not the source's.
    let reporter = tcp(c, "reporter", "reporter-fixture-pw", "engine");
    assert!(holdfast::pg::connect(&reporter).is_err());
    assert_eq!(
        checksums(&f.s.engine("engine")),
        expected_after_restore(&f.engine_before)
    );
    assert_eq!(checksums(&f.s.dwh("ovirt_engine_history")), f.dwh_before);
    assert_no_password_shown(&f, &run);
}

#[test]
fn provision_one_database_per_scope() {
    let f = fresh_machine("");
    f.restore(&[
        "--scope=files",
        "--scope=dwhdb",
        "--provision-dwh-db",
        "--restore-permissions",
    ])
    .ok();
    assert_eq!(checksums(&f.s.dwh("ovirt_engine_history")), f.dwh_before);
    let state = server_state(&f.s.cluster);
    assert!(
        !state.1.split(',').any(|d| d == "engine"),
        "engine not provisioned: {state:?}"
    );
    f.restore(&["--scope=db", "--provision-db", "--restore-permissions"])
        .ok();
    assert_eq!(
        checksums(&f.s.engine("engine")),
        expected_after_restore(&f.engine_before)
    );
}

#[test]
fn plain_dumps_are_provisioned_with_the_banner_and_without_extra_roles() {
    let s = Sample::start();
    s.cluster
        .execute("engine", "CREATE EXTENSION \"uuid-ossp\"")
        .unwrap();
    let engine_before = checksums(&s.engine("engine"));
    s.engine_backup(&[
        "--mode=backup",
        "--small-size",
        "--file=good",
        "--log=b.log",
    ])
    .ok();
    let Sample { cluster, dir } = s;
    let port = cluster.port();
    drop(cluster);
    let cluster = Cluster::builder().port(port).start().unwrap();
    let f = Fresh {
        s: Sample { cluster, dir },
        engine_before,
        dwh_before: BTreeMap::new(),
    };
    let run = f.restore(&["--provision-all-databases"]);
    run.ok();
    assert!(
        run.stdout
            .contains("Please note: permissions are not backed up with a plain dump format"),
        "{}",
        run.stdout
    );
    assert_eq!(
        checksums(&f.s.engine("engine")),
        expected_after_restore(&f.engine_before)
    );
    let c = &f.s.cluster;
    let q = |db: &str, sql: &str| c.query_text(db, sql).unwrap().unwrap_or_default();
    assert_eq!(
        q(
            "engine",
            "SELECT extname FROM pg_extension WHERE extname = 'uuid-ossp'"
        ),
        "uuid-ossp"
    );
    assert_eq!(
        q(
            "postgres",
            "SELECT count(*) FROM pg_roles WHERE rolname = 'reporter'"
        ),
        "0"
    );
}

#[test]
fn holdfast_restore_provisions_too() {
    let f = fresh_machine("");
    let admin = f.s.cluster.socket_dir().display().to_string();
    f.s.holdfast(&[
        "restore",
        "--file",
        "good",
        "--log",
        "h.log",
        "--provision",
        "db",
        "--provision",
        "dwhdb",
        "--admin-host",
        &admin,
        "--no-restore-permissions",
    ])
    .ok();
    assert_eq!(
        checksums(&f.s.engine("engine")),
        expected_after_restore(&f.engine_before)
    );
    assert_eq!(checksums(&f.s.dwh("ovirt_engine_history")), f.dwh_before);
    f.s.holdfast(&["restore", "--file", "good", "--provision", "nosuch"])
        .fails_with("--provision nosuch: not a database scope");
}

#[test]
fn automatic_provisioning_when_nothing_is_reachable() {
    let f = fresh_machine("");
    let run = f.restore(&[]);
    run.ok();
    assert!(
        run.stdout.contains("none is reachable: provisioning them"),
        "{}",
        run.stdout
    );
    assert_eq!(
        checksums(&f.s.engine("engine")),
        expected_after_restore(&f.engine_before)
    );
    assert_eq!(checksums(&f.s.dwh("ovirt_engine_history")), f.dwh_before);
    // Permissions were restored (implied).
    let acl =
        f.s.cluster
            .query_text(
                "engine",
                "SELECT relacl::text FROM pg_class WHERE relname = 'hosts'",
            )
            .unwrap()
            .unwrap_or_default();
    assert!(acl.contains("reporter"), "{acl}");
}

#[test]
fn an_existing_empty_database_and_role_are_reused() {
    let f = fresh_machine("");
    let c = &f.s.cluster;
    c.create_role("engine", "an-old-password").unwrap();
    c.create_database("engine", "postgres").unwrap();
    f.restore(&[
        "--scope=files",
        "--scope=db",
        "--provision-db",
        "--no-restore-permissions",
    ])
    .ok();
    let q = |sql: &str| c.query_text("postgres", sql).unwrap().unwrap_or_default();
    assert_eq!(
        q("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'engine'"),
        "engine"
    );
    assert_eq!(
        q("SELECT count(*) FROM pg_database WHERE datname LIKE 'engine%'"),
        "1",
        "no timestamped database"
    );
    assert_eq!(
        checksums(&f.s.engine("engine")),
        expected_after_restore(&f.engine_before)
    );
}

#[test]
fn changed_credentials_into_a_second_cluster_are_written_to_the_conf() {
    let s = Sample::start();
    let before = checksums(&s.engine("engine"));
    s.engine_backup(&["--mode=backup", "--file=good", "--log=b.log"])
        .ok();
    let other = Cluster::start().unwrap();
    other.create_role("engine_new", "n3w:pa$$'word").unwrap();
    other
        .create_database("engine_restored", "engine_new")
        .unwrap();
    let passfile = s.path("pw");
    std::fs::write(&passfile, "n3w:pa$$'word\n").unwrap();
    let port = format!("--db-port={}", other.port());
    let passfile_arg = format!("--db-passfile={}", passfile.display());
    s.engine_backup(&[
        "--mode=restore",
        "--scope=files",
        "--scope=db",
        "--file=good",
        "--log=r.log",
        "--change-db-credentials",
        "--db-host=127.0.0.1",
        &port,
        "--db-name=engine_restored",
        "--db-user=engine_new",
        &passfile_arg,
        "--no-restore-permissions",
    ])
    .ok();
    let restored = tcp(&other, "engine_new", "n3w:pa$$'word", "engine_restored");
    assert_eq!(checksums(&restored), expected_after_restore(&before));
    // The conf files, read back by the reader, hold the new credentials.
    let profile = holdfast::profile::Profile::load("ovirt-engine").unwrap();
    let env = holdfast::profile::Environment::load(
        profile.clone(),
        holdfast::profile::InstallRoot::new(s.root()).unwrap(),
    )
    .unwrap();
    let engine = env
        .database_params(profile.database("db").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(engine, restored);
}

// ----- failures: the machine is left exactly as before -----

#[track_caller]
fn assert_unchanged(
    f: &Fresh,
    tree_before: &BTreeMap<PathBuf, (Vec<u8>, u32, Option<PathBuf>)>,
    state: &(String, String),
) {
    assert_eq!(&tree(&f.s.root()), tree_before, "files byte-identical");
    assert_eq!(
        &server_state(&f.s.cluster),
        state,
        "no new role or database"
    );
}

#[test]
fn a_non_empty_target_stops_before_anything_is_written() {
    let f = fresh_machine("");
    f.s.cluster
        .create_database("ovirt_engine_history", "postgres")
        .unwrap();
    f.s.cluster
        .execute("ovirt_engine_history", "CREATE TABLE leftover (x int)")
        .unwrap();
    let (tree_before, state) = (tree(&f.s.root()), server_state(&f.s.cluster));
    f.restore(&["--provision-db", "--provision-dwh-db"])
        .fails_with("Database 'ovirt_engine_history' is not empty (it has relation leftover)");
    assert_unchanged(&f, &tree_before, &state);
}

#[test]
fn an_unprovisioned_database_that_is_missing_stops_before_anything_is_written() {
    let f = fresh_machine("");
    let (tree_before, state) = (tree(&f.s.root()), server_state(&f.s.cluster));
    // Only the engine database is provisioned; DWH's role does not exist.
    f.restore(&["--provision-db", "--restore-permissions"])
        .fails_with("Can't connect to database 'ovirt_engine_history'");
    assert_unchanged(&f, &tree_before, &state);
}

#[test]
fn a_wrong_database_password_is_refused_before_anything_is_written() {
    let s = Sample::start();
    s.engine_backup(&["--mode=backup", "--file=good", "--log=b.log"])
        .ok();
    s.clean_databases();
    let (tree_before, state) = (tree(&s.root()), server_state(&s.cluster));
    let port = format!("--db-port={}", s.cluster.port());
    let r = s.engine_backup(&[
        "--mode=restore",
        "--file=good",
        "--log=r.log",
        "--change-db-credentials",
        "--db-host=127.0.0.1",
        &port,
        "--db-name=engine",
        "--db-user=engine",
        "--db-password=definitely-wrong-pw",
        "--no-restore-permissions",
    ]);
    r.fails_with("Can't connect to database 'engine'");
    assert!(
        r.stderr.contains("password authentication failed"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("definitely-wrong-pw") && !r.stdout.contains("definitely-wrong-pw"));
    let log = std::fs::read_to_string(s.path("r.log")).unwrap();
    assert!(!log.contains("definitely-wrong-pw"));
    assert_eq!(tree(&s.root()), tree_before);
    assert_eq!(server_state(&s.cluster), state);
}

#[test]
fn a_wrong_superuser_password_is_refused() {
    let f = fresh_machine("");
    let (tree_before, state) = (tree(&f.s.root()), server_state(&f.s.cluster));
    let pw = f.s.path("admin-pw");
    std::fs::write(&pw, "not-the-password\n").unwrap();
    let r = f.s.engine_backup(&[
        "--mode=restore",
        "--file=good",
        "--log=r.log",
        "--provision-all-databases",
        "--admin-host=127.0.0.1",
        "--admin-user=postgres",
        &format!("--admin-passfile={}", pw.display()),
    ]);
    r.fails_with("password authentication failed");
    assert!(!r.stderr.contains("not-the-password"));
    assert_unchanged(&f, &tree_before, &state);
}

#[test]
fn provisioning_without_a_server_says_to_initialise_it() {
    let f = fresh_machine("");
    let (tree_before, state) = (tree(&f.s.root()), server_state(&f.s.cluster));
    let empty = tempfile::tempdir().unwrap();
    let r = f.s.engine_backup(&[
        "--mode=restore",
        "--file=good",
        "--log=r.log",
        "--provision-all-databases",
        &format!("--admin-host={}", empty.path().display()),
    ]);
    r.fails_with("pass --init-cluster");
    assert_unchanged(&f, &tree_before, &state);
}

/// An extension control file in the server's share directory, removed on drop.
struct FakeExtension {
    files: Vec<PathBuf>,
}

impl FakeExtension {
    fn install(bindir: &Path, name: &str) -> FakeExtension {
        let out = std::process::Command::new(bindir.join("pg_config"))
            .arg("--sharedir")
            .output()
            .unwrap();
        let dir = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()).join("extension");
        let control = dir.join(format!("{name}.control"));
        let script = dir.join(format!("{name}--1.0.sql"));
        assert!(!control.exists(), "{} exists already", control.display());
        std::fs::write(&control, "default_version = '1.0'\nrelocatable = true\n").unwrap();
        std::fs::write(
            &script,
            "CREATE FUNCTION holdfast_fake_ext_answer() RETURNS int LANGUAGE sql AS 'SELECT 42';\n",
        )
        .unwrap();
        FakeExtension {
            files: vec![control, script],
        }
    }
}

impl Drop for FakeExtension {
    fn drop(&mut self) {
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

#[test]
fn an_extension_the_server_lacks_stops_before_anything_is_written() {
    let name = format!("holdfast_fake_ext_{}", std::process::id());
    let f = {
        let bindir = Cluster::start().unwrap().bindir().to_path_buf();
        let _ext = FakeExtension::install(&bindir, &name);
        fresh_machine(&format!("CREATE EXTENSION {name}"))
    };
    let (tree_before, state) = (tree(&f.s.root()), server_state(&f.s.cluster));
    f.restore(&["--provision-all-databases"])
        .fails_with(&format!(
            "extension '{name}' needed by database 'engine' is not available"
        ));
    assert_unchanged(&f, &tree_before, &state);
}

#[test]
fn an_extension_the_server_lacks_stops_a_restore_without_provisioning_too() {
    let name = format!("holdfast_fake_ext_np_{}", std::process::id());
    let s = Sample::start();
    {
        let _ext = FakeExtension::install(s.cluster.bindir(), &name);
        s.cluster
            .execute("engine", &format!("CREATE EXTENSION {name}"))
            .unwrap();
        s.engine_backup(&["--mode=backup", "--file=good", "--log=b.log"])
            .ok();
        s.clean_databases();
    }
    let (tree_before, state) = (tree(&s.root()), server_state(&s.cluster));
    s.engine_backup(&[
        "--mode=restore",
        "--file=good",
        "--log=r.log",
        "--no-restore-permissions",
    ])
    .fails_with(&format!(
        "extension '{name}' needed by database 'engine' is not available on the PostgreSQL server"
    ));
    assert_eq!(tree(&s.root()), tree_before);
    assert_eq!(server_state(&s.cluster), state);
    assert!(checksums(&s.engine("engine")).is_empty());
}

/// Watch /proc while a restore runs: the pids of pg_restore children seen,
/// and any command line holding a password.
struct Watcher {
    stop: Arc<AtomicBool>,
    leaks: Arc<Mutex<Vec<String>>>,
}

fn cmdlines() -> Vec<(i32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(raw) = std::fs::read(e.path().join("cmdline")) {
            out.push((pid, String::from_utf8_lossy(&raw).replace('\0', " ")));
        }
    }
    out
}

impl Watcher {
    /// `on_restore` runs once, when a pg_restore into `port` first shows up.
    fn start(port: u16, on_restore: impl FnOnce(i32) + Send + 'static) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let leaks = Arc::new(Mutex::new(Vec::new()));
        let (stop2, leaks2) = (stop.clone(), leaks.clone());
        std::thread::spawn(move || {
            let mut on_restore = Some(on_restore);
            let needle = format!("-p {port}");
            while !stop2.load(Ordering::Relaxed) {
                for (pid, line) in cmdlines() {
                    if PASSWORDS.iter().any(|p| line.contains(p)) {
                        leaks2.lock().unwrap().push(line.clone());
                    }
                    if line.contains("pg_restore")
                        && line.contains(&needle)
                        && line.contains(" -L ")
                    {
                        if let Some(f) = on_restore.take() {
                            f(pid);
                        }
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        });
        Watcher { stop, leaks }
    }

    fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        std::thread::sleep(std::time::Duration::from_millis(20));
        self.leaks.lock().unwrap().clone()
    }
}

/// Enough rows that pg_restore runs for a while.
const BULK: &str = "SET ROLE engine; CREATE TABLE bulk AS SELECT g, md5(g::text) AS h, repeat('x', 200) AS pad FROM generate_series(1, 200000) g";

#[test]
fn a_killed_pg_restore_is_rolled_back_completely() {
    let f = fresh_machine(BULK);
    let (tree_before, state) = (tree(&f.s.root()), server_state(&f.s.cluster));
    let killed = Arc::new(AtomicBool::new(false));
    let k = killed.clone();
    let watcher = Watcher::start(f.s.cluster.port(), move |pid| {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        k.store(true, Ordering::Relaxed);
    });
    let run = f.restore(&["--provision-all-databases"]);
    let leaks = watcher.finish();
    assert!(
        killed.load(Ordering::Relaxed),
        "pg_restore was seen and killed"
    );
    run.fails_with("Errors while restoring database engine");
    assert!(
        run.stderr.contains("rolled back:") && run.stderr.contains("dropped database 'engine'"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("nothing remains changed"),
        "{}",
        run.stderr
    );
    assert!(leaks.is_empty(), "passwords in argv: {leaks:?}");
    assert_unchanged(&f, &tree_before, &state);
    assert_no_password_shown(&f, &run);
}

#[test]
fn a_killed_pg_restore_into_a_reused_database_puts_back_owner_and_password() {
    let f = fresh_machine(BULK);
    let c = &f.s.cluster;
    c.create_role("engine", "an-old-password").unwrap();
    c.create_database("engine", "postgres").unwrap();
    let (tree_before, state) = (tree(&f.s.root()), server_state(c));
    let watcher = Watcher::start(c.port(), move |pid| {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    });
    let run = f.restore(&[
        "--scope=files",
        "--scope=db",
        "--provision-db",
        "--no-restore-permissions",
    ]);
    let leaks = watcher.finish();
    run.fails_with("Errors while restoring database engine");
    for done in [
        "emptied database 'engine'",
        "gave database 'engine' back to 'postgres'",
        "put back the password of role 'engine'",
        "nothing remains changed",
    ] {
        assert!(run.stderr.contains(done), "{done}: {}", run.stderr);
    }
    assert!(leaks.is_empty(), "passwords in argv: {leaks:?}");
    assert_unchanged(&f, &tree_before, &state);
    let q = |sql: &str| c.query_text("postgres", sql).unwrap().unwrap_or_default();
    assert_eq!(
        q("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'engine'"),
        "postgres"
    );
    assert!(holdfast::pg::connect(&tcp(c, "engine", "an-old-password", "engine")).is_ok());
    assert!(holdfast::pg::connect(&f.s.engine("engine")).is_err());
    assert!(checksums(&tcp(c, "engine", "an-old-password", "engine")).is_empty());
}

/// Run engine-backup with `args` (plus the install root and version) while the
/// server is stopped as soon as pg_restore starts, and started again 2 s later.
/// Returns the run, the sample back, and any command line that held a password.
fn restore_while_the_server_restarts(s: Sample, args: &[String]) -> (Run, Sample, Vec<String>) {
    let Sample { cluster, dir } = s;
    let port = cluster.port();
    let cluster = Arc::new(Mutex::new(cluster));
    let c = cluster.clone();
    let watcher = Watcher::start(port, move |_| {
        let mut c = c.lock().unwrap();
        c.stop_server().unwrap();
        std::thread::sleep(std::time::Duration::from_secs(2));
        c.start_server().unwrap();
    });
    let mut all = args.to_vec();
    all.push(format!(
        "--install-root={}",
        dir.path().join("root").display()
    ));
    all.push(format!("--installed-version={VERSION}"));
    let run = support::run(engine_backup_bin(), &all, dir.path());
    let leaks = watcher.finish();
    let cluster = Arc::try_unwrap(cluster).unwrap().into_inner().unwrap();
    (run, Sample { cluster, dir }, leaks)
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_server_stopped_mid_way_is_rolled_back_when_it_is_back() {
    let f = fresh_machine(BULK);
    let (tree_before, state) = (tree(&f.s.root()), server_state(&f.s.cluster));
    let mut args = strings(&[
        "--mode=restore",
        "--file=good",
        "--log=r.log",
        "--provision-all-databases",
    ]);
    args.push(f.admin_host());
    let Fresh {
        s,
        engine_before,
        dwh_before,
    } = f;
    let (run, s, leaks) = restore_while_the_server_restarts(s, &args);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stderr.contains("dropped database 'engine'")
            && run.stderr.contains("nothing remains changed"),
        "{}",
        run.stderr
    );
    assert!(leaks.is_empty(), "passwords in argv: {leaks:?}");
    let f = Fresh {
        s,
        engine_before,
        dwh_before,
    };
    assert_unchanged(&f, &tree_before, &state);
}

#[test]
fn a_server_stopped_mid_way_without_provisioning_leaves_the_databases_empty() {
    let s = Sample::start();
    s.cluster.execute("engine", BULK).unwrap();
    s.engine_backup(&["--mode=backup", "--file=good", "--log=b.log"])
        .ok();
    s.clean_databases();
    let (tree_before, state) = (tree(&s.root()), server_state(&s.cluster));
    let args = strings(&[
        "--mode=restore",
        "--file=good",
        "--log=r.log",
        "--restore-permissions",
    ]);
    let (run, s, leaks) = restore_while_the_server_restarts(s, &args);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stderr.contains("emptied database 'engine'")
            && run.stderr.contains("nothing remains changed"),
        "{}",
        run.stderr
    );
    assert!(leaks.is_empty(), "passwords in argv: {leaks:?}");
    assert_eq!(tree(&s.root()), tree_before);
    assert_eq!(server_state(&s.cluster), state);
    assert!(checksums(&s.engine("engine")).is_empty());
    assert!(checksums(&s.dwh("ovirt_engine_history")).is_empty());
}

// ----- a machine where PostgreSQL is installed but no cluster is initialised -----

/// The sample backed up and its cluster removed; a 0755 directory where the
/// new cluster's data and socket go (the server runs as `postgres`).
struct NoCluster {
    dir: tempfile::TempDir,
    base: tempfile::TempDir,
    port: u16,
    bindir: PathBuf,
    engine_before: BTreeMap<String, (i64, String)>,
}

fn machine_without_cluster(prepare_source: &str) -> NoCluster {
    let s = Sample::start();
    if !prepare_source.is_empty() {
        s.cluster.execute("engine", prepare_source).unwrap();
    }
    let engine_before = checksums(&s.engine("engine"));
    s.engine_backup(&["--mode=backup", "--file=good", "--log=b.log"])
        .ok();
    let Sample { cluster, dir } = s;
    let (port, bindir) = (cluster.port(), cluster.bindir().to_path_buf());
    drop(cluster);
    let base = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    NoCluster {
        dir,
        base,
        port,
        bindir,
        engine_before,
    }
}

impl NoCluster {
    fn restore(&self, extra: &[&str]) -> Run {
        let mut all: Vec<String> = [
            "--mode=restore",
            "--file=good",
            "--log=r.log",
            "--provision-all-databases",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        all.push(format!(
            "--admin-host={}",
            self.base.path().join("sock").display()
        ));
        all.extend(extra.iter().map(|s| s.to_string()));
        all.push(format!(
            "--install-root={}",
            self.dir.path().join("root").display()
        ));
        all.push(format!("--installed-version={VERSION}"));
        support::run(engine_backup_bin(), &all, self.dir.path())
    }

    fn datadir_arg(&self) -> String {
        format!("--init-cluster-datadir={}", self.data().display())
    }

    fn data(&self) -> PathBuf {
        self.base.path().join("data")
    }
}

/// Stops and removes the cluster a test's restore initialised.
struct InitializedGuard(holdfast::pg::provision::InitializedCluster);

impl Drop for InitializedGuard {
    fn drop(&mut self) {
        if self.0.hba_file.exists() {
            let _ = holdfast::pg::provision::remove_cluster(&self.0);
        }
    }
}

#[test]
fn init_cluster_initialises_starts_and_provisions() {
    let m = machine_without_cluster("");
    let tree_before = tree(&m.dir.path().join("root"));
    m.restore(&[]).fails_with("pass --init-cluster");
    assert!(!m.data().exists());
    assert_eq!(tree(&m.dir.path().join("root")), tree_before);

    let datadir = m.datadir_arg();
    let run = m.restore(&["--init-cluster", &datadir]);
    let _guard = InitializedGuard(holdfast::pg::provision::InitializedCluster {
        init: holdfast::pg::provision::ClusterInit::Initdb {
            bindir: m.bindir.clone(),
            data_dir: m.data(),
            socket_dir: m.base.path().join("sock"),
            port: m.port,
        },
        hba_file: m.data().join("pg_hba.conf"),
    });
    run.ok();
    assert!(
        run.stdout
            .contains("- Initialising the local PostgreSQL cluster"),
        "{}",
        run.stdout
    );
    let hba = std::fs::read_to_string(m.data().join("pg_hba.conf")).unwrap();
    assert!(
        hba.contains("host    engine    engine    0.0.0.0/0    scram-sha-256"),
        "{hba}"
    );
    let engine = engine_at(m.port);
    assert_eq!(checksums(&engine), expected_after_restore(&m.engine_before));
}

#[test]
fn a_failure_after_init_cluster_removes_the_cluster() {
    let name = format!("holdfast_fake_ext_init_{}", std::process::id());
    let m = {
        let bindir = Cluster::start().unwrap().bindir().to_path_buf();
        let _ext = FakeExtension::install(&bindir, &name);
        machine_without_cluster(&format!("CREATE EXTENSION {name}"))
    };
    let tree_before = tree(&m.dir.path().join("root"));
    let datadir = m.datadir_arg();
    let run = m.restore(&["--init-cluster", &datadir]);
    let _guard = InitializedGuard(holdfast::pg::provision::InitializedCluster {
        init: holdfast::pg::provision::ClusterInit::Initdb {
            bindir: m.bindir.clone(),
            data_dir: m.data(),
            socket_dir: m.base.path().join("sock"),
            port: m.port,
        },
        hba_file: m.data().join("pg_hba.conf"),
    });
    run.fails_with(&format!(
        "extension '{name}' needed by database 'engine' is not available"
    ));
    assert!(
        run.stderr
            .contains("removed the cluster holdfast initialised"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("nothing remains changed"),
        "{}",
        run.stderr
    );
    assert!(!m.data().exists(), "the data directory is gone");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", m.port)).is_err(),
        "no server left running"
    );
    assert_eq!(tree(&m.dir.path().join("root")), tree_before);
}

/// The engine database's connection on a server that is not a sandbox.
fn engine_at(port: u16) -> holdfast::pg::ConnParams {
    holdfast::pg::ConnParams {
        host: "127.0.0.1".into(),
        port,
        user: "engine".into(),
        database: "engine".into(),
        password: Some(holdfast::Password::new("engine-fixture-pw")),
        secured: false,
        secured_validation: false,
    }
}

#[test]
fn a_failure_after_grants_were_restored_drops_the_databases_then_the_roles() {
    let f = fresh_machine("");
    // A profile whose post-restore step fails: by then the engine database is
    // restored with its grants to the extra role reporter.
    let builtin = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../holdfast/src/profile/ovirt-engine.toml"),
    )
    .unwrap();
    let broken = builtin.replace(
        "sql = \"UPDATE vm_dynamic SET status=0",
        "sql = \"SELECT 1/0; UPDATE vm_dynamic SET status=0",
    );
    assert_ne!(broken, builtin);
    std::fs::write(f.s.path("broken.toml"), broken).unwrap();
    let (tree_before, state) = (tree(&f.s.root()), server_state(&f.s.cluster));
    let profile = format!("--profile={}", f.s.path("broken.toml").display());
    let run = f.restore(&["--provision-all-databases", &profile]);
    run.fails_with("division by zero");
    for done in [
        "dropped database 'engine'",
        "dropped role 'reporter'",
        "dropped role 'engine'",
    ] {
        assert!(run.stderr.contains(done), "{done}: {}", run.stderr);
    }
    assert!(
        run.stderr.contains("nothing remains changed"),
        "{}",
        run.stderr
    );
    assert_unchanged(&f, &tree_before, &state);
}

#[test]
#[ignore = "needs root: mounts a small tmpfs"]
fn not_enough_disk_space_for_the_files_stops_before_anything_is_written() {
    let s = Sample::start();
    // 2 MiB of incompressible data in the backed-up files.
    let big = s.root().join("etc/ovirt-engine/engine.conf.d/big.bin");
    let noise: Vec<u8> = (0..2u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&big, noise).unwrap();
    s.engine_backup(&["--mode=backup", "--file=good", "--log=b.log"])
        .ok();
    s.clean_databases();
    std::fs::remove_file(&big).unwrap();
    // The install root moves onto a 1 MiB filesystem.
    let small = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(small.path())
        .status()
        .is_ok_and(|st| st.success());
    assert!(mounted, "needs root: mount a small tmpfs");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(small.path().to_path_buf());
    let root = small.path().join("root");
    let out = std::process::Command::new("cp")
        .args(["-a"])
        .arg(s.root())
        .arg(&root)
        .status()
        .unwrap();
    assert!(out.success());
    let before = tree(&root);
    let mut all: Vec<String> = [
        "--mode=restore",
        "--file=good",
        "--log=r.log",
        "--restore-permissions",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    all.push(format!("--install-root={}", root.display()));
    all.push(format!("--installed-version={VERSION}"));
    let run = support::run(engine_backup_bin(), &all, s.dir.path());
    run.fails_with("not enough disk space in");
    assert_eq!(tree(&root), before);
    assert!(checksums(&s.engine("engine")).is_empty());
}

#[test]
fn provisioning_argument_rules_and_help() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.backup"), b"not read").unwrap();
    let eb = |args: &[&str]| {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.push(format!("--install-root={}", dir.path().display()));
        all.push("--installed-version=4.5.7".into());
        support::run(engine_backup_bin(), &all, dir.path())
    };
    let restore = ["--mode=restore", "--file=a.backup", "--log=r.log"];
    let with = |extra: &[&str]| {
        let mut a = restore.to_vec();
        a.extend_from_slice(extra);
        eb(&a)
    };
    with(&[
        "--provision-db",
        "--change-db-credentials",
        "--db-host=h",
        "--db-user=u",
        "--db-name=n",
        "--db-password=p-value",
    ])
    .fails_with("FATAL: Cannot change credentials if provisioning a database");
    with(&["--provision-all-databases", "--change-dwh-db-credentials"])
        .fails_with("FATAL: Cannot change credentials if provisioning a database");
    with(&["--provision-db", "--db-host=h"])
        .fails_with("FATAL: Please use --change-db-credentials to change engine db credentials");
    with(&["--provision-db", "--admin-port=none"])
        .fails_with("FATAL: invalid port 'none' for --admin-port");
    with(&["--provision-db", "--admin-passfile=/nonexistent/pw"])
        .fails_with("FATAL: Can not read password file /nonexistent/pw");
    with(&["--provision-db", "--init-cluster-datadir=/x"])
        .fails_with("FATAL: --init-cluster-datadir needs --init-cluster");
    let help = eb(&["--help"]);
    help.ok();
    for opt in [
        "--provision-db ",
        "--provision-all-databases",
        "--admin-host=HOST|DIR",
        "--admin-port=PORT",
        "--admin-user=USER",
        "--admin-passfile=FILE",
        "--init-cluster ",
        "--init-cluster-datadir=DIR",
    ] {
        assert!(help.stdout.contains(opt), "{opt} in --help");
    }
}
