//! The repository commands restic users reach for (issue 21), end to end on a
//! real repository, local and through `holdfast serve` (restic's REST
//! protocol), with restic itself as the judge: `repo unlock`, `stats`, `ls`,
//! `diff`, `key`, `copy`, `repair` and `check --read-data-subset`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "correct horse battery staple";

struct Repository {
    /// The password files.
    dir: tempfile::TempDir,
    /// Where the repository's files are: restic reads them directly.
    path: PathBuf,
    /// What holdfast is given: the path, or a `rest:` URL of a server
    /// serving `path`.
    location: String,
    password_file: PathBuf,
}

impl Repository {
    fn init() -> Repository {
        Repository::init_at("repo")
    }

    fn init_at(name: &str) -> Repository {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        let location = path.display().to_string();
        Repository::init_with(dir, path, location)
    }

    /// A new repository `name` of `server`, reached through it.
    fn init_served(server: &Server, name: &str) -> Repository {
        let dir = tempfile::tempdir().unwrap();
        let path = server.root.join(name);
        let location = format!("rest:{}/{name}/", server.rest.url);
        Repository::init_with(dir, path, location)
    }

    fn init_with(dir: tempfile::TempDir, path: PathBuf, location: String) -> Repository {
        let password_file = dir.path().join("password");
        std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
        let r = Repository {
            dir,
            path,
            location,
            password_file,
        };
        let (ok, out) = r.holdfast("init", &[]);
        assert!(ok, "{out}");
        r
    }

    /// `holdfast repo VERB --repo R --password-file P ARGS`: (success, stdout + stderr).
    fn holdfast(&self, verb: &str, args: &[&str]) -> (bool, String) {
        self.holdfast_with(&self.password_file, verb, args)
    }

    fn holdfast_with(&self, password_file: &Path, verb: &str, args: &[&str]) -> (bool, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_holdfast"))
            .arg("repo")
            .args(verb.split(' '))
            .arg("--repo")
            .arg(&self.location)
            .arg("--password-file")
            .arg(password_file)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (out.status.success(), text(&out))
    }

    fn restic(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("restic");
        cmd.arg("--repo")
            .arg(&self.path)
            .arg("--password-file")
            .arg(&self.password_file)
            .arg("--no-cache")
            .args(args);
        cmd
    }

    fn restic_output(&self, args: &[&str]) -> (bool, String) {
        let out = self
            .restic(args)
            .stdin(Stdio::null())
            .output()
            .expect("run restic (scripts/ensure-restic installs it)");
        (out.status.success(), text(&out))
    }

    /// A restic process that holds a shared lock until its stdin closes.
    fn restic_holding_a_lock(&self) -> Child {
        let before = self.locks().len();
        let child = self
            .restic(&["backup", "--stdin", "--stdin-filename", "held"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run restic");
        let until = Instant::now() + Duration::from_secs(30);
        while self.locks().len() == before {
            assert!(Instant::now() < until, "restic took no lock");
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    fn locks(&self) -> Vec<String> {
        std::fs::read_dir(self.path.join("locks"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    // A live restic refreshes its lock through a temporary
                    // file: only the locks themselves count.
                    .filter(|n| !n.contains("-tmp-"))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// `holdfast serve` of a temporary directory, without users (loopback needs
/// none), deletes allowed.
struct Server {
    _dir: tempfile::TempDir,
    root: PathBuf,
    rest: support::RestServer,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("served");
        let rest = support::RestServer::open(&root);
        Server {
            _dir: dir,
            root,
            rest,
        }
    }
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn wait_gone(pid: u32) {
    let until = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A restic killed with its lock held blocks `restic check` until
/// `holdfast repo unlock` removes that lock; the lock of a restic that still
/// runs is kept unless `--remove-all`.
#[test]
fn unlock_removes_stale_restic_locks_and_keeps_live_ones() {
    let r = Repository::init();
    let (ok, out) = r.holdfast("unlock", &[]);
    assert!(ok, "{out}");
    assert!(out.contains("0 lock(s) removed, 0 kept"), "{out}");

    // A restic killed with its lock held: the lock stays behind.
    let mut killed = r.restic_holding_a_lock();
    let stale_lock = r.locks();
    killed.kill().unwrap();
    killed.wait().unwrap();
    wait_gone(killed.id());
    assert_eq!(r.locks(), stale_lock, "SIGKILL leaves restic's lock");
    // And one that still runs.
    let mut live = r.restic_holding_a_lock();
    let live_lock: Vec<String> = r
        .locks()
        .into_iter()
        .filter(|l| !stale_lock.contains(l))
        .collect();
    assert_eq!(live_lock.len(), 1);

    let (ok, out) = r.restic_output(&["check"]);
    assert!(
        !ok && out.contains("locked"),
        "restic check is blocked: {out}"
    );

    let (ok, out) = r.holdfast("unlock", &[]);
    assert!(ok, "{out}");
    assert!(out.contains("1 lock(s) removed, 1 kept"), "{out}");
    assert!(
        out.contains(&format!("process {} on this host is gone", killed.id())),
        "{out}"
    );
    assert!(out.contains("--remove-all removes it"), "{out}");
    assert_eq!(r.locks(), live_lock, "only the stale lock is gone");

    let (ok, out) = r.holdfast("unlock", &["--remove-all"]);
    assert!(ok, "{out}");
    assert!(out.contains("1 lock(s) removed, 0 kept"), "{out}");
    assert!(r.locks().is_empty());
    live.kill().unwrap();
    live.wait().unwrap();

    let (ok, out) = r.restic_output(&["check"]);
    assert!(ok && out.contains("no errors were found"), "{out}");
}

/// The sample environment backed up on two nights, 1 % of a table's rows
/// changed between them.
fn two_nights() -> (support::Sample, Repository) {
    let r = Repository::init();
    (two_nights_into(&r), r)
}

/// [`two_nights`] into `r`.
fn two_nights_into(r: &Repository) -> support::Sample {
    let s = support::Sample::start();
    s.cluster
        .execute(
            "engine",
            "SET ROLE engine;
             CREATE TABLE bulk_events (id bigint PRIMARY KEY, payload text NOT NULL);
             INSERT INTO bulk_events
               SELECT g, md5(g::text) || md5((g * 7)::text) FROM generate_series(1, 100000) g;",
        )
        .unwrap();
    let backup = |s: &support::Sample| {
        s.holdfast(&[
            "repo",
            "backup",
            "--repo",
            &r.location,
            "--password-file",
            r.password_file.to_str().unwrap(),
        ])
        .ok();
    };
    backup(&s);
    s.cluster
        .execute(
            "engine",
            "UPDATE bulk_events SET payload = upper(payload) WHERE id <= 1000",
        )
        .unwrap();
    backup(&s);
    s
}

fn snapshot_ids(r: &Repository) -> Vec<String> {
    let (ok, out) = r.restic_output(&["snapshots", "--json"]);
    assert!(ok, "{out}");
    let doc: serde_json::Value =
        serde_json::from_str(out.lines().find(|l| l.starts_with('[')).unwrap()).unwrap();
    let mut snaps: Vec<(String, String)> = doc
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["time"].as_str().unwrap().to_string(),
                s["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    snaps.sort();
    snaps.into_iter().map(|(_, id)| id).collect()
}

fn restic_json(r: &Repository, args: &[&str]) -> serde_json::Value {
    let (ok, out) = r.restic_output(args);
    assert!(ok, "restic {args:?}: {out}");
    serde_json::from_str(out.lines().find(|l| l.starts_with('{')).unwrap()).unwrap()
}

fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[test]
fn stats_ls_diff_and_partial_reads_agree_with_restic() {
    let (_s, r) = two_nights();
    stats_ls_and_diff_agree_with_restic(&r);
    partial_reads_find_a_damaged_pack(&r);
}

/// `repo stats`, `ls` and `diff` of [`two_nights`] say what restic says.
fn stats_ls_and_diff_agree_with_restic(r: &Repository) {
    let ids = snapshot_ids(r);
    assert_eq!(ids.len(), 2);

    // stats: the restore size is restic's, snapshot by snapshot; the
    // deduplicated data is restic's raw data.
    let restore: u64 = ids
        .iter()
        .map(|id| {
            restic_json(r, &["stats", "--json", "--mode", "restore-size", id])["total_size"]
                .as_u64()
                .unwrap()
        })
        .sum();
    let raw = restic_json(r, &["stats", "--json", "--mode", "raw-data"]);
    let (ok, out) = r.holdfast("stats", &[]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("restore size:       {} ", human(restore))),
        "{out}\nrestic: {restore}"
    );
    assert!(
        out.contains(&format!(
            "stored data:        {} ",
            human(raw["total_size"].as_u64().unwrap())
        )),
        "{out}\nrestic: {raw}"
    );
    if let Some(uncompressed) = raw["total_uncompressed_size"].as_u64() {
        assert!(
            out.contains(&format!("deduplicated data:  {} ", human(uncompressed))),
            "{out}\nrestic: {raw}"
        );
    }
    assert!(
        out.contains("deduplication:      1."),
        "two similar nights dedup: {out}"
    );

    // ls: the same files with the same sizes as restic's ls.
    let (ok, listing) = r.restic_output(&["ls", "--json", &ids[1]]);
    assert!(ok, "{listing}");
    let theirs: BTreeMap<String, u64> = listing
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == "file")
        .map(|v| {
            (
                v["path"].as_str().unwrap().to_string(),
                v["size"].as_u64().unwrap(),
            )
        })
        .collect();
    let (ok, out) = r.holdfast("ls", &[&ids[1][..8]]);
    assert!(ok, "{out}");
    let ours: BTreeMap<String, String> = out
        .lines()
        .filter(|l| l.contains("  /holdfast/") && !l.ends_with('/'))
        .map(|l| {
            let (size, path) = l.trim().split_once("  /").unwrap();
            (format!("/{path}"), size.trim().to_string())
        })
        .collect();
    assert_eq!(
        ours,
        theirs.iter().map(|(p, s)| (p.clone(), human(*s))).collect(),
        "{out}"
    );
    let (ok, out) = r.holdfast("ls", &["latest", "/holdfast/ovirt-engine/db"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("/holdfast/ovirt-engine/db/engine_backup.db"),
        "{out}"
    );
    assert!(!out.contains("manifest.json"), "{out}");
    let (ok, out) = r.holdfast("ls", &["latest", "/nowhere"]);
    assert!(!ok && out.contains("holds nothing at /nowhere"), "{out}");

    // diff: the files restic's diff calls modified, and the changed table.
    let (ok, restic_diff) = r.restic_output(&["diff", &ids[0], &ids[1]]);
    assert!(ok, "{restic_diff}");
    let theirs: BTreeSet<String> = restic_diff
        .lines()
        .filter_map(|l| l.strip_prefix("M    "))
        .filter(|p| !p.ends_with('/'))
        .map(str::to_string)
        .collect();
    let (ok, out) = r.holdfast("diff", &[&ids[0][..8], &ids[1][..8]]);
    assert!(ok, "{out}");
    let ours: BTreeSet<String> = out
        .lines()
        .filter_map(|l| l.strip_prefix("M  "))
        .map(|l| l.split("  ").next().unwrap().to_string())
        .collect();
    assert_eq!(ours, theirs, "{out}\nrestic:\n{restic_diff}");
    assert!(
        ours.contains("/holdfast/ovirt-engine/db/engine_backup.db"),
        "{out}"
    );
    assert!(
        out.contains("table db public.bulk_events: 100000 -> 100000 rows, content changed"),
        "{out}"
    );
    assert!(
        !out.contains("table dwhdb"),
        "the dwh database did not change: {out}"
    );
}

/// `repo check --read-data-subset`: a damaged pack is found by exactly one
/// part of a split in three, and by a full read.
fn partial_reads_find_a_damaged_pack(r: &Repository) {
    for n in 1..=3 {
        let (ok, out) = r.holdfast("check", &["--read-data-subset", &format!("{n}/3")]);
        assert!(ok, "{out}");
        assert!(
            out.contains(&format!("pack subset {n}/3: no errors")),
            "{out}"
        );
    }
    let (ok, out) = r.holdfast("check", &["--read-data-subset", "0/3"]);
    assert!(!ok && out.contains("N must be between 1 and M"), "{out}");
    let pack = largest_pack(&r.path);
    let mut bytes = std::fs::read(&pack).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&pack, bytes).unwrap();
    let failing: Vec<u32> = (1..=3)
        .filter(|n| {
            !r.holdfast("check", &["--read-data-subset", &format!("{n}/3")])
                .0
        })
        .collect();
    assert_eq!(failing.len(), 1, "exactly one part holds the damaged pack");
    assert!(!r.holdfast("check", &["--read-data"]).0);
}

fn largest_pack(repo: &Path) -> PathBuf {
    let mut best: Option<(u64, PathBuf)> = None;
    for d in std::fs::read_dir(repo.join("data")).unwrap().flatten() {
        for f in std::fs::read_dir(d.path()).unwrap().flatten() {
            let len = f.metadata().unwrap().len();
            if best.as_ref().is_none_or(|(n, _)| len > *n) {
                best = Some((len, f.path()));
            }
        }
    }
    best.unwrap().1
}

#[test]
fn keys_rotate_and_copies_go_off_site_and_restic_checks_both() {
    let (_s, r) = two_nights();
    keys_rotate(&r);
    copies_go_off_site(&r, &Repository::init_at("off-site"));
}

/// A second admin key, the first removed with it, then a new password
/// (`repo key add|list|remove|passwd`); restic reads the result.
fn keys_rotate(r: &Repository) {
    // A second admin key; restic opens the repository with it.
    let second = r.dir.path().join("second-password");
    std::fs::write(&second, "a second admin's password\n").unwrap();
    let (ok, out) = r.holdfast(
        "key add",
        &["--new-password-file", second.to_str().unwrap()],
    );
    assert!(ok, "{out}");
    let (ok, out) = r.holdfast("key list", &[]);
    assert!(ok && out.contains("2 key(s)"), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with('*')).count(),
        1,
        "{out}"
    );
    let first_key = out.lines().find(|l| l.starts_with('*')).unwrap()[1..9].to_string();
    let (ok, theirs) = Command::new("restic")
        .args(["--no-cache", "snapshots", "--repo"])
        .arg(&r.path)
        .arg("--password-file")
        .arg(&second)
        .output()
        .map(|o| (o.status.success(), text(&o)))
        .unwrap();
    assert!(ok, "restic opens it with the second key: {theirs}");

    // The key in use cannot go; with the second password, the first can.
    let (ok, out) = r.holdfast("key remove", &[&first_key]);
    assert!(
        !ok && out.contains("is the one this password opens"),
        "{out}"
    );
    let (ok, out) = r.holdfast_with(&second, "key remove", &[&first_key]);
    assert!(ok, "{out}");
    let (ok, out) = r.holdfast("snapshots", &[]);
    assert!(
        !ok && out.contains("wrong password"),
        "the first password is gone: {out}"
    );

    // passwd: the new password opens it, the old one no longer does.
    let third = r.dir.path().join("third-password");
    std::fs::write(&third, "rotated at midnight\n").unwrap();
    let (ok, out) = r.holdfast_with(
        &second,
        "key passwd",
        &["--new-password-file", third.to_str().unwrap()],
    );
    assert!(ok, "{out}");
    assert!(!r.holdfast_with(&second, "snapshots", &[]).0);
    let (ok, out) = r.holdfast_with(&third, "key list", &[]);
    assert!(ok && out.contains("1 key(s)"), "{out}");
    std::fs::copy(&third, &r.password_file).unwrap();
    let (ok, out) = r.restic_output(&["check", "--read-data"]);
    assert!(ok && out.contains("no errors were found"), "{out}");
}

/// `repo copy` of one snapshot, then of every one (only what is new); restic
/// reads the copies, which hold the same files byte for byte.
fn copies_go_off_site(r: &Repository, off_site: &Repository) {
    let ids = snapshot_ids(r);
    let to = off_site.location.as_str();
    let to_pw = off_site.password_file.to_str().unwrap();
    let (ok, out) = r.holdfast(
        "copy",
        &[&ids[0][..8], "--to", to, "--to-password-file", to_pw],
    );
    assert!(ok, "{out}");
    assert!(out.contains("1 snapshot(s) copied"), "{out}");
    let (ok, out) = r.holdfast("copy", &["--to", to, "--to-password-file", to_pw]);
    assert!(ok, "{out}");
    assert!(
        out.contains("1 snapshot(s) copied") && out.contains("1 already there"),
        "{out}"
    );
    let (ok, out) = off_site.restic_output(&["check", "--read-data"]);
    assert!(ok && out.contains("no errors were found"), "{out}");
    // The copies hold the same files, byte for byte.
    let copies = snapshot_ids(off_site);
    assert_eq!(copies.len(), 2);
    for (orig, copy) in ids.iter().zip(&copies) {
        for member in ["manifest.json", "db/engine_backup.db", "files"] {
            let path = format!("/holdfast/ovirt-engine/{member}");
            let a = r.restic(&["dump", orig, &path]).output().unwrap();
            let b = off_site.restic(&["dump", copy, &path]).output().unwrap();
            assert!(a.status.success() && b.status.success());
            assert!(a.stdout == b.stdout, "{member} differs in the copy");
        }
    }
}

/// The same commands through `holdfast serve`: holdfast reaches the
/// repositories over restic's REST protocol, restic checks their files.
/// `repo unlock` removes a killed restic's lock, and `repo repair index`
/// rebuilds an index deleted on the server.
#[test]
fn repository_commands_work_through_holdfast_serve() {
    let server = Server::start();
    let r = Repository::init_served(&server, "nightly");
    let _s = two_nights_into(&r);
    stats_ls_and_diff_agree_with_restic(&r);
    for n in 1..=2 {
        let (ok, out) = r.holdfast("check", &["--read-data-subset", &format!("{n}/2")]);
        assert!(
            ok && out.contains(&format!("pack subset {n}/2: no errors")),
            "{out}"
        );
    }

    let mut killed = r.restic_holding_a_lock();
    killed.kill().unwrap();
    killed.wait().unwrap();
    wait_gone(killed.id());
    assert_eq!(r.locks().len(), 1, "SIGKILL leaves restic's lock");
    let (ok, out) = r.holdfast("unlock", &[]);
    assert!(ok && out.contains("1 lock(s) removed, 0 kept"), "{out}");
    assert!(r.locks().is_empty());

    let ids = snapshot_ids(&r);
    for index in std::fs::read_dir(r.path.join("index")).unwrap().flatten() {
        std::fs::remove_file(index.path()).unwrap();
    }
    assert!(!r.restic_output(&["check"]).0, "the index is gone");
    let (ok, out) = r.holdfast("repair index", &[]);
    assert!(ok, "{out}");
    let (ok, out) = r.restic_output(&["check", "--read-data"]);
    assert!(ok && out.contains("no errors were found"), "{out}");
    assert_eq!(snapshot_ids(&r), ids);
    let (ok, out) = r.holdfast("repair snapshots", &[]);
    assert!(ok, "{out}");

    keys_rotate(&r);
    // Off site both ways: from the server to a local repository, and from
    // there to a second repository of the server.
    let local = Repository::init_at("local-copy");
    copies_go_off_site(&r, &local);
    copies_go_off_site(&local, &Repository::init_served(&server, "second-site"));
}
