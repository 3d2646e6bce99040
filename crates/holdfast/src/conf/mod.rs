//! Shell-style `KEY="value"` configuration files (oVirt's `*.conf`): reading them
//! as the application does, and changing keys in place.
//!
//! Reading follows the engine's own parser (`ShellLikeConfd`), never a shell: a
//! file from a backup is data, not code. Writing quotes every value so that both
//! that parser and a POSIX shell read back the same text.

pub mod rewrite;
pub mod values;

pub use rewrite::{quote_value, render_assignment, rewrite_keys, write_new, ConfValue};
pub use values::ConfValues;
