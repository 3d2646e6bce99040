//! Operations: the only place that sequences profiles, conf files, PostgreSQL
//! and archives into backup, verify and restore. Each operation takes a request
//! that the command line has already validated.

pub mod backup;
pub mod journal;
pub mod lock;
pub mod migrate;
pub mod provisioning;
pub mod repo;
pub mod restore;
pub mod verify;

pub mod workdir;

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::archive::{Codec, DumpFormat};
use crate::pg::ConnParams;
use crate::profile::Environment;

pub use workdir::WorkDir;

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
    /// `pg_restore -j` per database scope (default 2).
    pub jobs: BTreeMap<String, u32>,
    pub installed_version: String,
    /// New credentials per database scope (`--change-…-credentials`).
    pub credentials: BTreeMap<String, ConnParams>,
    /// Roles and databases to create first (`--provision-…`).
    pub provision: ProvisionRequest,
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

/// Expand `all` and check every scope exists in the profile; keeps the order
/// given and drops repeats.
pub fn expand_scopes(env: &Environment, given: &[String]) -> crate::Result<Vec<String>> {
    let known = env.profile.scopes();
    let mut out: Vec<String> = Vec::new();
    let given: Vec<String> = if given.is_empty() {
        vec!["all".into()]
    } else {
        given.to_vec()
    };
    for s in &given {
        if s == "all" {
            for k in &known {
                if !out.iter().any(|o| o == k) {
                    out.push(k.to_string());
                }
            }
        } else if known.contains(&s.as_str()) {
            if !out.contains(s) {
                out.push(s.clone());
            }
        } else {
            return Err(crate::Error::usage(format!("invalid scope '{s}'")));
        }
    }
    Ok(out)
}
