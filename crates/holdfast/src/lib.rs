//! holdfast backs up, verifies, restores and migrates PostgreSQL-backed
//! application environments: the databases, the roles they need and the
//! application's configuration files, as one unit.
//!
//! The principal types and how they meet:
//! - a [`profile::Profile`] says what an application's environment is: its
//!   configuration sources, database components, files and hooks; the built-in
//!   `ovirt-engine` profile reproduces oVirt's engine-backup;
//! - [`conf`] reads the application's shell-style conf files (never through a
//!   shell) to find each component's [`pg::ConnParams`], and rewrites keys in them;
//! - [`pg`] runs the PostgreSQL client programs chosen by server version and
//!   inspects databases;
//! - [`archive`] writes and reads engine-backup compatible archives with a
//!   manifest of ours;
//! - [`ops`] sequences these into backup, verify and restore;
//! - [`schema`] applies versioned upgrade scripts.
//!
//! Argument parsing lives in the `holdfast-cli` crate; this crate does no I/O on
//! the terminal except through [`log::Console`].

pub mod archive;
pub mod child;
pub mod conf;
pub mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod interrupt;
mod leftovers;
pub mod log;
pub mod ops;
pub mod pg;
pub mod profile;
pub mod repo;
pub mod schema;
pub mod secret;

pub use error::{Error, IoContext, Remedy, Result};
pub use secret::Password;
