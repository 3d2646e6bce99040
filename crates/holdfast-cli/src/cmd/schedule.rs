//! `holdfast schedule`: write (or with `--dry-run` print) the systemd units or
//! the crontab that run the seed's plan unattended ([`holdfast::schedule`]):
//! a nightly backup and retention, a weekly deep verify, a monthly partial
//! read of a repository's packs.
//!
//! Files are written whole ([`holdfast::durable::replace`]) and only when
//! every one of them is new or already the same: a different existing file
//! is left alone, and nothing is written, unless `--force`.

use std::path::{Path, PathBuf};

use clap::{ArgGroup, Args};
use holdfast::profile::Profile;
use holdfast::schedule::{cron, systemd, Plan, Target, TimeOfDay};

use crate::shared::absolute;

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["archives", "repo"])))]
pub struct ScheduleArgs {
    /// Application profile the jobs back up: a built-in name or a TOML file.
    #[arg(long, value_name = "NAME|FILE")]
    pub profile: String,
    /// Root of the application's files, passed to every job.
    #[arg(long, default_value = "/", value_name = "DIR")]
    pub install_root: PathBuf,
    /// Nightly `holdfast backup` into this directory
    /// (NAME-<UTC time>.backup), then `holdfast prune-archives`.
    #[arg(long, value_name = "DIR")]
    pub archives: Option<PathBuf>,
    /// Nightly `holdfast repo backup` into this repository, then
    /// `holdfast repo forget --prune`.
    #[arg(long, value_name = "LOCATION", requires = "password_file")]
    pub repo: Option<String>,
    /// File whose first line is the repository password (required with
    /// --repo: the jobs cannot ask).
    #[arg(long, value_name = "FILE", requires = "repo")]
    pub password_file: Option<PathBuf>,
    /// When the nightly backup starts (local time).
    #[arg(long, default_value = "23:30", value_name = "HH:MM", value_parser = parse_time)]
    pub time: TimeOfDay,
    /// Passed to the backup and verify commands, and told when a job fails
    /// (OnFailure= or the cron line's ||); repeatable.
    #[arg(long = "notify", value_name = "URL")]
    pub notify: Vec<String>,
    /// The name in the units' names (holdfast-NAME-backup.service, ...)
    /// [default: the profile's name].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Where the units are written [default: /etc/systemd/system, with
    /// --user ~/.config/systemd/user].
    #[arg(long, value_name = "DIR")]
    pub unit_dir: Option<PathBuf>,
    /// Crontab lines instead of systemd units, written to
    /// /etc/cron.d/holdfast-NAME (with --user only printed, --dry-run, for
    /// crontab -e).
    #[arg(long)]
    pub cron: bool,
    /// Units for the user's systemd instance (systemctl --user) or lines for
    /// the user's crontab, instead of the system's.
    #[arg(long)]
    pub user: bool,
    /// The directory of the jobs' log files (created when the units are
    /// written, as the --archives directory is)
    /// [default: /var/log/holdfast, with --user ~/.local/state/holdfast/log].
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    /// The holdfast executable the jobs run [default: this one].
    #[arg(long, value_name = "FILE")]
    pub binary: Option<PathBuf>,
    /// Print the files to stdout instead of writing them.
    #[arg(long)]
    pub dry_run: bool,
    /// Replace existing files that differ.
    #[arg(long)]
    pub force: bool,
}

fn parse_time(v: &str) -> Result<TimeOfDay, String> {
    TimeOfDay::parse(v).map_err(|e| e.to_string())
}

/// A file to write: where, and what.
struct Output {
    path: PathBuf,
    text: String,
}

pub fn run(a: ScheduleArgs) -> holdfast::Result<()> {
    let plan = plan(&a)?;
    plan.check()?;
    let outputs = outputs(&a, &plan)?;
    if a.dry_run {
        for (i, o) in outputs.iter().enumerate() {
            if i > 0 {
                println!();
            }
            println!("# {}", o.path.display());
            print!("{}", o.text);
        }
        return Ok(());
    }
    if a.cron && a.user {
        return Err(holdfast::Error::usage(
            "a user's crontab is edited with crontab -e: print the lines with --dry-run and add them there",
        ));
    }
    // Every file is checked before the first is written.
    for o in &outputs {
        if let Ok(existing) = std::fs::read(&o.path) {
            if existing != o.text.as_bytes() && !a.force {
                return Err(holdfast::Error::usage(format!(
                    "{} exists and differs from what would be written; nothing written (pass --force to replace it)",
                    o.path.display()
                )));
            }
        }
    }
    create_dir(&plan.log_dir, 0o750)?;
    if let Target::Archives(dir) = &plan.target {
        // Archives hold the application's database passwords.
        create_dir(dir, 0o700)?;
    }
    for o in &outputs {
        if let Some(dir) = o.path.parent() {
            create_dir(dir, 0o755)?;
        }
        holdfast::durable::replace(&o.path, o.text.as_bytes(), 0o644, None)?;
        println!("Wrote {}", o.path.display());
    }
    if !a.cron {
        let timers: Vec<String> = outputs
            .iter()
            .filter_map(|o| o.path.file_name()?.to_str())
            .filter(|n| n.ends_with(".timer"))
            .map(str::to_string)
            .collect();
        let ctl = if a.user {
            "systemctl --user"
        } else {
            "systemctl"
        };
        println!(
            "Enable them: {ctl} daemon-reload && {ctl} enable --now {}",
            timers.join(" ")
        );
    }
    Ok(())
}

/// Create `dir` (and its parents) with `mode` where it is missing.
fn create_dir(dir: &Path, mode: u32) -> holdfast::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(|e| holdfast::Error::io_path("create directory", dir, e))
}

/// The plan the options describe, paths made absolute.
fn plan(a: &ScheduleArgs) -> holdfast::Result<Plan> {
    // A typo in the profile is found now, not at 23:30.
    let profile = Profile::load(&a.profile)?;
    let target = match (&a.archives, &a.repo, &a.password_file) {
        (Some(dir), _, _) => Target::Archives(absolute(dir)),
        (None, Some(location), Some(password_file)) => Target::Repo {
            location: location.clone(),
            password_file: absolute(password_file),
        },
        _ => unreachable!("clap requires --archives, or --repo with --password-file"),
    };
    let binary = match &a.binary {
        Some(b) => absolute(b),
        None => std::env::current_exe()
            .map_err(|e| holdfast::Error::io("find the holdfast executable", e))?,
    };
    let log_dir = match (&a.log_dir, a.user) {
        (Some(dir), _) => absolute(dir),
        (None, false) => PathBuf::from("/var/log/holdfast"),
        (None, true) => user_dir("XDG_STATE_HOME", ".local/state")?.join("holdfast/log"),
    };
    let lock_dir = if a.user {
        std::env::var_os("XDG_RUNTIME_DIR")
            .filter(|d| !d.is_empty())
            .map_or_else(std::env::temp_dir, PathBuf::from)
    } else {
        PathBuf::from("/run/lock")
    };
    Ok(Plan {
        name: a.name.clone().unwrap_or_else(|| profile.name.clone()),
        binary,
        // A profile file is named by its absolute path: the jobs run in /.
        profile: match &profile.source {
            Some(file) => file.display().to_string(),
            None => a.profile.clone(),
        },
        install_root: absolute(&a.install_root),
        target,
        time: a.time,
        notify: a.notify.clone(),
        log_dir,
        lock_dir,
        user: a.user,
    })
}

/// `$VAR`, else `$HOME/<fallback>`.
fn user_dir(var: &str, fallback: &str) -> holdfast::Result<PathBuf> {
    if let Some(dir) = std::env::var_os(var).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(fallback)),
        None => Err(holdfast::Error::usage(format!(
            "neither {var} nor HOME is set; pass the directories with --unit-dir and --log-dir"
        ))),
    }
}

/// The files of the plan, where they go.
fn outputs(a: &ScheduleArgs, plan: &Plan) -> holdfast::Result<Vec<Output>> {
    if a.cron {
        let path = if a.user {
            PathBuf::from("crontab")
        } else {
            PathBuf::from(format!("/etc/cron.d/holdfast-{}", plan.name))
        };
        return Ok(vec![Output {
            path,
            text: cron::crontab(plan),
        }]);
    }
    let dir = match (&a.unit_dir, a.user) {
        (Some(dir), _) => absolute(dir),
        (None, false) => PathBuf::from("/etc/systemd/system"),
        (None, true) => user_dir("XDG_CONFIG_HOME", ".config")?.join("systemd/user"),
    };
    Ok(systemd::units(plan)
        .into_iter()
        .map(|u| Output {
            path: dir.join(u.name),
            text: u.text,
        })
        .collect())
}
