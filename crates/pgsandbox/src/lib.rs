//! Throwaway PostgreSQL clusters for tests, `holdfast demo` and `holdfast verify --deep`.
//!
//! [`Cluster::start`] finds the installed server binaries ([`installations`]),
//! copies a data directory initialised once per machine and server version, and
//! starts `postgres` on a unix socket in the cluster's own directory and on a free
//! loopback TCP port. The superuser (`postgres`) connects over the socket without a
//! password; roles made with [`Cluster::create_role`] authenticate over TCP with
//! scram-sha-256, so password handling is exercised for real.
//!
//! A cluster is stopped and its directory removed when the [`Cluster`] is dropped
//! (also while a test panics), when the process gets SIGINT, SIGTERM or SIGHUP, and,
//! if the process was killed outright, the server gets SIGQUIT from the kernel and
//! the next process that starts a cluster removes the directory.
//!
//! When the caller is root, the server runs as the `postgres` user (or
//! `PGSANDBOX_USER`), because `initdb` refuses root. `PGSANDBOX_MAJOR` picks a
//! server major, `PGSANDBOX_DIR` the parent directory of the clusters.

mod cluster;
mod install;
mod process;
mod registry;

pub use cluster::{quote_ident, quote_literal, Cluster, ClusterBuilder, SUPERUSER, TCP_HOST};
pub use install::{installation, installations, server_major, Installation};
pub use process::{lookup_user, ServerUser};

/// What can go wrong starting or using a cluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no PostgreSQL server is installed: install one (Debian: apt-get install postgresql)")]
    NoServer,
    #[error("{0}")]
    Config(String),
    #[error("TCP port {0} is already in use")]
    PortTaken(u16),
    #[error("{0}")]
    ServerFailed(String),
    #[error("SQL failed: {0}")]
    Sql(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(what: String, source: std::io::Error) -> Error {
        Error::Io { what, source }
    }
}
