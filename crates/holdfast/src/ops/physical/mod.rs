//! Physical backup and point-in-time recovery of a whole cluster.
//!
//! - [`backup`]: pg_basebackup into a private staging directory, then one
//!   snapshot (with the profile's files when a profile is given);
//! - [`target`]: what a restore aims at, and which base backup reaches it
//!   (refusing a target outside the recoverable window);
//! - [`restore`]: the pre-write checks, the files, the recovery settings;
//! - [`recover`]: start the server, wait for the target, report where it stopped;
//! - [`environment`]: the profile's files as they were at the target.

pub mod backup;
pub mod environment;
pub mod recover;
pub mod restore;
pub mod target;
