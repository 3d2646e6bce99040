//! Migration of an application database to another server: `holdfast migrate`
//! against the manual procedure of the oVirt documentation
//! (`pg_dump -F c engine -f engine.dump`, create role and database,
//! `pg_restore -d engine engine.dump`, edit the conf file), side by side on the
//! same data, several runs of each, alternating: shared by `bench` (one
//! section of BENCHMARKS.md) and `migrate-bench` (on its own).
//!
//! All clusters run on this machine with PostgreSQL's durable settings (fsync
//! on); each run gets a fresh "remote" server, listening on another port.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use holdfast::log::Log;
use holdfast::ops::migrate::{self, MigrateRequest};
use holdfast::pg::ConnParams;
use holdfast::profile::{Environment, InstallRoot, Profile};
use holdfast::Password;
use pgsandbox::Cluster;

use crate::measure::{run_tree, Sample};

pub type Error = Box<dyn std::error::Error + Send + Sync>;

const PASSWORD: &str = "bench-engine-pw";

/// What the migration comparison measured, one sample per run of each
/// procedure.
#[derive(Debug, Clone)]
pub struct Migration {
    /// `pg_database_size` of the source database.
    pub database_bytes: u64,
    /// The manual procedure, whole (dump, role and database, restore); its
    /// peak memory is the larger of its two steps'.
    pub manual: Vec<Sample>,
    /// Its dump step and its restore step (with peak memory of each).
    pub manual_dump: Vec<Sample>,
    pub manual_restore: Vec<Sample>,
    /// Size of the manual procedure's dump file (last run).
    pub manual_dump_bytes: u64,
    /// `holdfast migrate`, whole (provisioning, dump, restore, comparison,
    /// conf rewrite), in-process: no peak memory.
    pub holdfast: Vec<Sample>,
    pub jobs: u32,
}

fn cluster() -> Result<Cluster, Error> {
    Ok(Cluster::builder()
        .durable()
        .setting("shared_buffers", "512MB")
        .setting("max_wal_size", "8GB")
        .setting("maintenance_work_mem", "256MB")
        .setting("checkpoint_timeout", "30min")
        .start()?)
}

/// An `engine` database of about `mb` megabytes: pgbench-style accounts plus
/// text, jsonb and bytea rows, generated server-side from a fixed seed.
fn fill(c: &Cluster, mb: u64) -> Result<(), Error> {
    c.create_role("engine", PASSWORD)?;
    c.create_database("engine", "engine")?;
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
    c.execute("engine", &sql)?;
    c.execute("engine", "VACUUM ANALYZE")?;
    Ok(())
}

fn root_for(dir: &Path, c: &Cluster) -> Result<InstallRoot, Error> {
    let root = dir.join("root");
    let conf = root.join("etc/ovirt-engine/engine.conf.d");
    std::fs::create_dir_all(&conf)?;
    std::fs::write(
        conf.join("10-setup-database.conf"),
        format!(
            "ENGINE_DB_HOST=\"127.0.0.1\"\nENGINE_DB_PORT=\"{}\"\nENGINE_DB_USER=\"engine\"\nENGINE_DB_PASSWORD=\"{PASSWORD}\"\nENGINE_DB_DATABASE=\"engine\"\n",
            c.port()
        ),
    )?;
    std::fs::write(
        root.join("etc/ovirt-engine-setup.conf"),
        "OVESETUP_ENGINE_CORE/enable=bool:True\n",
    )?;
    Ok(InstallRoot::new(&root)?)
}

/// Build an `engine` database of about `mb` MB, then migrate it `runs` times
/// by hand and `runs` times with `holdfast migrate --jobs jobs`, each run onto
/// a fresh server; work files go under `parent`.
///
/// The two procedures alternate, and which one goes first alternates from run
/// to run (manual first in odd runs, holdfast in even ones), so that a drift of
/// the machine (caches, background jobs, the source's hint bits) weighs on
/// both alike.
pub fn measure(
    mb: u64,
    jobs: u32,
    runs: usize,
    parent: &Path,
    progress: &dyn Fn(&str),
) -> Result<Migration, Error> {
    let source = cluster()?;
    let t = Instant::now();
    fill(&source, mb)?;
    let database_bytes: u64 = source
        .query_text("postgres", "SELECT pg_database_size('engine')")?
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    progress(&format!(
        "migrate: built a {:.0} MB engine database in {:.0} s",
        database_bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    ));
    let work = tempfile::Builder::new()
        .prefix("migrate-bench.")
        .tempdir_in(parent)?;
    let mut m = Migration {
        database_bytes,
        manual: Vec::new(),
        manual_dump: Vec::new(),
        manual_restore: Vec::new(),
        manual_dump_bytes: 0,
        holdfast: Vec::new(),
        jobs,
    };
    for run in 1..=runs {
        let manual_first = run % 2 == 1;
        for manual in [manual_first, !manual_first] {
            if manual {
                let (dump, restore, whole, bytes) = manual_procedure(&source, work.path())?;
                progress(&format!(
                    "migrate, run {run}/{runs}: manual procedure {:.1} s",
                    whole.wall.as_secs_f64()
                ));
                m.manual.push(whole);
                m.manual_dump.push(dump);
                m.manual_restore.push(restore);
                m.manual_dump_bytes = bytes;
            } else {
                let dir = work.path().join(format!("holdfast-{run}"));
                let sample = holdfast_migrate(&source, &dir, jobs)?;
                progress(&format!(
                    "migrate, run {run}/{runs}: holdfast migrate {:.1} s",
                    sample.wall.as_secs_f64()
                ));
                m.holdfast.push(sample);
            }
        }
    }
    Ok(m)
}

/// The documented manual procedure onto a fresh "remote" server (started
/// untimed): its dump step, its restore step, the whole, and the dump's size.
fn manual_procedure(source: &Cluster, work: &Path) -> Result<(Sample, Sample, Sample, u64), Error> {
    let target = cluster()?;
    let stderr = work.join("stderr.txt");
    let dump = work.join("engine.dump");
    let bindir = source.bindir().to_path_buf();
    let started = Instant::now();
    let dump_step = run_tree(
        Command::new(bindir.join("pg_dump"))
            .args(["-F", "c", "engine", "-f"])
            .arg(&dump)
            .envs(source.superuser_env())
            .stdout(Stdio::null()),
        &stderr,
        None,
    )?;
    target.execute(
        "postgres",
        &format!("CREATE ROLE engine LOGIN PASSWORD '{PASSWORD}'"),
    )?;
    target.execute(
        "postgres",
        "CREATE DATABASE engine OWNER engine TEMPLATE template0 ENCODING 'UTF8'",
    )?;
    let restore_step = run_tree(
        Command::new(bindir.join("pg_restore"))
            .args(["-d", "engine"])
            .arg(&dump)
            .envs(target.superuser_env())
            .stdout(Stdio::null()),
        &stderr,
        None,
    )?;
    let whole = Sample {
        wall: started.elapsed(),
        peak_rss: dump_step.peak_rss.max(restore_step.peak_rss),
    };
    let bytes = std::fs::metadata(&dump).map(|m| m.len()).unwrap_or(0);
    std::fs::remove_file(&dump)?;
    Ok((dump_step, restore_step, whole, bytes))
}

/// `holdfast migrate` onto a fresh server (started untimed), from an install
/// root of its own under `dir`: the migration rewrites the conf files to point
/// at the target, so a root is good for one run only.
fn holdfast_migrate(source: &Cluster, dir: &Path, jobs: u32) -> Result<Sample, Error> {
    let target = cluster()?;
    let env = Environment::load(Profile::ovirt_engine(), root_for(dir, source)?)?;
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
        jobs: holdfast::ops::Jobs::new(jobs)?,
        online: false,
        tmpdir: dir.to_path_buf(),
    };
    let log = Log::create(&dir.join("migrate.log"))?.quiet();
    let started = Instant::now();
    migrate::run(&req, &log)?;
    Ok(Sample {
        wall: started.elapsed(),
        peak_rss: 0,
    })
}
