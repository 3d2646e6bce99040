//! Loading each checked database: the dump restored (pg_restore for custom
//! dumps, psql for plain ones) after the journal notes the database is being
//! filled, then the profile's post-restore steps and note.

use crate::archive::{ArchiveReader, DumpFormat};
use crate::log::Log;
use crate::ops::journal::Journal;
use crate::ops::RestoreRequest;
use crate::pg::{self, ConnParams};
use crate::profile::PostRestore;
use crate::{Error, Result};

use super::checks::DbTarget;

/// Load one database and run what the profile does after.
pub(super) fn restore(
    req: &RestoreRequest,
    archive: &ArchiveReader,
    restore_permissions: bool,
    t: &DbTarget,
    journal: &mut Journal,
    log: &Log,
) -> Result<()> {
    crate::interrupt::check()?;
    log.output(&format!(
        "- {} database '{}'",
        t.component.restore_label(),
        t.params.database
    ));
    log.line(&format!(
        "restoreDB: backupfile {} user {} host {} port {} database {} compressor {} format {:?} jobsnum {}",
        t.member.display(),
        t.params.user,
        t.params.host,
        t.params.port,
        t.params.database,
        t.codec.option_name(),
        t.format,
        t.jobs
    ));
    if !t.created {
        journal.filling(&t.params)?;
    }
    load(archive, restore_permissions, t, log)?;
    after_restore(req, archive, t, log)
}

/// The dump into the database.
fn load(archive: &ArchiveReader, restore_permissions: bool, t: &DbTarget, log: &Log) -> Result<()> {
    let tools = t.tools.as_ref().expect("checked before");
    let report = match t.format {
        DumpFormat::Custom => {
            let dump = t.seekable_dump(archive.dir())?;
            let options = pg::restore::RestoreOptions {
                jobs: t.jobs,
                restore_permissions,
                restore_owners: t.replaced_owner.is_none(),
            };
            if log.shows_progress() {
                let label = format!("database '{}'", t.params.database);
                pg::restore::restore_custom_with_progress(&t.params, tools, &dump, &options, &|n| {
                    log.progress_entries(&label, n)
                })
            } else {
                pg::restore::restore_custom(&t.params, tools, &dump, &options)
            }
        }
        DumpFormat::Plain => {
            let mut sql = t.codec.open_decoded(&t.member)?;
            pg::restore::restore_plain(&t.params, tools, &mut sql)
        }
    }
    .map_err(|e| {
        Error::failed(format!(
            "Errors while restoring database {}: {e}",
            t.params.database
        ))
    })?;
    log.line(&report.command);
    for m in &report.messages {
        log.line(m);
    }
    Ok(())
}

/// The profile's post-restore steps (unless temporary data is kept) and its
/// note, for the database they are about.
fn after_restore(
    req: &RestoreRequest,
    archive: &ArchiveReader,
    t: &DbTarget,
    log: &Log,
) -> Result<()> {
    let Some(post) = req
        .env
        .profile
        .post_restore
        .as_ref()
        .filter(|p| p.database == t.component.scope)
    else {
        return Ok(());
    };
    if !req.keep_temporary_data {
        run_post_restore(post, &t.params, log)?;
    }
    if let Some(note) = &post.note {
        let mtime = archive
            .member(&t.component.member)
            .map(|m| m.mtime)
            .unwrap_or(0);
        let when = chrono::DateTime::from_timestamp(mtime as i64, 0)
            .map(|d| {
                d.with_timezone(&chrono::Local)
                    .format("%Y-%m-%d %H:%M:%S%.9f %z")
                    .to_string()
            })
            .unwrap_or_default();
        log.print(&note.replace("{backup_time}", &when));
    }
    Ok(())
}

fn run_post_restore(post: &PostRestore, params: &ConnParams, log: &Log) -> Result<()> {
    if let Some(b) = &post.banner {
        log.output(&b.replace("{database}", &params.database));
    }
    let mut client = pg::connect(params)?;
    let fail = |sql: &str, e: postgres::Error| {
        Error::postgres(format!(
            "post-restore step failed ({sql}): {}",
            pg::error_text(&e)
        ))
    };
    for step in &post.steps {
        let matched = match &step.check {
            None => true,
            Some(check) => {
                let rows = client.simple_query(check).map_err(|e| fail(check, e))?;
                let value = rows.iter().find_map(|m| match m {
                    postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                    _ => None,
                });
                value.as_deref() == step.when.as_deref()
            }
        };
        let (sql, console) = if matched {
            (Some(&step.sql), step.console.as_ref())
        } else {
            (step.else_sql.as_ref(), step.else_console.as_ref())
        };
        if let Some(sql) = sql {
            log.line(&format!("post-restore: {sql}"));
            client.batch_execute(sql).map_err(|e| fail(sql, e))?;
            if let Some(c) = console {
                log.output(c);
            }
        }
    }
    Ok(())
}
