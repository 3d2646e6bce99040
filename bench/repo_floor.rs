//! The repository backup against its own floor, with medians: `holdfast repo
//! backup` end to end (dumps + store) next to dumping the same databases alone
//! and storing those dump files alone, each run into a fresh, empty repository
//! so that deduplication across runs does not flatter the later ones. Run by
//! the nightly scenario ([`crate::nightly::measure`]) on its cluster, before the
//! first night changes any row.
//!
//! Fairness of the two steps: holdfast's staging (`ops::repo::stage`) writes
//! the dumps as plain files and syncs none of them (the repository syncs what
//! it stores), so the dump-only step does not sync either, and both store
//! steps (store only, and the store inside end to end) pay the repository's
//! syncs.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use holdfast::log::Log;
use holdfast::ops::repo::{backup, RepoBackupRequest};
use holdfast::repo::engine::SnapshotLabels;
use holdfast::repo::{Chunking, Repo, RepoLocation};
use holdfast::Password;

use crate::measure::{run_tree, Sample};
use crate::nightly::du;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Dump every database given after the pg_dump path and the output directory
/// in parallel to `$out/<db>.dump`, uncompressed; fail if any dump fails.
pub const PARALLEL_DUMP_TO_FILES: &str = r#"
pg_dump="$1"; out="$2"; shift 2
pids=""
for db in "$@"; do "$pg_dump" -Fc -Z0 -d "$db" -f "$out/$db.dump" & pids="$pids $!"; done
for p in $pids; do wait "$p" || exit 1; done
"#;

/// The samples of each step, after one uncounted warm-up round of all three.
#[derive(Debug, Clone)]
pub struct FloorRuns {
    /// Parallel `pg_dump -Fc -Z0` of every database to files (with the peak
    /// memory of the dumps).
    pub dump: Vec<Sample>,
    /// `Repo::backup_dir` of those files into a fresh repository, in-process.
    pub store: Vec<Sample>,
    /// `ops::repo::backup` into a fresh repository, in-process.
    pub end_to_end: Vec<Sample>,
    /// Bytes of the dump files, of the repository after the store-only step,
    /// and of the repository after the end-to-end backup (last run each).
    pub dump_bytes: u64,
    pub store_bytes: u64,
    pub end_to_end_bytes: u64,
    /// The databases dumped (those of the request's scopes).
    pub databases: Vec<String>,
}

/// Measure the three steps `runs` times, interleaved (dump, store, end to end
/// within each run), after one warm-up round; `cluster` holds the request's
/// databases, and `password` encrypts the fresh repositories made under `work`.
pub fn measure(
    cluster: &pgsandbox::Cluster,
    request: &RepoBackupRequest,
    password: &Password,
    log: &Log,
    runs: usize,
    work: &Path,
    progress: &dyn Fn(&str),
) -> Result<FloorRuns, Error> {
    // The databases the backup dumps, chosen as its plan chooses them.
    let env = &request.env;
    let mut databases = Vec::new();
    for db in &env.profile.databases {
        if db.restore_only
            || !request.scopes.contains(&db.scope)
            || !env.condition_holds(db.enabled_if.as_ref())
        {
            continue;
        }
        if let Some(credentials) = env.database_credentials(db)? {
            databases.push(credentials.database);
        }
    }
    if databases.is_empty() {
        return Err("the environment backs up no database".into());
    }
    let dumps = work.join("floor-dumps");
    let repo_dir = work.join("floor.repo");
    let stderr = work.join("floor-stderr.txt");
    let labels = SnapshotLabels {
        profile: env.profile.name.clone(),
        host: "bench".into(),
        scopes: request.scopes.clone(),
        time: None,
    };
    let pg_dump = cluster.bindir().join("pg_dump");
    let mut floor = FloorRuns {
        dump: Vec::new(),
        store: Vec::new(),
        end_to_end: Vec::new(),
        dump_bytes: 0,
        store_bytes: 0,
        end_to_end_bytes: 0,
        databases,
    };
    for i in 0..=runs {
        let warmup = i == 0;
        let round = if warmup {
            "warm-up".to_string()
        } else {
            format!("run {i}/{runs}")
        };

        fresh_dir(&dumps)?;
        let dump = run_tree(
            Command::new("bash")
                .args(["-c", PARALLEL_DUMP_TO_FILES, "bench"])
                .arg(&pg_dump)
                .arg(&dumps)
                .args(&floor.databases)
                .envs(cluster.superuser_env())
                .stdout(Stdio::null()),
            &stderr,
            None,
        )?;
        let dump_bytes = du(&dumps)?;

        let store = in_fresh_repo(&repo_dir, password, &mut |repo| {
            repo.backup_dir(&dumps, &labels)?;
            Ok(())
        })?;
        let store_bytes = du(&repo_dir)?;
        std::fs::remove_dir_all(&repo_dir)?;
        std::fs::remove_dir_all(&dumps)?;

        let end_to_end = in_fresh_repo(&repo_dir, password, &mut |repo| {
            backup(repo, request, log)?;
            Ok(())
        })?;
        let end_to_end_bytes = du(&repo_dir)?;
        std::fs::remove_dir_all(&repo_dir)?;

        progress(&format!(
            "repository floor, {round}: dump only {:.2} s, store only {:.2} s, end to end {:.2} s",
            dump.wall.as_secs_f64(),
            store.wall.as_secs_f64(),
            end_to_end.wall.as_secs_f64()
        ));
        if !warmup {
            floor.dump.push(dump);
            floor.store.push(store);
            floor.end_to_end.push(end_to_end);
            floor.dump_bytes = dump_bytes;
            floor.store_bytes = store_bytes;
            floor.end_to_end_bytes = end_to_end_bytes;
        }
    }
    Ok(floor)
}

/// Time `store` into a repository initialised (untimed) at `dir`, which must
/// not exist yet; the repository is left for the caller to measure and remove.
fn in_fresh_repo(
    dir: &Path,
    password: &Password,
    store: &mut dyn FnMut(&mut Repo) -> Result<(), Error>,
) -> Result<Sample, Error> {
    let mut repo = Repo::init(&RepoLocation::local(dir), password, Chunking::Restic)?;
    let t = Instant::now();
    store(&mut repo)?;
    Ok(Sample {
        wall: t.elapsed(),
        peak_rss: 0,
    })
}

/// An empty directory at `p`.
fn fresh_dir(p: &Path) -> Result<(), Error> {
    match std::fs::remove_dir_all(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    std::fs::create_dir_all(p)?;
    Ok(())
}
