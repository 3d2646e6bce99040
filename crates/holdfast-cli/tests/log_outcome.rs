//! Every `holdfast` run given `--log` leaves a log whose last line is the
//! outcome, the exit status and the reason, whatever step failed: a database
//! that refuses the password, a damaged archive, a wrong repository password,
//! a REST server that is not there, a command line that does not parse.

mod support;

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use support::*;

const REPO_PASSWORD: &str = "log-outcome repository password";

/// The message part of the log's last line (after `YYYY-mm-dd HH:MM:SS pid: `).
fn last_line(log: &Path) -> String {
    let text = std::fs::read_to_string(log)
        .unwrap_or_else(|e| panic!("no log file {}: {e}", log.display()));
    let last = text.lines().last().unwrap_or("").to_string();
    let (_, message) = last
        .split_once(": ")
        .unwrap_or_else(|| panic!("not a log line: {last:?}\n{text}"));
    message.to_string()
}

#[track_caller]
fn assert_last_line(log: &Path, outcome: &str, reason: &str) {
    let line = last_line(log);
    assert!(
        line.starts_with(outcome) && line.contains(reason),
        "last line of {} should start with {outcome:?} and contain {reason:?}: {line:?}",
        log.display()
    );
}

/// `holdfast ARGS` in `dir` with extra environment variables.
fn holdfast_in(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_holdfast"));
    cmd.args(args).current_dir(dir);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let o = cmd.output().expect("run holdfast");
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

#[test]
fn backup_refused_by_the_database_logs_the_reason() {
    let s = Sample::start();
    s.cluster
        .execute(
            "postgres",
            "ALTER ROLE engine PASSWORD 'not-the-configured-one'",
        )
        .unwrap();
    let log = s.path("backup.log");
    let run = s.holdfast(&[
        "backup",
        "--file",
        "x.backup",
        "--log",
        log.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_last_line(
        &log,
        "Outcome: failed (exit 1): ",
        "password authentication failed",
    );
    assert!(!s.path("x.backup").exists());

    // And a success says so last.
    s.cluster
        .execute("postgres", "ALTER ROLE engine PASSWORD 'engine-fixture-pw'")
        .unwrap();
    let ok = s.path("ok.log");
    s.holdfast(&[
        "backup",
        "--file",
        "x.backup",
        "--log",
        ok.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(last_line(&ok), "Outcome: success (exit 0)");
}

#[test]
fn restore_of_a_damaged_archive_logs_the_reason() {
    let s = Sample::start();
    s.holdfast(&["backup", "--file", "x.backup"]).ok();
    // Flip one byte in the middle of the archive (inside a dump).
    let path = s.path("x.backup");
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    s.clean_databases();
    let log = s.path("restore.log");
    let run = s.holdfast(&[
        "restore",
        "--file",
        "x.backup",
        "--restore-permissions",
        "--log",
        log.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_last_line(&log, "Outcome: failed (exit 1): ", "x.backup");
    let reason = last_line(&log);
    let stderr_reason = run
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("holdfast: error: "))
        .unwrap_or_else(|| panic!("no error line: {}", run.stderr));
    assert!(
        reason.ends_with(stderr_reason),
        "the log's reason {reason:?} is not the console's {stderr_reason:?}"
    );
}

#[test]
fn a_wrong_repository_password_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let repo = repo.to_str().unwrap();
    holdfast_in(
        dir.path(),
        &["repo", "init", "--repo", repo],
        &[("HOLDFAST_REPO_PASSWORD", REPO_PASSWORD)],
    )
    .ok();
    let log = dir.path().join("nightly.log");
    let run = holdfast_in(
        dir.path(),
        &[
            "repo",
            "backup",
            "--repo",
            repo,
            "--log",
            log.to_str().unwrap(),
        ],
        &[("HOLDFAST_REPO_PASSWORD", "not the password")],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_last_line(
        &log,
        "Outcome: usage error (exit 2): ",
        "wrong password for the repository",
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("not the password"), "{text}");
}

#[test]
fn a_rest_server_that_is_down_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let location = format!("rest:http://nightly@127.0.0.1:{port}/nightly/");
    let log = dir.path().join("nightly.log");
    let run = holdfast_in(
        dir.path(),
        &[
            "repo",
            "backup",
            "--repo",
            &location,
            "--retries",
            "0",
            "--log",
            log.to_str().unwrap(),
        ],
        &[
            ("HOLDFAST_REPO_PASSWORD", REPO_PASSWORD),
            ("HOLDFAST_REST_PASSWORD", "rest-password-not-logged"),
        ],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_last_line(
        &log,
        "Outcome: failed (exit 1): ",
        &format!("reach {location}"),
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("rest-password-not-logged"), "{text}");
}

#[test]
fn argument_errors_are_logged() {
    let dir = tempfile::tempdir().unwrap();
    // Refused by the command-line parser.
    let log = dir.path().join("parse.log");
    let run = holdfast_in(
        dir.path(),
        &[
            "backup",
            "--log",
            log.to_str().unwrap(),
            "--file",
            "x.backup",
            "--no-such-option",
        ],
        &[],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_last_line(&log, "Outcome: usage error (exit 2): ", "--no-such-option");
    // Refused while interpreting the arguments (the profile does not exist).
    let log = dir.path().join("profile.log");
    let run = holdfast_in(
        dir.path(),
        &[
            "backup",
            "--profile",
            "no-such-profile.toml",
            "--file",
            "x.backup",
            "--log",
            log.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_last_line(
        &log,
        "Outcome: usage error (exit 2): ",
        "profile 'no-such-profile.toml'",
    );
}
