//! The source a snapshot is read from: a staged directory of archive members,
//! presented to rustic_core under a snapshot path of ours, every file read
//! through a 4 MiB buffer.
//!
//! Why our own source: rustic_core's stdin and command sources refill their
//! chunker with tiny reads on pipes (3–4× slower, see the design notes), and
//! they can carry only one file per snapshot. A `ReadSource` of ours gives one
//! snapshot with every member, each with its real size, mtime and mode.

use std::fs::File;
use std::io::BufReader;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustic_core::repofile::{Metadata, Node, NodeType};
use rustic_core::{ErrorKind, ReadSource, ReadSourceEntry, ReadSourceOpen, RusticError};

use crate::{IoContext, Result};

/// Read buffer per file: large enough that the chunker never sees short reads.
const READ_BUFFER: usize = 4 << 20;

/// Go's `fs.ModeDir`, which restic's format uses for directories.
const GO_MODE_DIR: u32 = 1 << 31;

/// A regular file of the staged directory, opened only when the archiver reaches it.
#[derive(Debug, Clone)]
pub struct StagedFile {
    path: PathBuf,
}

impl ReadSourceOpen for StagedFile {
    type Reader = BufReader<File>;

    fn open(self) -> rustic_core::RusticResult<Self::Reader> {
        let file = File::open(&self.path).map_err(|e| {
            RusticError::with_source(ErrorKind::InputOutput, "cannot open `{path}`", e)
                .attach_context("path", self.path.display().to_string())
        })?;
        Ok(BufReader::with_capacity(READ_BUFFER, file))
    }
}

/// One entry of a staged directory: where it is on disk and where it goes in the snapshot.
#[derive(Debug, Clone)]
struct Staged {
    disk: PathBuf,
    snapshot: PathBuf,
    node: Node,
}

/// A staged directory, listed once, sorted the way rustic_core builds trees
/// (parents before children, siblings by name).
#[derive(Debug, Clone)]
pub struct StagedSource {
    entries: Vec<Staged>,
    size: u64,
}

impl StagedSource {
    /// List `dir` recursively; each entry `dir/a/b` becomes `snapshot_root/a/b`.
    /// Only directories and regular files are accepted: the staging directory is
    /// ours, so anything else means it was tampered with.
    pub fn new(dir: &Path, snapshot_root: &Path) -> Result<StagedSource> {
        let mut entries = Vec::new();
        collect(dir, snapshot_root, &mut entries)?;
        entries.sort_by(|a, b| a.snapshot.cmp(&b.snapshot));
        let size = entries.iter().map(|e| e.node.meta.size).sum();
        Ok(StagedSource { entries, size })
    }

    /// The regular files, as (path relative to the snapshot root, size).
    pub fn files(&self, snapshot_root: &Path) -> Vec<(PathBuf, u64)> {
        self.entries
            .iter()
            .filter(|e| e.node.is_file())
            .map(|e| {
                let rel = e
                    .snapshot
                    .strip_prefix(snapshot_root)
                    .unwrap_or(&e.snapshot);
                (rel.to_path_buf(), e.node.meta.size)
            })
            .collect()
    }

    /// Bytes of all files.
    pub fn total_size(&self) -> u64 {
        self.size
    }
}

fn collect(dir: &Path, snapshot_dir: &Path, out: &mut Vec<Staged>) -> Result<()> {
    let listing = std::fs::read_dir(dir).context(|| format!("list {}", dir.display()))?;
    for entry in listing {
        let entry = entry.context(|| format!("list {}", dir.display()))?;
        let disk = entry.path();
        let meta =
            std::fs::symlink_metadata(&disk).context(|| format!("stat {}", disk.display()))?;
        let snapshot = snapshot_dir.join(entry.file_name());
        let node_type = if meta.is_dir() {
            NodeType::Dir
        } else if meta.is_file() {
            NodeType::File
        } else {
            return Err(crate::Error::failed(format!(
                "{} is neither a file nor a directory; the staging directory was changed by someone else",
                disk.display()
            )));
        };
        let node = Node::new_node(&entry.file_name(), node_type, node_metadata(&meta));
        let is_dir = meta.is_dir();
        out.push(Staged {
            disk: disk.clone(),
            snapshot: snapshot.clone(),
            node,
        });
        if is_dir {
            collect(&disk, &snapshot, out)?;
        }
    }
    Ok(())
}

/// Size, mtime, mode and owner as restic records them.
fn node_metadata(meta: &std::fs::Metadata) -> Metadata {
    let perm = meta.mode() & 0o7777;
    let mode = if meta.is_dir() {
        perm | GO_MODE_DIR
    } else {
        perm
    };
    let mtime = rustic_core::jiff::Timestamp::new(meta.mtime(), meta.mtime_nsec() as i32).ok();
    Metadata {
        mode: Some(mode),
        mtime,
        uid: Some(meta.uid()),
        gid: Some(meta.gid()),
        size: if meta.is_file() { meta.len() } else { 0 },
        ..Default::default()
    }
}

impl ReadSource for StagedSource {
    type Open = StagedFile;
    type Iter = std::vec::IntoIter<rustic_core::RusticResult<ReadSourceEntry<StagedFile>>>;

    fn size(&self) -> rustic_core::RusticResult<Option<u64>> {
        Ok(Some(self.size))
    }

    fn entries(&self) -> Self::Iter {
        self.entries
            .iter()
            .map(|e| {
                Ok(ReadSourceEntry {
                    path: e.snapshot.clone(),
                    node: e.node.clone(),
                    open: e.node.is_file().then(|| StagedFile {
                        path: e.disk.clone(),
                    }),
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
    }
}
