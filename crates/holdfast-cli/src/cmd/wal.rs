//! `holdfast wal <verb>`: PostgreSQL's continuous archiving over the
//! repository. `push` is archive_command, `fetch` is restore_command; both
//! take the repository as `holdfast repo` does (--repo or HOLDFAST_REPOSITORY,
//! --password-file or HOLDFAST_REPO_PASSWORD), and say nothing on success
//! but one line, since PostgreSQL writes their stderr into its log.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use holdfast::ops::wal::fetch::{self, FetchOutcome, FetchRequest};
use holdfast::ops::wal::push::{self, PushOutcome, PushRequest};
use holdfast::Error;

use super::repo::{self as repo_cmd, RepoOptions};
use crate::exit::{self, Outcome};

/// The environment variable naming the spool when --spool is not given.
pub const SPOOL_ENV: &str = "HOLDFAST_WAL_SPOOL";

#[derive(Debug, Args)]
pub struct WalArgs {
    #[command(flatten)]
    pub options: RepoOptions,
    /// Local directory recording what push stored and holding what fetch read
    /// ahead (else HOLDFAST_WAL_SPOOL, else <data directory>.holdfast-wal
    /// beside the data directory PostgreSQL runs the command in).
    #[arg(long, global = true, value_name = "DIR")]
    pub spool: Option<PathBuf>,
    #[command(subcommand)]
    pub command: WalCommand,
}

#[derive(Debug, Subcommand)]
pub enum WalCommand {
    /// archive_command: store PATH (%p) and every other file PostgreSQL has
    /// marked ready, in one snapshot; exit 0 once stored.
    Push(PushArgs),
    /// restore_command: write the archived file NAME (%f) at DEST (%p), whole
    /// or not at all; exit 1 when the archive does not hold it.
    Fetch(FetchArgs),
    /// The archive is continuous from each base backup to the newest segment
    /// (timelines followed through their history files); gaps are named.
    Check,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The file to archive (archive_command's %p).
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    /// At most this many files per snapshot (the ready files beside PATH).
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub batch: usize,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// The archived file's name (restore_command's %f).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Where to write it (restore_command's %p).
    #[arg(value_name = "DEST")]
    pub dest: PathBuf,
    /// Segments of the same timeline read ahead into the spool.
    #[arg(long, value_name = "N", default_value_t = fetch::DEFAULT_AHEAD)]
    pub ahead: usize,
    /// On any failure but a missing file (the repository unreachable, a
    /// damaged segment), exit 255: PostgreSQL then aborts recovery instead
    /// of taking the failure for the end of the archive and promoting early.
    /// 'repo restore --physical' writes it; a standby, which retries, should not.
    #[arg(long)]
    pub abort_on_error: bool,
    /// The archive's names as 'repo restore --physical' saw them (it writes
    /// this file into the restored spool): a name the file does not list is
    /// missing at once, without opening the repository.
    #[arg(long, value_name = "FILE")]
    pub archive_listing: Option<PathBuf>,
}

/// The exit status that makes PostgreSQL abort recovery (above 125, as a
/// shell's own failures): see --abort-on-error.
const ABORT_RECOVERY: u8 = 255;

pub fn run(a: WalArgs) -> ExitCode {
    let aborts = matches!(&a.command, WalCommand::Fetch(f) if f.abort_on_error);
    let verb = match a.command {
        WalCommand::Push(_) => "push",
        WalCommand::Fetch(_) => "fetch",
        WalCommand::Check => "check",
    };
    // A missing file is the end of the archive; any other failure of a fetch
    // with --abort-on-error must not look like one.
    let mut missing = false;
    let result = (|| -> holdfast::Result<Option<String>> {
        let spool = spool_dir(a.spool.as_ref())?;
        let location = repo_cmd::location(&a.options)?;
        let password_file = a.options.password_file.clone();
        // Push and fetch run once per WAL file: they keep the master key in the spool.
        let key_file = holdfast::wal::Spool::key_file(&spool);
        let mut open = || {
            let password = repo_cmd::password(password_file.as_deref(), false)?;
            holdfast::repo::Repo::open_with_key_file(&location, &password, &key_file)
        };
        match a.command {
            WalCommand::Push(p) => {
                let req = PushRequest {
                    path: p.path,
                    spool,
                    batch: p.batch.max(1),
                };
                match push::push(&req, &mut open)? {
                    PushOutcome::AlreadyStored => Ok(None),
                    PushOutcome::Stored { files, snapshot } => Ok(Some(format!(
                        "stored {} in snapshot {}",
                        files
                            .iter()
                            .map(|f| f.to_string())
                            .collect::<Vec<_>>()
                            .join(" "),
                        &snapshot[..8.min(snapshot.len())]
                    ))),
                }
            }
            WalCommand::Fetch(f) => {
                let req = FetchRequest {
                    name: f.name.clone(),
                    dest: f.dest,
                    spool,
                    ahead: f.ahead,
                    listing: f.archive_listing.as_deref().map(crate::shared::absolute),
                };
                match fetch::fetch(&req, &mut open)? {
                    FetchOutcome::Fetched { .. } => Ok(None),
                    FetchOutcome::Missing => {
                        missing = true;
                        Err(Error::failed(format!("{} is not in the archive", f.name)))
                    }
                }
            }
            WalCommand::Check => {
                check(&mut repo_cmd::open(&location, password_file.as_deref())?).map(|()| None)
            }
        }
    })();
    match result {
        Ok(line) => {
            if let Some(line) = line {
                eprintln!("holdfast wal {verb}: {line}");
            }
            exit::code(exit::SUCCESS)
        }
        Err(e) if aborts && !missing => {
            eprintln!(
                "holdfast wal {verb}: {} (exit {ABORT_RECOVERY}: recovery stops rather than end early)",
                super::describe(&e)
            );
            ExitCode::from(ABORT_RECOVERY)
        }
        Err(e) => {
            eprintln!("holdfast wal {verb}: {}", super::describe(&e));
            exit::code(Outcome::Failed(e).code())
        }
    }
}

/// Print each base backup's continuity; fail when any has a gap.
fn check(repo: &mut holdfast::repo::Repo) -> holdfast::Result<()> {
    let report = holdfast::ops::wal::check::check(repo)?;
    let Some(newest) = &report.newest else {
        return Err(Error::failed(if report.backups.is_empty() {
            "the repository holds no base backup and no WAL"
        } else {
            "the repository holds no WAL segment: is archive_command 'holdfast wal push %p'?"
        }));
    };
    if report.backups.is_empty() {
        println!("No base backup; the newest archived segment is {newest}");
    }
    for b in &report.backups {
        let id = &b.snapshot[..8.min(b.snapshot.len())];
        if b.off_lineage {
            println!(
                "Base backup {id} (from {}): on a timeline the newest segment {newest} does not descend from",
                b.start_segment
            );
        } else if b.missing.is_empty() {
            println!(
                "Base backup {id}: continuous from {} to {newest}",
                b.start_segment
            );
        } else {
            const SHOWN: usize = 20;
            let more = b.missing.len().saturating_sub(SHOWN);
            println!(
                "Base backup {id}: {} missing between {} and {newest}: {}{}",
                holdfast::log::count(b.missing.len(), "segment", "segments"),
                b.start_segment,
                b.missing[..b.missing.len().min(SHOWN)].join(" "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            );
        }
    }
    if report.is_continuous() {
        Ok(())
    } else {
        Err(Error::failed(
            "the archive has gaps: a point in time after a gap cannot be recovered from the base backups before it",
        ))
    }
}

/// --spool, else HOLDFAST_WAL_SPOOL, else `<cwd>.holdfast-wal` (PostgreSQL
/// runs archive and restore commands in the data directory).
fn spool_dir(given: Option<&PathBuf>) -> holdfast::Result<PathBuf> {
    if let Some(dir) = given {
        return Ok(crate::shared::absolute(dir));
    }
    if let Some(dir) = std::env::var_os(SPOOL_ENV).filter(|v| !v.is_empty()) {
        return Ok(crate::shared::absolute(&PathBuf::from(dir)));
    }
    let cwd = std::env::current_dir().map_err(|e| Error::io("find the current directory", e))?;
    let name = cwd
        .file_name()
        .map(|n| format!("{}.holdfast-wal", n.to_string_lossy()))
        .ok_or_else(|| Error::usage(format!("pass --spool DIR or set {SPOOL_ENV}")))?;
    Ok(cwd.with_file_name(name))
}
