//! The compressed custom dumps decompressed ahead of their load: pg_restore
//! `-j` needs a file it can seek in, and while the restore is checked, the
//! files restored and one database loads, the next dump is decompressed on a
//! thread of its own, so that the decompression hides behind that work
//! instead of adding to it. Only the work directory is written to. At most one dump waits decompressed beside the
//! one loading, and each is removed once loaded.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};

use crate::archive::{ArchiveReader, Codec, DumpFormat};
use crate::Result;

use super::checks::DbTarget;
use super::selection::Selection;

/// What the decompressing thread works through, in load order.
pub(super) struct DumpQueue {
    /// Index into the targets, the member, its codec.
    jobs: Vec<(usize, PathBuf, Codec)>,
    dir: PathBuf,
}

/// The loading side: each prefetched dump, waited for in load order.
pub(super) struct Prefetched<'s> {
    ready: Receiver<(usize, Result<PathBuf>)>,
    stop: &'s AtomicBool,
}

impl DumpQueue {
    /// The selected databases whose dump pg_restore reads from a
    /// decompressed copy (in the order they load), decompressed into `dir`.
    pub fn of(selection: &Selection, archive: &ArchiveReader, dir: &Path) -> DumpQueue {
        let jobs = selection
            .databases
            .iter()
            .enumerate()
            .filter_map(|(i, (db, member))| {
                let settings = archive.config().get(&db.archive_config_prefix);
                (settings.format == DumpFormat::Custom && settings.compressor != Codec::None)
                    .then(|| (i, member.clone(), settings.compressor))
            })
            .collect();
        DumpQueue {
            jobs,
            dir: dir.to_path_buf(),
        }
    }

    /// Decompress every dump in turn, handing each over when it is whole;
    /// ends early when `stop` is set or nobody waits any more.
    pub fn run(self, ready: SyncSender<(usize, Result<PathBuf>)>, stop: &AtomicBool) {
        for (index, member, codec) in self.jobs {
            let name = member.file_name().unwrap_or_default().to_string_lossy();
            let out = self.dir.join(format!("{name}.uncompressed"));
            let done = codec
                .decompress_into(&member, &out, &|| {
                    stop.load(Ordering::Relaxed) || crate::interrupt::requested().is_some()
                })
                .map(|()| out);
            let failed = done.is_err();
            if ready.send((index, done)).is_err() || failed {
                return;
            }
        }
    }
}

/// A channel for [`DumpQueue::run`]: one dump ahead of the one loading.
pub(super) fn channel(stop: &AtomicBool) -> (SyncSender<(usize, Result<PathBuf>)>, Prefetched<'_>) {
    let (sender, ready) = mpsc::sync_channel(0);
    (sender, Prefetched { ready, stop })
}

impl Prefetched<'_> {
    /// Give `target` (the `index`th) its decompressed dump, waiting for it,
    /// when it is one the queue decompresses.
    pub fn supply(&self, index: usize, target: &DbTarget) -> Result<()> {
        if !(target.format == DumpFormat::Custom && target.codec != Codec::None) {
            return Ok(());
        }
        loop {
            match self.ready.recv() {
                Ok((i, done)) if i == index => {
                    target.use_seekable_dump(done?);
                    return Ok(());
                }
                // A dump the loading side skipped (it failed first).
                Ok((_, done)) => {
                    if let Ok(path) = done {
                        let _ = std::fs::remove_file(path);
                    }
                }
                Err(_) => {
                    return Err(crate::Error::failed(
                        "the dump decompression stopped before the database's dump",
                    ))
                }
            }
        }
    }
}

impl Drop for Prefetched<'_> {
    /// Whatever happens on the loading side, the decompressing thread stops.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
