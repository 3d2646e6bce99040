//! `holdfast repo restore --physical`: every check before the first write
//! (empty data directory, a target inside the window, the WAL the backup
//! needs, server binaries of the backup's major, free space, an empty place
//! for each tablespace), then the files, the WAL recovery asks for first
//! (read ahead into the spool with the archive's listing), the recovery
//! settings and the ownership, then the tablespaces and the data directory
//! appear at once (renames of the restored trees, the data directory last).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::environment;
use super::target::{self, Target};
use crate::log::Log;
use crate::ops::wal::fetch::{read_into_spool, with_following, ArchiveListing, DEFAULT_AHEAD};
use crate::pg::basebackup::{BaseBackupInfo, Tablespace};
use crate::profile::Environment;
use crate::repo::physical::{self, BaseBackup, INFO_MEMBER, PGDATA_MEMBER, TABLESPACES_MEMBER};
use crate::repo::{wal as stored_wal, Repo, RestorePart};
use crate::wal::{Spool, WalName};
use crate::{Error, IoContext, Password, Result};

/// What to restore, where, and how the restored server reaches the archive.
#[derive(Debug, Clone)]
pub struct PhysicalRestoreRequest {
    pub target: Target,
    pub pgdata: PathBuf,
    /// The port the server starts on (the data directory's own otherwise).
    pub port: Option<u16>,
    /// Stop at the target and stay paused instead of promoting.
    pub pause: bool,
    /// This program, for restore_command.
    pub holdfast: PathBuf,
    /// The repository as restore_command names it (no secret in it).
    pub location: String,
    /// A REST server's password and private CA: written into the spool for
    /// restore_command (`--rest-password-file`, `--cacert`).
    pub rest_password: Option<Password>,
    pub rest_cacert: Option<PathBuf>,
    /// An S3 location's keys as a credentials file: written into the spool
    /// for restore_command (`--s3-credentials-file`).
    pub s3_credentials: Option<Password>,
    /// Written 0600 for the server's user: restore_command reads it from there.
    pub password: Password,
    /// The environment whose files are restored as they were at the target
    /// (by [`environment::restore`], once recovered): checked here, before
    /// anything is written, that the application is stopped and that a
    /// snapshot holds the files.
    pub environment: Option<Environment>,
    /// Where tablespaces go (name or oid, directory); the others go where
    /// the backed-up server had them.
    pub tablespace_map: Vec<(String, PathBuf)>,
}

/// A restored data directory, configured for recovery and not yet started.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub backup: BaseBackup,
    pub info: BaseBackupInfo,
    pub pgdata: PathBuf,
    /// The spool beside the data directory: read-ahead, password file, server log.
    pub spool: PathBuf,
    pub bindir: PathBuf,
    pub owner: (u32, u32),
}

/// What the checks found: the backup to restore and where everything goes.
struct Checked {
    backup: BaseBackup,
    wal: std::collections::BTreeMap<WalName, stored_wal::StoredWal>,
    /// Each tablespace with the directory it goes to.
    tablespaces: Vec<(Tablespace, PathBuf)>,
    bindir: PathBuf,
    /// The data directory's parent.
    parent: PathBuf,
    owner: (u32, u32),
}

/// The restored trees, still beside their places.
struct RestoredTrees {
    /// Holds the data directory (`pgdata/`) and `physical.json`.
    work: tempfile::TempDir,
    info: BaseBackupInfo,
    /// Per tablespace of [`Checked::tablespaces`]: a directory beside its
    /// place holding it (`files/`).
    tablespaces: Vec<tempfile::TempDir>,
}

impl RestoredTrees {
    fn data(&self) -> PathBuf {
        self.work.path().join(PGDATA_MEMBER)
    }
}

/// Check everything, then restore the base backup for `req.target` into
/// `req.pgdata` with the recovery settings written.
pub fn prepare(repo: &mut Repo, req: &PhysicalRestoreRequest, log: &Log) -> Result<Prepared> {
    let checked = check(repo, req)?;
    let Checked {
        backup,
        wal,
        tablespaces,
        parent,
        owner,
        ..
    } = &checked;
    log.output(&format!(
        "Restoring base backup {} (ended {}, WAL from {}) into {}",
        backup.snapshot.short_id(),
        backup.end.timestamp().strftime("%Y-%m-%d %H:%M:%S+00"),
        backup.start_segment,
        req.pgdata.display()
    ));
    let trees = restore_trees(repo, &checked, req, log)?;
    let data = &trees.data();
    let spool = spool_of(&req.pgdata);
    let spool_was_there = spool.exists();
    let mut moved: Vec<PathBuf> = Vec::new();
    let placed = (|| -> Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&spool)
            .context(|| format!("create {}", spool.display()))?;
        let password_file = spool.join("repository-password");
        crate::durable::replace(
            &password_file,
            format!("{}\n", req.password.expose()).as_bytes(),
            0o600,
            Some(*owner),
        )?;
        let remote = remote_access(req, &spool, *owner)?;
        write_recovery_settings(data, req, &spool, &password_file, &remote)?;
        let mut roots = vec![data.clone()];
        roots.extend(trees.tablespaces.iter().map(|d| d.path().join("files")));
        for root in &roots {
            std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700))
                .context(|| format!("chmod {}", root.display()))?;
            chown_tree(root, *owner)?;
        }
        // The trees are renamed into place only once on disk (and the
        // server's own sync at start then finds nothing to write); the disk
        // writes them while the first segments are read and decompressed.
        std::thread::scope(|scope| {
            let syncing =
                scope.spawn(|| roots.iter().try_for_each(|t| crate::durable::sync_tree(t)));
            let read = read_ahead_for_recovery(repo, wal, backup, &req.target, &spool);
            let synced = syncing.join().expect("the syncing thread panicked");
            read.and(synced)
        })?;
        chown_tree(&spool, *owner)?;
        for ((_, dest), dir) in tablespaces.iter().zip(&trees.tablespaces) {
            move_into_place(&dir.path().join("files"), dest)?;
            moved.push(dest.clone());
        }
        move_into_place(data, &req.pgdata)
    })();
    if let Err(e) = placed {
        // The data directory is still in the work directory, removed with
        // it; tablespaces already moved go back to empty; the spool we
        // made (its secrets, the read-ahead) goes too.
        for dest in &moved {
            let _ = std::fs::remove_dir_all(dest);
            let _ = std::fs::DirBuilder::new().mode(0o700).create(dest);
        }
        if !spool_was_there {
            let _ = std::fs::remove_dir_all(&spool);
        }
        return Err(e);
    }
    for dir in
        std::iter::once(parent.as_path()).chain(tablespaces.iter().filter_map(|(_, d)| d.parent()))
    {
        crate::durable::sync_dir(dir)?;
    }
    Ok(Prepared {
        backup: checked.backup.clone(),
        info: trees.info,
        pgdata: req.pgdata.clone(),
        spool,
        bindir: checked.bindir.clone(),
        owner: *owner,
    })
}

/// Everything checked before the first write: an empty data directory, a
/// base backup for the target, the application stopped and its files at
/// hand (with a profile), the backup's WAL, a server of its major, the
/// tablespaces' places, free space, the server's user.
fn check(repo: &mut Repo, req: &PhysicalRestoreRequest) -> Result<Checked> {
    refuse_non_empty(&req.pgdata)?;
    let snapshots = repo.snapshots()?;
    let backups = physical::list(&snapshots);
    let wal = stored_wal::stored(&snapshots);
    let backup = target::choose(&backups, &wal, &req.target)?.clone();
    if let Some(env) = &req.environment {
        if let Some(message) = env.application_running() {
            return Err(Error::usage(message));
        }
        crate::ops::journal::prepare_state_dir()?;
        // Recovery reaches the target or later, never before the backup's end.
        let earliest = match &req.target {
            Target::Time(t) => *t,
            _ => backup.end.timestamp(),
        };
        let profile = &env.profile.name;
        environment::choose(
            &environment::candidates(&snapshots, profile),
            profile,
            earliest,
        )?;
    }
    let missing = target::missing_for_consistency(&backup, &wal);
    if !missing.is_empty() {
        return Err(Error::usage(format!(
            "base backup {} cannot be recovered: the archive lacks {} (run 'holdfast wal check'); nothing was written",
            backup.snapshot.short_id(),
            missing.join(", ")
        )));
    }
    let install = pgsandbox::installation(Some(backup.pg_major)).map_err(|_| {
        Error::usage(format!(
            "base backup {} is of PostgreSQL {}, and no PostgreSQL {} server is installed \
             (the server must be of the backup's major version); nothing was written",
            backup.snapshot.short_id(),
            backup.pg_major,
            backup.pg_major
        ))
    })?;
    let parent = parent_of(&req.pgdata)?;
    let tablespaces = tablespace_places(repo, &backup, &req.tablespace_map, &req.pgdata)?;
    require_space(&backup, req, &parent, &tablespaces)?;
    let owner = server_owner(&req.pgdata, &parent)?;
    Ok(Checked {
        backup,
        wal,
        tablespaces,
        bindir: install.bindir,
        parent,
        owner,
    })
}

/// Restore the data directory, the manifest and each tablespace beside
/// their places (same file systems: they are renamed into place), each
/// file's writeback started as it is written; then the empty directories,
/// the tablespaces' links, and no stale server files.
fn restore_trees(
    repo: &mut Repo,
    checked: &Checked,
    req: &PhysicalRestoreRequest,
    log: &Log,
) -> Result<RestoredTrees> {
    let work = restore_dir_beside(&req.pgdata)?;
    let mut parts = vec![
        RestorePart {
            under: PGDATA_MEMBER.into(),
            dest: work.path().join(PGDATA_MEMBER),
            writeback: true,
        },
        RestorePart {
            under: INFO_MEMBER.into(),
            dest: work.path().join(INFO_MEMBER),
            writeback: false,
        },
    ];
    let mut tablespaces = Vec::new();
    for (t, dest) in &checked.tablespaces {
        log.output(&format!(
            "Restoring tablespace {} into {}",
            t.name,
            dest.display()
        ));
        let dir = restore_dir_beside(dest)?;
        parts.push(RestorePart {
            under: Path::new(TABLESPACES_MEMBER).join(t.oid.to_string()),
            dest: dir.path().join("files"),
            writeback: true,
        });
        tablespaces.push(dir);
    }
    repo.restore_parts(&checked.backup.snapshot.id, &parts)?;
    let info: BaseBackupInfo = serde_json::from_slice(
        &std::fs::read(work.path().join(INFO_MEMBER))
            .context(|| format!("read {INFO_MEMBER} of the base backup"))?,
    )
    .map_err(|e| Error::invalid(format!("{INFO_MEMBER}: {e}")))?;
    let data = work.path().join(PGDATA_MEMBER);
    for dir in &info.directories {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data.join(dir))
            .context(|| format!("create {dir}"))?;
    }
    for stale in ["postmaster.pid", "postmaster.opts", "standby.signal"] {
        let _ = std::fs::remove_file(data.join(stale));
    }
    for ((t, dest), dir) in checked.tablespaces.iter().zip(&tablespaces) {
        link_tablespace(&data, t, &dir.path().join("files"), dest)?;
    }
    Ok(RestoredTrees {
        work,
        info,
        tablespaces,
    })
}

/// Room on each file system the restore writes to: beside the data
/// directory for it, the segments read ahead and some slack; beside each
/// tablespace for its files (as the backup measured them). Places on one
/// file system add up.
fn require_space(
    backup: &BaseBackup,
    req: &PhysicalRestoreRequest,
    parent: &Path,
    tablespaces: &[(Tablespace, PathBuf)],
) -> Result<()> {
    const SLACK: u64 = 64 << 20;
    let in_tablespaces: u64 = tablespaces.iter().map(|(t, _)| t.bytes).sum();
    // (device, a directory on it, bytes needed there, for what)
    let mut needs: Vec<(u64, PathBuf, u64, Vec<String>)> = Vec::new();
    let mut add = |dir: &Path, bytes: u64, what: String| -> Result<()> {
        let device = std::fs::metadata(dir)
            .context(|| format!("stat {}", dir.display()))?
            .dev();
        match needs.iter_mut().find(|n| n.0 == device) {
            Some(n) => {
                n.2 += bytes;
                n.3.push(what);
            }
            None => needs.push((device, dir.to_path_buf(), bytes, vec![what])),
        }
        Ok(())
    };
    add(
        parent,
        backup.snapshot.source_bytes.saturating_sub(in_tablespaces)
            + (DEFAULT_AHEAD as u64 + 1) * backup.segment_size()
            + SLACK,
        req.pgdata.display().to_string(),
    )?;
    for (t, dest) in tablespaces {
        let dir = dest.parent().unwrap_or(Path::new("/"));
        add(dir, t.bytes + SLACK, format!("tablespace {}", t.name))?;
    }
    for (_, dir, needed, what) in needs {
        crate::ops::workdir::require_free_space(&dir, needed, |free| {
            format!(
                "not enough free space for {} on the file system of {}: the base backup needs about {} MiB there and {} MiB are free; nothing was written",
                what.join(" and "),
                dir.display(),
                needed >> 20,
                free >> 20
            )
        })?;
    }
    Ok(())
}

/// Complete the restored tablespace `t` in `files` (its empty directories)
/// and link it from the data directory at `dest`, where it will be.
fn link_tablespace(data: &Path, t: &Tablespace, files: &Path, dest: &Path) -> Result<()> {
    for sub in std::iter::once("").chain(t.directories.iter().map(String::as_str)) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(files.join(sub))
            .context(|| format!("create {sub} of tablespace {}", t.name))?;
    }
    let link = data.join("pg_tblspc").join(t.oid.to_string());
    std::os::unix::fs::symlink(dest, &link)
        .context(|| format!("link {} to {}", link.display(), dest.display()))
}

/// The archive listing in a restored spool (see [`ArchiveListing`]).
pub const LISTING: &str = "archive-listing";

/// What the recovery asks for first, read now while the repository is open
/// (each `wal fetch` that opens it pays a key derivation): every history
/// file and the backup's first segments up to where recovery stops; and the
/// archive's listing, so that probes for history files that do not exist
/// need no repository.
fn read_ahead_for_recovery(
    repo: &mut Repo,
    wal: &std::collections::BTreeMap<WalName, stored_wal::StoredWal>,
    backup: &BaseBackup,
    target: &Target,
    spool_dir: &Path,
) -> Result<()> {
    let spool = Spool::open(spool_dir)?;
    ArchiveListing::write(&spool_dir.join(LISTING), wal)?;
    let mut names: Vec<WalName> = wal.keys().filter(|n| n.is_probe()).copied().collect();
    let first = WalName::parse(&backup.start_segment)?;
    let mut segments = with_following(wal, &spool, first, DEFAULT_AHEAD);
    segments.truncate(needed_before_target(
        &segments,
        wal,
        target,
        backup.segment_size(),
    ));
    names.extend(segments);
    read_into_spool(repo, wal, &spool, &names)
}

/// How many of `segments` (consecutive, oldest first) recovery to `target`
/// can need. A time target is reached in a segment archived after it (the
/// commit that ends recovery was written before its segment was pushed):
/// past the first push at or after the target, the read-ahead stops (a
/// later segment recovery asks for is fetched then). An LSN target stops in
/// the segment holding it. Read-ahead only: a segment left out is fetched
/// when asked for.
fn needed_before_target(
    segments: &[WalName],
    wal: &std::collections::BTreeMap<WalName, stored_wal::StoredWal>,
    target: &Target,
    segment_size: u64,
) -> usize {
    match target {
        Target::Time(at) => {
            let pushed_after = segments
                .iter()
                .filter_map(|n| wal.get(n))
                .map(|w| w.time.timestamp())
                .find(|t| t >= at);
            match pushed_after {
                Some(first) => segments
                    .iter()
                    .take_while(|n| wal.get(n).is_some_and(|w| w.time.timestamp() <= first))
                    .count(),
                None => segments.len(),
            }
        }
        Target::Lsn(lsn) => {
            let last = crate::wal::Segment::of_lsn(0, *lsn, segment_size.max(1));
            segments
                .iter()
                .take_while(|n| match n {
                    WalName::Segment(s) => (s.log, s.seg) <= (last.log, last.seg),
                    _ => true,
                })
                .count()
        }
        Target::Latest | Target::Xid(_) | Target::Name(_) => segments.len(),
    }
}

/// The spool of a restored data directory (fetch's read-ahead and the
/// password file): `<pgdata>.holdfast-wal`, as `holdfast wal` defaults to.
pub fn spool_of(pgdata: &Path) -> PathBuf {
    let name = pgdata
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    pgdata.with_file_name(format!("{name}.holdfast-wal"))
}

fn refuse_non_empty(pgdata: &Path) -> Result<()> {
    if is_empty_or_absent(pgdata)? {
        return Ok(());
    }
    Err(Error::usage(format!(
        "{} is not empty; restore into a new or empty directory; nothing was written",
        pgdata.display()
    )))
}

fn is_empty_or_absent(dir: &Path) -> Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut list) => Ok(list.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(Error::io_path("read", dir, e)),
    }
}

/// A private directory beside `target` (same file system: the restored
/// tree is renamed into place).
fn restore_dir_beside(target: &Path) -> Result<tempfile::TempDir> {
    let parent = parent_of(target)?;
    tempfile::Builder::new()
        .prefix(".holdfast-restore.")
        .tempdir_in(&parent)
        .context(|| format!("create a directory in {}", parent.display()))
}

/// Rename the restored tree `from` to `to`, which is empty or absent
/// (rename(2) replaces only what does not exist).
fn move_into_place(from: &Path, to: &Path) -> Result<()> {
    if to.exists() {
        std::fs::remove_dir(to).context(|| format!("replace {}", to.display()))?;
    }
    std::fs::rename(from, to).context(|| format!("move the restored files to {}", to.display()))
}

/// Where each tablespace of `backup` is restored: the `map`'s directory
/// for its name or oid, else where the backed-up server had it. Each must
/// be absolute, empty or absent, with an existing parent, and apart from
/// the data directory and the others.
fn tablespace_places(
    repo: &mut Repo,
    backup: &BaseBackup,
    map: &[(String, PathBuf)],
    pgdata: &Path,
) -> Result<Vec<(Tablespace, PathBuf)>> {
    if backup.tablespaces == 0 {
        if let Some((name, _)) = map.first() {
            return Err(Error::usage(format!(
                "base backup {} has no tablespaces outside its data directory, so --tablespace-map {name}=… does not apply; leave it out",
                backup.snapshot.short_id()
            )));
        }
        return Ok(Vec::new());
    }
    let info = physical::read_info(repo, &backup.snapshot.id)?;
    for (name, _) in map {
        if !info
            .tablespaces
            .iter()
            .any(|t| &t.name == name || &t.oid.to_string() == name)
        {
            let known: Vec<&str> = info.tablespaces.iter().map(|t| t.name.as_str()).collect();
            return Err(Error::usage(format!(
                "base backup {} has no tablespace '{name}' (it has {}); fix --tablespace-map",
                backup.snapshot.short_id(),
                known.join(", ")
            )));
        }
    }
    let pgdata = std::path::absolute(pgdata).context(|| format!("resolve {}", pgdata.display()))?;
    let mut places: Vec<(Tablespace, PathBuf)> = Vec::new();
    for t in &info.tablespaces {
        let mapped = map
            .iter()
            .find(|(n, _)| n == &t.name || n == &t.oid.to_string());
        let dest = mapped
            .map(|(_, d)| d.clone())
            .unwrap_or_else(|| PathBuf::from(&t.location));
        let how = if mapped.is_some() {
            "given by --tablespace-map"
        } else {
            "where the backed-up server had it"
        };
        if !dest.is_absolute() {
            return Err(Error::usage(format!(
                "tablespace {} would go to {}, which is not an absolute path; give --tablespace-map {}=/absolute/dir",
                t.name,
                dest.display(),
                t.name
            )));
        }
        if !is_empty_or_absent(&dest)? {
            return Err(Error::usage(format!(
                "tablespace {} would go to {} ({how}), which is not empty; give an empty or new directory with --tablespace-map {}=DIR; nothing was written",
                t.name,
                dest.display(),
                t.name
            )));
        }
        let overlaps = |a: &Path, b: &Path| a.starts_with(b) || b.starts_with(a);
        if overlaps(&dest, &pgdata) || places.iter().any(|(_, d)| overlaps(&dest, d)) {
            return Err(Error::usage(format!(
                "tablespace {} would go to {}, inside the data directory or another tablespace; give it a directory of its own with --tablespace-map {}=DIR",
                t.name,
                dest.display(),
                t.name
            )));
        }
        if !dest.parent().is_some_and(Path::is_dir) {
            return Err(Error::usage(format!(
                "tablespace {} would go to {}, whose parent does not exist; create it or give --tablespace-map {}=DIR",
                t.name,
                dest.display(),
                t.name
            )));
        }
        places.push((t.clone(), dest));
    }
    Ok(places)
}

fn parent_of(pgdata: &Path) -> Result<PathBuf> {
    let parent = pgdata
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(Error::usage(format!(
            "{} does not exist; create the parent of --pgdata first",
            parent.display()
        )));
    }
    Ok(parent.to_path_buf())
}

/// Who runs the restored server: the owner of the (empty) data directory,
/// else of its parent; `postgres` instead of root, which the server refuses.
fn server_owner(pgdata: &Path, parent: &Path) -> Result<(u32, u32)> {
    let meta = std::fs::metadata(pgdata)
        .or_else(|_| std::fs::metadata(parent))
        .context(|| format!("stat {}", parent.display()))?;
    if meta.uid() != 0 {
        return Ok((meta.uid(), meta.gid()));
    }
    let user = pgsandbox::lookup_user("postgres").ok_or_else(|| {
        Error::usage(
            "the data directory would belong to root, which PostgreSQL refuses, and there is no \
             'postgres' user: create the data directory owned by the server's user",
        )
    })?;
    Ok((user.uid, user.gid))
}

fn chown_tree(root: &Path, (uid, gid): (u32, u32)) -> Result<()> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        std::os::unix::fs::lchown(&p, Some(uid), Some(gid))
            .context(|| format!("chown {}", p.display()))?;
        if p.is_dir() && !p.is_symlink() {
            for e in std::fs::read_dir(&p).context(|| format!("list {}", p.display()))? {
                stack.push(e.context(|| format!("list {}", p.display()))?.path());
            }
        }
    }
    Ok(())
}

/// The options that let restore_command reach a remote repository: a REST
/// server's password and private CA, an S3 location's keys, copied into
/// the spool (0600) for the server's user.
fn remote_access(req: &PhysicalRestoreRequest, spool: &Path, owner: (u32, u32)) -> Result<String> {
    let mut options = String::new();
    let mut keep = |name: &str, content: &[u8], option: &str| -> Result<()> {
        let file = spool.join(name);
        crate::durable::replace(&file, content, 0o600, Some(owner))?;
        options.push_str(&format!(
            " {option} {}",
            shell_word(&file.to_string_lossy())
        ));
        Ok(())
    };
    if let Some(keys) = &req.s3_credentials {
        keep(
            "s3-credentials",
            keys.expose().as_bytes(),
            "--s3-credentials-file",
        )?;
    }
    if let Some(password) = &req.rest_password {
        let line = format!("{}\n", password.expose());
        keep("rest-password", line.as_bytes(), "--rest-password-file")?;
    }
    if let Some(ca) = &req.rest_cacert {
        let pem = std::fs::read(ca).context(|| format!("read {}", ca.display()))?;
        keep("rest-ca.pem", &pem, "--cacert")?;
    }
    Ok(options)
}

/// A word for /bin/sh, in single quotes.
fn shell_word(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A value for postgresql.conf, in single quotes.
fn conf_value(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Append the recovery settings to postgresql.auto.conf (the last setting
/// wins) and create recovery.signal.
fn write_recovery_settings(
    data: &Path,
    req: &PhysicalRestoreRequest,
    spool: &Path,
    password_file: &Path,
    remote_access: &str,
) -> Result<()> {
    let restore_command = format!(
        "{} wal fetch %f %p --abort-on-error --archive-listing {} --repo {}{remote_access} --password-file {} --spool {}",
        shell_word(&req.holdfast.to_string_lossy()),
        shell_word(&spool.join(LISTING).to_string_lossy()),
        shell_word(&req.location),
        shell_word(&password_file.to_string_lossy()),
        shell_word(&spool.to_string_lossy()),
    );
    let mut text = String::from("\n# Written by holdfast repo restore --physical\n");
    text.push_str(&format!(
        "restore_command = {}\n",
        conf_value(&restore_command)
    ));
    if let Some((name, value)) = req.target.setting() {
        text.push_str(&format!("{name} = {}\n", conf_value(&value)));
    }
    text.push_str("recovery_target_timeline = 'latest'\n");
    if let Some(port) = req.port {
        text.push_str(&format!("port = {port}\n"));
    }
    let action = if req.pause { "pause" } else { "promote" };
    text.push_str(&format!("recovery_target_action = '{action}'\n"));
    let auto = data.join("postgresql.auto.conf");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&auto)
        .context(|| format!("open {}", auto.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .context(|| format!("write {}", auto.display()))?;
    crate::durable::replace(&data.join("recovery.signal"), b"", 0o600, None)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Segments 0x10.. of timeline 1, each pushed at the given second past noon.
    fn archive(pushed: &[u32]) -> (Vec<WalName>, BTreeMap<WalName, stored_wal::StoredWal>) {
        let mut names = Vec::new();
        let mut wal = BTreeMap::new();
        for (i, second) in pushed.iter().enumerate() {
            let name = WalName::parse(&format!("0000000100000000{:08X}", 0x10 + i)).unwrap();
            let time = target::parse_time(&format!("2026-12-07 12:00:{second:02}+00"))
                .unwrap()
                .to_zoned(crate::repo::jiff::tz::TimeZone::UTC);
            wal.insert(
                name,
                stored_wal::StoredWal {
                    snapshot: format!("s{i}"),
                    sha256: String::new(),
                    time,
                },
            );
            names.push(name);
        }
        (names, wal)
    }

    fn at(second: u32) -> Target {
        Target::time(&format!("2026-12-07 12:00:{second:02}+00")).unwrap()
    }

    #[test]
    fn read_ahead_stops_past_the_first_push_after_a_target_time() {
        // Two segments pushed together at :20, then one each at :30, :40.
        let (names, wal) = archive(&[10, 20, 20, 30, 40]);
        let size = 16 << 20;
        // Target :15: the batch pushed at :20 may hold it, nothing later.
        assert_eq!(needed_before_target(&names, &wal, &at(15), size), 3);
        assert_eq!(needed_before_target(&names, &wal, &at(20), size), 3);
        assert_eq!(needed_before_target(&names, &wal, &at(25), size), 4);
        assert_eq!(needed_before_target(&names, &wal, &at(5), size), 1);
        // After the last push: all of them (recovery fetches what follows).
        assert_eq!(needed_before_target(&names, &wal, &at(50), size), 5);
        // An LSN target stops in the segment holding it.
        let lsn = 0x12u64 * size + 100;
        assert_eq!(
            needed_before_target(&names, &wal, &Target::Lsn(lsn), size),
            3
        );
        for whole in [Target::Latest, Target::Xid(7), Target::Name("n".into())] {
            assert_eq!(needed_before_target(&names, &wal, &whole, size), 5);
        }
    }
}
