//! Start the restored server (as the data directory's owner, through
//! `pg_ctl`, so that it outlives this program), follow its log until recovery
//! stops at the target, and report where it stopped.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::restore::Prepared;
use crate::log::Log;
use crate::{Error, IoContext, Result};

/// Variables the server keeps from ours: none of our secrets reach it.
const KEPT_VARIABLES: [&str; 4] = ["PATH", "LD_LIBRARY_PATH", "LANG", "TZ"];

/// Where recovery ended.
#[derive(Debug, Clone)]
pub struct Reached {
    /// The server's line that says where it stopped (`recovery stopping …`).
    pub stopped: Option<String>,
    /// The time of the last transaction replayed, as the server logged it.
    pub last_transaction: Option<String>,
    /// Paused at the target (`--pause`) rather than promoted.
    pub paused: bool,
    pub log: PathBuf,
}

/// Start the server of `p` and wait (up to `timeout`) until recovery has
/// reached its target and the server promoted or paused.
pub fn start_and_wait(p: &Prepared, timeout: Duration, log: &Log) -> Result<Reached> {
    let server_log = p.spool.join("server.log");
    let offset = std::fs::metadata(&server_log).map(|m| m.len()).unwrap_or(0);
    let mut cmd = std::process::Command::new(p.bindir.join("pg_ctl"));
    cmd.env_clear();
    for name in KEPT_VARIABLES {
        if let Some(v) = std::env::var_os(name) {
            cmd.env(name, v);
        }
    }
    cmd.arg("-D")
        .arg(&p.pgdata)
        .arg("-l")
        .arg(&server_log)
        .args(["-W", "start"])
        .current_dir(&p.pgdata)
        .stdin(std::process::Stdio::null());
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        cmd.uid(p.owner.0).gid(p.owner.1).env("HOME", "/");
    }
    log.output(&format!(
        "Starting the server on {} to recover (log: {})",
        p.pgdata.display(),
        server_log.display()
    ));
    let out = cmd
        .output()
        .context(|| format!("run {}", p.bindir.join("pg_ctl").display()))?;
    if !out.status.success() {
        return Err(Error::failed(format!(
            "pg_ctl could not start the server: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let deadline = Instant::now() + timeout;
    let mut reached = Reached {
        stopped: None,
        last_transaction: None,
        paused: false,
        log: server_log.clone(),
    };
    loop {
        let text = read_from(&server_log, offset);
        for line in text.lines() {
            if line.contains("recovery stopping") {
                reached.stopped = Some(after_level(line));
            }
            if let Some(t) = line
                .split("last completed transaction was at log time ")
                .nth(1)
            {
                reached.last_transaction = Some(t.trim().to_string());
            }
        }
        if let Some(bad) = text
            .lines()
            .find(|l| l.contains("FATAL:") || l.contains("PANIC:"))
        {
            // restore_command's own reason, when a fetch stopped the recovery.
            let fetch = text
                .lines()
                .rev()
                .find(|l| {
                    l.starts_with("holdfast wal fetch: ") && !l.contains("is not in the archive")
                })
                .map(|l| format!("{}; ", l.trim()))
                .unwrap_or_default();
            return Err(Error::failed(format!(
                "recovery failed: {fetch}{} (see {})",
                after_level(bad),
                server_log.display()
            )));
        }
        if text.contains("pausing at the end of recovery") {
            reached.paused = true;
            return Ok(reached);
        }
        if text.contains("database system is ready to accept connections") {
            // Promoted: the read-ahead is of no further use.
            crate::wal::Spool::open(&p.spool)?.drop_read_ahead();
            return Ok(reached);
        }
        if Instant::now() >= deadline {
            return Err(Error::failed(format!(
                "recovery did not reach its target within {} s; the server is still running (see {})",
                timeout.as_secs(),
                server_log.display()
            )));
        }
        // Reading the new part of the log costs little; the wait is latency
        // added to every restore.
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_from(path: &std::path::Path, offset: u64) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.seek(SeekFrom::Start(offset));
        let _ = f.read_to_string(&mut text);
    }
    text
}

/// The message of a server log line, without its prefix.
fn after_level(line: &str) -> String {
    for level in ["LOG:", "FATAL:", "PANIC:"] {
        if let Some(rest) = line.split(level).nth(1) {
            return rest.trim().to_string();
        }
    }
    line.trim().to_string()
}
