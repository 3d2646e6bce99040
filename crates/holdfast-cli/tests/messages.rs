//! Messages in the words of the face the user typed, one clear line each:
//! the native face never suggests an engine-backup option; a file that is
//! not an archive says so; names taken from files cannot break lines; a REST
//! server's refusals say what they mean; the application-running refusal
//! says its line once.

mod support;

use std::path::Path;
use std::process::Command;

use support::*;

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

/// Deterministic bytes that are no archive (and no compressed stream).
fn random_bytes(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = vec![b'R', b'N', b'D'];
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

#[test]
fn the_native_face_names_only_its_own_options() {
    let s = Sample::start();
    s.holdfast(&["backup", "--file", "x.backup"]).ok();
    s.clean_databases();
    // The configured password no longer opens the database.
    s.cluster
        .execute("postgres", "ALTER ROLE engine PASSWORD 'changed-meanwhile'")
        .unwrap();
    let native = s.holdfast(&["restore", "--file", "x.backup", "--restore-permissions"]);
    native.fails_with("Can't connect to database 'engine'");
    assert!(
        !native.stderr.contains("--change-"),
        "the native face suggests an engine-backup option:\n{}",
        native.stderr
    );
    let eb = s.engine_backup(&[
        "--mode=restore",
        "--file=x.backup",
        "--log=r.log",
        "--restore-permissions",
    ]);
    eb.fails_with("Can't connect to database 'engine'");
    assert!(
        eb.stderr
            .contains("(or pass --change-db-credentials to restore into another database)"),
        "{}",
        eb.stderr
    );

    // Zero jobs: refused by both faces alike, each in its own words.
    let native = s.holdfast(&[
        "restore",
        "--file",
        "x.backup",
        "--restore-permissions",
        "--jobs",
        "0",
    ]);
    native.fails_with("must be at least 1; pass --jobs 1 or more");
    assert_eq!(native.code, 2, "a usage error");
    let eb = s.engine_backup(&[
        "--mode=restore",
        "--file=x.backup",
        "--log=r0.log",
        "--restore-permissions",
        "--db-restore-jobs=0",
    ]);
    eb.fails_with("FATAL: invalid number of jobs\nFATAL: failed parsing jobs\n");
}

#[test]
fn random_bytes_are_not_an_archive() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("junk"), random_bytes(64 * 1024)).unwrap();
    let want = "not a holdfast or engine-backup archive";
    for args in [
        vec!["verify", "junk"],
        vec![
            "restore",
            "--file",
            "junk",
            "--restore-permissions",
            "--installed-version",
            VERSION,
        ],
    ] {
        let r = holdfast_in(dir.path(), &args, &[]);
        r.fails_with(want);
        let line = r.stderr.trim_end();
        assert_eq!(line.lines().count(), 1, "{line}");
        assert!(
            line.chars().all(|c| c.is_ascii_graphic() || c == ' '),
            "mojibake: {line:?}"
        );
    }
    let r = run(
        engine_backup_bin(),
        &[
            "--mode=verify".into(),
            "--file=junk".into(),
            "--log=v.log".into(),
        ],
        dir.path(),
    );
    r.fails_with(want);
}

#[test]
fn prune_archives_escapes_what_it_quotes_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let archives = dir.path().join("archives");
    std::fs::create_dir(&archives).unwrap();
    // A tar header whose name holds a line break and whose checksum field
    // is not a number: the tar parser quotes the name in its error.
    let mut header = [0u8; 512];
    header[..16].copy_from_slice(b"x\nINJECTED line\n");
    header[148..156].copy_from_slice(b"zzzzzzz\0");
    let mut bytes = header.to_vec();
    bytes.extend_from_slice(&[0u8; 1024]);
    std::fs::write(archives.join("odd.backup"), bytes).unwrap();
    let r = holdfast_in(
        dir.path(),
        &[
            "prune-archives",
            "archives",
            "--keep-last",
            "1",
            "--dry-run",
        ],
        &[],
    );
    r.ok();
    assert!(r.stdout.contains("skipped"), "{}", r.stdout);
    assert!(
        !r.stdout.lines().any(|l| l.starts_with("INJECTED")),
        "a line break from the file reached the output:\n{}",
        r.stdout
    );
}

#[test]
fn rest_refusals_say_what_they_mean() {
    const WEB_PW: &str = "messages-web-password";
    let s = Sample::start();
    let server = RestServer::start(s.dir.path(), "nightly", WEB_PW);
    let location = server.location("nightly", "nightly");
    std::fs::write(s.path("repo-password"), "messages repo password\n").unwrap();
    let repo_as = |web_pw: &str, args: &[&str]| {
        let mut all = vec![
            "repo",
            args[0],
            "--repo",
            location.as_str(),
            "--password-file",
            "repo-password",
            "--retries",
            "0",
        ];
        all.extend_from_slice(&args[1..]);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_holdfast"));
        cmd.args(&all)
            .current_dir(s.dir.path())
            .env("HOLDFAST_INSTALL_ROOT", s.root())
            .env("HOLDFAST_INSTALLED_VERSION", VERSION)
            .env("HOLDFAST_PROFILE", "ovirt-engine")
            .env("HOLDFAST_REST_PASSWORD", web_pw);
        let o = cmd.output().unwrap();
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    };
    repo_as(WEB_PW, &["init"]).ok();
    repo_as(WEB_PW, &["backup"]).ok();

    // 401: the user or password, not a missing repository.
    let refused = repo_as("not-the-web-password", &["snapshots"]);
    refused.fails_with("the REST server refused the user or password");
    assert!(!refused.stderr.contains("repo init"), "{}", refused.stderr);
    assert!(!refused.stderr.contains("not-the-web-password"));

    // 403 from an append-only server: says so.
    let forget = repo_as(WEB_PW, &["forget", "--keep-last", "0"]);
    forget.fails_with("append-only");
    assert!(
        !forget.stderr.contains("please check the logs"),
        "{}",
        forget.stderr
    );
}

#[test]
fn a_running_application_is_reported_in_one_line_said_once() {
    let s = Sample::start();
    s.holdfast(&["backup", "--file", "x.backup"]).ok();
    s.clean_databases();
    // Something whose command line says ovirt-engine.py, in the pid file.
    let mut engine = Command::new("sh")
        .args(["-c", "sleep 120", "ovirt-engine.py"])
        .spawn()
        .unwrap();
    let pid_file = s.root().join("var/lib/ovirt-engine/engine.up");
    std::fs::create_dir_all(pid_file.parent().unwrap()).unwrap();
    std::fs::write(&pid_file, format!("{}\n", engine.id())).unwrap();
    let native = s.holdfast(&["restore", "--file", "x.backup", "--restore-permissions"]);
    let eb = s.engine_backup(&[
        "--mode=restore",
        "--file=x.backup",
        "--log=r.log",
        "--restore-permissions",
    ]);
    let _ = engine.kill();
    let _ = engine.wait();
    native.fails_with("Engine service is active - can not restore backup");
    assert!(
        native
            .stderr
            .lines()
            .any(|l| l == "holdfast: error: Engine service is active - can not restore backup"),
        "{}",
        native.stderr
    );
    // engine-backup's own line, as oVirt prints it.
    assert!(
        eb.stderr
            .lines()
            .any(|l| l == "FATAL: Engine service is active - can not restore backup"),
        "{}",
        eb.stderr
    );
}
