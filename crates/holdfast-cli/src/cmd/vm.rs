//! `holdfast vm backup|restore`: VM disks through oVirt's Backup and Restore
//! API into the repository and back. The repository is given as for `holdfast
//! repo` (the same options and variables); the engine user's password comes
//! from --engine-password-file or HOLDFAST_ENGINE_PASSWORD, never from the
//! command line.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use holdfast::log::Log;
use holdfast::ops::vm::{self, SnapshotFlowRequest, VmBackupRequest, VmRestoreTarget};
use holdfast::vm::api::Patience;
use holdfast::vm::{Engine, EngineAccess};
use holdfast::{Error, Password};

use super::repo::{self as repo_cmd, bytes, RepoOptions};

/// The environment variable holding the engine user's password.
pub const ENGINE_PASSWORD_ENV: &str = "HOLDFAST_ENGINE_PASSWORD";

#[derive(Debug, Args)]
pub struct VmArgs {
    #[command(flatten)]
    pub repo: RepoOptions,
    /// Log file (created 0600); its last line is the outcome, the exit status and the reason.
    #[arg(long, global = true, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Draw progress bars on stderr even when it is not a terminal.
    #[arg(long, global = true, conflicts_with = "no_progress")]
    pub progress: bool,
    /// Draw no progress bars.
    #[arg(long, global = true)]
    pub no_progress: bool,
    #[command(subcommand)]
    pub command: VmCommand,
}

#[derive(Debug, Subcommand)]
pub enum VmCommand {
    /// Back a VM's disks and configuration up into one snapshot (incremental
    /// from the VM's newest snapshot when its disks allow it).
    Backup(BackupArgs),
    /// Restore a VM snapshot: a disk into a local image file, or new disks
    /// and a new VM on the engine.
    Restore(RestoreArgs),
}

/// How to reach the engine.
#[derive(Debug, Args)]
pub struct EngineArgs {
    /// The engine: https://ENGINE (the API is under /ovirt-engine/api).
    #[arg(long, value_name = "URL")]
    pub engine: Option<String>,
    /// PEM file of the engine's CA certificate (it also signs the imageio
    /// daemons' certificates); else the system's web roots.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// The engine user.
    #[arg(long, value_name = "USER@DOMAIN", default_value = "admin@internal")]
    pub user: String,
    /// File whose first line is the engine user's password (else HOLDFAST_ENGINE_PASSWORD).
    #[arg(long, value_name = "FILE")]
    pub engine_password_file: Option<PathBuf>,
    /// Seconds between two polls of the engine's backup and transfer phases.
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0, hide = true)]
    pub poll_interval: f64,
    /// Seconds each engine step may take before the run gives up and cleans up.
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    pub step_timeout: u64,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
    /// The VM, by name or id.
    #[arg(long, value_name = "NAME|ID")]
    pub vm: String,
    /// A full backup even when an incremental one is possible.
    #[arg(long)]
    pub full: bool,
    /// Ranges read at the same time per disk (each holds up to 4 MiB twice).
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub jobs: usize,
    /// Older engines and any storage: snapshot the VM, attach the snapshot's
    /// disks to --agent-vm (where holdfast runs) and read their block devices.
    #[arg(long, requires = "agent_vm", conflicts_with = "full")]
    pub via_snapshot: bool,
    /// The VM holdfast runs in (with --via-snapshot).
    #[arg(long, value_name = "NAME|ID", requires = "via_snapshot")]
    pub agent_vm: Option<String>,
    /// Keep the VM snapshot after a --via-snapshot backup.
    #[arg(long, requires = "via_snapshot")]
    pub keep_snapshot: bool,
    /// Where attached disks appear, named by their ids.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/dev/disk/by-id",
        hide = true
    )]
    pub device_dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImageFormat {
    Raw,
    Qcow2,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The snapshot (an id, a unique prefix, or `latest`).
    pub snapshot: String,
    /// Write one disk into this new local image file instead of the engine.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["new_name", "storage_domain"])]
    pub to_file: Option<PathBuf>,
    /// Only this disk (id or name); with --to-file, needed when the VM has several.
    #[arg(long, value_name = "ID")]
    pub disk: Option<String>,
    /// Give the new disks to this existing VM instead of creating a VM.
    #[arg(long, value_name = "NAME|ID", conflicts_with_all = ["to_file", "new_name"])]
    pub into_vm: Option<String>,
    /// Image format of the file, or of the engine's new disks (default: as they were).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<ImageFormat>,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Storage domain of the new disks (default: the engine's choice).
    #[arg(long, value_name = "NAME")]
    pub storage_domain: Option<String>,
    /// Name of the new VM (default: the stored name with -restored).
    #[arg(long, value_name = "NAME")]
    pub new_name: Option<String>,
    /// Cluster of the new VM.
    #[arg(long, value_name = "NAME", default_value = "Default")]
    pub cluster: String,
}

impl EngineArgs {
    fn patience(&self) -> Patience {
        Patience {
            poll: Duration::from_secs_f64(self.poll_interval.clamp(0.01, 60.0)),
            budget: Duration::from_secs(self.step_timeout),
        }
    }

    fn connect(&self) -> holdfast::Result<Arc<Engine>> {
        let url = self
            .engine
            .clone()
            .ok_or_else(|| Error::usage("no engine given: pass --engine https://ENGINE"))?;
        let password = match &self.engine_password_file {
            Some(path) => Password::from_file(path).map_err(|e| {
                Error::usage(format!(
                    "cannot read --engine-password-file {}: {e}",
                    path.display()
                ))
            })?,
            None => Password::new(std::env::var(ENGINE_PASSWORD_ENV).map_err(|_| {
                Error::usage(format!(
                    "no engine password: pass --engine-password-file FILE or set {ENGINE_PASSWORD_ENV}"
                ))
            })?),
        };
        if password.is_empty() {
            return Err(Error::usage("the engine password is empty"));
        }
        Ok(Arc::new(Engine::connect(EngineAccess {
            url,
            user: self.user.clone(),
            password,
            ca_file: self.ca_file.clone(),
        })?))
    }
}

pub fn run(a: VmArgs, log: &Log) -> holdfast::Result<()> {
    let location = repo_cmd::location(&a.repo)?;
    let repo_password = repo_cmd::password(a.repo.password_file.as_deref(), false)?;
    match a.command {
        VmCommand::Backup(b) => {
            let engine = b.engine.connect()?;
            let mut repo = holdfast::repo::Repo::open(&location, &repo_password)?;
            let out = match &b.agent_vm {
                Some(agent) if b.via_snapshot => {
                    let req = SnapshotFlowRequest {
                        vm: b.vm.clone(),
                        agent_vm: agent.clone(),
                        keep_snapshot: b.keep_snapshot,
                        device_dir: b.device_dir.clone(),
                        patience: b.engine.patience(),
                    };
                    vm::snapshot_flow::backup_via_snapshot(&engine, &mut repo, &req, log)?
                }
                _ => {
                    let req = VmBackupRequest {
                        vm: b.vm.clone(),
                        full: b.full,
                        workers: b.jobs.clamp(1, 16),
                        patience: b.engine.patience(),
                        repo_password,
                    };
                    vm::backup::backup(&engine, &mut repo, &req, log)?
                }
            };
            log.output(&format!(
                "snapshot {} of VM {}: {} backup of {} ({} virtual), {} read{}",
                out.snapshot.short_id(),
                b.vm,
                match (out.incremental, b.via_snapshot) {
                    (true, _) => "incremental",
                    (false, false) => "full",
                    (false, true) => "snapshot",
                },
                holdfast::log::count(out.disks, "disk", "disks"),
                bytes(out.disk_bytes),
                bytes(out.downloaded),
                if out.retried > 0 {
                    format!(
                        ", {} tried again",
                        holdfast::log::count(out.retried as usize, "range", "ranges")
                    )
                } else {
                    String::new()
                }
            ));
            log.output(&format!(
                "stored {} new ({} packed); checkpoint {}",
                bytes(out.snapshot.added_bytes),
                bytes(out.snapshot.added_stored_bytes),
                out.checkpoint.as_deref().unwrap_or("none")
            ));
            Ok(())
        }
        VmCommand::Restore(r) => {
            let mut repo = holdfast::repo::Repo::open(&location, &repo_password)?;
            let qcow2 = r.format.map(|f| f == ImageFormat::Qcow2);
            let (engine, target) = match &r.to_file {
                Some(path) => (
                    None,
                    VmRestoreTarget::File {
                        path: crate::shared::absolute(path),
                        disk: r.disk.clone(),
                        qcow2: qcow2.unwrap_or(false),
                    },
                ),
                None => (
                    Some(r.engine.connect()?),
                    VmRestoreTarget::Engine {
                        new_name: r.new_name.clone(),
                        into_vm: r.into_vm.clone(),
                        disk: r.disk.clone(),
                        cluster: r.cluster.clone(),
                        storage_domain: r.storage_domain.clone(),
                        qcow2,
                        patience: r.engine.patience(),
                    },
                ),
            };
            let out = vm::restore::restore(engine.as_ref(), &mut repo, &r.snapshot, &target, log)?;
            match (&out.new_vm, &r.to_file) {
                (Some(id), _) => log.output(&format!(
                    "VM {} ({id}) restored from snapshot {}: {}, {} sent, {} as zero requests",
                    out.vm_name,
                    out.snapshot.short_id(),
                    holdfast::log::count(out.disks, "disk", "disks"),
                    bytes(out.uploaded),
                    bytes(out.zeroed)
                )),
                (None, Some(path)) => log.output(&format!(
                    "disk of VM {} from snapshot {} written to {}",
                    out.vm_name,
                    out.snapshot.short_id(),
                    path.display()
                )),
                (None, None) => {}
            }
            Ok(())
        }
    }
}
