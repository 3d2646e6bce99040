//! `repo-bench`: the repository's nightly scenario on its own (the same
//! measurement `bench` folds into BENCHMARKS.md; see `holdfast_bench::nightly`).
//!
//! `cargo run --release -p holdfast-bench --bin repo-bench -- [--mb 2048] [--runs 3] [--work DIR]`
//! prints the end-to-end backup against dumping alone and storing alone
//! (`--runs` runs each, fresh repositories), then the nights; it compares with `restic` and `borg` where they are installed (Debian: apt-get
//! install restic borgbackup) and leaves out, with a note, the one that is not.

use std::path::PathBuf;

use holdfast_bench::measure::Stats;
use holdfast_bench::nightly;

struct Options {
    mb: u64,
    runs: usize,
    work: Option<PathBuf>,
}

fn main() {
    let o = parse_args();
    let parent = o.work.clone().unwrap_or_else(std::env::temp_dir);
    let tools = nightly::Comparisons::detect();
    for note in tools.skipped() {
        eprintln!("repo-bench: {note}");
    }
    let scenario = match nightly::measure(o.mb, o.runs, &parent, tools, &|m| eprintln!("{m}")) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("repo-bench: {e}");
            std::process::exit(1);
        }
    };
    let floor = &scenario.floor;
    println!(
        "{:<34} {:>9} {:>13} {:>5}",
        "fresh repository", "median s", "min–max s", "runs"
    );
    let mut medians = Vec::new();
    for (step, samples) in [
        ("dump only", &floor.dump),
        ("store only", &floor.store),
        ("end to end", &floor.end_to_end),
    ] {
        let Some(s) = Stats::of(samples) else {
            continue;
        };
        medians.push(s.median.as_secs_f64());
        println!(
            "{:<34} {:>9.2} {:>13} {:>5}",
            step,
            s.median.as_secs_f64(),
            format!("{:.2}–{:.2}", s.min.as_secs_f64(), s.max.as_secs_f64()),
            s.runs
        );
    }
    if let [dump, store, end_to_end] = medians[..] {
        println!(
            "end to end / max(dump only, store only): {:.2}× (target ≤ 1.2×)\n",
            end_to_end / dump.max(store)
        );
    }
    println!(
        "{:<10} {:<34} {:>9} {:>14}",
        "night", "tool", "wall s", "repo growth"
    );
    for r in scenario.nights {
        println!(
            "{:<10} {:<34} {:>9.2} {:>14}",
            r.night,
            r.tool,
            r.sample.wall.as_secs_f64(),
            format!("{:.1} MiB", r.growth as f64 / 1048576.0)
        );
    }
}

fn parse_args() -> Options {
    let mut o = Options {
        mb: 2048,
        runs: 3,
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
            "--runs" => {
                o.runs = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|n| *n > 0)
                    .unwrap_or_else(|| usage())
            }
            "--work" => o.work = Some(args.next().map(PathBuf::from).unwrap_or_else(|| usage())),
            _ => usage(),
        }
    }
    o
}

fn usage() -> ! {
    eprintln!("usage: repo-bench [--mb MIB] [--runs N] [--work DIR]");
    std::process::exit(2)
}
