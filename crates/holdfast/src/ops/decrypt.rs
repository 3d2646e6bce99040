//! An encrypted archive ([`crate::archive::encryption`]) made readable for
//! verify and restore: decrypted with the identity into a private work
//! directory under `--tmpdir`, which goes with the value. Without the
//! identity a verify checks what it can (the checksum file and the age
//! header) and says, as a warning, that the contents were not verified.

use std::path::{Path, PathBuf};

use crate::archive::encryption;
use crate::log::Log;
use crate::ops::WorkDir;
use crate::{Error, Result};

/// The decrypted archive, removed when dropped.
pub struct DecryptedArchive {
    _work: WorkDir,
    path: PathBuf,
}

impl DecryptedArchive {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `file` decrypted with `identity`; `None` when it is not encrypted.
pub fn open(
    file: &Path,
    identity: Option<&Path>,
    tmpdir: &Path,
    log: &Log,
) -> Result<Option<DecryptedArchive>> {
    if !encryption::is_encrypted(file)? {
        if identity.is_some() {
            log.line(&format!(
                "{} is not encrypted: the identity is not needed",
                file.display()
            ));
        }
        return Ok(None);
    }
    let Some(identity) = identity else {
        return Err(Error::usage(format!(
            "{} is encrypted (age): pass --identity FILE with the private key it was encrypted to",
            file.display()
        )));
    };
    log.output(&format!("- Decrypting file '{}'", file.display()));
    let work = WorkDir::new(tmpdir)?;
    let path = work.join("archive.tar");
    encryption::decrypt(file, identity, &path)?;
    Ok(Some(DecryptedArchive { _work: work, path }))
}

/// Verify an encrypted archive without its identity: the checksum file
/// beside it against the encrypted bytes, and the age header. The contents
/// are not verified, which is said as a warning (not an exit 0).
pub fn verify_outer(file: &Path, log: &Log) -> Result<()> {
    log.output("Verifying:");
    let checked = encryption::check_outer(file)?;
    log.output(&format!(
        "- Encrypted archive '{}': its SHA-256 {} matches {}, and its age header is well formed",
        file.display(),
        checked.digest,
        encryption::checksum_path(file).display()
    ));
    log.warning(
        "the archive's contents were not verified: it is encrypted; pass --identity FILE to verify them",
    );
    Ok(())
}
