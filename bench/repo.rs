//! `repo-bench`: the repository's nightly scenario on its own (the same
//! measurement `bench` folds into BENCHMARKS.md; see `holdfast_bench::nightly`).
//!
//! `cargo run --release -p holdfast-bench --bin repo-bench -- [--mb 2048] [--work DIR]`
//! compares with `restic` and `borg` where they are installed (Debian: apt-get
//! install restic borgbackup) and leaves out, with a note, the one that is not.

use std::path::PathBuf;

use holdfast_bench::nightly;

struct Options {
    mb: u64,
    work: Option<PathBuf>,
}

fn main() {
    let o = parse_args();
    let parent = o.work.clone().unwrap_or_else(std::env::temp_dir);
    let tools = nightly::Comparisons::detect();
    for note in tools.skipped() {
        eprintln!("repo-bench: {note}");
    }
    let runs = match nightly::measure(o.mb, &parent, tools, &|m| eprintln!("{m}")) {
        Ok(runs) => runs,
        Err(e) => {
            eprintln!("repo-bench: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "{:<10} {:<34} {:>9} {:>14}",
        "night", "tool", "wall s", "repo growth"
    );
    for r in runs {
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
