//! `holdfast notify --failed UNIT`: tell the `--notify` targets that a
//! scheduled job failed, from outside the job: systemd's `OnFailure=` unit
//! and the `||` of a cron line (see `holdfast schedule`). It also covers
//! what the job's own holdfast never reported: a lock not obtained, a
//! killed process, a command that did not start.
//!
//! The reason is what is known: the result systemd hands an `OnFailure=`
//! unit (`MONITOR_SERVICE_RESULT`, `MONITOR_EXIT_CODE`,
//! `MONITOR_EXIT_STATUS`) and the last line of the job's holdfast log, the
//! outcome with its reason.

use std::path::{Path, PathBuf};

use clap::Args;
use holdfast::notify::{self, Event};
use holdfast::repo::jiff::Timestamp;

use super::report::NotifyArgs;

#[derive(Debug, Args)]
pub struct NotifyCommandArgs {
    /// What failed: the unit's name without .service (holdfast-NAME-backup).
    #[arg(long, value_name = "UNIT")]
    pub failed: String,
    /// The directory of the job's log, UNIT.log: its last line (the outcome
    /// and the reason) is sent along.
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    #[command(flatten)]
    pub notify: NotifyArgs,
}

pub fn run(a: NotifyCommandArgs) -> holdfast::Result<()> {
    let settings = a.notify.settings()?;
    if settings.targets.is_empty() {
        return Err(holdfast::Error::usage(
            "nobody to tell: pass --notify URL (or --notify-config FILE)",
        ));
    }
    let log = a
        .log_dir
        .as_ref()
        .map(|d| d.join(format!("{}.log", a.failed)));
    let now = Timestamp::now().to_string();
    let event = Event {
        version: notify::EVENT_VERSION,
        verb: a.failed.clone(),
        outcome: "failed".into(),
        reason: reason(&a.failed, log.as_deref()),
        exit_code: crate::exit::FAILURE,
        host: holdfast::repo::atomic::hostname(),
        profile: None,
        target: log
            .as_ref()
            .map_or_else(|| a.failed.clone(), |l| l.display().to_string()),
        started: now.clone(),
        finished: now,
        duration_seconds: 0.0,
        archive: None,
        size_bytes: None,
        ..Event::default()
    };
    let failures = notify::finished(&settings, &event);
    for f in &failures {
        eprintln!(
            "holdfast: notification to {} not delivered: {}",
            f.target, f.reason
        );
    }
    if failures.is_empty() {
        println!(
            "Told {}",
            holdfast::log::count(settings.targets.len(), "target", "targets")
        );
        Ok(())
    } else {
        Err(holdfast::Error::Failed(format!(
            "{} of {} notifications not delivered",
            failures.len(),
            settings.targets.len()
        )))
    }
}

/// `UNIT failed (exit-code, exited 1): <the log's outcome line>`.
fn reason(unit: &str, log: Option<&Path>) -> String {
    let mut reason = format!("{unit} failed");
    let monitor: Vec<String> = [
        "MONITOR_SERVICE_RESULT",
        "MONITOR_EXIT_CODE",
        "MONITOR_EXIT_STATUS",
    ]
    .iter()
    .filter_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
    .collect();
    if !monitor.is_empty() {
        reason.push_str(&format!(" ({})", monitor.join(", ")));
    }
    let last = log
        .and_then(|l| std::fs::read_to_string(l).ok())
        .and_then(|text| text.lines().last().map(str::to_string));
    match last {
        Some(line) => reason.push_str(&format!("; its log ends: {line}")),
        None => reason.push_str(&format!("; see journalctl -u {unit} or its cron output")),
    }
    reason
}
