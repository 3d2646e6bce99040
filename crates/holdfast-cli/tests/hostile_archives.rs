//! Hostile archives end to end (damaged ones and bad targets are
//! `restore_refusals.rs`): dumps that try to run shell commands through psql
//! or to reach outside their database, a `files` member that escapes the
//! install root, and shell code in `config`. Each restore is refused before
//! anything is written, or contained in the target database; no command from
//! the archive ever runs.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use holdfast::archive::HashKind;
use support::*;

/// Unpack an archive (any compressor) into `dir` with the system tar.
fn unpack(archive: &Path, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let st = Command::new("tar")
        .arg("-xaf")
        .arg(archive)
        .arg("-C")
        .arg(dir)
        .status()
        .unwrap();
    assert!(st.success());
}

/// Replace one member of an unpacked archive, keep its sha256sum and manifest
/// consistent (a forger can), and pack it again uncompressed.
fn forge(dir: &Path, member: &str, data: &[u8], out: &Path) {
    std::fs::write(dir.join(member), data).unwrap();
    let digest = |name: &str| HashKind::Sha256.digest_file(&dir.join(name)).unwrap();
    let manifest_path = dir.join("manifest.json");
    if manifest_path.exists() {
        let mut m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
        for rec in m["members"].as_array_mut().unwrap() {
            if rec["name"] == member {
                rec["size"] = (data.len() as u64).into();
                rec["sha256"] = digest(member).into();
            }
        }
        std::fs::write(&manifest_path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    }
    let sums: String = std::fs::read_to_string(dir.join("sha256sum"))
        .unwrap()
        .lines()
        .map(|l| match l.split_once("  ") {
            Some((_, name)) if name == member || name == "manifest.json" => {
                format!("{}  {name}\n", digest(name))
            }
            _ => format!("{l}\n"),
        })
        .collect();
    std::fs::write(dir.join("sha256sum"), sums).unwrap();
    let st = Command::new("tar")
        .arg("-cf")
        .arg(out)
        .arg("-C")
        .arg(dir)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
}

/// Every role on the server: a restore must not add one.
fn roles(s: &Sample) -> String {
    s.cluster
        .query_text(
            "postgres",
            "SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles",
        )
        .unwrap()
        .unwrap_or_default()
}

fn marker(s: &Sample, name: &str) -> PathBuf {
    let m = s.path(name);
    assert!(!m.exists());
    m
}

/// A backup of the engine database as a plain SQL dump, unpacked, and the
/// machine cleaned for a restore.
fn plain_backup_unpacked(s: &Sample) -> (PathBuf, String) {
    s.engine_backup(&[
        "--mode=backup",
        "--scope=db",
        "--db-dump-format=plain",
        "--archive-compressor=None",
        "--file=plain.tar",
        "--log=b.log",
    ])
    .ok();
    s.clean_databases();
    let dir = s.path("unpacked");
    unpack(&s.path("plain.tar"), &dir);
    let sql = std::fs::read_to_string(dir.join("db/engine_backup.db")).unwrap();
    assert!(sql.contains("PostgreSQL database dump complete"));
    (dir, sql)
}

/// `sql` with `inject` put in after the `SET` lines at the top. A forger
/// knows the key of the dump's own `\restrict KEY` line, so it leaves that
/// restricted mode first.
fn inject_after_sets(sql: &str, inject: &str) -> String {
    let at = sql.find("\nSET ").expect("a SET line") + 1;
    let unrestrict = sql
        .lines()
        .find_map(|l| l.strip_prefix("\\restrict "))
        .map(|key| format!("\\unrestrict {key}\n"))
        .unwrap_or_default();
    format!("{}{unrestrict}{inject}\n{}", &sql[..at], &sql[at..])
}

#[test]
fn psql_meta_commands_in_a_plain_dump_are_refused_and_never_run() {
    let s = Sample::start();
    let (dir, sql) = plain_backup_unpacked(&s);
    let before = tree(&s.root());
    let roles_before = roles(&s);

    // A forged archive with the original dump restores: the check refuses
    // only what psql would run outside SQL.
    forge(
        &dir,
        "db/engine_backup.db",
        sql.as_bytes(),
        &s.path("same.tar"),
    );

    let m = marker(&s, "pwned");
    let m = m.display();
    let attempts = [
        format!("\\! touch {m}"),
        format!("SELECT 1; \\! touch {m}"),
        format!("\\o {m}\nSELECT 1;"),
        format!("\\copy (SELECT 1) TO PROGRAM 'touch {m}'"),
        format!("\\setenv X 1\n\\! touch {m}"),
        format!("SELECT 'a' \\g {m}"),
        format!("/* c */ \\w {m}"),
        format!("SELECT $$x$$; \\! touch {m}"),
        format!("\\i {m}"),
        format!("\\connect postgres\n\\! touch {m}"),
    ];
    for (i, inject) in attempts.iter().enumerate() {
        let forged = s.path(&format!("evil{i}.tar"));
        forge(
            &dir,
            "db/engine_backup.db",
            inject_after_sets(&sql, inject).as_bytes(),
            &forged,
        );
        let r = s.engine_backup(&[
            "--mode=restore",
            "--scope=db",
            &format!("--file={}", forged.display()),
            &format!("--log=r{i}.log"),
        ]);
        assert!(!s.path("pwned").exists(), "{inject:?} ran a command");
        // Refused by holdfast when a line starts with one, by psql's
        // restricted mode (our key) when it hides mid-line.
        assert_eq!(r.code, 1, "{inject:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("psql meta-command")
                || r.stderr.contains("backslash commands are restricted"),
            "{inject:?}: {}",
            r.stderr
        );
        assert_eq!(tree(&s.root()), before, "install root unchanged");
        assert!(
            checksums(&s.engine("engine")).is_empty(),
            "engine untouched"
        );
        assert_eq!(roles(&s), roles_before);
    }
    eprintln!(
        "{} plain dumps with psql meta-commands refused",
        attempts.len()
    );

    s.engine_backup(&[
        "--mode=restore",
        "--scope=db",
        "--file=same.tar",
        "--log=ok.log",
    ])
    .ok();
    assert!(!checksums(&s.engine("engine")).is_empty());
}

#[test]
fn a_custom_dump_reaching_outside_its_database_is_refused_or_contained() {
    let s = Sample::start();
    // The source database grants to a role the target server will not have,
    // holds an extra schema, and hands a function to the superuser.
    for sql in [
        "CREATE ROLE intruder NOLOGIN",
        "CREATE SCHEMA extra AUTHORIZATION engine",
        "CREATE TABLE extra.t (x int)",
        "INSERT INTO extra.t VALUES (1), (2)",
        "ALTER TABLE extra.t OWNER TO engine",
        "GRANT SELECT ON extra.t TO intruder",
    ] {
        s.cluster.execute("engine", sql).unwrap();
    }
    s.engine_backup(&[
        "--mode=backup",
        "--scope=db",
        "--file=grants",
        "--log=b.log",
    ])
    .ok();
    s.clean_databases();
    s.cluster.execute("postgres", "DROP ROLE intruder").unwrap();
    let before = tree(&s.root());
    let roles_before = roles(&s);

    // With permissions: the missing grantee is found before the first write.
    s.engine_backup(&[
        "--mode=restore",
        "--scope=db",
        "--file=grants",
        "--log=r1.log",
        "--restore-permissions",
    ])
    .fails_with("role 'intruder' needed by the dump of database 'engine'");
    assert_eq!(tree(&s.root()), before);
    assert!(checksums(&s.engine("engine")).is_empty());
    assert_eq!(roles(&s), roles_before, "no role was created");

    // Without permissions: everything lands inside the target database, owned
    // by the application's role; no role appears, the other database is empty.
    s.engine_backup(&[
        "--mode=restore",
        "--scope=db",
        "--file=grants",
        "--log=r2.log",
        "--no-restore-permissions",
    ])
    .ok();
    assert_eq!(roles(&s), roles_before, "no role was created");
    let owner = s
        .cluster
        .query_text(
            "engine",
            "SELECT nspowner::regrole::text || ':' || (SELECT count(*) FROM extra.t) \
             FROM pg_namespace WHERE nspname = 'extra'",
        )
        .unwrap();
    assert_eq!(owner.as_deref(), Some("engine:2"));
    assert!(checksums(&s.dwh("ovirt_engine_history")).is_empty());
}

#[test]
fn a_dump_handing_objects_to_the_superuser_is_rolled_back() {
    let s = Sample::start();
    let superuser = s.cluster.superuser().to_string();
    s.cluster
        .execute(
            "engine",
            &format!(
                "CREATE FUNCTION public.escalate() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1'; \
                 ALTER FUNCTION public.escalate() OWNER TO \"{superuser}\""
            ),
        )
        .unwrap();
    s.engine_backup(&[
        "--mode=backup",
        "--scope=db",
        "--file=escalate",
        "--log=b.log",
    ])
    .ok();
    s.clean_databases();
    let before = tree(&s.root());
    let roles_before = roles(&s);
    let r = s.engine_backup(&[
        "--mode=restore",
        "--scope=db",
        "--file=escalate",
        "--log=r.log",
        "--restore-permissions",
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("FATAL:"), "{}", r.stderr);
    assert_eq!(tree(&s.root()), before);
    assert!(checksums(&s.engine("engine")).is_empty(), "rolled back");
    let owned_by_superuser = s
        .cluster
        .query_text(
            "engine",
            "SELECT count(*) FROM pg_proc WHERE proname = 'escalate'",
        )
        .unwrap();
    assert_eq!(owned_by_superuser.as_deref(), Some("0"));
    assert_eq!(roles(&s), roles_before);
}

#[test]
fn a_files_member_escaping_the_install_root_is_refused_before_any_write() {
    let s = Sample::start();
    s.engine_backup(&[
        "--mode=backup",
        "--archive-compressor=None",
        "--files-compressor=None",
        "--file=good.tar",
        "--log=b.log",
    ])
    .ok();
    s.clean_databases();
    let dir = s.path("unpacked");
    unpack(&s.path("good.tar"), &dir);
    let outside = s.path("outside");
    std::fs::create_dir(&outside).unwrap();
    let before = tree(&s.root());

    let entry = |name: &str, ty: tar::EntryType, link: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(ty);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_cksum();
        let mut out = h.as_bytes().to_vec();
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
        out
    };
    let escape = outside.display().to_string();
    let attempts: Vec<(Vec<Vec<u8>>, &str)> = vec![
        (
            vec![
                entry("etc/ovirt-engine/", tar::EntryType::Directory, "", b""),
                entry(
                    "etc/ovirt-engine/esc",
                    tar::EntryType::Symlink,
                    &escape,
                    b"",
                ),
                entry(
                    "etc/ovirt-engine/esc/pwned",
                    tar::EntryType::Regular,
                    "",
                    b"x",
                ),
            ],
            "through the symlink",
        ),
        (
            vec![entry("../outside/pwned", tar::EntryType::Regular, "", b"x")],
            "leaves the install root",
        ),
        (
            vec![entry(
                &format!("{escape}/pwned"),
                tar::EntryType::Regular,
                "",
                b"x",
            )],
            "absolute path",
        ),
        (
            vec![entry(
                "etc/pwned",
                tar::EntryType::Link,
                "../outside/pwned",
                b"",
            )],
            "leaves the install root",
        ),
        (
            vec![entry("etc/null", tar::EntryType::Char, "", b"")],
            "character device",
        ),
    ];
    let count = attempts.len();
    for (i, (entries, want)) in attempts.into_iter().enumerate() {
        let mut files: Vec<u8> = entries.concat();
        files.extend_from_slice(&[0u8; 1024]);
        let forged = s.path(&format!("escape{i}.tar"));
        forge(&dir, "files", &files, &forged);
        s.engine_backup(&[
            "--mode=restore",
            &format!("--file={}", forged.display()),
            &format!("--log=r{i}.log"),
            "--restore-permissions",
        ])
        .fails_with(want);
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        assert_eq!(tree(&s.root()), before);
        assert!(checksums(&s.engine("engine")).is_empty());
    }
    eprintln!("{count} escaping files members refused");
}

#[test]
fn shell_code_in_the_config_member_is_refused_and_never_run() {
    let s = Sample::start();
    s.engine_backup(&["--mode=backup", "--file=good", "--log=b.log"])
        .ok();
    s.clean_databases();
    let dir = s.path("unpacked");
    unpack(&s.path("good"), &dir);
    let before = tree(&s.root());
    let m = marker(&s, "pwned");
    let m = m.display();
    for (i, text) in [
        format!("DB_DUMP_FORMAT=$(touch {m})\n"),
        format!("DB_DUMP_COMPRESSOR=`touch {m}`\n"),
        format!("DB_DUMP_FORMAT=custom\ntouch {m}\n"),
    ]
    .iter()
    .enumerate()
    {
        let forged = s.path(&format!("config{i}.tar"));
        forge(&dir, "config", text.as_bytes(), &forged);
        let file = format!("--file={}", forged.display());
        s.engine_backup(&["--mode=verify", &file, &format!("--log=v{i}.log")])
            .fails_with("config: line");
        s.engine_backup(&[
            "--mode=restore",
            &file,
            &format!("--log=r{i}.log"),
            "--restore-permissions",
        ])
        .fails_with("config: line");
        assert!(!s.path("pwned").exists(), "{text:?} ran");
        assert_eq!(tree(&s.root()), before);
    }
}

#[test]
fn deep_verify_never_runs_role_sql_from_the_manifest() {
    let s = Sample::start();
    s.holdfast(&["backup", "--file", "env.backup"]).ok();
    let dir = s.path("unpacked");
    unpack(&s.path("env.backup"), &dir);
    // A directory the throwaway cluster's server user could write into, so that
    // an executed COPY ... TO PROGRAM would leave its mark.
    let open = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let marker = open.path().join("pwned");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let mut forged_roles = 0;
    for db in manifest["databases"].as_array_mut().unwrap() {
        for role in db["roles"].as_array_mut().unwrap() {
            let name = role["name"].as_str().unwrap().replace('"', "\"\"");
            role["sql"] = format!(
                "CREATE ROLE \"{name}\" SUPERUSER; COPY (SELECT 1) TO PROGRAM 'touch {}'",
                marker.display()
            )
            .into();
            forged_roles += 1;
        }
    }
    assert!(forged_roles > 0, "the manifest records roles");
    forge(
        &dir,
        "manifest.json",
        &serde_json::to_vec_pretty(&manifest).unwrap(),
        &s.path("forged.backup"),
    );
    let r = s.holdfast(&["verify", "--deep", "forged.backup"]);
    r.ok();
    assert!(!marker.exists(), "role SQL from the archive ran");
    assert!(r.stdout.contains("all equal"), "{}", r.stdout);
}

#[test]
fn deep_verify_restores_as_an_unprivileged_role_so_forged_sql_cannot_run_programs() {
    let s = Sample::start();
    s.holdfast(&[
        "backup",
        "--dump-format",
        "plain",
        "--compressor",
        "none",
        "--file",
        "plain.backup",
    ])
    .ok();
    let dir = s.path("unpacked");
    unpack(&s.path("plain.backup"), &dir);
    let open = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let marker = open.path().join("pwned");
    let sql = std::fs::read_to_string(dir.join("db/engine_backup.db")).unwrap();
    // Plain SQL, no psql meta-command: only the restoring role's rights stop it.
    let forged = inject_after_sets(
        &sql,
        &format!("COPY (SELECT 1) TO PROGRAM 'touch {}';", marker.display()),
    )
    .replace("\\unrestrict", "-- unrestrict");
    forge(
        &dir,
        "db/engine_backup.db",
        forged.as_bytes(),
        &s.path("forged.backup"),
    );
    let r = s.holdfast(&["verify", "--deep", "forged.backup"]);
    assert!(!marker.exists(), "COPY TO PROGRAM from the archive ran");
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stderr.contains("pg_execute_server_program") || r.stderr.contains("permission denied"),
        "{}",
        r.stderr
    );
}
