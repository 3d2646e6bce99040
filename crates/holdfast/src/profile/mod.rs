//! Application profiles: everything application-specific (conf files, database
//! components, files, hooks, version rule) lives here as data, never as
//! `if app == …` code. The built-in `ovirt-engine` profile reproduces oVirt's
//! engine-backup; users write TOML profiles for their own applications.

pub mod credentials;
mod environment;
mod model;
mod version;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

pub use environment::{Component, DatabaseCredentials, Environment, InstallRoot};
pub use model::*;
pub use version::{check_restore_version, installed_version, loose_version_cmp};

use crate::{Error, Result};

const OVIRT_ENGINE: &str = include_str!("ovirt-engine.toml");

/// The profiles compiled into holdfast: name and TOML text.
const BUILTIN_PROFILES: &[(&str, &str)] = &[
    ("ovirt-engine", OVIRT_ENGINE),
    ("redmine", include_str!("redmine.toml")),
    ("alfresco", include_str!("alfresco.toml")),
    ("keycloak", include_str!("keycloak.toml")),
    ("gitea", include_str!("gitea.toml")),
    ("forgejo", include_str!("forgejo.toml")),
    ("synapse", include_str!("synapse.toml")),
    ("postgresql", include_str!("postgresql.toml")),
];

/// Names of the profiles compiled into holdfast, in the order `profile list`
/// shows them.
pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    BUILTIN_PROFILES.iter().map(|(name, _)| *name)
}

impl Profile {
    /// A built-in profile by name, or a TOML file when `name_or_path` names one.
    pub fn load(name_or_path: &str) -> Result<Profile> {
        if let Some(text) = builtin_text(name_or_path) {
            return Profile::parse(text, &format!("built-in profile {name_or_path}"));
        }
        let path = Path::new(name_or_path);
        if !path.exists() {
            return Err(Error::usage(format!(
                "profile '{name_or_path}' is neither a built-in profile ({}) nor an existing file; \
                 pass a built-in name or the path of a TOML profile",
                builtin_names().collect::<Vec<_>>().join(", ")
            )));
        }
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::io_path("read profile", path, e))?;
        let mut profile = Profile::parse(&text, &path.display().to_string())?;
        profile.source = Some(std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()));
        Ok(profile)
    }

    /// The profile to read an archive (or snapshot) with, `what` naming it in
    /// messages. `recorded` is the profile its manifest names and the file
    /// that profile came from; `explicit` is what the user asked for. The
    /// recorded profile is used when none is asked for (a built-in one by
    /// name, a file one from its file if that still exists); one asked for
    /// must be the recorded one. Without a record (engine-backup's archives)
    /// it is the one asked for, else `ovirt-engine`.
    pub fn for_archive(
        explicit: Option<&str>,
        recorded: Option<(&str, Option<&str>)>,
        what: &str,
    ) -> Result<Profile> {
        let Some((name, source)) = recorded else {
            return Profile::load(explicit.unwrap_or("ovirt-engine"));
        };
        let pass = match source {
            Some(file) => format!("--profile {file}"),
            None => format!("--profile {name}"),
        };
        // A file profile may share a built-in's name (`profile init` copies
        // keep it): the recorded file comes first.
        let profile = match explicit {
            Some(asked) => Profile::load(asked)?,
            None if source.is_none() && builtin_text(name).is_some() => Profile::load(name)?,
            None => match source.filter(|f| Path::new(f).is_file()) {
                Some(file) => Profile::load(file)?,
                None => {
                    let whence = match source {
                        Some(file) => format!("from {file}, which no longer exists"),
                        None => "not a built-in profile".into(),
                    };
                    return Err(Error::usage(format!(
                        "{what} was made with profile '{name}' ({whence}); pass --profile FILE with that profile"
                    )));
                }
            },
        };
        if profile.name != name {
            let (given, remedy) = match explicit {
                Some(asked) => (
                    format!("--profile {asked} is profile '{}'", profile.name),
                    format!("pass {pass}, or leave --profile out to use the archive's"),
                ),
                None => (
                    format!(
                        "{} now holds profile '{}'",
                        source.unwrap_or(name),
                        profile.name
                    ),
                    format!("pass --profile FILE with profile '{name}'"),
                ),
            };
            return Err(Error::usage(format!(
                "{what} was made with profile '{name}', but {given}; {remedy}"
            )));
        }
        Ok(profile)
    }

    /// The built-in `ovirt-engine` profile.
    pub fn ovirt_engine() -> Profile {
        Profile::parse(OVIRT_ENGINE, "built-in profile ovirt-engine")
            .expect("the built-in ovirt-engine profile is valid")
    }

    /// Parse and validate profile text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Profile> {
        let profile: Profile = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
                .map(|l| format!(" line {l}:"))
                .unwrap_or_default();
            Error::usage(format!(
                "{origin}:{line} {}",
                e.message().lines().next().unwrap_or("invalid TOML").trim()
            ))
        })?;
        profile.validate(origin)?;
        Ok(profile)
    }

    fn validate(&self, origin: &str) -> Result<()> {
        let bad = |key: &str, what: &str| Err(Error::usage(format!("{origin}: {key}: {what}")));
        if self.name.trim().is_empty() {
            return bad("name", "must not be empty");
        }
        if let Some(pattern) = &self.version.pattern {
            if self.version.file.is_none() && self.version.command.is_none() {
                return bad(
                    "version.pattern",
                    "needs version.file or version.command, the text it reads",
                );
            }
            if let Err(m) = version::version_regex(pattern) {
                return bad("version.pattern", &m);
            }
        }
        if let Some(argv) = &self.version.command {
            if argv.first().is_none_or(|p| p.trim().is_empty()) {
                return bad("version.command", "must name a program");
            }
        }
        let mut scopes = HashSet::new();
        let mut members = HashSet::new();
        let mut prefixes = HashSet::new();
        let mut options = HashSet::new();
        let reserved = ["all", "files"];
        for (i, db) in self.databases.iter().enumerate() {
            let key = |k: &str| format!("databases[{i}].{k}");
            if !valid_scope(&db.scope) || reserved.contains(&db.scope.as_str()) {
                return bad(
                    &key("scope"),
                    &format!("'{}' is not a usable scope name (letters, digits, '-', '_'; not all/files)", db.scope),
                );
            }
            if !scopes.insert(db.scope.clone()) {
                return bad(
                    &key("scope"),
                    &format!("scope '{}' is used twice", db.scope),
                );
            }
            if !members.insert(db.member.clone()) || !valid_member(&db.member) {
                return bad(
                    &key("member"),
                    &format!(
                        "'{}' must be a unique name under db/ (like db/app_backup.db)",
                        db.member
                    ),
                );
            }
            match &db.credentials {
                None => {
                    if db.key_prefix.is_empty() || !prefixes.insert(db.key_prefix.clone()) {
                        return bad(&key("key_prefix"), "must be non-empty and unique");
                    }
                }
                Some(c) => {
                    if !db.key_prefix.is_empty() || !db.conf_files.is_empty() {
                        return bad(
                            &key("credentials"),
                            "name the credentials either in [databases.credentials] or with key_prefix and conf_files, not both",
                        );
                    }
                    check_relative(&c.file).or_else(|m| bad(&key("credentials.file"), &m))?;
                    if c.host_port.is_some() && c.host.is_some() && c.port.is_some() {
                        return bad(
                            &key("credentials.host_port"),
                            "host and port have keys of their own; leave host_port out",
                        );
                    }
                    let keys = [
                        &c.url,
                        &c.host_port,
                        &c.host,
                        &c.port,
                        &c.database,
                        &c.user,
                        &c.password,
                    ];
                    if keys.iter().all(|k| k.is_none()) {
                        return bad(
                            &key("credentials"),
                            "name at least the url or one credential's key (host, port, database, user, password)",
                        );
                    }
                    if let Some(k) = keys.iter().copied().flatten().find(|k| k.trim().is_empty()) {
                        return bad(&key("credentials"), &format!("{k:?} is not a key path"));
                    }
                }
            }
            if !valid_scope(&db.option_prefix) || !options.insert(db.option_prefix.clone()) {
                return bad(
                    &key("option_prefix"),
                    "must be unique (letters, digits, '-')",
                );
            }
            for f in &db.conf_files {
                check_relative(f).or_else(|m| bad(&key("conf_files"), &m))?;
            }
            if let Some(e) = &db.enabled_if {
                check_relative(&e.file).or_else(|m| bad(&key("enabled_if.file"), &m))?;
            }
        }
        for (i, s) in self.sqlite.iter().enumerate() {
            let key = |k: &str| format!("sqlite[{i}].{k}");
            if !valid_scope(&s.scope)
                || reserved.contains(&s.scope.as_str())
                || !scopes.insert(s.scope.clone())
            {
                return bad(
                    &key("scope"),
                    &format!("'{}' must be a unique scope name", s.scope),
                );
            }
            if !members.insert(s.member.clone()) || !valid_member(&s.member) {
                return bad(&key("member"), "must be a unique name under db/");
            }
            check_relative(&s.path).or_else(|m| bad(&key("path"), &m))?;
        }
        for p in self.config.sources.iter() {
            check_relative(p).or_else(|m| bad("config.sources", &m))?;
        }
        for p in self.files.include.iter() {
            check_relative(p).or_else(|m| bad("files.include", &m))?;
        }
        for c in self.files.include_children.iter() {
            check_relative(&c.dir).or_else(|m| bad("files.include_children.dir", &m))?;
        }
        if let Some(n) = &self.notify {
            if !self.databases.iter().any(|d| d.scope == n.database) {
                return bad(
                    "notify.database",
                    &format!("no database component has scope '{}'", n.database),
                );
            }
            let known = ["scope", "status", "message", "fqdn", "log"];
            if let Some(p) = n.params.iter().find(|p| !known.contains(&p.as_str())) {
                return bad(
                    "notify.params",
                    &format!("unknown parameter '{p}' (known: {})", known.join(", ")),
                );
            }
        }
        if let Some(p) = &self.post_restore {
            if !self.databases.iter().any(|d| d.scope == p.database) {
                return bad(
                    "post_restore.database",
                    &format!("no database component has scope '{}'", p.database),
                );
            }
        }
        if let Some(v) = &self.verify {
            if !self.databases.iter().any(|d| d.scope == v.database) {
                return bad(
                    "verify.database",
                    &format!("no database component has scope '{}'", v.database),
                );
            }
        }
        for pair in &self.version.upgrade_pairs {
            for v in pair {
                if !v.split('.').all(|p| p.parse::<u32>().is_ok()) {
                    return bad(
                        "version.upgrade_pairs",
                        &format!("'{v}' is not an X.Y version"),
                    );
                }
            }
        }
        Ok(())
    }

    /// Every path an [`Environment`] of this profile reads below its install
    /// root, relative to it (a conf source's last component may be a glob):
    /// the conf sources, the credentials files, the conf files rewritten with
    /// new credentials and the files `enabled_if` looks at. A restore unpacks
    /// only these into the preview it reads the upcoming conf values from.
    pub fn files_read(&self) -> Vec<String> {
        let mut paths = self.config.sources.clone();
        for db in &self.databases {
            paths.extend(db.credentials.iter().map(|c| c.file.clone()));
            paths.extend(db.conf_files.iter().cloned());
            paths.extend(db.enabled_if.iter().map(|e| e.file.clone()));
        }
        for s in &self.sqlite {
            paths.extend(s.enabled_if.iter().map(|e| e.file.clone()));
        }
        paths
    }

    /// The database component with this `--scope` name.
    pub fn database(&self, scope: &str) -> Option<&DatabaseComponent> {
        self.databases.iter().find(|d| d.scope == scope)
    }

    /// Every scope name this profile knows, `files` first, in profile order.
    pub fn scopes(&self) -> Vec<&str> {
        std::iter::once("files")
            .chain(self.databases.iter().map(|d| d.scope.as_str()))
            .chain(self.sqlite.iter().map(|s| s.scope.as_str()))
            .collect()
    }
}

/// The TOML text of the built-in profile `name`, as shipped (comments
/// included): what `holdfast profile init` copies.
pub fn builtin_text(name: &str) -> Option<&'static str> {
    BUILTIN_PROFILES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
}

fn valid_scope(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn valid_member(m: &str) -> bool {
    m.strip_prefix("db/")
        .is_some_and(|n| !n.is_empty() && !n.contains('/') && n != "." && n != "..")
}

/// Profile paths are relative to the install root and stay inside it.
fn check_relative(p: &str) -> std::result::Result<(), String> {
    let path = PathBuf::from(p);
    if p.is_empty()
        || path.is_absolute()
        || path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(format!(
            "'{p}' must be a path relative to the install root, without '..'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_ovirt_engine_profile_is_valid() {
        let p = Profile::ovirt_engine();
        assert_eq!(p.name, "ovirt-engine");
        assert_eq!(
            p.scopes(),
            [
                "files",
                "db",
                "dwhdb",
                "keycloakdb",
                "managedblockdb",
                "cinderlibdb",
                "grafanadb"
            ]
        );
        let engine = p.database("db").unwrap();
        assert_eq!(engine.key_prefix, "ENGINE_DB_");
        assert_eq!(engine.member, "db/engine_backup.db");
        assert_eq!(
            p.database("dwhdb").unwrap().default_database.as_deref(),
            Some("ovirt_engine_history")
        );
    }

    #[test]
    fn every_builtin_profile_is_valid_and_named_as_listed() {
        for name in builtin_names() {
            let p = Profile::load(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(p.name, name);
            assert!(!p.description.is_empty(), "{name}");
            assert!(p.source.is_none(), "{name}");
        }
    }

    #[test]
    fn version_patterns_read_the_shipped_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let write = |rel: &str, text: &str| {
            let path = root.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        // Redmine 5.0's lib/redmine/version.rb, Keycloak's version.txt, an
        // Alfresco web application's manifest.
        write(
            "usr/share/redmine/lib/redmine/version.rb",
            "module Redmine\n  module VERSION\n    MAJOR = 5\n    MINOR = 0\n    TINY  = 4\n    BRANCH = 'stable'\n  end\nend\n",
        );
        write("opt/keycloak/version.txt", "Keycloak - Version 26.0.5\n");
        write(
            "usr/local/tomcat/webapps/alfresco/META-INF/MANIFEST.MF",
            "Manifest-Version: 1.0\r\nImplementation-Title: Alfresco Repository\r\nImplementation-Version: 23.2.1.r7\r\n",
        );
        let version = |name: &str| {
            installed_version(&Profile::load(name).unwrap().version, root, None).unwrap()
        };
        assert_eq!(version("redmine"), "5.0.4");
        assert_eq!(version("keycloak"), "26.0.5");
        assert_eq!(version("alfresco"), "23.2.1");
        write("opt/keycloak/version.txt", "Keycloak\n");
        let err = installed_version(&Profile::load("keycloak").unwrap().version, root, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("version.pattern"), "{err}");
        assert!(Profile::parse(
            "name = \"x\"\n[version]\nfile = \"v\"\npattern = \"[0-9]+\"\n",
            "x.toml"
        )
        .unwrap_err()
        .to_string()
        .contains("capture group"));
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let err = Profile::parse("name = \"x\"\n\n[files]\ninclud = [\"etc\"]\n", "app.toml")
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("app.toml: line 4:"), "{msg}");
        assert!(msg.contains("includ"), "{msg}");
        assert!(!msg.contains('\n'));
    }

    #[test]
    fn semantic_errors_name_the_key() {
        let text = r#"
name = "app"
[[databases]]
scope = "db"
label = "App"
key_prefix = "APP_DB_"
option_prefix = "db"
member = "db/app.db"
archive_config_prefix = "DB_"
conf_files = ["/etc/app.conf"]
"#;
        let msg = Profile::parse(text, "app.toml").unwrap_err().to_string();
        assert_eq!(msg, "app.toml: databases[0].conf_files: '/etc/app.conf' must be a path relative to the install root, without '..'");

        let dup = text.replace("conf_files = [\"/etc/app.conf\"]", "")
            + r#"
[[databases]]
scope = "db"
label = "Other"
key_prefix = "OTHER_DB_"
option_prefix = "other-db"
member = "db/other.db"
archive_config_prefix = "OTHER_DB_"
"#;
        let msg = Profile::parse(&dup, "app.toml").unwrap_err().to_string();
        assert_eq!(
            msg,
            "app.toml: databases[1].scope: scope 'db' is used twice"
        );
    }

    #[test]
    fn missing_profile_file_says_what_to_pass() {
        let msg = Profile::load("/nonexistent/app.toml")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("neither a built-in profile (ovirt-engine, redmine, alfresco, keycloak, gitea, forgejo, synapse, postgresql)"),
            "{msg}"
        );
    }
}
