//! The archive's `config` member: how each database dump was made (format and
//! extra compressor). engine-backup shell-sources this file; here it is data,
//! and only known keys with known values are accepted.

use super::codec::Codec;
use crate::error::{Error, Result};

/// pg_dump output format of a database dump.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum DumpFormat {
    /// SQL text, restored with psql; made without owners and privileges.
    Plain,
    /// pg_dump's custom archive format, restored with pg_restore.
    #[default]
    Custom,
}

impl DumpFormat {
    /// Parse an option value (`plain` or `custom`) with engine-backup's message.
    pub fn parse(value: &str) -> Result<DumpFormat> {
        DumpFormat::from_name(value)
            .ok_or_else(|| Error::usage(format!("invalid dump format '{value}'")))
    }

    fn from_name(value: &str) -> Option<DumpFormat> {
        match value {
            "plain" => Some(DumpFormat::Plain),
            "custom" => Some(DumpFormat::Custom),
            _ => None,
        }
    }

    /// `plain` or `custom`.
    pub fn as_str(self) -> &'static str {
        match self {
            DumpFormat::Plain => "plain",
            DumpFormat::Custom => "custom",
        }
    }
}

/// A database slot of an engine-backup archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ArchiveDb {
    Engine,
    Dwh,
    Keycloak,
    ManagedBlock,
    /// Legacy: read from old archives, never written.
    Cinderlib,
}

impl ArchiveDb {
    /// Every slot, in the order `config` lists them (Cinderlib last).
    pub const ALL: [ArchiveDb; 5] = [
        ArchiveDb::Engine,
        ArchiveDb::Dwh,
        ArchiveDb::Keycloak,
        ArchiveDb::ManagedBlock,
        ArchiveDb::Cinderlib,
    ];

    /// Prefix of the slot's keys in `config` (`DB_`, `DWH_DB_`, ...).
    pub fn config_prefix(self) -> &'static str {
        match self {
            ArchiveDb::Engine => "DB_",
            ArchiveDb::Dwh => "DWH_DB_",
            ArchiveDb::Keycloak => "KEYCLOAK_DB_",
            ArchiveDb::ManagedBlock => "MANAGEDBLOCK_DB_",
            ArchiveDb::Cinderlib => "CINDERLIB_DB_",
        }
    }

    /// The dump's member path relative to the archive root (`db/engine_backup.db`).
    pub fn member(self) -> &'static str {
        match self {
            ArchiveDb::Engine => "db/engine_backup.db",
            ArchiveDb::Dwh => "db/dwh_backup.db",
            ArchiveDb::Keycloak => "db/keycloak_backup.db",
            ArchiveDb::ManagedBlock => "db/managedblock_backup.db",
            ArchiveDb::Cinderlib => "db/cinderlib_backup.db",
        }
    }

    /// The slot whose dump is stored at `member`, if any.
    pub fn from_member(member: &str) -> Option<ArchiveDb> {
        ArchiveDb::ALL.into_iter().find(|db| db.member() == member)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How one database was dumped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DumpSettings {
    /// Extra compressor the dump was piped through (`None` for none).
    pub compressor: Codec,
    pub format: DumpFormat,
}

/// The `config` member: dump settings of every database slot. Slots not
/// mentioned have engine-backup's defaults (custom format, no compressor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ArchiveConfig {
    settings: [DumpSettings; 5],
}

impl ArchiveConfig {
    /// Settings of one slot.
    pub fn get(&self, db: ArchiveDb) -> DumpSettings {
        self.settings[db.index()]
    }

    /// Change the settings of one slot.
    pub fn set(&mut self, db: ArchiveDb, settings: DumpSettings) {
        self.settings[db.index()] = settings;
    }

    /// The member text exactly as engine-backup 4.5 writes it: eight lines,
    /// compressor then format for DB, DWH_DB, KEYCLOAK_DB and MANAGEDBLOCK_DB.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for db in &ArchiveDb::ALL[..4] {
            let s = self.get(*db);
            let prefix = db.config_prefix();
            out.push_str(&format!(
                "{prefix}DUMP_COMPRESSOR={}\n",
                s.compressor.config_value()
            ));
            out.push_str(&format!("{prefix}DUMP_FORMAT={}\n", s.format.as_str()));
        }
        out
    }

    /// Parse the member text as data. Blank lines and `#` comments are
    /// skipped; anything but `<known key>=<known value>` is an Invalid error
    /// naming `origin` and the line.
    pub fn parse(text: &str, origin: &str) -> Result<ArchiveConfig> {
        let mut config = ArchiveConfig::default();
        for (n, line) in text.lines().enumerate() {
            let fail = |what: String| Error::invalid(format!("{origin}: line {}: {what}", n + 1));
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(fail(format!(
                    "expected KEY=value, found {:?}",
                    shorten(line)
                )));
            };
            let Some((db, field)) = ArchiveDb::ALL.into_iter().find_map(|db| {
                key.strip_prefix(db.config_prefix())
                    .filter(|f| *f == "DUMP_COMPRESSOR" || *f == "DUMP_FORMAT")
                    .map(|f| (db, f))
            }) else {
                return Err(fail(format!("unknown key {:?}", shorten(key))));
            };
            let mut settings = config.get(db);
            if field == "DUMP_COMPRESSOR" {
                settings.compressor = Codec::from_config_value(value).ok_or_else(|| {
                    fail(format!(
                        "invalid value {:?} for {key}: expected empty, gzip, bzip2, xz or zstd",
                        shorten(value)
                    ))
                })?;
            } else {
                settings.format = DumpFormat::from_name(value).ok_or_else(|| {
                    fail(format!(
                        "invalid value {:?} for {key}: expected custom or plain",
                        shorten(value)
                    ))
                })?;
            }
            config.set(db, settings);
        }
        Ok(config)
    }
}

fn shorten(text: &str) -> String {
    text.chars().take(60).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: &str = "DB_DUMP_COMPRESSOR=\nDB_DUMP_FORMAT=custom\nDWH_DB_DUMP_COMPRESSOR=\nDWH_DB_DUMP_FORMAT=custom\nKEYCLOAK_DB_DUMP_COMPRESSOR=\nKEYCLOAK_DB_DUMP_FORMAT=custom\nMANAGEDBLOCK_DB_DUMP_COMPRESSOR=\nMANAGEDBLOCK_DB_DUMP_FORMAT=custom\n";

    #[test]
    fn default_renders_like_engine_backup() {
        assert_eq!(ArchiveConfig::default().render(), DEFAULT);
        assert_eq!(
            ArchiveConfig::parse(DEFAULT, "config").unwrap(),
            ArchiveConfig::default()
        );
    }

    #[test]
    fn small_size_settings_round_trip() {
        let mut c = ArchiveConfig::default();
        let xz_plain = DumpSettings {
            compressor: Codec::Xz,
            format: DumpFormat::Plain,
        };
        c.set(ArchiveDb::Engine, xz_plain);
        c.set(ArchiveDb::Dwh, xz_plain);
        let text = c.render();
        assert!(text.starts_with("DB_DUMP_COMPRESSOR=xz\nDB_DUMP_FORMAT=plain\n"));
        assert_eq!(text.len(), 222);
        assert_eq!(ArchiveConfig::parse(&text, "config").unwrap(), c);
    }

    #[test]
    fn legacy_cinderlib_keys_are_read_but_not_written() {
        let c = ArchiveConfig::parse("CINDERLIB_DB_DUMP_FORMAT=plain\n", "config").unwrap();
        assert_eq!(c.get(ArchiveDb::Cinderlib).format, DumpFormat::Plain);
        assert!(!c.render().contains("CINDERLIB"));
    }

    #[test]
    fn shell_code_and_unknown_keys_are_refused() {
        for (text, want) in [
            (
                "DB_DUMP_FORMAT=$(touch /tmp/x)\n",
                "config: line 1: invalid value",
            ),
            (
                "DB_DUMP_FORMAT=custom; rm -rf /\n",
                "config: line 1: invalid value",
            ),
            (
                "DB_DUMP_FORMAT=custom\nDB_DUMP_COMPRESSOR=`id`\n",
                "config: line 2: invalid value",
            ),
            ("PATH=/tmp\n", "config: line 1: unknown key \"PATH\""),
            ("touch /tmp/x\n", "config: line 1: expected KEY=value"),
            (
                "DB_DUMP_FORMAT=\"custom\"\n",
                "config: line 1: invalid value",
            ),
        ] {
            let err = ArchiveConfig::parse(text, "config").unwrap_err();
            assert!(matches!(err, Error::Invalid(_)));
            assert!(err.to_string().starts_with(want), "{err}");
        }
    }

    #[test]
    fn dump_format_option_errors() {
        assert_eq!(DumpFormat::parse("plain").unwrap(), DumpFormat::Plain);
        assert_eq!(
            DumpFormat::parse("Plain").unwrap_err().to_string(),
            "invalid dump format 'Plain'"
        );
    }
}
