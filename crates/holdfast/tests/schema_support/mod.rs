//! Shared fixtures of the schema runner tests: a throwaway cluster with an
//! application role and database, a synthetic scripts tree, and a snapshot of
//! everything a run can change.
#![allow(dead_code)]

use std::path::Path;

pub mod ovirt_like;

use holdfast::pg::ConnParams;
use holdfast::Password;
use holdfast_sample::schema::{script_body, script_name, SyntheticTree};
use pgsandbox::Cluster;

pub const APP_USER: &str = "engine";
pub const APP_PASSWORD: &str = "engine-Pw:with\\odd chars";

/// A cluster with role `engine` (scram over TCP) owning database `engine`.
pub struct Db {
    pub cluster: Cluster,
    pub params: ConnParams,
}

pub fn database() -> Db {
    let cluster = Cluster::start().expect("start a sandbox cluster");
    cluster.create_role(APP_USER, APP_PASSWORD).unwrap();
    cluster.create_database("engine", APP_USER).unwrap();
    let params = ConnParams {
        host: cluster.host().to_string(),
        port: cluster.port(),
        user: APP_USER.into(),
        database: "engine".into(),
        password: Some(Password::new(APP_PASSWORD)),
        secured: false,
        secured_validation: false,
    };
    Db { cluster, params }
}

impl Db {
    /// First column of the first row, as the superuser.
    pub fn q(&self, sql: &str) -> String {
        self.cluster
            .query_text("engine", sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .unwrap_or_default()
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.q(sql).parse().unwrap()
    }

    /// Everything a run can change: history, data, columns, views, functions,
    /// indexes, grants.
    pub fn snapshot(&self) -> String {
        self.q(
            "SELECT string_agg(x, E'\\n' ORDER BY x) FROM (
               SELECT 'sv:' || id || ':' || version || ':' || state || ':' || current || ':' || coalesce(checksum, '') || ':' || comment
                 FROM schema_version
               UNION ALL SELECT 'log:' || version FROM upgrade_log
               UNION ALL SELECT 'hook:' || kind || ':' || count(*) FROM hook_runs GROUP BY kind
               UNION ALL SELECT 'col:' || table_name || '.' || column_name || ':' || data_type || ':'
                                || coalesce(character_maximum_length::text, '')
                 FROM information_schema.columns WHERE table_schema = 'public'
               UNION ALL SELECT 'view:' || viewname || ':' || definition FROM pg_views WHERE schemaname = 'public'
               UNION ALL SELECT 'fn:' || p.oid::regprocedure::text || ':' || coalesce(p.proacl::text, '')
                 FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
               UNION ALL SELECT 'rel:' || relname || ':' || relkind::text || ':' || coalesce(relacl::text, '')
                 FROM pg_class WHERE relnamespace = 'public'::regnamespace
               UNION ALL SELECT 'opt:' || option_name || '=' || option_value || '@' || version FROM vdc_options
             ) s(x)",
        )
    }
}

/// Collects what the runner says.
#[derive(Default)]
pub struct Said(pub Vec<String>);

impl Said {
    pub fn sink(&mut self) -> impl FnMut(&str) + '_ {
        |line: &str| self.0.push(line.to_string())
    }
    pub fn contains(&self, text: &str) -> bool {
        self.0.iter().any(|l| l.contains(text))
    }
}

/// A synthetic tree of `series` written to a fresh temp dir.
pub fn tree(series: &[(u32, u32, u32)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    SyntheticTree {
        series: series.to_vec(),
    }
    .write(dir.path())
    .unwrap();
    dir
}

/// A small tree: 04_01 × 5 and 04_02 × 5 scripts (plus set_version).
pub fn small_tree() -> tempfile::TempDir {
    tree(&[(4, 1, 5), (4, 2, 5)])
}

/// Write `upgrade/<name>` with `body`.
pub fn put_script(dir: &Path, name: &str, body: &str) {
    std::fs::write(dir.join("upgrade").join(name), body).unwrap();
}

/// Write the generated script of a version (as the synthetic tree would).
pub fn put_generated(dir: &Path, major: u32, minor: u32, step: u32) {
    put_script(
        dir,
        &script_name(major, minor, step, &format!("step_{}", step / 10)),
        &script_body(major, minor, step),
    );
}
