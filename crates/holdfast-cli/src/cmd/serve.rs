//! `holdfast serve`: the backup server (restic's REST protocol) over a directory of
//! repositories; the server itself is the `holdfast-serve` crate.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use holdfast_serve::{ServeConfig, ServeError, TlsFiles};

use crate::shared::absolute;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Directory holding the repositories (restic's local layout, usable directly as local repositories).
    #[arg(long, value_name = "DIR")]
    pub repo_root: PathBuf,
    /// Address to listen on; port 0 picks a free port (the URL is printed).
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
    /// Refuse deletes and overwrites (lock files excepted): a compromised client cannot destroy backups.
    #[arg(long)]
    pub append_only: bool,
    /// Users: an htpasswd file of bcrypt hashes (`htpasswd -B -c FILE USER`).
    #[arg(long, value_name = "FILE")]
    pub htpasswd: Option<PathBuf>,
    /// Serve without authentication on a non-loopback address.
    #[arg(long, conflicts_with = "htpasswd")]
    pub no_auth: bool,
    /// User X reaches only the repository path /X (and paths below it).
    #[arg(long, requires = "htpasswd")]
    pub private_repos: bool,
    /// TLS certificate chain (PEM); serve HTTPS with --tls-key.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Connections served at once; more clients wait (bounds the server's memory).
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub max_connections: usize,
}

pub fn run(a: ServeArgs) -> holdfast::Result<()> {
    let tls = match (a.tls_cert, a.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: absolute(&cert),
            key: absolute(&key),
        }),
        _ => None,
    };
    let config = ServeConfig {
        repo_root: absolute(&a.repo_root),
        listen: a.listen,
        append_only: a.append_only,
        htpasswd: a.htpasswd.map(|p| absolute(&p)),
        no_auth: a.no_auth,
        private_repos: a.private_repos,
        tls,
        max_connections: a.max_connections,
    };
    holdfast_serve::run(&config, |url| {
        println!("holdfast serve: listening on {url}");
    })
    .map_err(|e| match e {
        ServeError::Usage(msg) => holdfast::Error::usage(msg),
        ServeError::Io { context, source } => holdfast::Error::io(context, source),
    })
}
