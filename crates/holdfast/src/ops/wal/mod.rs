//! `holdfast wal`: PostgreSQL's archive_command ([`push`]) and restore_command
//! ([`fetch`]) over the repository, and the archive's continuity ([`check`]).
//!
//! Opening the repository costs a key derivation, so neither opens it for a
//! file the local spool can answer: push stores every file PostgreSQL has
//! marked ready in one snapshot and records them, fetch reads the following
//! segments ahead.

pub mod check;
pub mod fetch;
pub mod push;
pub mod retention;

use crate::repo::Repo;
use crate::Result;

/// Opens the repository when (and only when) an operation needs it.
pub type OpenRepo<'a> = &'a mut dyn FnMut() -> Result<Repo>;
