//! `serve-bench`: load test of `holdfast serve`. N concurrent clients upload random
//! packs (named by their sha256, as restic names them) to one server process;
//! reported: throughput, p50/p99 upload latency and the server's peak RSS
//! (VmHWM). One extra client is killed (SIGKILL) in the middle of an upload: the
//! server must keep serving, leave no partial object or temporary file, and lose
//! none of the other uploads (every stored pack is re-hashed at the end).
//!
//! `cargo run --release -p holdfast-bench --bin serve-bench -- [--clients 16] [--mb 512] [--pack-kib 4096]`
//!
//! The server runs in a child process (this binary with `--server DIR`) so that its
//! memory is its own; the killed client is a child too (`--stalled-upload URL`).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use holdfast_serve::ServeConfig;
use sha2::{Digest, Sha256};

#[derive(Debug, Parser)]
#[command(name = "serve-bench")]
struct Options {
    /// Concurrent uploading clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Total MiB uploaded by all clients together.
    #[arg(long, default_value_t = 512)]
    mb: u64,
    /// Size of one pack in KiB (restic's default target is 16 MiB; its minimum 4 MiB).
    #[arg(long, default_value_t = 4096)]
    pack_kib: usize,
    /// The server's connection bound.
    #[arg(long, default_value_t = 64)]
    max_connections: usize,
    /// Internal: run the server over DIR and print its URL.
    #[arg(long, hide = true, value_name = "DIR")]
    server: Option<PathBuf>,
    /// Internal: start an upload to URL and never finish it.
    #[arg(long, hide = true, value_name = "URL")]
    stalled_upload: Option<String>,
}

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// The repository path every client writes to.
const REPO: &str = "bench";

fn main() {
    let o = Options::parse();
    let result = if let Some(root) = &o.server {
        serve(root, o.max_connections)
    } else if let Some(url) = &o.stalled_upload {
        stalled_upload(url)
    } else {
        run(&o)
    };
    if let Err(e) = result {
        eprintln!("serve-bench: {e}");
        std::process::exit(1);
    }
}

fn serve(root: &Path, max_connections: usize) -> BoxResult<()> {
    let mut config = ServeConfig::new(root, "127.0.0.1:0".parse()?);
    config.max_connections = max_connections;
    holdfast_serve::run(&config, |url| {
        println!("{url}");
        let _ = std::io::stdout().flush();
    })?;
    Ok(())
}

/// Send the headers of a 1 GiB upload and then the body slowly, forever.
fn stalled_upload(url: &str) -> BoxResult<()> {
    let hostport = url.trim_start_matches("http://");
    let (host_port, path) = hostport.split_once('/').ok_or("URL without a path")?;
    let mut stream = TcpStream::connect(host_port)?;
    write!(
        stream,
        "POST /{path} HTTP/1.1\r\nHost: {host_port}\r\nContent-Length: {}\r\n\r\n",
        1u64 << 30
    )?;
    let chunk = vec![0x5au8; 64 * 1024];
    loop {
        stream.write_all(&chunk)?;
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct ServerProcess {
    child: Child,
    url: String,
}

impl ServerProcess {
    fn start(root: &Path, max_connections: usize) -> BoxResult<ServerProcess> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("--server")
            .arg(root)
            .args(["--max-connections", &max_connections.to_string()])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(root.with_extension("log"))?)
            .spawn()?;
        let mut url = String::new();
        BufReader::new(child.stdout.take().ok_or("no stdout")?).read_line(&mut url)?;
        if url.trim().is_empty() {
            return Err("the server did not start; see its log".into());
        }
        Ok(ServerProcess {
            child,
            url: url.trim().to_string(),
        })
    }

    /// Peak resident memory of the server process (VmHWM), in KiB.
    fn peak_rss_kib(&self) -> BoxResult<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let line = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .ok_or("no VmHWM in /proc status")?;
        Ok(line
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .ok_or("unreadable VmHWM")?)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Cheap pseudo-random bytes (xorshift64*): incompressible, reproducible per seed.
fn random_pack(seed: u64, len: usize) -> Vec<u8> {
    // A bijection of the seed (odd multiplier, xor), so distinct seeds never share a
    // state; xorshift needs a non-zero one.
    let mut state = (seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xd1b5_4a32_d192_ed03).max(1);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn upload(agent: &ureq::Agent, base: &str, pack: &[u8]) -> BoxResult<String> {
    let id = hex::encode(Sha256::digest(pack));
    let resp = agent.post(&format!("{base}/data/{id}")).send_bytes(pack)?;
    if resp.status() != 200 {
        return Err(format!("upload answered {}", resp.status()).into());
    }
    Ok(id)
}

fn run(o: &Options) -> BoxResult<()> {
    let work = tempfile::tempdir()?;
    let root = work.path().join("repos");
    std::fs::create_dir(&root)?;
    let server = ServerProcess::start(&root, o.max_connections)?;
    let base = format!("{}/{REPO}", server.url);
    let agent = ureq::AgentBuilder::new().build();
    agent
        .post(&format!("{base}/?create=true"))
        .send_bytes(b"")?;
    let repo_dir = root.join(REPO);

    // A client killed mid-upload: wait until its temporary file exists, then kill it.
    let killed_id = hex::encode(Sha256::digest(b"never completed"));
    let mut stalled = Command::new(std::env::current_exe()?)
        .args(["--stalled-upload", &format!("{base}/data/{killed_id}")])
        .spawn()?;
    let fanout = repo_dir.join("data").join(&killed_id[..2]);
    let waited = Instant::now();
    while temp_files(&fanout)?.is_empty() {
        if waited.elapsed() > Duration::from_secs(10) {
            return Err("the stalled upload never reached the server".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    stalled.kill()?;
    stalled.wait()?;
    println!("killed a client mid-upload (its temporary file existed)");

    let pack_len = o.pack_kib * 1024;
    let packs = ((o.mb * 1024 * 1024) as usize)
        .div_ceil(pack_len)
        .max(o.clients);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..o.clients)
        .map(|_| {
            let (next, base, agent) = (next.clone(), base.clone(), agent.clone());
            std::thread::spawn(move || -> Result<Vec<(String, Duration)>, String> {
                let mut done = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n as usize >= packs {
                        return Ok(done);
                    }
                    let pack = random_pack(n + 1, pack_len);
                    let t = Instant::now();
                    let id = upload(&agent, &base, &pack).map_err(|e| e.to_string())?;
                    done.push((id, t.elapsed()));
                }
            })
        })
        .collect();
    let mut uploads = Vec::new();
    for w in workers {
        uploads.extend(w.join().map_err(|_| "a client panicked")??);
    }
    let elapsed = started.elapsed();
    let peak_kib = server.peak_rss_kib()?;

    // Nothing lost, nothing partial: every pack is there with its hash, the killed
    // upload left neither an object nor a temporary file, and the server still answers.
    let mut latencies: Vec<Duration> = uploads.iter().map(|(_, d)| *d).collect();
    latencies.sort();
    for (id, _) in &uploads {
        let stored = std::fs::read(repo_dir.join("data").join(&id[..2]).join(id))?;
        if hex::encode(Sha256::digest(&stored)) != *id {
            return Err(format!("pack {id} is damaged on disk").into());
        }
    }
    let listed: Vec<serde_json::Value> = agent
        .get(&format!("{base}/data/"))
        .set("Accept", "application/vnd.x.restic.rest.v2")
        .call()?
        .into_json()?;
    if listed.len() != uploads.len() {
        return Err(format!("{} packs uploaded, {} listed", uploads.len(), listed.len()).into());
    }
    if fanout.join(&killed_id).exists() {
        return Err("the killed upload left an object".into());
    }
    let leftovers = all_temp_files(&repo_dir.join("data"))?;
    if !leftovers.is_empty() {
        return Err(format!("temporary files remain: {leftovers:?}").into());
    }
    let health = agent
        .get(&format!("{}/health", server.url))
        .call()?
        .status();

    let total_mib = (uploads.len() * pack_len) as f64 / (1024.0 * 1024.0);
    println!(
        "clients {}  packs {} x {} KiB  total {total_mib:.0} MiB  time {:.2} s",
        o.clients,
        uploads.len(),
        o.pack_kib,
        elapsed.as_secs_f64()
    );
    println!(
        "throughput {:.1} MiB/s  latency p50 {} ms  p99 {} ms  max {} ms",
        total_mib / elapsed.as_secs_f64(),
        percentile(&latencies, 50).as_millis(),
        percentile(&latencies, 99).as_millis(),
        latencies.last().map_or(0, |d| d.as_millis())
    );
    println!(
        "server peak RSS (VmHWM) {:.1} MiB  (max connections {})",
        peak_kib as f64 / 1024.0,
        o.max_connections
    );
    println!(
        "after the kill: all {} packs intact and listed, no partial object, no temporary file, /health {health}",
        uploads.len()
    );
    Ok(())
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) * p).div_ceil(100)]
}

/// Upload temporary files directly in `dir`.
fn temp_files(dir: &Path) -> BoxResult<Vec<PathBuf>> {
    let mut out = Vec::new();
    if dir.is_dir() {
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            if e.file_name().to_string_lossy().starts_with(".upload-") {
                out.push(e.path());
            }
        }
    }
    Ok(out)
}

/// Upload temporary files in any fan-out directory below `data`.
fn all_temp_files(data: &Path) -> BoxResult<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(data)? {
        out.extend(temp_files(&e?.path())?);
    }
    Ok(out)
}
