//! oVirt's two tree layouts (engine and DWH), run by holdfast and by a re-statement
//! of schema.sh's rules in bash (tests/fixtures/schema/schemash-rules.sh), each on
//! its own database of one cluster, compared object by object after every command:
//! fresh apply, refresh, the apply after it, and the upgrade of an older
//! release's result to the newer tree.

mod schema_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use holdfast::profile::Profile;
use holdfast::schema::{self, ApplyOptions, Layout};
use schema_support::ovirt_like::{dwh_tree, engine_tree, Release};
use schema_support::*;

const JUDGE_DB: &str = "judge";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schema")
}

fn layouts() -> Vec<Layout> {
    Profile::ovirt_engine().schema_layouts
}

fn with_judge_db(db: &Db) {
    db.cluster.create_database(JUDGE_DB, APP_USER).unwrap();
}

/// Run schemash-rules.sh `command` on `database` with the hooks of `custom`.
fn judge(db: &Db, database: &str, tree: &Path, command: &str, custom: &str) {
    let scratch = tempfile::tempdir().unwrap();
    let pgpass = scratch.path().join("pgpass");
    let escaped = APP_PASSWORD.replace('\\', "\\\\").replace(':', "\\:");
    std::fs::write(&pgpass, format!("*:*:*:{APP_USER}:{escaped}\n")).unwrap();
    std::fs::set_permissions(
        &pgpass,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600),
    )
    .unwrap();
    let out = Command::new("bash")
        .arg(fixtures().join("schemash-rules.sh"))
        .arg(tree)
        .arg(command)
        .arg(fixtures().join(custom))
        .env("PATH", path_with_psql(db))
        .env("PGHOST", db.cluster.host())
        .env("PGPORT", db.cluster.port().to_string())
        .env("PGUSER", APP_USER)
        .env("PGDATABASE", database)
        .env("PGPASSFILE", &pgpass)
        .env_remove("PGPASSWORD")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "schemash-rules.sh {command} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn path_with_psql(db: &Db) -> String {
    format!(
        "{}:{}",
        db.cluster.bindir().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Everything schema.sh's result is judged by: tables and columns, views,
/// functions, indexes, constraints, sequences, schemas other than holdfast's
/// own bookkeeping one, the database's settings, `schema_version` rows, and every
/// table's rows (ids generated per install read as UUID).
fn inventory(db: &Db, database: &str) -> String {
    let sql = String::from(
        "SELECT string_agg(x, E'\\n' ORDER BY x) FROM (
           SELECT 'table:' || relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'
           UNION ALL SELECT 'col:' || table_name || '.' || column_name || ':' || data_type || ':'
                  || coalesce(character_maximum_length::text, '') || ':' || coalesce(column_default, '') || ':' || is_nullable
             FROM information_schema.columns WHERE table_schema = 'public'
           UNION ALL SELECT 'view:' || viewname || ':' || definition FROM pg_views WHERE schemaname = 'public'
           UNION ALL SELECT 'fn:' || p.oid::regprocedure::text || ':' || md5(p.prosrc)
             FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
           UNION ALL SELECT 'index:' || indexname || ':' || indexdef FROM pg_indexes WHERE schemaname = 'public'
           UNION ALL SELECT 'constraint:' || conrelid::regclass::text || ':' || conname || ':' || pg_get_constraintdef(oid)
             FROM pg_constraint WHERE connamespace = 'public'::regnamespace
           UNION ALL SELECT 'sequence:' || relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'S'
           UNION ALL SELECT 'schema:' || nspname FROM pg_namespace
             WHERE nspname NOT LIKE 'pg\\_%' AND nspname NOT IN ('information_schema', 'holdfast')
           UNION ALL SELECT 'setting:' || array_to_string(setconfig, ',') FROM pg_db_role_setting
             WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
           UNION ALL SELECT 'history:' || lpad(id::text, 4, '0') || ':' || version || ':' || script || ':'
                  || coalesce(checksum, '') || ':' || installed_by || ':' || state || ':' || current || ':' || coalesce(comment, '')
             FROM schema_version
           UNION ALL SELECT 'rows:' || c.relname || ':' || regexp_replace(
                    query_to_xml(format('SELECT * FROM public.%I t ORDER BY t::text', c.relname), false, true, '')::text,
                    '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', 'UUID', 'g')
             FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
               AND c.relname <> 'schema_version'
         ) s(x)"
    );
    db.cluster
        .query_text(database, &sql)
        .unwrap_or_else(|e| panic!("inventory of {database}: {e}"))
        .unwrap_or_default()
}

fn assert_same(db: &Db, when: &str) {
    let judge = inventory(db, JUDGE_DB);
    let ours = inventory(db, "engine");
    if judge != ours {
        let j: Vec<&str> = judge.lines().collect();
        let o: Vec<&str> = ours.lines().collect();
        let only_judge: Vec<&&str> = j.iter().filter(|l| !o.contains(l)).collect();
        let only_ours: Vec<&&str> = o.iter().filter(|l| !j.contains(l)).collect();
        panic!(
            "{when}: holdfast's database differs from schema.sh's\nonly after schema.sh:\n{}\nonly after holdfast:\n{}",
            only_judge.iter().map(|s| format!("  {s}")).collect::<Vec<_>>().join("\n"),
            only_ours.iter().map(|s| format!("  {s}")).collect::<Vec<_>>().join("\n"),
        );
    }
}

fn holdfast_apply(db: &Db, dir: &Path, layouts: Vec<Layout>) -> schema::ApplyReport {
    schema::apply(
        &db.params,
        dir,
        &ApplyOptions {
            layouts,
            ..ApplyOptions::default()
        },
        &mut Said::default().sink(),
    )
    .unwrap()
}

fn holdfast_refresh(db: &Db, dir: &Path) {
    schema::refresh(
        &db.params,
        dir,
        &layouts(),
        std::time::Duration::from_secs(5),
        &mut Said::default().sink(),
    )
    .unwrap();
}

fn q(db: &Db, database: &str, sql: &str) -> String {
    db.cluster
        .query_text(database, sql)
        .unwrap()
        .unwrap_or_default()
}

#[test]
fn engine_tree_fresh_apply_refresh_and_apply_again_match_schema_sh() {
    let db = database();
    with_judge_db(&db);
    let tree = tempfile::tempdir().unwrap();
    engine_tree(tree.path(), Release::New);

    let plan = schema::plan(&db.params, tree.path(), &layouts(), &Default::default()).unwrap();
    assert!(plan.fresh && plan.rebuild);

    judge(&db, JUDGE_DB, tree.path(), "apply", "custom-engine.sh");
    let report = holdfast_apply(&db, tree.path(), layouts());
    assert!(report.fresh);
    assert_same(&db, "fresh apply");
    // Per-install ids: new on every install, consistent across the tables.
    for database in ["engine", JUDGE_DB] {
        let dc = q(&db, database, "SELECT id::text FROM storage_pool");
        assert_ne!(dc, "00000002-0002-0002-0002-00000000021c");
        assert_eq!(
            q(&db, database, "SELECT storage_pool_id::text FROM cluster"),
            dc
        );
        let cluster = q(&db, database, "SELECT cluster_id::text FROM cluster");
        assert_ne!(cluster, "00000001-0001-0001-0001-0000000000d6");
        assert_eq!(
            q(&db, database, "SELECT cluster_id::text FROM images"),
            cluster
        );
    }
    assert_ne!(
        q(&db, "engine", "SELECT id::text FROM storage_pool"),
        q(&db, JUDGE_DB, "SELECT id::text FROM storage_pool")
    );
    assert_eq!(
        db.q("SELECT count(*) FROM pg_class WHERE relname LIKE 'holdfast%'"),
        "0",
        "holdfast's bookkeeping must stay out of public"
    );

    judge(&db, JUDGE_DB, tree.path(), "refresh", "custom-engine.sh");
    holdfast_refresh(&db, tree.path());
    assert_same(&db, "apply, refresh");
    assert_eq!(
        db.q("SELECT count(*) FROM pg_proc WHERE proname = 'update_enum_translator'"),
        "0"
    );

    judge(&db, JUDGE_DB, tree.path(), "apply", "custom-engine.sh");
    let report = holdfast_apply(&db, tree.path(), layouts());
    assert!(report.outcome.rebuilt, "the apply after a refresh rebuilds");
    assert_same(&db, "apply, refresh, apply");
    assert_eq!(
        db.q("SELECT count(*) FROM pg_proc WHERE proname = 'update_enum_translator'"),
        "1"
    );
}

#[test]
fn engine_tree_upgrade_of_an_older_release_matches_schema_sh() {
    let db = database();
    with_judge_db(&db);
    let old = tempfile::tempdir().unwrap();
    engine_tree(old.path(), Release::Old);
    let new = tempfile::tempdir().unwrap();
    engine_tree(new.path(), Release::New);
    // Both databases as schema.sh left them at the older release.
    judge(&db, JUDGE_DB, old.path(), "apply", "custom-engine.sh");
    judge(&db, "engine", old.path(), "apply", "custom-engine.sh");

    judge(&db, JUDGE_DB, new.path(), "apply", "custom-engine.sh");
    let mut said = Said::default();
    let report = schema::apply(
        &db.params,
        new.path(),
        &ApplyOptions {
            layouts: layouts(),
            ..ApplyOptions::default()
        },
        &mut said.sink(),
    )
    .unwrap();
    assert_eq!(report.to.unwrap().to_string(), "04020050");
    assert_eq!(report.outcome.skipped.len(), 1);
    // One drop before the first script and one rebuild after the last, though
    // the concurrent index splits the run.
    assert_eq!(
        said.0.iter().filter(|l| *l == "Creating views...").count(),
        1,
        "{:?}",
        said.0
    );
    assert!(said.contains("Running 'upgrade/04_02_0020_index_images_size.sql' on its own"));
    assert_same(&db, "upgrade from the older release");

    // A no-op re-apply changes nothing.
    let before = inventory(&db, "engine");
    let report = holdfast_apply(&db, new.path(), layouts());
    assert!(!report.outcome.rebuilt && report.outcome.installed.is_empty());
    assert_eq!(inventory(&db, "engine"), before);
}

#[test]
fn dwh_tree_fresh_and_upgrade_match_schema_sh() {
    let db = database();
    with_judge_db(&db);
    let old = tempfile::tempdir().unwrap();
    dwh_tree(old.path(), Release::Old);
    let new = tempfile::tempdir().unwrap();
    dwh_tree(new.path(), Release::New);

    // Fresh install of the newer tree.
    judge(&db, JUDGE_DB, new.path(), "apply", "custom-dwh.sh");
    let status = schema::status(&db.params, new.path(), &layouts()).unwrap();
    assert_eq!(status.layout, "oVirt DWH dbscripts");
    holdfast_apply(&db, new.path(), layouts());
    assert_same(&db, "DWH fresh apply");
    assert_eq!(
        db.count("SELECT count(*) FROM pg_views WHERE schemaname = 'public'"),
        4
    );

    // Upgrade from the older release's result: oVirt edited a released script.
    db.cluster
        .execute("postgres", "DROP DATABASE judge")
        .unwrap();
    db.cluster
        .execute("postgres", "DROP DATABASE engine")
        .unwrap();
    db.cluster.create_database("engine", APP_USER).unwrap();
    with_judge_db(&db);
    judge(&db, JUDGE_DB, old.path(), "apply", "custom-dwh.sh");
    judge(&db, "engine", old.path(), "apply", "custom-dwh.sh");
    judge(&db, JUDGE_DB, new.path(), "apply", "custom-dwh.sh");

    let script = "upgrade/04_01_0010_updated_history_id_to_bigint.sql";
    let recorded = db.q(&format!(
        "SELECT checksum FROM schema_version WHERE script = '{script}'"
    ));
    let err = schema::apply(
        &db.params,
        new.path(),
        &ApplyOptions {
            layouts: layouts(),
            ..ApplyOptions::default()
        },
        &mut Said::default().sink(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with(&format!(
            "1 applied script of oVirt DWH dbscripts changed after it was applied: {script} (checksum {recorded} recorded"
        )),
        "{err}"
    );
    assert!(err.contains("these are oVirt's files"), "{err}");
    assert!(err.contains("accepted_checksums"), "{err}");

    // The layout declares the released content: the upgrade goes through.
    let mut declared = layouts();
    for layout in &mut declared {
        if layout.name == "oVirt DWH dbscripts" {
            layout
                .accepted_checksums
                .insert(script.to_string(), vec![recorded.clone()]);
        }
    }
    let status = schema::status(&db.params, new.path(), &declared).unwrap();
    assert!(status.changed.is_empty());
    holdfast_apply(&db, new.path(), declared);
    assert_same(&db, "DWH upgrade from the older release");
}

#[test]
fn a_layout_that_leaves_out_view_or_data_files_is_refused() {
    let db = database();
    let tree = tempfile::tempdir().unwrap();
    dwh_tree(tree.path(), Release::New);
    // What the old error advised: a manifest naming an empty create_views.sql.
    std::fs::write(tree.path().join("create_views.sql"), "").unwrap();
    std::fs::write(
        tree.path().join("holdfast-schema.toml"),
        "name = \"site\"\nbase = [\"create_tables.sql\", \"create_functions.sql\", \"common_sp.sql\"]\n\
         views = [\"create_views.sql\"]\nprocedures = [\"**/*sp.sql\"]\nhelpers = [\"common_sp.sql\"]\n",
    )
    .unwrap();
    let err = schema::apply(
        &db.params,
        tree.path(),
        &ApplyOptions {
            layouts: layouts(),
            ..ApplyOptions::default()
        },
        &mut Said::default().sink(),
    )
    .unwrap_err()
    .to_string();
    for file in [
        "create_reports_views.sql",
        "create_views_3_6.sql",
        "create_views_4_1.sql",
        "insert_data.sql",
        "insert_enum_values.sql",
    ] {
        assert!(err.contains(file), "{file} not named: {err}");
    }
    assert!(err.contains("nothing was run"), "{err}");
    assert_eq!(
        db.q("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
        "0"
    );
}
