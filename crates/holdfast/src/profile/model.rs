//! The profile as written in TOML: what an application's environment consists of.
//!
//! Every struct refuses unknown keys, so a typo in a profile is an error that
//! names the key instead of a setting silently ignored.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::conf::{Format, Location, UrlPart};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Short name, also what `--profile` accepts for built-in profiles.
    pub name: String,
    /// The file this profile was read from (absolute); `None` for a built-in one.
    #[serde(skip)]
    pub source: Option<std::path::PathBuf>,
    #[serde(default)]
    pub description: String,
    /// The name printed in console lines and logs (`Start of engine-backup …`).
    #[serde(default = "default_tool_name")]
    pub tool_name: String,
    /// Conf key holding the host's fully qualified name (used by notifications).
    #[serde(default)]
    pub fqdn_key: Option<String>,
    #[serde(default)]
    pub version: VersionRule,
    #[serde(default)]
    pub archive: ArchiveDefaults,
    #[serde(default)]
    pub config: ConfigSources,
    #[serde(default)]
    pub credential_keys: CredentialKeys,
    #[serde(default)]
    pub databases: Vec<DatabaseComponent>,
    #[serde(default)]
    pub sqlite: Vec<SqliteComponent>,
    #[serde(default)]
    pub files: FilesComponent,
    #[serde(default)]
    pub running: Option<RunningCheck>,
    #[serde(default)]
    pub notify: Option<NotifyHook>,
    #[serde(default)]
    pub post_restore: Option<PostRestore>,
    #[serde(default)]
    pub verify: Option<ForbiddenOption>,
    /// Script tree layouts of the application's databases, recognised by their
    /// `detect` files (`holdfast schema --dir`); see docs/schema.md.
    #[serde(default)]
    pub schema_layouts: Vec<crate::schema::Layout>,
}

fn default_tool_name() -> String {
    "holdfast".into()
}

/// Where the installed application version comes from, and which archive
/// versions a restore accepts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionRule {
    /// Package whose installed version is the application's (dpkg or rpm).
    pub package: Option<String>,
    /// A file under the install root whose first line is the version (or,
    /// with `pattern`, where the pattern finds it).
    pub file: Option<String>,
    /// A program and its arguments printing the version (Gitea's `gitea
    /// --version`); a relative program path is under the install root. Run
    /// directly, never through a shell.
    pub command: Option<Vec<String>>,
    /// A regular expression over the whole version file or command output:
    /// the version is its capture groups joined by `.` (Redmine's
    /// `MAJOR = 5`, `MINOR = 1`, …).
    pub pattern: Option<String>,
    /// (backup X.Y, installed X.Y) pairs accepted besides "same X.Y, not newer".
    #[serde(default)]
    pub upgrade_pairs: Vec<[String; 2]>,
    /// Minimum micro version of a backup per X.Y.
    #[serde(default)]
    pub min_micro: BTreeMap<String, u32>,
    /// Refusal text; `{backup}` and `{installed}` are replaced.
    pub mismatch_message: Option<String>,
    /// No application version: archives record `0` and restores compare
    /// none (the built-in postgresql profile).
    #[serde(default)]
    pub unversioned: bool,
}

/// Default archive and log locations, relative to the install root.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveDefaults {
    pub backup_dir: String,
    pub log_dir: String,
    /// `{timestamp}` is `YYYYmmddHHMMSS`.
    pub file_name: String,
    /// `{mode}` is backup, restore or verify.
    pub log_name: String,
}

impl Default for ArchiveDefaults {
    fn default() -> Self {
        ArchiveDefaults {
            backup_dir: "var/lib/holdfast/backups".into(),
            log_dir: "var/log/holdfast".into(),
            file_name: "holdfast-{timestamp}.backup".into(),
            log_name: "holdfast-{mode}-{timestamp}.log".into(),
        }
    }
}

/// The application's shell-style conf files, read in order (later keys win).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigSources {
    /// Paths relative to the install root; the last component may be a `*.conf` glob.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Values in force before the first source is read.
    #[serde(default)]
    pub defaults: BTreeMap<String, String>,
}

/// Suffixes of the credential keys after a component's prefix (`ENGINE_DB_` + `HOST`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialKeys {
    pub host: String,
    pub port: String,
    pub user: String,
    pub password: String,
    pub database: String,
    pub secured: Option<String>,
    pub secured_validation: Option<String>,
    /// Keys written after the credentials when they change.
    #[serde(default)]
    pub extra: Vec<ExtraKey>,
    #[serde(default)]
    pub url_options: Option<UrlOptions>,
}

impl Default for CredentialKeys {
    fn default() -> Self {
        CredentialKeys {
            host: "HOST".into(),
            port: "PORT".into(),
            user: "USER".into(),
            password: "PASSWORD".into(),
            database: "DATABASE".into(),
            secured: None,
            secured_validation: None,
            extra: Vec::new(),
            url_options: None,
        }
    }
}

/// A key written with the credentials: a plain value (quoted on write) or raw
/// conf syntax where `@PREFIX@` is the component's key prefix and `@OPTIONS@`
/// the URL options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraKey {
    pub key: String,
    pub value: Option<String>,
    pub raw: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UrlOptions {
    pub secured: String,
    pub not_validated: String,
    pub separator: String,
}

/// One PostgreSQL database of the environment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseComponent {
    /// `--scope` value (`db`, `dwhdb`, …).
    pub scope: String,
    pub label: String,
    pub backup_label: Option<String>,
    pub restore_label: Option<String>,
    pub credentials_label: Option<String>,
    /// Conf key prefix of its credentials in `[config].sources` (`ENGINE_DB_`);
    /// empty when `credentials` names the file instead.
    #[serde(default)]
    pub key_prefix: String,
    /// Command-line option prefix (`db` for `--db-host`, `--provision-db`).
    pub option_prefix: String,
    /// Environment variable with the password for changed credentials.
    pub password_env: Option<String>,
    /// Archive member of its dump (`db/engine_backup.db`).
    pub member: String,
    /// Prefix of its lines in the archive's `config` member (`DB_`).
    pub archive_config_prefix: String,
    /// Scope name given to the notification hook.
    pub notify_scope: Option<String>,
    pub default_user: Option<String>,
    pub default_database: Option<String>,
    /// Only backed up when this holds (and the user key is set).
    pub enabled_if: Option<EnabledIf>,
    /// Conf files holding its credentials, rewritten when they change.
    #[serde(default)]
    pub conf_files: Vec<String>,
    /// The application's own config file holding its credentials, read on
    /// backup and rewritten when they change (instead of `key_prefix`).
    #[serde(default)]
    pub credentials: Option<CredentialsFile>,
    /// Never backed up; only restored from older archives.
    #[serde(default)]
    pub restore_only: bool,
    /// Affected by `--fast-backup`/`--small-size`.
    #[serde(default)]
    pub shortcuts: bool,
}

impl DatabaseComponent {
    pub fn backup_label(&self) -> &str {
        self.backup_label.as_deref().unwrap_or(&self.label)
    }
    pub fn restore_label(&self) -> &str {
        self.restore_label.as_deref().unwrap_or(&self.label)
    }
    pub fn credentials_label(&self) -> &str {
        self.credentials_label.as_deref().unwrap_or(&self.label)
    }
    pub fn notify_scope(&self) -> &str {
        self.notify_scope.as_deref().unwrap_or(&self.scope)
    }
}

/// Where a database's credentials live in one config file of the application:
/// the file, its format, and for each credential a key path, or else the part
/// of the connection URL that `url` names.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsFile {
    /// Path relative to the install root.
    pub file: String,
    pub format: Format,
    /// Key path of a connection URL (`postgres://…` or `jdbc:postgresql://…`);
    /// every credential without its own key below is that part of the URL.
    pub url: Option<String>,
    /// Key path of a `host[:port]` value (Gitea's `database.HOST`); the host
    /// and port without keys of their own are its parts.
    pub host_port: Option<String>,
    pub host: Option<String>,
    pub port: Option<String>,
    pub database: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
}

impl CredentialsFile {
    /// Where `part` lives: its own key, or that part of the URL; `None` when
    /// the file holds it nowhere.
    pub fn location(&self, part: UrlPart) -> Option<Location> {
        let own = match part {
            UrlPart::Host => &self.host,
            UrlPart::Port => &self.port,
            UrlPart::Database => &self.database,
            UrlPart::User => &self.user,
            UrlPart::Password => &self.password,
        };
        let in_host_port = matches!(part, UrlPart::Host | UrlPart::Port);
        match (own, &self.host_port, &self.url) {
            (Some(key), _, _) => Some(Location::Key(key.clone())),
            (None, Some(hp), _) if in_host_port => Some(Location::HostPort(hp.clone(), part)),
            (None, _, Some(url)) => Some(Location::UrlPart(url.clone(), part)),
            (None, _, None) => None,
        }
    }
}

/// A component is enabled when `key=value` appears in an INI-style file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnabledIf {
    pub file: String,
    pub key: String,
    pub value: String,
}

/// An SQLite database copied with SQLite's online backup (Grafana).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteComponent {
    pub scope: String,
    pub label: String,
    pub path: String,
    pub member: String,
    pub notify_scope: Option<String>,
    pub enabled_if: Option<EnabledIf>,
}

/// The configuration and state files that go into the `files` member.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesComponent {
    /// Paths relative to the install root; a directory brings its subtree.
    #[serde(default)]
    pub include: Vec<String>,
    /// Every child of `dir` except the names in `except`.
    #[serde(default)]
    pub include_children: Vec<ChildrenOf>,
    /// Globs (relative to the install root) left out of backups.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Globs not written back on restore.
    #[serde(default)]
    pub restore_exclude: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChildrenOf {
    pub dir: String,
    #[serde(default)]
    pub except: Vec<String>,
}

/// How to tell that the application runs (restore refuses then).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunningCheck {
    /// File holding the pid of the running application.
    pub pid_file: String,
    /// Text that the process's command line contains.
    pub process: String,
    /// The whole line a refused restore prints: what runs and what to do
    /// (holdfast adds nothing to it).
    pub message: String,
}

/// SQL run at backup start (status 0), finish (1) and failure (-1), once per
/// scope backed up; values are bound parameters.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyHook {
    /// Scope of the database the SQL runs in.
    pub database: String,
    pub console: Option<String>,
    pub sql: String,
    /// Parameter names in `$n` order: scope, status, message, fqdn, log.
    pub params: Vec<String>,
    /// `{event}`, `{scope}`, `{log}` are replaced.
    pub message: String,
}

/// What a restore does in one database after loading it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostRestore {
    pub database: String,
    pub banner: Option<String>,
    /// Printed after the steps; `{backup_time}` is the dump's time.
    pub note: Option<String>,
    /// Last line before `Done.`.
    pub final_message: Option<String>,
    #[serde(default)]
    pub steps: Vec<PostRestoreStep>,
}

/// `sql` runs when `check` is absent or returns `when`; otherwise `else_sql`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostRestoreStep {
    pub check: Option<String>,
    pub when: Option<String>,
    pub sql: String,
    pub console: Option<String>,
    pub else_sql: Option<String>,
    pub else_console: Option<String>,
}

/// A row that must not have a value in an archived table (verify refuses).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForbiddenOption {
    pub database: String,
    pub table: String,
    pub key_column: String,
    pub value_column: String,
    pub forbidden_key: String,
    pub message: String,
}
