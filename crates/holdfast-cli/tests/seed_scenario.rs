//! The handover seed's scenario end to end: Redmine and Alfresco, each with
//! its own PostgreSQL database, roles and grants and its own config file
//! format, backed up nightly into ONE repository and as archive files into
//! one directory, with the seed's retention (daily 7, weekly 4, monthly 12,
//! yearly 3). Retention keeps each application's own newest night; each
//! application is restored alone onto a fresh server without touching the
//! other. (That the policy keeps exactly what restic keeps over years of
//! nights is proven in crates/holdfast/tests/repo_retention.rs.)

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use holdfast::pg::ConnParams;
use pgsandbox::Cluster;
use support::*;

const POLICY: [&str; 8] = [
    "--keep-daily",
    "7",
    "--keep-weekly",
    "4",
    "--keep-monthly",
    "12",
    "--keep-yearly",
    "3",
];

struct Site {
    cluster: Cluster,
    dir: tempfile::TempDir,
}

impl Site {
    /// Both applications on one server and one machine (one install root).
    fn start() -> Site {
        let cluster = Cluster::start().unwrap();
        for (role, pw) in [("redmine", "redmine-pw"), ("alfresco", "alfresco-pw")] {
            cluster.create_role(role, pw).unwrap();
            cluster.create_database(role, role).unwrap();
        }
        cluster
            .execute(
                "postgres",
                "CREATE ROLE redmine_ro LOGIN PASSWORD 'ro-pw';
                 CREATE ROLE alfresco_report LOGIN PASSWORD 'report-pw';",
            )
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let site = Site { cluster, dir };
        site.sql(
            "redmine",
            "CREATE TABLE issues (id serial PRIMARY KEY, subject text NOT NULL, done boolean DEFAULT false);
             CREATE INDEX ON issues (done);
             INSERT INTO issues (subject) SELECT 'issue ' || g FROM generate_series(1, 400) g;
             GRANT SELECT ON issues TO redmine_ro;",
        );
        site.sql(
            "alfresco",
            "CREATE TABLE alf_node (id bigserial PRIMARY KEY, uuid text UNIQUE NOT NULL, props jsonb);
             INSERT INTO alf_node (uuid, props) SELECT md5(g::text), jsonb_build_object('n', g) FROM generate_series(1, 300) g;
             CREATE VIEW alf_report AS SELECT count(*) AS nodes FROM alf_node;
             GRANT SELECT ON alf_report, alf_node TO alfresco_report;",
        );
        let port = site.cluster.port();
        site.write(
            "etc/redmine/default/database.yml",
            &format!(
                "production:\n  adapter: postgresql\n  database: redmine\n  host: 127.0.0.1\n  port: {port}\n  username: redmine\n  password: \"redmine-pw\"\n  encoding: utf8\n"
            ),
        );
        site.write(
            "usr/share/redmine/lib/redmine/version.rb",
            "module Redmine\n  module VERSION\n    MAJOR = 5\n    MINOR = 1\n    TINY  = 2\n  end\nend\n",
        );
        site.write(
            "var/lib/redmine/default/files/2026/11/spec.pdf",
            "%PDF-1.4 attachment\n",
        );
        site.write(
            "usr/local/tomcat/shared/classes/alfresco-global.properties",
            &format!(
                "dir.root=/usr/local/tomcat/alf_data\ndb.driver=org.postgresql.Driver\ndb.username=alfresco\ndb.password=alfresco-pw\ndb.url=jdbc:postgresql://127.0.0.1:{port}/alfresco\n"
            ),
        );
        site.write(
            "usr/local/tomcat/webapps/alfresco/META-INF/MANIFEST.MF",
            "Manifest-Version: 1.0\r\nImplementation-Version: 23.2.1.r7\r\n",
        );
        site.write(
            "usr/local/tomcat/alf_data/contentstore/2026/11/1/node.bin",
            "content\n",
        );
        std::fs::create_dir(site.path("archives")).unwrap();
        std::fs::write(site.path("repo-pw"), "seed repository password\n").unwrap();
        site
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn root(&self) -> PathBuf {
        self.path("root")
    }

    fn write(&self, rel: &str, text: &str) {
        let path = self.root().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn app(&self, name: &str) -> ConnParams {
        tcp(&self.cluster, name, &format!("{name}-pw"), name)
    }

    fn sql(&self, app: &str, sql: &str) {
        holdfast::pg::connect(&self.app(app))
            .unwrap()
            .batch_execute(sql)
            .unwrap();
    }

    fn holdfast(&self, args: &[&str]) -> Run {
        holdfast_in_root(self.dir.path(), &self.root(), args)
    }

    fn repo(&self, verb: &str, args: &[&str]) -> Run {
        let repo = self.path("repo").display().to_string();
        let pw = self.path("repo-pw").display().to_string();
        let mut all = vec!["repo", verb, "--repo", &repo, "--password-file", &pw];
        all.extend_from_slice(args);
        if verb == "backup" || verb == "restore" {
            return self.holdfast(&all);
        }
        let all: Vec<String> = all.iter().map(|s| s.to_string()).collect();
        run(env!("CARGO_BIN_EXE_holdfast"), &all, self.dir.path())
    }

    /// One night: each application into the repository and into an archive
    /// file, with the server's superuser reading the roles' passwords.
    fn night(&self, n: u32) {
        let socket = self.cluster.socket_dir().display().to_string();
        for app in ["redmine", "alfresco"] {
            self.repo("backup", &["--profile", app, "--admin-host", &socket])
                .ok();
            let file = format!("archives/{app}-{n}.backup");
            self.holdfast(&[
                "backup",
                "--profile",
                app,
                "--admin-host",
                &socket,
                "--file",
                &file,
            ])
            .ok();
        }
    }
}

/// Per file under `root`: its bytes.
fn tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.insert(
                    path.strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(&path).unwrap(),
                );
            }
        }
    }
    files
}

/// `(profile tag, id)` of every snapshot in the repository, oldest first,
/// from `repo snapshots --json`.
fn snapshots(site: &Site) -> Vec<(String, String)> {
    let listed = site.repo("snapshots", &["--json"]);
    listed.ok();
    let doc: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(doc["version"], 1);
    doc["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["profile"].as_str().unwrap().to_string(),
                s["short_id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn two_applications_one_repository_retention_and_restores_of_each_alone() {
    let site = Site::start();
    site.repo("init", &[]).ok();

    // Three nights; the data changes between them.
    site.night(1);
    site.sql("redmine", "UPDATE issues SET done = true WHERE id % 3 = 0;");
    site.sql("alfresco", "DELETE FROM alf_node WHERE id % 10 = 0;");
    site.night(2);
    site.sql(
        "redmine",
        "INSERT INTO issues (subject) VALUES ('night three');",
    );
    site.sql(
        "alfresco",
        "INSERT INTO alf_node (uuid) VALUES ('night-three');",
    );
    site.night(3);
    let newest = BTreeMap::from([
        ("redmine", checksums(&site.app("redmine"))),
        ("alfresco", checksums(&site.app("alfresco"))),
    ]);
    let files_before = tree(&site.root());
    assert_eq!(snapshots(&site).len(), 6);

    // The seed's policy over the one repository. The nights are all on one
    // day: each application keeps its own newest, and (restic's rule while
    // a policy is not filled yet) its own oldest; the middle night of each
    // goes. Were the applications one group, only one newest would stay.
    let mut forget = vec!["--prune"];
    forget.extend(POLICY);
    let before_forget = snapshots(&site);
    let mut planned = vec!["--dry-run", "--json"];
    planned.extend(POLICY);
    let plan = site.repo("forget", &planned);
    plan.ok();
    let doc: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    let decided = doc["snapshots"].as_array().unwrap();
    assert_eq!(decided.len(), 6, "{doc}");
    assert_eq!(
        decided.iter().filter(|v| v["keep"] == true).count(),
        4,
        "{doc}"
    );
    let forgot = site.repo("forget", &forget);
    forgot.ok();
    let kept = snapshots(&site);
    for app in ["redmine", "alfresco"] {
        let nights: Vec<&String> = before_forget
            .iter()
            .filter(|(p, _)| p == app)
            .map(|(_, id)| id)
            .collect();
        let left: Vec<&String> = kept
            .iter()
            .filter(|(p, _)| p == app)
            .map(|(_, id)| id)
            .collect();
        assert_eq!(left, [nights[0], nights[2]], "{app}:\n{}", forgot.stdout);
    }
    let checked = site.repo("check", &["--read-data", "--json"]);
    checked.ok();
    let doc: serde_json::Value = serde_json::from_str(&checked.stdout).unwrap();
    assert_eq!(doc["read"], "all", "{doc}");
    assert_eq!(doc["snapshots"], 4, "{doc}");
    assert_eq!(doc["errors"], serde_json::json!([]), "{doc}");
    let pruned = site.repo("prune", &["--dry-run", "--json"]);
    pruned.ok();
    let doc: serde_json::Value = serde_json::from_str(&pruned.stdout).unwrap();
    assert_eq!(doc["prune"]["dry_run"], true, "{doc}");
    assert!(doc["prune"]["used_bytes"].as_u64().unwrap() > 0, "{doc}");

    // The same policy over the directory of archive files.
    let mut prune = vec!["prune-archives", "archives", "--dry-run", "--json"];
    prune.extend(POLICY);
    let planned = run(
        env!("CARGO_BIN_EXE_holdfast"),
        &prune.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        site.dir.path(),
    );
    planned.ok();
    let doc: serde_json::Value = serde_json::from_str(&planned.stdout).unwrap();
    let groups = doc["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{doc}");
    for g in groups {
        let kept = g["archives"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["keep"] == true)
            .count();
        assert_eq!(kept, 2, "{g}");
    }
    let mut prune = vec!["prune-archives", "archives"];
    prune.extend(POLICY);
    let pruned = run(
        env!("CARGO_BIN_EXE_holdfast"),
        &prune.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        site.dir.path(),
    );
    pruned.ok();
    let mut left: Vec<String> = std::fs::read_dir(site.path("archives"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "alfresco-1.backup",
            "alfresco-3.backup",
            "redmine-1.backup",
            "redmine-3.backup"
        ],
        "{}",
        pruned.stdout
    );

    // Each application restored alone onto one fresh server, from the
    // repository (`latest` of its profile) and from its archive file.
    let fresh = Cluster::start().unwrap();
    let fresh_socket = fresh.socket_dir().display().to_string();
    let port = fresh.port();
    for (app, source) in [("redmine", "repository"), ("alfresco", "archive")] {
        let passfile = site.path(&format!("{app}-new-pw"));
        std::fs::write(&passfile, format!("{app}-new-pw\n")).unwrap();
        let target = format!("db=postgres://{app}@127.0.0.1:{port}/{app}");
        let passfile_arg = format!("db={}", passfile.display());
        let common = [
            "--profile",
            app,
            "--scope",
            "db",
            "--target",
            &target,
            "--target-passfile",
            &passfile_arg,
            "--provision",
            "db",
            "--admin-host",
            &fresh_socket,
        ];
        let other = if app == "redmine" {
            "alfresco"
        } else {
            "redmine"
        };
        let other_before = fresh
            .query_text(
                "postgres",
                &format!("SELECT count(*) FROM pg_database WHERE datname = '{other}'"),
            )
            .unwrap();
        let restored = match source {
            "repository" => {
                let mut args = vec!["latest"];
                args.extend(common);
                site.repo("restore", &args)
            }
            _ => {
                let file = format!("archives/{app}-3.backup");
                let mut args = vec!["restore", "--file", &file];
                args.extend(common);
                site.holdfast(&args)
            }
        };
        restored.ok();
        let new = tcp(&fresh, app, &format!("{app}-new-pw"), app);
        assert_eq!(checksums(&new), newest[app], "{app} from its {source}");
        // The other application's database was not touched.
        assert_eq!(
            fresh
                .query_text(
                    "postgres",
                    &format!("SELECT count(*) FROM pg_database WHERE datname = '{other}'"),
                )
                .unwrap(),
            other_before
        );
    }
    // Both read-only roles log in there with their own passwords.
    for (role, pw, db, table) in [
        ("redmine_ro", "ro-pw", "redmine", "issues"),
        ("alfresco_report", "report-pw", "alfresco", "alf_report"),
    ] {
        let mut c = holdfast::pg::connect(&tcp(&fresh, role, pw, db))
            .unwrap_or_else(|e| panic!("{role} cannot log in: {e}"));
        c.query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .unwrap();
    }
    // Only the database scopes were restored: the files are as they were,
    // but for the two config files, rewritten to the new server and password.
    let files_after = tree(&site.root());
    let changed: Vec<&PathBuf> = files_after
        .iter()
        .filter(|(path, bytes)| files_before.get(*path) != Some(*bytes))
        .map(|(path, _)| path)
        .filter(|path| !path.to_string_lossy().contains(".20"))
        .collect();
    assert_eq!(
        changed,
        [
            Path::new("etc/redmine/default/database.yml"),
            Path::new("usr/local/tomcat/shared/classes/alfresco-global.properties"),
        ],
    );
    let yml = String::from_utf8(files_after[Path::new("etc/redmine/default/database.yml")].clone())
        .unwrap();
    assert!(
        yml.contains(&format!("port: {port}"))
            || yml.contains(&format!("port: '{port}'"))
            || yml.contains(&format!("port: \"{port}\"")),
        "{yml}"
    );
    let props = String::from_utf8(
        files_after[Path::new("usr/local/tomcat/shared/classes/alfresco-global.properties")]
            .clone(),
    )
    .unwrap();
    assert!(
        props.contains(&format!("127.0.0.1:{port}/alfresco")),
        "{props}"
    );
    assert!(props.contains("db.password=alfresco-new-pw"), "{props}");
}
