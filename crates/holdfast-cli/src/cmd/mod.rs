//! `holdfast <verb>`: one module per verb; this file holds the verb list and the
//! options every verb shares.

mod admin;
mod backup;
mod completions;
mod demo;
mod listing;
mod man;
mod migrate;
mod notify;
mod partial;
mod physical;
mod profile;
mod prune_archives;
mod repo;
mod report;
mod restore;
mod schedule;
pub mod schema;
mod serve;
mod status;
mod verify;
mod vm;
mod wal;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use holdfast::log::Log;
use holdfast::profile::{Environment, InstallRoot, Profile};

use crate::exit::{self, Outcome};

/// Back up, verify and restore PostgreSQL-backed application environments: the
/// databases, the roles they need and the application's configuration files, as
/// one archive. `engine-backup` is the same tool with oVirt's command line.
#[derive(Debug, Parser)]
#[command(name = "holdfast", version, after_help = exit::HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per run: the size of the largest verb's options costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Back up the environment (databases, roles, files) into one archive.
    Backup(backup::BackupArgs),
    /// Check an archive: checksums, version, readable dumps; --deep restores it into a throwaway cluster.
    Verify(verify::VerifyArgs),
    /// Restore an archive onto an existing, cleaned install (role and empty database exist).
    Restore(restore::RestoreArgs),
    /// Move one database to another server, prove the copy complete, point the application at it (--rollback points it back).
    Migrate(migrate::MigrateArgs),
    /// Run the whole job on a throwaway local PostgreSQL: build a sample environment, back it up, restore it, compare.
    Demo(demo::DemoArgs),
    /// Show, list or check application profiles.
    #[command(subcommand)]
    Profile(profile::ProfileCommand),
    /// Versioned schema upgrades with a schema_version history (apply, status, plan, refresh, drop, recreate).
    Schema(schema::SchemaArgs),
    /// The deduplicating repository (restic's format): init, backup, snapshots, restore, export, forget, prune, check.
    Repo(repo::RepoArgs),
    /// oVirt VM disks through the engine's Backup and Restore API into the repository and back.
    Vm(vm::VmArgs),
    /// Continuous archiving: PostgreSQL's archive_command (push) and restore_command (fetch) over the repository.
    Wal(wal::WalArgs),
    /// Apply a keep policy (--keep-daily 7 ...) to a directory of archives, by the backup time each records.
    PruneArchives(prune_archives::PruneArchivesArgs),
    /// Backup server: restic's REST protocol over a directory of repositories (append-only, htpasswd, TLS).
    Serve(serve::ServeArgs),
    /// How old the newest good backup is and whether the last run failed: a Nagios/Icinga plugin (exit 0-3), --json, --prometheus.
    Status(status::StatusArgs),
    /// Write the systemd units (or crontab) of the nightly plan: backup and retention, weekly deep verify, monthly pack read.
    Schedule(schedule::ScheduleArgs),
    /// Tell the --notify targets that a scheduled job failed (systemd's OnFailure=, a cron line's ||).
    Notify(notify::NotifyCommandArgs),
    /// Print the shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::CompletionsArgs),
    /// Write the manual pages: holdfast.1, one per verb, and engine-backup.8.
    Man(man::ManArgs),
}

/// The environment variable naming the profile when --profile is not given.
pub const PROFILE_VARIABLE: &str = "HOLDFAST_PROFILE";

/// Where the application is and what it is.
#[derive(Debug, Clone, Args)]
pub struct EnvArgs {
    /// Application profile: a built-in name (`holdfast profile list`) or a
    /// TOML file [default: $HOLDFAST_PROFILE; verify and restore use the
    /// profile the archive was made with, which --profile must match].
    #[arg(long, value_name = "NAME|FILE")]
    pub profile: Option<String>,
    /// Root of the application's files; every profile path is relative to it.
    #[arg(
        long,
        env = "HOLDFAST_INSTALL_ROOT",
        default_value = "/",
        value_name = "DIR"
    )]
    pub install_root: PathBuf,
    /// The installed application version, where its package is not installed.
    #[arg(long, env = "HOLDFAST_INSTALLED_VERSION", value_name = "X.Y.Z")]
    pub installed_version: Option<String>,
    /// Log file (created 0600, engine-backup's line format); its last line is
    /// the outcome, the exit status and the reason.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Parent of the private temporary directory.
    #[arg(long, env = "TMPDIR", value_name = "DIR")]
    pub tmpdir: Option<PathBuf>,
    /// Print one JSON document on stdout when the run ends (the document
    /// --notify webhooks receive: version, verb, outcome, reason, exit_code,
    /// times, archive, size, scopes); the console's lines go to stderr.
    #[arg(long)]
    pub json: bool,
    /// Draw progress bars on stderr even when it is not a terminal (they
    /// are drawn when it is one).
    #[arg(long, conflicts_with = "no_progress")]
    pub progress: bool,
    /// Draw no progress bars.
    #[arg(long)]
    pub no_progress: bool,
    #[command(flatten)]
    pub notify: report::NotifyArgs,
}

impl EnvArgs {
    /// The profile a verb that reads no archive uses: `--profile`, else
    /// `$HOLDFAST_PROFILE`. There is no default: an application backed up
    /// with another's profile would miss its files and databases.
    pub fn profile_name(&self) -> holdfast::Result<String> {
        self.given_profile().ok_or_else(|| {
            holdfast::Error::usage(format!(
                "no application profile given: pass --profile NAME|FILE or set {PROFILE_VARIABLE} \
                 (built-in profiles: {}; `holdfast profile init NAME` writes an editable copy)",
                holdfast::profile::builtin_names()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }

    /// `--profile`, else a non-empty `$HOLDFAST_PROFILE`.
    pub fn given_profile(&self) -> Option<String> {
        self.profile.clone().or_else(|| {
            std::env::var(PROFILE_VARIABLE)
                .ok()
                .filter(|p| !p.is_empty())
        })
    }

    pub fn environment(&self) -> holdfast::Result<Environment> {
        let profile = Profile::load(&self.profile_name()?)?;
        Environment::load(profile, InstallRoot::new(&self.install_root)?)
    }

    /// The environment to verify or restore an archive in: with the profile
    /// its manifest names unless --profile is given, and --profile refused
    /// when it is another (see [`Profile::for_archive`]). `what` names the
    /// archive in messages.
    pub fn environment_for(
        &self,
        manifest: Option<&holdfast::archive::Manifest>,
        what: &str,
    ) -> holdfast::Result<Environment> {
        let recorded = manifest.map(|m| (m.profile.as_str(), m.profile_source.as_deref()));
        // The archive's record wins over the environment variable, which a
        // nightly job sets for one application while a restore may read
        // another's archive; --profile typed on the command line is checked.
        let asked = match (&self.profile, recorded) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(_)) => None,
            (None, None) => self.given_profile(),
        };
        let profile = Profile::for_archive(asked.as_deref(), recorded, what)?;
        Environment::load(profile, InstallRoot::new(&self.install_root)?)
    }

    pub fn tmpdir(&self) -> holdfast::Result<PathBuf> {
        let dir = self.tmpdir.clone().unwrap_or_else(std::env::temp_dir);
        if !dir.is_dir() {
            return Err(holdfast::Error::usage(format!(
                "temporary directory {} is missing or not a directory; pass an existing one with --tmpdir",
                dir.display()
            )));
        }
        Ok(dir)
    }
}

/// Parse the command line and run it. A command line clap refuses still
/// reaches the `--log` file it names, if one can be found in it.
pub fn main() -> ExitCode {
    match Cli::try_parse() {
        Ok(cli) => run(cli),
        Err(e) => {
            if e.use_stderr() {
                log_refused_command_line(&e);
            }
            e.exit()
        }
    }
}

/// The `--log FILE` (or `--log=FILE`) of a command line clap could not parse.
fn log_refused_command_line(e: &clap::Error) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args
        .iter()
        .enumerate()
        .find_map(|(i, a)| match a.strip_prefix("--log=") {
            Some(value) => Some(value.to_string()),
            None if a == "--log" => args.get(i + 1).cloned(),
            None => None,
        });
    let Some(path) = path.filter(|p| !p.is_empty() && !p.starts_with('-')) else {
        return;
    };
    let Ok(log) = Log::create(std::path::Path::new(&path)) else {
        return;
    };
    let text = e.render().to_string();
    let reason = text
        .lines()
        .next()
        .unwrap_or("invalid command line")
        .trim_start_matches("error: ");
    log.line("Start of holdfast (command line refused)");
    log.line(&format!(
        "Outcome: usage error (exit {}): {reason}",
        exit::USAGE
    ));
}

impl Command {
    /// The verb as typed: `backup`, `repo backup`, ...
    fn name(&self) -> String {
        let verb = match self {
            Command::Backup(_) => "backup",
            Command::Verify(_) => "verify",
            Command::Restore(_) => "restore",
            Command::Migrate(_) => "migrate",
            Command::Demo(_) => "demo",
            Command::Profile(_) => "profile",
            Command::Schema(_) => "schema",
            Command::Repo(r) => return format!("repo {}", r.command.name()),
            Command::PruneArchives(_) => "prune-archives",
            Command::Serve(_) => "serve",
            Command::Vm(v) => match v.command {
                vm::VmCommand::Backup(_) => "vm backup",
                vm::VmCommand::Restore(_) => "vm restore",
            },
            Command::Status(_) => "status",
            Command::Wal(_) => "wal",
            Command::Schedule(_) => "schedule",
            Command::Notify(_) => "notify",
            Command::Completions(_) => "completions",
            Command::Man(_) => "man",
        };
        verb.to_string()
    }

    /// The environment options, for the verbs that take them.
    fn env(&self) -> Option<&EnvArgs> {
        match self {
            Command::Backup(a) => Some(&a.env),
            Command::Verify(a) => Some(&a.env),
            Command::Restore(a) => Some(&a.env),
            Command::Migrate(a) => Some(&a.env),
            Command::Repo(r) => r.command.env(),
            _ => None,
        }
    }

    /// The `--log` file, for the verbs that take one.
    fn log_path(&self) -> Option<&std::path::Path> {
        match self {
            Command::Backup(a) => a.env.log.as_deref(),
            Command::Verify(a) => a.env.log.as_deref(),
            Command::Restore(a) => a.env.log.as_deref(),
            Command::Migrate(a) => a.env.log.as_deref(),
            Command::Repo(r) => r.command.log_path(),
            Command::Vm(v) => v.log.as_deref(),
            _ => None,
        }
    }
}

/// Run a parsed command line. The log is opened before anything else, so
/// whatever step fails, the reason reaches it: every run given `--log` leaves
/// a log whose last line is the outcome, the exit status and the reason
/// (see [`exit`]). On the console an error is one line on stderr.
pub fn run(cli: Cli) -> ExitCode {
    // Operations turn a termination request into a rollback; the server
    // handles its own (it stops accepting and ends).
    if !matches!(cli.command, Command::Serve(_)) {
        holdfast::interrupt::install();
    }
    // A monitoring plugin: its own exit statuses and no log.
    let cli = match cli.command {
        Command::Status(a) => return status::run(a),
        // PostgreSQL's archive and restore commands: their own statuses, one line, no log.
        Command::Wal(a) => return wal::run(a),
        command => Cli { command },
    };
    let verb = cli.command.name();
    let json = cli.command.env().is_some_and(|e| e.json);
    let bars = match &cli.command {
        Command::Vm(v) => crate::progress::wanted(v.progress, v.no_progress),
        command => command
            .env()
            .is_some_and(|e| crate::progress::wanted(e.progress, e.no_progress)),
    };
    let log = match cli.command.log_path() {
        None => Log::console_only(),
        Some(path) => match Log::create(path) {
            Ok(log) => log,
            Err(e) => {
                let e = holdfast::Error::usage(format!(
                    "cannot open the log file {}: {}; pass a writable file to --log",
                    path.display(),
                    io_reason(&e)
                ));
                eprintln!("holdfast: error: {}", describe(&e));
                return exit::code(exit::USAGE);
            }
        },
    };
    let log = if json { log.console_on_stderr() } else { log };
    let log = if bars {
        log.with_progress(crate::progress::TerminalBars::new())
    } else {
        log
    };
    log.line(&format!("Start of holdfast {verb}"));
    let mut report = report::RunReport::begin(&cli.command, &log);
    let result = match report.refusal() {
        Some(e) => Err(e),
        None => run_command(cli.command, &log),
    };
    let outcome = Outcome::of(result, log.warnings());
    let event = report.end(&outcome, &log);
    log.line(&outcome.line(describe));
    if let Some(event) = event.filter(|_| json) {
        // The outcome, and what the operation recorded for a machine
        // reader (deep verify's per-table verdicts).
        let mut doc = serde_json::to_value(&event).unwrap_or_default();
        if let Some(fields) = doc.as_object_mut() {
            fields.extend(log.records());
        }
        match serde_json::to_string_pretty(&doc) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("holdfast: error: cannot write the JSON document: {e}"),
        }
    }
    match &outcome {
        Outcome::Failed(e) | Outcome::Interrupted(_, e) => {
            eprintln!("holdfast: error: {}", describe(e));
        }
        Outcome::Warnings(n) => eprintln!(
            "holdfast: completed with {}; see the WARNING lines above",
            holdfast::log::count(*n, "warning", "warnings")
        ),
        Outcome::Success => {}
    }
    exit::code(outcome.code())
}

/// An error in the native face's words, with no known secret in it.
pub fn describe(e: &holdfast::Error) -> String {
    // Last line of defence: no known secret leaves in an error message.
    holdfast::secret::Redactor::global().redact(&worded(e))
}

/// The message with its remedy in this face's option names. A remedy only
/// engine-backup has an option for is left out: this face never recommends
/// an engine-backup option.
fn worded(e: &holdfast::Error) -> String {
    match e {
        holdfast::Error::Remedied { error, remedy } => {
            let why = worded(error);
            match remedy {
                // Restoring into another database than the archive's
                // configuration names.
                holdfast::Remedy::OtherTargetDatabase { scope, .. } => format!(
                    "{why}; or restore into another server, database or role with --target {scope}=postgres://USER@HOST:PORT/DATABASE and --target-passfile {scope}=FILE"
                ),
                holdfast::Remedy::AtLeastOneJob => format!("{why}; pass --jobs 1 or more"),
            }
        }
        other => other.to_string(),
    }
}

/// The operating system's part of an I/O error.
fn io_reason(e: &holdfast::Error) -> String {
    match e {
        holdfast::Error::Io { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

/// The verb's own work.
fn run_command(command: Command, log: &Log) -> holdfast::Result<()> {
    match command {
        Command::Backup(a) => backup::run(a, log),
        Command::Verify(a) => verify::run(a, log),
        Command::Restore(a) => restore::run(a, log),
        Command::Demo(a) => demo::run(a, log),
        Command::Migrate(a) => migrate::run(a, log),
        Command::Profile(c) => profile::run(c),
        Command::Schema(a) => schema::run(a),
        Command::Repo(a) => repo::run(a, log),
        Command::PruneArchives(a) => prune_archives::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Vm(a) => vm::run(a, log),
        Command::Status(_) | Command::Wal(_) => {
            unreachable!("status and wal return before the log is opened")
        }
        Command::Schedule(a) => schedule::run(a),
        Command::Notify(a) => notify::run(a),
        Command::Completions(a) => completions::run(a),
        Command::Man(a) => man::run(a),
    }
}
