//! One operation at a time where they would interleave: a restore or a
//! migration holds the install root exclusively; backups share it (each writes
//! its own temporary file and renames it, so two of them never interleave).
//!
//! The lock is an `flock` on `holdfast-<hash of the install root>.lock` in
//! `/run/lock` (or the temporary directory where that is missing), outside the
//! install root so that it changes nothing there: the kernel releases it when the
//! process ends, so a killed holdfast never leaves a stale lock behind.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use crate::profile::Environment;
use crate::{Error, IoContext, Result};

/// What the lock is taken for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Backups: many at once.
    Shared,
    /// Restore and migrate: alone.
    Exclusive,
}

/// Held until dropped.
#[derive(Debug)]
pub struct OperationLock {
    _file: File,
    pub path: PathBuf,
}

impl OperationLock {
    /// Take the lock without waiting; when another operation holds it, say
    /// which (its pid and verb, as it wrote them) and what to do.
    pub fn acquire(env: &Environment, mode: LockMode, what: &str) -> Result<OperationLock> {
        let path = lock_path(env);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .context(|| format!("open {}", path.display()))?;
        let op = match mode {
            LockMode::Shared => libc::LOCK_SH,
            LockMode::Exclusive => libc::LOCK_EX,
        };
        // SAFETY: flock on a descriptor we own; released when `file` closes.
        if unsafe { libc::flock(file.as_raw_fd(), op | libc::LOCK_NB) } != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(Error::io(format!("lock {}", path.display()), err));
            }
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            let holder = holder.trim();
            return Err(Error::usage(format!(
                "another holdfast operation{} is running on {}; run this {what} again when it has finished",
                if holder.is_empty() { String::new() } else { format!(" ({holder})") },
                env.root.path().display()
            )));
        }
        if mode == LockMode::Exclusive {
            // Say who holds it, for the message a second process prints.
            let _ = file.set_len(0);
            let _ = std::io::Write::write_all(
                &mut &file,
                format!("{what}, pid {}", std::process::id()).as_bytes(),
            );
        }
        Ok(OperationLock { _file: file, path })
    }
}

fn lock_path(env: &Environment) -> PathBuf {
    let run_lock = std::path::Path::new("/run/lock");
    let dir = if run_lock.is_dir() && writable(run_lock) {
        run_lock.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    dir.join(format!("holdfast-{}.lock", root_key(env)))
}

/// 16 hex digits naming the install root: its lock, its restore journal.
pub(crate) fn root_key(env: &Environment) -> String {
    let key = env
        .root
        .path()
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
        });
    format!("{key:016x}")
}

fn writable(dir: &std::path::Path) -> bool {
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: access(2) on a valid C string.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{InstallRoot, Profile};

    fn env(root: &std::path::Path) -> Environment {
        Environment::load(Profile::ovirt_engine(), InstallRoot::new(root).unwrap()).unwrap()
    }

    #[test]
    fn backups_share_restores_exclude() {
        let dir = tempfile::tempdir().unwrap();
        let e = env(dir.path());
        let b1 = OperationLock::acquire(&e, LockMode::Shared, "backup").unwrap();
        let _b2 = OperationLock::acquire(&e, LockMode::Shared, "backup").unwrap();
        let err = OperationLock::acquire(&e, LockMode::Exclusive, "restore").unwrap_err();
        assert!(
            err.to_string().contains("another holdfast operation"),
            "{err}"
        );
        drop(b1);
        drop(_b2);
        let r = OperationLock::acquire(&e, LockMode::Exclusive, "restore").unwrap();
        let err = OperationLock::acquire(&e, LockMode::Shared, "backup").unwrap_err();
        assert!(err.to_string().contains("(restore, pid "), "{err}");
        drop(r);
        OperationLock::acquire(&e, LockMode::Shared, "backup").unwrap();
    }
}
