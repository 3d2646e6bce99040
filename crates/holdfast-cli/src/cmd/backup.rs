//! `holdfast backup`: engine-backup's archive, with holdfast's faster defaults.

use std::path::PathBuf;

use clap::Args;
use holdfast::archive::encryption::Recipients;
use holdfast::archive::{Codec, DumpFormat};
use holdfast::conf::ConfValues;
use holdfast::log::Log;
use holdfast::ops::{self, BackupRequest, DumpPlan};
use holdfast::profile::{Environment, InstallRoot, Profile};
use holdfast::{Error, Password};

use super::EnvArgs;
use crate::shared::absolute;

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub env: EnvArgs,
    /// What to back up: all, files, or a database scope of the profile (repeatable).
    #[arg(long = "scope", value_name = "SCOPE")]
    pub scopes: Vec<String>,
    /// The archive to write (written to a temporary name, then renamed).
    #[arg(long, value_name = "FILE")]
    pub file: PathBuf,
    /// Compressor of the dumps and of the files member: zstd, gzip, bzip2, xz or none.
    #[arg(long, default_value = "zstd", value_parser = parse_codec)]
    pub compressor: Codec,
    /// Compression level of the dumps and the files member (zstd 1-19, default
    /// 1; gzip and xz 0-9, default 6; bzip2 1-9, default 9).
    #[arg(long, value_name = "N")]
    pub compress_level: Option<i32>,
    /// Compressor of the outer archive (none: its members are compressed already).
    #[arg(long, default_value = "none", value_parser = parse_codec)]
    pub archive_compressor: Codec,
    /// Dump format of every database: custom (parallel restore) or plain (SQL).
    #[arg(long, default_value = "custom", value_parser = parse_format)]
    pub dump_format: DumpFormat,
    /// Compression threads (default: every core).
    #[arg(long, value_name = "N")]
    pub threads: Option<u32>,
    /// Replace an existing archive at --file.
    #[arg(long)]
    pub overwrite: bool,
    /// The superuser connection that reads the password verifiers of the
    /// roles the databases need [default: the local superuser over the unix
    /// socket, when it answers].
    #[command(flatten)]
    pub roles: super::admin::RolePasswordArgs,
    /// Back up this one database, without an application profile (the
    /// built-in postgresql profile): postgres://USER@HOST:PORT/DATABASE, no
    /// password in it.
    #[arg(long, value_name = "URL", conflicts_with = "profile")]
    pub database_url: Option<String>,
    /// With --database-url: file whose first line is the role's password [default:
    /// none, for trust or peer authentication].
    #[arg(long, value_name = "FILE", requires = "database_url")]
    pub database_passfile: Option<PathBuf>,
    /// Encrypt the archive file to this age public key (age1…, repeatable):
    /// this machine can then write archives but not read them. A checksum
    /// file (FILE.sha256) is written beside it.
    #[arg(long, value_name = "RECIPIENT")]
    pub encrypt_to: Vec<String>,
    /// With --database-url: a directory or file to keep beside the database (an
    /// absolute path, repeatable).
    #[arg(long = "path", value_name = "PATH", requires = "database_url")]
    pub paths: Vec<PathBuf>,
}

pub fn parse_codec(v: &str) -> Result<Codec, String> {
    let v = if v.eq_ignore_ascii_case("none") {
        "None"
    } else {
        v
    };
    Codec::from_option(v).map_err(|e| e.to_string())
}

pub fn parse_format(v: &str) -> Result<DumpFormat, String> {
    DumpFormat::parse(v).map_err(|e| e.to_string())
}

/// The environment of a `--database-url` backup: the built-in postgresql profile
/// with the database's connection in memory and the `--path`s as its files.
fn url_environment(a: &BackupArgs, url: &str) -> holdfast::Result<Environment> {
    let params = holdfast::conf::url::connection(url, "--database-url").map_err(Error::usage)?;
    let root = InstallRoot::new(&a.env.install_root)?;
    let mut profile = Profile::load("postgresql")?;
    for path in &a.paths {
        let relative = path
            .strip_prefix(root.path())
            .ok()
            .filter(|_| path.is_absolute())
            .ok_or_else(|| {
                Error::usage(format!(
                    "--path {}: give an absolute path under the install root {}",
                    path.display(),
                    root.path().display()
                ))
            })?;
        if !path.exists() {
            return Err(Error::usage(format!(
                "--path {}: no such file or directory",
                path.display()
            )));
        }
        profile
            .files
            .include
            .push(relative.to_string_lossy().into_owned());
    }
    let db = &profile.databases[0];
    let key = |k: &str| format!("{}{k}", db.key_prefix);
    let mut conf = ConfValues::new();
    conf.set(key("HOST"), params.host.clone());
    conf.set(key("PORT"), params.port.to_string());
    conf.set(key("USER"), params.user.clone());
    conf.set(key("DATABASE"), params.database.clone());
    if let Some(file) = &a.database_passfile {
        let password = Password::from_file(file).map_err(|e| {
            Error::usage(format!(
                "cannot read the password file {} ({e}); pass a readable file to --database-passfile",
                file.display()
            ))
        })?;
        conf.set(key("PASSWORD"), password.expose().to_string());
    }
    Ok(Environment {
        profile,
        root,
        conf,
    })
}

pub fn run(a: BackupArgs, log: &Log) -> holdfast::Result<()> {
    let env = match &a.database_url {
        Some(url) => url_environment(&a, url)?,
        None => a.env.environment()?,
    };
    // Without --path a --database-url backup is the database alone.
    let scopes = if a.database_url.is_some() && a.paths.is_empty() && a.scopes.is_empty() {
        vec!["db".to_string()]
    } else {
        ops::expand_scopes(&env, &a.scopes)?
    };
    let mut req = BackupRequest::new(
        env,
        scopes,
        absolute(&a.file),
        a.env.tmpdir()?,
        a.env.installed_version.as_deref(),
    )?
    .with_dump_plan(DumpPlan {
        format: a.dump_format,
        codec: a.compressor,
        ..DumpPlan::holdfast_default()
    });
    req.archive_codec = a.archive_compressor;
    req.files_codec = a.compressor;
    req.compress_level = a.compress_level;
    req.overwrite = a.overwrite;
    req.role_passwords = a.roles.role_passwords()?;
    if !a.encrypt_to.is_empty() {
        req.encrypt_to = Some(Recipients::parse(&a.encrypt_to, "--encrypt-to")?);
    }
    if let Some(threads) = a.threads {
        req.threads = threads;
    }
    let clock = std::time::Instant::now();
    let outcome = ops::backup::run(&req, log)?;
    let took = clock.elapsed().as_secs_f64();
    log.output(&format!(
        "Backed up {} into {}: {} in {took:.1} s ({}/s)",
        outcome.scopes.join(", "),
        outcome.file.display(),
        super::repo::bytes(outcome.bytes),
        super::repo::bytes((outcome.bytes as f64 / took.max(0.001)) as u64),
    ));
    log.output("Done.");
    Ok(())
}
