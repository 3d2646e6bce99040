//! Termination requests (SIGTERM, SIGINT, SIGHUP) while an operation runs.
//!
//! Without this a signal ends holdfast on the spot: no rollback of a restore,
//! no removal of a backup's temporary files. With [`install`], the first
//! request stops the client programs running at that moment (pg_dump,
//! pg_restore, psql) and makes [`check`] fail, so the operation fails at its
//! next step and cleans up exactly as after any other failure: a restore rolls
//! back, a backup leaves no file at `--file`. A second request ends the
//! process at once (the default action), for an operator who will not wait.
//!
//! SIGKILL cannot be caught: for that case every client program is started
//! with a parent-death signal ([`tie_to_parent`]), and in a process group the
//! guardian kills when we are gone ([`crate::child`]), so that neither the
//! program nor what it forked outlives us.

use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::{Error, Result};

/// The signal number of the first request, 0 while there has been none.
static REQUESTED: AtomicI32 = AtomicI32::new(0);

/// Client programs running now, stopped on a request.
static RUNNING: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

/// Catch termination requests for the rest of the process's life (idempotent).
pub fn install() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP]) else {
            return;
        };
        let _ = std::thread::Builder::new()
            .name("holdfast-signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    if REQUESTED
                        .compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst)
                        .is_err()
                    {
                        let _ = signal_hook::low_level::emulate_default_handler(sig);
                    }
                    stop_running();
                }
            });
    });
}

/// SIGTERM to every client program running now; each fails, and so does the
/// step that waits for it.
fn stop_running() {
    let pids: Vec<u32> = lock_running().iter().copied().collect();
    for pid in pids {
        // A child that was running a moment ago leaves the set right before it
        // is reaped, so its group is still its own; the group holds what it
        // forked (pg_restore's workers).
        crate::child::signal_group(pid, libc::SIGTERM);
    }
}

fn lock_running() -> std::sync::MutexGuard<'static, BTreeSet<u32>> {
    RUNNING.lock().unwrap_or_else(|e| e.into_inner())
}

/// The number of the signal that asked us to stop, if one did.
pub fn requested_signal() -> Option<i32> {
    match REQUESTED.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(sig),
    }
}

/// The name of the signal that asked us to stop, if one did.
pub fn requested() -> Option<&'static str> {
    requested_signal().map(signal_name)
}

/// `SIGTERM`, `SIGINT`, `SIGHUP`: the termination requests holdfast catches.
pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

/// Fail if a termination was requested: called between the steps of an operation.
pub fn check() -> Result<()> {
    match requested() {
        None => Ok(()),
        Some(sig) => Err(Error::failed(format!("interrupted by {sig}"))),
    }
}

/// `error`, said to be the consequence of the termination request if there was one
/// (a client program stopped by it fails with a message of its own).
pub fn explain(error: Error) -> Error {
    match requested() {
        Some(sig) if !error.to_string().starts_with("interrupted by") => {
            Error::failed(format!("interrupted by {sig} ({error})"))
        }
        _ => error,
    }
}

/// Note a started client program, so that a request stops it.
pub(crate) fn track(pid: u32) {
    lock_running().insert(pid);
    // A request that came between the last check and the spawn.
    if REQUESTED.load(Ordering::SeqCst) != 0 {
        stop_running();
    }
}

/// The program is about to be reaped: its pid may be reused after that.
pub(crate) fn untrack(pid: u32) {
    lock_running().remove(&pid);
}

/// Give `cmd` a parent-death signal (SIGKILL): if holdfast itself is killed,
/// the program goes too. The signal is tied to the spawning thread, which in
/// holdfast is always the one that waits for the program.
pub(crate) fn tie_to_parent(cmd: &mut Command) {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: prctl and getppid are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent died between fork and prctl.
            if libc::getppid() != parent {
                return Err(std::io::Error::other(
                    "holdfast ended while starting a program",
                ));
            }
            Ok(())
        });
    }
}
