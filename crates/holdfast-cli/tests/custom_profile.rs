//! A profile of the user's own (a Redmine-like application): nothing in holdfast
//! is specific to oVirt.

mod support;

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
exclude = ["**/pgdata"]
"#;

#[test]
fn backup_and_restore_with_a_user_profile() {
    let c = pgsandbox::Cluster::start().unwrap();
    c.create_role("tracker", "tr@ck:er \"pw\" $x").unwrap();
    c.create_database("tracker", "tracker").unwrap();
    let app = tcp(&c, "tracker", "tr@ck:er \"pw\" $x", "tracker");
    let mut client = holdfast::pg::connect(&app).unwrap();
    client
        .batch_execute(
            "CREATE TABLE issues (id serial PRIMARY KEY, title text, body jsonb);
             INSERT INTO issues (title, body) SELECT 'issue ' || g, jsonb_build_object('n', g) FROM generate_series(1, 500) g;",
        )
        .unwrap();
    drop(client);
    let before = checksums(&app);

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("etc/tracker")).unwrap();
    std::fs::create_dir_all(root.join("opt/tracker/pgdata")).unwrap();
    std::fs::write(root.join("opt/tracker/VERSION"), "5.1.2\n").unwrap();
    std::fs::write(root.join("opt/tracker/pgdata/PG_VERSION"), "15\n").unwrap();
    std::fs::write(
        root.join("etc/tracker/db.conf"),
        format!(
            "# tracker database\nTRACKER_DB_HOST=127.0.0.1\nTRACKER_DB_PORT={}\nTRACKER_DB_USER=tracker\nTRACKER_DB_PASSWORD={}\nTRACKER_DB_DATABASE=tracker\n",
            c.port(),
            holdfast::conf::quote_value("tr@ck:er \"pw\" $x")
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("tracker.toml"), PROFILE).unwrap();

    let holdfast = |args: &[&str]| {
        let mut all = vec![
            args[0].to_string(),
            "--profile".into(),
            "tracker.toml".into(),
            "--install-root".into(),
            root.display().to_string(),
        ];
        all.extend(args[1..].iter().map(|s| s.to_string()));
        run(env!("CARGO_BIN_EXE_holdfast"), &all, dir.path())
    };
    holdfast(&["backup", "--file", "t.backup"]).ok();
    let names = members(&dir.path().join("t.backup"));
    assert!(names.contains(&"db/tracker.db".to_string()), "{names:?}");
    let reader =
        holdfast::archive::ArchiveReader::open(&dir.path().join("t.backup"), Default::default())
            .unwrap();
    assert_eq!(reader.version(), "5.1.2");
    assert_eq!(
        std::fs::read_to_string(reader.member_path("config").unwrap()).unwrap(),
        "TRACKER_DB_DUMP_COMPRESSOR=zstd\nTRACKER_DB_DUMP_FORMAT=custom\n"
    );
    // The profile's exclusion kept the application's pgdata out of the files member.
    let scratch = tempfile::tempdir().unwrap();
    let plan = holdfast::archive::FilesPlan::new(
        &reader.member_path("files").unwrap(),
        scratch.path(),
        &[],
        Default::default(),
    )
    .unwrap();
    let paths: Vec<String> = plan
        .entries()
        .iter()
        .map(|e| e.path.display().to_string())
        .collect();
    assert!(
        paths.contains(&"etc/tracker/db.conf".to_string()),
        "{paths:?}"
    );
    assert!(paths.iter().all(|p| !p.contains("pgdata")), "{paths:?}");
    drop(reader);
    holdfast(&["verify", "--deep", "t.backup"]).ok();

    c.execute("postgres", "DROP DATABASE tracker").unwrap();
    c.create_database("tracker", "tracker").unwrap();
    holdfast(&["restore", "--file", "t.backup", "--restore-permissions"]).ok();
    assert_eq!(checksums(&app), before);
}

/// Issue 14, defect 7: a directory holding an oVirt archive and two archives of
/// a user profile is pruned group by group (profile and host): `--keep-last 1`
/// keeps the newest of each, not the newest of them all.
#[test]
fn prune_archives_judges_each_profile_and_host_on_its_own() {
    let s = Sample::start();
    let c = &s.cluster;
    c.create_role("tracker", "tracker-pw").unwrap();
    c.create_database("tracker", "tracker").unwrap();
    let root = s.path("tracker-root");
    std::fs::create_dir_all(root.join("etc/tracker")).unwrap();
    std::fs::create_dir_all(root.join("opt/tracker")).unwrap();
    std::fs::write(root.join("opt/tracker/VERSION"), "5.1.2\n").unwrap();
    std::fs::write(
        root.join("etc/tracker/db.conf"),
        format!(
            "TRACKER_DB_HOST=127.0.0.1\nTRACKER_DB_PORT={}\nTRACKER_DB_USER=tracker\nTRACKER_DB_PASSWORD=tracker-pw\nTRACKER_DB_DATABASE=tracker\n",
            c.port()
        ),
    )
    .unwrap();
    std::fs::write(s.path("tracker.toml"), PROFILE).unwrap();
    let archives = s.path("archives");
    std::fs::create_dir(&archives).unwrap();
    let tracker_backup = |name: &str| {
        let file = archives.join(name).display().to_string();
        let args: Vec<String> = [
            "backup",
            "--profile",
            "tracker.toml",
            "--install-root",
            root.to_str().unwrap(),
            "--file",
            &file,
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        run(env!("CARGO_BIN_EXE_holdfast"), &args, s.dir.path()).ok();
    };
    // Recorded times one second apart at least: tracker, tracker, then oVirt.
    tracker_backup("tracker-1.backup");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    tracker_backup("tracker-2.backup");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let ovirt = archives.join("engine.backup").display().to_string();
    s.holdfast(&["backup", "--file", &ovirt]).ok();

    let dir = archives.to_str().unwrap();
    let dry = s.holdfast(&["prune-archives", dir, "--keep-last", "1", "--dry-run"]);
    dry.ok();
    assert!(
        dry.stdout
            .contains("archives of profile ovirt-engine, host "),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("archives of profile tracker, host "),
        "{}",
        dry.stdout
    );
    s.holdfast(&["prune-archives", dir, "--keep-last", "1"])
        .ok();
    let mut left: Vec<String> = std::fs::read_dir(&archives)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["engine.backup", "tracker-2.backup"]);
}
