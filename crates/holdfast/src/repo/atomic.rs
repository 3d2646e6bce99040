//! Writes to a local repository that a full disk or a kill cannot leave
//! half-done: every file is written under a temporary name in its own
//! directory, fsynced, renamed into place, and the directory fsynced.
//!
//! rustic_backend's local backend writes straight to the final name (create,
//! set the length, copy): a full disk or a SIGKILL in the middle leaves an
//! index or snapshot file of the right length full of zeros, and every later
//! run that reads the index fails. restic's own local backend and
//! `holdfast serve` write through a temporary name for the same reason.
//!
//! A temporary file is named `.holdfast-<pid>-<random>-<host>.tmp`: not a
//! file id, so neither rustic nor restic ever lists it. One left by a killed
//! run is removed by the next run that writes ([`remove_stale_temporaries`])
//! when it is older than 30 minutes, or when it was written on this host by a
//! process that is gone (restic's rules for a stale lock).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use rustic_core::{
    BytesList, ErrorKind, FileType, Id, ReadBackend, RusticError, RusticResult, WriteBackend,
};

/// Prefix and suffix of temporary files.
const TEMP_PREFIX: &str = ".holdfast-";
const TEMP_SUFFIX: &str = ".tmp";
/// A temporary file older than this is stale whoever wrote it (restic's lock rule).
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);

/// rustic_backend's local backend with atomic, durable writes.
pub struct AtomicLocalBackend {
    inner: Arc<dyn WriteBackend>,
    dir: PathBuf,
}

impl AtomicLocalBackend {
    pub fn new(inner: Arc<dyn WriteBackend>, dir: &Path) -> AtomicLocalBackend {
        AtomicLocalBackend {
            inner,
            dir: dir.to_path_buf(),
        }
    }

    /// Where rustic_backend (and restic) keep a file of this type and id.
    fn path(&self, tpe: FileType, id: &Id) -> PathBuf {
        let hex = id.to_hex();
        match tpe {
            FileType::Config => self.dir.join("config"),
            FileType::Pack => self.dir.join("data").join(&hex[0..2]).join(&*hex),
            _ => self.dir.join(tpe.dirname()).join(&*hex),
        }
    }
}

fn io_error(doing: &str, path: &Path, err: std::io::Error) -> Box<RusticError> {
    RusticError::with_source(ErrorKind::InputOutput, "Failed to {doing} `{path}`.", err)
        .attach_context("doing", doing.to_string())
        .attach_context("path", path.display().to_string())
}

/// Write `content` at `path` through a temporary name in the same directory.
fn write_atomically(path: &Path, content: &BytesList) -> RusticResult<()> {
    let dir = path.parent().expect("repository files live in a directory");
    std::fs::create_dir_all(dir).map_err(|e| io_error("create", dir, e))?;
    let temp = dir.join(format!(
        "{TEMP_PREFIX}{}-{:016x}-{}{TEMP_SUFFIX}",
        std::process::id(),
        rand_suffix(),
        hostname()
    ));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(|e| io_error("create", &temp, e))?;
        for part in content.slice() {
            file.write_all(part)
                .map_err(|e| io_error("write", &temp, e))?;
        }
        file.sync_all().map_err(|e| io_error("fsync", &temp, e))?;
        std::fs::rename(&temp, path).map_err(|e| io_error("rename into place", path, e))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_error("fsync", dir, e))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// This machine's host name, as restic records it in a lock.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // within it or truncates.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".to_string();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Enough randomness to keep two writers of one process apart.
fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ COUNTER.fetch_add(1, Ordering::Relaxed).rotate_left(32)
}

impl ReadBackend for AtomicLocalBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn list_with_size(&self, tpe: FileType) -> RusticResult<Vec<(Id, u32)>> {
        self.inner.list_with_size(tpe)
    }

    fn list(&self, tpe: FileType) -> RusticResult<Vec<Id>> {
        self.inner.list(tpe)
    }

    fn read_full(&self, tpe: FileType, id: &Id) -> RusticResult<Bytes> {
        self.inner.read_full(tpe, id)
    }

    fn read_partial(
        &self,
        tpe: FileType,
        id: &Id,
        cacheable: bool,
        offset: u32,
        length: u32,
    ) -> RusticResult<Bytes> {
        self.inner.read_partial(tpe, id, cacheable, offset, length)
    }

    fn warmup_path(&self, tpe: FileType, id: &Id) -> String {
        self.inner.warmup_path(tpe, id)
    }

    fn needs_warm_up(&self) -> bool {
        self.inner.needs_warm_up()
    }

    fn warm_up(&self, tpe: FileType, id: &Id) -> RusticResult<()> {
        self.inner.warm_up(tpe, id)
    }
}

impl WriteBackend for AtomicLocalBackend {
    fn create(&self) -> RusticResult<()> {
        self.inner.create()
    }

    fn write_bytes(
        &self,
        tpe: FileType,
        id: &Id,
        _cacheable: bool,
        content: BytesList,
    ) -> RusticResult<()> {
        write_atomically(&self.path(tpe, id), &content)
    }

    fn remove(&self, tpe: FileType, id: &Id, cacheable: bool) -> RusticResult<()> {
        self.inner.remove(tpe, id, cacheable)
    }
}

/// A temporary file left in a repository directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Temporary {
    pub path: PathBuf,
    pub size: u64,
    /// Its writer is gone, or it is older than [`STALE_AFTER`].
    pub stale: bool,
}

/// The temporary files of interrupted writes under a local repository.
pub fn temporaries(dir: &Path) -> Vec<Temporary> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            let name = entry.file_name().to_string_lossy().into_owned();
            if meta.is_dir() {
                stack.push(entry.path());
                continue;
            }
            let Some((pid, host)) = name
                .strip_prefix(TEMP_PREFIX)
                .and_then(|rest| rest.strip_suffix(TEMP_SUFFIX))
                .and_then(|rest| {
                    let mut fields = rest.splitn(3, '-');
                    let pid = fields.next()?.parse::<u32>().ok()?;
                    let _random = fields.next()?;
                    Some((pid, fields.next()?.to_string()))
                })
            else {
                continue;
            };
            let old = meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age > STALE_AFTER);
            let writer_gone = host == hostname() && !Path::new(&format!("/proc/{pid}")).exists();
            found.push(Temporary {
                path: entry.path(),
                size: meta.len(),
                stale: old || writer_gone,
            });
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found
}

/// Remove the stale temporary files under a local repository; returns them.
pub fn remove_stale_temporaries(dir: &Path) -> Vec<Temporary> {
    temporaries(dir)
        .into_iter()
        .filter(|t| t.stale && std::fs::remove_file(&t.path).is_ok())
        .collect()
}
