//! The cases `bench` measures, in order: backups (floor, reference pipeline,
//! engine-backup, holdfast, zstd levels), the restores (bare pg_restore, the
//! reference, holdfast with 1 and 2 jobs) into cleaned databases, schema
//! apply, the repository's nightly scenario against restic and borg, and
//! migrate against the manual procedure; then the ratios and the notes.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use holdfast_bench::dataset::{Environment, DATABASES, VERSION};
use holdfast_bench::measure::{run_tree, RunError, Sample, Stats};
use holdfast_bench::repo_floor::{self, PARALLEL_DUMP_TO_FILES};
use holdfast_bench::report::{Group, Row};
use holdfast_bench::{migration, nightly, schema_apply, timeline};

use crate::{Binaries, Error};

/// How much to measure.
pub struct Plan {
    /// Measured runs of the fast cases (after the warm-up of each group).
    pub runs: usize,
    /// Measured runs of the slow cases: the reference pipeline, engine-backup,
    /// holdfast restore with one job.
    pub slow_runs: usize,
    pub small_size_limit: Duration,
    /// MiB of dump in the repository's nightly scenario; 0 skips it.
    pub repo_mb: u64,
    /// MB of the migrated database; 0 skips the migration.
    pub migrate_mb: u64,
}

/// The rows, the generated notes, and how many cases failed.
pub struct Outcome {
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
    pub failures: usize,
}

/// Dump every database given after the pg_dump path in parallel, each to
/// /dev/null; fail if any dump fails.
const PARALLEL_DUMP_TO_NULL: &str = r#"
pg_dump="$1"; shift
pids=""
for db in "$@"; do "$pg_dump" -Fc -Z0 -d "$db" > /dev/null & pids="$pids $!"; done
for p in $pids; do wait "$p" || exit 1; done
"#;

/// Write the given files' bytes to `$out` in one sequential stream and fsync.
const RAW_WRITE: &str = r#"
set -e -o pipefail
out="$1"; shift
cat "$@" | dd of="$out" bs=4M iflag=fullblock conv=fsync status=none
"#;

/// `pg_dump -Z0 | zstd -LEVEL` for every database in parallel, fsynced.
const PARALLEL_DUMP_ZSTD: &str = r#"
pg_dump="$1"; level="$2"; out="$3"; shift 3
pids=""
for db in "$@"; do
  (set -o pipefail; "$pg_dump" -Fc -Z0 -d "$db" | zstd -q -T0 "-$level" -o "$out/$db.zst" && sync "$out/$db.zst") &
  pids="$pids $!"
done
for p in $pids; do wait "$p" || exit 1; done
"#;

/// engine-backup's default pipeline by hand: files tar | xz, each database
/// `pg_dump -Fc` (gzip inside) one after the other as engine-backup does, then
/// the outer tar with gzip, fsynced.
const REFERENCE_BACKUP: &str = r#"
set -e -o pipefail
bindir="$1"; root="$2"; tmp="$3"; out="$4"; engine="$5"; dwh="$6"
mkdir -p "$tmp/db"
tar -C "$root" --exclude=var/lib/ovirt-engine/backups -cpf - etc var/lib/ovirt-engine | xz > "$tmp/files"
"$bindir/pg_dump" -Fc -d "$engine" -f "$tmp/db/engine_backup.db"
"$bindir/pg_dump" -Fc -d "$dwh" -f "$tmp/db/dwh_backup.db"
tar -C "$tmp" -czf "$out" files db
sync "$out"
"#;

/// The reference restore: unpack the outer tar and the files, then
/// `pg_restore -j 2` each database.
const REFERENCE_RESTORE: &str = r#"
set -e -o pipefail
bindir="$1"; archive="$2"; tmp="$3"; engine="$4"; dwh="$5"
mkdir -p "$tmp/files.d"
tar -C "$tmp" -xzf "$archive"
tar -C "$tmp/files.d" -xJf "$tmp/files"
"$bindir/pg_restore" -j 2 -d "$engine" "$tmp/db/engine_backup.db"
"$bindir/pg_restore" -j 2 -d "$dwh" "$tmp/db/dwh_backup.db"
"#;

/// `pg_restore -j 2` of each uncompressed dump into its database.
const BARE_RESTORE: &str = r#"
set -e
bindir="$1"; dir="$2"; shift 2
for db in "$@"; do "$bindir/pg_restore" -j 2 -d "$db" "$dir/$db.dump"; done
"#;

/// What one case runs and how often.
struct Case<'a> {
    group: Group,
    name: &'a str,
    shown: String,
    runs: usize,
    warmups: usize,
    limit: Option<Duration>,
}

/// What the cases' commands run against.
struct Ctx<'a> {
    env: &'a Environment,
    bins: &'a Binaries,
    work: &'a Path,
    progress: &'a dyn Fn(&str),
}

/// Runs cases and collects their rows.
struct Recorder<'a> {
    ctx: &'a Ctx<'a>,
    rows: Vec<Row>,
    failures: usize,
}

/// Measure every case; see the module comment for the order.
pub fn run_all(
    env: &Environment,
    bins: &Binaries,
    work: &Path,
    plan: &Plan,
    progress: &dyn Fn(&str),
) -> Result<Outcome, Error> {
    let ctx = Ctx {
        env,
        bins,
        work,
        progress,
    };
    let mut r = Recorder {
        ctx: &ctx,
        rows: Vec::new(),
        failures: 0,
    };
    let runs = plan.runs;
    let slow_runs = plan.slow_runs;
    let dbs: Vec<String> = DATABASES.iter().map(|d| d.name.to_string()).collect();
    let pg_dump = env.cluster.bindir().join("pg_dump");
    let bindir = env.cluster.bindir().to_path_buf();
    let nothing = &mut || Ok(());

    // --- The floor: what the server emits, what the disk takes.
    r.measure(
        Case::timed(Group::Backup, "floor: dump all databases in parallel", runs)
            .warmed()
            .shown("pg_dump -Fc -Z0 -d DB > /dev/null (every database at once)".into()),
        nothing,
        &|| ctx.script(PARALLEL_DUMP_TO_NULL, &[path_str(&pg_dump)], &dbs),
        None,
    );
    let z0 = work.join("z0");
    r.measure(
        Case::timed(Group::Backup, "pg_dump -Z0 to files, in parallel", runs)
            .shown("pg_dump -Fc -Z0 -d DB -f DIR/DB.dump (every database at once)".into()),
        &mut || fresh_dir(&z0),
        &|| {
            ctx.script(
                PARALLEL_DUMP_TO_FILES,
                &[path_str(&pg_dump), path_str(&z0)],
                &dbs,
            )
        },
        Some(&z0),
    );
    let z0_files: Vec<String> = dbs
        .iter()
        .map(|d| path_str(&z0.join(format!("{d}.dump"))))
        .collect();
    let raw = work.join("raw-write");
    r.measure(
        Case::timed(Group::Backup, "floor: raw write of the dump bytes", runs)
            .shown("cat DIR/*.dump | dd of=FILE bs=4M conv=fsync".into()),
        &mut || remove(&raw),
        &|| ctx.script(RAW_WRITE, &[path_str(&raw)], &z0_files),
        Some(&raw),
    );

    // --- The reference pipeline and the two command lines.
    let reference = work.join("reference.backup");
    let reference_tmp = work.join("reference.d");
    r.measure(
        Case::timed(
            Group::Backup,
            "reference: engine-backup defaults by hand",
            slow_runs,
        )
        .shown("tar files | xz; pg_dump -Fc (gzip-6) each database in turn; tar -cz; sync".into()),
        &mut || {
            remove(&reference)?;
            fresh_dir(&reference_tmp)
        },
        &|| {
            ctx.script(
                REFERENCE_BACKUP,
                &[
                    path_str(&bindir),
                    path_str(&env.root),
                    path_str(&reference_tmp),
                    path_str(&reference),
                ],
                &dbs,
            )
        },
        Some(&reference),
    );
    let eb_default = work.join("engine-backup-default.backup");
    r.measure(
        Case::timed(
            Group::Backup,
            "engine-backup --mode=backup (defaults)",
            slow_runs,
        )
        .shown("engine-backup --mode=backup --file=F --log=L".into()),
        &mut || remove(&eb_default),
        &|| ctx.engine_backup("backup", &eb_default, &[]),
        Some(&eb_default),
    );
    let hf_default = work.join("holdfast-default.backup");
    r.measure(
        Case::timed(Group::Backup, "holdfast backup (defaults)", runs)
            .shown("holdfast backup --file F --log L".into()),
        &mut || remove(&hf_default),
        &|| ctx.holdfast_backup(&hf_default, &[]),
        Some(&hf_default),
    );
    let backup_steps = timeline::slow_steps(&timeline::last_run(&work.join("holdfast.log")));
    let hf_level = work.join("holdfast-level.backup");
    r.measure(
        Case::timed(
            Group::Backup,
            "holdfast backup --compress-level 3",
            slow_runs,
        )
        .shown("holdfast backup --compress-level 3 --file F --log L".into()),
        &mut || remove(&hf_level),
        &|| ctx.holdfast_backup(&hf_level, &["--compress-level", "3"]),
        Some(&hf_level),
    );
    remove(&hf_level)?;
    let zstd_dir = work.join("zstd");
    for level in [1, 3] {
        r.measure(
            Case::timed(
                Group::Backup,
                &format!("pg_dump -Z0 | zstd -{level}, in parallel"),
                if level == 1 { runs } else { slow_runs },
            )
            .shown(format!(
                "pg_dump -Fc -Z0 -d DB | zstd -T0 -{level} -o DIR/DB.zst; sync (every database at once)"
            )),
            &mut || fresh_dir(&zstd_dir),
            &|| {
                ctx.script(
                    PARALLEL_DUMP_ZSTD,
                    &[path_str(&pg_dump), level.to_string(), path_str(&zstd_dir)],
                    &dbs,
                )
            },
            Some(&zstd_dir),
        );
    }
    let eb_small = work.join("engine-backup-small.backup");
    r.measure(
        Case {
            group: Group::Backup,
            name: "engine-backup --small-size",
            shown: "engine-backup --mode=backup --small-size --file=F --log=L".into(),
            runs: 1,
            warmups: 0,
            limit: Some(plan.small_size_limit),
        },
        &mut || remove(&eb_small),
        &|| ctx.engine_backup("backup", &eb_small, &["--small-size"]),
        Some(&eb_small),
    );
    remove(&eb_small)?;
    fresh_dir(&zstd_dir)?;
    remove(&raw)?;

    // --- What went in, to compare with what comes back. The server-side scan
    // is what backups computed for their manifest before they took the
    // fingerprints from the dump stream; both are timed here.
    (ctx.progress)("checksumming the source tables");
    let checksum_started = Instant::now();
    let source = checksums(env)?;
    let checksum_time = checksum_started.elapsed();
    r.in_process(
        "server-side table fingerprints (h64:), all databases in parallel",
        "holdfast::pg::inspect::table_fingerprints (a second scan of every table; backups no longer run it)",
        checksum_time,
    );
    (ctx.progress)("fingerprinting the rows of the -Z0 dumps");
    let stream_started = Instant::now();
    let stream_tables = stream_fingerprints(&z0_files)?;
    r.in_process(
        "row fingerprints from the -Z0 dump bytes, all databases in parallel",
        &format!("holdfast::pg::custom_format::table_row_sums on DIR/DB.dump ({stream_tables} tables; what holdfast backup computes as the dump streams)"),
        stream_started.elapsed(),
    );

    // --- Restores, each into freshly created databases.
    let reference_restore_tmp = work.join("reference-restore.d");
    r.measure(
        Case::timed(Group::Restore, "bare pg_restore -j 2 of -Z0 dumps", runs)
            .warmed()
            .shown("pg_restore -j 2 -d DB DIR/DB.dump (each database in turn)".into()),
        &mut || ctx.clean_databases(),
        &|| ctx.script(BARE_RESTORE, &[path_str(&bindir), path_str(&z0)], &dbs),
        None,
    );
    r.measure(
        Case::timed(
            Group::Restore,
            "reference: engine-backup defaults by hand",
            slow_runs,
        )
        .shown("tar -xzf; tar -xJf files; pg_restore -j 2 each database in turn".into()),
        &mut || {
            fresh_dir(&reference_restore_tmp)?;
            ctx.clean_databases()
        },
        &|| {
            ctx.script(
                REFERENCE_RESTORE,
                &[
                    path_str(&bindir),
                    path_str(&reference),
                    path_str(&reference_restore_tmp),
                ],
                &dbs,
            )
        },
        None,
    );
    remove_dir(&reference_restore_tmp)?;
    remove(&eb_default)?;
    let mut notes = Vec::new();
    for jobs in [1, 2] {
        r.measure(
            Case::timed(
                Group::Restore,
                &format!("holdfast restore --jobs {jobs}"),
                if jobs == 1 { slow_runs } else { runs },
            )
            .shown(format!(
                "holdfast restore --restore-permissions --jobs {jobs} --file F --log L"
            )),
            &mut || ctx.clean_databases(),
            &|| ctx.holdfast_restore(&hf_default, jobs),
            None,
        );
    }
    let restore_steps = timeline::slow_steps(&timeline::last_run(&work.join("holdfast.log")));
    notes.push(ctx.compare("holdfast restore --jobs 2", &source)?);
    for (what, steps) in [
        ("holdfast backup (defaults)", backup_steps),
        ("holdfast restore --jobs 2", restore_steps),
    ] {
        notes.push(format!(
            "Timeline of the last `{what}` run from its log (one-second stamps; each step with the time until the next line): {}.",
            if steps.is_empty() {
                "no step took a second or more".to_string()
            } else {
                steps.join("; ")
            }
        ));
    }

    // --- Schema apply, on the same cluster.
    (ctx.progress)("schema apply");
    let times = schema_apply::measure(&env.cluster, runs.max(3))?;
    for (name, samples) in [
        ("schema apply: fresh", &times.fresh),
        ("schema apply: no-op re-apply", &times.noop),
        ("schema apply: plan", &times.plan),
    ] {
        let mut row = Row::new(
            Group::Other,
            name,
            &format!(
                "holdfast::schema on the synthetic tree ({} scripts), in-process",
                times.scripts
            ),
        );
        let samples: Vec<Sample> = samples
            .iter()
            .map(|w| Sample {
                wall: *w,
                peak_rss: 0,
            })
            .collect();
        row.stats = Stats::of(&samples);
        row.memory_measured = false;
        r.rows.push(row);
    }

    // --- The repository's nightly scenario and migration, on clusters of their own.
    if plan.repo_mb > 0 {
        (ctx.progress)(&format!(
            "repository nightly scenario ({} MiB)",
            plan.repo_mb
        ));
        let tools = nightly::Comparisons::detect();
        notes.extend(tools.skipped());
        match nightly::measure(plan.repo_mb, runs, work, tools, ctx.progress) {
            Ok(scenario) => {
                r.rows.extend(nightly_rows(&scenario.nights));
                r.rows.extend(repo_floor_rows(&scenario.floor));
            }
            Err(e) => {
                r.failures += 1;
                let mut row = Row::new(Group::Repository, "nightly scenario", "");
                row.problem = Some(format!("failed: {e}"));
                r.rows.push(row);
            }
        }
    }
    if plan.migrate_mb > 0 {
        (ctx.progress)(&format!("migrate ({} MB)", plan.migrate_mb));
        match migration::measure(plan.migrate_mb, 2, runs, work, ctx.progress) {
            Ok(m) => {
                r.rows.extend(migration_rows(&m));
                notes.push(format!(
                    "Migrate: an `engine` database of {:.0} MB (`pg_database_size`; accounts, text, jsonb with a GIN index, bytea), each procedure onto a fresh durable cluster on this machine; holdfast's time includes provisioning the role and database, the dump in an exported snapshot, `pg_restore -j {}`, fingerprints and inventories compared on both sides, and the conf rewrite; the manual procedure verifies nothing.",
                    m.database_bytes as f64 / 1e6,
                    m.jobs
                ));
            }
            Err(e) => {
                r.failures += 1;
                let mut row = Row::new(Group::Migrate, "migrate", "");
                row.problem = Some(format!("failed: {e}"));
                r.rows.push(row);
            }
        }
    }

    set_ratios(&mut r.rows);
    notes.splice(0..0, findings(&r.rows, checksum_time, plan));
    Ok(Outcome {
        rows: r.rows,
        notes,
        failures: r.failures,
    })
}

impl<'a> Case<'a> {
    fn timed(group: Group, name: &'a str, runs: usize) -> Case<'a> {
        Case {
            group,
            name,
            shown: String::new(),
            runs,
            warmups: 0,
            limit: None,
        }
    }

    /// Run once before the measured runs, uncounted: for the first case of a
    /// group, which warms the caches (backups) or creates the WAL segments
    /// (restores) that the later cases then find ready.
    fn warmed(mut self) -> Case<'a> {
        self.warmups = 1;
        self
    }

    fn shown(mut self, command: String) -> Case<'a> {
        self.shown = command;
        self
    }
}

impl Recorder<'_> {
    /// A row of the "Other" table for a single in-process timing.
    fn in_process(&mut self, name: &str, command: &str, wall: Duration) {
        let mut row = Row::new(Group::Other, name, command);
        row.stats = Stats::of(&[Sample { wall, peak_rss: 0 }]);
        row.memory_measured = false;
        self.rows.push(row);
    }

    /// Run a case's warm-ups and runs, `prepare` before each (untimed), and
    /// record its row. A failing run ends the case and counts as a failure; a
    /// run past the time limit ends it without one.
    fn measure(
        &mut self,
        case: Case,
        prepare: &mut dyn FnMut() -> Result<(), Error>,
        command: &dyn Fn() -> Command,
        output: Option<&Path>,
    ) {
        let mut row = Row::new(case.group, case.name, &case.shown);
        let mut samples = Vec::new();
        let stderr = self.ctx.work.join("last-stderr.txt");
        for i in 0..case.warmups + case.runs {
            let warmup = i < case.warmups;
            (self.ctx.progress)(&format!(
                "{}: {}",
                case.name,
                if warmup {
                    "warm-up".to_string()
                } else {
                    format!("run {}/{}", i + 1 - case.warmups, case.runs)
                }
            ));
            if let Err(e) = prepare() {
                row.problem = Some(format!("preparation failed: {e}"));
                self.failures += 1;
                break;
            }
            match run_tree(&mut command(), &stderr, case.limit) {
                Ok(s) => {
                    (self.ctx.progress)(&format!("  {:.2} s", s.wall.as_secs_f64()));
                    if !warmup {
                        samples.push(s);
                    }
                }
                Err(RunError::TimedOut(d)) => {
                    row.problem = Some(format!("> {:.0} s, stopped", d.as_secs_f64()));
                    break;
                }
                Err(e) => {
                    (self.ctx.progress)(&format!("  FAILED: {e}"));
                    row.problem = Some(format!("failed: {e}"));
                    self.failures += 1;
                    break;
                }
            }
        }
        row.stats = Stats::of(&samples);
        if row.problem.is_none() {
            row.bytes = output.map(bytes_of);
        }
        self.rows.push(row);
    }
}

impl Ctx<'_> {
    /// One of this module's fixed bash scripts with its arguments (paths and
    /// database names of ours; nothing from an archive).
    fn script(&self, script: &str, args: &[String], rest: &[String]) -> Command {
        let mut c = Command::new("bash");
        c.args(["-c", script, "bench"])
            .args(args)
            .args(rest)
            .envs(self.env.cluster.superuser_env())
            .stdout(Stdio::null());
        c
    }

    fn engine_backup(&self, mode: &str, file: &Path, extra: &[&str]) -> Command {
        let mut c = Command::new(&self.bins.engine_backup);
        c.arg(format!("--mode={mode}"))
            .arg(format!("--file={}", file.display()))
            .arg(format!(
                "--log={}",
                self.work.join("engine-backup.log").display()
            ))
            .arg(format!("--tmpdir={}", self.work.display()))
            .arg(format!("--install-root={}", self.env.root.display()))
            .arg(format!("--installed-version={VERSION}"))
            .args(extra)
            .stdout(Stdio::null());
        c
    }

    fn holdfast(&self, verb: &str, file: &Path) -> Command {
        let mut c = Command::new(&self.bins.holdfast);
        c.arg(verb)
            .args(["--profile", "ovirt-engine"])
            .arg("--file")
            .arg(file)
            .arg("--log")
            .arg(self.work.join("holdfast.log"))
            .arg("--tmpdir")
            .arg(self.work)
            .arg("--install-root")
            .arg(&self.env.root)
            .arg("--installed-version")
            .arg(VERSION)
            .stdout(Stdio::null());
        c
    }

    fn holdfast_backup(&self, file: &Path, extra: &[&str]) -> Command {
        let mut c = self.holdfast("backup", file);
        c.args(extra);
        c
    }

    fn holdfast_restore(&self, file: &Path, jobs: u32) -> Command {
        let mut c = self.holdfast("restore", file);
        c.args(["--restore-permissions", "--jobs", &jobs.to_string()]);
        c
    }

    /// Drop the databases and create them again, empty, owned by their roles;
    /// then a checkpoint, so that no run pays for the previous one's dirty pages.
    fn clean_databases(&self) -> Result<(), Error> {
        let cluster = &self.env.cluster;
        for db in DATABASES {
            cluster.execute(
                "postgres",
                &format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    pgsandbox::quote_ident(db.name)
                ),
            )?;
            cluster.create_database(db.name, db.owner)?;
        }
        cluster.execute("postgres", "CHECKPOINT")?;
        Ok(())
    }

    /// Compare the generated tables after a restore with the source's; an
    /// error if any differs. Only the `bench_*` tables: the profile's
    /// post-restore steps change some of the sample's engine tables on purpose.
    fn compare(&self, what: &str, source: &Checksums) -> Result<String, Error> {
        (self.progress)(&format!("comparing tables after {what}"));
        let restored = checksums(self.env)?;
        let generated = |k: &&(String, String)| k.1.starts_with("public.bench_");
        let mut compared = 0;
        for key in source.keys().filter(generated) {
            compared += 1;
            if restored.get(key) != source.get(key) {
                return Err(format!(
                    "after {what}, table {} of {} differs from the source (rows and checksum {:?} vs {:?})",
                    key.1,
                    key.0,
                    restored.get(key),
                    source.get(key)
                )
                .into());
            }
        }
        Ok(format!(
            "After the last run of `{what}`, the {compared} generated tables had the source's row counts and fingerprints (`table_fingerprints`)."
        ))
    }
}

/// (database, schema.table) to (rows, checksum).
type Checksums = BTreeMap<(String, String), (i64, String)>;

/// Rows and checksum of every table of every database, computed in parallel.
fn checksums(env: &Environment) -> Result<Checksums, Error> {
    std::thread::scope(|s| {
        let handles: Vec<_> = DATABASES
            .iter()
            .map(|db| {
                s.spawn(move || -> Result<Checksums, Error> {
                    let mut client = env.cluster.connect(db.name)?;
                    Ok(holdfast::pg::inspect::table_fingerprints(&mut client)?
                        .into_iter()
                        .map(|t| {
                            (
                                (db.name.to_string(), format!("{}.{}", t.schema, t.name)),
                                (t.rows, t.checksum),
                            )
                        })
                        .collect())
                })
            })
            .collect();
        let mut all = Checksums::new();
        for h in handles {
            all.extend(h.join().map_err(|_| "a checksum thread panicked")??);
        }
        Ok(all)
    })
}

/// Fingerprint the rows of each -Z0 dump file in a thread of its own, as a
/// backup does while the dump streams; returns the number of tables seen.
fn stream_fingerprints(files: &[String]) -> Result<usize, Error> {
    std::thread::scope(|s| {
        let handles: Vec<_> = files
            .iter()
            .map(|f| {
                s.spawn(move || -> Result<usize, Error> {
                    let file = std::fs::File::open(f)?;
                    let sums = holdfast::pg::custom_format::table_row_sums(
                        std::io::BufReader::with_capacity(1 << 20, file),
                    )?;
                    Ok(sums.len())
                })
            })
            .collect();
        let mut tables = 0;
        for h in handles {
            tables += h.join().map_err(|_| "a fingerprint thread panicked")??;
        }
        Ok(tables)
    })
}

/// The repository scenario's rows, by night, holdfast first.
fn nightly_rows(nights: &[nightly::NightRun]) -> Vec<Row> {
    nights
        .iter()
        .map(|n| {
            let mut row = Row::new(
                Group::Repository,
                &format!("{}: {}", n.night, n.tool),
                match n.tool {
                    "restic backup" => "restic backup --no-cache --repo R . (in the dump directory)",
                    "borg create" => "borg create --compression zstd,3 R::NIGHT .",
                    "holdfast repo backup (end to end)" => {
                        "holdfast::ops::repo::backup (dumps every database, stores the snapshot), in-process"
                    }
                    _ => "holdfast::repo::Repo::backup_dir on the same dump directory, in-process",
                },
            );
            row.stats = Stats::of(&[n.sample]);
            row.memory_measured = n.memory_measured();
            row.bytes = Some(n.growth);
            row
        })
        .collect()
}

/// Names of the repository's floor rows: the end-to-end backup's × floor is
/// its median over the larger of the dump-only and store-only medians.
const REPO_DUMP_ONLY: &str = "fresh repository: dump only";
const REPO_STORE_ONLY: &str = "fresh repository: store only";
const REPO_END_TO_END: &str = "fresh repository: holdfast repo backup (end to end)";

/// The repository floor's rows: dump only, store only, end to end.
fn repo_floor_rows(f: &repo_floor::FloorRuns) -> Vec<Row> {
    [
        (
            REPO_DUMP_ONLY,
            "pg_dump -Fc -Z0 -d DB -f DIR/DB.dump (every database at once; no sync, as holdfast's staging syncs no dump)",
            &f.dump,
            f.dump_bytes,
            true,
        ),
        (
            REPO_STORE_ONLY,
            "holdfast::repo::Repo::backup_dir DIR (those dump files) into a new empty repository, which fsyncs what it stores, in-process",
            &f.store,
            f.store_bytes,
            false,
        ),
        (
            REPO_END_TO_END,
            "holdfast::ops::repo::backup into a new empty repository (dumps staged without sync, stored with fsync), in-process",
            &f.end_to_end,
            f.end_to_end_bytes,
            false,
        ),
    ]
    .into_iter()
    .map(|(name, command, samples, bytes, memory_measured)| {
        let mut row = Row::new(Group::Repository, name, command);
        row.stats = Stats::of(samples);
        row.memory_measured = memory_measured;
        row.bytes = Some(bytes);
        row
    })
    .collect()
}

/// The migration's rows: the manual procedure, its steps, and holdfast.
fn migration_rows(m: &migration::Migration) -> Vec<Row> {
    let mut manual = Row::new(
        Group::Migrate,
        "manual procedure (reference)",
        "pg_dump -F c engine -f engine.dump; CREATE ROLE; CREATE DATABASE; pg_restore -d engine engine.dump",
    );
    manual.stats = Stats::of(&m.manual);
    manual.bytes = Some(m.manual_dump_bytes);
    let mut rows = vec![manual];
    for (name, command, samples) in [
        (
            "manual: pg_dump step",
            "pg_dump -F c engine -f engine.dump",
            &m.manual_dump,
        ),
        (
            "manual: pg_restore step",
            "pg_restore -d engine engine.dump",
            &m.manual_restore,
        ),
    ] {
        let mut row = Row::new(Group::Migrate, name, command);
        row.stats = Stats::of(samples);
        rows.push(row);
    }
    let mut holdfast = Row::new(
        Group::Migrate,
        &format!("holdfast migrate --jobs {}", m.jobs),
        "holdfast::ops::migrate::run (provision, dump, restore, compare, conf rewrite), in-process",
    );
    holdfast.stats = Stats::of(&m.holdfast);
    holdfast.memory_measured = false;
    rows.push(holdfast);
    rows
}

/// Ratios of each backup row to the floor and the reference, of each
/// restore row to bare pg_restore and the reference restore, of each
/// repository night to restic's store of the same night, of the repository's
/// floor rows to their floor, and of migrate to the manual procedure.
fn set_ratios(rows: &mut [Row]) {
    let median = |group: Group, name: &str| {
        rows.iter()
            .find(|r| r.group == group && r.name == name)
            .and_then(|r| r.stats)
            .map(|s| s.median.as_secs_f64())
    };
    let backup_floor = match (
        median(Group::Backup, "floor: dump all databases in parallel"),
        median(Group::Backup, "floor: raw write of the dump bytes"),
    ) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let reference = "reference: engine-backup defaults by hand";
    let backup_reference = median(Group::Backup, reference);
    let restore_floor = median(Group::Restore, "bare pg_restore -j 2 of -Z0 dumps");
    let restore_reference = median(Group::Restore, reference);
    let restic: Vec<(String, f64)> = nightly::NIGHTS
        .iter()
        .filter_map(|(night, _)| {
            median(Group::Repository, &format!("{night}: restic backup"))
                .map(|m| (format!("{night}: "), m))
        })
        .collect();
    let repo_floor = match (
        median(Group::Repository, REPO_DUMP_ONLY),
        median(Group::Repository, REPO_STORE_ONLY),
    ) {
        (Some(a), Some(b)) => Some(a.max(b)),
        _ => None,
    };
    let manual_migration = median(Group::Migrate, "manual procedure (reference)");
    for row in rows.iter_mut() {
        let Some(m) = row.stats.map(|s| s.median.as_secs_f64()) else {
            continue;
        };
        let (floor, reference) = match row.group {
            Group::Backup => (backup_floor, backup_reference),
            Group::Restore => (restore_floor, restore_reference),
            Group::Repository => (
                repo_floor.filter(|_| {
                    [REPO_DUMP_ONLY, REPO_STORE_ONLY, REPO_END_TO_END].contains(&row.name.as_str())
                }),
                restic
                    .iter()
                    .find(|(prefix, _)| row.name.starts_with(prefix.as_str()))
                    .map(|(_, m)| *m),
            ),
            Group::Migrate => (None, manual_migration),
            Group::Other => (None, None),
        };
        row.vs_floor = floor.filter(|f| *f > 0.0).map(|f| m / f);
        row.vs_reference = reference.filter(|f| *f > 0.0).map(|f| m / f);
    }
}

/// The generated findings: the figures the issue asks about, each with its target.
fn findings(rows: &[Row], checksum_time: Duration, plan: &Plan) -> Vec<String> {
    let find = |group: Group, name: &str| rows.iter().find(|r| r.group == group && r.name == name);
    let secs = |r: &Row| r.stats.map(|s| s.median.as_secs_f64());
    let mut notes = Vec::new();
    if let (Some(hf), Some(eb)) = (
        find(Group::Backup, "holdfast backup (defaults)"),
        find(Group::Backup, "engine-backup --mode=backup (defaults)"),
    ) {
        if let (Some(h), Some(e)) = (secs(hf), secs(eb)) {
            notes.push(format!(
                "Backup, side by side: holdfast defaults {h:.1} s ({:.0} MB) vs engine-backup defaults {e:.1} s ({:.0} MB): {:.1}× faster. holdfast is {:.2}× the floor (target ≤ 1.2×: {}) and {:.2}× the reference pipeline (target < 1: {}).",
                hf.bytes.unwrap_or(0) as f64 / 1e6,
                eb.bytes.unwrap_or(0) as f64 / 1e6,
                e / h,
                hf.vs_floor.unwrap_or(f64::NAN),
                verdict(hf.vs_floor.is_some_and(|r| r <= 1.2)),
                hf.vs_reference.unwrap_or(f64::NAN),
                verdict(hf.vs_reference.is_some_and(|r| r < 1.0)),
            ));
        }
    }
    if let (Some(hf), Some(pipe)) = (
        find(Group::Backup, "holdfast backup (defaults)").and_then(secs),
        find(Group::Backup, "pg_dump -Z0 | zstd -1, in parallel").and_then(secs),
    ) {
        notes.push(format!(
            "Backup against the hand pipeline of the same dumps and level (`pg_dump -Z0 | zstd -1`, every database at once): {:.2}× (target ≤ 1.0×: {}).",
            hf / pipe,
            verdict(hf / pipe <= 1.0),
        ));
    }
    if let (Some(hf), Some(bare)) = (
        find(Group::Restore, "holdfast restore --jobs 2"),
        find(Group::Restore, "bare pg_restore -j 2 of -Z0 dumps").and_then(secs),
    ) {
        if let Some(h) = secs(hf) {
            notes.push(format!(
                "Restore: holdfast --jobs 2 {h:.1} s is {:.2}× bare `pg_restore -j 2` of uncompressed dumps (target ≤ 1.05×: {}) and {:.2}× the reference restore; its fixed cost over bare pg_restore is {:.2} s (target for small environments, as with --quick: ≤ 0.3 s).",
                hf.vs_floor.unwrap_or(f64::NAN),
                verdict(hf.vs_floor.is_some_and(|r| r <= 1.05)),
                hf.vs_reference.unwrap_or(f64::NAN),
                h - bare,
            ));
        }
    }
    if let (Some(hf), Some(pipe), Some(files)) = (
        find(Group::Backup, "holdfast backup (defaults)").and_then(secs),
        find(Group::Backup, "pg_dump -Z0 | zstd -1, in parallel").and_then(secs),
        find(Group::Backup, "pg_dump -Z0 to files, in parallel").and_then(secs),
    ) {
        notes.push(format!(
            "Where holdfast's backup time goes: the same dumps streamed through the zstd command line at level 1 (holdfast's default level) take {pipe:.1} s and to uncompressed files {files:.1} s, against {hf:.1} s for `holdfast backup`, which also packs the files, copies each dump into the archive and fsyncs that. The row fingerprints of its manifest are read from the dump stream as it passes (\"row fingerprints from the -Z0 dump bytes\" above: CPU on a client thread); the server-side scan that backups ran before took {:.1} s on its own.",
            checksum_time.as_secs_f64()
        ));
    }
    let nightly = |night: &str, tool: &str| find(Group::Repository, &format!("{night}: {tool}"));
    let mut repo = Vec::new();
    for (night, _) in nightly::NIGHTS {
        let cells: Vec<String> = [
            "holdfast store only",
            "holdfast store only, db chunking",
            "restic backup",
            "borg create",
        ]
        .iter()
        .filter_map(|tool| {
            nightly(night, tool).and_then(|r| {
                Some(format!(
                    "{tool} {:.1} s +{:.1} MB",
                    secs(r)?,
                    r.bytes? as f64 / 1e6
                ))
            })
        })
        .collect();
        if !cells.is_empty() {
            repo.push(format!("{night}: {}", cells.join(", ")));
        }
    }
    if !repo.is_empty() {
        notes.push(format!(
            "Repository, {} MiB table, same dumps for every tool: {}.",
            plan.repo_mb,
            repo.join("; ")
        ));
    }
    if let (Some(e2e), Some(dump), Some(store)) = (
        find(Group::Repository, REPO_END_TO_END),
        find(Group::Repository, REPO_DUMP_ONLY).and_then(|r| r.stats),
        find(Group::Repository, REPO_STORE_ONLY).and_then(|r| r.stats),
    ) {
        if let Some(s) = e2e.stats {
            let range = |s: &Stats| {
                format!(
                    "{:.2} s ({:.2}–{:.2})",
                    s.median.as_secs_f64(),
                    s.min.as_secs_f64(),
                    s.max.as_secs_f64()
                )
            };
            notes.push(format!(
                "Repository backup against its floor, on the initial data, {} runs each into a fresh empty repository: end to end {} is {:.2}× the larger of dump only {} and store only {} (target ≤ 1.2×: {}).{}",
                s.runs,
                range(&s),
                e2e.vs_floor.unwrap_or(f64::NAN),
                range(&dump),
                range(&store),
                verdict(e2e.vs_floor.is_some_and(|r| r <= 1.2)),
                if s.runs < 3 { " Fewer than 3 runs: run with --runs 3 or more for the figure the issue asks for." } else { "" }
            ));
        }
    }
    if let (Some(manual), Some(hf)) = (
        find(Group::Migrate, "manual procedure (reference)").and_then(|r| r.stats),
        rows.iter()
            .find(|r| r.group == Group::Migrate && r.name.starts_with("holdfast migrate"))
            .and_then(|r| r.stats.map(|s| (s, r.vs_reference))),
    ) {
        let (hf, ratio) = hf;
        notes.push(format!(
            "Migrate, {} runs each, alternating which goes first: holdfast {:.2} s ({:.2}–{:.2}) against the manual procedure {:.2} s ({:.2}–{:.2}): {:.2}× (ratio of the medians; target ≤ 1.0×: {}).",
            hf.runs.min(manual.runs),
            hf.median.as_secs_f64(),
            hf.min.as_secs_f64(),
            hf.max.as_secs_f64(),
            manual.median.as_secs_f64(),
            manual.min.as_secs_f64(),
            manual.max.as_secs_f64(),
            ratio.unwrap_or(f64::NAN),
            verdict(ratio.is_some_and(|r| r <= 1.0)),
        ));
    }
    notes.push(format!(
        "`holdfast backup` has no --fast-backup or --small-size option (engine-backup's flags, run here through the `engine-backup` link, same executable): --small-size (plain dumps with xz, xz archive) runs once, stopped after {} s. `engine-backup --fast-backup` and `engine-backup --mode=restore` are not run: they are the reference pipelines' formats through the same library as holdfast and would not fit the time budget. The `pg_dump -Z0 | zstd` rows are the zstd command line at levels 1 and 3 on the same dumps; holdfast compresses with zstd level 1 by default (`--compress-level 3` row: level 3).",
        plan.small_size_limit.as_secs()
    ));
    notes.push(format!(
        "Runs: {} measured runs of the fast cases, {} of the reference pipelines (backup and restore), engine-backup, zstd level 3 (holdfast and the command line) and holdfast restore --jobs 1; the repository's floor rows (\"fresh repository\") and the migrate rows are {} runs each too (--runs); the repository's nights are one run each, since each night builds on the one before.",
        plan.runs, plan.slow_runs, plan.runs
    ));
    notes.push(
        "Peak memory is the largest sum of resident memory of the measured command and all its descendants, sampled from /proc every 20 ms; PostgreSQL's server backends are not descendants and are not counted.".into(),
    );
    notes.push(
        "The first case of each group (the floor dump, bare pg_restore) ran once as an uncounted warm-up before its measured runs, and the repository's floor rows had one uncounted round of all three steps; migrate has no warm-up, its two procedures alternate instead. The later cases run on the caches and WAL segments it warmed. The database server, the clients and the compressors share the same cores, and other jobs may have been running on this machine (see the load average above); compare rows of the same run, not across runs.".into(),
    );
    notes.push(
        "The reference pipeline and bare pg_restore connect as the superuser over the unix socket; engine-backup and holdfast connect as the application's roles over TCP, as the install root's conf files say, and holdfast's restores also run the profile's post-restore steps.".into(),
    );
    notes
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "not met"
    }
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

fn remove(p: &Path) -> Result<(), Error> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

fn remove_dir(p: &Path) -> Result<(), Error> {
    match std::fs::remove_dir_all(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// An empty directory at `p`.
fn fresh_dir(p: &Path) -> Result<(), Error> {
    remove_dir(p)?;
    std::fs::create_dir_all(p)?;
    Ok(())
}

/// Size of a file, or of every file under a directory.
fn bytes_of(p: &Path) -> u64 {
    let Ok(meta) = std::fs::metadata(p) else {
        return 0;
    };
    if meta.is_file() {
        return meta.len();
    }
    std::fs::read_dir(p)
        .map(|entries| entries.flatten().map(|e| bytes_of(&e.path())).sum())
        .unwrap_or(0)
}
