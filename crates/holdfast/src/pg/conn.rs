//! Where a database is and who connects to it.
//!
//! [`ConnParams`] is made from a profile's [`DatabaseCredentials`] (what the
//! application's conf files say) and back: the profile knows nothing of
//! PostgreSQL, and the conversion lives here.

use crate::profile::{DatabaseComponent, DatabaseCredentials, Environment};
use crate::secret::Password;

/// Connection parameters of one database, as an application's conf files or
/// the command line give them. The password never goes into argv: client
/// programs get it through a 0600 pgpass file, the `postgres` crate in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnParams {
    /// Host name, IP address, or an absolute directory for a unix socket.
    pub host: String,
    /// TCP port, also the number in the socket file's name.
    pub port: u16,
    /// Role to connect as.
    pub user: String,
    /// Database name.
    pub database: String,
    /// `None` when the server needs none (trust, peer) for this connection.
    pub password: Option<Password>,
    /// `ssl=true` in the application's JDBC URL (`*_DB_SECURED`).
    pub secured: bool,
    /// Certificate and host validation (`*_DB_SECURED_VALIDATION`).
    pub secured_validation: bool,
}

impl ConnParams {
    /// `user@host:port/database`, for messages and logs (no password).
    pub fn display(&self) -> String {
        format!(
            "{}@{}:{}/{}",
            self.user, self.host, self.port, self.database
        )
    }

    /// Whether `host` names a unix-socket directory.
    pub fn is_socket(&self) -> bool {
        self.host.starts_with('/')
    }

    /// Whether the server is on this machine: a unix socket or loopback.
    pub fn is_local(&self) -> bool {
        self.is_socket() || matches!(self.host.as_str(), "localhost" | "127.0.0.1" | "::1")
    }
}

impl From<DatabaseCredentials> for ConnParams {
    fn from(c: DatabaseCredentials) -> ConnParams {
        ConnParams {
            host: c.host,
            port: c.port,
            user: c.user,
            database: c.database,
            password: c.password,
            secured: c.secured,
            secured_validation: c.secured_validation,
        }
    }
}

impl From<&ConnParams> for DatabaseCredentials {
    fn from(p: &ConnParams) -> DatabaseCredentials {
        DatabaseCredentials {
            host: p.host.clone(),
            port: p.port,
            user: p.user.clone(),
            database: p.database.clone(),
            password: p.password.clone(),
            secured: p.secured,
            secured_validation: p.secured_validation,
        }
    }
}

impl Environment {
    /// The connection parameters of a database component: its credentials
    /// from the conf files ([`Environment::database_credentials`]); `None`
    /// when the component is not set up on this machine.
    pub fn database_params(&self, db: &DatabaseComponent) -> crate::Result<Option<ConnParams>> {
        Ok(self.database_credentials(db)?.map(ConnParams::from))
    }
}

/// Open a connection with the `postgres` crate (the password stays in memory).
///
/// TLS is not offered by in-process connections yet: a component whose conf asks
/// for `SECURED` is refused with a message instead of silently connecting in clear.
pub fn connect(params: &ConnParams) -> crate::Result<postgres::Client> {
    if params.secured {
        return Err(crate::Error::usage(format!(
            "{}: TLS connections (SECURED=True) are not supported by holdfast yet; \
             connect through a local socket or a trusted network",
            params.display()
        )));
    }
    let mut config = postgres::Config::new();
    if params.is_socket() {
        config.host_path(&params.host);
    } else {
        config.host(&params.host);
    }
    config
        .port(params.port)
        .user(&params.user)
        .dbname(&params.database)
        .application_name("holdfast")
        .connect_timeout(std::time::Duration::from_secs(15));
    if let Some(p) = &params.password {
        config.password(p.expose());
    }
    config.connect(postgres::NoTls).map_err(|e| {
        crate::Error::postgres(format!(
            "cannot connect to database '{}' as {}: {}",
            params.database,
            params.display(),
            error_text(&e)
        ))
    })
}

/// End the sessions a holdfast that is gone left in the database of `client`
/// (same role, application name `holdfast`, not this session), and wait up to
/// 10 s for them to be gone: a statement a killed pg_restore had sent
/// (a `COPY`, a `CREATE INDEX`) would otherwise still run, and commit, after
/// the kill. Returns how many there were.
pub fn end_orphaned_sessions(client: &mut postgres::Client) -> crate::Result<usize> {
    let fail = |e: postgres::Error| crate::Error::postgres(error_text(&e));
    let others = "FROM pg_stat_activity WHERE datname = current_database()                   AND usename = current_user AND application_name = 'holdfast'                   AND pid <> pg_backend_pid()";
    let ended = client
        .query(&format!("SELECT pg_terminate_backend(pid) {others}"), &[])
        .map_err(fail)?
        .len();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while ended > 0 && std::time::Instant::now() < deadline {
        let left: i64 = client
            .query_one(&format!("SELECT count(*) {others}"), &[])
            .map_err(fail)?
            .get(0);
        if left == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Ok(ended)
}

/// The server's own message for a database error, else the client's description.
pub fn error_text(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut text = format!("{}: {}", db.severity(), db.message());
            if let Some(detail) = db.detail() {
                text.push_str(&format!(" ({detail})"));
            }
            text
        }
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            text
        }
    }
}
