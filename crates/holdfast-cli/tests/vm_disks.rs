//! `holdfast vm`: VM disks through oVirt's Backup and Restore API, with a
//! real data path (disk images made by qemu-img, served by qemu-nbd and the
//! real ovirt-imageio daemon, installed by scripts/ensure-imageio) behind a
//! stand-in of the engine's REST API (support/ovirt_standin.py).
//!
//! Every restored image is compared with its original by checksum of the
//! guest data, and the files of its ext4 file system are read back; the
//! bytes that went over the wire are counted by the stand-in's relay in
//! front of imageio.

#[path = "support/ovirt.rs"]
mod ovirt;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ovirt::*;

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

struct Site {
    dir: tempfile::TempDir,
    engine: Standin,
    repo: PathBuf,
}

impl Site {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `holdfast vm ARGS` with the repository and engine password files.
    fn vm(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_holdfast"));
        cmd.arg("vm")
            .arg("--repo")
            .arg(&self.repo)
            .arg("--password-file")
            .arg(self.path("repo-password"))
            .args(args)
            .env_remove("HOLDFAST_ENGINE_PASSWORD")
            .env_remove("HOLDFAST_REPOSITORY");
        let engine_args = ["--engine".to_string(), self.engine.url()];
        if args.first() == Some(&"backup")
            || (args.first() == Some(&"restore") && !args.contains(&"--to-file"))
        {
            cmd.args(&engine_args)
                .arg("--engine-password-file")
                .arg(self.path("engine-password"))
                .args(["--poll-interval", "0.05"]);
            if !args.contains(&"--step-timeout") {
                cmd.args(["--step-timeout", "20"]);
            }
        }
        let out = cmd.output().expect("run holdfast");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !text.contains(ENGINE_PASSWORD) && !text.contains(REPO_PASSWORD),
            "a password reached the console:\n{text}"
        );
        out
    }

    #[track_caller]
    fn vm_ok(&self, args: &[&str]) -> String {
        let out = self.vm(args);
        assert!(
            out.status.success(),
            "holdfast vm {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[track_caller]
    fn vm_fails(&self, args: &[&str], text: &str) -> String {
        let out = self.vm(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "holdfast vm {args:?} should fail");
        assert!(
            stderr.contains(text),
            "stderr should say {text:?}:\n{stderr}"
        );
        stderr
    }

    /// Snapshot ids in the repository (files under snapshots/).
    fn snapshots(&self) -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(self.repo.join("snapshots"))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    }
}

/// A site: the images, the stand-in, an initialised repository.
fn site(vms: impl FnOnce(&Path) -> Vec<VmSpec>) -> Site {
    site_with(vms, false)
}

/// With `tls`: the engine stand-in and imageio speak https with a
/// certificate of a private CA (`ca.pem` in the site).
fn site_with(vms: impl FnOnce(&Path) -> Vec<VmSpec>, tls: bool) -> Site {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("engine-password"),
        format!("{ENGINE_PASSWORD}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("repo-password"),
        format!("{REPO_PASSWORD}\n"),
    )
    .unwrap();
    let specs = vms(dir.path());
    let engine = if tls {
        let (_, cert, key) = tls_files(dir.path());
        Standin::start_with_tls(dir.path(), &specs, Some((&cert, &key)))
    } else {
        Standin::start(dir.path(), &specs)
    };
    let repo = dir.path().join("repo");
    let out = Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .args(["repo", "--repo"])
        .arg(&repo)
        .arg("--password-file")
        .arg(dir.path().join("repo-password"))
        .arg("init")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Site { dir, engine, repo }
}

fn files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("data.bin", pseudo_random(7, 12 * MIB as usize)),
        ("notes.txt", b"holdfast keeps this file\n".repeat(1000)),
    ]
}

/// The web VM: one 2 GiB sparse qcow2 disk with an ext4 file system.
fn web(dir: &Path) -> Vec<VmSpec> {
    let disk = ext4_qcow2(dir, "web", 2 * GIB, &files());
    vec![VmSpec {
        id: "6f0c1a54-web0-4d2c-9a59-000000000001",
        name: "web",
        disks: vec![("d1e2f3a4-0000-4000-8000-00000000d001", disk, "cow")],
    }]
}

fn snapshot_id(stdout: &str) -> String {
    stdout
        .split_whitespace()
        .nth(1)
        .expect("snapshot id in the output")
        .to_string()
}

#[test]
fn full_then_incremental_backup_restore_byte_identical_images() {
    let site = site(web);
    let disk = site.path("web.qcow2");
    let original_sha = guest_sha256(&disk, &site.path("orig"));
    let allocated = allocated_data(&disk);

    // Full: only the allocated data crosses the wire, and about that much is stored.
    let log = site.path("backup.log");
    let run = site.vm(&[
        "backup",
        "--vm",
        "web",
        "--log",
        log.to_str().unwrap(),
        "--progress",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(String::from_utf8_lossy(&run.stderr).contains("reading VM disks"));
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("Start of holdfast vm backup"), "{logged}");
    assert!(
        logged.lines().last().unwrap().contains("Outcome"),
        "{logged}"
    );
    assert!(!logged.contains(ENGINE_PASSWORD) && !logged.contains(REPO_PASSWORD));
    let out = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(out.contains("full backup of 1 disk"), "{out}");
    let full = snapshot_id(&out);
    let down = site.engine.bytes_down();
    assert!(
        down >= allocated && down < allocated + 2 * MIB,
        "a full backup of {allocated} allocated bytes downloaded {down}"
    );
    let stored = dir_size(&site.repo);
    assert!(
        stored < allocated + 4 * MIB,
        "the repository holds {stored} bytes for {allocated} allocated"
    );
    assert!(
        site.engine.dangling().is_empty(),
        "{:?}",
        site.engine.dangling()
    );

    // Change about 1 % of the disk (20 MiB in 1 MiB writes, in free space
    // of the file system, away from its block group headers).
    let writes: Vec<(u64, u8, u64)> = (0..20)
        .map(|i| (GIB + i * 16 * MIB + MIB, 0x41 + i as u8, MIB))
        .collect();
    qemu_io_writes(&disk, "qcow2", &writes);
    let changed_sha = guest_sha256(&disk, &site.path("changed"));
    assert_ne!(changed_sha, original_sha);

    let before = site.engine.bytes_down();
    let out = site.vm_ok(&["backup", "--vm", "web"]);
    assert!(out.contains("incremental backup of 1 disk"), "{out}");
    let incremental = snapshot_id(&out);
    let down = site.engine.bytes_down() - before;
    assert!(
        (20 * MIB..21 * MIB).contains(&down),
        "an incremental after 20 MiB of changes downloaded {down} bytes"
    );
    let grown = dir_size(&site.repo) - stored;
    assert!(
        grown < 24 * MIB,
        "the incremental snapshot added {grown} bytes"
    );
    let state = site.engine.state();
    let backups: Vec<&serde_json::Value> = state["backups"].as_object().unwrap().values().collect();
    assert_eq!(backups.len(), 2);
    assert!(backups.iter().any(|b| !b["from_checkpoint_id"].is_null()));
    assert!(
        site.engine.dangling().is_empty(),
        "{:?}",
        site.engine.dangling()
    );

    // Every snapshot restores on its own, byte for byte.
    let raw_full = site.path("full.raw");
    site.vm_ok(&["restore", &full, "--to-file", raw_full.to_str().unwrap()]);
    assert_eq!(guest_sha256(&raw_full, &site.path("s1")), original_sha);
    let raw_incr = site.path("incr.raw");
    site.vm_ok(&[
        "restore",
        &incremental,
        "--to-file",
        raw_incr.to_str().unwrap(),
    ]);
    assert_eq!(guest_sha256(&raw_incr, &site.path("s2")), changed_sha);
    let qcow2 = site.path("incr.qcow2");
    site.vm_ok(&[
        "restore",
        &incremental,
        "--to-file",
        qcow2.to_str().unwrap(),
        "--format",
        "qcow2",
    ]);
    assert_eq!(guest_sha256(&qcow2, &site.path("s3")), changed_sha);
    // Restored files are sparse, and the file system's files are intact.
    let on_disk = std::fs::metadata(&raw_incr).map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.blocks() * 512
    });
    assert!(
        on_disk.unwrap() < 200 * MIB,
        "the restored raw image is not sparse"
    );
    for raw in [&raw_full, &raw_incr] {
        for (name, data) in files() {
            assert!(
                ext4_file(raw, name) == data,
                "{name} differs in {}",
                raw.display()
            );
        }
        sh("e2fsck", &["-fn", raw.to_str().unwrap()]);
    }
}

#[test]
fn restore_to_the_engine_sends_zeros_as_requests_and_the_stored_configuration() {
    // A raw disk with known patterns at known offsets: full backups only.
    let site = site(|dir| {
        let disk = patterned_raw(
            dir,
            "db",
            512 * MIB,
            &[
                (0, 0x11, MIB),
                (100 * MIB, 0x22, 3 * MIB),
                (511 * MIB, 0x33, MIB),
            ],
        );
        let logs = patterned_raw(dir, "logs", 64 * MIB, &[(10 * MIB, 0x44, MIB)]);
        vec![VmSpec {
            id: "6f0c1a54-db00-4d2c-9a59-000000000002",
            name: "db",
            disks: vec![
                ("d1e2f3a4-0000-4000-8000-00000000d002", disk, "raw"),
                ("d1e2f3a4-0000-4000-8000-00000000d003", logs, "raw"),
            ],
        }]
    });
    let disk = site.path("db.raw");
    let sha = guest_sha256(&disk, &site.path("orig"));
    let logs_sha = guest_sha256(&site.path("logs.raw"), &site.path("orig2"));
    let out = site.vm_ok(&["backup", "--vm", "db"]);
    assert!(out.contains("full backup of 2 disks"), "{out}");
    // The repository engine archives files in parallel (a thread per CPU):
    // both disks were read at the same time, each through its own transfer.
    if std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2 {
        assert_eq!(site.engine.state()["max_transferring"], 2);
    }
    // A raw disk is never incremental.
    let out = site.vm_ok(&["backup", "--vm", "db"]);
    assert!(out.contains("full backup"), "{out}");
    let snapshot = snapshot_id(&out);

    // An expired token (401) logs in again, once, and the run goes on.
    site.engine
        .faults(serde_json::json!({"token_expires_after": 3}));
    let up_before = site.engine.bytes_up();
    let out = site.vm_ok(&[
        "restore",
        &snapshot,
        "--new-name",
        "db-copy",
        "--storage-domain",
        "data2",
    ]);
    assert!(out.contains("VM db-copy"), "{out}");
    let up = site.engine.bytes_up() - up_before;
    assert!(
        (6 * MIB..7 * MIB).contains(&up),
        "6 MiB of data and 570 MiB of zeros uploaded {up} bytes"
    );
    let state = site.engine.state();
    assert!(
        state["faults"].get("token_expires_after").is_none(),
        "the token never expired"
    );
    let created = &state["created_vms"][0];
    assert_eq!(created["name"], "db-copy");
    assert_eq!(created["ovf"], OVF);
    assert_eq!(created["configuration_type"], "ovf");
    let new_disk = state["disks"]
        .as_object()
        .unwrap()
        .values()
        .find(|d| d["name"] == "db-copy-db-disk")
        .expect("the new disk");
    assert_eq!(new_disk["format"], "raw");
    assert!(new_disk["storage_domains"]
        .as_str()
        .unwrap()
        .contains("data2"));
    let attached = &state["attachments"][0];
    assert_eq!(attached[0], created["id"]);
    assert_eq!(attached[1], new_disk["id"]);
    let uploaded = PathBuf::from(new_disk["path"].as_str().unwrap());
    assert_eq!(guest_sha256(&uploaded, &site.path("up")), sha);
    let logs_disk = state["disks"]
        .as_object()
        .unwrap()
        .values()
        .find(|d| d["name"] == "db-copy-db-disk2")
        .expect("the second new disk");
    let uploaded = PathBuf::from(logs_disk["path"].as_str().unwrap());
    assert_eq!(guest_sha256(&uploaded, &site.path("up2")), logs_sha);
    assert_eq!(state["attachments"][1][0], created["id"]);
    assert_eq!(state["attachments"][1][1], logs_disk["id"]);
    assert!(
        site.engine.dangling().is_empty(),
        "{:?}",
        site.engine.dangling()
    );

    // Several disks: --to-file needs --disk.
    let file = site.path("logs-back.raw");
    let file = file.to_str().unwrap();
    site.vm_fails(&["restore", &snapshot, "--to-file", file], "--disk");
    site.vm_ok(&[
        "restore",
        &snapshot,
        "--to-file",
        file,
        "--disk",
        "d1e2f3a4-0000-4000-8000-00000000d003",
    ]);
    assert_eq!(guest_sha256(Path::new(file), &site.path("s3")), logs_sha);

    // One disk into an existing VM: attached there, not bootable, no new VM.
    site.vm_ok(&[
        "restore",
        &snapshot,
        "--into-vm",
        "db-copy",
        "--disk",
        "db-disk2",
    ]);
    let state = site.engine.state();
    assert_eq!(state["created_vms"].as_array().unwrap().len(), 1);
    assert_eq!(state["attachments"].as_array().unwrap().len(), 3);
    let second = state["attachments"][2].clone();
    assert_eq!(second[0], created["id"]);
    assert_eq!(second[3], "false");

    // Attaching fails after the VM was created: the VM and its disks go again.
    let disks_before = state["disks"].as_object().unwrap().len();
    site.engine
        .faults(serde_json::json!({"vm_attach_fails": true}));
    site.vm_fails(
        &["restore", &snapshot, "--new-name", "db-third"],
        "Cannot attach",
    );
    let state = site.engine.state();
    assert_eq!(state["disks"].as_object().unwrap().len(), disks_before);
    assert_eq!(state["created_vms"].as_array().unwrap().len(), 1);
    assert_eq!(state["deleted_vms"].as_array().unwrap().len(), 1);
    assert!(
        site.engine.dangling().is_empty(),
        "{:?}",
        site.engine.dangling()
    );
}

#[test]
fn failures_leave_no_backup_transfer_or_snapshot_behind() {
    let site = site(web);
    let disk = site.path("web.qcow2");
    let sha = guest_sha256(&disk, &site.path("orig"));

    // Wrong engine password: nothing starts.
    std::fs::write(site.path("engine-password"), "wrong\n").unwrap();
    site.vm_fails(&["backup", "--vm", "web"], "refused the login");
    std::fs::write(site.path("engine-password"), format!("{ENGINE_PASSWORD}\n")).unwrap();
    assert!(site.engine.state()["backups"]
        .as_object()
        .unwrap()
        .is_empty());

    // A backup that never becomes ready is finalized.
    site.engine
        .faults(serde_json::json!({"backup_never_ready": true}));
    let out = site.vm(&["backup", "--vm", "web", "--step-timeout", "1"]);
    assert!(!out.status.success());
    site.engine
        .faults(serde_json::json!({"backup_never_ready": false}));
    assert!(
        site.engine.dangling().is_empty(),
        "{:?}",
        site.engine.dangling()
    );
    assert!(site.snapshots().is_empty());

    // SIGTERM while the backup starts: the run ends (143), the backup is finalized.
    site.engine
        .faults(serde_json::json!({"backup_never_ready": true}));
    let child = Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .args(["vm", "--repo"])
        .arg(&site.repo)
        .arg("--password-file")
        .arg(site.path("repo-password"))
        .args(["backup", "--vm", "web", "--engine", &site.engine.url()])
        .arg("--engine-password-file")
        .arg(site.path("engine-password"))
        .args(["--poll-interval", "0.05"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while site.engine.state()["backups"].as_object().unwrap().len() < 2 {
        assert!(started.elapsed().as_secs() < 20, "the backup did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    sh("kill", &["-TERM", &child.id().to_string()]);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(143),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted by SIGTERM"));
    site.engine
        .faults(serde_json::json!({"backup_never_ready": false}));
    assert!(
        site.engine.dangling().is_empty(),
        "{:?}",
        site.engine.dangling()
    );
    assert!(site.snapshots().is_empty());

    // A transfer that fails: the backup is finalized, no snapshot stays.
    site.engine
        .faults(serde_json::json!({"transfer_fails": true}));
    site.vm_fails(&["backup", "--vm", "web"], "finished_failure");
    site.engine
        .faults(serde_json::json!({"transfer_fails": false}));
    assert!(
        site.engine.dangling().is_empty(),
        "{:?}",
        site.engine.dangling()
    );
    assert!(site.snapshots().is_empty());

    // Every connection lost after 1 MiB: ranges are tried again, then the
    // run gives up; the partial snapshot is not kept.
    site.engine
        .faults(serde_json::json!({"cut_each_connection_after": 3 * MIB / 2}));
    site.vm_fails(&["backup", "--vm", "web", "--jobs", "1"], "failed 5 times");
    site.engine
        .faults(serde_json::json!({"cut_each_connection_after": null}));
    assert!(
        site.engine.dangling().is_empty(),
        "{:?}",
        site.engine.dangling()
    );
    assert!(site.snapshots().is_empty(), "a partial snapshot stayed");

    // One lost connection: the range is read again, the backup completes.
    let cuts = site.engine.state()["relay"]["cuts"].as_u64().unwrap();
    let down = site.engine.bytes_down();
    site.engine
        .faults(serde_json::json!({"cut_after_bytes": down + 5 * MIB}));
    let out = site.vm_ok(&["backup", "--vm", "web"]);
    assert!(out.contains("tried again"), "{out}");
    assert_eq!(
        site.engine.state()["relay"]["cuts"].as_u64(),
        Some(cuts + 1)
    );
    let snapshot = snapshot_id(&out);
    let checkpoint = out.split_whitespace().last().unwrap().to_string();
    let raw = site.path("after-cut.raw");
    site.vm_ok(&["restore", &snapshot, "--to-file", raw.to_str().unwrap()]);
    assert_eq!(guest_sha256(&raw, &site.path("s")), sha);

    // A checkpoint the engine no longer has: a full backup instead.
    sh(
        "qemu-img",
        &["bitmap", "--remove", disk.to_str().unwrap(), &checkpoint],
    );
    let out = site.vm_ok(&["backup", "--vm", "web"]);
    assert!(out.contains("full backup"), "{out}");
    assert!(
        site.engine.dangling().is_empty(),
        "{:?}",
        site.engine.dangling()
    );

    // An upload whose transfer fails leaves no new disk.
    let disks_before = site.engine.state()["disks"].as_object().unwrap().len();
    site.engine
        .faults(serde_json::json!({"transfer_fails": true}));
    site.vm_fails(&["restore", &snapshot], "finished_failure");
    site.engine
        .faults(serde_json::json!({"transfer_fails": false}));
    let state = site.engine.state();
    assert_eq!(state["disks"].as_object().unwrap().len(), disks_before);
    assert!(state["created_vms"].as_array().unwrap().is_empty());
    assert!(
        site.engine.dangling().is_empty(),
        "{:?}",
        site.engine.dangling()
    );
}

#[test]
fn the_snapshot_flow_reads_the_attached_device_and_undoes_every_step() {
    // 512 MiB: a block device is read whole, zeros included.
    let site = site(|dir| {
        let disk = ext4_qcow2(dir, "web", 512 * MIB, &files());
        let mut vms = vec![VmSpec {
            id: "6f0c1a54-web0-4d2c-9a59-000000000001",
            name: "web",
            disks: vec![("d1e2f3a4-0000-4000-8000-00000000d001", disk, "cow")],
        }];
        vms.push(VmSpec {
            id: "6f0c1a54-agent-4d2c-9a59-000000000003",
            name: "backup-agent",
            disks: vec![],
        });
        vms
    });
    let sha = guest_sha256(&site.path("web.qcow2"), &site.path("orig"));
    let devices = site.engine.device_dir();
    let devices = devices.to_str().unwrap();
    let flow = [
        "backup",
        "--vm",
        "web",
        "--via-snapshot",
        "--agent-vm",
        "backup-agent",
        "--device-dir",
        devices,
    ];

    // Failures undo what was done: no VM snapshot, no attachment, no repository snapshot.
    site.engine
        .faults(serde_json::json!({"attach_fails": true}));
    site.vm_fails(&flow, "Cannot attach the disk");
    site.engine
        .faults(serde_json::json!({"attach_fails": false}));
    let mut never_ok = flow.to_vec();
    never_ok.extend(["--step-timeout", "1"]);
    site.engine
        .faults(serde_json::json!({"snapshot_never_ok": true}));
    site.vm_fails(&never_ok, "did not become ok");
    site.engine
        .faults(serde_json::json!({"snapshot_never_ok": false}));
    assert!(
        site.engine.dangling().is_empty(),
        "{:?}",
        site.engine.dangling()
    );
    assert_eq!(
        site.engine.state()["deleted_snapshots"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(site.snapshots().is_empty());

    let out = site.vm_ok(&flow);
    assert!(
        out.contains("snapshot backup of 1 disk (512.0 MiB"),
        "{out}"
    );
    let snapshot = snapshot_id(&out);
    assert!(
        site.engine.dangling().is_empty(),
        "{:?}",
        site.engine.dangling()
    );
    assert_eq!(
        std::fs::read_dir(devices).unwrap().count(),
        0,
        "a device stayed attached"
    );
    let raw = site.path("flow.raw");
    site.vm_ok(&["restore", &snapshot, "--to-file", raw.to_str().unwrap()]);
    assert_eq!(guest_sha256(&raw, &site.path("s")), sha);
    for (name, data) in files() {
        assert!(ext4_file(&raw, name) == data, "{name} differs");
    }

    let mut keep = flow.to_vec();
    keep.push("--keep-snapshot");
    site.vm_ok(&keep);
    let state = site.engine.state();
    let kept: Vec<&serde_json::Value> = state["snapshots"].as_object().unwrap().values().collect();
    assert_eq!(kept.len(), 1, "--keep-snapshot keeps the VM snapshot");
    assert_eq!(kept[0]["persist_memorystate"], "false");
    assert!(state["agent_attachments"].as_object().unwrap().is_empty());
}

#[test]
fn tls_to_the_engine_and_imageio_trusts_the_ca_file() {
    let site = site_with(
        |dir| {
            let disk = patterned_raw(dir, "tls", 256 * MIB, &[(MIB, 0x5a, 2 * MIB)]);
            vec![VmSpec {
                id: "6f0c1a54-tls0-4d2c-9a59-000000000004",
                name: "tls",
                disks: vec![("d1e2f3a4-0000-4000-8000-00000000d004", disk, "raw")],
            }]
        },
        true,
    );
    let sha = guest_sha256(&site.path("tls.raw"), &site.path("orig"));
    let ca = site.path("ca.pem");
    let ca = ca.to_str().unwrap();
    // Without the engine's CA the certificate is not trusted: nothing starts.
    site.vm_fails(&["backup", "--vm", "tls"], "certificate");
    assert!(site.engine.state()["backups"]
        .as_object()
        .unwrap()
        .is_empty());
    // With it, the engine and the real imageio daemon (TLS on) are trusted.
    let out = site.vm_ok(&["backup", "--vm", "tls", "--ca-file", ca]);
    let snapshot = snapshot_id(&out);
    let raw = site.path("back.raw");
    site.vm_ok(&["restore", &snapshot, "--to-file", raw.to_str().unwrap()]);
    assert_eq!(guest_sha256(&raw, &site.path("s1")), sha);
    site.vm_ok(&[
        "restore",
        &snapshot,
        "--ca-file",
        ca,
        "--new-name",
        "tls-copy",
    ]);
    let state = site.engine.state();
    let new_disk = state["disks"]
        .as_object()
        .unwrap()
        .values()
        .find(|d| d["name"] == "tls-copy-tls-disk")
        .expect("the new disk");
    let uploaded = PathBuf::from(new_disk["path"].as_str().unwrap());
    assert_eq!(guest_sha256(&uploaded, &site.path("s2")), sha);
    assert!(
        site.engine.dangling().is_empty(),
        "{:?}",
        site.engine.dangling()
    );
}

/// Bytes of the files under `dir`.
fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            dir_size(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}
