//! The repository engine: the only code that speaks rustic_core. It opens or
//! creates a repository of restic's format at a [`RepoLocation`] (v2, zstd level 3), stores a
//! staged directory as one snapshot, reads a snapshot's files back, forgets
//! snapshots by a keep policy, prunes (two-phase by default) and checks.
//!
//! rustic_core logs what it skips instead of failing (an unreadable file is
//! left out of the snapshot with a warning), so every backup is checked here
//! against the staged files before it counts.

use std::io::{BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use bytesize::ByteSize;
use rustic_backend::BackendOptions;
use rustic_core::jiff::Zoned;
use rustic_core::repofile::{Node, SnapshotFile};
use rustic_core::{
    BackupOptions, CheckOptions, ConfigOptions, Credentials, FileType, ForgetGroups, Grouped,
    IndexedTree, KeyOptions, OpenStatus, ParentOptions, PruneOptions, ReadBackend, Repository,
    RepositoryBackends, RepositoryOptions, RusticError, SnapshotGroupCriterion, SnapshotOptions,
};

use super::location::RepoLocation;
use super::retention::{Retention, Verdict};
use super::source::StagedSource;
use super::{HOLDFAST_TAG, SNAPSHOT_ROOT};
use crate::secret::Redactor;
use crate::{Error, IoContext, Password, Result};

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

/// What prune did (or would do, on a dry run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Packs deleted in this run (marked long enough ago, or instant mode).
    pub packs_deleted: u64,
    pub bytes_deleted: u64,
    /// Packs marked for deletion now, to be deleted by a prune 23 hours later.
    pub packs_marked: u64,
    /// Marked packs that a snapshot needs again: unmarked.
    pub packs_recovered: u64,
    /// Partly used packs whose live blobs are written anew.
    pub packs_repacked: u64,
    /// Bytes of unused blobs, before this prune.
    pub unused_bytes: u64,
    /// Bytes of used blobs.
    pub used_bytes: u64,
}

/// Findings of a check.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    pub read_data: bool,
    pub snapshots: usize,
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
        let fresh = Repository::new(&options(), &backends(location)?)
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
        Repo::check_location(location)?;
        let repo = Repository::new(&options(), &backends(location)?)
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
        })
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
        // Every file is read in full: no parent's metadata is trusted.
        let opts = BackupOptions::default().parent_opts(ParentOptions::default().force(true));
        let staged_files = source.files(&root);
        let indexed = self
            .take_repo()?
            .to_indexed_ids()
            .map_err(|e| engine_error("read the repository index", &e))?;
        let written = indexed
            .archive(&opts, &source, snap, std::slice::from_ref(&root))
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
        let snap = self.find_snapshot(snapshot)?;
        let full = self
            .take_repo()?
            .to_indexed()
            .map_err(|e| engine_error("read the repository index", &e))?;
        let written = dump_files(&full, &snap, dest);
        self.give_back(full);
        Ok((SnapshotInfo::from_file(&snap), written?))
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
        let all = self
            .open_repo()?
            .get_all_snapshots()
            .map_err(|e| engine_error("list snapshots", &e))?;
        let groups = Grouped::from_items(all, SnapshotGroupCriterion::default());
        let decided = ForgetGroups::from_grouped_snapshots_with_retention(groups, &keep, now)
            .map_err(|e| Error::usage(e.display_log()))?;
        let verdicts: Vec<Verdict<SnapshotInfo>> = decided
            .0
            .iter()
            .flat_map(|g| g.items.iter())
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

    /// Remove the data no snapshot needs any more.
    pub fn prune(&self, mode: PruneMode, dry_run: bool) -> Result<PruneReport> {
        let opts = PruneOptions::default().instant_delete(mode == PruneMode::Instant);
        let plan = self
            .open_repo()?
            .prune_plan(&opts)
            .map_err(|e| engine_error("plan the prune", &e))?;
        let s = &plan.stats;
        let mut report = PruneReport {
            packs_deleted: s.packs_to_delete.remove,
            bytes_deleted: s.size_to_delete.remove,
            packs_marked: s.packs.unused,
            packs_recovered: s.packs_to_delete.recover,
            packs_repacked: s.packs.repack,
            unused_bytes: s.size.values().map(|x| x.unused).sum(),
            used_bytes: s.size.values().map(|x| x.used).sum(),
        };
        if mode == PruneMode::Instant {
            report.packs_deleted += report.packs_marked;
            report.packs_marked = 0;
        }
        if !dry_run {
            self.open_repo()?
                .prune(&opts, plan)
                .map_err(|e| engine_error("prune", &e))?;
        }
        Ok(report)
    }

    /// Check the repository's structure (index, packs listed, snapshots and
    /// trees); with `read_data`, also read and verify every pack.
    pub fn check(&self, read_data: bool) -> Result<CheckReport> {
        let results = self
            .open_repo()?
            .check(CheckOptions::default().read_data(read_data))
            .map_err(|e| engine_error("check", &e))?;
        let mut report = CheckReport {
            read_data,
            snapshots: self.snapshots()?.len(),
            ..Default::default()
        };
        for (level, finding) in &results.0 {
            let text = finding.to_string();
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

fn options() -> RepositoryOptions {
    // No local cache: it would write under the user's home, and for a local
    // repository only duplicate it.
    RepositoryOptions::default().no_cache(true)
}

fn backends(location: &RepoLocation) -> Result<RepositoryBackends> {
    let (repository, extra) = location.backend_spec();
    BackendOptions::default()
        .repository(repository)
        .options(extra)
        .to_backends()
        .map_err(|e| engine_error(&format!("use {location} as a repository"), &e))
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
    dest: &Path,
) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (rel, node) in snapshot_files(full, snap)? {
        let path = dest.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .context(|| format!("create {}", parent.display()))?;
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .context(|| format!("create {}", path.display()))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        full.dump(&node, &mut out)
            .map_err(|e| engine_error(&format!("read {} from the snapshot", rel.display()), &e))?;
        out.flush()
            .context(|| format!("write {}", path.display()))?;
        let size = std::fs::metadata(&path)
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
        written.push(rel);
    }
    Ok(written)
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
