//! How holdfast starts every other program, and makes sure none outlives it.
//!
//! [`command`] is the one way this crate builds a [`Command`]: the child's
//! environment is ours without any secret variable ([`is_secret_variable`]:
//! repository and REST passwords, restic's, S3 keys, oVirt's `*_PASSWORD`
//! answers, `PGPASSWORD`…), so a password given to holdfast in its environment
//! never reaches pg_dump, psql, pg_restore, pg_config, cp or a hook script.
//!
//! [`contain`] puts a client program in a process group of its own and
//! registers that group with the *guardian*: a `/bin/sh` started once per
//! process, in a session of its own, with an empty environment, that reads the
//! groups to watch from a pipe whose only writer is holdfast. When holdfast
//! ends in any way, SIGKILL included, the kernel closes the pipe, the
//! guardian's `read` sees end of file and it sends SIGKILL to every group still
//! registered, so that the workers pg_restore forks for `-j` (which a
//! parent-death signal does not reach) go with it. The child registers its own
//! group in `pre_exec`, before the program starts, so no worker can be forked
//! unseen; holdfast removes the group once it has reaped the leader.

use std::ffi::OsStr;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::Mutex;

use crate::{Error, Result};

/// Parts of a variable name that make it a secret, whatever the prefix
/// (`HOLDFAST_REPO_PASSWORD`, `RESTIC_PASSWORD_FILE`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`, `OVIRT_ENGINE_DB_PASSWORD`, `PGPASSWORD`).
const SECRET_PARTS: [&str; 7] = [
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "SECRET",
    "TOKEN",
    "CREDENTIAL",
    "PRIVATE_KEY",
];

/// Whole names that are secrets or lead to one without saying so.
const SECRET_NAMES: [&str; 3] = ["AWS_ACCESS_KEY_ID", "PGPASSFILE", "RESTIC_REPOSITORY"];

/// Whether a variable of this name must not reach a child program.
pub fn is_secret_variable(name: &OsStr) -> bool {
    let name = name.to_string_lossy().to_ascii_uppercase();
    SECRET_PARTS.iter().any(|part| name.contains(part)) || SECRET_NAMES.contains(&name.as_str())
}

/// A command for `program` whose environment is ours without the secret
/// variables. Callers add what the program needs (`PGPASSFILE`…) after this.
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for (key, _) in std::env::vars_os() {
        if is_secret_variable(&key) {
            cmd.env_remove(&key);
        }
    }
    cmd
}

/// The write end of the guardian's pipe, once it runs.
static GUARDIAN: Mutex<Option<Guardian>> = Mutex::new(None);

struct Guardian {
    pipe: ChildStdin,
    // Reaped when holdfast exits (then init reaps it).
    _child: std::process::Child,
}

/// The guardian's program: register (`+ PGID`) and unregister (`- PGID`) lines
/// until end of file, then SIGKILL every group left. Terminal signals are
/// ignored: only holdfast's end ends it.
const GUARDIAN_SCRIPT: &str = r#"trap '' INT HUP TERM QUIT PIPE
groups=
while read -r op group; do
  case "$op" in
    +) groups="$groups $group" ;;
    -) kept=; for g in $groups; do [ "$g" = "$group" ] || kept="$kept $g"; done; groups=$kept ;;
  esac
done
for g in $groups; do kill -KILL -- "-$g" 2>/dev/null; done
"#;

/// The raw descriptor children write their registration to.
fn guardian_fd() -> Result<i32> {
    let mut guard = GUARDIAN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(g) = guard.as_ref() {
        return Ok(g.pipe.as_raw_fd());
    }
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(GUARDIAN_SCRIPT)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .current_dir("/");
    // SAFETY: setsid is async-signal-safe. A session of its own: neither a
    // terminal's signals nor a kill of holdfast's process group reach it.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| {
        Error::io(
            "start the guardian that stops client programs if holdfast is killed (/bin/sh)",
            e,
        )
    })?;
    let pipe = child.stdin.take().expect("piped");
    let fd = pipe.as_raw_fd();
    *guard = Some(Guardian {
        pipe,
        _child: child,
    });
    Ok(fd)
}

/// A process as the kernel knows it: its pid and its start time (clock ticks
/// after boot, `/proc/PID/stat` field 22), so that a reused pid is not taken
/// for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessId {
    pub pid: u32,
    pub start: u64,
}

impl ProcessId {
    /// `pid` now, if it runs.
    pub fn of(pid: u32) -> Option<ProcessId> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name (field 2) is in parentheses and may hold spaces.
        let after = &stat[stat.rfind(')')? + 1..];
        let start = after.split_whitespace().nth(19)?.parse().ok()?;
        Some(ProcessId { pid, start })
    }

    /// Whether this very process still exists (a zombie counts as gone: it
    /// runs no code).
    pub fn alive(&self) -> bool {
        let Some(now) = ProcessId::of(self.pid) else {
            return false;
        };
        let zombie = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .ok()
            .and_then(|s| {
                s.rfind(')')
                    .and_then(|i| s[i + 1..].split_whitespace().next().map(|st| st == "Z"))
            })
            .unwrap_or(false);
        now == *self && !zombie
    }

    /// Wait up to `limit` for the process to be gone; whether it is.
    pub fn wait_gone(&self, limit: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        while self.alive() {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        true
    }
}

/// The guardian of this process (started now if it was not running): a run
/// that finds this process killed waits for it to be gone, since only then
/// are the client programs it was watching killed too.
pub fn guardian() -> Result<ProcessId> {
    guardian_fd()?;
    let guard = GUARDIAN.lock().unwrap_or_else(|e| e.into_inner());
    let pid = guard.as_ref().expect("started above")._child.id();
    ProcessId::of(pid).ok_or_else(|| {
        Error::failed("the guardian that stops client programs if holdfast is killed exited")
    })
}

/// Run `cmd` in a process group of its own, registered with the guardian
/// before the program starts; call [`release`] with its pid once it is reaped.
pub fn contain(cmd: &mut Command) -> Result<()> {
    let fd = guardian_fd()?;
    cmd.process_group(0);
    // SAFETY: getpid and write are async-signal-safe; the line is formatted on
    // the stack, and a write of under PIPE_BUF bytes to a pipe is atomic.
    unsafe {
        cmd.pre_exec(move || {
            let mut line = [0u8; 24];
            let n = format_line(b'+', libc::getpid() as u32, &mut line);
            if libc::write(fd, line.as_ptr().cast(), n) != n as isize {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(())
}

/// The program `pid` (a group leader started through [`contain`]) has been
/// reaped: its group is no longer the guardian's to kill.
pub fn release(pid: u32) {
    let mut guard = GUARDIAN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(g) = guard.as_mut() {
        let mut line = [0u8; 24];
        let n = format_line(b'-', pid, &mut line);
        let _ = g.pipe.write_all(&line[..n]);
    }
}

/// Wait for `child` (started through [`contain`]) to exit, SIGKILL whatever
/// is left in its group (workers it forked and did not wait for, after it was
/// killed), then reap it and unregister the group. The leader stays a zombie
/// until the group is killed, so the group id cannot have been reused.
pub fn reap(child: &mut Child) -> std::io::Result<ExitStatus> {
    let pid = child.id();
    loop {
        // SAFETY: waitid on our own child, into a zeroed siginfo_t.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            // Already reaped (ECHILD): nothing of it is left to wait for.
            break;
        }
    }
    signal_group(pid, libc::SIGKILL);
    let status = child.wait();
    if status.is_ok() {
        release(pid);
    }
    status
}

/// Send `sig` to the process group of `pid` (a leader started through
/// [`contain`] and not yet reaped, so the group cannot be another's).
pub fn signal_group(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on a process group we created.
    unsafe {
        libc::kill(-(pid as libc::pid_t), sig);
    }
}

/// `"+ 1234\n"` into `buf` without allocating (it runs between fork and exec).
fn format_line(op: u8, pid: u32, buf: &mut [u8; 24]) -> usize {
    let mut digits = [0u8; 10];
    let mut len = 0;
    let mut rest = pid;
    loop {
        digits[len] = b'0' + (rest % 10) as u8;
        len += 1;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    buf[0] = op;
    buf[1] = b' ';
    for i in 0..len {
        buf[2 + i] = digits[len - 1 - i];
    }
    buf[2 + len] = b'\n';
    3 + len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_secret_variables() {
        for name in [
            "HOLDFAST_REPO_PASSWORD",
            "HOLDFAST_REST_PASSWORD",
            "RESTIC_PASSWORD",
            "RESTIC_PASSWORD_FILE",
            "RESTIC_REST_PASSWORD",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_ACCESS_KEY_ID",
            "OVIRT_ENGINE_DB_PASSWORD",
            "OVIRT_ENGINE_DWH_DB_PASSWORD",
            "PGPASSWORD",
            "pgpassword",
        ] {
            assert!(is_secret_variable(OsStr::new(name)), "{name}");
        }
        for name in [
            "PATH",
            "HOME",
            "LANG",
            "TMPDIR",
            "PGHOST",
            "HOLDFAST_INSTALL_ROOT",
        ] {
            assert!(!is_secret_variable(OsStr::new(name)), "{name}");
        }
    }

    #[test]
    fn formats_registration_lines() {
        let mut buf = [0u8; 24];
        let n = format_line(b'+', 0, &mut buf);
        assert_eq!(&buf[..n], b"+ 0\n");
        let n = format_line(b'-', 4_294_967_295, &mut buf);
        assert_eq!(&buf[..n], b"- 4294967295\n");
    }
}
