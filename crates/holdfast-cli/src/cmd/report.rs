//! What every run leaves behind besides its log: the run record that
//! `holdfast status` reads ([`holdfast::runlog`]) and the notifications
//! (`--notify`, [`holdfast::notify`]).
//!
//! [`RunReport::begin`] is called by the run wrapper once the log is open
//! (it sends the `/start` pings), [`RunReport::end`] once the outcome is
//! known and before the outcome line is logged, so that line stays last.
//! Neither can change the outcome: a notification that could not be
//! delivered, or a run record that could not be written, is a line in the
//! log (not a WARNING, which would turn a success into exit 3: a
//! notification is not part of what was asked to be done and checked) and
//! is counted in the run record.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use holdfast::log::Log;
use holdfast::notify::{self, Event, Failure, Settings, Target};
use holdfast::repo::jiff::Timestamp;
use holdfast::runlog::{self, RunEntry};

use super::Command;
use crate::cmd::repo::{RepoCommand, REPOSITORY_ENVS};
use crate::exit::Outcome;
use crate::shared::absolute;

/// Who is told how the run ended.
#[derive(Debug, Clone, Default, Args)]
pub struct NotifyArgs {
    /// Tell URL how the run ended (repeatable): https://… (a JSON webhook),
    /// hc+https://… (healthchecks.io pings: /start, success, /fail) or
    /// mailto:ADDRESS (through --smtp-host). On failure; on success too with
    /// --notify-on-success (pings always).
    #[arg(long = "notify", value_name = "URL")]
    pub notify: Vec<String>,
    /// Send webhooks and mail on success too.
    #[arg(long)]
    pub notify_on_success: bool,
    /// TOML file with more targets and settings (notify = [...],
    /// on_success, secret_file, [smtp] host, port, starttls, cacert, user,
    /// password_file, from); options given on the command line win.
    #[arg(long, env = "HOLDFAST_NOTIFY_CONFIG", value_name = "FILE")]
    pub notify_config: Option<PathBuf>,
    /// File whose first line is the key that signs webhook bodies
    /// (X-Holdfast-Signature: sha256=<hex HMAC-SHA256>).
    #[arg(long, value_name = "FILE")]
    pub notify_secret_file: Option<PathBuf>,
    /// SMTP server for mailto: targets [default: localhost].
    #[arg(long, value_name = "HOST")]
    pub smtp_host: Option<String>,
    /// SMTP port [default: 25].
    #[arg(long, value_name = "PORT")]
    pub smtp_port: Option<u16>,
    /// Require STARTTLS on the SMTP connection.
    #[arg(long)]
    pub smtp_starttls: bool,
    /// PEM file of the private certificate authority that signed the SMTP
    /// server's certificate (with --smtp-starttls).
    #[arg(long, value_name = "FILE")]
    pub smtp_cacert: Option<PathBuf>,
    /// SMTP user (with --smtp-password-file).
    #[arg(long, value_name = "USER")]
    pub smtp_user: Option<String>,
    /// File whose first line is the SMTP password.
    #[arg(long, value_name = "FILE")]
    pub smtp_password_file: Option<PathBuf>,
    /// Sender address [default: holdfast@<host name>].
    #[arg(long, value_name = "ADDRESS")]
    pub smtp_from: Option<String>,
}

impl NotifyArgs {
    /// The settings from the config file and the options.
    pub fn settings(&self) -> holdfast::Result<Settings> {
        let file = match &self.notify_config {
            Some(path) => notify::FileSettings::load(path)?,
            None => notify::FileSettings::default(),
        };
        let mut settings = Settings {
            on_success: self.notify_on_success || file.on_success,
            ..Settings::default()
        };
        for url in file.notify.iter().chain(&self.notify) {
            settings.targets.push(Target::parse(url)?);
        }
        if settings.targets.is_empty() {
            return Ok(settings);
        }
        if let Some(path) = self
            .notify_secret_file
            .as_ref()
            .or(file.secret_file.as_ref())
        {
            settings.secret = Some(notify::secret_from_file(path, "--notify-secret-file")?);
        }
        let smtp = &mut settings.smtp;
        let f = file.smtp;
        if let Some(h) = self.smtp_host.clone().or(f.host) {
            smtp.host = h;
        }
        if let Some(p) = self.smtp_port.or(f.port) {
            smtp.port = p;
        }
        smtp.starttls = self.smtp_starttls || f.starttls.unwrap_or(false);
        smtp.cacert = self.smtp_cacert.clone().or(f.cacert);
        if let Some(path) = &smtp.cacert {
            std::fs::metadata(path).map_err(|e| {
                holdfast::Error::usage(format!(
                    "cannot read --smtp-cacert {} ({e}); pass the PEM file of the CA that signed the mail server's certificate",
                    path.display()
                ))
            })?;
        }
        smtp.user = self.smtp_user.clone().or(f.user);
        smtp.from = self.smtp_from.clone().or(f.from);
        if let Some(path) = self
            .smtp_password_file
            .as_ref()
            .or(f.password_file.as_ref())
        {
            smtp.password = Some(notify::secret_from_file(path, "--smtp-password-file")?);
        }
        Ok(settings)
    }
}

/// A run being reported.
pub struct RunReport {
    /// The verb of the run record (`verify --deep` apart from `verify`).
    verb: String,
    target: Option<String>,
    profile: Option<String>,
    archive: Option<PathBuf>,
    deep: bool,
    settings: Settings,
    /// Notifications already lost (/start pings).
    failures: Vec<Failure>,
    /// Notification settings that cannot be used: the run is refused before
    /// it starts, as any other bad option.
    refusal: Option<holdfast::Error>,
    started: Timestamp,
    clock: Instant,
}

impl RunReport {
    /// Note what is run and send the `/start` pings.
    pub fn begin(command: &Command, log: &Log) -> RunReport {
        let mut report = RunReport {
            verb: String::new(),
            target: None,
            profile: None,
            archive: None,
            deep: false,
            settings: Settings::default(),
            failures: Vec::new(),
            refusal: None,
            started: now(),
            clock: Instant::now(),
        };
        let notify_args = report.describe(command);
        if let Some(args) = notify_args {
            match args.settings() {
                Ok(s) => report.settings = s,
                Err(e) => {
                    report.refusal = Some(e);
                    return report;
                }
            }
        }
        report.failures.extend(notify::started(&report.settings));
        log_failures(log, &report.failures);
        report
    }

    /// The reason the notification settings refuse the run, if they do
    /// (taken once: the run then fails with it, before its first step).
    pub fn refusal(&mut self) -> Option<holdfast::Error> {
        self.refusal.take()
    }

    /// Fill in verb, target, profile and archive from the command line;
    /// the notification options, for the verbs that take them.
    fn describe<'a>(&mut self, command: &'a Command) -> Option<&'a NotifyArgs> {
        let archive_dir = |file: &Path| absolute(file).parent().map(dir_target);
        match command {
            Command::Backup(a) => {
                self.verb = "backup".into();
                self.archive = Some(absolute(&a.file));
                self.target = archive_dir(&a.file);
                self.profile = a.env.profile_name().ok();
                Some(&a.env.notify)
            }
            Command::Verify(a) => {
                self.verb = if a.deep { "verify --deep" } else { "verify" }.into();
                self.deep = a.deep;
                self.archive = Some(absolute(&a.file));
                self.target = archive_dir(&a.file);
                self.profile = a.env.profile.clone();
                Some(&a.env.notify)
            }
            Command::Restore(a) => {
                self.verb = "restore".into();
                self.archive = a.file.as_deref().map(absolute);
                self.target = a.file.as_deref().and_then(archive_dir);
                self.profile = a.env.profile.clone();
                Some(&a.env.notify)
            }
            Command::Migrate(a) => {
                self.verb = "migrate".into();
                self.target = Some(absolute(&a.env.install_root).display().to_string());
                self.profile = a.env.profile_name().ok();
                Some(&a.env.notify)
            }
            Command::Repo(r) => {
                let repo = repo_target(r.options.repo.as_deref());
                match &r.command {
                    RepoCommand::Backup(b) => {
                        self.verb = "repo backup".into();
                        self.target = repo;
                        self.profile = b.env.profile_name().ok();
                        Some(&b.env.notify)
                    }
                    RepoCommand::Restore(b) => {
                        self.verb = "repo restore".into();
                        self.target = repo;
                        self.profile = b.env.profile.clone();
                        Some(&b.env.notify)
                    }
                    RepoCommand::Check(c) => {
                        self.verb = if c.read_data || c.read_data_subset.is_some() {
                            "repo check --read-data"
                        } else {
                            "repo check"
                        }
                        .into();
                        self.target = repo;
                        None
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// Record the run and tell the targets how it ended; returns what they
    /// were told (`--json` prints it), for a verb that is recorded.
    pub fn end(self, outcome: &Outcome, log: &Log) -> Option<Event> {
        let target = self.target.clone()?;
        let succeeded = outcome.code() == 0;
        let (word, reason) = outcome_parts(outcome);
        let manifest = self
            .archive
            .as_deref()
            .filter(|_| succeeded)
            .and_then(holdfast::archive::peek_manifest);
        let profile = manifest
            .as_ref()
            .map(|m| m.profile.clone())
            .or(self.profile.clone());
        let archive = self.archive.as_ref().map(|a| a.display().to_string());
        let size = match (&self.archive, succeeded) {
            (Some(a), true) => std::fs::metadata(a).ok().map(|m| m.len()),
            _ => None,
        };
        let finished = now();
        let duration = self.clock.elapsed().as_secs_f64();
        let event = Event {
            version: notify::EVENT_VERSION,
            verb: self.verb.clone(),
            outcome: word.clone(),
            reason: reason.clone(),
            exit_code: outcome.code(),
            host: holdfast::repo::atomic::hostname(),
            profile: profile.clone(),
            target: target.clone(),
            started: self.started.to_string(),
            finished: finished.to_string(),
            duration_seconds: duration,
            archive: archive.clone(),
            size_bytes: size,
            scopes: manifest
                .as_ref()
                .map(|m| m.scopes.clone())
                .unwrap_or_default(),
            tables_compared: manifest
                .as_ref()
                .filter(|_| self.deep)
                .map(|m| m.databases.iter().map(|d| d.tables.len() as u64).sum()),
        };
        let mut failures = self.failures;
        let late = notify::finished(&self.settings, &event);
        log_failures(log, &late);
        failures.extend(late);
        let entry = RunEntry {
            started: event.started.clone(),
            finished: event.finished.clone(),
            duration_seconds: duration,
            outcome: word,
            exit_code: outcome.code(),
            reason,
            profile,
            archive,
            size_bytes: size,
            scopes: event.scopes.clone(),
            tables_compared: event.tables_compared,
            notify_failures: failures.len() as u64,
        };
        let dir = holdfast::ops::journal::state_dir();
        if let Err(e) = runlog::record(&dir, &self.verb, &target, entry) {
            log.line(&format!(
                "Could not write the run record that holdfast status reads: {}",
                super::describe(&e)
            ));
        }
        Some(event)
    }
}

/// Now, to the second (the times in records and notifications).
fn now() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_second(now.as_second()).unwrap_or(now)
}

/// The outcome's word and reason, as the `--log` outcome line has them.
fn outcome_parts(outcome: &Outcome) -> (String, String) {
    let line = outcome.line(super::describe);
    let rest = line.strip_prefix("Outcome: ").unwrap_or(&line);
    let word = rest.split(" (exit").next().unwrap_or(rest).to_string();
    let word = match word.as_str() {
        w if w.starts_with("completed with") => "warnings".to_string(),
        w if w.starts_with("interrupted") => "interrupted".to_string(),
        _ => word,
    };
    let reason = match outcome {
        Outcome::Success => String::new(),
        _ => rest
            .split_once("): ")
            .map(|(_, r)| r.to_string())
            .unwrap_or_else(|| rest.to_string()),
    };
    (word, reason)
}

/// An archive directory as the run record keys it: its canonical path
/// where it exists.
pub fn dir_target(dir: &Path) -> String {
    std::fs::canonicalize(dir)
        .unwrap_or_else(|_| absolute(dir))
        .display()
        .to_string()
}

/// The repository as the run record keys it: a local directory absolute,
/// other locations as given.
pub fn repo_target(given: Option<&str>) -> Option<String> {
    let text = given.map(str::to_string).or_else(|| {
        REPOSITORY_ENVS
            .iter()
            .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    })?;
    let remote = ["rest:", "s3:", "sftp:", "rclone:", "opendal:"]
        .iter()
        .any(|p| text.starts_with(p));
    Some(if remote {
        holdfast::secret::Redactor::global().redact(&text)
    } else {
        absolute(Path::new(text.trim_start_matches("local:")))
            .display()
            .to_string()
    })
}

/// A line per notification lost, in the log and on stderr (not a WARNING:
/// see the module's comment).
fn log_failures(log: &Log, failures: &[Failure]) {
    for f in failures {
        let line = format!("Notification to {} not delivered: {}", f.target, f.reason);
        log.line(&line);
        eprintln!(
            "holdfast: {}",
            holdfast::secret::Redactor::global().redact(&line)
        );
    }
}
