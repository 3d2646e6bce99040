//! Verify: prove an archive is intact and restorable without touching any
//! database server: member checksums, the version rule, every dump readable
//! (`pg_restore --list` of custom dumps, a complete SQL script for plain ones),
//! and the profile's forbidden-setting check. `deep` restores every database
//! into a throwaway cluster and compares it with the manifest.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::archive::{ArchiveReader, Codec, DumpFormat, ReadLimits};
use crate::log::Log;
use crate::ops::workdir::check_free_space;
use crate::ops::{VerifyRequest, WorkDir};
use crate::pg::{self, command::ClientCommand, PgTools};
use crate::profile::ForbiddenOption;
use crate::{Error, IoContext, Result};

/// What verify found.
#[derive(Debug)]
pub struct VerifyOutcome {
    pub version: String,
    /// Dump members checked.
    pub dumps: Vec<String>,
    /// Tables compared by a deep verify, and how many differed.
    pub deep_tables: usize,
    pub deep_mismatches: usize,
}

pub fn run(req: &VerifyRequest, log: &Log) -> Result<VerifyOutcome> {
    let env = &req.env;
    log.output("Verifying:");
    log.output(&format!("- Unpacking file '{}'", req.file.display()));
    // Before anything is written: room to unpack the archive, and for a deep
    // verify the throwaway cluster too (its own floor, and the restored
    // databases, which take a few times their dumps' size).
    let archive_size = std::fs::metadata(&req.file)
        .map(|m| m.len())
        .context(|| format!("read {}", req.file.display()))?;
    let (needed, what) = match req.deep {
        false => (archive_size, "unpacking the archive"),
        true => (
            archive_size + CLUSTER_FLOOR + DEEP_FACTOR * archive_size,
            "unpacking the archive and deep verify's throwaway cluster",
        ),
    };
    check_free_space(&req.tmpdir, needed, what)?;
    let work = WorkDir::new(&req.tmpdir)?;
    log.line(&format!(
        "Opening tarball {} to {}",
        req.file.display(),
        work.path().display()
    ));
    let archive = ArchiveReader::open_in(&req.file, work.path(), ReadLimits::default())?;
    log.line(&format!(
        "Verified {} of every member",
        archive.hash_kind().file_name()
    ));
    log.line("Verifying version");
    match &req.installed_version {
        Some(installed) => crate::profile::check_restore_version(
            &env.profile.version,
            archive.version(),
            installed,
        )?,
        None => log.line(&format!(
            "Installed version unknown: the archive's version {} was not checked against it",
            archive.version()
        )),
    }
    // A dump the profile does not know could be checked neither for
    // readability nor deeply: verifying the rest would report success for an
    // archive that was not verified.
    let unknown: Vec<String> = archive
        .dumps()
        .into_iter()
        .map(|m| m.name.clone())
        .filter(|m| {
            !env.profile.databases.iter().any(|d| &d.member == m)
                && !env.profile.sqlite.iter().any(|s| &s.member == m)
        })
        .collect();
    if !unknown.is_empty() {
        let made_with = archive
            .manifest()
            .map(|m| format!("; the archive was made with profile '{}'", m.profile))
            .unwrap_or_default();
        let what = if unknown.len() == 1 {
            "a database"
        } else {
            "databases"
        };
        return Err(Error::usage(format!(
            "not verified: {} (not {what} of the {} profile{made_with}); verify with the profile the archive was made with (--profile)",
            unknown.join(", "),
            env.profile.name
        )));
    }
    let tools = PgTools::newest()?;
    let mut dumps = Vec::new();
    for member in archive
        .members()
        .map(|m| m.name.clone())
        .collect::<Vec<_>>()
    {
        if !member.starts_with("db/") {
            continue;
        }
        let component = env.profile.databases.iter().find(|d| d.member == member);
        let Some(db) = component else {
            if env.profile.sqlite.iter().any(|s| s.member == member) {
                check_sqlite(&archive.member_path(&member).expect("listed member"))?;
                dumps.push(member);
            }
            continue;
        };
        let name = archive
            .manifest()
            .and_then(|m| m.database(&member))
            .map(|d| d.database.clone())
            .or_else(|| env.database_params(db).ok().flatten().map(|p| p.database))
            .unwrap_or_else(|| member.clone());
        log.output(&format!("- {} database '{name}'", db.restore_label()));
        let settings = archive.config().get(&db.archive_config_prefix);
        let path = archive.member_path(&member).expect("listed member");
        let forbidden = env
            .profile
            .verify
            .as_ref()
            .filter(|f| f.database == db.scope);
        check_dump(
            &tools,
            &path,
            settings.format,
            settings.compressor,
            forbidden,
            work.path(),
            log,
        )
        .map_err(|e| {
            Error::invalid(format!(
                "Errors while checking the dump of database '{name}' ({member}): {e}"
            ))
        })?;
        dumps.push(member);
    }
    let (deep_tables, deep_mismatches) = if req.deep {
        deep_verify(&archive, &env.profile, &req.tmpdir, work.path(), log)?
    } else {
        (0, 0)
    };
    Ok(VerifyOutcome {
        version: archive.version().to_string(),
        dumps,
        deep_tables,
        deep_mismatches,
    })
}

/// The archive's `db/*` members: the profile's databases in profile order, then
/// anything else in name order.
fn dump_members_in_profile_order(
    archive: &ArchiveReader,
    profile: &crate::profile::Profile,
) -> Vec<String> {
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

/// A dump ready for pg_restore: the member itself, or its decompressed copy.
pub fn seekable_dump(path: &Path, codec: Codec, work: &Path) -> Result<PathBuf> {
    if codec == Codec::None {
        return Ok(path.to_path_buf());
    }
    let out_path = work.join(format!(
        "{}.uncompressed",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("dump")
    ));
    let input = std::fs::File::open(path).context(|| format!("open {}", path.display()))?;
    let mut decoder = codec.decoder(BufReader::with_capacity(1 << 20, input))?;
    let mut out =
        std::fs::File::create(&out_path).context(|| format!("create {}", out_path.display()))?;
    std::io::copy(&mut decoder, &mut out).map_err(|e| {
        Error::invalid(format!(
            "{} does not decompress with {}: {e}",
            path.display(),
            codec.option_name()
        ))
    })?;
    Ok(out_path)
}

fn check_dump(
    tools: &PgTools,
    path: &Path,
    format: DumpFormat,
    codec: Codec,
    forbidden: Option<&ForbiddenOption>,
    work: &Path,
    log: &Log,
) -> Result<()> {
    match format {
        DumpFormat::Custom => {
            let dump = seekable_dump(path, codec, work)?;
            let toc = pg::restore::list_toc(tools, &dump)?;
            log.line(&format!("{}: {} TOC entries", path.display(), toc.len()));
            if let Some(f) = forbidden {
                let (schema, table) = f.table.split_once('.').unwrap_or(("public", &f.table));
                let mut cmd = ClientCommand::offline(tools, "pg_restore");
                cmd.args(["-f", "-", "-a", "-n", schema, "-t", table])
                    .arg(&dump);
                let (finished, stdout) = cmd.output()?;
                if !finished.success() {
                    return Err(finished.failure("reading the data"));
                }
                scan_forbidden(&mut &stdout[..], f)?;
            }
            if dump != path {
                let _ = std::fs::remove_file(&dump);
            }
            Ok(())
        }
        DumpFormat::Plain => {
            let input = std::fs::File::open(path).context(|| format!("open {}", path.display()))?;
            let mut decoder = codec.decoder(BufReader::with_capacity(1 << 20, input))?;
            let complete = scan_plain(&mut decoder, forbidden)?;
            if !complete {
                return Err(Error::invalid(
                    "the SQL script is incomplete (no 'PostgreSQL database dump complete' line)",
                ));
            }
            Ok(())
        }
    }
}

/// Read a plain dump to its end; true when pg_dump's closing line is there.
fn scan_plain(sql: &mut dyn Read, forbidden: Option<&ForbiddenOption>) -> Result<bool> {
    let mut reader = BufReader::with_capacity(1 << 20, sql);
    let mut complete = false;
    let mut copy: Option<CopyBlock> = None;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::invalid(format!("cannot read the SQL script: {e}")))?;
        if n == 0 {
            break;
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        if let Some(block) = &copy {
            if text == "\\." {
                copy = None;
            } else if let Some(f) = forbidden {
                block.check_row(text, f)?;
            }
            continue;
        }
        if text.starts_with("-- PostgreSQL database dump complete") {
            complete = true;
        }
        if let Some(f) = forbidden {
            copy = CopyBlock::start(text, f);
        }
    }
    Ok(complete)
}

fn scan_forbidden(sql: &mut dyn Read, f: &ForbiddenOption) -> Result<()> {
    scan_plain(sql, Some(f)).map(|_| ())
}

/// The columns of a `COPY <table> (...) FROM stdin;` block of the forbidden table.
struct CopyBlock {
    key: usize,
    value: usize,
}

impl CopyBlock {
    /// Matches `COPY public.vdc_options (…)` as pg_dump 15 writes it, and the
    /// unqualified `COPY vdc_options (…)` of older versions.
    fn start(line: &str, f: &ForbiddenOption) -> Option<CopyBlock> {
        let rest = line.strip_prefix("COPY ")?;
        let (name, rest) = rest.split_once(' ')?;
        let bare = f.table.rsplit('.').next().unwrap_or(&f.table);
        if name != f.table && name != bare {
            return None;
        }
        let cols = rest.strip_prefix('(')?.split_once(')')?.0;
        let cols: Vec<&str> = cols
            .split(',')
            .map(|c| c.trim().trim_matches('"'))
            .collect();
        Some(CopyBlock {
            key: cols.iter().position(|c| *c == f.key_column)?,
            value: cols.iter().position(|c| *c == f.value_column)?,
        })
    }

    fn check_row(&self, row: &str, f: &ForbiddenOption) -> Result<()> {
        let fields: Vec<&str> = row.split('\t').collect();
        let key = fields.get(self.key).copied().unwrap_or("");
        let value = fields.get(self.value).copied().unwrap_or("\\N");
        if key == f.forbidden_key && !value.is_empty() && value != "\\N" {
            return Err(Error::invalid(f.message.clone()));
        }
        Ok(())
    }
}

fn check_sqlite(path: &Path) -> Result<()> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| {
                Error::invalid(format!("{}: not an SQLite database: {e}", path.display()))
            })?;
    let result: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| Error::invalid(format!("{}: {e}", path.display())))?;
    if result != "ok" {
        return Err(Error::invalid(format!(
            "{}: SQLite integrity check: {result}",
            path.display()
        )));
    }
    Ok(())
}

/// What deep verify's throwaway cluster takes before any database is restored
/// (the data directory of initdb, its WAL), and then per byte of dump.
const CLUSTER_FLOOR: u64 = 96 << 20;
const DEEP_FACTOR: u64 = 3;

/// The unprivileged role that restores an archive's dumps in deep verify.
const VERIFY_ROLE: &str = "holdfast_verify";

/// Restore every database of the archive into a throwaway cluster as an
/// unprivileged role and compare row counts and checksums with the manifest.
fn deep_verify(
    archive: &ArchiveReader,
    profile: &crate::profile::Profile,
    tmpdir: &Path,
    work: &Path,
    log: &Log,
) -> Result<(usize, usize)> {
    // Now that the dumps are unpacked: room for the cluster and what it restores.
    let dumps: u64 = archive
        .members()
        .filter(|m| m.name.starts_with("db/"))
        .map(|m| m.size)
        .sum();
    check_free_space(
        tmpdir,
        CLUSTER_FLOOR + DEEP_FACTOR * dumps,
        "deep verify's throwaway cluster",
    )?;
    // The cluster's directory under --tmpdir, removed after the cluster
    // (declared first, dropped last). The server user must traverse it.
    let base = crate::leftovers::HeldDir::new(tmpdir, "holdfast-cluster.", 10).context(|| {
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
    log.output(&format!(
        "- Deep verify: restoring into a throwaway PostgreSQL {} cluster",
        cluster.major()
    ));
    let superuser = |database: &str| pg::ConnParams {
        host: cluster.socket_dir().display().to_string(),
        port: cluster.port(),
        user: cluster.superuser().into(),
        database: database.into(),
        password: None,
        secured: false,
        secured_validation: false,
    };
    let tools = PgTools::in_dir(cluster.bindir())?;
    let manifest = archive.manifest();
    // The dumps are restored by an unprivileged role: a forged dump's
    // `COPY ... TO PROGRAM` or untrusted function then fails instead of
    // running on this machine as the cluster's system user.
    let restorer = |database: &str| pg::ConnParams {
        user: VERIFY_ROLE.into(),
        ..superuser(database)
    };
    let mut admin = pg::connect(&superuser("postgres"))?;
    admin
        .batch_execute(&format!(
            "CREATE ROLE {VERIFY_ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE"
        ))
        .map_err(|e| Error::postgres(pg::error_text(&e)))?;
    if let Some(m) = manifest {
        for db in &m.databases {
            for role in &db.roles {
                let exists = admin
                    .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role.name])
                    .map_err(|e| Error::postgres(pg::error_text(&e)))?
                    .is_some();
                if !exists {
                    // Only the name is taken from the archive: the recorded
                    // CREATE ROLE text is the archive's and would run as the
                    // superuser. Owners and grantees need nothing more.
                    let sql = format!("CREATE ROLE {} NOLOGIN", pg::sql::quote_ident(&role.name));
                    admin.batch_execute(&sql).map_err(|e| {
                        Error::postgres(format!(
                            "creating role {}: {}",
                            role.name,
                            pg::error_text(&e)
                        ))
                    })?;
                }
                // Membership lets the restorer give objects to their owners.
                if role.name != VERIFY_ROLE {
                    let grant = format!(
                        "GRANT {} TO {VERIFY_ROLE}",
                        pg::sql::quote_ident(&role.name)
                    );
                    admin
                        .batch_execute(&grant)
                        .map_err(|e| Error::postgres(pg::error_text(&e)))?;
                }
            }
        }
    }
    let mut compared = 0;
    let mut mismatches = 0;
    log.output(&format!(
        "  {:<12} {:<36} {:>9} {:>9}  {}",
        "database", "table", "rows", "restored", "checksum"
    ));
    let members = dump_members_in_profile_order(archive, profile);
    for (i, member) in members.into_iter().enumerate() {
        let Some(db) = profile.databases.iter().find(|d| d.member == member) else {
            continue;
        };
        let settings = archive.config().get(&db.archive_config_prefix);
        let name = format!("verify_{i}");
        cluster
            .execute(
                "postgres",
                &format!(
                    "CREATE DATABASE {name} OWNER {VERIFY_ROLE} TEMPLATE template0 ENCODING 'UTF8'"
                ),
            )
            .map_err(|e| Error::failed(e.to_string()))?;
        // Extensions need the superuser; the dump's own CREATE EXTENSION
        // statements then find them (pg_dump writes IF NOT EXISTS).
        let recorded = manifest.and_then(|m| m.database(&member));
        if let Some(record) = recorded {
            let mut client = pg::connect(&superuser(&name))?;
            for extension in record
                .extensions
                .iter()
                .filter_map(|e| e.split_whitespace().next())
            {
                let sql = format!(
                    "CREATE EXTENSION IF NOT EXISTS {} CASCADE",
                    pg::sql::quote_ident(extension)
                );
                client.batch_execute(&sql).map_err(|e| {
                    Error::failed(format!(
                        "deep verify cannot create extension {extension} in the throwaway cluster: {}; install the package that provides it for PostgreSQL {} on this machine, or verify without --deep",
                        pg::error_text(&e),
                        cluster.major()
                    ))
                })?;
            }
            // Giving an object to a role needs that role's CREATE right on
            // the schema; since PostgreSQL 15 `public` grants it to nobody.
            for role in &record.roles {
                let sql = format!(
                    "GRANT CREATE ON SCHEMA public TO {}",
                    pg::sql::quote_ident(&role.name)
                );
                client
                    .batch_execute(&sql)
                    .map_err(|e| Error::postgres(pg::error_text(&e)))?;
            }
        }
        let target = restorer(&name);
        let path = archive.member_path(&member).expect("listed member");
        match settings.format {
            DumpFormat::Custom => {
                let dump = seekable_dump(&path, settings.compressor, work)?;
                pg::restore::restore_custom(
                    &target,
                    &tools,
                    &dump,
                    &pg::restore::RestoreOptions {
                        jobs: 2,
                        restore_permissions: manifest.is_some(),
                    },
                )?;
            }
            DumpFormat::Plain => {
                let input =
                    std::fs::File::open(&path).context(|| format!("open {}", path.display()))?;
                let mut sql = settings
                    .compressor
                    .decoder(BufReader::with_capacity(1 << 20, input))?;
                pg::restore::restore_plain(&target, &tools, &mut sql)?;
            }
        }
        let mut client = pg::connect(&target)?;
        let expected = manifest.and_then(|m| m.database(&member));
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
                    mismatches += 1;
                    (x.row_count.to_string(), "DIFFERENT")
                }
                None if expected.is_some() => {
                    mismatches += 1;
                    ("-".into(), "NOT IN MANIFEST")
                }
                None => ("-".into(), "restored (no manifest to compare)"),
            };
            compared += 1;
            log.output(&format!(
                "  {:<12} {:<36} {:>9} {:>9}  {verdict}",
                db.scope, qualified, rows, t.rows
            ));
        }
        if let Some(e) = expected {
            for x in e.tables.iter().filter(|x| {
                !restored
                    .iter()
                    .any(|t| t.schema == x.schema && t.name == x.name)
            }) {
                mismatches += 1;
                log.output(&format!(
                    "  {:<12} {:<36} {:>9} {:>9}  MISSING",
                    db.scope,
                    format!("{}.{}", x.schema, x.name),
                    x.row_count,
                    "-"
                ));
            }
        }
    }
    if mismatches > 0 {
        return Err(Error::invalid(format!(
            "deep verify: {mismatches} of {} differ from the manifest",
            crate::log::count(compared, "table", "tables")
        )));
    }
    log.output(&format!(
        "- Deep verify: {} restored and compared, all equal",
        crate::log::count(compared, "table", "tables")
    ));
    Ok((compared, mismatches))
}

/// Fingerprints of the restored tables, each of the kind the manifest recorded
/// for it (the server's `h64:` of older archives, or the `xxh3sum:` of the
/// rows' COPY text under the dump's settings); without a record, the kind a
/// backup records now.
fn restored_fingerprints(
    client: &mut postgres::Client,
    expected: Option<&crate::archive::manifest::DatabaseRecord>,
) -> Result<Vec<pg::inspect::TableChecksum>> {
    use pg::inspect::FingerprintKind;
    let settings = expected
        .and_then(|e| e.row_text.clone())
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
