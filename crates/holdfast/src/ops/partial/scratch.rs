//! The throwaway databases of a partial restore, on the live database's
//! server: created through the superuser connection (`--admin-…`), owned by
//! the application's database user, named `holdfast_scratch_<pid>_<n>` so
//! that the next run drops those a killed holdfast left behind, and dropped
//! when dropped.

use crate::log::Log;
use crate::ops::PartialRequest;
use crate::pg::provision::{self, Admin};
use crate::pg::{partial, ConnParams, PgTools};
use crate::{Error, Result};

use super::Live;

const PREFIX: &str = "holdfast_scratch_";

/// The superuser session `--admin-host/--admin-port/--admin-user/
/// --admin-passfile` describe, with provisioning's defaults (the local
/// socket, the database's port, `postgres`), checked.
pub(super) fn admin(req: &PartialRequest, live: &Live, why: &str) -> Result<Admin> {
    let opts = &req.restore.provision.admin;
    let target = &live.params;
    let local = matches!(target.host.as_str(), "localhost" | "127.0.0.1" | "::1")
        || target.host.starts_with('/');
    if opts.host.is_none() && !local {
        return Err(Error::usage(format!(
            "{why} needs the PostgreSQL superuser of the server at {}: pass --admin-host and the superuser's credentials",
            target.host
        )));
    }
    let params = ConnParams {
        host: opts
            .host
            .clone()
            .unwrap_or_else(|| provision::DEFAULT_SOCKET_DIR.to_string()),
        port: opts.port.unwrap_or(target.port),
        user: opts.user.clone().unwrap_or_else(|| "postgres".into()),
        database: "postgres".into(),
        password: opts.password.clone(),
        secured: false,
        secured_validation: false,
    };
    let admin = Admin::new(params, PgTools::newest()?);
    admin.check().map_err(|e| {
        Error::usage(format!(
            "{why} needs the PostgreSQL superuser: {e}; pass --admin-host, --admin-port, --admin-user and --admin-passfile"
        ))
    })?;
    Ok(admin)
}

/// Drop the scratch databases of holdfast processes that are gone.
pub(super) fn sweep(admin: &Admin, log: &Log) -> Result<()> {
    for name in partial::databases_named(admin, PREFIX)? {
        let pid = name[PREFIX.len()..]
            .split('_')
            .next()
            .and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            log.line(&format!("dropping database {name} left by a killed run"));
            provision::drop_database(admin, &name)?;
        }
    }
    Ok(())
}

/// A database that exists until dropped.
pub(super) struct ScratchDatabase<'a> {
    admin: &'a Admin,
    name: String,
    params: ConnParams,
    kept: bool,
}

impl<'a> ScratchDatabase<'a> {
    /// A new empty database like the live one (encoding, locale), owned by
    /// the live database's user, with the extensions `extensions` created.
    pub fn create(
        admin: &'a Admin,
        live: &Live,
        extensions: &[String],
        log: &Log,
    ) -> Result<ScratchDatabase<'a>> {
        static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("{PREFIX}{}_{n}", std::process::id());
        partial::create_database_like(admin, &name, &live.params.user, &live.info)?;
        log.line(&format!("created scratch database {name}"));
        let scratch = ScratchDatabase {
            admin,
            params: live.params_for(&name),
            name,
            kept: false,
        };
        for ext in extensions {
            provision::create_extension_with_requirements(admin, &scratch.name, ext)?;
        }
        Ok(scratch)
    }

    /// Connection as the live database's user.
    pub fn params(&self) -> &ConnParams {
        &self.params
    }

    /// Rename it to `name` and keep it.
    pub fn keep_as(mut self, name: &str) -> Result<()> {
        self.admin.execute(
            &self.admin.params().database,
            &format!(
                "ALTER DATABASE {} RENAME TO {}",
                crate::pg::sql::quote_ident(&self.name),
                crate::pg::sql::quote_ident(name)
            ),
        )?;
        self.kept = true;
        Ok(())
    }
}

impl Drop for ScratchDatabase<'_> {
    fn drop(&mut self) {
        if !self.kept {
            // A failure here leaves it to the next run's sweep.
            let _ = provision::drop_database(self.admin, &self.name);
        }
    }
}
