//! The engine's REST API calls a VM backup and restore makes, with the
//! documents as typed structs (oVirt/ovirt-engine-api-model's XML: ids are
//! attributes, everything else elements; unknown elements are ignored), and
//! the waits on its state machines (a backup `initializing` → `ready` →
//! `finalizing` → `succeeded`; an image transfer `initializing` →
//! `transferring` → `finished_success`).

use std::time::{Duration, Instant};

use quick_xml::escape::escape;
use serde::Deserialize;

use super::sso::{ApiFailure, Engine, Method};
use crate::{Error, Result};

/// A reference to another entity: `<disk id="…"/>`.
#[derive(Debug, Clone, Deserialize)]
pub struct Ref {
    #[serde(rename = "@id")]
    pub id: String,
}

/// `<vm>`, with its configuration when asked with All-Content.
#[derive(Debug, Clone, Deserialize)]
pub struct Vm {
    #[serde(rename = "@id")]
    pub id: String,
    pub name: Option<String>,
    pub initialization: Option<Initialization>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Initialization {
    pub configuration: Option<Configuration>,
}

/// `<configuration><type>ovf</type><data>…</data></configuration>`.
#[derive(Debug, Clone, Deserialize)]
pub struct Configuration {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub data: Option<String>,
}

impl Vm {
    /// The OVF configuration, when the document carries it.
    pub fn ovf(&self) -> Option<&str> {
        let c = self.initialization.as_ref()?.configuration.as_ref()?;
        (c.kind.as_deref().unwrap_or("ovf") == "ovf")
            .then_some(c.data.as_deref())
            .flatten()
    }
}

#[derive(Debug, Deserialize)]
struct Vms {
    #[serde(default)]
    vm: Vec<Vm>,
}

/// `<disk_attachment>`: how a disk hangs on a VM.
#[derive(Debug, Clone, Deserialize)]
pub struct DiskAttachment {
    #[serde(rename = "@id")]
    pub id: String,
    pub bootable: Option<bool>,
    pub interface: Option<String>,
    pub disk: Ref,
}

#[derive(Debug, Deserialize)]
struct DiskAttachments {
    #[serde(default)]
    disk_attachment: Vec<DiskAttachment>,
}

/// `<disk>`.
#[derive(Debug, Clone, Deserialize)]
pub struct Disk {
    #[serde(rename = "@id")]
    pub id: String,
    pub name: Option<String>,
    pub provisioned_size: Option<u64>,
    /// `raw` or `cow` (qcow2).
    pub format: Option<String>,
    pub status: Option<String>,
    /// `incremental` when the disk keeps dirty bitmaps, else `none`.
    pub backup: Option<String>,
}

/// `<backup>`.
#[derive(Debug, Clone, Deserialize)]
pub struct Backup {
    #[serde(rename = "@id")]
    pub id: String,
    pub phase: Option<String>,
    pub from_checkpoint_id: Option<String>,
    pub to_checkpoint_id: Option<String>,
}

/// `<image_transfer>`.
#[derive(Debug, Clone, Deserialize)]
pub struct ImageTransfer {
    #[serde(rename = "@id")]
    pub id: String,
    pub phase: Option<String>,
    pub transfer_url: Option<String>,
    pub proxy_url: Option<String>,
}

/// `<snapshot>` of a VM (the seed's snapshot flow).
#[derive(Debug, Clone, Deserialize)]
pub struct Snapshot {
    #[serde(rename = "@id")]
    pub id: String,
    pub snapshot_status: Option<String>,
    pub initialization: Option<Initialization>,
}

impl Snapshot {
    /// The VM's OVF configuration as of the snapshot (asked with All-Content).
    pub fn ovf(&self) -> Option<&str> {
        let c = self.initialization.as_ref()?.configuration.as_ref()?;
        c.data.as_deref()
    }
}

#[derive(Debug, Deserialize)]
struct Disks {
    #[serde(default)]
    disk: Vec<Disk>,
}

#[derive(Debug, Deserialize)]
struct Fault {
    reason: Option<String>,
    detail: Option<String>,
}

/// Which way an image transfer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Download,
    Upload,
}

/// How often the state machines are polled, and for how long at most.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    pub poll: Duration,
    pub budget: Duration,
}

impl Default for Patience {
    /// The SDK's helpers: every second, a minute at most per step.
    fn default() -> Patience {
        Patience {
            poll: Duration::from_secs(1),
            budget: Duration::from_secs(60),
        }
    }
}

fn parse<T: for<'de> Deserialize<'de>>(what: &str, xml: &str) -> Result<T> {
    quick_xml::de::from_str(xml).map_err(|e| {
        Error::failed(format!(
            "the engine's {what} document is not what the API model describes: {e}"
        ))
    })
}

/// The engine's refusal as one line: status, `<fault>` reason and detail.
fn refused(doing: &str, failure: ApiFailure) -> Error {
    let why = quick_xml::de::from_str::<Fault>(&failure.body)
        .ok()
        .map(|f| {
            [f.reason, f.detail]
                .into_iter()
                .flatten()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(": ")
        })
        .unwrap_or_else(|| failure.body.chars().take(200).collect());
    Error::failed(format!(
        "the engine refused to {doing} ({}: {why})",
        failure.status
    ))
}

impl Engine {
    fn get_doc<T: for<'de> Deserialize<'de>>(
        &self,
        doing: &str,
        what: &str,
        path: &str,
        all_content: bool,
    ) -> Result<T> {
        match self.call(Method::Get, path, None, all_content)? {
            Ok(xml) => parse(what, &xml),
            Err(f) => Err(refused(doing, f)),
        }
    }

    fn post_doc<T: for<'de> Deserialize<'de>>(
        &self,
        doing: &str,
        what: &str,
        path: &str,
        body: &str,
    ) -> Result<T> {
        match self.call(Method::Post, path, Some(body), false)? {
            Ok(xml) => parse(what, &xml),
            Err(f) => Err(refused(doing, f)),
        }
    }

    fn action(&self, doing: &str, path: &str) -> Result<()> {
        match self.call(Method::Post, path, Some("<action/>"), false)? {
            Ok(_) => Ok(()),
            Err(f) => Err(refused(doing, f)),
        }
    }

    /// A VM by name, else by id, with its OVF configuration.
    pub fn find_vm(&self, name_or_id: &str) -> Result<Vm> {
        let search = format!("name={name_or_id}");
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("search", &search)
            .finish();
        let vms: Vms = self.get_doc("list VMs", "vms", &format!("/vms?{query}"), true)?;
        if let Some(vm) = vms.vm.into_iter().next() {
            return Ok(vm);
        }
        match self.call(Method::Get, &format!("/vms/{name_or_id}"), None, true)? {
            Ok(xml) => parse("vm", &xml),
            Err(f) if f.status == 404 || f.status == 400 => Err(Error::usage(format!(
                "the engine has no VM named or with id '{name_or_id}'"
            ))),
            Err(f) => Err(refused(&format!("read VM {name_or_id}"), f)),
        }
    }

    /// The disks attached to a VM.
    pub fn disk_attachments(&self, vm: &str) -> Result<Vec<DiskAttachment>> {
        let list: DiskAttachments = self.get_doc(
            "list the VM's disks",
            "disk_attachments",
            &format!("/vms/{vm}/diskattachments"),
            false,
        )?;
        Ok(list.disk_attachment)
    }

    pub fn disk(&self, id: &str) -> Result<Disk> {
        self.get_doc(
            &format!("read disk {id}"),
            "disk",
            &format!("/disks/{id}"),
            false,
        )
    }

    /// `POST /vms/{vm}/backups`: full without `from`, else incremental from that checkpoint.
    pub fn start_backup(&self, vm: &str, disks: &[String], from: Option<&str>) -> Result<Backup> {
        let mut body = String::from("<backup>");
        if let Some(c) = from {
            body += &format!("<from_checkpoint_id>{}</from_checkpoint_id>", escape(c));
        }
        body += "<disks>";
        for d in disks {
            body += &format!("<disk id=\"{}\"/>", escape(d.as_str()));
        }
        body += "</disks></backup>";
        self.post_doc(
            "start the VM backup",
            "backup",
            &format!("/vms/{vm}/backups"),
            &body,
        )
    }

    pub fn backup(&self, vm: &str, id: &str) -> Result<Backup> {
        match self.call(Method::Get, &format!("/vms/{vm}/backups/{id}"), None, false)? {
            Ok(xml) => parse("backup", &xml),
            Err(f) if f.status == 404 => Err(Error::failed(format!(
                "backup {id} is gone from the engine (it failed; see the engine's events)"
            ))),
            Err(f) => Err(refused(&format!("read backup {id}"), f)),
        }
    }

    pub fn finalize_backup(&self, vm: &str, id: &str) -> Result<()> {
        self.action(
            &format!("finalize backup {id}"),
            &format!("/vms/{vm}/backups/{id}/finalize"),
        )
    }

    /// Poll a backup until `want`; `failed` or the budget is an error.
    pub fn wait_backup(
        &self,
        vm: &str,
        id: &str,
        want: &str,
        patience: Patience,
    ) -> Result<Backup> {
        let start = Instant::now();
        loop {
            // A termination request ends the wait for a backup to start, not
            // the clean-up's wait for it to finish.
            if want == "ready" {
                crate::interrupt::check()?;
            }
            let backup = self.backup(vm, id)?;
            let phase = backup.phase.clone().unwrap_or_default();
            if phase == want {
                return Ok(backup);
            }
            if phase == "failed" || phase == "succeeded" {
                return Err(Error::failed(format!(
                    "backup {id} is {phase}, not {want}; see the engine's events"
                )));
            }
            if start.elapsed() > patience.budget {
                return Err(Error::failed(format!(
                    "backup {id} did not become {want} within {}s (still {phase})",
                    patience.budget.as_secs()
                )));
            }
            std::thread::sleep(patience.poll);
        }
    }

    /// `POST /imagetransfers` (raw: the NBD backend, guest data and extents).
    pub fn create_transfer(
        &self,
        disk: &str,
        backup: Option<&str>,
        direction: Direction,
    ) -> Result<ImageTransfer> {
        let mut body = format!("<image_transfer><disk id=\"{}\"/>", escape(disk));
        if let Some(b) = backup {
            body += &format!("<backup id=\"{}\"/>", escape(b));
        }
        body += match direction {
            Direction::Download => "<direction>download</direction>",
            Direction::Upload => "<direction>upload</direction>",
        };
        body += "<format>raw</format><inactivity_timeout>120</inactivity_timeout>\
                 <timeout_policy>cancel</timeout_policy></image_transfer>";
        self.post_doc(
            &format!("start an image transfer of disk {disk}"),
            "image_transfer",
            "/imagetransfers",
            &body,
        )
    }

    pub fn transfer(&self, id: &str) -> Result<Option<ImageTransfer>> {
        match self.call(Method::Get, &format!("/imagetransfers/{id}"), None, false)? {
            Ok(xml) => Ok(Some(parse("image_transfer", &xml)?)),
            Err(f) if f.status == 404 => Ok(None),
            Err(f) => Err(refused(&format!("read image transfer {id}"), f)),
        }
    }

    /// Poll a new transfer until `transferring` (its URLs are usable).
    pub fn wait_transferring(&self, id: &str, patience: Patience) -> Result<ImageTransfer> {
        let start = Instant::now();
        loop {
            crate::interrupt::check()?;
            let Some(t) = self.transfer(id)? else {
                return Err(Error::failed(format!(
                    "image transfer {id} was removed by the engine"
                )));
            };
            let phase = t.phase.clone().unwrap_or_default();
            match phase.as_str() {
                "transferring" => return Ok(t),
                "initializing" if start.elapsed() <= patience.budget => {
                    std::thread::sleep(patience.poll)
                }
                "initializing" => {
                    return Err(Error::failed(format!(
                        "image transfer {id} did not start within {}s",
                        patience.budget.as_secs()
                    )))
                }
                other => {
                    return Err(Error::failed(format!(
                        "image transfer {id} is {other} instead of transferring"
                    )))
                }
            }
        }
    }

    pub fn finalize_transfer(&self, id: &str) -> Result<()> {
        self.action(
            &format!("finalize image transfer {id}"),
            &format!("/imagetransfers/{id}/finalize"),
        )
    }

    pub fn cancel_transfer(&self, id: &str) -> Result<()> {
        self.action(
            &format!("cancel image transfer {id}"),
            &format!("/imagetransfers/{id}/cancel"),
        )
    }

    /// Poll a finalized (or cancelled) transfer until it finished; Ok(true)
    /// for `finished_success`.
    pub fn wait_finished(&self, id: &str, patience: Patience) -> Result<bool> {
        let start = Instant::now();
        loop {
            let Some(t) = self.transfer(id)? else {
                // Engines before 4.4.7 remove the entity when done.
                return Ok(true);
            };
            match t.phase.as_deref().unwrap_or_default() {
                "finished_success" => return Ok(true),
                "finished_failure" | "finished_cleanup" | "cancelled_system" => return Ok(false),
                phase if start.elapsed() > patience.budget => {
                    return Err(Error::failed(format!(
                        "image transfer {id} did not finish within {}s (still {phase})",
                        patience.budget.as_secs()
                    )))
                }
                _ => std::thread::sleep(patience.poll),
            }
        }
    }

    /// `POST /disks`: a new sparse disk for an upload.
    pub fn create_disk(&self, new: &NewDisk) -> Result<Disk> {
        let mut body = format!(
            "<disk><name>{}</name><provisioned_size>{}</provisioned_size><format>{}</format><sparse>true</sparse>",
            escape(new.name.as_str()),
            new.size,
            if new.qcow2 { "cow" } else { "raw" },
        );
        if new.qcow2 {
            body += "<backup>incremental</backup>";
        }
        if let Some(sd) = &new.storage_domain {
            body += &format!(
                "<storage_domains><storage_domain><name>{}</name></storage_domain></storage_domains>",
                escape(sd.as_str())
            );
        }
        body += "</disk>";
        self.post_doc("create a disk", "disk", "/disks", &body)
    }

    /// Poll a new disk until `ok`.
    pub fn wait_disk_ok(&self, id: &str, patience: Patience) -> Result<Disk> {
        let start = Instant::now();
        loop {
            crate::interrupt::check()?;
            let disk = self.disk(id)?;
            match disk.status.as_deref() {
                Some("ok") => return Ok(disk),
                Some("illegal") => return Err(Error::failed(format!("disk {id} became illegal"))),
                status if start.elapsed() > patience.budget => {
                    return Err(Error::failed(format!(
                        "disk {id} did not become ok within {}s (still {})",
                        patience.budget.as_secs(),
                        status.unwrap_or("unknown")
                    )))
                }
                _ => std::thread::sleep(patience.poll),
            }
        }
    }

    pub fn delete_disk(&self, id: &str) -> Result<()> {
        match self.call(Method::Delete, &format!("/disks/{id}"), None, false)? {
            Ok(_) => Ok(()),
            Err(f) if f.status == 404 => Ok(()),
            Err(f) => Err(refused(&format!("delete disk {id}"), f)),
        }
    }

    /// `POST /vms` from a stored OVF configuration.
    pub fn create_vm(&self, name: &str, cluster: &str, ovf: &str) -> Result<Vm> {
        let body = format!(
            "<vm><name>{}</name><cluster><name>{}</name></cluster><initialization><configuration>\
             <type>ovf</type><data>{}</data></configuration></initialization></vm>",
            escape(name),
            escape(cluster),
            escape(ovf)
        );
        self.post_doc("create the VM", "vm", "/vms", &body)
    }

    /// Remove a VM (one this run created, when attaching its disks failed).
    pub fn delete_vm(&self, id: &str) -> Result<()> {
        match self.call(Method::Delete, &format!("/vms/{id}"), None, false)? {
            Ok(_) => Ok(()),
            Err(f) if f.status == 404 => Ok(()),
            Err(f) => Err(refused(&format!("remove VM {id}"), f)),
        }
    }

    /// Attach a disk to a VM, active.
    pub fn attach_disk(&self, vm: &str, disk: &str, bootable: bool, interface: &str) -> Result<()> {
        let body = format!(
            "<disk_attachment><disk id=\"{}\"/><active>true</active><bootable>{bootable}</bootable>\
             <interface>{}</interface></disk_attachment>",
            escape(disk),
            escape(interface)
        );
        match self.call(
            Method::Post,
            &format!("/vms/{vm}/diskattachments"),
            Some(&body),
            false,
        )? {
            Ok(_) => Ok(()),
            Err(f) => Err(refused(&format!("attach disk {disk}"), f)),
        }
    }
}

impl Engine {
    /// `POST /vms/{vm}/snapshots`, without memory (the VM pauses less).
    pub fn create_snapshot(&self, vm: &str, description: &str) -> Result<Snapshot> {
        let body = format!(
            "<snapshot><description>{}</description><persist_memorystate>false</persist_memorystate></snapshot>",
            escape(description)
        );
        self.post_doc(
            "create a VM snapshot",
            "snapshot",
            &format!("/vms/{vm}/snapshots"),
            &body,
        )
    }

    /// A snapshot, with the VM's configuration as of it.
    pub fn snapshot(&self, vm: &str, id: &str) -> Result<Snapshot> {
        self.get_doc(
            &format!("read snapshot {id}"),
            "snapshot",
            &format!("/vms/{vm}/snapshots/{id}"),
            true,
        )
    }

    /// Poll a new snapshot until `ok`.
    pub fn wait_snapshot_ok(&self, vm: &str, id: &str, patience: Patience) -> Result<Snapshot> {
        let start = Instant::now();
        loop {
            crate::interrupt::check()?;
            let snap = self.snapshot(vm, id)?;
            match snap.snapshot_status.as_deref() {
                Some("ok") => return Ok(snap),
                status if start.elapsed() > patience.budget => {
                    return Err(Error::failed(format!(
                        "snapshot {id} did not become ok within {}s (still {})",
                        patience.budget.as_secs(),
                        status.unwrap_or("unknown")
                    )))
                }
                _ => std::thread::sleep(patience.poll),
            }
        }
    }

    /// The disks of a snapshot.
    pub fn snapshot_disks(&self, vm: &str, id: &str) -> Result<Vec<Disk>> {
        let disks: Disks = self.get_doc(
            &format!("list the disks of snapshot {id}"),
            "disks",
            &format!("/vms/{vm}/snapshots/{id}/disks"),
            false,
        )?;
        Ok(disks.disk)
    }

    pub fn delete_snapshot(&self, vm: &str, id: &str) -> Result<()> {
        match self.call(
            Method::Delete,
            &format!("/vms/{vm}/snapshots/{id}"),
            None,
            false,
        )? {
            Ok(_) => Ok(()),
            Err(f) if f.status == 404 => Ok(()),
            Err(f) => Err(refused(&format!("delete snapshot {id}"), f)),
        }
    }

    /// Attach a snapshot's disk to the agent VM (where holdfast runs); the
    /// attachment's id.
    pub fn attach_snapshot_disk(&self, agent: &str, disk: &str, snapshot: &str) -> Result<String> {
        let body = format!(
            "<disk_attachment><disk id=\"{}\"><snapshot id=\"{}\"/></disk><active>true</active>\
             <bootable>false</bootable><interface>virtio</interface></disk_attachment>",
            escape(disk),
            escape(snapshot)
        );
        let att: DiskAttachment = self.post_doc(
            &format!("attach disk {disk} of snapshot {snapshot}"),
            "disk_attachment",
            &format!("/vms/{agent}/diskattachments"),
            &body,
        )?;
        Ok(att.id)
    }

    /// Detach (the disk itself stays).
    pub fn detach_disk(&self, vm: &str, attachment: &str) -> Result<()> {
        match self.call(
            Method::Delete,
            &format!("/vms/{vm}/diskattachments/{attachment}"),
            None,
            false,
        )? {
            Ok(_) => Ok(()),
            Err(f) if f.status == 404 => Ok(()),
            Err(f) => Err(refused(&format!("detach disk attachment {attachment}"), f)),
        }
    }
}

/// What `POST /disks` creates.
#[derive(Debug, Clone)]
pub struct NewDisk {
    pub name: String,
    pub size: u64,
    pub qcow2: bool,
    pub storage_domain: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_of_the_api_model_parse() {
        let vm: Vm = parse(
            "vm",
            r#"<vm href="/ovirt-engine/api/vms/1" id="1"><name>web</name><status>up</status>
               <initialization><configuration><type>ovf</type><data>&lt;ovf:Envelope/&gt;</data></configuration></initialization></vm>"#,
        )
        .unwrap();
        assert_eq!(vm.ovf(), Some("<ovf:Envelope/>"));
        let atts: DiskAttachments = parse(
            "disk_attachments",
            r#"<disk_attachments><disk_attachment id="d1"><bootable>true</bootable><interface>virtio</interface>
               <disk href="/ovirt-engine/api/disks/d1" id="d1"/></disk_attachment></disk_attachments>"#,
        )
        .unwrap();
        assert_eq!(atts.disk_attachment[0].disk.id, "d1");
        assert_eq!(atts.disk_attachment[0].bootable, Some(true));
        let empty: DiskAttachments = parse("disk_attachments", "<disk_attachments/>").unwrap();
        assert!(empty.disk_attachment.is_empty());
        let b: Backup = parse(
            "backup",
            r#"<backup id="b"><phase>ready</phase><to_checkpoint_id>c2</to_checkpoint_id><disks><disk id="d1"/></disks></backup>"#,
        )
        .unwrap();
        assert_eq!(b.phase.as_deref(), Some("ready"));
        assert_eq!(b.to_checkpoint_id.as_deref(), Some("c2"));
        let d: Disk = parse(
            "disk",
            r#"<disk id="d"><provisioned_size>2147483648</provisioned_size><format>cow</format><status>ok</status></disk>"#,
        )
        .unwrap();
        assert_eq!(d.provisioned_size, Some(2 << 30));
    }

    #[test]
    fn faults_become_one_line() {
        let e = refused(
            "start the VM backup",
            ApiFailure {
                status: 400,
                body:
                    "<fault><reason>Operation Failed</reason><detail>no checkpoint</detail></fault>"
                        .into(),
            },
        );
        assert!(e
            .to_string()
            .contains("(400: Operation Failed: no checkpoint)"));
    }
}
