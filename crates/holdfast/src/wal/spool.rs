//! The local spool of `holdfast wal`: what push has stored (one `out/<name>.ok`
//! per file, holding its SHA-256, written durably only after the snapshot
//! holding it is in the repository), and what fetch has read ahead (`in/<name>`,
//! whole files only: they arrive under a temporary name and are renamed).
//!
//! The record makes `archive_command` cheap: a segment already stored is
//! answered from here, without opening the repository (a key derivation).

use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::WalName;
use crate::{Error, IoContext, Result};

/// A spool directory.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    /// Open (create, 0700) the spool at `dir`.
    pub fn open(dir: &Path) -> Result<Spool> {
        for sub in ["out", "in"] {
            let d = dir.join(sub);
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&d)
                .context(|| format!("create the WAL spool {}", d.display()))?;
        }
        Ok(Spool {
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where push and fetch keep the repository's master key (see
    /// [`crate::repo::Repo::open_with_key_file`]).
    pub fn key_file(dir: &Path) -> PathBuf {
        dir.join("repository-key")
    }

    fn record_path(&self, name: &WalName) -> PathBuf {
        self.dir.join("out").join(format!("{name}.ok"))
    }

    /// The SHA-256 recorded for a stored file, if push recorded one.
    pub fn stored(&self, name: &WalName) -> Option<String> {
        let text = std::fs::read_to_string(self.record_path(name)).ok()?;
        let sum = text.trim();
        (sum.len() == 64).then(|| sum.to_string())
    }

    /// Record durably that `name` with `sha256` is in the repository.
    pub fn record_stored(&self, name: &WalName, sha256: &str) -> Result<()> {
        crate::durable::replace(
            &self.record_path(name),
            format!("{sha256}\n").as_bytes(),
            0o600,
            None,
        )
    }

    /// Where fetch keeps a file read ahead.
    pub fn prefetched(&self, name: &WalName) -> PathBuf {
        self.dir.join("in").join(name.to_string())
    }

    /// A fresh private directory under the spool for files on their way in.
    pub fn incoming(&self) -> Result<tempfile::TempDir> {
        tempfile::Builder::new()
            .prefix(".incoming.")
            .tempdir_in(self.dir.join("in"))
            .context(|| format!("create a directory in {}", self.dir.display()))
    }

    /// Remove every file read ahead (recovery is over).
    pub fn drop_read_ahead(&self) {
        for name in self.prefetched_names() {
            let _ = std::fs::remove_file(self.prefetched(&name));
        }
    }

    /// The files read ahead, by name.
    pub fn prefetched_names(&self) -> Vec<WalName> {
        let Ok(list) = std::fs::read_dir(self.dir.join("in")) else {
            return Vec::new();
        };
        list.filter_map(|e| e.ok())
            .filter_map(|e| WalName::parse(e.file_name().to_str()?).ok())
            .collect()
    }
}

/// The SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).context(|| format!("open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .context(|| format!("read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Copy `from` to `to` so that `to` appears whole or not at all: a temporary
/// name beside it, fsync, rename, fsync of the directory.
pub fn copy_durably(from: &Path, to: &Path) -> Result<()> {
    let mut src = std::fs::File::open(from).context(|| format!("open {}", from.display()))?;
    crate::durable::write_with(to, 0o600, None, |file| {
        std::io::copy(&mut src, file)
            .map(|_| ())
            .context(|| format!("write {}", to.display()))
    })
}

/// Refuse a file that differs from what the repository holds under its name.
pub fn mismatch(name: &WalName, stored: &str, given: &str) -> Error {
    Error::failed(format!(
        "{name} is already archived with different content (stored sha256 {stored}, \
         this file {given}); refusing to overwrite it"
    ))
}
