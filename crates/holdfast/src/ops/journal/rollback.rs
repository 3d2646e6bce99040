//! Undoing what a journal records, in reverse order of the restore: conf
//! rewrites, filled databases, provisioning's server changes, files, created
//! directories, directory modes. Each step is dropped from the record once
//! done (the record is written after each), so that a rollback that is
//! itself interrupted goes on where it stopped.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::log::Log;
use crate::ops::provisioning::{self, Patience};
use crate::pg;

use super::disk::{persist, put_back, remove_journal, KEPT};
use super::record::Record;

/// What a rollback did and what it could not do, as phrases.
#[derive(Default)]
struct Report {
    done: Vec<String>,
    remains: Vec<String>,
}

/// Undo everything `record` names; returns one line saying what was done and
/// what remains. The journal directory `dir` is removed when nothing
/// remains, else its record keeps what remains.
pub(super) fn rollback(dir: &Path, record: &mut Record, log: &Log) -> String {
    let mut report = Report::default();
    wait_for_guardian(record, log);
    put_back_rewrites(dir, record, &mut report);
    let patience = Patience::from_now();
    empty_filled_databases(dir, record, &patience, &mut report);
    undo_server_steps(dir, record, &patience, &mut report, log);
    put_back_files(dir, record, &mut report);
    remove_created_dirs(record, &mut report);
    restore_dir_modes(record, &mut report);
    let line = conclude(dir, record, report);
    log.line(&line);
    line
}

/// A restore killed a moment ago may still have client programs running
/// until its guardian has killed them: one could otherwise write into a
/// database after it was emptied here.
fn wait_for_guardian(record: &Record, log: &Log) {
    let Some(guardian) = record.guardian else {
        return;
    };
    if record.pid == std::process::id() {
        // This process's own guardian: its clients were reaped before.
        return;
    }
    if !guardian.wait_gone(std::time::Duration::from_secs(30)) {
        log.line(&format!(
            "the interrupted restore's guardian (pid {}) is still running after 30 s; rolling back anyway",
            guardian.pid
        ));
    }
}

/// The conf files as they were, their dated copies removed.
fn put_back_rewrites(dir: &Path, record: &mut Record, report: &mut Report) {
    let kept_dir = dir.join(KEPT);
    while let Some(r) = record.rewrites.pop() {
        let kept = kept_dir.join(&r.kept);
        // Already put back by a rollback that was itself interrupted.
        let again = !kept.exists() && r.file.exists();
        let result = if again {
            Ok(())
        } else {
            put_back(&kept, &r.file)
        };
        let result = result.and_then(|()| match &r.dated_copy {
            Some(copy) => match std::fs::remove_file(copy) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(format!("remove {}: {e}", copy.display()))
                }
                _ => Ok(()),
            },
            None => Ok(()),
        });
        match result {
            Ok(()) => report.done.push(format!("restored {}", r.file.display())),
            Err(e) => {
                report.remains.push(format!(
                    "{} (its previous content is in {}: {e})",
                    r.file.display(),
                    kept_dir.join(&r.kept).display()
                ));
                record.rewrites.insert(0, r);
                break;
            }
        }
        let _ = persist(dir, record);
    }
}

/// The databases the restore loaded into, empty again.
fn empty_filled_databases(
    dir: &Path,
    record: &mut Record,
    patience: &Patience,
    report: &mut Report,
) {
    let mut still_filled = Vec::new();
    while let Some(conn) = record.filled.pop() {
        let params = conn.params();
        let reached = patience.retry(|| pg::connect(&params).map(drop));
        match reached.and_then(|()| pg::restore::empty_database(&params)) {
            Ok(()) => report
                .done
                .push(format!("emptied database '{}'", params.database)),
            Err(e) => {
                report.remains.push(format!(
                    "database '{}' still holds restored objects ({e})",
                    params.database
                ));
                still_filled.push(conn);
            }
        }
        let _ = persist(dir, record);
    }
    record.filled = still_filled;
}

/// Provisioning's changes on the server, taken back.
fn undo_server_steps(
    dir: &Path,
    record: &mut Record,
    patience: &Patience,
    report: &mut Report,
    log: &Log,
) {
    let mut undo = Vec::new();
    for step in &record.server {
        match step.undo() {
            Ok(u) => undo.push(u),
            Err(e) => report.remains.push(format!("a server change ({e})")),
        }
    }
    let (done, remains) = provisioning::rollback(&mut undo, patience, log);
    if remains.is_empty() {
        record.server.clear();
    }
    report.done.extend(done);
    report.remains.extend(remains);
    let _ = persist(dir, record);
}

/// The kept files put back, the files the restore created removed.
fn put_back_files(dir: &Path, record: &mut Record, report: &mut Report) {
    let kept_dir = dir.join(KEPT);
    let (mut put_back_files, mut removed) = (0, 0);
    let mut files_left = Vec::new();
    while let Some(f) = record.files.pop() {
        match &f.kept {
            Some(k) => {
                let kept = kept_dir.join(k);
                // Already put back by a rollback that was itself interrupted.
                if !kept.exists() && std::fs::symlink_metadata(&f.path).is_ok() {
                    put_back_files += 1;
                    continue;
                }
                let _ = std::fs::remove_file(&f.path).or_else(|_| std::fs::remove_dir_all(&f.path));
                match put_back(&kept, &f.path) {
                    Ok(()) => put_back_files += 1,
                    Err(e) => {
                        report.remains.push(format!(
                            "{} (kept copy {}: {e})",
                            f.path.display(),
                            kept.display()
                        ));
                        files_left.push(f);
                    }
                }
            }
            None => {
                let _ = std::fs::remove_file(&f.path).or_else(|_| std::fs::remove_dir_all(&f.path));
                removed += 1;
            }
        }
    }
    files_left.reverse();
    record.files = files_left;
    if put_back_files + removed > 0 {
        report.done.push(format!(
            "put back {} and removed {} new",
            crate::log::count(put_back_files, "file", "files"),
            crate::log::count(removed, "file", "files")
        ));
    }
}

/// The directories the restore created, removed when empty.
fn remove_created_dirs(record: &mut Record, report: &mut Report) {
    let mut dirs_left = Vec::new();
    while let Some(dir) = record.created_dirs.pop() {
        if dir.exists() && std::fs::remove_dir(&dir).is_err() {
            report
                .remains
                .push(format!("directory {} (not empty)", dir.display()));
            dirs_left.push(dir);
        }
    }
    dirs_left.reverse();
    record.created_dirs = dirs_left;
}

/// Existing directories given back their mode and owner.
fn restore_dir_modes(record: &Record, report: &mut Report) {
    for d in &record.dir_modes {
        let _ = std::os::unix::fs::chown(&d.path, Some(d.uid), Some(d.gid));
        if let Err(e) = std::fs::set_permissions(&d.path, std::fs::Permissions::from_mode(d.mode)) {
            report
                .remains
                .push(format!("mode of {} ({e})", d.path.display()));
        }
    }
}

/// The line that says it all; the journal removed when nothing remains.
fn conclude(dir: &Path, record: &Record, report: Report) -> String {
    let mut line = if report.done.is_empty() {
        "nothing had been changed".to_string()
    } else {
        format!("rolled back: {}", report.done.join(", "))
    };
    if report.remains.is_empty() {
        line.push_str("; nothing remains changed");
        if let Err(e) = remove_journal(dir) {
            line.push_str(&format!(" (the journal {} stays: {e})", dir.display()));
        }
    } else {
        line.push_str(&format!(
            "; REMAINS CHANGED: {}; the journal {} keeps what remains, and the next restore tries again",
            report.remains.join("; "),
            dir.display()
        ));
        let _ = persist(dir, record);
    }
    line
}
