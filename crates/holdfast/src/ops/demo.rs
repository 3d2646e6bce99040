//! `holdfast demo`: the whole job on throwaway local clusters. It builds a sample
//! oVirt-like environment (the engine-backup 4.5 fixture's databases, roles and
//! an install root with conf files), backs it up, verifies the archive, restores
//! it into a second cluster with changed credentials, and compares every table.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use pgsandbox::Cluster;

use crate::conf::{render_assignment, ConfValue};
use crate::log::Log;
use crate::ops::{self, BackupRequest, DumpPlan, RestoreRequest, VerifyRequest};
use crate::pg::{self, ConnParams};
use crate::profile::{Environment, InstallRoot, Profile};
use crate::{Error, IoContext, Password, Result};

/// The SQL that builds the sample databases: the engine-backup 4.5 fixture's
/// `environment.sql` (roles engine, ovirt_engine_history, reporter).
pub const SAMPLE_SQL: &str = include_str!("../../tests/fixtures/engine-backup-4.5/environment.sql");

/// Passwords of the sample roles, as `SAMPLE_SQL` creates them.
pub const SAMPLE_ROLES: &[(&str, &str)] = &[
    ("engine", "engine-fixture-pw"),
    ("ovirt_engine_history", "dwh:fixture-pw"),
    ("reporter", "reporter-fixture-pw"),
];

/// The sample application version written into archives.
pub const SAMPLE_VERSION: &str = "4.5.7";

/// What `demo` measured and found.
#[derive(Debug)]
pub struct DemoOutcome {
    pub archive: PathBuf,
    pub archive_bytes: u64,
    pub tables_compared: usize,
    pub mismatches: usize,
}

/// Load the sample databases into `cluster` as its superuser.
pub fn load_sample_databases(cluster: &Cluster) -> Result<()> {
    let mut child = crate::child::command(cluster.bindir().join("psql"))
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
    let file = |rel: &str, text: &str, mode: u32| -> Result<()> {
        let path = root.join(rel);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).context(|| format!("create {}", dir.display()))?;
        }
        fs::write(&path, text).context(|| format!("write {}", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .context(|| format!("chmod {}", path.display()))
    };
    let block = |prefix: &str, user: &str, password: &str, database: &str| -> String {
        let lit = |v: &str| ConfValue::Literal(v.to_string());
        let mut lines = vec![
            render_assignment(&format!("{prefix}HOST"), &lit(host)),
            render_assignment(&format!("{prefix}PORT"), &lit(&port.to_string())),
            render_assignment(&format!("{prefix}USER"), &lit(user)),
            render_assignment(&format!("{prefix}PASSWORD"), &lit(password)),
            render_assignment(&format!("{prefix}DATABASE"), &lit(database)),
            render_assignment(&format!("{prefix}SECURED"), &lit("False")),
            render_assignment(&format!("{prefix}SECURED_VALIDATION"), &lit("False")),
            render_assignment(&format!("{prefix}DRIVER"), &lit("org.postgresql.Driver")),
            render_assignment(
                &format!("{prefix}URL"),
                &ConfValue::Raw(format!(
                    "\"jdbc:postgresql://${{{prefix}HOST}}:${{{prefix}PORT}}/${{{prefix}DATABASE}}?sslfactory=org.postgresql.ssl.NonValidatingFactory\""
                )),
            ),
        ];
        lines.push(String::new());
        lines.join("\n")
    };
    let engine = block("ENGINE_DB_", "engine", "engine-fixture-pw", "engine");
    let dwh = block(
        "DWH_DB_",
        "ovirt_engine_history",
        "dwh:fixture-pw",
        "ovirt_engine_history",
    );
    file(
        "usr/share/ovirt-engine/services/ovirt-engine/ovirt-engine.conf",
        "ENGINE_FQDN=demo.example.test\n",
        0o644,
    )?;
    file(
        "etc/ovirt-engine/engine.conf.d/10-setup-database.conf",
        &engine,
        0o640,
    )?;
    file(
        "etc/ovirt-engine/engine.conf.d/99-custom.conf",
        "# a site setting\nDEMO_NOTE=\"custom value with spaces and 'quotes'\"\n",
        0o644,
    )?;
    file(
        "etc/ovirt-engine-dwh/ovirt-engine-dwhd.conf.d/10-setup-database.conf",
        &format!("{engine}{dwh}"),
        0o640,
    )?;
    file(
        "etc/ovirt-engine-setup.conf",
        "[environment:default]\nOVESETUP_ENGINE_CORE/enable=bool:True\nOVESETUP_DWH_CORE/enable=bool:True\n",
        0o644,
    )?;
    file(
        "etc/pki/ovirt-engine/ca.pem",
        "demo certificate placeholder\n",
        0o644,
    )?;
    file(
        "etc/pki/ovirt-engine/keys/engine_id_rsa",
        "demo key placeholder\n",
        0o600,
    )?;
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
    file(
        "var/lib/ovirt-engine/deployments/engine.ear.deployed",
        "",
        0o644,
    )?;
    file(
        "var/lib/ovirt-engine/backups/not-backed-up.txt",
        "excluded by the profile\n",
        0o644,
    )?;
    Ok(())
}

/// Run the demo in `workdir`, reporting on `log`.
pub fn run(workdir: &Path, log: &Log) -> Result<DemoOutcome> {
    let t = Instant::now();
    let source = Cluster::start()
        .map_err(|e| Error::failed(format!("cannot start a throwaway PostgreSQL cluster: {e}")))?;
    log.output(&format!(
        "Started a throwaway PostgreSQL {} cluster (source) on 127.0.0.1:{} in {:.2} s",
        source.major(),
        source.port(),
        source.startup_time().as_secs_f64()
    ));
    load_sample_databases(&source)?;
    let root = workdir.join("install-root");
    write_sample_install_root(&root, source.host(), source.port())?;
    log.output("Built the sample environment:");
    log.output("  roles engine, ovirt_engine_history, reporter (with grants)");
    log.output(
        "  databases engine (16 tables, views, functions, a large object) and ovirt_engine_history",
    );
    log.output(&format!(
        "  install root {} (conf files, PKI, state files)",
        root.display()
    ));

    let profile = Profile::ovirt_engine();
    let env = Environment::load(profile.clone(), InstallRoot::new(&root)?)?;
    let before = checksums(&env, &["db", "dwhdb"])?;

    let archive = workdir.join("demo.backup");
    let scopes = ops::expand_scopes(&env, &[])?;
    let dumps: BTreeMap<String, DumpPlan> = profile
        .databases
        .iter()
        .map(|d| (d.scope.clone(), DumpPlan::holdfast_default()))
        .collect();
    let backup = BackupRequest {
        env,
        scopes,
        file: archive.clone(),
        tmpdir: workdir.to_path_buf(),
        archive_codec: crate::archive::Codec::None,
        files_codec: crate::archive::Codec::Zstd,
        compress_level: None,
        dumps,
        application_version: SAMPLE_VERSION.into(),
        overwrite: true,
        threads: 2,
    };
    let b = Instant::now();
    log.output("");
    log.output("== backup (holdfast defaults: custom dumps, zstd) ==");
    ops::backup::run(&backup, log)?;
    let archive_bytes = fs::metadata(&archive).map(|m| m.len()).unwrap_or(0);
    log.output(&format!(
        "Backed up to {} ({archive_bytes} bytes) in {:.2} s",
        archive.display(),
        b.elapsed().as_secs_f64()
    ));

    log.output("");
    log.output("== verify ==");
    let verify = VerifyRequest {
        env: Environment::load(profile.clone(), InstallRoot::new(&root)?)?,
        file: archive.clone(),
        tmpdir: workdir.to_path_buf(),
        installed_version: Some(SAMPLE_VERSION.into()),
        deep: false,
    };
    ops::verify::run(&verify, log)?;

    log.output("");
    log.output("== restore into a second cluster, with changed credentials ==");
    let target = Cluster::start()
        .map_err(|e| Error::failed(format!("cannot start a second cluster: {e}")))?;
    for (role, password) in SAMPLE_ROLES {
        target
            .create_role(role, password)
            .map_err(|e| Error::failed(e.to_string()))?;
    }
    target
        .create_database("engine_restored", "engine")
        .and_then(|_| {
            target.create_database("ovirt_engine_history_restored", "ovirt_engine_history")
        })
        .map_err(|e| Error::failed(e.to_string()))?;
    let creds = |user: &str, password: &str, database: &str| ConnParams {
        host: target.host().into(),
        port: target.port(),
        user: user.into(),
        database: database.into(),
        password: Some(Password::new(password)),
        secured: false,
        secured_validation: false,
    };
    let mut credentials = BTreeMap::new();
    credentials.insert(
        "db".to_string(),
        creds("engine", "engine-fixture-pw", "engine_restored"),
    );
    credentials.insert(
        "dwhdb".to_string(),
        creds(
            "ovirt_engine_history",
            "dwh:fixture-pw",
            "ovirt_engine_history_restored",
        ),
    );
    let env = Environment::load(profile.clone(), InstallRoot::new(&root)?)?;
    let scopes = ops::expand_scopes(&env, &[])?;
    let jobs = profile
        .databases
        .iter()
        .map(|d| (d.scope.clone(), ops::Jobs::DEFAULT))
        .collect();
    let restore = RestoreRequest {
        env,
        scopes,
        file: archive.clone(),
        tmpdir: workdir.to_path_buf(),
        restore_permissions: Some(true),
        // The demo compares every table, so it skips the engine's clean-up steps.
        keep_temporary_data: true,
        jobs,
        installed_version: SAMPLE_VERSION.into(),
        credentials,
        provision: Default::default(),
    };
    let r = Instant::now();
    ops::restore::run(&restore, log)?;
    log.output(&format!("Restored in {:.2} s", r.elapsed().as_secs_f64()));

    let env = Environment::load(profile, InstallRoot::new(&root)?)?;
    let after = checksums(&env, &["db", "dwhdb"])?;
    log.output("");
    log.output("== comparison: source database vs restored database ==");
    let (compared, mismatches) = print_comparison(&before, &after, log);
    log.output(&format!(
        "{} compared, {mismatches} differ; whole demo took {:.1} s",
        crate::log::count(compared, "table", "tables"),
        t.elapsed().as_secs_f64()
    ));
    if mismatches > 0 {
        return Err(Error::failed(format!(
            "{} between the source and the restored databases",
            crate::log::count(mismatches, "table differs", "tables differ")
        )));
    }
    Ok(DemoOutcome {
        archive,
        archive_bytes,
        tables_compared: compared,
        mismatches,
    })
}

type Checksums = BTreeMap<(String, String), (i64, String)>;

/// Per (database label, table): rows and checksum, for the given scopes as the
/// environment's conf files point at them.
fn checksums(env: &Environment, scopes: &[&str]) -> Result<Checksums> {
    let mut out = BTreeMap::new();
    for scope in scopes {
        let db = env
            .profile
            .database(scope)
            .ok_or_else(|| Error::failed(format!("profile has no {scope}")))?;
        let params = env
            .database_params(db)?
            .ok_or_else(|| Error::failed(format!("{scope} is not configured")))?;
        let mut client = pg::connect(&params)?;
        for t in pg::inspect::table_checksums(&mut client)? {
            out.insert(
                (db.label.clone(), format!("{}.{}", t.schema, t.name)),
                (t.rows, t.checksum),
            );
        }
    }
    Ok(out)
}

fn print_comparison(before: &Checksums, after: &Checksums, log: &Log) -> (usize, usize) {
    log.output(&format!(
        "{:<8} {:<34} {:>6} {:<32} {}",
        "database", "table", "rows", "checksum", "restored"
    ));
    let mut mismatches = 0;
    for (key, (rows, sum)) in before {
        let verdict = match after.get(key) {
            Some((r, s)) if r == rows && s == sum => "same",
            Some(_) => {
                mismatches += 1;
                "DIFFERENT"
            }
            None => {
                mismatches += 1;
                "MISSING"
            }
        };
        log.output(&format!(
            "{:<8} {:<34} {:>6} {:<32} {verdict}",
            key.0, key.1, rows, sum
        ));
    }
    for key in after.keys().filter(|k| !before.contains_key(*k)) {
        mismatches += 1;
        log.output(&format!(
            "{:<8} {:<34} only in the restored database",
            key.0, key.1
        ));
    }
    (before.len(), mismatches)
}
