//! `holdfast demo`: the whole job end to end on throwaway local clusters.

use std::path::PathBuf;

use clap::Args;
use holdfast::log::Log;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Work in this directory (kept afterwards) instead of a temporary one.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub fn run(a: DemoArgs, log: &Log) -> holdfast::Result<()> {
    let temp;
    let dir = match &a.dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| holdfast::Error::io_path("create", d, e))?;
            d.clone()
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("holdfast-demo.")
                .tempdir()
                .map_err(|e| holdfast::Error::io("create a temporary directory", e))?;
            temp.path().to_path_buf()
        }
    };
    let outcome = holdfast_sample::demo::run(&dir, log)?;
    log.output(&format!(
        "Demo passed: the archive ({} bytes) restored to identical content in {}.",
        outcome.archive_bytes,
        holdfast::log::count(outcome.tables_compared, "table", "tables")
    ));
    if a.dir.is_some() {
        log.output(&format!("Its files are kept in {}.", dir.display()));
    }
    Ok(())
}
