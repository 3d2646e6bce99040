//! Measurement of one process tree: wall time and peak resident memory, and the
//! median and spread of several runs.
//!
//! Peak memory comes from sampling `/proc`: every few milliseconds the resident
//! set sizes of the child and all its descendants are summed, and the largest
//! sum is kept. `wait4`'s `ru_maxrss` would only give the largest single
//! process, while a pipeline's cost is the whole tree (pg_dump plus the
//! compressor, or holdfast plus its pg_dump children). PostgreSQL's server
//! backends are children of the postmaster, not of the measured command, so
//! they are not counted.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How often the process tree's memory is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

/// One timed run.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub wall: Duration,
    /// Largest sum of resident memory of the tree seen while it ran, in bytes.
    pub peak_rss: u64,
}

/// Why a measured command did not produce a sample.
#[derive(Debug)]
pub enum RunError {
    /// It ran past its time limit and was stopped.
    TimedOut(Duration),
    /// It exited non-zero (or by a signal); the text is its stderr's tail.
    Failed(String),
    Io(io::Error),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::TimedOut(d) => write!(f, "stopped after {:.0} s", d.as_secs_f64()),
            RunError::Failed(e) => write!(f, "failed: {e}"),
            RunError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for RunError {}

impl From<io::Error> for RunError {
    fn from(e: io::Error) -> Self {
        RunError::Io(e)
    }
}

/// Run `cmd` to completion (its stdout discarded unless the caller redirected
/// it, stderr kept in `stderr_file`), timing it and sampling its tree's memory.
/// Past `limit` the whole process group is killed and `TimedOut` returned.
pub fn run_tree(
    cmd: &mut Command,
    stderr_file: &Path,
    limit: Option<Duration>,
) -> Result<Sample, RunError> {
    let err = fs::File::create(stderr_file)?;
    cmd.stdin(Stdio::null()).stderr(err).process_group(0);
    let started = Instant::now();
    let mut child = cmd.spawn()?;
    let pid = child.id() as i32;
    let mut peak = 0u64;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        peak = peak.max(tree_rss(pid));
        if let Some(limit) = limit.filter(|l| started.elapsed() > *l) {
            // Only the group this function created: the child and its descendants.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            let _ = child.wait();
            return Err(RunError::TimedOut(limit));
        }
        std::thread::sleep(SAMPLE_EVERY);
    };
    let wall = started.elapsed();
    if !status.success() {
        let text = fs::read_to_string(stderr_file).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(3).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(RunError::Failed(format!("{status}: {}", tail.join(" | "))));
    }
    Ok(Sample {
        wall,
        peak_rss: peak,
    })
}

/// Sum of the resident memory of `root` and every descendant, in bytes.
fn tree_rss(root: i32) -> u64 {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return 0;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Some(ppid) = parent_of(pid) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut seen = HashSet::new();
    let mut todo = vec![root];
    let mut total = 0;
    while let Some(pid) = todo.pop() {
        if !seen.insert(pid) {
            continue;
        }
        total += resident_bytes(pid);
        if let Some(c) = children.get(&pid) {
            todo.extend(c);
        }
    }
    total
}

fn parent_of(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: parse after it.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(1)?.parse().ok()
}

fn resident_bytes(pid: i32) -> u64 {
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|s| s.split(' ').nth(1).and_then(|r| r.parse::<u64>().ok()))
        .map(|pages| pages * page)
        .unwrap_or(0)
}

/// Median and spread of several samples.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub runs: usize,
    pub median: Duration,
    pub min: Duration,
    pub max: Duration,
    pub peak_rss: u64,
}

impl Stats {
    /// `None` for no samples.
    pub fn of(samples: &[Sample]) -> Option<Stats> {
        if samples.is_empty() {
            return None;
        }
        let mut walls: Vec<Duration> = samples.iter().map(|s| s.wall).collect();
        walls.sort();
        let n = walls.len();
        let median = if n % 2 == 1 {
            walls[n / 2]
        } else {
            (walls[n / 2 - 1] + walls[n / 2]) / 2
        };
        Some(Stats {
            runs: n,
            median,
            min: walls[0],
            max: walls[n - 1],
            peak_rss: samples.iter().map(|s| s.peak_rss).max().unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_even_and_odd_counts() {
        let s = |ms| Sample {
            wall: Duration::from_millis(ms),
            peak_rss: ms,
        };
        let odd = Stats::of(&[s(30), s(10), s(20)]).unwrap();
        assert_eq!(odd.median, Duration::from_millis(20));
        assert_eq!(
            (odd.min, odd.max),
            (Duration::from_millis(10), Duration::from_millis(30))
        );
        assert_eq!(odd.peak_rss, 30);
        let even = Stats::of(&[s(10), s(40)]).unwrap();
        assert_eq!(even.median, Duration::from_millis(25));
        assert!(Stats::of(&[]).is_none());
    }

    #[test]
    fn a_tree_is_timed_and_its_memory_seen() {
        let dir = tempfile::tempdir().unwrap();
        // A pipeline of three processes that runs for at least 0.3 s.
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "head -c 67108864 /dev/zero | (sleep 0.3; cat >/dev/null)",
        ]);
        let s = run_tree(&mut cmd, &dir.path().join("err"), None).unwrap();
        assert!(s.wall >= Duration::from_millis(300));
        assert!(s.peak_rss > 0);
    }

    #[test]
    fn failures_and_time_limits_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo broken >&2; exit 3"]);
        match run_tree(&mut cmd, &dir.path().join("err"), None) {
            Err(RunError::Failed(t)) => assert!(t.contains("broken"), "{t}"),
            other => panic!("{other:?}"),
        }
        let mut cmd = Command::new("sleep");
        cmd.arg("5");
        let t = Instant::now();
        match run_tree(
            &mut cmd,
            &dir.path().join("err"),
            Some(Duration::from_millis(200)),
        ) {
            Err(RunError::TimedOut(_)) => assert!(t.elapsed() < Duration::from_secs(3)),
            other => panic!("{other:?}"),
        }
    }
}
