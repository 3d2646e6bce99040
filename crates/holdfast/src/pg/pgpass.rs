//! The password file a client program reads (`PGPASSFILE`): the only way a
//! password reaches pg_dump, pg_restore or psql, so that it never appears in
//! argv or in the environment.
//!
//! The file is mode 0600 in a private (0700) directory of its own, under the
//! operation's temporary directory (`--tmpdir`), and is removed when the
//! [`PgPass`] is dropped.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::pg::ConnParams;
use crate::{IoContext, Result};

/// A temporary pgpass file; removed, with its directory, on drop.
#[derive(Debug)]
pub struct PgPass {
    dir: crate::leftovers::HeldDir,
    path: PathBuf,
}

const PREFIX: &str = "holdfast-pgpass-";

impl PgPass {
    /// A pgpass file with one `host:port:database:user:password` line for every
    /// connection that has a password (connections without one add no line).
    pub fn new<'a>(connections: impl IntoIterator<Item = &'a ConnParams>) -> Result<PgPass> {
        let dir = crate::leftovers::HeldDir::new(&crate::leftovers::temp_parent(), PREFIX, 6)
            .context(|| "create a private directory for the pgpass file".to_string())?;
        let path = dir.path().join("pgpass");
        let mut content = String::new();
        for conn in connections {
            if let Some(line) = line(conn) {
                content.push_str(&line);
                content.push('\n');
            }
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .context(|| format!("create {}", path.display()))?;
        file.write_all(content.as_bytes())
            .and_then(|()| file.sync_all())
            .context(|| format!("write {}", path.display()))?;
        Ok(PgPass { dir, path })
    }

    /// Path to give the child as `PGPASSFILE`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The private directory holding the file.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// `host:port:database:user:password`, each field escaped (`*` for the host of a
/// unix socket); `None` without a password.
fn line(conn: &ConnParams) -> Option<String> {
    let password = conn.password.as_ref()?;
    // libpq matches a socket in its compiled-in default directory against
    // `localhost`, any other socket against its path: `*` is right for both,
    // and this file serves this one connection only.
    let host = if conn.is_socket() {
        "*"
    } else {
        conn.host.as_str()
    };
    Some(
        [
            host,
            &conn.port.to_string(),
            &conn.database,
            &conn.user,
            password.expose(),
        ]
        .iter()
        .map(|field| escape(field))
        .collect::<Vec<_>>()
        .join(":"),
    )
}

/// libpq's pgpass escaping: `\` → `\\`, `:` → `\:`.
pub fn escape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    for c in field.chars() {
        if c == '\\' || c == ':' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Password;
    use std::os::unix::fs::PermissionsExt;

    fn conn(password: Option<&str>) -> ConnParams {
        ConnParams {
            host: "127.0.0.1".into(),
            port: 54329,
            user: "ovirt_engine_history".into(),
            database: "ovirt_engine_history".into(),
            password: password.map(Password::new),
            secured: false,
            secured_validation: false,
        }
    }

    #[test]
    fn escapes_backslash_and_colon() {
        assert_eq!(escape("dwh:fixture-pw"), "dwh\\:fixture-pw");
        assert_eq!(escape("a\\b:c"), "a\\\\b\\:c");
        assert_eq!(escape("plain"), "plain");
    }

    #[test]
    fn writes_a_private_file_and_removes_it_on_drop() {
        let with = conn(Some("dwh:fixture-pw"));
        let without = conn(None);
        let pgpass = PgPass::new([&with, &without]).unwrap();
        let path = pgpass.path().to_path_buf();
        let dir = pgpass.dir().to_path_buf();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "127.0.0.1:54329:ovirt_engine_history:ovirt_engine_history:dwh\\:fixture-pw\n"
        );
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir), 0o700);
        drop(pgpass);
        assert!(!path.exists());
        assert!(!dir.exists());
    }

    #[test]
    fn a_socket_connection_matches_any_host() {
        let mut socket = conn(Some("pw:1"));
        socket.host = "/var/run/postgresql".into();
        assert_eq!(
            line(&socket).unwrap(),
            "*:54329:ovirt_engine_history:ovirt_engine_history:pw\\:1"
        );
    }
}
