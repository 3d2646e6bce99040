//! The deduplicating repository: nightly snapshots of a whole environment in a
//! repository of restic's format (v2: content-defined chunks, deduplication,
//! zstd, authenticated encryption), written through the `rustic_core` crate.
//!
//! - [`location`] says where a repository lives: a directory, a REST server
//!   (`rest:`) or an S3-compatible bucket (`s3:`, cargo feature `s3`);
//! - [`engine`] is the only place that speaks rustic_core: open or create a
//!   repository, store a staged directory as a snapshot, read one back, forget,
//!   prune and check;
//! - [`atomic`] makes a local repository's writes atomic and durable (temporary
//!   name, fsync, rename), so that a full disk or a kill leaves no torn file;
//! - `s3` (feature `s3`) is the backend of an S3 location, over opendal's S3
//!   service alone;
//! - [`locks`] reads and removes restic's lock files (`repo unlock`);
//! - [`stream`] feeds files produced while they are read (VM disks), with
//!   no staging;
//! - [`source`] feeds a staged directory to the engine through a buffered
//!   source of ours, under the snapshot path `/holdfast/<profile>`;
//! - [`retention`] is restic's keep policy, for snapshots and for a directory
//!   of archive files alike ([`archives`]).
//!
//! A snapshot holds exactly the members of an uncompressed holdfast archive
//! (`config`, `files`, `version`, `manifest.json`, `db/<name>.db`, ...), so
//! that one can be materialised again and restored through the archive
//! pipeline, or exported for engine-backup.

pub mod archives;
pub mod atomic;
pub mod engine;
pub mod location;
pub mod locks;
pub mod physical;
pub mod progress;
pub mod retention;
#[cfg(feature = "s3")]
mod s3;
pub mod source;
pub mod stream;
pub mod wal;

pub use engine::{
    Change, CheckReport, Chunking, FileChange, ForgetReport, KeyInfo, PackAccount, PruneMode,
    PruneReport, RepairReport, Repo, RepoStats, RestorePart, SnapshotEntry, SnapshotFileReader,
    SnapshotInfo,
};
pub use location::{LocationSource, RemoteOptions, RepoLocation};
pub use retention::Retention;
/// The time library of the engine, for callers that pass or show snapshot times.
pub use rustic_core::jiff;

/// Every snapshot path holdfast writes starts with this directory.
pub const SNAPSHOT_ROOT: &str = "/holdfast";

/// The tag every holdfast snapshot carries, next to `profile:…`, `host:…` and `scope:…`.
pub const HOLDFAST_TAG: &str = "holdfast";
