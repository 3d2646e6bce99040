//! `holdfast repo` end to end on a real cluster: nightly snapshots of the
//! sample environment, 1 % of one table's rows changed between them, restore
//! of the second snapshot compared table by table, export for engine-backup,
//! and restic itself reading what holdfast wrote.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

const PASSWORD: &str = "correct horse battery staple";

/// Rows of the bulk table: about 34 MiB of dump, some 30 chunks of restic's 1 MiB average.
const BULK_ROWS: i64 = 300_000;

struct RepoSample {
    s: Sample,
    repo: PathBuf,
    password_file: PathBuf,
}

impl RepoSample {
    fn start() -> RepoSample {
        let s = Sample::start();
        // A table big enough to span many chunks, owned by the application's user.
        s.cluster
            .execute(
                "engine",
                &format!(
                    "SET ROLE engine;
                     CREATE TABLE bulk_events (id bigint PRIMARY KEY, payload text NOT NULL);
                     INSERT INTO bulk_events
                       SELECT g, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text)
                       FROM generate_series(1, {BULK_ROWS}) g;"
                ),
            )
            .expect("create the bulk table");
        let password_file = s.path("repo-password");
        std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
        std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        RepoSample {
            repo: s.path("repo"),
            password_file,
            s,
        }
    }

    /// `holdfast repo VERB --repo R --password-file P ARGS`.
    fn repo(&self, verb: &str, args: &[&str]) -> Run {
        let mut all = vec![
            "repo",
            verb,
            "--repo",
            self.repo.to_str().unwrap(),
            "--password-file",
            self.password_file.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        self.s.holdfast(&all)
    }

    fn restic(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new("restic")
            .arg("--repo")
            .arg(&self.repo)
            .arg("--password-file")
            .arg(&self.password_file)
            .arg("--no-cache")
            .args(args)
            .output()
            .expect("run restic (scripts/ensure-restic installs it)");
        assert!(
            out.status.success(),
            "restic {args:?}:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

/// The snapshots holdfast lists, as (short id, added bytes as shown).
fn snapshot_ids(listing: &str) -> Vec<String> {
    listing
        .lines()
        .skip(1)
        .filter(|l| !l.ends_with("snapshot(s)"))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect()
}

/// New data of every snapshot, uncompressed and as stored, oldest first.
fn data_added(r: &RepoSample) -> Vec<(u64, u64)> {
    let repo = holdfast::repo::Repo::open(
        &holdfast::repo::RepoLocation::local(&r.repo),
        &holdfast::Password::new(PASSWORD),
    )
    .unwrap();
    repo.snapshots()
        .unwrap()
        .iter()
        .map(|s| (s.added_bytes, s.added_stored_bytes))
        .collect()
}

fn without_notifications(
    mut sums: std::collections::BTreeMap<String, (i64, String)>,
) -> std::collections::BTreeMap<String, (i64, String)> {
    // The notification hook writes rows around every backup.
    sums.remove("public.engine_backup_log");
    sums
}

#[test]
fn nightly_snapshots_dedup_restore_export_and_restic_reads_them() {
    let r = RepoSample::start();
    // The db preset's small chunks (128 KiB–2 MiB) bound what a changed run of
    // rows costs; with restic's (512 KiB–8 MiB) and the random chunker
    // polynomial of each repository, the cost of this small change varies
    // too much for a firm bound.
    r.repo("init", &["--chunking", "db"]).ok();
    assert_eq!(
        std::fs::metadata(&r.repo).unwrap().permissions().mode() & 0o777,
        0o700
    );
    r.repo("init", &[]).fails_with("is not empty");

    let clock = std::time::Instant::now();
    let first = r.repo("backup", &["--log", "night1.log"]);
    first.ok();
    assert!(
        first.stdout.contains("Storing the backup in repository"),
        "{}",
        first.stdout
    );

    // 1 % of the bulk table's rows change, in one run of ids (a busy range).
    let changed = BULK_ROWS / 100;
    r.s.cluster
        .execute(
            "engine",
            &format!(
                "UPDATE bulk_events SET payload = upper(payload) WHERE id > 150000 AND id <= {}",
                150000 + changed
            ),
        )
        .unwrap();
    let engine_second = without_notifications(checksums(&r.s.engine("engine")));
    let dwh_second = checksums(&r.s.dwh("ovirt_engine_history"));
    r.repo("backup", &["--log", "night2.log"]).ok();

    let listing = r.repo("snapshots", &[]);
    listing.ok();
    let ids = snapshot_ids(&listing.stdout);
    assert_eq!(ids.len(), 2, "{}", listing.stdout);
    assert!(
        listing.stdout.contains("profile:ovirt-engine"),
        "{}",
        listing.stdout
    );
    assert!(listing.stdout.contains("scope:db"), "{}", listing.stdout);

    // The second night costs a fraction of the first: unchanged tables and
    // files dedup, the changed table only costs its changed chunks.
    eprintln!("two backups: {:?}", clock.elapsed());
    let added = data_added(&r);
    eprintln!("data added per snapshot (raw, stored): {added:?}");
    assert!(added[0].0 > 30_000_000, "{added:?}");
    assert!(
        added[1].0 * 5 < added[0].0,
        "the second snapshot should add well under a fifth of the first: {added:?}"
    );

    // restic itself verifies every pack, and dumps the same bytes holdfast exports.
    let check = String::from_utf8(r.restic(&["check", "--read-data"])).unwrap();
    assert!(check.contains("no errors were found"), "{check}");
    r.repo("check", &[]).ok();
    let deep = r.repo("check", &["--read-data"]);
    deep.ok();
    assert!(deep.stdout.contains("no errors"), "{}", deep.stdout);

    // Uncompressed, to keep the test quick (gzip is the default).
    r.repo(
        "export",
        &[&ids[1], "--file", "night2.backup", "--compressor", "none"],
    )
    .ok();
    let exported = r.s.path("night2.backup");
    assert_eq!(
        std::fs::metadata(&exported).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let reader = holdfast::archive::ArchiveReader::open(&exported, Default::default()).unwrap();
    assert_eq!(reader.codec(), holdfast::archive::Codec::None);
    for member in [
        "config",
        "files",
        "version",
        "manifest.json",
        "db/engine_backup.db",
        "db/dwh_backup.db",
    ] {
        let ours = std::fs::read(reader.member_path(member).unwrap()).unwrap();
        let theirs = r.restic(&["dump", &ids[1], &format!("/holdfast/ovirt-engine/{member}")]);
        assert!(
            ours == theirs,
            "restic dump of {member} differs from the export"
        );
    }
    drop(reader);
    r.s.engine_backup(&["--mode=verify", "--file=night2.backup", "--log=verify.log"])
        .ok();
    r.repo("export", &[&ids[1], "--file", "night2.backup"])
        .fails_with("already exists");

    eprintln!("checks and export: {:?}", clock.elapsed());
    // Restore the second night onto a cleaned install.
    r.s.clean_databases();
    let restored = r.repo(
        "restore",
        &[&ids[1], "--restore-permissions", "--log", "restore.log"],
    );
    restored.ok();
    let got = without_notifications(checksums(&r.s.engine("engine")));
    let want = without_notifications(expected_after_restore(&engine_second));
    assert_eq!(got, want);
    assert_eq!(checksums(&r.s.dwh("ovirt_engine_history")), dwh_second);
    eprintln!("restore: {:?}", clock.elapsed());

    // The files alone, from the same snapshot (its dumps are not read): a
    // changed conf file comes back, the databases stay as they are.
    let custom =
        r.s.root()
            .join("etc/ovirt-engine/engine.conf.d/99-custom.conf");
    let archived = std::fs::read(&custom).unwrap();
    std::fs::write(&custom, "CHANGED=\"after the backup\"\n").unwrap();
    let engine_now = checksums(&r.s.engine("engine"));
    r.repo(
        "restore",
        &[&ids[1], "--scope", "files", "--log", "files.log"],
    )
    .ok();
    assert_eq!(std::fs::read(&custom).unwrap(), archived);
    assert_eq!(checksums(&r.s.engine("engine")), engine_now);
}

#[test]
fn bad_passwords_snapshots_and_policies_are_refused_clearly() {
    let r = RepoSample::start();
    r.repo("init", &[]).ok();
    let wrong = r.s.path("wrong-password");
    std::fs::write(&wrong, "not it\n").unwrap();
    r.s.holdfast(&[
        "repo",
        "snapshots",
        "--repo",
        r.repo.to_str().unwrap(),
        "--password-file",
        wrong.to_str().unwrap(),
    ])
    .fails_with("wrong password");
    // The environment variable works when no file is given; no password at all is an error.
    let mut env_run = Command::new(env!("CARGO_BIN_EXE_holdfast"));
    env_run
        .args(["repo", "snapshots", "--repo"])
        .arg(&r.repo)
        .env("HOLDFAST_REPO_PASSWORD", PASSWORD)
        .stdin(std::process::Stdio::null());
    assert!(env_run.output().unwrap().status.success());
    let out = Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .args(["repo", "snapshots", "--repo"])
        .arg(&r.repo)
        .env_remove("HOLDFAST_REPO_PASSWORD")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("--password-file"));

    r.repo("restore", &["deadbeef", "--restore-permissions"])
        .fails_with("no snapshot 'deadbeef'");
    r.repo("forget", &[]).fails_with("no keep rule given");
    r.repo("forget", &["--keep-within", "7w"])
        .fails_with("is not a duration");
    r.s.holdfast(&[
        "repo",
        "snapshots",
        "--repo",
        r.s.path("nowhere").to_str().unwrap(),
    ])
    .fails_with("is not a repository");
    assert!(!Path::new(&r.s.path("nowhere")).exists());
}

#[test]
fn restore_onto_a_used_install_changes_nothing_and_damage_is_found() {
    let r = RepoSample::start();
    r.repo("init", &[]).ok();
    let tmp = r.s.path("tmp");
    std::fs::create_dir(&tmp).unwrap();
    r.repo("backup", &["--tmpdir", tmp.to_str().unwrap()]).ok();
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "staging removed"
    );

    // The databases still hold their data: the restore pipeline's checks refuse
    // before the first write, and the materialised archive is gone too.
    let engine_before = checksums(&r.s.engine("engine"));
    let root_before = tree(&r.s.root());
    r.repo(
        "restore",
        &[
            "latest",
            "--restore-permissions",
            "--tmpdir",
            tmp.to_str().unwrap(),
        ],
    )
    .fails_with("is not empty");
    assert_eq!(checksums(&r.s.engine("engine")), engine_before);
    assert_eq!(tree(&r.s.root()), root_before);
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "temporary files removed"
    );

    // A flipped byte in a data pack: the structure check passes, reading the data does not.
    let pack = largest_file(&r.repo.join("data"));
    let mut bytes = std::fs::read(&pack).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&pack, bytes).unwrap();
    r.repo("check", &[]).ok();
    r.repo("check", &["--read-data"]).fails_with("check found");
}

fn largest_file(dir: &Path) -> PathBuf {
    let mut best: Option<(u64, PathBuf)> = None;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            } else if best.as_ref().is_none_or(|(n, _)| meta.len() > *n) {
                best = Some((meta.len(), e.path()));
            }
        }
    }
    best.expect("a pack").1
}

/// Issue 7: `holdfast repo restore` provisions like `holdfast restore`. The
/// sample is snapshotted, its cluster replaced by an empty one on the same
/// port (no application role or database), and the restore creates them.
#[test]
fn repo_restore_provisions_an_empty_cluster() {
    let s = Sample::start();
    let engine_before = without_notifications(checksums(&s.engine("engine")));
    let dwh_before = checksums(&s.dwh("ovirt_engine_history"));
    let password_file = s.path("repo-password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let repo = s.path("repo");
    let repo_args = |verb: &str, extra: &[&str]| {
        let mut all = vec![
            "repo".to_string(),
            verb.to_string(),
            "--repo".to_string(),
            repo.display().to_string(),
            "--password-file".to_string(),
            password_file.display().to_string(),
        ];
        all.extend(extra.iter().map(|x| x.to_string()));
        all
    };
    let run = |s: &Sample, args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        s.holdfast(&refs)
    };
    run(&s, repo_args("init", &[])).ok();
    run(&s, repo_args("backup", &["--log", "b.log"])).ok();

    let Sample { cluster, dir } = s;
    let port = cluster.port();
    drop(cluster);
    let cluster = pgsandbox::Cluster::builder()
        .port(port)
        .start()
        .expect("fresh cluster");
    let s = Sample { cluster, dir };
    let admin = s.cluster.socket_dir().display().to_string();
    // A scope the profile does not have is refused before anything is read.
    run(
        &s,
        repo_args("restore", &["latest", "--provision", "nosuch"]),
    )
    .fails_with("--provision nosuch: not a database scope");
    run(
        &s,
        repo_args(
            "restore",
            &[
                "latest",
                "--log",
                "r.log",
                "--provision",
                "db",
                "--provision",
                "dwhdb",
                "--admin-host",
                &admin,
                "--no-restore-permissions",
            ],
        ),
    )
    .ok();
    assert_eq!(
        without_notifications(checksums(&s.engine("engine"))),
        without_notifications(expected_after_restore(&engine_before))
    );
    assert_eq!(checksums(&s.dwh("ovirt_engine_history")), dwh_before);
    let owner = s
        .cluster
        .query_text(
            "postgres",
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'engine'",
        )
        .unwrap();
    assert_eq!(owner.as_deref(), Some("engine"));
}
