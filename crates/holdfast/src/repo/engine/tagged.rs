//! Snapshots that are not an environment's night: WAL files and base backups.
//! They live under their own root (not `/holdfast/<profile>`) and carry their
//! own tags, and are read back file by file (a fetch wants a few segments, not
//! a whole snapshot).

use std::io::Write;
use std::path::{Path, PathBuf};

use rustic_core::jiff::Zoned;
use rustic_core::SnapshotOptions;

use super::{engine_error, Repo, SnapshotInfo};
use crate::repo::source::StagedSource;
use crate::repo::HOLDFAST_TAG;
use crate::{Error, IoContext, Result};

impl Repo {
    /// Store every file under `staged` as one snapshot under `root`, tagged
    /// `holdfast` and `tags`, on `host`, at `time` (now when `None`); then
    /// check that the snapshot holds every file.
    pub fn backup_dir_tagged(
        &mut self,
        staged: &Path,
        root: &Path,
        host: &str,
        tags: &[String],
        time: Option<Zoned>,
    ) -> Result<SnapshotInfo> {
        self.remove_stale_temporaries();
        let source = StagedSource::new(staged, root)?;
        let mut all = vec![HOLDFAST_TAG.to_string()];
        all.extend(tags.iter().cloned());
        let mut snap_opts = SnapshotOptions::default().host(host.to_string());
        if let Some(t) = time {
            snap_opts = snap_opts.time(t);
        }
        let snap = snap_opts
            .add_tags(&all.join(","))
            .and_then(|o| o.to_snapshot())
            .map_err(|e| Error::usage(format!("snapshot labels: {}", e.display_log())))?;
        self.archive_staged(&source, snap, root.to_path_buf())
    }

    /// Write the files `wanted` (snapshot id, absolute path in it) into
    /// `dest` under their base names, each fsynced; one index read for all.
    /// Returns the paths written.
    pub fn restore_selected(
        &mut self,
        wanted: &[(String, String)],
        dest: &Path,
    ) -> Result<Vec<PathBuf>> {
        let full = self
            .take_repo()?
            .to_indexed()
            .map_err(|e| engine_error("read the repository index", &e))?;
        let done = (|| {
            let mut out = Vec::new();
            let mut snaps = std::collections::BTreeMap::new();
            for (id, path) in wanted {
                if !snaps.contains_key(id) {
                    let snap = full
                        .get_snapshot_from_str(id, |_| true)
                        .map_err(|e| engine_error(&format!("read snapshot {id}"), &e))?;
                    snaps.insert(id.clone(), snap);
                }
                let snap = &snaps[id];
                let node = full
                    .node_from_snapshot_and_path(snap, path)
                    .map_err(|e| engine_error(&format!("find {path} in snapshot {id}"), &e))?;
                let name = Path::new(path)
                    .file_name()
                    .ok_or_else(|| Error::invalid(format!("{path} names no file")))?;
                let target = dest.join(name);
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&target)
                    .context(|| format!("create {}", target.display()))?;
                {
                    let mut buf = std::io::BufWriter::with_capacity(1 << 20, &mut file);
                    full.dump(&node, &mut buf)
                        .map_err(|e| engine_error(&format!("read {path} from {id}"), &e))?;
                    buf.flush()
                        .context(|| format!("write {}", target.display()))?;
                }
                file.sync_all()
                    .context(|| format!("sync {}", target.display()))?;
                let size = file
                    .metadata()
                    .context(|| format!("stat {}", target.display()))?
                    .len();
                if size != node.meta.size {
                    return Err(Error::invalid(format!(
                        "{path} in snapshot {id} came back with {size} bytes instead of {}; \
                         run 'holdfast repo check --read-data'",
                        node.meta.size
                    )));
                }
                out.push(target);
            }
            Ok(out)
        })();
        self.give_back(full);
        done
    }
}

impl Repo {
    /// Remove the snapshots `ids` (full ids). Frees no space: prune does that.
    pub fn remove_snapshots(&self, ids: &[String]) -> Result<()> {
        let repo = self.open_repo()?;
        let mut found = Vec::new();
        for id in ids {
            let snap = repo
                .get_snapshot_from_str(id, |_| true)
                .map_err(|e| engine_error(&format!("find snapshot {id}"), &e))?;
            found.push(snap.id);
        }
        if found.is_empty() {
            return Ok(());
        }
        repo.delete_snapshots(&found)
            .map_err(|e| engine_error("remove snapshots", &e))
    }
}
