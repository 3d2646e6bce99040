//! The one error type of the library. Every message is one line that says what is
//! wrong and, where the user can act, what to do about it.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input from the user: an option, a profile, a file name. Nothing was changed.
    #[error("{0}")]
    Usage(String),
    /// Data that is not what it claims to be: a damaged or hostile archive, a conf
    /// file that does not parse.
    #[error("{0}")]
    Invalid(String),
    /// A PostgreSQL server refused or failed something.
    #[error("{0}")]
    Postgres(String),
    /// A step of an operation failed (a child program, a check).
    #[error("{0}")]
    Failed(String),
    /// An operating-system error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// An error with a remedy that each command-line face words itself (its
    /// option names differ); shown bare, it is the inner error's message.
    #[error("{error}")]
    Remedied { error: Box<Error>, remedy: Remedy },
}

/// What the user can do, where the option that does it is spelt differently
/// on each face (or exists on one face only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remedy {
    /// Restore this database (by its profile option prefix: `db`, `dwh-db`)
    /// into another database than the restored configuration names
    /// (engine-backup's `--change-<prefix>-credentials`, holdfast's
    /// `--target <scope>=URL`).
    OtherTargetDatabase {
        option_prefix: String,
        scope: String,
    },
    /// Give a number of parallel jobs of 1 or more (holdfast's `--jobs`,
    /// engine-backup's `--<prefix>-restore-jobs`).
    AtLeastOneJob,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn usage(msg: impl Into<String>) -> Error {
        Error::Usage(msg.into())
    }
    pub fn invalid(msg: impl Into<String>) -> Error {
        Error::Invalid(msg.into())
    }
    pub fn failed(msg: impl Into<String>) -> Error {
        Error::Failed(msg.into())
    }
    pub fn postgres(msg: impl Into<String>) -> Error {
        Error::Postgres(msg.into())
    }
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
    /// This error, with a remedy each face words itself.
    pub fn with_remedy(self, remedy: Remedy) -> Error {
        Error::Remedied {
            error: Box::new(self),
            remedy,
        }
    }

    /// The error without its remedy: what kind of failure it is.
    pub fn kind(&self) -> &Error {
        match self {
            Error::Remedied { error, .. } => error.kind(),
            other => other,
        }
    }

    /// Bad input from the user (nothing was changed).
    pub fn is_usage(&self) -> bool {
        matches!(self.kind(), Error::Usage(_))
    }

    /// `<verb> <path>: <os error>`
    pub fn io_path(verb: &str, path: &Path, source: std::io::Error) -> Error {
        Error::io(format!("{verb} {}", path.display()), source)
    }
}

/// Attach what was being done to an I/O error.
pub trait IoContext<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(what(), e))
    }
}
