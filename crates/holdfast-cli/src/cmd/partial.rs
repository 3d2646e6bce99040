//! The options of a partial restore (`--only-table`, `--only-schema`,
//! `--only-database`, `--as`), shared by `holdfast restore` and `holdfast
//! repo restore`, and the hand-over to [`holdfast::ops::partial`].

use clap::Args;
use holdfast::log::Log;
use holdfast::ops::{self, PartialRequest, PartialTarget, RestoreRequest};
use holdfast::pg::partial::DumpObject;
use holdfast::Error;

use super::restore::ProvisionArgs;

#[derive(Debug, Args)]
#[command(next_help_heading = "Partial restore, into the running database")]
pub struct PartialArgs {
    /// Restore only this table (SCHEMA.TABLE, repeatable), with its data,
    /// indexes, constraints, defaults, triggers, owned sequences, comments
    /// and grants, into the running database, touching nothing else; it must
    /// not exist there (see --as).
    #[arg(long = "only-table", value_name = "SCHEMA.TABLE")]
    pub tables: Vec<String>,
    /// Restore only this schema and everything in it (repeatable), as
    /// --only-table does a table.
    #[arg(long = "only-schema", value_name = "NAME")]
    pub schemas: Vec<String>,
    /// Restore the whole dump of this database scope into a new database
    /// beside the live one, on the same server, named by --as.
    #[arg(
        long = "only-database",
        value_name = "SCOPE",
        conflicts_with_all = ["tables", "schemas"]
    )]
    pub database: Option<String>,
    /// The new name: of the one --only-table (NAME, or SCHEMA.NAME), of the
    /// one --only-schema, or of the new database. A copy under a new name is
    /// owned by the application's database user, without grants; making it
    /// takes a scratch database and the superuser connection (--admin-…).
    #[arg(long = "as", value_name = "NAME")]
    pub new_name: Option<String>,
}

impl PartialArgs {
    /// Whether a partial restore was asked for.
    pub fn asked(&self) -> bool {
        !self.tables.is_empty()
            || !self.schemas.is_empty()
            || self.database.is_some()
            || self.new_name.is_some()
    }

    fn target(&self) -> holdfast::Result<PartialTarget> {
        if let Some(scope) = &self.database {
            return Ok(PartialTarget::Database(scope.clone()));
        }
        let mut objects = Vec::new();
        for t in &self.tables {
            objects.push(DumpObject::table(t).ok_or_else(|| {
                Error::usage(format!(
                    "--only-table {t}: name the table with its schema, as in public.{t}"
                ))
            })?);
        }
        for s in &self.schemas {
            if s.is_empty() {
                return Err(Error::usage("--only-schema needs a schema name"));
            }
            objects.push(DumpObject::Schema(s.clone()));
        }
        if objects.is_empty() {
            return Err(Error::usage(
                "--as names what --only-table, --only-schema or --only-database restores: give one of them",
            ));
        }
        if self.new_name.is_some() && objects.len() > 1 {
            return Err(Error::usage(
                "--as renames one table or one schema: give exactly one --only-table or --only-schema",
            ));
        }
        Ok(PartialTarget::Objects(objects))
    }
}

/// Restore what `partial` names of the archive `restore` reads.
pub fn run(
    restore: RestoreRequest,
    partial: &PartialArgs,
    provision: &ProvisionArgs,
    log: &Log,
) -> holdfast::Result<()> {
    if !provision.provision_scopes.is_empty() || provision.provision_all || provision.init_cluster {
        return Err(Error::usage(
            "a partial restore (--only-…) creates no roles, databases or clusters: leave out --provision, --provision-all and --init-cluster",
        ));
    }
    let req = PartialRequest {
        target: partial.target()?,
        new_name: partial.new_name.clone(),
        restore,
    };
    ops::partial::run(&req, log)?;
    log.output("Done.");
    Ok(())
}
