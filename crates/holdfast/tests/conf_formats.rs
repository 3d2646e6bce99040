//! Config formats, checked from outside: every file holdfast rewrites is read
//! back by an independent parser (libyaml through `serde_yaml_ng` for YAML,
//! the JDK's `java.util.Properties` for properties, Python's `urllib.parse`
//! for URLs) to exactly the new values, and every byte outside the changed
//! values is unchanged. Hostile values either round-trip or are refused.

use std::path::Path;
use std::process::Command;

use holdfast::conf::{self, ConfError, ConfValue, Format, Location, UrlPart};
use proptest::prelude::*;
use proptest::strategy::ValueTree;

const REDMINE: &str = "# Redmine: config/database.yml\n\
default: &default\n  adapter: postgresql\n  encoding: utf8\n\n\
production:\n  <<: *default\n  database: redmine\n  host: localhost   # the server\n  username: redmine\n  password: 'old'\n\n\
development:\n  <<: *default\n  database: redmine_development\n  password: \"dev\"\n";

const SYNAPSE: &str = "server_name: \"example.org\"\npid_file: /data/homeserver.pid\n\
database:\n  name: psycopg2\n  txn_limit: 10000\n  args:\n    user: synapse_user\n    password: secretpassword\n    dbname: synapse\n    host: localhost\n    port: 5432\n    cp_min: 5\n    cp_max: 10\n\
media_store_path: /data/media_store  # keep\n";

const ALFRESCO: &str = "# alfresco-global.properties\n\
dir.root=/usr/local/tomcat/alf_data\n\
db.driver=org.postgresql.Driver\n\
db.username = alfresco\n\
db.password=alfresco\n\
db.url=jdbc:postgresql://postgres:5432/alfresco?sslmode=disable\n\
! old style comment\n\
solr.host=solr6\n";

fn lit(key: &str, value: &str) -> (Location, ConfValue) {
    (Location::Key(key.into()), ConfValue::Literal(value.into()))
}

fn part(key: &str, p: UrlPart, value: &str) -> (Location, ConfValue) {
    (
        Location::UrlPart(key.into(), p),
        ConfValue::Literal(value.into()),
    )
}

/// `new` is `old` with `old[start..end]` replaced by something: every byte
/// before and after that span is unchanged.
#[track_caller]
fn only_span_changed(old: &str, new: &str, span: &str) {
    let start = old.find(span).expect("span in the old text");
    let end = start + span.len();
    assert!(
        new.starts_with(&old[..start]) && new.ends_with(&old[end..]),
        "bytes outside {span:?} changed:\n--- old\n{old}\n--- new\n{new}"
    );
}

/// The string at a dotted path of a YAML document, by libyaml.
fn yaml_string(text: &str, path: &str) -> Option<String> {
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).expect("libyaml reads it");
    let mut node = &doc;
    for seg in path.split('.') {
        node = node.get(seg)?;
    }
    match node {
        serde_yaml_ng::Value::String(s) => Some(s.clone()),
        other => panic!("{path} is not a string: {other:?}"),
    }
}

#[test]
fn redmine_database_yml_rewritten_in_place() {
    let new = conf::edit_text(
        Format::Yaml,
        REDMINE,
        &[lit("production.password", "n'e\"w #1: x")],
    )
    .unwrap();
    only_span_changed(REDMINE, &new, "'old'");
    assert_eq!(
        yaml_string(&new, "production.password").as_deref(),
        Some("n'e\"w #1: x")
    );
    assert_eq!(
        yaml_string(&new, "development.password").as_deref(),
        Some("dev")
    );
    // Host in place (comment kept) and a port added at the end of production.
    let new = conf::edit_text(
        Format::Yaml,
        REDMINE,
        &[
            lit("production.host", "db2"),
            lit("production.port", "5433"),
        ],
    )
    .unwrap();
    assert_eq!(
        new,
        REDMINE
            .replace("host: localhost ", "host: \"db2\" ")
            .replace("password: 'old'\n", "password: 'old'\n  port: \"5433\"\n")
    );
    assert_eq!(
        yaml_string(&new, "production.port").as_deref(),
        Some("5433")
    );
    assert_eq!(yaml_string(&new, "production.host").as_deref(), Some("db2"));
}

#[test]
fn synapse_homeserver_yaml_rewritten_in_place() {
    let new = conf::edit_text(
        Format::Yaml,
        SYNAPSE,
        &[
            lit("database.args.password", "yes"),
            lit("database.args.port", "0755"),
        ],
    )
    .unwrap();
    // Quoted, so YAML 1.1 loaders (PyYAML, as Synapse uses) read strings too.
    assert_eq!(
        yaml_string(&new, "database.args.password").as_deref(),
        Some("yes")
    );
    assert_eq!(
        yaml_string(&new, "database.args.port").as_deref(),
        Some("0755")
    );
    assert_eq!(
        new,
        SYNAPSE
            .replace("password: secretpassword", "password: \"yes\"")
            .replace("port: 5432", "port: \"0755\"")
    );
}

#[test]
fn alfresco_properties_and_jdbc_url_rewritten_in_place() {
    let new = conf::edit_text(
        Format::Properties,
        ALFRESCO,
        &[
            lit("db.username", "alf:new"),
            lit("db.password", " p=w#!\\é"),
            part("db.url", UrlPart::Host, "10.0.0.7"),
            part("db.url", UrlPart::Port, "6432"),
            part("db.url", UrlPart::Database, "alf/prod"),
        ],
    )
    .unwrap();
    assert_eq!(
        new,
        ALFRESCO
            .replace("db.username = alfresco", "db.username = alf:new")
            .replace("db.password=alfresco", "db.password=\\ p=w#!\\\\\\u00E9")
            .replace("//postgres:5432/alfresco?", "//10.0.0.7:6432/alf%2Fprod?")
    );
    let java = java_properties(&[&new], "stream");
    assert_eq!(java[0]["db.username"], "alf:new");
    assert_eq!(java[0]["db.password"], " p=w#!\\é");
    assert_eq!(
        java[0]["db.url"],
        "jdbc:postgresql://10.0.0.7:6432/alf%2Fprod?sslmode=disable"
    );
    assert_eq!(java[0]["solr.host"], "solr6");
    let url = &java[0]["db.url"];
    let py = python_url(url);
    assert_eq!(py, ["10.0.0.7", "6432", "alf/prod", "", ""]);
}

#[test]
fn database_url_parts_in_any_format() {
    let text = "production:\n  url: \"postgres://redmine:old@db1/redmine?sslmode=require\"\n";
    let new = conf::edit_text(
        Format::Yaml,
        text,
        &[
            part("production.url", UrlPart::Password, "p@ss:w/rd?#%"),
            part("production.url", UrlPart::Port, "5433"),
        ],
    )
    .unwrap();
    let url = yaml_string(&new, "production.url").unwrap();
    assert_eq!(
        url,
        "postgres://redmine:p%40ss%3Aw%2Frd%3F%23%25@db1:5433/redmine?sslmode=require"
    );
    assert_eq!(
        python_url(&url),
        ["db1", "5433", "redmine", "redmine", "p@ss:w/rd?#%"]
    );
    assert_eq!(
        conf::read_location(
            Format::Yaml,
            &new,
            &Location::UrlPart("production.url".into(), UrlPart::Password)
        )
        .unwrap()
        .as_deref(),
        Some("p@ss:w/rd?#%")
    );
}

#[test]
fn refusals_leave_the_file_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("database.yml");
    std::fs::write(&path, REDMINE).unwrap();
    let err = conf::rewrite_file(
        &path,
        Format::Yaml,
        &[
            lit("production.username", "fine"),
            lit("production.password", "<%= `id` %>"),
        ],
        chrono::Local::now(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("ERB"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), REDMINE);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no copy");
    // A rewrite keeps a dated copy and the mode.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let copy = conf::rewrite_file(
        &path,
        Format::Yaml,
        &[lit("production.password", "x")],
        chrono::Local::now(),
    )
    .unwrap();
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), REDMINE);
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777,
        0o640
    );
}

/// Strings with what breaks naive writers: quotes, comment and separator
/// characters, `$`, backslashes, newlines, controls, unicode, leading spaces.
fn hostile() -> impl Strategy<Value = String> {
    proptest::string::string_regex(
        r#"( |\t|\n|\r|[ -~]|[\u{80}-\u{10ffff}]|"|'|#|;|\$|\\|=|:|!|%|@|/|\?|&|\{|\}|<%|---|\u{2028}|\u{feff}){0,24}"#,
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn yaml_values_round_trip_or_are_refused(value in hostile()) {
        match conf::edit_text(Format::Yaml, REDMINE, &[lit("production.password", &value)]) {
            Ok(new) => {
                only_span_changed(REDMINE, &new, "'old'");
                prop_assert_eq!(yaml_string(&new, "production.password"), Some(value.clone()));
                let dev = yaml_string(&new, "development.password");
                prop_assert_eq!(dev.as_deref(), Some("dev"));
            }
            Err(ConfError::Refused(m)) => {
                prop_assert!(value.contains("<%") || value.contains('\0'), "{} refused: {}", value, m);
            }
            Err(e) => prop_assert!(false, "{:?}", e),
        }
    }

    #[test]
    fn yaml_added_keys_round_trip(value in hostile()) {
        if let Ok(new) = conf::edit_text(Format::Yaml, SYNAPSE, &[lit("database.args.sslmode", &value)]) {
            prop_assert_eq!(yaml_string(&new, "database.args.sslmode"), Some(value.clone()));
            let pw = yaml_string(&new, "database.args.password");
            prop_assert_eq!(pw.as_deref(), Some("secretpassword"));
            prop_assert!(new.starts_with(SYNAPSE.split("media_store_path").next().unwrap()));
        }
    }

    #[test]
    fn url_parts_round_trip_or_are_refused(user in hostile(), password in hostile(), db in hostile()) {
        let url = "postgres://u:p@h:5432/d?sslmode=require";
        let changes = [(UrlPart::User, user.as_str()), (UrlPart::Password, password.as_str()), (UrlPart::Database, db.as_str())];
        match conf::url::set_parts(url, &changes) {
            Ok(new) => {
                prop_assert!(new.ends_with("?sslmode=require"));
                let read = |p| conf::url::read_part(&new, p).unwrap().unwrap_or_default();
                prop_assert_eq!(read(UrlPart::User), user.clone());
                prop_assert_eq!(read(UrlPart::Password), password.clone());
                prop_assert_eq!(read(UrlPart::Database), db.clone());
                let py = python_url(&new);
                prop_assert_eq!(&py[2..], &[db.clone(), user.clone(), password.clone()][..]);
            }
            Err(m) => prop_assert!(
                [&user, &password, &db].iter().any(|v| v.contains("${")),
                "refused: {}", m
            ),
        }
    }
}

/// Hostile values into properties files, read back by the JDK in one batch
/// (through an InputStream as Alfresco, and a UTF-8 Reader as SmallRye).
#[test]
fn properties_values_read_back_by_the_jdk() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let values: Vec<String> = (0..150)
        .map(|_| hostile().new_tree(&mut runner).unwrap().current())
        .chain([
            "".into(),
            " ".into(),
            "\\".into(),
            "a\\".into(),
            "#".into(),
            "!x".into(),
            "\u{1F600}".into(),
        ])
        .collect();
    let mut texts = Vec::new();
    let mut expected = Vec::new();
    for v in &values {
        let changes = [lit("db.password", v), lit("new.key", v)];
        match conf::edit_text(Format::Properties, ALFRESCO, &changes) {
            Ok(new) => {
                only_span_changed(
                    ALFRESCO,
                    &new,
                    &ALFRESCO[ALFRESCO.find("alfresco\ndb.url").unwrap()..],
                );
                texts.push(new);
                expected.push(v.clone());
            }
            // A refusal is allowed (never a wrong file); the count below
            // keeps refusals rare.
            Err(ConfError::Refused(_)) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(
        texts.len() > 100,
        "{} of {} written",
        texts.len(),
        values.len()
    );
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    for mode in ["stream", "reader"] {
        let java = java_properties(&refs, mode);
        for (i, v) in expected.iter().enumerate() {
            assert_eq!(&java[i]["db.password"], v, "{mode}: {:?}", texts[i]);
            assert_eq!(&java[i]["new.key"], v, "{mode}");
            assert_eq!(java[i]["db.username"], "alfresco");
            assert_eq!(java[i].len(), 7);
        }
    }
}

/// Each text's properties as `java.util.Properties.load` gives them.
fn java_properties(texts: &[&str], mode: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/independent/PropsDump.java")
            .display()
            .to_string(),
        mode.to_string(),
    ];
    for (i, t) in texts.iter().enumerate() {
        let p = dir.path().join(format!("{i}.properties"));
        std::fs::write(&p, t).unwrap();
        args.push(p.display().to_string());
    }
    let out = Command::new("java")
        .args(&args)
        .output()
        .expect("the JDK's java (on every machine of this project) reads the properties files");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut maps = vec![std::collections::BTreeMap::new(); texts.len()];
    let unhex = |h: &str| String::from_utf8(hex::decode(h).unwrap()).unwrap();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let mut f = line.split(' ');
        let i: usize = f.next().unwrap().parse().unwrap();
        let k = unhex(f.next().unwrap());
        let v = unhex(f.next().unwrap_or(""));
        maps[i].insert(k, v);
    }
    maps
}

/// [host, port, database, user, password] of a libpq or JDBC URL by Python's
/// `urllib.parse` (query parameters decoded as pgjdbc's URLDecoder does).
fn python_url(url: &str) -> Vec<String> {
    let script = r#"
import sys, urllib.parse as u
url = sys.stdin.read()
if url.startswith("jdbc:"):
    url = url[5:]
s = u.urlsplit(url)
q = u.parse_qs(s.query)
user = u.unquote(s.username) if s.username else q.get("user", [""])[-1]
pw = u.unquote(s.password) if s.password else q.get("password", [""])[-1]
print("\0".join([s.hostname or "", str(s.port or ""), u.unquote(s.path[1:]), user, pw]), end="")
"#;
    use std::io::Write;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(url.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .split('\0')
        .map(str::to_string)
        .collect()
}

const ODOO: &str = "[options]\n; This is the password that allows database operations:\nadmin_passwd = $pbkdf2-sha512$600000$x\ndb_host = False\ndb_port = False\ndb_user = odoo\ndb_password = False\naddons_path = /usr/lib/python3/dist-packages/odoo/addons\n";

const APP_INI: &str = "APP_NAME = Gitea: Git with a cup of tea\nRUN_MODE = prod\n\n[database]\nDB_TYPE  = postgres\nHOST     = 127.0.0.1:5432\nNAME     = gitea\nUSER     = gitea\n; the installer wrote it\nPASSWD   = `gitea#1`\nSCHEMA   =\nSSL_MODE = disable\n\n[security]\nINSTALL_LOCK = true\n";

const MATTERMOST: &str = "{\n  \"SqlSettings\": {\n    \"DriverName\": \"postgres\",\n    \"DataSource\": \"postgres://mmuser:mostest@localhost/mattermost_test?sslmode=disable\\u0026connect_timeout=10\",\n    \"DataSourceReplicas\": []\n  },\n  \"LogSettings\": {\n    \"EnableConsole\": true\n  }\n}\n";

const DOTENV: &str = "# docker compose\nPOSTGRES_USER=gitea\nPOSTGRES_PASSWORD=gitea # change me\nPOSTGRES_DB=gitea\n";

const KEYCLOAK: &str = "# Basic settings for running in production. Change accordingly before deploying the server.\n\n# Database\ndb=postgres\ndb-username=keycloak\ndb-password=password\ndb-url=jdbc:postgresql://localhost/keycloak\n";

fn python(script: &str, input: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Every section's options as Python's RawConfigParser (Odoo's) reads them.
fn configparser(texts: &[String]) -> Vec<serde_json::Value> {
    let script = "import configparser, json, sys\nout = []\nfor t in json.load(sys.stdin):\n    c = configparser.RawConfigParser()\n    c.read_string(t)\n    out.append({s: dict(c[s]) for s in c.sections()})\nprint(json.dumps(out))";
    let input = serde_json::to_string(texts).unwrap();
    serde_json::from_str(&python(script, &input)).unwrap()
}

#[test]
fn odoo_conf_values_read_back_by_configparser() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let values: Vec<String> = (0..150)
        .map(|_| hostile().new_tree(&mut runner).unwrap().current())
        .collect();
    let mut texts = Vec::new();
    let mut written = Vec::new();
    for v in &values {
        match conf::edit_text(
            Format::Ini,
            ODOO,
            &[lit("options.db_password", v), lit("options.db_name", v)],
        ) {
            Ok(new) => {
                only_span_changed(
                    ODOO,
                    &new,
                    &ODOO[ODOO.find("False\naddons_path").unwrap()..],
                );
                texts.push(new);
                written.push(v.clone());
            }
            Err(ConfError::Refused(_)) => {
                assert!(v.contains(['\n', '\r']) || v != v.trim(), "{v:?} refused")
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(written.len() > 30, "{}", written.len());
    let read = configparser(&texts);
    for (i, v) in written.iter().enumerate() {
        assert_eq!(read[i]["options"]["db_password"], *v, "{:?}", texts[i]);
        assert_eq!(read[i]["options"]["db_name"], *v);
        assert_eq!(read[i]["options"]["db_user"], "odoo");
        assert_eq!(
            read[i]["options"]["admin_passwd"],
            "$pbkdf2-sha512$600000$x"
        );
    }
}

#[test]
fn gitea_app_ini_values_quoted_as_go_ini_needs() {
    // go-ini's rules (no independent go-ini here): read back by holdfast's
    // reader of them, and the layout checked byte for byte.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for _ in 0..300 {
        let v = hostile().new_tree(&mut runner).unwrap().current();
        match conf::edit_text(Format::GoIni, APP_INI, &[lit("database.PASSWD", &v)]) {
            Ok(new) => {
                only_span_changed(APP_INI, &new, "`gitea#1`");
                let back = conf::read_location(
                    Format::GoIni,
                    &new,
                    &Location::Key("database.PASSWD".into()),
                )
                .unwrap();
                assert_eq!(back.as_deref(), Some(v.as_str()), "{new}");
            }
            Err(ConfError::Refused(_)) => assert!(v.contains(['\n', '\r']), "{v:?}"),
            Err(e) => panic!("{e:?}"),
        }
    }
    let new = conf::edit_text(
        Format::GoIni,
        APP_INI,
        &[
            lit("database.PASSWD", "a;b#c"),
            lit("database.SCHEMA", "public"),
        ],
    )
    .unwrap();
    assert_eq!(
        new,
        APP_INI
            .replace("`gitea#1`", "`a;b#c`")
            .replace("SCHEMA   =\n", "SCHEMA   =public\n")
    );
}

#[test]
fn mattermost_config_json_read_back_by_python() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let values: Vec<String> = (0..100)
        .map(|_| hostile().new_tree(&mut runner).unwrap().current())
        .collect();
    let mut texts = Vec::new();
    for v in &values {
        let new = conf::edit_text(
            Format::Json,
            MATTERMOST,
            &[
                part("SqlSettings.DataSource", UrlPart::Host, "db2.example"),
                lit("LogSettings.Level", v),
            ],
        )
        .unwrap();
        let old_value = "\"postgres://mmuser:mostest@localhost/mattermost_test?sslmode=disable\\u0026connect_timeout=10\"";
        let (head, tail) = MATTERMOST.split_once(old_value).unwrap();
        assert!(new.starts_with(head), "{new}");
        assert!(new.ends_with(tail.split("true").nth(1).unwrap()));
        texts.push(new);
    }
    let script =
        "import json, sys\nprint(json.dumps([json.loads(t) for t in json.load(sys.stdin)]))";
    let read: Vec<serde_json::Value> =
        serde_json::from_str(&python(script, &serde_json::to_string(&texts).unwrap())).unwrap();
    for (i, v) in values.iter().enumerate() {
        assert_eq!(read[i]["LogSettings"]["Level"], v.as_str());
        assert_eq!(read[i]["LogSettings"]["EnableConsole"], true);
        assert_eq!(
            read[i]["SqlSettings"]["DataSource"],
            "postgres://mmuser:mostest@db2.example/mattermost_test?sslmode=disable&connect_timeout=10"
        );
    }
}

#[test]
fn compose_env_values_read_back_by_a_posix_shell() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..60 {
        let v = hostile().new_tree(&mut runner).unwrap().current();
        match conf::edit_text(Format::Dotenv, DOTENV, &[lit("POSTGRES_PASSWORD", &v)]) {
            Ok(new) => {
                only_span_changed(DOTENV, &new, "gitea #");
                let out = Command::new("sh")
                    .args(["-c", "set -a; . ./.env; printf %s \"$POSTGRES_PASSWORD\""])
                    .current_dir({
                        std::fs::write(dir.path().join(".env"), &new).unwrap();
                        dir.path()
                    })
                    .output()
                    .unwrap();
                assert_eq!(String::from_utf8(out.stdout).unwrap(), v, "{new}");
            }
            Err(ConfError::Refused(_)) => assert!(v.contains(['\'', '\n', '\r']), "{v:?}"),
            Err(e) => panic!("{e:?}"),
        }
    }
}

#[test]
fn keycloak_conf_dollars_read_back_by_the_jdk() {
    let values = [
        "my$$password",
        "${KC_DB_PASSWORD}",
        "a\\$b",
        "$",
        "p w=#!:é\\",
        "\\\\$$",
    ];
    let texts: Vec<String> = values
        .iter()
        .map(|v| conf::edit_text(Format::Keycloak, KEYCLOAK, &[lit("db-password", v)]).unwrap())
        .collect();
    assert_eq!(
        texts[0],
        KEYCLOAK.replace("db-password=password", "db-password=my\\\\$\\\\$password")
    );
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let java = java_properties(&refs, "reader");
    for (i, v) in values.iter().enumerate() {
        // The JDK gives the SmallRye-level text: every '$' escaped as '\$'.
        assert_eq!(java[i]["db-password"], v.replace('$', "\\$"));
        assert_eq!(
            conf::read_location(
                Format::Keycloak,
                &texts[i],
                &Location::Key("db-password".into())
            )
            .unwrap()
            .as_deref(),
            Some(*v)
        );
    }
}
