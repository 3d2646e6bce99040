//! `holdfast restore`: put an archive back onto a cleaned install.

use std::path::PathBuf;

use clap::Args;
use holdfast::log::Log;
use holdfast::ops::{self, AdminOptions, Jobs, ProvisionRequest, RestoreRequest};
use holdfast::Password;

use super::partial::{self, PartialArgs};
use super::EnvArgs;
use crate::shared::absolute;

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub env: EnvArgs,
    /// The archive to restore.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "rollback_interrupted"
    )]
    pub file: Option<PathBuf>,
    /// Only roll back a restore that was killed before it finished (its
    /// journal is in $HOLDFAST_STATE_DIR, default /var/lib/holdfast), and
    /// restore nothing. A restore does this itself before it starts.
    #[arg(long, conflicts_with = "file")]
    pub rollback_interrupted: bool,
    #[command(flatten)]
    pub choices: RestoreChoices,
    #[command(flatten)]
    pub provision: ProvisionArgs,
    #[command(flatten)]
    pub partial: PartialArgs,
}

/// What to restore and how: shared by `holdfast restore` and `holdfast repo restore`.
#[derive(Debug, Args)]
pub struct RestoreChoices {
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
    #[arg(long, default_value_t = Jobs::DEFAULT.get(), value_name = "N")]
    pub jobs: u32,
    /// Skip the profile's post-restore clean-up steps.
    #[arg(long)]
    pub keep_temporary_data: bool,
}

impl RestoreChoices {
    /// `--restore-permissions` / `--no-restore-permissions`, if either was given.
    pub fn permissions(&self) -> Option<bool> {
        match (self.restore_permissions, self.no_restore_permissions) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        }
    }

    /// `--jobs`, for every database; 0 is refused.
    pub fn jobs(&self) -> holdfast::Result<Jobs> {
        Jobs::new(self.jobs)
    }

    /// A restore of `file` into `env` as these choices say.
    pub fn request(
        &self,
        env: holdfast::profile::Environment,
        file: PathBuf,
        tmpdir: PathBuf,
        installed_version: Option<&str>,
        provision: ProvisionRequest,
    ) -> holdfast::Result<RestoreRequest> {
        let jobs = self.jobs()?;
        let scopes = ops::expand_scopes(&env, &self.scopes)?;
        Ok(RestoreRequest {
            restore_permissions: self.permissions(),
            keep_temporary_data: self.keep_temporary_data,
            provision,
            ..RestoreRequest::new(env, scopes, file, tmpdir, installed_version)?.with_jobs(jobs)
        })
    }
}

/// Creating the application's roles and databases before the restore.
#[derive(Debug, Args)]
pub struct ProvisionArgs {
    /// Create the role and database of this database scope (repeatable), with
    /// the credentials of the restored configuration; implies --restore-permissions.
    #[arg(long = "provision", value_name = "SCOPE")]
    pub provision_scopes: Vec<String>,
    /// Provision every database the archive holds.
    #[arg(long)]
    pub provision_all: bool,
    /// Superuser connection for provisioning: host, or the directory of the
    /// server's unix socket [default: /var/run/postgresql].
    #[arg(long, value_name = "HOST|DIR")]
    pub admin_host: Option<String>,
    /// Superuser connection port [default: the database's port].
    #[arg(long, value_name = "PORT")]
    pub admin_port: Option<u16>,
    /// Superuser role [default: postgres, by peer authentication when run as root].
    #[arg(long, value_name = "USER")]
    pub admin_user: Option<String>,
    /// File whose first line is the superuser's password.
    #[arg(long, value_name = "FILE")]
    pub admin_passfile: Option<PathBuf>,
    /// Initialise and start the local PostgreSQL cluster when it is not
    /// initialised (pg_createcluster on Debian, else initdb).
    #[arg(long)]
    pub init_cluster: bool,
    /// With --init-cluster: run initdb into this directory instead.
    #[arg(long, value_name = "DIR", requires = "init_cluster")]
    pub init_cluster_datadir: Option<PathBuf>,
}

impl ProvisionArgs {
    pub fn request(
        &self,
        env: &holdfast::profile::Environment,
    ) -> holdfast::Result<ProvisionRequest> {
        for s in &self.provision_scopes {
            if env.profile.database(s).is_none() {
                return Err(holdfast::Error::usage(format!(
                    "--provision {s}: not a database scope of profile {}",
                    env.profile.name
                )));
            }
        }
        let password = match &self.admin_passfile {
            None => None,
            Some(f) => Some(Password::from_file(f).map_err(|e| {
                holdfast::Error::usage(format!(
                    "cannot read the password file {} ({e}); pass a readable file to --admin-passfile",
                    f.display()
                ))
            })?),
        };
        Ok(ProvisionRequest {
            scopes: self.provision_scopes.clone(),
            all: self.provision_all,
            auto: false,
            admin: AdminOptions {
                host: self.admin_host.clone(),
                port: self.admin_port,
                user: self.admin_user.clone(),
                password,
            },
            init_cluster: self.init_cluster,
            init_data_dir: self.init_cluster_datadir.as_deref().map(absolute),
        })
    }
}

pub fn run(a: RestoreArgs, log: &Log) -> holdfast::Result<()> {
    let Some(file) = a.file.as_deref().map(absolute) else {
        let env = a.env.environment()?;
        log.output("Rolling back an interrupted restore:");
        match ops::restore::rollback_interrupted(&env, &a.env.tmpdir()?, log)? {
            Some(_) => log.output("Done: the install is back as it was before that restore."),
            None => match ops::journal::last_completed(&env) {
                Some(last) => log.output(&format!(
                    "Nothing to roll back: the last {last}; the install is restored."
                )),
                None => log.output(
                    "Nothing to roll back: no restore of this install root left changes unfinished.",
                ),
            },
        }
        return Ok(());
    };
    if !file.is_file() {
        return Err(holdfast::Error::usage(format!(
            "{} does not exist; pass the path of an archive",
            file.display()
        )));
    }
    let manifest = holdfast::archive::peek_manifest(&file);
    let env = a
        .env
        .environment_for(manifest.as_ref(), &format!("{}", file.display()))?;
    let provision = a.provision.request(&env)?;
    let req = a.choices.request(
        env,
        file,
        a.env.tmpdir()?,
        a.env.installed_version.as_deref(),
        provision,
    )?;
    if a.partial.asked() {
        return partial::run(req, &a.partial, &a.provision, log);
    }
    ops::restore::run(&req, log)?;
    log.output("Done.");
    Ok(())
}
