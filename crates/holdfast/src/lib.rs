//! holdfast backs up, verifies, restores and migrates PostgreSQL-backed
//! application environments: the databases, the roles they need and the
//! application's configuration files, as one unit.
//!
//! # The principal types, and how they meet
//!
//! - [`profile`]: a [`profile::Profile`] says what an application's
//!   environment is, as data: its conf files, database components
//!   ([`profile::DatabaseComponent`]), files, hooks and version rule; the
//!   built-in `ovirt-engine` profile reproduces oVirt's engine-backup. An
//!   [`profile::Environment`] is a profile applied to one machine (its
//!   [`profile::InstallRoot`] and the conf values read there); it yields each
//!   component's [`profile::DatabaseCredentials`], and
//!   [`profile::credentials`] writes new ones back. The profile knows nothing
//!   of PostgreSQL.
//! - [`conf`] reads and rewrites the application's configuration files in
//!   their formats (shell, YAML, properties, INI, JSON, dotenv, URL parts),
//!   never through a shell: [`conf::ConfValues`], [`conf::ConfValue`].
//! - [`pg`] talks to PostgreSQL: [`pg::ConnParams`] (made from a profile's
//!   credentials, [`profile::Environment::database_params`]),
//!   [`pg::PgTools`] (the client programs chosen by server version),
//!   [`pg::dump`], [`pg::restore`], [`pg::inspect`] (fingerprints, sequences,
//!   objects), [`pg::roles`], and [`pg::provision::Admin`] for roles,
//!   databases and clusters created as the superuser.
//! - [`archive`] writes and reads engine-backup compatible archives
//!   ([`archive::ArchiveWriter`], [`archive::ArchiveReader`]) with their
//!   [`archive::ArchiveConfig`], [`archive::Codec`]s and holdfast's
//!   [`archive::Manifest`]; it knows no database, only the records a backup
//!   gives it.
//! - [`repo`] keeps snapshots of whole environments in a deduplicating,
//!   encrypted repository of restic's format ([`repo::Repo`] at a
//!   [`repo::RepoLocation`], thinned by a [`repo::Retention`]); a snapshot
//!   holds an archive's members, so it becomes an archive again.
//! - [`vm`] talks to an oVirt engine's REST API and its imageio daemons
//!   (virtual machine disks through the Backup and Restore API); it knows
//!   no database.
//! - [`ops`] is the only place that sequences these: each operation takes a
//!   validated request ([`ops::BackupRequest`], [`ops::VerifyRequest`],
//!   [`ops::RestoreRequest`] with its [`ops::ProvisionRequest`],
//!   [`ops::migrate::MigrateRequest`], [`ops::repo::RepoBackupRequest`]),
//!   built by the constructors of [`ops::request`], which hold the defaults
//!   both command-line faces share (such as [`ops::request::Jobs`]), and
//!   runs it in named phases ([`ops::backup`], [`ops::verify`],
//!   [`ops::restore`], [`ops::migrate`], [`ops::repo`]); a restore is
//!   journaled ([`ops::journal::Journal`]) so that a failure or a kill is
//!   rolled back.
//! - [`schema`] applies versioned upgrade scripts with a `schema_version`
//!   history ([`schema::Layout`], [`schema::Plan`], [`schema::History`]).
//! - [`runlog`] keeps what the last run of each verb on each target ended
//!   with ([`runlog::RunRecord`]); [`status`] reads it with the newest
//!   archive or snapshot into [`status::Facts`], judged as a monitoring
//!   plugin would or written as Prometheus metrics; [`notify`] tells
//!   webhooks, pings and mail ([`notify::Target`], [`notify::Event`]).
//! - [`schedule`] is the unattended plan (nightly backup and retention,
//!   weekly deep verify, monthly pack read) as systemd units or cron lines.
//! - [`durable::replace`] is how a file is written whole or not at all.
//! - [`log::Log`] is the console and the log file; [`Error`] carries a
//!   [`Remedy`] that each command-line face words itself; [`Password`] keeps
//!   secrets out of `Debug` and argv; [`child`] and [`interrupt`] run child
//!   programs and stop cleanly on a signal.
//!
//! The arrows go one way: `ops` uses everything; `pg` takes plain data from
//! `profile`; `profile` reads through `conf`; `archive` and `conf` use no
//! other module but the error type. Argument parsing lives in the
//! `holdfast-cli` crate; this crate writes to the terminal only through
//! [`log::Log`].
//!
//! # Example
//!
//! ```no_run
//! use holdfast::archive::{ArchiveReader, ReadLimits};
//! use holdfast::log::Log;
//! use holdfast::ops::{self, BackupRequest};
//! use holdfast::pg::{self, PgTools};
//! use holdfast::profile::{Environment, InstallRoot, Profile};
//!
//! fn main() -> holdfast::Result<()> {
//!     // The application on this machine, and where its engine database is.
//!     let env = Environment::load(Profile::load("ovirt-engine")?, InstallRoot::new("/")?)?;
//!     let db = env.profile.database("db").expect("the profile names it");
//!     if let Some(params) = env.database_params(db)? {
//!         let mut client = pg::connect(&params)?;
//!         let tools = PgTools::for_client(&mut client)?;
//!         println!("{}: pg_dump {}", params.display(), tools.version);
//!     }
//!     // An archive, every member's checksum verified as it is unpacked.
//!     let archive = ArchiveReader::open("engine.backup".as_ref(), ReadLimits::default())?;
//!     if let Some(manifest) = archive.manifest() {
//!         println!("made by profile {} on {}", manifest.profile, manifest.host);
//!     }
//!     Ok(())
//! }
//!
//! // An operation runs a request the command line has built and validated.
//! fn back_up(req: &BackupRequest) -> holdfast::Result<()> {
//!     let outcome = ops::backup::run(req, &Log::console_only())?;
//!     println!("{} bytes written to {}", outcome.bytes, outcome.file.display());
//!     Ok(())
//! }
//! ```

pub mod archive;
pub mod child;
pub mod conf;
pub mod durable;
pub mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod interrupt;
mod leftovers;
pub mod log;
pub mod notify;
pub mod ops;
pub mod pg;
pub mod profile;
pub mod progress;
pub mod repo;
pub mod runlog;
pub mod schedule;
pub mod schema;
pub mod secret;
pub mod status;
pub mod vm;
pub mod wal;

pub use error::{Error, IoContext, Remedy, Result};
pub use secret::Password;
