//! Shared by the `pg_*` integration tests: the engine-backup 4.5 fixture (its
//! environment and the expected content from its README) and connection
//! parameters for sandbox roles.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

use holdfast::pg::{ConnParams, LargeObject, RelationKind, SequenceValue, TableChecksum};
use holdfast::Password;
use pgsandbox::Cluster;

pub const ENGINE_PW: &str = "engine-fixture-pw";
pub const DWH_PW: &str = "dwh:fixture-pw";
pub const REPORTER_PW: &str = "reporter-fixture-pw";

pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/engine-backup-4.5")
}

/// The SQL the fixture's archives were made from, kept with the sample
/// environments (the workspace's `sample/`).
pub fn environment_sql() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../sample/ovirt-engine/environment.sql")
}

/// Run `environment.sql` as the superuser, as the README says:
/// `psql -X -v ON_ERROR_STOP=1 -d postgres -f environment.sql`. Its `\connect`
/// lines keep the socket, port and user of the first connection.
pub fn load_environment(cluster: &Cluster) {
    let out = Command::new(cluster.bindir().join("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-f"])
        .arg(environment_sql())
        .envs(cluster.superuser_env())
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "environment.sql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Connection as `user` over TCP with a scram password.
pub fn tcp(cluster: &Cluster, user: &str, password: &str, database: &str) -> ConnParams {
    ConnParams {
        host: cluster.host().to_string(),
        port: cluster.port(),
        user: user.to_string(),
        database: database.to_string(),
        password: Some(Password::new(password)),
        secured: false,
        secured_validation: false,
    }
}

pub fn engine(cluster: &Cluster, database: &str) -> ConnParams {
    tcp(cluster, "engine", ENGINE_PW, database)
}

pub fn dwh(cluster: &Cluster, database: &str) -> ConnParams {
    tcp(cluster, "ovirt_engine_history", DWH_PW, database)
}

fn readme() -> String {
    std::fs::read_to_string(fixture_dir().join("README.md")).expect("read fixture README")
}

/// The lines of the README between `### Database `<db>`` and the next heading.
fn section(db: &str) -> Vec<String> {
    let text = readme();
    let heading = format!("### Database `{db}`");
    text.lines()
        .skip_while(|l| *l != heading)
        .skip(1)
        .take_while(|l| !l.starts_with("#"))
        .map(str::to_string)
        .collect()
}

fn cells(line: &str) -> Vec<String> {
    line.trim()
        .trim_matches('|')
        .split('|')
        .map(|c| c.trim().trim_matches('`').to_string())
        .collect()
}

/// The README's "in archive" rows and checksums of every table and materialized view of `db`.
pub fn expected_checksums(db: &str) -> Vec<TableChecksum> {
    let mut sums: Vec<TableChecksum> = section(db)
        .iter()
        .filter(|l| l.starts_with("| `"))
        .map(|l| cells(l))
        .filter(|c| c[1] == "table" || c[1] == "materialized view")
        .map(|c| {
            let (schema, name) = c[0].split_once('.').unwrap();
            TableChecksum {
                schema: schema.to_string(),
                name: name.to_string(),
                kind: if c[1] == "table" {
                    RelationKind::Table
                } else {
                    RelationKind::MaterializedView
                },
                rows: c[2].parse().unwrap(),
                checksum: c[3].clone(),
            }
        })
        .collect();
    sums.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
    assert!(!sums.is_empty(), "no checksum rows for {db} in the README");
    sums
}

/// The README's sequence values of the `engine` database.
pub fn expected_engine_sequences() -> Vec<SequenceValue> {
    section("engine")
        .iter()
        .filter(|l| l.starts_with("| `"))
        .map(|l| cells(l))
        .filter(|c| c[1].parse::<i64>().is_ok())
        .map(|c| {
            let (schema, name) = c[0].split_once('.').unwrap();
            SequenceValue {
                schema: schema.to_string(),
                name: name.to_string(),
                last_value: c[1].parse().unwrap(),
                is_called: c[2] == "true",
            }
        })
        .collect()
}

/// The DWH sequence, which the README gives in prose:
/// "Sequence `public.host_hourly_history_history_id_seq`: last_value 3000, is_called true."
pub fn expected_dwh_sequences() -> Vec<SequenceValue> {
    let text = readme().replace('\n', " ");
    assert!(
        text.contains(
            "Sequence `public.host_hourly_history_history_id_seq`: last_value 3000, is_called true."
        ),
        "the README no longer states the DWH sequence this test expects"
    );
    vec![SequenceValue {
        schema: "public".into(),
        name: "host_hourly_history_history_id_seq".into(),
        last_value: 3000,
        is_called: true,
    }]
}

/// The README's large object (oid 70001, 24000 bytes).
pub fn expected_large_objects() -> Vec<LargeObject> {
    let text = readme();
    let row = text
        .lines()
        .find(|l| l.starts_with("| 70001 |"))
        .expect("large object row in the README");
    let c = cells(row);
    vec![LargeObject {
        oid: c[0].parse().unwrap(),
        length: c[2].parse().unwrap(),
        md5: c[3].clone(),
    }]
}
