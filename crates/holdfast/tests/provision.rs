//! `pg::provision` against real servers: the superuser session, roles with
//! SCRAM verifiers, databases with a locale the server has (or its fallback),
//! extensions, emptiness, and a cluster initialised with initdb and removed.

use std::os::unix::fs::PermissionsExt;

use holdfast::pg::provision::{self, Admin, ClusterInit, ServerFacts};
use holdfast::pg::{self, ConnParams, PgTools};
use holdfast::Password;
use pgsandbox::Cluster;

fn admin(c: &Cluster) -> Admin {
    Admin::new(
        ConnParams {
            host: c.socket_dir().display().to_string(),
            port: c.port(),
            user: c.superuser().into(),
            database: "postgres".into(),
            password: None,
            secured: false,
            secured_validation: false,
        },
        PgTools::in_dir(c.bindir()).unwrap(),
    )
}

fn tcp(c: &Cluster, user: &str, password: &str, database: &str) -> ConnParams {
    ConnParams {
        host: c.host().into(),
        port: c.port(),
        user: user.into(),
        database: database.into(),
        password: Some(Password::new(password)),
        secured: false,
        secured_validation: false,
    }
}

#[test]
fn role_database_and_extension_are_created_and_dropped() {
    let c = Cluster::start().unwrap();
    let a = admin(&c);
    a.check().unwrap();
    let facts = ServerFacts::read(&a).unwrap();
    assert!(facts.server_version_num >= 130000);
    assert!(facts.roles.contains("postgres"));
    assert!(facts.available_extensions.contains("uuid-ossp"));

    let pw = Password::new("it's:a\\pw");
    provision::create_role(&a, "app", &pw).unwrap();
    let hash = provision::password_hash(&a, "app").unwrap().unwrap();
    assert!(hash.starts_with("SCRAM-SHA-256$"), "{hash}");
    // A locale the server does not have falls back to one it has.
    let locale = provision::choose_locale(("xx_XX.UTF-8", "xx_XX.UTF-8"), &facts);
    assert_eq!(locale.replaces.as_deref(), Some("xx_XX.UTF-8"));
    provision::create_database(&a, "app db", "app", &locale).unwrap();
    provision::create_extension(&a, "app db", "uuid-ossp").unwrap();
    assert_eq!(
        provision::first_object(&a, "app db").unwrap(),
        None,
        "extensions do not count"
    );

    // The role logs in over TCP with scram and owns its database.
    let mut client = pg::connect(&tcp(&c, "app", "it's:a\\pw", "app db")).unwrap();
    let info = pg::database_info(&mut client).unwrap();
    assert_eq!(info.owner, "app");
    assert_eq!(info.encoding, "UTF8");
    assert_eq!(info.collate, locale.collate);
    client.batch_execute("CREATE TABLE t (x int)").unwrap();
    drop(client);
    assert_eq!(
        provision::first_object(&a, "app db").unwrap().as_deref(),
        Some("relation t")
    );

    // A password change, then the old verifier put back.
    provision::set_password(&a, "app", &Password::new("other-pw")).unwrap();
    assert!(pg::connect(&tcp(&c, "app", "it's:a\\pw", "app db")).is_err());
    provision::restore_password_hash(&a, "app", Some(&hash)).unwrap();
    assert!(pg::connect(&tcp(&c, "app", "it's:a\\pw", "app db")).is_ok());

    provision::drop_database(&a, "app db").unwrap();
    provision::drop_role(&a, "app").unwrap();
    let after = ServerFacts::read(&a).unwrap();
    assert!(!after.roles.contains("app"));
    assert!(after.database_owner("app db").is_none());
}

#[test]
fn a_locale_the_server_has_is_used_as_recorded() {
    let c = Cluster::start().unwrap();
    let a = admin(&c);
    let facts = ServerFacts::read(&a).unwrap();
    let (collate, ctype) = facts.default_locale.clone();
    let locale = provision::choose_locale((&collate, &ctype), &facts);
    assert_eq!(locale.replaces, None);
    provision::create_role(&a, "owner1", &Password::new("pw-owner1")).unwrap();
    provision::create_database(&a, "d1", "owner1", &locale).unwrap();
    let got = c
        .query_text(
            "postgres",
            "SELECT datcollate FROM pg_database WHERE datname = 'd1'",
        )
        .unwrap()
        .unwrap();
    assert_eq!(got, collate);
}

#[test]
fn a_non_superuser_admin_is_refused() {
    let c = Cluster::start().unwrap();
    c.create_role("plain", "plain-pw").unwrap();
    let a = Admin::new(
        tcp(&c, "plain", "plain-pw", "postgres"),
        PgTools::in_dir(c.bindir()).unwrap(),
    );
    let e = a.check().unwrap_err().to_string();
    assert!(e.contains("is not a superuser"), "{e}");
}

#[test]
fn initdb_cluster_is_initialised_with_hba_lines_started_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    // The server runs as postgres when we are root: it must reach the directory.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bindir = Cluster::start().unwrap().bindir().to_path_buf();
    let port = free_port();
    let init = ClusterInit::Initdb {
        bindir: bindir.clone(),
        data_dir: dir.path().join("data"),
        socket_dir: dir.path().join("sock"),
        port,
    };
    assert!(!init.exists());
    let hba = provision::hba_lines("appdb", "app");
    let cluster = provision::init_cluster(&init, &hba).unwrap();
    assert!(init.exists());
    let text = std::fs::read_to_string(&cluster.hba_file).unwrap();
    for l in &hba {
        assert!(text.contains(l.as_str()), "{text}");
    }
    let a = Admin::new(
        ConnParams {
            host: dir.path().join("sock").display().to_string(),
            port,
            user: "postgres".into(),
            database: "postgres".into(),
            password: None,
            secured: false,
            secured_validation: false,
        },
        PgTools::in_dir(&bindir).unwrap(),
    );
    let checked = a.check();
    // The application's role reaches its database over TCP with its password.
    let reached = checked.as_ref().ok().map(|()| {
        let facts = ServerFacts::read(&a).unwrap();
        let locale = provision::choose_locale(
            (provision::DEFAULT_LOCALE, provision::DEFAULT_LOCALE),
            &facts,
        );
        provision::create_role(&a, "app", &Password::new("app-pw-1")).unwrap();
        provision::create_database(&a, "appdb", "app", &locale).unwrap();
        let params = ConnParams {
            host: "127.0.0.1".into(),
            port,
            user: "app".into(),
            database: "appdb".into(),
            password: Some(Password::new("app-pw-1")),
            secured: false,
            secured_validation: false,
        };
        pg::connect(&params).map(|_| ())
    });
    provision::remove_cluster(&cluster).unwrap();
    assert!(!dir.path().join("data").exists());
    checked.unwrap();
    reached.unwrap().unwrap();
    assert!(
        !dir.path()
            .join("sock")
            .join(format!(".s.PGSQL.{port}"))
            .exists(),
        "the server is stopped"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
