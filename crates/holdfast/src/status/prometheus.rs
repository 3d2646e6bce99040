//! The facts as Prometheus metrics in the text exposition format, for
//! node_exporter's textfile collector: written to a temporary name in the
//! collector's directory and renamed, so the collector never reads half a file.
//!
//! Every sample is labelled with the profile of the newest backup and the
//! target (archive directory or repository). A time that is not known (no
//! failure yet) is 0.

use std::fmt::Write as _;
use std::path::Path;

use super::verdict::Verdict;
use super::Facts;
use crate::Result;

/// The metrics text.
pub fn render(facts: &Facts, verdict: &Verdict) -> String {
    let labels = format!(
        "profile=\"{}\",target=\"{}\"",
        escape(facts.profile().unwrap_or("")),
        escape(&facts.target)
    );
    let secs = |t: Option<&str>| -> i64 {
        t.and_then(|t| t.parse::<crate::repo::jiff::Timestamp>().ok())
            .map_or(0, |t| t.as_second())
    };
    let newest = facts.newest_backup.as_ref();
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: String| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    };
    metric(
        "holdfast_last_success_timestamp_seconds",
        "gauge",
        "Start time of the newest good backup (Unix time; 0: none).",
        newest.map_or(0, |b| b.timestamp.as_second()).to_string(),
    );
    metric(
        "holdfast_last_failure_timestamp_seconds",
        "gauge",
        "End time of the last failed backup (Unix time; 0: none recorded).",
        secs(facts.last_backup_failure.as_ref().map(|r| r.time.as_str())).to_string(),
    );
    metric(
        "holdfast_backup_age_seconds",
        "gauge",
        "Seconds since the newest good backup started (-1: none).",
        verdict.age_seconds.unwrap_or(-1).to_string(),
    );
    metric(
        "holdfast_backup_size_bytes",
        "gauge",
        "Size of the newest good backup (archive file, or bytes read for a snapshot).",
        newest.map_or(0, |b| b.size_bytes).to_string(),
    );
    if let Some(d) = newest.and_then(|b| b.duration_seconds) {
        metric(
            "holdfast_backup_duration_seconds",
            "gauge",
            "How long the newest good backup took.",
            format!("{d:.3}"),
        );
    }
    for (name, help, run) in [
        ("holdfast_last_verify", "verify", facts.last_verify.as_ref()),
        (
            "holdfast_last_deep_verify",
            "deep verify",
            facts.last_deep_verify.as_ref(),
        ),
    ] {
        metric(
            &format!("{name}_timestamp_seconds"),
            "gauge",
            &format!("End time of the last {help} (Unix time; 0: none recorded)."),
            secs(run.map(|r| r.time.as_str())).to_string(),
        );
        metric(
            &format!("{name}_success"),
            "gauge",
            &format!("1 if the last {help} succeeded, else 0."),
            u8::from(run.is_some_and(|r| r.succeeded())).to_string(),
        );
    }
    if let Some(a) = &facts.continuous_archive {
        metric(
            "holdfast_wal_newest_timestamp_seconds",
            "gauge",
            "When the newest archived WAL was stored (Unix time; 0: none).",
            a.newest_wal.map_or(0, |t| t.as_second()).to_string(),
        );
        metric(
            "holdfast_pitr_window_start_timestamp_seconds",
            "gauge",
            "Start of the recoverable window: the end of the oldest base backup (Unix time; 0: none).",
            secs(a.recoverable_from.as_deref()).to_string(),
        );
        metric(
            "holdfast_wal_missing_segments",
            "gauge",
            "WAL segments missing after a kept base backup.",
            a.missing_segments.to_string(),
        );
        if let Some(s) = &a.server {
            metric(
                "holdfast_wal_ready_segments",
                "gauge",
                "WAL segments the server has marked ready and not yet archived.",
                s.ready_segments.to_string(),
            );
            metric(
                "holdfast_pg_wal_bytes",
                "gauge",
                "Size of the server's pg_wal directory.",
                s.pg_wal_bytes.to_string(),
            );
        }
    }
    metric(
        "holdfast_notify_failures_total",
        "counter",
        "Notifications that could not be delivered.",
        facts.notify_failures_total.to_string(),
    );
    metric(
        "holdfast_status",
        "gauge",
        "The status check's state: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
        verdict.state.code().to_string(),
    );
    out
}

/// Write the metrics to `path` atomically (0644: the collector reads it).
pub fn write(path: &Path, text: &str) -> Result<()> {
    crate::durable::replace(path, text.as_bytes(), 0o644, None)
}

/// A label value: backslash, double quote and newline escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
