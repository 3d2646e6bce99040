//! PostgreSQL: connections, client tools chosen by server version, dump, restore,
//! roles, and inspection of what a database holds.
//!
//! - [`basebackup`]: a whole cluster's base backup (pg_basebackup) and what it is;
//! - [`conn`]: connection parameters and in-process connections;
//! - [`tools`]: which installed `pg_dump`/`pg_restore`/`psql` to run;
//! - [`pgpass`]: the 0600 password file the client programs read;
//! - [`command`]: how a client program is run (environment, logging, stderr);
//! - [`dump`] and [`restore`]: pg_dump, pg_restore and psql for one database;
//! - [`custom_format`]: row fingerprints read from a custom dump as it streams;
//! - [`partial`]: one table or schema picked out of a custom dump;
//! - [`inspect`]: checksums, sequences, large objects, object inventory;
//! - [`roles`]: the roles a database needs, and their DDL;
//! - [`provision`]: roles, databases, extensions and clusters created as superuser;
//! - [`sql`]: identifier and literal quoting.

pub mod basebackup;
pub mod command;
pub mod conn;
pub mod custom_format;
pub mod dump;
pub mod inspect;
pub mod partial;
pub mod pgpass;
pub mod provision;
pub mod restore;
pub mod roles;
pub mod sql;
pub mod tools;

pub use command::{ClientCommand, Finished, RunningCommand};
pub use conn::{connect, error_text, ConnParams};
pub use dump::{dump_command, dump_database, DumpFormat, DumpOptions, DumpReport};
pub use inspect::{
    database_info, database_is_empty, large_objects, object_inventory, sequences, table_checksums,
    DatabaseInfo, LargeObject, ObjectInventory, RelationKind, SequenceValue, TableChecksum,
};
pub use pgpass::PgPass;
pub use restore::{
    list_toc, list_toc_of, parse_toc, parse_toc_header, read_toc, restore_custom, restore_plain,
    RestoreOptions, RestoreReport, TocEntry, TocHeader,
};
pub use roles::{roles_needed, RoleDef};
pub use tools::PgTools;
