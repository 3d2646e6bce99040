//! `schema-bench`: times the schema runner on the synthetic dbscripts tree (300
//! scripts over four minor versions) against its own throwaway cluster, with
//! PostgreSQL's durable settings: a fresh apply into an empty database, a no-op
//! re-apply, and a plan. Prints the median of several runs and exits non-zero if
//! the no-op re-apply takes a second or more.
//!
//! `cargo run --release -p holdfast-bench --bin schema-bench [RUNS]`

use std::time::{Duration, Instant};

use holdfast::pg::ConnParams;
use holdfast::schema::{self, synthetic::SyntheticTree, ApplyOptions, Permissions};
use holdfast::Password;

const PASSWORD: &str = "bench-password";

fn main() {
    if let Err(e) = run() {
        eprintln!("schema-bench: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let runs: usize = match std::env::args().nth(1) {
        Some(n) => n
            .parse()
            .map_err(|_| format!("RUNS must be a number, not '{n}'"))?,
        None => 5,
    };
    let cluster = pgsandbox::Cluster::builder().durable().start()?;
    cluster.create_role("engine", PASSWORD)?;
    let dir = tempfile::tempdir()?;
    let tree = SyntheticTree::default();
    let scripts = tree.write(dir.path())?;
    let options = ApplyOptions::default();
    let mut quiet = |_: &str| {};

    let (mut fresh, mut noop, mut plan) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs {
        let database = format!("engine_{i}");
        cluster.create_database(&database, "engine")?;
        let params = ConnParams {
            host: cluster.host().to_string(),
            port: cluster.port(),
            user: "engine".into(),
            database,
            password: Some(Password::new(PASSWORD)),
            secured: false,
            secured_validation: false,
        };
        let t = Instant::now();
        let report = schema::apply(&params, dir.path(), &options, &mut quiet)?;
        fresh.push(t.elapsed());
        if report.to.map(|v| v.to_string()) != Some(tree.last_version()) {
            return Err(format!(
                "fresh apply ended at {:?}, not {}",
                report.to,
                tree.last_version()
            )
            .into());
        }
        let t = Instant::now();
        let report = schema::apply(&params, dir.path(), &options, &mut quiet)?;
        noop.push(t.elapsed());
        if !report.outcome.installed.is_empty() || report.outcome.rebuilt {
            return Err("the re-apply was not a no-op".into());
        }
        let t = Instant::now();
        let p = schema::plan(&params, dir.path(), &Permissions::default())?;
        plan.push(t.elapsed());
        if !p.is_noop() {
            return Err("the plan after apply is not empty".into());
        }
    }

    println!(
        "schema-bench: {scripts} scripts, PostgreSQL {} (durable settings), {runs} runs",
        cluster.major()
    );
    println!(
        "{:<28} {:>10} {:>10} {:>10}",
        "operation", "median", "min", "max"
    );
    for (name, times) in [
        ("fresh apply", &mut fresh),
        ("no-op re-apply", &mut noop),
        ("plan (no-op)", &mut plan),
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
    let noop_median = noop[noop.len() / 2];
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
