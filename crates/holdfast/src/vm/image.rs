//! A disk image as a byte stream and back:
//! - [`DiskStream`] reads a planned disk ([`super::imageio::plan`]) in order
//!   as one `Read`, for the repository engine, with a few pieces fetched
//!   ahead by worker threads (several ranges in flight, memory bounded by
//!   the window: `window × PIECE`);
//! - [`ImageSink`] takes a disk's bytes back in order and writes them to an
//!   image transfer or a local file, with runs of zeros as zero requests (or
//!   holes) instead of bytes.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use super::imageio::{ImageClient, Piece, Source, PIECE};
use crate::repo::SnapshotFileReader;
use crate::{Error, Result};

/// The first failure of a stream, kept for the caller: the engine only sees
/// an I/O error.
pub type FailureSlot = Arc<Mutex<Option<Error>>>;

/// Where a disk's pieces come from.
#[derive(Clone)]
pub struct PieceSources {
    pub image: ImageClient,
    /// The same disk in the previous snapshot (incremental backups).
    pub previous: Option<Arc<SnapshotFileReader>>,
}

impl PieceSources {
    fn fetch(&self, piece: &Piece) -> Result<Vec<u8>> {
        // A termination request fails the stream at its next piece; the
        // backup then cleans up as after any failure.
        crate::interrupt::check()?;
        let length = piece.length as usize;
        match piece.source {
            Source::Zero => Ok(vec![0; length]),
            Source::Download => {
                let mut buf = Vec::with_capacity(length);
                self.image.read(piece.start, length, &mut buf)?;
                Ok(buf)
            }
            Source::Previous => {
                let previous = self.previous.as_ref().ok_or_else(|| {
                    Error::failed("an unchanged range has no previous snapshot to come from")
                })?;
                let data = previous.read_at(piece.start, length)?;
                if data.len() != length {
                    return Err(Error::failed(format!(
                        "the previous snapshot's disk is shorter than {} bytes; take a full backup",
                        piece.start + piece.length
                    )));
                }
                Ok(data)
            }
        }
    }
}

struct Window {
    /// The next piece a worker takes.
    claimed: usize,
    /// The next piece the reader takes.
    consumed: usize,
    ready: BTreeMap<usize, Vec<u8>>,
    failed: bool,
    stop: bool,
}

struct Shared {
    window: Mutex<Window>,
    changed: Condvar,
}

/// A disk, read piece by piece in order.
pub struct DiskStream {
    shared: Arc<Shared>,
    pieces: usize,
    current: Vec<u8>,
    at: usize,
    workers: Vec<JoinHandle<()>>,
    failure: FailureSlot,
}

impl DiskStream {
    /// Start `workers` threads fetching up to `2 × workers` pieces ahead.
    pub fn start(
        pieces: Vec<Piece>,
        sources: PieceSources,
        workers: usize,
        failure: FailureSlot,
    ) -> DiskStream {
        let workers = workers.max(1);
        let ahead = 2 * workers;
        let shared = Arc::new(Shared {
            window: Mutex::new(Window {
                claimed: 0,
                consumed: 0,
                ready: BTreeMap::new(),
                failed: false,
                stop: false,
            }),
            changed: Condvar::new(),
        });
        let pieces = Arc::new(pieces);
        let handles = (0..workers)
            .map(|_| {
                let (shared, pieces, sources, failure) = (
                    shared.clone(),
                    pieces.clone(),
                    sources.clone(),
                    failure.clone(),
                );
                std::thread::spawn(move || fetch_loop(&shared, &pieces, &sources, ahead, &failure))
            })
            .collect();
        DiskStream {
            shared,
            pieces: pieces.len(),
            current: Vec::new(),
            at: 0,
            workers: handles,
            failure,
        }
    }

    /// The next piece, waiting for a worker; None at the end.
    fn next_piece(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        let mut w = self.shared.window.lock().expect("window lock");
        if w.consumed >= self.pieces {
            return Ok(None);
        }
        loop {
            if w.failed {
                let why = self
                    .failure
                    .lock()
                    .expect("failure lock")
                    .as_ref()
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                return Err(std::io::Error::other(why));
            }
            let next = w.consumed;
            if let Some(data) = w.ready.remove(&next) {
                w.consumed += 1;
                self.shared.changed.notify_all();
                return Ok(Some(data));
            }
            w = self.shared.changed.wait(w).expect("window lock");
        }
    }
}

fn fetch_loop(
    shared: &Shared,
    pieces: &[Piece],
    sources: &PieceSources,
    ahead: usize,
    failure: &FailureSlot,
) {
    loop {
        let index = {
            let mut w = shared.window.lock().expect("window lock");
            while !w.stop
                && !w.failed
                && w.claimed < pieces.len()
                && w.claimed >= w.consumed + ahead
            {
                w = shared.changed.wait(w).expect("window lock");
            }
            if w.stop || w.failed || w.claimed >= pieces.len() {
                return;
            }
            w.claimed += 1;
            w.claimed - 1
        };
        let fetched = sources.fetch(&pieces[index]);
        let mut w = shared.window.lock().expect("window lock");
        match fetched {
            Ok(data) => {
                w.ready.insert(index, data);
            }
            Err(e) => {
                failure.lock().expect("failure lock").get_or_insert(e);
                w.failed = true;
            }
        }
        shared.changed.notify_all();
    }
}

impl Read for DiskStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.current.len() {
            match self.next_piece()? {
                Some(data) => {
                    self.current = data;
                    self.at = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl Drop for DiskStream {
    fn drop(&mut self) {
        self.shared.window.lock().expect("window lock").stop = true;
        self.shared.changed.notify_all();
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

/// The unit of zero detection when writing back: qcow2's default cluster.
const GRANULE: usize = 64 << 10;

/// A block of zeros to compare with: slice equality is one memcmp, also in
/// debug builds (zero-initialised, so it costs no space in the binary).
static ZEROS: [u8; PIECE as usize] = [0; PIECE as usize];

fn is_zero(block: &[u8]) -> bool {
    block.chunks(ZEROS.len()).all(|c| c == &ZEROS[..c.len()])
}

/// Where restored blocks go.
pub trait BlockTarget {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()>;
    /// `length` bytes of zeros at `offset` (a hole, or a zero request).
    fn zero_at(&mut self, offset: u64, length: u64) -> Result<()>;
    /// Everything written is durable; the image is `size` bytes.
    fn finish(&mut self, size: u64) -> Result<()>;
}

/// An upload image transfer.
pub struct UploadTarget(pub ImageClient);

impl BlockTarget for UploadTarget {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        self.0.write(offset, data)
    }

    fn zero_at(&mut self, offset: u64, length: u64) -> Result<()> {
        self.0.zero(offset, length)
    }

    fn finish(&mut self, _size: u64) -> Result<()> {
        self.0.flush()
    }
}

/// A local raw file, zeros left as holes.
pub struct SparseFileTarget(pub std::fs::File);

impl BlockTarget for SparseFileTarget {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        use std::os::unix::fs::FileExt;
        self.0
            .write_all_at(data, offset)
            .map_err(|e| Error::io("write the image file", e))
    }

    fn zero_at(&mut self, _offset: u64, _length: u64) -> Result<()> {
        // A new file reads zeros wherever nothing was written.
        Ok(())
    }

    fn finish(&mut self, size: u64) -> Result<()> {
        self.0
            .set_len(size)
            .and_then(|()| self.0.sync_all())
            .map_err(|e| Error::io("write the image file", e))
    }
}

/// A disk's bytes, in order, into a [`BlockTarget`]: whole blocks of zeros
/// become one zero run, sent as one request when the run ends.
pub struct ImageSink<T: BlockTarget> {
    target: T,
    block: Vec<u8>,
    /// Offset of `block`'s first byte.
    offset: u64,
    /// A run of zeros not yet told to the target: (start, length).
    zeros: Option<(u64, u64)>,
    failure: Option<Error>,
}

impl<T: BlockTarget> ImageSink<T> {
    pub fn new(target: T) -> ImageSink<T> {
        ImageSink {
            target,
            block: Vec::with_capacity(PIECE as usize),
            offset: 0,
            zeros: None,
            failure: None,
        }
    }

    fn flush_zeros(&mut self) -> Result<()> {
        if let Some((start, length)) = self.zeros.take() {
            self.target.zero_at(start, length)?;
        }
        Ok(())
    }

    /// Hand the block to the target in granules of [`GRANULE`]: runs of
    /// data as writes, runs of zeros added to the pending zero run.
    fn put_block(&mut self) -> Result<()> {
        crate::interrupt::check()?;
        let block = std::mem::take(&mut self.block);
        let mut at = 0;
        while at < block.len() {
            let zero = is_zero(&block[at..(at + GRANULE).min(block.len())]);
            let mut end = (at + GRANULE).min(block.len());
            while end < block.len()
                && is_zero(&block[end..(end + GRANULE).min(block.len())]) == zero
            {
                end = (end + GRANULE).min(block.len());
            }
            let offset = self.offset + at as u64;
            let length = (end - at) as u64;
            if zero {
                match &mut self.zeros {
                    Some((start, run)) if *start + *run == offset => *run += length,
                    _ => {
                        self.flush_zeros()?;
                        self.zeros = Some((offset, length));
                    }
                }
            } else {
                self.flush_zeros()?;
                self.target.write_at(offset, &block[at..end])?;
            }
            at = end;
        }
        self.offset += block.len() as u64;
        self.block = block;
        self.block.clear();
        Ok(())
    }

    /// Write what is left and finish the target; returns the bytes taken.
    pub fn finish(mut self) -> Result<(u64, T)> {
        if let Some(e) = self.failure.take() {
            return Err(e);
        }
        self.put_block()?;
        self.flush_zeros()?;
        self.target.finish(self.offset)?;
        Ok((self.offset, self.target))
    }
}

impl<T: BlockTarget> Write for ImageSink<T> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = PIECE as usize - self.block.len();
        let n = buf.len().min(room);
        self.block.extend_from_slice(&buf[..n]);
        if self.block.len() == PIECE as usize {
            if let Err(e) = self.put_block() {
                let text = e.to_string();
                self.failure = Some(e);
                return Err(std::io::Error::other(text));
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Recorder {
        writes: Vec<(u64, usize)>,
        zeros: Vec<(u64, u64)>,
        size: u64,
    }

    impl BlockTarget for &mut Recorder {
        fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
            self.writes.push((offset, data.len()));
            Ok(())
        }
        fn zero_at(&mut self, offset: u64, length: u64) -> Result<()> {
            self.zeros.push((offset, length));
            Ok(())
        }
        fn finish(&mut self, size: u64) -> Result<()> {
            self.size = size;
            Ok(())
        }
    }

    #[test]
    fn runs_of_zero_blocks_become_one_zero_request() {
        let mut rec = Recorder::default();
        let mut sink = ImageSink::new(&mut rec);
        let p = PIECE as usize;
        let g = GRANULE as u64;
        let mut image = vec![0u8; 5 * p + 100];
        image[10] = 1; // the first granule has data
        image[4 * p + 1] = 2; // so has the first of block 4; the rest are zeros
        for chunk in image.chunks(1000) {
            sink.write_all(chunk).unwrap();
        }
        sink.finish().unwrap();
        assert_eq!(rec.writes, [(0, GRANULE), (4 * PIECE, GRANULE)]);
        assert_eq!(
            rec.zeros,
            [(g, 4 * PIECE - g), (4 * PIECE + g, PIECE - g + 100)]
        );
        assert_eq!(rec.size, 5 * PIECE + 100);
    }
}
