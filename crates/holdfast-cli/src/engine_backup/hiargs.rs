//! What an `engine-backup` command line means: validated in engine-backup's
//! order and with its messages (§1.7 of the reference), before anything is
//! written, and turned into a library request.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use holdfast::archive::{Codec, DumpFormat};
use holdfast::ops::request::RolePasswords;
use holdfast::ops::{
    self, AdminOptions, BackupRequest, DumpPlan, Jobs, ProvisionRequest, RestoreRequest,
    VerifyRequest,
};
use holdfast::pg::ConnParams;
use holdfast::profile::{Environment, InstallRoot, Profile};
use holdfast::Password;

use super::lowargs::{DbLowArgs, LowArgs, PasswordArg};
use crate::shared::absolute;

/// What the process will do.
#[derive(Debug)]
pub enum HiArgs {
    Help,
    Backup(Box<BackupRequest>, PathBuf),
    Verify(Box<VerifyRequest>, PathBuf),
    Restore(Box<RestoreRequest>, PathBuf),
}

/// Validation failures: each line is printed as `FATAL: <line>`.
#[derive(Debug)]
pub struct Fatal(pub Vec<String>);

impl Fatal {
    fn one(msg: impl Into<String>) -> Fatal {
        Fatal(vec![msg.into()])
    }
}

impl From<holdfast::Error> for Fatal {
    fn from(e: holdfast::Error) -> Fatal {
        Fatal::one(super::describe(&e))
    }
}

/// Access to the process environment, so tests can give their own.
pub trait Outside {
    fn var(&self, name: &str) -> Option<String>;
    /// Ask for a password without echo; `None` when stdin is not a terminal.
    fn prompt_password(&self, prompt: &str) -> Option<std::io::Result<String>>;
}

/// The real process environment and terminal.
pub struct RealOutside;

impl Outside for RealOutside {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
    fn prompt_password(&self, prompt: &str) -> Option<std::io::Result<String>> {
        if !std::io::stdin().is_terminal() {
            return None;
        }
        Some(rpassword::prompt_password(prompt))
    }
}

/// The mode names and what they do.
const MODES: &[&str] = &["backup", "restore", "verify"];

pub fn interpret(low: LowArgs, profile: Profile, outside: &dyn Outside) -> Result<HiArgs, Fatal> {
    if low.help {
        return Ok(HiArgs::Help);
    }
    let mode = low.mode.clone().unwrap_or_else(|| "backup".into());
    if !MODES.contains(&mode.as_str()) {
        return Err(Fatal::one("invalid mode"));
    }
    let known_scopes = profile.scopes();
    for s in &low.scopes {
        if s != "all" && !known_scopes.contains(&s.as_str()) {
            return Err(Fatal::one(format!("invalid scope '{s}'")));
        }
    }
    let compressor = |v: &Option<String>, default: Codec| -> Result<Codec, Fatal> {
        match v {
            None => Ok(default),
            Some(v) => Codec::from_option(v).map_err(|_| {
                Fatal(vec![
                    format!("invalid compressor '{v}'"),
                    "failed parsing compressor".into(),
                ])
            }),
        }
    };
    let archive_codec = compressor(&low.archive_compressor, Codec::Gzip)?;
    let files_codec = compressor(&low.files_compressor, Codec::Xz)?;

    let mut dumps = BTreeMap::new();
    let mut jobs = BTreeMap::new();
    let default_plan = DumpPlan::engine_backup_default();
    for db in &profile.databases {
        let a = low.db.get(&db.option_prefix).cloned().unwrap_or_default();
        let codec = compressor(&a.compressor, default_plan.codec)?;
        let format = match &a.dump_format {
            None => default_plan.format,
            Some(v) => DumpFormat::parse(v).map_err(|_| {
                Fatal(vec![
                    format!("invalid dump format '{v}'"),
                    "failed parsing dump format".into(),
                ])
            })?,
        };
        dumps.insert(
            db.scope.clone(),
            DumpPlan {
                format,
                codec,
                ..default_plan
            },
        );
        jobs.insert(db.scope.clone(), restore_jobs(a.restore_jobs.as_deref())?);
    }

    // Passwords: files first (engine-backup reads them at parse time).
    let mut passwords: BTreeMap<String, Password> = BTreeMap::new();
    for db in &profile.databases {
        let a = low.db.get(&db.option_prefix).cloned().unwrap_or_default();
        if let Some(f) = &a.passfile {
            passwords.insert(db.scope.clone(), read_passfile(f)?);
        }
    }
    for db in &profile.databases {
        let a = low.db.get(&db.option_prefix).cloned().unwrap_or_default();
        match &a.password {
            Some(PasswordArg::Value(v)) => {
                passwords.insert(db.scope.clone(), Password::new(v.clone()));
            }
            Some(PasswordArg::Prompt) => {
                let prompt = format!("Enter {} database password: ", db.backup_label());
                match outside.prompt_password(&prompt) {
                    None => return Err(Fatal::one("Standard input is not a terminal")),
                    Some(Err(e)) => {
                        return Err(Fatal::one(format!("Failed to read the password: {e}")))
                    }
                    Some(Ok(p)) => {
                        passwords.insert(db.scope.clone(), Password::new(p));
                    }
                }
            }
            None => {
                if a.change_credentials && !passwords.contains_key(&db.scope) {
                    if let Some(p) = db.password_env.as_deref().and_then(|v| outside.var(v)) {
                        passwords.insert(db.scope.clone(), Password::new(p));
                    }
                }
            }
        }
    }

    if mode != "backup" && low.file.is_none() {
        return Err(Fatal::one("--file is missing"));
    }
    let tmpdir = match &low.tmpdir {
        Some(d) => {
            if !Path::new(d).is_dir() {
                return Err(Fatal::one(format!(
                    "Temporary directory {d} is missing or not a directory"
                )));
            }
            PathBuf::from(d)
        }
        None => std::env::temp_dir(),
    };

    let root = low
        .install_root
        .clone()
        .or_else(|| outside.var("HOLDFAST_INSTALL_ROOT"))
        .unwrap_or_else(|| "/".into());
    let root = InstallRoot::new(&root)?;
    let timestamp = chrono::Local::now().format("%Y%m%d%H%M%S").to_string();
    // engine-backup creates its default directories; a directory the user named
    // must exist already.
    let mut default_dirs: Vec<PathBuf> = Vec::new();
    if low.file.is_none() && mode == "backup" {
        default_dirs.push(root.join(&profile.archive.backup_dir));
    }
    if low.log.is_none() {
        default_dirs.push(root.join(&profile.archive.log_dir));
    }
    let file = match &low.file {
        Some(f) => absolute(Path::new(f)),
        None => root
            .join(&profile.archive.backup_dir)
            .join(profile.archive.file_name.replace("{timestamp}", &timestamp)),
    };
    let log = match &low.log {
        Some(l) => absolute(Path::new(l)),
        None => root.join(&profile.archive.log_dir).join(
            profile
                .archive
                .log_name
                .replace("{mode}", &mode)
                .replace("{timestamp}", &timestamp),
        ),
    };
    if file == log {
        return Err(Fatal::one("--file and --log can not be the same"));
    }
    if mode != "backup" && !file.exists() {
        return Err(Fatal::one(format!("{} does not exist", file.display())));
    }
    if (low.he_remove_storage_vm || low.he_remove_hosts) && mode != "restore" {
        return Err(Fatal::one(
            "hosted-engine cleaning options work only in restore mode",
        ));
    }

    // Credentials.
    let mut credentials = BTreeMap::new();
    for db in &profile.databases {
        let a: DbLowArgs = low.db.get(&db.option_prefix).cloned().unwrap_or_default();
        let p = &db.option_prefix;
        if a.change_credentials {
            if a.provision || low.provision_all_databases {
                return Err(Fatal::one(
                    "Cannot change credentials if provisioning a database",
                ));
            }
            let host = a
                .host
                .clone()
                .ok_or_else(|| Fatal::one(format!("--{p}-host is missing")))?;
            let user = a
                .user
                .clone()
                .ok_or_else(|| Fatal::one(format!("--{p}-user is missing")))?;
            let password = passwords.get(&db.scope).cloned().ok_or_else(|| {
                Fatal::one(format!("--{p}-passfile or --{p}-password is missing"))
            })?;
            let name = a
                .name
                .clone()
                .ok_or_else(|| Fatal::one(format!("--{p}-name is missing")))?;
            let port = match &a.port {
                None => 5432,
                Some(v) => v
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| Fatal::one(format!("invalid port '{v}' for --{p}-port")))?,
            };
            credentials.insert(
                db.scope.clone(),
                ConnParams {
                    host,
                    port,
                    user,
                    database: name,
                    password: Some(password),
                    secured: a.secured,
                    secured_validation: a.secured_validation,
                },
            );
        } else if a.host.is_some()
            || a.user.is_some()
            || a.name.is_some()
            || a.password.is_some()
            || a.passfile.is_some()
        {
            let word = match db.key_prefix.trim_end_matches("_DB_") {
                "" => db.label.to_lowercase(),
                prefix => prefix.to_lowercase(),
            };
            return Err(Fatal::one(format!(
                "Please use --change-{p}-credentials to change {word} db credentials"
            )));
        }
    }
    let provision = provision_request(&low, &profile, credentials.is_empty())?;
    if low.he_remove_storage_vm || low.he_remove_hosts {
        return Err(Fatal::one(
            "hosted-engine cleaning (--he-remove-*) is not supported by holdfast; restore, then run the hosted-engine cleaner",
        ));
    }

    let env = Environment::load(profile, root)?;
    let scopes = ops::expand_scopes(&env, &low.scopes)?;
    let installed = low
        .installed_version
        .clone()
        .or_else(|| outside.var("HOLDFAST_INSTALLED_VERSION"));

    for dir in &default_dirs {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Fatal::one(format!("Cannot create '{}': {e}", dir.display())))?;
    }
    Ok(match mode.as_str() {
        "backup" => HiArgs::Backup(
            Box::new(BackupRequest {
                archive_codec,
                files_codec,
                dumps,
                overwrite: true,
                // engine-backup reads no role passwords.
                role_passwords: RolePasswords::NotRead,
                ..BackupRequest::new(env, scopes, file, tmpdir, installed.as_deref())?
            }),
            log,
        ),
        "verify" => {
            // Verify works on a machine without the application: the version
            // check runs only when the installed version is known.
            let installed_version = ops::installed_version(&env, installed.as_deref()).ok();
            HiArgs::Verify(
                Box::new(VerifyRequest::new(env, file, tmpdir, installed_version)),
                log,
            )
        }
        _ => HiArgs::Restore(
            Box::new(RestoreRequest {
                restore_permissions: low.restore_permissions,
                keep_temporary_data: low.keep_temporary_data,
                jobs,
                credentials,
                provision,
                ..RestoreRequest::new(env, scopes, file, tmpdir, installed.as_deref())?
            }),
            log,
        ),
    })
}

/// `--<prefix>-restore-jobs=N`: digits only, as engine-backup checks them, and
/// at least 1 (`pg_restore -j 0` fails).
fn restore_jobs(value: Option<&str>) -> Result<Jobs, Fatal> {
    let Some(v) = value else {
        return Ok(Jobs::DEFAULT);
    };
    v.chars()
        .all(|c| c.is_ascii_digit())
        .then(|| v.parse::<u32>().ok())
        .flatten()
        .and_then(|n| Jobs::new(n).ok())
        .ok_or_else(|| {
            Fatal(vec![
                "invalid number of jobs".into(),
                "failed parsing jobs".into(),
            ])
        })
}

/// The first line of a `--…-passfile`, with engine-backup's message.
fn read_passfile(f: &str) -> Result<Password, Fatal> {
    Password::from_file(Path::new(f))
        .map_err(|_| Fatal::one(format!("Can not read password file {f}")))
}

/// `--provision-…`, the superuser connection and `--init-cluster`. Automatic
/// provisioning is possible only when no `--change-…` option was given.
fn provision_request(
    low: &LowArgs,
    profile: &Profile,
    no_credential_change: bool,
) -> Result<ProvisionRequest, Fatal> {
    let scopes = profile
        .databases
        .iter()
        .filter(|d| low.db.get(&d.option_prefix).is_some_and(|a| a.provision))
        .map(|d| d.scope.clone())
        .collect();
    let port = match &low.admin_port {
        None => None,
        Some(v) => Some(
            v.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| Fatal::one(format!("invalid port '{v}' for --admin-port")))?,
        ),
    };
    let password = low
        .admin_passfile
        .as_deref()
        .map(read_passfile)
        .transpose()?;
    if low.init_cluster_datadir.is_some() && !low.init_cluster {
        return Err(Fatal::one("--init-cluster-datadir needs --init-cluster"));
    }
    Ok(ProvisionRequest {
        scopes,
        all: low.provision_all_databases,
        auto: no_credential_change,
        admin: AdminOptions {
            host: low.admin_host.clone(),
            port,
            user: low.admin_user.clone(),
            password,
        },
        init_cluster: low.init_cluster,
        init_data_dir: low
            .init_cluster_datadir
            .as_deref()
            .map(|d| absolute(Path::new(d))),
    })
}
