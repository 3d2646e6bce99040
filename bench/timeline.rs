//! Where a holdfast run spent its time, read back from its own log: the
//! engine-backup log format stamps every line (`YYYY-MM-DD HH:MM:SS PID: text`),
//! so the gaps between the last run's lines show its phases to the second.

use std::path::Path;

use chrono::NaiveDateTime;

/// One stamped line of the last run in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Seconds since the run's first line.
    pub at: i64,
    pub text: String,
}

/// The lines of the last process that wrote to `log` (the log is appended to
/// by every run), with their offsets from its first line.
pub fn last_run(log: &Path) -> Vec<Step> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let parsed: Vec<(NaiveDateTime, &str, &str)> = text.lines().filter_map(parse).collect();
    let Some(last_pid) = parsed.last().map(|p| p.1) else {
        return Vec::new();
    };
    let start = parsed
        .iter()
        .position(|p| p.1 == last_pid)
        .expect("the last pid occurs");
    let first = parsed[start].0;
    parsed[start..]
        .iter()
        .filter(|p| p.1 == last_pid)
        .map(|(when, _, text)| Step {
            at: (*when - first).num_seconds(),
            text: text.to_string(),
        })
        .collect()
}

/// The steps after which time passed: each line that is followed by a gap of
/// at least one second, as "text (N s)".
pub fn slow_steps(steps: &[Step]) -> Vec<String> {
    steps
        .windows(2)
        .filter(|w| w[1].at > w[0].at)
        .map(|w| {
            let text: String = w[0].text.chars().take(90).collect();
            format!("{text} ({} s)", w[1].at - w[0].at)
        })
        .collect()
}

fn parse(line: &str) -> Option<(NaiveDateTime, &str, &str)> {
    let when = NaiveDateTime::parse_from_str(line.get(..19)?, "%Y-%m-%d %H:%M:%S").ok()?;
    let (pid, text) = line.get(20..)?.split_once(": ")?;
    pid.parse::<u32>().ok()?;
    Some((when, pid, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_run_and_its_gaps() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("x.log");
        std::fs::write(
            &log,
            "2026-01-01 10:00:00 11: OUTPUT: old run\n\
             2026-01-01 10:00:05 11: old end\n\
             2026-01-01 10:01:00 22: OUTPUT: Backing up:\n\
             2026-01-01 10:01:00 22: pg_cmd running: pg_dump\n\
             2026-01-01 10:01:09 22: Creating sha256sum\n\
             not a log line\n\
             2026-01-01 10:01:10 22: OUTPUT: Done.\n",
        )
        .unwrap();
        let steps = last_run(&log);
        assert_eq!(steps.len(), 4);
        assert_eq!(steps[0].text, "OUTPUT: Backing up:");
        assert_eq!(steps[3].at, 10);
        assert_eq!(
            slow_steps(&steps),
            vec!["pg_cmd running: pg_dump (9 s)", "Creating sha256sum (1 s)"]
        );
    }
}
