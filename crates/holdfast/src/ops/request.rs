//! The requests the operations take, and the defaults both command-line faces
//! build them from. Each default is written here once: a face starts from a
//! constructor and changes only what its options changed.
//!
//! ```no_run
//! # fn main() -> holdfast::Result<()> {
//! use holdfast::ops::{Jobs, RestoreRequest};
//! use holdfast::profile::{Environment, InstallRoot, Profile};
//!
//! let env = Environment::load(Profile::ovirt_engine(), InstallRoot::new("/")?)?;
//! let req = RestoreRequest::new(env, vec!["all".into()], "/backup/engine.backup".into(),
//!     std::env::temp_dir(), None)?
//!     .with_jobs(Jobs::new(4)?);
//! # let _ = req; Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU32;
use std::path::PathBuf;

use crate::archive::{Codec, DumpFormat};
use crate::pg::ConnParams;
use crate::profile::Environment;
use crate::{Error, Remedy, Result};

/// A number of parallel jobs (`pg_restore -j`, `pg_dump -j`): never 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Jobs(NonZeroU32);

impl Jobs {
    /// engine-backup's `--db-restore-jobs` default, also holdfast's `--jobs`.
    pub const DEFAULT: Jobs = Jobs(NonZeroU32::new(2).unwrap());

    /// `n` jobs; 0 is refused with a remedy each face words with its option.
    pub fn new(n: u32) -> Result<Jobs> {
        NonZeroU32::new(n).map(Jobs).ok_or_else(|| {
            Error::usage("the number of parallel jobs must be at least 1")
                .with_remedy(Remedy::AtLeastOneJob)
        })
    }

    pub fn get(self) -> u32 {
        self.0.get()
    }
}

impl Default for Jobs {
    fn default() -> Jobs {
        Jobs::DEFAULT
    }
}

impl fmt::Display for Jobs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Compression threads when none are asked for: every core.
pub fn default_threads() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
}

/// The installed application version of `env`: `given` (`--installed-version`,
/// `HOLDFAST_INSTALLED_VERSION`) when given, else the profile's version file
/// or package.
pub fn installed_version(env: &Environment, given: Option<&str>) -> Result<String> {
    crate::profile::installed_version(&env.profile.version, env.root.path(), given)
}

/// How one database is dumped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpPlan {
    pub format: DumpFormat,
    /// Our compression of pg_dump's output (`--db-compressor`).
    pub codec: Codec,
    /// `pg_dump -Z<n>`; `None` leaves pg_dump's default (gzip inside custom dumps).
    pub pg_dump_compress: Option<u32>,
}

impl DumpPlan {
    /// engine-backup's default: custom format with pg_dump's own compression.
    pub fn engine_backup_default() -> DumpPlan {
        DumpPlan {
            format: DumpFormat::Custom,
            codec: Codec::None,
            pg_dump_compress: None,
        }
    }

    /// holdfast's default: uncompressed custom dump, compressed by our
    /// multithreaded zstd (several times faster than pg_dump's gzip).
    pub fn holdfast_default() -> DumpPlan {
        DumpPlan {
            format: DumpFormat::Custom,
            codec: Codec::Zstd,
            pg_dump_compress: Some(0),
        }
    }
}

/// A validated backup.
#[derive(Debug)]
pub struct BackupRequest {
    pub env: Environment,
    /// Scope names as given (`all` expanded by the caller), in the order given.
    pub scopes: Vec<String>,
    pub file: PathBuf,
    pub tmpdir: PathBuf,
    pub archive_codec: Codec,
    pub files_codec: Codec,
    /// Compression level of the dumps and the files member; `None` for each
    /// codec's default.
    pub compress_level: Option<i32>,
    /// Per database scope.
    pub dumps: BTreeMap<String, DumpPlan>,
    /// Written into the archive's `version` member.
    pub application_version: String,
    /// Replace an existing archive at `file` (engine-backup does).
    pub overwrite: bool,
    /// Compression threads for zstd/xz.
    pub threads: u32,
    /// Where the roles' password verifiers are read from.
    pub role_passwords: RolePasswords,
    /// Encrypt the archive file to these age recipients (with a checksum
    /// file beside it).
    pub encrypt_to: Option<crate::archive::encryption::Recipients>,
    /// What `file` becomes.
    pub output: BackupOutput,
}

/// What a backup writes at its `file`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupOutput {
    /// An archive (a tar, engine-backup's format).
    Archive,
    /// A directory of the archive's members as files, for a repository
    /// snapshot: no tar packed only to be unpacked again.
    Directory,
}

/// Where a backup reads the password verifiers of the roles its databases
/// need (`pg_authid` is the superuser's; the application's role cannot).
#[derive(Debug, Clone, Default)]
pub enum RolePasswords {
    /// Not read, as engine-backup does; the manifest records it.
    NotRead,
    /// The local superuser over the unix socket, for databases on this
    /// machine, when it answers (as root: peer authentication as `postgres`);
    /// else not read, and the backup names the roles that will need new
    /// passwords.
    #[default]
    LocalSuperuser,
    /// This superuser connection; a backup that cannot use it is refused.
    Admin(AdminOptions),
}

impl BackupRequest {
    /// A backup of `scopes` with holdfast's defaults: every database dumped
    /// by [`DumpPlan::holdfast_default`], the files member zstd, the outer
    /// archive uncompressed, every core compressing, an existing file kept.
    /// The application version is looked up unless `given`.
    pub fn new(
        env: Environment,
        scopes: Vec<String>,
        file: PathBuf,
        tmpdir: PathBuf,
        given_version: Option<&str>,
    ) -> Result<BackupRequest> {
        let application_version = installed_version(&env, given_version)?;
        let dumps = every_database(&env, DumpPlan::holdfast_default());
        Ok(BackupRequest {
            env,
            scopes,
            file,
            tmpdir,
            archive_codec: Codec::None,
            files_codec: Codec::Zstd,
            compress_level: None,
            dumps,
            application_version,
            overwrite: false,
            threads: default_threads(),
            role_passwords: RolePasswords::default(),
            encrypt_to: None,
            output: BackupOutput::Archive,
        })
    }

    /// The same dump plan for every database.
    pub fn with_dump_plan(mut self, plan: DumpPlan) -> BackupRequest {
        self.dumps = every_database(&self.env, plan);
        self
    }
}

/// A validated verify.
#[derive(Debug)]
pub struct VerifyRequest {
    pub env: Environment,
    pub file: PathBuf,
    pub tmpdir: PathBuf,
    /// The installed version to check the archive against; `None` skips the check
    /// (verify on a machine without the application).
    pub installed_version: Option<String>,
    /// Restore every database into a throwaway cluster and compare.
    pub deep: bool,
}

impl VerifyRequest {
    /// A shallow verify, checking the archive's version against
    /// `installed_version` when one is known.
    pub fn new(
        env: Environment,
        file: PathBuf,
        tmpdir: PathBuf,
        installed_version: Option<String>,
    ) -> VerifyRequest {
        VerifyRequest {
            env,
            file,
            tmpdir,
            installed_version,
            deep: false,
        }
    }
}

/// A validated restore.
#[derive(Debug)]
pub struct RestoreRequest {
    pub env: Environment,
    /// Scope names asked for (`all` means whatever the archive holds).
    pub scopes: Vec<String>,
    pub file: PathBuf,
    pub tmpdir: PathBuf,
    /// `--restore-permissions` / `--no-restore-permissions`.
    pub restore_permissions: Option<bool>,
    /// Skip the profile's post-restore steps.
    pub keep_temporary_data: bool,
    /// `pg_restore -j` per database scope; a scope not here gets [`Jobs::DEFAULT`].
    pub jobs: BTreeMap<String, Jobs>,
    pub installed_version: String,
    /// New credentials per database scope (`--change-…-credentials`).
    pub credentials: BTreeMap<String, ConnParams>,
    /// Roles and databases to create first (`--provision-…`).
    pub provision: ProvisionRequest,
}

impl RestoreRequest {
    /// A restore of `scopes` from `file` with the defaults: permissions as the
    /// archive's dump format decides, clean-up steps run, [`Jobs::DEFAULT`]
    /// for every database, the restored credentials, nothing provisioned. The
    /// installed version is looked up unless `given`.
    pub fn new(
        env: Environment,
        scopes: Vec<String>,
        file: PathBuf,
        tmpdir: PathBuf,
        given_version: Option<&str>,
    ) -> Result<RestoreRequest> {
        let installed_version = installed_version(&env, given_version)?;
        let jobs = every_database(&env, Jobs::DEFAULT);
        Ok(RestoreRequest {
            env,
            scopes,
            file,
            tmpdir,
            restore_permissions: None,
            keep_temporary_data: false,
            jobs,
            installed_version,
            credentials: BTreeMap::new(),
            provision: ProvisionRequest::default(),
        })
    }

    /// The same number of jobs for every database.
    pub fn with_jobs(mut self, jobs: Jobs) -> RestoreRequest {
        self.jobs = every_database(&self.env, jobs);
        self
    }

    /// The jobs for one database scope.
    /// The role the restored configuration names for `db`, when new
    /// credentials replace it with another: the dump's owners are then not
    /// restored (the new role owns everything; grants are kept), and that
    /// role is not created.
    pub fn replaced_owner(
        &self,
        db: &crate::profile::DatabaseComponent,
        future: &Environment,
    ) -> Result<Option<String>> {
        let Some(new) = self.credentials.get(&db.scope) else {
            return Ok(None);
        };
        Ok(future
            .database_params(db)?
            .map(|old| old.user)
            .filter(|old| !old.is_empty() && *old != new.user))
    }

    pub fn jobs_for(&self, scope: &str) -> Jobs {
        self.jobs.get(scope).copied().unwrap_or_default()
    }
}

/// A validated partial restore: one or more tables or schemas, or one
/// database, of an archive into the running server of the application's
/// database, nothing else touched.
#[derive(Debug)]
pub struct PartialRequest {
    /// The archive, the environment whose configuration names the live
    /// database, the permissions option, the jobs, and in
    /// `provision.admin` the superuser connection (for `--as` and for a
    /// database); nothing is provisioned.
    pub restore: RestoreRequest,
    pub target: PartialTarget,
    /// `--as`: the new name of the one table (`NAME` or `SCHEMA.NAME`), the
    /// one schema, or the new database.
    pub new_name: Option<String>,
}

/// What a partial restore takes out of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartialTarget {
    /// Tables and schemas of one database dump.
    Objects(Vec<crate::pg::partial::DumpObject>),
    /// A database scope's whole dump.
    Database(String),
}

/// Provisioning asked for: the application's roles and databases created on
/// the server as its superuser before the restore.
#[derive(Debug, Clone, Default)]
pub struct ProvisionRequest {
    /// Database scopes to provision (`--provision-db`, `--provision-dwh-db`, …).
    pub scopes: Vec<String>,
    /// Every database the archive holds (`--provision-all-databases`).
    pub all: bool,
    /// engine-backup 4.5's automatic provisioning: when no `--change-…` and no
    /// `--provision-…` option was given, every database is local and none is
    /// reachable with the restored credentials, provision them all.
    pub auto: bool,
    /// How to connect as the superuser.
    pub admin: AdminOptions,
    /// Initialise and start the local cluster when it is not initialised.
    pub init_cluster: bool,
    /// With `init_cluster`: `initdb` into this directory (socket in
    /// `admin.host`, port of the databases) instead of the machine's default
    /// (`pg_createcluster` on Debian, else `/var/lib/pgsql/data`).
    pub init_data_dir: Option<PathBuf>,
}

impl ProvisionRequest {
    /// Whether anything was asked for explicitly.
    pub fn explicit(&self) -> bool {
        self.all || !self.scopes.is_empty()
    }
}

/// The superuser connection for provisioning. Defaults: the unix socket in
/// `/var/run/postgresql`, the port of the database being provisioned, user
/// `postgres` (peer authentication: run as root, `psql` runs as `postgres`).
#[derive(Debug, Clone, Default)]
pub struct AdminOptions {
    /// Host name, or a directory holding the server's unix socket.
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub password: Option<crate::Password>,
}

impl AdminOptions {
    /// The connection these options make to the server of a database on
    /// `port`, with the defaults filled in.
    pub fn params(&self, port: u16) -> ConnParams {
        ConnParams {
            host: self
                .host
                .clone()
                .unwrap_or_else(|| crate::pg::provision::DEFAULT_SOCKET_DIR.to_string()),
            port: self.port.unwrap_or(port),
            user: self.user.clone().unwrap_or_else(|| "postgres".into()),
            database: "postgres".into(),
            password: self.password.clone(),
            secured: false,
            secured_validation: false,
        }
    }
}

/// A validated migration of one database scope.
#[derive(Debug)]
pub struct MigrateRequest {
    pub env: Environment,
    pub scope: String,
    /// Where the database goes, and the application's credentials there.
    pub target: ConnParams,
    /// A superuser on the target server, to create the role and database; without
    /// it they must exist (the database empty).
    pub admin: Option<ConnParams>,
    /// pg_dump and pg_restore jobs.
    pub jobs: Jobs,
    /// Accept a running application (writes after the snapshot are not copied).
    pub online: bool,
    pub tmpdir: PathBuf,
}

/// A validated repository backup.
#[derive(Debug, Clone)]
pub struct RepoBackupRequest {
    pub env: Environment,
    /// Scope names (`all` expanded by the caller).
    pub scopes: Vec<String>,
    /// Parent of the private staging directory; needs room for one
    /// uncompressed backup, twice over while it is checked.
    pub tmpdir: PathBuf,
    pub application_version: String,
    pub threads: u32,
    /// Where the roles' password verifiers are read from.
    pub role_passwords: RolePasswords,
}

impl RepoBackupRequest {
    /// A repository backup of `scopes` with every core compressing; the
    /// application version is looked up unless `given`.
    pub fn new(
        env: Environment,
        scopes: Vec<String>,
        tmpdir: PathBuf,
        given_version: Option<&str>,
    ) -> Result<RepoBackupRequest> {
        let application_version = installed_version(&env, given_version)?;
        Ok(RepoBackupRequest {
            env,
            scopes,
            tmpdir,
            application_version,
            threads: default_threads(),
            role_passwords: RolePasswords::default(),
        })
    }
}

/// `value` for every database scope of the environment's profile.
fn every_database<T: Copy>(env: &Environment, value: T) -> BTreeMap<String, T> {
    env.profile
        .databases
        .iter()
        .map(|d| (d.scope.clone(), value))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_jobs_are_refused_with_a_remedy() {
        let e = Jobs::new(0).unwrap_err();
        assert!(e.is_usage());
        assert!(matches!(
            e,
            Error::Remedied {
                remedy: Remedy::AtLeastOneJob,
                ..
            }
        ));
        assert_eq!(Jobs::new(3).unwrap().get(), 3);
        assert_eq!(Jobs::default().to_string(), "2");
    }
}
