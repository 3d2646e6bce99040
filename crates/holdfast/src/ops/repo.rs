//! Repository operations: back an environment up into a snapshot, and turn a
//! snapshot back into an archive (to restore it, or to hand it to engine-backup).
//!
//! A snapshot holds the members of an uncompressed holdfast archive. Backup
//! therefore runs the archive backup (same checks, roles, manifest,
//! notification) with its members written as files of a private staging
//! directory instead of a tar ([`BackupOutput::Directory`]), with every dump
//! an uncompressed custom-format `pg_dump -Z0` (one contiguous byte range
//! per table, so an unchanged table dedups), then stores that directory.
//! Restore materialises the archive again and hands it to the archive restore,
//! which has every pre-write check and the rollback journal.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::archive::manifest::MANIFEST_MEMBER;
use crate::archive::KnownDigests;
use crate::archive::{is_member_name, ArchiveWriter, Codec, DumpFormat, Manifest, WriterOptions};
use crate::log::Log;
pub use crate::ops::request::RepoBackupRequest;
use crate::ops::{BackupOutput, BackupRequest, DumpPlan, WorkDir};
use crate::repo::engine::SnapshotLabels;
use crate::repo::{FileChange, Repo, RestorePart, SnapshotInfo};
use crate::{Error, Result};

/// What a repository backup stored.
#[derive(Debug)]
pub struct RepoBackupOutcome {
    pub snapshot: SnapshotInfo,
    pub scopes: Vec<String>,
}

/// The dump plan for a repository: uncompressed, since compressed streams do
/// not deduplicate and the repository compresses anyway.
pub fn repository_dump_plan() -> DumpPlan {
    DumpPlan {
        format: DumpFormat::Custom,
        codec: Codec::None,
        pg_dump_compress: Some(0),
    }
}

/// Back the environment up into one snapshot of `repo`.
pub fn backup(repo: &mut Repo, req: &RepoBackupRequest, log: &Log) -> Result<RepoBackupOutcome> {
    let work = WorkDir::new(&req.tmpdir)?;
    // The members as files, never packed into a tar: the snapshot stores them.
    let staged = work.join("staged");
    let scopes = stage(req, &staged, work.path(), log)?;
    log.output(&format!(
        "Storing the backup in repository '{}'",
        repo.location()
    ));
    let labels = SnapshotLabels {
        profile: req.env.profile.name.clone(),
        host: req.env.fqdn(),
        scopes: scopes.clone(),
        time: None,
    };
    let snapshot = repo.backup_dir(&staged, &labels)?;
    log.line(&format!(
        "Snapshot {} stored: {} bytes read, {} bytes new ({} stored)",
        snapshot.id, snapshot.source_bytes, snapshot.added_bytes, snapshot.added_stored_bytes
    ));
    Ok(RepoBackupOutcome { snapshot, scopes })
}

/// Run the archive backup of `req` with its members written as files of the
/// new directory `staged` (what a snapshot stores); returns the scopes backed up.
pub(crate) fn stage(
    req: &RepoBackupRequest,
    staged: &Path,
    tmpdir: &Path,
    log: &Log,
) -> Result<Vec<String>> {
    let dumps: BTreeMap<String, DumpPlan> = req
        .env
        .profile
        .databases
        .iter()
        .map(|d| (d.scope.clone(), repository_dump_plan()))
        .collect();
    let archive_req = BackupRequest {
        env: req.env.clone(),
        scopes: req.scopes.clone(),
        file: staged.to_path_buf(),
        tmpdir: tmpdir.to_path_buf(),
        archive_codec: Codec::None,
        files_codec: Codec::None,
        compress_level: None,
        dumps,
        application_version: req.application_version.clone(),
        overwrite: false,
        threads: req.threads,
        role_passwords: req.role_passwords.clone(),
        // The repository encrypts what it stores.
        encrypt_to: None,
        output: BackupOutput::Directory,
    };
    Ok(crate::ops::backup::run(&archive_req, log)?.scopes)
}

/// Write `snapshot` as an archive at `dest` with `codec`, through the
/// archive writer (temporary name, fsync, rename). Every member is checked
/// against the snapshot's manifest before anything is written at `dest`.
pub fn export(
    repo: &mut Repo,
    snapshot: &str,
    dest: &Path,
    options: WriterOptions,
    tmpdir: &Path,
) -> Result<SnapshotInfo> {
    export_under(repo, snapshot, Path::new(""), dest, options, tmpdir)
}

/// As [`export`], of the archive members stored under `under` in the
/// snapshot (a base backup keeps its environment's there).
fn export_under(
    repo: &mut Repo,
    snapshot: &str,
    under: &Path,
    dest: &Path,
    options: WriterOptions,
    tmpdir: &Path,
) -> Result<SnapshotInfo> {
    let work = WorkDir::new(tmpdir)?;
    let members_dir = work.join("members");
    let (info, files) = repo.restore_files_under(snapshot, under, &members_dir)?;
    let not_ours = |what: String| {
        Error::invalid(format!(
            "snapshot {} {what}; it was not written by 'holdfast repo backup', nothing was written",
            info.short_id()
        ))
    };
    let mut members = Vec::new();
    for rel in &files {
        let name = rel.to_str().unwrap_or_default();
        if name == "sha256sum" || name == "md5sum" {
            // The writer computes the checksum file anew.
            continue;
        }
        if !is_member_name(name) {
            return Err(not_ours(format!(
                "holds '{}', which is not an archive member",
                rel.display()
            )));
        }
        members.push(name.to_string());
    }
    let manifest_path = members_dir.join(MANIFEST_MEMBER);
    let manifest_bytes =
        std::fs::read(&manifest_path).map_err(|_| not_ours(format!("has no {MANIFEST_MEMBER}")))?;
    let manifest = Manifest::parse(&manifest_bytes, MANIFEST_MEMBER)?;
    write_checked_archive(&members_dir, &members, &manifest, &info, dest, options)?;
    Ok(info)
}

/// Check the `members` restored in `members_dir` against `manifest`, then
/// write them as an archive at `dest`.
fn write_checked_archive(
    members_dir: &Path,
    members: &[String],
    manifest: &Manifest,
    info: &SnapshotInfo,
    dest: &Path,
    options: WriterOptions,
) -> Result<()> {
    manifest
        .verify_members(members_dir, &KnownDigests::default())
        .map_err(|e| {
            Error::invalid(format!(
                "snapshot {} does not match its manifest ({e}); run 'holdfast repo check --read-data'",
                info.short_id()
            ))
        })?;
    let mut writer = ArchiveWriter::create(dest, options)?;
    for name in members {
        writer.add_file(name, &members_dir.join(name))?;
    }
    writer.finish().map(drop)
}

/// As [`materialise_under`], without the database dumps: the snapshot's
/// files and metadata as an archive whose manifest lists only what it holds,
/// for a restore of scope `files` (which reads no dump, and a whole
/// environment's dumps can be gigabytes).
pub fn materialise_files_under(
    repo: &mut Repo,
    snapshot: &str,
    under: &Path,
    tmpdir: &Path,
) -> Result<MaterialisedArchive> {
    let snapshot = &repo.snapshot_info(snapshot)?;
    let root = snapshot
        .paths
        .first()
        .map(|p| Path::new(p).join(under))
        .ok_or_else(|| Error::invalid(format!("snapshot {} has no path", snapshot.short_id())))?;
    let manifest_in_snapshot = root.join(MANIFEST_MEMBER);
    let bytes = repo
        .read_file(&snapshot.id, &manifest_in_snapshot.to_string_lossy())?
        .ok_or_else(|| {
            Error::invalid(format!(
                "snapshot {} has no {MANIFEST_MEMBER}; it was not written by 'holdfast repo backup', nothing was written",
                snapshot.short_id()
            ))
        })?;
    let mut manifest = Manifest::parse(&bytes, MANIFEST_MEMBER)?;
    let dumps: Vec<String> = manifest
        .databases
        .iter()
        .map(|d| d.member.clone())
        .collect();
    let dump_scopes: Vec<String> = manifest.databases.iter().map(|d| d.scope.clone()).collect();
    manifest.members.retain(|m| !dumps.contains(&m.name));
    manifest.databases.clear();
    manifest.scopes.retain(|s| !dump_scopes.contains(s));
    let work = WorkDir::new(tmpdir)?;
    let members_dir = work.join("members");
    let mut members: Vec<String> = Vec::new();
    for m in &manifest.members {
        if !is_member_name(&m.name) {
            return Err(Error::invalid(format!(
                "snapshot {} lists '{}', which is not an archive member; nothing was written",
                snapshot.short_id(),
                m.name
            )));
        }
        members.push(m.name.clone());
    }
    let parts: Vec<RestorePart> = members
        .iter()
        .map(|name| RestorePart {
            under: under.join(name),
            dest: members_dir.join(name),
            writeback: false,
        })
        .collect();
    let (info, _) = repo.restore_parts(&snapshot.id, &parts)?;
    crate::durable::replace(
        &members_dir.join(MANIFEST_MEMBER),
        manifest.to_json().as_bytes(),
        0o600,
        None,
    )?;
    members.push(MANIFEST_MEMBER.to_string());
    let dest = work.join("snapshot.tar");
    write_checked_archive(
        &members_dir,
        &members,
        &manifest,
        &info,
        &dest,
        uncompressed(),
    )?;
    Ok(MaterialisedArchive {
        work,
        snapshot: info,
    })
}

/// An archive materialised from a snapshot in a private temporary directory,
/// removed when this is dropped.
pub struct MaterialisedArchive {
    work: WorkDir,
    pub snapshot: SnapshotInfo,
}

impl MaterialisedArchive {
    pub fn path(&self) -> PathBuf {
        self.work.join("snapshot.tar")
    }
}

/// Materialise `snapshot` as an uncompressed archive under `tmpdir`, for the
/// archive restore.
pub fn materialise(repo: &mut Repo, snapshot: &str, tmpdir: &Path) -> Result<MaterialisedArchive> {
    materialise_under(repo, snapshot, Path::new(""), tmpdir)
}

/// As [`materialise`], of the archive members stored under `under`.
pub fn materialise_under(
    repo: &mut Repo,
    snapshot: &str,
    under: &Path,
    tmpdir: &Path,
) -> Result<MaterialisedArchive> {
    let work = WorkDir::new(tmpdir)?;
    let snapshot = export_under(
        repo,
        snapshot,
        under,
        &work.join("snapshot.tar"),
        uncompressed(),
        work.path(),
    )?;
    Ok(MaterialisedArchive { work, snapshot })
}

/// How a materialised archive is written: uncompressed, for a restore on
/// this machine.
fn uncompressed() -> WriterOptions {
    WriterOptions {
        codec: Codec::None,
        level: None,
        threads: 1,
        overwrite: false,
    }
}

/// A table whose content differs between two snapshots' manifests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableChange {
    /// The database's scope (`db`, `dwhdb`).
    pub scope: String,
    /// `schema.name`.
    pub table: String,
    /// Rows in the older and the newer snapshot (`None`: not there).
    pub rows_before: Option<u64>,
    pub rows_after: Option<u64>,
}

/// What differs between two snapshots: files by content, and, when both are
/// holdfast snapshots, the tables whose checksums in the manifests differ.
#[derive(Debug)]
pub struct SnapshotDiff {
    pub older: SnapshotInfo,
    pub newer: SnapshotInfo,
    pub files: Vec<FileChange>,
    /// `None` when a snapshot has no holdfast manifest.
    pub tables: Option<Vec<TableChange>>,
}

/// Compare snapshots `a` and `b`.
pub fn diff(repo: &mut Repo, a: &str, b: &str) -> Result<SnapshotDiff> {
    let (older, newer, files) = repo.diff(a, b)?;
    let manifest = |repo: &mut Repo, s: &SnapshotInfo| -> Result<Option<Manifest>> {
        let Some(root) = s.paths.first() else {
            return Ok(None);
        };
        let path = format!("{}/{MANIFEST_MEMBER}", root.trim_end_matches('/'));
        match repo.read_file(&s.id, &path)? {
            Some(bytes) => Ok(Manifest::parse(&bytes, &path).ok()),
            None => Ok(None),
        }
    };
    let tables = match (manifest(repo, &older)?, manifest(repo, &newer)?) {
        (Some(x), Some(y)) => Some(table_changes(&x, &y)),
        _ => None,
    };
    Ok(SnapshotDiff {
        older,
        newer,
        files,
        tables,
    })
}

fn table_changes(older: &Manifest, newer: &Manifest) -> Vec<TableChange> {
    let tables = |m: &Manifest| -> BTreeMap<(String, String), (u64, String)> {
        m.databases
            .iter()
            .flat_map(|d| {
                d.tables.iter().map(move |t| {
                    (
                        (d.scope.clone(), format!("{}.{}", t.schema, t.name)),
                        (t.row_count, t.checksum.clone()),
                    )
                })
            })
            .collect()
    };
    let (a, b) = (tables(older), tables(newer));
    let mut keys: Vec<&(String, String)> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| TableChange {
            scope: k.0.clone(),
            table: k.1.clone(),
            rows_before: a.get(k).map(|x| x.0),
            rows_after: b.get(k).map(|x| x.0),
        })
        .collect()
}
