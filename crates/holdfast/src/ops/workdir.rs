//! The private temporary directory of one operation (0700, removed at the end,
//! whatever the outcome), like engine-backup's `mktemp -d`, but never kept with
//! passwords inside, and the private files in it; and the free space of the
//! filesystems an operation writes to.
//!
//! The parent given to [`WorkDir::new`] (`--tmpdir`, else `$TMPDIR`) becomes
//! the parent of every other temporary directory of the operation too (pgpass
//! files, restore lists, deep verify's throwaway cluster): nothing temporary
//! goes anywhere else.

use std::path::{Path, PathBuf};

use crate::{Error, IoContext, Result};

pub struct WorkDir {
    dir: crate::leftovers::HeldDir,
}

const PREFIX: &str = "holdfast.";
const RANDOM: usize = 10;

impl WorkDir {
    /// A new directory `holdfast.XXXXXXXXXX` under `parent`; the temporary
    /// directories of killed runs there (work, pgpass, restore list, cluster)
    /// are removed first.
    pub fn new(parent: &Path) -> Result<WorkDir> {
        crate::leftovers::sweep_temporary_dirs(parent);
        let dir = crate::leftovers::HeldDir::new(parent, PREFIX, RANDOM).map_err(|e| {
            Error::io(
                format!(
                    "Can't create temporary directory under {}; pass a writable one with --tmpdir",
                    parent.display()
                ),
                e,
            )
        })?;
        crate::leftovers::set_temp_parent(parent);
        Ok(WorkDir { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A new file at `path` that only its owner can read (0600); an existing
/// file is an error.
pub fn create_private_file(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .context(|| format!("create {}", path.display()))
}

/// Bytes an unprivileged user may still write on the filesystem of `path`.
pub fn available_bytes(path: &Path) -> Result<u64> {
    let st = rustix::fs::statvfs(path)
        .map_err(|e| Error::io_path("check the free space of", path, std::io::Error::from(e)))?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Refuse, before anything is written, when the filesystem of `dir` has less
/// than `needed` bytes free; `refusal` words the error from the bytes free.
pub fn require_free_space(
    dir: &Path,
    needed: u64,
    refusal: impl FnOnce(u64) -> String,
) -> Result<()> {
    let free = available_bytes(dir)?;
    if needed > free {
        return Err(Error::usage(refusal(free)));
    }
    Ok(())
}

/// [`require_free_space`] for `what` in the temporary directory `dir`.
pub fn check_free_space(dir: &Path, needed: u64, what: &str) -> Result<()> {
    require_free_space(dir, needed, |free| {
        format!(
            "not enough free space in {}: {what} needs about {} MiB and {} MiB are free; free some space there or pass another --tmpdir",
            dir.display(),
            needed.div_ceil(1 << 20),
            free >> 20
        )
    })
}

/// Bytes of the regular files under `dir`.
pub fn tree_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).context(|| format!("read {}", d.display()))? {
            let entry = entry.context(|| format!("read {}", d.display()))?;
            let meta = entry
                .metadata()
                .context(|| format!("stat {}", entry.path().display()))?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    Ok(total)
}
