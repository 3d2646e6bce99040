//! Staging a backup's members in the work directory, in parallel: the files
//! member packed, each database dumped, each SQLite database copied.

use std::io::BufWriter;
use std::path::Path;

use crate::archive::manifest::DatabaseRecord;
use crate::archive::{pack_files, Codec, FileSet};
use crate::log::Log;
use crate::ops::workdir::create_private_file;
use crate::ops::BackupRequest;
use crate::profile::Environment;
use crate::{Error, IoContext, Result};

use super::dump::dump_one;
use super::plan::Plan;

/// Every member of `plan` written under `tar` (the files member as
/// `tar/files`); returns each database's manifest record.
pub(super) fn stage_members(
    req: &BackupRequest,
    plan: &Plan,
    tar: &Path,
    log: &Log,
) -> Result<Vec<DatabaseRecord>> {
    let env = &req.env;
    let files_path = tar.join("files");
    let threads = req.threads.max(1);
    let (files_result, db_results, sqlite_results) = std::thread::scope(|scope| {
        let files = plan.files.then(|| {
            let path = files_path.clone();
            scope.spawn(move || {
                pack_files_member(
                    env,
                    req.files_codec,
                    req.compress_level,
                    threads,
                    &path,
                    log,
                )
            })
        });
        let dbs: Vec<_> = plan
            .databases
            .iter()
            .map(|job| {
                let path = tar.join(&job.component.member);
                scope.spawn(move || dump_one(job, req.compress_level, threads, &path, log))
            })
            .collect();
        let sqlite: Vec<_> = plan
            .sqlite
            .iter()
            .map(|s| {
                let path = tar.join(&s.member);
                scope.spawn(move || copy_sqlite(&env.root.join(&s.path), &path))
            })
            .collect();
        (
            files.map(joined),
            dbs.into_iter().map(joined).collect::<Vec<_>>(),
            sqlite.into_iter().map(joined).collect::<Vec<_>>(),
        )
    });
    if let Some(r) = files_result {
        r?;
    }
    let mut records = Vec::new();
    for r in db_results {
        records.push(r?);
    }
    for r in sqlite_results {
        r?;
    }

    Ok(records)
}

/// A thread's result; a panic becomes an error instead of tearing the backup down.
fn joined<T>(h: std::thread::ScopedJoinHandle<'_, Result<T>>) -> Result<T> {
    h.join()
        .unwrap_or_else(|_| Err(Error::failed("a backup thread panicked")))
}

pub(crate) fn pack_files_member(
    env: &Environment,
    codec: Codec,
    level: Option<i32>,
    threads: u32,
    path: &Path,
    log: &Log,
) -> Result<()> {
    log.line(&format!("Backing up files to {}", path.display()));
    let files = &env.profile.files;
    let mut include: Vec<String> = files.include.clone();
    for c in &files.include_children {
        let dir = env.root.join(&c.dir);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut children: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| !c.except.contains(n))
            .map(|n| format!("{}/{n}", c.dir.trim_end_matches('/')))
            .collect();
        children.sort();
        include.extend(children);
    }
    let set = FileSet {
        include,
        exclude: files.exclude.clone(),
    };
    let out = create_private_file(path)?;
    let (out, packed) = pack_files(
        env.root.path(),
        &set,
        codec,
        level,
        threads,
        BufWriter::with_capacity(1 << 20, out),
    )?;
    for s in &packed.skipped {
        log.line(&format!("Not backed up (socket, fifo or device): {s}"));
    }
    // Not synced: a staged member is read back into the archive, whose file
    // is synced before it replaces the destination; syncing here too would
    // make the backup wait for the disk twice.
    out.into_inner()
        .map_err(|e| Error::io("flush the files member", e.into_error()))?;
    Ok(())
}

/// SQLite's online backup: a consistent copy while the application writes.
fn copy_sqlite(source: &Path, dest: &Path) -> Result<()> {
    let src =
        rusqlite::Connection::open_with_flags(source, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| {
            Error::failed(format!(
                "failed to backup {} with sqlite3: {e}",
                source.display()
            ))
        })?;
    src.busy_timeout(std::time::Duration::from_secs(10))
        .and_then(|_| src.backup(rusqlite::MAIN_DB, dest, None))
        .map_err(|e| {
            Error::failed(format!(
                "failed to backup {} with sqlite3: {e}",
                source.display()
            ))
        })?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o600))
        .context(|| format!("chmod {}", dest.display()))
}
