//! Sample environments for `holdfast demo`, the tests and the benchmarks, kept
//! out of the `holdfast` library so that no user's binary carries them unless
//! it runs the demo.
//!
//! - [`ovirt`]: an oVirt-like environment from the workspace's `sample/ovirt-engine/`
//!   (the engine-backup 4.5 fixture's databases and roles, and an install root
//!   with conf files);
//! - [`schema`]: a generated dbscripts tree in oVirt's layout, for the schema
//!   runner's tests and benchmark;
//! - [`demo`]: the whole job (backup, verify, restore, compare) on the oVirt sample.

pub mod demo;
pub mod ovirt;
pub mod schema;

pub use ovirt::{
    load_sample_databases, write_sample_install_root, SAMPLE_ROLES, SAMPLE_SQL, SAMPLE_VERSION,
};
