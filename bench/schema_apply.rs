//! Timing of the schema runner on the synthetic dbscripts tree (300 scripts over
//! four minor versions): a fresh apply into an empty database, a no-op
//! re-apply, and a plan, each checked for the outcome it must have.

use std::time::{Duration, Instant};

use holdfast::pg::ConnParams;
use holdfast::schema::{self, ApplyOptions, Permissions};
use holdfast::Password;
use holdfast_sample::schema::SyntheticTree;
use pgsandbox::Cluster;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

const ROLE: &str = "schema_bench";
const PASSWORD: &str = "bench-password";

/// Wall times of each run of the three operations.
#[derive(Debug, Default)]
pub struct SchemaTimes {
    pub scripts: usize,
    pub fresh: Vec<Duration>,
    pub noop: Vec<Duration>,
    pub plan: Vec<Duration>,
}

/// Apply the synthetic tree `runs` times, each into a new database of
/// `cluster` owned by a role of its own.
pub fn measure(cluster: &Cluster, runs: usize) -> Result<SchemaTimes, Error> {
    cluster.create_role(ROLE, PASSWORD)?;
    let dir = tempfile::tempdir()?;
    let tree = SyntheticTree::default();
    let mut times = SchemaTimes {
        scripts: tree.write(dir.path())?,
        ..SchemaTimes::default()
    };
    let options = ApplyOptions::default();
    let mut quiet = |_: &str| {};
    for i in 0..runs {
        let database = format!("schema_bench_{i}");
        cluster.create_database(&database, ROLE)?;
        let params = ConnParams {
            host: cluster.host().to_string(),
            port: cluster.port(),
            user: ROLE.into(),
            database,
            password: Some(Password::new(PASSWORD)),
            secured: false,
            secured_validation: false,
        };
        let t = Instant::now();
        let report = schema::apply(&params, dir.path(), &options, &mut quiet)?;
        times.fresh.push(t.elapsed());
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
        times.noop.push(t.elapsed());
        if !report.outcome.installed.is_empty() || report.outcome.rebuilt {
            return Err("the re-apply was not a no-op".into());
        }
        let t = Instant::now();
        let p = schema::plan(
            &params,
            dir.path(),
            &options.layouts,
            &Permissions::default(),
        )?;
        times.plan.push(t.elapsed());
        if !p.is_noop() {
            return Err("the plan after apply is not empty".into());
        }
    }
    Ok(times)
}
