//! Temporary files and directories that a killed holdfast left behind.
//!
//! Every temporary directory (work directory, pgpass directory) and every
//! temporary archive is `flock`-ed by the process that owns it for as long as
//! it exists ([`hold`]). A process killed with SIGKILL cannot remove them, but
//! the kernel releases its locks; so the next run that creates one of its own
//! next to them ([`sweep`]) can tell the dead ones (the lock can be taken)
//! from the live ones of a concurrent run (it cannot), and removes the dead
//! ones. They may hold dumps or a password: they must not pile up. (What a
//! killed restore must keep, the copies of the files it replaced, is in its
//! journal, not in a temporary directory: [`crate::ops::journal`].)

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// The parent of every temporary directory of this process: the operation's
/// `--tmpdir` once it has made its work directory ([`set_temp_parent`]), else
/// `$TMPDIR` (`/tmp`).
static TEMP_PARENT: std::sync::Mutex<Option<std::path::PathBuf>> = std::sync::Mutex::new(None);

/// Make `dir` the parent of the process's temporary directories (pgpass
/// files, restore lists, deep verify's cluster).
pub(crate) fn set_temp_parent(dir: &Path) {
    *TEMP_PARENT.lock().unwrap_or_else(|e| e.into_inner()) = Some(dir.to_path_buf());
}

/// Where a temporary directory goes.
pub(crate) fn temp_parent() -> std::path::PathBuf {
    TEMP_PARENT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_else(std::env::temp_dir)
}

/// Younger entries are left alone: their owner may not have locked them yet
/// (it does so right after creating them, microseconds later).
const GRACE: Duration = Duration::from_secs(1);

/// Lock `path` (a file or a directory) for as long as the returned file is open.
pub(crate) fn hold(path: &Path) -> std::io::Result<File> {
    let file = File::open(path)?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(file)
}

/// Remove the entries of `dir` whose name `ours` recognises, that belong to
/// this user, are older than a second and whose lock nobody holds.
/// Best effort: what cannot be removed stays.
pub(crate) fn sweep(dir: &Path, ours: impl Fn(&str) -> bool) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !ours(&name.to_string_lossy()) {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let old = meta
            .modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_some_and(|age| age > GRACE);
        if !old || meta.uid() != uid || meta.file_type().is_symlink() {
            continue;
        }
        // Locked by a live process: not ours to remove.
        let Ok(_held) = hold(&path) else { continue };
        let _ = if meta.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
    }
}

/// Every kind of temporary directory holdfast makes: (prefix, random characters).
const TEMPORARY_DIRS: [(&str, usize); 4] = [
    ("holdfast.", 10),
    ("holdfast-pgpass-", 6),
    ("holdfast-toc-", 6),
    ("holdfast-cluster.", 10),
];

/// Remove every temporary directory of ours in `parent` that a killed run left.
pub(crate) fn sweep_temporary_dirs(parent: &Path) {
    sweep(parent, |n| {
        TEMPORARY_DIRS
            .iter()
            .any(|(prefix, random)| is_temporary(n, prefix, *random, ""))
    });
}

/// A private (0700) temporary directory `PREFIXxxxxxx` under `parent`,
/// removed on drop and locked while it exists; dead runs' ones are swept first.
#[derive(Debug)]
pub(crate) struct HeldDir {
    dir: tempfile::TempDir,
    _held: File,
}

impl HeldDir {
    pub(crate) fn new(parent: &Path, prefix: &str, random: usize) -> std::io::Result<HeldDir> {
        use std::os::unix::fs::PermissionsExt;
        sweep(parent, |n| is_temporary(n, prefix, random, ""));
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .rand_bytes(random)
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(parent)?;
        let held = hold(dir.path())?;
        Ok(HeldDir { dir, _held: held })
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Whether `name` is `prefix` followed by `random` characters of a temporary
/// name and then `suffix`.
pub(crate) fn is_temporary(name: &str, prefix: &str, random: usize, suffix: &str) -> bool {
    name.strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(suffix))
        .is_some_and(|r| r.len() == random && r.chars().all(|c| c.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unlocked_old_entries_of_ours_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let dead = dir.path().join("holdfast.AAAAAAAAAA");
        let live = dir.path().join("holdfast.BBBBBBBBBB");
        let young = dir.path().join("holdfast.CCCCCCCCCC");
        let other = dir.path().join("holdfast.notours");
        for d in [&dead, &live, &young, &other] {
            std::fs::create_dir(d).unwrap();
            std::fs::write(d.join("x"), "x").unwrap();
        }
        let old = SystemTime::now() - Duration::from_secs(60);
        for d in [&dead, &live, &other] {
            File::open(d).unwrap().set_modified(old).unwrap();
        }
        let _held = hold(&live).unwrap();
        sweep(dir.path(), |n| is_temporary(n, "holdfast.", 10, ""));
        assert!(!dead.exists());
        assert!(live.exists() && young.exists() && other.exists());
    }
}
