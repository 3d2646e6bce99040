//! holdfast's SQL helper library for upgrade scripts: re-entrant `fn_db_*`
//! functions with the names and documented behaviour of oVirt's `common_sp.sql`
//! (add, drop, rename and retype columns; add, update, delete, rename and split
//! configuration values in `vdc_options`; constraints and indexes).
//!
//! An application installs them by shipping [`SQL`] in its tree (for instance as
//! its `common_sp.sql`) or by calling [`install`].

use postgres::Client;

use crate::pg::error_text;
use crate::{Error, Result};

/// The helper functions, as one SQL file of `CREATE OR REPLACE FUNCTION`s.
pub const SQL: &str = include_str!("helpers.sql");

/// Names of the functions [`SQL`] defines.
pub const FUNCTIONS: &[&str] = &[
    "fnsplitter",
    "fn_db_create_config_table",
    "fn_db_is_table_exists",
    "fn_db_is_column_exists",
    "fn_db_add_column",
    "fn_db_drop_column",
    "fn_db_change_column_type",
    "fn_db_change_column_null",
    "fn_db_rename_column",
    "fn_db_rename_table",
    "fn_db_add_config_value",
    "fn_db_update_config_value",
    "fn_db_update_default_config_value",
    "fn_db_delete_config_value",
    "fn_db_delete_config_value_all_versions",
    "fn_db_delete_config_for_version",
    "fn_db_rename_config_key",
    "fn_db_split_config_value",
    "fn_db_get_versions",
    "fn_db_add_config_value_for_versions_up_to",
    "fn_db_update_config_value_for_versions_from_up_to",
    "fn_db_remove_csv_config_value",
    "fn_db_varchar_to_jsonb",
    "fn_db_update_column_to_jsonb_compatible_values",
    "fn_db_change_table_string_columns_to_empty_string",
    "fn_db_create_constraint",
    "fn_db_drop_constraint",
    "fn_db_create_index",
    "fn_db_drop_index",
    "fn_get_column_size",
    "checkdbconnection",
];

/// Create or replace the helper functions in the connection's current schema.
pub fn install(client: &mut Client) -> Result<()> {
    client.batch_execute(SQL).map_err(|e| {
        Error::postgres(format!(
            "cannot install holdfast's SQL helpers: {}",
            error_text(&e)
        ))
    })
}
