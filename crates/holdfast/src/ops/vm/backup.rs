//! `holdfast vm backup`, in the incremental backup API's order:
//! 1. find the VM, its OVF and its disks; choose full or incremental (the
//!    newest snapshot of the VM holds a checkpoint and the same disks, all
//!    qcow2 with incremental backup enabled);
//! 2. start the backup (`from_checkpoint_id` for an incremental) and wait
//!    until it is ready;
//! 3. store one snapshot while the engine reads the disks: each disk is
//!    opened as the repository reaches it (a download transfer, then its
//!    extents: `zero` for a full backup, `dirty` for an incremental), its
//!    pieces streamed with unchanged ranges taken from the previous snapshot,
//!    and its transfer finalized when its last byte was read;
//! 4. whatever happened: finalize every transfer still open and the
//!    backup, and wait for it to succeed. A failed stream removes the
//!    snapshot again: a snapshot exists only for a backup that completed.

use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::log::Log;
use crate::repo::stream::{StreamFile, StreamSource};
use crate::repo::{Repo, SnapshotFileReader, SnapshotInfo};
use crate::vm::api::Patience;
use crate::vm::download::DiskDownload;
use crate::vm::image::FailureSlot;
use crate::vm::imageio::Traffic;
use crate::vm::Engine;
use crate::{Error, Password, Result};

use super::{snapshot_root, VmDisk, VmManifest};

/// What to back up, and how.
#[derive(Debug, Clone)]
pub struct VmBackupRequest {
    /// The VM's name or id.
    pub vm: String,
    /// A full backup even when an incremental one is possible.
    pub full: bool,
    /// Ranges in flight per disk.
    pub workers: usize,
    pub patience: Patience,
    /// To open a second handle on the repository for the previous snapshot.
    pub repo_password: Password,
}

/// What a backup did.
#[derive(Debug)]
pub struct VmBackupOutcome {
    pub snapshot: SnapshotInfo,
    pub incremental: bool,
    pub checkpoint: Option<String>,
    pub disks: usize,
    /// Virtual bytes of all disks.
    pub disk_bytes: u64,
    /// Bytes read from imageio.
    pub downloaded: u64,
    /// Ranges tried again after a failure.
    pub retried: u64,
}

/// The newest snapshot of the VM, as an incremental backup's base.
struct Base {
    snapshot: String,
    checkpoint: String,
}

pub fn backup(
    engine: &Arc<Engine>,
    repo: &mut Repo,
    req: &VmBackupRequest,
    log: &Log,
) -> Result<VmBackupOutcome> {
    // 1. The VM, its configuration and disks.
    let vm = engine.find_vm(&req.vm)?;
    let vm_name = vm.name.clone().unwrap_or_else(|| vm.id.clone());
    let ovf = vm.ovf().map(str::to_string).ok_or_else(|| {
        Error::failed(format!(
            "the engine sent VM {vm_name} without its OVF configuration"
        ))
    })?;
    let (disks, incremental_capable) = describe_disks(engine, &vm.id)?;
    if disks.is_empty() {
        return Err(Error::usage(format!(
            "VM {vm_name} has no disks to back up"
        )));
    }
    let root = snapshot_root(&vm.id)?;
    let mut base = match req.full || !incremental_capable {
        true => None,
        false => incremental_base(repo, &vm.id, &root, &disks)?,
    };

    // 2. Start the backup; from here on it is finalized whatever happens.
    let ids: Vec<String> = disks.iter().map(|d| d.id.clone()).collect();
    let from = base.as_ref().map(|b| b.checkpoint.clone());
    let started = match engine.start_backup(&vm.id, &ids, from.as_deref()) {
        Ok(started) => started,
        Err(e) if base.is_some() => {
            // The checkpoint is gone (removed, or invalid after an unclean
            // shutdown): the engine's remedy is a full backup.
            log.line(&format!(
                "an incremental backup was refused ({e}); taking a full one"
            ));
            base = None;
            engine.start_backup(&vm.id, &ids, None)?
        }
        Err(e) => return Err(e),
    };
    log.line(&format!(
        "VM {vm_name} ({}): {} backup {} of {} started on the engine",
        vm.id,
        if base.is_some() {
            "incremental"
        } else {
            "full"
        },
        started.id,
        crate::log::count(disks.len(), "disk", "disks")
    ));
    let open_transfers: Arc<Mutex<Vec<String>>> = Arc::default();
    let stored = store(
        engine,
        repo,
        req,
        Stored {
            vm_id: &vm.id,
            vm_name: &vm_name,
            backup_id: &started.id,
            ovf,
            disks: &disks,
            base: base.as_ref(),
            root: &root,
            open_transfers: &open_transfers,
        },
        started.to_checkpoint_id.clone(),
        log,
    );

    // 4. Finalize what is still open, then the backup.
    let leftovers = std::mem::take(&mut *open_transfers.lock().expect("transfer list"));
    let mut cleanup = Vec::new();
    for t in leftovers {
        if let Err(e) = engine
            .finalize_transfer(&t)
            .and_then(|()| engine.wait_finished(&t, req.patience).map(|_| ()))
        {
            cleanup.push(e.to_string());
        }
    }
    let finalized = engine
        .finalize_backup(&vm.id, &started.id)
        .and_then(|()| engine.wait_backup(&vm.id, &started.id, "succeeded", req.patience));
    match (stored, finalized) {
        (Ok(mut outcome), Ok(done)) if cleanup.is_empty() => {
            outcome.checkpoint = done.to_checkpoint_id.or(outcome.checkpoint);
            log.line(&format!("backup {} finalized", started.id));
            Ok(outcome)
        }
        (Ok(outcome), finalized) => {
            // The data is stored, but the engine did not close cleanly.
            let mut why = cleanup;
            if let Err(e) = finalized {
                why.push(e.to_string());
            }
            Err(Error::failed(format!(
                "snapshot {} was stored, but finishing the engine's backup failed: {}",
                outcome.snapshot.short_id(),
                why.join("; ")
            )))
        }
        (Err(e), finalized) => {
            let mut why = vec![e.to_string()];
            why.extend(cleanup);
            if let Err(f) = finalized {
                why.push(format!("finalizing backup {} failed too: {f}", started.id));
            }
            Err(Error::failed(why.join("; ")))
        }
    }
}

/// The disks in attachment order, and whether all keep dirty bitmaps.
fn describe_disks(engine: &Engine, vm: &str) -> Result<(Vec<VmDisk>, bool)> {
    let mut disks = Vec::new();
    let mut incremental = true;
    for att in engine.disk_attachments(vm)? {
        let disk = engine.disk(&att.disk.id)?;
        let size = disk.provisioned_size.ok_or_else(|| {
            Error::failed(format!("the engine sent disk {} without its size", disk.id))
        })?;
        let format = disk.format.clone().unwrap_or_else(|| "raw".into());
        incremental &= format == "cow" && disk.backup.as_deref() == Some("incremental");
        disks.push(VmDisk {
            id: disk.id,
            name: disk.name,
            size,
            format,
            bootable: att.bootable.unwrap_or(false),
            interface: att.interface.unwrap_or_else(|| "virtio_scsi".into()),
        });
    }
    Ok((disks, incremental))
}

/// The newest snapshot of the VM, when it can be the base of an
/// incremental backup: it has a checkpoint and every disk, the same size.
fn incremental_base(
    repo: &mut Repo,
    vm_id: &str,
    root: &Path,
    disks: &[VmDisk],
) -> Result<Option<Base>> {
    let newest = repo
        .snapshots()?
        .into_iter()
        .rev()
        .find(|s| s.tag("vm-id") == Some(vm_id));
    let Some(newest) = newest else {
        return Ok(None);
    };
    let Some(checkpoint) = newest.tag("checkpoint").map(str::to_string) else {
        return Ok(None);
    };
    let manifest_path = format!("{}/vm.json", root.display());
    let Some(bytes) = repo.read_file(&newest.id, &manifest_path)? else {
        return Ok(None);
    };
    let Ok(manifest) = serde_json::from_slice::<VmManifest>(&bytes) else {
        return Ok(None);
    };
    let same = disks.iter().all(|d| {
        manifest
            .disks
            .iter()
            .any(|m| m.id == d.id && m.size == d.size)
    });
    Ok(same.then_some(Base {
        snapshot: newest.id,
        checkpoint,
    }))
}

/// What the snapshot of one backup is made of.
struct Stored<'a> {
    vm_id: &'a str,
    vm_name: &'a str,
    backup_id: &'a str,
    ovf: String,
    disks: &'a [VmDisk],
    base: Option<&'a Base>,
    root: &'a Path,
    open_transfers: &'a Arc<Mutex<Vec<String>>>,
}

/// 2–3: wait for the backup, then store the snapshot while the disks are read.
fn store(
    engine: &Arc<Engine>,
    repo: &mut Repo,
    req: &VmBackupRequest,
    s: Stored<'_>,
    checkpoint: Option<String>,
    log: &Log,
) -> Result<VmBackupOutcome> {
    let ready = engine.wait_backup(s.vm_id, s.backup_id, "ready", req.patience)?;
    let checkpoint = ready.to_checkpoint_id.or(checkpoint);
    let previous: Vec<Option<Arc<SnapshotFileReader>>> = match s.base {
        None => vec![None; s.disks.len()],
        Some(base) => {
            // A second handle: the first one writes the new snapshot meanwhile.
            let paths: Vec<String> = s
                .disks
                .iter()
                .map(|d| format!("{}/{}", s.root.display(), d.file_name()))
                .collect();
            Repo::open(repo.location(), &req.repo_password)?
                .into_file_readers(&base.snapshot, &paths)?
                .into_iter()
                .map(|r| Some(Arc::new(r)))
                .collect()
        }
    };
    let traffic = Arc::new(Traffic::default());
    let failure: FailureSlot = Arc::default();
    let progress = Arc::new(log.progress(
        "reading VM disks",
        Some(s.disks.iter().map(|d| d.size).sum()),
    ));
    let mut files: Vec<StreamFile> = s
        .disks
        .iter()
        .zip(previous)
        .map(|(disk, previous)| {
            let reader = DiskDownload {
                engine: engine.clone(),
                backup_id: s.backup_id.to_string(),
                disk_id: disk.id.clone(),
                size: disk.size,
                previous,
                workers: req.workers,
                patience: req.patience,
                traffic: traffic.clone(),
                failure: failure.clone(),
                open_transfers: s.open_transfers.clone(),
                progress: progress.clone(),
            };
            StreamFile::new(disk.file_name(), disk.size, Arc::new(move || reader.open()))
        })
        .collect();
    let manifest = VmManifest {
        vm_id: s.vm_id.to_string(),
        vm_name: s.vm_name.to_string(),
        checkpoint: checkpoint.clone(),
        from_checkpoint: s.base.map(|b| b.checkpoint.clone()),
        disks: s.disks.to_vec(),
    };
    let manifest_json = serde_json::to_vec_pretty(&manifest).expect("a manifest serialises");
    files.push(StreamFile::bytes("vm.json", manifest_json));
    files.push(StreamFile::bytes("vm.ovf", s.ovf.into_bytes()));
    let source = StreamSource::new(s.root, files);

    let mut tags = vec![
        crate::repo::HOLDFAST_TAG.to_string(),
        format!("vm:{}", s.vm_name),
        format!("vm-id:{}", s.vm_id),
        format!(
            "backup:{}",
            if s.base.is_some() {
                "incremental"
            } else {
                "full"
            }
        ),
    ];
    tags.extend(s.disks.iter().map(|d| format!("disk:{}", d.id)));
    if let Some(c) = &checkpoint {
        tags.push(format!("checkpoint:{c}"));
    }
    let open_transfers = s.open_transfers.clone();
    let snapshot = repo.backup_source(
        &source,
        s.root,
        s.vm_name,
        &tags,
        &source.expected(),
        || {
            if let Some(e) = failure.lock().expect("failure lock").take() {
                return Err(e);
            }
            let open = open_transfers.lock().expect("transfer list").len();
            if open > 0 {
                return Err(Error::failed(format!(
                    "{} not read to the end",
                    crate::log::count(open, "disk was", "disks were")
                )));
            }
            Ok(())
        },
    )?;
    Ok(VmBackupOutcome {
        snapshot,
        incremental: s.base.is_some(),
        checkpoint,
        disks: s.disks.len(),
        disk_bytes: s.disks.iter().map(|d| d.size).sum(),
        downloaded: traffic
            .downloaded
            .load(std::sync::atomic::Ordering::Relaxed),
        retried: traffic.retried.load(std::sync::atomic::Ordering::Relaxed),
    })
}
