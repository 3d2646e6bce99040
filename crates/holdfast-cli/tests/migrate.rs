//! `holdfast migrate`: the sample environment's databases move to a second
//! cluster ("the remote server"), the copy is compared, the conf files point at
//! it, and `--rollback` points them back. Failures leave source, conf files and
//! target as they were.

mod support;

use support::*;

fn target() -> pgsandbox::Cluster {
    pgsandbox::Cluster::start().unwrap()
}

fn admin_socket(t: &pgsandbox::Cluster) -> Vec<String> {
    vec![
        "--admin-user".into(),
        "postgres".into(),
        "--admin-host".into(),
        t.socket_dir().display().to_string(),
    ]
}

fn migrate(s: &Sample, args: &[String]) -> Run {
    let mut all = vec!["migrate".to_string(), "--log".into(), "migrate.log".into()];
    all.extend(args.iter().cloned());
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    s.holdfast(&refs)
}

fn conf(s: &Sample) -> (String, String) {
    (
        std::fs::read_to_string(
            s.root()
                .join("etc/ovirt-engine/engine.conf.d/10-setup-database.conf"),
        )
        .unwrap(),
        std::fs::read_to_string(
            s.root()
                .join("etc/ovirt-engine-dwh/ovirt-engine-dwhd.conf.d/10-setup-database.conf"),
        )
        .unwrap(),
    )
}

#[test]
fn engine_and_dwh_databases_move_to_another_server_and_back() {
    let s = Sample::start();
    let t = target();
    let engine_before = checksums(&s.engine("engine"));
    let dwh_before = checksums(&s.dwh("ovirt_engine_history"));
    let conf_before = conf(&s);

    let mut args = vec![
        "--scope".into(),
        "db".into(),
        "--to-host".into(),
        "127.0.0.1".into(),
        "--to-port".into(),
        t.port().to_string(),
    ];
    args.extend(admin_socket(&t));
    let r = migrate(&s, &args);
    r.ok();
    assert!(
        r.stdout.contains("public.hosts")
            && r.stdout
                .contains("tables, sequences and objects equal on both sides"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("- extra user 'reporter'"),
        "the grantee is created on the target: {}",
        r.stdout
    );
    // The copy is complete, the source untouched, the application points at the target.
    assert_eq!(
        checksums(&tcp(&t, "engine", "engine-fixture-pw", "engine")),
        engine_before
    );
    assert_eq!(checksums(&s.engine("engine")), engine_before);
    let (engine_conf, dwh_conf) = conf(&s);
    assert!(
        engine_conf.contains(&format!("ENGINE_DB_PORT=\"{}\"", t.port())),
        "{engine_conf}"
    );
    assert!(
        dwh_conf.contains(&format!("ENGINE_DB_PORT=\"{}\"", t.port())),
        "the DWH conf carries the engine's credentials too"
    );
    assert!(
        dwh_conf.contains(&format!("DWH_DB_PORT=\"{}\"", s.cluster.port())),
        "DWH credentials unchanged"
    );
    let env = holdfast::profile::Environment::load(
        holdfast::profile::Profile::ovirt_engine(),
        holdfast::profile::InstallRoot::new(s.root()).unwrap(),
    )
    .unwrap();
    let engine = env
        .database_params(env.profile.database("db").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(
        (engine.port, engine.database.as_str()),
        (t.port(), "engine")
    );
    holdfast::pg::connect(&engine).expect("the application's credentials work on the target");

    // The DWH database into a role and empty database that already exist, without an admin.
    t.create_role("ovirt_engine_history", "dwh:fixture-pw")
        .unwrap();
    t.create_database("history_copy", "ovirt_engine_history")
        .unwrap();
    let r = migrate(
        &s,
        &[
            "--scope".into(),
            "dwhdb".into(),
            "--to-host".into(),
            "127.0.0.1".into(),
            "--to-port".into(),
            t.port().to_string(),
            "--to-name".into(),
            "history_copy".into(),
            "--jobs".into(),
            "1".into(),
        ],
    );
    r.ok();
    assert_eq!(
        checksums(&tcp(
            &t,
            "ovirt_engine_history",
            "dwh:fixture-pw",
            "history_copy"
        )),
        dwh_before
    );
    assert!(conf(&s).1.contains("DWH_DB_DATABASE=\"history_copy\""));

    // Roll both back: the conf files are as before the migrations.
    let journals: Vec<std::path::PathBuf> = {
        let mut j: Vec<_> = std::fs::read_dir(s.root().join("var/lib/ovirt-engine-backup"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().ends_with(".json"))
            .collect();
        j.sort();
        j
    };
    assert_eq!(journals.len(), 2, "{journals:?}");
    for j in journals.iter().rev() {
        migrate(&s, &["--rollback".into(), j.display().to_string()]).ok();
    }
    assert_eq!(conf(&s), conf_before);
}

#[test]
fn failures_change_nothing() {
    let s = Sample::start();
    let t = target();
    let conf_before = conf(&s);
    let engine_before = checksums(&s.engine("engine"));
    let to = |port: u16| {
        vec![
            "--to-host".to_string(),
            "127.0.0.1".into(),
            "--to-port".into(),
            port.to_string(),
        ]
    };

    // Target unreachable.
    let unused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = migrate(&s, &to(unused));
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("target:"), "{}", r.stderr);
    assert_eq!(conf(&s), conf_before);

    // Wrong admin password.
    t.execute(
        "postgres",
        "CREATE ROLE admin SUPERUSER LOGIN PASSWORD 'right-admin-pw'",
    )
    .unwrap();
    std::fs::write(s.path("admin.pass"), "wrong-admin-pw\n").unwrap();
    let mut args = to(t.port());
    args.extend([
        "--admin-user".into(),
        "admin".into(),
        "--admin-passfile".into(),
        s.path("admin.pass").display().to_string(),
    ]);
    let r = migrate(&s, &args);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("password authentication failed"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("wrong-admin-pw"));
    assert_eq!(
        t.query_text(
            "postgres",
            "SELECT count(*) FROM pg_roles WHERE rolname = 'engine'"
        )
        .unwrap()
        .as_deref(),
        Some("0")
    );

    // Target database not empty.
    t.create_role("engine", "engine-fixture-pw").unwrap();
    t.create_database("engine", "engine").unwrap();
    t.execute("engine", "CREATE TABLE old_stuff (x int)")
        .unwrap();
    let mut args = to(t.port());
    args.extend(admin_socket(&t));
    let r = migrate(&s, &args);
    assert_eq!(r.code, 2, "a usage error: nothing was changed");
    assert!(
        r.stderr.contains("Database 'engine' on 127.0.0.1:") && r.stderr.contains("is not empty"),
        "{}",
        r.stderr
    );
    assert_eq!(conf(&s), conf_before);

    // A failure during the restore: the role may not create anything in a
    // database it does not own. The target keeps nothing the migration made.
    t.execute("postgres", "DROP DATABASE engine").unwrap();
    t.execute(
        "postgres",
        "CREATE DATABASE engine OWNER postgres TEMPLATE template0",
    )
    .unwrap();
    t.execute("engine", "REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        .unwrap();
    t.create_role("reporter", "x-reporter-pw").unwrap();
    let r = migrate(&s, &to(t.port()));
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stderr.contains("permission denied"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("the source and the conf files are unchanged"),
        "{}",
        r.stderr
    );
    assert_eq!(conf(&s), conf_before);
    assert!(
        checksums(&tcp(&t, "engine", "engine-fixture-pw", "engine")).is_empty(),
        "nothing left on the target"
    );
    assert_eq!(
        checksums(&s.engine("engine")),
        engine_before,
        "source untouched"
    );
    let log = std::fs::read_to_string(s.path("migrate.log")).unwrap();
    assert!(!log.contains("engine-fixture-pw") && !log.contains("right-admin-pw"));
}
