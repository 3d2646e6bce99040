//! `bench`: one run that builds an oVirt-like environment of a chosen size on a
//! durable throwaway cluster, then times, each several times after a warm-up,
//! the floor (what the server can emit, what the disk can take), engine-backup's
//! default pipeline done by hand, `engine-backup` and `holdfast backup` with
//! their defaults and variants, the restores, schema apply, the repository's
//! nightly scenario against restic and borg, and migrate against the manual
//! procedure; prints the table, the total wall time, and writes it to
//! `BENCHMARKS.md`.
//!
//! `cargo run --release -p holdfast-bench --bin bench -- [--quick] [--size-mb N] [--runs N]`

mod cases;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Parser;
use holdfast_bench::dataset::{self, Spec};
use holdfast_bench::machine::Machine;
use holdfast_bench::report::Report;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Benchmark holdfast against the floor and engine-backup's defaults.
#[derive(Debug, Parser)]
#[command(name = "bench")]
struct Args {
    /// A small dataset (64 MiB), for a run of a few minutes.
    #[arg(long)]
    quick: bool,
    /// Size of all databases together, in MiB (default 2048, or 64 with --quick).
    #[arg(long, value_name = "N")]
    size_mb: Option<u64>,
    /// Measured runs of each fast case, after one warm-up run per group
    /// (default 2).
    #[arg(long, value_name = "N")]
    runs: Option<usize>,
    /// Measured runs of the slow cases: the reference pipeline, engine-backup,
    /// holdfast restore --jobs 1 (default 1).
    #[arg(long, value_name = "N")]
    slow_runs: Option<usize>,
    /// MiB of dump in the repository's nightly scenario (default: an eighth of
    /// --size-mb, at least 16); 0 skips it.
    #[arg(long, value_name = "N")]
    repo_mb: Option<u64>,
    /// MB of the database migrated to another server (default: an eighth of
    /// --size-mb, at least 16); 0 skips it.
    #[arg(long, value_name = "N")]
    migrate_mb: Option<u64>,
    /// Seed of the generated data.
    #[arg(long, default_value_t = 42)]
    seed: u32,
    /// Stop `engine-backup --small-size` (xz -6 everywhere) after this many
    /// seconds (default 30, or 10 with --quick).
    #[arg(long, value_name = "SECONDS")]
    small_size_limit: Option<u64>,
    /// Where to write the markdown report.
    #[arg(long, value_name = "FILE", default_value = "BENCHMARKS.md")]
    output: PathBuf,
    /// Directory of the `holdfast` and `engine-backup` binaries (default: built
    /// with cargo next to this one).
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// Parent of the work directory (archives, dumps); default $TMPDIR.
    #[arg(long, value_name = "DIR")]
    workdir: Option<PathBuf>,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(args) {
        eprintln!("bench: error: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<(), Error> {
    let runs = args.runs.unwrap_or(2);
    let slow_runs = args.slow_runs.unwrap_or(1);
    if runs == 0 || slow_runs == 0 {
        return Err("--runs and --slow-runs must be at least 1".into());
    }
    let small_size_limit = args
        .small_size_limit
        .unwrap_or(if args.quick { 10 } else { 30 });
    let size_mb = args.size_mb.unwrap_or(if args.quick { 64 } else { 2048 });
    if size_mb < 20 {
        return Err("--size-mb must be at least 20".into());
    }
    let side_mb = (size_mb / 8).max(16);
    let started = Instant::now();
    let bins = binaries(args.bin_dir.as_deref())?;
    let parent = args.workdir.clone().unwrap_or_else(std::env::temp_dir);
    let work = tempfile::Builder::new()
        .prefix("holdfast-bench-")
        .tempdir_in(&parent)
        .map_err(|e| format!("create a work directory in {}: {e}", parent.display()))?;
    let date = chrono::Local::now().format("%Y-%m-%d %H:%M %Z").to_string();

    progress(
        started,
        &format!("building the dataset ({size_mb} MiB, seed {})", args.seed),
    );
    let env = dataset::build(
        Spec {
            size_mb,
            seed: args.seed,
        },
        work.path(),
    )?;
    let machine = Machine::describe(work.path(), env.cluster.bindir());
    progress(
        started,
        &format!(
            "dataset built in {:.0} s: {}",
            env.build_time.as_secs_f64(),
            env.sizes
                .iter()
                .map(|(db, b)| format!("{} {:.0} MB", db.name, *b as f64 / 1e6))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );

    let plan = cases::Plan {
        runs,
        slow_runs,
        small_size_limit: Duration::from_secs(small_size_limit),
        repo_mb: args.repo_mb.unwrap_or(side_mb),
        migrate_mb: args.migrate_mb.unwrap_or(side_mb),
    };
    let outcome = cases::run_all(&env, &bins, work.path(), &plan, &|m| progress(started, m))?;

    let mut dataset_lines = vec![
        format!(
            "Requested size {size_mb} MiB, seed {}; built in {:.0} s (server-side SQL: generate_series, md5, sha256, random with setseed).",
            args.seed,
            env.build_time.as_secs_f64()
        ),
        format!(
            "Cluster: pgsandbox, durable settings (fsync on), shared_buffers={}MB, max_wal_size=8GB, checkpoint_timeout=30min, maintenance_work_mem=256MB; clients connect over its unix socket, holdfast and engine-backup over TCP 127.0.0.1.",
            (size_mb / 2).clamp(128, 1024)
        ),
    ];
    for (db, bytes) in &env.sizes {
        dataset_lines.push(format!(
            "Database `{}` (owner `{}`): {:.0} MB (`pg_database_size`): the sample schema of `holdfast demo` plus bench_accounts (pgbench-style, blank filler), bench_docs (text from a 30-word list), bench_blobs (1 KiB incompressible bytea), bench_events (jsonb, GIN index), bench_wide (30 mixed columns).",
            db.name,
            db.owner,
            *bytes as f64 / 1e6
        ));
    }
    dataset_lines.push(format!(
        "Install root: the sample's conf files plus {} configuration-like files in etc/ovirt-engine, etc/ovirt-engine-dwh and var/lib/ovirt-engine.",
        env.config_files
    ));
    let mut command = "cargo run --release -p holdfast-bench --bin bench --".to_string();
    if args.quick {
        command.push_str(" --quick");
    }
    if let Some(n) = args.size_mb {
        command.push_str(&format!(" --size-mb {n}"));
    }
    for (flag, value) in [
        ("--runs", args.runs.map(|n| n as u64)),
        ("--slow-runs", args.slow_runs.map(|n| n as u64)),
        ("--repo-mb", args.repo_mb),
        ("--migrate-mb", args.migrate_mb),
    ] {
        if let Some(n) = value {
            command.push_str(&format!(" {flag} {n}"));
        }
    }
    let mut notes = outcome.notes;
    notes.push(format!(
        "Whole run, dataset build included: {:.1} min.",
        started.elapsed().as_secs_f64() / 60.0
    ));
    let report = Report {
        title: "holdfast benchmarks".into(),
        command,
        date,
        machine: machine.lines(),
        dataset: dataset_lines,
        rows: outcome.rows,
        notes,
    };
    println!("{}", report.text());
    for n in &report.notes {
        println!("- {n}");
    }
    std::fs::write(&args.output, report.markdown())
        .map_err(|e| format!("write {}: {e}", args.output.display()))?;
    progress(started, &format!("wrote {}", args.output.display()));
    println!(
        "Total wall time: {:.1} min",
        started.elapsed().as_secs_f64() / 60.0
    );
    if outcome.failures > 0 {
        return Err(format!(
            "{} case(s) failed; see the table and {}",
            outcome.failures,
            args.output.display()
        )
        .into());
    }
    Ok(())
}

/// The two command lines under test: `holdfast`, and `engine-backup`, the same
/// executable called by that name.
pub struct Binaries {
    pub holdfast: PathBuf,
    pub engine_backup: PathBuf,
}

/// Find `holdfast` and `engine-backup`: in `--bin-dir` (installed, with the
/// `engine-backup` link), or built now with the cargo that runs this benchmark,
/// in the same profile, so they are never stale, and linked as an install does.
fn binaries(dir: Option<&Path>) -> Result<Binaries, Error> {
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => {
            let exe = std::env::current_exe()?;
            let dir = exe
                .parent()
                .ok_or("the benchmark binary has no directory")?
                .to_path_buf();
            if let Some(cargo) = std::env::var_os("CARGO") {
                let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
                let mut build = Command::new(cargo);
                build
                    .args([
                        "build",
                        "-q",
                        "-p",
                        "holdfast-cli",
                        "--bins",
                        "--manifest-path",
                    ])
                    .arg(&manifest);
                if dir.ends_with("release") {
                    build.arg("--release");
                }
                let status = build.status()?;
                if !status.success() {
                    return Err("building holdfast-cli failed".into());
                }
            }
            link_engine_backup(&dir)?;
            dir
        }
    };
    let bins = Binaries {
        holdfast: dir.join("holdfast"),
        engine_backup: dir.join("engine-backup"),
    };
    for b in [&bins.holdfast, &bins.engine_backup] {
        if !b.is_file() {
            return Err(format!(
                "{} is missing; build it with `cargo build --release -p holdfast-cli` (and `ln -s holdfast engine-backup`) or pass --bin-dir",
                b.display()
            )
            .into());
        }
    }
    Ok(bins)
}

/// `dir/engine-backup` -> `holdfast`, replacing whatever is there (an older
/// build's separate binary).
fn link_engine_backup(dir: &Path) -> Result<(), Error> {
    let link = dir.join("engine-backup");
    if std::fs::read_link(&link).ok().as_deref() == Some(Path::new("holdfast")) {
        return Ok(());
    }
    let temp = dir.join(format!("engine-backup.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    std::os::unix::fs::symlink("holdfast", &temp)?;
    std::fs::rename(&temp, &link)?;
    Ok(())
}

fn progress(started: Instant, message: &str) {
    eprintln!("[{:>6.1} s] {message}", started.elapsed().as_secs_f64());
}
