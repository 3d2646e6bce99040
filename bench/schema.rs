//! `schema-bench`: times the schema runner on the synthetic dbscripts tree (300
//! scripts over four minor versions) against its own throwaway cluster, with
//! PostgreSQL's durable settings: a fresh apply into an empty database, a no-op
//! re-apply, and a plan. Prints the median of several runs and exits non-zero if
//! the no-op re-apply takes a second or more.
//!
//! `cargo run --release -p holdfast-bench --bin schema-bench [RUNS]`

use std::time::Duration;

use holdfast_bench::schema_apply;

fn main() {
    if let Err(e) = run() {
        eprintln!("schema-bench: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let runs: usize = match std::env::args().nth(1) {
        Some(n) => n
            .parse()
            .map_err(|_| format!("RUNS must be a number, not '{n}'"))?,
        None => 5,
    };
    let cluster = pgsandbox::Cluster::builder().durable().start()?;
    let mut times = schema_apply::measure(&cluster, runs)?;

    println!(
        "schema-bench: {} scripts, PostgreSQL {} (durable settings), {runs} runs",
        times.scripts,
        cluster.major()
    );
    println!(
        "{:<28} {:>10} {:>10} {:>10}",
        "operation", "median", "min", "max"
    );
    for (name, times) in [
        ("fresh apply", &mut times.fresh),
        ("no-op re-apply", &mut times.noop),
        ("plan (no-op)", &mut times.plan),
    ] {
        times.sort();
        println!(
            "{:<28} {:>10} {:>10} {:>10}",
            name,
            ms(times[times.len() / 2]),
            ms(times[0]),
            ms(times[times.len() - 1])
        );
    }
    let noop_median = times.noop[times.noop.len() / 2];
    if noop_median >= Duration::from_secs(1) {
        return Err(format!(
            "no-op re-apply took {} (median), the target is under 1 s",
            ms(noop_median)
        )
        .into());
    }
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
