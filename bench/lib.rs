//! holdfast-bench: the pieces of the `bench`, `repo-bench`, `migrate-bench` and
//! `schema-bench` binaries, which time holdfast against the physical floor and
//! the tools users would pick instead, on throwaway PostgreSQL clusters with
//! durable settings.

pub mod dataset;
pub mod machine;
pub mod measure;
pub mod migration;
pub mod nightly;
pub mod repo_floor;
pub mod report;
pub mod schema_apply;
pub mod timeline;
