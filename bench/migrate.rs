//! Migration of an application database to another server: `holdfast migrate`
//! against the manual procedure of the oVirt documentation
//! (`pg_dump -F c engine -f engine.dump`, create role and database,
//! `pg_restore -d engine engine.dump`, edit the conf file), measured side by side
//! on the same data in one run.
//!
//! `cargo run --release -p holdfast-bench --bin migrate-bench -- [--size-mb N] [--jobs N]`
//!
//! Both clusters run on this machine with PostgreSQL's durable settings (fsync
//! on); the "remote" server listens on another port.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use holdfast::log::Log;
use holdfast::ops::migrate::{self, MigrateRequest};
use holdfast::pg::ConnParams;
use holdfast::profile::{Environment, InstallRoot, Profile};
use holdfast::Password;
use pgsandbox::Cluster;

const PASSWORD: &str = "bench-engine-pw";

fn cluster() -> Cluster {
    Cluster::builder()
        .durable()
        .setting("shared_buffers", "512MB")
        .setting("max_wal_size", "8GB")
        .setting("maintenance_work_mem", "256MB")
        .setting("checkpoint_timeout", "30min")
        .start()
        .expect("start a cluster")
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// An `engine` database of about `mb` megabytes: pgbench-style accounts plus
/// text, jsonb and bytea rows, generated server-side from a fixed seed.
fn fill(c: &Cluster, mb: u64) {
    c.create_role("engine", PASSWORD).unwrap();
    c.create_database("engine", "engine").unwrap();
    let accounts = mb * 1_000_000 * 3 / 4 / 130;
    let docs = mb * 1_000_000 / 4 / 600;
    let sql = format!(
        "SELECT setseed(0.42);
         CREATE TABLE accounts (aid bigint PRIMARY KEY, bid int, abalance int, filler char(84));
         INSERT INTO accounts SELECT g, g % 100, (random() * 10000)::int, '' FROM generate_series(1, {accounts}) g;
         CREATE TABLE docs (id bigserial PRIMARY KEY, title text, body text, meta jsonb, blob bytea);
         INSERT INTO docs (title, body, meta, blob)
           SELECT 'doc ' || g, repeat(md5(g::text), 8), jsonb_build_object('n', g, 'tag', md5((g % 97)::text)),
                  decode(md5(g::text) || md5((g + 1)::text), 'hex')
             FROM generate_series(1, {docs}) g;
         CREATE INDEX docs_meta ON docs USING gin (meta);
         ALTER TABLE accounts OWNER TO engine; ALTER TABLE docs OWNER TO engine;
         ALTER SEQUENCE docs_id_seq OWNER TO engine;"
    );
    c.execute("engine", &sql).unwrap();
    c.execute("engine", "VACUUM ANALYZE").unwrap();
}

fn root_for(dir: &Path, c: &Cluster) -> InstallRoot {
    let root = dir.join("root");
    let conf = root.join("etc/ovirt-engine/engine.conf.d");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("10-setup-database.conf"),
        format!(
            "ENGINE_DB_HOST=\"127.0.0.1\"\nENGINE_DB_PORT=\"{}\"\nENGINE_DB_USER=\"engine\"\nENGINE_DB_PASSWORD=\"{PASSWORD}\"\nENGINE_DB_DATABASE=\"engine\"\n",
            c.port()
        ),
    )
    .unwrap();
    std::fs::write(
        root.join("etc/ovirt-engine-setup.conf"),
        "OVESETUP_ENGINE_CORE/enable=bool:True\n",
    )
    .unwrap();
    InstallRoot::new(&root).unwrap()
}

fn psql(c: &Cluster, sql: &str) {
    c.execute("postgres", sql).unwrap();
}

fn time(what: &str, f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    let d = t.elapsed();
    println!("  {what}: {:.1} s", d.as_secs_f64());
    d
}

fn main() {
    let mb = arg("--size-mb", 1000);
    let jobs = arg("--jobs", 2) as u32;
    let source = cluster();
    println!("Building a ~{mb} MB engine database (fixed seed)...");
    let t = Instant::now();
    fill(&source, mb);
    let size = source
        .query_text(
            "postgres",
            "SELECT pg_size_pretty(pg_database_size('engine'))",
        )
        .unwrap()
        .unwrap_or_default();
    println!("  built {size} in {:.0} s", t.elapsed().as_secs_f64());
    let work = tempfile::tempdir().unwrap();

    // The documented manual procedure, on a fresh "remote" server.
    println!("Manual procedure (pg_dump -F c, create role and database, pg_restore):");
    let manual_target = cluster();
    let dump = work.path().join("engine.dump");
    let bindir = source.bindir().to_path_buf();
    let manual = time("total", || {
        time("pg_dump -F c engine -f engine.dump", || {
            let st = Command::new(bindir.join("pg_dump"))
                .args(["-F", "c", "engine", "-f"])
                .arg(&dump)
                .envs(source.superuser_env())
                .status()
                .unwrap();
            assert!(st.success());
        });
        psql(
            &manual_target,
            &format!("CREATE ROLE engine LOGIN PASSWORD '{PASSWORD}'"),
        );
        psql(
            &manual_target,
            "CREATE DATABASE engine OWNER engine TEMPLATE template0 ENCODING 'UTF8'",
        );
        time("pg_restore -d engine engine.dump", || {
            let st = Command::new(bindir.join("pg_restore"))
                .args(["-d", "engine"])
                .arg(&dump)
                .envs(manual_target.superuser_env())
                .status()
                .unwrap();
            assert!(st.success());
        });
    });
    let dump_size = std::fs::metadata(&dump).map(|m| m.len()).unwrap_or(0);
    drop(manual_target);
    let _ = std::fs::remove_file(&dump);

    println!("holdfast migrate (jobs {jobs}: provision, dump in a snapshot, restore, compare every table, rewrite the conf):");
    let target = cluster();
    let env = Environment::load(Profile::ovirt_engine(), root_for(work.path(), &source)).unwrap();
    let req = MigrateRequest {
        env,
        scope: "db".into(),
        target: ConnParams {
            host: "127.0.0.1".into(),
            port: target.port(),
            user: "engine".into(),
            database: "engine".into(),
            password: Some(Password::new(PASSWORD)),
            secured: false,
            secured_validation: false,
        },
        admin: Some(ConnParams {
            host: target.socket_dir().display().to_string(),
            port: target.port(),
            user: "postgres".into(),
            database: "postgres".into(),
            password: None,
            secured: false,
            secured_validation: false,
        }),
        jobs,
        online: false,
        tmpdir: work.path().to_path_buf(),
    };
    let log = Log::create(&work.path().join("migrate.log"))
        .unwrap()
        .quiet();
    let holdfast = time("total", || {
        migrate::run(&req, &log).expect("migrate");
    });
    println!();
    println!("| procedure | wall s | notes |");
    println!("|---|---|---|");
    println!(
        "| manual (pg_dump -Fc, pg_restore, 1 job) | {:.1} | dump file {} MB, no verification, conf edited by hand |",
        manual.as_secs_f64(),
        dump_size / 1_000_000
    );
    println!(
        "| holdfast migrate --jobs {jobs} | {:.1} | includes provisioning, checksums of every table on both sides, conf rewrite |",
        holdfast.as_secs_f64()
    );
    println!(
        "| ratio holdfast / manual | {:.2} | |",
        holdfast.as_secs_f64() / manual.as_secs_f64()
    );
}
