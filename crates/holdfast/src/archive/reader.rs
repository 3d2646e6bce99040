//! Opening an archive: safe extraction into a private temporary directory,
//! hash verification, and access to the parsed `version`, `os_version`,
//! `config`, manifest and dump members.
//!
//! Everything in an archive is untrusted: only regular files and directories
//! with known member names are extracted, sizes are capped, and a truncated or
//! corrupt stream is an error rather than a shorter archive.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use tempfile::TempDir;

use super::checksum::{self, HashKind, KnownDigests, Sha256Writer};
use super::codec::Codec;
use super::config::ArchiveConfig;
use super::manifest::{Manifest, MANIFEST_MEMBER};
use super::{is_member_name, printable, DB_DIR};
use crate::error::{Error, IoContext, Result};

/// Caps against decompression bombs and absurd archives.
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    /// Largest single member, in bytes.
    pub max_member_bytes: u64,
    /// Largest total of all members, in bytes.
    pub max_total_bytes: u64,
    /// Most tar entries.
    pub max_entries: usize,
}

impl Default for ReadLimits {
    fn default() -> ReadLimits {
        ReadLimits {
            max_member_bytes: 1 << 40,
            max_total_bytes: 2 << 40,
            max_entries: 10_000,
        }
    }
}

/// A regular-file member as recorded in the tar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    /// Path relative to the archive root, e.g. `db/engine_backup.db`.
    pub name: String,
    pub size: u64,
    /// Modification time from the tar header, seconds since the epoch.
    pub mtime: u64,
}

/// An extracted and verified archive. The temporary directory is removed when
/// this is dropped.
#[derive(Debug)]
pub struct ArchiveReader {
    archive: PathBuf,
    dir: TempDir,
    codec: Codec,
    members: BTreeMap<String, MemberInfo>,
    hash_kind: HashKind,
    version: String,
    os_version: String,
    config: ArchiveConfig,
    manifest: Option<Manifest>,
    /// Each member's SHA-256, taken as it was unpacked.
    digests: KnownDigests,
}

impl ArchiveReader {
    /// Extract `archive` into a new private directory under the system's
    /// temporary directory and verify it.
    pub fn open(archive: &Path, limits: ReadLimits) -> Result<ArchiveReader> {
        ArchiveReader::open_in(archive, &std::env::temp_dir(), limits)
    }

    /// Like [`ArchiveReader::open`], with the temporary directory under `temp_parent`.
    pub fn open_in(
        archive: &Path,
        temp_parent: &Path,
        limits: ReadLimits,
    ) -> Result<ArchiveReader> {
        let dir = tempfile::Builder::new()
            .prefix("holdfast-archive-")
            .tempdir_in(temp_parent)
            .context(|| format!("create a temporary directory in {}", temp_parent.display()))?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .context(|| format!("chmod {}", dir.path().display()))?;
        let file = File::open(archive)
            .map_err(|e| Error::usage(format!("cannot open archive {}: {e}", archive.display())))?;
        if !file.metadata().map(|m| m.is_file()).unwrap_or(false) {
            return Err(Error::usage(format!(
                "{} is not a regular file",
                archive.display()
            )));
        }
        let (codec, members, digests) = extract(file, dir.path(), &limits).map_err(|what| {
            Error::invalid(format!("{}: {}", archive.display(), printable(&what)))
        })?;
        let mut reader = ArchiveReader {
            archive: archive.to_path_buf(),
            dir,
            codec,
            members,
            hash_kind: HashKind::Sha256,
            version: String::new(),
            os_version: String::new(),
            config: ArchiveConfig::default(),
            manifest: None,
            digests,
        };
        reader.verify_hashes()?;
        reader.read_metadata()?;
        Ok(reader)
    }

    fn fail(&self, what: impl std::fmt::Display) -> Error {
        Error::invalid(format!(
            "{}: {}",
            self.archive.display(),
            printable(&what.to_string())
        ))
    }

    fn verify_hashes(&mut self) -> Result<()> {
        let kind = [HashKind::Sha256, HashKind::Md5]
            .into_iter()
            .find(|k| self.members.contains_key(k.file_name()))
            .ok_or_else(|| self.fail("No supported hash file found"))?;
        let text = self.read_text(kind.file_name())?;
        let lines = checksum::parse(&text, kind, kind.file_name()).map_err(|e| self.fail(e))?;
        checksum::verify(self.dir.path(), &lines, kind, &self.digests).map_err(|e| self.fail(e))?;
        for name in self.members.keys() {
            let is_hash_file = name == "sha256sum" || name == "md5sum";
            if !is_hash_file && !lines.iter().any(|l| &l.path == name) {
                return Err(self.fail(format!(
                    "member '{name}' is not listed in {}",
                    kind.file_name()
                )));
            }
        }
        self.hash_kind = kind;
        Ok(())
    }

    fn read_metadata(&mut self) -> Result<()> {
        if !self.members.contains_key("version") {
            return Err(self.fail("the archive has no 'version' member"));
        }
        self.version = self.read_text("version")?.trim_end().to_string();
        self.os_version = if self.members.contains_key("os_version") {
            self.read_text("os_version")?.trim_end().to_string()
        } else {
            "Unknown".to_string()
        };
        if !self.members.contains_key("config") {
            return Err(self.fail("the archive has no 'config' member"));
        }
        let text = self.read_text("config")?;
        self.config = ArchiveConfig::parse(&text, "config").map_err(|e| self.fail(e))?;
        if self.members.contains_key(MANIFEST_MEMBER) {
            let bytes = std::fs::read(self.dir.path().join(MANIFEST_MEMBER))
                .context(|| format!("read {MANIFEST_MEMBER}"))?;
            let manifest = Manifest::parse(&bytes, MANIFEST_MEMBER).map_err(|e| self.fail(e))?;
            manifest
                .verify_members(self.dir.path(), &self.digests)
                .map_err(|e| self.fail(e))?;
            self.manifest = Some(manifest);
        }
        Ok(())
    }

    fn read_text(&self, name: &str) -> Result<String> {
        let bytes = std::fs::read(self.dir.path().join(name)).context(|| format!("read {name}"))?;
        String::from_utf8(bytes)
            .map_err(|_| self.fail(format!("member '{name}' is not UTF-8 text")))
    }

    /// The archive file this was read from.
    pub fn archive(&self) -> &Path {
        &self.archive
    }

    /// Compressor of the outer tar, as detected.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The directory holding the extracted members.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The hash file that was verified.
    pub fn hash_kind(&self) -> HashKind {
        self.hash_kind
    }

    /// Content of `version`, without the line end.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Content of `os_version`, or `Unknown` for archives without it.
    pub fn os_version(&self) -> &str {
        &self.os_version
    }

    pub fn config(&self) -> &ArchiveConfig {
        &self.config
    }

    /// holdfast's manifest, when the archive has one.
    pub fn manifest(&self) -> Option<&Manifest> {
        self.manifest.as_ref()
    }

    /// Every regular-file member, sorted by name.
    pub fn members(&self) -> impl Iterator<Item = &MemberInfo> {
        self.members.values()
    }

    /// One member's tar record.
    pub fn member(&self, name: &str) -> Option<&MemberInfo> {
        self.members.get(name)
    }

    /// Path of an extracted member.
    pub fn member_path(&self, name: &str) -> Option<PathBuf> {
        self.members
            .contains_key(name)
            .then(|| self.dir.path().join(name))
    }

    /// The database dumps present (`db/*`), in name order.
    pub fn dumps(&self) -> Vec<&MemberInfo> {
        self.members
            .values()
            .filter(|m| m.name.starts_with("db/"))
            .collect()
    }
}

/// Counts the decompressed bytes the tar reader consumes.
struct CountingReader<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// Extract the outer tar into `dir`. Errors are the text after
/// `<archive>: ` in the final message.
fn extract(
    file: File,
    dir: &Path,
    limits: &ReadLimits,
) -> std::result::Result<(Codec, BTreeMap<String, MemberInfo>, KnownDigests), String> {
    let (codec, decoder) =
        Codec::detect_decoder(file).map_err(|e| format!("cannot read the archive: {e}"))?;
    let consumed = Rc::new(Cell::new(0u64));
    let mut counting = CountingReader {
        inner: decoder,
        count: consumed.clone(),
    };
    let stream_err = |e: io::Error| stream_error(codec, e);
    let mut members = BTreeMap::new();
    let mut digests = KnownDigests::default();
    let mut dirs_seen: Vec<String> = Vec::new();
    let mut total: u64 = 0;
    let mut entries_seen = 0usize;
    let mut end_of_last: u64 = 0;
    {
        let mut tar = tar::Archive::new(&mut counting);
        for entry in tar.entries().map_err(stream_err)? {
            // A whole first header of an uncompressed file that does not
            // parse: the file is something else, and the parser's words
            // (bytes of it taken as a name) say nothing.
            let mut entry = entry.map_err(|e| {
                if entries_seen == 0 && codec == Codec::None && consumed.get() >= 512 {
                    not_an_archive(codec)
                } else {
                    stream_err(e)
                }
            })?;
            entries_seen += 1;
            if entries_seen > limits.max_entries {
                return Err(format!("more than {} entries", limits.max_entries));
            }
            let raw_name = String::from_utf8(entry.path_bytes().into_owned())
                .map_err(|_| "a member name is not UTF-8".to_string())?;
            let size = entry.header().size().map_err(stream_err)?;
            end_of_last = entry.raw_file_position() + size.div_ceil(512) * 512;
            let name = member_name(&raw_name)?;
            let kind = entry.header().entry_type();
            if kind.is_dir() {
                if !(name.is_empty() || name == DB_DIR) {
                    return Err(format!("unexpected directory '{raw_name}' in the archive"));
                }
                if dirs_seen.contains(&name) {
                    return Err(format!("duplicate entry '{raw_name}'"));
                }
                dirs_seen.push(name);
                continue;
            }
            if !(kind.is_file() || kind == tar::EntryType::GNUSparse) {
                return Err(format!(
                    "member '{raw_name}' is a {}; only regular files and directories are allowed",
                    entry_kind_name(kind)
                ));
            }
            if !is_member_name(&name) {
                return Err(format!("unexpected member '{raw_name}'"));
            }
            if members.contains_key(&name) {
                return Err(format!("duplicate member '{raw_name}'"));
            }
            if size > limits.max_member_bytes {
                return Err(format!(
                    "member '{name}' is {size} bytes, more than the limit of {}",
                    limits.max_member_bytes
                ));
            }
            total += size;
            if total > limits.max_total_bytes {
                return Err(format!(
                    "members total more than the limit of {} bytes",
                    limits.max_total_bytes
                ));
            }
            let mtime = entry.header().mtime().map_err(stream_err)?;
            if name.starts_with("db/") {
                let db = dir.join(DB_DIR);
                if !db.exists() {
                    std::fs::create_dir(&db)
                        .map_err(|e| format!("cannot create {}: {e}", db.display()))?;
                }
            }
            let target = dir.join(&name);
            let mut out = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&target)
                .map_err(|e| format!("cannot create {}: {e}", target.display()))?;
            let mut hashed = Sha256Writer::new(&mut out);
            let copied = copy_capped(&mut entry, &mut hashed, size).map_err(|e| {
                if is_storage_full(&e) {
                    format!(
                        "cannot unpack into {}: {e}; free some space there or pass another --tmpdir",
                        dir.display()
                    )
                } else {
                    stream_err(e)
                }
            })?;
            if copied != size {
                return Err(format!(
                    "member '{name}' is truncated ({copied} of {size} bytes): the archive is incomplete"
                ));
            }
            digests.insert(target, hashed.hex_digest());
            members.insert(name.clone(), MemberInfo { name, size, mtime });
        }
    }
    // tar stops at the first zero block or at the end of the stream; only the
    // former is a complete archive.
    if entries_seen == 0 && consumed.get() > 0 {
        return Err(not_an_archive(codec));
    }
    if consumed.get() < end_of_last + 512 || entries_seen == 0 {
        return Err("the archive is truncated (no end-of-archive marker)".to_string());
    }
    // Read the rest so that a corrupt or truncated compressed stream is noticed.
    let mut padding = [0u8; 64 * 1024];
    let mut trailing: u64 = 0;
    loop {
        let n = counting.read(&mut padding).map_err(stream_err)?;
        if n == 0 {
            break;
        }
        trailing += n as u64;
        if trailing > 16 << 20 {
            return Err("unexpected data after the end of the tar archive".to_string());
        }
    }
    Ok((codec, members, digests))
}

/// A write that failed for lack of room, not a damaged archive.
fn is_storage_full(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSPC | libc::EDQUOT | libc::EFBIG)
    )
}

/// The reason for a file that is not an archive at all.
fn not_an_archive(codec: Codec) -> String {
    match codec {
        Codec::None => {
            "not a holdfast or engine-backup archive (neither a tar file nor compressed)".into()
        }
        other => format!(
            "not a holdfast or engine-backup archive (its {other} content is not a tar file)"
        ),
    }
}

/// The manifest of an archive, read from the archive's head without
/// unpacking it (it comes before the dumps). `None` for an archive without
/// one (engine-backup's) and for a file that cannot be read that far:
/// opening it with [`ArchiveReader`] then says why. Not yet checked against
/// the archive's hash file: use it to choose how to read the archive, which
/// then checks it.
pub fn peek_manifest(archive: &Path) -> Option<Manifest> {
    let file = File::open(archive).ok()?;
    let (_, decoder) = Codec::detect_decoder(file).ok()?;
    let mut tar = tar::Archive::new(decoder);
    for entry in tar.entries().ok()? {
        let mut entry = entry.ok()?;
        let name = member_name(&String::from_utf8_lossy(&entry.path_bytes())).ok()?;
        if name == MANIFEST_MEMBER {
            const MAX_MANIFEST_BYTES: u64 = 64 << 20;
            if entry.size() > MAX_MANIFEST_BYTES {
                return None;
            }
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).ok()?;
            return Manifest::parse(&bytes, MANIFEST_MEMBER).ok();
        }
        // The manifest precedes the hash file and the dumps.
        if name == "sha256sum" || name == "md5sum" || name.starts_with("db/") {
            break;
        }
    }
    None
}

fn stream_error(codec: Codec, e: io::Error) -> String {
    match codec {
        Codec::None => format!("the tar stream is damaged or truncated: {e}"),
        other => format!("the {other} stream is damaged or truncated: {e}"),
    }
}

/// `./config` → `config`, `./` → ``, `./db/` → `db`; refuses absolute names,
/// `..` and anything odd.
fn member_name(raw: &str) -> std::result::Result<String, String> {
    if raw.starts_with('/') {
        return Err(format!("member '{raw}' has an absolute path"));
    }
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => continue,
            ".." => return Err(format!("member '{raw}' has a '..' path component")),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

fn entry_kind_name(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::Symlink => "symbolic link",
        tar::EntryType::Link => "hard link",
        tar::EntryType::Char => "character device",
        tar::EntryType::Block => "block device",
        tar::EntryType::Fifo => "fifo",
        _ => "special entry",
    }
}

/// Copy at most `size` bytes, returning how many arrived.
fn copy_capped(from: &mut impl Read, to: &mut impl Write, size: u64) -> io::Result<u64> {
    let mut limited = from.take(size);
    io::copy(&mut limited, to)
}
