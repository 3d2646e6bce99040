//! Where a database is and who connects to it.

use crate::secret::Password;

/// Connection parameters of one database, as an application's conf files or
/// the command line give them. The password never goes into argv: client
/// programs get it through a 0600 pgpass file, the `postgres` crate in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnParams {
    /// Host name, IP address, or an absolute directory for a unix socket.
    pub host: String,
    pub port: u16,
    pub user: String,
    pub database: String,
    pub password: Option<Password>,
    /// `ssl=true` in the application's JDBC URL (`*_DB_SECURED`).
    pub secured: bool,
    /// Certificate and host validation (`*_DB_SECURED_VALIDATION`).
    pub secured_validation: bool,
}

impl ConnParams {
    /// `user@host:port/database`, for messages and logs (no password).
    pub fn display(&self) -> String {
        format!("{}@{}:{}/{}", self.user, self.host, self.port, self.database)
    }

    /// Whether `host` names a unix-socket directory.
    pub fn is_socket(&self) -> bool {
        self.host.starts_with('/')
    }
}
