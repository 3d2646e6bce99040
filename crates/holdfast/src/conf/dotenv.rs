//! `.env` files of docker-compose deployments (`POSTGRES_PASSWORD=…`,
//! `DATABASE_URL=postgres://…`).
//!
//! Reading uses `dotenvy`'s line parser. Compose interpolates `${VAR}` in
//! unquoted and double-quoted values but takes single-quoted ones literally,
//! and `dotenvy` does the same, so a new value is written single-quoted; a
//! value holding a single quote or a line break cannot be written that way in
//! both dialects alike and is refused. Only the value's bytes change.

use super::format::{refuse_nul, ConfError, ConfFormat, ConfResult};
use super::ConfValue;

/// Compose `.env`; a key path is the variable's name.
pub struct Dotenv;

impl ConfFormat for Dotenv {
    fn name(&self) -> &'static str {
        "dotenv"
    }

    fn read(&self, text: &str, key: &str) -> ConfResult<Option<String>> {
        Ok(parse(text)?
            .into_iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v))
    }

    fn rewrite(&self, text: &str, changes: &[(String, ConfValue)]) -> ConfResult<String> {
        let before = parse(text)?;
        let lines = scan(text)?;
        let mut edits: Vec<(usize, usize, String)> = Vec::new();
        let mut appended = String::new();
        let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
        let mut expected = before.clone();
        for (key, value) in changes {
            let ConfValue::Literal(value) = value else {
                return Err(ConfError::Refused(format!(
                    "cannot write {key}: raw values are only for shell-style files"
                )));
            };
            refuse_nul(key, value)?;
            if !is_name(key) {
                return Err(ConfError::Refused(format!(
                    "{key:?} is not a variable name"
                )));
            }
            if value.contains(['\'', '\n', '\r']) {
                return Err(ConfError::Refused(format!(
                    "cannot write {key}: a value with a single quote or a line break reads differently in compose and other .env readers; choose another"
                )));
            }
            let quoted = format!("'{value}'");
            let mut found = false;
            for l in lines.iter().filter(|l| l.key == *key) {
                found = true;
                edits.retain(|e| e.0 != l.value.0);
                edits.push((l.value.0, l.value.1, quoted.clone()));
            }
            if !found {
                appended.push_str(&format!("{key}={quoted}{eol}"));
            }
            let mut set = false;
            for (k, v) in expected.iter_mut() {
                if k == key {
                    *v = value.clone();
                    set = true;
                }
            }
            if !set {
                expected.push((key.clone(), value.clone()));
            }
        }
        edits.sort_by_key(|e| e.0);
        let mut out = text.to_string();
        for (s, e, new) in edits.iter().rev() {
            out.replace_range(*s..*e, new);
        }
        if !appended.is_empty() {
            if !out.is_empty() && !out.ends_with('\n') {
                out.push_str(eol);
            }
            out.push_str(&appended);
        }
        if parse(&out).ok() != Some(expected) {
            return Err(ConfError::Refused(
                "the rewritten file would read differently than intended; edit it by hand".into(),
            ));
        }
        Ok(out)
    }
}

fn is_name(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// The assignments in file order, as `dotenvy` reads them.
fn parse(text: &str) -> ConfResult<Vec<(String, String)>> {
    dotenvy::from_read_iter(text.as_bytes())
        .map(|item| item.map_err(|e| ConfError::Invalid(format!("not a valid .env file: {e}"))))
        .collect()
}

struct Assignment {
    key: String,
    value: (usize, usize),
}

/// Each assignment line's key and the bytes of its value (quotes included).
fn scan(text: &str) -> ConfResult<Vec<Assignment>> {
    let mut out = Vec::new();
    let mut at = 0;
    for raw in text.split_inclusive('\n') {
        let start = at;
        at += raw.len();
        let line = raw.trim_end_matches(['\n', '\r']);
        let body = line.trim_start();
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let body = body
            .strip_prefix("export ")
            .map(str::trim_start)
            .unwrap_or(body);
        let Some((key, rest)) = body.split_once('=') else {
            continue;
        };
        let key = key.trim_end();
        let rest_at = start + (line.len() - rest.len());
        let ws = rest.len() - rest.trim_start().len();
        let v = &rest[ws..];
        let vstart = rest_at + ws;
        let len = match v.as_bytes().first() {
            Some(b'\'') => v[1..].find('\'').map(|n| n + 2),
            Some(b'"') => {
                let b = v.as_bytes();
                let mut i = 1;
                let mut end = None;
                while i < b.len() {
                    match b[i] {
                        b'\\' => i += 2,
                        b'"' => {
                            end = Some(i + 1);
                            break;
                        }
                        _ => i += 1,
                    }
                }
                end
            }
            _ => {
                let cut = v.find(" #").unwrap_or(v.len());
                Some(v[..cut].trim_end().len())
            }
        };
        let Some(len) = len else {
            return Err(ConfError::Refused(format!(
                "{key} has a quoted value over several lines, which holdfast does not edit"
            )));
        };
        out.push(Assignment {
            key: key.to_string(),
            value: (vstart, vstart + len),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(k: &str, v: &str) -> (String, ConfValue) {
        (k.into(), ConfValue::Literal(v.into()))
    }

    #[test]
    fn reads_and_rewrites_values_only() {
        let text = "# compose\nPOSTGRES_USER=gitea\nPOSTGRES_PASSWORD=\"old\" # set me\nDATABASE_URL=postgres://gitea:old@db:5432/gitea\n";
        assert_eq!(
            Dotenv.read(text, "POSTGRES_PASSWORD").unwrap().as_deref(),
            Some("old")
        );
        let new = Dotenv
            .rewrite(
                text,
                &[lit("POSTGRES_PASSWORD", "n$w #\"x"), lit("NEW", "1")],
            )
            .unwrap();
        assert_eq!(
            new,
            "# compose\nPOSTGRES_USER=gitea\nPOSTGRES_PASSWORD='n$w #\"x' # set me\nDATABASE_URL=postgres://gitea:old@db:5432/gitea\nNEW='1'\n"
        );
        assert_eq!(
            Dotenv.read(&new, "POSTGRES_PASSWORD").unwrap().as_deref(),
            Some("n$w #\"x")
        );
        assert!(Dotenv
            .rewrite(text, &[lit("POSTGRES_PASSWORD", "it's")])
            .is_err());
    }
}
