//! Which clusters this process has running, so that a Ctrl-C or SIGTERM stops them
//! and removes their directories, and so that directories left by a process that
//! was killed outright are removed by the next one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use crate::process::{pid_alive, signal};

struct Live {
    postmaster_pid: i32,
    dir: PathBuf,
}

static LIVE: Mutex<Option<HashMap<u64, Live>>> = Mutex::new(None);
static HANDLER: Once = Once::new();

pub(crate) fn register(id: u64, postmaster_pid: i32, dir: &Path) {
    HANDLER.call_once(install_interrupt_cleanup);
    LIVE.lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(
            id,
            Live {
                postmaster_pid,
                dir: dir.to_path_buf(),
            },
        );
}

pub(crate) fn unregister(id: u64) {
    if let Some(map) = LIVE.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        map.remove(&id);
    }
}

fn install_interrupt_cleanup() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        return;
    };
    let _ = std::thread::Builder::new()
        .name("pgsandbox-signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                stop_all();
                let _ = signal_hook::low_level::emulate_default_handler(sig);
                std::process::exit(128 + sig);
            }
        });
}

/// Stop every registered server and remove its directory.
fn stop_all() {
    let taken = LIVE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or_default();
    for live in taken.values() {
        signal(live.postmaster_pid, libc::SIGINT);
    }
    for live in taken.values() {
        wait_gone(live.postmaster_pid, Duration::from_secs(10));
        let _ = std::fs::remove_dir_all(&live.dir);
    }
}

/// Wait for a process that is not our child to go away; SIGKILL it at the deadline.
pub(crate) fn wait_gone(pid: i32, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while pid_alive(pid) {
        if Instant::now() >= deadline {
            signal(pid, libc::SIGKILL);
            std::thread::sleep(Duration::from_millis(50));
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Directory names are `c-<owner pid>-<n>`: remove those whose owner is gone,
/// stopping a server that still runs in one.
pub(crate) fn sweep_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) = name
            .to_str()
            .and_then(|n| n.strip_prefix("c-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        if owner == std::process::id() as i32 || pid_alive(owner) {
            continue;
        }
        let dir = entry.path();
        if let Some(pid) = postmaster_pid(&dir.join("data")) {
            if pid_alive(pid) {
                signal(pid, libc::SIGQUIT);
                wait_gone(pid, Duration::from_secs(10));
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The postmaster pid from `postmaster.pid`, if the file exists.
pub(crate) fn postmaster_pid(data_dir: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}
