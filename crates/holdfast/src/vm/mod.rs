//! Virtual machine disks through oVirt's Backup and Restore API: holdfast as
//! the "backup software" that reads a VM's disks for the engine and writes
//! them back.
//!
//! - [`sso`] logs into the engine (SSO token, the engine's CA) and makes one
//!   REST call;
//! - [`api`] is the REST calls a backup and a restore make, with typed XML
//!   documents, and the waits on the backup and transfer state machines;
//! - [`imageio`] moves one transfer's data through ovirt-imageio (ranges,
//!   extents, zero, flush) and plans a disk into pieces by its extents;
//! - [`download`] is one disk of a started backup as a byte stream, from
//!   its own download transfer, finalized after the last byte;
//! - [`image`] turns a planned disk into one ordered byte stream for the
//!   repository, and a stored disk back into writes and zero requests.
//!
//! It knows no database; `ops::vm` sequences a backup and a restore.

pub mod api;
pub mod download;
pub mod image;
pub mod imageio;
pub mod sso;

pub use sso::{Engine, EngineAccess};
