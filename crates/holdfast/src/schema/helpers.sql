-- holdfast's SQL helper library for upgrade scripts.
--
-- Re-entrant helpers with the names and documented behaviour of oVirt's
-- common_sp.sql, written from that documentation. Install them by including this
-- file in the tree (for instance as common_sp.sql) or with
-- holdfast::schema::helpers::install. Configuration helpers work on the
-- application's vdc_options(option_name, option_value, version, default_value)
-- table; see fn_db_create_config_table for its shape.

-- Split a comma-separated text into rows (oVirt's fnSplitter).
CREATE OR REPLACE FUNCTION fnSplitter(ids TEXT)
RETURNS TABLE (id TEXT) AS $$
    SELECT trim(x) FROM unnest(string_to_array(ids, ',')) AS x WHERE trim(x) <> '';
$$ LANGUAGE sql IMMUTABLE;

-- The vdc_options table the configuration helpers expect, if the application
-- has none yet.
CREATE OR REPLACE FUNCTION fn_db_create_config_table()
RETURNS VOID AS $$
BEGIN
    CREATE TABLE IF NOT EXISTS vdc_options (
        option_id SERIAL PRIMARY KEY,
        option_name VARCHAR(100) NOT NULL,
        option_value VARCHAR(4000) NOT NULL,
        version VARCHAR(40) NOT NULL DEFAULT 'general',
        default_value VARCHAR(4000)
    );
END; $$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION fn_db_is_table_exists(v_table VARCHAR(128))
RETURNS BOOLEAN AS $$
    SELECT EXISTS (SELECT 1 FROM information_schema.tables
                   WHERE table_schema = current_schema() AND table_name ILIKE v_table);
$$ LANGUAGE sql STABLE;

CREATE OR REPLACE FUNCTION fn_db_is_column_exists(v_table VARCHAR(128), v_column VARCHAR(128))
RETURNS BOOLEAN AS $$
    SELECT EXISTS (SELECT 1 FROM information_schema.columns
                   WHERE table_schema = current_schema()
                     AND table_name ILIKE v_table AND column_name ILIKE v_column);
$$ LANGUAGE sql STABLE;

-- Add a column if it is not there.
CREATE OR REPLACE FUNCTION fn_db_add_column(v_table VARCHAR(128), v_column VARCHAR(128), v_column_def TEXT)
RETURNS VOID AS $$
BEGIN
    EXECUTE format('ALTER TABLE %I ADD COLUMN IF NOT EXISTS %I %s', lower(v_table), lower(v_column), v_column_def);
END; $$ LANGUAGE plpgsql;

-- Drop a column if it is there.
CREATE OR REPLACE FUNCTION fn_db_drop_column(v_table VARCHAR(128), v_column VARCHAR(128))
RETURNS VOID AS $$
BEGIN
    EXECUTE format('ALTER TABLE %I DROP COLUMN IF EXISTS %I', lower(v_table), lower(v_column));
END; $$ LANGUAGE plpgsql;

-- Change a column's type when it still has type v_type. v_new_type may carry
-- " NOT NULL" and " DEFAULT <expr>" after the type: 'int4 not null default 0'.
CREATE OR REPLACE FUNCTION fn_db_change_column_type(v_table VARCHAR(128), v_column VARCHAR(128),
                                                    v_type VARCHAR(128), v_new_type VARCHAR(128))
RETURNS VOID AS $$
DECLARE
    parts TEXT[];
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM information_schema.columns c
        WHERE c.table_schema = current_schema() AND c.table_name ILIKE v_table
          AND c.column_name ILIKE v_column
          AND (c.udt_name ILIKE v_type OR c.data_type ILIKE v_type
               OR to_regtype(v_type)::oid = (SELECT a.atttypid FROM pg_attribute a
                                             WHERE a.attrelid = to_regclass(quote_ident(c.table_name))
                                               AND a.attname = c.column_name))
    ) THEN
        RETURN;
    END IF;
    parts := regexp_match(v_new_type, '^(.*?)(\s+not\s+null)?(\s+default\s+(.+))?$', 'i');
    EXECUTE format('ALTER TABLE %I ALTER COLUMN %I TYPE %s', lower(v_table), lower(v_column), parts[1]);
    IF parts[4] IS NOT NULL THEN
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I SET DEFAULT %s', lower(v_table), lower(v_column), parts[4]);
        EXECUTE format('UPDATE %I SET %I = DEFAULT WHERE %I IS NULL', lower(v_table), lower(v_column), lower(v_column));
    END IF;
    IF parts[2] IS NOT NULL THEN
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I SET NOT NULL', lower(v_table), lower(v_column));
    END IF;
END; $$ LANGUAGE plpgsql;

-- Change the precision and scale of a numeric column when it still has
-- precision v_precision and scale v_scale.
CREATE OR REPLACE FUNCTION fn_db_change_column_type(v_table VARCHAR(128), v_column VARCHAR(128),
                                                    v_precision INTEGER, v_scale INTEGER,
                                                    v_new_type VARCHAR(128))
RETURNS VOID AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name ILIKE v_table AND column_name ILIKE v_column
          AND numeric_precision = v_precision AND numeric_scale = v_scale
    ) THEN
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I TYPE %s', lower(v_table), lower(v_column), v_new_type);
    END IF;
END; $$ LANGUAGE plpgsql;

-- Allow NULLs, or forbid them after filling existing NULLs with the type's
-- neutral value (false, '', 0, the nil UUID).
CREATE OR REPLACE FUNCTION fn_db_change_column_null(v_table VARCHAR(128), v_column VARCHAR(128),
                                                    v_allow_null BOOLEAN, v_type VARCHAR(128) DEFAULT NULL)
RETURNS VOID AS $$
DECLARE
    filler TEXT;
BEGIN
    IF v_allow_null THEN
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I DROP NOT NULL', lower(v_table), lower(v_column));
        RETURN;
    END IF;
    filler := CASE
        WHEN v_type ILIKE 'bool%' THEN 'false'
        WHEN v_type ILIKE 'char%' OR v_type ILIKE 'varchar%' OR v_type ILIKE 'text' THEN ''''''
        WHEN v_type ILIKE 'int%' OR v_type ILIKE 'smallint' OR v_type ILIKE 'bigint'
             OR v_type ILIKE 'float%' OR v_type ILIKE 'numeric%' OR v_type ILIKE 'decimal%' THEN '0'
        WHEN v_type ILIKE 'uuid' THEN '''00000000-0000-0000-0000-000000000000'''
        ELSE NULL
    END;
    IF filler IS NOT NULL THEN
        EXECUTE format('UPDATE %I SET %I = %s WHERE %I IS NULL', lower(v_table), lower(v_column), filler, lower(v_column));
    END IF;
    EXECUTE format('ALTER TABLE %I ALTER COLUMN %I SET NOT NULL', lower(v_table), lower(v_column));
END; $$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION fn_db_rename_column(v_table VARCHAR(128), v_column VARCHAR(128), v_new_name VARCHAR(128))
RETURNS VOID AS $$
BEGIN
    IF fn_db_is_column_exists(v_table, v_column) THEN
        EXECUTE format('ALTER TABLE %I RENAME COLUMN %I TO %I', lower(v_table), lower(v_column), lower(v_new_name));
    END IF;
END; $$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION fn_db_rename_table(v_table VARCHAR(128), v_new_name VARCHAR(128))
RETURNS VOID AS $$
BEGIN
    IF fn_db_is_table_exists(v_table) THEN
        EXECUTE format('ALTER TABLE %I RENAME TO %I', lower(v_table), lower(v_new_name));
    END IF;
END; $$ LANGUAGE plpgsql;

-- Add a configuration key for a version if it is absent (name compared without
-- case); if present with no default value, record v_option_value as its default.
CREATE OR REPLACE FUNCTION fn_db_add_config_value(v_option_name VARCHAR(100), v_option_value VARCHAR(4000),
                                                  v_version VARCHAR(40))
RETURNS VOID AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM vdc_options WHERE option_name ILIKE v_option_name AND version = v_version) THEN
        INSERT INTO vdc_options (option_name, option_value, version, default_value)
        VALUES (v_option_name, v_option_value, v_version, v_option_value);
    ELSE
        UPDATE vdc_options SET default_value = v_option_value
        WHERE option_name ILIKE v_option_name AND version = v_version AND default_value IS NULL;
    END IF;
END; $$ LANGUAGE plpgsql;

-- Set a key's value and default for a version, if the key exists.
CREATE OR REPLACE FUNCTION fn_db_update_config_value(v_option_name VARCHAR(100), v_option_value VARCHAR(4000),
                                                     v_version VARCHAR(40))
RETURNS VOID AS $$
BEGIN
    UPDATE vdc_options SET option_value = v_option_value, default_value = v_option_value
    WHERE option_name ILIKE v_option_name AND version = v_version;
END; $$ LANGUAGE plpgsql;

-- Change a key's value only if it still equals the old default (so a value the
-- administrator changed is kept); the default is always updated. Fails when the
-- recorded default is not v_default_value, so two scripts that both change the
-- same default cannot silently lose one change.
CREATE OR REPLACE FUNCTION fn_db_update_default_config_value(v_option_name VARCHAR(100),
                                                             v_default_value VARCHAR(4000),
                                                             v_option_value VARCHAR(4000),
                                                             v_version VARCHAR(40),
                                                             v_ignore_case BOOLEAN DEFAULT FALSE)
RETURNS VOID AS $$
DECLARE
    recorded VARCHAR(4000);
    same BOOLEAN;
BEGIN
    SELECT coalesce(default_value, option_value) INTO recorded FROM vdc_options
    WHERE option_name ILIKE v_option_name AND version = v_version;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    same := CASE WHEN v_ignore_case THEN lower(recorded) = lower(v_default_value)
                 ELSE recorded = v_default_value END;
    IF NOT same AND recorded IS DISTINCT FROM v_option_value THEN
        RAISE EXCEPTION 'fn_db_update_default_config_value: default of % (version %) is ''%'', not ''%''',
            v_option_name, v_version, recorded, v_default_value;
    END IF;
    UPDATE vdc_options SET option_value = v_option_value
    WHERE option_name ILIKE v_option_name AND version = v_version
      AND CASE WHEN v_ignore_case THEN lower(option_value) = lower(v_default_value)
               ELSE option_value = v_default_value END;
    UPDATE vdc_options SET default_value = v_option_value
    WHERE option_name ILIKE v_option_name AND version = v_version;
END; $$ LANGUAGE plpgsql;

-- Delete a key for the listed versions ('4.2,4.3').
CREATE OR REPLACE FUNCTION fn_db_delete_config_value(v_option_name VARCHAR(100), v_version TEXT)
RETURNS VOID AS $$
BEGIN
    DELETE FROM vdc_options
    WHERE option_name ILIKE v_option_name AND version IN (SELECT id FROM fnSplitter(v_version));
END; $$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION fn_db_delete_config_value_all_versions(v_option_name VARCHAR(100))
RETURNS VOID AS $$
BEGIN
    DELETE FROM vdc_options WHERE option_name ILIKE v_option_name;
END; $$ LANGUAGE plpgsql;

-- Delete every key of the listed versions.
CREATE OR REPLACE FUNCTION fn_db_delete_config_for_version(v_version TEXT)
RETURNS VOID AS $$
BEGIN
    DELETE FROM vdc_options WHERE version IN (SELECT id FROM fnSplitter(v_version));
END; $$ LANGUAGE plpgsql;

-- Rename a key for a version, keeping its value.
CREATE OR REPLACE FUNCTION fn_db_rename_config_key(v_old_name VARCHAR(100), v_new_name VARCHAR(100),
                                                   v_version VARCHAR(40))
RETURNS VOID AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM vdc_options WHERE option_name ILIKE v_new_name AND version = v_version) THEN
        UPDATE vdc_options SET option_name = v_new_name
        WHERE option_name ILIKE v_old_name AND version = v_version;
    END IF;
END; $$ LANGUAGE plpgsql;

-- Turn a 'general' key into one row per version present in vdc_options: versions
-- below v_update_from_version keep the old value, the others get v_new_value.
-- Versions compare numerically (4.10 > 4.9). A no-op once the key is split.
CREATE OR REPLACE FUNCTION fn_db_split_config_value(v_option_name VARCHAR(100), v_old_value VARCHAR(4000),
                                                    v_new_value VARCHAR(4000), v_update_from_version VARCHAR(40))
RETURNS VOID AS $$
DECLARE
    current_value VARCHAR(4000);
    v RECORD;
BEGIN
    SELECT option_value INTO current_value FROM vdc_options
    WHERE option_name ILIKE v_option_name AND version = 'general';
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- A value the administrator changed is what older versions keep.
    IF current_value IS DISTINCT FROM v_old_value THEN
        v_old_value := current_value;
    END IF;
    DELETE FROM vdc_options WHERE option_name ILIKE v_option_name AND version = 'general';
    FOR v IN SELECT DISTINCT version FROM vdc_options
             WHERE version <> 'general' AND version ~ '^[0-9]+(\.[0-9]+)*$' LOOP
        INSERT INTO vdc_options (option_name, option_value, version, default_value)
        SELECT v_option_name, val, v.version, val
        FROM (SELECT CASE WHEN string_to_array(v.version, '.')::int[]
                               < string_to_array(v_update_from_version, '.')::int[]
                          THEN v_old_value ELSE v_new_value END AS val) s
        WHERE NOT EXISTS (SELECT 1 FROM vdc_options
                          WHERE option_name ILIKE v_option_name AND version = v.version);
    END LOOP;
END; $$ LANGUAGE plpgsql;

-- The two-argument form of the seed: split with the same value for all versions.
CREATE OR REPLACE FUNCTION fn_db_split_config_value(v_option_name VARCHAR(100), v_new_value VARCHAR(4000))
RETURNS VOID AS $$
BEGIN
    PERFORM fn_db_split_config_value(v_option_name, v_new_value, v_new_value, '0');
END; $$ LANGUAGE plpgsql;

-- The numeric versions vdc_options has rows for, lowest first (the application's
-- supported versions, as far as its configuration knows them).
CREATE OR REPLACE FUNCTION fn_db_get_versions()
RETURNS VARCHAR[] AS $$
BEGIN
    -- plpgsql, not sql: the body is checked when called, after vdc_options exists.
    RETURN (SELECT coalesce(array_agg(version ORDER BY string_to_array(version, '.')::int[]), '{}')
            FROM (SELECT DISTINCT version FROM vdc_options
                  WHERE version ~ '^[0-9]+(\.[0-9]+)*$') v);
END; $$ LANGUAGE plpgsql STABLE;

-- Add a key for every known version up to and including v_up_to_version.
CREATE OR REPLACE FUNCTION fn_db_add_config_value_for_versions_up_to(v_option_name VARCHAR(100),
                                                                     v_option_value VARCHAR(4000),
                                                                     v_up_to_version VARCHAR(40))
RETURNS VOID AS $$
DECLARE
    v VARCHAR;
BEGIN
    FOREACH v IN ARRAY fn_db_get_versions() LOOP
        IF string_to_array(v, '.')::int[] <= string_to_array(v_up_to_version, '.')::int[] THEN
            PERFORM fn_db_add_config_value(v_option_name, v_option_value, v);
        END IF;
    END LOOP;
END; $$ LANGUAGE plpgsql;

-- Set a key for every known version from v_from_version up to v_up_to_version.
CREATE OR REPLACE FUNCTION fn_db_update_config_value_for_versions_from_up_to(v_option_name VARCHAR(100),
                                                                             v_option_value VARCHAR(4000),
                                                                             v_from_version VARCHAR(40),
                                                                             v_up_to_version VARCHAR(40))
RETURNS VOID AS $$
DECLARE
    v VARCHAR;
BEGIN
    FOREACH v IN ARRAY fn_db_get_versions() LOOP
        IF string_to_array(v, '.')::int[] >= string_to_array(v_from_version, '.')::int[]
           AND string_to_array(v, '.')::int[] <= string_to_array(v_up_to_version, '.')::int[] THEN
            PERFORM fn_db_update_config_value(v_option_name, v_option_value, v);
        END IF;
    END LOOP;
END; $$ LANGUAGE plpgsql;

-- Remove one value from a comma-separated configuration value.
CREATE OR REPLACE FUNCTION fn_db_remove_csv_config_value(v_option_name VARCHAR(100), v_value TEXT,
                                                         v_version VARCHAR(40))
RETURNS VOID AS $$
BEGIN
    UPDATE vdc_options
    SET option_value = coalesce((SELECT string_agg(id, ',') FROM fnSplitter(option_value) WHERE id <> v_value), '')
    WHERE option_name ILIKE v_option_name AND version = v_version;
END; $$ LANGUAGE plpgsql;

-- Text as jsonb, or v_default when it is not valid JSON.
CREATE OR REPLACE FUNCTION fn_db_varchar_to_jsonb(v_text TEXT, v_default JSONB)
RETURNS JSONB AS $$
BEGIN
    RETURN v_text::jsonb;
EXCEPTION WHEN others THEN
    RETURN v_default;
END; $$ LANGUAGE plpgsql IMMUTABLE;

-- Replace the values of a text column that are not valid JSON by v_default, so
-- the column can become jsonb.
CREATE OR REPLACE FUNCTION fn_db_update_column_to_jsonb_compatible_values(v_table VARCHAR(128),
                                                                          v_column VARCHAR(128),
                                                                          v_default JSONB)
RETURNS VOID AS $$
BEGIN
    EXECUTE format('UPDATE %I SET %I = fn_db_varchar_to_jsonb(%I, $1)::text '
                   'WHERE %I IS NOT NULL AND fn_db_varchar_to_jsonb(%I, NULL) IS NULL',
                   lower(v_table), lower(v_column), lower(v_column), lower(v_column), lower(v_column))
    USING v_default;
END; $$ LANGUAGE plpgsql;

-- Turn NULLs of the listed string columns into '' and make '' their default.
CREATE OR REPLACE FUNCTION fn_db_change_table_string_columns_to_empty_string(v_table VARCHAR(128),
                                                                             v_columns VARCHAR[])
RETURNS VOID AS $$
DECLARE
    c VARCHAR;
BEGIN
    FOREACH c IN ARRAY v_columns LOOP
        EXECUTE format('UPDATE %I SET %I = '''' WHERE %I IS NULL', lower(v_table), lower(c), lower(c));
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I SET DEFAULT ''''', lower(v_table), lower(c));
    END LOOP;
END; $$ LANGUAGE plpgsql;

-- Add a constraint unless one of that name exists.
CREATE OR REPLACE FUNCTION fn_db_create_constraint(v_table VARCHAR(128), v_constraint VARCHAR(128),
                                                   v_constraint_sql TEXT)
RETURNS VOID AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname ILIKE v_constraint) THEN
        EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I %s', lower(v_table), lower(v_constraint), v_constraint_sql);
    END IF;
END; $$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION fn_db_drop_constraint(v_table VARCHAR(128), v_constraint VARCHAR(128))
RETURNS VOID AS $$
BEGIN
    EXECUTE format('ALTER TABLE %I DROP CONSTRAINT IF EXISTS %I CASCADE', lower(v_table), lower(v_constraint));
END; $$ LANGUAGE plpgsql;

-- (Re)create an index: drop it if it exists, then create it.
CREATE OR REPLACE FUNCTION fn_db_create_index(v_index_name VARCHAR(128), v_table VARCHAR(128),
                                              v_columns TEXT, v_where TEXT DEFAULT '',
                                              v_unique BOOLEAN DEFAULT FALSE)
RETURNS VOID AS $$
BEGIN
    EXECUTE format('DROP INDEX IF EXISTS %I', lower(v_index_name));
    EXECUTE format('CREATE %sINDEX %I ON %I (%s)%s',
                   CASE WHEN v_unique THEN 'UNIQUE ' ELSE '' END,
                   lower(v_index_name), lower(v_table), v_columns,
                   CASE WHEN coalesce(v_where, '') = '' THEN '' ELSE ' WHERE ' || v_where END);
END; $$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION fn_db_drop_index(v_index_name VARCHAR(128))
RETURNS VOID AS $$
BEGIN
    EXECUTE format('DROP INDEX IF EXISTS %I', lower(v_index_name));
END; $$ LANGUAGE plpgsql;

-- Maximum length of a char/varchar column (NULL for other types).
CREATE OR REPLACE FUNCTION fn_get_column_size(v_table VARCHAR(128), v_column VARCHAR(128))
RETURNS INTEGER AS $$
    SELECT character_maximum_length::integer FROM information_schema.columns
    WHERE table_schema = current_schema() AND table_name ILIKE v_table AND column_name ILIKE v_column;
$$ LANGUAGE sql STABLE;

CREATE OR REPLACE FUNCTION CheckDBConnection()
RETURNS SETOF INTEGER AS $$
    SELECT 1;
$$ LANGUAGE sql;
