//! holdfast-serve: a backup server speaking restic's REST backend protocol (v1 and v2)
//! over a directory of repositories, so holdfast, restic and rustic clients can all
//! back up to it.
//!
//! The repositories keep restic's local layout (`config`, `keys/`, `locks/`,
//! `snapshots/`, `index/`, `data/xx/`), so a repository root can also be opened
//! directly as a local repository. Uploads stream to a temporary file beside their
//! destination, are checked against the content hash that names them, fsynced and
//! renamed into place; `--append-only` is enforced here, not by the client.

mod access_log;
mod auth;
mod config;
mod error;
mod handler;
mod route;
mod server;
mod store;
mod tls;

pub use auth::Htpasswd;
pub use config::{ServeConfig, TlsFiles};
pub use error::{Result, ServeError};
pub use route::{ObjectType, Route};
pub use server::{run, Server};
