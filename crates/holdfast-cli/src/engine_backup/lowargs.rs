//! What was typed on an `engine-backup` command line, before it means anything.
//!
//! engine-backup accepts options only as `--opt` or `--opt=value` (never
//! `--opt value`), processed left to right so that a later option overrides an
//! earlier shortcut. The per-database options exist once per database of the
//! profile, with its option prefix (`--db-…`, `--dwh-db-…`, …).

use std::collections::BTreeMap;

/// A password option: `--db-password=P` carries the value, `--db-password` asks
/// for it on the terminal.
#[derive(Clone, PartialEq)]
pub enum PasswordArg {
    Value(String),
    Prompt,
}

impl std::fmt::Debug for PasswordArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PasswordArg::Value(_) => f.write_str("Value([REDACTED])"),
            PasswordArg::Prompt => f.write_str("Prompt"),
        }
    }
}

/// The options of one database, by its option prefix (`db`, `dwh-db`, …).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DbLowArgs {
    pub compressor: Option<String>,
    pub dump_format: Option<String>,
    pub restore_jobs: Option<String>,
    pub provision: bool,
    pub change_credentials: bool,
    pub host: Option<String>,
    pub port: Option<String>,
    pub user: Option<String>,
    pub name: Option<String>,
    pub password: Option<PasswordArg>,
    pub passfile: Option<String>,
    pub secured: bool,
    pub secured_validation: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LowArgs {
    pub help: bool,
    pub mode: Option<String>,
    pub scopes: Vec<String>,
    pub file: Option<String>,
    pub log: Option<String>,
    pub tmpdir: Option<String>,
    pub archive_compressor: Option<String>,
    pub files_compressor: Option<String>,
    pub keep_temporary_data: bool,
    pub restore_permissions: Option<bool>,
    pub provision_all_databases: bool,
    pub admin_host: Option<String>,
    pub admin_port: Option<String>,
    pub admin_user: Option<String>,
    pub admin_passfile: Option<String>,
    pub init_cluster: bool,
    pub init_cluster_datadir: Option<String>,
    pub he_remove_storage_vm: bool,
    pub he_remove_hosts: bool,
    pub install_root: Option<String>,
    pub installed_version: Option<String>,
    pub profile: Option<String>,
    /// Per database, by option prefix.
    pub db: BTreeMap<String, DbLowArgs>,
}

/// Which prefixes have the fast/small shortcuts applied (engine and DWH in oVirt).
pub struct ParseSpec<'a> {
    pub db_prefixes: &'a [&'a str],
    pub shortcut_prefixes: &'a [&'a str],
}

/// Parse arguments (without argv[0]). Errors are the message after `FATAL: `.
pub fn parse(args: &[String], spec: &ParseSpec) -> Result<LowArgs, String> {
    let mut low = LowArgs::default();
    for p in spec.db_prefixes {
        low.db.insert(p.to_string(), DbLowArgs::default());
    }
    for (n, arg) in args.iter().enumerate() {
        if arg.is_empty() {
            return Err(
                "empty argument on the command line; remove it (an unset shell variable?)".into(),
            );
        }
        // Messages quote arguments; a line break in one would forge console
        // and log lines. Not echoed: it may be a password.
        if arg.contains(char::is_control) {
            return Err(format!(
                "argument {} contains a control character (a line break or a tab?); remove it",
                n + 1
            ));
        }
        let (name, value) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (arg.as_str(), None),
        };
        let unknown = || format!("Unknown option '{arg}'. Please see '--help' for details.");
        let need = |v: Option<String>| v.ok_or_else(unknown);
        let flag = |v: &Option<String>| {
            if v.is_some() {
                Err(unknown())
            } else {
                Ok(true)
            }
        };
        match name {
            "--help" => low.help = flag(&value)?,
            "--mode" => low.mode = Some(need(value)?),
            "--scope" => low.scopes.push(need(value)?),
            "--file" => low.file = Some(need(value)?),
            "--log" => low.log = Some(need(value)?),
            "--tmpdir" => low.tmpdir = Some(need(value)?),
            "--archive-compressor" => low.archive_compressor = Some(need(value)?),
            "--files-compressor" => low.files_compressor = Some(need(value)?),
            "--keep-temporary-data" => low.keep_temporary_data = flag(&value)?,
            "--restore-permissions" => low.restore_permissions = Some(flag(&value)?),
            "--no-restore-permissions" => low.restore_permissions = Some(!flag(&value)?),
            "--provision-all-databases" => low.provision_all_databases = flag(&value)?,
            "--admin-host" => low.admin_host = Some(need(value)?),
            "--admin-port" => low.admin_port = Some(need(value)?),
            "--admin-user" => low.admin_user = Some(need(value)?),
            "--admin-passfile" => low.admin_passfile = Some(need(value)?),
            "--init-cluster" => low.init_cluster = flag(&value)?,
            "--init-cluster-datadir" => low.init_cluster_datadir = Some(need(value)?),
            "--he-remove-storage-vm" => low.he_remove_storage_vm = flag(&value)?,
            "--he-remove-hosts" => low.he_remove_hosts = flag(&value)?,
            "--install-root" => low.install_root = Some(need(value)?),
            "--installed-version" => low.installed_version = Some(need(value)?),
            "--profile" => low.profile = Some(need(value)?),
            "--fast-backup" | "--fast-restore" => {
                flag(&value)?;
                low.archive_compressor = Some("gzip".into());
                low.files_compressor = Some("xz".into());
                for p in spec.shortcut_prefixes {
                    let db = low.db.entry(p.to_string()).or_default();
                    db.dump_format = Some("custom".into());
                    db.compressor = Some("None".into());
                }
            }
            "--small-size" => {
                flag(&value)?;
                low.archive_compressor = Some("xz".into());
                low.files_compressor = Some("xz".into());
                for p in spec.shortcut_prefixes {
                    let db = low.db.entry(p.to_string()).or_default();
                    db.dump_format = Some("plain".into());
                    db.compressor = Some("xz".into());
                }
            }
            _ => parse_db_option(name, value, &mut low, spec).ok_or_else(unknown)??,
        }
    }
    Ok(low)
}

/// `--<prefix>-<opt>`, `--provision-<prefix>`, `--change-<prefix>-credentials`.
/// `None` when the option is not a database option at all.
fn parse_db_option(
    name: &str,
    value: Option<String>,
    low: &mut LowArgs,
    spec: &ParseSpec,
) -> Option<Result<(), String>> {
    let bare = name.strip_prefix("--")?;
    for prefix in spec.db_prefixes {
        let db = low.db.get_mut(*prefix).expect("every prefix has an entry");
        let is_flag = value.is_none();
        if bare == format!("provision-{prefix}") && is_flag {
            db.provision = true;
            return Some(Ok(()));
        }
        if bare == format!("change-{prefix}-credentials") && is_flag {
            db.change_credentials = true;
            return Some(Ok(()));
        }
        let Some(opt) = bare.strip_prefix(prefix).and_then(|r| r.strip_prefix('-')) else {
            continue;
        };
        match (opt, value) {
            ("compressor", Some(v)) => db.compressor = Some(v),
            ("dump-format", Some(v)) => db.dump_format = Some(v),
            ("restore-jobs", Some(v)) => db.restore_jobs = Some(v),
            ("host", Some(v)) => db.host = Some(v),
            ("port", Some(v)) => db.port = Some(v),
            ("user", Some(v)) => db.user = Some(v),
            ("name", Some(v)) => db.name = Some(v),
            ("passfile", Some(v)) => db.passfile = Some(v),
            ("password", Some(v)) => db.password = Some(PasswordArg::Value(v)),
            ("password", None) => db.password = Some(PasswordArg::Prompt),
            ("secured", None) => db.secured = true,
            // The long spelling is what --help documents; engine-backup 4.5 rejects it.
            ("sec-validation" | "secured-validation", None) => db.secured_validation = true,
            _ => return None,
        }
        return Some(Ok(()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIXES: &[&str] = &[
        "db",
        "dwh-db",
        "cinderlib-db",
        "managedblock-db",
        "keycloak-db",
    ];

    fn spec() -> ParseSpec<'static> {
        ParseSpec {
            db_prefixes: PREFIXES,
            shortcut_prefixes: &["db", "dwh-db"],
        }
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn control_characters_are_refused_without_echoing_the_argument() {
        for bad in [
            "--fi\nle=x",
            "--db-password=se\ncret",
            "--scope=db\r",
            "--file=a\tb",
        ] {
            let err = parse(&args(&["--mode=backup", bad]), &spec()).unwrap_err();
            assert_eq!(
                err,
                "argument 2 contains a control character (a line break or a tab?); remove it"
            );
        }
    }

    #[test]
    fn documented_command_lines_parse() {
        let low = parse(
            &args(&[
                "--scope=files",
                "--scope=db",
                "--mode=backup",
                "--file=file_name",
                "--log=log_file_name",
            ]),
            &spec(),
        )
        .unwrap();
        assert_eq!(low.scopes, ["files", "db"]);
        assert_eq!(low.mode.as_deref(), Some("backup"));
        assert_eq!(low.file.as_deref(), Some("file_name"));

        let low = parse(
            &args(&[
                "--mode=restore",
                "--file=f",
                "--log=l",
                "--change-db-credentials",
                "--db-host=h",
                "--db-name=n",
                "--db-user=engine",
                "--db-password",
                "--change-dwh-db-credentials",
                "--dwh-db-host=h",
                "--dwh-db-name=n",
                "--dwh-db-user=ovirt_engine_history",
                "--dwh-db-password",
                "--no-restore-permissions",
            ]),
            &spec(),
        )
        .unwrap();
        assert!(low.db["db"].change_credentials);
        assert_eq!(low.db["db"].password, Some(PasswordArg::Prompt));
        assert_eq!(
            low.db["dwh-db"].user.as_deref(),
            Some("ovirt_engine_history")
        );
        assert_eq!(low.restore_permissions, Some(false));
    }

    #[test]
    fn shortcuts_apply_in_order_and_later_options_win() {
        let low = parse(&args(&["--small-size", "--db-compressor=None"]), &spec()).unwrap();
        assert_eq!(low.archive_compressor.as_deref(), Some("xz"));
        assert_eq!(low.db["db"].compressor.as_deref(), Some("None"));
        assert_eq!(low.db["db"].dump_format.as_deref(), Some("plain"));
        assert_eq!(low.db["dwh-db"].compressor.as_deref(), Some("xz"));
        assert_eq!(low.db["keycloak-db"].dump_format, None);
        let low = parse(&args(&["--db-compressor=None", "--small-size"]), &spec()).unwrap();
        assert_eq!(low.db["db"].compressor.as_deref(), Some("xz"));
    }

    #[test]
    fn both_spellings_of_secured_validation_are_accepted() {
        let low = parse(
            &args(&["--db-sec-validation", "--dwh-db-secured-validation"]),
            &spec(),
        )
        .unwrap();
        assert!(low.db["db"].secured_validation);
        assert!(low.db["dwh-db"].secured_validation);
    }

    #[test]
    fn unknown_options_and_wrong_forms_are_refused_with_engine_backup_text() {
        for bad in [
            "--frobnicate",
            "--mode",
            "--file",
            "--help=yes",
            "--db-host",
            "--db-secured=1",
            "-m",
        ] {
            let err = parse(&args(&[bad]), &spec()).unwrap_err();
            assert_eq!(
                err,
                format!("Unknown option '{bad}'. Please see '--help' for details.")
            );
        }
        assert!(parse(&args(&["--mode=backup", ""]), &spec())
            .unwrap_err()
            .contains("empty argument"));
    }

    #[test]
    fn password_values_do_not_show_in_debug() {
        let low = parse(&args(&["--db-password=hunter2-low"]), &spec()).unwrap();
        assert!(!format!("{low:?}").contains("hunter2-low"));
    }
}
