//! `holdfast vm restore`: a VM snapshot back out of the repository, each
//! disk streamed from the repository in order (bounded memory), runs of
//! zeros written as holes or zero requests, never as bytes:
//! - into a local image file (`--to-file`): raw, sparse; qcow2 through
//!   `qemu-img convert` of that raw file;
//! - into the engine: per disk a new sparse disk and an upload transfer
//!   (cancelled on failure, which removes the disk), then a new VM from the
//!   stored OVF with the disks attached as they were.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::log::Log;
use crate::progress::{Counted, Progress};
use crate::repo::{Repo, SnapshotInfo};
use crate::vm::api::{Direction, NewDisk, Patience};
use crate::vm::image::{ImageSink, SparseFileTarget, UploadTarget};
use crate::vm::imageio::{ImageClient, Traffic};
use crate::vm::Engine;
use crate::{Error, IoContext, Result};

use super::{VmDisk, VmManifest};

/// Where a restore goes.
#[derive(Debug, Clone)]
pub enum VmRestoreTarget {
    /// One disk into a local image file.
    File {
        path: PathBuf,
        /// The disk's id when the VM has several.
        disk: Option<String>,
        qcow2: bool,
    },
    /// New disks and a new VM on the engine, or new disks for an existing VM.
    Engine {
        /// The new VM's name (default: the stored name with `-restored`).
        new_name: Option<String>,
        /// Attach the new disks to this existing VM instead of creating one.
        into_vm: Option<String>,
        /// Only this disk (id or name).
        disk: Option<String>,
        cluster: String,
        storage_domain: Option<String>,
        /// Create the disks as qcow2 (`cow`), else as they were.
        qcow2: Option<bool>,
        patience: Patience,
    },
}

/// What a restore did.
#[derive(Debug)]
pub struct VmRestoreOutcome {
    pub snapshot: SnapshotInfo,
    pub vm_name: String,
    /// The new VM's id (engine restores).
    pub new_vm: Option<String>,
    pub disks: usize,
    /// Bytes sent as data, and described by zero requests (engine restores).
    pub uploaded: u64,
    pub zeroed: u64,
}

/// The snapshot (an id, a unique prefix of one, or `latest`: the newest
/// VM snapshot), its manifest and OVF.
fn stored_vm(
    repo: &mut Repo,
    snapshot: &str,
) -> Result<(SnapshotInfo, PathBuf, VmManifest, String)> {
    let wanted = snapshot.trim();
    let all = repo.snapshots()?;
    let matching: Vec<&SnapshotInfo> = if wanted == "latest" {
        all.iter()
            .rev()
            .filter(|s| s.tag("vm-id").is_some())
            .take(1)
            .collect()
    } else {
        all.iter()
            .filter(|s| !wanted.is_empty() && s.id.starts_with(wanted))
            .collect()
    };
    let info = match matching.as_slice() {
        [one] => (*one).clone(),
        [] => {
            return Err(Error::usage(format!(
                "no VM snapshot '{wanted}'; list them with 'holdfast repo snapshots'"
            )))
        }
        _ => {
            return Err(Error::usage(format!(
                "'{wanted}' names {} snapshots; give more of the id",
                matching.len()
            )))
        }
    };
    let vm_id = info.tag("vm-id").ok_or_else(|| {
        Error::usage(format!(
            "snapshot {} is not a VM backup (no vm-id tag)",
            info.short_id()
        ))
    })?;
    let root = super::snapshot_root(vm_id)?;
    let read = |repo: &mut Repo, name: &str| -> Result<Vec<u8>> {
        repo.read_file(&info.id, &format!("{}/{name}", root.display()))?
            .ok_or_else(|| Error::invalid(format!("snapshot {} has no {name}", info.short_id())))
    };
    let manifest: VmManifest = serde_json::from_slice(&read(repo, "vm.json")?)
        .map_err(|e| Error::invalid(format!("vm.json of snapshot {}: {e}", info.short_id())))?;
    let ovf = String::from_utf8(read(repo, "vm.ovf")?)
        .map_err(|_| Error::invalid("the stored OVF is not UTF-8"))?;
    Ok((info, root, manifest, ovf))
}

pub fn restore(
    engine: Option<&Arc<Engine>>,
    repo: &mut Repo,
    snapshot: &str,
    target: &VmRestoreTarget,
    log: &Log,
) -> Result<VmRestoreOutcome> {
    let (info, root, manifest, ovf) = stored_vm(repo, snapshot)?;
    match target {
        VmRestoreTarget::File { path, disk, qcow2 } => {
            let disk = choose_disk(&manifest, disk.as_deref())?;
            let progress = log.progress("writing the disk image", Some(disk.size));
            to_file(repo, &info, &root, disk, path, *qcow2, &progress)?;
            log.line(&format!(
                "disk {} of VM {} written to {}",
                disk.id,
                manifest.vm_name,
                path.display()
            ));
            Ok(VmRestoreOutcome {
                snapshot: info,
                vm_name: manifest.vm_name,
                new_vm: None,
                disks: 1,
                uploaded: 0,
                zeroed: 0,
            })
        }
        VmRestoreTarget::Engine {
            new_name,
            into_vm,
            disk,
            cluster,
            storage_domain,
            qcow2,
            patience,
        } => {
            let engine =
                engine.ok_or_else(|| Error::usage("restoring to the engine needs --engine"))?;
            let disks: Vec<&VmDisk> = match (disk, into_vm) {
                (Some(_), _) => vec![choose_disk(&manifest, disk.as_deref())?],
                (None, _) => manifest.disks.iter().collect(),
            };
            let existing = into_vm.as_deref().map(|v| engine.find_vm(v)).transpose()?;
            let name = match (&existing, new_name) {
                (Some(vm), _) => vm.name.clone().unwrap_or_else(|| vm.id.clone()),
                (None, Some(n)) => n.clone(),
                (None, None) => format!("{}-restored", manifest.vm_name),
            };
            let traffic = Arc::new(Traffic::default());
            let mut created: Vec<(&VmDisk, String)> = Vec::new();
            let delete_disks = |created: &[(&VmDisk, String)]| {
                for (_, id) in created {
                    let _ = engine.delete_disk(id);
                }
            };
            for disk in disks {
                let new = NewDisk {
                    name: format!("{name}-{}", disk.name.as_deref().unwrap_or(&disk.id)),
                    size: disk.size,
                    qcow2: qcow2.unwrap_or(disk.format == "cow"),
                    storage_domain: storage_domain.clone(),
                };
                let progress = log.progress("uploading the disk", Some(disk.size));
                let uploaded = upload_disk(
                    engine, repo, &info, &root, disk, &new, *patience, &traffic, &progress,
                );
                match uploaded {
                    Ok(id) => {
                        log.line(&format!("disk {} uploaded as new disk {id}", disk.id));
                        created.push((disk, id));
                    }
                    Err(e) => {
                        // The disks uploaded before are of no use without their VM.
                        delete_disks(&created);
                        return Err(e);
                    }
                }
            }
            let vm = match &existing {
                Some(vm) => vm.clone(),
                None => match engine.create_vm(&name, cluster, &ovf) {
                    Ok(vm) => vm,
                    Err(e) => {
                        delete_disks(&created);
                        return Err(e);
                    }
                },
            };
            for (disk, id) in &created {
                // Into an existing VM a disk never takes over booting.
                let bootable = disk.bootable && existing.is_none();
                if let Err(e) = engine.attach_disk(&vm.id, id, bootable, &disk.interface) {
                    if existing.is_none() {
                        let _ = engine.delete_vm(&vm.id);
                    }
                    delete_disks(&created);
                    return Err(e);
                }
            }
            log.line(&format!(
                "VM {name} ({}) {} from the stored configuration",
                vm.id,
                if existing.is_some() {
                    "given the disks"
                } else {
                    "created"
                }
            ));
            Ok(VmRestoreOutcome {
                snapshot: info,
                vm_name: name,
                new_vm: Some(vm.id),
                disks: created.len(),
                uploaded: traffic.uploaded.load(std::sync::atomic::Ordering::Relaxed),
                zeroed: traffic.zeroed.load(std::sync::atomic::Ordering::Relaxed),
            })
        }
    }
}

fn choose_disk<'m>(manifest: &'m VmManifest, wanted: Option<&str>) -> Result<&'m VmDisk> {
    match wanted {
        Some(id) => manifest
            .disks
            .iter()
            .find(|d| d.id == id || d.name.as_deref() == Some(id)),
        None if manifest.disks.len() == 1 => manifest.disks.first(),
        None => {
            return Err(Error::usage(format!(
                "the VM has {} disks; choose one with --disk ({})",
                manifest.disks.len(),
                manifest
                    .disks
                    .iter()
                    .map(|d| d.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    }
    .ok_or_else(|| {
        Error::usage(format!(
            "the snapshot has no disk '{}'",
            wanted.unwrap_or("")
        ))
    })
}

/// One disk into a new local file (never overwriting).
fn to_file(
    repo: &mut Repo,
    info: &SnapshotInfo,
    root: &Path,
    disk: &VmDisk,
    path: &Path,
    qcow2: bool,
    progress: &Progress,
) -> Result<()> {
    let raw_path = if qcow2 {
        path.with_extension("raw-partial")
    } else {
        path.to_path_buf()
    };
    if path.exists() {
        return Err(Error::usage(format!(
            "{} exists; give a new file",
            path.display()
        )));
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&raw_path)
        .context(|| format!("create {}", raw_path.display()))?;
    let written = (|| {
        let mut sink = ImageSink::new(SparseFileTarget(file));
        let found = repo.dump_file(
            &info.id,
            &format!("{}/{}", root.display(), disk.file_name()),
            &mut Counted::new(&mut sink, progress),
        )?;
        if !found {
            return Err(Error::invalid(format!(
                "snapshot {} has no file for disk {}",
                info.short_id(),
                disk.id
            )));
        }
        let (size, _) = sink.finish()?;
        if size != disk.size {
            return Err(Error::invalid(format!(
                "disk {} came back with {size} bytes instead of {}",
                disk.id, disk.size
            )));
        }
        if qcow2 {
            let status = crate::child::command("qemu-img")
                .args(["convert", "-q", "-f", "raw", "-O", "qcow2"])
                .arg(&raw_path)
                .arg(path)
                .status()
                .context(|| "run qemu-img convert".to_string())?;
            std::fs::remove_file(&raw_path).context(|| format!("remove {}", raw_path.display()))?;
            if !status.success() {
                return Err(Error::failed(format!("qemu-img convert failed ({status})")));
            }
        }
        Ok(())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&raw_path);
        let _ = std::fs::remove_file(path);
    }
    written
}

/// One disk into a new engine disk; its id. A failure cancels the transfer
/// (the engine then removes the disk) and removes the disk.
#[allow(clippy::too_many_arguments)]
fn upload_disk(
    engine: &Arc<Engine>,
    repo: &mut Repo,
    info: &SnapshotInfo,
    root: &Path,
    disk: &VmDisk,
    new: &NewDisk,
    patience: Patience,
    traffic: &Arc<Traffic>,
    progress: &Progress,
) -> Result<String> {
    let created = engine.create_disk(new)?;
    let id = created.id.clone();
    let uploaded = (|| {
        engine.wait_disk_ok(&id, patience)?;
        let t = engine.create_transfer(&id, None, Direction::Upload)?;
        let sent = (|| {
            let t = engine.wait_transferring(&t.id, patience)?;
            let url = t
                .transfer_url
                .clone()
                .or(t.proxy_url.clone())
                .ok_or_else(|| {
                    Error::failed(format!("image transfer {} has no transfer URL", t.id))
                })?;
            let image = ImageClient::new(&url, engine.agent().clone(), traffic.clone());
            let mut sink = ImageSink::new(UploadTarget(image));
            repo.dump_file(
                &info.id,
                &format!("{}/{}", root.display(), disk.file_name()),
                &mut Counted::new(&mut sink, progress),
            )?;
            let (size, _) = sink.finish()?;
            if size != disk.size {
                return Err(Error::invalid(format!(
                    "disk {} came back with {size} bytes instead of {}",
                    disk.id, disk.size
                )));
            }
            engine.finalize_transfer(&t.id)?;
            if !engine.wait_finished(&t.id, patience)? {
                return Err(Error::failed(format!(
                    "the engine did not accept the upload of disk {id}"
                )));
            }
            Ok(())
        })();
        if sent.is_err() {
            let _ = engine
                .cancel_transfer(&t.id)
                .and_then(|()| engine.wait_finished(&t.id, patience));
        }
        sent
    })();
    match uploaded {
        Ok(()) => Ok(id),
        Err(e) => {
            let _ = engine.delete_disk(&id);
            Err(e)
        }
    }
}
