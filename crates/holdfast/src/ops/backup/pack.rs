//! Writing the archive from the staged members: `config`, `os_version`,
//! `files`, `version`, the dumps and the manifest, to a temporary name that
//! is synced and renamed into place; or, for a repository snapshot, the same
//! members as files of a directory.

use std::path::Path;

use crate::archive::encryption::{self, Recipients};
use crate::archive::manifest::{DatabaseRecord, ToolInfo};
use crate::archive::{ArchiveConfig, ArchiveWriter, DumpSettings, Manifest, WriterOptions};
use crate::log::Log;
use crate::ops::{BackupOutput, BackupRequest, DumpPlan};
use crate::{IoContext, Result};

use super::plan::Plan;

/// Write the archive; returns its size.
pub(super) fn pack(
    req: &BackupRequest,
    plan: &Plan,
    tar: &Path,
    records: Vec<DatabaseRecord>,
    log: &Log,
) -> Result<u64> {
    let env = &req.env;
    let files_path = tar.join("files");
    let threads = req.threads.max(1);
    let config = archive_config(req);
    crate::interrupt::check()?;
    // An encrypted archive is written plain in the work directory first,
    // then encrypted to its place.
    let plain = tar.with_file_name("archive.plain");
    let dest = match req.encrypt_to {
        Some(_) => plain.as_path(),
        None => req.file.as_path(),
    };
    let mut writer = match req.output {
        BackupOutput::Archive => ArchiveWriter::create(
            dest,
            WriterOptions {
                codec: req.archive_codec,
                level: None,
                threads,
                overwrite: req.overwrite,
            },
        )?,
        BackupOutput::Directory => ArchiveWriter::create_directory(tar),
    };
    writer.add_bytes("config", config.render())?;
    writer.add_bytes("os_version", format!("{}\n", os_version()))?;
    if plan.files {
        writer.add_file("files", &files_path)?;
    }
    writer.add_bytes("version", format!("{}\n", req.application_version))?;
    for job in &plan.databases {
        writer.add_file(&job.component.member, &tar.join(&job.component.member))?;
    }
    for s in &plan.sqlite {
        writer.add_file(&s.member, &tar.join(&s.member))?;
    }
    let manifest = Manifest {
        format_version: 1,
        tool: ToolInfo {
            name: "holdfast".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        created_at: chrono::Local::now().to_rfc3339(),
        profile: env.profile.name.clone(),
        profile_source: env.profile.source.as_ref().map(|p| p.display().to_string()),
        application_version: req.application_version.clone(),
        host: env.fqdn(),
        scopes: plan.scopes(),
        members: writer.member_records(),
        databases: records,
    };
    writer.add_bytes(
        crate::archive::manifest::MANIFEST_MEMBER,
        manifest.to_json(),
    )?;
    log.line(&format!(
        "Creating sha256sum at {}",
        tar.join("sha256sum").display()
    ));
    crate::interrupt::check()?;
    if req.output == BackupOutput::Directory {
        let staged = writer.finish()?;
        std::fs::rename(&staged, &req.file)
            .context(|| format!("move {} to {}", staged.display(), req.file.display()))?;
        return crate::ops::workdir::tree_size(&req.file);
    }
    log.output(&format!("Packing into file '{}'", req.file.display()));
    log.line(&format!("Creating tarball {}", dest.display()));
    let written = writer.finish()?;
    if let Some(recipients) = &req.encrypt_to {
        encrypt_into_place(&written, recipients, &req.file, log)?;
        let _ = std::fs::remove_file(&written);
        return Ok(std::fs::metadata(&req.file).map(|m| m.len()).unwrap_or(0));
    }
    Ok(std::fs::metadata(&written).map(|m| m.len()).unwrap_or(0))
}

/// Encrypt the finished archive to `recipients` at `file` (temporary name,
/// fsync, rename), then its checksum file beside it.
fn encrypt_into_place(plain: &Path, recipients: &Recipients, file: &Path, log: &Log) -> Result<()> {
    log.line(&format!(
        "Encrypting to {} into {}",
        crate::log::count(recipients.len(), "age recipient", "age recipients"),
        file.display()
    ));
    let mut digest = String::new();
    crate::durable::write_with(file, 0o600, None, |out| {
        digest = encryption::encrypt(plain, recipients, out)?;
        Ok(())
    })?;
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    crate::durable::replace(
        &encryption::checksum_path(file),
        format!("{digest}  {name}\n").as_bytes(),
        0o600,
        None,
    )
}

/// The `config` member: how each database the profile backs up is dumped
/// (engine-backup's defaults for those not in the request).
fn archive_config(req: &BackupRequest) -> ArchiveConfig {
    let mut config = ArchiveConfig::default();
    for db in req.env.profile.databases.iter().filter(|d| !d.restore_only) {
        let s = req
            .dumps
            .get(&db.scope)
            .copied()
            .unwrap_or_else(DumpPlan::engine_backup_default);
        config.set(
            &db.archive_config_prefix,
            DumpSettings {
                compressor: s.codec,
                format: s.format,
            },
        );
    }
    config
}

/// `debian12`, `rhel9`: the distribution id and major version, as engine-backup writes it.
pub fn os_version() -> String {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_default()
    };
    let major = get("VERSION_ID")
        .split('.')
        .next()
        .unwrap_or("")
        .to_string();
    format!("{}{major}", get("ID"))
}
