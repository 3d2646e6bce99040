//! The repositories on disk, in restic's local layout: creating one, listing,
//! reading (with ranges), deleting, and atomic uploads checked against their
//! content hash.

use std::io::{self, SeekFrom};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::Stream;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufWriter};

use crate::route::{ObjectType, RepoPath};

/// Prefix of upload temporary files; never listed as objects.
pub const UPLOAD_PREFIX: &str = ".upload-";
/// Write buffer of one upload: the memory an upload holds besides hyper's own.
const UPLOAD_BUFFER: usize = 256 * 1024;

/// One repository's directory.
pub struct Repo {
    dir: PathBuf,
}

/// Why an upload was not kept.
#[derive(Debug)]
pub enum UploadError {
    /// The content's sha256 is not the object's name.
    HashMismatch {
        actual: String,
    },
    /// Append-only: the object exists already.
    Exists,
    /// The client's body failed (connection closed, bad framing).
    Body(String),
    Io(io::Error),
}

impl From<io::Error> for UploadError {
    fn from(e: io::Error) -> Self {
        UploadError::Io(e)
    }
}

impl Repo {
    pub fn new(root: &Path, repo: &RepoPath) -> Repo {
        Repo {
            dir: repo.dir(root),
        }
    }

    pub fn exists(&self) -> bool {
        self.dir.join("keys").is_dir() || self.dir.join("config").is_file()
    }

    /// Create the repository's directories (restic's local layout, data/00..ff
    /// included), mode 0700; an existing repository is left as it is.
    pub async fn create(&self) -> io::Result<()> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true).mode(0o700);
            for kind in ObjectType::ALL {
                builder.create(dir.join(kind.dir_name()))?;
            }
            for byte in 0..=255u8 {
                builder.create(dir.join("data").join(format!("{byte:02x}")))?;
            }
            Ok(())
        })
        .await
        .map_err(io::Error::other)?
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config")
    }

    /// Where an object lives: data objects under `data/<first two hex digits>/`.
    pub fn object_path(&self, kind: ObjectType, name: &str) -> PathBuf {
        let dir = self.dir.join(kind.dir_name());
        match kind {
            ObjectType::Data => dir.join(&name[..2]).join(name),
            _ => dir.join(name),
        }
    }

    /// Names and sizes of a type's objects (temporary upload files left out).
    pub async fn list(&self, kind: ObjectType) -> io::Result<Vec<(String, u64)>> {
        let dir = self.dir.join(kind.dir_name());
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            if kind == ObjectType::Data {
                for sub in read_dir_or_empty(&dir)? {
                    let sub = sub?;
                    let name = sub.file_name();
                    let is_fanout = name.len() == 2
                        && name
                            .to_str()
                            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_hexdigit()));
                    if is_fanout && sub.file_type()?.is_dir() {
                        list_objects(&sub.path(), &mut out)?;
                    }
                }
            } else {
                list_objects(&dir, &mut out)?;
            }
            Ok(out)
        })
        .await
        .map_err(io::Error::other)?
    }
}

fn read_dir_or_empty(
    dir: &Path,
) -> io::Result<Box<dyn Iterator<Item = io::Result<std::fs::DirEntry>>>> {
    match std::fs::read_dir(dir) {
        Ok(rd) => Ok(Box::new(rd)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Box::new(std::iter::empty())),
        Err(e) => Err(e),
    }
}

fn list_objects(dir: &Path, out: &mut Vec<(String, u64)>) -> io::Result<()> {
    for entry in read_dir_or_empty(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let meta = entry.metadata()?;
        if meta.is_file() {
            out.push((name, meta.len()));
        }
    }
    Ok(())
}

/// The size of a regular file, `None` when there is none.
pub async fn file_size(path: &Path) -> io::Result<Option<u64>> {
    match tokio::fs::metadata(path).await {
        Ok(m) if m.is_file() => Ok(Some(m.len())),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// `len` bytes of a file from `start`, as a stream of chunks.
pub async fn read_range(
    path: &Path,
    start: u64,
    len: u64,
) -> io::Result<impl Stream<Item = io::Result<Bytes>> + Send + 'static> {
    let mut file = tokio::fs::File::open(path).await?;
    file.seek(SeekFrom::Start(start)).await?;
    Ok(tokio_util::io::ReaderStream::with_capacity(
        file.take(len),
        64 * 1024,
    ))
}

/// Remove a file; `false` when there was none.
pub async fn remove(path: &Path) -> io::Result<bool> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// How an upload may land.
pub struct UploadRules {
    /// The sha256 the content must have (hex), for content-addressed objects.
    pub expected_sha256: Option<String>,
    /// Refuse to replace an existing file (append-only).
    pub no_clobber: bool,
}

/// Stream `body` into a temporary file beside `dest`, then fsync, check the hash
/// and rename into place. Anything that fails (or a dropped future: the client went
/// away) removes the temporary file, so no partial object is ever visible.
/// `received` counts body bytes as they arrive, for the access log.
pub async fn upload<S, E>(
    dest: &Path,
    mut body: S,
    rules: UploadRules,
    received: &mut u64,
) -> Result<(), UploadError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let dir = dest
        .parent()
        .expect("objects live in a directory")
        .to_path_buf();
    let temp = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)?;
            tempfile::Builder::new()
                .prefix(UPLOAD_PREFIX)
                .tempfile_in(&dir)
        })
        .await
        .map_err(io::Error::other)??
    };
    let mut out = BufWriter::with_capacity(
        UPLOAD_BUFFER,
        tokio::fs::File::from_std(temp.as_file().try_clone()?),
    );
    let mut hasher = Sha256::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| UploadError::Body(e.to_string()))?;
        *received += chunk.len() as u64;
        hasher.update(&chunk);
        out.write_all(&chunk).await?;
    }
    out.flush().await?;
    let file = out.into_inner();
    file.sync_all().await?;
    drop(file);
    let actual = hex::encode(hasher.finalize());
    if let Some(expected) = &rules.expected_sha256 {
        if *expected != actual {
            return Err(UploadError::HashMismatch { actual });
        }
    }
    let dest = dest.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let placed = if rules.no_clobber {
            temp.persist_noclobber(&dest)
        } else {
            temp.persist(&dest)
        };
        match placed {
            Ok(_) => {}
            Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => {
                return Err(UploadError::Exists)
            }
            Err(e) => return Err(UploadError::Io(e.error)),
        }
        // The rename is durable only once the directory is.
        std::fs::File::open(&dir)?.sync_all()?;
        Ok(())
    })
    .await
    .map_err(io::Error::other)?
}
