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

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::archive::{FilesPlan, PlannedKind};
use crate::log::Log;
use crate::ops::provisioning::{self, Patience, Undo};
use crate::pg::provision::{Admin, ClusterInit, InitializedCluster};
use crate::pg::{self, ConnParams, PgTools};
use crate::profile::Environment;
use crate::{Error, IoContext, Password, Result};

/// The variable that moves the state directory (tests, or a machine whose
/// `/var/lib` is read-only).
pub const STATE_DIR_VARIABLE: &str = "HOLDFAST_STATE_DIR";

const JOURNAL: &str = "journal.json";
const KEPT: &str = "kept";

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

/// What the journal says, as written to `journal.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Record {
    install_root: PathBuf,
    archive: PathBuf,
    pid: u32,
    started: String,
    /// Files the restore replaces (with their kept copy in `kept/`) or creates.
    files: Vec<KeptFile>,
    /// Directories the restore creates, deepest last.
    created_dirs: Vec<PathBuf>,
    /// Existing directories whose mode and owner the restore sets.
    dir_modes: Vec<DirMode>,
    /// Databases the restore loads into (they were empty).
    filled: Vec<Conn>,
    /// Conf files rewritten with new credentials.
    rewrites: Vec<Rewrite>,
    /// What provisioning did on the server, in order.
    server: Vec<ServerStep>,
}

#[derive(Debug, Serialize, Deserialize)]
struct KeptFile {
    path: PathBuf,
    /// Name in `kept/`; `None` for a file the restore creates.
    kept: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct DirMode {
    path: PathBuf,
    mode: u32,
    uid: u32,
    gid: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct Rewrite {
    file: PathBuf,
    /// The file as it was, in `kept/`.
    kept: String,
    /// The dated copy the rewrite leaves next to the file, once made.
    dated_copy: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Conn {
    host: String,
    port: u16,
    user: String,
    database: String,
    password: Option<String>,
    secured: bool,
    secured_validation: bool,
}

impl From<&ConnParams> for Conn {
    fn from(p: &ConnParams) -> Conn {
        Conn {
            host: p.host.clone(),
            port: p.port,
            user: p.user.clone(),
            database: p.database.clone(),
            password: p.password.as_ref().map(|p| p.expose().to_string()),
            secured: p.secured,
            secured_validation: p.secured_validation,
        }
    }
}

impl Conn {
    fn params(&self) -> ConnParams {
        ConnParams {
            host: self.host.clone(),
            port: self.port,
            user: self.user.clone(),
            database: self.database.clone(),
            password: self.password.clone().map(Password::new),
            secured: self.secured,
            secured_validation: self.secured_validation,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct AdminRecord {
    conn: Conn,
    bindir: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum ServerStep {
    ClusterDebian {
        version: u32,
        name: String,
        hba_file: PathBuf,
    },
    ClusterInitdb {
        bindir: PathBuf,
        data_dir: PathBuf,
        socket_dir: PathBuf,
        port: u16,
        hba_file: PathBuf,
    },
    DropRole(AdminRecord, String),
    DropDatabase(AdminRecord, String),
    DropExtension(AdminRecord, String, String),
    RestorePassword(AdminRecord, String, Option<String>),
    RestoreOwner(AdminRecord, String, String),
}

fn admin_record(a: &Admin) -> AdminRecord {
    AdminRecord {
        conn: Conn::from(a.params()),
        bindir: a.tools().bindir.clone(),
    }
}

fn admin_of(r: &AdminRecord) -> Result<Admin> {
    Ok(Admin::new(r.conn.params(), PgTools::in_dir(&r.bindir)?))
}

impl ServerStep {
    fn of(undo: &Undo) -> ServerStep {
        match undo {
            Undo::Cluster(c) => match &c.init {
                ClusterInit::Debian { version, name } => ServerStep::ClusterDebian {
                    version: *version,
                    name: name.clone(),
                    hba_file: c.hba_file.clone(),
                },
                ClusterInit::Initdb {
                    bindir,
                    data_dir,
                    socket_dir,
                    port,
                } => ServerStep::ClusterInitdb {
                    bindir: bindir.clone(),
                    data_dir: data_dir.clone(),
                    socket_dir: socket_dir.clone(),
                    port: *port,
                    hba_file: c.hba_file.clone(),
                },
            },
            Undo::DropRole(a, r) => ServerStep::DropRole(admin_record(a), r.clone()),
            Undo::DropDatabase(a, d) => ServerStep::DropDatabase(admin_record(a), d.clone()),
            Undo::DropExtension(a, d, e) => {
                ServerStep::DropExtension(admin_record(a), d.clone(), e.clone())
            }
            Undo::RestorePassword(a, r, h) => {
                ServerStep::RestorePassword(admin_record(a), r.clone(), h.clone())
            }
            Undo::RestoreOwner(a, d, o) => {
                ServerStep::RestoreOwner(admin_record(a), d.clone(), o.clone())
            }
        }
    }

    fn undo(&self) -> Result<Undo> {
        Ok(match self {
            ServerStep::ClusterDebian {
                version,
                name,
                hba_file,
            } => Undo::Cluster(InitializedCluster {
                init: ClusterInit::Debian {
                    version: *version,
                    name: name.clone(),
                },
                hba_file: hba_file.clone(),
            }),
            ServerStep::ClusterInitdb {
                bindir,
                data_dir,
                socket_dir,
                port,
                hba_file,
            } => Undo::Cluster(InitializedCluster {
                init: ClusterInit::Initdb {
                    bindir: bindir.clone(),
                    data_dir: data_dir.clone(),
                    socket_dir: socket_dir.clone(),
                    port: *port,
                },
                hba_file: hba_file.clone(),
            }),
            ServerStep::DropRole(a, r) => Undo::DropRole(admin_of(a)?, r.clone()),
            ServerStep::DropDatabase(a, d) => Undo::DropDatabase(admin_of(a)?, d.clone()),
            ServerStep::DropExtension(a, d, e) => {
                Undo::DropExtension(admin_of(a)?, d.clone(), e.clone())
            }
            ServerStep::RestorePassword(a, r, h) => {
                Undo::RestorePassword(admin_of(a)?, r.clone(), h.clone())
            }
            ServerStep::RestoreOwner(a, d, o) => {
                Undo::RestoreOwner(admin_of(a)?, d.clone(), o.clone())
            }
        })
    }
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

    /// Write the record: temporary file, fsync, rename, fsync of the directory.
    fn persist(&self) -> Result<()> {
        let path = self.dir.join(JOURNAL);
        let temp = self.dir.join(format!(".{JOURNAL}.tmp"));
        let text = serde_json::to_vec_pretty(&self.record)
            .map_err(|e| Error::failed(format!("encode the restore journal: {e}")))?;
        let written = (|| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temp)?;
            file.write_all(&text)?;
            file.sync_all()?;
            std::fs::rename(&temp, &path)?;
            File::open(&self.dir)?.sync_all()
        })();
        written.context(|| format!("write the restore journal {}", path.display()))
    }

    /// Keep every file the plan will replace, and note what it creates (plan
    /// paths are relative to the install root); written before the plan is applied.
    pub fn keep_files(&mut self, plan: &FilesPlan, root: &Path) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        for dir in plan.missing_parents() {
            self.record.created_dirs.push(root.join(dir));
        }
        for entry in plan.entries() {
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
        let mut done = Vec::new();
        let mut remains = Vec::new();
        let kept_dir = self.dir.join(KEPT);
        while let Some(r) = self.record.rewrites.pop() {
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
                Ok(()) => done.push(format!("restored {}", r.file.display())),
                Err(e) => {
                    remains.push(format!(
                        "{} (its previous content is in {}: {e})",
                        r.file.display(),
                        kept_dir.join(&r.kept).display()
                    ));
                    self.record.rewrites.insert(0, r);
                    break;
                }
            }
            let _ = self.persist();
        }
        let patience = Patience::from_now();
        let mut still_filled = Vec::new();
        while let Some(conn) = self.record.filled.pop() {
            let params = conn.params();
            let reached = patience.retry(|| pg::connect(&params).map(drop));
            match reached.and_then(|()| empty_database(&params)) {
                Ok(()) => done.push(format!("emptied database '{}'", params.database)),
                Err(e) => {
                    remains.push(format!(
                        "database '{}' still holds restored objects ({e})",
                        params.database
                    ));
                    still_filled.push(conn);
                }
            }
            let _ = self.persist();
        }
        self.record.filled = still_filled;
        let mut undo = Vec::new();
        for step in &self.record.server {
            match step.undo() {
                Ok(u) => undo.push(u),
                Err(e) => remains.push(format!("a server change ({e})")),
            }
        }
        let (server_done, server_remains) = provisioning::rollback(&mut undo, &patience, log);
        if server_remains.is_empty() {
            self.record.server.clear();
        }
        done.extend(server_done);
        remains.extend(server_remains);
        let _ = self.persist();
        let (mut put_back_files, mut removed) = (0, 0);
        let mut files_left = Vec::new();
        while let Some(f) = self.record.files.pop() {
            match &f.kept {
                Some(k) => {
                    let kept = kept_dir.join(k);
                    // Already put back by a rollback that was itself interrupted.
                    if !kept.exists() && std::fs::symlink_metadata(&f.path).is_ok() {
                        put_back_files += 1;
                        continue;
                    }
                    let _ =
                        std::fs::remove_file(&f.path).or_else(|_| std::fs::remove_dir_all(&f.path));
                    match put_back(&kept, &f.path) {
                        Ok(()) => put_back_files += 1,
                        Err(e) => {
                            remains.push(format!(
                                "{} (kept copy {}: {e})",
                                f.path.display(),
                                kept.display()
                            ));
                            files_left.push(f);
                        }
                    }
                }
                None => {
                    let _ =
                        std::fs::remove_file(&f.path).or_else(|_| std::fs::remove_dir_all(&f.path));
                    removed += 1;
                }
            }
        }
        files_left.reverse();
        self.record.files = files_left;
        let mut dirs_left = Vec::new();
        while let Some(dir) = self.record.created_dirs.pop() {
            if dir.exists() && std::fs::remove_dir(&dir).is_err() {
                remains.push(format!("directory {} (not empty)", dir.display()));
                dirs_left.push(dir);
            }
        }
        dirs_left.reverse();
        self.record.created_dirs = dirs_left;
        for d in &self.record.dir_modes {
            let _ = std::os::unix::fs::chown(&d.path, Some(d.uid), Some(d.gid));
            if let Err(e) =
                std::fs::set_permissions(&d.path, std::fs::Permissions::from_mode(d.mode))
            {
                remains.push(format!("mode of {} ({e})", d.path.display()));
            }
        }
        if put_back_files + removed > 0 {
            done.push(format!(
                "put back {} and removed {} new",
                crate::log::count(put_back_files, "file", "files"),
                crate::log::count(removed, "file", "files")
            ));
        }
        let mut line = if done.is_empty() {
            "nothing had been changed".to_string()
        } else {
            format!("rolled back: {}", done.join(", "))
        };
        if remains.is_empty() {
            line.push_str("; nothing remains changed");
            if let Err(e) = remove_journal(&self.dir) {
                line.push_str(&format!(" (the journal {} stays: {e})", self.dir.display()));
            }
        } else {
            line.push_str(&format!(
                "; REMAINS CHANGED: {}; the journal {} keeps what remains, and the next restore tries again",
                remains.join("; "),
                self.dir.display()
            ));
            let _ = self.persist();
        }
        log.line(&line);
        line
    }
}

/// `<journal dir>.completed`: the last restore of the install root that completed.
fn completed_note(dir: &Path) -> PathBuf {
    let mut name = dir.as_os_str().to_os_string();
    name.push(".completed");
    PathBuf::from(name)
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

/// Drop what the restoring role created in a database that was empty before,
/// after ending the sessions a killed run left there.
pub(crate) fn empty_database(params: &ConnParams) -> Result<()> {
    let mut client = pg::connect(params)?;
    pg::conn::end_orphaned_sessions(&mut client)?;
    client
        .batch_execute("DROP OWNED BY CURRENT_USER CASCADE")
        .map_err(|e| Error::postgres(pg::error_text(&e)))?;
    if let Some(object) = pg::inspect::database_is_empty(&mut client)? {
        return Err(Error::failed(format!("{object} is left")));
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        std::fs::create_dir_all(dir).context(|| format!("create {}", dir.display()))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .context(|| format!("make {} private", dir.display()))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .context(|| format!("sync directory {}", dir.display()))
}

/// Remove the journal: first its record (the commit point), then the rest.
fn remove_journal(dir: &Path) -> Result<()> {
    match std::fs::remove_file(dir.join(JOURNAL)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::io_path("remove", &dir.join(JOURNAL), e))
        }
        _ => {}
    }
    sync_dir(dir)?;
    std::fs::remove_dir_all(dir).context(|| format!("remove {}", dir.display()))?;
    if let Some(parent) = dir.parent() {
        let _ = sync_dir(parent);
    }
    Ok(())
}

/// `cp -a --no-dereference`: content, mode, owner, times and links as they are.
pub(crate) fn copy_preserving(from: &Path, to: &Path) -> std::result::Result<(), String> {
    let out = crate::child::command("cp")
        .arg("-a")
        .arg("--no-dereference")
        .arg(from)
        .arg(to)
        .output()
        .map_err(|e| format!("cannot run cp: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Put a kept file back at `path`: a rename on the same filesystem, else a
/// copy (the kept one stays until the journal is removed).
fn put_back(kept: &Path, path: &Path) -> std::result::Result<(), String> {
    match std::fs::rename(kept, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
            let _ = std::fs::remove_file(path);
            copy_preserving(kept, path)?;
            let _ = std::fs::remove_file(kept);
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}
