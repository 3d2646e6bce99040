//! What the archive holds of the scopes a restore asks for: the files member
//! and the database dumps; a scope asked for by name that the archive does
//! not hold is warned about and skipped.

use std::path::PathBuf;

use crate::archive::{ArchiveReader, DumpFormat};
use crate::log::Log;
use crate::ops::RestoreRequest;
use crate::profile::DatabaseComponent;

/// The members a restore reads.
pub(super) struct Selection<'a> {
    /// The unpacked `files` member, when it is asked for and not empty.
    pub files: Option<PathBuf>,
    /// Each database asked for that the archive holds, with its dump.
    pub databases: Vec<(&'a DatabaseComponent, PathBuf)>,
}

impl<'a> Selection<'a> {
    pub fn of(req: &'a RestoreRequest, archive: &ArchiveReader, log: &Log) -> Selection<'a> {
        let profile = &req.env.profile;
        let wanted = |scope: &str| req.scopes.iter().any(|s| s == scope);
        let files = archive
            .member("files")
            .filter(|m| m.size > 0 && wanted("files"))
            .and_then(|_| archive.member_path("files"));
        let mut databases: Vec<(&DatabaseComponent, PathBuf)> = Vec::new();
        for db in &profile.databases {
            if !wanted(&db.scope) {
                continue;
            }
            match archive.member(&db.member).filter(|m| m.size > 0) {
                Some(_) => databases.push((db, archive.member_path(&db.member).expect("listed"))),
                None => log.line(&format!("{}: not in the archive, not restored", db.scope)),
            }
        }
        let selection = Selection { files, databases };
        selection.warn_missing(req, log);
        selection
    }

    /// Scopes asked for by name that the archive holds nothing for.
    fn warn_missing(&self, req: &RestoreRequest, log: &Log) {
        let profile = &req.env.profile;
        let explicit = req.scopes.len() < profile.scopes().len();
        let missing = req.scopes.iter().filter(|_| explicit).filter(|s| {
            (s.as_str() == "files" && self.files.is_none())
                || profile
                    .database(s)
                    .is_some_and(|d| !self.databases.iter().any(|(x, _)| x.scope == d.scope))
        });
        for s in missing {
            log.warning(&format!(
                "the archive holds nothing for scope '{s}'; it is skipped"
            ));
        }
    }

    /// Whether a selected database was dumped in `format`.
    pub fn has_format(&self, archive: &ArchiveReader, format: DumpFormat) -> bool {
        self.databases
            .iter()
            .any(|(db, _)| archive.config().get(&db.archive_config_prefix).format == format)
    }
}
