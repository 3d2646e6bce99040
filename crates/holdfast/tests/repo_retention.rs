//! Retention against restic itself: snapshots with synthetic times (the
//! seed's nightly 23:50 run over years), the seed's policy (daily 7, weekly 4,
//! monthly 12, yearly 3); holdfast must keep exactly what `restic forget`
//! keeps, for snapshots and for a directory of archive files alike.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use holdfast::archive::manifest::{Manifest, ToolInfo, MANIFEST_MEMBER};
use holdfast::archive::{ArchiveWriter, Codec, WriterOptions};
use holdfast::repo::archives::{prune_archives, TimeSource};
use holdfast::repo::engine::SnapshotLabels;
use holdfast::repo::jiff::civil::{date, Date};
use holdfast::repo::jiff::tz::TimeZone;
use holdfast::repo::jiff::{Span, Zoned};
use holdfast::repo::{Chunking, PruneMode, Repo, RepoLocation, Retention};
use holdfast::Password;

const PASSWORD: &str = "retention test password";

fn seed_policy() -> Retention {
    Retention {
        daily: Some(7),
        weekly: Some(4),
        monthly: Some(12),
        yearly: Some(3),
        ..Default::default()
    }
}

fn nightly(d: Date) -> Zoned {
    d.at(23, 50, 0, 0).to_zoned(TimeZone::UTC).unwrap()
}

/// 14 nightlies, 10 weeklies before them, 18 month ends before those, one
/// year end for 2020–2024, and an extra midday run on the newest day.
fn synthetic_times() -> Vec<Zoned> {
    let newest = date(2026, 10, 31);
    let mut days: BTreeSet<Date> = BTreeSet::new();
    for i in 0..14 {
        days.insert(newest.checked_sub(Span::new().days(i)).unwrap());
    }
    let mut d = newest.checked_sub(Span::new().days(14)).unwrap();
    for _ in 0..10 {
        d = d.checked_sub(Span::new().days(7)).unwrap();
        days.insert(d);
    }
    let mut month = date(2025, 12, 1);
    for _ in 0..18 {
        days.insert(month.last_of_month());
        month = month.checked_sub(Span::new().months(1)).unwrap();
    }
    for y in 2020..=2024 {
        days.insert(date(y, 12, 31));
    }
    let mut times: Vec<Zoned> = days.into_iter().map(nightly).collect();
    times.push(newest.at(12, 0, 0, 0).to_zoned(TimeZone::UTC).unwrap());
    times.sort();
    times
}

fn restic(repo: &Path, password_file: &Path, args: &[&str]) -> String {
    let out = Command::new("restic")
        .arg("--repo")
        .arg(repo)
        .arg("--password-file")
        .arg(password_file)
        .arg("--no-cache")
        .args(args)
        .output()
        .expect("run restic (scripts/ensure-restic installs it)");
    assert!(
        out.status.success(),
        "restic {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The ids restic's `forget --dry-run` keeps.
fn restic_keeps(repo: &Path, password_file: &Path) -> BTreeSet<String> {
    let json = restic(
        repo,
        password_file,
        &[
            "forget",
            "--dry-run",
            "--json",
            "--keep-daily",
            "7",
            "--keep-weekly",
            "4",
            "--keep-monthly",
            "12",
            "--keep-yearly",
            "3",
        ],
    );
    // restic prints the JSON document on the last line.
    let doc = json
        .lines()
        .rev()
        .find(|l| l.starts_with('['))
        .expect("json");
    let groups: serde_json::Value = serde_json::from_str(doc).unwrap();
    let mut keep = BTreeSet::new();
    for g in groups.as_array().unwrap() {
        for s in g["keep"].as_array().unwrap() {
            keep.insert(s["id"].as_str().unwrap().to_string());
        }
    }
    keep
}

struct Fixture {
    _dir: tempfile::TempDir,
    repo_dir: PathBuf,
    password_file: PathBuf,
    repo: Repo,
    /// Snapshot id → time.
    snapshots: Vec<(String, Zoned)>,
}

fn repo_with_synthetic_snapshots() -> Fixture {
    repo_with_snapshots(synthetic_times())
}

fn repo_with_snapshots(times: Vec<Zoned>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let repo_dir = dir.path().join("repo");
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let mut repo = Repo::init(
        &RepoLocation::local(&repo_dir),
        &Password::new(PASSWORD),
        Chunking::Restic,
    )
    .unwrap();
    let staged = dir.path().join("staged");
    std::fs::create_dir(&staged).unwrap();
    let mut snapshots = Vec::new();
    for (i, time) in times.into_iter().enumerate() {
        std::fs::write(staged.join("version"), format!("night {i}\n")).unwrap();
        let labels = SnapshotLabels {
            profile: "sample".into(),
            host: "backup.example".into(),
            scopes: vec!["files".into()],
            time: Some(time.clone()),
        };
        let info = repo.backup_dir(&staged, &labels).unwrap();
        assert_eq!(info.time, time);
        snapshots.push((info.id, time));
    }
    Fixture {
        _dir: dir,
        repo_dir,
        password_file,
        repo,
        snapshots,
    }
}

#[test]
fn forget_keeps_exactly_what_restic_keeps() {
    let f = repo_with_synthetic_snapshots();
    let total = synthetic_times().len();
    assert_eq!(f.snapshots.len(), total);
    let restic_kept = restic_keeps(&f.repo_dir, &f.password_file);

    let now = nightly(date(2026, 11, 1));
    let dry = f.repo.forget(&seed_policy(), &now, true).unwrap();
    assert!(!dry.removed);
    let ours: BTreeSet<String> = dry
        .verdicts
        .iter()
        .filter(|v| v.keep)
        .map(|v| v.item.id.clone())
        .collect();
    assert_eq!(
        ours, restic_kept,
        "holdfast and restic keep the same snapshots"
    );
    eprintln!("restic and holdfast keep {} of {total}", ours.len());
    assert_eq!(
        f.repo.snapshots().unwrap().len(),
        total,
        "a dry run removes nothing"
    );

    // The yearly rule counts 2026 and 2025 too: of the year ends 2020–2024
    // only 2024 stays.
    let kept_year_ends: Vec<i16> = f
        .snapshots
        .iter()
        .filter(|(id, t)| ours.contains(id) && t.year() < 2025 && t.month() == 12 && t.day() == 31)
        .map(|(_, t)| t.year())
        .collect();
    assert_eq!(kept_year_ends, [2024]);

    let done = f.repo.forget(&seed_policy(), &now, false).unwrap();
    assert!(done.removed);
    let left: BTreeSet<String> = f
        .repo
        .snapshots()
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(left, restic_kept);

    // Two-phase prune marks what the forgotten snapshots alone used, deletes
    // nothing yet, and leaves a repository restic reads in full.
    let pruned = f.repo.prune(PruneMode::TwoPhase, false).unwrap();
    assert_eq!(pruned.packs_deleted, 0, "{pruned:?}");
    restic(&f.repo_dir, &f.password_file, &["check", "--read-data"]);
    let report = f.repo.check(true).unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}

/// A holdfast archive whose manifest records `time` as its backup time.
fn write_archive(path: &Path, time: &Zoned) {
    let manifest = Manifest {
        format_version: 1,
        tool: ToolInfo {
            name: "holdfast".into(),
            version: "test".into(),
        },
        created_at: time.timestamp().to_string(),
        profile: "sample".into(),
        profile_source: None,
        application_version: "4.5.7".into(),
        host: "backup.example".into(),
        scopes: vec!["files".into()],
        members: Vec::new(),
        databases: Vec::new(),
    };
    let mut w = ArchiveWriter::create(
        path,
        WriterOptions {
            codec: Codec::Gzip,
            ..Default::default()
        },
    )
    .unwrap();
    w.add_bytes("config", "").unwrap();
    w.add_bytes("version", "4.5.7\n").unwrap();
    w.add_bytes(MANIFEST_MEMBER, manifest.to_json()).unwrap();
    w.finish().unwrap();
}

#[test]
fn prune_archives_keeps_what_restic_keeps_by_recorded_time() {
    let times = synthetic_times();
    let dir = tempfile::tempdir().unwrap();
    let archives = dir.path().join("archives");
    std::fs::create_dir(&archives).unwrap();
    // Names run against the times, and every mtime is "now": neither may matter.
    let mut by_name = Vec::new();
    for (i, t) in times.iter().enumerate() {
        let path = archives.join(format!("backup-{:03}.tar.gz", times.len() - i));
        write_archive(&path, t);
        by_name.push((path, t.clone()));
    }
    std::fs::write(archives.join("notes.txt"), "not an archive\n").unwrap();

    // restic's verdict over the same times, from a repository.
    let f = repo_with_synthetic_snapshots();
    let restic_kept = restic_keeps(&f.repo_dir, &f.password_file);
    let restic_kept_times: BTreeSet<Zoned> = f
        .snapshots
        .iter()
        .filter(|(id, _)| restic_kept.contains(id))
        .map(|(_, t)| t.clone())
        .collect();

    let now = nightly(date(2026, 11, 1));
    let dry = prune_archives(&archives, &seed_policy(), &now, true).unwrap();
    assert_eq!(dry.skipped.len(), 1, "notes.txt is skipped, never deleted");
    assert!(dry
        .verdicts()
        .all(|v| v.item.source == TimeSource::Manifest));
    assert_eq!(dry.groups.len(), 1, "one profile on one host");
    let kept: BTreeSet<Zoned> = dry
        .verdicts()
        .filter(|v| v.keep)
        .map(|v| v.time.clone())
        .collect();
    assert_eq!(kept, restic_kept_times);
    assert_eq!(
        std::fs::read_dir(&archives).unwrap().count(),
        times.len() + 1,
        "dry run deletes nothing"
    );

    prune_archives(&archives, &seed_policy(), &now, false).unwrap();
    let left: BTreeSet<PathBuf> = std::fs::read_dir(&archives)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let want: BTreeSet<PathBuf> = by_name
        .iter()
        .filter(|(_, t)| restic_kept_times.contains(t))
        .map(|(p, _)| p.clone())
        .chain([archives.join("notes.txt")])
        .collect();
    assert_eq!(left, want);
}

#[test]
fn engine_backup_archives_are_dated_by_their_version_member() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/engine-backup-4.5/default.backup");
    let (time, source) = holdfast::repo::archives::backup_time(&fixture).unwrap();
    assert_eq!(source, TimeSource::VersionMember);
    assert!(time.year() >= 2020, "{time}");
}

#[test]
fn an_empty_policy_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write_archive(&dir.path().join("a.tar.gz"), &nightly(date(2026, 1, 1)));
    let err = prune_archives(dir.path(), &Retention::default(), &Zoned::now(), false).unwrap_err();
    assert!(err.to_string().contains("no keep rule given"), "{err}");
    assert!(dir.path().join("a.tar.gz").exists());
}

/// A new repository's first nine nights, and a midday run on the first day.
fn first_nine_days() -> Vec<Zoned> {
    let mut times: Vec<Zoned> = (23..=31).map(|d| nightly(date(2026, 10, d))).collect();
    times.push(
        date(2026, 10, 23)
            .at(10, 0, 0, 0)
            .to_zoned(TimeZone::UTC)
            .unwrap(),
    );
    times.sort();
    times
}

/// The decision table of the seed's policy: one line per item, newest first.
fn decision_table(times: Vec<Zoned>) -> String {
    decision_table_of(&seed_policy(), times)
}

/// The decision table of `policy` on 2026-11-01 23:50.
fn decision_table_of(policy: &Retention, times: Vec<Zoned>) -> String {
    let now = nightly(date(2026, 11, 1));
    let items = times.iter().map(|t| ((), t.clone())).collect();
    let verdicts = policy.apply(items, &now).unwrap();
    verdicts
        .iter()
        .map(|v| {
            format!(
                "{}  {:<6}  {}",
                v.time.strftime("%Y-%m-%d %H:%M"),
                if v.keep { "keep" } else { "remove" },
                v.reasons.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Issue 14, defect 8: the oldest snapshot is kept by the rules whose counts
/// are not used up (restic ≥ 0.17, rustic_core) and labelled `oldest <rule>`
/// as restic 0.17 labels it; restic 0.14 keeps exactly that one fewer.
#[test]
fn the_oldest_snapshot_is_kept_and_labelled_as_restic_0_17_does() {
    insta::assert_snapshot!("first_nine_days", decision_table(first_nine_days()));
    insta::assert_snapshot!("seed_nights", decision_table(synthetic_times()));

    let f = repo_with_snapshots(first_nine_days());
    let now = nightly(date(2026, 11, 1));
    let ours = f.repo.forget(&seed_policy(), &now, true).unwrap();
    let oldest = ours.verdicts.last().unwrap();
    assert!(oldest.keep);
    assert_eq!(
        oldest.reasons,
        ["oldest weekly", "oldest monthly", "oldest yearly"]
    );
    let kept: BTreeSet<String> = ours
        .verdicts
        .iter()
        .filter(|v| v.keep)
        .map(|v| v.item.id.clone())
        .collect();
    let restic_kept = restic_keeps(&f.repo_dir, &f.password_file);
    let version = restic(&f.repo_dir, &f.password_file, &["version"]);
    if version.contains("restic 0.14")
        || version.contains("restic 0.15")
        || version.contains("restic 0.16")
    {
        // The older rule: everything but the oldest, which only the new rule keeps.
        let mut expected = restic_kept.clone();
        expected.insert(oldest.item.id.clone());
        assert_eq!(kept, expected, "{version}");
    } else {
        assert_eq!(kept, restic_kept, "{version}");
    }
}

/// Four runs a day (00:50, 06:50, 12:50, 18:50) over the last three days of
/// October, for the hourly rule.
fn four_a_day() -> Vec<Zoned> {
    let mut times = Vec::new();
    for day in 29..=31 {
        for hour in [0, 6, 12, 18] {
            times.push(
                date(2026, 10, day)
                    .at(hour, 50, 0, 0)
                    .to_zoned(TimeZone::UTC)
                    .unwrap(),
            );
        }
    }
    times
}

/// The rules the seed's policy does not use, each pinned on its own and in a
/// mix: what a policy keeps must not drift between releases.
#[test]
fn every_rule_decides_as_pinned() {
    let last = Retention {
        last: Some(3),
        ..Default::default()
    };
    insta::assert_snapshot!("last_3", decision_table_of(&last, first_nine_days()));
    let hourly = Retention {
        hourly: Some(5),
        ..Default::default()
    };
    insta::assert_snapshot!("hourly_5", decision_table_of(&hourly, four_a_day()));
    let within = Retention {
        within: Some("10d".into()),
        ..Default::default()
    };
    insta::assert_snapshot!("within_10d", decision_table_of(&within, synthetic_times()));
    let mixed = Retention {
        last: Some(2),
        weekly: Some(2),
        yearly: Some(1),
        ..Default::default()
    };
    insta::assert_snapshot!(
        "last_2_weekly_2_yearly_1",
        decision_table_of(&mixed, synthetic_times())
    );
}
