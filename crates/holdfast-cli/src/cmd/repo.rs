//! `holdfast repo <verb>`: the deduplicating repository (restic's format):
//! init, backup, snapshots, restore, export, forget, prune, check and repair, in a
//! directory, on a REST server or in an S3 bucket. The password comes from
//! --password-file, HOLDFAST_REPO_PASSWORD or a prompt, never from the
//! command line; so do the REST password and the S3 keys (restic's variables).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use holdfast::archive::{Codec, WriterOptions};
use holdfast::log::Log;
use holdfast::ops::wal::retention as wal_retention;
use holdfast::ops::{self, RepoBackupRequest};
use holdfast::repo::jiff::Zoned;
use holdfast::repo::physical::is_environment;
use holdfast::repo::retention::Verdict;
use holdfast::repo::{
    Chunking, LocationSource, PruneMode, RemoteOptions, Repo, RepoLocation, Retention, SnapshotInfo,
};
use holdfast::{Error, Password};

use super::backup::parse_codec;
use super::partial::{self, PartialArgs};
use super::restore::{ProvisionArgs, RestoreChoices};
use super::{listing, EnvArgs};
use crate::shared::absolute;

/// The environment variable holding the repository password.
pub const PASSWORD_ENV: &str = "HOLDFAST_REPO_PASSWORD";

/// Environment variables naming the repository when --repo is not given, in order.
pub const REPOSITORY_ENVS: [&str; 3] =
    ["HOLDFAST_REPOSITORY", "RESTIC_REPOSITORY", "HOLDFAST_REPO"];

#[derive(Debug, Args)]
pub struct RepoArgs {
    #[command(flatten)]
    pub options: RepoOptions,
    #[command(subcommand)]
    pub command: RepoCommand,
}

/// Where the repository is and how it opens: shared by every verb that
/// writes to or reads from one (`repo`, `wal`, `vm`).
#[derive(Debug, Clone, Args)]
pub struct RepoOptions {
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
    /// File of an s3: location's keys in the AWS tools' credentials format
    /// ([default] aws_access_key_id, aws_secret_access_key, optional
    /// aws_session_token and region) instead of AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY.
    #[arg(long, global = true, value_name = "FILE")]
    pub s3_credentials_file: Option<PathBuf>,
    /// How often a failed request to a REST or S3 location is tried again
    /// (waiting 1, 2, 4, ... seconds).
    #[arg(long, global = true, value_name = "N", default_value_t = holdfast::repo::location::DEFAULT_RETRIES)]
    pub retries: u32,
}

// Parsed once per run: the size of the largest verb's options costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    /// Create a new, empty repository (the directory must be new or empty).
    Init(InitArgs),
    /// Back the environment up into one snapshot: uncompressed dumps, roles, files, manifest.
    Backup(BackupArgs),
    /// List the snapshots, oldest first.
    Snapshots(SnapshotsArgs),
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
    /// Repair the index (index the packs of an interrupted backup) or damaged snapshots.
    #[command(subcommand)]
    Repair(RepairCommand),
    /// Sizes: what a restore of every snapshot writes, the deduplicated and
    /// the stored data, and the ratios.
    Stats,
    /// List the files and directories of a snapshot (under PATH).
    Ls(LsArgs),
    /// Which files and tables changed between two snapshots, and what each change cost.
    Diff(DiffArgs),
    /// The repository's keys (passwords): list, add, remove, change.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Copy snapshots to another repository (only the data it lacks): a
    /// second copy off site.
    Copy(CopyArgs),
    /// Remove restic's stale locks (older than 30 minutes, or of a process on
    /// this host that is gone); holdfast itself takes none.
    Unlock(UnlockArgs),
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List the keys; `*` marks the one the password opens.
    List,
    /// Add a key: a second password that opens the repository.
    Add(NewPasswordArgs),
    /// Remove a key (never the one the password opens).
    Remove(KeyRemoveArgs),
    /// Change the password: add a key for the new one, then remove the current key.
    Passwd(NewPasswordArgs),
}

#[derive(Debug, Args)]
pub struct NewPasswordArgs {
    /// File whose first line is the new password (else a prompt, twice).
    #[arg(long, value_name = "FILE")]
    pub new_password_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct KeyRemoveArgs {
    /// The key's id, or a unique prefix of it (see 'holdfast repo key list').
    #[arg(value_name = "ID")]
    pub id: String,
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// Snapshots to copy (ids, unique prefixes or `latest`; default: all).
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    /// The destination repository (created beforehand with 'holdfast repo init').
    #[arg(long, value_name = "LOCATION")]
    pub to: String,
    /// File whose first line is the destination's password (else HOLDFAST_TO_REPO_PASSWORD).
    #[arg(long, value_name = "FILE")]
    pub to_password_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Snapshot id (or a unique prefix of it), or `latest`.
    #[arg(value_name = "SNAPSHOT")]
    pub snapshot: String,
    /// Only what is at or under this path (e.g. /holdfast/ovirt-engine/db).
    #[arg(value_name = "PATH")]
    pub path: Option<String>,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The older snapshot.
    #[arg(value_name = "A")]
    pub a: String,
    /// The newer snapshot.
    #[arg(value_name = "B")]
    pub b: String,
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// Remove every lock, also those whose process may still run.
    #[arg(long)]
    pub remove_all: bool,
}

#[derive(Debug, Subcommand)]
pub enum RepairCommand {
    /// Index the pack files no index references (left by an interrupted
    /// backup), and drop index entries of packs that are gone. A prune then
    /// removes what no snapshot needs.
    Index(RepairIndexArgs),
    /// Rewrite snapshots whose data is missing: a file whose contents are
    /// missing is renamed `<name>.repaired`, and the new snapshot is tagged `repaired`.
    Snapshots(RepairSnapshotsArgs),
}

#[derive(Debug, Args)]
pub struct RepairIndexArgs {
    /// Show what would be repaired; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct RepairSnapshotsArgs {
    /// Remove the damaged original snapshots once their repaired copies are written.
    #[arg(long)]
    pub forget: bool,
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
    /// The superuser connection that reads the password verifiers of the
    /// roles the databases need [default: the local superuser over the unix
    /// socket, when it answers].
    #[command(flatten)]
    pub roles: super::admin::RolePasswordArgs,
    #[command(flatten)]
    pub physical: super::physical::PhysicalBackupArgs,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Snapshot id (or a unique prefix of it), or `latest` (with a profile
    /// given: the newest snapshot of that profile).
    #[arg(value_name = "SNAPSHOT", required_unless_present = "physical")]
    pub snapshot: Option<String>,
    #[command(flatten)]
    pub env: EnvArgs,
    #[command(flatten)]
    pub choices: RestoreChoices,
    #[command(flatten)]
    pub provision: ProvisionArgs,
    #[command(flatten)]
    pub partial: PartialArgs,
    #[command(flatten)]
    pub physical: super::physical::PhysicalRestoreArgs,
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

#[derive(Debug, Args)]
pub struct SnapshotsArgs {
    /// Print one JSON document (version, snapshots: id, time, host, profile,
    /// tags, paths, sizes) instead of the table.
    #[arg(long)]
    pub json: bool,
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
    /// Print one JSON document (version, each item with its time, whether it
    /// is kept and by which rules) instead of the lines.
    #[arg(long)]
    pub json: bool,
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
    /// Keep what point-in-time recovery to any time within this duration
    /// needs (e.g. 7d): the base backup before its start and the WAL since.
    #[arg(long, value_name = "DURATION")]
    pub keep_pitr_within: Option<String>,
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
    /// Print one JSON document (version, the byte and pack counts) instead
    /// of the lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Also read, decrypt and verify every pack.
    #[arg(long)]
    pub read_data: bool,
    /// Read only part of the packs: N/M (part N of M, by pack id: run 1/12
    /// to 12/12 month by month to read everything in a year), P% or a size
    /// (that much, chosen at random).
    #[arg(long, value_name = "SUBSET", conflicts_with = "read_data")]
    pub read_data_subset: Option<String>,
    /// Print one JSON document (version, read, snapshots, errors, warnings,
    /// pack counts) instead of the lines.
    #[arg(long)]
    pub json: bool,
}

impl RepoCommand {
    /// The verb as typed.
    pub fn name(&self) -> &'static str {
        match self {
            RepoCommand::Init(_) => "init",
            RepoCommand::Backup(_) => "backup",
            RepoCommand::Snapshots(_) => "snapshots",
            RepoCommand::Restore(_) => "restore",
            RepoCommand::Export(_) => "export",
            RepoCommand::Forget(_) => "forget",
            RepoCommand::Prune(_) => "prune",
            RepoCommand::Check(_) => "check",
            RepoCommand::Repair(_) => "repair",
            RepoCommand::Stats => "stats",
            RepoCommand::Ls(_) => "ls",
            RepoCommand::Diff(_) => "diff",
            RepoCommand::Key(_) => "key",
            RepoCommand::Copy(_) => "copy",
            RepoCommand::Unlock(_) => "unlock",
        }
    }

    /// The `--log` file of the verbs that take one.
    pub fn log_path(&self) -> Option<&Path> {
        self.env().and_then(|e| e.log.as_deref())
    }

    /// The environment options of the verbs that take them.
    pub fn env(&self) -> Option<&EnvArgs> {
        match self {
            RepoCommand::Backup(b) => Some(&b.env),
            RepoCommand::Restore(r) => Some(&r.env),
            _ => None,
        }
    }
}

pub fn run(a: RepoArgs, log: &Log) -> holdfast::Result<()> {
    let location = location(&a.options)?;
    let password_file = a.options.password_file.as_deref();
    match a.command {
        RepoCommand::Init(i) => {
            let password = password(password_file, true)?;
            let repo = Repo::init(&location, &password, i.chunking)?;
            println!("Created repository {}", repo.location());
            println!("Keep the password safe: without it the repository cannot be read.");
            Ok(())
        }
        RepoCommand::Backup(b) => backup(&mut open_drawn(&location, password_file, log)?, b, log),
        RepoCommand::Snapshots(s) => {
            let list = open(&location, password_file)?.snapshots()?;
            if s.json {
                let mut doc = serde_json::Map::new();
                doc.insert(
                    "snapshots".into(),
                    list.iter().map(listing::snapshot).collect(),
                );
                listing::print(doc);
            } else {
                print_snapshots(&list);
            }
            Ok(())
        }
        RepoCommand::Restore(r) if r.physical.physical => {
            // The restored server's restore_command reads the password from a 0600 file.
            let password = password(password_file, false)?;
            let mut repo = Repo::open_with_progress(&location, &password, log.progress_sink())?;
            super::physical::restore(&mut repo, &r.physical, &r.env, password, log)
        }
        RepoCommand::Restore(r) => restore(&mut open_drawn(&location, password_file, log)?, r, log),
        RepoCommand::Export(e) => export(&mut open(&location, password_file)?, e),
        RepoCommand::Forget(f) => forget(&open(&location, password_file)?, f),
        RepoCommand::Prune(p) => {
            let mode = if p.instant_delete {
                PruneMode::Instant
            } else {
                PruneMode::TwoPhase
            };
            let repo = open(&location, password_file)?;
            if p.json {
                let r = repo.prune(mode, p.dry_run)?;
                let mut doc = serde_json::Map::new();
                doc.insert("prune".into(), listing::prune(&r, p.dry_run));
                listing::print(doc);
                return Ok(());
            }
            prune(&repo, mode, p.dry_run)
        }
        RepoCommand::Check(c) => check(
            &open(&location, password_file)?,
            c.read_data,
            c.read_data_subset.as_deref(),
            c.json,
        ),
        RepoCommand::Repair(RepairCommand::Index(r)) => {
            repair_index(&open(&location, password_file)?, r.dry_run)
        }
        RepoCommand::Repair(RepairCommand::Snapshots(r)) => {
            repair_snapshots(&mut open(&location, password_file)?, r)
        }
        RepoCommand::Copy(c) => copy(
            &mut open(&location, password_file)?,
            &a.options.rest_password_file,
            c,
        ),
        RepoCommand::Key(k) => key(&location, password_file, k),
        RepoCommand::Stats => stats(&open(&location, password_file)?),
        RepoCommand::Ls(l) => ls(&mut open(&location, password_file)?, l),
        RepoCommand::Diff(d) => diff(&mut open(&location, password_file)?, d),
        RepoCommand::Unlock(u) => unlock(&open(&location, password_file)?, u.remove_all),
    }
}

/// The repository location: --repo, else the first of [`REPOSITORY_ENVS`]
/// that is set, with credentials from the environment and the options.
pub(super) fn location(a: &RepoOptions) -> holdfast::Result<RepoLocation> {
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
    if let Some(file) = &a.s3_credentials_file {
        let text = Password::from_file_whole(file).map_err(|e| {
            Error::usage(format!(
                "cannot read --s3-credentials-file {}: {e}",
                file.display()
            ))
        })?;
        remote.read_s3_credentials(text.expose(), file)?;
    }
    remote.cacert = a.cacert.as_deref().map(absolute);
    remote.retries = Some(a.retries);
    RepoLocation::parse(&text, &remote, source)
}

pub(super) fn open(
    location: &RepoLocation,
    password_file: Option<&Path>,
) -> holdfast::Result<Repo> {
    Repo::check_location(location)?;
    Repo::open(location, &password(password_file, false)?)
}

/// [`open`], the repository's long steps drawn as the log's progress bars.
pub(super) fn open_drawn(
    location: &RepoLocation,
    password_file: Option<&Path>,
    log: &Log,
) -> holdfast::Result<Repo> {
    Repo::check_location(location)?;
    Repo::open_with_progress(
        location,
        &password(password_file, false)?,
        log.progress_sink(),
    )
}

/// The first line of a secret file, not empty.
fn first_line_secret(path: &Path, option: &str) -> holdfast::Result<Password> {
    let password = Password::from_file(path)
        .map_err(|e| Error::usage(format!("cannot read {option} {}: {e}", path.display())))?;
    non_empty(password, &format!("{option} {}", path.display()))
}

/// The password: from a file, the environment, or the terminal (twice when
/// creating a repository). Never from the command line.
pub(super) fn password(file: Option<&Path>, new: bool) -> holdfast::Result<Password> {
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
    if a.physical.physical {
        return super::physical::backup(repo, &a.physical, &a.env, log);
    }
    let env = a.env.environment()?;
    let scopes = ops::expand_scopes(&env, &a.scopes)?;
    let mut req = RepoBackupRequest::new(
        env,
        scopes,
        a.env.tmpdir()?,
        a.env.installed_version.as_deref(),
    )?;
    if let Some(threads) = a.threads {
        req.threads = threads;
    }
    req.role_passwords = a.roles.role_passwords()?;
    let outcome = ops::repo::backup(repo, &req, log)?;
    log.output(&snapshot_saved("Snapshot", &outcome.snapshot));
    log.output("Done.");
    Ok(())
}

/// The console line of a stored snapshot: what was read, new and stored.
pub(super) fn snapshot_saved(what: &str, s: &SnapshotInfo) -> String {
    format!(
        "{what} {} saved: {} read, {} new data ({} stored)",
        s.short_id(),
        bytes(s.source_bytes),
        bytes(s.added_bytes),
        bytes(s.added_stored_bytes)
    )
}

/// `latest` with a profile given (--profile or HOLDFAST_PROFILE) is the
/// newest snapshot of that profile: one repository holds several
/// applications' nights. Any other name is taken as it is. WAL and base
/// backup snapshots are never `latest` here: they are no environment's night.
fn newest_of_profile(repo: &Repo, snapshot: &str, env: &EnvArgs) -> holdfast::Result<String> {
    if snapshot != "latest" {
        return Ok(snapshot.to_string());
    }
    let Some(given) = env.given_profile() else {
        return Ok(repo
            .snapshots()?
            .into_iter()
            .filter(is_environment)
            .max_by(|a, b| a.time.cmp(&b.time))
            .map_or_else(|| snapshot.to_string(), |s| s.id));
    };
    let name = holdfast::profile::Profile::load(&given)?.name;
    repo.snapshots()?
        .into_iter()
        .filter(is_environment)
        .filter(|s| s.tag("profile") == Some(name.as_str()))
        .max_by(|a, b| a.time.cmp(&b.time))
        .map(|s| s.id)
        .ok_or_else(|| {
            Error::usage(format!(
                "the repository holds no snapshot of profile '{name}'; list them with 'holdfast repo snapshots'"
            ))
        })
}

fn restore(repo: &mut Repo, a: RestoreArgs, log: &Log) -> holdfast::Result<()> {
    let tmpdir = a.env.tmpdir()?;
    let snapshot = newest_of_profile(repo, a.snapshot.as_deref().unwrap_or("latest"), &a.env)?;
    log.output(&format!("Reading snapshot '{snapshot}'"));
    // Files alone need none of the snapshot's dumps.
    let archive = if a.choices.scopes == ["files"] && !a.partial.asked() {
        ops::repo::materialise_files_under(repo, &snapshot, Path::new(""), &tmpdir)?
    } else {
        ops::repo::materialise(repo, &snapshot, &tmpdir)?
    };
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
    let provision = a.provision.request(&env)?;
    let req = a.choices.request(
        env,
        archive.path(),
        tmpdir,
        a.env.installed_version.as_deref(),
        provision,
    )?;
    log.line(&format!(
        "Snapshot {} materialised as {}",
        archive.snapshot.id,
        archive.path().display()
    ));
    if a.partial.asked() {
        return partial::run(req, &a.partial, &a.provision, log);
    }
    let clock = std::time::Instant::now();
    let outcome = ops::restore::run(&req, log)?;
    log.output(&super::restore::summary(&outcome, clock.elapsed()));
    log.output("Done.");
    Ok(())
}

fn export(repo: &mut Repo, a: ExportArgs) -> holdfast::Result<()> {
    let tmpdir = a.tmpdir.clone().unwrap_or_else(std::env::temp_dir);
    let file = absolute(&a.file);
    let options = WriterOptions {
        codec: a.compressor,
        level: None,
        threads: ops::default_threads(),
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
    let now = Zoned::now();
    // Decided first, removed after: the continuous archive's needs
    // (--keep-pitr-within, the WAL of the kept base backups) amend the policy's verdicts.
    let mut report = repo.forget(&policy, &now, true)?;
    let within = a
        .keep_pitr_within
        .as_deref()
        .map(holdfast::repo::retention::parse_restic_duration)
        .transpose()?;
    wal_retention::keep_window_base(&mut report.verdicts, within.as_ref(), &now)?;
    let all = repo.snapshots()?;
    let wal_going = wal_retention::removable_wal(&all, &report.verdicts);
    if !a.keep.dry_run {
        let ids: Vec<String> = report
            .verdicts
            .iter()
            .filter(|v| !v.keep)
            .map(|v| v.item.id.clone())
            .chain(wal_going.iter().map(|w| w.snapshot.id.clone()))
            .collect();
        repo.remove_snapshots(&ids)?;
    }
    if !wal_going.is_empty() && !a.keep.json {
        let would = if a.keep.dry_run {
            "would remove"
        } else {
            "removed"
        };
        let files: usize = wal_going.iter().map(|w| w.files).sum();
        println!(
            "WAL: {would} {} ({files} files) that no kept base backup needs",
            holdfast::log::count(wal_going.len(), "snapshot", "snapshots")
        );
    }
    if a.keep.json {
        let mut doc = serde_json::Map::new();
        doc.insert("dry_run".into(), a.keep.dry_run.into());
        doc.insert(
            "snapshots".into(),
            listing::verdicts(&report.verdicts, listing::snapshot),
        );
        if a.prune {
            let r = repo.prune(PruneMode::TwoPhase, a.keep.dry_run)?;
            doc.insert("prune".into(), listing::prune(&r, a.keep.dry_run));
        }
        listing::print(doc);
        return Ok(());
    }
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
    if r.packs_unreferenced > 0 {
        println!(
            "{} pack file(s) ({}) referenced by no index: left by an interrupted backup",
            r.packs_unreferenced,
            bytes(r.bytes_unreferenced)
        );
    }
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
    if !dry_run {
        println!(
            "pack files: {} before, {} after ({} freed; {} pack(s) of {} written by repacking)",
            bytes(r.pack_bytes_before),
            bytes(r.pack_bytes_after),
            bytes(r.pack_bytes_before.saturating_sub(r.pack_bytes_after)),
            r.packs_written,
            bytes(r.bytes_written)
        );
    }
    Ok(())
}

fn check(repo: &Repo, read_data: bool, subset: Option<&str>, json: bool) -> holdfast::Result<()> {
    let r = repo.check_subset(read_data, subset)?;
    let mut warnings: Vec<String> = Vec::new();
    let unreferenced = r.packs.unreferenced();
    if !unreferenced.is_empty() {
        warnings.push(format!(
            "{} pack file(s) ({}) are referenced by no index (restic check counts them as additional files): data of an interrupted backup. Non-critical; 'holdfast repo repair index' indexes them, then 'holdfast repo prune' removes what no snapshot needs",
            unreferenced.len(),
            bytes(unreferenced.iter().map(|(_, s)| s).sum())
        ));
    }
    let marked = r.packs.marked_files();
    if !marked.is_empty() {
        warnings.push(format!(
            "{} pack file(s) ({}) are marked for deletion by an earlier prune (restic check counts them as additional files): 'holdfast repo prune' deletes them 23 hours after marking, 'holdfast repo prune --instant-delete' at once",
            marked.len(),
            bytes(marked.iter().map(|(_, s)| s).sum())
        ));
    }
    let temporaries = &r.temporaries;
    if !temporaries.is_empty() {
        let stale = temporaries.iter().filter(|t| t.stale).count();
        warnings.push(format!(
            "{} temporary file(s) ({}) of interrupted writes, {stale} of them stale: the next backup, prune or repair removes the stale ones",
            temporaries.len(),
            bytes(temporaries.iter().map(|t| t.size).sum())
        ));
    }
    warnings.extend(r.warnings.iter().cloned());
    let what = match (subset, read_data) {
        (Some(subset), _) => format!("structure and the data of pack subset {subset}"),
        (None, true) => "structure and every pack's data".to_string(),
        (None, false) => "structure (add --read-data to read every pack)".to_string(),
    };
    if json {
        let mut doc = serde_json::Map::new();
        doc.insert(
            "read".into(),
            match (subset, read_data) {
                (Some(subset), _) => format!("subset {subset}"),
                (None, true) => "all".to_string(),
                (None, false) => "structure".to_string(),
            }
            .into(),
        );
        doc.insert("snapshots".into(), r.snapshots.into());
        doc.insert("errors".into(), r.errors.clone().into());
        doc.insert("warnings".into(), warnings.clone().into());
        doc.insert("unreferenced_packs".into(), unreferenced.len().into());
        doc.insert("marked_packs".into(), marked.len().into());
        doc.insert("temporary_files".into(), temporaries.len().into());
        listing::print(doc);
    } else {
        for w in &warnings {
            println!("warning: {w}");
        }
        for e in &r.errors {
            println!("error: {e}");
        }
    }
    if r.errors.is_empty() {
        if !json {
            println!(
                "Checked {what}: no errors, {} warning(s), {} snapshot(s)",
                warnings.len(),
                r.snapshots
            );
        }
        Ok(())
    } else {
        Err(Error::failed(format!(
            "the repository check found {} error(s) (listed above)",
            r.errors.len()
        )))
    }
}

fn repair_index(repo: &Repo, dry_run: bool) -> holdfast::Result<()> {
    let r = repo.repair_index(dry_run)?;
    for t in &r.temporaries_removed {
        println!("removed stale temporary file {}", t.path.display());
    }
    let (before, before_bytes) = r.unreferenced_before;
    let (after, after_bytes) = r.unreferenced_after;
    if dry_run {
        println!(
            "{before} pack file(s) ({}) referenced by no index would be read and indexed",
            bytes(before_bytes)
        );
        return Ok(());
    }
    println!(
        "{} pack file(s) indexed; {after} pack file(s) ({}) still referenced by no index{}",
        before.saturating_sub(after),
        bytes(after_bytes),
        if after > 0 {
            " (unreadable: 'holdfast repo prune' removes them)"
        } else {
            ""
        }
    );
    println!("Now 'holdfast repo prune' frees what no snapshot needs.");
    Ok(())
}

fn repair_snapshots(repo: &mut Repo, a: RepairSnapshotsArgs) -> holdfast::Result<()> {
    let r = repo.repair_snapshots(a.forget, false)?;
    for s in &r.snapshots_written {
        println!("repaired snapshot written: {}", s.short_id());
    }
    for id in &r.snapshots_removed {
        println!("damaged snapshot removed: {}", &id[..8.min(id.len())]);
    }
    println!(
        "{} snapshot(s) repaired, {} removed",
        r.snapshots_written.len(),
        r.snapshots_removed.len()
    );
    Ok(())
}

fn key(
    location: &RepoLocation,
    password_file: Option<&Path>,
    command: KeyCommand,
) -> holdfast::Result<()> {
    let repo = open(location, password_file)?;
    match command {
        KeyCommand::List => {
            let keys = repo.keys()?;
            println!(" {:<8}  {:<19}  {:<12}  HOST", "ID", "CREATED", "USER");
            for k in &keys {
                println!(
                    "{}{:<8}  {:<19}  {:<12}  {}",
                    if k.current { "*" } else { " " },
                    &k.id[..8],
                    k.created
                        .as_ref()
                        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
                        .unwrap_or_default(),
                    k.username,
                    k.hostname
                );
            }
            println!("{} key(s)", keys.len());
        }
        KeyCommand::Add(a) => {
            let new = new_password(a.new_password_file.as_deref())?;
            let id = repo.add_key(&new)?;
            println!("Added key {}", &id[..8]);
        }
        KeyCommand::Remove(r) => {
            let id = repo.remove_key(&r.id)?;
            println!("Removed key {}", &id[..8]);
        }
        KeyCommand::Passwd(a) => {
            let new = new_password(a.new_password_file.as_deref())?;
            let old = repo
                .keys()?
                .into_iter()
                .find(|k| k.current)
                .ok_or_else(|| Error::failed("the key this password opens is not listed"))?;
            let added = repo.add_key(&new)?;
            // The new password must open the repository before the old key goes.
            let reopened = Repo::open(location, &new)?;
            reopened.remove_key(&old.id)?;
            println!(
                "Password changed: key {} added, key {} removed",
                &added[..8],
                &old.id[..8]
            );
        }
    }
    Ok(())
}

/// A new password: from a file, or the terminal (twice). Never the command line.
fn new_password(file: Option<&Path>) -> holdfast::Result<Password> {
    if let Some(path) = file {
        return first_line_secret(path, "--new-password-file");
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::usage(
            "no new password: pass --new-password-file FILE",
        ));
    }
    let ask = |prompt: &str| {
        rpassword::prompt_password(prompt)
            .map(Password::new)
            .map_err(|e| Error::io("read the password from the terminal", e))
    };
    let first = ask("New repository password: ")?;
    if ask("New repository password again: ")? != first {
        return Err(Error::usage(
            "the two passwords differ; nothing was changed",
        ));
    }
    non_empty(first, "the prompt")
}

/// The environment variable holding the copy destination's password.
pub const TO_PASSWORD_ENV: &str = "HOLDFAST_TO_REPO_PASSWORD";

fn copy(
    repo: &mut Repo,
    rest_password_file: &Option<PathBuf>,
    a: CopyArgs,
) -> holdfast::Result<()> {
    let mut remote = RemoteOptions::from_env();
    if let Some(file) = rest_password_file {
        remote.rest_password = Some(first_line_secret(file, "--rest-password-file")?);
    }
    let to = RepoLocation::parse(&a.to, &remote, LocationSource::CommandLine)?;
    let password = match &a.to_password_file {
        Some(file) => first_line_secret(file, "--to-password-file")?,
        None => match std::env::var(TO_PASSWORD_ENV) {
            Ok(v) => non_empty(Password::new(v), TO_PASSWORD_ENV)?,
            Err(_) => {
                return Err(Error::usage(format!(
                "no password for --to {to}: pass --to-password-file FILE or set {TO_PASSWORD_ENV}"
            )))
            }
        },
    };
    Repo::check_location(&to)?;
    let mut dest = Repo::open(&to, &password)?;
    let (copied, present) = repo.copy_to(&mut dest, &a.snapshots)?;
    for s in &copied {
        println!(
            "copied  {}  {}",
            s.short_id(),
            s.time.strftime("%Y-%m-%d %H:%M:%S")
        );
    }
    for s in &present {
        println!(
            "already there  {}  {}",
            s.short_id(),
            s.time.strftime("%Y-%m-%d %H:%M:%S")
        );
    }
    println!(
        "{} snapshot(s) copied to {to}, {} already there",
        copied.len(),
        present.len()
    );
    Ok(())
}

fn stats(repo: &Repo) -> holdfast::Result<()> {
    let s = repo.stats()?;
    println!("snapshots:          {}", s.snapshots);
    println!(
        "restore size:       {} (every snapshot's files, what restoring each writes)",
        bytes(s.restore_bytes)
    );
    println!(
        "deduplicated data:  {} in {} blob(s), before compression",
        bytes(s.raw_bytes),
        s.blobs
    );
    println!(
        "stored data:        {} (compressed, encrypted)",
        bytes(s.stored_bytes)
    );
    println!(
        "pack files:         {} in {} file(s)",
        bytes(s.pack_bytes),
        s.pack_files
    );
    println!(
        "deduplication:      {:.2}x (restore size / deduplicated data)",
        s.dedup_ratio()
    );
    println!(
        "compression:        {:.2}x (deduplicated / stored data)",
        s.compression_ratio()
    );
    Ok(())
}

fn ls(repo: &mut Repo, a: LsArgs) -> holdfast::Result<()> {
    let (snap, entries) = repo.ls(&a.snapshot, a.path.as_deref())?;
    println!(
        "snapshot {} of {} ({})",
        snap.short_id(),
        snap.time.strftime("%Y-%m-%d %H:%M:%S"),
        snap.hostname
    );
    for e in &entries {
        if e.is_dir {
            println!("{:>10}  {}/", "", e.path);
        } else {
            println!("{:>10}  {}", bytes(e.size), e.path);
        }
    }
    let files = entries.iter().filter(|e| !e.is_dir).count();
    println!(
        "{files} file(s), {}",
        bytes(entries.iter().map(|e| e.size).sum())
    );
    Ok(())
}

fn diff(repo: &mut Repo, a: DiffArgs) -> holdfast::Result<()> {
    use holdfast::repo::Change;
    let d = ops::repo::diff(repo, &a.a, &a.b)?;
    println!(
        "from snapshot {} ({}) to {} ({})",
        d.older.short_id(),
        d.older.time.strftime("%Y-%m-%d %H:%M:%S"),
        d.newer.short_id(),
        d.newer.time.strftime("%Y-%m-%d %H:%M:%S")
    );
    let size = |s: Option<u64>| s.map_or_else(|| "-".to_string(), bytes);
    for f in &d.files {
        let mark = match f.change {
            Change::Added => "+",
            Change::Removed => "-",
            Change::Modified => "M",
        };
        println!(
            "{mark}  {}  {} -> {}, {} new",
            f.path,
            size(f.size_before),
            size(f.size_after),
            bytes(f.new_bytes)
        );
    }
    match &d.tables {
        Some(tables) => {
            for t in tables {
                let rows = |r: Option<u64>| r.map_or_else(|| "-".to_string(), |n| n.to_string());
                println!(
                    "table {} {}: {} -> {} rows, content changed",
                    t.scope,
                    t.table,
                    rows(t.rows_before),
                    rows(t.rows_after)
                );
            }
            println!(
                "{} file(s) and {} table(s) changed, {} of new data",
                d.files.len(),
                tables.len(),
                bytes(d.files.iter().map(|f| f.new_bytes).sum())
            );
        }
        None => println!(
            "{} file(s) changed, {} of new data (no holdfast manifest in both: tables not compared)",
            d.files.len(),
            bytes(d.files.iter().map(|f| f.new_bytes).sum())
        ),
    }
    Ok(())
}

fn unlock(repo: &Repo, remove_all: bool) -> holdfast::Result<()> {
    let locks = repo.locks()?;
    let describe = |l: &holdfast::repo::locks::Lock| match l.time {
        Some(t) => format!(
            "{} lock {} of {}@{} pid {} taken {}",
            if l.exclusive { "exclusive" } else { "shared" },
            &l.id[..8],
            l.username,
            l.hostname,
            l.pid,
            t.strftime("%Y-%m-%d %H:%M:%S UTC")
        ),
        None => format!("lock {}", &l.id[..8]),
    };
    let (gone, kept): (Vec<_>, Vec<_>) =
        locks.iter().partition(|l| remove_all || l.stale.is_some());
    repo.remove_locks(&gone)?;
    for l in &gone {
        let why = l.stale.as_deref().unwrap_or("--remove-all");
        println!("removed {} ({why})", describe(l));
    }
    for l in &kept {
        println!(
            "kept {}: its process may still run; --remove-all removes it",
            describe(l)
        );
    }
    println!("{} lock(s) removed, {} kept", gone.len(), kept.len());
    Ok(())
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
