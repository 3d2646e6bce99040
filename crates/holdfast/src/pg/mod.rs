//! PostgreSQL: connections, client tools chosen by server version, dump, restore,
//! roles, and inspection of what a database holds.

pub mod conn;

pub use conn::{connect, error_text, ConnParams};
