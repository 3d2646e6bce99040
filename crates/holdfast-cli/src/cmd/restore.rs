//! `holdfast restore`: put an archive back onto a cleaned install.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use holdfast::ops::{self, RestoreRequest};

use super::{absolute, EnvArgs};

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub env: EnvArgs,
    /// The archive to restore.
    #[arg(long, value_name = "FILE")]
    pub file: PathBuf,
    /// What to restore: all (whatever the archive holds), files, or a database scope (repeatable).
    #[arg(long = "scope", value_name = "SCOPE")]
    pub scopes: Vec<String>,
    /// Restore ownership and grants as in the source (roles must exist).
    #[arg(long, conflicts_with = "no_restore_permissions")]
    pub restore_permissions: bool,
    /// Make the database user own everything, without grants.
    #[arg(long)]
    pub no_restore_permissions: bool,
    /// pg_restore jobs for every database.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub jobs: u32,
    /// Skip the profile's post-restore clean-up steps.
    #[arg(long)]
    pub keep_temporary_data: bool,
}

pub fn run(a: RestoreArgs) -> holdfast::Result<()> {
    let file = absolute(&a.file);
    if !file.is_file() {
        return Err(holdfast::Error::usage(format!(
            "{} does not exist; pass the path of an archive",
            file.display()
        )));
    }
    if a.jobs == 0 {
        return Err(holdfast::Error::usage("--jobs must be at least 1"));
    }
    let env = a.env.environment()?;
    let scopes = ops::expand_scopes(&env, &a.scopes)?;
    let installed_version = holdfast::profile::installed_version(
        &env.profile.version,
        env.root.path(),
        a.env.installed_version.as_deref(),
    )?;
    let jobs: BTreeMap<String, u32> = env
        .profile
        .databases
        .iter()
        .map(|d| (d.scope.clone(), a.jobs))
        .collect();
    let restore_permissions = match (a.restore_permissions, a.no_restore_permissions) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    };
    let req = RestoreRequest {
        scopes,
        file,
        tmpdir: a.env.tmpdir()?,
        restore_permissions,
        keep_temporary_data: a.keep_temporary_data,
        jobs,
        installed_version,
        credentials: BTreeMap::new(),
        env,
    };
    let log = a.env.open_log()?;
    ops::restore::run(&req, &log)?;
    log.output("Done.");
    Ok(())
}
