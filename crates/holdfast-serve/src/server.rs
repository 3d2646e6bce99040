//! The listening server: binds, accepts connections up to the configured bound
//! (further clients wait in the kernel's backlog, so memory stays bounded), wraps
//! them in TLS when asked and serves HTTP/1.1 on each until shut down.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::auth::Htpasswd;
use crate::config::ServeConfig;
use crate::error::{Result, ServeError};
use crate::handler::{handle, State};
use crate::tls;

/// How long a client may take to send a request's headers (idle keep-alive
/// connections are closed after it too), so slow or dead clients free their slot.
const HEADER_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// A bound server, ready to run.
pub struct Server {
    listener: TcpListener,
    state: Arc<State>,
    tls: Option<TlsAcceptor>,
    connections: Arc<Semaphore>,
}

impl Server {
    /// Check the configuration, read the users and TLS files, and bind. Nothing is
    /// served before `run`.
    pub async fn bind(config: &ServeConfig) -> Result<Server> {
        config.check()?;
        let users = match &config.htpasswd {
            Some(path) => Some(Arc::new(Htpasswd::load(path)?)),
            None => None,
        };
        let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
        let root = std::fs::canonicalize(&config.repo_root)
            .map_err(|e| ServeError::io_path("resolve", &config.repo_root, e))?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| ServeError::Io {
                context: format!("listen on {}", config.listen),
                source: e,
            })?;
        Ok(Server {
            listener,
            state: Arc::new(State {
                root,
                append_only: config.append_only,
                users,
                private_repos: config.private_repos,
            }),
            tls,
            connections: Arc::new(Semaphore::new(config.max_connections)),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// `http://ADDR` or `https://ADDR`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.local_addr())
    }

    /// Serve until SIGINT or SIGTERM.
    pub async fn run(self) -> Result<()> {
        let mut terminate = tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        )
        .map_err(|e| ServeError::Io {
            context: "install the SIGTERM handler".into(),
            source: e,
        })?;
        loop {
            let permit = self
                .connections
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                _ = tokio::signal::ctrl_c() => return Ok(()),
                _ = terminate.recv() => return Ok(()),
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    eprintln!("holdfast serve: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let state = self.state.clone();
            let tls = self.tls.clone();
            tokio::spawn(async move {
                serve_connection(stream, peer, state, tls).await;
                drop(permit);
            });
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    state: Arc<State>,
    tls: Option<TlsAcceptor>,
) {
    let _ = stream.set_nodelay(true);
    match tls {
        None => serve_http(stream, peer, state).await,
        Some(acceptor) => {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => serve_http(stream, peer, state).await,
                Ok(Err(e)) => eprintln!("holdfast serve: TLS handshake with {peer}: {e}"),
                Err(_) => eprintln!("holdfast serve: TLS handshake with {peer} timed out"),
            }
        }
    }
}

async fn serve_http<S>(stream: S, peer: SocketAddr, state: Arc<State>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(handle(state, peer, req).await) }
    });
    // Errors here are the client's (it went away, sent garbage): its requests were
    // logged by the handler already.
    let _ = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// Run a server on a new runtime until SIGINT or SIGTERM; `on_listening` is told
/// the URL once the socket is bound (the address may have had port 0).
pub fn run(config: &ServeConfig, on_listening: impl FnOnce(&str)) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| ServeError::Io {
            context: "start the tokio runtime".into(),
            source: e,
        })?;
    runtime.block_on(async {
        let server = Server::bind(config).await?;
        on_listening(&server.url());
        server.run().await
    })
}
