//! JSON config files (Mattermost's `config.json`: `SqlSettings.DataSource`).
//!
//! Reading uses `serde_json`. Rewriting finds the value's bytes with a small
//! span-recording scanner of JSON, replaces only them with a JSON string
//! (escaped by `serde_json`), adds an absent key at the end of its object in
//! the object's own layout, and reads the result back: the document must
//! equal the old one with exactly the new values.

use serde_json::Value;

use super::format::{refuse_nul, ConfError, ConfFormat, ConfResult};
use super::ConfValue;

/// JSON; a key path is the object keys joined by `.` (`SqlSettings.DataSource`).
pub struct Json;

impl ConfFormat for Json {
    fn name(&self) -> &'static str {
        "json"
    }

    fn read(&self, text: &str, key: &str) -> ConfResult<Option<String>> {
        let doc = parse(text)?;
        let mut node = &doc;
        for seg in key.split('.') {
            match node.get(seg) {
                Some(n) => node = n,
                None => return Ok(None),
            }
        }
        match node {
            Value::String(s) => Ok(Some(s.clone())),
            Value::Number(n) => Ok(Some(n.to_string())),
            Value::Bool(b) => Ok(Some(b.to_string())),
            Value::Null => Ok(None),
            _ => Err(ConfError::Invalid(format!(
                "{key} is an object or a list, not a value"
            ))),
        }
    }

    fn rewrite(&self, text: &str, changes: &[(String, ConfValue)]) -> ConfResult<String> {
        let mut expected = parse(text)?;
        let root = Scanner::new(text).document()?;
        let mut edits: Vec<(usize, usize, &str, String)> = Vec::new();
        for (key, value) in changes {
            let ConfValue::Literal(value) = value else {
                return Err(ConfError::Refused(format!(
                    "cannot write {key}: raw values are only for shell-style files"
                )));
            };
            refuse_nul(key, value)?;
            let path: Vec<&str> = key.split('.').collect();
            if path.iter().any(|s| s.is_empty()) {
                return Err(ConfError::Refused(format!("{key:?} is not a key path")));
            }
            let encoded = serde_json::to_string(value).expect("a string serializes");
            let (start, end, new) = edit_for(text, &root, &path, key, &encoded)?;
            edits.retain(|e| e.2 != key.as_str());
            edits.push((start, end, key.as_str(), new));
            set(&mut expected, &path, value).map_err(ConfError::Refused)?;
        }
        edits.sort_by_key(|e| e.0);
        for pair in edits.windows(2) {
            if pair[1].0 < pair[0].1 || (pair[1].0 == pair[0].0 && pair[0].0 == pair[0].1) {
                return Err(ConfError::Refused(format!(
                    "cannot add both {} and {} at once; add one first",
                    pair[0].2, pair[1].2
                )));
            }
        }
        let mut out = text.to_string();
        for (start, end, _, new) in edits.iter().rev() {
            out.replace_range(*start..*end, new);
        }
        if parse(&out).ok().as_ref() != Some(&expected) {
            return Err(ConfError::Refused(
                "the rewritten file would read differently than intended; edit it by hand".into(),
            ));
        }
        Ok(out)
    }
}

fn parse(text: &str) -> ConfResult<Value> {
    serde_json::from_str(text).map_err(|e| ConfError::Invalid(format!("not valid JSON: {e}")))
}

fn set(node: &mut Value, path: &[&str], value: &str) -> Result<(), String> {
    let (last, parents) = path.split_last().expect("paths are not empty");
    let mut here = node;
    for seg in parents {
        here = here
            .get_mut(*seg)
            .ok_or_else(|| format!("cannot write {}: there is no {seg} object", path.join(".")))?;
    }
    let Value::Object(map) = here else {
        return Err(format!(
            "cannot write {}: its parent is not an object",
            path.join(".")
        ));
    };
    map.insert(last.to_string(), Value::String(value.to_string()));
    Ok(())
}

/// An object's member: key, the whitespace before the key, value.
type Member = (String, (usize, usize), Node);

/// A scanned JSON value: its bytes, and for an object its members.
#[derive(Debug)]
struct Node {
    start: usize,
    end: usize,
    /// The members, for objects.
    members: Option<Vec<Member>>,
    /// An array (or object): not a value holdfast writes over.
    container: bool,
}

fn edit_for(
    text: &str,
    root: &Node,
    path: &[&str],
    key: &str,
    encoded: &str,
) -> ConfResult<(usize, usize, String)> {
    let (last, parents) = path.split_last().expect("paths are not empty");
    let mut here = root;
    for seg in parents {
        let members = here.members.as_ref().ok_or_else(|| {
            ConfError::Refused(format!("cannot write {key}: {seg} is not inside an object"))
        })?;
        let found: Vec<&Node> = members
            .iter()
            .filter(|m| m.0 == *seg)
            .map(|m| &m.2)
            .collect();
        here = match found.as_slice() {
            [one] => one,
            [] => {
                return Err(ConfError::Refused(format!(
                    "cannot write {key}: there is no {seg} object"
                )))
            }
            _ => {
                return Err(ConfError::Refused(format!(
                    "cannot write {key}: {seg} is there twice"
                )))
            }
        };
    }
    let members = here.members.as_ref().ok_or_else(|| {
        ConfError::Refused(format!("cannot write {key}: its parent is not an object"))
    })?;
    let found: Vec<&(String, (usize, usize), Node)> =
        members.iter().filter(|m| m.0 == *last).collect();
    match found.as_slice() {
        [m] => {
            if m.2.container {
                return Err(ConfError::Refused(format!(
                    "cannot write {key}: it is an object or a list, not a value"
                )));
            }
            Ok((m.2.start, m.2.end, encoded.to_string()))
        }
        [] => {
            let name = serde_json::to_string(last).expect("a string serializes");
            match members.last() {
                Some(lastm) => {
                    let (ws_start, ws_end) = members[0].1;
                    let ws = &text[ws_start..ws_end];
                    Ok((lastm.2.end, lastm.2.end, format!(",{ws}{name}: {encoded}")))
                }
                None => Ok((here.start + 1, here.start + 1, format!("{name}: {encoded}"))),
            }
        }
        _ => Err(ConfError::Refused(format!(
            "cannot write {key}: the file sets it twice"
        ))),
    }
}

/// A recursive-descent scan of JSON text that records where values are.
struct Scanner<'a> {
    text: &'a str,
    b: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str) -> Scanner<'a> {
        Scanner {
            text,
            b: text.as_bytes(),
            at: 0,
        }
    }

    fn bad(&self) -> ConfError {
        ConfError::Invalid(format!("not valid JSON near byte {}", self.at))
    }

    fn ws(&mut self) {
        while self.at < self.b.len() && matches!(self.b[self.at], b' ' | b'\t' | b'\n' | b'\r') {
            self.at += 1;
        }
    }

    fn document(mut self) -> ConfResult<Node> {
        self.ws();
        let node = self.value()?;
        self.ws();
        if self.at != self.b.len() {
            return Err(self.bad());
        }
        Ok(node)
    }

    fn value(&mut self) -> ConfResult<Node> {
        let start = self.at;
        match self.b.get(self.at) {
            Some(b'{') => {
                self.at += 1;
                let mut members = Vec::new();
                loop {
                    let ws_start = self.at;
                    self.ws();
                    let ws = (ws_start, self.at);
                    match self.b.get(self.at) {
                        Some(b'}') if members.is_empty() => {
                            self.at += 1;
                            break;
                        }
                        Some(b'"') => {}
                        _ => return Err(self.bad()),
                    }
                    let key_start = self.at;
                    self.string()?;
                    let key: String = serde_json::from_str(&self.text[key_start..self.at])
                        .map_err(|_| self.bad())?;
                    self.ws();
                    if self.b.get(self.at) != Some(&b':') {
                        return Err(self.bad());
                    }
                    self.at += 1;
                    self.ws();
                    let v = self.value()?;
                    members.push((key, ws, v));
                    self.ws();
                    match self.b.get(self.at) {
                        Some(b',') => self.at += 1,
                        Some(b'}') => {
                            self.at += 1;
                            break;
                        }
                        _ => return Err(self.bad()),
                    }
                }
                Ok(Node {
                    start,
                    end: self.at,
                    members: Some(members),
                    container: true,
                })
            }
            Some(b'[') => {
                self.at += 1;
                self.ws();
                if self.b.get(self.at) == Some(&b']') {
                    self.at += 1;
                } else {
                    loop {
                        self.ws();
                        self.value()?;
                        self.ws();
                        match self.b.get(self.at) {
                            Some(b',') => self.at += 1,
                            Some(b']') => {
                                self.at += 1;
                                break;
                            }
                            _ => return Err(self.bad()),
                        }
                    }
                }
                Ok(Node {
                    start,
                    end: self.at,
                    members: None,
                    container: true,
                })
            }
            Some(b'"') => {
                self.string()?;
                Ok(Node {
                    start,
                    end: self.at,
                    members: None,
                    container: false,
                })
            }
            Some(_) => {
                while self.at < self.b.len()
                    && !matches!(
                        self.b[self.at],
                        b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'
                    )
                {
                    self.at += 1;
                }
                if self.at == start {
                    return Err(self.bad());
                }
                Ok(Node {
                    start,
                    end: self.at,
                    members: None,
                    container: false,
                })
            }
            None => Err(self.bad()),
        }
    }

    fn string(&mut self) -> ConfResult<()> {
        self.at += 1;
        while self.at < self.b.len() {
            match self.b[self.at] {
                b'\\' => self.at += 2,
                b'"' => {
                    self.at += 1;
                    return Ok(());
                }
                _ => self.at += 1,
            }
        }
        Err(self.bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MATTERMOST: &str = "{\n    \"ServiceSettings\": {\n        \"SiteURL\": \"\"\n    },\n    \"SqlSettings\": {\n        \"DriverName\": \"postgres\",\n        \"DataSource\": \"postgres://mmuser:mostest@localhost/mattermost?sslmode=disable\\u0026connect_timeout=10\",\n        \"MaxIdleConns\": 20\n    }\n}\n";

    fn lit(k: &str, v: &str) -> (String, ConfValue) {
        (k.into(), ConfValue::Literal(v.into()))
    }

    #[test]
    fn reads_and_rewrites_in_place() {
        assert_eq!(
            Json.read(MATTERMOST, "SqlSettings.DataSource")
                .unwrap()
                .as_deref(),
            Some(
                "postgres://mmuser:mostest@localhost/mattermost?sslmode=disable&connect_timeout=10"
            )
        );
        assert_eq!(
            Json.read(MATTERMOST, "SqlSettings.MaxIdleConns")
                .unwrap()
                .as_deref(),
            Some("20")
        );
        let new = Json
            .rewrite(
                MATTERMOST,
                &[
                    lit("SqlSettings.DriverName", "p\"g\n"),
                    lit("SqlSettings.Extra", "x"),
                ],
            )
            .unwrap();
        assert_eq!(
            new,
            MATTERMOST
                .replace("\"postgres\",", "\"p\\\"g\\n\",")
                .replace(
                    "\"MaxIdleConns\": 20",
                    "\"MaxIdleConns\": 20,\n        \"Extra\": \"x\""
                )
        );
        assert!(Json
            .rewrite(MATTERMOST, &[lit("SqlSettings", "x")])
            .is_err());
        assert!(Json.rewrite(MATTERMOST, &[lit("Nope.X", "x")]).is_err());
    }
}
