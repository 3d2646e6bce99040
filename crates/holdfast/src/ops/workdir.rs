//! The private temporary directory of one operation (0700, removed at the end,
//! whatever the outcome), like engine-backup's `mktemp -d`, but never kept with
//! passwords inside.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

pub struct WorkDir {
    dir: crate::leftovers::HeldDir,
}

const PREFIX: &str = "holdfast.";
const RANDOM: usize = 10;

impl WorkDir {
    /// A new directory `holdfast.XXXXXXXXXX` under `parent`; those of killed
    /// runs there are removed first.
    pub fn new(parent: &Path) -> Result<WorkDir> {
        let dir = crate::leftovers::HeldDir::new(parent, PREFIX, RANDOM).map_err(|e| {
            Error::io(
                format!(
                    "Can't create temporary directory under {}; pass a writable one with --tmpdir",
                    parent.display()
                ),
                e,
            )
        })?;
        Ok(WorkDir { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}
