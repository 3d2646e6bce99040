//! `migrate-bench`: `holdfast migrate` against the manual procedure on its own
//! (the same measurement `bench` folds into BENCHMARKS.md; see
//! `holdfast_bench::migration`).
//!
//! `cargo run --release -p holdfast-bench --bin migrate-bench -- [--size-mb N] [--jobs N]`

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
    let m = match migration::measure(mb, jobs, &std::env::temp_dir(), &|p| eprintln!("{p}")) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("migrate-bench: {e}");
            std::process::exit(1);
        }
    };
    println!("| procedure | wall s | notes |");
    println!("|---|---|---|");
    println!(
        "| manual (pg_dump -Fc, pg_restore, 1 job) | {:.1} | dump file {} MB, no verification, conf edited by hand |",
        m.manual.as_secs_f64(),
        m.manual_dump_bytes / 1_000_000
    );
    println!(
        "| holdfast migrate --jobs {} | {:.1} | includes provisioning, checksums of every table on both sides, conf rewrite |",
        m.jobs,
        m.holdfast.as_secs_f64()
    );
    println!(
        "| ratio holdfast / manual | {:.2} | |",
        m.holdfast.as_secs_f64() / m.manual.as_secs_f64()
    );
}
