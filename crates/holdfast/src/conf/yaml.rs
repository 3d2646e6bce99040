//! YAML block mappings: Redmine's `config/database.yml` (one mapping per Rails
//! environment, key path `production.password`) and Synapse's
//! `homeserver.yaml` (`database.args.password`).
//!
//! Reading uses `yaml-rust2`, following `<<` merge keys as Rails and PyYAML do.
//! Rewriting finds the value's bytes with a line scanner of block mappings,
//! replaces only them with a double-quoted scalar (both the applications'
//! YAML 1.1 loaders and YAML 1.2 read a quoted scalar as the same string,
//! where a plain `yes`, `0755` or `2024-01-02` would not be), and reads the
//! result back: the document must equal the old one with exactly the new
//! values. Anchors, aliases, tags, flow collections, block scalars and values
//! over several lines are refused, not guessed at. Rails runs `database.yml`
//! through ERB, so a value holding `<%` is refused as well.

use yaml_rust2::{Yaml as Node, YamlLoader};

use super::format::{refuse_nul, ConfError, ConfFormat, ConfResult};
use super::ConfValue;

/// YAML block mappings; a key path is the keys joined by `.`.
pub struct Yaml;

impl ConfFormat for Yaml {
    fn name(&self) -> &'static str {
        "yaml"
    }

    fn read(&self, text: &str, key: &str) -> ConfResult<Option<String>> {
        let doc = parse(text)?;
        let path = split_path(key)?;
        let Some(node) = lookup(&doc, &path) else {
            return Ok(None);
        };
        let value = match node {
            Node::String(s) | Node::Real(s) => s.clone(),
            Node::Integer(i) => i.to_string(),
            Node::Boolean(b) => b.to_string(),
            Node::Null => return Ok(None),
            Node::Hash(_) => {
                return Err(ConfError::Invalid(format!(
                    "{key} is a mapping, not a value"
                )))
            }
            Node::Array(_) => {
                return Err(ConfError::Invalid(format!("{key} is a list, not a value")))
            }
            Node::Alias(_) | Node::BadValue => {
                return Err(ConfError::Invalid(format!(
                    "{key} has no value holdfast can read"
                )))
            }
        };
        if value.contains("<%") {
            return Err(ConfError::Invalid(format!(
                "{key} is an ERB expression ({value:?}) that Rails evaluates and holdfast does not; write the value itself in the file"
            )));
        }
        Ok(Some(value))
    }

    fn rewrite(&self, text: &str, changes: &[(String, ConfValue)]) -> ConfResult<String> {
        let before = parse(text)?;
        let mut expected = before.clone();
        let scan = Scan::new(text)?;
        // (start, end, key, replacement): byte ranges of `text`, applied back
        // to front; a later change of a key replaces an earlier one.
        let mut edits: Vec<(usize, usize, &str, String)> = Vec::new();
        for (key, value) in changes {
            let ConfValue::Literal(value) = value else {
                return Err(ConfError::Refused(format!(
                    "cannot write {key}: raw values are only for shell-style files"
                )));
            };
            refuse_nul(key, value)?;
            if value.contains("<%") {
                return Err(ConfError::Refused(format!(
                    "cannot write {key}: the value contains '<%', which Rails' ERB would execute in database.yml; choose a value without it"
                )));
            }
            let path = split_path(key)?;
            let (start, end, replacement) = scan.edit_for(&path, key, &quote(value))?;
            edits.retain(|e| e.2 != key.as_str());
            edits.push((start, end, key.as_str(), replacement));
            set(&mut expected, &path, value).map_err(ConfError::Refused)?;
        }
        // Stable: new keys added at one place keep the order they were named in.
        edits.sort_by_key(|e| e.0);
        for pair in edits.windows(2) {
            if pair[1].0 < pair[0].1 {
                return Err(ConfError::Refused(format!(
                    "cannot write both {} and {}: they share their place in the file",
                    pair[0].2, pair[1].2
                )));
            }
        }
        let mut out = text.to_string();
        for (start, end, _, replacement) in edits.iter().rev() {
            out.replace_range(*start..*end, replacement);
        }
        let after = parse(&out).map_err(|e| {
            ConfError::Refused(format!(
                "the rewritten file would not be valid YAML ({}); nothing was written",
                e.message()
            ))
        })?;
        if after != expected {
            return Err(ConfError::Refused(
                "the file's layout is one holdfast cannot edit safely (the rewritten file would read differently); edit it by hand".into(),
            ));
        }
        Ok(out)
    }
}

fn parse(text: &str) -> ConfResult<Node> {
    let docs = YamlLoader::load_from_str(text)
        .map_err(|e| ConfError::Invalid(format!("not valid YAML: {e}")))?;
    Ok(docs.into_iter().next().unwrap_or(Node::Null))
}

fn split_path(key: &str) -> ConfResult<Vec<&str>> {
    let path: Vec<&str> = key.split('.').collect();
    if path
        .iter()
        .any(|s| s.is_empty() || s.chars().any(char::is_control))
    {
        return Err(ConfError::Refused(format!(
            "{key:?} is not a key path (keys joined by '.', such as production.password)"
        )));
    }
    Ok(path)
}

/// The node at `path`, looking into `<<` merges when a mapping lacks a key.
fn lookup<'a>(node: &'a Node, path: &[&str]) -> Option<&'a Node> {
    let Some((first, rest)) = path.split_first() else {
        return Some(node);
    };
    let child = child(node, first)?;
    lookup(child, rest)
}

fn child<'a>(node: &'a Node, key: &str) -> Option<&'a Node> {
    let Node::Hash(h) = node else { return None };
    if let Some(v) = h.get(&Node::String(key.to_string())) {
        return Some(v);
    }
    match h.get(&Node::String("<<".into()))? {
        merged @ Node::Hash(_) => child(merged, key),
        Node::Array(list) => list.iter().find_map(|m| child(m, key)),
        _ => None,
    }
}

/// `node` with `path` set to the string `value`, as the rewrite must leave it.
fn set(node: &mut Node, path: &[&str], value: &str) -> Result<(), String> {
    let (last, parents) = path.split_last().expect("paths are not empty");
    let mut here = node;
    for seg in parents {
        let Node::Hash(h) = here else {
            return Err(format!(
                "cannot write {}: {seg} is not inside a mapping",
                path.join(".")
            ));
        };
        here = h.get_mut(&Node::String(seg.to_string())).ok_or_else(|| {
            format!(
                "cannot write {}: the file has no {seg} mapping",
                path.join(".")
            )
        })?;
    }
    let Node::Hash(h) = here else {
        return Err(format!(
            "cannot write {}: its parent is not a mapping",
            path.join(".")
        ));
    };
    let key = Node::String(last.to_string());
    match h.get_mut(&key) {
        Some(v) => *v = Node::String(value.to_string()),
        None => {
            h.insert(key, Node::String(value.to_string()));
        }
    }
    Ok(())
}

/// `value` as a double-quoted YAML scalar: `\` and `"` escaped, and every
/// character outside YAML's printable set (and the byte order mark, line and
/// paragraph separators) written as an escape.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' || ('\u{80}'..='\u{9f}').contains(&c) => {
                out.push_str(&format!("\\x{:02X}", c as u32))
            }
            '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}' => {
                out.push_str(&format!("\\u{:04X}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// What follows a key's colon on its line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    /// Nothing (a parent mapping, or null): `at` is where a value would go,
    /// `space` whether whitespace already follows the colon.
    Empty {
        at: usize,
        space: bool,
        comment: bool,
    },
    /// A one-line scalar at these bytes.
    Scalar(usize, usize),
    /// A form holdfast does not edit, and what it is.
    Unsupported(&'static str),
}

#[derive(Debug)]
struct Entry {
    path: Vec<String>,
    col: usize,
    value: Value,
    /// Byte offset just past the last line that belongs to this entry
    /// (its own line, or a block scalar's or multi-line value's lines).
    end: usize,
    /// The line ending of its line (`\n`, `\r\n` or nothing).
    eol: &'static str,
}

/// The key lines of a YAML document's block mappings.
struct Scan {
    entries: Vec<Entry>,
    /// Byte offset where the scanned document ends (new top-level keys go there).
    doc_end: usize,
    text_len: usize,
    ends_with_newline: bool,
}

/// A path segment that never matches a profile's key: an item of a list.
const ITEM: &str = "\u{0}-";

impl Scan {
    fn new(text: &str) -> ConfResult<Scan> {
        let mut lines = Vec::new();
        let mut at = 0;
        for raw in text.split_inclusive('\n') {
            let body = raw.strip_suffix('\n').unwrap_or(raw);
            let (body, eol) = match body.strip_suffix('\r') {
                Some(b) if raw.ends_with('\n') => (b, "\r\n"),
                _ if raw.ends_with('\n') => (body, "\n"),
                _ => (body, ""),
            };
            lines.push((at, body, eol, at + raw.len()));
            at += raw.len();
        }
        let indent_of = |s: &str| s.len() - s.trim_start_matches(' ').len();
        let is_blank = |s: &str| {
            let t = s.trim_start();
            t.is_empty() || t.starts_with('#')
        };
        let mut entries: Vec<Entry> = Vec::new();
        let mut stack: Vec<(usize, String)> = Vec::new();
        let mut doc_end = text.len();
        let mut i = 0;
        while i < lines.len() {
            let (start, body, eol, next) = lines[i];
            if is_blank(body) || body.starts_with('%') {
                i += 1;
                continue;
            }
            if body.starts_with("---") || body.starts_with("...") {
                let rest = &body[3..];
                if !entries.is_empty() {
                    doc_end = start;
                    break;
                }
                if !rest.trim().is_empty() && !rest.trim_start().starts_with('#') {
                    return Err(ConfError::Refused(
                        "the document starts with content on its '---' line, which holdfast does not edit".into(),
                    ));
                }
                i += 1;
                continue;
            }
            let mut col = indent_of(body);
            let mut rest = &body[col..];
            while rest == "-" || rest.starts_with("- ") {
                while stack.last().is_some_and(|(c, _)| *c >= col) {
                    stack.pop();
                }
                stack.push((col, ITEM.into()));
                let after = &rest[1..];
                let skip = 1 + (after.len() - after.trim_start_matches(' ').len());
                col += skip;
                rest = &rest[skip.min(rest.len())..];
            }
            let Some((key, after_colon)) = split_key(rest) else {
                i += 1;
                continue;
            };
            while stack.last().is_some_and(|(c, _)| *c >= col) {
                stack.pop();
            }
            let mut path: Vec<String> = stack.iter().map(|(_, k)| k.clone()).collect();
            path.push(key.clone());
            let line_value = &rest[after_colon..];
            let ws = line_value.len() - line_value.trim_start_matches([' ', '\t']).len();
            let vstart = start + col + after_colon + ws;
            let v = &line_value[ws..];
            let mut end = next;
            let value = if v.is_empty() || v.starts_with('#') {
                stack.push((col, key));
                Value::Empty {
                    at: vstart,
                    space: ws > 0,
                    comment: v.starts_with('#'),
                }
            } else {
                let kind = match v.as_bytes()[0] {
                    b'&' => {
                        let anchored = v
                            .split_once([' ', '\t'])
                            .map(|(_, r)| r.trim_start())
                            .unwrap_or("");
                        if anchored.is_empty() || anchored.starts_with('#') {
                            stack.push((col, key.clone()));
                        }
                        Value::Unsupported("an anchor (&name), so aliases share its value")
                    }
                    b'*' => Value::Unsupported("an alias (*name) of another value"),
                    b'!' => Value::Unsupported("a tag (!name)"),
                    b'|' | b'>' => Value::Unsupported("a block scalar (| or >)"),
                    b'{' | b'[' => Value::Unsupported("a flow collection ({...} or [...])"),
                    b'"' => match closing_double(v) {
                        Some(n) if rest_is_comment(&v[n..]) => Value::Scalar(vstart, vstart + n),
                        Some(_) => Value::Unsupported("a quoted value followed by more text"),
                        None => Value::Unsupported("a quoted value over several lines"),
                    },
                    b'\'' => match closing_single(v) {
                        Some(n) if rest_is_comment(&v[n..]) => Value::Scalar(vstart, vstart + n),
                        Some(_) => Value::Unsupported("a quoted value followed by more text"),
                        None => Value::Unsupported("a quoted value over several lines"),
                    },
                    _ => {
                        let cut = [" #", "\t#"]
                            .iter()
                            .filter_map(|m| v.find(m))
                            .min()
                            .unwrap_or(v.len());
                        let n = v[..cut].trim_end_matches([' ', '\t']).len();
                        Value::Scalar(vstart, vstart + n)
                    }
                };
                // Lines indented deeper than the key continue this value.
                let mut j = i + 1;
                while j < lines.len() {
                    let b = lines[j].1;
                    if b.trim().is_empty() {
                        j += 1;
                        continue;
                    }
                    if indent_of(b) > col
                        && !(b.trim_start().starts_with('#') && matches!(kind, Value::Scalar(..)))
                    {
                        j += 1;
                        continue;
                    }
                    break;
                }
                // Trailing blank lines are not part of the value.
                let mut last = j;
                while last > i + 1 && lines[last - 1].1.trim().is_empty() {
                    last -= 1;
                }
                if last > i + 1 && !stack.last().is_some_and(|(c, k)| *c == col && *k == key) {
                    end = lines[last - 1].3;
                    i = last - 1;
                    match kind {
                        Value::Scalar(..) => Value::Unsupported("a value over several lines"),
                        other => other,
                    }
                } else {
                    kind
                }
            };
            entries.push(Entry {
                path,
                col,
                value,
                end,
                eol,
            });
            i += 1;
        }
        Ok(Scan {
            entries,
            doc_end,
            text_len: text.len(),
            ends_with_newline: text.ends_with('\n'),
        })
    }

    /// The bytes to replace (start, end) and their replacement, for `path`.
    fn edit_for(
        &self,
        path: &[&str],
        key: &str,
        quoted: &str,
    ) -> ConfResult<(usize, usize, String)> {
        let matches: Vec<usize> = (0..self.entries.len())
            .filter(|&n| {
                self.entries[n]
                    .path
                    .iter()
                    .map(String::as_str)
                    .eq(path.iter().copied())
            })
            .collect();
        match matches.as_slice() {
            [] => self.insertion(path, key, quoted),
            [n] => {
                let e = &self.entries[*n];
                match &e.value {
                    Value::Scalar(s, t) => Ok((*s, *t, quoted.to_string())),
                    Value::Empty { at, space, comment } => {
                        if self.children(*n).next().is_some() {
                            return Err(ConfError::Refused(format!(
                                "cannot write {key}: it is a mapping in the file, not a value"
                            )));
                        }
                        let mut text = String::new();
                        if !space {
                            text.push(' ');
                        }
                        text.push_str(quoted);
                        if *comment {
                            text.push(' ');
                        }
                        Ok((*at, *at, text))
                    }
                    Value::Unsupported(what) => Err(ConfError::Refused(format!(
                        "cannot write {key}: its value is {what}, which holdfast does not edit; edit the file by hand or write the value on one line"
                    ))),
                }
            }
            _ => Err(ConfError::Refused(format!(
                "cannot write {key}: the file sets it more than once"
            ))),
        }
    }

    /// Entries under entry `n` (deeper, until the next entry at its level or above).
    fn children(&self, n: usize) -> impl Iterator<Item = &Entry> {
        let col = self.entries[n].col;
        self.entries[n + 1..]
            .iter()
            .take_while(move |e| e.col > col)
    }

    /// A new `key: "value"` line at the end of its parent mapping.
    fn insertion(
        &self,
        path: &[&str],
        key: &str,
        quoted: &str,
    ) -> ConfResult<(usize, usize, String)> {
        let (leaf, parent) = path.split_last().expect("paths are not empty");
        let (at, col, eol) = if parent.is_empty() {
            let eol = self
                .entries
                .first()
                .map(|e| e.eol)
                .filter(|e| !e.is_empty())
                .unwrap_or("\n");
            (self.doc_end, 0, eol)
        } else {
            let found: Vec<usize> = (0..self.entries.len())
                .filter(|&n| {
                    self.entries[n]
                        .path
                        .iter()
                        .map(String::as_str)
                        .eq(parent.iter().copied())
                })
                .collect();
            let [n] = found.as_slice() else {
                return Err(ConfError::Refused(format!(
                    "cannot write {key}: the file has no {} mapping (or has it twice) to add it to",
                    parent.join(".")
                )));
            };
            let p = &self.entries[*n];
            if !matches!(p.value, Value::Empty { .. }) {
                return Err(ConfError::Refused(format!(
                    "cannot add {key}: {} is not a plain mapping in the file",
                    parent.join(".")
                )));
            }
            let kids: Vec<&Entry> = self.children(*n).collect();
            let Some(first) = kids.first() else {
                return Err(ConfError::Refused(format!(
                    "cannot add {key}: {} has no keys to line it up with",
                    parent.join(".")
                )));
            };
            if first.path.len() != p.path.len() + 1 {
                return Err(ConfError::Refused(format!(
                    "cannot add {key}: {} holds a list, not a mapping",
                    parent.join(".")
                )));
            }
            let last = kids.last().expect("not empty");
            (
                last.end,
                first.col,
                if p.eol.is_empty() { "\n" } else { p.eol },
            )
        };
        if leaf.starts_with(|c: char| "-?:,[]{}#&*!|>'\"%@`".contains(c))
            || leaf.contains(": ")
            || leaf.contains(" #")
            || *leaf != leaf.trim()
        {
            return Err(ConfError::Refused(format!(
                "cannot add {key}: {leaf:?} would need quoting as a key"
            )));
        }
        let mut text = String::new();
        if at == self.text_len && at > 0 && !self.ends_with_newline {
            text.push_str(eol);
        }
        text.push_str(&" ".repeat(col));
        text.push_str(leaf);
        text.push_str(": ");
        text.push_str(quoted);
        text.push_str(eol);
        Ok((at, at, text))
    }
}

/// A mapping key at the start of `rest` and the offset just past its colon.
fn split_key(rest: &str) -> Option<(String, usize)> {
    let (key, after) = match rest.as_bytes().first()? {
        b'"' => {
            let n = closing_double(rest)?;
            let inner = &rest[1..n - 1];
            if inner.contains('\\') {
                return None;
            }
            (inner.to_string(), n)
        }
        b'\'' => {
            let n = closing_single(rest)?;
            (rest[1..n - 1].replace("''", "'"), n)
        }
        b'?' | b'{' | b'[' | b'#' | b'&' | b'*' | b'!' | b'|' | b'>' | b'%' | b'@' | b'`' => {
            return None
        }
        _ => {
            let mut found = None;
            for (n, _) in rest.match_indices(':') {
                let next = rest[n + 1..].chars().next();
                if next.is_none() || next == Some(' ') || next == Some('\t') {
                    found = Some(n);
                    break;
                }
            }
            let n = found?;
            let key = rest[..n].trim_end();
            if key.contains(" #") {
                return None;
            }
            (key.to_string(), n)
        }
    };
    let tail = &rest[after..];
    let ws = tail.len() - tail.trim_start_matches([' ', '\t']).len();
    let colon = &tail[ws..];
    if !colon.starts_with(':') {
        return None;
    }
    let next = colon[1..].chars().next();
    if next.is_some() && next != Some(' ') && next != Some('\t') {
        return None;
    }
    Some((key, after + ws + 1))
}

/// Length of a double-quoted scalar at the start of `s`, quotes included.
fn closing_double(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Length of a single-quoted scalar at the start of `s`, quotes included.
fn closing_single(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 1;
    while i < b.len() {
        if b[i] == b'\'' {
            if b.get(i + 1) == Some(&b'\'') {
                i += 2;
                continue;
            }
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

fn rest_is_comment(s: &str) -> bool {
    let t = s.trim_start_matches([' ', '\t']);
    t.is_empty() || (t.starts_with('#') && t.len() < s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const REDMINE: &str = "# Redmine\nproduction:\n  adapter: postgresql\n  database: redmine\n  host: localhost # local\n  username: redmine\n  password: \"old pw\"\n  encoding: utf8\n\ndevelopment:\n  adapter: postgresql\n  database: redmine_development\n  password: 'dev'\n";

    fn lit(k: &str, v: &str) -> (String, ConfValue) {
        (k.into(), ConfValue::Literal(v.into()))
    }

    #[test]
    fn reads_environments_and_types() {
        assert_eq!(
            Yaml.read(REDMINE, "production.password")
                .unwrap()
                .as_deref(),
            Some("old pw")
        );
        assert_eq!(
            Yaml.read(REDMINE, "development.password")
                .unwrap()
                .as_deref(),
            Some("dev")
        );
        assert_eq!(Yaml.read(REDMINE, "production.port").unwrap(), None);
        assert_eq!(
            Yaml.read("a:\n  port: 5433\n", "a.port")
                .unwrap()
                .as_deref(),
            Some("5433")
        );
        assert!(Yaml.read(REDMINE, "production").is_err());
        let erb = "production:\n  password: <%= ENV['PW'] %>\n";
        assert!(Yaml
            .read(erb, "production.password")
            .unwrap_err()
            .message()
            .contains("ERB"));
    }

    #[test]
    fn reads_through_merge_keys() {
        let text = "default: &default\n  adapter: postgresql\n  password: shared\nproduction:\n  <<: *default\n  database: redmine\n";
        assert_eq!(
            Yaml.read(text, "production.password").unwrap().as_deref(),
            Some("shared")
        );
        // Writing it adds the key to production, which overrides the merge.
        let new = Yaml
            .rewrite(text, &[lit("production.password", "own")])
            .unwrap();
        assert_eq!(new, text.to_string() + "  password: \"own\"\n");
        assert_eq!(
            Yaml.read(&new, "production.password").unwrap().as_deref(),
            Some("own")
        );
        assert_eq!(
            Yaml.read(&new, "default.password").unwrap().as_deref(),
            Some("shared")
        );
    }

    #[test]
    fn rewrites_only_the_values() {
        let new = Yaml
            .rewrite(
                REDMINE,
                &[
                    lit("production.password", "n\"ew #1"),
                    lit("production.host", "db2"),
                    lit("production.port", "5433"),
                ],
            )
            .unwrap();
        assert_eq!(
            new,
            "# Redmine\nproduction:\n  adapter: postgresql\n  database: redmine\n  host: \"db2\" # local\n  username: redmine\n  password: \"n\\\"ew #1\"\n  encoding: utf8\n  port: \"5433\"\n\ndevelopment:\n  adapter: postgresql\n  database: redmine_development\n  password: 'dev'\n"
        );
    }

    #[test]
    fn synapse_nested_args() {
        let text = "server_name: example.org\ndatabase:\n  name: psycopg2\n  args:\n    user: synapse\n    password: secret\n    database: synapse\n    cp_min: 5\n\nmedia_store_path: /data/media\n";
        assert_eq!(
            Yaml.read(text, "database.args.password")
                .unwrap()
                .as_deref(),
            Some("secret")
        );
        let new = Yaml
            .rewrite(
                text,
                &[
                    lit("database.args.password", "p: w"),
                    lit("database.args.host", "h"),
                ],
            )
            .unwrap();
        assert_eq!(
            new,
            text.replace("password: secret", "password: \"p: w\"")
                .replace("cp_min: 5\n", "cp_min: 5\n    host: \"h\"\n")
        );
    }

    #[test]
    fn refuses_forms_it_cannot_edit() {
        for (text, what) in [
            ("a:\n  password: &p x\n", "anchor"),
            ("x: &p 1\na:\n  password: *p\n", "alias"),
            ("a:\n  password: |\n    x\n", "block scalar"),
            ("a:\n  password: {x: 1}\n", "flow"),
            ("a:\n  password: \"x\n    y\"\n", "several lines"),
            ("a:\n  password: x\n    y\n", "several lines"),
            ("a:\n  password: !secret x\n", "tag"),
        ] {
            let err = Yaml.rewrite(text, &[lit("a.password", "n")]).unwrap_err();
            assert!(matches!(err, ConfError::Refused(_)), "{text}: {err:?}");
            assert!(err.message().contains(what), "{text}: {err:?}");
        }
        let err = Yaml
            .rewrite(REDMINE, &[lit("production.password", "<%= x %>")])
            .unwrap_err();
        assert!(err.message().contains("ERB"));
        assert!(Yaml
            .rewrite(REDMINE, &[lit("staging.password", "x")])
            .is_err());
        assert!(Yaml.rewrite(REDMINE, &[lit("production", "x")]).is_err());
    }

    #[test]
    fn null_values_and_crlf() {
        let text = "production:\r\n  password:\r\n  host: x\r\n";
        let new = Yaml
            .rewrite(
                text,
                &[lit("production.password", "p"), lit("production.port", "1")],
            )
            .unwrap();
        assert_eq!(
            new,
            "production:\r\n  password: \"p\"\r\n  host: x\r\n  port: \"1\"\r\n"
        );
    }

    #[test]
    fn quoting_escapes_what_yaml_needs() {
        assert_eq!(
            quote("a\\b\"c\nd\u{1}\u{85}\u{2028}é"),
            "\"a\\\\b\\\"c\\nd\\x01\\x85\\u2028é\""
        );
    }
}
