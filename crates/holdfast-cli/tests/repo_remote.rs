//! `holdfast repo` at remote locations: an S3 bucket on a real S3-compatible
//! server (moto, from PyPI, installed by scripts/ensure-moto) on loopback,
//! and REST locations that must parse, keep their password out of argv and
//! output, and fail quickly and clearly when the server is not there.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

const PASSWORD: &str = "correct horse battery staple";
const S3_KEY_ID: &str = MOTO_KEY_ID;
const S3_SECRET: &str = MOTO_SECRET;
const REST_SECRET: &str = "rest-secret-that-must-not-show";
const BUCKET: &str = "holdfast-nightly";

/// `holdfast ARGS` in `dir` with the install root `dir/root`, the S3 keys
/// and `extra_env`, and without any repository variable of the caller.
fn holdfast_in(dir: &Path, args: &[&str], extra_env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_holdfast"));
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .env("HOLDFAST_INSTALL_ROOT", dir.join("root"))
        .env("HOLDFAST_INSTALLED_VERSION", VERSION)
        .env("HOLDFAST_PROFILE", "ovirt-engine")
        .env("AWS_ACCESS_KEY_ID", S3_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", S3_SECRET)
        .env("AWS_DEFAULT_REGION", "us-east-1");
    for var in [
        "HOLDFAST_REPOSITORY",
        "RESTIC_REPOSITORY",
        "HOLDFAST_REPO",
        "HOLDFAST_REPO_PASSWORD",
        "HOLDFAST_REST_PASSWORD",
        "RESTIC_REST_PASSWORD",
        "RESTIC_REST_USERNAME",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run holdfast");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[track_caller]
fn assert_secret_hidden(run: &Run, secret: &str) {
    assert!(
        !run.stdout.contains(secret) && !run.stderr.contains(secret),
        "secret shown:\n{}\n{}",
        run.stdout,
        run.stderr
    );
}

fn without_notifications(
    mut sums: std::collections::BTreeMap<String, (i64, String)>,
) -> std::collections::BTreeMap<String, (i64, String)> {
    // The notification hook writes rows around every backup.
    sums.remove("public.engine_backup_log");
    sums
}

#[test]
fn s3_repository_on_a_moto_server_backs_up_and_restores() {
    let s = Sample::start();
    let moto = Moto::start(&s.path("moto.log"));
    moto.create_bucket(BUCKET);
    let location = format!("s3:{}/{BUCKET}/nightly", moto.endpoint());
    let password_file = s.path("repo-password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let pw = password_file.to_str().unwrap();
    let repo = |verb: &str, extra: &[&str]| {
        let mut args = vec![
            "repo",
            verb,
            "--repo",
            location.as_str(),
            "--password-file",
            pw,
        ];
        args.extend_from_slice(extra);
        holdfast_in(s.dir.path(), &args, &[])
    };

    let clock = Instant::now();
    let init = repo("init", &[]);
    init.ok();
    assert!(
        init.stdout
            .contains(&format!("Created repository {location}")),
        "{}",
        init.stdout
    );
    repo("init", &[]).fails_with(&format!("{location} already holds a repository"));

    let engine_before = without_notifications(checksums(&s.engine("engine")));
    let dwh_before = checksums(&s.dwh("ovirt_engine_history"));
    let backup = repo("backup", &["--log", "s3-backup.log"]);
    backup.ok();
    assert!(backup.stdout.contains(&location), "{}", backup.stdout);

    // The location from restic's variable, the password from ours.
    let listing = holdfast_in(
        s.dir.path(),
        &["repo", "snapshots"],
        &[
            ("RESTIC_REPOSITORY", location.as_str()),
            ("HOLDFAST_REPO_PASSWORD", PASSWORD),
        ],
    );
    listing.ok();
    assert!(
        listing.stdout.contains("1 snapshot(s)") && listing.stdout.contains("profile:ovirt-engine"),
        "{}",
        listing.stdout
    );
    let wrong = s.path("wrong-password");
    std::fs::write(&wrong, "not it\n").unwrap();
    holdfast_in(
        s.dir.path(),
        &[
            "repo",
            "snapshots",
            "--repo",
            location.as_str(),
            "--password-file",
            wrong.to_str().unwrap(),
        ],
        &[],
    )
    .fails_with(&format!("wrong password for the repository {location}"));
    let elsewhere = format!("s3:{}/{BUCKET}/elsewhere", moto.endpoint());
    holdfast_in(
        s.dir.path(),
        &["repo", "snapshots", "--repo", elsewhere.as_str()],
        &[("HOLDFAST_REPO_PASSWORD", PASSWORD)],
    )
    .fails_with(&format!("{elsewhere} is not a repository"));
    eprintln!("init, backup, listing: {:?}", clock.elapsed());

    s.clean_databases();
    let restored = repo(
        "restore",
        &["latest", "--restore-permissions", "--log", "s3-restore.log"],
    );
    restored.ok();
    assert_eq!(
        without_notifications(checksums(&s.engine("engine"))),
        without_notifications(expected_after_restore(&engine_before))
    );
    assert_eq!(checksums(&s.dwh("ovirt_engine_history")), dwh_before);
    repo("check", &["--read-data"]).ok();
    eprintln!("restore and check: {:?}", clock.elapsed());

    for run in [&init, &backup, &listing, &restored] {
        assert_secret_hidden(run, S3_SECRET);
    }
    for log in ["s3-backup.log", "s3-restore.log"] {
        let text = std::fs::read_to_string(s.path(log)).unwrap();
        assert!(!text.contains(S3_SECRET), "secret in {log}");
    }
}

#[test]
fn rest_locations_keep_the_password_hidden_and_fail_fast_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let port = free_port();
    let shown = format!("rest:http://alice@127.0.0.1:{port}/alice/");

    // A password in the URL on the command line: refused before any network use.
    let in_url = format!("rest:http://alice:{REST_SECRET}@127.0.0.1:{port}/alice/");
    let refused = holdfast_in(
        dir,
        &["repo", "snapshots", "--repo", in_url.as_str()],
        &[("HOLDFAST_REPO_PASSWORD", PASSWORD)],
    );
    refused.fails_with("HOLDFAST_REST_PASSWORD");
    assert!(refused.stderr.contains(&shown), "{}", refused.stderr);
    assert_secret_hidden(&refused, REST_SECRET);

    // Nothing listens: a clear error naming the location, within the retries'
    // back-off (1 + 2 + 4 s by default), not a hang.
    let clock = Instant::now();
    let anonymous = shown.replace("alice@", "");
    let closed = holdfast_in(
        dir,
        &["repo", "snapshots", "--repo", anonymous.as_str()],
        &[
            ("HOLDFAST_REPO_PASSWORD", PASSWORD),
            ("HOLDFAST_REST_PASSWORD", REST_SECRET),
            ("RESTIC_REST_USERNAME", "alice"),
        ],
    );
    let took = clock.elapsed();
    closed.fails_with(&format!("reach {shown}"));
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert_secret_hidden(&closed, REST_SECRET);
    assert_eq!(closed.stderr.trim().lines().count(), 1, "{}", closed.stderr);

    // From restic's variable the password may sit in the URL; still never shown.
    // `repo init` reaches the server too, and --retries 0 fails at once.
    let password_file = dir.join("rest-password");
    std::fs::write(&password_file, format!("{REST_SECRET}\n")).unwrap();
    let clock = Instant::now();
    let init = holdfast_in(
        dir,
        &["repo", "init", "--retries", "0"],
        &[
            ("RESTIC_REPOSITORY", in_url.as_str()),
            ("HOLDFAST_REPO_PASSWORD", PASSWORD),
        ],
    );
    init.fails_with(&format!("reach {shown}"));
    assert!(
        clock.elapsed() < Duration::from_secs(5),
        "{:?}",
        clock.elapsed()
    );
    assert_secret_hidden(&init, REST_SECRET);
    holdfast_in(
        dir,
        &[
            "repo",
            "init",
            "--retries",
            "0",
            "--repo",
            shown.as_str(),
            "--rest-password-file",
            password_file.to_str().unwrap(),
        ],
        &[("HOLDFAST_REPO_PASSWORD", PASSWORD)],
    )
    .fails_with(&format!("reach {shown}"));
}

#[test]
fn rest_repository_through_holdfast_serve_backs_up_restores_and_stays_append_only() {
    const WEB_PW: &str = "nightly-web-password";
    let s = Sample::start();
    let server = RestServer::start(s.dir.path(), "nightly", WEB_PW);
    let location = server.location("nightly", "nightly");
    let password_file = s.path("repo-password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let pw = password_file.to_str().unwrap();
    let repo_as = |web_pw: &str, verb: &str, extra: &[&str]| {
        let mut args = vec![
            "repo",
            verb,
            "--repo",
            location.as_str(),
            "--password-file",
            pw,
            "--retries",
            "0",
        ];
        args.extend_from_slice(extra);
        holdfast_in(s.dir.path(), &args, &[("HOLDFAST_REST_PASSWORD", web_pw)])
    };
    let repo = |verb: &str, extra: &[&str]| repo_as(WEB_PW, verb, extra);

    let init = repo("init", &[]);
    init.ok();
    let engine_before = without_notifications(checksums(&s.engine("engine")));
    let dwh_before = checksums(&s.dwh("ovirt_engine_history"));
    let first = repo("backup", &["--log", "rest-backup.log"]);
    first.ok();
    repo("backup", &["--log", "rest-backup2.log"]).ok();
    let listing = repo("snapshots", &[]);
    listing.ok();
    assert!(
        listing.stdout.contains("2 snapshot(s)"),
        "{}",
        listing.stdout
    );

    // The server is append-only: forgetting a snapshot must fail, and both stay.
    let forget = repo("forget", &["--keep-last", "1"]);
    assert_ne!(
        forget.code, 0,
        "forget through an append-only server succeeded"
    );
    assert!(repo("snapshots", &[]).ok().stdout.contains("2 snapshot(s)"));

    // A wrong web password is refused clearly, without showing it.
    let refused = repo_as("not-the-web-password", "snapshots", &[]);
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains(&location), "{}", refused.stderr);
    assert_secret_hidden(&refused, "not-the-web-password");

    s.clean_databases();
    let restored = repo(
        "restore",
        &[
            "latest",
            "--restore-permissions",
            "--log",
            "rest-restore.log",
        ],
    );
    restored.ok();
    assert_eq!(
        without_notifications(checksums(&s.engine("engine"))),
        without_notifications(expected_after_restore(&engine_before))
    );
    assert_eq!(checksums(&s.dwh("ovirt_engine_history")), dwh_before);
    for run in [&init, &first, &listing, &forget, &restored] {
        assert_secret_hidden(run, WEB_PW);
    }
    for log in ["rest-backup.log", "rest-restore.log"] {
        let text = std::fs::read_to_string(s.path(log)).unwrap();
        assert!(!text.contains(WEB_PW), "web password in {log}");
    }
}
