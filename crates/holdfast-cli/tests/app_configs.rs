//! Applications that keep their credentials in their own config files: a
//! Redmine-like environment (`config/database.yml`, YAML with environments
//! and a merge key) and an Alfresco-like one (`alfresco-global.properties`
//! with a JDBC URL), each backed up from a real cluster and moved to another
//! with new credentials. The rewritten file is read back by an independent
//! parser (libyaml; the JDK's `java.util.Properties`) to the new values, and
//! every other byte of it is unchanged.

mod support;

use std::path::Path;

use support::*;

const REDMINE_PROFILE: &str = r#"
name = "redmine-like"
description = "Redmine: credentials in config/database.yml"
[version]
file = "opt/redmine/VERSION"
[[databases]]
scope = "db"
label = "Redmine"
option_prefix = "db"
member = "db/redmine.db"
archive_config_prefix = "DB_"
[databases.credentials]
file = "opt/redmine/config/database.yml"
format = "yaml"
host = "production.host"
port = "production.port"
database = "production.database"
user = "production.username"
password = "production.password"
[files]
include = ["opt/redmine/config"]
"#;

const ALFRESCO_PROFILE: &str = r#"
name = "alfresco-like"
description = "Alfresco: credentials in alfresco-global.properties, host, port and name in a JDBC URL"
[version]
file = "opt/alfresco/VERSION"
[[databases]]
scope = "db"
label = "Alfresco"
option_prefix = "db"
member = "db/alfresco.db"
archive_config_prefix = "DB_"
[databases.credentials]
file = "opt/alfresco/shared/classes/alfresco-global.properties"
format = "properties"
url = "db.url"
user = "db.username"
password = "db.password"
[files]
include = ["opt/alfresco/shared"]
"#;

fn fill(params: &holdfast::pg::ConnParams, table: &str) {
    let mut client = holdfast::pg::connect(params).unwrap();
    client
        .batch_execute(&format!(
            "CREATE TABLE {table} (id serial PRIMARY KEY, title text, body jsonb);
             INSERT INTO {table} (title, body) SELECT 'row ' || g, jsonb_build_object('n', g) FROM generate_series(1, 300) g;"
        ))
        .unwrap();
}

fn holdfast_in(dir: &Path, profile: &str, root: &Path, args: &[&str]) -> Run {
    let mut all = vec![
        args[0].to_string(),
        "--profile".into(),
        profile.into(),
        "--install-root".into(),
        root.display().to_string(),
    ];
    all.extend(args[1..].iter().map(|s| s.to_string()));
    run(env!("CARGO_BIN_EXE_holdfast"), &all, dir)
}

/// The string at a dotted path of a YAML document, read by libyaml.
fn yaml(text: &str, path: &str) -> String {
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).unwrap();
    let mut node = &doc;
    for seg in path.split('.') {
        node = node
            .get(seg)
            .unwrap_or_else(|| panic!("no {path} in\n{text}"));
    }
    node.as_str()
        .unwrap_or_else(|| panic!("{path} is not a string: {node:?}"))
        .to_string()
}

#[test]
fn redmine_database_yml_backed_up_and_migrated_with_new_credentials() {
    let c = pgsandbox::Cluster::start().unwrap();
    let old_pw = "pa'ss: #word";
    c.create_role("redmine", old_pw).unwrap();
    c.create_database("redmine", "redmine").unwrap();
    let app = tcp(&c, "redmine", old_pw, "redmine");
    fill(&app, "issues");
    let before = checksums(&app);

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let config = root.join("opt/redmine/config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(root.join("opt/redmine/VERSION"), "5.1.4\n").unwrap();
    let yml = format!(
        "# Redmine database configuration\n\
default: &default\n  adapter: postgresql\n  encoding: utf8\n\n\
production:\n  <<: *default\n  database: redmine\n  host: 127.0.0.1   # the database server\n  port: {}\n  username: redmine\n  password: 'pa''ss: #word'\n\n\
development:\n  <<: *default\n  database: redmine_development\n  username: dev\n  password: dev\n",
        c.port()
    );
    std::fs::write(config.join("database.yml"), &yml).unwrap();
    std::fs::write(dir.path().join("redmine.toml"), REDMINE_PROFILE).unwrap();
    let holdfast = |args: &[&str]| holdfast_in(dir.path(), "redmine.toml", &root, args);

    // The profile finds the credentials in database.yml and backs the database up.
    let shown = run(
        env!("CARGO_BIN_EXE_holdfast"),
        &[
            "profile".into(),
            "show".into(),
            "redmine.toml".into(),
            "--install-root".into(),
            root.display().to_string(),
        ],
        dir.path(),
    );
    shown.ok();
    assert!(
        shown.stdout.contains(&format!(
            "Redmine database redmine@127.0.0.1:{}/redmine (password set)",
            c.port()
        )),
        "{}",
        shown.stdout
    );
    holdfast(&["backup", "--file", "r.backup"]).ok();
    assert!(members(&dir.path().join("r.backup")).contains(&"db/redmine.db".to_string()));
    holdfast(&["verify", "--deep", "r.backup"]).ok();

    // Migrate to another cluster under a new database name, port and password
    // (the role keeps its name: its objects are owned by it).
    let t = pgsandbox::Cluster::start().unwrap();
    let new_pw = "n3w \"p@ss\" #1 \\ é: x";
    std::fs::write(dir.path().join("pw"), format!("{new_pw}\n")).unwrap();
    let r = holdfast(&[
        "migrate",
        "--scope",
        "db",
        "--to-host",
        "127.0.0.1",
        "--to-port",
        &t.port().to_string(),
        "--to-name",
        "redmine_new",
        "--to-passfile",
        "pw",
        "--admin-user",
        "postgres",
        "--admin-host",
        &t.socket_dir().display().to_string(),
        "--log",
        "m.log",
    ]);
    r.ok();
    let moved = tcp(&t, "redmine", new_pw, "redmine_new");
    assert_eq!(checksums(&moved), before);

    let new = std::fs::read_to_string(config.join("database.yml")).unwrap();
    // libyaml reads the new credentials.
    assert_eq!(yaml(&new, "production.host"), "127.0.0.1");
    assert_eq!(yaml(&new, "production.port"), t.port().to_string());
    assert_eq!(yaml(&new, "production.database"), "redmine_new");
    assert_eq!(yaml(&new, "production.username"), "redmine");
    assert_eq!(yaml(&new, "production.password"), new_pw);
    assert_eq!(yaml(&new, "development.password"), "dev");
    // Every line but the five values' is byte for byte the old one; comments stay.
    let (old_lines, new_lines): (Vec<&str>, Vec<&str>) =
        (yml.lines().collect(), new.lines().collect());
    assert_eq!(old_lines.len(), new_lines.len());
    let mut changed = 0;
    for (o, n) in old_lines.iter().zip(&new_lines) {
        if o != n {
            changed += 1;
            let key = o.split(':').next().unwrap();
            assert!(n.starts_with(&format!("{key}: \"")), "{o:?} -> {n:?}");
        }
    }
    assert_eq!(changed, 5, "{new}");
    assert!(new.contains("\"   # the database server\n"), "{new}");

    // holdfast's own reader agrees, and the application's credentials work.
    let env = holdfast::profile::Environment::load(
        holdfast::profile::Profile::load(&dir.path().join("redmine.toml").display().to_string())
            .unwrap(),
        holdfast::profile::InstallRoot::new(&root).unwrap(),
    )
    .unwrap();
    let params = env
        .database_params(env.profile.database("db").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(params, moved);
    holdfast::pg::connect(&params).unwrap();
}

#[test]
fn alfresco_properties_backed_up_and_restored_with_new_credentials() {
    let c = pgsandbox::Cluster::start().unwrap();
    let old_pw = "alf:pw#1";
    c.create_role("alfresco", old_pw).unwrap();
    c.create_database("alfresco", "alfresco").unwrap();
    let app = tcp(&c, "alfresco", old_pw, "alfresco");
    fill(&app, "alf_node");
    let before = checksums(&app);

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let classes = root.join("opt/alfresco/shared/classes");
    std::fs::create_dir_all(&classes).unwrap();
    std::fs::write(root.join("opt/alfresco/VERSION"), "23.2.1\n").unwrap();
    let props = format!(
        "# Alfresco global properties\n\
dir.root=/srv/alfresco/alf_data\n\
db.driver=org.postgresql.Driver\n\
db.username=alfresco\n\
db.password=alf\\:pw\\#1\n\
db.url=jdbc:postgresql://127.0.0.1:{}/alfresco?sslmode=disable\n\
! indexing\n\
index.subsystem.name=noindex\n",
        c.port()
    );
    let props_path = classes.join("alfresco-global.properties");
    std::fs::write(&props_path, &props).unwrap();
    std::fs::write(dir.path().join("alfresco.toml"), ALFRESCO_PROFILE).unwrap();

    holdfast_in(
        dir.path(),
        "alfresco.toml",
        &root,
        &["backup", "--file", "a.backup"],
    )
    .ok();

    // Restore onto another cluster, into a new database, role and password
    // (engine-backup's face takes any profile and --change-db-credentials).
    let t = pgsandbox::Cluster::start().unwrap();
    let new_pw = "n=w:p!ss#2 \\ ü";
    t.create_role("alfresco_new", new_pw).unwrap();
    t.create_database("alfresco_restored", "alfresco_new")
        .unwrap();
    std::fs::write(dir.path().join("pw"), format!("{new_pw}\n")).unwrap();
    let args: Vec<String> = [
        "--mode=restore",
        "--profile=alfresco.toml",
        "--file=a.backup",
        "--log=r.log",
        "--change-db-credentials",
        "--db-host=127.0.0.1",
        &format!("--db-port={}", t.port()),
        "--db-name=alfresco_restored",
        "--db-user=alfresco_new",
        "--db-passfile=pw",
        "--no-restore-permissions",
        &format!("--install-root={}", root.display()),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    run(engine_backup_bin(), &args, dir.path()).ok();
    let restored = tcp(&t, "alfresco_new", new_pw, "alfresco_restored");
    assert_eq!(checksums(&restored), before);

    let new = std::fs::read_to_string(&props_path).unwrap();
    let java = java_properties(&props_path);
    assert_eq!(java["db.username"], "alfresco_new");
    assert_eq!(java["db.password"], new_pw);
    assert_eq!(
        java["db.url"],
        format!(
            "jdbc:postgresql://127.0.0.1:{}/alfresco_restored?sslmode=disable",
            t.port()
        )
    );
    assert_eq!(java["dir.root"], "/srv/alfresco/alf_data");
    assert_eq!(java.len(), 6);
    // Only the three values changed.
    let changed: Vec<(&str, &str)> = props
        .lines()
        .zip(new.lines())
        .filter(|(o, n)| o != n)
        .collect();
    assert_eq!(changed.len(), 3, "{new}");
    assert_eq!(props.lines().count(), new.lines().count());
    for (o, n) in changed {
        assert_eq!(o.split('=').next(), n.split('=').next());
    }
}
