//! The installed application version and the rule for which archive versions a
//! restore accepts (engine-backup's `verifyVersion`).

use std::cmp::Ordering;
use std::path::Path;

use super::VersionRule;
use crate::{Error, Result};

/// The installed version: `explicit` when given, else the profile's version file,
/// else the version of its package in the package database (dpkg or rpm).
pub fn installed_version(
    rule: &VersionRule,
    root: &Path,
    explicit: Option<&str>,
) -> Result<String> {
    if let Some(v) = explicit {
        let v = v.trim();
        if v.is_empty()
            || !v.starts_with(|c: char| c.is_ascii_digit())
            || v.contains(char::is_whitespace)
        {
            return Err(Error::usage(format!(
                "--installed-version={v:?} is not a version; give it as X.Y.Z (e.g. 4.5.7)"
            )));
        }
        return Ok(v.to_string());
    }
    if rule.unversioned {
        return Ok(UNVERSIONED.to_string());
    }
    if let Some(file) = &rule.file {
        let path = root.join(file);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::io_path("read version file", &path, e))?;
        if let Some(pattern) = &rule.pattern {
            return version_by_pattern(pattern, &text).ok_or_else(|| {
                Error::invalid(format!(
                    "{} does not hold a version where the profile's version.pattern looks for it; \
                     pass --installed-version=X.Y.Z",
                    path.display()
                ))
            });
        }
        let first = text.lines().next().unwrap_or("").trim().to_string();
        if !first.is_empty() {
            return Ok(first);
        }
        return Err(Error::invalid(format!(
            "{} is empty; it should hold the installed version",
            path.display()
        )));
    }
    if let Some(argv) = &rule.command {
        return command_version(argv, rule.pattern.as_deref(), root);
    }
    if let Some(package) = &rule.package {
        if let Some(v) = package_version(package) {
            return Ok(v);
        }
        return Err(Error::usage(format!(
            "cannot tell the installed {package} version: the package is not installed here; \
             pass --installed-version=X.Y.Z (or set HOLDFAST_INSTALLED_VERSION)"
        )));
    }
    Err(Error::usage(
        "the profile names no version source; pass --installed-version=X.Y.Z".to_string(),
    ))
}

/// The version a program prints: where `pattern` finds it, else its first
/// line.
fn command_version(argv: &[String], pattern: Option<&str>, root: &Path) -> Result<String> {
    let program = Path::new(&argv[0]);
    let program = if program.is_absolute() {
        program.to_path_buf()
    } else {
        root.join(program)
    };
    let out = crate::child::command(&program)
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::io_path("run the version command", &program, e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let found = match pattern {
        Some(p) => version_by_pattern(p, &text),
        None => text
            .lines()
            .next()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty()),
    };
    match found {
        Some(v) if out.status.success() => Ok(v),
        _ => Err(Error::invalid(format!(
            "{} {} did not print the version ({}); pass --installed-version=X.Y.Z",
            program.display(),
            argv[1..].join(" "),
            out.status
        ))),
    }
}

/// The capture groups of `pattern`'s first match in `text`, joined by `.`.
fn version_by_pattern(pattern: &str, text: &str) -> Option<String> {
    let re = version_regex(pattern).ok()?;
    let found = re.captures(text)?;
    let parts: Vec<&str> = found
        .iter()
        .skip(1)
        .flatten()
        .map(|m| m.as_str().trim())
        .collect();
    (!parts.is_empty() && parts.iter().all(|p| !p.is_empty())).then(|| parts.join("."))
}

/// `pattern` compiled, refused unless it has a capture group to take the
/// version from.
pub(crate) fn version_regex(pattern: &str) -> std::result::Result<regex::Regex, String> {
    let re = regex::Regex::new(pattern).map_err(|e| e.to_string())?;
    if re.captures_len() < 2 {
        return Err("needs a capture group around the version, like \"Version ([0-9.]+)\"".into());
    }
    Ok(re)
}

fn package_version(package: &str) -> Option<String> {
    let dpkg = crate::child::command("dpkg-query")
        .args(["-W", "-f=${Status}|${Version}", package])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).to_string();
            let (status, version) = text.split_once('|')?;
            status
                .ends_with(" installed")
                .then(|| upstream_version(version))
        });
    dpkg.or_else(|| {
        crate::child::command("rpm")
            .args(["-q", "--qf", "%{VERSION}", package])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    })
}

/// The version recorded for a profile with no application version.
pub const UNVERSIONED: &str = "0";

/// `2:4.5.7-1.el9` → `4.5.7`: no epoch, no packaging revision.
fn upstream_version(v: &str) -> String {
    let v = v.trim();
    let v = v.split_once(':').map(|(_, r)| r).unwrap_or(v);
    v.rsplit_once('-').map(|(u, _)| u).unwrap_or(v).to_string()
}

/// Whether an archive made by `backup` may be restored with `installed` (§3.4 of
/// the engine-backup reference): a listed upgrade pair of X.Y, or the same X.Y and
/// the backup not newer; and the minimum micro version of its X.Y.
pub fn check_restore_version(rule: &VersionRule, backup: &str, installed: &str) -> Result<()> {
    if rule.unversioned {
        return Ok(());
    }
    let refuse = || {
        let template = rule.mismatch_message.as_deref().unwrap_or(
            "Backup was created by version '{backup}' and can not be restored using the installed version {installed}",
        );
        Err(Error::invalid(
            template
                .replace("{backup}", backup)
                .replace("{installed}", installed),
        ))
    };
    let bxy = x_y(backup);
    let ixy = x_y(installed);
    let pair_ok = rule
        .upgrade_pairs
        .iter()
        .any(|[b, i]| *b == bxy && *i == ixy);
    let same_ok = bxy == ixy && loose_version_cmp(backup, installed) != Ordering::Greater;
    if !(pair_ok || same_ok) {
        return refuse();
    }
    if let Some(min) = rule.min_micro.get(&bxy) {
        let micro = backup
            .split('.')
            .nth(2)
            .and_then(|m| m.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|m| m.parse::<u32>().ok())
            .unwrap_or(0);
        if micro < *min {
            return refuse();
        }
    }
    Ok(())
}

fn x_y(v: &str) -> String {
    v.trim().split('.').take(2).collect::<Vec<_>>().join(".")
}

/// Python's `LooseVersion` order: runs of digits compare as numbers, other runs
/// as text, a number sorts before text.
pub fn loose_version_cmp(a: &str, b: &str) -> Ordering {
    #[derive(PartialEq, Eq, PartialOrd, Ord)]
    enum Part {
        Num(u64),
        Text(String),
    }
    fn parts(v: &str) -> Vec<Part> {
        let mut out = Vec::new();
        let mut chars = v.trim().chars().peekable();
        while let Some(&c) = chars.peek() {
            if c.is_ascii_digit() {
                let mut n = String::new();
                while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    n.push(d);
                    chars.next();
                }
                out.push(Part::Num(n.parse().unwrap_or(u64::MAX)));
            } else if c.is_alphabetic() {
                let mut t = String::new();
                while let Some(&d) = chars.peek().filter(|d| d.is_alphabetic()) {
                    t.push(d);
                    chars.next();
                }
                out.push(Part::Text(t));
            } else {
                chars.next();
            }
        }
        out
    }
    parts(a).cmp(&parts(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ovirt() -> VersionRule {
        crate::profile::Profile::ovirt_engine().version
    }

    #[test]
    fn same_minor_not_newer_is_accepted() {
        let r = ovirt();
        assert!(check_restore_version(&r, "4.5.7", "4.5.7").is_ok());
        assert!(check_restore_version(&r, "4.5.6", "4.5.7").is_ok());
        assert!(check_restore_version(&r, "4.5.7_master", "4.5.8").is_ok());
        assert!(
            check_restore_version(&r, "4.4.10", "4.5.7").is_ok(),
            "upgrade pair"
        );
        assert!(
            check_restore_version(&r, "4.3.10", "4.5.1").is_ok(),
            "upgrade pair"
        );
    }

    #[test]
    fn newer_other_minor_and_old_micro_are_refused_with_engine_backup_text() {
        let r = ovirt();
        let msg = check_restore_version(&r, "4.5.8", "4.5.7")
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            "Backup was created by version '4.5.8' and can not be restored using the installed version 4.5.7"
        );
        assert!(check_restore_version(&r, "4.2.8", "4.5.7").is_err());
        assert!(
            check_restore_version(&r, "4.3.9", "4.5.7").is_err(),
            "4.3 needs z >= 10"
        );
        assert!(check_restore_version(&r, "4.6.0", "4.5.7").is_err());
    }

    #[test]
    fn loose_versions_compare_numerically() {
        assert_eq!(loose_version_cmp("4.5.10", "4.5.9"), Ordering::Greater);
        assert_eq!(loose_version_cmp("4.3", "4.3.10"), Ordering::Less);
        assert_eq!(loose_version_cmp("4.5.7", "4.5.7"), Ordering::Equal);
    }

    #[test]
    fn explicit_version_is_checked() {
        let r = ovirt();
        assert_eq!(
            installed_version(&r, Path::new("/"), Some("4.5.7")).unwrap(),
            "4.5.7"
        );
        assert!(installed_version(&r, Path::new("/"), Some("latest")).is_err());
        assert_eq!(upstream_version("2:4.5.7-1.el9"), "4.5.7");
    }
}
