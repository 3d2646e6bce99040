//! The unattended plan of one environment, as data: which holdfast commands
//! run nightly, weekly and monthly ([`Plan::jobs`]), and their text as systemd
//! units ([`systemd`]) or cron lines ([`cron`]). Nothing here runs a command
//! or writes a file; `holdfast schedule` writes what this returns.
//!
//! The plan is the seed's: a nightly backup followed by retention with the
//! policy [`KEEP_POLICY`], a weekly deep verify (a real test restore into a
//! throwaway cluster) and, for a repository, a monthly read of a twelfth of
//! its packs. Every step runs under one `flock` per plan, so two jobs of the
//! same plan never overlap: a job waits up to [`LOCK_WAIT_SECONDS`] for the
//! one before it, then fails.

pub mod cron;
mod quote;
pub mod systemd;

use std::path::PathBuf;

use crate::{Error, Result};

/// The seed's retention (attic's `--keep-daily 7 --keep-weekly 4
/// --keep-monthly 12 --keep-yearly 3`), as `holdfast prune-archives` and
/// `holdfast repo forget` take it.
pub const KEEP_POLICY: [&str; 8] = [
    "--keep-daily",
    "7",
    "--keep-weekly",
    "4",
    "--keep-monthly",
    "12",
    "--keep-yearly",
    "3",
];

/// How long a job waits for the plan's lock before it fails: a deep verify
/// of a large environment may hold it for hours.
pub const LOCK_WAIT_SECONDS: u32 = 6 * 3600;

/// `flock(1)` of util-linux, and the shell of the steps that need one.
pub const FLOCK: &str = "/usr/bin/flock";
pub const SH: &str = "/bin/sh";

/// Where the backups go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A directory of archive files (`holdfast backup`).
    Archives(PathBuf),
    /// A repository (`holdfast repo backup`) and its password file.
    Repo {
        location: String,
        password_file: PathBuf,
    },
}

/// A time of day, `HH:MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeOfDay {
    pub hour: u8,
    pub minute: u8,
}

impl TimeOfDay {
    pub fn parse(text: &str) -> Result<TimeOfDay> {
        let bad = || {
            Error::usage(format!(
                "--time '{text}' is not a time of day; give HH:MM, e.g. 23:30"
            ))
        };
        let (h, m) = text.split_once(':').ok_or_else(bad)?;
        let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
        if !two_digits(h) || !two_digits(m) {
            return Err(bad());
        }
        let (hour, minute) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if hour > 23 || minute > 59 {
            return Err(bad());
        }
        Ok(TimeOfDay { hour, minute })
    }
}

/// When a job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Every day at this time.
    Nightly(TimeOfDay),
    /// Sundays at 04:00, outside the usual backup window.
    Weekly,
    /// The first of each month at 05:00.
    Monthly,
}

impl When {
    /// systemd's `OnCalendar=` value.
    pub fn on_calendar(self) -> String {
        match self {
            When::Nightly(t) => format!("*-*-* {:02}:{:02}:00", t.hour, t.minute),
            When::Weekly => "Sun *-*-* 04:00:00".into(),
            When::Monthly => "*-*-01 05:00:00".into(),
        }
    }

    /// cron's five fields: minute, hour, day of month, month, day of week.
    pub fn cron_fields(self) -> String {
        match self {
            When::Nightly(t) => format!("{} {} * * *", t.minute, t.hour),
            When::Weekly => "0 4 * * 0".into(),
            When::Monthly => "0 5 1 * *".into(),
        }
    }

    /// A night may start a little late so that many machines do not hit
    /// one repository server at the same second; cron has no such setting.
    pub fn randomized_delay(self) -> &'static str {
        match self {
            When::Nightly(_) => "10min",
            When::Weekly | When::Monthly => "30min",
        }
    }
}

/// One command of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A program and its arguments, run as they are.
    Exec(Vec<String>),
    /// A script for `/bin/sh -c`, for what needs the shell at run time (the
    /// date in an archive's name, the newest archive, a temporary directory).
    Shell(String),
}

impl Step {
    /// The program and arguments: a script is run by `/bin/sh -c`.
    pub fn argv(&self) -> Vec<String> {
        match self {
            Step::Exec(argv) => argv.clone(),
            Step::Shell(script) => vec![SH.into(), "-c".into(), script.clone()],
        }
    }
}

/// A unit of work with its own timer (or cron line): its steps run one after
/// another, and a failed step ends the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// `backup`, `verify` or `check`: the last part of the unit's name.
    pub name: &'static str,
    pub description: String,
    pub when: When,
    pub steps: Vec<Step>,
}

/// Everything the units of one environment are made from. Paths are absolute.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The name in the units' and files' names (`holdfast-<name>-backup`).
    pub name: String,
    /// The holdfast executable the jobs run.
    pub binary: PathBuf,
    pub profile: String,
    pub install_root: PathBuf,
    pub target: Target,
    pub time: TimeOfDay,
    /// `--notify` targets, passed to the holdfast commands that take them
    /// and to the failure notification.
    pub notify: Vec<String>,
    pub log_dir: PathBuf,
    /// The directory of the plan's lock file (`/run/lock`).
    pub lock_dir: PathBuf,
    /// systemd user units and a user crontab, instead of the system's.
    pub user: bool,
}

impl Plan {
    /// Refuse a plan whose values cannot be written into a unit or a cron
    /// line and read back the same: control characters (a newline would end
    /// the setting), names a unit or cron file cannot carry, relative paths. `%` and `$` are fine: they are escaped.
    pub fn check(&self) -> Result<()> {
        if self.name.is_empty()
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b))
        {
            // Debian's cron skips /etc/cron.d files whose names hold a dot.
            return Err(Error::usage(format!(
                "the schedule name '{}' can hold only letters, digits, '_' and '-' (it names the units and the cron file); pass --name",
                self.name
            )));
        }
        let mut paths = vec![
            ("--binary", &self.binary),
            ("--install-root", &self.install_root),
            ("--log-dir", &self.log_dir),
            ("the lock directory", &self.lock_dir),
        ];
        match &self.target {
            Target::Archives(dir) => paths.push(("--archives", dir)),
            Target::Repo { password_file, .. } => paths.push(("--password-file", password_file)),
        }
        for (option, path) in paths {
            let text = path.to_str().ok_or_else(|| {
                Error::usage(format!("{option} {}: not valid UTF-8", path.display()))
            })?;
            if !path.is_absolute() {
                return Err(Error::usage(format!(
                    "{option} {text}: give an absolute path"
                )));
            }
            quote::check_value(option, text)?;
        }
        quote::check_value("--profile", &self.profile)?;
        if let Target::Repo { location, .. } = &self.target {
            quote::check_value("--repo", location)?;
        }
        for url in &self.notify {
            quote::check_value("--notify", url)?;
        }
        Ok(())
    }

    /// The jobs: nightly backup then retention, weekly deep verify, and for a
    /// repository the monthly partial read of its packs.
    pub fn jobs(&self) -> Vec<Job> {
        let mut jobs = vec![self.backup_job(), self.verify_job()];
        if let Target::Repo { .. } = self.target {
            jobs.push(self.check_job());
        }
        jobs
    }

    /// `<log_dir>/holdfast-<name>-<job>.log`: named as the unit is, so
    /// that the failure notification finds it from the unit's name.
    pub fn log_file(&self, job: &str) -> PathBuf {
        self.log_dir.join(format!("{}.log", self.unit_stem(job)))
    }

    /// The lock every step of the plan holds.
    pub fn lock_file(&self) -> PathBuf {
        self.lock_dir
            .join(format!("holdfast-schedule-{}.lock", self.name))
    }

    /// `holdfast-<name>-<job>`: the unit's name without its suffix.
    pub fn unit_stem(&self, job: &str) -> String {
        format!("holdfast-{}-{job}", self.name)
    }

    /// Run `argv` holding the plan's lock.
    pub fn locked(&self, argv: Vec<String>) -> Vec<String> {
        let mut locked = vec![
            FLOCK.to_string(),
            "--wait".into(),
            LOCK_WAIT_SECONDS.to_string(),
            self.lock_file().display().to_string(),
        ];
        locked.extend(argv);
        locked
    }

    fn bin(&self) -> String {
        self.binary.display().to_string()
    }

    /// `--profile P --install-root R --log L [--notify U]...`
    fn env_args(&self, log: &std::path::Path) -> Vec<String> {
        let mut args = vec![
            "--profile".into(),
            self.profile.clone(),
            "--install-root".into(),
            self.install_root.display().to_string(),
            "--log".into(),
            log.display().to_string(),
        ];
        for url in &self.notify {
            args.push("--notify".into());
            args.push(url.clone());
        }
        args
    }

    /// `--repo L --password-file F`
    fn repo_args(location: &str, password_file: &std::path::Path) -> Vec<String> {
        vec![
            "--repo".into(),
            location.to_string(),
            "--password-file".into(),
            password_file.display().to_string(),
        ]
    }

    fn backup_job(&self) -> Job {
        let log = self.log_file("backup");
        let steps = match &self.target {
            Target::Archives(dir) => {
                // The archive's name carries the time it was started (UTC,
                // so that names sort as times do): the weekly verify takes
                // the last name.
                let mut args = vec![self.bin(), "backup".into()];
                args.extend(self.env_args(&log));
                let file = format!(
                    "{}\"$(date -u +%Y%m%dT%H%M%SZ)\".backup",
                    quote::sh(&format!("{}/{}-", dir.display(), self.name))
                );
                let script = format!("exec {} --file {file}", quote::sh_words(&args));
                let mut prune = vec![
                    self.bin(),
                    "prune-archives".into(),
                    dir.display().to_string(),
                ];
                prune.extend(KEEP_POLICY.iter().map(|s| s.to_string()));
                vec![Step::Shell(script), Step::Exec(prune)]
            }
            Target::Repo {
                location,
                password_file,
            } => {
                let mut backup = vec![self.bin(), "repo".into(), "backup".into()];
                backup.extend(Self::repo_args(location, password_file));
                backup.extend(self.env_args(&log));
                let mut forget = vec![self.bin(), "repo".into(), "forget".into()];
                forget.extend(Self::repo_args(location, password_file));
                forget.extend(KEEP_POLICY.iter().map(|s| s.to_string()));
                forget.push("--prune".into());
                vec![Step::Exec(backup), Step::Exec(forget)]
            }
        };
        Job {
            name: "backup",
            description: format!(
                "holdfast {}: nightly backup, then retention ({})",
                self.name,
                KEEP_POLICY.join(" ")
            ),
            when: When::Nightly(self.time),
            steps,
        }
    }

    fn verify_job(&self) -> Job {
        let log = self.log_file("verify");
        let mut verify = vec![self.bin(), "verify".into(), "--deep".into()];
        verify.extend(self.env_args(&log));
        let verify = quote::sh_words(&verify);
        let script = match &self.target {
            Target::Archives(dir) => {
                let pattern = format!(
                    "{}*.backup",
                    quote::sh(&format!("{}/{}-", dir.display(), self.name))
                );
                format!(
                    "newest=$(ls -1 {pattern} 2>/dev/null | tail -n 1); \
                     if [ -z \"$newest\" ]; then echo 'holdfast: no archive to verify' >&2; exit 1; fi; \
                     exec {verify} \"$newest\""
                )
            }
            Target::Repo {
                location,
                password_file,
            } => {
                // holdfast has no test restore of a snapshot in place: the
                // newest snapshot is exported as an archive and that archive
                // deep-verified, in a temporary directory removed at the end.
                let mut export = vec![self.bin(), "repo".into(), "export".into(), "latest".into()];
                export.extend(Self::repo_args(location, password_file));
                export.extend(["--compressor".into(), "none".into()]);
                format!(
                    "work=$(mktemp -d \"${{TMPDIR:-/var/tmp}}/holdfast-verify.XXXXXX\") || exit 1; \
                     trap 'rm -rf \"$work\"' EXIT; trap 'exit 143' INT TERM HUP; \
                     {} --file \"$work/latest.backup\" && {verify} \"$work/latest.backup\"",
                    quote::sh_words(&export)
                )
            }
        };
        Job {
            name: "verify",
            description: format!(
                "holdfast {}: weekly deep verify (a test restore into a throwaway cluster)",
                self.name
            ),
            when: When::Weekly,
            steps: vec![Step::Shell(script)],
        }
    }

    fn check_job(&self) -> Job {
        let Target::Repo {
            location,
            password_file,
        } = &self.target
        else {
            unreachable!("the check job is a repository's")
        };
        let mut check = vec![self.bin(), "repo".into(), "check".into()];
        check.extend(Self::repo_args(location, password_file));
        check.push("--read-data-subset".into());
        // Part N of 12 in month N: every pack read once a year.
        let script = format!("exec {} \"$(date +%m)/12\"", quote::sh_words(&check));
        Job {
            name: "check",
            description: format!(
                "holdfast {}: monthly read of a twelfth of the repository's packs",
                self.name
            ),
            when: When::Monthly,
            steps: vec![Step::Shell(script)],
        }
    }

    /// The failure notification's command, but for the unit that failed
    /// (the last argument, which systemd and cron give differently).
    pub fn notify_failure_argv(&self) -> Vec<String> {
        let mut argv = vec![self.bin(), "notify".into()];
        for url in &self.notify {
            argv.push("--notify".into());
            argv.push(url.clone());
        }
        argv.push("--log-dir".into());
        argv.push(self.log_dir.display().to_string());
        argv.push("--failed".into());
        argv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_of_day() {
        assert_eq!(
            TimeOfDay::parse("23:30").unwrap(),
            TimeOfDay {
                hour: 23,
                minute: 30
            }
        );
        for bad in ["24:00", "7:30", "07:60", "0730", "07:3x", ""] {
            assert!(TimeOfDay::parse(bad).is_err(), "{bad}");
        }
    }
}
