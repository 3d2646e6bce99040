//! The migration's journal: the conf files it rewrote and their copies,
//! written once the copy is proven, and read back by `holdfast migrate
//! --rollback` to point the application at the source again.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::log::Log;
use crate::pg::ConnParams;
use crate::profile::{DatabaseComponent, Environment};
use crate::{Error, IoContext, Result};

use super::MigrateRequest;

/// What `holdfast migrate --rollback` needs: the conf files and their copies.
#[derive(Debug, Serialize, Deserialize)]
pub struct MigrationJournal {
    pub scope: String,
    pub source: String,
    pub target: String,
    pub migrated_at: String,
    pub rewritten: Vec<RewrittenFile>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RewrittenFile {
    pub file: PathBuf,
    pub copy: PathBuf,
}

pub(super) fn write_journal(
    env: &Environment,
    db: &DatabaseComponent,
    source: &ConnParams,
    req: &MigrateRequest,
    rewritten: &[(PathBuf, PathBuf)],
) -> Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = env.root.join(&env.profile.archive.backup_dir);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .context(|| format!("create {}", dir.display()))?;
    let now = chrono::Local::now();
    let path = dir.join(format!(
        "holdfast-migrate-{}-{}.json",
        db.scope,
        now.format("%Y%m%d%H%M%S")
    ));
    let journal = MigrationJournal {
        scope: db.scope.clone(),
        source: source.display(),
        target: req.target.display(),
        migrated_at: now.to_rfc3339(),
        rewritten: rewritten
            .iter()
            .map(|(f, c)| RewrittenFile {
                file: f.clone(),
                copy: c.clone(),
            })
            .collect(),
    };
    let text = serde_json::to_string_pretty(&journal)
        .map_err(|e| Error::failed(format!("journal: {e}")))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .context(|| format!("create {}", path.display()))?;
    std::io::Write::write_all(&mut file, text.as_bytes())
        .context(|| format!("write {}", path.display()))?;
    file.sync_all()
        .context(|| format!("sync {}", path.display()))?;
    Ok(path)
}

/// Point the application back at the source: put back the conf files a
/// migration rewrote (the migrated versions are kept beside them).
pub fn rollback(journal_path: &Path, log: &Log) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(journal_path).map_err(|e| {
        Error::usage(format!(
            "cannot read the migration journal {}: {e}; pass the file the migration printed",
            journal_path.display()
        ))
    })?;
    let journal: MigrationJournal = serde_json::from_str(&text).map_err(|e| {
        Error::invalid(format!(
            "{} is not a migration journal: {e}",
            journal_path.display()
        ))
    })?;
    for r in &journal.rewritten {
        if !r.copy.is_file() {
            return Err(Error::usage(format!(
                "the copy {} of {} is gone; nothing was changed",
                r.copy.display(),
                r.file.display()
            )));
        }
    }
    let stamp = chrono::Local::now().format("%Y%m%d%H%M%S");
    let mut restored = Vec::new();
    for r in &journal.rewritten {
        let migrated = PathBuf::from(format!("{}.migrated-{stamp}", r.file.display()));
        std::fs::copy(&r.file, &migrated).context(|| format!("keep {}", r.file.display()))?;
        std::fs::rename(&r.copy, &r.file).context(|| format!("put back {}", r.file.display()))?;
        log.output(&format!(
            "Restored {} (the migrated version is kept as {})",
            r.file.display(),
            migrated.display()
        ));
        restored.push(r.file.clone());
    }
    log.output(&format!(
        "The application points at {} again; the copy on {} is left in place.",
        journal.source, journal.target
    ));
    let done = journal_path.with_extension("rolled-back.json");
    std::fs::rename(journal_path, &done)
        .context(|| format!("rename {}", journal_path.display()))?;
    Ok(restored)
}
