//! `holdfast status`: how old the newest good backup is, whether the last
//! night failed and why, when the last (deep) verify ran: as a
//! Nagios/Icinga plugin line and exit status, as JSON (`--json`), and as
//! node_exporter textfile metrics (`--prometheus FILE`).
//!
//! Its exit status is the plugin's (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN),
//! not holdfast's usual ones: an error reading the archives or the
//! repository is UNKNOWN with its reason.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, Args};
use holdfast::profile::{InstallRoot, Profile};
use holdfast::repo::jiff::Timestamp;
use holdfast::repo::{LocationSource, RemoteOptions, RepoLocation};
use holdfast::status::verdict::{self, State, Thresholds, Verdict};
use holdfast::status::{self, ContinuousArchive, Facts, Kind, ServerWal};
use serde::Serialize;

use crate::shared::absolute;

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("what").required(true).args(["archives", "repo", "profile"])))]
pub struct StatusArgs {
    /// A directory of archives (the newest is found by the time its manifest records).
    #[arg(long, value_name = "DIR")]
    pub archives: Option<PathBuf>,
    /// A repository: a directory, rest:… or s3:… (the newest snapshot).
    #[arg(long, value_name = "LOCATION")]
    pub repo: Option<String>,
    /// File whose first line is the repository password (else HOLDFAST_REPO_PASSWORD).
    #[arg(long, value_name = "FILE", requires = "repo")]
    pub password_file: Option<PathBuf>,
    /// A profile: its default backup directory under --install-root.
    #[arg(long, value_name = "NAME|FILE")]
    pub profile: Option<String>,
    /// Root of the application's files (with --profile).
    #[arg(
        long,
        env = "HOLDFAST_INSTALL_ROOT",
        default_value = "/",
        value_name = "DIR"
    )]
    pub install_root: PathBuf,
    /// WARNING when the newest backup is older than this (45s, 90m, 26h, 3d, 1w, 1d12h).
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    pub warn_age: Option<std::time::Duration>,
    /// CRITICAL when the newest backup is older than this.
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    pub crit_age: Option<std::time::Duration>,
    /// WARNING when the repository's newest archived WAL is older than this
    /// (point-in-time recovery would lose what came since).
    #[arg(long, value_name = "AGE", value_parser = parse_age, requires = "repo")]
    pub warn_wal_age: Option<std::time::Duration>,
    /// CRITICAL when the repository's newest archived WAL is older than this.
    #[arg(long, value_name = "AGE", value_parser = parse_age, requires = "repo")]
    pub crit_wal_age: Option<std::time::Duration>,
    /// The archived cluster's data directory: report the WAL it has not
    /// archived yet (ready segments, the size of pg_wal). Read as its owner or root.
    #[arg(long, value_name = "DIR", requires = "repo")]
    pub pgdata: Option<PathBuf>,
    /// Print one JSON document (see docs/scheduling.md) instead of the plugin line.
    #[arg(long)]
    pub json: bool,
    /// Also write node_exporter textfile-collector metrics to FILE (atomically).
    #[arg(long, value_name = "FILE")]
    pub prometheus: Option<PathBuf>,
}

fn parse_age(v: &str) -> Result<std::time::Duration, String> {
    verdict::parse_age(v).map_err(|e| e.to_string())
}

/// The `--json` document.
#[derive(Serialize)]
struct Document<'a> {
    version: u32,
    state: State,
    exit_code: u8,
    message: &'a str,
    age_seconds: Option<i64>,
    warn_age_seconds: Option<u64>,
    crit_age_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    wal_age_seconds: Option<i64>,
    #[serde(flatten)]
    facts: &'a Facts,
}

pub fn run(a: StatusArgs) -> ExitCode {
    let limits = Thresholds {
        warn: a.warn_age,
        crit: a.crit_age,
        wal_warn: a.warn_wal_age,
        wal_crit: a.crit_wal_age,
    };
    let facts = match gather(&a) {
        Ok(f) => f,
        Err(e) => {
            let message = super::describe(&e);
            if a.json {
                println!(
                    "{}",
                    serde_json::json!({"version": status::STATUS_VERSION, "state": "UNKNOWN",
                        "exit_code": 3, "message": message})
                );
            } else {
                println!("HOLDFAST UNKNOWN - {}", message.replace('|', "/"));
            }
            return ExitCode::from(State::Unknown.code());
        }
    };
    let verdict = verdict::judge(&facts, Timestamp::now(), &limits);
    if let Some(path) = &a.prometheus {
        let text = status::prometheus::render(&facts, &verdict);
        if let Err(e) = status::prometheus::write(&absolute(path), &text) {
            eprintln!("holdfast: error: {}", super::describe(&e));
            println!("HOLDFAST UNKNOWN - {}", super::describe(&e));
            return ExitCode::from(State::Unknown.code());
        }
    }
    print(&a, &facts, &verdict, &limits);
    ExitCode::from(verdict.state.code())
}

fn print(a: &StatusArgs, facts: &Facts, verdict: &Verdict, limits: &Thresholds) {
    if a.json {
        let doc = Document {
            version: status::STATUS_VERSION,
            state: verdict.state,
            exit_code: verdict.state.code(),
            message: &verdict.message,
            age_seconds: verdict.age_seconds,
            warn_age_seconds: limits.warn.map(|d| d.as_secs()),
            crit_age_seconds: limits.crit.map(|d| d.as_secs()),
            wal_age_seconds: verdict.wal_age_seconds,
            facts,
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("status serializes")
        );
    } else {
        println!("{}", verdict.line(facts, limits));
    }
}

/// The facts of the archive directory, repository or profile asked about.
fn gather(a: &StatusArgs) -> holdfast::Result<Facts> {
    let state_dir = holdfast::ops::journal::state_dir();
    if let Some(text) = &a.repo {
        let location = RepoLocation::parse(
            text,
            &RemoteOptions::from_env(),
            LocationSource::CommandLine,
        )?;
        let mut repo = super::repo::open(&location, a.password_file.as_deref())?;
        // WAL arrives every minute: it says nothing about the nightly backups.
        let snapshots = repo.snapshots()?;
        let backups: Vec<_> = snapshots
            .iter()
            .filter(|s| !holdfast::repo::wal::is_wal(s))
            .cloned()
            .collect();
        let newest = status::newest_snapshot(&backups);
        let target = super::report::repo_target(Some(text)).unwrap_or_else(|| text.clone());
        let mut facts = Facts::gather(Kind::Repository, &target, newest, &state_dir);
        facts.continuous_archive = ContinuousArchive::gather(&mut repo, &snapshots)?;
        if let Some(pgdata) = &a.pgdata {
            let server = ServerWal::read(&absolute(pgdata))?;
            match facts.continuous_archive.as_mut() {
                Some(archive) => archive.server = Some(server),
                None => {
                    return Err(holdfast::Error::usage(format!(
                        "--pgdata {}: the repository holds no base backup and no WAL; \
                         is archive_command 'holdfast wal push %p'?",
                        pgdata.display()
                    )))
                }
            }
        }
        return Ok(facts);
    }
    let dir = match (&a.archives, &a.profile) {
        (Some(dir), _) => absolute(dir),
        (None, Some(name)) => {
            let profile = Profile::load(name)?;
            InstallRoot::new(&a.install_root)?.join(&profile.archive.backup_dir)
        }
        (None, None) => unreachable!("clap requires one of --archives, --repo, --profile"),
    };
    let newest = if dir.is_dir() {
        status::newest_archive(&dir)?
    } else {
        None
    };
    let target = super::report::dir_target(&dir);
    Ok(Facts::gather(Kind::Archives, &target, newest, &state_dir))
}
