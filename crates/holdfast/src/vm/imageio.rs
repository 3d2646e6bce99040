//! One image transfer's data, through ovirt-imageio's HTTP protocol
//! (`/images/{ticket}`): `extents` with `context=zero|dirty`, `GET` with a
//! byte range, `PUT` of a range without flushing, `PATCH` zero (no bytes on
//! the wire) and flush. The ticket in the URL is the credential.
//!
//! A range that fails on the way (a lost connection, a 5xx) is tried again,
//! a few times with a growing pause: only that range, never the transfer
//! from zero. 4xx answers are final (an expired ticket is 403).

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::sso::transport_error;
use crate::{Error, Result};

/// Which extents to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtentContext {
    /// Data and zero extents of the whole image.
    Zero,
    /// Extents changed since the backup's checkpoint (incremental).
    Dirty,
}

/// One extent as imageio reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Extent {
    pub start: u64,
    pub length: u64,
    #[serde(default)]
    pub zero: bool,
    /// Only in `context=dirty`.
    pub dirty: Option<bool>,
}

/// Bytes that went over the wire, for the report.
#[derive(Debug, Default)]
pub struct Traffic {
    pub downloaded: AtomicU64,
    pub uploaded: AtomicU64,
    /// Bytes described by zero requests instead of sent.
    pub zeroed: AtomicU64,
    /// Ranges that failed once and were tried again.
    pub retried: AtomicU64,
}

/// The data URL of one transfer.
#[derive(Clone)]
pub struct ImageClient {
    url: String,
    agent: ureq::Agent,
    traffic: Arc<Traffic>,
    attempts: u32,
}

impl ImageClient {
    /// `url` is the transfer's `transfer_url` (or `proxy_url`).
    pub fn new(url: &str, agent: ureq::Agent, traffic: Arc<Traffic>) -> ImageClient {
        ImageClient {
            url: url.trim_end_matches('/').to_string(),
            agent,
            traffic,
            attempts: 5,
        }
    }

    pub fn traffic(&self) -> &Arc<Traffic> {
        &self.traffic
    }

    /// Run `once` until it succeeds, fails for good, or the attempts are spent.
    fn retried<T>(&self, what: &str, mut once: impl FnMut() -> Attempt<T>) -> Result<T> {
        let mut pause = Duration::from_millis(200);
        let mut last = String::new();
        for attempt in 1..=self.attempts {
            match once() {
                Attempt::Done(v) => return Ok(v),
                Attempt::Final(e) => return Err(e),
                Attempt::Again(why) => {
                    last = why;
                    if attempt < self.attempts {
                        self.traffic.retried.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(pause);
                        pause *= 2;
                    }
                }
            }
        }
        Err(Error::failed(format!(
            "{what} failed {} times; last: {last}",
            self.attempts
        )))
    }

    /// The image's extents.
    pub fn extents(&self, context: ExtentContext) -> Result<Vec<Extent>> {
        let ctx = match context {
            ExtentContext::Zero => "zero",
            ExtentContext::Dirty => "dirty",
        };
        let url = format!("{}/extents?context={ctx}", self.url);
        let body = self.retried("reading the image's extents", || {
            answer(&url, self.agent.get(&url).call()).and_then(|r| {
                r.into_string()
                    .map_or_else(|e| Attempt::Again(e.to_string()), Attempt::Done)
            })
        })?;
        serde_json::from_str(&body)
            .map_err(|e| Error::failed(format!("imageio's extents of {ctx} are not a list: {e}")))
    }

    /// Read `length` bytes at `offset` into `buf` (replacing its content).
    pub fn read(&self, offset: u64, length: usize, buf: &mut Vec<u8>) -> Result<()> {
        let range = format!("bytes={}-{}", offset, offset + length as u64 - 1);
        self.retried(&format!("reading {length} bytes at {offset}"), || {
            buf.clear();
            let reply = self.agent.get(&self.url).set("Range", &range).call();
            answer(&self.url, reply).and_then(|r| {
                match r.into_reader().take(length as u64).read_to_end(buf) {
                    Ok(n) if n == length => Attempt::Done(()),
                    Ok(n) => Attempt::Again(format!("short read: {n} of {length} bytes")),
                    Err(e) => Attempt::Again(e.to_string()),
                }
            })
        })?;
        self.traffic
            .downloaded
            .fetch_add(length as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Write `data` at `offset`, not flushed (see [`ImageClient::flush`]).
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<()> {
        let url = format!("{}?flush=n", self.url);
        let range = format!("bytes {}-{}/*", offset, offset + data.len() as u64 - 1);
        self.retried(&format!("writing {} bytes at {offset}", data.len()), || {
            answer(
                &url,
                self.agent
                    .put(&url)
                    .set("Content-Range", &range)
                    .set("Content-Type", "application/octet-stream")
                    .send_bytes(data),
            )
            .and_then(|_| Attempt::Done(()))
        })?;
        self.traffic
            .uploaded
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Zero `length` bytes at `offset` without sending them.
    pub fn zero(&self, offset: u64, length: u64) -> Result<()> {
        let op =
            serde_json::json!({"op": "zero", "offset": offset, "size": length, "flush": false});
        self.patch(&format!("zeroing {length} bytes at {offset}"), &op)?;
        self.traffic.zeroed.fetch_add(length, Ordering::Relaxed);
        Ok(())
    }

    /// Make every write durable.
    pub fn flush(&self) -> Result<()> {
        self.patch("flushing the image", &serde_json::json!({"op": "flush"}))
    }

    fn patch(&self, what: &str, op: &serde_json::Value) -> Result<()> {
        let body = op.to_string();
        self.retried(what, || {
            answer(
                &self.url,
                self.agent
                    .request("PATCH", &self.url)
                    .set("Content-Type", "application/json")
                    .send_string(&body),
            )
            .and_then(|_| Attempt::Done(()))
        })
    }
}

/// One try of a request.
enum Attempt<T> {
    Done(T),
    Again(String),
    Final(Error),
}

impl<T> Attempt<T> {
    fn and_then<U>(self, f: impl FnOnce(T) -> Attempt<U>) -> Attempt<U> {
        match self {
            Attempt::Done(v) => f(v),
            Attempt::Again(w) => Attempt::Again(w),
            Attempt::Final(e) => Attempt::Final(e),
        }
    }
}

/// Sort an answer: transport errors and 5xx are tried again, 4xx are final.
fn answer(
    url: &str,
    reply: std::result::Result<ureq::Response, ureq::Error>,
) -> Attempt<ureq::Response> {
    match reply {
        Ok(r) => Attempt::Done(r),
        Err(ureq::Error::Status(code, r)) if code >= 500 => Attempt::Again(format!(
            "{code}: {}",
            r.into_string().unwrap_or_default().trim()
        )),
        Err(ureq::Error::Status(code, r)) => Attempt::Final(Error::failed(format!(
            "imageio refused the request ({code}: {})",
            r.into_string().unwrap_or_default().trim()
        ))),
        Err(e @ ureq::Error::Transport(_)) => Attempt::Again(transport_error(url, e).to_string()),
    }
}

/// Where the bytes of one piece of a disk come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Read from imageio.
    Download,
    /// Zeros: nothing is read.
    Zero,
    /// Unchanged since the checkpoint: from the previous snapshot.
    Previous,
}

/// A piece of the disk, at most [`PIECE`] bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub start: u64,
    pub length: u64,
    pub source: Source,
}

/// The most one request moves (and one reader holds per piece in flight).
pub const PIECE: u64 = 4 << 20;

/// Split the image of `size` bytes into pieces by its extents: for a full
/// backup (`context=zero`) data is downloaded and zeros are not; for an
/// incremental (`context=dirty`) only dirty data is downloaded, dirty zeros
/// are zeros and clean extents come from the previous snapshot. A part the
/// extents do not cover is downloaded (never guessed).
pub fn plan(size: u64, extents: &[Extent]) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut at = 0;
    let push = |start: u64, end: u64, source: Source, pieces: &mut Vec<Piece>| {
        let mut s = start;
        while s < end {
            let length = (end - s).min(PIECE);
            pieces.push(Piece {
                start: s,
                length,
                source,
            });
            s += length;
        }
    };
    let mut sorted = extents.to_vec();
    sorted.sort_by_key(|e| e.start);
    for e in sorted {
        let start = e.start.max(at).min(size);
        let end = (e.start + e.length).min(size);
        if start > at {
            push(at, start, Source::Download, &mut pieces);
        }
        if end <= start {
            continue;
        }
        let source = match (e.dirty, e.zero) {
            (Some(false), _) => Source::Previous,
            (_, true) => Source::Zero,
            (_, false) => Source::Download,
        };
        push(start, end, source, &mut pieces);
        at = end;
    }
    if at < size {
        push(at, size, Source::Download, &mut pieces);
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(start: u64, length: u64, zero: bool, dirty: Option<bool>) -> Extent {
        Extent {
            start,
            length,
            zero,
            dirty,
        }
    }

    #[test]
    fn a_full_plan_reads_data_and_skips_zeros() {
        let p = plan(
            10 << 20,
            &[
                ext(0, 1 << 20, false, None),
                ext(1 << 20, 9 << 20, true, None),
            ],
        );
        assert_eq!(p[0].source, Source::Download);
        assert_eq!(p[0].length, 1 << 20);
        assert!(p[1..].iter().all(|x| x.source == Source::Zero));
        assert_eq!(p.iter().map(|x| x.length).sum::<u64>(), 10 << 20);
        assert!(p.iter().all(|x| x.length <= PIECE));
    }

    #[test]
    fn an_incremental_plan_downloads_only_dirty_data() {
        let p = plan(
            3 << 20,
            &[
                ext(0, 1 << 20, false, Some(false)),
                ext(1 << 20, 1 << 20, false, Some(true)),
                ext(2 << 20, 1 << 20, true, Some(true)),
            ],
        );
        let sources: Vec<Source> = p.iter().map(|x| x.source).collect();
        assert_eq!(sources, [Source::Previous, Source::Download, Source::Zero]);
    }

    #[test]
    fn gaps_and_tails_are_downloaded() {
        let p = plan(4 << 20, &[ext(1 << 20, 1 << 20, true, None)]);
        let sources: Vec<(u64, Source)> = p.iter().map(|x| (x.start, x.source)).collect();
        assert_eq!(
            sources,
            [
                (0, Source::Download),
                (1 << 20, Source::Zero),
                (2 << 20, Source::Download)
            ]
        );
    }
}
