//! The repository engine: the only code that speaks rustic_core. It opens or
//! creates a repository of restic's format at a [`RepoLocation`] (v2, zstd level 3), stores a
//! staged directory as one snapshot, reads a snapshot's files back, forgets
//! snapshots by a keep policy, prunes (two-phase by default) and checks.
//!
//! rustic_core logs what it skips instead of failing (an unreadable file is
//! left out of the snapshot with a warning), so every backup is checked here
//! against the staged files before it counts.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use bytesize::ByteSize;
use rustic_backend::BackendOptions;
use rustic_core::jiff::Zoned;
use rustic_core::repofile::{IndexFile, MasterKey, Node, SnapshotFile};
use rustic_core::{
    BackupOptions, CheckOptions, ConfigOptions, Credentials, FileType, ForgetGroups, Grouped,
    IndexedTree, KeyOptions, OpenStatus, ParentOptions, PruneOptions, ReadBackend,
    RepairIndexOptions, RepairSnapshotsOptions, Repository, RepositoryBackends, RepositoryOptions,
    RusticError, SnapshotGroupCriterion, SnapshotOptions, WriteBackend,
};

use super::atomic::{self, AtomicLocalBackend, Temporary};
use super::location::RepoLocation;
use super::retention::{label_oldest, Retention, Verdict};
use super::source::StagedSource;
use super::{HOLDFAST_TAG, SNAPSHOT_ROOT};
use crate::secret::Redactor;
use crate::{Error, IoContext, Password, Result};

// Snapshots of other roots than a profile's (WAL, base backups), in a file of their own.
mod tagged;

/// zstd level of new repositories: restic's `auto` and rustic's default.
const COMPRESSION_LEVEL: i32 = 3;

/// How a new repository cuts data into chunks (fixed at init).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Chunking {
    /// restic's parameters (512 KiB–8 MiB, 1 MiB average): restic can also
    /// write to the repository and keep deduplicating.
    #[default]
    Restic,
    /// 128 KiB–2 MiB, 256 KiB average: changed rows cost about a quarter as
    /// much, for more index entries. Stored in rustic-only config fields:
    /// restic still reads and checks the repository, but a restic *write*
    /// would cut differently (no loss, only less deduplication).
    Db,
}

impl Chunking {
    fn config(self) -> ConfigOptions {
        let config = ConfigOptions::default().set_compression(COMPRESSION_LEVEL);
        match self {
            Chunking::Restic => config,
            Chunking::Db => config
                .set_chunk_size(ByteSize::kib(256))
                .set_chunk_min_size(ByteSize::kib(128))
                .set_chunk_max_size(ByteSize::mib(2)),
        }
    }
}

/// An open repository.
pub struct Repo {
    location: RepoLocation,
    /// Taken while an operation works on the indexed repository (rustic_core's
    /// typestates consume it) and given back after; `None` only if indexing
    /// failed half-way, which leaves this handle unusable.
    repo: Option<Repository<OpenStatus>>,
    /// The storage under the repository, to list pack files with their sizes.
    storage: Arc<dyn WriteBackend>,
    /// Where long steps draw their progress, if anywhere.
    progress: Option<Arc<dyn crate::progress::ProgressSink>>,
}

/// A snapshot as holdfast shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Full hex id (`restic` and `holdfast repo` accept its first 8 characters).
    pub id: String,
    pub time: Zoned,
    pub hostname: String,
    pub tags: Vec<String>,
    pub paths: Vec<String>,
    /// Bytes read from the source.
    pub source_bytes: u64,
    /// New data this snapshot added to the repository, before compression.
    pub added_bytes: u64,
    /// The same, as stored (compressed and encrypted).
    pub added_stored_bytes: u64,
    /// Data chunks the snapshot's files consist of.
    pub data_blobs: u64,
}

impl SnapshotInfo {
    fn from_file(s: &SnapshotFile) -> SnapshotInfo {
        let summary = s.summary.as_ref();
        SnapshotInfo {
            id: s.id.to_hex().to_string(),
            time: s.time.clone(),
            hostname: s.hostname.clone(),
            tags: s.tags.iter().cloned().collect(),
            paths: s.paths.iter().cloned().collect(),
            source_bytes: summary.map_or(0, |x| x.total_bytes_processed),
            added_bytes: summary.map_or(0, |x| x.data_added),
            added_stored_bytes: summary.map_or(0, |x| x.data_added_packed),
            data_blobs: summary.map_or(0, |x| x.data_blobs),
        }
    }

    /// The first 8 hex digits, as restic shows ids.
    pub fn short_id(&self) -> &str {
        &self.id[..8.min(self.id.len())]
    }

    /// The value of a `key:value` tag.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find_map(|t| t.strip_prefix(key)?.strip_prefix(':'))
    }
}

/// A part of a snapshot restored to a place of its own: the files under
/// `under` (relative to the snapshot's root) go under `dest`; a part that
/// names one file is written as `dest`.
#[derive(Debug, Clone)]
pub struct RestorePart {
    pub under: PathBuf,
    pub dest: PathBuf,
    /// Start writing each file to disk as soon as it is complete (a tree
    /// that is synced next: the disk works while the next files are read).
    pub writeback: bool,
}

/// What a snapshot is labelled with.
#[derive(Debug, Clone)]
pub struct SnapshotLabels {
    pub profile: String,
    pub host: String,
    pub scopes: Vec<String>,
    /// The snapshot's time; `None` for now (tests give synthetic times).
    pub time: Option<Zoned>,
}

/// What forget decided, per snapshot, newest first within each group.
#[derive(Debug)]
pub struct ForgetReport {
    pub verdicts: Vec<Verdict<SnapshotInfo>>,
    /// Whether the snapshots marked to go were removed (false on a dry run).
    pub removed: bool,
}

/// How prune gets rid of packs no snapshot needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneMode {
    /// Mark unneeded packs now, delete them in a later prune once they have
    /// been marked for 23 hours: a backup running meanwhile stays valid.
    TwoPhase,
    /// Delete at once: only when no other backup can run against the repository.
    Instant,
}

/// What prune did (or would do, on a dry run). After a real prune the pack
/// counts and bytes are measured on the storage (pack files before and
/// after), not taken from rustic_core's plan, whose statistics leave out the
/// pack files no index references.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Pack files deleted in this run (marked long enough ago, unreferenced
    /// ones in instant mode, or everything unneeded in instant mode).
    pub packs_deleted: u64,
    /// Their bytes: the space freed.
    pub bytes_deleted: u64,
    /// Pack files written by repacking (the live blobs of partly used packs).
    pub packs_written: u64,
    pub bytes_written: u64,
    /// Packs marked for deletion now, to be deleted by a prune 23 hours later
    /// (two-phase mode), including pack files no index referenced.
    pub packs_marked: u64,
    /// Marked packs that a snapshot needs again: unmarked.
    pub packs_recovered: u64,
    /// Partly used packs whose live blobs are written anew.
    pub packs_repacked: u64,
    /// Pack files no index referenced before this prune (an interrupted backup's).
    pub packs_unreferenced: u64,
    pub bytes_unreferenced: u64,
    /// Bytes of unused blobs, before this prune.
    pub unused_bytes: u64,
    /// Bytes of used blobs.
    pub used_bytes: u64,
    /// Bytes of all pack files before and after (equal on a dry run).
    pub pack_bytes_before: u64,
    pub pack_bytes_after: u64,
}

/// The pack files of a repository against its index, as restic sees them:
/// restic reads an index's `packs` only, so a pack rustic's two-phase prune
/// moved to `packs_to_delete` is, for restic, referenced by no index.
#[derive(Debug, Clone, Default)]
pub struct PackAccount {
    /// Every pack file (hex id) with its size.
    pub files: BTreeMap<String, u64>,
    /// Packs an index lists as live (`packs`).
    pub indexed: BTreeSet<String>,
    /// Packs an index lists as marked for deletion (`packs_to_delete`).
    pub marked: BTreeSet<String>,
}

impl PackAccount {
    /// Pack files no index lists at all: left by an interrupted backup.
    pub fn unreferenced(&self) -> Vec<(&str, u64)> {
        self.files
            .iter()
            .filter(|(id, _)| !self.indexed.contains(*id) && !self.marked.contains(*id))
            .map(|(id, size)| (id.as_str(), *size))
            .collect()
    }

    /// Pack files marked for deletion by a two-phase prune.
    pub fn marked_files(&self) -> Vec<(&str, u64)> {
        self.files
            .iter()
            .filter(|(id, _)| self.marked.contains(*id) && !self.indexed.contains(*id))
            .map(|(id, size)| (id.as_str(), *size))
            .collect()
    }

    /// What `restic check` counts as orphaned ("additional files"): pack
    /// files missing from every index's live list.
    pub fn orphaned_for_restic(&self) -> (u64, u64) {
        let unref = self.unreferenced();
        let marked = self.marked_files();
        (
            (unref.len() + marked.len()) as u64,
            unref.iter().chain(&marked).map(|(_, s)| s).sum(),
        )
    }

    pub fn total_bytes(&self) -> u64 {
        self.files.values().sum()
    }
}

/// One entry of a snapshot's tree, as `repo ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotEntry {
    /// Absolute path in the snapshot (`/holdfast/<profile>/db/engine.db`).
    pub path: String,
    pub is_dir: bool,
    /// Bytes of a file (0 for a directory).
    pub size: u64,
}

/// How a file differs between two snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Removed,
    Modified,
}

/// A file that differs between two snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    pub path: String,
    pub change: Change,
    pub size_before: Option<u64>,
    pub size_after: Option<u64>,
    /// Bytes of the newer file's chunks that the older snapshot does not hold:
    /// what the change cost the repository, before compression.
    pub new_bytes: u64,
}

/// Sizes of the repository and of what its snapshots hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepoStats {
    pub snapshots: u64,
    /// Bytes a restore of every snapshot writes (each snapshot's files).
    pub restore_bytes: u64,
    /// Distinct blobs (chunks and trees) in the index.
    pub blobs: u64,
    /// Their bytes before compression: the deduplicated data.
    pub raw_bytes: u64,
    /// Their bytes as stored (compressed and encrypted).
    pub stored_bytes: u64,
    /// Pack files and their bytes on the storage.
    pub pack_files: u64,
    pub pack_bytes: u64,
}

impl RepoStats {
    /// How many times over the snapshots' data fits in the deduplicated data.
    pub fn dedup_ratio(&self) -> f64 {
        ratio(self.restore_bytes, self.raw_bytes)
    }

    /// Deduplicated data against what is stored.
    pub fn compression_ratio(&self) -> f64 {
        ratio(self.raw_bytes, self.stored_bytes)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// A key of the repository: one password that opens it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub id: String,
    /// The key this handle was opened with.
    pub current: bool,
    pub hostname: String,
    pub username: String,
    pub created: Option<Zoned>,
}

/// What a repair changed.
#[derive(Debug, Clone, Default)]
pub struct RepairReport {
    /// Pack files no index referenced, before and after.
    pub unreferenced_before: (u64, u64),
    pub unreferenced_after: (u64, u64),
    /// Snapshots removed (repair snapshots with `forget`) and written.
    pub snapshots_removed: Vec<String>,
    pub snapshots_written: Vec<SnapshotInfo>,
    /// Stale temporary files of interrupted writes removed first.
    pub temporaries_removed: Vec<Temporary>,
}

/// Findings of a check.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    pub read_data: bool,
    pub snapshots: usize,
    /// The pack files against the index.
    pub packs: PackAccount,
    /// Temporary files of interrupted writes (local repositories).
    pub temporaries: Vec<Temporary>,
}

impl Repo {
    /// Create a repository at `location`: a local directory must be missing
    /// or empty, and is made private (0700): the repository is encrypted, but
    /// its size and file count are information too. A remote location must
    /// hold no repository yet.
    pub fn init(location: &RepoLocation, password: &Password, chunking: Chunking) -> Result<Repo> {
        if password.is_empty() {
            return Err(Error::usage(
                "the repository password is empty; give a non-empty one",
            ));
        }
        if let Some(dir) = location.local_dir() {
            prepare_local_dir(dir)?;
        }
        let backends = backends(location)?;
        let fresh = Repository::new(&options(), &backends)
            .map_err(|e| engine_error(&format!("use {location} as a repository"), &e))?;
        if fresh
            .config_id()
            .map_err(|e| engine_error(&format!("reach {location}"), &e))?
            .is_some()
        {
            return Err(Error::usage(format!(
                "{location} already holds a repository; give a new location, or use this one without 'repo init'"
            )));
        }
        let config = chunking.config();
        let repo = fresh
            .init(
                &Credentials::password(password.expose()),
                &KeyOptions::default(),
                &config,
            )
            .map_err(|e| engine_error(&format!("create the repository at {location}"), &e))?;
        Ok(Repo {
            location: location.clone(),
            repo: Some(repo),
            storage: backends.repository(),
            progress: None,
        })
    }

    /// Refuse a location that holds no repository (before asking for a password).
    pub fn check_location(location: &RepoLocation) -> Result<()> {
        let not_one = || {
            // A REST server answers a refused user or password like a missing
            // file to the probe rustic_backend makes for the config.
            let or_refused = if matches!(location, RepoLocation::Rest(_)) {
                ", or the server refused the REST user and password"
            } else {
                ""
            };
            Error::usage(format!(
                "{location} is not a repository (no config file{or_refused}); create one with 'holdfast repo init'"
            ))
        };
        if let Some(dir) = location.local_dir() {
            // Looked at directly: the backend would create a missing directory.
            return if dir.join("config").is_file() {
                Ok(())
            } else {
                Err(not_one())
            };
        }
        let backends = backends(location)?;
        let found = Repository::new(&options(), &backends)
            .and_then(|r| r.config_id())
            .map_err(|e| engine_error(&format!("reach {location}"), &e))?;
        if found.is_none() && matches!(location, RepoLocation::Rest(_)) {
            // The config probe cannot tell; a listing answers 401 to a
            // refused user or password.
            if let Err(e) = backends.repository().list(FileType::Key) {
                let refused = engine_error(&format!("reach {location}"), &e);
                if refused.to_string().contains(REST_REFUSED) {
                    return Err(refused);
                }
            }
        }
        found.map(|_| ()).ok_or_else(not_one)
    }

    /// Open the repository at `location`.
    pub fn open(location: &RepoLocation, password: &Password) -> Result<Repo> {
        Repo::open_with_progress(location, password, None)
    }

    /// Open the repository at `location`, its long steps (uploads,
    /// downloads, reading the index) drawn on `progress` when given.
    pub fn open_with_progress(
        location: &RepoLocation,
        password: &Password,
        progress: Option<Arc<dyn crate::progress::ProgressSink>>,
    ) -> Result<Repo> {
        Repo::check_location(location)?;
        let backends = backends(location)?;
        let created = match progress.clone() {
            Some(sink) => Repository::new_with_progress(
                &options(),
                &backends,
                super::progress::SinkBars(sink),
            ),
            None => Repository::new(&options(), &backends),
        };
        let repo = created
            .and_then(|r| r.open(&Credentials::password(password.expose())))
            .map_err(|e| {
                if e.is_incorrect_password() {
                    Error::usage(format!("wrong password for the repository {location}"))
                } else {
                    engine_error(&format!("open the repository {location}"), &e)
                }
            })?;
        Ok(Repo {
            location: location.clone(),
            repo: Some(repo),
            storage: backends.repository(),
            progress,
        })
    }

    /// Open the repository with the master key kept in `key_file` when that
    /// opens it, else with `password`, then keep its master key there (0600)
    /// for the next time. A password costs a key derivation (scrypt, about
    /// 0.2 s of CPU), which `wal push` and `wal fetch`, run once per WAL file,
    /// would pay every time. The file opens the repository as the password
    /// does, for as long as the repository lives (restic's keys wrap one
    /// master key): it belongs beside the password file, readable by the same
    /// user only.
    pub fn open_with_key_file(
        location: &RepoLocation,
        password: &Password,
        key_file: &Path,
    ) -> Result<Repo> {
        Repo::check_location(location)?;
        let kept = std::fs::read(key_file)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<MasterKey>(&bytes).ok());
        if let Some(key) = kept {
            let backends = backends(location)?;
            let opened = Repository::new(&options(), &backends)
                .and_then(|r| r.open(&Credentials::Masterkey(key)));
            if let Ok(repo) = opened {
                return Ok(Repo {
                    location: location.clone(),
                    repo: Some(repo),
                    storage: backends.repository(),
                    progress: None,
                });
            }
        }
        let repo = Repo::open(location, password)?;
        let key = serde_json::to_vec(&repo.open_repo()?.key())
            .map_err(|e| Error::failed(format!("keep the repository key: {e}")))?;
        // Only a cache: without it the next call derives the key again.
        let _ = crate::durable::replace(key_file, &key, 0o600, None);
        Ok(repo)
    }

    pub fn location(&self) -> &RepoLocation {
        &self.location
    }

    fn open_repo(&self) -> Result<&Repository<OpenStatus>> {
        self.repo.as_ref().ok_or_else(|| {
            Error::failed(format!(
                "the repository {} could not be indexed earlier; open it again",
                self.location
            ))
        })
    }

    /// The repository, to be indexed; given back by [`Repo::give_back`].
    fn take_repo(&mut self) -> Result<Repository<OpenStatus>> {
        self.open_repo()?;
        Ok(self.repo.take().expect("checked above"))
    }

    fn give_back<S: IndexedTree>(&mut self, indexed: Repository<S>) {
        self.repo = Some(indexed.drop_index());
    }

    /// Every snapshot, oldest first.
    pub fn snapshots(&self) -> Result<Vec<SnapshotInfo>> {
        let mut all = self
            .open_repo()?
            .get_all_snapshots()
            .map_err(|e| engine_error("list snapshots", &e))?;
        all.sort_by(|a, b| a.time.cmp(&b.time).then(a.id.cmp(&b.id)));
        Ok(all.iter().map(SnapshotInfo::from_file).collect())
    }

    /// Store every file under `staged` as one snapshot, under
    /// `/holdfast/<profile>`, and check that the snapshot holds all of them.
    pub fn backup_dir(&mut self, staged: &Path, labels: &SnapshotLabels) -> Result<SnapshotInfo> {
        self.remove_stale_temporaries();
        let root = snapshot_root(&labels.profile)?;
        let source = StagedSource::new(staged, &root)?;
        let mut tags = vec![
            HOLDFAST_TAG.to_string(),
            format!("profile:{}", labels.profile),
            format!("host:{}", labels.host),
        ];
        tags.extend(labels.scopes.iter().map(|s| format!("scope:{s}")));
        let mut snap_opts = SnapshotOptions::default().host(labels.host.clone());
        if let Some(t) = &labels.time {
            snap_opts = snap_opts.time(t.clone());
        }
        let snap = snap_opts
            .add_tags(&tags.join(","))
            .and_then(|o| o.to_snapshot())
            .map_err(|e| Error::usage(format!("snapshot labels: {}", e.display_log())))?;
        self.archive_staged(&source, snap, root)
    }

    /// Store `source` (staged under the snapshot path `root`) as `snap`, and
    /// check the snapshot holds every staged file. Every file is read in
    /// full: no parent's metadata is trusted (unchanged content still
    /// dedups).
    pub(super) fn archive_staged(
        &mut self,
        source: &StagedSource,
        snap: rustic_core::repofile::SnapshotFile,
        root: PathBuf,
    ) -> Result<SnapshotInfo> {
        let opts = BackupOptions::default().parent_opts(ParentOptions::default().force(true));
        let staged_files = source.files(&root);
        let indexed = self
            .take_repo()?
            .to_indexed_ids()
            .map_err(|e| engine_error("read the repository index", &e))?;
        let written = indexed
            .archive(&opts, source, snap, std::slice::from_ref(&root))
            .map_err(|e| engine_error("write the snapshot", &e));
        self.give_back(indexed);
        let snap = written?;
        // The index loaded before the backup does not know the new trees: read it again.
        let indexed = self
            .take_repo()?
            .to_indexed_ids()
            .map_err(|e| engine_error("read the repository index", &e))?;
        let checked = check_complete(&indexed, &snap, &staged_files);
        self.give_back(indexed);
        checked
    }

    /// Write every file of `snapshot` (an id, a unique id prefix, or `latest`)
    /// into `dest` (0700 directories, 0600 files, never overwriting). Returns
    /// the snapshot and the files' paths relative to `dest`.
    pub fn restore_files(
        &mut self,
        snapshot: &str,
        dest: &Path,
    ) -> Result<(SnapshotInfo, Vec<PathBuf>)> {
        self.restore_files_under(snapshot, Path::new(""), dest)
    }

    /// As [`Repo::restore_files`], only the files under `under` (a path
    /// relative to the snapshot's root), written relative to it.
    pub fn restore_files_under(
        &mut self,
        snapshot: &str,
        under: &Path,
        dest: &Path,
    ) -> Result<(SnapshotInfo, Vec<PathBuf>)> {
        self.restore_parts(
            snapshot,
            &[RestorePart {
                under: under.to_path_buf(),
                dest: dest.to_path_buf(),
                writeback: false,
            }],
        )
    }

    /// As [`Repo::restore_files`], each part of the snapshot to its own
    /// place (one index read for all). Returns the files' paths relative to
    /// their part's destination.
    pub fn restore_parts(
        &mut self,
        snapshot: &str,
        parts: &[RestorePart],
    ) -> Result<(SnapshotInfo, Vec<PathBuf>)> {
        let snap = self.find_snapshot(snapshot)?;
        let full = self
            .take_repo()?
            .to_indexed()
            .map_err(|e| engine_error("read the repository index", &e))?;
        let written = dump_files(&full, &snap, parts, self.progress.as_ref());
        self.give_back(full);
        Ok((SnapshotInfo::from_file(&snap), written?))
    }

    /// The snapshot `snapshot` names (an id, a unique id prefix, or `latest`).
    pub fn snapshot_info(&self, snapshot: &str) -> Result<SnapshotInfo> {
        self.find_snapshot(snapshot)
            .map(|s| SnapshotInfo::from_file(&s))
    }

    fn find_snapshot(&self, snapshot: &str) -> Result<SnapshotFile> {
        let wanted = snapshot.trim();
        if wanted.is_empty() {
            return Err(Error::usage(
                "no snapshot given; list them with 'holdfast repo snapshots'",
            ));
        }
        self.open_repo()?
            .get_snapshot_from_str(wanted, |_| true)
            .map_err(|e| {
                Error::usage(format!(
                    "no snapshot '{wanted}' in {} ({}); list them with 'holdfast repo snapshots'",
                    self.location,
                    e.display_log()
                ))
            })
    }

    /// Apply `policy` to every group of snapshots (same host, label and paths,
    /// as restic groups them) and, unless `dry_run`, remove the snapshots it
    /// does not keep. Removing snapshots frees no space: prune does that.
    pub fn forget(&self, policy: &Retention, now: &Zoned, dry_run: bool) -> Result<ForgetReport> {
        let keep = policy.keep_options()?;
        let mut all = self
            .open_repo()?
            .get_all_snapshots()
            .map_err(|e| engine_error("list snapshots", &e))?;
        // WAL snapshots go by what the kept base backups need, not by a keep policy.
        all.retain(|s| !s.tags.iter().any(|t| t == super::wal::WAL_TAG));
        let groups = Grouped::from_items(all, SnapshotGroupCriterion::default());
        let decided = ForgetGroups::from_grouped_snapshots_with_retention(groups, &keep, now)
            .map_err(|e| Error::usage(e.display_log()))?;
        let mut verdicts: Vec<Verdict<SnapshotInfo>> = Vec::new();
        for group in &decided.0 {
            let mut group_verdicts: Vec<Verdict<SnapshotInfo>> = group
                .items
                .iter()
                .map(|f| Verdict {
                    item: SnapshotInfo::from_file(&f.snapshot),
                    time: f.snapshot.time.clone(),
                    keep: f.keep,
                    reasons: if f.keep {
                        f.reasons.clone()
                    } else {
                        Vec::new()
                    },
                })
                .collect();
            label_oldest(&mut group_verdicts);
            verdicts.append(&mut group_verdicts);
        }
        let ids = decided.into_forget_ids();
        if !dry_run && !ids.is_empty() {
            self.open_repo()?
                .delete_snapshots(&ids)
                .map_err(|e| engine_error("remove snapshots", &e))?;
        }
        Ok(ForgetReport {
            verdicts,
            removed: !dry_run,
        })
    }

    /// Remove the data no snapshot needs any more, and the pack files no
    /// index references (an interrupted backup's): deleted at once in
    /// instant mode, marked like unneeded packs in two-phase mode.
    pub fn prune(&self, mode: PruneMode, dry_run: bool) -> Result<PruneReport> {
        if !dry_run {
            self.remove_stale_temporaries();
        }
        let opts = PruneOptions::default().instant_delete(mode == PruneMode::Instant);
        let before = self.pack_files()?;
        let plan = self
            .open_repo()?
            .prune_plan(&opts)
            .map_err(|e| engine_error("plan the prune", &e))?;
        let s = &plan.stats;
        let mut report = PruneReport {
            packs_deleted: s.packs_to_delete.remove,
            bytes_deleted: s.size_to_delete.remove,
            packs_marked: s.packs.unused + s.packs_unref,
            packs_recovered: s.packs_to_delete.recover,
            packs_repacked: s.packs.repack,
            packs_unreferenced: s.packs_unref,
            bytes_unreferenced: s.size_unref,
            unused_bytes: s.size.values().map(|x| x.unused).sum(),
            used_bytes: s.size.values().map(|x| x.used).sum(),
            pack_bytes_before: before.values().sum(),
            pack_bytes_after: before.values().sum(),
            ..Default::default()
        };
        if mode == PruneMode::Instant {
            // Everything unneeded goes now: marked packs, unused ones and the unreferenced.
            report.packs_deleted += s.packs_to_delete.keep + report.packs_marked;
            report.bytes_deleted += s.size_to_delete.keep + s.size_unref;
            report.packs_marked = 0;
        }
        if dry_run {
            return Ok(report);
        }
        self.open_repo()?
            .prune(&opts, plan)
            .map_err(|e| engine_error("prune", &e))?;
        let after = self.pack_files()?;
        let gone: Vec<u64> = before
            .iter()
            .filter(|(id, _)| !after.contains_key(*id))
            .map(|(_, size)| *size)
            .collect();
        let new: Vec<u64> = after
            .iter()
            .filter(|(id, _)| !before.contains_key(*id))
            .map(|(_, size)| *size)
            .collect();
        report.packs_deleted = gone.len() as u64;
        report.bytes_deleted = gone.iter().sum();
        report.packs_written = new.len() as u64;
        report.bytes_written = new.iter().sum();
        report.pack_bytes_after = after.values().sum();
        Ok(report)
    }

    /// Every pack file of the storage (hex id) with its size.
    fn pack_files(&self) -> Result<BTreeMap<String, u64>> {
        Ok(self
            .storage
            .list_with_size(FileType::Pack)
            .map_err(|e| engine_error("list the pack files", &e))?
            .into_iter()
            .map(|(id, size)| (id.to_hex().to_string(), u64::from(size)))
            .collect())
    }

    /// The pack files against every index file.
    pub fn pack_account(&self) -> Result<PackAccount> {
        let mut account = PackAccount {
            files: self.pack_files()?,
            ..Default::default()
        };
        let indexes = self
            .open_repo()?
            .stream_files::<IndexFile>()
            .map_err(|e| engine_error("read the index", &e))?;
        for index in indexes {
            let (_, index) = index.map_err(|e| engine_error("read an index file", &e))?;
            for p in &index.packs {
                account.indexed.insert(p.id.to_hex().to_string());
            }
            for p in &index.packs_to_delete {
                account.marked.insert(p.id.to_hex().to_string());
            }
        }
        Ok(account)
    }

    /// Sizes of the repository and of its snapshots.
    pub fn stats(&self) -> Result<RepoStats> {
        let snapshots = self.snapshots()?;
        let infos = self
            .open_repo()?
            .infos_index()
            .map_err(|e| engine_error("read the index", &e))?;
        let packs = self.pack_files()?;
        Ok(RepoStats {
            snapshots: snapshots.len() as u64,
            restore_bytes: snapshots.iter().map(|s| s.source_bytes).sum(),
            blobs: infos.blobs.iter().map(|b| b.count).sum(),
            raw_bytes: infos.blobs.iter().map(|b| b.data_size).sum(),
            stored_bytes: infos.blobs.iter().map(|b| b.size).sum(),
            pack_files: packs.len() as u64,
            pack_bytes: packs.values().sum(),
        })
    }

    /// Every entry of `snapshot` at or under `path` (absolute, as `ls`
    /// shows it; `None` for all), in tree order.
    pub fn ls(
        &mut self,
        snapshot: &str,
        path: Option<&str>,
    ) -> Result<(SnapshotInfo, Vec<SnapshotEntry>)> {
        let snap = self.find_snapshot(snapshot)?;
        let prefix = path.map(|p| {
            let p = p.trim_end_matches('/');
            if p.starts_with('/') {
                p.to_string()
            } else {
                format!("/{p}")
            }
        });
        let indexed = self
            .take_repo()?
            .to_indexed_ids()
            .map_err(|e| engine_error("read the repository index", &e))?;
        let listed = tree_entries(&indexed, &snap);
        self.give_back(indexed);
        let entries = listed?
            .into_iter()
            .filter(|(e, _)| match &prefix {
                None => true,
                Some(p) if p.is_empty() => true,
                Some(p) => e.path == *p || e.path.starts_with(&format!("{p}/")),
            })
            .map(|(e, _)| e)
            .collect::<Vec<_>>();
        if let (Some(p), true) = (&prefix, entries.is_empty()) {
            return Err(Error::usage(format!(
                "snapshot {} holds nothing at {p}; list it with 'holdfast repo ls {}'",
                &snap.id.to_hex()[..8],
                &snap.id.to_hex()[..8]
            )));
        }
        Ok((SnapshotInfo::from_file(&snap), entries))
    }

    /// The files that differ between snapshots `a` and `b` (by content),
    /// with what each change cost.
    pub fn diff(
        &mut self,
        a: &str,
        b: &str,
    ) -> Result<(SnapshotInfo, SnapshotInfo, Vec<FileChange>)> {
        let (snap_a, snap_b) = (self.find_snapshot(a)?, self.find_snapshot(b)?);
        let full = self
            .take_repo()?
            .to_indexed()
            .map_err(|e| engine_error("read the repository index", &e))?;
        let compared = diff_trees(&full, &snap_a, &snap_b);
        self.give_back(full);
        Ok((
            SnapshotInfo::from_file(&snap_a),
            SnapshotInfo::from_file(&snap_b),
            compared?,
        ))
    }

    /// The bytes of one file of a snapshot (e.g. its `manifest.json`), or
    /// `None` when the snapshot holds no such file.
    pub fn read_file(&mut self, snapshot: &str, path: &str) -> Result<Option<Vec<u8>>> {
        let snap = self.find_snapshot(snapshot)?;
        let full = self
            .take_repo()?
            .to_indexed()
            .map_err(|e| engine_error("read the repository index", &e))?;
        let read = (|| {
            let Ok(node) = full.node_from_snapshot_and_path(&snap, path) else {
                return Ok(None);
            };
            if !node.is_file() {
                return Ok(None);
            }
            let mut out = Vec::new();
            full.dump(&node, &mut out)
                .map_err(|e| engine_error(&format!("read {path} from the snapshot"), &e))?;
            Ok(Some(out))
        })();
        self.give_back(full);
        read
    }

    /// Store a source of ours (see [`super::stream`]) as one snapshot under
    /// `root` with exactly `tags`. The snapshot must hold `files` (paths
    /// relative to `root`, sizes) and `source_ok` must pass after the last
    /// byte was read (a stream that failed half-way is not a backup); else
    /// the snapshot is removed again and the error returned.
    pub fn backup_source<R>(
        &mut self,
        source: &R,
        root: &Path,
        host: &str,
        tags: &[String],
        files: &[(PathBuf, u64)],
        source_ok: impl FnOnce() -> Result<()>,
    ) -> Result<SnapshotInfo>
    where
        R: rustic_core::ReadSource + 'static,
        <R as rustic_core::ReadSource>::Open: Send,
        <R as rustic_core::ReadSource>::Iter: Send,
    {
        self.remove_stale_temporaries();
        let snap = SnapshotOptions::default()
            .host(host.to_string())
            .add_tags(&tags.join(","))
            .and_then(|o| o.to_snapshot())
            .map_err(|e| Error::usage(format!("snapshot labels: {}", e.display_log())))?;
        let opts = BackupOptions::default().parent_opts(ParentOptions::default().force(true));
        let indexed = self
            .take_repo()?
            .to_indexed_ids()
            .map_err(|e| engine_error("read the repository index", &e))?;
        let written = indexed
            .archive(&opts, source, snap, &[root.to_path_buf()])
            .map_err(|e| engine_error("write the snapshot", &e));
        let snap = match written {
            Ok(snap) => snap,
            Err(e) => {
                self.give_back(indexed);
                // The archiver stops at the stream's own error: report that one.
                return Err(source_ok().err().unwrap_or(e));
            }
        };
        if let Err(e) = source_ok() {
            let removed = indexed.delete_snapshots(&[snap.id]);
            self.give_back(indexed);
            return Err(match removed {
                Ok(()) => e,
                Err(r) => Error::failed(format!(
                    "{e}; removing the partial snapshot failed too ({}): remove it with 'holdfast repo forget'",
                    r.display_log()
                )),
            });
        }
        self.give_back(indexed);
        let indexed = self
            .take_repo()?
            .to_indexed_ids()
            .map_err(|e| engine_error("read the repository index", &e))?;
        let checked = check_complete(&indexed, &snap, files);
        self.give_back(indexed);
        checked
    }

    /// Write one file of a snapshot into `out` as it streams out of the
    /// repository (bounded memory); false when the snapshot has no such file.
    pub fn dump_file(&mut self, snapshot: &str, path: &str, out: &mut impl Write) -> Result<bool> {
        let snap = self.find_snapshot(snapshot)?;
        let full = self
            .take_repo()?
            .to_indexed()
            .map_err(|e| engine_error("read the repository index", &e))?;
        let dumped = (|| {
            let Ok(node) = full.node_from_snapshot_and_path(&snap, path) else {
                return Ok(false);
            };
            if !node.is_file() {
                return Ok(false);
            }
            full.dump(&node, out)
                .map_err(|e| engine_error(&format!("read {path} from the snapshot"), &e))?;
            Ok(true)
        })();
        self.give_back(full);
        dumped
    }

    /// Random access to files of a snapshot, for as long as the readers
    /// live (they share this handle's full index: open a second handle to
    /// write meanwhile).
    pub fn into_file_readers(
        mut self,
        snapshot: &str,
        paths: &[String],
    ) -> Result<Vec<SnapshotFileReader>> {
        let snap = self.find_snapshot(snapshot)?;
        let full = Arc::new(
            self.take_repo()?
                .to_indexed()
                .map_err(|e| engine_error("read the repository index", &e))?,
        );
        paths
            .iter()
            .map(|path| {
                let node = full
                    .node_from_snapshot_and_path(&snap, path)
                    .map_err(|e| engine_error(&format!("find {path} in the snapshot"), &e))?;
                let file = full
                    .open_file(&node)
                    .map_err(|e| engine_error(&format!("open {path} in the snapshot"), &e))?;
                Ok(SnapshotFileReader {
                    repo: full.clone(),
                    file,
                    size: node.meta.size,
                    path: path.clone(),
                })
            })
            .collect()
    }

    /// Every key of the repository.
    pub fn keys(&self) -> Result<Vec<KeyInfo>> {
        let repo = self.open_repo()?;
        let current = repo.key_id().as_ref().map(|id| id.to_hex().to_string());
        let ids: Vec<rustic_core::repofile::KeyId> = repo
            .list()
            .map_err(|e| engine_error("list the keys", &e))?
            .collect();
        let mut out = Vec::new();
        for id in ids {
            let hex = id.to_hex().to_string();
            // Key files are plain JSON (their data is sealed by the password).
            let bytes = self
                .storage
                .read_full(FileType::Key, &id)
                .map_err(|e| engine_error(&format!("read key {hex}"), &e))?;
            let file: rustic_core::repofile::KeyFile = serde_json::from_slice(&bytes)
                .map_err(|e| Error::invalid(format!("key {hex} is not a key file: {e}")))?;
            out.push(KeyInfo {
                current: current.as_deref() == Some(hex.as_str()),
                id: hex,
                hostname: file.hostname.unwrap_or_default(),
                username: file.username.unwrap_or_default(),
                created: file.created,
            });
        }
        out.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Add a key for `password`; returns its id.
    pub fn add_key(&self, password: &Password) -> Result<String> {
        if password.is_empty() {
            return Err(Error::usage(
                "the new password is empty; give a non-empty one",
            ));
        }
        let opts = KeyOptions::default()
            .hostname(atomic::hostname())
            .username(std::env::var("USER").unwrap_or_else(|_| "root".to_string()))
            .with_created(true);
        let id = self
            .open_repo()?
            .add_key(password.expose(), &opts)
            .map_err(|e| engine_error("add the key", &e))?;
        Ok(id.to_hex().to_string())
    }

    /// Remove the key `id` (or a unique prefix of it); never the key this
    /// handle was opened with.
    pub fn remove_key(&self, id: &str) -> Result<String> {
        let keys = self.keys()?;
        let matching: Vec<&KeyInfo> = keys.iter().filter(|k| k.id.starts_with(id)).collect();
        let key = match (id.is_empty(), matching.as_slice()) {
            (false, [one]) => *one,
            (false, []) | (true, _) => {
                return Err(Error::usage(format!(
                    "no key '{id}' in {}; list them with 'holdfast repo key list'",
                    self.location
                )))
            }
            _ => {
                return Err(Error::usage(format!(
                    "'{id}' names {} keys; give more of the id",
                    matching.len()
                )))
            }
        };
        if key.current {
            return Err(Error::usage(format!(
                "key {} is the one this password opens; remove it with another key's password (--password-file), or use 'holdfast repo key passwd'",
                &key.id[..8]
            )));
        }
        let parsed: rustic_core::repofile::KeyId = key
            .id
            .parse::<rustic_core::Id>()
            .map_err(|e| Error::invalid(format!("key id {}: {}", key.id, e.display_log())))?
            .into();
        self.open_repo()?
            .delete_key(&parsed)
            .map_err(|e| engine_error("remove the key", &e))?;
        Ok(key.id.clone())
    }

    /// Copy snapshots (by id, prefix or `latest`; all when `wanted` is empty)
    /// into `dest`, with only the data `dest` lacks; a snapshot `dest`
    /// already holds is skipped. Returns (copied, already there).
    pub fn copy_to(
        &mut self,
        dest: &mut Repo,
        wanted: &[String],
    ) -> Result<(Vec<SnapshotInfo>, Vec<SnapshotInfo>)> {
        let snaps: Vec<SnapshotFile> = if wanted.is_empty() {
            self.open_repo()?
                .get_all_snapshots()
                .map_err(|e| engine_error("list snapshots", &e))?
        } else {
            wanted
                .iter()
                .map(|w| self.find_snapshot(w))
                .collect::<Result<_>>()?
        };
        let decided = dest
            .open_repo()?
            .relevant_copy_snapshots(|_| true, &snaps)
            .map_err(|e| engine_error("compare with the destination's snapshots", &e))?;
        let (to_copy, present): (Vec<_>, Vec<_>) = decided.into_iter().partition(|c| c.relevant);
        let present: Vec<SnapshotInfo> = present
            .iter()
            .map(|c| SnapshotInfo::from_file(&c.sn))
            .collect();
        if to_copy.is_empty() {
            return Ok((Vec::new(), present));
        }
        let source = self
            .take_repo()?
            .to_indexed()
            .map_err(|e| engine_error("read the repository index", &e))?;
        let target = match dest.take_repo()?.to_indexed_ids() {
            Ok(t) => t,
            Err(e) => {
                self.give_back(source);
                return Err(engine_error("read the destination's index", &e));
            }
        };
        let copied = source
            .copy(&target, to_copy.iter().map(|c| &c.sn))
            .map_err(|e| engine_error(&format!("copy to {}", dest.location), &e));
        self.give_back(source);
        dest.give_back(target);
        copied?;
        Ok((
            to_copy
                .iter()
                .map(|c| SnapshotInfo::from_file(&c.sn))
                .collect(),
            present,
        ))
    }

    /// restic's locks in the repository, with restic's verdict on each.
    pub fn locks(&self) -> Result<Vec<super::locks::Lock>> {
        super::locks::list(
            &super::locks::LockFiles::of(&self.location)?,
            &self.open_repo()?.key(),
            rustic_core::jiff::Timestamp::now(),
        )
    }

    /// Remove these locks; returns how many.
    pub fn remove_locks(&self, locks: &[&super::locks::Lock]) -> Result<usize> {
        super::locks::remove(&super::locks::LockFiles::of(&self.location)?, locks)
    }

    /// Temporary files of interrupted writes (local repositories only).
    pub fn temporaries(&self) -> Vec<Temporary> {
        self.location
            .local_dir()
            .map(atomic::temporaries)
            .unwrap_or_default()
    }

    fn remove_stale_temporaries(&self) -> Vec<Temporary> {
        self.location
            .local_dir()
            .map(atomic::remove_stale_temporaries)
            .unwrap_or_default()
    }

    /// Index the pack files no index references (reading their headers), and
    /// drop index entries of packs that are gone; a pack whose header cannot
    /// be read stays unreferenced (prune removes it).
    pub fn repair_index(&self, dry_run: bool) -> Result<RepairReport> {
        let temporaries_removed = if dry_run {
            Vec::new()
        } else {
            self.remove_stale_temporaries()
        };
        let count = |a: &PackAccount| {
            let u = a.unreferenced();
            (u.len() as u64, u.iter().map(|(_, s)| s).sum())
        };
        let unreferenced_before = count(&self.pack_account()?);
        self.open_repo()?
            .repair_index(&RepairIndexOptions::default(), dry_run)
            .map_err(|e| engine_error("repair the index", &e))?;
        let unreferenced_after = if dry_run {
            unreferenced_before
        } else {
            count(&self.pack_account()?)
        };
        Ok(RepairReport {
            unreferenced_before,
            unreferenced_after,
            temporaries_removed,
            ..Default::default()
        })
    }

    /// Rewrite snapshots whose trees or file contents are missing from the
    /// repository: a missing file content drops the file's name to
    /// `<name>.repaired`, an unreadable tree becomes empty, and the new
    /// snapshot is tagged `repaired`. With `forget`, the damaged originals
    /// are removed (restic's `repair snapshots --forget`).
    pub fn repair_snapshots(&mut self, forget: bool, dry_run: bool) -> Result<RepairReport> {
        let before = self.snapshots()?;
        let all = self
            .open_repo()?
            .get_all_snapshots()
            .map_err(|e| engine_error("list snapshots", &e))?;
        let full = self
            .take_repo()?
            .to_indexed()
            .map_err(|e| engine_error("read the repository index", &e))?;
        let opts = RepairSnapshotsOptions::default().delete(forget);
        let repaired = full
            .repair_snapshots(&opts, all, dry_run)
            .map_err(|e| engine_error("repair snapshots", &e));
        self.give_back(full);
        repaired?;
        let after = self.snapshots()?;
        let ids = |l: &[SnapshotInfo]| l.iter().map(|s| s.id.clone()).collect::<BTreeSet<_>>();
        let (had, has) = (ids(&before), ids(&after));
        Ok(RepairReport {
            snapshots_removed: had.difference(&has).cloned().collect(),
            snapshots_written: after.into_iter().filter(|s| !had.contains(&s.id)).collect(),
            ..Default::default()
        })
    }

    /// Check the repository's structure (index, packs listed, snapshots and
    /// trees); with `read_data`, also read and verify every pack.
    pub fn check(&self, read_data: bool) -> Result<CheckReport> {
        self.check_subset(read_data, None)
    }

    /// [`Repo::check`], reading only a subset of the packs: `N/M` (the
    /// packs of part N of M, by id: `1/4` … `4/4` together read all),
    /// `P%` or a size (random packs of that much).
    pub fn check_subset(&self, read_data: bool, subset: Option<&str>) -> Result<CheckReport> {
        let mut opts = CheckOptions::default().read_data(read_data || subset.is_some());
        if let Some(text) = subset {
            opts = opts.read_data_subset(parse_subset(text)?);
        }
        let read_data = opts.read_data;
        let results = self
            .open_repo()?
            .check(opts)
            .map_err(|e| engine_error("check", &e))?;
        let mut report = CheckReport {
            read_data,
            snapshots: self.snapshots()?.len(),
            packs: self.pack_account()?,
            temporaries: self.temporaries(),
            ..Default::default()
        };
        for (level, finding) in &results.0 {
            let text = finding.to_string();
            // Unreferenced packs are counted from the storage and the index
            // (PackAccount), as restic counts them, and reported once.
            if text.starts_with("pack ") && text.contains("not referenced in index") {
                continue;
            }
            // rustic_core names its own command line, which holdfast does not ship.
            let text = text.replace("'rustic repair index'", "'holdfast repo repair index'");
            // rustic_core 0.13 does not export the level's type; its Debug
            // names are the variants (`Warn`, `Error`).
            if format!("{level:?}") == "Warn" {
                report.warnings.push(text);
            } else {
                report.errors.push(text);
            }
        }
        Ok(report)
    }
}

/// A `--read-data-subset` value: `N/M` with 1 <= N <= M, `P%` or a size.
fn parse_subset(text: &str) -> Result<rustic_core::ReadSubsetOption> {
    let bad = |why: &str| {
        Error::usage(format!(
            "--read-data-subset '{text}': {why}; give N/M (1 <= N <= M, e.g. 1/12), a percentage (5%) or a size (2G)"
        ))
    };
    if let Some((n, m)) = text.split_once('/') {
        let (n, m) = match (n.trim().parse::<u32>(), m.trim().parse::<u32>()) {
            (Ok(n), Ok(m)) => (n, m),
            _ => return Err(bad("N and M must be whole numbers")),
        };
        if m == 0 || n == 0 || n > m {
            return Err(bad("N must be between 1 and M"));
        }
    }
    text.parse()
        .map_err(|e: Box<RusticError>| bad(&e.display_log()))
}

fn options() -> RepositoryOptions {
    // No local cache: it would write under the user's home, and for a local
    // repository only duplicate it.
    RepositoryOptions::default().no_cache(true)
}

fn backends(location: &RepoLocation) -> Result<RepositoryBackends> {
    let (repository, extra) = location.backend_spec();
    #[cfg(feature = "s3")]
    if matches!(location, RepoLocation::S3(_)) {
        let s3 = super::s3::S3Backend::new(extra)
            .map_err(|e| engine_error(&format!("use {location} as a repository"), &e))?;
        return Ok(RepositoryBackends::new(Arc::new(s3), None));
    }
    let backends = BackendOptions::default()
        .repository(repository)
        .options(extra)
        .to_backends()
        .map_err(|e| engine_error(&format!("use {location} as a repository"), &e))?;
    Ok(match location.local_dir() {
        // Every file through a temporary name, fsynced, renamed (see `atomic`).
        Some(dir) => RepositoryBackends::new(
            Arc::new(AtomicLocalBackend::new(backends.repository(), dir)),
            backends.repo_hot(),
        ),
        None => backends,
    })
}

/// A local repository's directory: created private when missing, refused
/// when it holds anything.
fn prepare_local_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        let mut listing = std::fs::read_dir(dir).map_err(|e| {
            Error::usage(format!("{} is not a usable directory: {e}", dir.display()))
        })?;
        if listing.next().is_some() {
            return Err(Error::usage(format!(
                "{} is not empty; give a new or empty directory for the repository",
                dir.display()
            )));
        }
        Ok(())
    } else {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .context(|| format!("create {}", dir.display()))
    }
}

/// `/holdfast/<profile>`: one snapshot path per profile, so that restic's
/// grouping (host and paths) keeps each profile's retention apart.
pub fn snapshot_root(profile: &str) -> Result<PathBuf> {
    let ok = !profile.is_empty()
        && Path::new(profile)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
        && !profile.contains('/')
        && !profile.contains(',');
    if !ok {
        return Err(Error::usage(format!(
            "profile name '{profile}' cannot name a snapshot path; give the profile a plain name"
        )));
    }
    Ok(Path::new(SNAPSHOT_ROOT).join(profile))
}

/// Every entry of a snapshot's tree, with absolute paths, in tree order.
fn tree_entries<S: IndexedTree>(
    repo: &Repository<S>,
    snap: &SnapshotFile,
) -> Result<Vec<(SnapshotEntry, Node)>> {
    let root = repo
        .node_from_snapshot_and_path(snap, "")
        .map_err(|e| engine_error("read a snapshot tree", &e))?;
    let mut out = Vec::new();
    for item in repo
        .ls(&root, &rustic_core::LsOptions::default())
        .map_err(|e| engine_error("read a snapshot tree", &e))?
    {
        let (path, node) = item.map_err(|e| engine_error("read a snapshot tree", &e))?;
        out.push((
            SnapshotEntry {
                path: format!("/{}", path.display()),
                is_dir: node.is_dir(),
                size: if node.is_file() { node.meta.size } else { 0 },
            },
            node,
        ));
    }
    Ok(out)
}

/// The files of `b` that differ from `a` by content, and those only one has.
fn diff_trees<S: rustic_core::IndexedFull>(
    repo: &Repository<S>,
    a: &SnapshotFile,
    b: &SnapshotFile,
) -> Result<Vec<FileChange>> {
    let files = |snap| -> Result<BTreeMap<String, (u64, Vec<rustic_core::DataId>)>> {
        Ok(tree_entries(repo, snap)?
            .into_iter()
            .filter(|(_, n)| n.is_file())
            .map(|(e, n)| (e.path, (e.size, n.content.unwrap_or_default())))
            .collect())
    };
    let (old, new) = (files(a)?, files(b)?);
    let old_blobs: BTreeSet<&rustic_core::DataId> =
        old.values().flat_map(|(_, c)| c.iter()).collect();
    let cost = |content: &[rustic_core::DataId]| -> Result<u64> {
        let mut sum = 0;
        for id in content.iter().filter(|id| !old_blobs.contains(id)) {
            let entry = repo
                .get_index_entry(id)
                .map_err(|e| engine_error("read the index", &e))?;
            sum += u64::from(entry.data_length());
        }
        Ok(sum)
    };
    let mut changes = Vec::new();
    for (path, (size, content)) in &new {
        match old.get(path) {
            None => changes.push(FileChange {
                path: path.clone(),
                change: Change::Added,
                size_before: None,
                size_after: Some(*size),
                new_bytes: cost(content)?,
            }),
            Some((old_size, old_content)) if old_content != content => changes.push(FileChange {
                path: path.clone(),
                change: Change::Modified,
                size_before: Some(*old_size),
                size_after: Some(*size),
                new_bytes: cost(content)?,
            }),
            Some(_) => {}
        }
    }
    for (path, (size, _)) in &old {
        if !new.contains_key(path) {
            changes.push(FileChange {
                path: path.clone(),
                change: Change::Removed,
                size_before: Some(*size),
                size_after: None,
                new_bytes: 0,
            });
        }
    }
    changes.sort_by(|x, y| x.path.cmp(&y.path));
    Ok(changes)
}

/// The regular files of a snapshot, relative to its first path, in tree order.
/// Paths come out of the repository, so anything but plain names is refused.
fn snapshot_files<S: IndexedTree>(
    repo: &Repository<S>,
    snap: &SnapshotFile,
) -> Result<Vec<(PathBuf, Node)>> {
    let root = snap
        .paths
        .iter()
        .next()
        .ok_or_else(|| Error::invalid(format!("snapshot {} has no path", snap.id)))?;
    let top = repo
        .node_from_snapshot_and_path(snap, root)
        .map_err(|e| engine_error(&format!("find {root} in snapshot {}", snap.id), &e))?;
    let mut out = Vec::new();
    let mut stack = vec![(PathBuf::new(), top)];
    while let Some((rel, node)) = stack.pop() {
        let Some(tree_id) = node.subtree else {
            continue;
        };
        let tree = repo
            .get_tree(&tree_id)
            .map_err(|e| engine_error("read a snapshot tree", &e))?;
        for child in tree.nodes {
            let name = child.name();
            let plain = Path::new(&*name).components().count() == 1
                && matches!(
                    Path::new(&*name).components().next(),
                    Some(Component::Normal(_))
                );
            if !plain {
                return Err(Error::invalid(format!(
                    "snapshot {} holds an entry named {:?}, which is not a plain file name",
                    snap.id, name
                )));
            }
            let path = rel.join(&*name);
            if child.is_dir() {
                stack.push((path, child));
            } else if child.is_file() {
                out.push((path, child));
            } else {
                return Err(Error::invalid(format!(
                    "snapshot {} holds {} which is neither a file nor a directory",
                    snap.id,
                    path.display()
                )));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Write every file of `snap` under `dest` (0700 directories, 0600 files,
/// never overwriting), checking each size; returns the relative paths.
fn dump_files<S: rustic_core::IndexedFull>(
    full: &Repository<S>,
    snap: &SnapshotFile,
    parts: &[RestorePart],
    progress: Option<&Arc<dyn crate::progress::ProgressSink>>,
) -> Result<Vec<PathBuf>>
where
    Repository<S>: Sync,
{
    // (relative to its part, where it is written, the node, its part)
    let files: Vec<(PathBuf, PathBuf, Node, &RestorePart)> = snapshot_files(full, snap)?
        .into_iter()
        .filter_map(|(path, node)| {
            parts.iter().find_map(|part| {
                let rel = path.strip_prefix(&part.under).ok()?;
                if rel.as_os_str().is_empty() {
                    // A part that names one file: written as its destination.
                    if part.under.as_os_str().is_empty() {
                        return None;
                    }
                    let name = PathBuf::from(part.under.file_name()?);
                    return Some((name, part.dest.clone(), node.clone(), part));
                }
                Some((rel.to_path_buf(), part.dest.join(rel), node.clone(), part))
            })
        })
        .collect();
    let total = files.iter().map(|(_, _, node, _)| node.meta.size).sum();
    let bar = crate::progress::Progress::begin(
        progress,
        "reading snapshot",
        Some(total),
        crate::progress::Unit::Bytes,
    );
    let mut directories: Vec<&Path> = files.iter().filter_map(|(_, p, _, _)| p.parent()).collect();
    directories.dedup();
    for parent in directories {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .context(|| format!("create {}", parent.display()))?;
    }
    // One file per worker at a time: decompressing and decrypting take a
    // core each (a base backup is hundreds of files).
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, files.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    use std::sync::atomic::Ordering;
                    while !failed.load(Ordering::Relaxed) {
                        let Some((rel, path, node, part)) =
                            files.get(next.fetch_add(1, Ordering::Relaxed))
                        else {
                            return Ok(());
                        };
                        if let Err(e) = dump_file(full, snap, rel, node, path, part.writeback, &bar)
                        {
                            failed.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("a snapshot reader panicked"))
    })?;
    Ok(files.into_iter().map(|(rel, _, _, _)| rel).collect())
}

/// Write one file of `snap` (`rel` in its part) at `path` (0600, never
/// overwriting), its writeback started if `writeback`, and check its size.
fn dump_file<S: rustic_core::IndexedFull>(
    full: &Repository<S>,
    snap: &SnapshotFile,
    rel: &Path,
    node: &Node,
    path: &Path,
    writeback: bool,
    bar: &crate::progress::Progress,
) -> Result<()> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .context(|| format!("create {}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    full.dump(node, &mut crate::progress::Counted::new(&mut out, bar))
        .map_err(|e| engine_error(&format!("read {} from the snapshot", rel.display()), &e))?;
    out.flush()
        .context(|| format!("write {}", path.display()))?;
    if writeback {
        crate::durable::start_writeback(out.get_ref());
    }
    let size = std::fs::metadata(path)
        .context(|| format!("stat {}", path.display()))?
        .len();
    if size != node.meta.size {
        return Err(Error::invalid(format!(
            "{} in snapshot {} came back with {size} bytes instead of {}; run 'holdfast repo check --read-data'",
            rel.display(),
            snap.id,
            node.meta.size
        )));
    }
    Ok(())
}

/// Check that `snap` holds every staged file with its size; an incomplete
/// snapshot is removed again.
fn check_complete<S: rustic_core::IndexedIds>(
    indexed: &Repository<S>,
    snap: &SnapshotFile,
    staged_files: &[(PathBuf, u64)],
) -> Result<SnapshotInfo> {
    let info = SnapshotInfo::from_file(snap);
    let stored: Vec<(PathBuf, u64)> = snapshot_files(indexed, snap)?
        .into_iter()
        .map(|(p, n)| (p, n.meta.size))
        .collect();
    if stored != staged_files {
        let missing: Vec<String> = staged_files
            .iter()
            .filter(|f| !stored.contains(f))
            .map(|(p, _)| p.display().to_string())
            .collect();
        let removed = indexed.delete_snapshots(&[snap.id]).is_ok();
        return Err(Error::failed(format!(
            "snapshot {} is incomplete (missing or short: {}); {}",
            info.short_id(),
            missing.join(", "),
            if removed {
                "it was removed again"
            } else {
                "removing it failed too: remove it with 'holdfast repo forget' or restic"
            }
        )));
    }
    Ok(info)
}

/// A rustic_core error as one line: what we were doing and what it said,
/// with every known secret masked (a backend's message may quote its URL
/// with the REST password).
fn engine_error(doing: &str, e: &RusticError) -> Error {
    let text = e.display_log();
    let text = text.strip_prefix("Error: ").unwrap_or(&text);
    let text = Redactor::global().redact(&text.replace('\n', " "));
    // A REST server's refusals, which rustic reports as a generic failure.
    if text.contains("401 Unauthorized") {
        return Error::usage(format!(
            "{doing}: {REST_REFUSED} (401 Unauthorized); check the user (in the location or RESTIC_REST_USERNAME) and the password (--rest-password-file, HOLDFAST_REST_PASSWORD or RESTIC_REST_PASSWORD)"
        ));
    }
    if text.contains("403 Forbidden") {
        return Error::failed(format!(
            "{doing}: the server refused to delete or replace a file (403 Forbidden): it is append-only, so forget and prune must run elsewhere (against the repository's directory on the server's machine, or through a server without --append-only){}",
            if text.contains("not your repository") { "; or the repository belongs to another user (private repositories)" } else { "" }
        ));
    }
    Error::failed(format!("{doing}: {text}"))
}

/// What a 401 from a REST server means.
const REST_REFUSED: &str = "the REST server refused the user or password";

/// One file of a snapshot, read at any offset (see [`Repo::into_file_readers`]).
pub struct SnapshotFileReader {
    repo: Arc<Repository<rustic_core::IndexedFullStatus>>,
    file: rustic_core::vfs::OpenFile,
    size: u64,
    path: String,
}

impl SnapshotFileReader {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// `length` bytes at `offset` (fewer only at the end of the file).
    pub fn read_at(&self, offset: u64, length: usize) -> Result<Vec<u8>> {
        let bytes = self
            .repo
            .read_file_at(&self.file, offset as usize, length)
            .map_err(|e| engine_error(&format!("read {} from the snapshot", self.path), &e))?;
        Ok(bytes.to_vec())
    }
}
