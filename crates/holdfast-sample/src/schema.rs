//! A synthetic dbscripts tree in oVirt's layout, written to a directory, for the
//! schema runner's tests and benchmark. Its fixed part comes from the
//! workspace's `sample/dbscripts/`: a base with the `schema_version` seed row,
//! views that block column type changes, procedures returning view rows, and
//! pre/post-upgrade scripts that count their runs. Added to it: holdfast's
//! helper library as `common_sp.sql` and a few hundred generated versioned
//! scripts across several minor versions.
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
        for (rel, text) in BASE {
            put(rel, text)?;
        }
        put("common_sp.sql", holdfast::schema::helpers::SQL)?;
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

/// A file of `sample/dbscripts/`, the tree's fixed part.
macro_rules! base {
    ($path:literal) => {
        (
            $path,
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../sample/dbscripts/",
                $path
            )),
        )
    };
}

/// The fixed part of the tree (`sample/dbscripts/`): base schema, seed row,
/// views, procedures and the pre/post-upgrade hooks.
const BASE: &[(&str, &str)] = &[
    base!("create_tables.sql"),
    base!("create_functions.sql"),
    base!("data/00000_insert_schema_version.sql"),
    base!("data/00100_insert_items.sql"),
    base!("create_views.sql"),
    base!("items_sp.sql"),
    base!("upgrade/pre_upgrade/0000_config.sql"),
    base!("upgrade/post_upgrade/0010_post.sql"),
];
