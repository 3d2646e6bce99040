//! `holdfast verify`: prove an archive is intact and restorable.

use std::path::PathBuf;

use clap::Args;
use holdfast::log::Log;
use holdfast::ops::{self, VerifyRequest};

use super::EnvArgs;
use crate::shared::absolute;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub env: EnvArgs,
    /// The archive to check.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Also restore every database into a throwaway cluster and compare row
    /// counts and checksums with the manifest.
    #[arg(long)]
    pub deep: bool,
    /// The age identity (private key) file of an encrypted archive; without
    /// it only the archive's checksum file and header are checked.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
}

pub fn run(a: VerifyArgs, log: &Log) -> holdfast::Result<()> {
    let file = absolute(&a.file);
    if !file.is_file() {
        return Err(holdfast::Error::usage(format!(
            "{} does not exist; pass the path of an archive",
            file.display()
        )));
    }
    if a.identity.is_none() && holdfast::archive::encryption::is_encrypted(&file)? {
        return ops::decrypt::verify_outer(&file, log);
    }
    let tmpdir = a.env.tmpdir()?;
    let decrypted = ops::decrypt::open(&file, a.identity.as_deref(), &tmpdir, log)?;
    let readable = decrypted
        .as_ref()
        .map_or(file.clone(), |d| d.path().to_path_buf());
    let manifest = holdfast::archive::peek_manifest(&readable);
    let env = a
        .env
        .environment_for(manifest.as_ref(), &format!("{}", file.display()))?;
    // The version given is checked as given: the native verify looks
    // nothing up (it runs where the application may not be installed).
    let req = VerifyRequest {
        deep: a.deep,
        ..VerifyRequest::new(env, readable, tmpdir, a.env.installed_version.clone())
    };
    ops::verify::run(&req, log)?;
    log.output("Done.");
    Ok(())
}
