//! The benchmark's environment: an oVirt-like install (the engine and DWH
//! databases of holdfast's sample, an install root whose conf files point at
//! them, a tree of configuration files) grown to a chosen size with
//! pgbench-style accounts and tables of text, jsonb, bytea and wide rows, all
//! generated server-side from a seed, so the same options give the same data.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pgsandbox::Cluster;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The application version the sample install reports.
pub const VERSION: &str = holdfast_sample::SAMPLE_VERSION;

/// A database of the environment and the role that owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Database {
    pub name: &'static str,
    pub owner: &'static str,
    /// `--scope` of the ovirt-engine profile.
    pub scope: &'static str,
}

/// The two databases of the ovirt-engine profile that the sample configures.
pub const DATABASES: [Database; 2] = [
    Database {
        name: "engine",
        owner: "engine",
        scope: "db",
    },
    Database {
        name: "ovirt_engine_history",
        owner: "ovirt_engine_history",
        scope: "dwhdb",
    },
];

/// What to build.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// Target size of all databases together, in MiB (split evenly).
    pub size_mb: u64,
    pub seed: u32,
}

/// A built environment on a running cluster.
pub struct Environment {
    pub cluster: Cluster,
    /// The install root (conf files pointing at the cluster, files to back up).
    pub root: PathBuf,
    /// `pg_database_size` per database after the build, in bytes.
    pub sizes: Vec<(Database, u64)>,
    pub config_files: usize,
    pub build_time: Duration,
}

/// Rows of each generated table for a database of `bytes`, from measured
/// on-disk bytes per row (heap plus indexes) of each table.
#[derive(Debug, Clone, Copy)]
struct Rows {
    accounts: u64,
    docs: u64,
    blobs: u64,
    events: u64,
    wide: u64,
}

impl Rows {
    fn for_bytes(bytes: u64) -> Rows {
        let part = |share: f64, per_row: f64| ((bytes as f64 * share) / per_row).max(100.0) as u64;
        Rows {
            accounts: part(0.55, 150.0),
            docs: part(0.15, 700.0),
            blobs: part(0.12, 1150.0),
            events: part(0.10, 330.0),
            wide: part(0.08, 560.0),
        }
    }
}

/// Start a durable cluster, load the sample databases, grow them to
/// `spec.size_mb`, and write the install root under `workdir`.
pub fn build(spec: Spec, workdir: &Path) -> Result<Environment, Error> {
    let began = Instant::now();
    let shared_buffers_mb = (spec.size_mb / 2).clamp(128, 1024);
    let cluster = Cluster::builder()
        .durable()
        .setting("shared_buffers", &format!("{shared_buffers_mb}MB"))
        .setting("max_wal_size", "8GB")
        .setting("checkpoint_timeout", "30min")
        .setting("maintenance_work_mem", "256MB")
        .start()?;
    holdfast_sample::load_sample_databases(&cluster)?;
    let per_database = spec.size_mb * 1024 * 1024 / DATABASES.len() as u64;
    // One database per core: generation is CPU-bound in the server.
    std::thread::scope(|s| -> Result<(), Error> {
        let handles: Vec<_> = DATABASES
            .iter()
            .enumerate()
            .map(|(i, db)| {
                let cluster = &cluster;
                let seed = seed_value(spec.seed, i as u32);
                s.spawn(move || grow(cluster, db, Rows::for_bytes(per_database), seed))
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| "a data generation thread panicked")??;
        }
        Ok(())
    })?;
    for db in DATABASES {
        cluster.execute(db.name, "VACUUM ANALYZE")?;
    }
    cluster.execute("postgres", "CHECKPOINT")?;
    let root = workdir.join("install-root");
    fs::create_dir_all(&root)?;
    holdfast_sample::write_sample_install_root(&root, cluster.host(), cluster.port())?;
    let config_files = write_config_tree(&root, spec.seed)?;
    let mut sizes = Vec::new();
    for db in DATABASES {
        let bytes = cluster
            .query_text(
                "postgres",
                &format!(
                    "SELECT pg_database_size({})",
                    pgsandbox::quote_literal(db.name)
                ),
            )?
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        sizes.push((db, bytes));
    }
    Ok(Environment {
        cluster,
        root,
        sizes,
        config_files,
        build_time: began.elapsed(),
    })
}

/// `setseed` takes a value in [-1, 1]; each database gets its own.
fn seed_value(seed: u32, database: u32) -> f64 {
    let mixed = seed
        .wrapping_mul(2_654_435_761)
        .wrapping_add(database.wrapping_mul(97));
    mixed as f64 / u32::MAX as f64
}

/// Add the bulk tables to `db`, owned by its owner, in one session so that
/// `setseed` governs every `random()` call.
fn grow(cluster: &Cluster, db: &Database, rows: Rows, seed: f64) -> Result<(), Error> {
    let mut client = cluster.connect(db.name)?;
    let owner = pgsandbox::quote_ident(db.owner);
    let Rows {
        accounts,
        docs,
        blobs,
        events,
        wide,
    } = rows;
    let sql = format!(
        r#"
SET max_parallel_workers_per_gather = 0;
SET synchronous_commit = off;
SELECT setseed({seed});
SET ROLE {owner};

-- pgbench's accounts: blank filler, so it compresses ~35x like the real thing.
CREATE TABLE bench_accounts (aid integer NOT NULL, bid integer NOT NULL,
    abalance integer NOT NULL, filler character(84));
INSERT INTO bench_accounts
    SELECT i, 1 + (i - 1) / 100000, 0, '' FROM generate_series(1, {accounts}) i;
ALTER TABLE bench_accounts ADD PRIMARY KEY (aid);

-- Documents: sentences of 60 to 119 words drawn from a 30-word list.
CREATE TEMP TABLE sentences AS
    SELECT n, array_to_string(ARRAY(
        SELECT (ARRAY['virtual','machine','storage','domain','network','cluster',
                      'host','template','snapshot','disk','image','pool','quota',
                      'user','role','event','alert','engine','backup','restore',
                      'volume','lease','migration','memory','cpu','interface',
                      'bridge','label','affinity','policy'])[1 + floor(random() * 30)::int]
        FROM generate_series(1, 60 + n % 60)), ' ') AS s
    FROM generate_series(0, 4999) n;
CREATE TABLE bench_docs (id bigserial PRIMARY KEY, title text NOT NULL,
    body text NOT NULL, created timestamptz NOT NULL);
INSERT INTO bench_docs (title, body, created)
    SELECT 'document ' || i,
           s.s || CASE WHEN random() < 0.1 THEN ' ' || floor(random() * 1e6)::bigint ELSE '' END,
           timestamptz '2024-01-01 00:00:00+00' + i * interval '7 seconds'
    FROM generate_series(1, {docs}) i JOIN sentences s ON s.n = (i * 7919) % 5000
    ORDER BY i;

-- Blobs: 1 KiB of incompressible bytes each (32 sha256 values).
CREATE TABLE bench_blobs (id bigserial PRIMARY KEY, name text NOT NULL, data bytea NOT NULL);
INSERT INTO bench_blobs (name, data)
    SELECT 'blob-' || i,
           (SELECT string_agg(sha256(int8send(i * 32 + k + floor(random() * 1e9)::bigint)), ''::bytea)
            FROM generate_series(1, 32) k)
    FROM generate_series(1, {blobs}) i;

-- Events: jsonb documents with a GIN index.
CREATE TABLE bench_events (id bigserial PRIMARY KEY, payload jsonb NOT NULL);
INSERT INTO bench_events (payload)
    SELECT jsonb_build_object(
        'host', 'host-' || (i % 500),
        'kind', (ARRAY['start','stop','migrate','error','alert'])[1 + i % 5],
        'at', timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second',
        'severity', floor(random() * 5)::int,
        'metrics', jsonb_build_object('cpu', round((random() * 100)::numeric, 2),
                                      'mem_mb', floor(random() * 65536)::int),
        'tags', jsonb_build_array('t' || (i % 17), 't' || (i % 29)))
    FROM generate_series(1, {events}) i;
CREATE INDEX bench_events_payload ON bench_events USING gin (payload);

-- Wide rows: thirty columns of mixed types, like a VM configuration table.
CREATE TABLE bench_wide (
    id bigint PRIMARY KEY, vm_guid uuid NOT NULL, name text NOT NULL, description text,
    cluster_id integer, cpu_count integer, mem_mb bigint, disk_gb numeric(12,2),
    created timestamptz, updated timestamptz, is_stateless boolean, is_running boolean,
    os text, kernel_args text, custom_props text, origin smallint,
    m01 double precision, m02 double precision, m03 double precision, m04 double precision,
    m05 double precision, c01 integer, c02 integer, c03 integer, c04 integer, c05 integer,
    notes text, owner_guid uuid, priority integer, tags text[]);
INSERT INTO bench_wide
    SELECT i, md5('vm' || i)::uuid, 'vm-' || i,
           'virtual machine number ' || i || ' in cluster ' || (i % 40),
           i % 40, 1 + i % 16, 1024 * (1 + i % 64), round((random() * 2000)::numeric, 2),
           timestamptz '2023-01-01 00:00:00+00' + i * interval '13 seconds',
           timestamptz '2024-01-01 00:00:00+00' + floor(random() * 1e7) * interval '1 second',
           i % 3 = 0, random() < 0.7,
           (ARRAY['rhel9','rhel8','windows2022','debian12','ubuntu2404'])[1 + i % 5],
           'console=ttyS0 crashkernel=' || (128 + i % 4 * 64) || 'M',
           'sap_agent=' || (i % 2 = 0) || ';viodiskcache=writeback;' || md5((i * 3)::text),
           (i % 7)::smallint,
           random(), random() * 100, random() * 1000, random() * 1e6, random() * 1e9,
           floor(random() * 1e6)::int, i % 1000, i % 77, floor(random() * 100)::int, i,
           CASE WHEN i % 4 = 0 THEN NULL ELSE md5(i::text) || ' ' || md5((i + 1)::text) END,
           md5('owner' || (i % 300))::uuid, floor(random() * 100)::int,
           ARRAY['tag' || (i % 11), 'tag' || (i % 13)]
    FROM generate_series(1, {wide}) i;
RESET ROLE;
"#
    );
    client
        .batch_execute(&sql)
        .map_err(|e| format!("generating data in {}: {e}", db.name))?;
    Ok(())
}

/// A tree of configuration-like files under the profile's backed-up paths:
/// properties and XML files of deterministic, seed-dependent content (~3 MB).
fn write_config_tree(root: &Path, seed: u32) -> Result<usize, Error> {
    let mut state = u64::from(seed) | 1;
    let mut next = move || {
        // xorshift64: cheap, deterministic filler text.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut count = 0;
    for (dir, files, ext) in [
        ("etc/ovirt-engine/bench-tree", 300, "properties"),
        ("etc/ovirt-engine-dwh/bench-tree", 100, "xml"),
        ("var/lib/ovirt-engine/bench-state", 100, "json"),
    ] {
        for i in 0..files {
            let path = root.join(format!("{dir}/{:02}/item-{i:04}.{ext}", i % 10));
            fs::create_dir_all(path.parent().expect("has a parent"))?;
            let mut text = String::new();
            for line in 0..(80 + next() % 80) {
                let value = next();
                text.push_str(&format!(
                    "setting.{i}.{line}.{:x}={:016x}{}\n",
                    value % 4096,
                    value,
                    if value % 3 == 0 { " # tuned" } else { "" }
                ));
            }
            fs::write(&path, text)?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o640))?;
            count += 1;
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_counts_follow_the_size() {
        let small = Rows::for_bytes(100 << 20);
        let big = Rows::for_bytes(1000 << 20);
        assert!(big.accounts > small.accounts * 9 && big.accounts < small.accounts * 11);
        assert!(small.blobs > 10_000);
    }

    #[test]
    fn seeds_differ_per_database_and_stay_in_range() {
        let a = seed_value(42, 0);
        let b = seed_value(42, 1);
        assert_ne!(a, b);
        assert!((0.0..=1.0).contains(&a) && (0.0..=1.0).contains(&b));
        assert_eq!(a, seed_value(42, 0));
    }
}
