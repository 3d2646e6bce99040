//! Finding the PostgreSQL server binaries installed on this machine.
//!
//! Debian and Ubuntu (postgresql-common) install every major side by side under
//! `/usr/lib/postgresql/<N>/bin`; other systems have one installation that
//! `pg_config --bindir` names.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

/// One installed PostgreSQL server major and the directory of its binaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installation {
    pub major: u32,
    pub bindir: PathBuf,
}

impl Installation {
    /// Path of a program of this installation (`initdb`, `postgres`, `pg_dump`, …).
    pub fn bin(&self, program: &str) -> PathBuf {
        self.bindir.join(program)
    }
}

const DEBIAN_ROOT: &str = "/usr/lib/postgresql";

/// Every installed server major that has `initdb` and `postgres`, lowest first.
pub fn installations() -> Vec<Installation> {
    let mut found = debian_installations(Path::new(DEBIAN_ROOT));
    if found.is_empty() {
        if let Some(found_by_pg_config) = pg_config_installation() {
            found.push(found_by_pg_config);
        }
    }
    found.sort_by_key(|i| i.major);
    found
}

/// The installation to use: the requested major, else `PGSANDBOX_MAJOR` when set,
/// else the highest installed.
pub fn installation(major: Option<u32>) -> Result<Installation, Error> {
    let wanted = match major {
        Some(m) => Some(m),
        None => match std::env::var("PGSANDBOX_MAJOR") {
            Ok(v) if !v.trim().is_empty() => Some(v.trim().parse().map_err(|_| {
                Error::Config(format!(
                    "PGSANDBOX_MAJOR={v:?} is not a PostgreSQL major number; set it to e.g. 15"
                ))
            })?),
            _ => None,
        },
    };
    let all = installations();
    if all.is_empty() {
        return Err(Error::NoServer);
    }
    match wanted {
        None => Ok(all.last().cloned().expect("not empty")),
        Some(m) => all.iter().find(|i| i.major == m).cloned().ok_or_else(|| {
            let have: Vec<String> = all.iter().map(|i| i.major.to_string()).collect();
            Error::Config(format!(
                "PostgreSQL {m} server is not installed (installed: {}); install postgresql-{m}",
                have.join(", ")
            ))
        }),
    }
}

fn debian_installations(root: &Path) -> Vec<Installation> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let major: u32 = e.file_name().to_str()?.parse().ok()?;
            let bindir = e.path().join("bin");
            is_server_bindir(&bindir).then_some(Installation { major, bindir })
        })
        .collect()
}

fn pg_config_installation() -> Option<Installation> {
    let out = Command::new("pg_config").arg("--bindir").output().ok()?;
    if !out.status.success() {
        return None;
    }
    let bindir = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    if !is_server_bindir(&bindir) {
        return None;
    }
    let major = server_major(&bindir.join("postgres"))?;
    Some(Installation { major, bindir })
}

fn is_server_bindir(dir: &Path) -> bool {
    dir.join("postgres").is_file() && dir.join("initdb").is_file()
}

/// The major of a `postgres` (or any PostgreSQL program) binary from its
/// `--version` line: `postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)`.
pub fn server_major(program: &Path) -> Option<u32> {
    let out = Command::new(program).arg("--version").output().ok()?;
    parse_version_major(&String::from_utf8_lossy(&out.stdout))
}

pub(crate) fn parse_version_major(version_line: &str) -> Option<u32> {
    let after = version_line.split(')').nth(1)?.trim();
    let number = after.split_whitespace().next()?;
    number
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_major_from_version_lines() {
        assert_eq!(
            parse_version_major("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n"),
            Some(15)
        );
        assert_eq!(parse_version_major("pg_dump (PostgreSQL) 17.2\n"), Some(17));
        assert_eq!(
            parse_version_major("postgres (PostgreSQL) 18beta1\n"),
            Some(18)
        );
        assert_eq!(parse_version_major("garbage"), None);
    }

    #[test]
    fn finds_debian_layout() {
        let dir = std::env::temp_dir().join(format!("pgsandbox-layout-{}", std::process::id()));
        for (major, complete) in [(13, true), (16, true), (14, false)] {
            let bin = dir.join(major.to_string()).join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            std::fs::write(bin.join("postgres"), "").unwrap();
            if complete {
                std::fs::write(bin.join("initdb"), "").unwrap();
            }
        }
        std::fs::create_dir_all(dir.join("not-a-number/bin")).unwrap();
        let mut found = debian_installations(&dir);
        found.sort_by_key(|i| i.major);
        std::fs::remove_dir_all(&dir).unwrap();
        let majors: Vec<u32> = found.iter().map(|i| i.major).collect();
        assert_eq!(majors, vec![13, 16]);
    }
}
