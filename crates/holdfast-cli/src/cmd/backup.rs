//! `holdfast backup`: engine-backup's archive, with holdfast's faster defaults.

use std::path::PathBuf;

use clap::Args;
use holdfast::archive::{Codec, DumpFormat};
use holdfast::log::Log;
use holdfast::ops::{self, BackupRequest, DumpPlan};

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

pub fn run(a: BackupArgs, log: &Log) -> holdfast::Result<()> {
    let env = a.env.environment()?;
    let scopes = ops::expand_scopes(&env, &a.scopes)?;
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
