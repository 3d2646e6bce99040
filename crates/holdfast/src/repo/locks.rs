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
//! removed here, in local repositories.

use std::path::{Path, PathBuf};

use aes256ctr_poly1305aes::aead::Aead;
use aes256ctr_poly1305aes::{Aes256CtrPoly1305Aes, Key, Nonce};
use rustic_core::jiff::{Timestamp, ToSpan};
use rustic_core::repofile::MasterKey;
use serde::Deserialize;

use super::atomic::hostname;
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
    pub path: PathBuf,
    /// `None` when the file could not be read as a lock of this repository.
    pub time: Option<Timestamp>,
    pub exclusive: bool,
    pub hostname: String,
    pub username: String,
    pub pid: u32,
    /// Why it is stale, or `None` while its holder may still run.
    pub stale: Option<String>,
}

/// Every lock of the local repository at `dir`, with its verdict at `now`.
pub fn list(dir: &Path, key: &MasterKey, now: Timestamp) -> Result<Vec<Lock>> {
    let locks_dir = dir.join("locks");
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(&locks_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io_path("list", &locks_dir, e)),
    };
    let here = hostname();
    for entry in entries {
        let entry = entry.context(|| format!("list {}", locks_dir.display()))?;
        let id = entry.file_name().to_string_lossy().into_owned();
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let path = entry.path();
        let bytes = std::fs::read(&path).context(|| format!("read {}", path.display()))?;
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
                    path,
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
                path,
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
pub fn remove(locks: &[&Lock]) -> Result<usize> {
    for lock in locks {
        match std::fs::remove_file(&lock.path) {
            Ok(()) => {}
            // Its holder removed it meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io_path("remove", &lock.path, e)),
        }
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
