//! Trees in the two layouts of oVirt's `packaging/dbscripts` (the engine's and
//! the DWH's), small but with every feature the runner must match schema.sh on:
//! names with `-` after the version, a non-transactional script in the middle
//! followed by one adding a column a view needs, `config.sql`-style pre-upgrade
//! scripts, post-upgrade scripts, per-install ids, materialized-view and
//! sequence hooks, a `SKIPPED` duplicate, and an older and a newer release of
//! each tree. Written for holdfast's tests; the SQL is holdfast's own.

use std::path::Path;

/// Which release of a tree: `Old` is what an earlier release shipped, `New`
/// adds scripts and changes views (and, for the DWH, edits a released script).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    Old,
    New,
}

fn put(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// The generators schema.sh's drop steps call, next to holdfast's helpers.
fn common_sp() -> String {
    format!(
        "{}\n{}",
        holdfast::schema::helpers::SQL,
        "CREATE OR REPLACE FUNCTION generate_drop_all_views_syntax() RETURNS SETOF text STABLE AS $$
    SELECT 'DROP VIEW IF EXISTS ' || quote_ident(table_name) || ' CASCADE;'
    FROM information_schema.views WHERE table_schema = 'public' ORDER BY table_name
$$ LANGUAGE sql;
CREATE OR REPLACE FUNCTION generate_drop_all_functions_syntax() RETURNS SETOF text STABLE AS $$
    SELECT 'DROP FUNCTION IF EXISTS ' || p.oid::regprocedure::text || ' CASCADE;'
    FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace ORDER BY 1
$$ LANGUAGE sql;
"
    )
}

const SCHEMA_VERSION: &str = "
CREATE SEQUENCE schema_version_seq INCREMENT BY 1 START WITH 1;
CREATE TABLE schema_version (
    id integer DEFAULT nextval('schema_version_seq'::regclass) NOT NULL,
    version character varying(10) NOT NULL,
    script character varying(255) NOT NULL,
    checksum character varying(128),
    installed_by character varying(63) NOT NULL,
    started_at timestamp without time zone DEFAULT now(),
    ended_at timestamp without time zone,
    state character varying(15) NOT NULL,
    current boolean NOT NULL,
    comment text DEFAULT ''::text,
    CONSTRAINT schema_version_primary_key PRIMARY KEY (id)
);
CREATE TABLE hook_runs (kind text NOT NULL);
CREATE TABLE vdc_options (
    option_id SERIAL PRIMARY KEY,
    option_name VARCHAR(100) NOT NULL,
    option_value VARCHAR(4000) NOT NULL,
    version VARCHAR(40) NOT NULL DEFAULT 'general',
    default_value VARCHAR(4000)
);
";

const SEED_ROW: &str = "INSERT INTO schema_version (version, script, checksum, installed_by, \
     ended_at, state, current, comment) VALUES ('04010000', 'upgrade/04_01_0000_set_version.sql', \
     '0', 'engine', now(), 'INSTALLED', true, '');\n";

/// Pre-upgrade, as oVirt's `config.sql`: re-entrant configuration values, and
/// a function refresh drops and only the next apply restores.
const CONFIG_SQL: &str = "
select fn_db_add_config_value('UserSessionHardLimit', '600', 'general');
select fn_db_add_config_value('DefaultMaxThreadWaitQueueSize', '100', 'general');
select fn_db_add_config_value('ServerRebootTimeout', '300', 'general');
CREATE OR REPLACE FUNCTION update_enum_translator() RETURNS integer AS $$
    SELECT 1
$$ LANGUAGE sql;
insert into hook_runs (kind) values ('pre_upgrade');
";

/// An engine-style tree (`create_views.sql`, `create_dwh_views.sql`, `data/`).
pub fn engine_tree(dir: &Path, release: Release) {
    put(
        dir,
        "create_tables.sql",
        &format!(
            "{SCHEMA_VERSION}
CREATE TABLE storage_pool (id uuid PRIMARY KEY, name varchar(40) NOT NULL);
CREATE TABLE cluster (
    cluster_id uuid PRIMARY KEY,
    name varchar(40) NOT NULL,
    storage_pool_id uuid REFERENCES storage_pool (id)
);
CREATE TABLE images (image_guid uuid PRIMARY KEY, size bigint NOT NULL, cluster_id uuid);
CREATE SEQUENCE audit_log_seq;
"
        ),
    );
    put(
        dir,
        "create_functions.sql",
        "CREATE OR REPLACE FUNCTION uuid_generate_v1() RETURNS uuid AS $$
    SELECT md5(random()::text || clock_timestamp()::text)::uuid
$$ LANGUAGE sql VOLATILE;
CREATE OR REPLACE FUNCTION fn_cluster_label(v_name text) RETURNS text AS $$
    SELECT 'cluster ' || v_name
$$ LANGUAGE sql IMMUTABLE;
",
    );
    put(dir, "common_sp.sql", &common_sp());
    put(dir, "data/00000_insert_schema_version.sql", SEED_ROW);
    put(
        dir,
        "data/00300_insert_storage_pool.sql",
        "INSERT INTO storage_pool (id, name) VALUES ('00000002-0002-0002-0002-00000000021c', 'Default');\n",
    );
    put(
        dir,
        "data/00400_insert_cluster.sql",
        "INSERT INTO cluster (cluster_id, name, storage_pool_id) VALUES \
         ('00000001-0001-0001-0001-0000000000d6', 'Default', '00000002-0002-0002-0002-00000000021c');\n",
    );
    put(
        dir,
        "data/00500_insert_images.sql",
        "INSERT INTO images (image_guid, size, cluster_id) VALUES \
         ('11111111-0000-0000-0000-000000000001', 1024, '00000001-0001-0001-0001-0000000000d6');\n",
    );
    let images_view = match release {
        Release::Old => "CREATE OR REPLACE VIEW images_view AS SELECT image_guid, size, cluster_id FROM images;\n",
        Release::New => "CREATE OR REPLACE VIEW images_view AS SELECT image_guid, size, cluster_id, sequence_number FROM images;\n",
    };
    put(
        dir,
        "create_views.sql",
        &format!(
            "CREATE OR REPLACE VIEW cluster_view AS
    SELECT c.cluster_id, c.name, fn_cluster_label(c.name) AS label, s.name AS storage_pool_name
    FROM cluster c LEFT JOIN storage_pool s ON s.id = c.storage_pool_id;
{images_view}"
        ),
    );
    put(
        dir,
        "create_dwh_views.sql",
        "CREATE OR REPLACE VIEW dwh_cluster_configuration_history_view AS
    SELECT cluster_id, name, storage_pool_id FROM cluster;
",
    );
    put(
        dir,
        "images_sp.sql",
        "CREATE OR REPLACE FUNCTION GetAllFromImages() RETURNS SETOF images_view STABLE AS $$
    SELECT * FROM images_view
$$ LANGUAGE sql;
",
    );
    put(
        dir,
        "storage_pool_sp.sql",
        "CREATE OR REPLACE FUNCTION GetStoragePoolByName(v_name varchar) RETURNS SETOF storage_pool STABLE AS $$
    SELECT * FROM storage_pool WHERE name = v_name
$$ LANGUAGE sql;
",
    );
    put(
        dir,
        "materialized_views_sp.sql",
        "CREATE OR REPLACE FUNCTION DropAllMaterializedViews() RETURNS void AS $$
BEGIN INSERT INTO hook_runs (kind) VALUES ('materialized_views_drop'); END; $$ LANGUAGE plpgsql;
CREATE OR REPLACE FUNCTION RefreshAllMaterializedViews(v_concurrently boolean) RETURNS void AS $$
BEGIN INSERT INTO hook_runs (kind) VALUES ('materialized_views_refresh'); END; $$ LANGUAGE plpgsql;
",
    );
    put(
        dir,
        "update_sequence_numbers.sql",
        "SELECT setval('audit_log_seq', greatest((SELECT count(*) FROM hook_runs), 1));\n\
         INSERT INTO hook_runs (kind) VALUES ('sequence_numbers');\n",
    );
    // Files in a real tree that schema.sh never runs.
    put(dir, "drop_db.sql", "DROP TABLE storage_pool CASCADE;\n");
    put(
        dir,
        "config_devel.sql",
        "select fn_db_update_config_value('ServerRebootTimeout', '1', 'general');\n",
    );
    put(dir, "upgrade/pre_upgrade/0000_config.sql", CONFIG_SQL);
    put(
        dir,
        "upgrade/post_upgrade/0010_insert_post.sql",
        "insert into hook_runs (kind) values ('post_upgrade');\n\
         CREATE OR REPLACE FUNCTION __temp_post_upgrade_marker() RETURNS integer AS $$ SELECT 2 $$ LANGUAGE sql;\n",
    );
    put(
        dir,
        "upgrade/04_01_0000_set_version.sql",
        "select 4010000;\n",
    );
    put(
        dir,
        "upgrade/04_01_0010_add_cluster_description.sql",
        "select fn_db_add_column('cluster', 'description', 'text');\n",
    );
    put(
        dir,
        "upgrade/04_01_0020-remove-UserSessionHardLimit.sql",
        "select fn_db_delete_config_value('UserSessionHardLimit', 'general');\n",
    );
    put(
        dir,
        "upgrade/04_01_0030_widen_cluster_name.sql",
        "ALTER TABLE cluster ALTER COLUMN name TYPE varchar(80);\n",
    );
    if release == Release::New {
        put(
            dir,
            "upgrade/04_02_0010_add_images_index.sql",
            "CREATE INDEX idx_images_cluster ON images (cluster_id);\n",
        );
        put(
            dir,
            "upgrade/04_02_0020_index_images_size.sql",
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_images_size ON images (size);\n",
        );
        put(
            dir,
            "upgrade/04_02_0030_add_images_sequence_number.sql",
            "select fn_db_add_column('images', 'sequence_number', 'integer default 0');\n",
        );
        put(
            dir,
            "upgrade/04_02_0040-remove-DefaultMaxThreadWaitQueueSize.sql",
            "select fn_db_delete_config_value('DefaultMaxThreadWaitQueueSize', 'general');\n",
        );
        // The same bytes as 04_01_0010: recorded SKIPPED.
        put(
            dir,
            "upgrade/04_02_0050_add_cluster_description_again.sql",
            "select fn_db_add_column('cluster', 'description', 'text');\n",
        );
    }
}

/// A DWH-style tree (`create_views_X_Y.sql`, `insert_*.sql` at the root).
pub fn dwh_tree(dir: &Path, release: Release) {
    put(
        dir,
        "create_tables.sql",
        &format!(
            "{SCHEMA_VERSION}
CREATE TABLE history_configuration (var_name varchar(50) PRIMARY KEY, var_value varchar(255), var_datetime timestamp);
CREATE TABLE enum_translator (enum_type varchar(40) NOT NULL, enum_key smallint NOT NULL, value varchar(40) NOT NULL);
CREATE TABLE calendar (the_datetime timestamp PRIMARY KEY);
CREATE TABLE vm_samples_history (history_id integer NOT NULL, vm_id uuid NOT NULL, cpu_usage_percent smallint);
"
        ),
    );
    put(
        dir,
        "create_functions.sql",
        "CREATE OR REPLACE FUNCTION fn_history_label(v text) RETURNS text AS $$ SELECT 'h ' || v $$ LANGUAGE sql IMMUTABLE;\n",
    );
    put(dir, "common_sp.sql", &common_sp());
    put(
        dir,
        "insert_data.sql",
        &format!("{SEED_ROW}INSERT INTO history_configuration (var_name, var_value) VALUES ('default_language', 'en_US');\n"),
    );
    put(
        dir,
        "insert_timekeeping_values.sql",
        "INSERT INTO history_configuration (var_name, var_value) VALUES ('lastSync', NULL);\n",
    );
    put(
        dir,
        "insert_enum_values.sql",
        "INSERT INTO enum_translator VALUES ('VM_STATUS', 0, 'Down'), ('VM_STATUS', 1, 'Up');\n",
    );
    put(
        dir,
        "insert_calendar_table_values.sql",
        "INSERT INTO calendar SELECT generate_series(timestamp '2026-01-01', timestamp '2026-01-03', interval '1 day');\n",
    );
    // An API version schema.sh no longer creates; it would fail if run.
    put(
        dir,
        "create_views_3_5.sql",
        "CREATE OR REPLACE VIEW v3_5_vms AS SELECT no_such_column FROM vm_samples_history;\n",
    );
    put(
        dir,
        "create_views_3_6.sql",
        "CREATE OR REPLACE VIEW v3_6_configuration_history_vms AS SELECT history_id, vm_id FROM vm_samples_history;\n",
    );
    put(
        dir,
        "create_views_4_0.sql",
        "CREATE OR REPLACE VIEW v4_0_statistics_vms_resources_usage_samples AS SELECT history_id, vm_id, cpu_usage_percent FROM vm_samples_history;\n",
    );
    let v41 = match release {
        Release::Old => "CREATE OR REPLACE VIEW v4_1_statistics_vms AS SELECT history_id, vm_id FROM vm_samples_history;\n",
        Release::New => "CREATE OR REPLACE VIEW v4_1_statistics_vms AS SELECT history_id, vm_id, memory_usage_percent FROM vm_samples_history;\n",
    };
    put(dir, "create_views_4_1.sql", v41);
    put(
        dir,
        "create_reports_views.sql",
        "CREATE OR REPLACE VIEW enum_translator_view AS SELECT enum_type, enum_key, fn_history_label(value) AS value FROM enum_translator;\n",
    );
    put(
        dir,
        "upgrade/pre_upgrade/set_etl_minimal_version.sql",
        "select fn_db_add_config_value('MinimalETLVersion', '4.5.0', 'general');\ninsert into hook_runs (kind) values ('pre_upgrade');\n",
    );
    put(
        dir,
        "upgrade/04_01_0000_set_version.sql",
        "select 4010000;\n",
    );
    // Edited upstream after its release: the old release's bytes differ.
    let bigint = match release {
        Release::Old => "-- Update statistics table history_id to bigint\nSELECT fn_db_change_column_type('vm_samples_history', 'history_id', 'integer', 'bigint');\n",
        Release::New => "-- Update statistics table history_id to bigint\n\nSELECT fn_db_change_column_type('vm_samples_history', 'history_id', 'integer', 'bigint');\n",
    };
    put(
        dir,
        "upgrade/04_01_0010_updated_history_id_to_bigint.sql",
        bigint,
    );
    if release == Release::New {
        put(
            dir,
            "upgrade/04_01_0020_add_memory_usage_percent.sql",
            "select fn_db_add_column('vm_samples_history', 'memory_usage_percent', 'smallint');\n",
        );
    }
}
