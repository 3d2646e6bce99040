//! `holdfast prune-archives DIR`: the repository's keep policy (restic's
//! semantics) for a directory of archive files, dated by the backup time each
//! archive records, not by file name or mtime, and applied to each group of
//! archives of one profile and host on its own.

use std::path::PathBuf;

use clap::Args;
use holdfast::archive::printable;
use holdfast::repo::archives::{prune_archives, TimeSource};
use holdfast::repo::jiff::Zoned;

use super::listing;
use super::repo::{print_verdicts, KeepArgs};
use crate::shared::absolute;

#[derive(Debug, Args)]
pub struct PruneArchivesArgs {
    /// The directory holding the archives (not searched recursively). Each
    /// profile and host's archives are a group, judged on its own.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub keep: KeepArgs,
}

pub fn run(a: PruneArchivesArgs) -> holdfast::Result<()> {
    let dir = absolute(&a.dir);
    let policy = a.keep.retention();
    let report = prune_archives(&dir, &policy, &Zoned::now(), a.keep.dry_run)?;
    if a.keep.json {
        let mut doc = serde_json::Map::new();
        doc.insert("dry_run".into(), a.keep.dry_run.into());
        doc.insert(
            "skipped".into(),
            report
                .skipped
                .iter()
                .map(|s| serde_json::json!({"path": s.path, "why": s.why}))
                .collect(),
        );
        doc.insert(
            "groups".into(),
            report
                .groups
                .iter()
                .map(|g| {
                    serde_json::json!({
                        "group": g.group.to_string(),
                        "archives": listing::verdicts(&g.verdicts, |archive| {
                            serde_json::json!({
                                "path": archive.path,
                                "dated_by": match archive.source {
                                    TimeSource::Manifest => "manifest",
                                    TimeSource::VersionMember => "version member",
                                },
                            })
                        }),
                    })
                })
                .collect(),
        );
        listing::print(doc);
        return Ok(());
    }
    for s in &report.skipped {
        // The reason can quote bytes of the file (a tar header's name):
        // control characters escaped, one line per file.
        println!(
            "skipped       {}: {}",
            printable(&s.path.display().to_string()),
            printable(&s.why)
        );
    }
    for group in &report.groups {
        println!("archives of {}:", printable(&group.group.to_string()));
        print_verdicts(&group.verdicts, a.keep.dry_run, |archive| {
            let dated_by = match archive.source {
                TimeSource::Manifest => "",
                TimeSource::VersionMember => " [dated by its version member]",
            };
            format!(
                "{}{dated_by}",
                printable(&archive.path.display().to_string())
            )
        });
    }
    if report.groups.is_empty() {
        println!("no archives in {}", dir.display());
    }
    Ok(())
}
