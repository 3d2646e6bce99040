//! Applications' configuration files: reading the values they hold and
//! changing them in place, one file per format behind one trait
//! ([`ConfFormat`]): shell-style `KEY="value"` (oVirt), YAML (Redmine,
//! Synapse), Java properties (Alfresco) and Keycloak's
//! properties-like conf, INI (Gitea's go-ini, Odoo's
//! configparser), JSON (Mattermost), compose `.env`, and the parts of a
//! connection URL or of a `host:port` value held in any of them.
//!
//! Files from a backup are data, never code: nothing here runs a shell, ERB
//! or an expression language. A rewrite changes only the bytes of the values
//! it sets, proves the result with the format's parser, and keeps a dated copy.

pub mod dotenv;
pub mod format;
pub mod host_port;
pub mod ini;
pub mod json;
pub mod keycloak;
pub mod properties;
pub mod rewrite;
pub mod shell;
pub mod url;
pub mod values;
pub mod yaml;

pub use format::{
    edit_text, read_location, read_text, rewrite_file, ConfError, ConfFormat, Format, Location,
};
pub use rewrite::{quote_value, render_assignment, rewrite_keys, write_new, ConfValue};
pub use url::UrlPart;
pub use values::ConfValues;
