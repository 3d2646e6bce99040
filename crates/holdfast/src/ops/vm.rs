//! VM disks through oVirt's Backup and Restore API, sequenced: a backup
//! ([`backup`]: start the engine's backup, read each disk through an image
//! transfer into one repository snapshot, finalize everything whatever
//! happened), the seed's flow through a VM snapshot attached to the agent
//! VM ([`snapshot_flow`]), and a restore ([`restore`]: a snapshot's disk into a local
//! image file, or into new engine disks and a new VM).
//!
//! A snapshot of a VM lives under `/holdfast/vm-<vm id>` and holds
//! `disk-<disk id>.raw` per disk (the guest's raw data; zeros cost nothing
//! after deduplication), `vm.ovf` (the engine's configuration of the VM) and
//! `vm.json` ([`VmManifest`]). Its tags: `holdfast`, `vm:<name>`,
//! `vm-id:<id>`, `disk:<id>` per disk, `checkpoint:<id>` and
//! `backup:full|incremental`.

pub mod backup;
pub mod restore;
pub mod snapshot_flow;

use serde::{Deserialize, Serialize};

pub use backup::{VmBackupOutcome, VmBackupRequest};
pub use restore::{VmRestoreOutcome, VmRestoreTarget};
pub use snapshot_flow::SnapshotFlowRequest;

/// `vm.json`: what a restore needs besides the disks and the OVF.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VmManifest {
    pub vm_id: String,
    pub vm_name: String,
    /// The checkpoint the next incremental backup starts from.
    pub checkpoint: Option<String>,
    /// The checkpoint this backup started from (incremental), if any.
    pub from_checkpoint: Option<String>,
    pub disks: Vec<VmDisk>,
}

/// One disk of a VM snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VmDisk {
    pub id: String,
    pub name: Option<String>,
    /// Virtual size in bytes (the size of the stored raw file).
    pub size: u64,
    /// `raw` or `cow`, as the engine had it.
    pub format: String,
    pub bootable: bool,
    pub interface: String,
}

impl VmDisk {
    /// The disk's file in the snapshot.
    pub fn file_name(&self) -> String {
        format!("disk-{}.raw", self.id)
    }
}

/// The snapshot path of a VM's snapshots.
pub fn snapshot_root(vm_id: &str) -> crate::Result<std::path::PathBuf> {
    crate::repo::engine::snapshot_root(&format!("vm-{vm_id}"))
}
