//! A restore's journal: everything the restore changed, on disk, so that a
//! failure, or the next run after holdfast was killed outright, can undo it.
//!
//! The journal of an install root is the directory
//! `<state dir>/restore-<hash of the install root>/`: `journal.json` (0600)
//! and `kept/`, the copies of the files the restore replaced. The state
//! directory is `$HOLDFAST_STATE_DIR`, else `/var/lib/holdfast` for root,
//! else `$XDG_STATE_HOME/holdfast` (`~/.local/state/holdfast`). Every change
//! is written ahead: the journal names it, fsynced, before it is made, and
//! the kept copies are fsynced before the files they keep are replaced. The
//! journal is removed when the restore completes, or when a rollback leaves
//! nothing changed.
//!
//! A journal that is still there means a restore did not finish (its process
//! was killed). The next restore of that install root rolls it back before
//! anything else (`holdfast restore --rollback-interrupted` does only that),
//! under the install root's exclusive lock. Rolling back is idempotent: each
//! undo step is dropped from the journal once done, and a step that finds its
//! work already done counts as done.
//!
//! The journal holds the passwords of the connections it must reopen to empty
//! the databases it filled, as the application's own conf files do: it is
//! 0600 in a 0700 directory.

//!
//! The record's types are in [`record`], its files in [`disk`], the undoing in
//! [`rollback`].

mod disk;
mod record;
mod rollback;

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::archive::{FilesPlan, PlannedKind};
use crate::log::Log;
use crate::ops::provisioning::Undo;
use crate::pg::ConnParams;
use crate::profile::Environment;
use crate::{Error, IoContext, Result};

use disk::{
    completed_note, copy_preserving, create_private_dir, remove_journal, sync_dir, JOURNAL, KEPT,
};
use record::{Conn, DirMode, KeptFile, Record, Rewrite, ServerStep};

/// The variable that moves the state directory (tests, or a machine whose
/// `/var/lib` is read-only).
pub const STATE_DIR_VARIABLE: &str = "HOLDFAST_STATE_DIR";

/// Where holdfast keeps what must survive a crash.
pub fn state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(STATE_DIR_VARIABLE).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/holdfast");
    }
    match std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("holdfast"),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/".into()))
            .join(".local/state/holdfast"),
    }
}

/// Create the state directory (0700) if missing, so that an operation whose
/// restore of files comes late (a point-in-time restore's) learns before its
/// first write that the journal will have a home.
pub fn prepare_state_dir() -> Result<PathBuf> {
    let dir = state_dir();
    disk::create_private_dir(&dir).map_err(|e| {
        Error::usage(format!(
            "{e}: the restore journal lives there; set {STATE_DIR_VARIABLE} to a directory this user can write; nothing was written"
        ))
    })?;
    Ok(dir)
}

/// The journal directory of `env`'s install root.
pub fn journal_dir(env: &Environment) -> PathBuf {
    state_dir().join(format!("restore-{}", crate::ops::lock::root_key(env)))
}

/// How [`Journal::keep_file`] keeps a file's previous content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepBy {
    /// The file will be replaced by a rename: a hard link keeps the original.
    LinkOrCopy,
    /// The file will be written in place: only a copy keeps the original.
    Copy,
}

/// The journal of one restore, open for writing or for a rollback.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    record: Record,
}

impl Journal {
    /// Start the journal of a restore of `archive` onto `env`'s install root,
    /// before its first change. Call under the install root's exclusive lock,
    /// after [`Journal::find`] found none.
    pub fn begin(env: &Environment, archive: &Path) -> Result<Journal> {
        let dir = journal_dir(env);
        let state = dir.parent().expect("a journal directory has a parent");
        create_private_dir(state)?;
        if dir.exists() {
            // A journal without its record: the run that made it was killed
            // before it had written anything to undo.
            std::fs::remove_dir_all(&dir).context(|| format!("remove {}", dir.display()))?;
        }
        create_private_dir(&dir)?;
        create_private_dir(&dir.join(KEPT))?;
        sync_dir(state)?;
        let journal = Journal {
            dir,
            record: Record {
                install_root: env.root.path().to_path_buf(),
                archive: archive.to_path_buf(),
                pid: std::process::id(),
                guardian: Some(crate::child::guardian()?),
                started: chrono::Local::now().to_rfc3339(),
                ..Record::default()
            },
        };
        journal.persist()?;
        Ok(journal)
    }

    /// The journal an interrupted restore of `env`'s install root left, if any.
    pub fn find(env: &Environment) -> Result<Option<Journal>> {
        let dir = journal_dir(env);
        let path = dir.join(JOURNAL);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Created, then killed before its first record: nothing changed.
                if dir.exists() {
                    std::fs::remove_dir_all(&dir)
                        .context(|| format!("remove {}", dir.display()))?;
                }
                return Ok(None);
            }
            Err(e) => return Err(Error::io_path("read", &path, e)),
        };
        let record: Record = serde_json::from_str(&text).map_err(|e| {
            Error::invalid(format!(
                "the restore journal {} is damaged ({e}); see what it names, put the install back by hand, then remove {}",
                path.display(),
                dir.display()
            ))
        })?;
        Ok(Some(Journal { dir, record }))
    }

    /// `restore of ARCHIVE started TIME by process PID (journal DIR)`.
    pub fn describe(&self) -> String {
        format!(
            "restore of {} started {} by process {} (journal {})",
            self.record.archive.display(),
            self.record.started,
            self.record.pid,
            self.dir.display()
        )
    }

    /// Write the record (see [`disk::persist`]).
    fn persist(&self) -> Result<()> {
        disk::persist(&self.dir, &self.record)
    }

    /// Keep every file the plan will replace, and note what it creates (plan
    /// paths are relative to the install root); written before the plan is applied.
    pub fn keep_files(&mut self, plan: &FilesPlan, root: &Path) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        for dir in plan.missing_parents() {
            self.record.created_dirs.push(root.join(dir));
        }
        for entry in plan.entries().iter().filter(|e| !e.already_there) {
            let path = root.join(&entry.path);
            match (entry.kind, entry.exists) {
                (PlannedKind::Directory, false) => self.record.created_dirs.push(path),
                (PlannedKind::Directory, true) => {
                    let meta = std::fs::symlink_metadata(&path)
                        .context(|| format!("stat {}", path.display()))?;
                    self.record.dir_modes.push(DirMode {
                        path,
                        mode: meta.mode(),
                        uid: meta.uid(),
                        gid: meta.gid(),
                    });
                }
                // apply() renames new content over these paths, so the
                // original inode survives under a hard link.
                (_, _) => self.keep_unsaved(&path, KeepBy::LinkOrCopy)?,
            }
        }
        sync_dir(&self.dir.join(KEPT))?;
        self.persist()
    }

    /// Keep one file before it is replaced or created.
    pub fn keep_file(&mut self, path: &Path, how: KeepBy) -> Result<()> {
        self.keep_unsaved(path, how)?;
        sync_dir(&self.dir.join(KEPT))?;
        self.persist()
    }

    fn keep_unsaved(&mut self, path: &Path, how: KeepBy) -> Result<()> {
        let kept = self.keep_copy(path, how)?;
        self.record.files.push(KeptFile {
            path: path.to_path_buf(),
            kept,
        });
        Ok(())
    }

    /// A durable copy of `path` in `kept/`, or `None` when it does not exist.
    fn keep_copy(&mut self, path: &Path, how: KeepBy) -> Result<Option<String>> {
        if std::fs::symlink_metadata(path).is_err() {
            return Ok(None);
        }
        let name = (self.record.files.len() + self.record.rewrites.len()).to_string();
        let kept = self.dir.join(KEPT).join(&name);
        let _ = std::fs::remove_file(&kept);
        // A link costs nothing; a copy is needed across filesystems, or when
        // the file is about to be rewritten in place.
        let linked = how == KeepBy::LinkOrCopy && std::fs::hard_link(path, &kept).is_ok();
        if !linked {
            copy_preserving(path, &kept).map_err(|e| {
                Error::failed(format!(
                    "cannot keep a copy of {} before restoring over it: {e}",
                    path.display()
                ))
            })?;
            if !std::fs::symlink_metadata(&kept).is_ok_and(|m| m.file_type().is_symlink()) {
                File::open(&kept)
                    .and_then(|f| f.sync_all())
                    .context(|| format!("sync {}", kept.display()))?;
            }
        }
        Ok(Some(name))
    }

    /// A database is about to be loaded (it is empty now).
    pub fn filling(&mut self, params: &ConnParams) -> Result<()> {
        self.record.filled.push(Conn::from(params));
        self.persist()
    }

    /// A conf file is about to be rewritten: keep it first.
    pub fn rewriting(&mut self, file: &Path) -> Result<()> {
        let kept = self
            .keep_copy(file, KeepBy::Copy)?
            .ok_or_else(|| Error::failed(format!("{} disappeared", file.display())))?;
        sync_dir(&self.dir.join(KEPT))?;
        self.record.rewrites.push(Rewrite {
            file: file.to_path_buf(),
            kept,
            dated_copy: None,
        });
        self.persist()
    }

    /// The rewrite of `file` left its dated copy at `copy`.
    pub fn rewrote(&mut self, file: &Path, copy: &Path) -> Result<()> {
        if let Some(r) = self
            .record
            .rewrites
            .iter_mut()
            .rev()
            .find(|r| r.file == file)
        {
            r.dated_copy = Some(copy.to_path_buf());
        }
        self.persist()
    }

    /// Provisioning is about to make (or has just made) this server change.
    pub fn server_step(&mut self, undo: &Undo) -> Result<()> {
        self.record.server.push(ServerStep::of(undo));
        self.persist()
    }

    /// The restore completed: nothing is left to undo. What completed is
    /// noted next to where the journal was ([`last_completed`]).
    pub fn complete(self) -> Result<()> {
        let note = completed_note(&self.dir);
        let text = format!(
            "restore of {} started {} by process {} completed {}\n",
            self.record.archive.display(),
            self.record.started,
            self.record.pid,
            chrono::Local::now().to_rfc3339()
        );
        let temp = self.dir.join(".completed.tmp");
        std::fs::write(&temp, text)
            .and_then(|()| File::open(&temp)?.sync_all())
            .and_then(|()| std::fs::rename(&temp, &note))
            .context(|| format!("write {}", note.display()))?;
        remove_journal(&self.dir)
    }

    /// Undo everything, in reverse order; returns one line saying what was
    /// done and what remains. The journal is removed when nothing remains,
    /// else kept with what remains, for the next try.
    pub fn rollback(&mut self, log: &Log) -> String {
        rollback::rollback(&self.dir, &mut self.record, log)
    }
}

/// What the last restore of `env`'s install root that completed was, when no
/// restore was started since.
pub fn last_completed(env: &Environment) -> Option<String> {
    std::fs::read_to_string(completed_note(&journal_dir(env)))
        .ok()
        .map(|t| t.trim().to_string())
}

/// A restore of `env`'s install root starts: the last one that completed no
/// longer says what the install holds.
pub fn forget_completed(env: &Environment) -> Result<()> {
    let note = completed_note(&journal_dir(env));
    match std::fs::remove_file(&note) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io_path("remove", &note, e))
        }
        _ => Ok(()),
    }
}
