//! Judging the facts as a Nagios/Icinga plugin does: a state (0 OK,
//! 1 WARNING, 2 CRITICAL, 3 UNKNOWN, also the exit status) and one line,
//! `HOLDFAST <STATE> - <message> | <performance data>`.
//!
//! - nothing found (no backup, no recorded run): UNKNOWN;
//! - a backup that failed after the newest good backup started, or no good
//!   backup at all but a failed one: CRITICAL, with its reason;
//! - a verify or deep verify whose last run failed, after the newest backup
//!   started: CRITICAL, with its reason;
//! - the newest backup older than `--crit-age`: CRITICAL; than `--warn-age`: WARNING;
//! - a continuous archive with missing segments: CRITICAL; its newest WAL
//!   older than `--crit-wal-age`: CRITICAL; than `--warn-wal-age`: WARNING;
//! - else OK.

use std::time::Duration;

use serde::Serialize;

use super::Facts;
use crate::repo::jiff::Timestamp;
use crate::{Error, Result};

/// A plugin state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum State {
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl State {
    /// The plugin's exit status.
    pub fn code(self) -> u8 {
        match self {
            State::Ok => 0,
            State::Warning => 1,
            State::Critical => 2,
            State::Unknown => 3,
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            State::Ok => "OK",
            State::Warning => "WARNING",
            State::Critical => "CRITICAL",
            State::Unknown => "UNKNOWN",
        }
    }
}

/// Age limits of the newest backup, and of the newest archived WAL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Thresholds {
    pub warn: Option<Duration>,
    pub crit: Option<Duration>,
    pub wal_warn: Option<Duration>,
    pub wal_crit: Option<Duration>,
}

impl Thresholds {
    /// The state an age earns against a warning and a critical limit.
    fn state_of(age: Duration, warn: Option<Duration>, crit: Option<Duration>) -> State {
        if crit.is_some_and(|c| age > c) {
            State::Critical
        } else if warn.is_some_and(|w| age > w) {
            State::Warning
        } else {
            State::Ok
        }
    }
}

/// The state, its message and the performance data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub state: State,
    pub message: String,
    /// Seconds since the newest backup started.
    pub age_seconds: Option<i64>,
    /// Seconds since the newest WAL was archived (a continuous archive).
    pub wal_age_seconds: Option<i64>,
}

impl Verdict {
    /// The plugin's one line.
    pub fn line(&self, facts: &Facts, limits: &Thresholds) -> String {
        let secs = |d: Option<Duration>| d.map(|d| d.as_secs().to_string()).unwrap_or_default();
        let mut perf = Vec::new();
        if let Some(age) = self.age_seconds {
            perf.push(format!(
                "age={age}s;{};{}",
                secs(limits.warn),
                secs(limits.crit)
            ));
        }
        if let Some(b) = &facts.newest_backup {
            perf.push(format!("size={}B", b.size_bytes));
        }
        if let Some(age) = self.wal_age_seconds {
            perf.push(format!(
                "wal_age={age}s;{};{}",
                secs(limits.wal_warn),
                secs(limits.wal_crit)
            ));
        }
        if let Some(server) = facts
            .continuous_archive
            .as_ref()
            .and_then(|c| c.server.as_ref())
        {
            perf.push(format!("wal_ready={}", server.ready_segments));
            perf.push(format!("pg_wal={}B", server.pg_wal_bytes));
        }
        perf.push(format!("notify_failures={}c", facts.notify_failures_total));
        format!(
            "HOLDFAST {} - {} | {}",
            self.state.word(),
            self.message.replace('|', "/").replace('\n', " "),
            perf.join(" ")
        )
    }
}

/// Judge `facts` at `now`.
pub fn judge(facts: &Facts, now: Timestamp, limits: &Thresholds) -> Verdict {
    let newest = facts.newest_backup.as_ref();
    let age_seconds = newest.map(|b| (now.as_second() - b.timestamp.as_second()).max(0));
    let archive = facts.continuous_archive.as_ref();
    let wal_age_seconds = archive
        .and_then(|a| a.newest_wal)
        .map(|t| (now.as_second() - t.as_second()).max(0));
    let verdict = |state, message: String| Verdict {
        state,
        message,
        age_seconds,
        wal_age_seconds,
    };
    let failed_after = |run: &super::Run| match (newest, run.timestamp) {
        (None, _) => true,
        (Some(b), Some(t)) => t > b.timestamp,
        (Some(_), None) => false,
    };
    if let Some(f) = &facts.last_backup_failure {
        if failed_after(f) {
            return verdict(
                State::Critical,
                format!("last backup failed at {}: {}", f.time, f.reason),
            );
        }
    }
    let Some(b) = newest else {
        return verdict(
            State::Unknown,
            format!("no backup found in {}", facts.target),
        );
    };
    for (what, run) in [
        ("verify", &facts.last_verify),
        ("deep verify", &facts.last_deep_verify),
    ] {
        if let Some(r) = run.as_ref().filter(|r| !r.succeeded() && failed_after(r)) {
            return verdict(
                State::Critical,
                format!("last {what} failed at {}: {}", r.time, r.reason),
            );
        }
    }
    let age = Duration::from_secs(age_seconds.unwrap_or(0) as u64);
    let mut state = Thresholds::state_of(age, limits.warn, limits.crit);
    let mut what = vec![b.time.clone(), human_size(b.size_bytes)];
    if !b.scopes.is_empty() {
        what.push(b.scopes.join("+"));
    }
    if let Some(v) = facts.last_deep_verify.as_ref().filter(|r| r.succeeded()) {
        what.push(format!("deep-verified {}", v.time));
    }
    let mut message = format!("newest backup {} ago ({})", human_age(age), what.join(", "));
    if let Some(a) = archive {
        let (wal_state, said) = judge_archive(a, wal_age_seconds, limits);
        state = state.max(wal_state);
        message = if wal_state == State::Critical && a.missing_segments > 0 {
            format!("{said}; {message}")
        } else {
            format!("{message}; {said}")
        };
    }
    verdict(state, message)
}

/// The continuous archive's state and its words: gaps, the window, the age
/// of the newest WAL, what the server still waits to archive.
fn judge_archive(
    a: &super::ContinuousArchive,
    wal_age_seconds: Option<i64>,
    limits: &Thresholds,
) -> (State, String) {
    let mut words = Vec::new();
    let mut state = State::Ok;
    if a.missing_segments > 0 {
        state = State::Critical;
        words.push(format!(
            "the WAL archive has {} missing segment(s) after a base backup; run 'holdfast wal check'",
            a.missing_segments
        ));
    }
    match (&a.recoverable_from, &a.recoverable_to) {
        (Some(from), Some(to)) => words.push(format!("recoverable from {from} to {to}")),
        (Some(from), None) => words.push(format!("recoverable from {from}, no WAL archived since")),
        (None, _) => words.push("no base backup: nothing recoverable".to_string()),
    }
    if let Some(age) = wal_age_seconds {
        let age = Duration::from_secs(age as u64);
        state = state.max(Thresholds::state_of(age, limits.wal_warn, limits.wal_crit));
        words.push(format!("newest WAL {} ago", human_age(age)));
    }
    if let Some(s) = &a.server {
        words.push(format!(
            "{} segment(s) waiting to be archived, pg_wal {}",
            s.ready_segments,
            human_size(s.pg_wal_bytes)
        ));
    }
    (state, words.join(", "))
}

/// `26h`, `3d`, `90m`, `1d12h`, `45s` or bare seconds.
pub fn parse_age(text: &str) -> Result<Duration> {
    let bad = || {
        Error::usage(format!(
            "{text:?} is not an age; write e.g. 45s, 90m, 26h, 3d, 1w or 1d12h"
        ))
    };
    if let Ok(n) = text.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    let mut total = 0u64;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(bad)?;
        digits.clear();
    }
    if !digits.is_empty() || text.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// `3h`, `2d4h`, `12m`, `40s`: the two largest units.
pub fn human_age(age: Duration) -> String {
    let s = age.as_secs();
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h{m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d{h}h"),
    }
}

fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse_and_print() {
        assert_eq!(parse_age("26h").unwrap(), Duration::from_secs(93_600));
        assert_eq!(parse_age("3d").unwrap(), Duration::from_secs(259_200));
        assert_eq!(parse_age("1d12h").unwrap(), Duration::from_secs(129_600));
        assert_eq!(parse_age("90").unwrap(), Duration::from_secs(90));
        for bad in ["", "h", "3x", "12h3"] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
        assert_eq!(human_age(Duration::from_secs(10_800)), "3h");
        assert_eq!(human_age(Duration::from_secs(93_600)), "1d2h");
        assert_eq!(human_age(Duration::from_secs(42)), "42s");
        assert_eq!(human_size(1536), "1.5 KiB");
    }
}
