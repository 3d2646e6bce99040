//! Verify and restore read an archive with the profile it was made with: the
//! manifest names it (and the file it came from); a different `--profile` is
//! refused; and no verify succeeds while a database of the archive went
//! unchecked.

mod support;

use std::path::{Path, PathBuf};

use pgsandbox::Cluster;
use support::*;

const PROFILE: &str = r#"
name = "tracker"
description = "An issue tracker with one database"
[version]
file = "opt/tracker/VERSION"
[config]
sources = ["etc/tracker/db.conf"]
[[databases]]
scope = "db"
label = "Tracker"
key_prefix = "TRACKER_DB_"
option_prefix = "db"
member = "db/tracker.db"
archive_config_prefix = "TRACKER_DB_"
conf_files = ["etc/tracker/db.conf"]
[files]
include = ["etc/tracker", "opt/tracker"]
"#;

const PASSWORD: &str = "tracker-pw";

/// A tracker install (one database, one table) and its archive, made with
/// `--profile profiles/tracker.toml`.
struct Tracker {
    cluster: Cluster,
    dir: tempfile::TempDir,
}

impl Tracker {
    fn start() -> Tracker {
        let cluster = Cluster::start().unwrap();
        cluster.create_role("tracker", PASSWORD).unwrap();
        cluster.create_database("tracker", "tracker").unwrap();
        let mut client =
            holdfast::pg::connect(&tcp(&cluster, "tracker", PASSWORD, "tracker")).unwrap();
        client
            .batch_execute(
                "CREATE TABLE issues (id serial PRIMARY KEY, title text);
                 INSERT INTO issues (title) SELECT 'issue ' || g FROM generate_series(1, 200) g;",
            )
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc/tracker")).unwrap();
        std::fs::create_dir_all(root.join("opt/tracker")).unwrap();
        std::fs::write(root.join("opt/tracker/VERSION"), "5.1.2\n").unwrap();
        std::fs::write(
            root.join("etc/tracker/db.conf"),
            format!(
                "TRACKER_DB_HOST=127.0.0.1\nTRACKER_DB_PORT={}\nTRACKER_DB_USER=tracker\nTRACKER_DB_PASSWORD={PASSWORD}\nTRACKER_DB_DATABASE=tracker\n",
                cluster.port()
            ),
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("profiles")).unwrap();
        std::fs::write(dir.path().join("profiles/tracker.toml"), PROFILE).unwrap();
        let t = Tracker { cluster, dir };
        t.holdfast(&[
            "backup",
            "--profile",
            "profiles/tracker.toml",
            "--file",
            "t.backup",
        ])
        .ok();
        t
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn root(&self) -> PathBuf {
        self.path("root")
    }

    /// `holdfast ARGS --install-root ROOT` in the temporary directory.
    fn holdfast(&self, args: &[&str]) -> Run {
        holdfast_in_root(self.dir.path(), &self.root(), args)
    }

    fn app(&self) -> holdfast::pg::ConnParams {
        tcp(&self.cluster, "tracker", PASSWORD, "tracker")
    }
}

#[track_caller]
fn refused(run: &Run, text: &str) {
    assert_eq!(
        run.code, 2,
        "expected a usage error; stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    assert!(
        run.stderr.contains(text),
        "{text:?} not in:\n{}",
        run.stderr
    );
    assert!(!run.stdout.contains("Done."), "{}", run.stdout);
}

#[test]
fn verify_uses_the_profile_the_archive_was_made_with() {
    let t = Tracker::start();
    // No --profile: the manifest's, read from the file it recorded.
    let plain = t.holdfast(&["verify", "t.backup"]);
    plain.ok();
    assert!(
        plain.stdout.contains("database 'tracker'"),
        "the tracker database was not checked:\n{}",
        plain.stdout
    );
    assert!(!plain.stderr.contains("WARNING"), "{}", plain.stderr);
    let deep = t.holdfast(&["verify", "--deep", "t.backup"]);
    deep.ok();
    assert!(
        deep.stdout
            .contains("1 table restored and compared, all equal"),
        "{}",
        deep.stdout
    );

    // Another profile named explicitly: refused, saying which one is needed.
    refused(
        &t.holdfast(&["verify", "--profile", "ovirt-engine", "t.backup"]),
        "was made with profile 'tracker'",
    );
    refused(
        &t.holdfast(&["verify", "--deep", "--profile", "ovirt-engine", "t.backup"]),
        "profiles/tracker.toml",
    );

    // The recorded profile file is gone: refused, not verified with another.
    std::fs::rename(t.path("profiles"), t.path("moved")).unwrap();
    refused(
        &t.holdfast(&["verify", "t.backup"]),
        "which no longer exists); pass --profile FILE",
    );
    // Given explicitly from its new place, it verifies.
    t.holdfast(&["verify", "--profile", "moved/tracker.toml", "t.backup"])
        .ok();
}

#[test]
fn engine_backup_verify_of_another_applications_archive_is_not_a_success() {
    let t = Tracker::start();
    // engine-backup's face reads with the ovirt-engine profile, which knows
    // no db/tracker.db: that dump cannot be verified, so neither is the archive.
    let all: Vec<String> = vec![
        "--mode=verify".into(),
        "--file=t.backup".into(),
        "--log=verify.log".into(),
    ];
    let run = run(engine_backup_bin(), &all, t.dir.path());
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("not verified: db/tracker.db"),
        "{}",
        run.stderr
    );
    assert!(!run.stdout.contains("Done."), "{}", run.stdout);
}

#[test]
fn restore_uses_the_archive_profile_and_refuses_another() {
    let t = Tracker::start();
    let before = checksums(&t.app());
    t.cluster
        .execute("postgres", "DROP DATABASE tracker")
        .unwrap();
    t.cluster.create_database("tracker", "tracker").unwrap();
    let conf = t.root().join("etc/tracker/db.conf");
    let conf_before = std::fs::read(&conf).unwrap();

    refused(
        &t.holdfast(&[
            "restore",
            "--profile",
            "ovirt-engine",
            "--file",
            "t.backup",
            "--restore-permissions",
        ]),
        "was made with profile 'tracker'",
    );
    assert_eq!(std::fs::read(&conf).unwrap(), conf_before);
    assert!(checksums(&t.app()).is_empty());

    t.holdfast(&["restore", "--file", "t.backup", "--restore-permissions"])
        .ok();
    assert_eq!(checksums(&t.app()), before);
}

#[test]
fn the_manifest_records_where_a_file_profile_came_from() {
    let t = Tracker::start();
    let manifest = holdfast::archive::peek_manifest(&t.path("t.backup"))
        .expect("a holdfast archive has a manifest");
    assert_eq!(manifest.profile, "tracker");
    let source = manifest.profile_source.expect("profile_source recorded");
    assert!(Path::new(&source).is_absolute(), "{source}");
    assert_eq!(
        std::fs::canonicalize(&source).unwrap(),
        std::fs::canonicalize(t.path("profiles/tracker.toml")).unwrap()
    );
}

/// `holdfast ARGS` with `HOLDFAST_PROFILE` set, in the temporary directory.
fn with_profile_variable(t: &Tracker, profile: &str, args: &[&str]) -> Run {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.push("--install-root".into());
    all.push(t.root().display().to_string());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .args(&all)
        .current_dir(t.dir.path())
        .env("HOLDFAST_STATE_DIR", t.path("state"))
        .env("HOLDFAST_PROFILE", profile)
        .env_remove("HOLDFAST_INSTALL_ROOT")
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn a_backup_names_its_profile_and_an_archive_keeps_it() {
    let t = Tracker::start();
    // No --profile, no HOLDFAST_PROFILE: refused, listing the built-ins, and
    // nothing written.
    let r = t.holdfast(&["backup", "--file", "none.backup", "--log", "none.log"]);
    refused(
        &r,
        "no application profile given: pass --profile NAME|FILE or set HOLDFAST_PROFILE",
    );
    for builtin in [
        "ovirt-engine",
        "redmine",
        "alfresco",
        "keycloak",
        "gitea",
        "synapse",
    ] {
        assert!(
            r.stderr.contains(builtin),
            "{builtin} not listed: {}",
            r.stderr
        );
    }
    assert!(!r.stderr.contains("--scope"), "{}", r.stderr);
    assert!(!t.path("none.backup").exists());
    let log = std::fs::read_to_string(t.path("none.log")).unwrap();
    assert!(
        log.lines()
            .last()
            .unwrap()
            .contains("no application profile given"),
        "{log}"
    );
    // The environment variable names it as --profile does.
    with_profile_variable(
        &t,
        "profiles/tracker.toml",
        &["backup", "--file", "env.backup"],
    )
    .ok();
    assert!(t.path("env.backup").is_file());
    // Verify and restore read the archive's own profile even when the
    // variable names another application's (a nightly job's setting).
    let v = with_profile_variable(&t, "redmine", &["verify", "env.backup"]);
    v.ok();
    assert!(v.stdout.contains("Done."), "{}", v.stdout);
    // --profile typed on the command line is still checked against it.
    refused(
        &t.holdfast(&["verify", "--profile", "redmine", "env.backup"]),
        "was made with profile 'tracker'",
    );
}
