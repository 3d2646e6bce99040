//! Java properties files (Alfresco's `alfresco-global.properties`), with the
//! rules of `java.util.Properties.load`.
//!
//! Reading uses the `java-properties` crate. Rewriting finds each logical line
//! of a key (continuation lines included) with a scanner of the same rules and
//! replaces only the value's bytes with an escaped value, the way
//! `Properties.store` writes one (`\\`, a leading `\ `, `\=`, `\:`, `\#`, `\!`,
//! `\t \n \r \f`, and every character outside U+0020–U+007E as `\uXXXX`), which
//! both ISO-8859-1 and UTF-8 loaders read back alike. Alfresco (Spring) expands
//! `${name}` in values, so a value holding `${` is refused.

use std::collections::HashMap;

use java_properties::{LineContent, PropertiesIter};

use super::format::{refuse_nul, ConfError, ConfFormat, ConfResult};
use super::ConfValue;

/// Java properties; a key path is the property's key (`db.url`).
pub struct Properties;

impl ConfFormat for Properties {
    fn name(&self) -> &'static str {
        "properties"
    }

    fn read(&self, text: &str, key: &str) -> ConfResult<Option<String>> {
        Ok(parse(text)?.remove(key))
    }

    fn rewrite(&self, text: &str, changes: &[(String, ConfValue)]) -> ConfResult<String> {
        let values = literal_changes(changes, |key, value| {
            if value.contains("${") {
                return Err(ConfError::Refused(format!(
                    "cannot write {key}: the value contains '${{', which the application would expand as a ${{name}} placeholder; choose a value without it"
                )));
            }
            Ok(encode_value(value))
        })?;
        rewrite_encoded(text, &values)
    }
}

/// The changes as (key, new value, its escaped text), refusing what `check`
/// refuses.
pub(crate) fn literal_changes(
    changes: &[(String, ConfValue)],
    check: impl Fn(&str, &str) -> ConfResult<String>,
) -> ConfResult<Vec<(String, String, String)>> {
    let mut out: Vec<(String, String, String)> = Vec::new();
    for (key, value) in changes {
        let ConfValue::Literal(value) = value else {
            return Err(ConfError::Refused(format!(
                "cannot write {key}: raw values are only for shell-style files"
            )));
        };
        refuse_nul(key, value)?;
        if key.is_empty() || key.chars().any(char::is_control) {
            return Err(ConfError::Refused(format!("{key:?} is not a property key")));
        }
        let encoded = check(key, value)?;
        out.retain(|(k, _, _)| k != key);
        out.push((key.clone(), value.clone(), encoded));
    }
    Ok(out)
}

/// Every key and value, as `Properties.load(Reader)` of UTF-8 text gives them.
pub(crate) fn parse(text: &str) -> ConfResult<HashMap<String, String>> {
    let mut map = HashMap::new();
    for line in PropertiesIter::new_with_encoding(text.as_bytes(), encoding_rs::UTF_8) {
        let line =
            line.map_err(|e| ConfError::Invalid(format!("not a valid properties file: {e}")))?;
        if let LineContent::KVPair(k, v) = line.consume_content() {
            map.insert(k, v);
        }
    }
    Ok(map)
}

/// `text` with the value of every line of each key replaced by its escaped
/// text (new keys appended), checked by reading it back: the changed keys hold
/// the new values, every other key its old one.
pub(crate) fn rewrite_encoded(
    text: &str,
    values: &[(String, String, String)],
) -> ConfResult<String> {
    let before = parse(text)?;
    let lines = scan(text);
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let mut missing: Vec<&(String, String, String)> = Vec::new();
    for change in values {
        let (key, _, encoded) = change;
        let mut found = false;
        for l in lines.iter().filter(|l| &l.key == key) {
            found = true;
            let text = if l.separated {
                encoded.clone()
            } else {
                format!("={encoded}")
            };
            edits.push((l.value.0, l.value.1, text));
        }
        if !found {
            missing.push(change);
        }
    }
    edits.sort_by_key(|e| e.0);
    let mut out = text.to_string();
    for (start, end, new) in edits.iter().rev() {
        out.replace_range(*start..*end, new);
    }
    if !missing.is_empty() {
        let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
        if !out.is_empty() && !out.ends_with(['\n', '\r']) {
            out.push_str(eol);
        }
        for (key, _, encoded) in missing {
            out.push_str(&encode_key(key));
            out.push('=');
            out.push_str(encoded);
            out.push_str(eol);
        }
    }
    let mut expected = before;
    for (key, value, _) in values {
        expected.insert(key.clone(), value.clone());
    }
    if parse(&out).ok().as_ref() != Some(&expected) {
        return Err(ConfError::Refused(
            "the file's layout is one holdfast cannot edit safely (the rewritten file would read differently); edit it by hand".into(),
        ));
    }
    Ok(out)
}

/// `value` escaped as `Properties.store` writes it, all ASCII.
pub fn encode_value(value: &str) -> String {
    escape(value, false)
}

fn encode_key(key: &str) -> String {
    escape(key, true)
}

fn escape(s: &str, key: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for (i, c) in s.chars().enumerate() {
        match c {
            ' ' if i == 0 || key => out.push_str("\\ "),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{c}' => out.push_str("\\f"),
            '=' | ':' | '#' | '!' if key => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04X}"));
                }
            }
        }
    }
    out
}

/// One key's logical line: its key (unescaped), the bytes of its value (from
/// the first character after the separator to the end of the logical line),
/// and whether a separator is there to write a value after.
#[derive(Debug)]
struct KeyLine {
    key: String,
    value: (usize, usize),
    separated: bool,
}

fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{c}')
}

/// The key lines of `text`, by `Properties.load`'s rules.
fn scan(text: &str) -> Vec<KeyLine> {
    // Natural lines: (start, end) of their content, terminators excluded.
    let mut natural = Vec::new();
    let b = text.as_bytes();
    let (mut start, mut i) = (0, 0);
    while i < b.len() {
        match b[i] {
            b'\n' => {
                natural.push((start, i));
                start = i + 1;
            }
            b'\r' => {
                natural.push((start, i));
                if b.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if start < b.len() {
        natural.push((start, b.len()));
    }
    let mut out = Vec::new();
    let mut n = 0;
    while n < natural.len() {
        let (s, e) = natural[n];
        let line = &text[s..e];
        let body = line.trim_start_matches(is_ws);
        n += 1;
        if body.is_empty() || body.starts_with(['#', '!']) {
            continue;
        }
        // The logical line's characters with their byte offsets.
        let mut chars: Vec<(char, usize)> = Vec::new();
        let mut seg_start = e - body.len();
        let mut seg_end = e;
        let mut end;
        loop {
            let seg = &text[seg_start..seg_end];
            let trailing = seg.len() - seg.trim_end_matches('\\').len();
            let continues = trailing % 2 == 1;
            let content_end = if continues { seg_end - 1 } else { seg_end };
            chars.extend(
                text[seg_start..content_end]
                    .char_indices()
                    .map(|(o, c)| (c, seg_start + o)),
            );
            end = seg_end;
            if !continues || n >= natural.len() {
                break;
            }
            let (ns, ne) = natural[n];
            n += 1;
            let next = &text[ns..ne];
            seg_start = ne - next.trim_start_matches(is_ws).len();
            seg_end = ne;
        }
        // The key: up to an unescaped '=', ':' or whitespace.
        let mut key = String::new();
        let mut k = 0;
        let mut separated = false;
        while k < chars.len() {
            let c = chars[k].0;
            if c == '\\' && k + 1 < chars.len() {
                k += 1;
                let (escaped, used) = unescape_at(&chars, k);
                key.push(escaped);
                k += used;
                continue;
            }
            if c == '=' || c == ':' {
                separated = true;
                k += 1;
                break;
            }
            if is_ws(c) {
                separated = true;
                while k < chars.len() && is_ws(chars[k].0) {
                    k += 1;
                }
                if k < chars.len() && matches!(chars[k].0, '=' | ':') {
                    k += 1;
                }
                break;
            }
            key.push(c);
            k += 1;
        }
        while k < chars.len() && is_ws(chars[k].0) {
            k += 1;
        }
        let value_start = chars.get(k).map(|c| c.1).unwrap_or(end);
        out.push(KeyLine {
            key,
            value: (value_start, end),
            separated,
        });
    }
    out
}

/// The character an escape (after its backslash, at `k`) stands for, and how
/// many characters it used.
fn unescape_at(chars: &[(char, usize)], k: usize) -> (char, usize) {
    match chars[k].0 {
        't' => ('\t', 1),
        'n' => ('\n', 1),
        'r' => ('\r', 1),
        'f' => ('\u{c}', 1),
        'u' => {
            let hex: String = chars[k + 1..].iter().take(4).map(|c| c.0).collect();
            match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                Some(c) if hex.len() == 4 => (c, 5),
                _ => ('\u{fffd}', 1),
            }
        }
        c => (c, 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALFRESCO: &str = "# Database\r\ndb.driver=org.postgresql.Driver\r\ndb.username=alfresco\r\ndb.password = old\\\r\n    pw\r\n   ! comment\r\ndb.url=jdbc:postgresql://localhost:5432/alfresco\r\ndir.root=/srv/alf_data\r\n";

    fn lit(k: &str, v: &str) -> (String, ConfValue) {
        (k.into(), ConfValue::Literal(v.into()))
    }

    #[test]
    fn reads_keys() {
        assert_eq!(
            Properties.read(ALFRESCO, "db.password").unwrap().as_deref(),
            Some("oldpw")
        );
        assert_eq!(
            Properties.read(ALFRESCO, "db.username").unwrap().as_deref(),
            Some("alfresco")
        );
        assert_eq!(Properties.read(ALFRESCO, "db.host").unwrap(), None);
    }

    #[test]
    fn rewrites_values_keeping_the_rest() {
        let new = Properties
            .rewrite(
                ALFRESCO,
                &[
                    lit("db.password", " new=pw#é"),
                    lit("db.username", "alf"),
                    lit("db.name", "x"),
                ],
            )
            .unwrap();
        assert_eq!(
            new,
            "# Database\r\ndb.driver=org.postgresql.Driver\r\ndb.username=alf\r\ndb.password = \\ new=pw#\\u00E9\r\n   ! comment\r\ndb.url=jdbc:postgresql://localhost:5432/alfresco\r\ndir.root=/srv/alf_data\r\ndb.name=x\r\n"
        );
        assert_eq!(
            Properties.read(&new, "db.password").unwrap().as_deref(),
            Some(" new=pw#é")
        );
    }

    #[test]
    fn separators_and_key_only_lines() {
        let text = "a:1\nb 2\nc\nd=\n";
        let new = Properties
            .rewrite(
                text,
                &[lit("a", "x"), lit("b", "y"), lit("c", "z"), lit("d", "w")],
            )
            .unwrap();
        assert_eq!(new, "a:x\nb y\nc=z\nd=w\n");
    }

    #[test]
    fn refuses_placeholders() {
        let err = Properties
            .rewrite(ALFRESCO, &[lit("db.password", "a${b}")])
            .unwrap_err();
        assert!(matches!(err, ConfError::Refused(_)));
    }

    #[test]
    fn escaping_matches_store() {
        assert_eq!(
            encode_value("a\\b c\td\u{1F600}"),
            "a\\\\b c\\td\\uD83D\\uDE00"
        );
        assert_eq!(encode_value("  x"), "\\  x");
    }
}
