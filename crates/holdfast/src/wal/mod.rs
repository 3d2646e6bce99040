//! Write-ahead log archiving: the names of the files PostgreSQL archives
//! ([`name`]), the timeline history files ([`history`]) and the local spool of
//! what push stored and fetch read ahead ([`spool`]). Knows no repository:
//! `repo::wal` stores, `ops::wal` sequences.

pub mod history;
pub mod name;
pub mod spool;

pub use name::{format_lsn, parse_lsn, Segment, WalName};
pub use spool::Spool;
