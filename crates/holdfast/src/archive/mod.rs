//! The archive file: engine-backup's layout, codecs, writer, reader and manifest.
//!
//! An archive is a tar (gzip by default) of one directory `./` holding
//! `config`, `os_version`, `files` (an inner tar of configuration files),
//! `version`, `sha256sum`, `db/` and one dump per database, in that order.
//! holdfast adds `manifest.json`, which engine-backup ignores.

pub mod checksum;
pub mod codec;
pub mod config;
pub mod encryption;
pub mod files;
pub mod manifest;
pub mod owner;
pub mod reader;
pub mod writer;

pub use checksum::{HashKind, HashLine, KnownDigests};
pub use codec::{Codec, Encoder};
pub use config::{ArchiveConfig, DumpFormat, DumpSettings};
pub use files::{pack_files, FileSet, FilesPlan, PackedFiles, PlannedEntry, PlannedKind};
pub use manifest::Manifest;
pub use reader::{peek_manifest, ArchiveReader, MemberInfo, ReadLimits};
pub use writer::{ArchiveWriter, WriterOptions};

/// Member names directly under the archive root, in engine-backup's order
/// (`md5sum` and `manifest.json` are not written by engine-backup 4.5).
pub const TOP_MEMBERS: [&str; 7] = [
    "config",
    "os_version",
    "files",
    "version",
    manifest::MANIFEST_MEMBER,
    "sha256sum",
    "md5sum",
];

/// The directory of database dumps.
pub const DB_DIR: &str = "db";

/// Whether `name` (relative, without `./`) is a regular-file member an archive
/// may contain: one of [`TOP_MEMBERS`] or `db/<name>.db`.
pub fn is_member_name(name: &str) -> bool {
    if TOP_MEMBERS.contains(&name) {
        return true;
    }
    match name.strip_prefix("db/") {
        Some(file) => {
            file.len() > 3
                && file.ends_with(".db")
                && !file.starts_with('.')
                && !file.contains(['/', '\\', '\0'])
        }
        None => false,
    }
}

/// `text` (partly from an archive) fit for a one-line message: control
/// characters escaped (`\n`, `\u{1b}`), at most 400 characters. A hostile tar
/// puts line breaks and terminal escapes into names and header fields, and the
/// tar crate quotes those in its errors.
pub fn printable(text: &str) -> String {
    const MAX: usize = 400;
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == MAX {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_control_characters_and_caps_length() {
        assert_eq!(printable("a\nb\u{1b}[2Jc"), "a\\nb\\u{1b}[2Jc");
        assert_eq!(printable(&"x".repeat(500)).len(), 403);
    }

    #[test]
    fn member_names() {
        for ok in [
            "config",
            "files",
            "sha256sum",
            "md5sum",
            "manifest.json",
            "db/engine_backup.db",
            "db/grafana.db",
        ] {
            assert!(is_member_name(ok), "{ok}");
        }
        for bad in [
            "",
            "db",
            "db/",
            "db/.db",
            "db/../x.db",
            "db/a/b.db",
            "etc/passwd",
            "./config",
            "db/x.sql",
            "/config",
        ] {
            assert!(!is_member_name(bad), "{bad}");
        }
    }
}
