//! A table or schema out of a custom dump into the live database.
//!
//! Under its own name the entries that make it up are restored straight
//! from the dump, with a list (`pg_restore -L`), in one transaction.
//!
//! Under a new name (`--as`) the dump's SQL would have to be rewritten, and
//! rewriting identifiers in SQL text is fragile (names inside function
//! bodies, defaults, comments). Instead the object is restored into a
//! scratch database on the same server (with every definition of the dump
//! beside it, so that it finds its types and functions, but no other data),
//! renamed there by PostgreSQL itself (`ALTER TABLE … RENAME`, its indexes
//! and owned sequences after it, or `ALTER SCHEMA … RENAME`), dumped again
//! with pg_dump and that dump loaded into the live database in one
//! transaction. The copy is owned by the application's database user,
//! without grants, and without the foreign keys that point at objects it
//! does not bring (they would tie a side copy to live rows that may have
//! changed since the backup).

use std::collections::BTreeSet;
use std::path::Path;

use crate::archive::DumpFormat;
use crate::log::Log;
use crate::ops::{PartialRequest, WorkDir};
use crate::pg::custom_format::{self, DumpEntry};
use crate::pg::partial::{self, DumpObject};
use crate::pg::restore;
use crate::{Error, IoContext, Result};

use super::scratch::{self, ScratchDatabase};
use super::{Live, PartialOutcome, Source};

pub(super) fn restore(
    req: &PartialRequest,
    objects: &[DumpObject],
    source: &Source,
    live: &Live,
    work: &WorkDir,
    log: &Log,
) -> Result<PartialOutcome> {
    let database = &live.params.database;
    if source.format == DumpFormat::Plain {
        return Err(Error::usage(format!(
            "the dump of database '{database}' in this archive is plain SQL, which has no table of contents to pick a table or schema from; restore the whole database beside the live one with --only-database {} --as NEWNAME and copy what you need from there",
            source.db.scope
        )));
    }
    let dump = source.codec.seekable_copy(&source.member, work.path())?;
    let file = std::fs::File::open(&dump).context(|| format!("open {}", dump.display()))?;
    let entries = custom_format::toc_entries(std::io::BufReader::new(file))?;
    let selected = partial::select(&entries, objects).map_err(|missing| {
        Error::usage(format!(
            "the dump of database '{database}' in this archive holds no {missing}; see what it holds with 'pg_restore -l'"
        ))
    })?;
    let part = Part {
        entries: &entries,
        selected: &selected,
        dump: &dump,
    };
    match &req.new_name {
        None => in_place(req, objects, &part, live, log),
        Some(new_name) => match objects {
            [object] => renamed(req, object, new_name, &part, live, work, log),
            _ => Err(Error::usage(
                "--as renames one table or one schema: give exactly one --only-table or --only-schema",
            )),
        },
    }
}

/// The dump and the entries of the objects asked for.
struct Part<'a> {
    entries: &'a [DumpEntry],
    selected: &'a BTreeSet<i32>,
    dump: &'a Path,
}

fn in_place(
    req: &PartialRequest,
    objects: &[DumpObject],
    part: &Part,
    live: &Live,
    log: &Log,
) -> Result<PartialOutcome> {
    let database = &live.params.database;
    let restore_permissions = super::restore_permissions(req, DumpFormat::Custom)?;
    let mut client = live.client()?;
    for object in objects {
        let taken = match object {
            DumpObject::Table { schema, name } => {
                !partial::existing_relations(&mut client, &[(schema.clone(), name.clone())])?
                    .is_empty()
            }
            DumpObject::Schema(name) => partial::schema_exists(&mut client, name)?,
        };
        if taken {
            return Err(Error::usage(format!(
                "{object} already exists in database '{database}'; restore it under another name with --as NEWNAME, or drop it first"
            )));
        }
    }
    let names = partial::relation_names(part.entries, part.selected);
    let taken = partial::existing_relations(&mut client, &names)?;
    if !taken.is_empty() {
        return Err(Error::usage(format!(
            "{} already in database '{database}' would be created again by what is restored; drop it, or restore under another name with --as NEWNAME",
            taken.join(", ")
        )));
    }
    if restore_permissions {
        super::check_roles(
            live,
            partial::roles_of(part.entries, part.selected)
                .into_iter()
                .collect(),
        )?;
    }
    crate::interrupt::check()?;
    let what: Vec<String> = objects.iter().map(|o| o.to_string()).collect();
    log.output(&format!(
        "- Restoring {} into database '{database}'",
        what.join(", ")
    ));
    let report = restore::restore_entries_atomic(
        &live.params,
        &live.tools,
        part.dump,
        part.selected,
        restore_permissions,
    )
    .map_err(|e| rolled_back(e, database))?;
    log_report(&report, log);
    let mut outcome = PartialOutcome::default();
    for object in objects {
        let line = restored_line(&mut client, object, object, database)?;
        log.output(&format!("- {line}"));
        outcome.restored.push(line);
    }
    Ok(outcome)
}

fn renamed(
    req: &PartialRequest,
    object: &DumpObject,
    new_name: &str,
    part: &Part,
    live: &Live,
    work: &WorkDir,
    log: &Log,
) -> Result<PartialOutcome> {
    let database = &live.params.database;
    let target = target_object(object, new_name)?;
    check_free(object, &target, part, live)?;
    if req.restore.restore_permissions == Some(true) {
        log.output(&format!(
            "- Note: a copy under a new name is owned by '{}' and gets no grants",
            live.params.user
        ));
    }
    let admin = scratch::admin(req, live, "restoring under a new name (--as)")?;
    scratch::sweep(&admin, log)?;
    let extensions: Vec<String> = part
        .entries
        .iter()
        .filter(|e| e.desc == "EXTENSION")
        .map(|e| e.tag.clone())
        .collect();
    crate::interrupt::check()?;
    log.output(&format!(
        "- Preparing {object} as {target} in a scratch database"
    ));
    let scratch = ScratchDatabase::create(&admin, live, &extensions, log)?;
    let copy = work.join("partial-copy.dump");
    prepare_copy(object, &target, part, &scratch, live, &copy, log).map_err(|e| {
        Error::failed(format!(
            "preparing the copy in a scratch database failed: {e}; nothing was written to database '{database}'"
        ))
    })?;
    crate::interrupt::check()?;
    log.output(&format!("- Restoring {target} into database '{database}'"));
    let report = restore::restore_custom_atomic(&live.params, &live.tools, &copy, false)
        .map_err(|e| rolled_back(e, database))?;
    log_report(&report, log);
    drop(scratch);
    let line = restored_line(&mut live.client()?, object, &target, database)?;
    log.output(&format!("- {line}"));
    Ok(PartialOutcome {
        restored: vec![line],
    })
}

/// Restore `object` into the scratch database (with every definition of
/// the dump beside it, no other data), rename it `target` there and dump it
/// into `copy`.
fn prepare_copy(
    object: &DumpObject,
    target: &DumpObject,
    part: &Part,
    scratch: &ScratchDatabase,
    live: &Live,
    copy: &Path,
    log: &Log,
) -> Result<()> {
    let left_out = partial::outgoing_foreign_keys(part.entries, part.selected);
    let mut load: BTreeSet<i32> = part.selected.clone();
    for fk in &left_out {
        load.remove(&fk.dump_id);
        log.output(&format!(
            "  leaving out foreign key {} of {}.{} (it references rows the copy does not bring)",
            fk.tag.split_once(' ').map_or(fk.tag.as_str(), |(_, c)| c),
            fk.namespace,
            fk.tag.split_once(' ').map_or("", |(t, _)| t),
        ));
    }
    load.extend(partial::definitions_besides(part.entries, part.selected));
    let report =
        restore::restore_entries_atomic(scratch.params(), &live.tools, part.dump, &load, false)?;
    log_report(&report, log);
    let mut client = crate::pg::connect(scratch.params())?;
    match (object, target) {
        (
            DumpObject::Table { schema, name },
            DumpObject::Table {
                schema: new_schema,
                name: new_name,
            },
        ) => partial::rename_table(
            &mut client,
            (schema.as_str(), name.as_str()),
            (new_schema.as_str(), new_name.as_str()),
        )?,
        (DumpObject::Schema(old), DumpObject::Schema(new)) => {
            partial::rename_schema(&mut client, old, new)?
        }
        _ => unreachable!("the target is the same kind of object"),
    }
    drop(client);
    let command = partial::dump_object(scratch.params(), &live.tools, target, copy)?;
    log.line(&command);
    Ok(())
}

/// What `--as NAME` makes of `object`: a table keeps its schema unless NAME
/// is `SCHEMA.TABLE`.
fn target_object(object: &DumpObject, new_name: &str) -> Result<DumpObject> {
    if new_name.is_empty() {
        return Err(Error::usage("--as needs a name"));
    }
    Ok(match object {
        DumpObject::Table { schema, .. } => {
            DumpObject::table(new_name).unwrap_or_else(|| DumpObject::Table {
                schema: schema.clone(),
                name: new_name.to_string(),
            })
        }
        DumpObject::Schema(_) => {
            if new_name.contains('.') {
                return Err(Error::usage(format!(
                    "--as {new_name}: a schema's new name has no dot"
                )));
            }
            DumpObject::Schema(new_name.to_string())
        }
    })
}

/// Refuse when the new name, or a name the copy's indexes and sequences
/// take after it, is taken in the live database, or a table's new schema is
/// missing there.
fn check_free(object: &DumpObject, target: &DumpObject, part: &Part, live: &Live) -> Result<()> {
    let database = &live.params.database;
    let mut client = live.client()?;
    let taken = match (object, target) {
        (
            DumpObject::Table { name, .. },
            DumpObject::Table {
                schema: new_schema,
                name: new_name,
            },
        ) => {
            if !partial::schema_exists(&mut client, new_schema)? {
                return Err(Error::usage(format!(
                    "schema {new_schema} does not exist in database '{database}'; create it first, or restore into an existing schema"
                )));
            }
            let names: Vec<(String, String)> = partial::relation_names(part.entries, part.selected)
                .into_iter()
                .map(|(_, n)| {
                    let renamed = if &n == name {
                        new_name.clone()
                    } else {
                        partial::renamed_part(&n, name, new_name)
                    };
                    (new_schema.clone(), renamed)
                })
                .collect();
            partial::existing_relations(&mut client, &names)?
        }
        (_, DumpObject::Schema(new)) => {
            if partial::schema_exists(&mut client, new)? {
                vec![format!("schema {new}")]
            } else {
                Vec::new()
            }
        }
        _ => Vec::new(),
    };
    if taken.is_empty() {
        return Ok(());
    }
    Err(Error::usage(format!(
        "{} already in database '{database}' (restoring {object} as {target} would create it); choose another name with --as",
        taken.join(", ")
    )))
}

/// `restored table public.t as public.t_restored into database 'engine': 3 rows`.
fn restored_line(
    client: &mut postgres::Client,
    object: &DumpObject,
    target: &DumpObject,
    database: &str,
) -> Result<String> {
    let rows = match target {
        DumpObject::Table { schema, name } => {
            format!("{} rows", partial::row_count(client, schema, name)?)
        }
        DumpObject::Schema(name) => {
            let (tables, rows) = partial::schema_tables(client, name)?;
            format!("{tables} tables, {rows} rows")
        }
    };
    let renamed = match target {
        _ if object == target => String::new(),
        DumpObject::Table { schema, name } => format!(" as {schema}.{name}"),
        DumpObject::Schema(name) => format!(" as {name}"),
    };
    Ok(format!(
        "Restored {object}{renamed} into database '{database}': {rows}"
    ))
}

fn rolled_back(e: Error, database: &str) -> Error {
    Error::failed(format!(
        "{e}; the load into database '{database}' was one transaction, rolled back: nothing of it was kept"
    ))
}

fn log_report(report: &restore::RestoreReport, log: &Log) {
    log.line(&report.command);
    for m in &report.messages {
        log.line(m);
    }
}
