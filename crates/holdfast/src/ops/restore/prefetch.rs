//! The compressed custom dumps decompressed ahead of their load: pg_restore
//! `-j` needs a file it can seek in, and while the restore is checked, the
//! files restored and one database loads, the next dump is decompressed on a
//! thread of its own, so that the decompression hides behind that work
//! instead of adding to it. At most one dump waits decompressed beside the
//! one loading, and each is gone once loaded.
//!
//! A decompressed dump that fits an eighth of the memory available is kept
//! in memory ([`Decompressed::Memory`], a memfd pg_restore opens through
//! `/proc`): written to disk, gigabytes of it competed with the server's own
//! writes for the disk while the previous database loaded. One that
//! outgrows that budget moves to the work directory as it does ([`Spill`]),
//! still decompressed once; nothing else is written anywhere.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
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
    ready: Receiver<(usize, Result<Decompressed>)>,
    stop: &'s AtomicBool,
}

/// A dump decompressed for pg_restore to seek in, gone when dropped.
#[derive(Debug)]
pub(super) enum Decompressed {
    /// A memfd of ours, and the `/proc` path other processes open it by.
    Memory { _file: File, path: PathBuf },
    /// A file of the work directory.
    Disk(PathBuf),
}

impl Decompressed {
    /// Where pg_restore reads it.
    pub fn path(&self) -> &Path {
        match self {
            Decompressed::Memory { path, .. } | Decompressed::Disk(path) => path,
        }
    }

    /// Decompress `member` with `codec`, once: into memory while it fits
    /// `budget` bytes, moved on to a file of `dir` when it outgrows it.
    fn of(
        member: &Path,
        codec: Codec,
        budget: u64,
        dir: &Path,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Result<Decompressed> {
        let name = member.file_name().unwrap_or_default().to_string_lossy();
        let disk_path = dir.join(format!("{name}.uncompressed"));
        let mut out = Spill::new(budget, disk_path.clone());
        let done = codec
            .decompress_to(member, &mut out, &disk_path, stop)
            .and_then(|()| out.finish());
        if done.is_err() {
            let _ = std::fs::remove_file(&disk_path);
        }
        done
    }
}

/// Where a dump is decompressed to: a memfd while the bytes fit the budget,
/// then a file of the work directory holding all of them.
struct Spill {
    memory: Option<File>,
    budget: u64,
    written: u64,
    disk_path: PathBuf,
    disk: Option<File>,
}

impl Spill {
    /// In memory from the start when a memfd can be had and `budget` is not 0.
    fn new(budget: u64, disk_path: PathBuf) -> Spill {
        let memory = (budget > 0)
            .then(|| rustix::fs::memfd_create("holdfast-dump", rustix::fs::MemfdFlags::CLOEXEC))
            .and_then(|fd| fd.ok())
            .map(File::from);
        Spill {
            memory,
            budget,
            written: 0,
            disk_path,
            disk: None,
        }
    }

    /// Move what is in memory to the file on disk, and write there from now on.
    fn spill(&mut self) -> std::io::Result<&mut File> {
        let mut disk = File::create(&self.disk_path)?;
        if let Some(mut memory) = self.memory.take() {
            memory.seek(SeekFrom::Start(0))?;
            std::io::copy(&mut memory, &mut disk)?;
        }
        Ok(self.disk.insert(disk))
    }

    /// The dump, where it ended up. One in memory that a process of ours
    /// cannot open by its `/proc` path (as pg_restore will) goes to disk.
    fn finish(&mut self) -> Result<Decompressed> {
        if let Some(memory) = self.memory.take() {
            let path = PathBuf::from(format!(
                "/proc/{}/fd/{}",
                std::process::id(),
                std::os::fd::AsRawFd::as_raw_fd(&memory)
            ));
            if File::open(&path).is_ok() {
                return Ok(Decompressed::Memory {
                    _file: memory,
                    path,
                });
            }
            self.memory = Some(memory);
        }
        if self.disk.is_none() {
            if let Err(e) = self.spill() {
                return Err(crate::Error::io_path("write", &self.disk_path, e));
            }
        }
        Ok(Decompressed::Disk(self.disk_path.clone()))
    }
}

impl Write for Spill {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(disk) = self.disk.as_mut() {
            return disk.write(buf);
        }
        match self.memory.as_mut() {
            Some(memory) if self.written + buf.len() as u64 <= self.budget => {
                let n = memory.write(buf)?;
                self.written += n as u64;
                Ok(n)
            }
            _ => self.spill()?.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Decompressed {
    fn drop(&mut self) {
        if let Decompressed::Disk(path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// How many bytes one decompressed dump may take in memory: an eighth of
/// what the kernel calls available (two can be held at once, one loading,
/// one waiting), nothing when that cannot be read.
fn memory_budget() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemAvailable:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024 / 8)
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
    pub fn run(self, ready: SyncSender<(usize, Result<Decompressed>)>, stop: &AtomicBool) {
        let stopped = || stop.load(Ordering::Relaxed) || crate::interrupt::requested().is_some();
        for (index, member, codec) in self.jobs {
            let done = Decompressed::of(&member, codec, memory_budget(), &self.dir, &stopped);
            let failed = done.is_err();
            if ready.send((index, done)).is_err() || failed {
                return;
            }
        }
    }
}

/// A channel for [`DumpQueue::run`]: one dump ahead of the one loading.
pub(super) fn channel(
    stop: &AtomicBool,
) -> (SyncSender<(usize, Result<Decompressed>)>, Prefetched<'_>) {
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
                // A dump the loading side skipped (it failed first): gone
                // when dropped.
                Ok(_) => {}
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

#[cfg(test)]
mod tests {
    use super::*;

    fn member(dir: &Path, data: &[u8]) -> PathBuf {
        let path = dir.join("dump.db");
        std::fs::write(&path, zstd::encode_all(data, 1).unwrap()).unwrap();
        path
    }

    #[test]
    fn a_dump_within_the_budget_stays_in_memory_and_a_larger_one_goes_to_disk() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let member = member(dir.path(), &data);
        let never = || false;

        let in_memory =
            Decompressed::of(&member, Codec::Zstd, 2 << 20, dir.path(), &never).unwrap();
        assert!(
            matches!(in_memory, Decompressed::Memory { .. }),
            "{in_memory:?}"
        );
        assert!(in_memory.path().starts_with("/proc"));
        assert_eq!(std::fs::read(in_memory.path()).unwrap(), data);
        let path = in_memory.path().to_path_buf();
        drop(in_memory);
        assert!(std::fs::read(&path).is_err(), "the memfd is closed");

        // One byte short of the dump: moved to disk as it outgrew the budget,
        // whole, removed when dropped.
        let budget = data.len() as u64 - 1;
        let on_disk = Decompressed::of(&member, Codec::Zstd, budget, dir.path(), &never).unwrap();
        let Decompressed::Disk(path) = &on_disk else {
            panic!("{on_disk:?}");
        };
        assert_eq!(path, &dir.path().join("dump.db.uncompressed"));
        assert_eq!(std::fs::read(path).unwrap(), data);
        let path = path.clone();
        drop(on_disk);
        assert!(!path.exists());

        // No budget: straight to disk.
        let no_memory = Decompressed::of(&member, Codec::Zstd, 0, dir.path(), &never).unwrap();
        assert!(matches!(no_memory, Decompressed::Disk(_)), "{no_memory:?}");
        assert_eq!(std::fs::read(no_memory.path()).unwrap(), data);
        drop(no_memory);

        // Exactly the budget fits.
        let exact = data.len() as u64;
        let fits = Decompressed::of(&member, Codec::Zstd, exact, dir.path(), &never).unwrap();
        assert!(matches!(fits, Decompressed::Memory { .. }));
    }

    #[test]
    fn the_budget_is_an_eighth_of_the_available_memory() {
        let available = std::fs::read_to_string("/proc/meminfo")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("MemAvailable:").map(str::to_string))
            .unwrap();
        let kib: u64 = available
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .unwrap();
        let budget = memory_budget();
        // Memory moves between the two reads: within 1 %.
        let expected = kib * 1024 / 8;
        assert!(
            budget.abs_diff(expected) <= expected / 100,
            "{budget} vs {expected}"
        );
    }
}
