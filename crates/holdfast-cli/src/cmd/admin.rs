//! `--admin-host/--admin-port/--admin-user/--admin-passfile`: the PostgreSQL
//! superuser connection, written once for the verbs that take it (restore
//! provisions with it; backup reads the roles' password verifiers with it).

use std::path::PathBuf;

use clap::Args;
use holdfast::ops::request::RolePasswords;
use holdfast::ops::AdminOptions;
use holdfast::Password;

/// The superuser connection.
#[derive(Debug, Clone, Args)]
pub struct AdminArgs {
    /// Superuser connection: host, or the directory of the server's unix
    /// socket [default: /var/run/postgresql].
    #[arg(long, value_name = "HOST|DIR")]
    pub admin_host: Option<String>,
    /// Superuser connection port [default: the database's port].
    #[arg(long, value_name = "PORT")]
    pub admin_port: Option<u16>,
    /// Superuser role [default: postgres, by peer authentication when run as root].
    #[arg(long, value_name = "USER")]
    pub admin_user: Option<String>,
    /// File whose first line is the superuser's password.
    #[arg(long, value_name = "FILE")]
    pub admin_passfile: Option<PathBuf>,
}

impl AdminArgs {
    /// Whether any of the options was given.
    pub fn given(&self) -> bool {
        self.admin_host.is_some()
            || self.admin_port.is_some()
            || self.admin_user.is_some()
            || self.admin_passfile.is_some()
    }

    /// The options, with the password read from its file.
    pub fn options(&self) -> holdfast::Result<AdminOptions> {
        let password = match &self.admin_passfile {
            None => None,
            Some(f) => Some(Password::from_file(f).map_err(|e| {
                holdfast::Error::usage(format!(
                    "cannot read the password file {} ({e}); pass a readable file to --admin-passfile",
                    f.display()
                ))
            })?),
        };
        Ok(AdminOptions {
            host: self.admin_host.clone(),
            port: self.admin_port,
            user: self.admin_user.clone(),
            password,
        })
    }
}

/// How a backup reads the roles' passwords: the superuser connection, or
/// none.
#[derive(Debug, Clone, Args)]
pub struct RolePasswordArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Leave the roles' password verifiers out of the archive (a restore
    /// that creates a role gives it a new password).
    #[arg(long, conflicts_with_all = ["admin_host", "admin_port", "admin_user", "admin_passfile"])]
    pub without_role_passwords: bool,
}

impl RolePasswordArgs {
    /// Where the backup reads the verifiers: the superuser connection given,
    /// else the local superuser when it answers.
    pub fn role_passwords(&self) -> holdfast::Result<RolePasswords> {
        Ok(if self.without_role_passwords {
            RolePasswords::NotRead
        } else if self.admin.given() {
            RolePasswords::Admin(self.admin.options()?)
        } else {
            RolePasswords::LocalSuperuser
        })
    }
}
