//! `holdfast restore`: put an archive back onto a cleaned install.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use holdfast::log::Log;
use holdfast::ops::{self, Jobs, ProvisionRequest, RestoreRequest};
use holdfast::pg::ConnParams;
use holdfast::{Error, Password};

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
    /// The age identity (private key) file of an encrypted archive.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
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
    /// Restore database SCOPE into this server, database and role instead of
    /// those the restored configuration names, and rewrite the
    /// configuration to it: postgres://USER@HOST:PORT/DATABASE (no password
    /// in it), or the URL alone when the profile has one database
    /// (repeatable). With --provision the role and database are created.
    #[arg(long = "target", value_name = "[SCOPE=]URL")]
    pub targets: Vec<String>,
    /// The password of a --target's role, in a file (its first line):
    /// SCOPE=FILE, or FILE alone when the profile has one database.
    #[arg(long = "target-passfile", value_name = "[SCOPE=]FILE")]
    pub target_passfiles: Vec<String>,
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
        let credentials = self.credentials(&env)?;
        Ok(RestoreRequest {
            restore_permissions: self.permissions(),
            keep_temporary_data: self.keep_temporary_data,
            provision,
            credentials,
            ..RestoreRequest::new(env, scopes, file, tmpdir, installed_version)?.with_jobs(jobs)
        })
    }
}

impl RestoreChoices {
    /// The new connection of each database scope given a `--target`, with
    /// the password of its `--target-passfile`.
    fn credentials(
        &self,
        env: &holdfast::profile::Environment,
    ) -> holdfast::Result<BTreeMap<String, ConnParams>> {
        let mut passwords = BTreeMap::new();
        for given in &self.target_passfiles {
            let (scope, file) = scoped(env, given, "--target-passfile", "FILE")?;
            let password = Password::from_file(std::path::Path::new(file)).map_err(|e| {
                Error::usage(format!(
                    "--target-passfile {given}: cannot read the password file ({e}); pass a readable file"
                ))
            })?;
            if password.is_empty() {
                return Err(Error::usage(format!(
                    "--target-passfile {given}: the file's first line is empty; write the role's password in it"
                )));
            }
            if passwords.insert(scope.clone(), password).is_some() {
                return Err(Error::usage(format!(
                    "--target-passfile names database scope '{scope}' twice; give it once"
                )));
            }
        }
        let mut credentials = BTreeMap::new();
        for given in &self.targets {
            let (scope, url) = scoped(env, given, "--target", "URL")?;
            let mut params = holdfast::conf::url::connection(url, &format!("--target {scope}"))
                .map_err(Error::usage)?;
            params.password = Some(passwords.remove(&scope).ok_or_else(|| {
                Error::usage(format!(
                    "--target {scope} needs the role's password: pass --target-passfile {scope}=FILE"
                ))
            })?);
            if credentials.insert(scope.clone(), params).is_some() {
                return Err(Error::usage(format!(
                    "--target names database scope '{scope}' twice; give it once"
                )));
            }
        }
        if let Some(scope) = passwords.keys().next() {
            return Err(Error::usage(format!(
                "--target-passfile {scope}=… without --target {scope}=URL; give the target or leave the password file out"
            )));
        }
        Ok(credentials)
    }
}

/// `SCOPE=VALUE`, or `VALUE` alone when the profile has one database scope;
/// the scope must be one of the profile's databases.
fn scoped<'a>(
    env: &holdfast::profile::Environment,
    given: &'a str,
    option: &str,
    what: &str,
) -> holdfast::Result<(String, &'a str)> {
    let databases: Vec<&str> = env
        .profile
        .databases
        .iter()
        .map(|d| d.scope.as_str())
        .collect();
    let split = given
        .split_once('=')
        .filter(|(scope, _)| !scope.contains('/') && !scope.contains(':'));
    let (scope, value) = match split {
        Some((scope, value)) => (scope.to_string(), value),
        None if databases.len() == 1 => (databases[0].to_string(), given),
        None => {
            return Err(Error::usage(format!(
                "{option} {given}: name the database scope, as SCOPE={what} (profile {} has {})",
                env.profile.name,
                databases.join(", ")
            )))
        }
    };
    if !databases.contains(&scope.as_str()) {
        return Err(Error::usage(format!(
            "{option} {given}: '{scope}' is not a database scope of profile {} ({})",
            env.profile.name,
            databases.join(", ")
        )));
    }
    Ok((scope, value))
}

/// Creating the application's roles and databases before the restore.
#[derive(Debug, Args)]
pub struct ProvisionArgs {
    /// Create the role and database of this database scope (repeatable), with
    /// the credentials of its --target or else of the restored configuration;
    /// implies --restore-permissions.
    #[arg(long = "provision", value_name = "SCOPE")]
    pub provision_scopes: Vec<String>,
    /// Provision every database the archive holds.
    #[arg(long)]
    pub provision_all: bool,
    #[command(flatten)]
    pub admin: super::admin::AdminArgs,
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
        Ok(ProvisionRequest {
            scopes: self.provision_scopes.clone(),
            all: self.provision_all,
            auto: false,
            admin: self.admin.options()?,
            init_cluster: self.init_cluster,
            init_data_dir: self.init_cluster_datadir.as_deref().map(absolute),
        })
    }
}

/// The restore's one-line summary: what was restored, how long it took.
pub fn summary(outcome: &ops::restore::RestoreOutcome, took: std::time::Duration) -> String {
    let mut what: Vec<String> = Vec::new();
    if outcome.files_restored {
        what.push("the files".into());
    }
    match outcome.databases.len() {
        0 => {}
        1 => what.push(format!("database scope {}", outcome.databases[0])),
        _ => what.push(format!("database scopes {}", outcome.databases.join(", "))),
    }
    if what.is_empty() {
        what.push("nothing".into());
    }
    let mut line = format!(
        "Restored {} in {:.1} s",
        what.join(" and "),
        took.as_secs_f64()
    );
    if !outcome.rewritten.is_empty() {
        line.push_str(&format!(
            "; {} rewritten with the new credentials",
            holdfast::log::count(outcome.rewritten.len(), "config file", "config files")
        ));
    }
    line
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
    let decrypted = ops::decrypt::open(&file, a.identity.as_deref(), &a.env.tmpdir()?, log)?;
    let file = decrypted.as_ref().map_or(file, |d| d.path().to_path_buf());
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
    let clock = std::time::Instant::now();
    let outcome = ops::restore::run(&req, log)?;
    log.output(&summary(&outcome, clock.elapsed()));
    log.output("Done.");
    Ok(())
}
