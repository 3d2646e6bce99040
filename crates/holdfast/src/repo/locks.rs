//! restic's repository locks (`locks/<id>`), for `holdfast repo unlock`.
//!
//! holdfast takes no repository lock: rustic_core's operations do not need
//! one (prune is two-phase), and a killed holdfast leaves nothing that blocks
//! the next run. restic does lock, and a restic run that was killed leaves its
//! lock behind, which blocks every later exclusive restic command (`check`,
//! `prune`). A lock is stale by restic's rules when it is older than 30
//! minutes (restic refreshes a live lock every 5 minutes), or when it was
//! taken on this host by a process that no longer runs.
//!
//! rustic_core 0.13 knows no lock files, so they are listed, decrypted
//! (restic's AES-256-CTR with Poly1305-AES, as every repository file) and
//! removed here ([`LockFiles`]): in a directory, on a REST server (`holdfast
//! serve` allows removing locks even when append-only) or in an S3 bucket.

use std::path::{Path, PathBuf};

use aes256ctr_poly1305aes::aead::Aead;
use aes256ctr_poly1305aes::{Aes256CtrPoly1305Aes, Key, Nonce};
use rustic_core::jiff::{Timestamp, ToSpan};
use rustic_core::repofile::MasterKey;
use serde::Deserialize;

use super::atomic::hostname;
use std::io::Read;

use super::location::RepoLocation;
use crate::{Error, IoContext, Result};

/// A lock older than this is stale (restic's rule).
const STALE_MINUTES: i64 = 30;

/// A lock file as restic writes it.
#[derive(Debug, Clone, Deserialize)]
struct LockFile {
    time: Timestamp,
    #[serde(default)]
    exclusive: bool,
    #[serde(default)]
    hostname: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    pid: u32,
}

/// One lock of the repository and restic's verdict on it.
#[derive(Debug, Clone)]
pub struct Lock {
    /// The lock file's name (its id).
    pub id: String,
    /// `None` when the file could not be read as a lock of this repository.
    pub time: Option<Timestamp>,
    pub exclusive: bool,
    pub hostname: String,
    pub username: String,
    pub pid: u32,
    /// Why it is stale, or `None` while its holder may still run.
    pub stale: Option<String>,
}

/// Where a repository's lock files are, reached as its location says:
/// rustic_core's backends know no lock files, so each kind is read here.
pub enum LockFiles {
    Local(PathBuf),
    /// The repository's URL (ending in `/`, with its user and password).
    Rest(url::Url),
    #[cfg(feature = "s3")]
    S3(Box<super::s3::S3Backend>),
}

impl LockFiles {
    /// The lock files of the repository at `location`.
    pub fn of(location: &RepoLocation) -> Result<LockFiles> {
        if let Some(dir) = location.local_dir() {
            return Ok(LockFiles::Local(dir.to_path_buf()));
        }
        let (spec, options) = location.backend_spec();
        #[cfg(feature = "s3")]
        if matches!(location, RepoLocation::S3(_)) {
            let backend = super::s3::S3Backend::new(options)
                .map_err(|e| Error::failed(format!("use {location}: {}", e.display_log())))?;
            return Ok(LockFiles::S3(Box::new(backend)));
        }
        if options.contains_key("cacert") {
            return Err(Error::usage(format!(
                "{location}: 'holdfast repo unlock' does not yet reach a REST server through a private certificate authority (--cacert); run it on the server's machine with the repository's directory"
            )));
        }
        let url = spec
            .strip_prefix("rest:")
            .and_then(|u| url::Url::parse(u).ok())
            .ok_or_else(|| Error::usage(format!("{location} is no repository location")))?;
        Ok(LockFiles::Rest(url))
    }

    /// The names of the lock files (64 hex digits each).
    fn names(&self) -> Result<Vec<String>> {
        let names = match self {
            LockFiles::Local(dir) => {
                let locks_dir = dir.join("locks");
                match std::fs::read_dir(&locks_dir) {
                    Ok(entries) => entries
                        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                        .collect::<std::io::Result<Vec<_>>>()
                        .context(|| format!("list {}", locks_dir.display()))?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                    Err(e) => return Err(Error::io_path("list", &locks_dir, e)),
                }
            }
            LockFiles::Rest(url) => rest_lock_names(url)?,
            #[cfg(feature = "s3")]
            LockFiles::S3(s3) => s3
                .lock_names()
                .map_err(|e| Error::failed(format!("list the locks: {e}")))?,
        };
        Ok(names
            .into_iter()
            .filter(|id| id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()))
            .collect())
    }

    /// One lock file's bytes; `None` when it is gone (its holder removed it).
    fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        match self {
            LockFiles::Local(dir) => {
                let path = dir.join("locks").join(name);
                match std::fs::read(&path) {
                    Ok(bytes) => Ok(Some(bytes)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(Error::io_path("read", &path, e)),
                }
            }
            LockFiles::Rest(url) => match rest_agent().get(lock_url(url, name).as_str()).call() {
                Ok(response) => {
                    let mut bytes = Vec::new();
                    response
                        .into_reader()
                        .take(1 << 20)
                        .read_to_end(&mut bytes)
                        .map_err(|e| Error::io(format!("read lock {}", &name[..8]), e))?;
                    Ok(Some(bytes))
                }
                Err(ureq::Error::Status(404, _)) => Ok(None),
                Err(e) => Err(rest_error(&format!("read lock {}", &name[..8]), e)),
            },
            #[cfg(feature = "s3")]
            LockFiles::S3(s3) => s3
                .read_lock(name)
                .map_err(|e| Error::failed(format!("read lock {}: {e}", &name[..8]))),
        }
    }

    /// Remove one lock file; one already gone is no error.
    fn remove(&self, name: &str) -> Result<()> {
        match self {
            LockFiles::Local(dir) => {
                let path = dir.join("locks").join(name);
                match std::fs::remove_file(&path) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(Error::io_path("remove", &path, e)),
                }
            }
            LockFiles::Rest(url) => {
                match rest_agent().delete(lock_url(url, name).as_str()).call() {
                    Ok(_) | Err(ureq::Error::Status(404, _)) => Ok(()),
                    Err(e) => Err(rest_error(&format!("remove lock {}", &name[..8]), e)),
                }
            }
            #[cfg(feature = "s3")]
            LockFiles::S3(s3) => s3
                .remove_lock(name)
                .map_err(|e| Error::failed(format!("remove lock {}: {e}", &name[..8]))),
        }
    }
}

fn rest_agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(std::time::Duration::from_secs(60))
        .build()
}

fn lock_url(repo: &url::Url, name: &str) -> url::Url {
    let mut url = repo.clone();
    url.set_path(&format!("{}locks/{name}", repo.path()));
    url
}

/// The names the REST server lists under `locks/` (protocol version 2:
/// objects with a name and a size; version 1: names).
fn rest_lock_names(repo: &url::Url) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Entry {
        V2 { name: String },
        V1(String),
    }
    let mut url = repo.clone();
    url.set_path(&format!("{}locks/", repo.path()));
    let response = match rest_agent()
        .get(url.as_str())
        .set("Accept", "application/vnd.x.restic.rest.v2")
        .call()
    {
        Ok(response) => response,
        Err(ureq::Error::Status(404, _)) => return Ok(Vec::new()),
        Err(e) => return Err(rest_error("list the locks", e)),
    };
    let mut body = Vec::new();
    response
        .into_reader()
        .take(16 << 20)
        .read_to_end(&mut body)
        .map_err(|e| Error::io("read the server's list of locks", e))?;
    let entries: Vec<Entry> = serde_json::from_slice(&body)
        .map_err(|e| Error::invalid(format!("the server's list of locks is not JSON: {e}")))?;
    Ok(entries
        .into_iter()
        .map(|e| match e {
            Entry::V2 { name } | Entry::V1(name) => name,
        })
        .collect())
}

/// A REST server's refusal or an unreachable server, in words without the
/// URL's password (ureq's own message carries the URL).
fn rest_error(doing: &str, e: ureq::Error) -> Error {
    match e {
        ureq::Error::Status(code, response) => Error::failed(format!(
            "{doing}: the server answered {code} {}",
            response.status_text()
        )),
        ureq::Error::Transport(t) => Error::failed(format!(
            "{doing}: the server cannot be reached ({})",
            t.kind()
        )),
    }
}

/// Every lock of the repository, with its verdict at `now`.
pub fn list(files: &LockFiles, key: &MasterKey, now: Timestamp) -> Result<Vec<Lock>> {
    let here = hostname();
    let mut out = Vec::new();
    for id in files.names()? {
        let Some(bytes) = files.read(&id)? else {
            continue;
        };
        let lock = match decode(&bytes, key) {
            Some(file) => {
                let stale = if file.time < now - STALE_MINUTES.minutes() {
                    Some(format!("older than {STALE_MINUTES} minutes"))
                } else if file.hostname == here && !process_runs(file.pid) {
                    Some(format!("process {} on this host is gone", file.pid))
                } else {
                    None
                };
                Lock {
                    id,
                    time: Some(file.time),
                    exclusive: file.exclusive,
                    hostname: file.hostname,
                    username: file.username,
                    pid: file.pid,
                    stale,
                }
            }
            // restic removes a lock it cannot read as stale too.
            None => Lock {
                id,
                time: None,
                exclusive: false,
                hostname: String::new(),
                username: String::new(),
                pid: 0,
                stale: Some("unreadable with this repository's key".to_string()),
            },
        };
        out.push(lock);
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// Remove `locks`; returns how many were removed.
pub fn remove(files: &LockFiles, locks: &[&Lock]) -> Result<usize> {
    for lock in locks {
        files.remove(&lock.id)?;
    }
    Ok(locks.len())
}

fn process_runs(pid: u32) -> bool {
    pid != 0 && Path::new(&format!("/proc/{pid}")).exists()
}

/// Decrypt (and, in a version 2 repository, decompress) a lock file.
fn decode(bytes: &[u8], key: &MasterKey) -> Option<LockFile> {
    if bytes.len() < 32 || key.encrypt.len() != 32 || key.mac.k.len() != 16 || key.mac.r.len() != 16
    {
        return None;
    }
    let mut raw = [0u8; 64];
    raw[..32].copy_from_slice(&key.encrypt);
    raw[32..48].copy_from_slice(&key.mac.k);
    raw[48..].copy_from_slice(&key.mac.r);
    let cipher = Aes256CtrPoly1305Aes::new(Key::from_slice(&raw));
    let plain = cipher
        .decrypt(Nonce::from_slice(&bytes[..16]), &bytes[16..])
        .ok()?;
    // Version 2: a leading 2 marks zstd; JSON starts with '{' otherwise.
    let json = match plain.first() {
        Some(2) => zstd::decode_all(&plain[1..]).ok()?,
        _ => plain,
    };
    serde_json::from_slice(&json).ok()
}
