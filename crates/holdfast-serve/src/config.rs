//! What the server is asked to do (`ServeConfig`) and the checks made on it before
//! anything listens.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::error::{Result, ServeError};

/// A certificate chain and its private key, both PEM files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Directory holding the repositories; a request's repository path is relative to it.
    pub repo_root: PathBuf,
    pub listen: SocketAddr,
    /// Refuse deletes and overwrites, except of lock files.
    pub append_only: bool,
    /// Users and bcrypt hashes; `None` serves without authentication.
    pub htpasswd: Option<PathBuf>,
    /// Serving without authentication on a non-loopback address was asked for explicitly.
    pub no_auth: bool,
    /// User X reaches only the repository path `X` and paths below it.
    pub private_repos: bool,
    pub tls: Option<TlsFiles>,
    /// Connections served at once; further clients wait in the listen backlog.
    pub max_connections: usize,
}

impl ServeConfig {
    /// A plain-HTTP, unauthenticated, read-write configuration; the fields are public
    /// for the rest.
    pub fn new(repo_root: impl Into<PathBuf>, listen: SocketAddr) -> ServeConfig {
        ServeConfig {
            repo_root: repo_root.into(),
            listen,
            append_only: false,
            htpasswd: None,
            no_auth: false,
            private_repos: false,
            tls: None,
            max_connections: 64,
        }
    }

    /// Every check that needs no file read: run before anything else.
    pub fn check(&self) -> Result<()> {
        if !self.repo_root.is_dir() {
            return Err(ServeError::usage(format!(
                "repository root {} is missing or not a directory; create it (mkdir -m 700) or pass another --repo-root",
                self.repo_root.display()
            )));
        }
        if self.max_connections == 0 {
            return Err(ServeError::usage("--max-connections must be at least 1"));
        }
        if self.private_repos && self.htpasswd.is_none() {
            return Err(ServeError::usage(
                "--private-repos needs users: pass --htpasswd FILE",
            ));
        }
        if self.htpasswd.is_some() && self.no_auth {
            return Err(ServeError::usage(
                "--no-auth and --htpasswd contradict each other; pass one of them",
            ));
        }
        if self.htpasswd.is_none() && !self.no_auth && !self.listen.ip().is_loopback() {
            return Err(ServeError::usage(format!(
                "refusing to serve {} without authentication: pass --htpasswd FILE, listen on a loopback address, or pass --no-auth",
                self.listen
            )));
        }
        Ok(())
    }
}
