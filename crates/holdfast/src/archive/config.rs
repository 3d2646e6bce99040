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

/// How one database was dumped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DumpSettings {
    /// Extra compressor the dump was piped through (`None` for none).
    pub compressor: Codec,
    pub format: DumpFormat,
}

/// The `config` member: how each database's dump was made, by its key prefix
/// (`DB_`, `DWH_DB_`, … as the profile names them), in the order written.
/// Prefixes not mentioned have engine-backup's defaults (custom, no compressor).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ArchiveConfig {
    entries: Vec<(String, DumpSettings)>,
}

impl ArchiveConfig {
    /// Settings of the database with this key prefix.
    pub fn get(&self, prefix: &str) -> DumpSettings {
        self.entries
            .iter()
            .find(|(p, _)| p == prefix)
            .map(|(_, s)| *s)
            .unwrap_or_default()
    }

    /// Set the settings of a prefix; a new prefix is written after the others.
    pub fn set(&mut self, prefix: &str, settings: DumpSettings) {
        match self.entries.iter_mut().find(|(p, _)| p == prefix) {
            Some((_, s)) => *s = settings,
            None => self.entries.push((prefix.to_string(), settings)),
        }
    }

    /// The prefixes present, in order.
    pub fn prefixes(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(p, _)| p.as_str())
    }

    /// The member text as engine-backup writes it: per prefix, compressor then
    /// format (`DB_DUMP_COMPRESSOR=` / `DB_DUMP_FORMAT=custom`).
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (prefix, s) in &self.entries {
            out.push_str(&format!(
                "{prefix}DUMP_COMPRESSOR={}\n",
                s.compressor.config_value()
            ));
            out.push_str(&format!("{prefix}DUMP_FORMAT={}\n", s.format.as_str()));
        }
        out
    }

    /// Parse the member text as data. Blank lines and `#` comments are
    /// skipped; anything but `<PREFIX>DUMP_COMPRESSOR=<codec>` or
    /// `<PREFIX>DUMP_FORMAT=<format>` (PREFIX: upper-case letters, digits and
    /// `_`, ending in `_`) is an Invalid error naming `origin` and the line.
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
            let split = ["DUMP_COMPRESSOR", "DUMP_FORMAT"]
                .into_iter()
                .find_map(|field| {
                    key.strip_suffix(field)
                        .filter(|p| valid_prefix(p))
                        .map(|p| (p, field))
                });
            let Some((prefix, field)) = split else {
                return Err(fail(format!("unknown key {:?}", shorten(key))));
            };
            let mut settings = config.get(prefix);
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
            config.set(prefix, settings);
        }
        Ok(config)
    }
}

fn valid_prefix(p: &str) -> bool {
    p.len() > 1
        && p.ends_with('_')
        && p.starts_with(|c: char| c.is_ascii_uppercase())
        && p.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn shorten(text: &str) -> String {
    text.chars().take(60).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: &str = "DB_DUMP_COMPRESSOR=\nDB_DUMP_FORMAT=custom\nDWH_DB_DUMP_COMPRESSOR=\nDWH_DB_DUMP_FORMAT=custom\nKEYCLOAK_DB_DUMP_COMPRESSOR=\nKEYCLOAK_DB_DUMP_FORMAT=custom\nMANAGEDBLOCK_DB_DUMP_COMPRESSOR=\nMANAGEDBLOCK_DB_DUMP_FORMAT=custom\n";

    const OVIRT: [&str; 4] = ["DB_", "DWH_DB_", "KEYCLOAK_DB_", "MANAGEDBLOCK_DB_"];

    fn ovirt_default() -> ArchiveConfig {
        let mut c = ArchiveConfig::default();
        for p in OVIRT {
            c.set(p, DumpSettings::default());
        }
        c
    }

    #[test]
    fn default_renders_like_engine_backup() {
        assert_eq!(ovirt_default().render(), DEFAULT);
        assert_eq!(
            ArchiveConfig::parse(DEFAULT, "config").unwrap(),
            ovirt_default()
        );
    }

    #[test]
    fn small_size_settings_round_trip() {
        let mut c = ovirt_default();
        let xz_plain = DumpSettings {
            compressor: Codec::Xz,
            format: DumpFormat::Plain,
        };
        c.set("DB_", xz_plain);
        c.set("DWH_DB_", xz_plain);
        let text = c.render();
        assert!(text.starts_with("DB_DUMP_COMPRESSOR=xz\nDB_DUMP_FORMAT=plain\n"));
        assert_eq!(text.len(), 222);
        assert_eq!(ArchiveConfig::parse(&text, "config").unwrap(), c);
    }

    #[test]
    fn legacy_cinderlib_keys_are_read_but_not_written() {
        let c = ArchiveConfig::parse("CINDERLIB_DB_DUMP_FORMAT=plain\n", "config").unwrap();
        assert_eq!(c.get("CINDERLIB_DB_").format, DumpFormat::Plain);
        assert_eq!(
            c.get("DB_").format,
            DumpFormat::Custom,
            "absent prefix: default"
        );
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
            ("db_DUMP_FORMAT=custom\n", "config: line 1: unknown key"),
            ("DUMP_FORMAT=custom\n", "config: line 1: unknown key"),
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
