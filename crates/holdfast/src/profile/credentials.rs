//! Writing a database component's new connection parameters into the
//! application's config files: which files, which keys (or URL parts), which
//! values, through the files' formats.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Local};

use super::{CredentialsFile, DatabaseComponent, DatabaseCredentials, Environment, Profile};
use crate::conf::{self, ConfValue, Format, Location, UrlPart};
use crate::{Error, Result};

/// The keys of `db` that hold `p`: the credential keys, then the profile's extra
/// keys (a JDBC URL, a driver) rendered for these parameters.
pub fn conf_changes(
    profile: &Profile,
    db: &DatabaseComponent,
    p: &DatabaseCredentials,
) -> Vec<(String, ConfValue)> {
    let k = &profile.credential_keys;
    let key = |suffix: &str| format!("{}{suffix}", db.key_prefix);
    let lit = |v: &str| ConfValue::Literal(v.to_string());
    let flag = |b: bool| lit(if b { "True" } else { "False" });
    let mut out = vec![
        (key(&k.host), lit(&p.host)),
        (key(&k.port), lit(&p.port.to_string())),
        (key(&k.user), lit(&p.user)),
        (
            key(&k.password),
            lit(p.password.as_ref().map(|x| x.expose()).unwrap_or("")),
        ),
        (key(&k.database), lit(&p.database)),
    ];
    if let Some(s) = &k.secured {
        out.push((key(s), flag(p.secured)));
    }
    if let Some(s) = &k.secured_validation {
        out.push((key(s), flag(p.secured_validation)));
    }
    let options = k
        .url_options
        .as_ref()
        .map(|o| {
            let mut parts = Vec::new();
            if p.secured {
                parts.push(o.secured.as_str());
            }
            if !p.secured_validation {
                parts.push(o.not_validated.as_str());
            }
            parts.join(&o.separator)
        })
        .unwrap_or_default();
    for extra in &k.extra {
        let value = match (&extra.value, &extra.raw) {
            (Some(v), _) => lit(v),
            (None, Some(raw)) => ConfValue::Raw(
                raw.replace("@PREFIX@", &db.key_prefix)
                    .replace("@OPTIONS@", &options),
            ),
            (None, None) => continue,
        };
        out.push((key(&extra.key), value));
    }
    out
}

/// The changes of `db`'s own config file for `p`: each credential at its key
/// or URL part. A credential that differs from what the application assumes
/// without one (localhost, 5432) but has no place in the file is refused.
pub fn file_changes(
    db: &DatabaseComponent,
    c: &CredentialsFile,
    p: &DatabaseCredentials,
) -> Result<Vec<(Location, ConfValue)>> {
    let mut out = Vec::new();
    for part in UrlPart::ALL {
        let value = match part {
            UrlPart::Host => p.host.clone(),
            UrlPart::Port => p.port.to_string(),
            UrlPart::Database => p.database.clone(),
            UrlPart::User => p.user.clone(),
            UrlPart::Password => p
                .password
                .as_ref()
                .map(|x| x.expose().to_string())
                .unwrap_or_default(),
        };
        match c.location(part) {
            Some(at) => out.push((at, ConfValue::Literal(value))),
            None => {
                let assumed = match part {
                    UrlPart::Host => value == "localhost",
                    UrlPart::Port => value == "5432",
                    UrlPart::Password => value.is_empty(),
                    UrlPart::User => Some(&value) == db.default_user.as_ref(),
                    UrlPart::Database => Some(&value) == db.default_database.as_ref(),
                };
                if !assumed {
                    return Err(Error::usage(format!(
                        "the profile names no key for the {} database's {} in {}, so the new one cannot be written; add {} = \"KEY\" (or url) to its [databases.credentials]",
                        db.label,
                        part.name(),
                        c.file,
                        part.name()
                    )));
                }
            }
        }
    }
    Ok(out)
}

/// Values to change in one file, each at its location.
type Changes = Vec<(Location, ConfValue)>;

/// A conf file and the values to change in it.
#[derive(Debug, Clone)]
pub struct ConfRewrite {
    pub file: PathBuf,
    pub format: Format,
    pub changes: Vec<(Location, ConfValue)>,
}

impl ConfRewrite {
    /// Change the file in place, keeping a dated copy; returns the copy's path.
    pub fn apply(&self, now: DateTime<Local>) -> Result<PathBuf> {
        conf::rewrite_file(&self.file, self.format, &self.changes, now)
    }

    /// Whether the changes can be written into `current` (the file as it is,
    /// or the one a restore is about to put in its place): refusals come
    /// before anything is written.
    fn check(&self, current: &Path) -> Result<()> {
        let bytes = std::fs::read(current).map_err(|e| Error::io_path("read", current, e))?;
        conf::format::edit_bytes(current, self.format, &bytes, &self.changes).map(|_| ())
    }
}

/// The conf files to rewrite for changed credentials (by scope), with their
/// changes, in a stable order. The first conf file of each changed component
/// (or its `[databases.credentials]` file) must exist — under `env`'s root now,
/// or under `future`'s (the files a restore is about to put in place); the
/// others are rewritten where they exist. Every change is tried on the file
/// that will be there, so that a value the format cannot hold is refused now.
pub fn conf_rewrites(
    env: &Environment,
    future: &Environment,
    changed: &BTreeMap<String, DatabaseCredentials>,
) -> Result<Vec<ConfRewrite>> {
    let profile = &env.profile;
    let mut by_file: BTreeMap<PathBuf, ConfRewrite> = BTreeMap::new();
    let mut order: Vec<(PathBuf, PathBuf)> = Vec::new();
    for db in &profile.databases {
        let Some(params) = changed.get(&db.scope) else {
            continue;
        };
        let files: Vec<(&str, Format, Changes)> = match &db.credentials {
            Some(c) => vec![(c.file.as_str(), c.format, file_changes(db, c, params)?)],
            None => {
                let changes: Vec<(Location, ConfValue)> = conf_changes(profile, db, params)
                    .into_iter()
                    .map(|(k, v)| (Location::Key(k), v))
                    .collect();
                db.conf_files
                    .iter()
                    .map(|f| (f.as_str(), Format::Shell, changes.clone()))
                    .collect()
            }
        };
        for (i, (rel, format, changes)) in files.into_iter().enumerate() {
            let target = env.root.join(rel);
            let upcoming = future.root.join(rel);
            let current = if upcoming.is_file() {
                upcoming
            } else if target.is_file() {
                target.clone()
            } else {
                if i == 0 {
                    return Err(Error::usage(format!(
                        "Can not find {}: the {} credentials cannot be written there; restore the files scope too or create the file",
                        target.display(),
                        db.label
                    )));
                }
                continue;
            };
            let entry = by_file.entry(target.clone()).or_insert_with(|| {
                order.push((target.clone(), current.clone()));
                ConfRewrite {
                    file: target.clone(),
                    format,
                    changes: Vec::new(),
                }
            });
            if entry.format != format {
                return Err(Error::usage(format!(
                    "{} is named with two formats in the profile; give it one",
                    target.display()
                )));
            }
            entry.changes.extend(changes);
        }
    }
    let mut out = Vec::new();
    for (file, current) in order {
        let rewrite = by_file
            .remove(&file)
            .expect("every ordered file has its changes");
        if rewrite.format != Format::Shell {
            rewrite.check(&current)?;
        }
        out.push(rewrite);
    }
    Ok(out)
}
