//! The `files` member: an inner tar of the application's configuration files,
//! names relative to the install root. Packing keeps owner, group, mode, mtime,
//! symlinks (not followed) and empty directories. Restoring first makes a plan
//! (every path that will be created or replaced, so the caller can keep the
//! current files aside) and refuses entries that would land outside the root.

use std::collections::{BTreeSet, HashSet};
use std::fs::{File, FileTimes};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use super::codec::Codec;
use super::owner;
use super::printable;
use super::reader::ReadLimits;
use crate::error::{Error, IoContext, Result};

/// Which paths of an install root go into the `files` member.
#[derive(Debug, Clone, Default)]
pub struct FileSet {
    /// Paths relative to the root, in archive order; a directory brings its
    /// subtree. Paths that do not exist are skipped.
    pub include: Vec<String>,
    /// Globs over root-relative paths (`*` stays within a component, `**`
    /// crosses them); a matching directory is skipped with its subtree.
    pub exclude: Vec<String>,
}

/// Compile exclusion globs.
fn compile_excludes(patterns: &[String]) -> Result<GlobSet> {
    compile_globs(patterns, "exclude pattern")
}

/// Compile root-relative globs (`*` stays within a component); `what` names
/// them in a refusal.
fn compile_globs(patterns: &[String], what: &str) -> Result<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    for p in patterns {
        let glob = GlobBuilder::new(p.trim_start_matches('/').trim_end_matches('/'))
            .literal_separator(true)
            .build()
            .map_err(|e| Error::usage(format!("bad {what} {p:?}: {e}")))?;
        builder.add(glob);
    }
    builder
        .build()
        .map_err(|e| Error::usage(format!("bad {what}s: {e}")))
}

/// Whether `relative` or one of its ancestors matches one of `globs`.
fn matches_or_lies_below(globs: &GlobSet, relative: &Path) -> bool {
    relative
        .ancestors()
        .any(|a| !a.as_os_str().is_empty() && globs.is_match(a))
}

/// Which entries of a `files` tar a [`FilesPlan`] takes.
#[derive(Debug)]
enum EntryFilter {
    /// Every entry but those matching (or below a match of) these globs.
    Except(GlobSet),
    /// Only the entries matching (or below a match of) `wanted`; the
    /// directories above them are created as missing parents. `through`
    /// holds the paths on the way to a wanted path: a link there, or a
    /// wanted link, leads elsewhere in the tar.
    Only {
        wanted: GlobSet,
        through: HashSet<PathBuf>,
    },
}

impl EntryFilter {
    /// Only the paths `wanted` names (relative to the root, a glob allowed in
    /// the last component); `None` when a glob sits higher up, where the
    /// paths on the way to a match cannot be listed.
    fn only(wanted: &[String]) -> Result<Option<EntryFilter>> {
        let mut through = HashSet::new();
        for w in wanted {
            let path = Path::new(w.trim_start_matches('/'));
            for ancestor in path.ancestors().skip(1) {
                if ancestor.as_os_str().is_empty() {
                    break;
                }
                if ancestor.to_string_lossy().contains(['*', '?', '[', '{']) {
                    return Ok(None);
                }
                through.insert(ancestor.to_path_buf());
            }
        }
        Ok(Some(EntryFilter::Only {
            wanted: compile_globs(wanted, "path to preview")?,
            through,
        }))
    }

    fn takes(&self, relative: &Path) -> bool {
        match self {
            EntryFilter::Except(excluded) => !matches_or_lies_below(excluded, relative),
            EntryFilter::Only { wanted, .. } => matches_or_lies_below(wanted, relative),
        }
    }

    /// Whether a link at `relative` would make a preview of only the
    /// wanted paths differ from the whole tree's.
    fn link_matters(&self, relative: &Path) -> bool {
        match self {
            EntryFilter::Except(_) => false,
            EntryFilter::Only { through, .. } => self.takes(relative) || through.contains(relative),
        }
    }
}

/// What [`pack_files`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackedFiles {
    /// Entry names in archive order.
    pub entries: Vec<String>,
    /// Sockets, fifos and devices found and left out.
    pub skipped: Vec<String>,
}

/// Write the `files` tar of `set` under `root` through `codec` to `out`;
/// returns `out` once the compressed stream is complete.
pub fn pack_files<W: Write>(
    root: &Path,
    set: &FileSet,
    codec: Codec,
    level: Option<i32>,
    threads: u32,
    out: W,
) -> Result<(W, PackedFiles)> {
    let excludes = compile_excludes(&set.exclude)?;
    let encoder = codec.encoder(out, level, threads)?;
    let mut tar = tar::Builder::new(encoder);
    tar.follow_symlinks(false);
    let mut packed = PackedFiles::default();
    for include in &set.include {
        let relative = clean_relative(include).ok_or_else(|| {
            Error::usage(format!(
                "include path {include:?} must stay inside the install root"
            ))
        })?;
        let path = root.join(&relative);
        match path.symlink_metadata() {
            Ok(_) => pack_tree(&mut tar, root, &relative, &excludes, &mut packed)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io_path("stat", &path, e)),
        }
    }
    let encoder = tar
        .into_inner()
        .map_err(|e| Error::io("write the files archive", e))?;
    let out = encoder
        .finish()
        .map_err(|e| Error::io("write the files archive", e))?;
    Ok((out, packed))
}

/// A relative path without `.`, `..` or a root; `None` if it would escape.
fn clean_relative(path: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(path.trim_start_matches('/')).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

fn pack_tree<W: Write>(
    tar: &mut tar::Builder<W>,
    root: &Path,
    relative: &Path,
    excludes: &GlobSet,
    packed: &mut PackedFiles,
) -> Result<()> {
    if matches_or_lies_below(excludes, relative) {
        return Ok(());
    }
    let path = root.join(relative);
    let meta = path
        .symlink_metadata()
        .context(|| format!("stat {}", path.display()))?;
    let name = relative.to_string_lossy().into_owned();
    let kind = meta.file_type();
    let mut header = tar::Header::new_gnu();
    header.set_mode(meta.mode() & 0o7777);
    header.set_uid(meta.uid() as u64);
    header.set_gid(meta.gid() as u64);
    if let Some(user) = owner::user_name(meta.uid()) {
        let _ = header.set_username(&user);
    }
    if let Some(group) = owner::group_name(meta.gid()) {
        let _ = header.set_groupname(&group);
    }
    header.set_mtime(meta.mtime().max(0) as u64);
    let write_err = |e: io::Error| Error::io(format!("pack {}", path.display()), e);
    if kind.is_dir() {
        let dir_name = format!("{name}/");
        header.set_entry_type(tar::EntryType::Directory);
        header.set_size(0);
        tar.append_data(&mut header, &dir_name, io::empty())
            .map_err(write_err)?;
        packed.entries.push(dir_name);
        let mut children: Vec<_> = std::fs::read_dir(&path)
            .context(|| format!("read directory {}", path.display()))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .context(|| format!("read directory {}", path.display()))?;
        children.sort();
        for child in children {
            pack_tree(tar, root, &relative.join(child), excludes, packed)?;
        }
    } else if kind.is_symlink() {
        let target =
            std::fs::read_link(&path).context(|| format!("readlink {}", path.display()))?;
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        tar.append_link(&mut header, &name, &target)
            .map_err(write_err)?;
        packed.entries.push(name);
    } else if kind.is_file() {
        let file = File::open(&path).context(|| format!("open {}", path.display()))?;
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(meta.len());
        let mut limited = file.take(meta.len());
        tar.append_data(&mut header, &name, &mut limited)
            .map_err(write_err)?;
        if limited.limit() != 0 {
            return Err(Error::failed(format!(
                "{} shrank while it was being archived",
                path.display()
            )));
        }
        packed.entries.push(name);
    } else {
        packed.skipped.push(name);
    }
    Ok(())
}

/// The kind of an entry to restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlannedKind {
    Directory,
    File,
    Symlink,
    /// A hard link to a file restored earlier from the same tar.
    HardLink,
}

/// One path the restore will create or replace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedEntry {
    /// Path relative to the install root.
    pub path: PathBuf,
    pub kind: PlannedKind,
    /// Something exists at this path now (it will be replaced, or for a
    /// directory kept and given the archived mode and owner).
    pub exists: bool,
    /// A regular file that already is what the entry holds (bytes, size,
    /// mode, time and, as root, owner): left alone, neither kept nor written.
    pub already_there: bool,
}

/// What restoring a `files` member will do, computed before anything is
/// written. [`FilesPlan::apply`] carries it out.
#[derive(Debug)]
pub struct FilesPlan {
    member: PathBuf,
    root: PathBuf,
    filter: EntryFilter,
    limits: ReadLimits,
    entries: Vec<PlannedEntry>,
    missing_parents: Vec<PathBuf>,
    /// The sizes of the entries to write, added up.
    bytes: u64,
}

impl FilesPlan {
    /// Read the `files` tar at `member` and plan its extraction into `root`,
    /// skipping entries that match `exclude`. Any entry that is not a
    /// directory, regular file, symlink or hard link inside the tar, or whose
    /// path would leave `root`, makes the whole plan fail.
    pub fn new(
        member: &Path,
        root: &Path,
        exclude: &[String],
        limits: ReadLimits,
    ) -> Result<FilesPlan> {
        let filter = EntryFilter::Except(compile_excludes(exclude)?);
        Ok(FilesPlan::with_filter(member, root, filter, limits)?
            .expect("a plan of every entry but the excluded always completes"))
    }

    /// Plan the extraction into `root` of only the entries `wanted` names
    /// (paths relative to the root, a glob allowed in the last component),
    /// with the directories above them: a preview of those paths. Every entry
    /// is planned when a symlink or hard link is wanted or lies on the way to
    /// a wanted path, since what it leads to may be anywhere in the tar.
    pub fn preview(
        member: &Path,
        root: &Path,
        wanted: &[String],
        limits: ReadLimits,
    ) -> Result<FilesPlan> {
        if let Some(only) = EntryFilter::only(wanted)? {
            if let Some(plan) = FilesPlan::with_filter(member, root, only, limits)? {
                return Ok(plan);
            }
        }
        FilesPlan::new(member, root, &[], limits)
    }

    /// The plan of the entries `filter` takes; `None` when it takes only
    /// some and a link among or above them means all are needed.
    fn with_filter(
        member: &Path,
        root: &Path,
        filter: EntryFilter,
        limits: ReadLimits,
    ) -> Result<Option<FilesPlan>> {
        let canonical_root = root
            .canonicalize()
            .map_err(|e| Error::usage(format!("install root {}: {e}", root.display())))?;
        let fail =
            |what: String| Error::invalid(format!("{}: {}", member.display(), printable(&what)));
        let mut entries: Vec<PlannedEntry> = Vec::new();
        // Every planned path, and those of its symlinks and regular files:
        // looked up for each entry's ancestors (a list would make planning
        // quadratic in the number of entries).
        let mut seen: HashSet<PathBuf> = HashSet::new();
        let mut symlinks: HashSet<PathBuf> = HashSet::new();
        let mut regular_files: HashSet<PathBuf> = HashSet::new();
        let mut missing_parents: Vec<PathBuf> = Vec::new();
        let mut missing_seen: HashSet<PathBuf> = HashSet::new();
        let mut total = 0u64;
        let mut to_write = 0u64;
        let mut link_matters = false;
        let as_root = running_as_root();
        for_each_entry(member, &limits, |header, name, data| {
            if link_matters {
                return Ok(());
            }
            let relative = entry_path(name).map_err(fail)?;
            let kind = planned_kind(header.entry_type());
            if matches!(kind, Some(PlannedKind::Symlink | PlannedKind::HardLink))
                && filter.link_matters(&relative)
            {
                link_matters = true;
                return Ok(());
            }
            if !filter.takes(&relative) {
                return Ok(());
            }
            let kind = kind.ok_or_else(|| {
                fail(format!(
                    "entry '{name}' is a {}; refusing to restore it",
                    kind_name(header.entry_type())
                ))
            })?;
            if !seen.insert(relative.clone()) {
                return Err(fail(format!("duplicate entry '{name}'")));
            }
            let size = header.size().map_err(|e| fail(e.to_string()))?;
            total += size;
            if size > limits.max_member_bytes || total > limits.max_total_bytes {
                return Err(fail(format!("entry '{name}' exceeds the size limit")));
            }
            // Nothing may be written below a symlink that this tar creates.
            for ancestor in relative.ancestors().skip(1) {
                if symlinks.contains(ancestor) {
                    return Err(fail(format!(
                        "entry '{name}' would be written through the symlink '{}'",
                        ancestor.display()
                    )));
                }
            }
            check_parents_inside(root, &canonical_root, &relative).map_err(fail)?;
            if kind == PlannedKind::HardLink {
                let target = header
                    .link_name()
                    .map_err(|e| fail(e.to_string()))?
                    .ok_or_else(|| fail(format!("hard link '{name}' has no target")))?;
                let target = entry_path(&target.to_string_lossy()).map_err(fail)?;
                if !regular_files.contains(&target) {
                    return Err(fail(format!(
                        "hard link '{name}' points to '{}', which is not a file restored from this archive",
                        target.display()
                    )));
                }
            }
            let absolute = root.join(&relative);
            let existing = absolute.symlink_metadata().ok();
            match (&existing, kind) {
                (Some(m), PlannedKind::Directory) if !m.is_dir() => {
                    return Err(fail(format!(
                        "{} exists and is not a directory; cannot restore directory '{name}'",
                        absolute.display()
                    )))
                }
                (Some(m), k) if k != PlannedKind::Directory && m.is_dir() => {
                    return Err(fail(format!(
                        "{} is a directory; cannot restore '{name}' over it",
                        absolute.display()
                    )))
                }
                _ => {}
            }
            for ancestor in relative.ancestors().skip(1) {
                if ancestor.as_os_str().is_empty() {
                    break;
                }
                if !seen.contains(ancestor)
                    && !missing_seen.contains(ancestor)
                    && !root.join(ancestor).exists()
                {
                    missing_parents.push(ancestor.to_path_buf());
                    missing_seen.insert(ancestor.to_path_buf());
                }
            }
            match kind {
                PlannedKind::Symlink => symlinks.insert(relative.clone()),
                PlannedKind::File => regular_files.insert(relative.clone()),
                _ => false,
            };
            let already_there = kind == PlannedKind::File
                && existing
                    .as_ref()
                    .is_some_and(|m| already_there(&absolute, m, header, data, as_root));
            if !already_there {
                to_write += size;
            }
            entries.push(PlannedEntry {
                path: relative,
                kind,
                exists: existing.is_some(),
                already_there,
            });
            Ok(())
        })?;
        if link_matters {
            return Ok(None);
        }
        missing_parents.sort_by_key(|p| p.components().count());
        Ok(Some(FilesPlan {
            member: member.to_path_buf(),
            root: root.to_path_buf(),
            filter,
            limits,
            entries,
            missing_parents,
            bytes: to_write,
        }))
    }

    /// The sizes of the entries to write (not [`PlannedEntry::already_there`]), added up.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Every entry that will be restored, in tar order.
    pub fn entries(&self) -> &[PlannedEntry] {
        &self.entries
    }

    /// Absolute paths of existing files, symlinks and directories the restore
    /// will replace or modify: what to keep aside for a rollback.
    pub fn existing_paths(&self) -> Vec<PathBuf> {
        self.entries
            .iter()
            .filter(|e| e.exists && !e.already_there)
            .map(|e| self.root.join(&e.path))
            .collect()
    }

    /// Directories that do not exist and will be created (0755, root-relative,
    /// parents first) because an entry lies below them.
    pub fn missing_parents(&self) -> &[PathBuf] {
        &self.missing_parents
    }

    /// Extract the planned entries into the install root, keeping mode,
    /// mtime and, when running as root, owner and group. Files and symlinks
    /// are written to a temporary name and renamed into place; once all are
    /// written, each written file and each directory holding one is synced.
    /// Syncing after the last write lets the first sync's journal commit
    /// carry most of them (an fsync per file as it is written cost seconds
    /// for a few hundred conf files), and syncing only what was written does
    /// not wait for the rest of the filesystem (a `syncfs` waited for every
    /// dirty page on it, the restore's own temporary files included).
    pub fn apply(&self) -> Result<()> {
        self.write_entries()?.sync()
    }

    /// [`FilesPlan::apply`] without the final sync: for a throwaway preview.
    pub fn apply_unsynced(&self) -> Result<()> {
        self.write_entries().map(drop)
    }

    fn write_entries(&self) -> Result<Written> {
        let canonical_root = self
            .root
            .canonicalize()
            .context(|| format!("resolve {}", self.root.display()))?;
        let mut written = Written::default();
        for parent in &self.missing_parents {
            let path = self.root.join(parent);
            if !path.exists() {
                std::fs::create_dir(&path).context(|| format!("create {}", path.display()))?;
                written.entry_in(&path);
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                    .context(|| format!("chmod {}", path.display()))?;
            }
        }
        let as_root = running_as_root();
        let fail = |what: String| {
            Error::invalid(format!("{}: {}", self.member.display(), printable(&what)))
        };
        let mut next = 0usize;
        let mut dir_times: Vec<(PathBuf, u64)> = Vec::new();
        for_each_entry(&self.member, &self.limits, |header, name, data| {
            let relative = entry_path(name).map_err(fail)?;
            if !self.filter.takes(&relative) {
                return Ok(());
            }
            let planned = self
                .entries
                .get(next)
                .filter(|e| e.path == relative)
                .ok_or_else(|| {
                    fail(format!(
                        "entry '{name}' changed since the restore was planned"
                    ))
                })?;
            next += 1;
            check_parents_inside(&self.root, &canonical_root, &relative).map_err(fail)?;
            let path = self.root.join(&relative);
            let mode = header.mode().map_err(|e| fail(e.to_string()))? & 0o7777;
            let mtime = header.mtime().map_err(|e| fail(e.to_string()))?;
            let owner = if as_root {
                Some(owner::owner_for(header).map_err(|e| fail(e.to_string()))?)
            } else {
                None
            };
            match planned.kind {
                PlannedKind::Directory => {
                    if !path.is_dir() {
                        std::fs::create_dir(&path)
                            .context(|| format!("create {}", path.display()))?;
                    }
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                        .context(|| format!("chmod {}", path.display()))?;
                    if let Some((uid, gid)) = owner {
                        std::os::unix::fs::lchown(&path, Some(uid), Some(gid))
                            .context(|| format!("chown {}", path.display()))?;
                    }
                    written.entry_in(&path);
                    dir_times.push((path, mtime));
                }
                PlannedKind::File if planned.already_there => {}
                PlannedKind::File => {
                    let size = header.size().map_err(|e| fail(e.to_string()))?;
                    write_file(&path, data, size, mode, mtime, owner).map_err(|e| match e {
                        Error::Io { .. } => e,
                        other => fail(other.to_string()),
                    })?;
                    written.file(path);
                }
                PlannedKind::Symlink => {
                    let target = header
                        .link_name()
                        .map_err(|e| fail(e.to_string()))?
                        .ok_or_else(|| fail(format!("symlink '{name}' has no target")))?;
                    replace_with_symlink(&path, &target, owner)?;
                    written.entry_in(&path);
                }
                PlannedKind::HardLink => {
                    let target = header
                        .link_name()
                        .map_err(|e| fail(e.to_string()))?
                        .ok_or_else(|| fail(format!("hard link '{name}' has no target")))?;
                    let target = self
                        .root
                        .join(entry_path(&target.to_string_lossy()).map_err(fail)?);
                    if path.symlink_metadata().is_ok() {
                        std::fs::remove_file(&path)
                            .context(|| format!("remove {}", path.display()))?;
                    }
                    std::fs::hard_link(&target, &path)
                        .context(|| format!("link {} to {}", path.display(), target.display()))?;
                    written.entry_in(&path);
                }
            }
            Ok(())
        })?;
        if next != self.entries.len() {
            return Err(fail(
                "the files archive changed since the restore was planned".into(),
            ));
        }
        // Directory times last: writing their contents changed them.
        for (dir, mtime) in dir_times.iter().rev() {
            let times = FileTimes::new().set_modified(UNIX_EPOCH + Duration::from_secs(*mtime));
            File::open(dir)
                .and_then(|d| d.set_times(times))
                .context(|| format!("set the time of {}", dir.display()))?;
        }
        Ok(written)
    }
}

/// What [`FilesPlan::apply`] wrote, to be synced: the files, and the
/// directories whose entries changed.
#[derive(Debug, Default)]
struct Written {
    files: Vec<PathBuf>,
    dirs: BTreeSet<PathBuf>,
}

impl Written {
    fn file(&mut self, path: PathBuf) {
        self.entry_in(&path);
        self.files.push(path);
    }

    /// An entry of `path`'s directory was created, renamed or linked.
    fn entry_in(&mut self, path: &Path) {
        if let Some(dir) = path.parent() {
            self.dirs.insert(dir.to_path_buf());
        }
    }

    fn sync(&self) -> Result<()> {
        for path in self.files.iter().chain(&self.dirs) {
            File::open(path)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io_path("sync", path, e))?;
        }
        Ok(())
    }
}

/// Run `visit` on every entry of the (compressed) tar at `member`, with its
/// header, its name and its data. A damaged stream is an Invalid error.
fn for_each_entry(
    member: &Path,
    limits: &ReadLimits,
    mut visit: impl FnMut(&tar::Header, &str, &mut dyn Read) -> Result<()>,
) -> Result<()> {
    let fail = |what: String| Error::invalid(format!("{}: {}", member.display(), printable(&what)));
    let file = File::open(member).context(|| format!("open {}", member.display()))?;
    let (codec, decoder) = Codec::detect_decoder(file)
        .map_err(|e| fail(format!("cannot read the files archive: {e}")))?;
    let damaged = |e: io::Error| {
        fail(format!(
            "the files archive ({codec}) is damaged or truncated: {e}"
        ))
    };
    let mut tar = tar::Archive::new(decoder);
    let mut count = 0usize;
    for entry in tar.entries().map_err(damaged)? {
        let mut entry = entry.map_err(damaged)?;
        count += 1;
        if count > limits.max_entries {
            return Err(fail(format!("more than {} entries", limits.max_entries)));
        }
        let name = String::from_utf8(entry.path_bytes().into_owned())
            .map_err(|_| fail("an entry name is not UTF-8".into()))?;
        let header = entry.header().clone();
        visit(&header, &name, &mut entry)?;
    }
    Ok(())
}

/// Root-relative path of a tar entry name; refuses absolute names and `..`.
fn entry_path(name: &str) -> std::result::Result<PathBuf, String> {
    if name.starts_with('/') {
        return Err(format!("entry '{name}' has an absolute path"));
    }
    let mut out = PathBuf::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return Err(format!("entry '{name}' leaves the install root")),
        }
    }
    if out.as_os_str().is_empty() {
        return Err(format!("entry '{name}' has an empty path"));
    }
    Ok(out)
}

fn planned_kind(kind: tar::EntryType) -> Option<PlannedKind> {
    match kind {
        tar::EntryType::Directory => Some(PlannedKind::Directory),
        tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
            Some(PlannedKind::File)
        }
        tar::EntryType::Symlink => Some(PlannedKind::Symlink),
        tar::EntryType::Link => Some(PlannedKind::HardLink),
        _ => None,
    }
}

fn kind_name(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::Char => "character device",
        tar::EntryType::Block => "block device",
        tar::EntryType::Fifo => "fifo",
        _ => "special entry",
    }
}

/// Every existing ancestor of `relative` below `root` must resolve inside the
/// root: a symlink there pointing elsewhere would redirect the write.
fn check_parents_inside(
    root: &Path,
    canonical_root: &Path,
    relative: &Path,
) -> std::result::Result<(), String> {
    let Some(parent) = relative.parent() else {
        return Ok(());
    };
    let mut existing = root.join(parent);
    // The deepest ancestor that exists decides where the write lands.
    while existing.symlink_metadata().is_err() {
        if !existing.pop() {
            return Ok(());
        }
    }
    let resolved = existing
        .canonicalize()
        .map_err(|e| format!("cannot resolve {}: {e}", existing.display()))?;
    if !resolved.starts_with(canonical_root) {
        return Err(format!(
            "'{}' would be written through {}, which leads outside the install root",
            relative.display(),
            existing.display()
        ));
    }
    Ok(())
}

/// Write a regular file via a temporary name in its directory.
fn write_file(
    path: &Path,
    data: &mut dyn Read,
    size: u64,
    mode: u32,
    mtime: u64,
    owner: Option<(u32, u32)>,
) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::Builder::new()
        .prefix(".holdfast-restore.")
        .tempfile_in(dir)
        .context(|| format!("create a temporary file in {}", dir.display()))?;
    let copied = io::copy(&mut data.take(size), temp.as_file_mut())
        .context(|| format!("write {}", path.display()))?;
    if copied != size {
        return Err(Error::invalid(format!(
            "entry for {} is truncated ({copied} of {size} bytes)",
            path.display()
        )));
    }
    let file = temp.as_file();
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(file, Some(uid), Some(gid))
            .context(|| format!("chown {}", path.display()))?;
    }
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .context(|| format!("chmod {}", path.display()))?;
    file.set_times(FileTimes::new().set_modified(UNIX_EPOCH + Duration::from_secs(mtime)))
        .context(|| format!("set the time of {}", path.display()))?;
    temp.persist(path)
        .map_err(|e| Error::io_path("rename into", path, e.error))?;
    Ok(())
}

/// Whether owners are restored (and compared): only root can set them.
fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether the regular file at `path` (of metadata `meta`) already is what
/// the entry of `header` and `data` would write there: same size, mode,
/// modification time, owner when running as root, and bytes. Restoring onto
/// the machine that was backed up finds most conf files so.
fn already_there(
    path: &Path,
    meta: &std::fs::Metadata,
    header: &tar::Header,
    data: &mut dyn Read,
    as_root: bool,
) -> bool {
    let same_meta = meta.is_file()
        && header.size().is_ok_and(|size| size == meta.len())
        && header
            .mode()
            .is_ok_and(|mode| mode & 0o7777 == meta.mode() & 0o7777)
        && header
            .mtime()
            .is_ok_and(|t| i64::try_from(t) == Ok(meta.mtime()) && meta.mtime_nsec() == 0);
    let same_owner =
        || !as_root || owner::owner_for(header).is_ok_and(|o| o == (meta.uid(), meta.gid()));
    same_meta && same_owner() && File::open(path).is_ok_and(|file| same_bytes(file, data))
}

/// Whether two readers give the same bytes.
fn same_bytes(mut a: impl Read, b: &mut dyn Read) -> bool {
    let (mut x, mut y) = (vec![0u8; 64 << 10], vec![0u8; 64 << 10]);
    loop {
        let n = match a.read(&mut x) {
            Ok(n) => n,
            Err(_) => return false,
        };
        if n == 0 {
            // The other must end here too.
            return matches!(b.read(&mut y[..1]), Ok(0));
        }
        if b.read_exact(&mut y[..n]).is_err() || x[..n] != y[..n] {
            return false;
        }
    }
}

/// Put a symlink at `path`, replacing whatever is there without following it.
fn replace_with_symlink(path: &Path, target: &Path, owner: Option<(u32, u32)>) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Create the link under a free temporary name, then rename it over `path`:
    // rename replaces a symlink itself, never what it points to.
    for n in 0..100u32 {
        let temp = dir.join(format!(".{name}.holdfast-link.{}.{n}", std::process::id()));
        match std::os::unix::fs::symlink(target, &temp) {
            Ok(()) => {
                if let Some((uid, gid)) = owner {
                    std::os::unix::fs::lchown(&temp, Some(uid), Some(gid))
                        .context(|| format!("chown {}", path.display()))?;
                }
                return std::fs::rename(&temp, path).map_err(|e| {
                    let _ = std::fs::remove_file(&temp);
                    Error::io_path("rename symlink into", path, e)
                });
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io_path("create symlink", &temp, e)),
        }
    }
    Err(Error::failed(format!(
        "no free temporary name next to {}",
        path.display()
    )))
}
