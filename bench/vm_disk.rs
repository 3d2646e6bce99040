//! `vm-disk-bench`: backup and restore throughput of one VM disk image
//! through ovirt-imageio (the real daemon in front of qemu-nbd, behind the
//! test suite's engine stand-in) against a plain `qemu-img convert` copy of
//! the same image on the same machine.
//!
//! `cargo run --release -p holdfast-bench --bin vm-disk-bench -- [--size-gib 8] [--data-mib 1024] [--work DIR]`
//!
//! Needs qemu-utils and scripts/ensure-imageio. The image is a sparse qcow2
//! of `--size-gib` with `--data-mib` of pseudo-random data in 1 MiB runs
//! spread over it. Rows: the qemu-img floor (qcow2 → raw file, and back),
//! `holdfast vm backup` (full, then an incremental after 1 % of the data
//! changed), `holdfast vm restore --to-file` and `holdfast vm restore` to
//! the engine stand-in (an upload through imageio).

#[path = "../crates/holdfast-cli/tests/support/ovirt.rs"]
mod ovirt;

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use ovirt::*;

const MIB: u64 = 1 << 20;

struct Options {
    size_gib: u64,
    data_mib: u64,
    work: Option<PathBuf>,
    holdfast: Option<PathBuf>,
}

fn parse_args() -> Options {
    let mut o = Options {
        size_gib: 8,
        data_mib: 1024,
        work: None,
        holdfast: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage(&a));
        match a.as_str() {
            "--size-gib" => o.size_gib = value().parse().unwrap_or_else(|_| usage("--size-gib")),
            "--data-mib" => o.data_mib = value().parse().unwrap_or_else(|_| usage("--data-mib")),
            "--work" => o.work = Some(PathBuf::from(value())),
            "--holdfast" => o.holdfast = Some(PathBuf::from(value())),
            _ => usage(&a),
        }
    }
    o
}

fn usage(at: &str) -> ! {
    eprintln!(
        "vm-disk-bench: bad argument {at}\nusage: vm-disk-bench [--size-gib N] [--data-mib N] [--work DIR] [--holdfast PATH]"
    );
    std::process::exit(2)
}

/// `holdfast` next to this binary (cargo builds both in one profile).
fn holdfast_bin(given: Option<PathBuf>) -> PathBuf {
    let bin = given.unwrap_or_else(|| {
        std::env::current_exe()
            .expect("own path")
            .with_file_name("holdfast")
    });
    assert!(
        bin.is_file(),
        "{} is missing: cargo build [--release] -p holdfast-cli, or pass --holdfast",
        bin.display()
    );
    bin
}

fn timed(what: &str, f: impl FnOnce()) -> f64 {
    eprintln!("vm-disk-bench: {what}...");
    let start = Instant::now();
    f();
    start.elapsed().as_secs_f64()
}

#[track_caller]
fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn main() {
    let o = parse_args();
    let holdfast = holdfast_bin(o.holdfast.clone());
    let parent = o.work.clone().unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(&parent).expect("work directory");
    let dir = dir.path();
    let size = o.size_gib << 30;
    let disk = dir.join("disk.qcow2");
    sh(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "compat=1.1",
            disk.to_str().unwrap(),
            &size.to_string(),
        ],
    );
    // Data in 1 MiB runs spread evenly, written by qemu-io in batches.
    let stride = size / o.data_mib.max(1);
    let writes: Vec<(u64, u8, u64)> = (0..o.data_mib)
        .map(|i| (i * stride / MIB * MIB, 1 + (i % 250) as u8, MIB))
        .collect();
    for batch in writes.chunks(256) {
        qemu_io_writes(&disk, "qcow2", batch);
    }
    std::fs::write(dir.join("engine-password"), format!("{ENGINE_PASSWORD}\n")).unwrap();
    std::fs::write(dir.join("repo-password"), format!("{REPO_PASSWORD}\n")).unwrap();
    let engine = Standin::start(
        dir,
        &[VmSpec {
            id: "6f0c1a54-bench-4d2c-9a59-000000000001",
            name: "bench",
            disks: vec![("d1e2f3a4-0000-4000-8000-0000000bench", disk.clone(), "cow")],
        }],
    );
    let repo = dir.join("repo");
    // Peak memory of each holdfast run, by GNU time.
    let rss = dir.join("rss");
    let vm = |args: &[&str]| {
        let mut cmd = Command::new("/usr/bin/time");
        cmd.args(["-f", "%M", "-o"])
            .arg(&rss)
            .arg(&holdfast)
            .arg("vm")
            .arg("--repo")
            .arg(&repo)
            .arg("--password-file")
            .arg(dir.join("repo-password"))
            .args(args);
        if !args.contains(&"--to-file") {
            cmd.args(["--engine", &engine.url(), "--engine-password-file"])
                .arg(dir.join("engine-password"))
                .args(["--poll-interval", "0.05"]);
        }
        cmd
    };
    ok(Command::new(&holdfast)
        .args(["repo", "init", "--repo"])
        .arg(&repo)
        .arg("--password-file")
        .arg(dir.join("repo-password")));

    let copy = dir.join("copy.raw");
    let floor_out = timed("qemu-img convert qcow2 -> raw", || {
        sh(
            "qemu-img",
            &[
                "convert",
                "-O",
                "raw",
                disk.to_str().unwrap(),
                copy.to_str().unwrap(),
            ],
        );
    });
    let back = dir.join("back.qcow2");
    let floor_in = timed("qemu-img convert raw -> qcow2", || {
        sh(
            "qemu-img",
            &[
                "convert",
                "-O",
                "qcow2",
                copy.to_str().unwrap(),
                back.to_str().unwrap(),
            ],
        );
    });
    let sha = guest_sha256(&disk, &dir.join("sha"));
    std::fs::remove_file(&back).unwrap();
    std::fs::remove_file(&copy).unwrap();

    let peak = || -> u64 {
        std::fs::read_to_string(&rss)
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .map_or(0, |kib| kib / 1024)
    };
    let full = timed("holdfast vm backup (full)", || {
        ok(&mut vm(&["backup", "--vm", "bench"]));
    });
    let full_rss = peak();
    let changed: Vec<(u64, u8, u64)> = writes
        .iter()
        .step_by(100)
        .map(|&(o, p, l)| (o, p ^ 0xff, l))
        .collect();
    qemu_io_writes(&disk, "qcow2", &changed);
    let sha_changed = guest_sha256(&disk, &dir.join("sha"));
    let incremental = timed("holdfast vm backup (incremental, 1 % changed)", || {
        ok(&mut vm(&["backup", "--vm", "bench"]));
    });
    let incremental_rss = peak();
    let restored = dir.join("restored.raw");
    let to_file = timed("holdfast vm restore --to-file (raw)", || {
        ok(&mut vm(&[
            "restore",
            "latest",
            "--to-file",
            restored.to_str().unwrap(),
        ]));
    });
    let to_file_rss = peak();
    assert_eq!(
        guest_sha256(&restored, &dir.join("sha")),
        sha_changed,
        "restored image differs"
    );
    std::fs::remove_file(&restored).unwrap();
    let upload = timed("holdfast vm restore (upload through imageio)", || {
        ok(&mut vm(&["restore", "latest", "--new-name", "bench-copy"]));
    });
    let upload_rss = peak();
    assert_ne!(sha, sha_changed);

    let data = o.data_mib as f64;
    let row = |name: &str, secs: f64, moved: f64, rss: Option<u64>| {
        println!(
            "| {name:<52} | {secs:>8.2} | {:>10.1} | {:>10.1} | {:>8} |",
            moved / secs,
            (size / MIB) as f64 / secs,
            rss.map_or("-".to_string(), |r| r.to_string())
        );
    };
    println!(
        "VM disk: {} GiB virtual, {} MiB data (qcow2); holdfast {}",
        o.size_gib,
        o.data_mib,
        holdfast.display()
    );
    println!(
        "| {:<52} | {:>8} | {:>10} | {:>10} | {:>8} |",
        "case", "wall s", "data MiB/s", "virt MiB/s", "RSS MiB"
    );
    println!(
        "|{:-<54}|{:->10}|{:->12}|{:->12}|{:->10}|",
        "", "", "", "", ""
    );
    row(
        "qemu-img convert qcow2 -> raw (backup floor)",
        floor_out,
        data,
        None,
    );
    row(
        "holdfast vm backup, full, through imageio",
        full,
        data,
        Some(full_rss),
    );
    row(
        "holdfast vm backup, incremental (1 % dirty)",
        incremental,
        data / 100.0,
        Some(incremental_rss),
    );
    row(
        "qemu-img convert raw -> qcow2 (restore floor)",
        floor_in,
        data,
        None,
    );
    row(
        "holdfast vm restore --to-file raw",
        to_file,
        data,
        Some(to_file_rss),
    );
    row(
        "holdfast vm restore, upload through imageio",
        upload,
        data,
        Some(upload_rss),
    );
}
