//! Host and port held together in one value, as Gitea and Forgejo keep them
//! in `app.ini`'s `[database] HOST`: `host`, `host:port`, `[v6addr]:port`, or
//! an absolute path (the directory of the server's Unix socket).
//!
//! Whatever format holds the value reads and writes it whole; this module
//! only splits it into its two parts and joins new parts back.

use super::url::UrlPart;

/// The host or port (`part`) of `value`; `None` when the value leaves it out.
pub fn read_part(value: &str, part: UrlPart) -> Result<Option<String>, String> {
    let (host, port) = split(value)?;
    Ok(match part {
        UrlPart::Host => host,
        UrlPart::Port => port,
        other => {
            return Err(format!(
                "a host:port value holds no {}; name its own key in the profile",
                other.name()
            ))
        }
    })
}

/// `current` with the host and/or port in `changes` replaced.
pub fn set_parts(current: &str, changes: &[(UrlPart, &str)]) -> Result<String, String> {
    let (mut host, mut port) = split(current)?;
    for (part, value) in changes {
        match part {
            UrlPart::Host => host = Some(value.to_string()),
            UrlPart::Port => port = Some(value.to_string()),
            other => {
                return Err(format!(
                    "a host:port value holds no {}; name its own key in the profile",
                    other.name()
                ))
            }
        }
    }
    let host = host.unwrap_or_default();
    if host.chars().any(|c| c.is_whitespace() || c == '/') && !host.starts_with('/') {
        return Err(format!("{host:?} is not a host name or address"));
    }
    if host.starts_with('/') {
        return match port.as_deref() {
            None | Some("5432") => Ok(host),
            Some(p) => Err(format!(
                "a socket directory ({host}) leaves no place for port {p}; use a TCP host or port 5432"
            )),
        };
    }
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    Ok(match port {
        Some(p) => format!("{host}:{p}"),
        None => host,
    })
}

/// (host, port) of a `host[:port]` value; a bracketed IPv6 address loses
/// its brackets, an absolute path is a socket directory with no port.
fn split(value: &str) -> Result<(Option<String>, Option<String>), String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok((None, None));
    }
    if value.starts_with('/') {
        return Ok((Some(value.to_string()), None));
    }
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let (addr, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{value:?}: '[' without its closing ']'"))?;
        match after {
            "" => (addr, None),
            _ => match after.strip_prefix(':') {
                Some(p) => (addr, Some(p)),
                None => return Err(format!("{value:?}: expected ':port' after ']'")),
            },
        }
    } else {
        match value.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => (value, None),
            Some((h, p)) => (h, Some(p)),
            None => (value, None),
        }
    };
    if let Some(p) = port {
        if p.parse::<u16>().is_err() {
            return Err(format!("{value:?}: {p:?} is not a port number"));
        }
    }
    Ok((
        (!host.is_empty()).then(|| host.to_string()),
        port.map(str::to_string),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(v: &str) -> (Option<String>, Option<String>) {
        (
            read_part(v, UrlPart::Host).unwrap(),
            read_part(v, UrlPart::Port).unwrap(),
        )
    }

    #[test]
    fn reads_gitea_host_forms() {
        let s = |x: &str| Some(x.to_string());
        assert_eq!(parts("127.0.0.1:5432"), (s("127.0.0.1"), s("5432")));
        assert_eq!(parts("db.example"), (s("db.example"), None));
        assert_eq!(parts("[::1]:5433"), (s("::1"), s("5433")));
        assert_eq!(parts("[fe80::1]"), (s("fe80::1"), None));
        assert_eq!(parts("::1"), (s("::1"), None));
        assert_eq!(
            parts("/var/run/postgresql/"),
            (s("/var/run/postgresql/"), None)
        );
        assert_eq!(parts(""), (None, None));
        assert!(read_part("db:notaport", UrlPart::Host).is_err());
        assert!(read_part("db:5432", UrlPart::User).is_err());
    }

    #[test]
    fn writes_parts_back() {
        let set = |v: &str, c: &[(UrlPart, &str)]| set_parts(v, c).unwrap();
        assert_eq!(
            set("127.0.0.1:5432", &[(UrlPart::Port, "5433")]),
            "127.0.0.1:5433"
        );
        assert_eq!(
            set(
                "127.0.0.1:5432",
                &[(UrlPart::Host, "::1"), (UrlPart::Port, "6000")]
            ),
            "[::1]:6000"
        );
        assert_eq!(set("db", &[(UrlPart::Host, "other")]), "other");
        assert_eq!(
            set("", &[(UrlPart::Host, "h"), (UrlPart::Port, "1")]),
            "h:1"
        );
        assert_eq!(
            set(
                "db:5432",
                &[(UrlPart::Host, "/run/postgresql"), (UrlPart::Port, "5432")]
            ),
            "/run/postgresql"
        );
        assert!(set_parts("db", &[(UrlPart::Host, "/run/pg"), (UrlPart::Port, "6")]).is_err());
        assert!(set_parts("db", &[(UrlPart::Host, "a b")]).is_err());
    }
}
