//! `repo-bench`: the nightly scenario of the deduplicating repository, side by
//! side with restic and borg on the same dumps, in one run.
//!
//! A throwaway cluster gets the sample environment plus a `bench_events` table
//! of about `--mb` MiB of dump. Three nights:
//! 1. the initial backup;
//! 2. after 1 % of the rows changed in contiguous id runs ("clustered");
//! 3. after another 1 % changed at random ids ("random").
//!
//! Each night `holdfast repo backup` runs end to end (dumps + store), then the
//! snapshot's members are materialised into a directory and that same
//! directory is stored by holdfast's engine alone (both chunking presets), by `restic backup` and by
//! `borg create` (zstd level 3 everywhere), each into its own repository.
//! Reported per night and tool: wall time and repository growth on disk.
//!
//! `cargo run --release -p holdfast-bench --bin repo-bench -- [--mb 2048] [--work DIR]`
//! needs `restic` and `borg` (Debian: apt-get install restic borgbackup).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use holdfast::log::Log;
use holdfast::ops::repo::{backup, RepoBackupRequest};
use holdfast::profile::{Environment, InstallRoot, Profile};
use holdfast::repo::engine::SnapshotLabels;
use holdfast::repo::{Chunking, Repo, RepoLocation};
use holdfast::Password;

const PASSWORD: &str = "bench repository password";
/// Bytes one `bench_events` row takes in the dump (id, tab, 3×32 hex, a word, newline).
const ROW_BYTES: u64 = 120;

struct Options {
    mb: u64,
    work: Option<PathBuf>,
}

fn main() {
    if let Err(e) = run(parse_args()) {
        eprintln!("repo-bench: {e}");
        std::process::exit(1);
    }
}

fn parse_args() -> Options {
    let mut o = Options {
        mb: 2048,
        work: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--mb" => {
                o.mb = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--work" => o.work = Some(args.next().map(PathBuf::from).unwrap_or_else(|| usage())),
            _ => usage(),
        }
    }
    o
}

fn usage() -> ! {
    eprintln!("usage: repo-bench [--mb MIB] [--work DIR]");
    std::process::exit(2)
}

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

fn run(o: Options) -> BoxResult<()> {
    for tool in ["restic", "borg"] {
        if Command::new(tool).arg("--version").output().is_err() {
            return Err(
                format!("{tool} is not installed (apt-get install restic borgbackup)").into(),
            );
        }
    }
    let parent = o.work.clone().unwrap_or_else(std::env::temp_dir);
    let work = tempfile::Builder::new()
        .prefix("repo-bench.")
        .tempdir_in(&parent)?;
    let w = work.path();
    let cluster = pgsandbox::Cluster::start()?;
    holdfast::ops::demo::load_sample_databases(&cluster)?;
    std::fs::create_dir(w.join("root"))?;
    holdfast::ops::demo::write_sample_install_root(
        &w.join("root"),
        cluster.host(),
        cluster.port(),
    )?;

    let rows = o.mb * 1024 * 1024 / ROW_BYTES;
    let t = Instant::now();
    cluster.execute(
        "engine",
        &format!(
            "SET ROLE engine;
             CREATE TABLE bench_events (id bigint PRIMARY KEY, payload text NOT NULL);
             INSERT INTO bench_events
               SELECT g, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text) || ' ev' || (g % 97)
               FROM generate_series(1, {rows}) g;"
        ),
    )?;
    println!(
        "loaded {rows} rows (~{} MiB of dump) in {:.1} s",
        o.mb,
        t.elapsed().as_secs_f64()
    );

    let password = Password::new(PASSWORD);
    let password_file = w.join("password");
    std::fs::write(&password_file, PASSWORD)?;
    let mut hf_full = Repo::init(
        &RepoLocation::local(w.join("holdfast-e2e.repo")),
        &password,
        Chunking::Restic,
    )?;
    let mut hf_store = Repo::init(
        &RepoLocation::local(w.join("holdfast.repo")),
        &password,
        Chunking::Restic,
    )?;
    let mut hf_db = Repo::init(
        &RepoLocation::local(w.join("holdfast-db.repo")),
        &password,
        Chunking::Db,
    )?;
    let restic_repo = w.join("restic.repo");
    let borg_repo = w.join("borg.repo");
    tool(
        Command::new("restic")
            .args(["init", "--repository-version", "2", "--repo"])
            .arg(&restic_repo)
            .arg("--password-file")
            .arg(&password_file),
    )?;
    tool(
        Command::new("borg")
            .args(["init", "--encryption=repokey"])
            .arg(&borg_repo)
            .env("BORG_PASSPHRASE", PASSWORD),
    )?;

    let env = Environment::load(
        Profile::load("ovirt-engine")?,
        InstallRoot::new(w.join("root"))?,
    )?;
    let scopes = holdfast::ops::expand_scopes(&env, &[])?;
    let request = RepoBackupRequest {
        env,
        scopes,
        tmpdir: w.to_path_buf(),
        application_version: "4.5.7".into(),
        threads: 2,
    };
    let log = Log::create(&w.join("bench.log"))?;

    println!();
    println!(
        "{:<10} {:<26} {:>9} {:>14}",
        "night", "tool", "wall s", "repo growth"
    );
    let nights = [
        ("initial", None),
        (
            "clustered",
            Some("id IN (SELECT id FROM bench_events WHERE (id / 1000) % 100 = 42)"),
        ),
        (
            "random",
            Some("id IN (SELECT id FROM bench_events WHERE abs(hashint8(id) % 100) = 7)"),
        ),
    ];
    for (night, change) in nights {
        if let Some(which) = change {
            let t = Instant::now();
            cluster.execute(
                "engine",
                &format!("UPDATE bench_events SET payload = upper(payload) WHERE {which}"),
            )?;
            println!(
                "{night}: 1 % of rows updated in {:.1} s",
                t.elapsed().as_secs_f64()
            );
        }
        // holdfast end to end: dumps, checks, store.
        let before = du(&w.join("holdfast-e2e.repo"))?;
        let t = Instant::now();
        let outcome = backup(&mut hf_full, &request, &log)?;
        let secs = t.elapsed().as_secs_f64();
        report(
            night,
            "holdfast repo backup (e2e)",
            secs,
            du(&w.join("holdfast-e2e.repo"))? - before,
        );

        // The same dumps, for every tool.
        let dumps = w.join(format!("dumps-{night}"));
        hf_full.restore_files(&outcome.snapshot.id, &dumps)?;

        let before = du(&w.join("holdfast.repo"))?;
        let t = Instant::now();
        let labels = SnapshotLabels {
            profile: "ovirt-engine".into(),
            host: "bench".into(),
            scopes: vec!["all".into()],
            time: None,
        };
        hf_store.backup_dir(&dumps, &labels)?;
        let secs = t.elapsed().as_secs_f64();
        report(
            night,
            "holdfast (store only)",
            secs,
            du(&w.join("holdfast.repo"))? - before,
        );

        let before = du(&w.join("holdfast-db.repo"))?;
        let t = Instant::now();
        hf_db.backup_dir(&dumps, &labels)?;
        let secs = t.elapsed().as_secs_f64();
        report(
            night,
            "holdfast --chunking db",
            secs,
            du(&w.join("holdfast-db.repo"))? - before,
        );

        let before = du(&restic_repo)?;
        let t = Instant::now();
        tool(
            Command::new("restic")
                .args(["backup", "--no-cache", "--host", "bench", "--repo"])
                .arg(&restic_repo)
                .arg("--password-file")
                .arg(&password_file)
                .arg(".")
                .current_dir(&dumps),
        )?;
        let secs = t.elapsed().as_secs_f64();
        report(night, "restic backup", secs, du(&restic_repo)? - before);

        let before = du(&borg_repo)?;
        let t = Instant::now();
        tool(
            Command::new("borg")
                .args(["create", "--compression", "zstd,3"])
                .arg(format!("{}::{night}", borg_repo.display()))
                .arg(".")
                .current_dir(&dumps)
                .env("BORG_PASSPHRASE", PASSWORD),
        )?;
        let secs = t.elapsed().as_secs_f64();
        report(night, "borg create", secs, du(&borg_repo)? - before);
        std::fs::remove_dir_all(&dumps)?;
    }
    Ok(())
}

fn report(night: &str, tool: &str, secs: f64, growth: u64) {
    println!(
        "{night:<10} {tool:<26} {secs:>9.2} {:>14}",
        format!("{:.1} MiB", growth as f64 / (1024.0 * 1024.0))
    );
}

fn tool(cmd: &mut Command) -> BoxResult<()> {
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(format!(
            "{:?} failed: {}",
            cmd.get_program(),
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(())
}

/// Bytes of all files under `dir`.
fn du(dir: &Path) -> BoxResult<u64> {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let meta = e.metadata()?;
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                total += meta.len();
            }
        }
    }
    Ok(total)
}
