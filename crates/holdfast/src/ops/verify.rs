//! Verify: prove an archive is intact and restorable without touching any
//! database server: member checksums, the version rule, every dump readable
//! (`pg_restore --list` of custom dumps, a complete SQL script for plain ones),
//! and the profile's forbidden-setting check. `deep` restores every database
//! into a throwaway cluster and compares it with the manifest.
//!
//! Phases: room to unpack ([`run`]), [`unpack`](crate::ops::unpack), every
//! dump known to the profile, each dump read ([`dumps`]), then [`deep`].

mod deep;
mod dumps;

use crate::archive::ArchiveReader;
use crate::log::Log;
use crate::ops::workdir::check_free_space;
use crate::ops::{VerifyRequest, WorkDir};
use crate::pg::PgTools;
use crate::profile::Environment;
use crate::{Error, IoContext, Result};

/// What verify found.
#[derive(Debug)]
pub struct VerifyOutcome {
    pub version: String,
    /// Dump members checked.
    pub dumps: Vec<String>,
    /// Tables compared by a deep verify, and how many differed.
    pub deep_tables: usize,
    pub deep_mismatches: usize,
}

pub fn run(req: &VerifyRequest, log: &Log) -> Result<VerifyOutcome> {
    let env = &req.env;
    log.output("Verifying:");
    log.output(&format!("- Unpacking file '{}'", req.file.display()));
    check_room_to_unpack(req)?;
    let work = WorkDir::new(&req.tmpdir)?;
    let archive = crate::ops::unpack::unpack(
        &req.file,
        &work,
        &env.profile,
        req.installed_version.as_deref(),
        log,
    )?;
    check_dumps_are_known(&archive, env)?;
    let dumps = check_dumps(&archive, env, &work, log)?;
    let (deep_tables, deep_mismatches) = if req.deep {
        deep::deep_verify(&archive, &env.profile, &req.tmpdir, work.path(), log)?
    } else {
        (0, 0)
    };
    Ok(VerifyOutcome {
        version: archive.version().to_string(),
        dumps,
        deep_tables,
        deep_mismatches,
    })
}

/// Before anything is written: room to unpack the archive, and for a deep
/// verify the throwaway cluster too (its own floor, and the restored
/// databases, which take a few times their dumps' size).
fn check_room_to_unpack(req: &VerifyRequest) -> Result<()> {
    let archive_size = std::fs::metadata(&req.file)
        .map(|m| m.len())
        .context(|| format!("read {}", req.file.display()))?;
    let (needed, what) = match req.deep {
        false => (archive_size, "unpacking the archive"),
        true => (
            archive_size + deep::CLUSTER_FLOOR + deep::DEEP_FACTOR * archive_size,
            "unpacking the archive and deep verify's throwaway cluster",
        ),
    };
    check_free_space(&req.tmpdir, needed, what)
}

/// A dump the profile does not know could be checked neither for
/// readability nor deeply: verifying the rest would report success for an
/// archive that was not verified.
fn check_dumps_are_known(archive: &ArchiveReader, env: &Environment) -> Result<()> {
    let unknown: Vec<String> = archive
        .dumps()
        .into_iter()
        .map(|m| m.name.clone())
        .filter(|m| {
            !env.profile.databases.iter().any(|d| &d.member == m)
                && !env.profile.sqlite.iter().any(|s| &s.member == m)
        })
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let made_with = archive
        .manifest()
        .map(|m| format!("; the archive was made with profile '{}'", m.profile))
        .unwrap_or_default();
    let what = if unknown.len() == 1 {
        "a database"
    } else {
        "databases"
    };
    Err(Error::usage(format!(
        "not verified: {} (not {what} of the {} profile{made_with}); verify with the profile the archive was made with (--profile)",
        unknown.join(", "),
        env.profile.name
    )))
}

/// Read every dump member to its end; returns the members checked.
fn check_dumps(
    archive: &ArchiveReader,
    env: &Environment,
    work: &WorkDir,
    log: &Log,
) -> Result<Vec<String>> {
    let tools = PgTools::newest()?;
    let mut dumps = Vec::new();
    for member in archive
        .members()
        .map(|m| m.name.clone())
        .collect::<Vec<_>>()
    {
        if !member.starts_with("db/") {
            continue;
        }
        let component = env.profile.databases.iter().find(|d| d.member == member);
        let Some(db) = component else {
            if env.profile.sqlite.iter().any(|s| s.member == member) {
                dumps::check_sqlite(&archive.member_path(&member).expect("listed member"))?;
                dumps.push(member);
            }
            continue;
        };
        let name = archive
            .manifest()
            .and_then(|m| m.database(&member))
            .map(|d| d.database.clone())
            .or_else(|| {
                env.database_credentials(db)
                    .ok()
                    .flatten()
                    .map(|p| p.database)
            })
            .unwrap_or_else(|| member.clone());
        log.output(&format!("- {} database '{name}'", db.restore_label()));
        let settings = archive.config().get(&db.archive_config_prefix);
        let path = archive.member_path(&member).expect("listed member");
        let forbidden = env
            .profile
            .verify
            .as_ref()
            .filter(|f| f.database == db.scope);
        dumps::check_dump(
            &tools,
            &path,
            settings.format,
            settings.compressor,
            forbidden,
            work.path(),
            log,
        )
        .map_err(|e| {
            Error::invalid(format!(
                "Errors while checking the dump of database '{name}' ({member}): {e}"
            ))
        })?;
        dumps.push(member);
    }
    Ok(dumps)
}
