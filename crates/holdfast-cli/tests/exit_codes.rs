//! The exit statuses `holdfast --help` documents, pinned: 0 success, 1
//! failure, 2 usage error, 3 completed with warnings, 130 and 143 interrupted
//! by SIGINT and SIGTERM. engine-backup keeps oVirt's 0 and 1.

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

#[test]
fn help_documents_the_exit_statuses() {
    let out = Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for line in [
        "Exit status:",
        "0        success",
        "1        failure",
        "2        usage error",
        "3        completed with warnings",
        "130/143  interrupted by SIGINT/SIGTERM",
    ] {
        assert!(help.contains(line), "{line:?} not in --help:\n{help}");
    }
    let out = Command::new(engine_backup_bin())
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("Exit status:"), "{help}");
}

#[test]
fn success_failure_usage_and_warnings() {
    let s = Sample::start();
    // 2: bad input, nothing done.
    let usage = s.holdfast(&["verify", "no-such.backup"]);
    assert_eq!(usage.code, 2, "{}", usage.stderr);
    let usage = s.holdfast(&["backup", "--no-such-option"]);
    assert_eq!(usage.code, 2, "{}", usage.stderr);
    // engine-backup: oVirt's 1 for the same.
    let eb = s.engine_backup(&["--mode=verify", "--file=no-such.backup"]);
    assert_eq!(eb.code, 1, "{}", eb.stderr);
    let eb = s.engine_backup(&["--mode=backup", "--no-such-option"]);
    assert_eq!(eb.code, 1, "{}", eb.stderr);

    // 0: done and checked.
    s.holdfast(&["backup", "--scope", "db", "--file", "db.backup"])
        .ok();
    s.holdfast(&["verify", "db.backup"]).ok();

    // 1: an operation failed.
    let damaged = s.path("damaged.backup");
    let mut bytes = std::fs::read(s.path("db.backup")).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&damaged, bytes).unwrap();
    let failed = s.holdfast(&["verify", "damaged.backup"]);
    assert_eq!(failed.code, 1, "{}", failed.stderr);

    // 3: done, with a warning (the archive holds no files to restore).
    s.clean_databases();
    let warned = s.holdfast(&[
        "restore",
        "--file",
        "db.backup",
        "--scope",
        "files",
        "--scope",
        "db",
        "--restore-permissions",
        "--log",
        "warned.log",
    ]);
    assert_eq!(warned.code, 3, "{}\n{}", warned.stdout, warned.stderr);
    assert!(
        warned
            .stderr
            .contains("WARNING: the archive holds nothing for scope 'files'"),
        "{}",
        warned.stderr
    );
    assert!(
        warned.stderr.contains("completed with 1 warning;"),
        "{}",
        warned.stderr
    );
    let log = std::fs::read_to_string(s.path("warned.log")).unwrap();
    assert!(
        log.lines()
            .last()
            .unwrap()
            .ends_with("Outcome: completed with 1 warning (exit 3); see the WARNING lines"),
        "{log}"
    );
    // The same restore through engine-backup: oVirt's 0.
    s.clean_databases();
    s.engine_backup(&[
        "--mode=restore",
        "--file=db.backup",
        "--scope=files",
        "--scope=db",
        "--restore-permissions",
        "--log=eb-warned.log",
    ])
    .ok();
}

/// The pid of a `program` whose parent is `parent`, if one runs.
fn child_named(parent: u32, program: &str) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let name = &stat[stat.find('(').unwrap_or(0) + 1..close];
        let ppid = stat[close + 2..]
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if name == program && ppid == Some(parent) {
            return Some(pid);
        }
    }
    None
}

/// A backup whose pg_dump waits for a lock another session holds, stopped
/// by `signal` once pg_dump runs: exit status 128 + the signal's number, and
/// the log says so last.
fn interrupted_backup(s: &Sample, signal: &str, status: i32) {
    let log = s.path(&format!("{signal}.log"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .args(["backup", "--file", "held.backup", "--log"])
        .arg(&log)
        .current_dir(s.dir.path())
        .env("HOLDFAST_INSTALL_ROOT", s.root())
        .env("HOLDFAST_INSTALLED_VERSION", VERSION)
        .env("HOLDFAST_PROFILE", "ovirt-engine")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child_named(child.id(), "pg_dump").is_none() {
        assert!(Instant::now() < deadline, "pg_dump did not start");
        assert!(child.try_wait().unwrap().is_none(), "holdfast ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    // pg_dump is now waiting for the table lock.
    std::thread::sleep(Duration::from_millis(300));
    Command::new("kill")
        .args([format!("-{signal}"), child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        assert!(Instant::now() < deadline, "holdfast did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(code, Some(status), "{stderr}");
    assert!(
        stderr.contains(&format!("interrupted by SIG{signal}")),
        "{stderr}"
    );
    assert!(!s.path("held.backup").exists());
    let text = std::fs::read_to_string(&log).unwrap();
    let last = text.lines().last().unwrap();
    assert!(
        last.contains(&format!(
            "Outcome: interrupted by SIG{signal} (exit {status}): "
        )),
        "{text}"
    );
}

#[test]
fn interrupted_runs_exit_130_and_143() {
    let s = Sample::start();
    s.cluster
        .execute("engine", "SET ROLE engine; CREATE TABLE held (i int)")
        .unwrap();
    let mut holder = holdfast::pg::connect(&s.engine("engine")).unwrap();
    holder
        .batch_execute("BEGIN; LOCK TABLE held IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    interrupted_backup(&s, "INT", 130);
    interrupted_backup(&s, "TERM", 143);
    holder.batch_execute("ROLLBACK").unwrap();
}
