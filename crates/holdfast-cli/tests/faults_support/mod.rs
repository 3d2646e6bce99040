//! Fault injection for the `faults_*` tests: seeded randomness, binaries run in
//! the background with their own temporary directory, a /proc watcher that
//! sees every descendant (to kill one at the right moment and to scan argv and
//! environment for passwords), a TCP proxy that can cut the connection after a
//! given number of bytes, small tmpfs mounts, and the after-the-fault checks.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{Run, VERSION};

// ----- seeded randomness -----

/// splitmix64: enough to draw delays and byte counts reproducibly.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..=max`.
    pub fn upto(&mut self, max: u64) -> u64 {
        self.next() % (max + 1)
    }

    pub fn delay(&mut self, max: Duration) -> Duration {
        Duration::from_micros(self.upto(max.as_micros() as u64))
    }
}

/// The seeds of one scenario: `default` of them unless
/// `HOLDFAST_FAULT_ITERATIONS` asks for more (or fewer). Printed, so that a
/// failure names the seed to rerun.
pub fn seeds(scenario: &str, default: u64) -> Vec<u64> {
    let n = std::env::var("HOLDFAST_FAULT_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    let base = scenario.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    (0..n).map(|i| base.wrapping_add(i)).collect()
}

/// One line per scenario in the test output: the tally for the report.
pub fn tally(scenario: &str, counts: &BTreeMap<&str, u32>, started: Instant) {
    eprintln!(
        "TALLY {scenario}: {counts:?} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

// ----- running the binaries in the background -----

/// A binary started with a private TMPDIR, so that leftovers can be seen.
pub struct Started {
    pub child: Child,
    pub at: Instant,
}

/// `engine-backup ARGS --install-root=ROOT --installed-version` in `dir`, TMPDIR=`tmp`.
pub fn engine_backup(dir: &Path, root: &Path, tmp: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(crate::support::engine_backup_bin());
    cmd.args(args)
        .arg(format!("--install-root={}", root.display()))
        .arg(format!("--installed-version={VERSION}"));
    prepare(&mut cmd, dir, tmp);
    cmd
}

/// `holdfast ARGS` with the install root, version and profile (ovirt-engine) in the environment.
pub fn holdfast(dir: &Path, root: &Path, tmp: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_holdfast"));
    cmd.args(args)
        .env("HOLDFAST_INSTALL_ROOT", root)
        .env("HOLDFAST_INSTALLED_VERSION", VERSION)
        .env("HOLDFAST_PROFILE", "ovirt-engine");
    prepare(&mut cmd, dir, tmp);
    cmd
}

fn prepare(cmd: &mut Command, dir: &Path, tmp: &Path) {
    cmd.current_dir(dir)
        .env("TMPDIR", tmp)
        .env("HOLDFAST_STATE_DIR", dir.join("state"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
}

pub fn start(mut cmd: Command) -> Started {
    Started {
        child: cmd.spawn().expect("start binary"),
        at: Instant::now(),
    }
}

impl Started {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait at most `limit`: a run that takes longer is a hang, and fails the test.
    pub fn finish(mut self, limit: Duration) -> (Run, Duration) {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let mut stdout = self.child.stdout.take().unwrap();
        let mut stderr = self.child.stderr.take().unwrap();
        let o = std::thread::spawn(move || {
            let _ = stdout.read_to_end(&mut out);
            out
        });
        let e = std::thread::spawn(move || {
            let _ = stderr.read_to_end(&mut err);
            err
        });
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            if self.at.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("the run did not end within {limit:?}: a hang");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let took = self.at.elapsed();
        let run = Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.join().unwrap()).into_owned(),
            stderr: String::from_utf8_lossy(&e.join().unwrap()).into_owned(),
        };
        (run, took)
    }
}

pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

// ----- /proc -----

#[derive(Debug, Clone)]
pub struct Proc {
    pub pid: u32,
    pub ppid: u32,
    /// argv joined with spaces.
    pub cmdline: String,
    /// The environment, `K=V` joined with spaces.
    pub environ: String,
}

impl Proc {
    /// The program's file name (`pg_dump`).
    pub fn program(&self) -> &str {
        let argv0 = self.cmdline.split(' ').next().unwrap_or("");
        argv0.rsplit('/').next().unwrap_or(argv0)
    }
}

pub fn processes() -> Vec<Proc> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces and parentheses.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let ppid = after
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let read = |name: &str| {
            std::fs::read(e.path().join(name))
                .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
                .unwrap_or_default()
        };
        out.push(Proc {
            pid,
            ppid,
            cmdline: read("cmdline"),
            environ: read("environ"),
        });
    }
    out
}

/// `root` and every process below it.
pub fn family(root: u32, all: &[Proc]) -> Vec<Proc> {
    let mut members = BTreeSet::from([root]);
    loop {
        let before = members.len();
        for p in all {
            if members.contains(&p.ppid) {
                members.insert(p.pid);
            }
        }
        if members.len() == before {
            break;
        }
    }
    all.iter()
        .filter(|p| members.contains(&p.pid))
        .cloned()
        .collect()
}

/// PostgreSQL client programs connecting to `port` (wherever their parent is).
pub fn clients_of(port: u16) -> Vec<Proc> {
    let needle = format!(" -p {port} ");
    processes()
        .into_iter()
        .filter(|p| {
            matches!(
                p.program(),
                "pg_dump" | "pg_restore" | "psql" | "pg_dumpall"
            ) && format!("{} ", p.cmdline).contains(&needle)
        })
        .collect()
}

/// Wait up to 2 s for the client programs of `port` to be gone; the ones left.
pub fn leftover_clients(port: u16) -> Vec<String> {
    let until = Instant::now() + Duration::from_secs(2);
    loop {
        let left: Vec<String> = clients_of(port).into_iter().map(|p| p.cmdline).collect();
        if left.is_empty() || Instant::now() > until {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What a watched run looked like.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Program name -> (first seen, last seen), relative to the watch's start.
    pub programs: BTreeMap<String, (Duration, Duration)>,
    /// Per descendant: (command line, first seen, last seen).
    pub lifetimes: BTreeMap<u32, (String, Duration, Duration)>,
    /// Command lines or environments that held one of the secrets.
    pub leaks: Vec<String>,
    /// Descendant processes observed.
    pub processes: usize,
}

type Trigger = Box<dyn FnMut(&Proc) -> bool + Send>;

/// Polls /proc every 2 ms for the descendants of one process.
pub struct Watch {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watch {
    /// Watch `root`'s family for `secrets`; `trigger` is offered every new
    /// descendant until it returns true (it may kill it, stop a server...).
    pub fn start(root: u32, secrets: &[&str], trigger: Option<Trigger>) -> Watch {
        Watch::start_with(root, secrets, trigger, false)
    }

    /// Like [`Watch::start`], but `root` itself may hold the secrets (they
    /// are in its environment on purpose); only its descendants may not.
    pub fn descendants(root: u32, secrets: &[&str]) -> Watch {
        Watch::start_with(root, secrets, None, true)
    }

    fn start_with(
        root: u32,
        secrets: &[&str],
        trigger: Option<Trigger>,
        descendants_only: bool,
    ) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let secrets: Vec<String> = secrets.iter().map(|s| s.to_string()).collect();
        let (stop2, seen2) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut trigger = trigger;
            let mut known = BTreeSet::new();
            while !stop2.load(Ordering::Relaxed) {
                let now = t0.elapsed();
                let all = processes();
                let root_cmdline = all
                    .iter()
                    .find(|p| p.pid == root)
                    .map(|p| p.cmdline.clone());
                for p in family(root, &all) {
                    let mut seen = seen2.lock().unwrap();
                    // A child between fork and exec is still a copy of
                    // holdfast (same command line, same environment block):
                    // the program it becomes gets its own environment.
                    let unexecuted_fork =
                        p.pid != root && root_cmdline.as_deref() == Some(p.cmdline.as_str());
                    for s in &secrets {
                        if (descendants_only && p.pid == root) || unexecuted_fork {
                            break;
                        }
                        if p.cmdline.contains(s.as_str()) || p.environ.contains(s.as_str()) {
                            seen.leaks.push(format!("{} | {}", p.cmdline, p.environ));
                        }
                    }
                    if p.pid == root {
                        continue;
                    }
                    let name = p.program().to_string();
                    let entry = seen.programs.entry(name).or_insert((now, now));
                    entry.1 = now;
                    let life = seen
                        .lifetimes
                        .entry(p.pid)
                        .or_insert((p.cmdline.clone(), now, now));
                    life.2 = now;
                    if known.insert(p.pid) {
                        seen.processes += 1;
                        drop(seen);
                        if trigger.as_mut().is_some_and(|t| t(&p)) {
                            trigger = None;
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        Watch {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    pub fn finish(mut self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.seen.lock().unwrap().clone()
    }
}

impl Seen {
    /// How long the first process whose command line holds `needle` ran (at least 20 ms).
    pub fn lifetime(&self, needle: &str) -> Duration {
        self.lifetimes
            .values()
            .find(|(cmd, _, _)| cmd.contains(needle))
            .map(|(_, a, b)| *b - *a)
            .unwrap_or_default()
            .max(Duration::from_millis(20))
    }
}

/// A trigger that, when a program whose command line holds `needle` starts,
/// waits `delay` (on its own thread) and sends it `sig`; `fired` says whether
/// the program was still there.
pub fn kill_program_after(
    needle: String,
    delay: Duration,
    sig: &'static str,
    fired: Arc<AtomicBool>,
) -> Trigger {
    Box::new(move |p: &Proc| {
        if !p.cmdline.contains(&needle) {
            return false;
        }
        let pid = p.pid;
        let fired = fired.clone();
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            if Path::new(&format!("/proc/{pid}")).exists() {
                signal(pid, sig);
                fired.store(true, Ordering::Relaxed);
            }
        });
        true
    })
}

// ----- files -----

/// Names in `dir` that a holdfast run leaves behind when it does not clean up:
/// work directories and pgpass directories (`holdfast.*`, `holdfast-pgpass-*`)
/// and hidden temporary archives (`.NAME.*`). The lock file is not one: it is
/// meant to stay.
pub fn leftovers(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| {
                    (n.starts_with("holdfast") && !n.ends_with(".lock")) || n.starts_with('.')
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Make `dir` hold exactly `snapshot` (from [`crate::support::tree`]) again.
pub fn put_back_tree(dir: &Path, snapshot: &BTreeMap<PathBuf, (Vec<u8>, u32, Option<PathBuf>)>) {
    use std::os::unix::fs::PermissionsExt;
    if dir.exists() {
        std::fs::remove_dir_all(dir).unwrap();
    }
    std::fs::create_dir_all(dir).unwrap();
    // Parents sort before their children.
    for (rel, (bytes, mode, link)) in snapshot {
        let p = dir.join(rel);
        match link {
            Some(target) => std::os::unix::fs::symlink(target, &p).unwrap(),
            None if mode & 0o170000 == 0o040000 => std::fs::create_dir_all(&p).unwrap(),
            None => std::fs::write(&p, bytes).unwrap(),
        }
    }
    // Modes last (deepest first), so that a read-only directory is filled first.
    for (rel, (_, mode, link)) in snapshot.iter().rev() {
        if link.is_none() {
            std::fs::set_permissions(
                dir.join(rel),
                std::fs::Permissions::from_mode(*mode & 0o7777),
            )
            .unwrap();
        }
    }
}

/// A small tmpfs, unmounted on drop; `None` where mounting is not permitted.
pub struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    pub fn mount(size: &str) -> Option<SmallFs> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|st| st.success());
        ok.then_some(SmallFs { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

// ----- network -----

/// A TCP proxy on 127.0.0.1 in front of a server's port. `cut_after(n, outage)`
/// drops every connection (both directions shut down) once `n` more bytes have
/// gone through, and refuses new ones for `outage` (or until `heal()`).
pub struct Proxy {
    pub port: u16,
    state: Arc<ProxyState>,
}

struct ProxyState {
    bytes: AtomicU64,
    cut_at: AtomicU64,
    cut: AtomicBool,
    /// Milliseconds new connections are refused after a cut.
    outage_ms: AtomicU64,
    /// When the last cut happened (ms since the proxy started), for the outage.
    cut_at_ms: AtomicU64,
    started: Instant,
    cuts: AtomicU64,
    open: Mutex<Vec<TcpStream>>,
}

impl ProxyState {
    fn cut_now(&self) {
        self.cut_at_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::SeqCst);
        self.cut.store(true, Ordering::SeqCst);
        self.cuts.fetch_add(1, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Proxy {
    pub fn start(target_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(ProxyState {
            bytes: AtomicU64::new(0),
            cut_at: AtomicU64::new(u64::MAX),
            cut: AtomicBool::new(false),
            outage_ms: AtomicU64::new(u64::MAX),
            cut_at_ms: AtomicU64::new(0),
            started: Instant::now(),
            cuts: AtomicU64::new(0),
            open: Mutex::new(Vec::new()),
        });
        let st = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if st.cut.load(Ordering::SeqCst) {
                    let since = st.started.elapsed().as_millis() as u64
                        - st.cut_at_ms.load(Ordering::SeqCst);
                    if since < st.outage_ms.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    // The outage is over; the budget of bytes stays spent.
                    st.cut_at.store(u64::MAX, Ordering::SeqCst);
                    st.cut.store(false, Ordering::SeqCst);
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)) else {
                    continue;
                };
                {
                    let mut open = st.open.lock().unwrap();
                    open.push(client.try_clone().unwrap());
                    open.push(server.try_clone().unwrap());
                }
                for (from, to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let st = st.clone();
                    std::thread::spawn(move || pump(from, to, &st));
                }
            }
        });
        Proxy { port, state }
    }

    /// Bytes forwarded so far, both directions.
    pub fn bytes(&self) -> u64 {
        self.state.bytes.load(Ordering::SeqCst)
    }

    /// Cut after `more` bytes, then refuse connections for `outage`.
    pub fn cut_after(&self, more: u64, outage: Duration) {
        self.state.cut.store(false, Ordering::SeqCst);
        self.state
            .outage_ms
            .store(outage.as_millis() as u64, Ordering::SeqCst);
        self.state
            .cut_at
            .store(self.bytes().saturating_add(more), Ordering::SeqCst);
    }

    /// How many cuts there have been.
    pub fn cuts(&self) -> u64 {
        self.state.cuts.load(Ordering::SeqCst)
    }

    pub fn heal(&self) {
        self.state.cut_at.store(u64::MAX, Ordering::SeqCst);
        self.state.cut.store(false, Ordering::SeqCst);
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, st: &ProxyState) {
    let mut buf = [0u8; 16384];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if st.cut.load(Ordering::SeqCst) {
            break;
        }
        let total = st.bytes.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
        if total >= st.cut_at.load(Ordering::SeqCst) {
            st.cut_now();
            break;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
