//! The restore's files: the plan of the `files` member, the configuration it
//! will bring (unpacked once into a preview to read the conf values that will
//! be in force), room for it on disk; then, writing, the files themselves,
//! the SQLite databases, and the conf files rewritten with new credentials.

use std::path::{Path, PathBuf};

use crate::archive::{ArchiveReader, FilesPlan, PlannedKind, ReadLimits};
use crate::log::Log;
use crate::ops::journal::{Journal, KeepBy};
use crate::ops::workdir::require_free_space;
use crate::ops::{RestoreRequest, WorkDir};
use crate::profile::credentials::ConfRewrite;
use crate::profile::{Environment, InstallRoot};
use crate::{IoContext, Result};

use super::selection::Selection;

/// The plan of the files member, when it is restored.
pub(super) fn plan(req: &RestoreRequest, selection: &Selection) -> Result<Option<FilesPlan>> {
    let Some(member) = &selection.files else {
        return Ok(None);
    };
    Ok(Some(FilesPlan::new(
        member,
        req.env.root.path(),
        &req.env.profile.files.restore_exclude,
        ReadLimits::default(),
    )?))
}

/// The environment as it will be after the files are restored: what the
/// profile reads of the files member, unpacked into a preview whose conf
/// values name the databases to restore into. Checks there is room for the
/// files first.
pub(super) fn future_environment(
    req: &RestoreRequest,
    selection: &Selection,
    plan: Option<&FilesPlan>,
    work: &WorkDir,
) -> Result<Environment> {
    let Some(member) = &selection.files else {
        return Ok(req.env.clone());
    };
    if let Some(plan) = plan {
        check_disk_space(req.env.root.path(), plan, work.path())?;
    }
    let preview = work.join("files.d");
    std::fs::create_dir(&preview).context(|| format!("create {}", preview.display()))?;
    // Only what the profile reads: a conf tree can hold thousands of files,
    // and creating each one twice was most of a small restore's own time.
    let read = req.env.profile.files_read();
    FilesPlan::preview(member, &preview, &read, ReadLimits::default())?.apply_unsynced()?;
    Environment::load(req.env.profile.clone(), InstallRoot::new(&preview)?)
}

/// Room for the restored files on the install root's filesystem, and for
/// the copies of the files they replace in the work directory, so that a
/// full disk does not stop the restore half-way.
fn check_disk_space(root: &Path, plan: &FilesPlan, work: &Path) -> Result<()> {
    let needed = plan.bytes();
    let kept: u64 = plan
        .entries()
        .iter()
        .filter(|e| e.exists && !e.already_there && e.kind != PlannedKind::Directory)
        .filter_map(|e| std::fs::symlink_metadata(root.join(&e.path)).ok())
        .map(|m| m.len())
        .sum();
    for (dir, bytes, what) in [
        (root, needed, "the restored files"),
        (work, kept, "the copies of the files the restore replaces"),
    ] {
        require_free_space(dir, bytes, |free| {
            format!(
                "not enough disk space in {}: {what} need {} KiB and {} KiB are free; free some space, then restore again",
                dir.display(),
                bytes.div_ceil(1024),
                free / 1024
            )
        })?;
    }
    Ok(())
}

/// Keep the files the plan replaces; [`FilesPlan::apply`] then puts the
/// archive's in place.
pub(super) fn keep_replaced(
    req: &RestoreRequest,
    plan: &FilesPlan,
    journal: &mut Journal,
    log: &Log,
) -> Result<()> {
    crate::interrupt::check()?;
    log.output("- Files");
    log.line("Restoring files");
    journal.keep_files(plan, req.env.root.path())
}

/// Copy each SQLite database asked for into place, the old one kept.
pub(super) fn restore_sqlite(
    req: &RestoreRequest,
    archive: &ArchiveReader,
    journal: &mut Journal,
    log: &Log,
) -> Result<()> {
    for sqlite in &req.env.profile.sqlite {
        if !req.scopes.iter().any(|s| s == &sqlite.scope) {
            continue;
        }
        let Some(src) = archive.member_path(&sqlite.member) else {
            continue;
        };
        let dest = req.env.root.join(&sqlite.path);
        log.output(&format!("- {} database '{}'", sqlite.label, dest.display()));
        journal.keep_file(&dest, KeepBy::Copy)?;
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir).context(|| format!("mkdir {}", dir.display()))?;
        }
        std::fs::copy(&src, &dest)
            .context(|| format!("cp {} {}", src.display(), dest.display()))?;
    }
    Ok(())
}

/// Rewrite the conf files with the new credentials; returns each file and
/// its dated copy.
pub(super) fn rewrite_conf(
    rewrites: &[ConfRewrite],
    journal: &mut Journal,
    log: &Log,
) -> Result<Vec<(PathBuf, PathBuf)>> {
    let mut rewritten = Vec::new();
    for rewrite in rewrites {
        let file = &rewrite.file;
        log.output(&format!("Rewriting {}", file.display()));
        journal.rewriting(file)?;
        let copy = rewrite.apply(chrono::Local::now())?;
        journal.rewrote(file, &copy)?;
        log.line(&format!(
            "Backing up {} to {}",
            file.display(),
            copy.display()
        ));
        rewritten.push((file.clone(), copy));
    }
    Ok(rewritten)
}
