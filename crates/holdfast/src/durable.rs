//! Durable files: new content reaches a path whole or not at all. It is
//! written to a temporary name in the same directory, given its mode (and
//! owner), fsynced, renamed over the path, and the directory fsynced, so
//! that neither a crash nor a kill leaves a half-written file.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{fchown, PermissionsExt};
use std::path::Path;

use crate::error::{Error, IoContext, Result};

/// Atomically put `content` at `path`: temp file in the same directory, mode,
/// owner, fsync, rename, fsync of the directory.
pub fn replace(path: &Path, content: &[u8], mode: u32, owner: Option<(u32, u32)>) -> Result<()> {
    write_with(path, mode, owner, |file| {
        file.write_all(content)
            .context(|| format!("write a new {}", path.display()))
    })
}

/// Atomically put at `path` what `write` writes into the temporary file
/// (streamed content too large to hold in memory), as [`replace`] does.
pub fn write_with(
    path: &Path,
    mode: u32,
    owner: Option<(u32, u32)>,
    write: impl FnOnce(&mut File) -> Result<()>,
) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{}.", name.unwrap_or_default()))
        .tempfile_in(dir)
        .context(|| format!("create a temporary file in {}", dir.display()))?;
    let file: &mut File = temp.as_file_mut();
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .context(|| format!("chmod a new {}", path.display()))?;
    write(file)?;
    let finished = (|| {
        if let Some((uid, gid)) = owner {
            fchown(&*file, Some(uid), Some(gid))?;
        }
        file.sync_all()
    })();
    finished.context(|| format!("write a new {}", path.display()))?;
    temp.persist(path)
        .map_err(|e| Error::io_path("replace", path, e.error))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .context(|| format!("sync directory {}", dir.display()))?;
    Ok(())
}

/// Fsync the directory `dir` (its entries: new names in it survive a crash).
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .context(|| format!("sync directory {}", dir.display()))
}

/// Make the tree at `root` durable: every file's writeback is started
/// first (sync_file_range, as PostgreSQL syncs a data directory), then each
/// file is fsynced, so that the disk works on all of them at once instead
/// of one commit per file; then every directory, deepest first. Symbolic
/// links are not followed.
pub fn sync_tree(root: &Path) -> Result<()> {
    let mut files = Vec::new();
    let mut directories = vec![root.to_path_buf()];
    let mut next = 0;
    while let Some(dir) = directories.get(next).cloned() {
        next += 1;
        for entry in std::fs::read_dir(&dir).context(|| format!("list {}", dir.display()))? {
            let entry = entry.context(|| format!("list {}", dir.display()))?;
            let kind = entry
                .file_type()
                .context(|| format!("stat {}", entry.path().display()))?;
            if kind.is_dir() {
                directories.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    let open = |p: &Path| File::open(p).context(|| format!("open {} to sync it", p.display()));
    for path in &files {
        start_writeback(&open(path)?);
    }
    for path in &files {
        open(path)?
            .sync_all()
            .context(|| format!("sync {}", path.display()))?;
    }
    for dir in directories.iter().rev() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Ask the kernel to start writing `file`'s dirty pages to disk, without
/// waiting (sync_file_range WRITE). Only a hint: an error here is met again
/// by the fsync that follows.
pub fn start_writeback(file: &File) {
    // SAFETY: the descriptor is open for the call's duration.
    let _ = unsafe {
        libc::sync_file_range(
            std::os::fd::AsRawFd::as_raw_fd(file),
            0,
            0,
            libc::SYNC_FILE_RANGE_WRITE,
        )
    };
}
