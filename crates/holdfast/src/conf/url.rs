//! Credentials inside a connection URL, whatever file format holds the URL:
//! libpq URIs (`postgres://user:pass@host:port/db?…`, Rails' and compose's
//! `DATABASE_URL`) and PostgreSQL JDBC URLs
//! (`jdbc:postgresql://host:port/db?user=…&password=…`, Alfresco's `db.url`).
//!
//! Reading uses the `url` crate. A change splices only the bytes of the parts
//! it changes (adding a part that is absent), percent-encoding user, password
//! and database name, and keeps every other byte (options such as
//! `?sslmode=require` stay as written); the result is read back with the
//! `url` crate to prove the new parts and the unchanged ones.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use url::Url;

/// A part of a connection URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UrlPart {
    Host,
    Port,
    Database,
    User,
    Password,
}

impl UrlPart {
    pub fn name(self) -> &'static str {
        match self {
            UrlPart::Host => "host",
            UrlPart::Port => "port",
            UrlPart::Database => "database",
            UrlPart::User => "user",
            UrlPart::Password => "password",
        }
    }

    pub const ALL: [UrlPart; 5] = [
        UrlPart::Host,
        UrlPart::Port,
        UrlPart::Database,
        UrlPart::User,
        UrlPart::Password,
    ];
}

/// Everything but RFC 3986's unreserved characters is percent-encoded.
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `postgres://` or `postgresql://`: user and password in the authority.
    Libpq,
    /// `jdbc:postgresql://`: user and password as query parameters.
    Jdbc,
}

/// Byte ranges of a URL's parts.
#[derive(Debug)]
struct Layout {
    kind: Kind,
    /// Where the authority starts (after `//`).
    authority: usize,
    user: Option<(usize, usize)>,
    password: Option<(usize, usize)>,
    host: (usize, usize),
    port: Option<(usize, usize)>,
    /// The database name, after the `/` that ends the authority.
    path: Option<(usize, usize)>,
    /// The query after `?`, without it.
    query: Option<(usize, usize)>,
}

fn layout(url: &str) -> Result<Layout, String> {
    let (kind, authority) = if let Some(rest) = url.strip_prefix("jdbc:postgresql://") {
        (Kind::Jdbc, url.len() - rest.len())
    } else if let Some(rest) = url
        .strip_prefix("postgresql://")
        .or_else(|| url.strip_prefix("postgres://"))
    {
        (Kind::Libpq, url.len() - rest.len())
    } else {
        return Err(format!(
            "{:?} is not a PostgreSQL URL (postgres://, postgresql:// or jdbc:postgresql://)",
            short(url)
        ));
    };
    let tail = &url[authority..];
    let auth_len = tail.find(['/', '?', '#']).unwrap_or(tail.len());
    let auth_end = authority + auth_len;
    let auth = &url[authority..auth_end];
    let (mut user, mut password) = (None, None);
    let mut host_start = authority;
    if let Some(at) = auth.rfind('@') {
        if kind == Kind::Jdbc {
            return Err("a JDBC URL takes user and password as parameters, not before '@'".into());
        }
        let info = &auth[..at];
        match info.find(':') {
            Some(c) => {
                user = Some((authority, authority + c));
                password = Some((authority + c + 1, authority + at));
            }
            None => user = Some((authority, authority + at)),
        }
        host_start = authority + at + 1;
    }
    let hostport = &url[host_start..auth_end];
    if hostport.contains(',') {
        return Err("the URL names several hosts, which holdfast does not change".into());
    }
    let (host, port) = if hostport.starts_with('[') {
        let close = hostport
            .find(']')
            .ok_or("an IPv6 address without its closing ']'")?;
        let after = &hostport[close + 1..];
        let port = match after.strip_prefix(':') {
            Some(_) => Some((host_start + close + 2, auth_end)),
            None if after.is_empty() => None,
            None => return Err("text after the IPv6 address".into()),
        };
        ((host_start, host_start + close + 1), port)
    } else {
        match hostport.rfind(':') {
            Some(c) => (
                (host_start, host_start + c),
                Some((host_start + c + 1, auth_end)),
            ),
            None => ((host_start, auth_end), None),
        }
    };
    let rest = &url[auth_end..];
    let path = rest.strip_prefix('/').map(|p| {
        let n = p.find(['?', '#']).unwrap_or(p.len());
        (auth_end + 1, auth_end + 1 + n)
    });
    let query = url.find('?').filter(|&q| q >= auth_end).map(|q| {
        let n = url[q + 1..].find('#').unwrap_or(url.len() - q - 1);
        (q + 1, q + 1 + n)
    });
    Ok(Layout {
        kind,
        authority,
        user,
        password,
        host,
        port,
        path,
        query,
    })
}

/// The parts of `url` as the client library reads them.
fn parts(url: &str) -> Result<Vec<(UrlPart, Option<String>)>, String> {
    let kind = layout(url)?.kind;
    let parsed = Url::parse(url.strip_prefix("jdbc:").unwrap_or(url))
        .map_err(|e| format!("{:?} is not a valid URL: {e}", short(url)))?;
    let decode = |s: &str| -> Result<String, String> {
        percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| "a percent-encoded part is not UTF-8".to_string())
    };
    let param = |name: &str| {
        parsed
            .query_pairs()
            .filter(|(k, _)| k == name)
            .last()
            .map(|(_, v)| v.into_owned())
    };
    let host = parsed
        .host_str()
        .filter(|h| !h.is_empty())
        .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string());
    let database = match parsed.path().strip_prefix('/') {
        Some(p) if !p.is_empty() => Some(decode(p)?),
        _ => None,
    };
    let (user, password) = match kind {
        Kind::Jdbc => (param("user"), param("password")),
        Kind::Libpq => {
            let user = Some(parsed.username())
                .filter(|u| !u.is_empty())
                .map(decode)
                .transpose()?;
            let password = parsed.password().map(decode).transpose()?;
            (
                user.or_else(|| param("user")),
                password.or_else(|| param("password")),
            )
        }
    };
    Ok(vec![
        (UrlPart::Host, host),
        (UrlPart::Port, parsed.port().map(|p| p.to_string())),
        (UrlPart::Database, database),
        (UrlPart::User, user),
        (UrlPart::Password, password),
    ])
}

/// One part of `url`, or `None` when the URL leaves it out.
pub fn read_part(url: &str, part: UrlPart) -> Result<Option<String>, String> {
    let all = parts(url)?;
    let value = all
        .into_iter()
        .find(|(p, _)| *p == part)
        .and_then(|(_, v)| v);
    if let Some(v) = &value {
        if v.contains("${") {
            return Err(format!(
                "its {} is a placeholder ({v}) that holdfast does not expand; name the key that holds the {} in the profile instead",
                part.name(),
                part.name()
            ));
        }
    }
    Ok(value)
}

/// A connection given on the command line as a libpq URL
/// (`postgres://USER@HOST:PORT/DATABASE[?sslmode=…]`): user and database
/// required, host `localhost` and port 5432 by default. A password in it is
/// refused (`what` names the option): the command line is visible to every
/// user of the machine. `sslmode=require` (or stricter) marks the connection
/// secured, `verify-full` also validated.
pub fn connection(url: &str, what: &str) -> Result<crate::pg::ConnParams, String> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(format!(
            "{what} {}: not a postgres://USER@HOST:PORT/DATABASE URL",
            short(url)
        ));
    }
    let read = |part| read_part(url, part).map_err(|e| format!("{what}: {e}"));
    if read(UrlPart::Password)?.is_some() {
        return Err(format!(
            "{what}: the URL holds a password, which every user of this machine can read on the command line; leave it out and give it in a file"
        ));
    }
    let (Some(user), Some(database)) = (read(UrlPart::User)?, read(UrlPart::Database)?) else {
        return Err(format!(
            "{what} {}: name the role and the database, as postgres://USER@HOST:PORT/DATABASE",
            short(url)
        ));
    };
    let port = match read(UrlPart::Port)? {
        None => 5432,
        Some(p) => p
            .parse()
            .map_err(|_| format!("{what}: port {p} is not a number"))?,
    };
    let sslmode = Url::parse(url)
        .ok()
        .and_then(|u| {
            u.query_pairs()
                .filter(|(k, _)| k == "sslmode")
                .last()
                .map(|(_, v)| v.into_owned())
        })
        .unwrap_or_default();
    Ok(crate::pg::ConnParams {
        host: read(UrlPart::Host)?.unwrap_or_else(|| "localhost".into()),
        port,
        user,
        database,
        password: None,
        secured: matches!(sslmode.as_str(), "require" | "verify-ca" | "verify-full"),
        secured_validation: sslmode == "verify-full",
    })
}

/// `url` with each part set to its new value, every other byte kept.
pub fn set_parts(url: &str, changes: &[(UrlPart, &str)]) -> Result<String, String> {
    let l = layout(url)?;
    let before = parts(url)?;
    // (start, end, replacement), applied back to front.
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let mut params: Vec<(&str, String)> = Vec::new();
    let mut wanted: Vec<(UrlPart, Option<String>)> = before.clone();
    let mut changes: Vec<(UrlPart, &str)> = changes.to_vec();
    changes.dedup_by(|a, b| a.0 == b.0);
    for (part, value) in &changes {
        if value.contains("${") {
            return Err(format!(
                "the new {} contains '${{', which the application would expand; choose another",
                part.name()
            ));
        }
        let new = match part {
            UrlPart::Host => {
                let text = host_text(value)?;
                edits.push((l.host.0, l.host.1, text));
                Some(value.to_string())
            }
            UrlPart::Port => {
                value
                    .parse::<u16>()
                    .map_err(|_| format!("{value:?} is not a port number"))?;
                match l.port {
                    Some((s, e)) => edits.push((s, e, value.to_string())),
                    None => edits.push((l.host.1, l.host.1, format!(":{value}"))),
                }
                Some(value.to_string())
            }
            UrlPart::Database => {
                let text = utf8_percent_encode(value, ENCODE).to_string();
                match l.path {
                    Some((s, e)) => edits.push((s, e, text)),
                    None => {
                        let at = l.port.map(|p| p.1).unwrap_or(l.host.1);
                        edits.push((at, at, format!("/{text}")));
                    }
                }
                Some(value.to_string()).filter(|v| !v.is_empty())
            }
            UrlPart::User | UrlPart::Password if l.kind == Kind::Jdbc => {
                params.push((part.name(), value.to_string()));
                Some(value.to_string())
            }
            UrlPart::User => {
                let text = utf8_percent_encode(value, ENCODE).to_string();
                match l.user {
                    Some((s, e)) => edits.push((s, e, text)),
                    None if value.is_empty() => {}
                    None => edits.push((l.authority, l.authority, format!("{text}@"))),
                }
                Some(value.to_string()).filter(|v| !v.is_empty())
            }
            UrlPart::Password => {
                let text = utf8_percent_encode(value, ENCODE).to_string();
                match (l.password, l.user) {
                    // An empty password is left out rather than written empty.
                    (Some((s, e)), _) if value.is_empty() => edits.push((s - 1, e, String::new())),
                    (Some((s, e)), _) => edits.push((s, e, text)),
                    (None, _) if value.is_empty() => {}
                    (None, Some((_, e))) => edits.push((e, e, format!(":{text}"))),
                    (None, None)
                        if changes
                            .iter()
                            .any(|(p, v)| *p == UrlPart::User && !v.is_empty()) =>
                    {
                        edits.push((l.authority, l.authority, format!(":{text}")))
                    }
                    (None, None) => {
                        return Err(
                            "the URL has no user to add a password to; set the user too".into()
                        )
                    }
                }
                Some(value.to_string()).filter(|v| !v.is_empty())
            }
        };
        if let Some(w) = wanted.iter_mut().find(|(p, _)| p == part) {
            w.1 = new;
        }
    }
    // A user and password given together where the URL has neither: one insertion.
    edits.sort_by_key(|e| (e.0, e.1));
    merge_user_password(&mut edits, l.authority);
    let mut out = url.to_string();
    for pair in edits.windows(2) {
        if pair[1].0 < pair[0].1 {
            return Err("two changes overlap in the URL".into());
        }
    }
    for (s, e, text) in edits.iter().rev() {
        out.replace_range(*s..*e, text);
    }
    if !params.is_empty() {
        out = set_params(&out, &params)?;
    }
    let after = parts(&out)?;
    if after != wanted {
        return Err(format!(
            "the URL is written in a way holdfast cannot change safely ({:?}); edit it by hand",
            short(url)
        ));
    }
    Ok(out)
}

/// An inserted user (`user@`) and password (`:pw`) at the authority's start
/// become `user:pw@`.
fn merge_user_password(edits: &mut Vec<(usize, usize, String)>, authority: usize) {
    let at: Vec<usize> = (0..edits.len())
        .filter(|&i| edits[i].0 == authority && edits[i].1 == authority)
        .collect();
    if let [a, b] = at.as_slice() {
        let (user, pw) = if edits[*a].2.ends_with('@') {
            (*a, *b)
        } else {
            (*b, *a)
        };
        if edits[user].2.ends_with('@') && edits[pw].2.starts_with(':') {
            let merged = format!("{}{}@", edits[user].2.trim_end_matches('@'), edits[pw].2);
            edits[user].2 = merged;
            edits.remove(pw);
        }
    }
}

/// A host as a URL writes it: a name or IPv4 address as is, an IPv6 address in
/// brackets; socket directories have no place in these URLs.
fn host_text(host: &str) -> Result<String, String> {
    if host.starts_with('/') {
        return Err(format!(
            "the host {host:?} is a socket directory, which this URL cannot name; use a TCP host"
        ));
    }
    if host.contains(':') {
        let inner = host.trim_start_matches('[').trim_end_matches(']');
        if inner.parse::<std::net::Ipv6Addr>().is_ok() {
            return Ok(format!("[{inner}]"));
        }
        return Err(format!("{host:?} is not a host name or IP address"));
    }
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    {
        return Err(format!("{host:?} is not a host name or IP address"));
    }
    Ok(host.to_string())
}

/// `url` with the query parameters set: each existing `name=` replaced in
/// place, absent ones appended; values percent-encoded.
fn set_params(url: &str, params: &[(&str, String)]) -> Result<String, String> {
    let mut out = url.to_string();
    for (name, value) in params {
        let l = layout(&out)?;
        let text = utf8_percent_encode(value, ENCODE).to_string();
        let mut replaced = false;
        if let Some((qs, qe)) = l.query {
            let mut at = qs;
            let mut edits = Vec::new();
            for pair in out[qs..qe].split('&') {
                let k = pair.split('=').next().unwrap_or("");
                if k == *name {
                    let vstart = at + k.len() + 1;
                    if pair.contains('=') {
                        edits.push((vstart, at + pair.len()));
                    } else {
                        edits.push((at + k.len(), at + k.len()));
                    }
                }
                at += pair.len() + 1;
            }
            for (s, e) in edits.into_iter().rev() {
                let insert = if s == e && !out[..s].ends_with('=') {
                    format!("={text}")
                } else {
                    text.clone()
                };
                out.replace_range(s..e, &insert);
                replaced = true;
            }
        }
        if !replaced && !value.is_empty() {
            let end = out.find('#').unwrap_or(out.len());
            let sep = match l.query {
                Some((qs, qe)) if qe > qs => "&",
                Some(_) => "",
                None => "?",
            };
            out.insert_str(end, &format!("{sep}{name}={text}"));
        }
    }
    Ok(out)
}

fn short(text: &str) -> String {
    // Never show a password: only what precedes the authority's user info.
    match text.find('@') {
        Some(at) => format!(
            "{}…",
            &text[..text[..at].rfind('/').map(|s| s + 1).unwrap_or(0)]
        ),
        None => text.chars().take(80).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(url: &str, p: UrlPart) -> Option<String> {
        read_part(url, p).unwrap()
    }

    #[test]
    fn command_line_connections() {
        let c = connection(
            "postgres://redmine@db2.example:5433/redmine_new",
            "--target db",
        )
        .unwrap();
        assert_eq!(
            (
                c.host.as_str(),
                c.port,
                c.user.as_str(),
                c.database.as_str()
            ),
            ("db2.example", 5433, "redmine", "redmine_new")
        );
        assert!(!c.secured);
        let c = connection("postgresql://a@db/b?sslmode=verify-full", "--target").unwrap();
        assert_eq!((c.host.as_str(), c.port), ("db", 5432));
        assert!(c.secured && c.secured_validation);
        let e = connection("postgres://a:secret@h/b", "--target db").unwrap_err();
        assert!(
            e.contains("holds a password") && !e.contains("secret"),
            "{e}"
        );
        let e = connection("postgres://h/b", "--target db").unwrap_err();
        assert!(e.contains("name the role and the database"), "{e}");
        assert!(connection("jdbc:postgresql://h/b", "--target").is_err());
    }

    #[test]
    fn reads_libpq_and_jdbc_urls() {
        let u = "postgres://red%40mine:p%3Aw@db.example:5433/red%2Fmine?sslmode=require";
        assert_eq!(read(u, UrlPart::User).as_deref(), Some("red@mine"));
        assert_eq!(read(u, UrlPart::Password).as_deref(), Some("p:w"));
        assert_eq!(read(u, UrlPart::Host).as_deref(), Some("db.example"));
        assert_eq!(read(u, UrlPart::Port).as_deref(), Some("5433"));
        assert_eq!(read(u, UrlPart::Database).as_deref(), Some("red/mine"));
        let j = "jdbc:postgresql://localhost/alfresco?user=alf&password=a%26b";
        assert_eq!(read(j, UrlPart::Port), None);
        assert_eq!(read(j, UrlPart::User).as_deref(), Some("alf"));
        assert_eq!(read(j, UrlPart::Password).as_deref(), Some("a&b"));
        assert!(read_part("jdbc:postgresql://${db.host}:5432/x", UrlPart::Host).is_err());
        assert!(read_part("mysql://x/y", UrlPart::Host).is_err());
    }

    #[test]
    fn changes_only_the_parts() {
        let u = "postgres://app:old@db1:5432/app?sslmode=require&application_name=x";
        assert_eq!(
            set_parts(
                u,
                &[
                    (UrlPart::Password, "n@w:/?#%"),
                    (UrlPart::Host, "db2"),
                    (UrlPart::Port, "6432")
                ]
            )
            .unwrap(),
            "postgres://app:n%40w%3A%2F%3F%23%25@db2:6432/app?sslmode=require&application_name=x"
        );
        assert_eq!(
            set_parts(
                "postgresql://h/db",
                &[
                    (UrlPart::User, "u"),
                    (UrlPart::Password, "p"),
                    (UrlPart::Port, "1")
                ]
            )
            .unwrap(),
            "postgresql://u:p@h:1/db"
        );
        assert_eq!(
            set_parts(
                "jdbc:postgresql://h:5432/alfresco?sslmode=disable",
                &[
                    (UrlPart::Database, "alf 2"),
                    (UrlPart::Password, "a+b"),
                    (UrlPart::Host, "::1")
                ]
            )
            .unwrap(),
            "jdbc:postgresql://[::1]:5432/alf%202?sslmode=disable&password=a%2Bb"
        );
        assert_eq!(
            set_parts(
                "jdbc:postgresql://h/d?user=a&password=b",
                &[(UrlPart::User, "c")]
            )
            .unwrap(),
            "jdbc:postgresql://h/d?user=c&password=b"
        );
        assert_eq!(
            set_parts("postgres://u:p@h/d", &[(UrlPart::Password, "")]).unwrap(),
            "postgres://u@h/d"
        );
    }

    #[test]
    fn refuses_what_it_cannot_write() {
        assert!(set_parts("postgres://h/d", &[(UrlPart::Host, "/var/run/postgresql")]).is_err());
        assert!(set_parts("postgres://h1,h2/d", &[(UrlPart::Port, "1")]).is_err());
        assert!(set_parts("postgres://h/d", &[(UrlPart::Port, "x")]).is_err());
        assert!(set_parts("postgres://h/d", &[(UrlPart::Password, "p")]).is_err());
        assert!(set_parts("postgres://h/d", &[(UrlPart::Host, "a b")]).is_err());
    }
}
