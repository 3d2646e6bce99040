//! holdfast's `fn_db_*` SQL helper library: each helper does what its
//! documentation says and is re-entrant.

mod schema_support;

use holdfast::schema::helpers;
use schema_support::*;

fn with_helpers() -> Db {
    let db = database();
    let mut client = holdfast::pg::connect(&db.params).unwrap();
    helpers::install(&mut client).unwrap();
    helpers::install(&mut client).unwrap(); // re-installable
    client
        .batch_execute(
            "SELECT fn_db_create_config_table();
             CREATE TABLE users (id int PRIMARY KEY, age int2, score numeric(18,0), pool_type integer, nick varchar(20));
             INSERT INTO users VALUES (1, NULL, 5, 7, NULL), (2, 30, 6, 8, 'x');",
        )
        .unwrap();
    db
}

fn run(db: &Db, sql: &str) {
    db.cluster
        .execute("engine", &format!("SET ROLE engine; {sql}"))
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn options(db: &Db) -> String {
    db.q("SELECT string_agg(option_name || '@' || version || '=' || option_value || '/' || coalesce(default_value, 'NULL'), ' ' ORDER BY option_name, version) FROM vdc_options")
}

#[test]
fn all_documented_helpers_are_installed() {
    let db = with_helpers();
    for name in helpers::FUNCTIONS {
        assert_ne!(
            db.q(&format!(
                "SELECT count(*) FROM pg_proc WHERE lower(proname) = '{name}'"
            )),
            "0",
            "{name}"
        );
    }
}

#[test]
fn column_helpers() {
    let db = with_helpers();
    for _ in 0..2 {
        run(
            &db,
            "SELECT fn_db_add_column('users', 'group_ids', 'VARCHAR(2048)')",
        );
        run(
            &db,
            "SELECT fn_db_change_column_type('users', 'pool_type', 'integer', 'varchar(50)')",
        );
        run(
            &db,
            "SELECT fn_db_change_column_type('users', 'age', 'int2', 'int4 not null default 0')",
        );
        run(
            &db,
            "SELECT fn_db_change_column_type('users', 'score', 18, 0, 'decimal(18,3)')",
        );
    }
    let col = |c: &str| {
        db.q(&format!(
            "SELECT format_type(atttypid, atttypmod) || ' ' || attnotnull || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '-') \
             FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             WHERE attrelid = 'users'::regclass AND attname = '{c}'"
        ))
    };
    assert_eq!(col("group_ids"), "character varying(2048) false -");
    assert_eq!(col("pool_type"), "character varying(50) false -");
    assert_eq!(col("age"), "integer true 0");
    assert_eq!(col("score"), "numeric(18,3) false -");
    assert_eq!(db.q("SELECT string_agg(age::text || ':' || pool_type || ':' || score, ',' ORDER BY id) FROM users"), "0:7:5.000,30:8:6.000");
    // a type that no longer matches is left alone
    run(
        &db,
        "SELECT fn_db_change_column_type('users', 'pool_type', 'integer', 'bigint')",
    );
    assert_eq!(col("pool_type"), "character varying(50) false -");

    run(
        &db,
        "SELECT fn_db_change_column_null('users', 'nick', false, 'varchar')",
    );
    assert_eq!(
        db.q("SELECT string_agg(quote_literal(nick), ',' ORDER BY id) FROM users"),
        "'','x'"
    );
    assert_eq!(col("nick"), "character varying(20) true -");
    run(
        &db,
        "SELECT fn_db_change_column_null('users', 'nick', true)",
    );
    assert_eq!(col("nick"), "character varying(20) false -");
    assert_eq!(db.q("SELECT fn_get_column_size('users', 'nick')"), "20");

    for _ in 0..2 {
        run(
            &db,
            "SELECT fn_db_rename_column('users', 'group_ids', 'groups')",
        );
        run(
            &db,
            "SELECT fn_db_create_constraint('users', 'users_age_check', 'CHECK (age >= 0)')",
        );
        run(
            &db,
            "SELECT fn_db_create_index('idx_users_nick', 'users', 'nick', 'nick <> ''''', true)",
        );
        run(&db, "SELECT fn_db_drop_column('users', 'score')");
    }
    assert_eq!(db.q("SELECT fn_db_is_column_exists('users', 'groups')::text || fn_db_is_column_exists('users', 'score')::text"), "truefalse");
    assert_eq!(
        db.q(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'users_age_check'"
        ),
        "CHECK ((age >= 0))"
    );
    assert_eq!(db.q("SELECT indexdef FROM pg_indexes WHERE indexname = 'idx_users_nick'"),
        "CREATE UNIQUE INDEX idx_users_nick ON public.users USING btree (nick) WHERE ((nick)::text <> ''::text)");
    run(&db, "SELECT fn_db_drop_constraint('users', 'users_age_check'); SELECT fn_db_drop_index('idx_users_nick'); SELECT fn_db_rename_table('users', 'people')");
    assert_eq!(
        db.q("SELECT count(*) FROM pg_constraint WHERE conname = 'users_age_check'"),
        "0"
    );
    assert_eq!(
        db.q(
            "SELECT fn_db_is_table_exists('people')::text || fn_db_is_table_exists('users')::text"
        ),
        "truefalse"
    );
}

#[test]
fn config_value_helpers() {
    let db = with_helpers();
    for _ in 0..2 {
        run(
            &db,
            "SELECT fn_db_add_config_value('VdcVersion', '', 'general')",
        );
        run(
            &db,
            "SELECT fn_db_add_config_value('DBEngine', 'Postgres', 'general')",
        );
    }
    run(
        &db,
        "SELECT fn_db_add_config_value('dbengine', 'Other', 'general')",
    );
    assert_eq!(
        options(&db),
        "DBEngine@general=Postgres/Postgres VdcVersion@general=/"
    );
    run(
        &db,
        "SELECT fn_db_update_config_value('DBEngine', 'PostgreSQL', 'general')",
    );
    assert_eq!(
        options(&db),
        "DBEngine@general=PostgreSQL/PostgreSQL VdcVersion@general=/"
    );
    run(
        &db,
        "SELECT fn_db_rename_config_key('DBEngine', 'DatabaseEngine', 'general')",
    );
    assert!(options(&db).starts_with("DatabaseEngine@general=PostgreSQL/PostgreSQL"));
    run(
        &db,
        "SELECT fn_db_delete_config_value_all_versions('VdcVersion')",
    );
    assert_eq!(options(&db), "DatabaseEngine@general=PostgreSQL/PostgreSQL");

    run(&db, "DELETE FROM vdc_options; \
              SELECT fn_db_add_config_value('K', 'v', '4.2'); SELECT fn_db_add_config_value('K', 'v', '4.3'); \
              SELECT fn_db_add_config_value('K', 'v', '4.10'); SELECT fn_db_delete_config_value('K', '4.2,4.3')");
    assert_eq!(options(&db), "K@4.10=v/v");
    run(&db, "SELECT fn_db_add_config_value('K', 'v', '4.2'); SELECT fn_db_delete_config_for_version('4.2')");
    assert_eq!(options(&db), "K@4.10=v/v");
}

#[test]
fn update_default_config_value_keeps_administrator_changes_and_catches_lost_updates() {
    let db = with_helpers();
    run(&db, "SELECT fn_db_add_config_value('X', 'a,b,c', 'general'); \
              SELECT fn_db_add_config_value('Y', 'old', 'general'); UPDATE vdc_options SET option_value = 'custom' WHERE option_name = 'Y'; \
              SELECT fn_db_add_config_value('Z', 'GSSAPI', 'general')");
    // u1 adds d
    run(
        &db,
        "SELECT fn_db_update_default_config_value('X', 'a,b,c', 'a,b,c,d', 'general')",
    );
    // u2 wrote its script against the old default: it fails instead of losing d
    let err = db
        .cluster
        .execute(
            "engine",
            "SELECT fn_db_update_default_config_value('X', 'a,b,c', 'a,b,c,e', 'general')",
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("default of X (version general) is 'a,b,c,d', not 'a,b,c'"),
        "{err}"
    );
    // fixed as the seed says, it applies; and re-running it is harmless
    for _ in 0..2 {
        run(
            &db,
            "SELECT fn_db_update_default_config_value('X', 'a,b,c,d', 'a,b,c,d,e', 'general')",
        );
    }
    // a value the administrator changed is kept; the default moves on
    run(
        &db,
        "SELECT fn_db_update_default_config_value('Y', 'old', 'new', 'general')",
    );
    // case-insensitive comparison on request
    run(&db, "SELECT fn_db_update_default_config_value('Z', 'gssapi', 'default:GSSAPI', 'general', true)");
    assert_eq!(
        options(&db),
        "X@general=a,b,c,d,e/a,b,c,d,e Y@general=custom/new Z@general=default:GSSAPI/default:GSSAPI"
    );
}

#[test]
fn split_config_value_creates_one_row_per_version() {
    let db = with_helpers();
    run(&db, "SELECT fn_db_add_config_value('Level', '1', '4.2'); SELECT fn_db_add_config_value('Level', '1', '4.3'); \
              SELECT fn_db_add_config_value('Level', '1', '4.10'); \
              SELECT fn_db_add_config_value('SpiceSecureChannels', 'smain', 'general')");
    for _ in 0..2 {
        run(
            &db,
            "SELECT fn_db_split_config_value('SpiceSecureChannels', 'smain', 'all', '4.3')",
        );
    }
    assert_eq!(
        db.q("SELECT string_agg(version || '=' || option_value, ' ' ORDER BY version) FROM vdc_options WHERE option_name = 'SpiceSecureChannels'"),
        "4.10=all 4.2=smain 4.3=all"
    );
    // the two-argument form of the seed
    run(&db, "SELECT fn_db_add_config_value('Other', 'x', 'general'); SELECT fn_db_split_config_value('Other', 'y')");
    assert_eq!(
        db.q("SELECT string_agg(version || '=' || option_value, ' ' ORDER BY version) FROM vdc_options WHERE option_name = 'Other'"),
        "4.10=y 4.2=y 4.3=y"
    );
    assert_eq!(db.q("SELECT count(*) FROM CheckDBConnection()"), "1");
    assert_eq!(
        db.q("SELECT string_agg(id, '|') FROM fnSplitter('a, b,,c')"),
        "a|b|c"
    );
}

#[test]
fn per_version_csv_and_json_helpers() {
    let db = with_helpers();
    run(&db, "SELECT fn_db_add_config_value('Level', '1', '4.2'); SELECT fn_db_add_config_value('Level', '1', '4.10'); \
              SELECT fn_db_add_config_value('Level', '1', '4.3'); SELECT fn_db_add_config_value('Level', '1', 'general')");
    assert_eq!(db.q("SELECT fn_db_get_versions()::text"), "{4.2,4.3,4.10}");
    for _ in 0..2 {
        run(
            &db,
            "SELECT fn_db_add_config_value_for_versions_up_to('Feature', 'false', '4.3')",
        );
    }
    run(&db, "SELECT fn_db_update_config_value_for_versions_from_up_to('Feature', 'true', '4.3', '4.10')");
    assert_eq!(
        db.q("SELECT string_agg(version || '=' || option_value, ' ' ORDER BY version) FROM vdc_options WHERE option_name = 'Feature'"),
        "4.2=false 4.3=true"
    );
    run(
        &db,
        "SELECT fn_db_add_config_value('Channels', 'main,display,inputs', 'general'); \
              SELECT fn_db_remove_csv_config_value('Channels', 'display', 'general'); \
              SELECT fn_db_remove_csv_config_value('Channels', 'display', 'general')",
    );
    assert_eq!(
        db.q("SELECT option_value FROM vdc_options WHERE option_name = 'Channels'"),
        "main,inputs"
    );

    run(&db, "CREATE TABLE props (id int, body text, a varchar(10), b text); \
              INSERT INTO props VALUES (1, '{\"k\": 1}', NULL, 'x'), (2, 'not json', 'y', NULL), (3, NULL, NULL, NULL); \
              SELECT fn_db_update_column_to_jsonb_compatible_values('props', 'body', '{}'); \
              ALTER TABLE props ALTER COLUMN body TYPE jsonb USING body::jsonb; \
              SELECT fn_db_change_table_string_columns_to_empty_string('props', ARRAY['a', 'b'])");
    assert_eq!(
        db.q("SELECT string_agg(coalesce(body::text, 'NULL') || '|' || a || '|' || b, ' ; ' ORDER BY id) FROM props"),
        "{\"k\": 1}||x ; {}|y| ; NULL||"
    );
    assert_eq!(
        db.q("SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = 'props'::regclass AND adnum = 3"),
        "''::character varying"
    );
    assert_eq!(
        db.q("SELECT fn_db_varchar_to_jsonb('[1', '[]')::text"),
        "[]"
    );
}
