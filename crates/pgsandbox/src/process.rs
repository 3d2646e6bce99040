//! Running server programs as an unprivileged user, tied to the life of this process.
//!
//! `initdb` and `postgres` refuse to run as root, so when the caller is root every
//! server program runs as the `postgres` user (or `PGSANDBOX_USER`).
//!
//! Each server is started with a parent-death signal so that it goes away with
//! the process that started it, even when that process is killed outright. Linux
//! ties that signal to the *thread* that forked, and test harnesses run tests on
//! short-lived threads; so every server is forked from one spawner thread that
//! lives as long as the process.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

use crate::Error;

/// The user server programs run as: `None` means "as the caller".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// The unprivileged user to run server programs as when the caller is root.
pub fn server_user() -> Result<Option<ServerUser>, Error> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let name = std::env::var("PGSANDBOX_USER").unwrap_or_else(|_| "postgres".to_string());
    lookup_user(&name).map(Some).ok_or_else(|| {
        Error::Config(format!(
            "running as root, and user {name:?} does not exist to run the PostgreSQL server \
             (initdb refuses root): create it (apt-get install postgresql creates 'postgres') \
             or set PGSANDBOX_USER to an unprivileged user"
        ))
    })
}

/// The operating-system user of that name, if it exists and is not root.
pub fn lookup_user(name: &str) -> Option<ServerUser> {
    let cname = std::ffi::CString::new(name).ok()?;
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: all pointers point to live, correctly sized buffers.
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() || pwd.pw_uid == 0 {
        return None;
    }
    Some(ServerUser {
        name: name.to_string(),
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
    })
}

/// Variables a server program keeps from our environment; every other one
/// (passwords and keys of the program that starts the cluster among them) is
/// left out.
const KEPT_VARIABLES: [&str; 4] = ["PATH", "LD_LIBRARY_PATH", "LANG", "TZ"];

/// A command for a server program (`initdb`, `postgres`, `cp`) with a minimal
/// environment: nothing of the caller's reaches the server but [`KEPT_VARIABLES`].
pub fn server_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear();
    for name in KEPT_VARIABLES {
        if let Some(value) = std::env::var_os(name) {
            cmd.env(name, value);
        }
    }
    cmd
}

/// Prepare a command to run as `user` (when given), in its own process group so
/// that a terminal's Ctrl-C reaches this process first and it can stop the server
/// in order.
pub fn as_server_user(cmd: &mut Command, user: Option<&ServerUser>) {
    if let Some(u) = user {
        cmd.uid(u.uid).gid(u.gid);
        // std drops root's supplementary groups itself when it changes the uid.
        cmd.env("HOME", "/");
        cmd.env("USER", &u.name);
    }
    cmd.process_group(0);
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawn `cmd` from the process-lifetime spawner thread, with a parent-death
/// signal of SIGQUIT (the server's immediate shutdown).
pub fn spawn_tied_to_process(mut cmd: Command) -> std::io::Result<Child> {
    // SAFETY: prctl and getppid are async-signal-safe. The death signal is set
    // here, after std has changed uid/gid, because a credential change clears it.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let sender = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("pgsandbox-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("start the pgsandbox spawner thread");
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    sender
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, reply_tx))
        .map_err(|_| std::io::Error::other("pgsandbox spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| std::io::Error::other("pgsandbox spawner thread is gone"))?
}

/// Whether a process with this pid exists.
pub fn pid_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Send a signal, ignoring a process that is already gone.
pub fn signal(pid: i32, sig: libc::c_int) {
    // SAFETY: plain kill(2).
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Change the owner of a path (no-op when not root).
pub fn chown(path: &std::path::Path, user: Option<&ServerUser>) -> std::io::Result<()> {
    match user {
        Some(u) => std::os::unix::fs::chown(path, Some(u.uid), Some(u.gid)),
        None => Ok(()),
    }
}
