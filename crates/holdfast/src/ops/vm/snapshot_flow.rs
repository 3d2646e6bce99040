//! `holdfast vm backup --via-snapshot`: the seed's flow of the Backup and
//! Restore API, for engines before 4.4 and storage without incremental
//! backup, in its order (API v4 paths):
//! 1. create a VM snapshot without memory, wait until it is `ok`;
//! 2. read the VM's configuration (OVF) as of the snapshot;
//! 3. list the snapshot's disks;
//! 4. attach each to the agent VM where holdfast runs;
//! 5. find the block device that appears, by the disk id (virtio serials
//!    are the id's first 20 characters: `virtio-<id>` or
//!    `scsi-0QEMU_QEMU_HARDDISK_<id>` under /dev/disk/by-id), never by
//!    guessing a device name;
//! 6. read it into one repository snapshot (the same layout as a full
//!    backup, so `vm restore` restores it);
//! 7. detach every disk, and delete the snapshot unless asked to keep it.
//!
//! Every step that was done is undone whatever step failed: the clean-up
//! list grows as the flow goes and runs backwards.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::log::Log;
use crate::progress::Progress;
use crate::repo::stream::{StreamFile, StreamSource};
use crate::repo::Repo;
use crate::vm::api::Patience;
use crate::vm::Engine;
use crate::{Error, Result};

use super::{snapshot_root, VmBackupOutcome, VmDisk, VmManifest};

/// What to back up through a VM snapshot.
#[derive(Debug, Clone)]
pub struct SnapshotFlowRequest {
    pub vm: String,
    /// The VM holdfast runs in, which the snapshot's disks are attached to.
    pub agent_vm: String,
    /// Keep the VM snapshot afterwards.
    pub keep_snapshot: bool,
    /// Where the attached disks appear: /dev/disk/by-id.
    pub device_dir: PathBuf,
    pub patience: Patience,
}

/// A step done on the engine, undone at the end.
enum Undo {
    Snapshot { vm: String, id: String },
    Attachment { agent: String, id: String },
}

pub fn backup_via_snapshot(
    engine: &Arc<Engine>,
    repo: &mut Repo,
    req: &SnapshotFlowRequest,
    log: &Log,
) -> Result<VmBackupOutcome> {
    let mut undo: Vec<Undo> = Vec::new();
    let stored = read_through_snapshot(engine, repo, req, log, &mut undo);
    let mut failures = Vec::new();
    for step in undo.into_iter().rev() {
        let undone = match &step {
            Undo::Attachment { agent, id } => engine.detach_disk(agent, id),
            Undo::Snapshot { .. } if req.keep_snapshot => Ok(()),
            Undo::Snapshot { vm, id } => engine.delete_snapshot(vm, id),
        };
        match (undone, &step) {
            (Err(e), _) => failures.push(e.to_string()),
            (Ok(()), Undo::Attachment { id, .. }) => log.line(&format!("detached {id}")),
            (Ok(()), Undo::Snapshot { id, .. }) if !req.keep_snapshot => {
                log.line(&format!("deleted VM snapshot {id}"))
            }
            (Ok(()), Undo::Snapshot { .. }) => {}
        }
    }
    match (stored, failures.is_empty()) {
        (Ok(outcome), true) => Ok(outcome),
        (Ok(outcome), false) => Err(Error::failed(format!(
            "snapshot {} was stored, but cleaning up on the engine failed: {}",
            outcome.snapshot.short_id(),
            failures.join("; ")
        ))),
        (Err(e), _) if failures.is_empty() => Err(e),
        (Err(e), _) => Err(Error::failed(format!(
            "{e}; cleaning up on the engine failed too: {}",
            failures.join("; ")
        ))),
    }
}

fn read_through_snapshot(
    engine: &Arc<Engine>,
    repo: &mut Repo,
    req: &SnapshotFlowRequest,
    log: &Log,
    undo: &mut Vec<Undo>,
) -> Result<VmBackupOutcome> {
    let vm = engine.find_vm(&req.vm)?;
    let vm_name = vm.name.clone().unwrap_or_else(|| vm.id.clone());
    let agent = engine.find_vm(&req.agent_vm)?;
    if agent.id == vm.id {
        return Err(Error::usage(
            "--agent-vm must be the VM holdfast runs in, not the VM backed up",
        ));
    }
    // 1. The snapshot.
    let description = format!("holdfast-backup-{}", crate::repo::jiff::Timestamp::now());
    let snap = engine.create_snapshot(&vm.id, &description)?;
    undo.push(Undo::Snapshot {
        vm: vm.id.clone(),
        id: snap.id.clone(),
    });
    log.line(&format!(
        "VM {vm_name}: snapshot {} ({description})",
        snap.id
    ));
    // 2. Its configuration.
    let snap = engine.wait_snapshot_ok(&vm.id, &snap.id, req.patience)?;
    let ovf = snap.ovf().map(str::to_string).ok_or_else(|| {
        Error::failed(format!(
            "the engine sent snapshot {} without the VM's configuration",
            snap.id
        ))
    })?;
    // 3. Its disks, 4. attached to the agent, 5. found by id.
    let disks = engine.snapshot_disks(&vm.id, &snap.id)?;
    let progress = Arc::new(log.progress(
        "reading VM disks",
        Some(disks.iter().filter_map(|d| d.provisioned_size).sum()),
    ));
    let mut stored_disks = Vec::new();
    let mut files = Vec::new();
    for disk in disks {
        let size = disk.provisioned_size.ok_or_else(|| {
            Error::failed(format!("the engine sent disk {} without its size", disk.id))
        })?;
        let attachment = engine.attach_snapshot_disk(&agent.id, &disk.id, &snap.id)?;
        undo.push(Undo::Attachment {
            agent: agent.id.clone(),
            id: attachment,
        });
        let device = find_device(&req.device_dir, &disk.id, req.patience)?;
        log.line(&format!(
            "disk {} attached as {}",
            disk.id,
            device.display()
        ));
        let stored = VmDisk {
            id: disk.id.clone(),
            name: disk.name.clone(),
            size,
            format: disk.format.clone().unwrap_or_else(|| "raw".into()),
            bootable: false,
            interface: "virtio_scsi".into(),
        };
        let progress = progress.clone();
        files.push(StreamFile::new(
            stored.file_name(),
            size,
            Arc::new(move || {
                let file = std::fs::File::open(&device)?;
                Ok(Box::new(CountedRead {
                    inner: std::io::BufReader::with_capacity(4 << 20, file).take(size),
                    progress: progress.clone(),
                }) as Box<dyn Read + Send>)
            }),
        ));
        stored_disks.push(stored);
    }
    // The attachments of the VM itself say which disk boots, and how it hangs.
    for att in engine.disk_attachments(&vm.id)? {
        if let Some(d) = stored_disks.iter_mut().find(|d| d.id == att.disk.id) {
            d.bootable = att.bootable.unwrap_or(false);
            d.interface = att.interface.unwrap_or_else(|| d.interface.clone());
        }
    }
    // 6. One repository snapshot.
    let root = snapshot_root(&vm.id)?;
    let manifest = VmManifest {
        vm_id: vm.id.clone(),
        vm_name: vm_name.clone(),
        checkpoint: None,
        from_checkpoint: None,
        disks: stored_disks.clone(),
    };
    files.push(StreamFile::bytes(
        "vm.json",
        serde_json::to_vec_pretty(&manifest).expect("a manifest serialises"),
    ));
    files.push(StreamFile::bytes("vm.ovf", ovf.into_bytes()));
    let source = StreamSource::new(&root, files);
    let mut tags = vec![
        crate::repo::HOLDFAST_TAG.to_string(),
        format!("vm:{vm_name}"),
        format!("vm-id:{}", vm.id),
        "backup:snapshot".to_string(),
    ];
    tags.extend(stored_disks.iter().map(|d| format!("disk:{}", d.id)));
    let snapshot =
        repo.backup_source(&source, &root, &vm_name, &tags, &source.expected(), || {
            Ok(())
        })?;
    let disk_bytes = stored_disks.iter().map(|d| d.size).sum();
    Ok(VmBackupOutcome {
        snapshot,
        incremental: false,
        checkpoint: None,
        disks: stored_disks.len(),
        disk_bytes,
        downloaded: disk_bytes,
        retried: 0,
    })
}

/// A device's bytes, counted on the progress bar as the repository reads them.
struct CountedRead<R> {
    inner: R,
    progress: Arc<Progress>,
}

impl<R: Read> Read for CountedRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some(signal) = crate::interrupt::requested() {
            return Err(std::io::Error::other(format!("interrupted by {signal}")));
        }
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

/// The device of an attached disk, by its id: udev names virtio-blk disks
/// `virtio-<serial>` and virtio-scsi ones `scsi-0QEMU_QEMU_HARDDISK_<serial>`,
/// the serial being the disk id's first 20 characters.
fn find_device(dir: &Path, disk_id: &str, patience: Patience) -> Result<PathBuf> {
    let serial: String = disk_id.chars().take(20).collect();
    let names = [
        format!("virtio-{serial}"),
        format!("scsi-0QEMU_QEMU_HARDDISK_{serial}"),
    ];
    let start = Instant::now();
    loop {
        if let Some(found) = names.iter().map(|n| dir.join(n)).find(|p| p.exists()) {
            return Ok(found);
        }
        if start.elapsed() > patience.budget {
            return Err(Error::failed(format!(
                "disk {disk_id} was attached, but neither {} appeared in {} within {}s",
                names.join(" nor "),
                dir.display(),
                patience.budget.as_secs()
            )));
        }
        std::thread::sleep(patience.poll);
    }
}
