//! Writing an archive: members are registered (and hashed) first, then packed
//! in engine-backup's order into a temporary file next to the destination,
//! which replaces the destination only once it is complete and synced; or
//! written as the files of a directory, for a repository snapshot.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;

use super::checksum::{self, HashKind, HashLine};
use super::codec::Codec;
use super::manifest::{MemberRecord, MANIFEST_MEMBER};
use super::owner;
use super::{is_member_name, DB_DIR, TOP_MEMBERS};
use crate::error::{Error, IoContext, Result};

/// How to write an archive.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Compressor of the outer tar (engine-backup's default: gzip).
    pub codec: Codec,
    /// Compression level; `None` for the codec's default.
    pub level: Option<i32>,
    /// Compression threads (zstd, xz).
    pub threads: u32,
    /// Replace an existing file at the destination (engine-backup does).
    pub overwrite: bool,
}

impl Default for WriterOptions {
    fn default() -> WriterOptions {
        WriterOptions {
            codec: Codec::Gzip,
            level: None,
            threads: 1,
            overwrite: false,
        }
    }
}

enum Source {
    Bytes(Vec<u8>),
    /// A file, as it was when it was hashed (its modification time).
    File(PathBuf, SystemTime),
}

struct Member {
    name: String,
    source: Source,
    size: u64,
    sha256: String,
    mtime: u64,
}

/// An archive being written. Dropping it before [`ArchiveWriter::finish`]
/// removes the temporary file and leaves the destination untouched.
pub struct ArchiveWriter {
    target: Target,
    options: WriterOptions,
    members: Vec<Member>,
    now: u64,
}

/// What [`ArchiveWriter::finish`] writes.
enum Target {
    /// A tar at `dest`, through `temp` beside it.
    Tar {
        dest: PathBuf,
        temp: NamedTempFile,
        // Locked while we write, so that a later backup can tell it from a killed one's.
        _held: std::fs::File,
    },
    /// The members as files in a directory, for a repository snapshot: no
    /// tar is packed only to be unpacked again.
    Directory(PathBuf),
}

impl ArchiveWriter {
    /// Start an archive at `dest`: checks the destination and creates the
    /// temporary file (0600) in its directory.
    pub fn create(dest: &Path, options: WriterOptions) -> Result<ArchiveWriter> {
        if dest.is_dir() {
            return Err(Error::usage(format!(
                "{} is a directory; give the archive's file name",
                dest.display()
            )));
        }
        if !options.overwrite && dest.symlink_metadata().is_ok() {
            return Err(Error::usage(format!(
                "{} already exists; remove it or choose another file name",
                dest.display()
            )));
        }
        let dir = parent_dir(dest);
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let prefix = format!(".{name}.");
        crate::leftovers::sweep(dir, |n| {
            crate::leftovers::is_temporary(n, &prefix, 6, ".partial")
        });
        let temp = tempfile::Builder::new()
            .prefix(&prefix)
            .suffix(".partial")
            .tempfile_in(dir)
            .context(|| format!("create a temporary archive in {}", dir.display()))?;
        let held = crate::leftovers::hold(temp.path())
            .context(|| format!("lock {}", temp.path().display()))?;
        // Validate the codec settings now rather than after the dumps were taken.
        options.codec.encoder(io::sink(), options.level, 1)?;
        Ok(ArchiveWriter {
            target: Target::Tar {
                dest: dest.to_path_buf(),
                temp,
                _held: held,
            },
            options,
            members: Vec::new(),
            now: now_seconds(),
        })
    }

    /// The temporary file being written (`None` for a directory).
    pub fn temp_path(&self) -> Option<&Path> {
        match &self.target {
            Target::Tar { temp, .. } => Some(temp.path()),
            Target::Directory(_) => None,
        }
    }

    /// Members written as files into `dir` (which holds the file members
    /// already, at their member names) instead of a tar: what a repository
    /// snapshot stores. Nothing there is synced: the repository syncs what
    /// it stores.
    pub fn create_directory(dir: &Path) -> ArchiveWriter {
        ArchiveWriter {
            target: Target::Directory(dir.to_path_buf()),
            options: WriterOptions {
                codec: Codec::None,
                ..WriterOptions::default()
            },
            members: Vec::new(),
            now: now_seconds(),
        }
    }

    /// Add a member with the given content (`config`, `version`, ...).
    pub fn add_bytes(&mut self, name: &str, data: impl Into<Vec<u8>>) -> Result<()> {
        self.check_new_name(name)?;
        let data = data.into();
        let sha256 = hex::encode(Sha256::digest(&data));
        self.members.push(Member {
            name: name.to_string(),
            size: data.len() as u64,
            sha256,
            mtime: self.now,
            source: Source::Bytes(data),
        });
        Ok(())
    }

    /// Add a member whose content is the file at `path` (a dump, the `files`
    /// tar). The file is hashed now and must not change before `finish`; its
    /// mtime becomes the member's.
    pub fn add_file(&mut self, name: &str, path: &Path) -> Result<()> {
        self.check_new_name(name)?;
        let meta = std::fs::metadata(path).context(|| format!("stat {}", path.display()))?;
        if !meta.is_file() {
            return Err(Error::usage(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        let sha256 = HashKind::Sha256.digest_file(path)?;
        self.members.push(Member {
            name: name.to_string(),
            source: Source::File(path.to_path_buf(), modified(&meta, path)?),
            size: meta.len(),
            sha256,
            mtime: meta.mtime().max(0) as u64,
        });
        Ok(())
    }

    /// Size and SHA-256 of every member added so far except the manifest, for
    /// the manifest's `members`.
    pub fn member_records(&self) -> Vec<MemberRecord> {
        ordered(&self.members)
            .into_iter()
            .filter(|m| m.name != MANIFEST_MEMBER)
            .map(|m| MemberRecord {
                name: m.name.clone(),
                size: m.size,
                sha256: m.sha256.clone(),
            })
            .collect()
    }

    fn check_new_name(&self, name: &str) -> Result<()> {
        if !is_member_name(name) || name == "sha256sum" || name == "md5sum" {
            return Err(Error::usage(format!(
                "'{name}' is not a member name an archive can hold"
            )));
        }
        if self.members.iter().any(|m| m.name == name) {
            return Err(Error::usage(format!("member '{name}' was already added")));
        }
        Ok(())
    }

    /// Write `sha256sum` and pack everything, sync, and move the archive to its
    /// destination. Returns the destination (the directory, for
    /// [`ArchiveWriter::create_directory`]).
    pub fn finish(self) -> Result<PathBuf> {
        let ArchiveWriter {
            target,
            options,
            members,
            now,
        } = self;
        let ordered = ordered(&members);
        let hash_lines: Vec<HashLine> = ordered
            .iter()
            .map(|m| HashLine {
                digest: m.sha256.clone(),
                path: m.name.clone(),
            })
            .collect();
        let hash_text = checksum::render(&hash_lines);
        match target {
            Target::Tar { dest, temp, _held } => {
                pack_tar(&dest, temp, &options, ordered, &hash_text, now)?;
                Ok(dest)
            }
            Target::Directory(dir) => {
                write_directory(&dir, ordered, &hash_text)?;
                Ok(dir)
            }
        }
    }
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Members in engine-backup's order: top-level ones as in [`TOP_MEMBERS`],
/// then the dumps sorted by name.
fn ordered(members: &[Member]) -> Vec<&Member> {
    let rank = |m: &Member| match TOP_MEMBERS.iter().position(|t| *t == m.name) {
        Some(i) => (0, i, String::new()),
        None => (1, 0, m.name.clone()),
    };
    let mut members: Vec<&Member> = members.iter().collect();
    members.sort_by_key(|m| rank(m));
    members
}

/// Every member as a file of `dir`, `sha256sum` included; a file member
/// staged elsewhere is copied in.
fn write_directory(dir: &Path, members: Vec<&Member>, hash_text: &str) -> Result<()> {
    let write = |name: &str, data: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, data).context(|| format!("write {}", path.display()))
    };
    for member in members {
        let path = dir.join(&member.name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).context(|| format!("create {}", parent.display()))?;
        }
        match &member.source {
            Source::Bytes(data) => write(&member.name, data)?,
            Source::File(staged, _) if *staged == path => {}
            Source::File(staged, _) => {
                std::fs::copy(staged, &path)
                    .context(|| format!("copy {} to {}", staged.display(), path.display()))?;
            }
        }
    }
    write("sha256sum", hash_text.as_bytes())
}

/// Pack `members` into the tar at `temp`, sync it and rename it to `dest`.
fn pack_tar(
    dest: &Path,
    temp: NamedTempFile,
    options: &WriterOptions,
    ordered: Vec<&Member>,
    hash_text: &str,
    now: u64,
) -> Result<()> {
    {
        let temp_path = temp.path().to_path_buf();
        let file = temp
            .as_file()
            .try_clone()
            .context(|| format!("open {}", temp_path.display()))?;
        let encoder = options.codec.encoder(
            BufWriter::with_capacity(1 << 20, file),
            options.level,
            options.threads,
        )?;
        let mut tar = tar::Builder::new(encoder);
        let write_err = |e: io::Error| Error::io_path("write archive", &temp_path, e);

        append_dir(&mut tar, "./", now).map_err(write_err)?;
        let (top, dumps): (Vec<&Member>, Vec<&Member>) = ordered
            .into_iter()
            .partition(|m| !m.name.starts_with("db/"));
        for member in top {
            append_member(&mut tar, member)?;
        }
        append_bytes(&mut tar, "./sha256sum", hash_text.as_bytes(), now).map_err(write_err)?;
        append_dir(&mut tar, &format!("./{DB_DIR}/"), now).map_err(write_err)?;
        for member in dumps {
            append_member(&mut tar, member)?;
        }

        let encoder = tar.into_inner().map_err(write_err)?;
        let buffered = encoder.finish().map_err(write_err)?;
        let file = buffered
            .into_inner()
            .map_err(|e| write_err(e.into_error()))?;
        file.sync_all().map_err(write_err)?;
    }
    let persisted = if options.overwrite {
        temp.persist(dest)
    } else {
        temp.persist_noclobber(dest)
    };
    persisted.map_err(|e| {
        if e.error.kind() == io::ErrorKind::AlreadyExists {
            Error::usage(format!(
                "{} already exists; remove it or choose another file name",
                dest.display()
            ))
        } else {
            Error::io_path("move the archive to", dest, e.error)
        }
    })?;
    let dir = parent_dir(dest);
    File::open(dir)
        .and_then(|d| d.sync_all())
        .context(|| format!("sync directory {}", dir.display()))?;
    Ok(())
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

fn header(kind: tar::EntryType, mode: u32, size: u64, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(mtime);
    // SAFETY: geteuid/getegid cannot fail and touch no memory.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    h.set_uid(uid as u64);
    h.set_gid(gid as u64);
    if let Some(user) = owner::user_name(uid) {
        let _ = h.set_username(&user);
    }
    if let Some(group) = owner::group_name(gid) {
        let _ = h.set_groupname(&group);
    }
    h
}

/// Put `name` into the header as is. `Header::set_path` would drop the `./`
/// prefix that engine-backup's members carry (`tar -C dir ... .`).
fn set_raw_name(h: &mut tar::Header, name: &str) -> io::Result<()> {
    let field = &mut h.as_old_mut().name;
    if name.len() >= field.len() {
        return Err(io::Error::other(format!(
            "member name {name:?} is too long"
        )));
    }
    field.fill(0);
    field[..name.len()].copy_from_slice(name.as_bytes());
    h.set_cksum();
    Ok(())
}

fn append_dir<W: Write>(tar: &mut tar::Builder<W>, name: &str, mtime: u64) -> io::Result<()> {
    let mut h = header(tar::EntryType::Directory, 0o755, 0, mtime);
    set_raw_name(&mut h, name)?;
    tar.append(&h, io::empty())
}

fn append_bytes<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    data: &[u8],
    mtime: u64,
) -> io::Result<()> {
    let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64, mtime);
    set_raw_name(&mut h, name)?;
    tar.append(&h, data)
}

fn append_member<W: Write>(tar: &mut tar::Builder<W>, member: &Member) -> Result<()> {
    let name = format!("./{}", member.name);
    match &member.source {
        Source::Bytes(data) => append_bytes(tar, &name, data, member.mtime)
            .map_err(|e| Error::io(format!("write member {}", member.name), e)),
        Source::File(path, hashed_at) => {
            // Hashed when it was added; packing it checks it is the same
            // file (size, modification time) rather than hashing it again,
            // which cost a second pass over every dump.
            let file = File::open(path).context(|| format!("open {}", path.display()))?;
            let meta = file
                .metadata()
                .context(|| format!("stat {}", path.display()))?;
            if meta.len() != member.size || modified(&meta, path)? != *hashed_at {
                return Err(Error::failed(format!(
                    "{} changed while it was being archived",
                    path.display()
                )));
            }
            let mut counting = CountingReader {
                inner: file,
                count: 0,
            };
            let mut h = header(tar::EntryType::Regular, 0o644, member.size, member.mtime);
            set_raw_name(&mut h, &name)
                .and_then(|()| tar.append(&h, (&mut counting).take(member.size)))
                .map_err(|e| Error::io(format!("write member {}", member.name), e))?;
            if counting.count != member.size {
                return Err(Error::failed(format!(
                    "{} changed while it was being archived",
                    path.display()
                )));
            }
            Ok(())
        }
    }
}

fn modified(meta: &std::fs::Metadata, path: &Path) -> Result<SystemTime> {
    meta.modified()
        .context(|| format!("read the modification time of {}", path.display()))
}

/// Counts what passes through, to catch a file that shrank between hashing
/// and packing.
struct CountingReader<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}
