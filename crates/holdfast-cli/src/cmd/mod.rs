//! `holdfast <verb>`: one module per verb; this file holds the verb list and the
//! options every verb shares.

mod backup;
mod demo;
mod migrate;
mod profile;
mod prune_archives;
mod repo;
mod restore;
pub mod schema;
mod serve;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use holdfast::log::Log;
use holdfast::profile::{Environment, InstallRoot, Profile};

/// Back up, verify and restore PostgreSQL-backed application environments: the
/// databases, the roles they need and the application's configuration files, as
/// one archive. `engine-backup` is the same tool with oVirt's command line.
#[derive(Debug, Parser)]
#[command(name = "holdfast", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

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
    /// Apply a keep policy (--keep-daily 7 ...) to a directory of archives, by the backup time each records.
    PruneArchives(prune_archives::PruneArchivesArgs),
    /// Backup server: restic's REST protocol over a directory of repositories (append-only, htpasswd, TLS).
    Serve(serve::ServeArgs),
}

/// Where the application is and what it is.
#[derive(Debug, Clone, Args)]
pub struct EnvArgs {
    /// Application profile: a built-in name (ovirt-engine) or a TOML file.
    #[arg(long, default_value = "ovirt-engine", value_name = "NAME|FILE")]
    pub profile: String,
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
    /// Log file (created 0600, engine-backup's line format).
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Parent of the private temporary directory.
    #[arg(long, env = "TMPDIR", value_name = "DIR")]
    pub tmpdir: Option<PathBuf>,
}

impl EnvArgs {
    pub fn environment(&self) -> holdfast::Result<Environment> {
        let profile = Profile::load(&self.profile)?;
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

    pub fn open_log(&self) -> holdfast::Result<Log> {
        match &self.log {
            Some(p) => Log::create(p),
            None => Ok(Log::console_only()),
        }
    }
}

/// Run a parsed command line; errors print one line and exit 1.
pub fn run(cli: Cli) -> ExitCode {
    // Operations turn a termination request into a rollback; the server
    // handles its own (it stops accepting and ends).
    if !matches!(cli.command, Command::Serve(_)) {
        holdfast::interrupt::install();
    }
    let result = match cli.command {
        Command::Backup(a) => backup::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Restore(a) => restore::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Migrate(a) => migrate::run(a),
        Command::Profile(c) => profile::run(c),
        Command::Schema(a) => schema::run(a),
        Command::Repo(a) => repo::run(a),
        Command::PruneArchives(a) => prune_archives::run(a),
        Command::Serve(a) => serve::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Last line of defence: no known secret leaves in an error message.
            let message = holdfast::secret::Redactor::global().redact(&e.to_string());
            eprintln!("holdfast: error: {message}");
            ExitCode::from(1)
        }
    }
}

/// Make a relative path absolute against the current directory.
pub fn absolute(p: &std::path::Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}
