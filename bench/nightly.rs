//! The deduplicating repository's nightly scenario, side by side with restic
//! and borg on the same dumps: shared by `bench` (one section of
//! BENCHMARKS.md) and `repo-bench` (on its own).
//!
//! A throwaway cluster gets the sample environment plus a `bench_events` table
//! of about `mb` MiB of dump. Three nights:
//! 1. the initial backup;
//! 2. after 1 % of the rows changed in contiguous id runs ("clustered");
//! 3. after another 1 % changed at random ids ("random").
//!
//! Each night `holdfast repo backup` runs end to end (dumps + store), then the
//! snapshot's members are materialised into a directory and that same
//! directory is stored by holdfast's engine alone (both chunking presets), by
//! `restic backup` and by `borg create` (zstd level 3 everywhere), each into
//! its own repository. Measured per night and tool: wall time and repository
//! growth on disk (and peak memory of the restic and borg processes).
//!
//! Before the first night, on the same data, [`crate::repo_floor`] measures
//! the end-to-end backup against dumping alone and storing alone, several
//! runs each into fresh repositories: the nights run once each and grow one
//! repository per tool, which says what dedup saves but gives no spread.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use holdfast::log::Log;
use holdfast::ops::repo::{backup, RepoBackupRequest};
use holdfast::profile::{Environment, InstallRoot, Profile};
use holdfast::repo::engine::SnapshotLabels;
use holdfast::repo::{Chunking, Repo, RepoLocation};
use holdfast::Password;

use crate::measure::{run_tree, Sample};
use crate::repo_floor::{self, FloorRuns};

pub type Error = Box<dyn std::error::Error + Send + Sync>;

const PASSWORD: &str = "bench repository password";
/// Bytes one `bench_events` row takes in the dump (id, tab, 3×32 hex, a word, newline).
const ROW_BYTES: u64 = 120;

/// The three nights, with the rows each one changes first.
pub const NIGHTS: [(&str, Option<&str>); 3] = [
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

/// One tool's store of one night.
#[derive(Debug, Clone)]
pub struct NightRun {
    pub night: &'static str,
    pub tool: &'static str,
    /// Wall time, and the peak memory of the tool's process tree where it ran
    /// as a process of its own (restic, borg); 0 for in-process runs.
    pub sample: Sample,
    /// Bytes the repository grew by.
    pub growth: u64,
}

impl NightRun {
    /// Whether `sample.peak_rss` was measured.
    pub fn memory_measured(&self) -> bool {
        self.sample.peak_rss > 0
    }
}

/// What the scenario measured: the floor runs on the initial data, then the
/// nights.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub floor: FloorRuns,
    pub nights: Vec<NightRun>,
}

/// The comparison tools of the scenario, each found on this machine or not.
#[derive(Debug, Clone, Copy)]
pub struct Comparisons {
    pub restic: bool,
    pub borg: bool,
}

impl Comparisons {
    /// Look for `restic` and `borg` on the PATH: each one that runs takes part.
    pub fn detect() -> Comparisons {
        let runs = |tool: &str, version: &str| {
            Command::new(tool)
                .arg(version)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        Comparisons {
            restic: runs("restic", "version"),
            borg: runs("borg", "--version"),
        }
    }

    /// One line per tool left out, saying how to bring it in.
    pub fn skipped(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if !self.restic {
            notes.push("restic is not installed, so its rows are left out of the repository comparison (Debian: apt-get install restic)".to_string());
        }
        if !self.borg {
            notes.push("borg is not installed, so its rows are left out of the repository comparison (Debian: apt-get install borgbackup)".to_string());
        }
        notes
    }
}

/// With a `bench_events` table of about `mb` MiB of dump, in a work directory
/// under `parent`: the floor's `runs` runs (see [`repo_floor`]), then the three
/// nights. holdfast always runs; restic and borg where `tools` found them.
pub fn measure(
    mb: u64,
    runs: usize,
    parent: &Path,
    tools: Comparisons,
    progress: &dyn Fn(&str),
) -> Result<Scenario, Error> {
    let work = tempfile::Builder::new()
        .prefix("repo-bench.")
        .tempdir_in(parent)?;
    let w = work.path();
    let cluster = pgsandbox::Cluster::start()?;
    holdfast_sample::load_sample_databases(&cluster)?;
    std::fs::create_dir(w.join("root"))?;
    holdfast_sample::write_sample_install_root(&w.join("root"), cluster.host(), cluster.port())?;

    let rows = mb * 1024 * 1024 / ROW_BYTES;
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
    progress(&format!(
        "repository: loaded {rows} rows (~{mb} MiB of dump) in {:.1} s",
        t.elapsed().as_secs_f64()
    ));

    let password = Password::new(PASSWORD);
    let password_file = w.join("password");
    std::fs::write(&password_file, PASSWORD)?;
    let e2e_repo = w.join("holdfast-e2e.repo");
    let store_repo = w.join("holdfast.repo");
    let db_repo = w.join("holdfast-db.repo");
    let restic_repo = w.join("restic.repo");
    let borg_repo = w.join("borg.repo");
    let mut hf_full = Repo::init(&RepoLocation::local(&e2e_repo), &password, Chunking::Restic)?;
    let mut hf_store = Repo::init(
        &RepoLocation::local(&store_repo),
        &password,
        Chunking::Restic,
    )?;
    let mut hf_db = Repo::init(&RepoLocation::local(&db_repo), &password, Chunking::Db)?;
    let stderr = w.join("tool-stderr.txt");
    if tools.restic {
        run_tree(
            Command::new("restic")
                .args(["init", "--repository-version", "2", "--repo"])
                .arg(&restic_repo)
                .arg("--password-file")
                .arg(&password_file)
                .stdout(Stdio::null()),
            &stderr,
            None,
        )?;
    }
    if tools.borg {
        run_tree(
            Command::new("borg")
                .args(["init", "--encryption=repokey"])
                .arg(&borg_repo)
                .env("BORG_PASSPHRASE", PASSWORD)
                .stdout(Stdio::null()),
            &stderr,
            None,
        )?;
    }

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
        // As the compared restic run: the dumps only.
        role_passwords: holdfast::ops::request::RolePasswords::NotRead,
    };
    let log = Log::create(&w.join("bench.log"))?.quiet();
    let in_process = |f: &mut dyn FnMut() -> Result<(), Error>| -> Result<Sample, Error> {
        let t = Instant::now();
        f()?;
        Ok(Sample {
            wall: t.elapsed(),
            peak_rss: 0,
        })
    };

    let floor = repo_floor::measure(&cluster, &request, &password, &log, runs, w, progress)?;

    let mut nights = Vec::new();
    for (night, change) in NIGHTS {
        if let Some(which) = change {
            let t = Instant::now();
            cluster.execute(
                "engine",
                &format!("UPDATE bench_events SET payload = upper(payload) WHERE {which}"),
            )?;
            progress(&format!(
                "repository, {night}: 1 % of rows updated in {:.1} s",
                t.elapsed().as_secs_f64()
            ));
        }
        let mut record = |tool: &'static str, repo: &Path, sample: Sample, before: u64| {
            let growth = du(repo)?.saturating_sub(before);
            progress(&format!(
                "repository, {night}: {tool} {:.2} s, +{:.1} MiB",
                sample.wall.as_secs_f64(),
                growth as f64 / 1048576.0
            ));
            nights.push(NightRun {
                night,
                tool,
                sample,
                growth,
            });
            Ok::<(), Error>(())
        };

        // holdfast end to end: dumps, checks, store.
        let before = du(&e2e_repo)?;
        let mut outcome = None;
        let sample = in_process(&mut || {
            outcome = Some(backup(&mut hf_full, &request, &log)?);
            Ok(())
        })?;
        record(
            "holdfast repo backup (end to end)",
            &e2e_repo,
            sample,
            before,
        )?;
        let snapshot = outcome.expect("backup ran").snapshot.id;

        // The same dumps, for every tool.
        let dumps = w.join(format!("dumps-{night}"));
        hf_full.restore_files(&snapshot, &dumps)?;
        let labels = SnapshotLabels {
            profile: "ovirt-engine".into(),
            host: "bench".into(),
            scopes: vec!["all".into()],
            time: None,
        };
        for (tool, repo, store) in [
            ("holdfast store only", &store_repo, &mut hf_store),
            ("holdfast store only, db chunking", &db_repo, &mut hf_db),
        ] {
            let before = du(repo)?;
            let sample = in_process(&mut || {
                store.backup_dir(&dumps, &labels)?;
                Ok(())
            })?;
            record(tool, repo, sample, before)?;
        }

        if tools.restic {
            let before = du(&restic_repo)?;
            let sample = run_tree(
                Command::new("restic")
                    .args(["backup", "--no-cache", "--host", "bench", "--repo"])
                    .arg(&restic_repo)
                    .arg("--password-file")
                    .arg(&password_file)
                    .arg(".")
                    .current_dir(&dumps)
                    .stdout(Stdio::null()),
                &stderr,
                None,
            )?;
            record("restic backup", &restic_repo, sample, before)?;
        }
        if tools.borg {
            let before = du(&borg_repo)?;
            let sample = run_tree(
                Command::new("borg")
                    .args(["create", "--compression", "zstd,3"])
                    .arg(format!("{}::{night}", borg_repo.display()))
                    .arg(".")
                    .current_dir(&dumps)
                    .env("BORG_PASSPHRASE", PASSWORD)
                    .stdout(Stdio::null()),
                &stderr,
                None,
            )?;
            record("borg create", &borg_repo, sample, before)?;
        }
        std::fs::remove_dir_all(&dumps)?;
    }
    Ok(Scenario { floor, nights })
}

/// Bytes of all files under `dir`.
pub(crate) fn du(dir: &Path) -> Result<u64, Error> {
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
