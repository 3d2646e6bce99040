//! `holdfast demo`: the whole job on throwaway local clusters. It builds the
//! oVirt-like sample ([`crate::ovirt`]), backs it up, verifies the archive, restores
//! it into a second cluster with changed credentials, and compares every table.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use pgsandbox::Cluster;

use holdfast::log::Log;
use holdfast::ops::{self, BackupRequest, DumpPlan, RestoreRequest, VerifyRequest};
use holdfast::pg::{self, ConnParams};
use holdfast::profile::{Environment, InstallRoot, Profile};
use holdfast::{Error, Password, Result};

use crate::ovirt::{
    load_sample_databases, write_sample_install_root, SAMPLE_ROLES, SAMPLE_VERSION,
};

/// What `demo` measured and found.
#[derive(Debug)]
pub struct DemoOutcome {
    pub archive: PathBuf,
    pub archive_bytes: u64,
    pub tables_compared: usize,
    pub mismatches: usize,
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
        archive_codec: holdfast::archive::Codec::None,
        files_codec: holdfast::archive::Codec::Zstd,
        compress_level: None,
        dumps,
        application_version: SAMPLE_VERSION.into(),
        overwrite: true,
        threads: 2,
        // The throwaway cluster's superuser, over its socket: the archive
        // keeps the roles' password verifiers.
        role_passwords: ops::request::RolePasswords::Admin(ops::AdminOptions {
            host: Some(source.socket_dir().display().to_string()),
            ..Default::default()
        }),
        encrypt_to: None,
        output: holdfast::ops::BackupOutput::Archive,
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
        holdfast::log::count(compared, "table", "tables"),
        t.elapsed().as_secs_f64()
    ));
    if mismatches > 0 {
        return Err(Error::failed(format!(
            "{} between the source and the restored databases",
            holdfast::log::count(mismatches, "table differs", "tables differ")
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
