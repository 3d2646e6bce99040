//! The server's startup errors: each one line saying what is wrong and how to fix it.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A bad option or configuration file: the server did not start.
    #[error("{0}")]
    Usage(String),
    /// An operating-system error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = ServeError> = std::result::Result<T, E>;

impl ServeError {
    pub fn usage(msg: impl Into<String>) -> ServeError {
        ServeError::Usage(msg.into())
    }

    /// `<verb> <path>: <os error>`
    pub fn io_path(verb: &str, path: &Path, source: std::io::Error) -> ServeError {
        ServeError::Io {
            context: format!("{verb} {}", path.display()),
            source,
        }
    }
}
