//! Deep verify: every database of the archive restored into a throwaway
//! cluster by an unprivileged role, then each table's row count and
//! fingerprint compared with the manifest's.
//!
//! Steps: room for the cluster, the cluster started, the roles the dumps name
//! created, then per database: created with its extensions, restored,
//! compared; last the verdict.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::archive::manifest::{DatabaseRecord, Manifest};
use crate::archive::{ArchiveReader, DumpFormat, DumpSettings};
use crate::leftovers::HeldDir;
use crate::log::Log;
use crate::ops::workdir::check_free_space;
use crate::pg::inspect::{FingerprintKind, RowTextSettings, TableChecksum};
use crate::pg::provision::{self, Admin};
use crate::pg::{self, ConnParams, PgTools};
use crate::profile::Profile;
use crate::{Error, IoContext, Result};

/// What deep verify's throwaway cluster takes before any database is restored
/// (the data directory of initdb, its WAL), and then per byte of dump.
pub(super) const CLUSTER_FLOOR: u64 = 96 << 20;
pub(super) const DEEP_FACTOR: u64 = 3;

/// The unprivileged role that restores an archive's dumps in deep verify.
const VERIFY_ROLE: &str = "holdfast_verify";

/// The throwaway cluster, and its directory under `--tmpdir`, removed after
/// the cluster (fields drop in order).
struct Throwaway {
    cluster: pgsandbox::Cluster,
    _base: HeldDir,
}

impl Throwaway {
    /// A connection to `database` as the cluster's superuser.
    fn superuser(&self, database: &str) -> ConnParams {
        ConnParams {
            host: self.cluster.socket_dir().display().to_string(),
            port: self.cluster.port(),
            user: self.cluster.superuser().into(),
            database: database.into(),
            password: None,
            secured: false,
            secured_validation: false,
        }
    }

    /// The dumps are restored by an unprivileged role: a forged dump's
    /// `COPY ... TO PROGRAM` or untrusted function then fails instead of
    /// running on this machine as the cluster's system user.
    fn restorer(&self, database: &str) -> ConnParams {
        ConnParams {
            user: VERIFY_ROLE.into(),
            ..self.superuser(database)
        }
    }
}

/// Tables compared, and how many differed.
#[derive(Default)]
struct Tally {
    compared: usize,
    mismatches: usize,
}

/// Restore every database of the archive into a throwaway cluster as an
/// unprivileged role and compare row counts and checksums with the manifest.
pub(super) fn deep_verify(
    archive: &ArchiveReader,
    profile: &Profile,
    tmpdir: &Path,
    work: &Path,
    log: &Log,
) -> Result<(usize, usize)> {
    check_room_for_cluster(archive, tmpdir)?;
    let throwaway = start_cluster(tmpdir)?;
    log.output(&format!(
        "- Deep verify: restoring into a throwaway PostgreSQL {} cluster",
        throwaway.cluster.major()
    ));
    let tools = PgTools::in_dir(throwaway.cluster.bindir())?;
    let admin = Admin::new(throwaway.superuser("postgres"), tools.clone());
    let manifest = archive.manifest();
    create_roles(&admin, manifest)?;
    let mut tally = Tally::default();
    log.output(&format!(
        "  {:<12} {:<36} {:>9} {:>9}  {}",
        "database", "table", "rows", "restored", "checksum"
    ));
    let members = dump_members_in_profile_order(archive, profile);
    for (i, member) in members.into_iter().enumerate() {
        let Some(db) = profile.databases.iter().find(|d| d.member == member) else {
            continue;
        };
        let name = format!("verify_{i}");
        let recorded = manifest.and_then(|m| m.database(&member));
        create_database(&admin, &name, recorded, throwaway.cluster.major())?;
        let target = throwaway.restorer(&name);
        let settings = archive.config().get(&db.archive_config_prefix);
        let path = archive.member_path(&member).expect("listed member");
        restore_member(
            &path,
            settings,
            &target,
            &tools,
            manifest.is_some(),
            work,
            log,
        )?;
        compare(&target, &db.scope, recorded, &mut tally, log)?;
    }
    verdict(&tally, log)
}

/// Now that the dumps are unpacked: room for the cluster and what it restores.
fn check_room_for_cluster(archive: &ArchiveReader, tmpdir: &Path) -> Result<()> {
    let dumps: u64 = archive
        .members()
        .filter(|m| m.name.starts_with("db/"))
        .map(|m| m.size)
        .sum();
    check_free_space(
        tmpdir,
        CLUSTER_FLOOR + DEEP_FACTOR * dumps,
        "deep verify's throwaway cluster",
    )
}

/// The cluster, in a directory under `--tmpdir` that the server user can
/// traverse.
fn start_cluster(tmpdir: &Path) -> Result<Throwaway> {
    let base = HeldDir::new(tmpdir, "holdfast-cluster.", 10).context(|| {
        format!(
            "create a directory for the throwaway cluster in {}",
            tmpdir.display()
        )
    })?;
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o711))
        .context(|| format!("chmod {}", base.path().display()))?;
    let cluster = pgsandbox::Cluster::builder()
        .base_dir(base.path())
        .start()
        .map_err(|e| {
            Error::failed(format!(
                "deep verify needs a throwaway PostgreSQL cluster: {e}"
            ))
        })?;
    Ok(Throwaway {
        cluster,
        _base: base,
    })
}

/// The restoring role, and every role the manifest names, which the
/// restoring role is a member of so that it can give objects to them.
fn create_roles(admin: &Admin, manifest: Option<&Manifest>) -> Result<()> {
    provision::create_unprivileged_role(admin, VERIFY_ROLE, true)?;
    let Some(m) = manifest else {
        return Ok(());
    };
    let mut existing = provision::ServerFacts::read(admin)?.roles;
    for role in m.databases.iter().flat_map(|db| &db.roles) {
        if !existing.contains(&role.name) {
            // Only the name is taken from the archive: the recorded CREATE
            // ROLE text is the archive's and would run as the superuser.
            // Owners and grantees need nothing more.
            provision::create_unprivileged_role(admin, &role.name, false)
                .map_err(|e| Error::postgres(format!("creating role {}: {e}", role.name)))?;
            existing.insert(role.name.clone());
        }
        if role.name != VERIFY_ROLE {
            provision::grant_membership(admin, &role.name, VERIFY_ROLE)?;
        }
    }
    Ok(())
}

/// The database to restore into, owned by the restoring role, with the
/// extensions the dump needs (they need the superuser; the dump's own CREATE
/// EXTENSION statements then find them, pg_dump writes IF NOT EXISTS), and
/// the right to create objects in `public` for every owner (since PostgreSQL
/// 15 `public` grants it to nobody).
fn create_database(
    admin: &Admin,
    name: &str,
    recorded: Option<&DatabaseRecord>,
    major: u32,
) -> Result<()> {
    provision::create_database_default_locale(admin, name, VERIFY_ROLE)
        .map_err(|e| Error::failed(e.to_string()))?;
    let Some(record) = recorded else {
        return Ok(());
    };
    for extension in record
        .extensions
        .iter()
        .filter_map(|e| e.split_whitespace().next())
    {
        provision::create_extension_with_requirements(admin, name, extension).map_err(|e| {
            Error::failed(format!(
                "deep verify cannot create extension {extension} in the throwaway cluster: {e}; install the package that provides it for PostgreSQL {major} on this machine, or verify without --deep"
            ))
        })?;
    }
    for role in &record.roles {
        provision::grant_create_on_public(admin, name, &role.name)?;
    }
    Ok(())
}

/// Load one dump member into `target`.
fn restore_member(
    path: &Path,
    settings: DumpSettings,
    target: &ConnParams,
    tools: &PgTools,
    restore_permissions: bool,
    work: &Path,
    log: &Log,
) -> Result<()> {
    match settings.format {
        DumpFormat::Custom => {
            let dump = settings.compressor.seekable_copy(path, work)?;
            let options = pg::restore::RestoreOptions {
                jobs: crate::ops::request::Jobs::DEFAULT.get(),
                restore_permissions,
                restore_owners: true,
            };
            if log.shows_progress() {
                let label = format!("deep verify '{}'", target.database);
                pg::restore::restore_custom_with_progress(target, tools, &dump, &options, &|n| {
                    log.progress_entries(&label, n)
                })?;
            } else {
                pg::restore::restore_custom(target, tools, &dump, &options)?;
            }
        }
        DumpFormat::Plain => {
            let mut sql = settings.compressor.open_decoded(path)?;
            pg::restore::restore_plain(target, tools, &mut sql)?;
        }
    }
    Ok(())
}

/// Print each restored table against the manifest's record, and the
/// recorded tables that were not restored.
fn compare(
    target: &ConnParams,
    scope: &str,
    expected: Option<&DatabaseRecord>,
    tally: &mut Tally,
    log: &Log,
) -> Result<()> {
    let mut client = pg::connect(target)?;
    let restored = restored_fingerprints(&mut client, expected)?;
    for t in &restored {
        let qualified = format!("{}.{}", t.schema, t.name);
        let (rows, verdict) = match expected.and_then(|e| {
            e.tables
                .iter()
                .find(|x| x.schema == t.schema && x.name == t.name)
        }) {
            Some(x) if x.row_count as i64 == t.rows && x.checksum == t.checksum => {
                (x.row_count.to_string(), "same")
            }
            Some(x) => {
                tally.mismatches += 1;
                (x.row_count.to_string(), "DIFFERENT")
            }
            None if expected.is_some() => {
                tally.mismatches += 1;
                ("-".into(), "NOT IN MANIFEST")
            }
            None => ("-".into(), "restored (no manifest to compare)"),
        };
        tally.compared += 1;
        log.output(&format!(
            "  {:<12} {:<36} {:>9} {:>9}  {verdict}",
            scope, qualified, rows, t.rows
        ));
        log.record(
            "tables",
            serde_json::json!({
                "scope": scope,
                "table": qualified,
                "rows_recorded": rows.parse::<u64>().ok(),
                "rows_restored": t.rows,
                "verdict": verdict,
            }),
        );
    }
    if let Some(e) = expected {
        for x in e.tables.iter().filter(|x| {
            !restored
                .iter()
                .any(|t| t.schema == x.schema && t.name == x.name)
        }) {
            tally.mismatches += 1;
            let qualified = format!("{}.{}", x.schema, x.name);
            log.output(&format!(
                "  {:<12} {:<36} {:>9} {:>9}  MISSING",
                scope, qualified, x.row_count, "-"
            ));
            log.record(
                "tables",
                serde_json::json!({
                    "scope": scope,
                    "table": qualified,
                    "rows_recorded": x.row_count,
                    "rows_restored": null,
                    "verdict": "MISSING",
                }),
            );
        }
    }
    Ok(())
}

fn verdict(tally: &Tally, log: &Log) -> Result<(usize, usize)> {
    let tables = crate::log::count(tally.compared, "table", "tables");
    if tally.mismatches > 0 {
        return Err(Error::invalid(format!(
            "deep verify: {} of {tables} differ from the manifest",
            tally.mismatches
        )));
    }
    log.output(&format!(
        "- Deep verify: {tables} restored and compared, all equal"
    ));
    Ok((tally.compared, tally.mismatches))
}

/// The archive's `db/*` members: the profile's databases in profile order, then
/// anything else in name order.
fn dump_members_in_profile_order(archive: &ArchiveReader, profile: &Profile) -> Vec<String> {
    let present: Vec<String> = archive
        .dumps()
        .into_iter()
        .map(|m| m.name.clone())
        .collect();
    let mut ordered: Vec<String> = profile
        .databases
        .iter()
        .map(|d| d.member.clone())
        .chain(profile.sqlite.iter().map(|s| s.member.clone()))
        .filter(|m| present.contains(m))
        .collect();
    ordered.extend(
        present
            .into_iter()
            .filter(|m| !ordered.contains(m))
            .collect::<Vec<_>>(),
    );
    ordered
}

/// Fingerprints of the restored tables, each of the kind the manifest recorded
/// for it (the server's `h64:` of older archives, or the `xxh3sum:` of the
/// rows' COPY text under the dump's settings); without a record, the kind a
/// backup records now.
fn restored_fingerprints(
    client: &mut postgres::Client,
    expected: Option<&DatabaseRecord>,
) -> Result<Vec<TableChecksum>> {
    let settings = expected
        .and_then(|e| e.row_text.as_ref())
        .map(|r| RowTextSettings {
            timezone: r.timezone.clone(),
            bytea_output: r.bytea_output.clone(),
        })
        .unwrap_or_default();
    pg::inspect::table_fingerprints_of_kind(client, &settings, |schema, name, _| {
        expected
            .and_then(|e| {
                e.tables
                    .iter()
                    .find(|t| t.schema == schema && t.name == name)
            })
            .and_then(|t| FingerprintKind::of(&t.checksum))
            .unwrap_or(FingerprintKind::RowSum)
    })
}
