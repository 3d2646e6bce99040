//! The oVirt-like sample environment, from the workspace's `sample/ovirt-engine/`:
//! `environment.sql` (the engine-backup 4.5 fixture's roles, databases and
//! content) and `install-root/` (an engine host's conf files, PKI and state
//! files, whose database conf files name `@HOST@` and `@PORT@`).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

use pgsandbox::Cluster;

use holdfast::conf::quote_value;
use holdfast::{Error, IoContext, Result};

/// A file of `sample/ovirt-engine/`, compiled in so that the demo runs anywhere.
macro_rules! sample {
    ($path:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../sample/ovirt-engine/",
            $path
        ))
    };
}

/// The SQL that builds the sample databases: the engine-backup 4.5 fixture's
/// `environment.sql` (roles engine, ovirt_engine_history, reporter).
pub const SAMPLE_SQL: &str = sample!("environment.sql");

/// Passwords of the sample roles, as `SAMPLE_SQL` creates them.
pub const SAMPLE_ROLES: &[(&str, &str)] = &[
    ("engine", "engine-fixture-pw"),
    ("ovirt_engine_history", "dwh:fixture-pw"),
    ("reporter", "reporter-fixture-pw"),
];

/// The sample application version written into archives.
pub const SAMPLE_VERSION: &str = "4.5.7";

/// The install root's files: path, text, mode (git keeps no modes but 0755/0644).
const INSTALL_ROOT: &[(&str, &str, u32)] = &[
    (
        "usr/share/ovirt-engine/services/ovirt-engine/ovirt-engine.conf",
        sample!("install-root/usr/share/ovirt-engine/services/ovirt-engine/ovirt-engine.conf"),
        0o644,
    ),
    (
        "etc/ovirt-engine/engine.conf.d/10-setup-database.conf",
        sample!("install-root/etc/ovirt-engine/engine.conf.d/10-setup-database.conf"),
        0o640,
    ),
    (
        "etc/ovirt-engine/engine.conf.d/99-custom.conf",
        sample!("install-root/etc/ovirt-engine/engine.conf.d/99-custom.conf"),
        0o644,
    ),
    (
        "etc/ovirt-engine-dwh/ovirt-engine-dwhd.conf.d/10-setup-database.conf",
        sample!(
            "install-root/etc/ovirt-engine-dwh/ovirt-engine-dwhd.conf.d/10-setup-database.conf"
        ),
        0o640,
    ),
    (
        "etc/ovirt-engine-setup.conf",
        sample!("install-root/etc/ovirt-engine-setup.conf"),
        0o644,
    ),
    (
        "etc/pki/ovirt-engine/ca.pem",
        sample!("install-root/etc/pki/ovirt-engine/ca.pem"),
        0o644,
    ),
    (
        "etc/pki/ovirt-engine/keys/engine_id_rsa",
        sample!("install-root/etc/pki/ovirt-engine/keys/engine_id_rsa"),
        0o600,
    ),
    (
        "var/lib/ovirt-engine/deployments/engine.ear.deployed",
        sample!("install-root/var/lib/ovirt-engine/deployments/engine.ear.deployed"),
        0o644,
    ),
    (
        "var/lib/ovirt-engine/backups/not-backed-up.txt",
        sample!("install-root/var/lib/ovirt-engine/backups/not-backed-up.txt"),
        0o644,
    ),
];

/// Load the sample databases into `cluster` as its superuser.
pub fn load_sample_databases(cluster: &Cluster) -> Result<()> {
    let mut child = holdfast::child::command(cluster.bindir().join("psql"))
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            "postgres",
            "-f",
            "-",
        ])
        .envs(cluster.superuser_env())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context(|| "run psql to load the sample databases".into())?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin
            .write_all(SAMPLE_SQL.as_bytes())
            .context(|| "feed the sample SQL to psql".into())?;
    }
    let out = child
        .wait_with_output()
        .context(|| "wait for psql".into())?;
    if !out.status.success() {
        return Err(Error::failed(format!(
            "loading the sample databases failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Write an install root like an engine host's, whose conf files point at the
/// sample databases on `host:port`.
pub fn write_sample_install_root(root: &Path, host: &str, port: u16) -> Result<()> {
    for (rel, text, mode) in INSTALL_ROOT {
        let path = root.join(rel);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).context(|| format!("create {}", dir.display()))?;
        }
        let text = text
            .replace("@HOST@", &quote_value(host))
            .replace("@PORT@", &quote_value(&port.to_string()));
        fs::write(&path, text).context(|| format!("write {}", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(*mode))
            .context(|| format!("chmod {}", path.display()))?;
    }
    fs::set_permissions(
        root.join("etc/pki/ovirt-engine/keys"),
        fs::Permissions::from_mode(0o750),
    )
    .context(|| "chmod keys dir".into())?;
    let link = root.join("etc/pki/ovirt-engine/apache-ca.pem");
    if !link.exists() {
        std::os::unix::fs::symlink("ca.pem", &link)
            .context(|| format!("symlink {}", link.display()))?;
    }
    fs::create_dir_all(root.join("etc/ovirt-engine/extensions.d")).context(|| "mkdir".into())?;
    Ok(())
}
