//! The VM disk test rig: real disk images made with qemu-img (raw and qcow2,
//! sparse; an ext4 file system with known files made by `mkfs.ext4 -d`, or
//! known byte patterns written by qemu-io at known offsets), served through
//! the real ovirt-imageio daemon and qemu-nbd, behind a stand-in of the
//! engine's REST API (support/ovirt_standin.py).
//!
//! Nothing here needs root: no mount, no loop device, no guestfish; files
//! are read back out of an image with debugfs.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ENGINE_USER: &str = "admin@internal";
pub const ENGINE_PASSWORD: &str = "engine-secret-that-must-not-show";
pub const REPO_PASSWORD: &str = "repository secret";
pub const OVF: &str = r#"<?xml version="1.0" encoding="UTF-8"?><ovf:Envelope xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1/"><Content ovf:id="out" xsi:type="ovf:VirtualSystem_Type"><Name>web</Name></Content></ovf:Envelope>"#;

/// Where scripts/ensure-imageio installs the daemon.
pub fn imageio_bin() -> PathBuf {
    let venv = std::env::var_os("HOLDFAST_IMAGEIO_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache")
                })
                .join("holdfast/imageio-venv")
        });
    let bin = venv.join("bin/ovirt-imageio");
    assert!(
        bin.exists(),
        "{} is missing: run scripts/ensure-imageio",
        bin.display()
    );
    bin
}

#[track_caller]
pub fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A deterministic pseudo-random byte stream (xorshift), so failures reproduce.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A qcow2 (compat 1.1, for bitmaps) image of `size` bytes holding an ext4
/// file system with `files` (name, content), made without root by
/// `mkfs.ext4 -d` on a sparse raw file, then converted.
pub fn ext4_qcow2(dir: &Path, name: &str, size: u64, files: &[(&str, Vec<u8>)]) -> PathBuf {
    let content = dir.join(format!("{name}-files"));
    std::fs::create_dir_all(&content).unwrap();
    for (file, data) in files {
        std::fs::write(content.join(file), data).unwrap();
    }
    let raw = dir.join(format!("{name}.mkfs.raw"));
    let file = std::fs::File::create(&raw).unwrap();
    file.set_len(size).unwrap();
    drop(file);
    sh(
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-d",
            content.to_str().unwrap(),
            raw.to_str().unwrap(),
        ],
    );
    let qcow2 = dir.join(format!("{name}.qcow2"));
    sh(
        "qemu-img",
        &[
            "convert",
            "-q",
            "-f",
            "raw",
            "-O",
            "qcow2",
            "-o",
            "compat=1.1",
            raw.to_str().unwrap(),
            qcow2.to_str().unwrap(),
        ],
    );
    std::fs::remove_file(&raw).unwrap();
    qcow2
}

/// A sparse raw image of `size` bytes with `(offset, pattern byte, length)` written by qemu-io.
pub fn patterned_raw(dir: &Path, name: &str, size: u64, writes: &[(u64, u8, u64)]) -> PathBuf {
    let raw = dir.join(format!("{name}.raw"));
    sh(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "raw",
            raw.to_str().unwrap(),
            &size.to_string(),
        ],
    );
    qemu_io_writes(&raw, "raw", writes);
    raw
}

/// Write `(offset, pattern, length)` into an image with qemu-io (pattern 0 writes zeros).
pub fn qemu_io_writes(image: &Path, format: &str, writes: &[(u64, u8, u64)]) {
    let mut args = vec!["-f".to_string(), format.to_string()];
    for (offset, pattern, length) in writes {
        args.push("-c".into());
        args.push(if *pattern == 0 {
            format!("write -z {offset} {length}")
        } else {
            format!("write -P {pattern} {offset} {length}")
        });
    }
    args.push(image.to_str().unwrap().to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    sh("qemu-io", &args);
}

/// sha256 of the guest data of an image (any format), through `qemu-img convert` to raw.
pub fn guest_sha256(image: &Path, scratch: &Path) -> String {
    let raw = scratch.with_extension("sha-raw");
    let _ = std::fs::remove_file(&raw);
    sh(
        "qemu-img",
        &[
            "convert",
            "-q",
            "-O",
            "raw",
            image.to_str().unwrap(),
            raw.to_str().unwrap(),
        ],
    );
    let sum = sh("sha256sum", &[raw.to_str().unwrap()]);
    std::fs::remove_file(&raw).unwrap();
    sum.split_whitespace().next().unwrap().to_string()
}

/// Bytes of data (not zero) the image's guest view holds, by `qemu-img map`.
pub fn allocated_data(image: &Path) -> u64 {
    let map = sh(
        "qemu-img",
        &["map", "--output", "json", image.to_str().unwrap()],
    );
    let extents: Vec<serde_json::Value> = serde_json::from_str(&map).unwrap();
    extents
        .iter()
        .filter(|e| e["data"].as_bool() == Some(true) && e["zero"].as_bool() != Some(true))
        .map(|e| e["length"].as_u64().unwrap())
        .sum()
}

/// A file out of the ext4 file system of a raw image (debugfs, read-only).
pub fn ext4_file(raw: &Path, name: &str) -> Vec<u8> {
    let out = raw.with_extension(format!("{name}.out"));
    let _ = std::fs::remove_file(&out);
    sh(
        "debugfs",
        &[
            "-R",
            &format!("dump /{name} {}", out.display()),
            raw.to_str().unwrap(),
        ],
    );
    let data = std::fs::read(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    data
}

/// One VM of the stand-in.
pub struct VmSpec {
    pub id: &'static str,
    pub name: &'static str,
    /// (disk id, image, "raw" | "cow")
    pub disks: Vec<(&'static str, PathBuf, &'static str)>,
}

/// A private CA and a certificate for 127.0.0.1 signed by it, made with
/// openssl: (CA, certificate, key), PEM files in `dir`.
pub fn tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    sh(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=holdfast test engine CA",
            "-keyout",
            &p("ca.key"),
            "-out",
            &p("ca.pem"),
        ],
    );
    sh(
        "openssl",
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            &p("server.key"),
            "-out",
            &p("server.csr"),
        ],
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    sh(
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            &p("server.csr"),
            "-CA",
            &p("ca.pem"),
            "-CAkey",
            &p("ca.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &p("san.ext"),
            "-out",
            &p("server.pem"),
        ],
    );
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

/// The stand-in engine with its imageio daemon.
pub struct Standin {
    child: Child,
    pub dir: PathBuf,
    pub api: u16,
    /// The plain-HTTP port of the test hooks (/standin/...).
    pub hooks: u16,
    pub tls: bool,
}

impl Standin {
    pub fn start(dir: &Path, vms: &[VmSpec]) -> Standin {
        Standin::start_with_tls(dir, vms, None)
    }

    /// With `tls` = (certificate, key), the API and imageio speak https.
    pub fn start_with_tls(dir: &Path, vms: &[VmSpec], tls: Option<(&Path, &Path)>) -> Standin {
        let state = dir.join("engine");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::create_dir_all(state.join("by-id")).unwrap();
        let config = serde_json::json!({
            "device_dir": state.join("by-id"),
            "user": ENGINE_USER,
            "password": ENGINE_PASSWORD,
            "vms": vms.iter().map(|vm| serde_json::json!({
                "id": vm.id,
                "name": vm.name,
                "ovf": OVF,
                "disks": vm.disks.iter().enumerate().map(|(i, (id, path, format))| serde_json::json!({
                    "id": id,
                    "name": if i == 0 { format!("{}-disk", vm.name) } else { format!("{}-disk{}", vm.name, i + 1) },
                    "path": path,
                    "format": format,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        });
        let mut config = config;
        if let Some((cert, key)) = tls {
            config["tls"] = serde_json::json!({"cert": cert, "key": key});
        }
        std::fs::write(state.join("config.json"), config.to_string()).unwrap();
        // Embedded, so that the benchmark (bench/vm_disk.rs) runs it too.
        let script = dir.join("ovirt_standin.py");
        std::fs::write(&script, include_str!("ovirt_standin.py")).unwrap();
        let child = Command::new("python3")
            .arg(&script)
            .arg(&state)
            .arg(imageio_bin())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("engine.log")).unwrap())
            .spawn()
            .expect("start the engine stand-in");
        let ports = state.join("ports.json");
        let start = Instant::now();
        while !ports.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the stand-in did not start: {}",
                std::fs::read_to_string(dir.join("engine.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let ports: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(ports).unwrap()).unwrap();
        Standin {
            child,
            dir: state,
            api: ports["api"].as_u64().unwrap() as u16,
            hooks: ports["hooks"].as_u64().unwrap() as u16,
            tls: tls.is_some(),
        }
    }

    fn hooks_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.hooks)
    }

    /// Where the snapshot flow's attached disks appear (its /dev/disk/by-id).
    pub fn device_dir(&self) -> PathBuf {
        self.dir.join("by-id")
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.api)
    }

    /// The stand-in's whole state (backups, transfers, disks, created VMs, relay counters).
    pub fn state(&self) -> serde_json::Value {
        ureq::get(&format!("{}/standin/state", self.hooks_url()))
            .call()
            .unwrap()
            .into_json()
            .unwrap()
    }

    /// Inject failures (merged into the current ones).
    pub fn faults(&self, faults: serde_json::Value) {
        ureq::post(&format!("{}/standin/faults", self.hooks_url()))
            .send_string(&faults.to_string())
            .unwrap();
    }

    /// Bytes imageio sent to clients so far (HTTP included), through the relay.
    pub fn bytes_down(&self) -> u64 {
        self.state()["relay"]["bytes_down"].as_u64().unwrap()
    }

    pub fn bytes_up(&self) -> u64 {
        self.state()["relay"]["bytes_up"].as_u64().unwrap()
    }

    /// Backups not yet `succeeded`/`failed` and transfers not `finished_*`: what a run left behind.
    pub fn dangling(&self) -> Vec<String> {
        let s = self.state();
        let mut out = Vec::new();
        for (id, b) in s["backups"].as_object().unwrap() {
            let phase = b["phase"].as_str().unwrap();
            if phase != "succeeded" && phase != "failed" {
                out.push(format!("backup {id} {phase}"));
            }
        }
        for (kind, key) in [
            ("VM snapshot", "snapshots"),
            ("agent attachment", "agent_attachments"),
        ] {
            for id in s[key].as_object().unwrap().keys() {
                out.push(format!("{kind} {id}"));
            }
        }
        for (id, t) in s["transfers"].as_object().unwrap() {
            let phase = t["phase"].as_str().unwrap();
            if !phase.starts_with("finished_") {
                out.push(format!("transfer {id} {phase}"));
            }
        }
        out
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        // Its qemu-nbd and imageio children die with it (PR_SET_PDEATHSIG).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
