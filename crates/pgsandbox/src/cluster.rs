//! One throwaway cluster: its directory, its server process, its connection
//! parameters, and the guarantee that it is stopped and removed.

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::install::{installation, Installation};
use crate::process::{
    as_server_user, chown, server_command, server_user, spawn_tied_to_process, ServerUser,
};
use crate::registry;
use crate::Error;

/// The superuser of every sandbox; it connects over the unix socket without a password.
pub const SUPERUSER: &str = "postgres";

/// Host of the TCP listener, where roles authenticate with scram-sha-256.
pub const TCP_HOST: &str = "127.0.0.1";

/// Bumped when the template's configuration changes, so older templates are not reused.
const TEMPLATE_FORMAT: u32 = 1;

const PG_HBA: &str = "\
# pgsandbox: the superuser over the socket without a password; every role over TCP
# with a real scram-sha-256 password.
local   all   all                  trust
host    all   all   127.0.0.1/32   scram-sha-256
host    all   all   ::1/128        scram-sha-256
";

/// Settings for a throwaway cluster where durability does not matter.
const FAST_SETTINGS: &[(&str, &str)] = &[
    ("fsync", "off"),
    ("synchronous_commit", "off"),
    ("full_page_writes", "off"),
    ("max_connections", "40"),
    ("shared_buffers", "32MB"),
    ("max_wal_size", "1GB"),
    ("log_min_messages", "warning"),
    ("timezone", "UTC"),
];

/// How to start a cluster. `Cluster::start()` is `ClusterBuilder::default().start()`.
#[derive(Debug, Clone, Default)]
pub struct ClusterBuilder {
    major: Option<u32>,
    port: Option<u16>,
    settings: Vec<(String, String)>,
    durable: bool,
    base: Option<PathBuf>,
}

impl ClusterBuilder {
    /// Use this installed server major instead of the highest one.
    pub fn major(mut self, major: u32) -> Self {
        self.major = Some(major);
        self
    }

    /// Listen on this TCP port instead of a free one (fails if it is taken).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// A server setting (`-c name=value`), after the defaults.
    pub fn setting(mut self, name: &str, value: &str) -> Self {
        self.settings.push((name.to_string(), value.to_string()));
        self
    }

    /// Keep PostgreSQL's durable defaults (fsync on) instead of the fast test settings;
    /// for benchmarks that must measure what a real server does.
    pub fn durable(mut self) -> Self {
        self.durable = true;
        self
    }

    /// Put the cluster (and the template data directory it is copied from)
    /// under this existing directory instead of `$PGSANDBOX_DIR` or
    /// `$TMPDIR/pgsandbox`: a caller that must keep its temporary files on a
    /// filesystem of its choice. When the caller is root, the directory must
    /// be traversable by the server user.
    pub fn base_dir(mut self, dir: &Path) -> Self {
        self.base = Some(dir.to_path_buf());
        self
    }

    pub fn start(self) -> Result<Cluster, Error> {
        Cluster::start_with(self)
    }
}

/// A running throwaway PostgreSQL cluster. Dropping it stops the server and
/// removes every file it had.
#[derive(Debug)]
pub struct Cluster {
    id: u64,
    install: Installation,
    user: Option<ServerUser>,
    dir: PathBuf,
    port: u16,
    args: Vec<String>,
    child: Option<Child>,
    startup: Duration,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

impl Cluster {
    /// Start a cluster with the highest installed major and a free port.
    pub fn start() -> Result<Cluster, Error> {
        ClusterBuilder::default().start()
    }

    pub fn builder() -> ClusterBuilder {
        ClusterBuilder::default()
    }

    fn start_with(b: ClusterBuilder) -> Result<Cluster, Error> {
        let began = Instant::now();
        let install = installation(b.major)?;
        let user = server_user()?;
        let base = match &b.base {
            Some(dir) => dir.clone(),
            None => base_dir()?,
        };
        static SWEEP: std::sync::Once = std::sync::Once::new();
        SWEEP.call_once(|| registry::sweep_stale(&base));

        let template = ensure_template(&base, &install, user.as_ref())?;

        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("c-{}-{id}", std::process::id()));
        fs::create_dir(&dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
            .and_then(|_| chown(&dir, user.as_ref()))
            .map_err(|e| Error::io(format!("prepare {}", dir.display()), e))?;
        let mut cluster = Cluster {
            id,
            install,
            user,
            dir,
            port: 0,
            args: Vec::new(),
            child: None,
            startup: Duration::ZERO,
        };
        // From here on, Drop removes the directory whatever happens.
        copy_tree(&template, &cluster.data_dir())?;

        let mut settings: Vec<(String, String)> = if b.durable {
            vec![("timezone".into(), "UTC".into())]
        } else {
            FAST_SETTINGS
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        settings.extend(b.settings);
        cluster.args = settings
            .iter()
            .flat_map(|(k, v)| ["-c".to_string(), format!("{k}={v}")])
            .collect();

        let attempts = if b.port.is_some() { 1 } else { 20 };
        let mut last_error = None;
        for _ in 0..attempts {
            cluster.port = match b.port {
                Some(p) => p,
                None => free_port()?,
            };
            match cluster.start_server() {
                Ok(()) => {
                    cluster.startup = began.elapsed();
                    return Ok(cluster);
                }
                Err(Error::PortTaken(p)) if b.port.is_none() => {
                    last_error = Some(Error::PortTaken(p));
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or(Error::PortTaken(cluster.port)))
    }

    /// Start the server process on the existing data directory (after
    /// [`Cluster::stop_server`]); same port and socket.
    pub fn start_server(&mut self) -> Result<(), Error> {
        if self.child.is_some() {
            return Ok(());
        }
        let log_path = self.log_path();
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| Error::io(format!("open {}", log_path.display()), e))?;
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
        let mut cmd = server_command(self.install.bin("postgres"));
        cmd.arg("-D")
            .arg(self.data_dir())
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-c")
            .arg(format!("listen_addresses={TCP_HOST}"))
            .arg("-c")
            .arg(format!("unix_socket_directories={}", self.dir.display()))
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(
                log.try_clone()
                    .map_err(|e| Error::io("dup log".into(), e))?,
            )
            .stderr(log);
        as_server_user(&mut cmd, self.user.as_ref());
        let child = spawn_tied_to_process(cmd).map_err(|e| {
            Error::io(
                format!("start {}", self.install.bin("postgres").display()),
                e,
            )
        })?;
        registry::register(self.id, child.id() as i32, &self.dir);
        self.child = Some(child);
        self.wait_ready(log_start)
    }

    fn wait_ready(&mut self, log_start: u64) -> Result<(), Error> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let pidfile = self.data_dir().join("postmaster.pid");
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                registry::unregister(self.id);
                let log = self.server_log_since(log_start);
                if log.contains("could not bind")
                    || log.contains("could not create any TCP/IP sockets")
                {
                    return Err(Error::PortTaken(self.port));
                }
                return Err(Error::ServerFailed(format!(
                    "postgres exited with {status} during start-up: {}",
                    log.trim()
                )));
            }
            if let Ok(text) = fs::read_to_string(&pidfile) {
                if text.lines().nth(7).map(str::trim) == Some("ready") {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                let _ = self.stop_server();
                return Err(Error::ServerFailed(format!(
                    "postgres did not become ready in 60 s: {}",
                    self.server_log_since(log_start).trim()
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stop the server (fast shutdown) and keep the data directory, so that a test
    /// can see how holdfast copes with a server that went away.
    pub fn stop_server(&mut self) -> Result<(), Error> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = child.id() as i32;
        crate::process::signal(pid, libc::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(20);
        let result = loop {
            match child.try_wait() {
                Ok(Some(_)) => break Ok(()),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break Err(Error::ServerFailed(
                        "postgres did not stop within 20 s of SIGINT and was killed".into(),
                    ));
                }
                Err(e) => break Err(Error::io("wait for postgres".into(), e)),
            }
        };
        registry::unregister(self.id);
        result
    }

    /// Stop the server and remove the cluster's directory, reporting any failure.
    pub fn stop(mut self) -> Result<(), Error> {
        let stopped = self.stop_server();
        let removed = fs::remove_dir_all(&self.dir)
            .map_err(|e| Error::io(format!("remove {}", self.dir.display()), e));
        self.dir = PathBuf::new();
        stopped.and(removed)
    }

    /// TCP port of the server (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// TCP host of the server.
    pub fn host(&self) -> &'static str {
        TCP_HOST
    }

    /// Directory holding the server's unix socket (`.s.PGSQL.<port>`).
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Directory of the server's binaries (`pg_dump`, `psql`, … of the same major).
    pub fn bindir(&self) -> &Path {
        &self.install.bindir
    }

    pub fn major(&self) -> u32 {
        self.install.major
    }

    pub fn superuser(&self) -> &'static str {
        SUPERUSER
    }

    /// Time `start()` took, template copy and server start-up included.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// Whether the server process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Environment for a PostgreSQL client program to connect as the superuser
    /// over the socket: `PGHOST`, `PGPORT`, `PGUSER`.
    pub fn superuser_env(&self) -> Vec<(String, String)> {
        vec![
            ("PGHOST".into(), self.dir.display().to_string()),
            ("PGPORT".into(), self.port.to_string()),
            ("PGUSER".into(), SUPERUSER.into()),
        ]
    }

    /// A connection as the superuser over the unix socket.
    pub fn connect(&self, database: &str) -> Result<postgres::Client, Error> {
        postgres::Config::new()
            .host_path(&self.dir)
            .port(self.port)
            .user(SUPERUSER)
            .dbname(database)
            .connect(postgres::NoTls)
            .map_err(|e| Error::Sql(format!("connect to {database} as {SUPERUSER}: {e}")))
    }

    /// Run SQL (one or more statements) as the superuser in `database`.
    pub fn execute(&self, database: &str, sql: &str) -> Result<(), Error> {
        self.connect(database)?
            .batch_execute(sql)
            .map_err(|e| Error::Sql(format!("in {database}: {}", sql_error_text(&e))))
    }

    /// The first column of the first row of a query, as text (NULL is `None`).
    pub fn query_text(&self, database: &str, sql: &str) -> Result<Option<String>, Error> {
        let rows = self
            .connect(database)?
            .simple_query(sql)
            .map_err(|e| Error::Sql(format!("in {database}: {}", sql_error_text(&e))))?;
        Ok(rows
            .iter()
            .find_map(|m| match m {
                postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
                _ => None,
            })
            .flatten())
    }

    /// Create a login role that authenticates with `password` (scram-sha-256).
    pub fn create_role(&self, name: &str, password: &str) -> Result<(), Error> {
        self.execute(
            "postgres",
            &format!(
                "CREATE ROLE {} LOGIN PASSWORD {}",
                quote_ident(name),
                quote_literal(password)
            ),
        )
    }

    /// Create a UTF8 database from template0 owned by `owner`.
    pub fn create_database(&self, name: &str, owner: &str) -> Result<(), Error> {
        self.execute(
            "postgres",
            &format!(
                "CREATE DATABASE {} OWNER {} TEMPLATE template0 ENCODING 'UTF8'",
                quote_ident(name),
                quote_ident(owner)
            ),
        )
    }

    /// What the server wrote to its log so far.
    pub fn server_log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn server_log_since(&self, offset: u64) -> String {
        let all = fs::read(self.log_path()).unwrap_or_default();
        String::from_utf8_lossy(all.get(offset as usize..).unwrap_or_default()).into_owned()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.stop_server();
        if !self.dir.as_os_str().is_empty() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// `"name"` with embedded quotes doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'` with embedded quotes doubled (standard_conforming_strings is on).
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn sql_error_text(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string(),
    }
}

fn base_dir() -> Result<PathBuf, Error> {
    let base = std::env::var_os("PGSANDBOX_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("pgsandbox"));
    if !base.is_dir() {
        fs::create_dir_all(&base)
            .map_err(|e| Error::io(format!("create {}", base.display()), e))?;
        // Other users' sandboxes may live here too; each cluster dir is 0700.
        let _ = fs::set_permissions(&base, fs::Permissions::from_mode(0o755));
    }
    Ok(base)
}

fn free_port() -> Result<u16, Error> {
    let listener = std::net::TcpListener::bind((TCP_HOST, 0))
        .map_err(|e| Error::io("find a free TCP port".into(), e))?;
    Ok(listener
        .local_addr()
        .map_err(|e| Error::io("find a free TCP port".into(), e))?
        .port())
}

/// An initialised data directory for this installation, made once and shared by
/// every cluster (initdb costs a second or more; a copy costs a few milliseconds).
fn ensure_template(
    base: &Path,
    install: &Installation,
    user: Option<&ServerUser>,
) -> Result<PathBuf, Error> {
    let version = server_command(install.bin("postgres"))
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let key = format!(
        "template-{}-f{TEMPLATE_FORMAT}-{:016x}-{}",
        install.major,
        fnv1a(format!("{}|{version}", install.bindir.display()).as_bytes()),
        user.map(|u| u.uid)
            .unwrap_or_else(|| unsafe { libc::geteuid() })
    );
    let template = base.join(&key);
    if template.join("PG_VERSION").is_file() {
        return Ok(template);
    }
    let lock_path = base.join(format!("{key}.lock"));
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io(format!("open {}", lock_path.display()), e))?;
    // SAFETY: flock on an open descriptor; released when `lock` is closed.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) } != 0 {
        return Err(Error::io(
            format!("lock {}", lock_path.display()),
            std::io::Error::last_os_error(),
        ));
    }
    if template.join("PG_VERSION").is_file() {
        return Ok(template);
    }
    let building = base.join(format!("{key}.building-{}", std::process::id()));
    let _ = fs::remove_dir_all(&building);
    fs::create_dir(&building)
        .and_then(|_| fs::set_permissions(&building, fs::Permissions::from_mode(0o700)))
        .and_then(|_| chown(&building, user))
        .map_err(|e| Error::io(format!("create {}", building.display()), e))?;
    let result = run_initdb(install, user, &building)
        .and_then(|_| {
            fs::write(building.join("pg_hba.conf"), PG_HBA)
                .map_err(|e| Error::io("write pg_hba.conf".into(), e))
        })
        .and_then(|_| {
            chown(&building.join("pg_hba.conf"), user)
                .map_err(|e| Error::io("chown pg_hba.conf".into(), e))
        })
        .and_then(|_| {
            fs::rename(&building, &template)
                .map_err(|e| Error::io(format!("rename to {}", template.display()), e))
        });
    if result.is_err() {
        let _ = fs::remove_dir_all(&building);
    }
    result.map(|_| template)
}

fn run_initdb(install: &Installation, user: Option<&ServerUser>, data: &Path) -> Result<(), Error> {
    let mut last = String::new();
    // C.UTF-8 is what the fixture clusters used; plain C where glibc lacks it.
    for locale in ["C.UTF-8", "C"] {
        let mut cmd = server_command(install.bin("initdb"));
        cmd.arg("-D")
            .arg(data)
            .args(["-U", SUPERUSER, "-E", "UTF8", "--no-sync"])
            .arg(format!("--locale={locale}"))
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .stdin(Stdio::null())
            .env("LC_ALL", "C");
        as_server_user(&mut cmd, user);
        let out = cmd
            .output()
            .map_err(|e| Error::io(format!("run {}", install.bin("initdb").display()), e))?;
        if out.status.success() {
            return Ok(());
        }
        last = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // initdb leaves files behind on failure; empty the directory for the next try.
        if let Ok(entries) = fs::read_dir(data) {
            for e in entries.flatten() {
                let _ = fs::remove_dir_all(e.path()).or_else(|_| fs::remove_file(e.path()));
            }
        }
    }
    Err(Error::ServerFailed(format!(
        "initdb failed: {}",
        last.trim()
    )))
}

/// `cp -a`, which keeps owners (the server user's) and modes.
fn copy_tree(from: &Path, to: &Path) -> Result<(), Error> {
    let out = server_command("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .output()
        .map_err(|e| Error::io("run cp".into(), e))?;
    if !out.status.success() {
        return Err(Error::ServerFailed(format!(
            "copy of the template data directory failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}
