//! Versioned schema upgrades with a `schema_version` history.
