//! `holdfast repo <verb>`: the deduplicating repository (restic's format):
//! init, backup, snapshots, restore, export, forget, prune and check, in a
//! directory, on a REST server or in an S3 bucket. The password comes from
//! --password-file, HOLDFAST_REPO_PASSWORD or a prompt, never from the
//! command line; so do the REST password and the S3 keys (restic's variables).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use holdfast::archive::{Codec, WriterOptions};
use holdfast::log::Log;
use holdfast::ops::{self, RestoreRequest};
use holdfast::repo::jiff::Zoned;
use holdfast::repo::retention::Verdict;
use holdfast::repo::{
    Chunking, LocationSource, PruneMode, RemoteOptions, Repo, RepoLocation, Retention, SnapshotInfo,
};
use holdfast::{Error, Password};

use super::backup::parse_codec;
use super::restore::{ProvisionArgs, RestoreChoices};
use super::{absolute, EnvArgs};

/// The environment variable holding the repository password.
pub const PASSWORD_ENV: &str = "HOLDFAST_REPO_PASSWORD";

/// Environment variables naming the repository when --repo is not given, in order.
pub const REPOSITORY_ENVS: [&str; 3] =
    ["HOLDFAST_REPOSITORY", "RESTIC_REPOSITORY", "HOLDFAST_REPO"];

#[derive(Debug, Args)]
pub struct RepoArgs {
    /// The repository: a directory, rest:https://user@host:port/path/ or
    /// s3:https://host[:port]/bucket/path (else HOLDFAST_REPOSITORY, RESTIC_REPOSITORY).
    #[arg(long, global = true, value_name = "LOCATION")]
    pub repo: Option<String>,
    /// File whose first line is the repository password (else HOLDFAST_REPO_PASSWORD, else a prompt).
    #[arg(long, global = true, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// File whose first line is the REST server's password (else
    /// HOLDFAST_REST_PASSWORD or RESTIC_REST_PASSWORD); the user is in the URL
    /// or RESTIC_REST_USERNAME.
    #[arg(long, global = true, value_name = "FILE")]
    pub rest_password_file: Option<PathBuf>,
    /// PEM file of a private certificate authority that signed the REST server's certificate.
    #[arg(long, global = true, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// How often a failed request to a REST or S3 location is tried again
    /// (waiting 1, 2, 4, ... seconds).
    #[arg(long, global = true, value_name = "N", default_value_t = holdfast::repo::location::DEFAULT_RETRIES)]
    pub retries: u32,
    #[command(subcommand)]
    pub command: RepoCommand,
}

#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    /// Create a new, empty repository (the directory must be new or empty).
    Init(InitArgs),
    /// Back the environment up into one snapshot: uncompressed dumps, roles, files, manifest.
    Backup(BackupArgs),
    /// List the snapshots, oldest first.
    Snapshots,
    /// Restore a snapshot onto a cleaned install, exactly as `holdfast restore` does an archive.
    Restore(RestoreArgs),
    /// Write a snapshot as an engine-backup compatible archive.
    Export(ExportArgs),
    /// Remove the snapshots a keep policy does not keep (restic's semantics).
    Forget(ForgetArgs),
    /// Free the space of data no snapshot needs (two-phase deletion).
    Prune(PruneArgs),
    /// Check the repository's structure; --read-data also reads every pack.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Chunk sizes: restic (1 MiB average; restic can write too) or db (256 KiB
    /// average: changed rows cost less, restic still reads and checks).
    #[arg(long, default_value = "restic", value_parser = parse_chunking)]
    pub chunking: Chunking,
}

fn parse_chunking(v: &str) -> Result<Chunking, String> {
    match v {
        "restic" => Ok(Chunking::Restic),
        "db" => Ok(Chunking::Db),
        _ => Err(format!("'{v}' is not a chunking preset; use restic or db")),
    }
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub env: EnvArgs,
    /// What to back up: all, files, or a database scope of the profile (repeatable).
    #[arg(long = "scope", value_name = "SCOPE")]
    pub scopes: Vec<String>,
    /// Worker threads (default: every core).
    #[arg(long, value_name = "N")]
    pub threads: Option<u32>,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Snapshot id (or a unique prefix of it), or `latest`.
    #[arg(value_name = "SNAPSHOT")]
    pub snapshot: String,
    #[command(flatten)]
    pub env: EnvArgs,
    #[command(flatten)]
    pub choices: RestoreChoices,
    #[command(flatten)]
    pub provision: ProvisionArgs,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Snapshot id (or a unique prefix of it), or `latest`.
    #[arg(value_name = "SNAPSHOT")]
    pub snapshot: String,
    /// The archive to write.
    #[arg(long, value_name = "FILE")]
    pub file: PathBuf,
    /// Compressor of the archive: gzip (engine-backup's default), zstd, bzip2, xz or none.
    #[arg(long, default_value = "gzip", value_parser = parse_codec)]
    pub compressor: Codec,
    /// Replace an existing file at --file.
    #[arg(long)]
    pub overwrite: bool,
    /// Parent of the private temporary directory.
    #[arg(long, env = "TMPDIR", value_name = "DIR")]
    pub tmpdir: Option<PathBuf>,
}

/// A keep policy with restic's semantics: each rule is applied on its own to
/// the whole list, newest first, and a snapshot kept by one rule still counts
/// for the others (borg's and attic's rules do not, and keep more).
#[derive(Debug, Clone, Args)]
pub struct KeepArgs {
    /// Keep the newest N.
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Keep the newest of each of the last N hours that have one.
    #[arg(long, value_name = "N")]
    pub keep_hourly: Option<u32>,
    /// Keep the newest of each of the last N days that have one.
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    /// Keep the newest of each of the last N weeks that have one.
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    /// Keep the newest of each of the last N months that have one.
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<u32>,
    /// Keep the newest of each of the last N years that have one (the current year counts).
    #[arg(long, value_name = "N")]
    pub keep_yearly: Option<u32>,
    /// Keep everything within this duration of the newest, e.g. 7d, 1y6m (m = months).
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<String>,
    /// Keep everything tagged with all of these tags (comma-separated; repeatable).
    #[arg(long, value_name = "TAGS")]
    pub keep_tag: Vec<String>,
    /// Show what would be removed; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl KeepArgs {
    pub fn retention(&self) -> Retention {
        Retention {
            last: self.keep_last,
            hourly: self.keep_hourly,
            daily: self.keep_daily,
            weekly: self.keep_weekly,
            monthly: self.keep_monthly,
            yearly: self.keep_yearly,
            within: self.keep_within.clone(),
            tags: self.keep_tag.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct ForgetArgs {
    #[command(flatten)]
    pub keep: KeepArgs,
    /// Prune afterwards (two-phase).
    #[arg(long)]
    pub prune: bool,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Show what would be freed; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Delete unneeded packs at once instead of marking them for a later prune.
    /// Only when no backup can run against the repository meanwhile.
    #[arg(long)]
    pub instant_delete: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Also read, decrypt and verify every pack.
    #[arg(long)]
    pub read_data: bool,
}

impl RepoCommand {
    /// The verb as typed.
    pub fn name(&self) -> &'static str {
        match self {
            RepoCommand::Init(_) => "init",
            RepoCommand::Backup(_) => "backup",
            RepoCommand::Snapshots => "snapshots",
            RepoCommand::Restore(_) => "restore",
            RepoCommand::Export(_) => "export",
            RepoCommand::Forget(_) => "forget",
            RepoCommand::Prune(_) => "prune",
            RepoCommand::Check(_) => "check",
        }
    }

    /// The `--log` file of the verbs that take one.
    pub fn log_path(&self) -> Option<&Path> {
        match self {
            RepoCommand::Backup(b) => b.env.log.as_deref(),
            RepoCommand::Restore(r) => r.env.log.as_deref(),
            _ => None,
        }
    }
}

pub fn run(a: RepoArgs, log: &Log) -> holdfast::Result<()> {
    let location = location(&a)?;
    let password_file = a.password_file.as_deref();
    match a.command {
        RepoCommand::Init(i) => {
            let password = password(password_file, true)?;
            let repo = Repo::init(&location, &password, i.chunking)?;
            println!("Created repository {}", repo.location());
            println!("Keep the password safe: without it the repository cannot be read.");
            Ok(())
        }
        RepoCommand::Backup(b) => backup(&mut open(&location, password_file)?, b, log),
        RepoCommand::Snapshots => {
            print_snapshots(&open(&location, password_file)?.snapshots()?);
            Ok(())
        }
        RepoCommand::Restore(r) => restore(&mut open(&location, password_file)?, r, log),
        RepoCommand::Export(e) => export(&mut open(&location, password_file)?, e),
        RepoCommand::Forget(f) => forget(&open(&location, password_file)?, f),
        RepoCommand::Prune(p) => {
            let mode = if p.instant_delete {
                PruneMode::Instant
            } else {
                PruneMode::TwoPhase
            };
            prune(&open(&location, password_file)?, mode, p.dry_run)
        }
        RepoCommand::Check(c) => check(&open(&location, password_file)?, c.read_data),
    }
}

/// The repository location: --repo, else the first of [`REPOSITORY_ENVS`]
/// that is set, with credentials from the environment and the options.
fn location(a: &RepoArgs) -> holdfast::Result<RepoLocation> {
    let (text, source) = match &a.repo {
        Some(text) => (text.clone(), LocationSource::CommandLine),
        None => REPOSITORY_ENVS
            .iter()
            .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
            .map(|text| (text, LocationSource::Environment))
            .ok_or_else(|| {
                Error::usage(format!(
                    "no repository given: pass --repo LOCATION or set {}",
                    REPOSITORY_ENVS[0]
                ))
            })?,
    };
    let mut remote = RemoteOptions::from_env();
    if let Some(file) = &a.rest_password_file {
        remote.rest_password = Some(first_line_secret(file, "--rest-password-file")?);
    }
    remote.cacert = a.cacert.as_deref().map(absolute);
    remote.retries = Some(a.retries);
    RepoLocation::parse(&text, &remote, source)
}

fn open(location: &RepoLocation, password_file: Option<&Path>) -> holdfast::Result<Repo> {
    Repo::check_location(location)?;
    Repo::open(location, &password(password_file, false)?)
}

/// The first line of a secret file, not empty.
fn first_line_secret(path: &Path, option: &str) -> holdfast::Result<Password> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::usage(format!("cannot read {option} {}: {e}", path.display())))?;
    let first = text.lines().next().unwrap_or("");
    non_empty(
        Password::new(first),
        &format!("{option} {}", path.display()),
    )
}

/// The password: from a file, the environment, or the terminal (twice when
/// creating a repository). Never from the command line.
fn password(file: Option<&Path>, new: bool) -> holdfast::Result<Password> {
    if let Some(path) = file {
        return first_line_secret(path, "--password-file");
    }
    if let Ok(value) = std::env::var(PASSWORD_ENV) {
        return non_empty(Password::new(value), PASSWORD_ENV);
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::usage(format!(
            "no repository password: pass --password-file FILE or set {PASSWORD_ENV}"
        )));
    }
    let ask = |prompt: &str| {
        rpassword::prompt_password(prompt)
            .map(Password::new)
            .map_err(|e| Error::io("read the password from the terminal", e))
    };
    let first = ask("Repository password: ")?;
    if new && ask("Repository password again: ")? != first {
        return Err(Error::usage(
            "the two passwords differ; nothing was created",
        ));
    }
    non_empty(first, "the prompt")
}

fn non_empty(p: Password, origin: &str) -> holdfast::Result<Password> {
    if p.is_empty() {
        return Err(Error::usage(format!("the password from {origin} is empty")));
    }
    Ok(p)
}

fn backup(repo: &mut Repo, a: BackupArgs, log: &Log) -> holdfast::Result<()> {
    let env = a.env.environment()?;
    let scopes = ops::expand_scopes(&env, &a.scopes)?;
    let application_version = holdfast::profile::installed_version(
        &env.profile.version,
        env.root.path(),
        a.env.installed_version.as_deref(),
    )?;
    let req = ops::repo::RepoBackupRequest {
        scopes,
        tmpdir: a.env.tmpdir()?,
        application_version,
        threads: a
            .threads
            .unwrap_or_else(crate::engine_backup::hiargs::default_threads),
        env,
    };
    let outcome = ops::repo::backup(repo, &req, log)?;
    let s = &outcome.snapshot;
    log.output(&format!(
        "Snapshot {} saved: {} read, {} new data ({} stored)",
        s.short_id(),
        bytes(s.source_bytes),
        bytes(s.added_bytes),
        bytes(s.added_stored_bytes)
    ));
    log.output("Done.");
    Ok(())
}

fn restore(repo: &mut Repo, a: RestoreArgs, log: &Log) -> holdfast::Result<()> {
    let tmpdir = a.env.tmpdir()?;
    log.output(&format!("Reading snapshot '{}'", a.snapshot));
    let archive = ops::repo::materialise(repo, &a.snapshot, &tmpdir)?;
    let what = format!("snapshot {}", archive.snapshot.short_id());
    let manifest = holdfast::archive::peek_manifest(&archive.path());
    let env = match (&manifest, archive.snapshot.tag("profile")) {
        (None, Some(taken_with)) => {
            let env = a.env.environment()?;
            if taken_with != env.profile.name {
                return Err(Error::usage(format!(
                    "{what} was taken with profile '{taken_with}', not '{}'; pass --profile {taken_with}",
                    env.profile.name
                )));
            }
            env
        }
        (manifest, _) => a.env.environment_for(manifest.as_ref(), &what)?,
    };
    let jobs = a.choices.jobs(&env)?;
    let scopes = ops::expand_scopes(&env, &a.choices.scopes)?;
    let installed_version = holdfast::profile::installed_version(
        &env.profile.version,
        env.root.path(),
        a.env.installed_version.as_deref(),
    )?;
    log.line(&format!(
        "Snapshot {} materialised as {}",
        archive.snapshot.id,
        archive.path().display()
    ));
    let restore_permissions = a.choices.permissions();
    let provision = a.provision.request(&env)?;
    let req = RestoreRequest {
        scopes,
        file: archive.path(),
        tmpdir,
        restore_permissions,
        keep_temporary_data: a.choices.keep_temporary_data,
        jobs,
        installed_version,
        credentials: BTreeMap::new(),
        provision,
        env,
    };
    ops::restore::run(&req, log)?;
    log.output("Done.");
    Ok(())
}

fn export(repo: &mut Repo, a: ExportArgs) -> holdfast::Result<()> {
    let tmpdir = a.tmpdir.clone().unwrap_or_else(std::env::temp_dir);
    let file = absolute(&a.file);
    let options = WriterOptions {
        codec: a.compressor,
        level: None,
        threads: crate::engine_backup::hiargs::default_threads(),
        overwrite: a.overwrite,
    };
    let info = ops::repo::export(repo, &a.snapshot, &file, options, &tmpdir)?;
    println!(
        "Snapshot {} written to {} ({})",
        info.short_id(),
        file.display(),
        a.compressor
    );
    Ok(())
}

fn forget(repo: &Repo, a: ForgetArgs) -> holdfast::Result<()> {
    let policy = a.keep.retention();
    let report = repo.forget(&policy, &Zoned::now(), a.keep.dry_run)?;
    print_verdicts(&report.verdicts, a.keep.dry_run, |s| {
        format!("{}  {}", s.short_id(), s.hostname)
    });
    if a.prune {
        prune(repo, PruneMode::TwoPhase, a.keep.dry_run)?;
    }
    Ok(())
}

fn prune(repo: &Repo, mode: PruneMode, dry_run: bool) -> holdfast::Result<()> {
    let r = repo.prune(mode, dry_run)?;
    let would = if dry_run { "would be " } else { "" };
    println!(
        "used data {}, unused data {}",
        bytes(r.used_bytes),
        bytes(r.unused_bytes)
    );
    println!(
        "{} pack(s) {would}deleted ({}), {} pack(s) {would}repacked",
        r.packs_deleted,
        bytes(r.bytes_deleted),
        r.packs_repacked
    );
    if mode == PruneMode::TwoPhase {
        println!(
            "{} pack(s) {would}marked for deletion: a prune 23 hours or more from now deletes them; {} marked pack(s) needed again {would}kept",
            r.packs_marked, r.packs_recovered
        );
    }
    Ok(())
}

fn check(repo: &Repo, read_data: bool) -> holdfast::Result<()> {
    let r = repo.check(read_data)?;
    for w in &r.warnings {
        println!("warning: {w}");
    }
    for e in &r.errors {
        println!("error: {e}");
    }
    let what = if read_data {
        "structure and every pack's data"
    } else {
        "structure (add --read-data to read every pack)"
    };
    if r.errors.is_empty() {
        println!(
            "Checked {what}: no errors, {} warning(s), {} snapshot(s)",
            r.warnings.len(),
            r.snapshots
        );
        Ok(())
    } else {
        Err(Error::failed(format!(
            "the repository check found {} error(s) (listed above)",
            r.errors.len()
        )))
    }
}

fn print_snapshots(list: &[SnapshotInfo]) {
    println!(
        "{:<8}  {:<19}  {:<24}  {:>10}  {:>10}  tags",
        "ID", "TIME", "HOST", "SIZE", "ADDED"
    );
    for s in list {
        println!(
            "{:<8}  {:<19}  {:<24}  {:>10}  {:>10}  {}",
            s.short_id(),
            s.time.strftime("%Y-%m-%d %H:%M:%S"),
            s.hostname,
            bytes(s.source_bytes),
            bytes(s.added_stored_bytes),
            s.tags.join(",")
        );
    }
    println!("{} snapshot(s)", list.len());
}

/// One line per item: keep (with the rules that keep it) or remove.
pub fn print_verdicts<T>(verdicts: &[Verdict<T>], dry_run: bool, label: impl Fn(&T) -> String) {
    let remove = if dry_run { "would remove" } else { "removed" };
    for v in verdicts {
        let time = v.time.strftime("%Y-%m-%d %H:%M:%S");
        if v.keep {
            println!(
                "keep          {time}  {}  ({})",
                label(&v.item),
                v.reasons.join(", ")
            );
        } else {
            println!("{remove:<12}  {time}  {}", label(&v.item));
        }
    }
    let kept = verdicts.iter().filter(|v| v.keep).count();
    println!("{kept} kept, {} {remove}", verdicts.len() - kept);
}

/// Bytes for people: 1.5 GiB.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
