//! One disk of a started VM backup as a byte stream: a download image
//! transfer created when the stream is opened (an idle transfer would time
//! out while other disks are read), its extents planned into pieces, the
//! pieces streamed in order, and the transfer finalized right after the last
//! byte. Transfers that were opened and not finalized stay listed in
//! `open_transfers` for the caller's clean-up.

use std::io::Read;
use std::sync::{Arc, Mutex};

use super::api::{Direction, Patience};
use super::image::{DiskStream, FailureSlot, PieceSources};
use super::imageio::{plan, ExtentContext, ImageClient, Source, Traffic};
use super::Engine;
use crate::progress::Progress;
use crate::repo::SnapshotFileReader;
use crate::{Error, Result};

/// One disk of a started backup, opened when the repository reaches it.
pub struct DiskDownload {
    pub engine: Arc<Engine>,
    pub backup_id: String,
    pub disk_id: String,
    pub size: u64,
    pub previous: Option<Arc<SnapshotFileReader>>,
    pub workers: usize,
    pub patience: Patience,
    pub traffic: Arc<Traffic>,
    pub failure: FailureSlot,
    pub open_transfers: Arc<Mutex<Vec<String>>>,
    pub progress: Arc<Progress>,
}

impl DiskDownload {
    /// The disk's bytes; a failure is also kept in `failure` for the caller.
    pub fn open(&self) -> std::io::Result<Box<dyn Read + Send>> {
        self.start().map_err(|e| {
            let text = e.to_string();
            self.failure.lock().expect("failure lock").get_or_insert(e);
            std::io::Error::other(text)
        })
    }

    /// A download transfer of the disk in this backup, and its planned stream.
    fn start(&self) -> Result<Box<dyn Read + Send>> {
        let t = self.engine.create_transfer(
            &self.disk_id,
            Some(&self.backup_id),
            Direction::Download,
        )?;
        self.open_transfers
            .lock()
            .expect("transfer list")
            .push(t.id.clone());
        let t = self.engine.wait_transferring(&t.id, self.patience)?;
        let url = t
            .transfer_url
            .clone()
            .or(t.proxy_url.clone())
            .ok_or_else(|| Error::failed(format!("image transfer {} has no transfer URL", t.id)))?;
        let image = ImageClient::new(&url, self.engine.agent().clone(), self.traffic.clone());
        let extents = match self.previous {
            // A disk the engine backs up in full this time answers 404 to
            // dirty extents: read it whole.
            Some(_) => image
                .extents(ExtentContext::Dirty)
                .or_else(|_| image.extents(ExtentContext::Zero))?,
            None => image.extents(ExtentContext::Zero)?,
        };
        let pieces = plan(self.size, &extents);
        if self.previous.is_none() && pieces.iter().any(|p| p.source == Source::Previous) {
            return Err(Error::failed(
                "imageio reported clean extents in a full backup",
            ));
        }
        let stream = DiskStream::start(
            pieces,
            PieceSources {
                image,
                previous: self.previous.clone(),
            },
            self.workers,
            self.failure.clone(),
        );
        Ok(Box::new(TransferStream {
            stream,
            engine: self.engine.clone(),
            transfer: t.id,
            patience: self.patience,
            open_transfers: self.open_transfers.clone(),
            failure: self.failure.clone(),
            progress: self.progress.clone(),
            done: false,
        }))
    }
}

/// A disk's stream that finalizes its transfer right after its last byte
/// (an idle transfer would time out while the next disk is read).
struct TransferStream {
    stream: DiskStream,
    engine: Arc<Engine>,
    transfer: String,
    patience: Patience,
    open_transfers: Arc<Mutex<Vec<String>>>,
    failure: FailureSlot,
    progress: Arc<Progress>,
    done: bool,
}

impl TransferStream {
    fn finalize(&self) -> Result<()> {
        self.engine.finalize_transfer(&self.transfer)?;
        if !self.engine.wait_finished(&self.transfer, self.patience)? {
            return Err(Error::failed(format!(
                "image transfer {} finished with a failure",
                self.transfer
            )));
        }
        self.open_transfers
            .lock()
            .expect("transfer list")
            .retain(|t| t != &self.transfer);
        Ok(())
    }
}

impl Read for TransferStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.stream.read(buf)?;
        self.progress.advance(n as u64);
        if n == 0 && !buf.is_empty() && !self.done {
            self.done = true;
            if let Err(e) = self.finalize() {
                let text = e.to_string();
                self.failure.lock().expect("failure lock").get_or_insert(e);
                return Err(std::io::Error::other(text));
            }
        }
        Ok(n)
    }
}
