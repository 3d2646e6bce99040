//! Passwords stay secret through backup, repository backup and restore,
//! restore with changed credentials, and migrate: while each runs, every
//! descendant's argv and environment is sampled from /proc every 2 ms; the
//! console, the log files and a forced panic are scanned too; the files
//! holdfast creates (archives, logs, pgpass files) are 0600 and its temporary
//! directories 0700 whenever they are seen. Secret variables in holdfast's own
//! environment (repository, REST, restic, S3, oVirt and PostgreSQL passwords)
//! reach no child program: pg_dump, pg_restore, psql, pg_config, the deep
//! verify server, the guardian.

mod faults_support;
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faults_support::*;
use support::*;

const LIMIT: Duration = Duration::from_secs(120);
const NEW_PW: &str = "new-engine2-secret-pw";
const REPO_PW: &str = "repo secret horse staple";
const ADMIN_PW: &str = "admin-secret-pw-9";
const SECRETS: &[&str] = &[
    "engine-fixture-pw",
    "dwh:fixture-pw",
    "reporter-fixture-pw",
    NEW_PW,
    REPO_PW,
    ADMIN_PW,
];

/// Polls a temporary directory every 2 ms: holdfast's directories there must be
/// 0700 and the pgpass files in them 0600.
struct ModeWatch {
    stop: Arc<AtomicBool>,
    bad: Arc<Mutex<Vec<String>>>,
    seen: Arc<Mutex<usize>>,
}

impl ModeWatch {
    fn start(dir: PathBuf) -> ModeWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let bad = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::new(Mutex::new(0));
        let (stop2, bad2, seen2) = (stop.clone(), bad.clone(), seen.clone());
        std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if !name.starts_with("holdfast") || name.ends_with(".lock") {
                        continue;
                    }
                    let Ok(meta) = e.metadata() else { continue };
                    *seen2.lock().unwrap() += 1;
                    if meta.is_dir() && meta.permissions().mode() & 0o777 != 0o700 {
                        bad2.lock()
                            .unwrap()
                            .push(format!("{name} is {:o}", meta.permissions().mode() & 0o777));
                    }
                    let pgpass = e.path().join("pgpass");
                    if let Ok(m) = std::fs::metadata(&pgpass) {
                        if m.permissions().mode() & 0o777 != 0o600 {
                            bad2.lock().unwrap().push(format!("{name}/pgpass"));
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        ModeWatch { stop, bad, seen }
    }

    fn finish(self) -> (Vec<String>, usize) {
        self.stop.store(true, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(10));
        let bad = self.bad.lock().unwrap().clone();
        let seen = *self.seen.lock().unwrap();
        (bad, seen)
    }
}

/// Run `cmd` watched; assert no secret anywhere, and the log (if any) 0600 and clean.
fn watched(what: &str, cmd: std::process::Command, tmp: &Path, log: Option<&Path>) -> Run {
    let modes = ModeWatch::start(tmp.to_path_buf());
    let started = start(cmd);
    let watch = Watch::start(started.pid(), SECRETS, None);
    let (run, _) = started.finish(LIMIT);
    let seen = watch.finish();
    let (bad_modes, entries) = modes.finish();
    eprintln!(
        "{what}: exit {}, {} child processes sampled, {entries} temporary entries seen",
        run.code, seen.processes
    );
    assert!(
        seen.processes > 0 || what.starts_with("repo"),
        "{what}: no child seen"
    );
    assert!(
        seen.leaks.is_empty(),
        "{what}: secret in argv/env: {:?}",
        seen.leaks
    );
    assert!(bad_modes.is_empty(), "{what}: modes: {bad_modes:?}");
    for pw in SECRETS {
        assert!(
            !run.stdout.contains(pw) && !run.stderr.contains(pw),
            "{what}: {pw} on the console"
        );
    }
    if let Some(log) = log {
        let text = std::fs::read_to_string(log).unwrap();
        for pw in SECRETS {
            assert!(!text.contains(pw), "{what}: {pw} in {}", log.display());
        }
        assert_eq!(mode(log), 0o600, "{what}: log mode");
    }
    run
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn no_password_in_argv_environment_console_logs_or_panics() {
    let s = Sample::start();
    let tmp = tempfile::tempdir().unwrap();
    let (dir, root) = (s.dir.path().to_path_buf(), s.root());
    let eb = |args: &[&str]| engine_backup(&dir, &root, tmp.path(), args);
    let hf = |args: &[&str]| holdfast(&dir, &root, tmp.path(), args);

    // Backup.
    watched(
        "backup",
        eb(&["--mode=backup", "--file=good", "--log=backup.log"]),
        tmp.path(),
        Some(&s.path("backup.log")),
    )
    .ok();
    assert_eq!(mode(&s.path("good")), 0o600, "archive mode");

    // Repository backup and restore.
    let pwfile = s.path("repo-password");
    std::fs::write(&pwfile, format!("{REPO_PW}\n")).unwrap();
    std::fs::set_permissions(&pwfile, std::fs::Permissions::from_mode(0o600)).unwrap();
    let repo = s.path("repo").display().to_string();
    let pw = pwfile.display().to_string();
    let tmps = tmp.path().display().to_string();
    let with_repo = |verb: &str, extra: &[&str]| {
        let mut a = vec!["repo", verb, "--repo", &repo, "--password-file", &pw];
        a.extend_from_slice(extra);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let args = with_repo("init", &[]);
    watched("repo init", hf(&refs(&args)), tmp.path(), None).ok();
    let args = with_repo("backup", &["--tmpdir", &tmps]);
    watched("repo backup", hf(&refs(&args)), tmp.path(), None).ok();
    s.clean_databases();
    let args = with_repo(
        "restore",
        &["latest", "--restore-permissions", "--tmpdir", &tmps],
    );
    watched("repo restore", hf(&refs(&args)), tmp.path(), None).ok();

    // Restore with changed credentials (a passfile, never argv).
    s.clean_databases();
    s.cluster.create_role("engine2", NEW_PW).unwrap();
    s.cluster.create_database("engine2", "engine2").unwrap();
    let passfile = s.path("db-pass");
    std::fs::write(&passfile, format!("{NEW_PW}\n")).unwrap();
    std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o600)).unwrap();
    let port = format!("--db-port={}", s.cluster.port());
    let passarg = format!("--db-passfile={}", passfile.display());
    watched(
        "restore with changed credentials",
        eb(&[
            "--mode=restore",
            "--file=good",
            "--log=restore.log",
            "--no-restore-permissions",
            "--change-db-credentials",
            "--db-host=127.0.0.1",
            &port,
            "--db-user=engine2",
            "--db-name=engine2",
            &passarg,
        ]),
        tmp.path(),
        Some(&s.path("restore.log")),
    )
    .ok();

    // Migrate the engine database (now engine2, with the new password) to a
    // second server, with an admin password through a passfile.
    let target = pgsandbox::Cluster::start().unwrap();
    target
        .execute(
            "postgres",
            &format!("CREATE ROLE admin SUPERUSER LOGIN PASSWORD '{ADMIN_PW}'"),
        )
        .unwrap();
    let admin_pass = s.path("admin-pass");
    std::fs::write(&admin_pass, format!("{ADMIN_PW}\n")).unwrap();
    std::fs::set_permissions(&admin_pass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let to_port = target.port().to_string();
    let admin_pass = admin_pass.display().to_string();
    let migrate_log = s.path("migrate.log");
    watched(
        "migrate",
        hf(&[
            "migrate",
            "--log",
            "migrate.log",
            "--scope",
            "db",
            "--to-host",
            "127.0.0.1",
            "--to-port",
            &to_port,
            "--admin-user",
            "admin",
            "--admin-passfile",
            &admin_pass,
        ]),
        tmp.path(),
        Some(&migrate_log),
    )
    .ok();
    assert_eq!(leftovers(tmp.path()), Vec::<String>::new());

    // A panic that formats connection parameters shows no password.
    let params = tcp(&s.cluster, "engine2", NEW_PW, "engine2");
    let panicked = std::panic::catch_unwind(|| panic!("forced: {params:?}")).unwrap_err();
    let text = panicked
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(text.contains("engine2") && !text.contains(NEW_PW), "{text}");
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Secret variables set in holdfast's environment, each with a value that
/// can only come from there.
const SECRET_VARIABLES: &[(&str, &str)] = &[
    ("HOLDFAST_REPO_PASSWORD", "leak-holdfast-repo-4b1"),
    ("HOLDFAST_REST_PASSWORD", "leak-holdfast-rest-9c2"),
    ("RESTIC_PASSWORD", "leak-restic-5d3"),
    ("RESTIC_REST_PASSWORD", "leak-restic-rest-1e4"),
    ("AWS_SECRET_ACCESS_KEY", "leak-aws-secret-7f5"),
    ("AWS_SESSION_TOKEN", "leak-aws-token-2a6"),
    ("OVIRT_ENGINE_DB_PASSWORD", "leak-ovirt-db-3b7"),
    ("OVIRT_ENGINE_DWH_DB_PASSWORD", "leak-ovirt-dwh-8c8"),
    ("PGPASSWORD", "leak-pgpassword-6d9"),
];

/// Run `cmd` with the secret variables set; no descendant may hold one of
/// their values in its environment or argv.
fn without_secret_variables(what: &str, mut cmd: std::process::Command) -> Run {
    for (name, value) in SECRET_VARIABLES {
        cmd.env(name, value);
    }
    let values: Vec<&str> = SECRET_VARIABLES.iter().map(|(_, v)| *v).collect();
    let started = start(cmd);
    let watch = Watch::descendants(started.pid(), &values);
    let (run, _) = started.finish(LIMIT);
    let seen = watch.finish();
    let programs: Vec<&String> = seen.programs.keys().collect();
    eprintln!(
        "{what}: exit {}, {} descendants sampled: {programs:?}",
        run.code, seen.processes
    );
    assert!(seen.processes > 0, "{what}: no child seen");
    assert!(
        seen.leaks.is_empty(),
        "{what}: a secret variable reached a child: {:?}",
        seen.leaks
    );
    run
}

#[test]
fn no_secret_variable_reaches_a_child_program() {
    let s = Sample::start();
    let tmp = tempfile::tempdir().unwrap();
    let (dir, root) = (s.dir.path().to_path_buf(), s.root());
    let eb = |args: &[&str]| engine_backup(&dir, &root, tmp.path(), args);
    let hf = |args: &[&str]| holdfast(&dir, &root, tmp.path(), args);
    let run = without_secret_variables("backup", hf(&["backup", "--file", "good"]));
    run.ok();
    // Deep verify: pg_restore, psql and the throwaway cluster's server.
    let run = without_secret_variables("verify --deep", hf(&["verify", "--deep", "good"]));
    run.ok();
    let seen_postgres = run.stdout.contains("Deep verify");
    assert!(seen_postgres, "{}", run.stdout);
    s.clean_databases();
    let run = without_secret_variables(
        "restore",
        eb(&[
            "--mode=restore",
            "--file=good",
            "--log=restore.log",
            "--restore-permissions",
            "--db-restore-jobs=4",
        ]),
    );
    run.ok();
}
