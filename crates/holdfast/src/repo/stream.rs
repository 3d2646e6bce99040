//! A snapshot source of files that are produced while the engine reads them
//! (a VM disk streamed from an image transfer): each file is a name, a size
//! known in advance and a function that opens its byte stream. Nothing is
//! staged on disk, and only what the reader holds is in memory.
//!
//! The files sit flat under the snapshot root, in name order (rustic_core
//! builds trees from sorted paths).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustic_core::repofile::{Metadata, Node, NodeType};
use rustic_core::{ErrorKind, ReadSource, ReadSourceEntry, ReadSourceOpen, RusticError};

/// Opens one file's stream; called once, by the engine's reader thread.
pub type Opener = Arc<dyn Fn() -> std::io::Result<Box<dyn Read + Send>> + Send + Sync>;

/// One streamed file.
#[derive(Clone)]
pub struct StreamFile {
    name: String,
    size: u64,
    open: Opener,
}

impl StreamFile {
    /// `name` must be a plain file name.
    pub fn new(name: impl Into<String>, size: u64, open: Opener) -> StreamFile {
        StreamFile {
            name: name.into(),
            size,
            open,
        }
    }

    /// A small file held in memory (a configuration document).
    pub fn bytes(name: impl Into<String>, data: Vec<u8>) -> StreamFile {
        let data = Arc::new(data);
        let size = data.len() as u64;
        StreamFile::new(
            name,
            size,
            Arc::new(move || {
                Ok(Box::new(std::io::Cursor::new(data.as_ref().clone())) as Box<dyn Read + Send>)
            }),
        )
    }
}

/// The opener handed to the engine.
pub struct StreamOpen {
    file: StreamFile,
}

impl ReadSourceOpen for StreamOpen {
    type Reader = Box<dyn Read + Send>;

    fn open(self) -> rustic_core::RusticResult<Self::Reader> {
        (self.file.open)().map_err(|e| {
            RusticError::with_source(ErrorKind::InputOutput, "cannot open `{name}`", e)
                .attach_context("name", self.file.name.clone())
        })
    }
}

/// The files of one snapshot, under `root`.
pub struct StreamSource {
    root: PathBuf,
    files: Vec<StreamFile>,
}

impl StreamSource {
    pub fn new(root: &Path, mut files: Vec<StreamFile>) -> StreamSource {
        files.sort_by(|a, b| a.name.cmp(&b.name));
        StreamSource {
            root: root.to_path_buf(),
            files,
        }
    }

    /// (path relative to the root, size) of every file, as
    /// [`super::Repo::backup_source`] checks them.
    pub fn expected(&self) -> Vec<(PathBuf, u64)> {
        self.files
            .iter()
            .map(|f| (PathBuf::from(&f.name), f.size))
            .collect()
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl ReadSource for StreamSource {
    type Open = StreamOpen;
    type Iter = std::vec::IntoIter<rustic_core::RusticResult<ReadSourceEntry<StreamOpen>>>;

    fn size(&self) -> rustic_core::RusticResult<Option<u64>> {
        Ok(Some(self.files.iter().map(|f| f.size).sum()))
    }

    fn entries(&self) -> Self::Iter {
        let now = rustic_core::jiff::Timestamp::now();
        self.files
            .iter()
            .map(|f| {
                let meta = Metadata {
                    mode: Some(0o600),
                    mtime: Some(now),
                    size: f.size,
                    ..Default::default()
                };
                let node = Node::new_node(f.name.as_ref(), NodeType::File, meta);
                Ok(ReadSourceEntry {
                    path: self.root.join(&f.name),
                    node,
                    open: Some(StreamOpen { file: f.clone() }),
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
    }
}
