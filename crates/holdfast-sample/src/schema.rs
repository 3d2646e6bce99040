//! A synthetic dbscripts tree in oVirt's layout, written to a directory, for the
//! schema runner's tests and benchmark: a base with the `schema_version` seed row, views
//! that block column type changes, procedures returning view rows, holdfast's
//! helper library as `common_sp.sql`, pre/post-upgrade scripts that count their
//! runs, and a few hundred versioned scripts across several minor versions.
//!
//! Every versioned script adds one column to `items` and inserts its version into
//! `upgrade_log`, whose primary key makes a second application fail loudly; every
//! tenth widens `items.name`, which only works while the views are dropped.

use std::path::Path;

use holdfast::{IoContext, Result};

/// Shape of a synthetic tree: `(major, minor, scripts)` per series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntheticTree {
    pub series: Vec<(u32, u32, u32)>,
}

impl Default for SyntheticTree {
    /// 300 scripts over four minor versions (plus `04_01_0000_set_version.sql`).
    fn default() -> SyntheticTree {
        SyntheticTree {
            series: vec![(4, 1, 75), (4, 2, 75), (4, 3, 75), (4, 4, 75)],
        }
    }
}

/// File name of a versioned script: `04_02_0150_step.sql`.
pub fn script_name(major: u32, minor: u32, step: u32, name: &str) -> String {
    format!("{major:02}_{minor:02}_{step:04}_{name}.sql")
}

/// The body of a generated script: one new column and one log row.
pub fn script_body(major: u32, minor: u32, step: u32) -> String {
    let version = format!("{major:02}{minor:02}{step:04}");
    let mut body = format!(
        "-- synthetic upgrade {version}\n\
         select fn_db_add_column('items', 'c_{version}', 'integer default {step}');\n\
         insert into upgrade_log (version) values ('{version}');\n"
    );
    if step % 100 == 0 {
        // Fails with "cannot alter type of a column used by a view" unless the
        // runner dropped the views first.
        body.push_str(&format!(
            "alter table items alter column name type varchar({});\n",
            40 + step / 10 + minor * 200
        ));
    }
    body
}

impl SyntheticTree {
    /// Write the tree under `dir` (created if needed). Returns the number of
    /// versioned scripts written, `04_01_0000_set_version.sql` included.
    pub fn write(&self, dir: &Path) -> Result<usize> {
        let put = |rel: &str, text: &str| -> Result<()> {
            let path = dir.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .context(|| format!("create {}", parent.display()))?;
            }
            std::fs::write(&path, text).context(|| format!("write {}", path.display()))
        };
        put("create_tables.sql", BASE_TABLES)?;
        put("create_functions.sql", BASE_FUNCTIONS)?;
        put("common_sp.sql", holdfast::schema::helpers::SQL)?;
        put("data/00000_insert_schema_version.sql", SEED_ROW)?;
        put("data/00100_insert_items.sql", BASE_DATA)?;
        put("create_views.sql", VIEWS)?;
        put("items_sp.sql", PROCEDURES)?;
        put("upgrade/pre_upgrade/0000_config.sql", PRE_UPGRADE)?;
        put("upgrade/post_upgrade/0010_post.sql", POST_UPGRADE)?;
        put("upgrade/04_01_0000_set_version.sql", "select 4010000;\n")?;
        let mut count = 1;
        for &(major, minor, scripts) in &self.series {
            for k in 1..=scripts {
                let step = k * 10;
                put(
                    &format!(
                        "upgrade/{}",
                        script_name(major, minor, step, &format!("step_{k}"))
                    ),
                    &script_body(major, minor, step),
                )?;
                count += 1;
            }
        }
        Ok(count)
    }

    /// The version of the last script, as `schema_version` stores it.
    pub fn last_version(&self) -> String {
        self.series
            .last()
            .map(|&(major, minor, n)| format!("{major:02}{minor:02}{:04}", n * 10))
            .unwrap_or_else(|| "04010000".to_string())
    }
}

const BASE_TABLES: &str = "\
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
CREATE TABLE vdc_options (
    option_id SERIAL PRIMARY KEY,
    option_name VARCHAR(100) NOT NULL,
    option_value VARCHAR(4000) NOT NULL,
    version VARCHAR(40) NOT NULL DEFAULT 'general',
    default_value VARCHAR(4000)
);
CREATE TABLE items (
    id SERIAL PRIMARY KEY,
    name VARCHAR(40) NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT now()
);
CREATE TABLE upgrade_log (
    version VARCHAR(10) PRIMARY KEY,
    applied_at TIMESTAMP NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE hook_runs (
    id SERIAL PRIMARY KEY,
    kind TEXT NOT NULL
);
-- as in a pg_dump-made base: the next files must not inherit this
SELECT pg_catalog.set_config('search_path', '', false);
";

const BASE_FUNCTIONS: &str = "\
CREATE OR REPLACE FUNCTION fn_item_label(v_id integer, v_name text)
RETURNS text AS $$
BEGIN
    RETURN v_id::text || ':' || v_name;
END; $$ LANGUAGE plpgsql IMMUTABLE;
";

const SEED_ROW: &str = "\
INSERT INTO schema_version (version, script, checksum, installed_by, ended_at, state, current, comment)
VALUES ('04010000', 'upgrade/04_01_0000_set_version.sql', '0', current_user, now(), 'INSTALLED', true, '');
";

const BASE_DATA: &str = "\
INSERT INTO items (name) VALUES ('alpha'), ('beta'), ('gamma');
INSERT INTO vdc_options (option_name, option_value, version, default_value)
VALUES ('SyntheticLevel', '1', 'general', '1');
";

const VIEWS: &str = "\
CREATE OR REPLACE VIEW items_view AS
    SELECT id, name, fn_item_label(id, name) AS label, created_at FROM items;
CREATE OR REPLACE VIEW items_summary AS
    SELECT count(*) AS items, max(name) AS last_name FROM items_view;
CREATE OR REPLACE VIEW upgrade_log_view AS
    SELECT version, applied_at FROM upgrade_log;
";

const PROCEDURES: &str = "\
CREATE OR REPLACE FUNCTION GetAllItems()
RETURNS SETOF items_view AS $$
    SELECT * FROM items_view ORDER BY id;
$$ LANGUAGE sql STABLE;

CREATE OR REPLACE FUNCTION GetItemCount()
RETURNS bigint AS $$
BEGIN
    RETURN (SELECT count(*) FROM items);
END; $$ LANGUAGE plpgsql STABLE;
";

const PRE_UPGRADE: &str = "\
select fn_db_add_config_value('SyntheticKey', 'a,b,c', 'general');
insert into hook_runs (kind) values ('pre');
";

const POST_UPGRADE: &str = "\
insert into hook_runs (kind) values ('post');
";
