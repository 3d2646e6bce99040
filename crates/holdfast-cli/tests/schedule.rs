//! `holdfast schedule`: the units pass `systemd-analyze verify`, the cron
//! lines are five time fields, a user and a command sh can read, and the
//! commands both carry run: the backup service's `ExecStart=` lines, split as
//! systemd splits them, back a real cluster up into an archive directory and a
//! repository, and the weekly and monthly jobs verify what they wrote. A
//! different existing unit is refused without `--force`, nothing written.
//! `holdfast notify` tells a real HTTP receiver why a job failed.

#[path = "support/listeners.rs"]
mod listeners;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

fn holdfast(args: &[&str]) -> Run {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    support::run(env!("CARGO_BIN_EXE_holdfast"), &args, &std::env::temp_dir())
}

/// The words of an `ExecStart=` value as systemd runs them: specifiers
/// (`%%` is the only one the generator writes), then the words unquoted,
/// then `$$` in each word.
fn exec_start_argv(value: &str) -> Vec<String> {
    assert!(
        !value.replace("%%", "").contains('%'),
        "an unescaped specifier in {value}"
    );
    let line = value.replace("%%", "%");
    shlex::split(&line)
        .unwrap_or_else(|| panic!("unbalanced quotes in {value}"))
        .into_iter()
        .map(|w| w.replace("$$", "$"))
        .collect()
}

/// The `ExecStart=` lines of a unit file, split.
fn exec_starts(unit: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(unit)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("ExecStart="))
        .map(exec_start_argv)
        .collect()
}

/// Run argv as the unit would, with the environment a test cluster needs
/// (the ovirt-engine package is not installed here).
fn run_argv(argv: &[String], state: &Path) -> Run {
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .env("HOLDFAST_INSTALLED_VERSION", VERSION)
        .env("HOLDFAST_STATE_DIR", state)
        .env_remove("HOLDFAST_INSTALL_ROOT")
        .output()
        .expect("run ExecStart");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `systemd-analyze verify` on the units of `dir`; the notification
/// template is verified as an instance (a template itself cannot be).
fn systemd_analyze_verify(dir: &Path) {
    let mut units: Vec<PathBuf> = Vec::new();
    for name in files(dir) {
        let path = dir.join(&name);
        if name.ends_with("@.service") {
            let instance = dir.join(name.replace("@.", "@holdfast-test-backup."));
            std::fs::copy(&path, &instance).unwrap();
            units.push(instance);
        } else {
            units.push(path);
        }
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&units)
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify {units:?}: {}\n{stderr}",
        out.status
    );
}

#[test]
fn units_pass_systemd_analyze_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let units = tmp.path().join("units");
    let archives = tmp.path().join("archives");
    std::fs::create_dir(&archives).unwrap();
    let log = tmp.path().join("log");
    let common = [
        "schedule",
        "--profile",
        "ovirt-engine",
        "--unit-dir",
        s(&units),
        "--log-dir",
        s(&log),
        "--notify",
        "https://hooks.example/holdfast?token=a%b$c",
    ];
    let mut args = common.to_vec();
    args.extend(["--name", "arch", "--archives", s(&archives)]);
    holdfast(&args).ok();
    let mut args = common.to_vec();
    args.extend([
        "--name",
        "repo",
        "--repo",
        "/store/env repo",
        "--password-file",
        "/etc/holdfast/repo-password",
        "--time",
        "02:15",
    ]);
    let run = holdfast(&args);
    run.ok();
    assert!(
        run.stdout.contains("systemctl daemon-reload && systemctl enable --now holdfast-repo-backup.timer holdfast-repo-verify.timer holdfast-repo-check.timer"),
        "{}",
        run.stdout
    );
    assert_eq!(
        files(&units),
        [
            "holdfast-arch-backup.service",
            "holdfast-arch-backup.timer",
            "holdfast-arch-notify-failure@.service",
            "holdfast-arch-verify.service",
            "holdfast-arch-verify.timer",
            "holdfast-repo-backup.service",
            "holdfast-repo-backup.timer",
            "holdfast-repo-check.service",
            "holdfast-repo-check.timer",
            "holdfast-repo-notify-failure@.service",
            "holdfast-repo-verify.service",
            "holdfast-repo-verify.timer",
        ]
    );
    assert!(log.is_dir());
    systemd_analyze_verify(&units);
}

/// A cron time field: `*` or a number in range.
fn cron_field(field: &str, max: u32) -> bool {
    field == "*" || field.parse::<u32>().is_ok_and(|n| n <= max)
}

/// The command of each job line (comments and variable settings left out),
/// after checking its five time fields and, in /etc/cron.d syntax, the user.
fn cron_commands(crontab: &str, with_user: bool) -> Vec<String> {
    let mut commands = Vec::new();
    for line in crontab.lines() {
        if line.starts_with('#') || line.is_empty() || line.split(' ').next().unwrap().contains('=')
        {
            continue;
        }
        let fields: Vec<&str> = line.splitn(if with_user { 7 } else { 6 }, ' ').collect();
        assert!(cron_field(fields[0], 59), "minute of {line}");
        assert!(cron_field(fields[1], 23), "hour of {line}");
        assert!(cron_field(fields[2], 31), "day of {line}");
        assert!(cron_field(fields[3], 12), "month of {line}");
        assert!(cron_field(fields[4], 7), "weekday of {line}");
        if with_user {
            assert_eq!(fields[5], "root", "{line}");
        }
        let command = fields.last().unwrap();
        // cron: an unescaped % ends the command; \% is a %.
        assert!(
            !command.replace("\\%", "").contains('%'),
            "unescaped % in {line}"
        );
        let command = command.replace("\\%", "%");
        let check = Command::new("sh")
            .args(["-n", "-c", &command])
            .output()
            .unwrap();
        assert!(check.status.success(), "sh -n: {command}: {check:?}");
        commands.push(command);
    }
    commands
}

#[test]
fn cron_lines_parse() {
    let run = holdfast(&[
        "schedule",
        "--dry-run",
        "--cron",
        "--profile",
        "ovirt-engine",
        "--repo",
        "/store/env.repo",
        "--password-file",
        "/etc/holdfast/it's 100%",
        "--notify",
        "mailto:root@localhost",
    ]);
    run.ok();
    assert!(run
        .stdout
        .starts_with("# /etc/cron.d/holdfast-ovirt-engine\n"));
    let commands = cron_commands(&run.stdout, true);
    assert_eq!(commands.len(), 3, "{}", run.stdout);
    assert!(commands[0].contains(" || "), "{}", commands[0]);
    let run = holdfast(&[
        "schedule",
        "--dry-run",
        "--cron",
        "--user",
        "--profile",
        "ovirt-engine",
        "--archives",
        "/var/backups",
    ]);
    run.ok();
    assert_eq!(cron_commands(&run.stdout, false).len(), 2);
}

#[test]
fn values_that_cannot_be_written_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    for (option, value) in [("--archives", "/var/a\nb"), ("--notify", "https://x/\\%y")] {
        let mut args = vec![
            "schedule",
            "--profile",
            "ovirt-engine",
            "--unit-dir",
            s(tmp.path()),
        ];
        if option != "--archives" {
            args.extend(["--archives", "/var/backups"]);
        }
        args.extend([option, value]);
        let run = holdfast(&args);
        assert_eq!(run.code, 2, "{option}: {}{}", run.stdout, run.stderr);
        assert!(run.stderr.contains(option), "{}", run.stderr);
    }
    assert!(files(tmp.path()).is_empty());
}

#[test]
fn an_existing_different_unit_is_refused_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    let units = tmp.path().join("units");
    let log = tmp.path().join("log");
    let args = [
        "schedule",
        "--profile",
        "ovirt-engine",
        "--archives",
        s(tmp.path()),
        "--unit-dir",
        s(&units),
        "--log-dir",
        s(&log),
    ];
    holdfast(&args).ok();
    // The same again: nothing differs, nothing refused.
    holdfast(&args).ok();

    let service = units.join("holdfast-ovirt-engine-backup.service");
    std::fs::write(&service, "[Service]\nExecStart=/bin/true\n").unwrap();
    let timer = units.join("holdfast-ovirt-engine-verify.timer");
    std::fs::remove_file(&timer).unwrap();
    let run = holdfast(&args);
    run.fails_with("holdfast-ovirt-engine-backup.service exists and differs");
    assert_eq!(run.code, 2);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert_eq!(
        std::fs::read_to_string(&service).unwrap(),
        "[Service]\nExecStart=/bin/true\n"
    );
    assert!(
        !timer.exists(),
        "nothing is written when one file is refused"
    );

    let mut forced = args.to_vec();
    forced.push("--force");
    holdfast(&forced).ok();
    assert!(std::fs::read_to_string(&service)
        .unwrap()
        .contains("Type=oneshot"));
    assert!(timer.exists());
}

#[test]
fn dry_run_output() {
    for (name, extra) in [
        (
            "archives",
            vec![
                "--archives",
                "/var/lib/holdfast/archives",
                "--notify",
                "mailto:root@localhost",
            ],
        ),
        (
            "repo",
            vec![
                "--repo",
                "/store/backups/engine.repo",
                "--password-file",
                "/etc/holdfast/repo-password",
                "--time",
                "01:05",
            ],
        ),
        (
            "cron",
            vec![
                "--cron",
                "--archives",
                "/var/lib/holdfast/archives",
                "--notify",
                "hc+https://hc-ping.com/0f3a",
            ],
        ),
    ] {
        let mut args = vec![
            "schedule",
            "--dry-run",
            "--profile",
            "ovirt-engine",
            "--binary",
            "/usr/bin/holdfast",
        ];
        args.extend(extra);
        let run = holdfast(&args);
        run.ok();
        insta::assert_snapshot!(format!("schedule_dry_run_{name}"), run.stdout);
    }
}

/// Split the repository's password file and the archive directory's name so
/// that quoting is exercised: a space, `%`, `$` and a quote.
const AWKWARD: &str = "night's 100% $HOME";

#[test]
fn the_scheduled_commands_run() {
    let sample = Sample::start();
    let tmp = sample.dir.path();
    let state = tmp.join("state");
    let archives = tmp.join(format!("archives {AWKWARD}"));
    std::fs::create_dir(&archives).unwrap();
    let units = tmp.join("units");
    let log = tmp.join("log");
    let bin = env!("CARGO_BIN_EXE_holdfast");
    let hook = listeners::HttpRecorder::start();
    let hook_url = hook.url("/hook");
    holdfast(&[
        "schedule",
        "--profile",
        "ovirt-engine",
        "--install-root",
        s(&sample.root()),
        "--archives",
        s(&archives),
        "--unit-dir",
        s(&units),
        "--log-dir",
        s(&log),
        "--binary",
        bin,
        "--notify",
        &hook_url,
    ])
    .ok();

    // The nightly service: backup, then retention.
    let steps = exec_starts(&units.join("holdfast-ovirt-engine-backup.service"));
    assert_eq!(steps.len(), 2);
    for argv in &steps {
        assert_eq!(argv[0], "/usr/bin/flock", "{argv:?}");
        run_argv(argv, &state).ok();
    }
    let made = files(&archives);
    assert_eq!(made.len(), 1, "{made:?}");
    assert!(
        made[0].starts_with("ovirt-engine-") && made[0].ends_with("Z.backup"),
        "{made:?}"
    );
    let backup_log = std::fs::read_to_string(log.join("holdfast-ovirt-engine-backup.log")).unwrap();
    assert!(
        backup_log
            .lines()
            .last()
            .unwrap()
            .contains("Outcome: success (exit 0)"),
        "{backup_log}"
    );

    // The weekly deep verify finds that archive.
    for argv in exec_starts(&units.join("holdfast-ovirt-engine-verify.service")) {
        run_argv(&argv, &state).ok();
    }
    let verify_log = std::fs::read_to_string(log.join("holdfast-ovirt-engine-verify.log")).unwrap();
    assert!(verify_log.contains(&made[0]), "{verify_log}");
    assert!(verify_log
        .lines()
        .last()
        .unwrap()
        .contains("Outcome: success"));

    // The failure template: systemd gives it the failed unit as %i.
    let template =
        std::fs::read_to_string(units.join("holdfast-ovirt-engine-notify-failure@.service"))
            .unwrap();
    let exec = template
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let exec = exec.replace(" %i", " holdfast-ovirt-engine-backup");
    std::fs::write(
        log.join("holdfast-ovirt-engine-backup.log"),
        "2026-12-07 23:30:04 4242: Outcome: failed (exit 1): connect to engine: refused\n",
    )
    .unwrap();
    let out = Command::new(&exec_start_argv(&exec)[0])
        .args(&exec_start_argv(&exec)[1..])
        .env("MONITOR_SERVICE_RESULT", "exit-code")
        .env("MONITOR_EXIT_STATUS", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let sent = hook.to("/hook");
    let failure: serde_json::Value =
        serde_json::from_str(&sent.last().expect("a webhook").body).unwrap();
    assert_eq!(failure["outcome"], "failed");
    let reason = failure["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("holdfast-ovirt-engine-backup failed (exit-code, 1)")
            && reason.contains("connect to engine: refused"),
        "{reason}"
    );

    // The same plan as cron lines: the nightly line runs under sh.
    let run = holdfast(&[
        "schedule",
        "--dry-run",
        "--cron",
        "--profile",
        "ovirt-engine",
        "--install-root",
        s(&sample.root()),
        "--archives",
        s(&archives),
        "--log-dir",
        s(&log),
        "--binary",
        bin,
    ]);
    run.ok();
    let nightly = &cron_commands(&run.stdout, true)[0];
    std::thread::sleep(std::time::Duration::from_secs(1));
    let out = Command::new("sh")
        .args(["-c", nightly])
        .env("HOLDFAST_INSTALLED_VERSION", VERSION)
        .env("HOLDFAST_STATE_DIR", &state)
        .output()
        .unwrap();
    assert!(out.status.success(), "{nightly}: {out:?}");
    assert_eq!(files(&archives).len(), 2, "{:?}", files(&archives));

    // A repository: nightly backup and forget, the weekly test restore, the
    // monthly read of a twelfth of the packs.
    let repo = tmp.join(format!("repo {AWKWARD}"));
    let password = tmp.join(format!("password {AWKWARD}"));
    std::fs::write(&password, "correct horse\n").unwrap();
    sample
        .holdfast(&[
            "repo",
            "init",
            "--repo",
            s(&repo),
            "--password-file",
            s(&password),
        ])
        .ok();
    let repo_units = tmp.join("repo-units");
    holdfast(&[
        "schedule",
        "--profile",
        "ovirt-engine",
        "--install-root",
        s(&sample.root()),
        "--repo",
        s(&repo),
        "--password-file",
        s(&password),
        "--unit-dir",
        s(&repo_units),
        "--log-dir",
        s(&log),
        "--binary",
        bin,
    ])
    .ok();
    for job in ["backup", "verify", "check"] {
        for argv in exec_starts(&repo_units.join(format!("holdfast-ovirt-engine-{job}.service"))) {
            let run = run_argv(&argv, &state);
            run.ok();
            if job == "check" {
                assert!(run.stdout.contains("/12"), "{}", run.stdout);
            }
        }
    }
    let snapshots = sample.holdfast(&[
        "repo",
        "snapshots",
        "--repo",
        s(&repo),
        "--password-file",
        s(&password),
    ]);
    snapshots.ok();
    assert!(
        snapshots.stdout.contains("ovirt-engine"),
        "{}",
        snapshots.stdout
    );
    let verify_log = std::fs::read_to_string(log.join("holdfast-ovirt-engine-verify.log")).unwrap();
    assert!(verify_log.contains("latest.backup"), "{verify_log}");
    assert!(verify_log
        .lines()
        .last()
        .unwrap()
        .contains("Outcome: success"));
}
