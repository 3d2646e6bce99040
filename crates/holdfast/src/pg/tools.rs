//! The PostgreSQL client programs (`pg_dump`, `pg_restore`, `psql`) holdfast
//! runs, and the choice of which installed version to run against a server.
//!
//! pg_dump refuses a server of a newer major, and an older pg_restore cannot read
//! a newer pg_dump's archive; a newer client handles older servers. So the rule is:
//! the highest installed major that is at least the server's.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::{Error, Result};

/// The programs every set of client tools must have.
const REQUIRED_PROGRAMS: [&str; 3] = ["pg_dump", "pg_restore", "psql"];

/// Where distributions install one directory of binaries per major:
/// Debian/Ubuntu (postgresql-common) and the PGDG RPMs.
const VERSIONED_LAYOUTS: [(&str, &str); 2] =
    [("/usr/lib/postgresql", "bin"), ("/usr", "pgsql-{}/bin")];

/// One installed set of client programs of a single PostgreSQL version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTools {
    /// Directory holding `pg_dump`, `pg_restore` and `psql`.
    pub bindir: PathBuf,
    /// Major version (`15` for 15.18).
    pub major: u32,
    /// Minor version (`18` for 15.18; `0` for a beta or release candidate).
    pub minor: u32,
    /// The version as `pg_dump --version` prints it (`15.18`, `18beta1`).
    pub version: String,
}

impl PgTools {
    /// The client tools to use against a server of `server_version_num`
    /// (`SHOW server_version_num`, e.g. 150018): the highest installed major that
    /// is at least the server's.
    pub fn for_server(server_version_num: i32) -> Result<PgTools> {
        choose_for_server(installed(), server_version_num)
    }

    /// The client tools to use against the server `client` is connected to
    /// (its `server_version_num`, see [`PgTools::for_server`]).
    pub fn for_client(client: &mut impl postgres::GenericClient) -> Result<PgTools> {
        let num: i32 = client
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .map_err(|e| {
                Error::postgres(format!(
                    "cannot read the server version: {}",
                    crate::pg::error_text(&e)
                ))
            })?
            .get(0);
        PgTools::for_server(num)
    }

    /// The newest installed client tools, for work that involves no server yet
    /// (listing an archive's table of contents).
    pub fn newest() -> Result<PgTools> {
        installed()
            .into_iter()
            .max_by_key(PgTools::version_num)
            .ok_or_else(|| {
                Error::usage(
                    "no PostgreSQL client programs (pg_dump, pg_restore, psql) are installed: \
                 install postgresql-client (Debian/Ubuntu) or postgresql (RHEL/Fedora)",
                )
            })
    }

    /// The client tools in one directory, identified by running `pg_dump --version`.
    pub fn in_dir(bindir: &Path) -> Result<PgTools> {
        if let Some(missing) = REQUIRED_PROGRAMS.iter().find(|p| !bindir.join(p).is_file()) {
            return Err(Error::usage(format!(
                "{} has no {missing}: point holdfast at a directory with pg_dump, pg_restore and psql",
                bindir.display()
            )));
        }
        let pg_dump = bindir.join("pg_dump");
        let out = crate::child::command(&pg_dump)
            .arg("--version")
            .env("LC_MESSAGES", "C")
            .output()
            .map_err(|e| Error::io_path("run", &pg_dump, e))?;
        let line = String::from_utf8_lossy(&out.stdout);
        let (major, minor, version) = parse_version_line(&line).ok_or_else(|| {
            Error::invalid(format!(
                "{} --version printed {:?}, which is not a PostgreSQL version line",
                pg_dump.display(),
                line.trim()
            ))
        })?;
        Ok(PgTools {
            bindir: bindir.to_path_buf(),
            major,
            minor,
            version,
        })
    }

    /// Full path of one of the programs (`pg_dump`, `pg_restore`, `psql`).
    pub fn program(&self, name: &str) -> PathBuf {
        self.bindir.join(name)
    }

    /// The version as one number, like `server_version_num`: 15.18 is 150018.
    pub fn version_num(&self) -> u32 {
        self.major * 10000 + self.minor
    }

    /// Whether this psql understands the `\restrict KEY` / `\unrestrict KEY`
    /// meta-commands that pg_dump writes into plain dumps since the minor
    /// releases of August 2025 (CVE-2025-8714).
    pub fn psql_knows_restrict(&self) -> bool {
        let first_minor = match self.major {
            0..=12 => return false,
            13 => 22,
            14 => 19,
            15 => 14,
            16 => 10,
            17 => 6,
            _ => return true,
        };
        self.minor >= first_minor
    }
}

/// Every directory of client tools on this machine, in no particular order.
/// Looked for once per process: finding them runs `pg_config` and each
/// `pg_dump --version`, which a restore would otherwise pay per database.
fn installed() -> Vec<PgTools> {
    static INSTALLED: OnceLock<Vec<PgTools>> = OnceLock::new();
    INSTALLED.get_or_init(find_installed).clone()
}

fn find_installed() -> Vec<PgTools> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for (root, pattern) in VERSIONED_LAYOUTS {
        dirs.extend(versioned_bindirs(Path::new(root), pattern));
    }
    if let Some(dir) = pg_config_bindir() {
        dirs.push(dir);
    }
    // The same directory under two names (pg_config's is usually one of the
    // versioned ones) is probed once.
    let mut seen: Vec<PathBuf> = Vec::new();
    let mut found: Vec<PgTools> = Vec::new();
    for dir in dirs {
        let canonical = dir.canonicalize().unwrap_or_else(|_| dir.clone());
        if seen.contains(&canonical) {
            continue;
        }
        seen.push(canonical);
        if let Ok(tools) = PgTools::in_dir(&dir) {
            found.push(tools);
        }
    }
    found
}

/// `<root>/<N>/bin` (pattern `bin`) or `<root>/pgsql-<N>/bin` (pattern `pgsql-{}/bin`).
fn versioned_bindirs(root: &Path, pattern: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let (prefix, rest) = match pattern.split_once("{}") {
        Some((prefix, rest)) => (prefix, rest.trim_start_matches('/')),
        None => ("", pattern),
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let number = name.strip_prefix(prefix)?;
            number.parse::<u32>().ok()?;
            let dir = entry.path().join(rest);
            REQUIRED_PROGRAMS
                .iter()
                .all(|p| dir.join(p).is_file())
                .then_some(dir)
        })
        .collect()
}

fn pg_config_bindir() -> Option<PathBuf> {
    let out = crate::child::command("pg_config")
        .arg("--bindir")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    dir.is_dir().then_some(dir)
}

/// The rule, separate from the machine: highest installed major ≥ the server's.
fn choose_for_server(candidates: Vec<PgTools>, server_version_num: i32) -> Result<PgTools> {
    if server_version_num < 90000 {
        return Err(Error::invalid(format!(
            "server_version_num {server_version_num} is not a PostgreSQL version this tool supports"
        )));
    }
    let server_version_num = server_version_num as u32;
    let server_major = server_version_num / 10000;
    let installed: Vec<String> = {
        let mut v: Vec<u32> = candidates.iter().map(|t| t.major).collect();
        v.sort_unstable();
        v.dedup();
        v.iter().map(u32::to_string).collect()
    };
    candidates
        .into_iter()
        .filter(|t| t.major >= server_major)
        .max_by_key(PgTools::version_num)
        .ok_or_else(|| {
            let package = package_major(server_version_num);
            Error::usage(format!(
                "the PostgreSQL server is version {package}, but no pg_dump/pg_restore/psql of \
                 major {package} or newer is installed (installed: {}): install \
                 postgresql-client-{package}",
                if installed.is_empty() {
                    "none".to_string()
                } else {
                    installed.join(", ")
                }
            ))
        })
}

/// The major as packages name it: `16`, or `9.6` before PostgreSQL 10.
fn package_major(server_version_num: u32) -> String {
    if server_version_num >= 100000 {
        (server_version_num / 10000).to_string()
    } else {
        format!(
            "{}.{}",
            server_version_num / 10000,
            server_version_num / 100 % 100
        )
    }
}

/// `pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)` → (15, 18, "15.18");
/// `pg_dump (PostgreSQL) 18beta1` → (18, 0, "18beta1").
fn parse_version_line(line: &str) -> Option<(u32, u32, String)> {
    let after = line.split_once(')')?.1.trim();
    let version = after.split_whitespace().next()?.to_string();
    let mut numbers = version
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty());
    let major: u32 = numbers.next()?.parse().ok()?;
    let minor: u32 = if version[major.to_string().len()..].starts_with('.') {
        numbers.next()?.parse().ok()?
    } else {
        0
    };
    Some((major, minor, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools(major: u32, minor: u32) -> PgTools {
        PgTools {
            bindir: PathBuf::from(format!("/usr/lib/postgresql/{major}/bin")),
            major,
            minor,
            version: format!("{major}.{minor}"),
        }
    }

    #[test]
    fn parses_version_lines() {
        assert_eq!(
            parse_version_line("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n"),
            Some((15, 18, "15.18".to_string()))
        );
        assert_eq!(
            parse_version_line("pg_dump (PostgreSQL) 18beta1\n"),
            Some((18, 0, "18beta1".to_string()))
        );
        assert_eq!(
            parse_version_line("pg_dump (PostgreSQL) 9.6.24\n"),
            Some((9, 6, "9.6.24".to_string()))
        );
        assert_eq!(parse_version_line("bash: pg_dump: not found"), None);
    }

    #[test]
    fn picks_the_highest_major_at_least_the_servers() {
        let installed = vec![tools(13, 4), tools(17, 2), tools(15, 18)];
        assert_eq!(
            choose_for_server(installed.clone(), 150018).unwrap().major,
            17
        );
        assert_eq!(
            choose_for_server(installed.clone(), 170002).unwrap().major,
            17
        );
        assert_eq!(
            choose_for_server(installed.clone(), 90624).unwrap().major,
            17
        );
        assert_eq!(
            choose_for_server(vec![tools(13, 4)], 120000).unwrap().major,
            13
        );
    }

    #[test]
    fn a_newer_server_names_the_package_to_install() {
        let err = choose_for_server(vec![tools(15, 18)], 160002).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Usage(_)));
        assert!(text.contains("postgresql-client-16"), "{text}");
        assert!(text.contains("installed: 15"), "{text}");
        let err = choose_for_server(Vec::new(), 150018).unwrap_err();
        assert!(err.to_string().contains("installed: none"), "{err}");
    }

    #[test]
    fn knows_which_psql_understands_restrict() {
        assert!(!tools(15, 13).psql_knows_restrict());
        assert!(tools(15, 14).psql_knows_restrict());
        assert!(!tools(16, 9).psql_knows_restrict());
        assert!(tools(16, 10).psql_knows_restrict());
        assert!(!tools(17, 5).psql_knows_restrict());
        assert!(tools(17, 6).psql_knows_restrict());
        assert!(tools(18, 0).psql_knows_restrict());
        assert!(!tools(12, 22).psql_knows_restrict());
    }
}
