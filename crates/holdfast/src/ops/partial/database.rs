//! A whole database of the archive into a new database beside the live one
//! (`--only-database SCOPE --as NEWNAME`): filled under a scratch name and
//! renamed to NEWNAME only once complete, so that a failure, or a kill, never
//! leaves a half-filled database under the name asked for.

use crate::archive::DumpFormat;
use crate::log::Log;
use crate::ops::{PartialRequest, WorkDir};
use crate::pg::{self, partial};
use crate::{Error, Result};

use super::scratch::{self, ScratchDatabase};
use super::{Live, PartialOutcome, Source};

pub(super) fn restore(
    req: &PartialRequest,
    source: &Source,
    live: &Live,
    work: &WorkDir,
    log: &Log,
) -> Result<PartialOutcome> {
    let Some(new_name) = req.new_name.as_deref() else {
        return Err(Error::usage(format!(
            "--only-database restores beside the live database '{}': name the new database with --as NEWNAME",
            live.params.database
        )));
    };
    let restore_permissions = super::restore_permissions(req, source.format)?;
    let admin = scratch::admin(req, live, "restoring a database under a new name")?;
    if partial::database_exists(&admin, new_name)? {
        return Err(Error::usage(format!(
            "database '{new_name}' already exists on {}:{}; choose another name with --as",
            live.params.host, live.params.port
        )));
    }
    let extensions = crate::ops::provisioning::dump_extensions(
        &live.tools,
        &source.member,
        source.format,
        source.codec,
    )?;
    let dump = match source.format {
        DumpFormat::Plain => None,
        _ => Some(source.codec.seekable_copy(&source.member, work.path())?),
    };
    if let (Some(dump), true) = (&dump, restore_permissions) {
        let roles = pg::roles::roles_in_dump(&live.tools, pg::restore::DumpSource::File(dump))?;
        super::check_roles(live, roles.into_iter().collect())?;
    }
    scratch::sweep(&admin, log)?;
    crate::interrupt::check()?;
    log.output(&format!(
        "- Restoring database '{}' of the archive as '{new_name}'",
        live.params.database
    ));
    let scratch = ScratchDatabase::create(&admin, live, &extensions, log)?;
    let report = match &dump {
        Some(dump) => pg::restore::restore_custom(
            scratch.params(),
            &live.tools,
            dump,
            &pg::RestoreOptions {
                jobs: req.restore.jobs_for(&source.db.scope).get(),
                restore_permissions,
                restore_owners: true,
            },
        ),
        None => {
            let mut sql = source.codec.open_decoded(&source.member)?;
            pg::restore::restore_plain(scratch.params(), &live.tools, &mut sql)
        }
    }
    .map_err(|e| {
        Error::failed(format!(
            "{e}; database '{new_name}' was not created (its scratch database is dropped)"
        ))
    })?;
    log.line(&report.command);
    for m in &report.messages {
        log.line(m);
    }
    let tables = {
        let mut client = pg::connect(scratch.params())?;
        pg::inspect::object_inventory(&mut client)
            .map(|i| i.tables.len())
            .unwrap_or(0)
    };
    scratch.keep_as(new_name)?;
    let line = format!(
        "Restored database '{}' of the archive as '{new_name}' on {}:{}: {tables} tables",
        live.params.database, live.params.host, live.params.port
    );
    log.output(&format!("- {line}"));
    Ok(PartialOutcome {
        restored: vec![line],
    })
}
