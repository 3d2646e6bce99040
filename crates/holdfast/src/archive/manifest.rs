//! `manifest.json`: holdfast's own description of an archive (engine-backup
//! ignores it). It records who made the archive, every member's size and
//! digest, and per database what a restore must reproduce: roles, tables with
//! row counts and checksums, sequences. The database part is plain data that
//! the backup fills in and the verify and restore steps compare against.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::checksum::{HashKind, KnownDigests};
use super::codec::Codec;
use super::config::DumpFormat;
use crate::error::{Error, Result};

/// The manifest's member name.
pub const MANIFEST_MEMBER: &str = "manifest.json";

/// The manifest format this code writes; later versions are refused.
pub const MANIFEST_FORMAT_VERSION: u32 = 1;

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub tool: ToolInfo,
    /// RFC 3339 time the backup started.
    pub created_at: String,
    /// The profile that made the archive, e.g. `ovirt-engine`.
    pub profile: String,
    /// The TOML file that profile was read from (absolute), absent for a
    /// built-in profile: verify and restore use it when no profile is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_source: Option<String>,
    /// The application's version (the `version` member for oVirt).
    pub application_version: String,
    pub host: String,
    /// Scopes that were backed up (`files`, `db`, `dwhdb`, ...).
    pub scopes: Vec<String>,
    /// Every member except the manifest and the hash file.
    pub members: Vec<MemberRecord>,
    pub databases: Vec<DatabaseRecord>,
}

/// Name and version of the program that wrote the archive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolInfo {
    pub name: String,
    pub version: String,
}

/// One archive member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// Path relative to the archive root, e.g. `db/engine_backup.db`.
    pub name: String,
    pub size: u64,
    /// Lower-case hex SHA-256.
    pub sha256: String,
}

/// One backed-up database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatabaseRecord {
    /// The scope that selects it (`db`, `dwhdb`, ...).
    pub scope: String,
    /// Database name on the source server.
    pub database: String,
    /// The dump's member name.
    pub member: String,
    pub dump_format: DumpFormat,
    pub compressor: Codec,
    pub pg_dump_version: String,
    pub server_version: String,
    pub encoding: String,
    pub collate: String,
    pub ctype: String,
    #[serde(default)]
    pub extensions: Vec<String>,
    #[serde(default)]
    pub roles: Vec<RoleRecord>,
    #[serde(default)]
    pub tables: Vec<TableRecord>,
    #[serde(default)]
    pub sequences: Vec<SequenceRecord>,
    /// The settings of the dump's session under which its tables' `xxh3sum:`
    /// fingerprints were taken from the rows' COPY text; a deep verify copies
    /// the restored tables under the same. Absent in archives whose tables all
    /// have server-computed (`h64:`) fingerprints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_text: Option<RowTextRecord>,
}

/// The session settings that shape the COPY text of a dump's rows, as the
/// backup read them (PostgreSQL's `TimeZone` and `bytea_output`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowTextRecord {
    pub timezone: String,
    pub bytea_output: String,
}

/// A role the database needs, with the SQL that recreates it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleRecord {
    pub name: String,
    /// For the reader: a restore never runs this text (it would run as the
    /// superuser); it creates the role from [`RoleRecord::attributes`].
    pub sql: String,
    /// What the role was, to create it again as it was (archives made
    /// before holdfast recorded it have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<RoleAttributes>,
}

/// A role's attributes, memberships and password, as `pg_roles` and
/// `pg_authid` held them when the backup ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleAttributes {
    pub login: bool,
    pub superuser: bool,
    pub createdb: bool,
    pub createrole: bool,
    pub inherit: bool,
    pub replication: bool,
    pub bypassrls: bool,
    /// `-1` for no limit.
    pub connection_limit: i32,
    /// `VALID UNTIL`, in UTC, or `infinity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<String>,
    /// The roles it is a direct member of.
    #[serde(default)]
    pub member_of: Vec<String>,
    pub password: RolePassword,
    /// The stored verifier (`SCRAM-SHA-256$…` or `md5…`) when `password` is
    /// `kept`: the server stores it as given, so the role logs in with its
    /// old password and the password itself was never known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
}

/// Whether the archive can give a role its password back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RolePassword {
    /// Its stored verifier is in the archive.
    Kept,
    /// It had no password.
    None,
    /// The backup could not read it (no administrative connection): a
    /// restore that creates the role gives it a new one.
    NotRead,
}

/// Content summary of a table or materialized view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableRecord {
    pub schema: String,
    pub name: String,
    /// `table`, `materialized view`, ...
    pub kind: String,
    pub row_count: u64,
    pub checksum: String,
}

/// State of a sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequenceRecord {
    /// Schema-qualified name.
    pub name: String,
    pub last_value: i64,
    pub is_called: bool,
}

impl Manifest {
    /// Pretty JSON text with a final newline.
    pub fn to_json(&self) -> String {
        let mut text =
            serde_json::to_string_pretty(self).expect("a manifest always serializes to JSON");
        text.push('\n');
        text
    }

    /// Parse and check manifest text; `origin` names it in errors.
    pub fn parse(bytes: &[u8], origin: &str) -> Result<Manifest> {
        let manifest: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| Error::invalid(format!("{origin}: not a valid manifest: {e}")))?;
        if manifest.format_version == 0 || manifest.format_version > MANIFEST_FORMAT_VERSION {
            return Err(Error::invalid(format!(
                "{origin}: manifest format version {} is not supported (this holdfast reads 1 to {MANIFEST_FORMAT_VERSION}); use a newer holdfast",
                manifest.format_version
            )));
        }
        if chrono::DateTime::parse_from_rfc3339(&manifest.created_at).is_err() {
            return Err(Error::invalid(format!(
                "{origin}: created_at {:?} is not an RFC 3339 time",
                manifest.created_at
            )));
        }
        Ok(manifest)
    }

    /// Check every member record against the extracted files under `root`:
    /// present, same size, same SHA-256.
    pub fn verify_members(&self, root: &Path, known: &KnownDigests) -> Result<()> {
        for member in &self.members {
            let path = root.join(&member.name);
            let meta = match std::fs::metadata(&path) {
                Ok(m) if m.is_file() && super::is_member_name(&member.name) => m,
                _ => {
                    return Err(Error::invalid(format!(
                        "manifest lists member '{}', which is not in the archive",
                        member.name
                    )))
                }
            };
            if meta.len() != member.size {
                return Err(Error::invalid(format!(
                    "member '{}' is {} bytes, the manifest says {}",
                    member.name,
                    meta.len(),
                    member.size
                )));
            }
            let digest = known.digest(HashKind::Sha256, &path)?;
            if digest != member.sha256 {
                return Err(Error::invalid(format!(
                    "member '{}' has sha256 {digest}, the manifest says {}",
                    member.name, member.sha256
                )));
            }
        }
        Ok(())
    }

    /// The record of the database dumped to `member`, if any.
    pub fn database(&self, member: &str) -> Option<&DatabaseRecord> {
        self.databases.iter().find(|d| d.member == member)
    }
}

#[cfg(test)]
pub(crate) fn sample() -> Manifest {
    Manifest {
        format_version: MANIFEST_FORMAT_VERSION,
        tool: ToolInfo {
            name: "holdfast".into(),
            version: "0.1.0".into(),
        },
        created_at: "2026-11-21T14:48:04+00:00".into(),
        profile: "ovirt-engine".into(),
        profile_source: None,
        application_version: "4.5.7".into(),
        host: "engine.example.test".into(),
        scopes: vec!["files".into(), "db".into()],
        members: vec![],
        databases: vec![DatabaseRecord {
            scope: "db".into(),
            database: "engine".into(),
            member: "db/engine_backup.db".into(),
            dump_format: DumpFormat::Custom,
            compressor: Codec::None,
            pg_dump_version: "15.18".into(),
            server_version: "15.18".into(),
            encoding: "UTF8".into(),
            collate: "C.UTF-8".into(),
            ctype: "C.UTF-8".into(),
            extensions: vec![],
            roles: vec![RoleRecord {
                name: "engine".into(),
                sql: "CREATE ROLE engine LOGIN;".into(),
                attributes: None,
            }],
            tables: vec![TableRecord {
                schema: "public".into(),
                name: "hosts".into(),
                kind: "table".into(),
                row_count: 40,
                checksum: "05f14a8f646423dad14e60e05a70c74e".into(),
            }],
            sequences: vec![SequenceRecord {
                name: "public.ticket_number_seq".into(),
                last_value: 5000,
                is_called: false,
            }],
            row_text: None,
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip() {
        let m = sample();
        let text = m.to_json();
        assert!(text.contains("\"dump_format\": \"custom\""));
        assert!(text.contains("\"compressor\": \"none\""));
        assert_eq!(
            Manifest::parse(text.as_bytes(), "manifest.json").unwrap(),
            m
        );
    }

    #[test]
    fn bad_manifests_are_invalid() {
        let err = Manifest::parse(b"{", "manifest.json").unwrap_err();
        assert!(matches!(err, Error::Invalid(_)));
        assert!(err
            .to_string()
            .starts_with("manifest.json: not a valid manifest"));

        let mut m = sample();
        m.format_version = 99;
        let err = Manifest::parse(m.to_json().as_bytes(), "manifest.json").unwrap_err();
        assert!(err.to_string().contains("format version 99"), "{err}");

        let mut m = sample();
        m.created_at = "yesterday".into();
        assert!(Manifest::parse(m.to_json().as_bytes(), "manifest.json").is_err());
    }

    #[test]
    fn verify_members_detects_size_and_digest_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("version"), "4.5.7\n").unwrap();
        let mut m = sample();
        m.members = vec![MemberRecord {
            name: "version".into(),
            size: 6,
            sha256: "5186e88612feecac695acd0f27bd3b758213febb46a6fa4a105164a68d07c3c8".into(),
        }];
        m.verify_members(dir.path(), &KnownDigests::default())
            .unwrap();
        m.members[0].sha256 = "0".repeat(64);
        let err = m
            .verify_members(dir.path(), &KnownDigests::default())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("member 'version' has sha256"), "{err}");
        m.members[0].size = 7;
        assert!(m
            .verify_members(dir.path(), &KnownDigests::default())
            .unwrap_err()
            .to_string()
            .contains("is 6 bytes"));
        m.members[0].name = "../version".into();
        assert!(m
            .verify_members(dir.path(), &KnownDigests::default())
            .is_err());
    }
}
