//! Changing keys of a shell-style conf file in place: a dated copy first, then
//! an atomic replacement that keeps every other line, the mode and the owner.

use std::fs::{FileTimes, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{fchown, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Local};

use super::values::is_key;
use crate::error::{Error, IoContext, Result};

/// The new value of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfValue {
    /// A value taken literally: written escaped and double-quoted.
    Literal(String),
    /// Right-hand side text written as given, for values that keep `${VAR}`
    /// references, e.g. `"jdbc:postgresql://${ENGINE_DB_HOST}:..."`.
    Raw(String),
}

impl ConfValue {
    fn text(&self) -> &str {
        match self {
            ConfValue::Literal(s) | ConfValue::Raw(s) => s,
        }
    }
}

/// `value` in double quotes, with exactly `\`, `"`, `$` and `` ` `` escaped by a
/// backslash. Both `ShellLikeConfd` and a POSIX shell read back `value`; `:` is
/// never escaped because the shell would keep that backslash.
pub fn quote_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if matches!(c, '\\' | '"' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// One `KEY=value` line (without its line end).
pub fn render_assignment(key: &str, value: &ConfValue) -> String {
    match value {
        ConfValue::Literal(s) => format!("{key}={}", quote_value(s)),
        ConfValue::Raw(s) => format!("{key}={s}"),
    }
}

/// Change the assignments of `changes` in the conf file at `path`.
///
/// First copies the file to `<file>.YYYYmmddHHMMSS` (`now`), keeping mode, owner
/// and mtime, and never over an existing copy. Then every assignment line of a
/// changed key is replaced, keys that were absent are appended, all other lines
/// stay byte for byte, and the file is replaced atomically with its mode and
/// owner kept. Returns the path of the copy.
pub fn rewrite_keys(
    path: &Path,
    changes: &[(String, ConfValue)],
    now: DateTime<Local>,
) -> Result<PathBuf> {
    check_changes(path, changes)?;
    rewrite_with(path, now, |original| {
        Ok(replace_assignments(original, changes))
    })
}

/// Replace the file at `path` with what `edit` makes of its bytes, the way
/// [`rewrite_keys`] does: `edit` runs first (and may refuse, leaving everything
/// untouched), then the dated copy, then the atomic replacement keeping mode
/// and owner. Returns the path of the copy.
pub(crate) fn rewrite_with(
    path: &Path,
    now: DateTime<Local>,
    edit: impl FnOnce(&[u8]) -> Result<Vec<u8>>,
) -> Result<PathBuf> {
    let original = std::fs::read(path).context(|| format!("read {}", path.display()))?;
    let meta = std::fs::metadata(path).context(|| format!("stat {}", path.display()))?;
    let content = edit(&original)?;
    let copy = keep_copy(path, &original, &meta, now)?;
    crate::durable::replace(
        path,
        &content,
        meta.mode() & 0o7777,
        Some((meta.uid(), meta.gid())),
    )?;
    Ok(copy)
}

/// Create a new conf file at `path` with `lines` and permission bits `mode`.
/// Refuses to replace an existing file.
pub fn write_new(path: &Path, lines: &[String], mode: u32) -> Result<()> {
    if path.symlink_metadata().is_ok() {
        return Err(Error::usage(format!(
            "{} already exists; refusing to overwrite it",
            path.display()
        )));
    }
    let mut content = Vec::new();
    for line in lines {
        if line.contains(['\n', '\r', '\0']) {
            return Err(Error::usage(format!(
                "line for {} contains a newline or NUL character",
                path.display()
            )));
        }
        content.extend_from_slice(line.as_bytes());
        content.push(b'\n');
    }
    crate::durable::replace(path, &content, mode, None)
}

pub(crate) fn check_changes(path: &Path, changes: &[(String, ConfValue)]) -> Result<()> {
    for (key, value) in changes {
        if !is_key(key) {
            return Err(Error::usage(format!(
                "cannot write key {key:?} to {}: a key is letters, digits and '_'",
                path.display()
            )));
        }
        if value.text().contains(['\n', '\r', '\0']) {
            return Err(Error::usage(format!(
                "cannot write {key} to {}: the value contains a newline or NUL character",
                path.display()
            )));
        }
    }
    Ok(())
}

/// The new content: changed keys' lines replaced, absent keys appended.
pub(crate) fn replace_assignments(original: &[u8], changes: &[(String, ConfValue)]) -> Vec<u8> {
    // One entry per key, in the order keys are first named, with the last value
    // given for it.
    let mut wanted: Vec<(&str, &ConfValue, bool)> = Vec::new();
    for (key, value) in changes {
        match wanted.iter_mut().find(|(k, _, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => wanted.push((key, value, false)),
        }
    }
    let mut out = Vec::with_capacity(original.len() + 256);
    for line in original.split_inclusive(|&b| b == b'\n') {
        let change = assigned_key(line)
            .and_then(|key| wanted.iter_mut().find(|(k, _, _)| k.as_bytes() == key));
        match change {
            Some((key, value, seen)) => {
                *seen = true;
                out.extend_from_slice(render_assignment(key, value).as_bytes());
                out.extend_from_slice(line_end(line));
            }
            None => out.extend_from_slice(line),
        }
    }
    for (key, value, _) in wanted.iter().filter(|(_, _, seen)| !seen) {
        if !out.is_empty() && !out.ends_with(b"\n") {
            out.push(b'\n');
        }
        out.extend_from_slice(render_assignment(key, value).as_bytes());
        out.push(b'\n');
    }
    out
}

/// The key a line assigns, if it is an assignment.
fn assigned_key(line: &[u8]) -> Option<&[u8]> {
    let start = line.iter().position(|b| !matches!(b, b' ' | b'\t'))?;
    let line = &line[start..];
    let eq = line.iter().position(|&b| b == b'=')?;
    let key = &line[..eq];
    (!key.is_empty() && key.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')).then_some(key)
}

fn line_end(line: &[u8]) -> &'static [u8] {
    if line.ends_with(b"\r\n") {
        b"\r\n"
    } else if line.ends_with(b"\n") {
        b"\n"
    } else {
        b""
    }
}

/// Copy `path` (whose bytes are `content`) to a free `<path>.YYYYmmddHHMMSS[.N]`
/// with the same mode, owner and times.
fn keep_copy(
    path: &Path,
    content: &[u8],
    meta: &std::fs::Metadata,
    now: DateTime<Local>,
) -> Result<PathBuf> {
    let stamp = now.format("%Y%m%d%H%M%S").to_string();
    let base = format!("{}.{stamp}", path.display());
    for n in 0..1000 {
        let candidate = PathBuf::from(if n == 0 {
            base.clone()
        } else {
            format!("{base}.{n}")
        });
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&candidate);
        let mut file = match file {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io_path("create backup copy", &candidate, e)),
        };
        let copied = (|| {
            file.write_all(content)?;
            fchown(&file, Some(meta.uid()), Some(meta.gid()))?;
            file.set_permissions(std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
            let times = FileTimes::new()
                .set_accessed(meta.accessed()?)
                .set_modified(meta.modified()?);
            file.set_times(times)?;
            file.sync_all()
        })();
        if let Err(e) = copied {
            let _ = std::fs::remove_file(&candidate);
            return Err(Error::io_path("write backup copy", &candidate, e));
        }
        return Ok(candidate);
    }
    Err(Error::failed(format!(
        "no free name for a backup copy of {} (tried {base} and {base}.1 to .999)",
        path.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf::ConfValues;
    use chrono::TimeZone;

    fn now() -> DateTime<Local> {
        Local.with_ymd_and_hms(2026, 11, 21, 14, 48, 4).unwrap()
    }

    fn lit(key: &str, v: &str) -> (String, ConfValue) {
        (key.to_string(), ConfValue::Literal(v.to_string()))
    }

    #[test]
    fn quote_value_escapes_exactly_four_characters() {
        assert_eq!(
            quote_value(r#"a\b"c$d`e:f'g h"#),
            r#""a\\b\"c\$d\`e:f'g h""#
        );
        assert_eq!(quote_value(""), "\"\"");
    }

    #[test]
    fn render_assignment_literal_and_raw() {
        assert_eq!(
            render_assignment("K", &ConfValue::Literal("dwh:pw".into())),
            "K=\"dwh:pw\""
        );
        let raw = ConfValue::Raw("\"jdbc://${H}:${P}\"".into());
        assert_eq!(render_assignment("URL", &raw), "URL=\"jdbc://${H}:${P}\"");
    }

    #[test]
    fn rewrite_changes_lines_in_place_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("10-setup-database.conf");
        let original = "# keep me\nA=\"1\"\r\nB=2 # trailing\n  A=3\nOTHER=x";
        std::fs::write(&path, original).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let copy = rewrite_keys(&path, &[lit("A", "new value"), lit("C", "c$")], now()).unwrap();

        assert_eq!(
            copy,
            dir.path().join("10-setup-database.conf.20261121144804")
        );
        assert_eq!(std::fs::read_to_string(&copy).unwrap(), original);
        let new = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            new,
            "# keep me\nA=\"new value\"\r\nB=2 # trailing\nA=\"new value\"\nOTHER=x\nC=\"c\\$\"\n"
        );
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o640);
        assert_eq!(std::fs::metadata(&copy).unwrap().mode() & 0o7777, 0o640);

        // A second rewrite in the same second picks a free name.
        let copy2 = rewrite_keys(&path, &[lit("B", "3")], now()).unwrap();
        assert_eq!(
            copy2,
            dir.path().join("10-setup-database.conf.20261121144804.1")
        );
        assert_eq!(std::fs::read_to_string(&copy2).unwrap(), new);
    }

    #[test]
    fn copy_keeps_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.conf");
        std::fs::write(&path, "A=1\n").unwrap();
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let copy = rewrite_keys(&path, &[lit("A", "2")], now()).unwrap();
        assert_eq!(std::fs::metadata(&copy).unwrap().modified().unwrap(), old);
    }

    #[test]
    fn refuses_newline_nul_and_bad_keys_without_changing_anything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.conf");
        std::fs::write(&path, "A=1\n").unwrap();
        for change in [
            lit("A", "x\ny"),
            lit("A", "x\0y"),
            lit("A B", "x"),
            lit("", "x"),
        ] {
            let err = rewrite_keys(&path, &[change], now()).unwrap_err();
            assert!(matches!(err, Error::Usage(_)), "{err}");
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "A=1\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn missing_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = rewrite_keys(&dir.path().join("nope.conf"), &[lit("A", "1")], now()).unwrap_err();
        assert!(err.to_string().contains("nope.conf"), "{err}");
    }

    #[test]
    fn write_new_creates_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.conf");
        write_new(
            &path,
            &[render_assignment("P", &ConfValue::Literal("x:y".into()))],
            0o600,
        )
        .unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o7777, 0o600);
        let mut v = ConfValues::new();
        v.read_file(&path).unwrap();
        assert_eq!(v.get("P"), Some("x:y"));
        assert!(write_new(&path, &[], 0o600).is_err());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn tricky() -> impl Strategy<Value = String> {
            proptest::string::string_regex(
                r#"([ -~]|[\u{a0}-\u{10ffff}]|\$\{X\}|\\|"|'|:|\$|`|#| ){0,40}"#,
            )
            .unwrap()
        }

        proptest! {
            #[test]
            fn quoted_values_read_back(value in tricky()) {
                let mut v = ConfValues::new();
                v.parse_str(&render_assignment("K", &ConfValue::Literal(value.clone())), "p")
                    .unwrap();
                prop_assert_eq!(v.get("K"), Some(value.as_str()));
            }

            #[test]
            fn rewritten_files_read_back(a in tricky(), b in tricky()) {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("x.conf");
                std::fs::write(&path, "# head\nX=\"x\"\nA=\"old\"\n").unwrap();
                rewrite_keys(&path, &[lit("A", &a), lit("B", &b)], now()).unwrap();
                let mut v = ConfValues::new();
                v.read_file(&path).unwrap();
                prop_assert_eq!(v.get("A"), Some(a.as_str()));
                prop_assert_eq!(v.get("B"), Some(b.as_str()));
                prop_assert_eq!(v.get("X"), Some("x"));
            }
        }
    }
}
