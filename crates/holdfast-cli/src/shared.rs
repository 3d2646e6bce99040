//! What both command-line faces share and neither owns: turning what was
//! typed into the paths and values a library request holds. The defaults
//! themselves are the library's (`holdfast::ops::request`).

use std::path::{Path, PathBuf};

/// Make a relative path absolute against the current directory.
pub fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}
