//! The machine a benchmark ran on, as a short description for the report: CPU,
//! cores, memory, the disk under the work directory, OS, tool versions.

use std::path::Path;
use std::process::Command;

/// What the report says about the machine.
#[derive(Debug, Clone)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub disk: String,
    pub os: String,
    pub postgres: String,
    pub tools: String,
    pub load: String,
}

impl Machine {
    /// Describe this machine; `work` is the directory archives are written to.
    pub fn describe(work: &Path, pg_bindir: &Path) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = field(&cpuinfo, "model name").unwrap_or_else(|| "unknown CPU".into());
        let flags = field(&cpuinfo, "flags").unwrap_or_default();
        let cpu = if flags.split(' ').any(|f| f == "avx512f") {
            format!("{cpu} (AVX-512)")
        } else {
            cpu
        };
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_gib = field(&meminfo, "MemTotal")
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map(|kib| kib / 1024.0 / 1024.0)
            .unwrap_or(0.0);
        let disk = command_line(
            "findmnt",
            &["-no", "SOURCE,FSTYPE", "-T", &work.display().to_string()],
        )
        .map(|s| {
            let device = s.split_whitespace().next().unwrap_or("").to_string();
            let rotational = device
                .rsplit('/')
                .next()
                .map(|d| format!("/sys/block/{d}/queue/rotational"))
                .and_then(|p| std::fs::read_to_string(p).ok())
                .map(|r| {
                    if r.trim() == "1" {
                        ", reported rotational (virtio disks often are)"
                    } else {
                        ", solid state"
                    }
                })
                .unwrap_or("");
            format!("{}{rotational}", s.trim())
        })
        .unwrap_or_else(|| "unknown".into());
        let release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        let os = release
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_else(|| "unknown".into());
        let kernel = command_line("uname", &["-r"]).unwrap_or_default();
        let virt = command_line("systemd-detect-virt", &[]).unwrap_or_default();
        let os = format!(
            "{os}, Linux {}{}",
            kernel.trim(),
            if virt.trim().is_empty() || virt.trim() == "none" {
                String::new()
            } else {
                format!(" ({})", virt.trim())
            }
        );
        let postgres = command_line(&pg_bindir.join("postgres").display().to_string(), &["-V"])
            .unwrap_or_else(|| "unknown".into())
            .trim()
            .to_string();
        let tools = ["zstd", "gzip", "xz"]
            .iter()
            .filter_map(|t| {
                command_line(t, &["--version"]).map(|v| {
                    v.lines()
                        .next()
                        .unwrap_or("")
                        .split_whitespace()
                        .find(|w| {
                            w.trim_start_matches('v')
                                .starts_with(|c: char| c.is_ascii_digit())
                        })
                        .map(|ver| {
                            format!("{t} {}", ver.trim_start_matches('v').trim_end_matches(','))
                        })
                        .unwrap_or_else(|| t.to_string())
                })
            })
            .collect::<Vec<_>>()
            .join(", ");
        let load = std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default();
        Machine {
            cpu,
            cores,
            memory_gib,
            disk,
            os,
            postgres,
            tools,
            load,
        }
    }

    /// The lines of the report's machine section.
    pub fn lines(&self) -> Vec<String> {
        vec![
            format!("CPU: {} × {}", self.cores, self.cpu),
            format!("Memory: {:.1} GiB", self.memory_gib),
            format!("Disk of the archives and clusters: {}", self.disk),
            format!("OS: {}", self.os),
            format!("PostgreSQL: {}", self.postgres),
            format!("Command-line codecs: {}", self.tools),
            format!("Load average when the run started: {}", self.load),
        ]
    }
}

fn field(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == name).then(|| v.trim().to_string())
    })
}

fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let text = if text.trim().is_empty() {
        String::from_utf8_lossy(&out.stderr).to_string()
    } else {
        text
    };
    out.status.success().then_some(text)
}
