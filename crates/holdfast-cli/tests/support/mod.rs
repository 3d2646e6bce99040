//! Shared by the command-line tests: a sample oVirt-like environment on a
//! throwaway cluster (the engine-backup 4.5 fixture's databases, an install
//! root whose conf files point at them) and runners for the two faces of the
//! one binary (`holdfast`, and `engine-backup`: a link to it, see
//! [`engine_backup_bin`]).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use holdfast::pg::{self, ConnParams};
use holdfast::Password;
use pgsandbox::Cluster;

pub const VERSION: &str = "4.5.7";

/// A running sample environment.
pub struct Sample {
    pub cluster: Cluster,
    pub dir: tempfile::TempDir,
}

impl Sample {
    pub fn start() -> Sample {
        let cluster = Cluster::start().expect("start cluster");
        holdfast_sample::load_sample_databases(&cluster).expect("load sample databases");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("root")).unwrap();
        holdfast_sample::write_sample_install_root(
            &dir.path().join("root"),
            cluster.host(),
            cluster.port(),
        )
        .expect("write install root");
        Sample { cluster, dir }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `engine-backup ARGS --install-root=<root> --installed-version=4.5.7`, run in the temp dir.
    pub fn engine_backup(&self, args: &[&str]) -> Run {
        self.engine_backup_version(args, VERSION)
    }

    pub fn engine_backup_version(&self, args: &[&str], installed: &str) -> Run {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.push(format!("--install-root={}", self.root().display()));
        all.push(format!("--installed-version={installed}"));
        run(engine_backup_bin(), &all, self.dir.path())
    }

    /// `holdfast ARGS` with the install root, version and profile
    /// (ovirt-engine) in the environment.
    pub fn holdfast(&self, args: &[&str]) -> Run {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_holdfast"));
        cmd.args(&args)
            .current_dir(self.dir.path())
            .env("HOLDFAST_STATE_DIR", self.dir.path().join("state"))
            .env("HOLDFAST_INSTALL_ROOT", self.root())
            .env("HOLDFAST_INSTALLED_VERSION", VERSION)
            // The sample is an oVirt engine's install, configured as its
            // administrator would (the native face has no default profile).
            .env("HOLDFAST_PROFILE", "ovirt-engine");
        Run::from(cmd.output().expect("run holdfast"))
    }

    pub fn engine(&self, database: &str) -> ConnParams {
        tcp(&self.cluster, "engine", "engine-fixture-pw", database)
    }

    pub fn dwh(&self, database: &str) -> ConnParams {
        tcp(
            &self.cluster,
            "ovirt_engine_history",
            "dwh:fixture-pw",
            database,
        )
    }

    /// Drop and recreate both databases empty: a "cleaned install".
    pub fn clean_databases(&self) {
        self.recreate("engine", "engine");
        self.recreate("ovirt_engine_history", "ovirt_engine_history");
    }

    /// Drop a database and create it again, empty, owned by `owner`.
    pub fn recreate(&self, database: &str, owner: &str) {
        self.cluster
            .execute(
                "postgres",
                &format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"),
            )
            .expect("drop database");
        self.cluster
            .create_database(database, owner)
            .expect("create database");
    }
}

pub fn tcp(cluster: &Cluster, user: &str, password: &str, database: &str) -> ConnParams {
    ConnParams {
        host: cluster.host().into(),
        port: cluster.port(),
        user: user.into(),
        database: database.into(),
        password: Some(Password::new(password)),
        secured: false,
        secured_validation: false,
    }
}

/// Per table: (rows, checksum).
pub fn checksums(params: &ConnParams) -> BTreeMap<String, (i64, String)> {
    let mut client = pg::connect(params).expect("connect");
    pg::inspect::table_checksums(&mut client)
        .expect("checksums")
        .into_iter()
        .map(|t| (format!("{}.{}", t.schema, t.name), (t.rows, t.checksum)))
        .collect()
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn ok(&self) -> &Run {
        assert_eq!(
            self.code, 0,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// A failure (1) or a refusal of bad input (2, on the `holdfast` face)
    /// whose stderr says `text`.
    #[track_caller]
    pub fn fails_with(&self, text: &str) -> &Run {
        assert!(
            self.code == 1 || self.code == 2,
            "expected failure (exit 1 or 2), got {}; stdout:\n{}\nstderr:\n{}",
            self.code,
            self.stdout,
            self.stderr
        );
        assert!(
            self.stderr.contains(text),
            "stderr should contain {text:?}:\n{}",
            self.stderr
        );
        self
    }
}

/// The `engine-backup` face: a link named `engine-backup` to the `holdfast`
/// executable (which dispatches on the name it is called by), as an install
/// makes it. Made once, next to `holdfast` under target/, replacing whatever
/// was there (an older build's separate binary); the rename makes concurrent
/// test binaries safe.
pub fn engine_backup_bin() -> &'static str {
    static LINK: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    LINK.get_or_init(|| {
        let holdfast = Path::new(env!("CARGO_BIN_EXE_holdfast"));
        let link = holdfast.with_file_name("engine-backup");
        let target = Path::new("holdfast");
        if std::fs::read_link(&link).ok().as_deref() != Some(target) {
            let temp = holdfast.with_file_name(format!("engine-backup.{}.tmp", std::process::id()));
            let _ = std::fs::remove_file(&temp);
            std::os::unix::fs::symlink(target, &temp).expect("link engine-backup to holdfast");
            std::fs::rename(&temp, &link).expect("put the engine-backup link in place");
        }
        link.to_str().expect("target path is UTF-8").to_string()
    })
}

/// `holdfast ARGS --install-root ROOT`, run in `dir` as [`run`] runs it.
pub fn holdfast_in_root(dir: &Path, root: &Path, args: &[&str]) -> Run {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.push("--install-root".into());
    all.push(root.display().to_string());
    run(env!("CARGO_BIN_EXE_holdfast"), &all, dir)
}

pub fn run(bin: &str, args: &[String], dir: &Path) -> Run {
    Run::from(
        Command::new(bin)
            .args(args)
            .current_dir(dir)
            .env("HOLDFAST_STATE_DIR", dir.join("state"))
            .env_remove("HOLDFAST_INSTALL_ROOT")
            .env_remove("HOLDFAST_INSTALLED_VERSION")
            .env_remove("HOLDFAST_PROFILE")
            .output()
            .expect("run binary"),
    )
}

/// Every file under `dir` with its bytes, mode and symlink target: a snapshot to
/// prove "nothing changed".
pub fn tree(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32, Option<PathBuf>)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(dir).unwrap().to_path_buf();
            if meta.file_type().is_symlink() {
                out.insert(rel, (Vec::new(), 0, Some(std::fs::read_link(&p).unwrap())));
            } else if meta.is_dir() {
                out.insert(rel, (Vec::new(), meta.permissions().mode(), None));
                stack.push(p);
            } else {
                out.insert(
                    rel,
                    (std::fs::read(&p).unwrap(), meta.permissions().mode(), None),
                );
            }
        }
    }
    out
}

/// Member names of an archive (through the library's reader).
pub fn members(archive: &Path) -> Vec<String> {
    let r =
        holdfast::archive::ArchiveReader::open(archive, Default::default()).expect("open archive");
    r.members().map(|m| m.name.clone()).collect()
}

/// The fixture's content "after engine-backup restore" for tables the
/// post-restore steps change (README, "Expected content").
pub const AFTER_RESTORE: &[(&str, i64, &str)] = &[
    ("public.async_tasks", 0, "d41d8cd98f00b204e9800998ecf8427e"),
    (
        "public.async_tasks_entities",
        0,
        "d41d8cd98f00b204e9800998ecf8427e",
    ),
    (
        "public.business_entity_snapshot",
        0,
        "d41d8cd98f00b204e9800998ecf8427e",
    ),
    (
        "public.command_entities",
        0,
        "d41d8cd98f00b204e9800998ecf8427e",
    ),
    (
        "public.dwh_history_timekeeping",
        3,
        "e017fd84f5c31f840f823ded6ac1a799",
    ),
    ("public.job", 0, "d41d8cd98f00b204e9800998ecf8427e"),
    ("public.step", 0, "d41d8cd98f00b204e9800998ecf8427e"),
    ("public.vdc_options", 8, "43981de64c0ff674679adcaeee5267b2"),
    ("public.vm_dynamic", 30, "cc186d51b363d7e4276f6d085ad1b6f5"),
];

/// `before` with the post-restore changes of engine-backup applied.
pub fn expected_after_restore(
    before: &BTreeMap<String, (i64, String)>,
) -> BTreeMap<String, (i64, String)> {
    let mut want = before.clone();
    for (t, rows, sum) in AFTER_RESTORE {
        want.insert(t.to_string(), (*rows, sum.to_string()));
    }
    want
}

/// A properties file as the JDK's `java.util.Properties.load` reads it.
pub fn java_properties(path: &Path) -> BTreeMap<String, String> {
    let tool =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../holdfast/tests/independent/PropsDump.java");
    let out = std::process::Command::new("java")
        .arg(&tool)
        .arg("stream")
        .arg(path)
        .output()
        .expect("the JDK's java reads the properties file");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let unhex = |h: &str| String::from_utf8(hex::decode(h).unwrap()).unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let mut f = l.split(' ');
            f.next();
            (unhex(f.next().unwrap()), unhex(f.next().unwrap_or("")))
        })
        .collect()
}

/// A `holdfast serve` child on a loopback port, killed when dropped.
pub struct RestServer {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl RestServer {
    /// An append-only server of private repositories under `dir/served`,
    /// with one user (`dir/htpasswd`); its log in `dir/serve.log`.
    pub fn start(dir: &Path, user: &str, password: &str) -> RestServer {
        let htpasswd = dir.join("htpasswd");
        std::fs::write(
            &htpasswd,
            format!("{user}:{}\n", bcrypt::hash(password, 4).unwrap()),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("serve.log")).unwrap();
        let htpasswd = htpasswd.display().to_string();
        RestServer::spawn(
            &dir.join("served"),
            &["--append-only", "--private-repos", "--htpasswd", &htpasswd],
            log.into(),
        )
    }

    /// A server of the repositories under `root` (not private: any path)
    /// with one user, whose htpasswd file is written in `dir`.
    pub fn with_user(root: &Path, dir: &Path, user: &str, password: &str) -> RestServer {
        let htpasswd = dir.join("htpasswd");
        std::fs::write(
            &htpasswd,
            format!("{user}:{}\n", bcrypt::hash(password, 4).unwrap()),
        )
        .unwrap();
        let htpasswd = htpasswd.display().to_string();
        RestServer::spawn(
            root,
            &["--htpasswd", &htpasswd],
            std::process::Stdio::null(),
        )
    }

    /// A server of the repositories under `root` without users (loopback
    /// needs none) and with deletes allowed.
    pub fn open(root: &Path) -> RestServer {
        RestServer::spawn(root, &[], std::process::Stdio::null())
    }

    fn spawn(root: &Path, extra: &[&str], log: std::process::Stdio) -> RestServer {
        std::fs::create_dir_all(root).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_holdfast"))
            .args(["serve", "--listen", "127.0.0.1:0", "--repo-root"])
            .arg(root)
            .args(extra)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start holdfast serve");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let url = line
            .trim()
            .strip_prefix("holdfast serve: listening on ")
            .unwrap_or_else(|| panic!("holdfast serve did not start: {line:?}"))
            .trim_end_matches('/')
            .to_string();
        RestServer { child, url }
    }

    /// `rest:http://USER@127.0.0.1:PORT/REPO/`: the password stays out of the URL.
    pub fn location(&self, user: &str, repo: &str) -> String {
        let (scheme, hostport) = self.url.split_once("://").unwrap();
        format!("rest:{scheme}://{user}@{hostport}/{repo}/")
    }
}

impl Drop for RestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The keys the moto server's buckets are made with (moto takes any).
pub const MOTO_KEY_ID: &str = "AKIAHOLDFASTTEST";
pub const MOTO_SECRET: &str = "s3-secret-that-must-not-show";

/// The virtual environment scripts/ensure-moto installs the server into.
pub fn moto_venv() -> PathBuf {
    if let Some(v) = std::env::var_os("HOLDFAST_MOTO_VENV") {
        return PathBuf::from(v);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache"));
    cache.join("holdfast/moto-venv")
}

/// A port nothing listens on (bound once by us, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A moto server on a loopback port, stopped when dropped.
pub struct Moto {
    child: std::process::Child,
    port: u16,
}

impl Moto {
    pub fn start(log: &Path) -> Moto {
        let venv = moto_venv();
        let server = venv.join("bin/moto_server");
        assert!(
            server.is_file(),
            "{} is missing: run scripts/ensure-moto",
            server.display()
        );
        let port = free_port();
        let log = std::fs::File::create(log).unwrap();
        let child = std::process::Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start moto_server");
        let moto = Moto { child, port };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "moto_server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        moto
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Create a bucket with boto3 (installed beside the server).
    pub fn create_bucket(&self, name: &str) {
        let script = "import sys, boto3\n\
             boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1')\
             .create_bucket(Bucket=sys.argv[2])";
        let out = Command::new(moto_venv().join("bin/python"))
            .args(["-c", script, &self.endpoint(), name])
            .env("AWS_ACCESS_KEY_ID", MOTO_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", MOTO_SECRET)
            .output()
            .expect("run python");
        assert!(
            out.status.success(),
            "create bucket: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
