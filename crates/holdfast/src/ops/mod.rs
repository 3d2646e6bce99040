//! Operations: the only place that sequences profiles, conf files, PostgreSQL
//! and archives into backup, verify and restore. Each operation takes a request
//! that the command line has already validated.

pub mod backup;
pub mod decrypt;
pub mod journal;
pub mod lock;
pub mod migrate;
pub mod partial;
pub mod physical;
pub mod provisioning;
pub mod repo;
pub mod request;
pub mod restore;
mod unpack;
pub mod verify;
pub mod vm;
pub mod wal;

pub mod workdir;

use crate::profile::Environment;

pub use request::{
    default_threads, installed_version, AdminOptions, BackupOutput, BackupRequest, DumpPlan, Jobs,
    MigrateRequest, PartialRequest, PartialTarget, ProvisionRequest, RepoBackupRequest,
    RestoreRequest, VerifyRequest,
};
pub use workdir::WorkDir;

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
