//! Measure how long a throwaway cluster takes to start: the first start on a
//! machine (initdb into the shared template) and later ones (template copy +
//! server start-up), and how long `drop` takes to stop and remove it.
//!
//! `cargo run --release -p pgsandbox --example startup [runs]`

use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10);
    // A private parent directory, so the first start really runs initdb.
    let parent = std::env::temp_dir().join(format!("pgsandbox-startup-{}", std::process::id()));
    std::fs::create_dir_all(&parent).expect("create parent dir");
    std::env::set_var("PGSANDBOX_DIR", &parent);

    let t = Instant::now();
    let first = pgsandbox::Cluster::start().expect("start");
    let cold = t.elapsed();
    let major = first.major();
    drop(first);

    let mut starts = Vec::new();
    let mut stops = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let c = pgsandbox::Cluster::start().expect("start");
        starts.push(t.elapsed());
        let t = Instant::now();
        drop(c);
        stops.push(t.elapsed());
    }
    let _ = std::fs::remove_dir_all(&parent);
    println!(
        "PostgreSQL {major}: first start (initdb of the template) {:.3} s",
        cold.as_secs_f64()
    );
    println!(
        "later starts: median {:.3} s (min {:.3}, max {:.3}) over {runs}; stop and remove: median {:.3} s",
        median(starts.clone()).as_secs_f64(),
        starts.iter().min().unwrap().as_secs_f64(),
        starts.iter().max().unwrap().as_secs_f64(),
        median(stops).as_secs_f64()
    );
}
