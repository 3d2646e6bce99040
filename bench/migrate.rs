//! `migrate-bench`: `holdfast migrate` against the manual procedure on its own
//! (the same measurement `bench` folds into BENCHMARKS.md; see
//! `holdfast_bench::migration`).
//!
//! `cargo run --release -p holdfast-bench --bin migrate-bench -- [--size-mb N] [--jobs N] [--runs N]`

use holdfast_bench::measure::Stats;
use holdfast_bench::migration;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let mb = arg("--size-mb", 1000);
    let jobs = arg("--jobs", 2) as u32;
    let runs = arg("--runs", 3).max(1) as usize;
    let m = match migration::measure(mb, jobs, runs, &std::env::temp_dir(), &|p| eprintln!("{p}")) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("migrate-bench: {e}");
            std::process::exit(1);
        }
    };
    let (Some(manual), Some(holdfast)) = (Stats::of(&m.manual), Stats::of(&m.holdfast)) else {
        eprintln!("migrate-bench: no run was measured");
        std::process::exit(1);
    };
    let spread = |s: &Stats| format!("{:.1}–{:.1}", s.min.as_secs_f64(), s.max.as_secs_f64());
    println!("| procedure | median s | min–max s | runs | notes |");
    println!("|---|---|---|---|---|");
    println!(
        "| manual (pg_dump -Fc, pg_restore, 1 job) | {:.1} | {} | {} | dump file {} MB, no verification, conf edited by hand |",
        manual.median.as_secs_f64(),
        spread(&manual),
        manual.runs,
        m.manual_dump_bytes / 1_000_000
    );
    println!(
        "| holdfast migrate --jobs {} | {:.1} | {} | {} | includes provisioning, checksums of every table on both sides, conf rewrite |",
        m.jobs,
        holdfast.median.as_secs_f64(),
        spread(&holdfast),
        holdfast.runs
    );
    println!(
        "| ratio of the medians, holdfast / manual | {:.2} | | | |",
        holdfast.median.as_secs_f64() / manual.median.as_secs_f64()
    );
}
