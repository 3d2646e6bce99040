//! The journal's files: its record written durably, the private directories,
//! kept copies put back.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::{Error, IoContext, Result};

use super::record::Record;

/// The record's file in the journal directory.
pub(super) const JOURNAL: &str = "journal.json";
/// The directory of kept copies in the journal directory.
pub(super) const KEPT: &str = "kept";

/// Write the record into `dir`: temporary file, fsync, rename, fsync of the
/// directory.
pub(super) fn persist(dir: &Path, record: &Record) -> Result<()> {
    let path = dir.join(JOURNAL);
    let temp = dir.join(format!(".{JOURNAL}.tmp"));
    let text = serde_json::to_vec_pretty(record)
        .map_err(|e| Error::failed(format!("encode the restore journal: {e}")))?;
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(&text)?;
        file.sync_all()?;
        std::fs::rename(&temp, &path)?;
        File::open(dir)?.sync_all()
    })();
    written.context(|| format!("write the restore journal {}", path.display()))
}

/// `<journal dir>.completed`: the last restore of the install root that completed.
pub(super) fn completed_note(dir: &Path) -> PathBuf {
    let mut name = dir.as_os_str().to_os_string();
    name.push(".completed");
    PathBuf::from(name)
}

pub(super) fn create_private_dir(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        std::fs::create_dir_all(dir).context(|| format!("create {}", dir.display()))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .context(|| format!("make {} private", dir.display()))
}

pub(super) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .context(|| format!("sync directory {}", dir.display()))
}

/// Remove the journal: first its record (the commit point), then the rest.
pub(super) fn remove_journal(dir: &Path) -> Result<()> {
    match std::fs::remove_file(dir.join(JOURNAL)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::io_path("remove", &dir.join(JOURNAL), e))
        }
        _ => {}
    }
    sync_dir(dir)?;
    std::fs::remove_dir_all(dir).context(|| format!("remove {}", dir.display()))?;
    if let Some(parent) = dir.parent() {
        let _ = sync_dir(parent);
    }
    Ok(())
}

/// `cp -a --no-dereference`: content, mode, owner, times and links as they are.
pub(super) fn copy_preserving(from: &Path, to: &Path) -> std::result::Result<(), String> {
    let out = crate::child::command("cp")
        .arg("-a")
        .arg("--no-dereference")
        .arg(from)
        .arg(to)
        .output()
        .map_err(|e| format!("cannot run cp: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Put a kept file back at `path`: a rename on the same filesystem, else a
/// copy (the kept one stays until the journal is removed).
pub(super) fn put_back(kept: &Path, path: &Path) -> std::result::Result<(), String> {
    match std::fs::rename(kept, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
            let _ = std::fs::remove_file(path);
            copy_preserving(kept, path)?;
            let _ = std::fs::remove_file(kept);
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}
