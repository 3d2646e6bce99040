//! A profile applied to one machine: the install root, the values its conf files
//! hold now, and from them each database component's credentials.

use std::path::{Path, PathBuf};

use super::{CredentialsFile, DatabaseComponent, EnabledIf, Profile, SqliteComponent};
use crate::conf::{self, ConfValues, UrlPart};
use crate::secret::Password;
use crate::{Error, Result};

/// The directory every profile path is relative to (`/` on a real host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallRoot(PathBuf);

impl InstallRoot {
    /// An existing directory, made absolute.
    pub fn new(path: impl AsRef<Path>) -> Result<InstallRoot> {
        let path = path.as_ref();
        let abs = std::fs::canonicalize(path).map_err(|e| {
            Error::usage(format!(
                "install root {} is not usable ({e}); pass an existing directory with --install-root",
                path.display()
            ))
        })?;
        if !abs.is_dir() {
            return Err(Error::usage(format!(
                "install root {} is not a directory; pass a directory with --install-root",
                path.display()
            )));
        }
        Ok(InstallRoot(abs))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A profile path (relative) under the root.
    pub fn join(&self, relative: &str) -> PathBuf {
        self.0.join(relative.trim_start_matches('/'))
    }
}

/// One item of the environment that a scope selects.
#[derive(Debug, Clone, Copy)]
pub enum Component<'p> {
    Files,
    Database(&'p DatabaseComponent),
    Sqlite(&'p SqliteComponent),
}

/// Where a database component is and who connects to it, as the
/// application's conf files say (or as they will say after a rewrite). Plain
/// data: `pg::ConnParams` is made from it to connect.
#[derive(Debug, Clone, PartialEq)]
pub struct DatabaseCredentials {
    /// Host name, IP address, or an absolute directory for a unix socket.
    pub host: String,
    pub port: u16,
    pub user: String,
    pub database: String,
    /// `None` when the conf files hold none.
    pub password: Option<Password>,
    /// `ssl=true` in the application's JDBC URL (`*_DB_SECURED`).
    pub secured: bool,
    /// Certificate and host validation (`*_DB_SECURED_VALIDATION`).
    pub secured_validation: bool,
}

/// A profile, the install root it applies to, and the conf values read from it.
#[derive(Debug, Clone)]
pub struct Environment {
    pub profile: Profile,
    pub root: InstallRoot,
    pub conf: ConfValues,
}

impl Environment {
    /// Read the profile's conf sources under `root`.
    pub fn load(profile: Profile, root: InstallRoot) -> Result<Environment> {
        let conf = read_conf(&profile, &root)?;
        Ok(Environment {
            profile,
            root,
            conf,
        })
    }

    /// Read the conf sources again (after a restore put other files in place).
    pub fn reload(&mut self) -> Result<()> {
        self.conf = read_conf(&self.profile, &self.root)?;
        Ok(())
    }

    /// A conf value.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.conf.get(key)
    }

    /// The component's credentials from the conf files; `None` when its
    /// user key is empty (the component is not set up on this machine).
    pub fn database_credentials(
        &self,
        db: &DatabaseComponent,
    ) -> Result<Option<DatabaseCredentials>> {
        if let Some(c) = &db.credentials {
            return self.file_credentials(db, c);
        }
        let keys = &self.profile.credential_keys;
        let get = |suffix: &str| {
            self.conf
                .get(&format!("{}{suffix}", db.key_prefix))
                .map(str::to_string)
        };
        let user = get(&keys.user).unwrap_or_default();
        if user.is_empty() {
            return Ok(None);
        }
        let port_key = format!("{}{}", db.key_prefix, keys.port);
        let port_text = get(&keys.port).unwrap_or_else(|| "5432".into());
        let port = port_text.trim().parse::<u16>().map_err(|_| {
            Error::invalid(format!(
                "{port_key}={port_text:?} in the {} conf files is not a port number; fix it there",
                self.profile.name
            ))
        })?;
        let flag = |suffix: &Option<String>| {
            suffix
                .as_ref()
                .and_then(|s| get(s))
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        };
        let password = get(&keys.password)
            .filter(|p| !p.is_empty())
            .map(Password::new);
        Ok(Some(DatabaseCredentials {
            host: get(&keys.host).unwrap_or_else(|| "localhost".into()),
            port,
            user,
            database: get(&keys.database).unwrap_or_default(),
            password,
            secured: flag(&keys.secured),
            secured_validation: flag(&keys.secured_validation),
        }))
    }

    /// The credentials a component's own config file holds (through its
    /// format), with the profile's defaults for what it leaves out; `None` when
    /// that gives no user (the file is absent and no default user is named).
    fn file_credentials(
        &self,
        db: &DatabaseComponent,
        c: &CredentialsFile,
    ) -> Result<Option<DatabaseCredentials>> {
        let path = self.root.join(&c.file);
        let text = if path.is_file() {
            Some(conf::read_text(&path)?)
        } else {
            None
        };
        let get = |part: UrlPart| -> Result<Option<String>> {
            match (&text, c.location(part)) {
                (Some(text), Some(at)) => {
                    conf::read_location(c.format, text, &at).map_err(|e| e.at(&path))
                }
                _ => Ok(None),
            }
        };
        let user = get(UrlPart::User)?
            .or_else(|| db.default_user.clone())
            .unwrap_or_default();
        if user.is_empty() {
            return Ok(None);
        }
        let port = match get(UrlPart::Port)? {
            None => 5432,
            Some(text) => text.trim().parse::<u16>().map_err(|_| {
                let at = c
                    .location(UrlPart::Port)
                    .expect("a port was read from somewhere");
                Error::invalid(format!(
                    "{}: {at} is {text:?}, not a port number; fix it there",
                    path.display()
                ))
            })?,
        };
        Ok(Some(DatabaseCredentials {
            host: get(UrlPart::Host)?
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "localhost".into()),
            port,
            user,
            database: get(UrlPart::Database)?
                .or_else(|| db.default_database.clone())
                .unwrap_or_default(),
            password: get(UrlPart::Password)?
                .filter(|p| !p.is_empty())
                .map(Password::new),
            secured: false,
            secured_validation: false,
        }))
    }

    /// Whether the profile's `enabled_if` condition holds (true when there is none).
    pub fn condition_holds(&self, cond: Option<&EnabledIf>) -> bool {
        let Some(cond) = cond else { return true };
        let Ok(text) = std::fs::read_to_string(self.root.join(&cond.file)) else {
            return false;
        };
        text.lines().any(|line| {
            line.split_once('=')
                .is_some_and(|(k, v)| k.trim() == cond.key && v.trim() == cond.value)
        })
    }

    /// The profile's "application running" message when its pid file names a live
    /// process whose command line matches; `None` when it is stopped (or the
    /// profile has no such check).
    pub fn application_running(&self) -> Option<String> {
        let r = self.profile.running.as_ref()?;
        let text = std::fs::read_to_string(self.root.join(&r.pid_file)).ok()?;
        let pid = text.trim().parse::<u32>().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        String::from_utf8_lossy(&cmdline)
            .contains(&r.process)
            .then(|| r.message.clone())
    }

    /// The host's name as the application's conf gives it.
    pub fn fqdn(&self) -> String {
        self.profile
            .fqdn_key
            .as_deref()
            .and_then(|k| self.conf.get(k))
            .map(str::to_string)
            .unwrap_or_else(|| "localhost".into())
    }

    /// The component a `--scope` value names.
    pub fn component(&self, scope: &str) -> Option<Component<'_>> {
        if scope == "files" {
            return Some(Component::Files);
        }
        if let Some(db) = self.profile.database(scope) {
            return Some(Component::Database(db));
        }
        self.profile
            .sqlite
            .iter()
            .find(|s| s.scope == scope)
            .map(Component::Sqlite)
    }
}

fn read_conf(profile: &Profile, root: &InstallRoot) -> Result<ConfValues> {
    let mut conf = ConfValues::new();
    let keys = &profile.credential_keys;
    for db in profile.databases.iter().filter(|d| d.credentials.is_none()) {
        let p = &db.key_prefix;
        let (Some(user), Some(database)) = (&db.default_user, &db.default_database) else {
            continue;
        };
        conf.set(format!("{p}{}", keys.host), "localhost");
        conf.set(format!("{p}{}", keys.port), "5432");
        conf.set(format!("{p}{}", keys.user), user);
        conf.set(format!("{p}{}", keys.password), "");
        conf.set(format!("{p}{}", keys.database), database);
        if let Some(s) = &keys.secured {
            conf.set(format!("{p}{s}"), "False");
        }
        if let Some(s) = &keys.secured_validation {
            conf.set(format!("{p}{s}"), "False");
        }
    }
    for (k, v) in &profile.config.defaults {
        conf.set(k, v);
    }
    let sources: Vec<&str> = profile.config.sources.iter().map(String::as_str).collect();
    conf.read_sources(root.path(), &sources)?;
    Ok(conf)
}
