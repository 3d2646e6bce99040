//! The one trait every config file format implements, the names profiles give
//! the formats, and what goes through it: reading a value, and changing values
//! of a file in place (whole values, or parts of a connection URL held in one).

use std::path::{Path, PathBuf};

use chrono::{DateTime, Local};
use serde::Deserialize;

use super::url::{self, UrlPart};
use super::{dotenv, host_port, ini, json, keycloak, properties, rewrite, shell, yaml, ConfValue};
use crate::error::{Error, IoContext, Result};

/// Why a format could not read or change a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfError {
    /// The text is not valid in this format, or the key holds no single value.
    Invalid(String),
    /// The change cannot be written safely; nothing was written.
    Refused(String),
}

impl ConfError {
    /// The error for the file at `path`.
    pub fn at(self, path: &Path) -> Error {
        match self {
            ConfError::Invalid(m) => Error::invalid(format!("{}: {m}", path.display())),
            ConfError::Refused(m) => Error::usage(format!("{}: {m}", path.display())),
        }
    }

    pub fn message(&self) -> &str {
        match self {
            ConfError::Invalid(m) | ConfError::Refused(m) => m,
        }
    }
}

pub type ConfResult<T> = std::result::Result<T, ConfError>;

/// A config file format: reads the value at a key path as the application
/// does, and rewrites values in place keeping every other byte.
///
/// Reading uses a well-kept parser of the format; rewriting locates each
/// value's bytes with a small scanner of our own, replaces only them, and
/// then reads the result back with the parser to prove that the changed keys
/// hold exactly the new values and nothing else changed.
pub trait ConfFormat {
    /// The name profiles use (`format = "yaml"`).
    fn name(&self) -> &'static str;

    /// The value at `key` (the format's key path, e.g. `production.password`),
    /// or `None` when the file does not set it.
    fn read(&self, text: &str, key: &str) -> ConfResult<Option<String>>;

    /// `text` with the value of each key replaced (keys the file lacks are
    /// added where the format can say where), every other byte unchanged.
    /// Refuses a key or value it cannot write so that the application reads
    /// back exactly that value.
    fn rewrite(&self, text: &str, changes: &[(String, ConfValue)]) -> ConfResult<String>;
}

/// A format as a profile names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Shell-style `KEY="value"` (oVirt's `*.conf`).
    Shell,
    /// YAML block mappings (Redmine `database.yml`, Synapse `homeserver.yaml`).
    Yaml,
    /// Java properties (Alfresco `alfresco-global.properties`).
    Properties,
    /// Keycloak `keycloak.conf`: properties with SmallRye `$` escaping.
    Keycloak,
    /// JSON (Mattermost `config.json`).
    Json,
    /// Compose `.env` files.
    Dotenv,
    /// INI as Python's configparser reads it (Odoo `odoo.conf`).
    Ini,
    /// INI as go-ini reads it (Gitea and Forgejo `app.ini`).
    #[serde(rename = "go-ini")]
    GoIni,
}

impl Format {
    pub fn handler(self) -> &'static dyn ConfFormat {
        match self {
            Format::Shell => &shell::Shell,
            Format::Yaml => &yaml::Yaml,
            Format::Properties => &properties::Properties,
            Format::Keycloak => &keycloak::Keycloak,
            Format::Json => &json::Json,
            Format::Dotenv => &dotenv::Dotenv,
            Format::Ini => &ini::PythonIni,
            Format::GoIni => &ini::GoIni,
        }
    }
}

/// Where one value lives in a file: the whole value of a key, one part of
/// the connection URL that a key holds, or the host or port of a key holding
/// `host[:port]` (Gitea's `HOST`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Key(String),
    UrlPart(String, UrlPart),
    HostPort(String, UrlPart),
}

impl Location {
    fn key(&self) -> &str {
        match self {
            Location::Key(k) | Location::UrlPart(k, _) | Location::HostPort(k, _) => k,
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Key(k) => write!(f, "{k}"),
            Location::UrlPart(k, p) => write!(f, "the {} in the URL of {k}", p.name()),
            Location::HostPort(k, p) => write!(f, "the {} in the host:port of {k}", p.name()),
        }
    }
}

/// Read the text of a config file (UTF-8).
pub fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).context(|| format!("read {}", path.display()))?;
    String::from_utf8(bytes)
        .map_err(|_| Error::invalid(format!("{}: not UTF-8 text", path.display())))
}

/// The value at `at` in `text`.
pub fn read_location(format: Format, text: &str, at: &Location) -> ConfResult<Option<String>> {
    let whole = format.handler().read(text, at.key())?;
    match (at, whole) {
        (Location::Key(_), v) => Ok(v),
        (Location::UrlPart(..) | Location::HostPort(..), None) => Ok(None),
        (Location::UrlPart(key, part), Some(u)) => {
            url::read_part(&u, *part).map_err(|m| ConfError::Invalid(format!("{key}: {m}")))
        }
        (Location::HostPort(key, part), Some(v)) => {
            host_port::read_part(&v, *part).map_err(|m| ConfError::Invalid(format!("{key}: {m}")))
        }
    }
}

/// `text` with each location set to its new value. A [`ConfValue::Raw`]
/// value is only for a whole key of a shell-style file.
pub fn edit_text(
    format: Format,
    text: &str,
    changes: &[(Location, ConfValue)],
) -> ConfResult<String> {
    let handler = format.handler();
    let mut whole: Vec<(String, ConfValue)> = Vec::new();
    // Keys whose value is made of parts, with how they are joined.
    let mut compound: Vec<(&str, bool)> = Vec::new();
    for (at, value) in changes {
        match (at, value) {
            (Location::Key(k), v) => whole.push((k.clone(), v.clone())),
            (Location::UrlPart(k, _) | Location::HostPort(k, _), ConfValue::Literal(_)) => {
                let is_url = matches!(at, Location::UrlPart(..));
                if !compound.iter().any(|(c, _)| *c == k.as_str()) {
                    compound.push((k, is_url));
                }
            }
            (Location::UrlPart(k, _) | Location::HostPort(k, _), ConfValue::Raw(_)) => {
                return Err(ConfError::Refused(format!(
                    "cannot write a raw value into a part of {k}"
                )))
            }
        }
    }
    for (key, is_url) in compound {
        let parts: Vec<(UrlPart, &str)> = changes
            .iter()
            .filter_map(|(at, v)| match (at, v) {
                (Location::UrlPart(k, p) | Location::HostPort(k, p), ConfValue::Literal(v))
                    if k == key =>
                {
                    Some((*p, v.as_str()))
                }
                _ => None,
            })
            .collect();
        let current = handler.read(text, key)?;
        let new = if is_url {
            let current = current.ok_or_else(|| {
                ConfError::Refused(format!(
                    "{key} is not set, so there is no URL to change; set it to a URL first"
                ))
            })?;
            url::set_parts(&current, &parts)
        } else {
            host_port::set_parts(current.as_deref().unwrap_or(""), &parts)
        }
        .map_err(|m| ConfError::Refused(format!("{key}: {m}")))?;
        whole.push((key.to_string(), ConfValue::Literal(new)));
    }
    handler.rewrite(text, &whole)
}

/// Set each location of the file at `path` to its new value, in place: the
/// new content is made and checked first (a refusal leaves everything as it
/// was), then a dated copy is kept and the file atomically replaced with its
/// mode and owner. Returns the path of the copy.
pub fn rewrite_file(
    path: &Path,
    format: Format,
    changes: &[(Location, ConfValue)],
    now: DateTime<Local>,
) -> Result<PathBuf> {
    rewrite::rewrite_with(path, now, |original| {
        edit_bytes(path, format, original, changes)
    })
}

/// What [`rewrite_file`] would write over `original`, the file at `path`.
pub fn edit_bytes(
    path: &Path,
    format: Format,
    original: &[u8],
    changes: &[(Location, ConfValue)],
) -> Result<Vec<u8>> {
    let text = std::str::from_utf8(original)
        .map_err(|_| Error::invalid(format!("{}: not UTF-8 text", path.display())))?;
    let new = edit_text(format, text, changes).map_err(|e| e.at(path))?;
    Ok(new.into_bytes())
}

/// Refuse before anything is written: a value no format can hold safely.
pub(crate) fn refuse_nul(key: &str, value: &str) -> ConfResult<()> {
    if value.contains('\0') {
        return Err(ConfError::Refused(format!(
            "cannot write {key}: the value contains a NUL character"
        )));
    }
    Ok(())
}
