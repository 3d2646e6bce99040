//! The files the runner executes: versioned upgrade scripts (`MM_mm_nnnn_Name.sql`
//! or an executable), plain SQL files (base, views, procedures, pre/post upgrade),
//! their versions, checksums and header lines.

use std::fmt;
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

use super::sql_text::{self, Statement};
use crate::{Error, IoContext, Result};

/// An upgrade script version, `MMmmnnnn` as oVirt stores it (`04050330`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(u32);

impl Version {
    /// Parse the 8-digit form stored in `schema_version.version` (blanks trimmed).
    pub fn parse(text: &str) -> Option<Version> {
        let t = text.trim();
        if t.is_empty() || t.len() > 8 || !t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        t.parse().ok().map(Version)
    }

    /// `MM*1000000 + mm*10000 + nnnn`.
    pub fn number(self) -> u32 {
        self.0
    }

    /// The `MMmm` part: the gap rule applies within one major.minor.
    pub fn series(self) -> u32 {
        self.0 / 10_000
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08}", self.0)
    }
}

/// The checksums of one file's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    /// md5 hex of the raw bytes: what oVirt's `md5sum` stores.
    pub raw: String,
    /// md5 hex after dropping a UTF-8 BOM and turning CRLF into LF, so that a
    /// checkout with other line endings is not reported as a change.
    pub normalized: String,
}

impl Checksum {
    pub fn of(bytes: &[u8]) -> Checksum {
        let raw = hex::encode(Md5::digest(bytes));
        let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let mut unix = Vec::with_capacity(body.len());
        let mut i = 0;
        while i < body.len() {
            if body[i] == b'\r' && body.get(i + 1) == Some(&b'\n') {
                i += 1;
                continue;
            }
            unix.push(body[i]);
            i += 1;
        }
        Checksum {
            raw,
            normalized: hex::encode(Md5::digest(&unix)),
        }
    }

    /// Whether a stored checksum describes this content.
    pub fn matches(&self, stored: &str) -> bool {
        let stored = stored.trim();
        stored.eq_ignore_ascii_case(&self.raw) || stored.eq_ignore_ascii_case(&self.normalized)
    }
}

/// A SQL file of the tree, read and split into statements.
#[derive(Debug, Clone)]
pub struct SqlFile {
    /// Path relative to the tree root, `/`-separated (`upgrade/04_01_0010_x.sql`).
    pub rel: String,
    pub statements: Vec<Statement>,
    pub checksum: Checksum,
    /// Why the file cannot run inside a transaction block, if it cannot.
    pub transaction_blocker: Option<String>,
}

impl SqlFile {
    /// Read `root/rel`, refusing psql meta-commands and unterminated quotes.
    pub fn read(root: &Path, rel: &str) -> Result<SqlFile> {
        let path = root.join(rel);
        let bytes = std::fs::read(&path).context(|| format!("read {}", path.display()))?;
        let checksum = Checksum::of(&bytes);
        let text = String::from_utf8(bytes).map_err(|_| {
            Error::invalid(format!("{rel}: not UTF-8 text; convert the file to UTF-8"))
        })?;
        let statements = sql_text::split(rel, &text)?;
        let declared = header_lines(&text).any(|l| {
            let l = l.trim_start_matches('-').trim();
            l.eq_ignore_ascii_case("holdfast:no-transaction")
                || l.eq_ignore_ascii_case("no-transaction")
        });
        let transaction_blocker = if declared {
            Some("declared no-transaction in its header".to_string())
        } else {
            statements.iter().find_map(|s| {
                s.transaction_blocker()
                    .map(|why| format!("{why} at line {}", s.line))
            })
        };
        Ok(SqlFile {
            rel: rel.to_string(),
            statements,
            checksum,
            transaction_blocker,
        })
    }
}

/// The leading comment and blank lines of a script, where headers live.
fn header_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .take_while(|l| l.is_empty() || l.starts_with("--"))
        .filter(|l| !l.is_empty())
}

/// What a versioned upgrade script is.
#[derive(Debug, Clone)]
pub enum ScriptBody {
    Sql(SqlFile),
    /// An executable file run as its own process, never inside a transaction.
    Executable(PathBuf),
}

/// A versioned upgrade script (`upgrade/MM_mm_nnnn_Name.sql`).
#[derive(Debug, Clone)]
pub struct UpgradeScript {
    pub version: Version,
    /// Path relative to the tree root, as stored in `schema_version.script`.
    pub rel: String,
    pub checksum: Checksum,
    pub body: ScriptBody,
    /// `--#source name_sp.sql` helpers run before the script.
    pub sources: Vec<SqlFile>,
}

impl UpgradeScript {
    /// Why the script must run outside a transaction, if it must.
    pub fn transaction_blocker(&self) -> Option<String> {
        match &self.body {
            ScriptBody::Sql(f) => f.transaction_blocker.clone(),
            ScriptBody::Executable(_) => Some("an executable script".to_string()),
        }
    }

    /// Read `root/rel` as an upgrade script named `MM_mm_nnnn…(.sql|.sh)`.
    pub fn read(root: &Path, rel: &str) -> Result<UpgradeScript> {
        let name = rel.rsplit('/').next().unwrap_or(rel);
        let version = version_of_name(name)
            .ok_or_else(|| Error::invalid(format!("{rel}: {NAME_RULE}; rename the file")))?;
        let path = root.join(rel);
        let executable = name.ends_with(".sh") && is_executable(&path);
        if executable {
            let bytes = std::fs::read(&path).context(|| format!("read {}", path.display()))?;
            return Ok(UpgradeScript {
                version,
                rel: rel.to_string(),
                checksum: Checksum::of(&bytes),
                body: ScriptBody::Executable(path),
                sources: Vec::new(),
            });
        }
        let file = SqlFile::read(root, rel)?;
        let text = std::fs::read_to_string(&path).context(|| format!("read {}", path.display()))?;
        let sources = source_headers(rel, &text)?
            .iter()
            .map(|src| {
                if !root.join(src).is_file() {
                    return Err(Error::invalid(format!(
                        "{rel}: its --#source file {src} does not exist under {}",
                        root.display()
                    )));
                }
                SqlFile::read(root, src)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(UpgradeScript {
            version,
            rel: rel.to_string(),
            checksum: file.checksum.clone(),
            body: ScriptBody::Sql(file),
            sources,
        })
    }
}

/// How schema.sh reads a version from a script name, in the words of the error
/// that refuses a name it would not read.
pub const NAME_RULE: &str = "upgrade script names must start with the version MM_mm_nnnn \
     (schema.sh takes the first ten characters, underscores removed, as the version; \
     anything may follow, e.g. 04_02_0570-remove-option.sql or 04_05_0010_add_column.sql)";

/// The version of an upgrade script name, as schema.sh reads it: the first ten
/// characters with underscores removed (`04_02_0570-remove-X.sql` → `04020570`);
/// whatever follows them is free. `None` unless those ten characters are
/// `MM_mm_nnnn` and the name ends in `.sql` or `.sh`: any other shape schema.sh
/// either cannot compare or would sort out of version order.
pub fn version_of_name(name: &str) -> Option<Version> {
    let stem = name
        .strip_suffix(".sql")
        .or_else(|| name.strip_suffix(".sh"))?;
    let b = stem.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    let shaped = b.len() >= 10
        && digits(0..2)
        && b[2] == b'_'
        && digits(3..5)
        && b[5] == b'_'
        && digits(6..10);
    if !shaped {
        return None;
    }
    Version::parse(&stem[..10].replace('_', ""))
}

/// The `--#source <file>` headers: leading lines whose first field contains
/// `--#source`; the file must be a `*_sp.sql` file relative to the tree root.
fn source_headers(rel: &str, text: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { break };
        if !first.contains("--#source") {
            break;
        }
        let src = fields.next().unwrap_or("");
        if !src.ends_with("_sp.sql") || src.contains("..") || src.starts_with('/') {
            return Err(Error::invalid(format!(
                "{rel}: invalid --#source file '{src}': source files must be *_sp.sql \
                 files relative to the scripts directory"
            )));
        }
        out.push(src.to_string());
    }
    Ok(out)
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_come_from_names() {
        assert_eq!(
            version_of_name("04_05_0330_change_type.sql").map(|v| v.to_string()),
            Some("04050330".to_string())
        );
        assert_eq!(
            version_of_name("04_05_0330_x.sh").unwrap().number(),
            4_050_330
        );
        // oVirt's own names with `-` after the version, and bare versions.
        for good in [
            "04_02_0570-remove-UserSessionHardLimit.sql",
            "04_02_0570.sql",
            "04_02_0570 a b.sql",
            "04_02_0570__double.sql",
        ] {
            assert_eq!(
                version_of_name(good).unwrap().to_string(),
                "04020570",
                "{good}"
            );
        }
        assert_eq!(
            version_of_name("04_02_0580-remove-DefaultMaxThreadWaitQueueSize.sql")
                .unwrap()
                .to_string(),
            "04020580"
        );
        for bad in [
            "4_05_0330_x.sql",
            "04_05_330_x.sql",
            "0405_0330_x.sql",
            "04_05_0330_x.txt",
            "04-05-0330_x.sql",
        ] {
            assert_eq!(version_of_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn checksum_is_md5sum_and_tolerates_line_endings() {
        let c = Checksum::of(b"select 1;\n");
        assert_eq!(c.raw, "0642f7fde5adc5e6e9464d9434c1887b");
        let crlf = Checksum::of(b"\xEF\xBB\xBFselect 1;\r\n");
        assert_ne!(crlf.raw, c.raw);
        assert!(crlf.matches(&c.raw));
        assert!(!Checksum::of(b"select 2;\n").matches(&c.raw));
    }

    #[test]
    fn source_headers_must_name_sp_files() {
        assert_eq!(
            source_headers("u.sql", "--#source a_sp.sql\n--#source b_sp.sql\nselect 1;").unwrap(),
            vec!["a_sp.sql", "b_sp.sql"]
        );
        assert!(source_headers("u.sql", "--#source a.sql\n").is_err());
    }
}
