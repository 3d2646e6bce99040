//! INI files in the two dialects the applications load them with:
//!
//! * `go-ini` (Gitea and Forgejo `app.ini`, read by go-ini with Gitea's
//!   options): the first `#` or `;` anywhere in a plain value starts a
//!   comment, a value wholly in `'…'` or `"…"` is unwrapped, and a value
//!   starting with a backtick or `"""` runs verbatim to the last one on the
//!   line. A new value is written plain when it is a simple word, else in
//!   backticks, else (it holds a backtick) in `"""`; line breaks are refused.
//! * `ini` (Python's `RawConfigParser`, Odoo's `odoo.conf`): `=` or `:`,
//!   comments only as whole lines, values stripped, no quoting, option names
//!   lower-cased, indented lines continue a value. A value with leading or
//!   trailing blanks or a line break cannot be written and is refused.
//!
//! No maintained crate reads either dialect as the applications do (the
//! `rust-ini` family neither cuts go-ini's comments nor unwraps its
//! backticks), so both readers here follow the applications' parsers line by
//! line; the tests read rewritten `ini` files back with Python's own
//! configparser. A key path is `section.KEY` (split at the last `.`, since
//! Gitea's sections have dots: `repository.editor`); a bare `KEY` is in the
//! `DEFAULT` section.

use super::format::{refuse_nul, ConfError, ConfFormat, ConfResult};
use super::ConfValue;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    GoIni,
    Python,
}

/// Gitea/Forgejo `app.ini` (go-ini).
pub struct GoIni;

/// Odoo `odoo.conf` (Python `RawConfigParser`).
pub struct PythonIni;

impl ConfFormat for GoIni {
    fn name(&self) -> &'static str {
        "go-ini"
    }
    fn read(&self, text: &str, key: &str) -> ConfResult<Option<String>> {
        read(Dialect::GoIni, text, key)
    }
    fn rewrite(&self, text: &str, changes: &[(String, ConfValue)]) -> ConfResult<String> {
        rewrite(Dialect::GoIni, text, changes)
    }
}

impl ConfFormat for PythonIni {
    fn name(&self) -> &'static str {
        "ini"
    }
    fn read(&self, text: &str, key: &str) -> ConfResult<Option<String>> {
        read(Dialect::Python, text, key)
    }
    fn rewrite(&self, text: &str, changes: &[(String, ConfValue)]) -> ConfResult<String> {
        rewrite(Dialect::Python, text, changes)
    }
}

fn split_path(d: Dialect, key: &str) -> (String, String) {
    let (section, name) = key.rsplit_once('.').unwrap_or(("DEFAULT", key));
    let name = match d {
        Dialect::Python => name.to_lowercase(),
        Dialect::GoIni => name.to_string(),
    };
    (section.to_string(), name)
}

/// One `key = value` line: its section and key, the value as the application
/// reads it, and the bytes of the value's text (comment excluded).
#[derive(Debug)]
struct Entry {
    section: String,
    key: String,
    value: String,
    span: (usize, usize),
    /// Whether lines after it continue the value (Python) or the value runs
    /// over several lines (go-ini quotes): not edited.
    multiline: bool,
    /// Byte offset just past its last line.
    end: usize,
}

struct Section {
    name: String,
    /// Byte offset just past the header line.
    header_end: usize,
}

fn scan(d: Dialect, text: &str) -> ConfResult<(Vec<Entry>, Vec<Section>)> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut sections = Vec::new();
    let mut section: Option<String> = match d {
        Dialect::GoIni => Some("DEFAULT".into()),
        Dialect::Python => None,
    };
    let mut at = 0;
    let mut lines = text.split_inclusive('\n').peekable();
    let mut n = 0;
    while let Some(raw) = lines.next() {
        n += 1;
        let start = at;
        at += raw.len();
        let line = raw.trim_end_matches(['\n', '\r']);
        let body = line.trim_start();
        let indent = line.len() - body.len();
        if d == Dialect::Python && indent > 0 && !body.is_empty() {
            // An indented line continues the previous value.
            if let Some(e) = entries.last_mut().filter(|e| e.end == start) {
                if !body.starts_with(['#', ';']) {
                    e.value.push('\n');
                    e.value.push_str(body.trim_end());
                    e.multiline = true;
                }
                e.end = at;
                continue;
            }
        }
        if d == Dialect::Python && body.is_empty() {
            // Empty lines belong to a value only before a continuation.
            if let Some(e) = entries.last_mut().filter(|e| e.end == start) {
                e.end = at;
                let _ = e;
            }
            continue;
        }
        if body.is_empty() || body.starts_with(['#', ';']) {
            continue;
        }
        if body.starts_with('[') {
            let name = match d {
                Dialect::GoIni => body.rfind(']').map(|c| body[1..c].trim().to_string()),
                Dialect::Python => {
                    let t = body.trim_end();
                    t.rfind(']').filter(|&c| c > 1).map(|c| t[1..c].to_string())
                }
            };
            let Some(name) = name else {
                return Err(ConfError::Invalid(format!(
                    "line {n}: a section header without ']'"
                )));
            };
            sections.push(Section {
                name: name.clone(),
                header_end: at,
            });
            section = Some(name);
            continue;
        }
        let Some(current) = &section else {
            return Err(ConfError::Invalid(format!(
                "line {n}: a key before the first [section]"
            )));
        };
        let body_at = start + indent;
        let entry = match d {
            Dialect::GoIni => go_entry(body, body_at, current, n, &mut lines, &mut at)?,
            Dialect::Python => {
                let Some(sep) = body.find(['=', ':']) else {
                    return Err(ConfError::Invalid(format!(
                        "line {n}: expected key = value"
                    )));
                };
                let key = body[..sep].trim_end().to_lowercase();
                let rest = &body[sep + 1..];
                let ws = rest.len() - rest.trim_start().len();
                let vstart = body_at + sep + 1 + ws;
                let value = rest.trim();
                if entries
                    .iter()
                    .any(|e| e.section == *current && e.key == key)
                {
                    return Err(ConfError::Invalid(format!(
                        "line {n}: option {key:?} is set twice in [{current}], which configparser refuses"
                    )));
                }
                Entry {
                    section: current.clone(),
                    key,
                    value: value.to_string(),
                    span: (vstart, vstart + value.len()),
                    multiline: false,
                    end: at,
                }
            }
        };
        entries.push(entry);
    }
    Ok((entries, sections))
}

/// A go-ini `key = value` line (and, for an unclosed quote, the lines its
/// value runs over).
fn go_entry<'a>(
    body: &str,
    body_at: usize,
    section: &str,
    n: usize,
    lines: &mut std::iter::Peekable<impl Iterator<Item = &'a str>>,
    at: &mut usize,
) -> ConfResult<Entry> {
    if body.starts_with(['"', '`']) {
        return Err(ConfError::Invalid(format!(
            "line {n}: quoted key names are not supported"
        )));
    }
    let Some(sep) = body.find(['=', ':']) else {
        return Err(ConfError::Invalid(format!(
            "line {n}: expected KEY = value"
        )));
    };
    if sep == 0 {
        return Err(ConfError::Invalid(format!("line {n}: empty key name")));
    }
    let key = body[..sep].trim().to_string();
    let rest = &body[sep + 1..];
    let ws = rest.len() - rest.trim_start().len();
    let v = rest.trim_start();
    let vstart = body_at + sep + 1 + ws;
    let quote = if v.len() > 3 && v.starts_with("\"\"\"") {
        Some("\"\"\"")
    } else if v.starts_with('`') {
        Some("`")
    } else {
        None
    };
    if let Some(q) = quote {
        match v[q.len()..].rfind(q) {
            Some(pos) => {
                let value = v[q.len()..q.len() + pos].to_string();
                let len = q.len() * 2 + pos;
                return Ok(Entry {
                    section: section.into(),
                    key,
                    value,
                    span: (vstart, vstart + len),
                    multiline: false,
                    end: *at,
                });
            }
            None => {
                // Runs over the following lines up to the closing quote.
                let mut value = v[q.len()..].to_string();
                loop {
                    let Some(next) = lines.next() else {
                        return Err(ConfError::Invalid(format!(
                            "line {n}: {q} without its closing {q}"
                        )));
                    };
                    *at += next.len();
                    let next = next.trim_end_matches(['\n', '\r']);
                    value.push('\n');
                    if let Some(pos) = next.rfind(q) {
                        value.push_str(&next[..pos]);
                        break;
                    }
                    value.push_str(next);
                }
                return Ok(Entry {
                    section: section.into(),
                    key,
                    value,
                    span: (vstart, vstart),
                    multiline: true,
                    end: *at,
                });
            }
        }
    }
    let trimmed = v.trim();
    let cut = trimmed.find(['#', ';']).unwrap_or(trimmed.len());
    let raw = trimmed[..cut].trim();
    let surrounded = |c: char| {
        raw.len() >= 2 && raw.starts_with(c) && raw.ends_with(c) && raw.matches(c).count() == 2
    };
    let value = if surrounded('\'') || surrounded('"') {
        raw[1..raw.len() - 1].to_string()
    } else {
        raw.to_string()
    };
    Ok(Entry {
        section: section.into(),
        key,
        value,
        span: (vstart, vstart + raw.len()),
        multiline: false,
        end: *at,
    })
}

fn read(d: Dialect, text: &str, key: &str) -> ConfResult<Option<String>> {
    let (section, name) = split_path(d, key);
    let (entries, _) = scan(d, text)?;
    let own = entries
        .iter()
        .rev()
        .find(|e| e.section == section && e.key == name);
    // configparser: options of [DEFAULT] show through in every section.
    let inherited = || {
        (d == Dialect::Python)
            .then(|| {
                entries
                    .iter()
                    .find(|e| e.section == "DEFAULT" && e.key == name)
            })
            .flatten()
    };
    Ok(own.or_else(inherited).map(|e| e.value.clone()))
}

/// `value` as go-ini reads it back: plain when it is a simple word, else in
/// backticks, else in triple double quotes.
fn go_quote(key: &str, value: &str) -> ConfResult<String> {
    if value.contains(['\n', '\r']) {
        return Err(ConfError::Refused(format!(
            "cannot write {key}: app.ini values cannot hold a line break"
        )));
    }
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/+@%,".contains(c));
    if plain {
        Ok(value.to_string())
    } else if !value.contains('`') {
        Ok(format!("`{value}`"))
    } else {
        Ok(format!("\"\"\"{value}\"\"\""))
    }
}

fn python_value(key: &str, value: &str) -> ConfResult<String> {
    if value.contains(['\n', '\r']) || value != value.trim() {
        return Err(ConfError::Refused(format!(
            "cannot write {key}: configparser strips values and has no quoting, so a value with a line break or leading or trailing blanks cannot be written; choose another"
        )));
    }
    Ok(value.to_string())
}

fn rewrite(d: Dialect, text: &str, changes: &[(String, ConfValue)]) -> ConfResult<String> {
    let (entries, sections) = scan(d, text)?;
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let mut new_sections: Vec<(String, String)> = Vec::new();
    let mut expected: Vec<(String, String, String)> = Vec::new();
    for (key, value) in changes {
        let ConfValue::Literal(value) = value else {
            return Err(ConfError::Refused(format!(
                "cannot write {key}: raw values are only for shell-style files"
            )));
        };
        refuse_nul(key, value)?;
        let (section, name) = split_path(d, key);
        if name.is_empty() || name.contains(['=', ':', '[', '#', ';']) || name != name.trim() {
            return Err(ConfError::Refused(format!("{key:?} is not an INI key")));
        }
        let written = match d {
            Dialect::GoIni => go_quote(key, value)?,
            Dialect::Python => python_value(key, value)?,
        };
        expected.retain(|e| !(e.0 == section && e.1 == name));
        expected.push((section.clone(), name.clone(), value.clone()));
        let mine: Vec<&Entry> = entries
            .iter()
            .filter(|e| e.section == section && e.key == name)
            .collect();
        if let Some(e) = mine.iter().find(|e| e.multiline) {
            let _ = e;
            return Err(ConfError::Refused(format!(
                "cannot write {key}: its value runs over several lines, which holdfast does not edit"
            )));
        }
        for e in &mine {
            edits.retain(|x| x.0 != e.span.0);
            edits.push((e.span.0, e.span.1, written.clone()));
        }
        if mine.is_empty() {
            let line = format!("{name} = {written}{eol}");
            let last = entries
                .iter()
                .filter(|e| e.section == section)
                .map(|e| e.end)
                .max();
            let header = sections
                .iter()
                .filter(|s| s.name == section)
                .map(|s| s.header_end)
                .max();
            match last.or(header) {
                Some(at) => {
                    let prefix = if at == text.len() && !text.ends_with('\n') {
                        eol
                    } else {
                        ""
                    };
                    edits.push((at, at, format!("{prefix}{line}")));
                }
                None if section == "DEFAULT" && d == Dialect::GoIni => edits.push((0, 0, line)),
                None => match new_sections.iter_mut().find(|s| s.0 == section) {
                    Some(s) => s.1.push_str(&line),
                    None => new_sections.push((section.clone(), line)),
                },
            }
        }
    }
    edits.sort_by_key(|e| e.0);
    let mut out = text.to_string();
    for (s, e, new) in edits.iter().rev() {
        out.replace_range(*s..*e, new);
    }
    for (section, lines) in new_sections {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push_str(eol);
        }
        out.push_str(&format!("{eol}[{section}]{eol}{lines}"));
    }
    // Read back: the changed keys hold the new values, every other key its old one.
    let (after, _) = scan(d, &out).map_err(|e| {
        ConfError::Refused(format!(
            "the rewritten file would not read: {}",
            e.message()
        ))
    })?;
    let old: Vec<(&str, &str, &str)> = entries
        .iter()
        .filter(|e| !expected.iter().any(|x| x.0 == e.section && x.1 == e.key))
        .map(|e| (e.section.as_str(), e.key.as_str(), e.value.as_str()))
        .collect();
    let kept: Vec<(&str, &str, &str)> = after
        .iter()
        .filter(|e| !expected.iter().any(|x| x.0 == e.section && x.1 == e.key))
        .map(|e| (e.section.as_str(), e.key.as_str(), e.value.as_str()))
        .collect();
    let new_ok = expected.iter().all(|(s, k, v)| {
        let all: Vec<&Entry> = after
            .iter()
            .filter(|e| &e.section == s && &e.key == k)
            .collect();
        !all.is_empty() && all.iter().all(|e| &e.value == v)
    });
    if old != kept || !new_ok {
        return Err(ConfError::Refused(
            "the rewritten file would read differently than intended; edit it by hand".into(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(k: &str, v: &str) -> (String, ConfValue) {
        (k.into(), ConfValue::Literal(v.into()))
    }

    const APP_INI: &str = "APP_NAME = Gitea\nRUN_USER = git\n\n[database]\nDB_TYPE  = postgres\nHOST     = 127.0.0.1:5432\nNAME     = gitea\nUSER     = gitea\nPASSWD   = `old#pw` ; set by the installer\nSSL_MODE = disable\n\n[repository.editor]\nLINE_WRAP_EXTENSIONS = .txt,.md\n";

    #[test]
    fn go_ini_reads_as_gitea() {
        let r = |k| GoIni.read(APP_INI, k).unwrap();
        assert_eq!(r("database.PASSWD").as_deref(), Some("old#pw"));
        assert_eq!(r("database.HOST").as_deref(), Some("127.0.0.1:5432"));
        assert_eq!(r("APP_NAME").as_deref(), Some("Gitea"));
        assert_eq!(
            r("repository.editor.LINE_WRAP_EXTENSIONS").as_deref(),
            Some(".txt,.md")
        );
        assert_eq!(
            GoIni
                .read("[d]\nK = ab#cd\nQ = \"x\"\nR = 'a'b'\n", "d.K")
                .unwrap()
                .as_deref(),
            Some("ab")
        );
        assert_eq!(
            GoIni.read("[d]\nQ = \"x y\"\n", "d.Q").unwrap().as_deref(),
            Some("x y")
        );
        assert_eq!(
            GoIni.read("[d]\nR = 'a'b'\n", "d.R").unwrap().as_deref(),
            Some("'a'b'")
        );
    }

    #[test]
    fn go_ini_rewrites_values_with_the_quoting_they_need() {
        let new = GoIni
            .rewrite(
                APP_INI,
                &[
                    lit("database.PASSWD", "n;e#w"),
                    lit("database.USER", "gitea2"),
                    lit("database.SCHEMA", "a`b"),
                    lit("database.NAME", " x "),
                ],
            )
            .unwrap();
        assert_eq!(
            new,
            APP_INI
                .replace("`old#pw` ;", "`n;e#w` ;")
                .replace("USER     = gitea", "USER     = gitea2")
                .replace("NAME     = gitea", "NAME     = ` x `")
                .replace(
                    "SSL_MODE = disable\n",
                    "SSL_MODE = disable\nSCHEMA = \"\"\"a`b\"\"\"\n"
                )
        );
        assert_eq!(
            GoIni.read(&new, "database.PASSWD").unwrap().as_deref(),
            Some("n;e#w")
        );
        assert_eq!(
            GoIni.read(&new, "database.SCHEMA").unwrap().as_deref(),
            Some("a`b")
        );
        assert!(GoIni
            .rewrite(APP_INI, &[lit("database.PASSWD", "a\nb")])
            .is_err());
    }

    const ODOO: &str = "[options]\n; database\ndb_host = False\ndb_port = False\ndb_user = odoo\ndb_password = old;pw # not a comment\naddons_path = /a,\n    /b\n";

    #[test]
    fn configparser_reads_and_rewrites_as_odoo() {
        assert_eq!(
            PythonIni
                .read(ODOO, "options.db_password")
                .unwrap()
                .as_deref(),
            Some("old;pw # not a comment")
        );
        assert_eq!(
            PythonIni
                .read(ODOO, "options.ADDONS_PATH")
                .unwrap()
                .as_deref(),
            Some("/a,\n/b")
        );
        let new = PythonIni
            .rewrite(
                ODOO,
                &[
                    lit("options.db_password", "n#w;$%(x)s"),
                    lit("options.db_name", "odoo"),
                ],
            )
            .unwrap();
        assert_eq!(
            new,
            ODOO.replace("old;pw # not a comment", "n#w;$%(x)s") + "db_name = odoo\n"
        );
        assert!(PythonIni
            .rewrite(ODOO, &[lit("options.db_password", " x")])
            .is_err());
        assert!(PythonIni
            .rewrite(ODOO, &[lit("options.addons_path", "x")])
            .is_err());
    }
}
