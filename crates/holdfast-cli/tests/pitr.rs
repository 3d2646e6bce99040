//! Continuous archiving and point-in-time recovery (issue 19), end to end on
//! a real cluster: `archive_command` is `holdfast wal push` with the
//! repository and a password file given as a user would; base backups with
//! `holdfast repo backup --physical`; restores to a time, a named restore
//! point and an LSN, each checked row by row against marked transactions; the
//! refusals change nothing; restic reads every pack afterwards. A second
//! test restores a profile's files as they were at the target time (from a
//! whole-environment snapshot, without its dumps) and
//! recovers a second time along the timeline the first recovery started,
//! then again from a REST server and from an S3 bucket (moto). A
//! third takes the base backup from a streaming standby of a cluster with a
//! tablespace, restores the tablespace elsewhere, and refuses a base backup
//! of a major version no installed server has.
//!
//! Every holdfast and PostgreSQL program runs as the server's user (the
//! repository is that user's), as archive_command itself does.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use pgsandbox::{Cluster, ServerUser};

mod faults_support;
mod support;

const HOLDFAST: &str = env!("CARGO_BIN_EXE_holdfast");

fn server_user() -> Option<ServerUser> {
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1)
        == 0
    {
        Some(pgsandbox::lookup_user("postgres").expect("a postgres user"))
    } else {
        None
    }
}

/// A directory the server's user owns.
fn owned_dir(parent: &Path, name: &str, user: Option<&ServerUser>) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    if let Some(u) = user {
        std::os::unix::fs::chown(&dir, Some(u.uid), Some(u.gid)).unwrap();
    }
    dir
}

struct Env {
    cluster: Cluster,
    /// `holdfast wal push …` with this test's repository and spool.
    archive_command: String,
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    user: Option<ServerUser>,
}

impl Env {
    fn repo(&self) -> PathBuf {
        self.dir.join("repo")
    }
    fn password_file(&self) -> PathBuf {
        self.dir.join("repo-password")
    }

    /// A program run as the server's user, with nothing of our environment.
    fn as_server(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("LANG", "C")
            .current_dir(&self.dir)
            .stdin(Stdio::null());
        // The server's user's home is the work directory (the restore journal's state lives there).
        cmd.env("HOME", &self.dir);
        if let Some(u) = &self.user {
            cmd.uid(u.uid).gid(u.gid);
        }
        cmd
    }

    /// `holdfast ARGS --repo R --password-file F`, as the server's user.
    fn holdfast(&self, args: &[&str]) -> Output {
        self.as_server(HOLDFAST)
            .args(args)
            .arg("--repo")
            .arg(self.repo())
            .arg("--password-file")
            .arg(self.password_file())
            .output()
            .unwrap()
    }

    fn sql(&self, sql: &str) -> String {
        self.cluster
            .query_text("postgres", sql)
            .unwrap()
            .unwrap_or_default()
    }

    fn pgbench(&self, args: &[&str]) {
        let out = self
            .as_server(&self.cluster.bindir().join("pgbench").to_string_lossy())
            .args(["-h", &self.cluster.socket_dir().to_string_lossy()])
            .args(["-p", &self.cluster.port().to_string(), "-U", "postgres"])
            .args(args)
            .arg("postgres")
            .output()
            .unwrap();
        assert!(out.status.success(), "pgbench: {}", text(&out));
    }

    fn base_backup(&self) -> String {
        let out = self.holdfast(&[
            "repo",
            "backup",
            "--physical",
            "--host",
            &self.cluster.socket_dir().to_string_lossy(),
            "--port",
            &self.cluster.port().to_string(),
            "--user",
            "postgres",
        ]);
        assert!(out.status.success(), "base backup: {}", text(&out));
        text(&out)
    }

    /// Insert mark `before`, then `after`, and return the server's time
    /// between the two commits.
    fn time_between_marks(&self, before: i32, after: i32) -> String {
        let mark = |id: i32| {
            self.cluster
                .execute("postgres", &format!("INSERT INTO marks (id) VALUES ({id})"))
                .unwrap()
        };
        mark(before);
        std::thread::sleep(Duration::from_millis(300));
        let between = self.sql("SELECT clock_timestamp()::text");
        std::thread::sleep(Duration::from_millis(300));
        mark(after);
        between
    }

    /// Switch to a new segment and wait until the archiver has pushed it.
    fn switch_and_wait_archived(&self) {
        let segment = self.sql("SELECT pg_walfile_name(pg_switch_wal())");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let last = self.sql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver");
            if last.as_str() >= segment.as_str() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{segment} was not archived within 60 s (last {last}): {}",
                self.cluster.server_log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn start() -> Env {
    let user = server_user();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = owned_dir(tmp.path(), "work", user.as_ref());
    let password_file = dir.join("repo-password");
    std::fs::write(&password_file, "pitr-test-password\n").unwrap();
    std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    if let Some(u) = &user {
        std::os::unix::fs::chown(&password_file, Some(u.uid), Some(u.gid)).unwrap();
    }
    let q = |p: &Path| format!("'{}'", p.display());
    let archive_command = format!(
        "{} wal push %p --repo {} --password-file {} --spool {}",
        q(Path::new(HOLDFAST)),
        q(&dir.join("repo")),
        q(&password_file),
        q(&dir.join("spool"))
    );
    let cluster = Cluster::builder()
        .durable()
        .setting("fsync", "off")
        .setting("wal_level", "replica")
        .setting("archive_mode", "on")
        .setting("archive_command", &archive_command)
        .setting("max_wal_senders", "4")
        .start()
        .expect("start cluster");
    // pg_basebackup's replication connection, as an administrator allows it.
    let hba = cluster.data_dir().join("pg_hba.conf");
    let mut rules = std::fs::read_to_string(&hba).unwrap();
    rules.push_str("\nlocal replication all trust\n");
    std::fs::write(&hba, rules).unwrap();
    cluster
        .execute("postgres", "SELECT pg_reload_conf()")
        .unwrap();
    let env = Env {
        cluster,
        archive_command,
        _tmp: tmp,
        dir,
        user,
    };
    let out = env.holdfast(&["repo", "init"]);
    assert!(out.status.success(), "repo init: {}", text(&out));
    env
}

/// A restored server, stopped when dropped.
struct Restored {
    pgdata: PathBuf,
    port: u16,
    bindir: PathBuf,
    user: Option<ServerUser>,
}

impl Restored {
    /// What `sql` returns on the restored server, one line per row.
    fn sql(&self, env: &Env, sql: &str) -> String {
        let out = env
            .as_server(&self.bindir.join("psql").to_string_lossy())
            .args(["-h", "/var/run/postgresql", "-p", &self.port.to_string()])
            .args(["-U", "postgres", "-At", "-d", "postgres"])
            .args(["-c", sql])
            .output()
            .unwrap();
        assert!(out.status.success(), "psql: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The marked rows the restored server has.
    fn marks(&self, env: &Env) -> Vec<i32> {
        self.sql(env, "SELECT id FROM marks ORDER BY id")
            .lines()
            .map(|l| l.trim().parse().unwrap())
            .collect()
    }
}

impl Drop for Restored {
    fn drop(&mut self) {
        let mut cmd = Command::new(self.bindir.join("pg_ctl"));
        cmd.arg("-D")
            .arg(&self.pgdata)
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(u) = &self.user {
            cmd.uid(u.uid).gid(u.gid);
        }
        let _ = cmd.status();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn restore(env: &Env, name: &str, target: &[&str]) -> (Restored, String) {
    let pgdata = env.dir.join(name);
    let port = free_port();
    let mut args = vec!["repo", "restore", "--physical", "--pgdata"];
    let pgdata_text = pgdata.to_string_lossy().into_owned();
    let port_text = port.to_string();
    args.push(&pgdata_text);
    args.extend(["--port", &port_text]);
    args.extend(target);
    let out = env.holdfast(&args);
    let restored = Restored {
        pgdata,
        port,
        bindir: env.cluster.bindir().to_path_buf(),
        user: env.user.clone(),
    };
    assert!(out.status.success(), "restore {target:?}: {}", text(&out));
    (restored, text(&out))
}

/// `repo restore --physical --pgdata PGDATA ARGS` is refused (exit 2)
/// saying `says`, and PGDATA is not created.
fn refused_restore(env: &Env, pgdata: &Path, args: &[&str], says: &str) {
    let pgdata_text = pgdata.to_string_lossy().into_owned();
    let mut all = vec!["repo", "restore", "--physical", "--pgdata", &pgdata_text];
    all.extend(args);
    let out = env.holdfast(&all);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains(says), "{}", text(&out));
    assert!(!pgdata.exists());
}

/// A 0600 file of the server's user holding `content`.
fn secret_file(env: &Env, name: &str, content: &str) -> PathBuf {
    let path = env.dir.join(name);
    std::fs::write(&path, content).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    if let Some(u) = &env.user {
        std::os::unix::fs::chown(&path, Some(u.uid), Some(u.gid)).unwrap();
    }
    path
}

/// A restore to time `at` from the remote `location`, reached with
/// `options`; it must bring back rows 1 and 10. Returns what it said too.
fn restore_from(
    env: &Env,
    name: &str,
    at: &str,
    location: &str,
    options: &[&str],
) -> (Restored, String) {
    let pgdata = env.dir.join(name);
    let port = free_port();
    let out = env
        .as_server(HOLDFAST)
        .args(["repo", "restore", "--physical", "--pgdata"])
        .arg(&pgdata)
        .args([
            "--port",
            &port.to_string(),
            "--to-time",
            at,
            "--repo",
            location,
        ])
        .args(options)
        .arg("--password-file")
        .arg(env.password_file())
        .output()
        .unwrap();
    let restored = Restored {
        pgdata,
        port,
        bindir: env.cluster.bindir().to_path_buf(),
        user: env.user.clone(),
    };
    assert!(
        out.status.success(),
        "restore from {location}: {}",
        text(&out)
    );
    assert_eq!(restored.marks(env), vec![1, 10], "{}", text(&out));
    (restored, text(&out))
}

/// restore_command names `option` with the spool's 0600 copy `kept`, and
/// neither the settings nor what the restore `said` hold the `secret`.
fn assert_secret_kept(
    (restored, said): &(Restored, String),
    option: &str,
    kept: &str,
    secret: &str,
) {
    use std::os::unix::fs::MetadataExt;
    assert!(!said.contains(secret), "{said}");
    let settings = std::fs::read_to_string(restored.pgdata.join("postgresql.auto.conf")).unwrap();
    assert!(settings.contains(option), "{settings}");
    assert!(!settings.contains(secret), "{settings}");
    let spool = restored.pgdata.with_file_name(format!(
        "{}.holdfast-wal",
        restored.pgdata.file_name().unwrap().to_string_lossy()
    ));
    assert_eq!(
        std::fs::metadata(spool.join(kept)).unwrap().mode() & 0o777,
        0o600
    );
}

#[test]
fn archive_base_backups_and_point_in_time_recovery() {
    let env = start();
    env.pgbench(&["-i", "-s", "1", "-q"]);
    env.cluster
        .execute(
            "postgres",
            "CREATE TABLE marks (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())",
        )
        .unwrap();

    // Data that does not change between base backups (frozen, so that no
    // hint bit is set later), as most of a real cluster's.
    env.cluster
        .execute(
            "postgres",
            "CREATE TABLE archive_rows AS SELECT g AS id, md5(g::text) AS a, md5((-g)::text) AS b \
             FROM generate_series(1, 300000) g",
        )
        .unwrap();
    env.cluster.execute("postgres", "VACUUM FREEZE").unwrap();

    // Two base backups around some work: the second stores far less.
    env.base_backup();
    env.pgbench(&["-t", "200", "-c", "1"]);
    let second = env.base_backup();
    let snapshots: serde_json::Value =
        serde_json::from_slice(&env.holdfast(&["repo", "snapshots", "--json"]).stdout).unwrap();
    let physical: Vec<&serde_json::Value> = snapshots["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s.to_string().contains("\"physical\""))
        .collect();
    assert_eq!(physical.len(), 2, "{second}");
    let figure = |s: &serde_json::Value, k: &str| s[k].as_u64().unwrap();
    eprintln!(
        "base backups: first read {} added {}, second read {} added {}",
        figure(physical[0], "source_bytes"),
        figure(physical[0], "added_bytes"),
        figure(physical[1], "source_bytes"),
        figure(physical[1], "added_bytes"),
    );
    assert!(
        figure(physical[1], "added_bytes") * 3 < figure(physical[1], "source_bytes"),
        "the second base backup should dedup most of its data: {second}"
    );

    // Marked transactions with known times, a restore point and an LSN between them.
    let between_1_and_2 = env.time_between_marks(1, 2);
    env.sql("SELECT pg_create_restore_point('after-2')::text");
    let lsn_after_2 = env.sql("SELECT pg_current_wal_insert_lsn()::text");
    std::thread::sleep(Duration::from_millis(300));
    env.cluster
        .execute("postgres", "INSERT INTO marks (id) VALUES (3)")
        .unwrap();
    env.pgbench(&["-T", "2", "-c", "2"]);
    env.switch_and_wait_archived();

    let (at_time, said) = restore(&env, "to-time", &["--to-time", &between_1_and_2]);
    eprintln!("{said}");
    assert!(said.contains("Recovered to"), "{said}");
    assert_eq!(at_time.marks(&env), vec![1], "{said}");
    drop(at_time);

    let (at_name, said) = restore(&env, "to-name", &["--to-name", "after-2"]);
    assert_eq!(at_name.marks(&env), vec![1, 2], "{said}");
    drop(at_name);

    let (at_lsn, said) = restore(&env, "to-lsn", &["--to-lsn", &lsn_after_2]);
    assert_eq!(at_lsn.marks(&env), vec![1, 2], "{said}");
    drop(at_lsn);

    // --no-start leaves it configured and stopped; the password is in no setting.
    let stopped = env.dir.join("no-start");
    let out = env.holdfast(&[
        "repo",
        "restore",
        "--physical",
        "--pgdata",
        &stopped.to_string_lossy(),
        "--to-name",
        "after-2",
        "--no-start",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let settings = std::fs::read_to_string(stopped.join("postgresql.auto.conf")).unwrap();
    assert!(settings.contains("wal fetch %f %p"), "{settings}");
    assert!(settings.contains("--password-file"), "{settings}");
    assert!(
        settings.contains("recovery_target_name = 'after-2'"),
        "{settings}"
    );
    assert!(!settings.contains("pitr-test-password"), "{settings}");
    assert!(stopped.join("recovery.signal").is_file());
    assert!(!stopped.join("postmaster.pid").exists());

    // The restore read ahead what recovery asks for first, and listed the archive.
    let restored_spool = env.dir.join("no-start.holdfast-wal");
    let listing = std::fs::read_to_string(restored_spool.join("archive-listing")).unwrap();
    let read_ahead: Vec<_> = std::fs::read_dir(restored_spool.join("in"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!read_ahead.is_empty());
    for file in &read_ahead {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            listing.lines().any(|l| l == name),
            "{name} not in {listing}"
        );
        std::fs::remove_file(file).unwrap();
    }
    // A fetch that cannot read the repository (here a wrong password; the
    // read-ahead removed) stops the recovery instead of passing for the end
    // of the archive.
    let spool_password = restored_spool.join("repository-password");
    std::fs::write(&spool_password, "not-the-password\n").unwrap();
    let server_log = env.dir.join("no-start.log");
    let out = env
        .as_server(&env.cluster.bindir().join("pg_ctl").to_string_lossy())
        .arg("-D")
        .arg(&stopped)
        .arg("-l")
        .arg(&server_log)
        .args([
            "-o",
            &format!("-p {}", free_port()),
            "-w",
            "-t",
            "60",
            "start",
        ])
        .output()
        .unwrap();
    let said = std::fs::read_to_string(&server_log).unwrap_or_default();
    assert!(!out.status.success(), "{}\n{said}", text(&out));
    assert!(said.contains("holdfast wal fetch: "), "{said}");
    assert!(said.contains("exit 255"), "{said}");
    assert!(said.contains("FATAL"), "{said}");
    assert!(!said.contains("ready to accept connections"), "{said}");
    assert!(!stopped.join("postmaster.pid").exists(), "{said}");

    // Refusals write nothing.
    let busy = owned_dir(&env.dir, "busy", env.user.as_ref());
    std::fs::write(busy.join("keep"), "mine").unwrap();
    let out = env.holdfast(&[
        "repo",
        "restore",
        "--physical",
        "--pgdata",
        &busy.to_string_lossy(),
        "--no-start",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("not empty"), "{}", text(&out));
    assert_eq!(std::fs::read_dir(&busy).unwrap().count(), 1);
    refused_restore(
        &env,
        &env.dir.join("too-early"),
        &["--to-time", "2001-01-01 00:00:00+00"],
        "recoverable window is",
    );
    refused_restore(
        &env,
        &env.dir.join("too-late"),
        &["--to-time", "2999-01-01 00:00:00+00"],
        "after the newest archived WAL",
    );

    // Push and fetch keep the repository's master key in the spool (0600),
    // sparing the key derivation; a damaged one is replaced through the password.
    use std::os::unix::fs::MetadataExt;
    let key_file = env.dir.join("spool/repository-key");
    let mode = std::fs::metadata(&key_file).expect("a kept key").mode();
    assert_eq!(mode & 0o777, 0o600);
    std::fs::write(&key_file, "{}").unwrap();
    env.cluster
        .execute("postgres", "CREATE TABLE key_probe ()")
        .unwrap();
    env.switch_and_wait_archived();
    assert_ne!(std::fs::read(&key_file).unwrap(), b"{}");

    // Push: the same content again succeeds, other content fails loudly.
    let segment = env.sql("SELECT pg_walfile_name(pg_current_wal_lsn() - 16777216)");
    let fake = owned_dir(&env.dir, "fake", env.user.as_ref());
    let wal_dir = owned_dir(&fake, "pg_wal", env.user.as_ref());
    let copy = wal_dir.join(&segment);
    let read_ahead = fake.join("read-ahead").to_string_lossy().into_owned();
    let out = env.holdfast(&[
        "wal",
        "fetch",
        &segment,
        &copy.to_string_lossy(),
        "--spool",
        &read_ahead,
    ]);
    assert!(out.status.success(), "fetch {segment}: {}", text(&out));
    let fresh_spool = fake.join("spool");
    let fresh = fresh_spool.to_string_lossy().into_owned();
    let out = env.holdfast(&["wal", "push", &copy.to_string_lossy(), "--spool", &fresh]);
    assert!(out.status.success(), "re-push: {}", text(&out));
    let out = env.holdfast(&["wal", "push", &copy.to_string_lossy(), "--spool", &fresh]);
    assert!(
        out.status.success(),
        "re-push from the record: {}",
        text(&out)
    );
    let mut bytes = std::fs::read(&copy).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&copy, &bytes).unwrap();
    for spool in [
        fresh.clone(),
        fake.join("other-spool").to_string_lossy().into_owned(),
    ] {
        let out = env.holdfast(&["wal", "push", &copy.to_string_lossy(), "--spool", &spool]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(said.lines().count(), 1, "{said}");
        assert!(
            said.contains("already archived with different content"),
            "{said}"
        );
    }

    // A segment the archive does not hold: exit 1, one line, nothing written.
    let missing = fake.join("missing");
    let out = env.holdfast(&[
        "wal",
        "fetch",
        "0000000100000000000000FE",
        &missing.to_string_lossy(),
        "--spool",
        &read_ahead,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
    assert!(!missing.exists());

    // The archive is continuous from both base backups ...
    let out = env.holdfast(&["wal", "check"]);
    assert!(out.status.success(), "wal check: {}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("continuous from")
            .count(),
        2,
        "{}",
        text(&out)
    );
    // Retention: --keep-pitr-within keeps the base backup the window needs ...
    let out = env.holdfast(&[
        "repo",
        "forget",
        "--keep-last",
        "1",
        "--keep-pitr-within",
        "1h",
        "--dry-run",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("(pitr-within)"), "{}", text(&out));
    assert!(
        text(&out).contains("2 kept, 0 would remove"),
        "{}",
        text(&out)
    );
    // ... and without it the older base backup and the WAL only it needed go.
    let wal_before = snapshots_json(&env).len();
    let out = env.holdfast(&["repo", "forget", "--keep-last", "1", "--prune"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("WAL: removed"), "{}", text(&out));
    assert!(snapshots_json(&env).len() < wal_before - 1);
    let out = env.holdfast(&["wal", "check"]);
    assert!(
        out.status.success(),
        "wal check after forget: {}",
        text(&out)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("continuous from")
            .count(),
        1,
        "{}",
        text(&out)
    );

    // restic reads and checks every pack.
    let out = env
        .as_server("restic")
        .arg("--repo")
        .arg(env.repo())
        .arg("--password-file")
        .arg(env.password_file())
        .args(["--no-cache", "check", "--read-data"])
        .output()
        .expect("run restic (scripts/ensure-restic installs it)");
    assert!(out.status.success(), "restic check: {}", text(&out));

    // ... until a WAL snapshot after the second goes: its segments are named.
    let second_start = physical[1]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|t| t.as_str()?.strip_prefix("start-wal:"))
        .unwrap()
        .to_string();
    // A newer segment in a snapshot of its own, so that the gap is inside the archive.
    env.cluster
        .execute("postgres", "INSERT INTO marks (id) VALUES (4)")
        .unwrap();
    env.switch_and_wait_archived();
    let newest = env.sql("SELECT last_archived_wal FROM pg_stat_archiver");
    let later_wal = snapshots_json(&env)
        .into_iter()
        .filter(|s| !s["tags"].to_string().contains(&newest))
        .find_map(|s| {
            let tags: Vec<String> = s["tags"]
                .as_array()?
                .iter()
                .filter_map(|t| Some(t.as_str()?.to_string()))
                .collect();
            let segment = tags.iter().find_map(|t| {
                let name = t.strip_prefix("wal:")?.split('@').next()?;
                (name.len() == 24 && name > second_start.as_str()).then(|| name.to_string())
            })?;
            Some((s["id"].as_str()?.to_string(), segment))
        });
    let (id, segment) = later_wal.expect("a WAL snapshot after the second base backup");
    let out = env
        .as_server("restic")
        .arg("--repo")
        .arg(env.repo())
        .arg("--password-file")
        .arg(env.password_file())
        .args(["--no-cache", "forget", &id])
        .output()
        .unwrap();
    assert!(out.status.success(), "restic forget: {}", text(&out));
    let out = env.holdfast(&["wal", "check"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&segment),
        "{}",
        text(&out)
    );
    // status is CRITICAL about the gap.
    let out = env.holdfast(&["status"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("missing segment"), "{}", text(&out));
}

fn snapshots_json(env: &Env) -> Vec<serde_json::Value> {
    let out = env.holdfast(&["repo", "snapshots", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["snapshots"].as_array().unwrap().clone()
}

/// The profile of the second test: configuration files only.
const SITE_PROFILE: &str = r#"
name = "site"
description = "The site's configuration files and its database"
[version]
unversioned = true
[config]
sources = ["etc/site/db.conf"]
[[databases]]
scope = "db"
label = "Site"
key_prefix = "SITE_DB_"
option_prefix = "db"
member = "db/site.db"
archive_config_prefix = "SITE_DB_"
conf_files = ["etc/site/db.conf"]
[files]
include = ["etc/site"]
"#;

#[test]
fn files_at_the_target_time_and_a_recovery_along_a_new_timeline() {
    let env = start();
    let root = owned_dir(&env.dir, "root", env.user.as_ref());
    let etc = owned_dir(
        &owned_dir(&root, "etc", env.user.as_ref()),
        "site",
        env.user.as_ref(),
    );
    let conf = etc.join("site.conf");
    let write_conf = |generation: u32| {
        std::fs::write(&conf, format!("generation = {generation}\n")).unwrap();
        if let Some(u) = &env.user {
            std::os::unix::fs::chown(&conf, Some(u.uid), Some(u.gid)).unwrap();
        }
    };
    // The site's database, whose dumps a whole-environment snapshot holds.
    env.cluster.create_role("site", "site-db-pw").unwrap();
    env.cluster.create_database("site", "site").unwrap();
    let db_conf = etc.join("db.conf");
    std::fs::write(
        &db_conf,
        format!(
            "SITE_DB_HOST=127.0.0.1\nSITE_DB_PORT={}\nSITE_DB_USER=site\nSITE_DB_PASSWORD=site-db-pw\nSITE_DB_DATABASE=site\n",
            env.cluster.port()
        ),
    )
    .unwrap();
    if let Some(u) = &env.user {
        std::os::unix::fs::chown(&db_conf, Some(u.uid), Some(u.gid)).unwrap();
    }
    let profile = env.dir.join("site.toml");
    std::fs::write(&profile, SITE_PROFILE).unwrap();
    let profile_text = profile.to_string_lossy().into_owned();
    let root_text = root.to_string_lossy().into_owned();
    let with_profile = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--profile", &profile_text, "--install-root", &root_text]);
        env.holdfast(&all)
    };
    let files_snapshot = || {
        let out = with_profile(&["repo", "backup", "--scope", "files"]);
        assert!(out.status.success(), "files snapshot: {}", text(&out));
    };
    env.cluster
        .execute(
            "postgres",
            "CREATE TABLE marks (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())",
        )
        .unwrap();

    // The archiving settings in the data directory, as a real cluster has
    // them (the sandbox passes its own on the command line): a restored
    // cluster goes on archiving into the same repository.
    for (name, value) in [
        ("wal_level", "replica"),
        ("archive_mode", "on"),
        ("archive_command", env.archive_command.as_str()),
    ] {
        env.cluster
            .execute(
                "postgres",
                &format!("ALTER SYSTEM SET {name} = '{}'", value.replace('\'', "''")),
            )
            .unwrap();
    }

    // Generation 1 goes into the base backup's snapshot, 2 and 3 into
    // snapshots of their own, with marked rows between them.
    write_conf(1);
    let socket = env.cluster.socket_dir().to_string_lossy().into_owned();
    let port = env.cluster.port().to_string();
    let out = with_profile(&[
        "repo",
        "backup",
        "--physical",
        "--host",
        &socket,
        "--port",
        &port,
        "--user",
        "postgres",
    ]);
    assert!(out.status.success(), "base backup: {}", text(&out));
    std::thread::sleep(Duration::from_millis(300));
    let after_base_backup = env.sql("SELECT clock_timestamp()::text");
    env.cluster
        .execute("postgres", "INSERT INTO marks (id) VALUES (1)")
        .unwrap();
    // Generation 2 in a whole-environment snapshot (its database dumped too):
    // the restore below takes only its files.
    write_conf(2);
    let out = with_profile(&["repo", "backup"]);
    assert!(out.status.success(), "whole snapshot: {}", text(&out));
    let said = text(&out);
    let whole_id = said
        .lines()
        .find_map(|l| l.split_once(" saved:")?.0.split_whitespace().last())
        .unwrap_or_else(|| panic!("no snapshot id in: {said}"))
        .to_string();
    std::thread::sleep(Duration::from_millis(300));
    let at_generation_2 = env.sql("SELECT clock_timestamp()::text");
    std::thread::sleep(Duration::from_millis(300));
    env.cluster
        .execute("postgres", "INSERT INTO marks (id) VALUES (2)")
        .unwrap();
    write_conf(3);
    files_snapshot();
    env.cluster
        .execute("postgres", "INSERT INTO marks (id) VALUES (3)")
        .unwrap();
    env.switch_and_wait_archived();

    // status: the window, the server's waiting WAL, the age of the newest WAL.
    let pgdata_text = env.cluster.data_dir().to_string_lossy().into_owned();
    let out = env.holdfast(&["status", "--json", "--pgdata", &pgdata_text]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let archive = &doc["continuous_archive"];
    assert_eq!(archive["base_backups"], 1, "{doc}");
    assert_eq!(archive["missing_segments"], 0, "{doc}");
    assert!(archive["recoverable_from"].is_string(), "{doc}");
    assert!(archive["recoverable_to"].is_string(), "{doc}");
    assert!(archive["server"]["ready_segments"].is_u64(), "{doc}");
    assert!(
        archive["server"]["pg_wal_bytes"].as_u64().unwrap() >= 16 << 20,
        "{doc}"
    );
    std::thread::sleep(Duration::from_millis(2100));
    let out = env.holdfast(&["status", "--crit-wal-age", "1s"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("newest WAL"), "{}", text(&out));
    assert!(text(&out).contains("wal_age="), "{}", text(&out));
    let out = env.holdfast(&["status", "--warn-wal-age", "1h"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("recoverable from"), "{}", text(&out));

    // --no-start without a time cannot know which files: refused, nothing written.
    let refused = env.dir.join("refused");
    let out = with_profile(&[
        "repo",
        "restore",
        "--physical",
        "--pgdata",
        &refused.to_string_lossy(),
        "--to-name",
        "nowhere",
        "--no-start",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("needs --to-time"), "{}", text(&out));
    assert!(!refused.exists());
    // Nowhere to keep the restore journal: refused before the first write.
    let out = env
        .as_server(HOLDFAST)
        .env("HOLDFAST_STATE_DIR", "/proc/holdfast-state")
        .args(["repo", "restore", "--physical", "--pgdata"])
        .arg(&refused)
        .args(["--to-time", &at_generation_2, "--profile", &profile_text])
        .args(["--install-root", &root_text, "--repo"])
        .arg(env.repo())
        .arg("--password-file")
        .arg(env.password_file())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("restore journal"), "{}", text(&out));
    assert!(!refused.exists());
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), "generation = 3\n");

    // Before the whole-environment snapshot, the files come from the base
    // backup's own (generation 1); --no-start restores them at once.
    let out = with_profile(&[
        "repo",
        "restore",
        "--physical",
        "--pgdata",
        &env.dir.join("not-started").to_string_lossy(),
        "--to-time",
        &after_base_backup,
        "--no-start",
    ]);
    assert!(out.status.success(), "restore, not started: {}", text(&out));
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        "generation = 1\n",
        "{}",
        text(&out)
    );

    // Recovery to a time between generations 2 and 3: the rows and the files of then.
    let pgdata = env.dir.join("first");
    let port = free_port();
    let out = with_profile(&[
        "repo",
        "restore",
        "--physical",
        "--pgdata",
        &pgdata.to_string_lossy(),
        "--port",
        &port.to_string(),
        "--to-time",
        &at_generation_2,
    ]);
    let first = Restored {
        pgdata,
        port,
        bindir: env.cluster.bindir().to_path_buf(),
        user: env.user.clone(),
    };
    assert!(out.status.success(), "restore with files: {}", text(&out));
    assert!(
        text(&out).contains(&format!("from snapshot {whole_id}")),
        "{whole_id}: {}",
        text(&out)
    );
    assert_eq!(first.marks(&env), vec![1], "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        "generation = 2\n",
        "{}",
        text(&out)
    );

    // The promoted server runs on timeline 2 and archives into the same repository.
    assert_eq!(
        first.sql(
            &env,
            "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"
        ),
        "00000002"
    );
    let xid = first.sql(
        &env,
        "WITH m AS (INSERT INTO marks (id) VALUES (10) RETURNING id) SELECT txid_current() FROM m",
    );
    std::thread::sleep(Duration::from_millis(300));
    let after_10 = first.sql(&env, "SELECT clock_timestamp()::text");
    std::thread::sleep(Duration::from_millis(300));
    first.sql(&env, "INSERT INTO marks (id) VALUES (11)");
    let segment = first.sql(&env, "SELECT pg_walfile_name(pg_switch_wal())");
    let deadline = Instant::now() + Duration::from_secs(60);
    while first.sql(
        &env,
        "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver",
    ) < segment
    {
        assert!(
            Instant::now() < deadline,
            "{segment} was not archived: {}",
            std::fs::read_to_string(env.dir.join("first.holdfast-wal/server.log"))
                .unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(first);
    let out = env.holdfast(&["wal", "check"]);
    assert!(
        out.status.success(),
        "wal check across timelines: {}",
        text(&out)
    );

    // A second recovery from the same base backup follows timeline 2: the row
    // of timeline 1 after the fork (2) is not there, the one of timeline 2 is.
    let (paused, said) = restore(&env, "second", &["--to-time", &after_10, "--pause"]);
    assert!(said.contains("paused at the target"), "{said}");
    assert_eq!(paused.marks(&env), vec![1, 10], "{said}");
    assert_eq!(paused.sql(&env, "SELECT pg_is_in_recovery()"), "t");
    drop(paused);
    let (by_xid, said) = restore(&env, "by-xid", &["--to-xid", &xid]);
    assert_eq!(by_xid.marks(&env), vec![1, 10], "{said}");
    drop(by_xid);

    // From a REST server with a password: restore_command reads it from a
    // 0600 file in the spool, never from argv or its environment.
    let server = support::RestServer::with_user(&env.dir, &env.dir, "pitr", "rest-secret-1");
    let rest_password = secret_file(&env, "rest-password", "rest-secret-1\n");
    let location = server.location("pitr", "repo");
    let options = ["--rest-password-file", &rest_password.to_string_lossy()];
    let from_rest = restore_from(&env, "from-rest", &after_10, &location, &options);
    assert_secret_kept(
        &from_rest,
        "--rest-password-file",
        "rest-password",
        "rest-secret-1",
    );
    drop(from_rest);

    // From an S3 bucket (a moto server), its keys given in a credentials
    // file: restore_command reads them from a 0600 copy in the spool.
    let moto = support::Moto::start(&env.dir.join("moto.log"));
    moto.create_bucket("pitr");
    let bucket = format!("s3:{}/pitr/repo", moto.endpoint());
    let with_keys = |args: &[&str]| {
        env.as_server(HOLDFAST)
            .env("AWS_ACCESS_KEY_ID", support::MOTO_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", support::MOTO_SECRET)
            .args(args)
            .arg("--password-file")
            .arg(env.password_file())
            .output()
            .unwrap()
    };
    let out = with_keys(&["repo", "init", "--repo", &bucket]);
    assert!(out.status.success(), "init the bucket: {}", text(&out));
    let repo_text = env.repo().to_string_lossy().into_owned();
    let password_text = env.password_file().to_string_lossy().into_owned();
    let out = with_keys(&[
        "repo",
        "copy",
        "--repo",
        &repo_text,
        "--to",
        &bucket,
        "--to-password-file",
        &password_text,
    ]);
    assert!(out.status.success(), "copy to the bucket: {}", text(&out));
    let keys = secret_file(
        &env,
        "s3-keys",
        &format!(
            "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            support::MOTO_KEY_ID,
            support::MOTO_SECRET
        ),
    );
    let options = ["--s3-credentials-file", &keys.to_string_lossy()];
    let from_s3 = restore_from(&env, "from-s3", &after_10, &bucket, &options);
    assert_secret_kept(
        &from_s3,
        "--s3-credentials-file",
        "s3-credentials",
        support::MOTO_SECRET,
    );
    drop(from_s3);
    let kept = env.dir.join("from-s3.holdfast-wal/s3-credentials");
    // The restore read ahead what this recovery needed; a segment it did not
    // comes from the bucket with the kept keys alone, as restore_command runs.
    let segment = env.sql("SELECT last_archived_wal FROM pg_stat_archiver");
    let fetched = env.dir.join("fetched-segment");
    let out = env
        .as_server(HOLDFAST)
        .args(["wal", "fetch", &segment])
        .arg(&fetched)
        .arg("--spool")
        .arg(env.dir.join("fetch-spool"))
        .args(["--repo", &bucket, "--s3-credentials-file"])
        .arg(&kept)
        .arg("--password-file")
        .arg(env.password_file())
        .output()
        .unwrap();
    assert!(out.status.success(), "wal fetch from S3: {}", text(&out));
    assert_eq!(std::fs::metadata(&fetched).unwrap().len(), 16 << 20);
}

#[test]
fn a_standby_s_base_backup_with_a_tablespace_and_a_backup_of_another_major() {
    let env = start();
    let socket = env.cluster.socket_dir().to_string_lossy().into_owned();
    let primary_port = env.cluster.port().to_string();
    let on_primary = owned_dir(&env.dir, "ts-primary", env.user.as_ref());
    let on_standby = env.dir.join("ts-standby");
    env.cluster
        .execute(
            "postgres",
            &format!("CREATE TABLESPACE app LOCATION '{}'", on_primary.display()),
        )
        .unwrap();
    env.cluster
        .execute(
            "postgres",
            "CREATE TABLE marks (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp()) TABLESPACE app; \
             CREATE TABLE untouched (id int) TABLESPACE app; \
             INSERT INTO marks (id) VALUES (1)",
        )
        .unwrap();

    // A streaming standby made as administrators make one, its tablespace elsewhere.
    let bindir = env.cluster.bindir().to_path_buf();
    let standby_dir = env.dir.join("standby");
    let out = env
        .as_server(&bindir.join("pg_basebackup").to_string_lossy())
        .args(["-h", &socket, "-p", &primary_port, "-U", "postgres", "-D"])
        .arg(&standby_dir)
        .args(["-R", "-X", "stream", "-T"])
        .arg(format!("{}={}", on_primary.display(), on_standby.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "pg_basebackup: {}", text(&out));
    let standby_port = free_port();
    let out = env
        .as_server(&bindir.join("pg_ctl").to_string_lossy())
        .arg("-D")
        .arg(&standby_dir)
        .arg("-l")
        .arg(env.dir.join("standby.log"))
        .arg("-o")
        .arg(format!(
            "-p {standby_port} -k /var/run/postgresql -c listen_addresses=''"
        ))
        .args(["-w", "start"])
        .output()
        .unwrap();
    assert!(out.status.success(), "start the standby: {}", text(&out));
    let standby = Restored {
        pgdata: standby_dir,
        port: standby_port,
        bindir: bindir.clone(),
        user: env.user.clone(),
    };
    assert_eq!(standby.sql(&env, "SELECT pg_is_in_recovery()"), "t");

    // The base backup comes from the standby; the primary archives the WAL.
    let out = env.holdfast(&[
        "repo",
        "backup",
        "--physical",
        "--host",
        "/var/run/postgresql",
        "--port",
        &standby_port.to_string(),
        "--user",
        "postgres",
    ]);
    assert!(
        out.status.success(),
        "base backup of the standby: {}",
        text(&out)
    );
    let between = env.time_between_marks(2, 3);
    env.switch_and_wait_archived();
    drop(standby);

    // Where the standby keeps the tablespace is not empty: refused, nothing written.
    let pgdata = env.dir.join("restored");
    refused_restore(
        &env,
        &pgdata,
        &["--to-time", &between],
        "--tablespace-map app=DIR",
    );
    refused_restore(
        &env,
        &pgdata,
        &["--tablespace-map", "elsewhere=/tmp/x"],
        "no tablespace 'elsewhere'",
    );
    // The tablespace's own file system must have room too (a 1 MiB tmpfs:
    // mounting it needs root, elsewhere this check is skipped).
    if let Some(small) = faults_support::SmallFs::mount("1m") {
        let cramped = small.path().join("app");
        refused_restore(
            &env,
            &pgdata,
            &[
                "--to-time",
                &between,
                "--tablespace-map",
                &format!("app={}", cramped.display()),
            ],
            "not enough free space for tablespace app",
        );
        assert!(!cramped.exists());
    }

    // Mapped to a new directory: the rows before the target, in the tablespace.
    let mapped = env.dir.join("ts-restored");
    let map = format!("app={}", mapped.display());
    let (restored, said) = restore(
        &env,
        "restored",
        &["--to-time", &between, "--tablespace-map", &map],
    );
    assert_eq!(restored.marks(&env), vec![1, 2], "{said}");
    assert_eq!(
        restored.sql(
            &env,
            "SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'app'"
        ),
        mapped.to_string_lossy()
    );
    assert_eq!(restored.sql(&env, "SELECT count(*) FROM untouched"), "0");
    assert_eq!(
        std::fs::read_link(
            restored
                .pgdata
                .join("pg_tblspc")
                .join(restored.sql(&env, "SELECT oid FROM pg_tablespace WHERE spcname = 'app'"))
        )
        .unwrap(),
        mapped
    );
    drop(restored);

    // A base backup of another major version (its tag rewritten with restic,
    // as if taken by an older server): refused before anything is written.
    let id = snapshots_json(&env)
        .into_iter()
        .find(|s| s["tags"].to_string().contains("\"physical\""))
        .and_then(|s| s["id"].as_str().map(str::to_string))
        .expect("the base backup");
    let major = format!("pg-major:{}", env.cluster.major());
    let out = env
        .as_server("restic")
        .arg("--repo")
        .arg(env.repo())
        .arg("--password-file")
        .arg(env.password_file())
        .args([
            "--no-cache",
            "tag",
            "--remove",
            &major,
            "--add",
            "pg-major:11",
            &id,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "restic tag: {}", text(&out));
    refused_restore(
        &env,
        &env.dir.join("other-major"),
        &[
            "--to-time",
            &between,
            "--tablespace-map",
            &format!("app={}", env.dir.join("ts-other").display()),
        ],
        "is of PostgreSQL 11, and no PostgreSQL 11 server is installed",
    );
    assert!(!env.dir.join("ts-other").exists());
}
