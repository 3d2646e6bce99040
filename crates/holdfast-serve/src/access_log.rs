//! One log line per request on stderr: time, peer, user, method, path, status,
//! bytes and milliseconds. A request whose client went away before the answer is
//! logged too, with status 499 (the future serving it was dropped).

use std::io::Write;
use std::net::SocketAddr;
use std::time::Instant;

/// Status logged for a request abandoned by its client (nginx's convention).
const CLIENT_CLOSED: u16 = 499;

/// The log line of one request, written when `finish` is called or, failing that,
/// when the request is dropped.
pub struct RequestLog {
    started: Instant,
    peer: SocketAddr,
    method: String,
    path: String,
    pub user: Option<String>,
    /// Body bytes received (uploads) or sent (downloads).
    pub bytes: u64,
    written: bool,
}

impl RequestLog {
    pub fn start(peer: SocketAddr, method: &str, path: &str) -> RequestLog {
        RequestLog {
            started: Instant::now(),
            peer,
            method: method.to_string(),
            path: path.to_string(),
            user: None,
            bytes: 0,
            written: false,
        }
    }

    pub fn finish(mut self, status: u16) {
        self.write(status);
    }

    fn write(&mut self, status: u16) {
        self.written = true;
        let line = format!(
            "{} peer={} user={} method={} path={} status={} bytes={} ms={}\n",
            chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ"),
            self.peer,
            self.user.as_deref().unwrap_or("-"),
            self.method,
            self.path,
            status,
            self.bytes,
            self.started.elapsed().as_millis()
        );
        // One write_all of the whole line keeps concurrent lines whole.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

impl Drop for RequestLog {
    fn drop(&mut self) {
        if !self.written {
            self.write(CLIENT_CLOSED);
        }
    }
}
