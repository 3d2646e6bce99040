//! Failures a user meets, and the password's path into client programs: a wrong
//! password, a stopped server, a server newer than every installed client, and
//! what a running pg_dump's argv and environment hold.

mod pg_support;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use holdfast::pg::{
    self, database_is_empty, dump_command, dump_database, restore_custom, restore_plain,
    DumpFormat, DumpOptions, PgTools, RestoreOptions,
};
use holdfast::Error;
use pg_support::tcp;
use pgsandbox::Cluster;

const APP_PW: &str = "right:pass\\word-7f3a";

fn app_cluster() -> (Cluster, PgTools) {
    let cluster = Cluster::start().expect("start cluster");
    cluster.create_role("app", APP_PW).unwrap();
    cluster.create_database("appdb", "app").unwrap();
    cluster
        .execute("appdb", "CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 100) g; ALTER TABLE t OWNER TO app")
        .unwrap();
    let version: i32 = cluster
        .query_text("postgres", "SHOW server_version_num")
        .unwrap()
        .unwrap()
        .parse()
        .unwrap();
    (cluster, PgTools::for_server(version).unwrap())
}

fn assert_one_line_failure(err: &Error, expected: &str) {
    let text = err.to_string();
    assert!(text.contains(expected), "{text}");
    assert!(!text.contains('\n'), "{text:?}");
    assert!(
        !text.contains(APP_PW) && !text.contains("wrong-secret-9b1c"),
        "{text}"
    );
}

#[test]
fn wrong_password_and_stopped_server_give_clear_errors() {
    let (mut cluster, tools) = app_cluster();
    let right = tcp(&cluster, "app", APP_PW, "appdb");
    let wrong = tcp(&cluster, "app", "wrong-secret-9b1c", "appdb");
    let dir = tempfile::tempdir().unwrap();
    let custom = dir.path().join("appdb.custom");
    dump_database(
        &right,
        &tools,
        &DumpOptions::uncompressed(DumpFormat::Custom),
        &mut std::fs::File::create(&custom).unwrap(),
    )
    .unwrap();

    let auth = "password authentication failed for user \"app\"";
    assert_one_line_failure(&pg::connect(&wrong).err().expect("refused"), auth);
    let mut sink = Vec::new();
    let err = dump_database(
        &wrong,
        &tools,
        &DumpOptions::uncompressed(DumpFormat::Plain),
        &mut sink,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Failed(_)), "{err:?}");
    assert_one_line_failure(&err, auth);
    assert!(sink.is_empty());
    let options = RestoreOptions {
        jobs: 1,
        restore_permissions: false,
        restore_owners: true,
    };
    assert_one_line_failure(
        &restore_custom(&wrong, &tools, &custom, &options).unwrap_err(),
        auth,
    );
    assert_one_line_failure(
        &restore_plain(&wrong, &tools, &mut "SELECT 1;\n".as_bytes()).unwrap_err(),
        auth,
    );

    cluster.stop_server().unwrap();
    let refused = "Connection refused";
    let err = dump_database(
        &right,
        &tools,
        &DumpOptions::uncompressed(DumpFormat::Plain),
        &mut sink,
    )
    .unwrap_err();
    assert_one_line_failure(&err, refused);
    assert_one_line_failure(&pg::connect(&right).err().expect("refused"), refused);
    assert_one_line_failure(
        &restore_custom(&right, &tools, &custom, &options).unwrap_err(),
        refused,
    );

    // A missing dump file is the user's mistake, said before anything runs.
    let err = restore_custom(&right, &tools, &dir.path().join("nope"), &options).unwrap_err();
    assert!(matches!(err, Error::Usage(_)), "{err:?}");
}

#[test]
fn password_reaches_pg_dump_only_through_the_pgpass_file() {
    let (cluster, tools) = app_cluster();
    // Variables that would break or redirect the dump if they reached pg_dump.
    std::env::set_var("PGPASSWORD", "wrong-secret-9b1c");
    std::env::set_var("PGSSLMODE", "verify-full");
    std::env::set_var("PGDATABASE", "no_such_database");
    std::env::set_var("PGOPTIONS", "-c default_transaction_read_only=maybe");

    let mut holder = cluster.connect("appdb").unwrap();
    holder
        .batch_execute("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let conn = tcp(&cluster, "app", APP_PW, "appdb");
    let cmd = dump_command(&conn, &tools, &DumpOptions::uncompressed(DumpFormat::Plain)).unwrap();
    let mut running = cmd.spawn(Stdio::null(), Stdio::piped()).unwrap();
    let pid = running.pid();

    // pg_dump has authenticated and waits for the lock.
    let mut watcher = cluster.connect("postgres").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let waiting: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = 'appdb' \
                 AND usename = 'app' AND wait_event_type = 'Lock'",
                &[],
            )
            .unwrap()
            .get(0);
        if waiting == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "pg_dump never waited for the lock"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let argv: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    assert!(argv[0].ends_with("pg_dump"), "{argv:?}");
    assert!(argv.contains(&"-w".to_string()));
    assert!(argv.iter().all(|a| !a.contains("right:pass")), "{argv:?}");

    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let env: Vec<String> = environ
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    assert!(env
        .iter()
        .all(|v| !v.contains("right:pass") && !v.contains("wrong-secret")));
    assert!(!env.iter().any(|v| v.starts_with("PGPASSWORD=")
        || v.starts_with("PGSSLMODE=")
        || v.starts_with("PGDATABASE=")
        || v.starts_with("PGOPTIONS=")));
    assert!(env.contains(&"LC_MESSAGES=C".to_string()));
    let pgpass = env
        .iter()
        .find_map(|v| v.strip_prefix("PGPASSFILE="))
        .expect("PGPASSFILE set")
        .to_string();
    let mode = std::fs::metadata(&pgpass).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        std::fs::read_to_string(&pgpass).unwrap(),
        format!(
            "127.0.0.1:{}:appdb:app:right\\:pass\\\\word-7f3a\n",
            cluster.port()
        )
    );

    holder.batch_execute("COMMIT").unwrap();
    let mut out = String::new();
    running
        .take_stdout()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let finished = running.wait().unwrap();
    assert!(finished.success(), "{}", finished.stderr);
    assert!(out.contains("COPY public.t (id) FROM stdin;"));
    assert!(
        !std::path::Path::new(&pgpass).exists(),
        "pgpass removed after the run"
    );
}

#[test]
fn client_tools_follow_the_server_version() {
    let newest = PgTools::newest().unwrap();
    let line = std::process::Command::new(newest.program("pg_dump"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&line.stdout).contains(&format!(" {}", newest.version)));
    assert_eq!(
        PgTools::for_server((newest.major * 10000) as i32).unwrap(),
        newest
    );
    let err = PgTools::for_server(((newest.major + 1) * 10000 + 2) as i32).unwrap_err();
    assert!(matches!(err, Error::Usage(_)));
    assert!(
        err.to_string()
            .contains(&format!("install postgresql-client-{}", newest.major + 1)),
        "{err}"
    );
}

/// A sink that accepts `limit` bytes, then fails like a full disk.
struct FailingSink {
    limit: usize,
    written: usize,
}

impl std::io::Write for FailingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.written + buf.len() > self.limit {
            return Err(std::io::Error::other("no space left (test sink)"));
        }
        self.written += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_failing_sink_stops_pg_dump() {
    let (cluster, tools) = app_cluster();
    cluster
        .execute("appdb", "INSERT INTO t SELECT generate_series(101, 200000)")
        .unwrap();
    let conn = tcp(&cluster, "app", APP_PW, "appdb");
    let mut sink = FailingSink {
        limit: 4096,
        written: 0,
    };
    let err = dump_database(
        &conn,
        &tools,
        &DumpOptions::uncompressed(DumpFormat::Plain),
        &mut sink,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("write the dump of database 'appdb'"),
        "{err}"
    );
    assert!(err.to_string().contains("no space left"), "{err}");
    // pg_dump was stopped: no session of it remains on the server.
    let deadline = Instant::now() + Duration::from_secs(10);
    while cluster
        .query_text(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'",
        )
        .unwrap()
        .as_deref()
        != Some("0")
    {
        assert!(Instant::now() < deadline, "pg_dump still connected");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A reader that yields `data`, then fails like a damaged compressed member.
struct FailingReader<'a> {
    data: &'a [u8],
}

impl Read for FailingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.data.is_empty() {
            return Err(std::io::Error::other("corrupt xz data (test reader)"));
        }
        let n = buf.len().min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn a_truncated_or_unreadable_plain_dump_restores_nothing() {
    let (cluster, tools) = app_cluster();
    let source = tcp(&cluster, "app", APP_PW, "appdb");
    let mut dump = Vec::new();
    dump_database(
        &source,
        &tools,
        &DumpOptions::uncompressed(DumpFormat::Plain),
        &mut dump,
    )
    .unwrap();
    let text = String::from_utf8(dump.clone()).unwrap();
    // Cut right after the table's data: everything before it is valid SQL.
    let cut = text.find("\\.\n").expect("COPY data in the dump") + 3;

    for (db, name) in [("truncated", "truncated"), ("unreadable", "unreadable")] {
        cluster.create_database(db, "app").unwrap();
        let conn = tcp(&cluster, "app", APP_PW, db);
        let err = if name == "truncated" {
            restore_plain(&conn, &tools, &mut &dump[..cut]).unwrap_err()
        } else {
            restore_plain(&conn, &tools, &mut FailingReader { data: &dump[..cut] }).unwrap_err()
        };
        let message = err.to_string();
        assert!(message.contains("nothing was restored"), "{message}");
        if name == "unreadable" {
            assert!(message.contains("corrupt xz data"), "{message}");
        }
        let mut client = pg::connect(&conn).unwrap();
        assert_eq!(database_is_empty(&mut client).unwrap(), None, "{db}");
    }

    // The whole dump restores.
    cluster.create_database("whole", "app").unwrap();
    let conn = tcp(&cluster, "app", APP_PW, "whole");
    restore_plain(&conn, &tools, &mut dump.as_slice()).unwrap();
    let mut client = pg::connect(&conn).unwrap();
    assert_eq!(
        database_is_empty(&mut client).unwrap().as_deref(),
        Some("table public.t")
    );
}

#[test]
fn a_socket_connection_authenticates_through_the_pgpass_file() {
    let (cluster, tools) = app_cluster();
    // Make `app` authenticate with its password on the socket too.
    let hba = cluster.data_dir().join("pg_hba.conf");
    let original = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(&hba, format!("local all app scram-sha-256\n{original}")).unwrap();
    cluster
        .execute("postgres", "SELECT pg_reload_conf()")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let mut conn = tcp(&cluster, "app", APP_PW, "appdb");
    conn.host = cluster.socket_dir().display().to_string();
    let mut out = Vec::new();
    dump_database(
        &conn,
        &tools,
        &DumpOptions::uncompressed(DumpFormat::Plain),
        &mut out,
    )
    .unwrap();
    assert!(String::from_utf8(out)
        .unwrap()
        .contains("COPY public.t (id) FROM stdin;"));

    conn.password = Some(holdfast::Password::new("wrong-secret-9b1c"));
    let err = dump_database(
        &conn,
        &tools,
        &DumpOptions::uncompressed(DumpFormat::Plain),
        &mut Vec::new(),
    )
    .unwrap_err();
    assert_one_line_failure(&err, "password authentication failed for user \"app\"");
}
