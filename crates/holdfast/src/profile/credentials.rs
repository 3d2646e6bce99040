//! Writing a database component's new connection parameters into the
//! application's conf files: which files, which keys, which values.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{DatabaseComponent, Environment, Profile};
use crate::conf::ConfValue;
use crate::pg::ConnParams;
use crate::{Error, Result};

/// A conf file and the keys to change in it.
pub type ConfRewrite = (PathBuf, Vec<(String, ConfValue)>);

/// The keys of `db` that hold `p`: the credential keys, then the profile's extra
/// keys (a JDBC URL, a driver) rendered for these parameters.
pub fn conf_changes(
    profile: &Profile,
    db: &DatabaseComponent,
    p: &ConnParams,
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

/// The conf files to rewrite for changed credentials (by scope), with their
/// changes, in a stable order. The first conf file of each changed component
/// must exist — under `env`'s root now, or under `future`'s (the conf files a
/// restore is about to put in place); the others are rewritten where they exist.
pub fn conf_rewrites(
    env: &Environment,
    future: &Environment,
    changed: &BTreeMap<String, ConnParams>,
) -> Result<Vec<ConfRewrite>> {
    let profile = &env.profile;
    let mut by_file: BTreeMap<PathBuf, Vec<(String, ConfValue)>> = BTreeMap::new();
    let mut order: Vec<PathBuf> = Vec::new();
    for db in &profile.databases {
        let Some(params) = changed.get(&db.scope) else {
            continue;
        };
        for (i, rel) in db.conf_files.iter().enumerate() {
            let target = env.root.join(rel);
            let exists = future.root.join(rel).is_file() || target.is_file();
            if !exists {
                if i == 0 {
                    return Err(Error::usage(format!(
                        "Can not find {}: the {} credentials cannot be written there; restore the files scope too or create the file",
                        target.display(),
                        db.label
                    )));
                }
                continue;
            }
            if !by_file.contains_key(&target) {
                order.push(target.clone());
            }
            by_file
                .entry(target)
                .or_default()
                .extend(conf_changes(profile, db, params));
        }
    }
    Ok(order
        .into_iter()
        .map(|f| {
            let changes = by_file.remove(&f).unwrap_or_default();
            (f, changes)
        })
        .collect())
}
