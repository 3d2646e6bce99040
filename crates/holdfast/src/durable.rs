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
