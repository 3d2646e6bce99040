//! The values of a set of shell-style conf files, read with the semantics of
//! oVirt's `ShellLikeConfd`: comments, `KEY=value`, double quotes, single quotes,
//! backslash escapes and `${VAR}` expansion from keys read earlier.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use globset::GlobBuilder;

use crate::error::{Error, IoContext, Result};

/// Keys and values read from one or more conf files, in the order the keys were
/// first assigned. A key assigned again keeps its place and takes the new value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfValues {
    entries: Vec<(String, String)>,
    index: HashMap<String, usize>,
}

impl ConfValues {
    /// An empty set of values.
    pub fn new() -> ConfValues {
        ConfValues::default()
    }

    /// The value of `key`, if any file assigned it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.index.get(key).map(|&i| self.entries[i].1.as_str())
    }

    /// Assign `key`, as a later file would.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        let value = value.into();
        match self.index.get(&key) {
            Some(&i) => self.entries[i].1 = value,
            None => {
                self.index.insert(key.clone(), self.entries.len());
                self.entries.push((key, value));
            }
        }
    }

    /// Keys and values in the order keys were first assigned.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Read one file. Its keys override earlier ones; its `${VAR}` references see
    /// every key read before them, from this file or an earlier one.
    pub fn read_file(&mut self, path: &Path) -> Result<()> {
        let bytes = std::fs::read(path).context(|| format!("read {}", path.display()))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::invalid(format!("{}: not UTF-8 text", path.display())))?;
        self.parse_str(&text, &path.display().to_string())
    }

    /// Read the files named by `patterns`, in order. Each pattern is a path
    /// relative to `root`; its last component may be a glob such as `*.conf`,
    /// which reads the matching files sorted by name (like `find | sort`).
    /// Missing files and directories are skipped, as the application does.
    pub fn read_sources(&mut self, root: &Path, patterns: &[&str]) -> Result<Vec<PathBuf>> {
        let mut read = Vec::new();
        for pattern in patterns {
            for path in expand_source(root, pattern)? {
                self.read_file(&path)?;
                read.push(path);
            }
        }
        Ok(read)
    }

    /// Parse conf text; `origin` names it in error messages (`<origin>:<line>: ...`).
    pub fn parse_str(&mut self, text: &str, origin: &str) -> Result<()> {
        for (n, line) in text.lines().enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            self.parse_line(line)
                .map_err(|what| Error::invalid(format!("{origin}:{}: {what}", n + 1)))?;
        }
        Ok(())
    }

    fn parse_line(&mut self, line: &str) -> Result<(), String> {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            return Ok(());
        }
        let Some((key, raw)) = split_assignment(trimmed) else {
            return Err(format!(
                "expected KEY=value, a comment or a blank line, found {:?}",
                short(line)
            ));
        };
        let value = self.expand(raw)?;
        self.set(key, value);
        Ok(())
    }

    /// The value of the right-hand side `raw` of an assignment.
    fn expand(&self, raw: &str) -> Result<String, String> {
        let mut out = String::new();
        let mut in_double = false;
        let mut chars = raw.char_indices();
        while let Some((at, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, next)) => out.push(next),
                    None => return Err("backslash at the end of the line".into()),
                },
                '"' => in_double = !in_double,
                '\'' if !in_double => loop {
                    match chars.next() {
                        Some((_, '\'')) => break,
                        Some((_, inner)) => out.push(inner),
                        None => return Err("single quote without its closing quote".into()),
                    }
                },
                '$' => {
                    let rest = &raw[at + 1..];
                    let Some(body) = rest.strip_prefix('{') else {
                        return Err(
                            "'$' must start a ${NAME} reference; write \\$ for a literal dollar"
                                .into(),
                        );
                    };
                    let Some(end) = body.find('}') else {
                        return Err("'${' without its closing '}'".into());
                    };
                    let name = &body[..end];
                    match self.get(name) {
                        Some(v) => out.push_str(v),
                        None => return Err(format!("${{{name}}} refers to an undefined key")),
                    }
                    // Skip the `{NAME}` just consumed.
                    for _ in 0..name.chars().count() + 2 {
                        chars.next();
                    }
                }
                ' ' | '\t' | '#' if !in_double => {
                    let rest = raw[at..].trim_start();
                    if rest.is_empty() || rest.starts_with('#') {
                        return Ok(out);
                    }
                    return Err(format!(
                        "unquoted space in the value, before {:?}; quote the value",
                        short(rest)
                    ));
                }
                other => out.push(other),
            }
        }
        if in_double {
            return Err("double quote without its closing quote".into());
        }
        Ok(out)
    }
}

/// `KEY=rest` where KEY is a word (`[A-Za-z0-9_]+`), as `ShellLikeConfd` accepts.
pub(crate) fn split_assignment(line: &str) -> Option<(&str, &str)> {
    let (key, rest) = line.split_once('=')?;
    is_key(key).then_some((key, rest))
}

/// Whether `key` is a word that can be assigned.
pub(crate) fn is_key(key: &str) -> bool {
    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn short(text: &str) -> String {
    text.chars().take(60).collect()
}

/// The existing files one source pattern names, sorted by file name when the
/// last component is a glob.
fn expand_source(root: &Path, pattern: &str) -> Result<Vec<PathBuf>> {
    let relative = pattern.trim_start_matches('/');
    let path = root.join(relative);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if !name.contains(['*', '?', '[']) {
        return Ok(if path.is_file() { vec![path] } else { vec![] });
    }
    let glob = GlobBuilder::new(name)
        .literal_separator(true)
        .build()
        .map_err(|e| Error::usage(format!("bad conf source pattern {pattern:?}: {e}")))?
        .compile_matcher();
    let dir = path.parent().unwrap_or(root);
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(Error::io_path("read directory", dir, e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.context(|| format!("read directory {}", dir.display()))?;
        let file_name = entry.file_name();
        if glob.is_match(&file_name) && entry.path().is_file() {
            found.push(entry.path());
        }
    }
    // Byte order of names, as `find | sort` in the C locale and Java's sort give.
    found.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ConfValues> {
        let mut values = ConfValues::new();
        values.parse_str(text, "test.conf")?;
        Ok(values)
    }

    fn value(text: &str) -> String {
        parse(text).unwrap().get("K").unwrap().to_string()
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn comments_and_blank_lines_are_skipped() {
        let v = parse("# c\n\n   \n  # indented\nA=1\n").unwrap();
        assert_eq!(v.iter().collect::<Vec<_>>(), vec![("A", "1")]);
    }

    #[test]
    fn plain_and_empty_values() {
        assert_eq!(value("K=value"), "value");
        assert_eq!(value("K="), "");
        assert_eq!(value("  K=x"), "x");
    }

    #[test]
    fn double_quotes_toggle_quoting() {
        assert_eq!(value(r#"K="a b""#), "a b");
        assert_eq!(value(r#"K="a"b"c d""#), "abc d");
        assert_eq!(value(r##"K="v1#v2"# comment"##), "v1#v2");
        assert_eq!(value(r#"K="x 'y' z""#), "x 'y' z");
    }

    #[test]
    fn single_quotes_are_literal() {
        assert_eq!(value(r#"K='a b ${X} \n $'"#), r"a b ${X} \n $");
        assert_eq!(value(r#"K='"'"#), "\"");
    }

    #[test]
    fn backslash_escapes_any_character() {
        assert_eq!(value(r#"K="a\"b\\c\$d\`e\:f""#), "a\"b\\c$d`e:f");
        assert_eq!(value(r"K=a\ b"), "a b");
        assert_eq!(value(r#"K=\${X}"#), "${X}");
    }

    #[test]
    fn references_expand_earlier_keys() {
        let v = parse("H=db\nP=5432\nURL=\"jdbc://${H}:${P}/x\"\nH=other\n").unwrap();
        assert_eq!(v.get("URL"), Some("jdbc://db:5432/x"));
        assert_eq!(v.get("H"), Some("other"));
        assert_eq!(v.iter().next(), Some(("H", "other")));
    }

    #[test]
    fn unquoted_space_or_hash_ends_the_value() {
        assert_eq!(value("K=a # comment"), "a");
        assert_eq!(value("K=a#comment"), "a");
        assert_eq!(value("K=a   "), "a");
        assert!(error("K=a b").starts_with("test.conf:1: unquoted space"));
    }

    #[test]
    fn errors_name_file_and_line() {
        assert_eq!(
            error("A=1\nK=${NOPE}"),
            "test.conf:2: ${NOPE} refers to an undefined key"
        );
        assert!(error("K=$HOME").starts_with("test.conf:1: '$' must start"));
        assert!(error("K=${X").contains("without its closing '}'"));
        assert!(error("K=\"abc").contains("double quote without"));
        assert!(error("K='abc").contains("single quote without"));
        assert!(error("K=abc\\").contains("backslash at the end"));
        assert!(error("export K=1").starts_with("test.conf:1: expected KEY=value"));
        assert!(error("K-1=1").starts_with("test.conf:1: expected KEY=value"));
        assert!(error("=1").starts_with("test.conf:1: expected KEY=value"));
    }

    #[test]
    fn crlf_line_endings_are_accepted() {
        assert_eq!(value("K=\"x\"\r\n"), "x");
    }

    #[test]
    fn sources_expand_globs_sorted_and_skip_missing() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("etc/app.conf.d");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(dir.path().join("etc/app.conf"), "A=base\nB=${A}\n").unwrap();
        std::fs::write(d.join("20-b.conf"), "A=twenty\nC=${A}\n").unwrap();
        std::fs::write(d.join("10-a.conf"), "A=ten\n").unwrap();
        std::fs::write(d.join("30-ignored.txt"), "A=nope\n").unwrap();
        std::fs::create_dir(d.join("40-dir.conf")).unwrap();
        let mut v = ConfValues::new();
        let read = v
            .read_sources(
                dir.path(),
                &[
                    "etc/app.conf",
                    "etc/missing.conf",
                    "etc/app.conf.d/*.conf",
                    "nodir/*.conf",
                ],
            )
            .unwrap();
        let names: Vec<_> = read
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["app.conf", "10-a.conf", "20-b.conf"]);
        assert_eq!(v.get("A"), Some("twenty"));
        assert_eq!(v.get("B"), Some("base"));
        assert_eq!(v.get("C"), Some("twenty"));
    }
}
