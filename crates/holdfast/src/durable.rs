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
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{}.", name.unwrap_or_default()))
        .tempfile_in(dir)
        .context(|| format!("create a temporary file in {}", dir.display()))?;
    let written = (|| {
        let file: &mut File = temp.as_file_mut();
        file.write_all(content)?;
        if let Some((uid, gid)) = owner {
            fchown(&*file, Some(uid), Some(gid))?;
        }
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.sync_all()
    })();
    written.context(|| format!("write a new {}", path.display()))?;
    temp.persist(path)
        .map_err(|e| Error::io_path("replace", path, e.error))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .context(|| format!("sync directory {}", dir.display()))?;
    Ok(())
}
