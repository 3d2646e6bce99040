//! `holdfast status` as a Nagios/Icinga plugin, as JSON and as Prometheus
//! metrics: a fresh directory is UNKNOWN, a good night OK, an old backup
//! WARNING or CRITICAL by age, a failed night CRITICAL with its reason; the
//! newest backup comes from the archives even when the run records are gone;
//! the metrics file parses with prometheus_client's parser.

#[path = "support/listeners.rs"]
mod listeners;
mod support;

use std::process::Command;

use support::*;

/// The Nagios line's state word.
fn state(run: &Run) -> &str {
    run.stdout
        .strip_prefix("HOLDFAST ")
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("not a plugin line: {:?} {}", run.stdout, run.stderr))
}

#[test]
fn fresh_good_old_and_failed_nights() {
    let s = Sample::start();
    std::fs::create_dir(s.path("backups")).unwrap();

    // Nothing there yet.
    let run = s.holdfast(&["status", "--archives", "backups"]);
    assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
    assert_eq!(state(&run), "UNKNOWN");
    assert!(run.stdout.contains("no backup found"), "{}", run.stdout);

    // A good night.
    s.holdfast(&["backup", "--file", "backups/night-1.backup"])
        .ok();
    let run = s.holdfast(&[
        "status",
        "--archives",
        "backups",
        "--warn-age",
        "26h",
        "--crit-age",
        "3d",
    ]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(state(&run), "OK");
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
    assert!(run.stdout.contains("newest backup "), "{}", run.stdout);
    assert!(run.stdout.contains(";93600;259200 size="), "{}", run.stdout);
    assert!(run.stdout.contains("files+db+dwhdb"), "{}", run.stdout);

    // JSON.
    let run = s.holdfast(&["status", "--archives", "backups", "--json"]);
    assert_eq!(run.code, 0);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["state"], "OK");
    assert_eq!(doc["kind"], "archives");
    let newest = &doc["newest_backup"];
    assert!(newest["location"]
        .as_str()
        .unwrap()
        .ends_with("night-1.backup"));
    assert!(newest["size_bytes"].as_u64().unwrap() > 0);
    assert!(newest["duration_seconds"].as_f64().unwrap() > 0.0, "{doc}");
    assert_eq!(newest["profile"], "ovirt-engine");

    // Old: by age, after two seconds.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let run = s.holdfast(&["status", "--archives", "backups", "--warn-age", "1s"]);
    assert_eq!((run.code, state(&run)), (1, "WARNING"), "{}", run.stdout);
    let run = s.holdfast(&[
        "status",
        "--archives",
        "backups",
        "--warn-age",
        "1s",
        "--crit-age",
        "1s",
    ]);
    assert_eq!((run.code, state(&run)), (2, "CRITICAL"), "{}", run.stdout);

    // A failed night after it: CRITICAL with the reason, whatever the age.
    s.cluster
        .execute(
            "postgres",
            "ALTER ROLE engine PASSWORD 'not-the-configured-one'",
        )
        .unwrap();
    let failed = s.holdfast(&["backup", "--file", "backups/night-2.backup"]);
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    let run = s.holdfast(&["status", "--archives", "backups", "--warn-age", "3d"]);
    assert_eq!((run.code, state(&run)), (2, "CRITICAL"), "{}", run.stdout);
    assert!(
        run.stdout.contains("last backup failed at "),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("password authentication failed"),
        "{}",
        run.stdout
    );

    // The profile's default backup directory under the install root.
    let run = s.holdfast(&["status", "--profile", "ovirt-engine"]);
    assert_eq!((run.code, state(&run)), (3, "UNKNOWN"), "{}", run.stdout);

    // The archive is the truth: without the run records, the good night is
    // still there (and the failure, which left no archive, is not).
    std::fs::remove_dir_all(s.path("state")).unwrap();
    let run = s.holdfast(&["status", "--archives", "backups", "--warn-age", "3d"]);
    assert_eq!((run.code, state(&run)), (0, "OK"), "{}", run.stdout);
}

#[test]
fn deep_verify_and_prometheus_metrics() {
    let s = Sample::start();
    std::fs::create_dir(s.path("backups")).unwrap();
    s.holdfast(&["backup", "--file", "backups/night.backup"])
        .ok();
    s.holdfast(&["verify", "--deep", "backups/night.backup"])
        .ok();
    let prom = s.path("holdfast.prom");
    let run = s.holdfast(&[
        "status",
        "--archives",
        "backups",
        "--json",
        "--prometheus",
        prom.to_str().unwrap(),
        "--warn-age",
        "1h",
    ]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let deep = &doc["last_deep_verify"];
    assert_eq!(deep["outcome"], "success", "{doc}");
    assert!(deep["tables_compared"].as_u64().unwrap() > 0, "{doc}");
    assert!(doc["last_verify"].is_null(), "{doc}");
    assert_eq!(doc["warn_age_seconds"], 3600);

    // prometheus_client's own parser reads the file.
    let parse = r#"
import sys, json
from prometheus_client.parser import text_string_to_metric_families
out = {}
for fam in text_string_to_metric_families(open(sys.argv[1]).read()):
    for s in fam.samples:
        out[s.name] = {"value": s.value, "labels": s.labels, "type": fam.type}
print(json.dumps(out))
"#;
    let o = Command::new(listeners::tools_python())
        .args(["-c", parse])
        .arg(&prom)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let value = |name: &str| {
        m[name]["value"]
            .as_f64()
            .unwrap_or_else(|| panic!("{name}: {m}"))
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let success = value("holdfast_last_success_timestamp_seconds");
    assert!(now - success < 600.0 && now >= success, "{m}");
    assert_eq!(value("holdfast_last_failure_timestamp_seconds"), 0.0);
    assert!(value("holdfast_backup_size_bytes") > 0.0);
    assert!(value("holdfast_backup_age_seconds") >= 0.0);
    assert_eq!(value("holdfast_last_deep_verify_success"), 1.0);
    assert_eq!(value("holdfast_notify_failures_total"), 0.0);
    assert_eq!(m["holdfast_notify_failures_total"]["type"], "counter");
    assert_eq!(value("holdfast_status"), 0.0);
    let labels = &m["holdfast_backup_size_bytes"]["labels"];
    assert_eq!(labels["profile"], "ovirt-engine");
    assert!(labels["target"].as_str().unwrap().ends_with("/backups"));
}

#[test]
fn a_repository_by_its_newest_snapshot() {
    let s = Sample::start();
    std::fs::write(s.path("repo.pw"), "status test repository\n").unwrap();
    let repo = s.path("repo");
    let repo = repo.to_str().unwrap();
    let pw = ["--password-file", "repo.pw"];
    let run = s.holdfast(&[&["repo", "--repo", repo, "init"][..], &pw[..]].concat());
    run.ok();
    let run = s.holdfast(&["status", "--repo", repo, "--password-file", "repo.pw"]);
    assert_eq!((run.code, state(&run)), (3, "UNKNOWN"), "{}", run.stdout);
    s.holdfast(&[&["repo", "--repo", repo, "backup"][..], &pw[..]].concat())
        .ok();
    let run = s.holdfast(&[
        "status",
        "--repo",
        repo,
        "--password-file",
        "repo.pw",
        "--json",
    ]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["kind"], "repository");
    assert_eq!(doc["newest_backup"]["profile"], "ovirt-engine");
    assert!(doc["newest_backup"]["size_bytes"].as_u64().unwrap() > 0);

    // A wrong password: UNKNOWN with the reason.
    std::fs::write(s.path("bad.pw"), "wrong\n").unwrap();
    let run = s.holdfast(&["status", "--repo", repo, "--password-file", "bad.pw"]);
    assert_eq!((run.code, state(&run)), (3, "UNKNOWN"), "{}", run.stdout);
}
