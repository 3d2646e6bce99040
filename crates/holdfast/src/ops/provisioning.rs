//! Provisioning for a restore: which databases get their role and database
//! created, everything about them checked before the first write, then the
//! creation itself with every step recorded so that a failure undoes it.
//!
//! A database that exists and is empty is reused (its owner set, the role's
//! password set, the old values kept for the rollback); one that holds objects
//! stops the restore before anything is written. There is never a database or
//! role with a made-up name.
//!
//! Phases: [`choose`] the databases, [`plan`] what to create (checked, nothing
//! changed), [`apply`] it (each change recorded), [`rollback`] on failure.

mod apply;
mod choose;
mod plan;
mod rollback;

pub use apply::{apply, apply_target, Record, Undo};
pub use choose::choose;
pub use plan::{plan, Plan, Target};
pub use rollback::{rollback, Patience};

pub(crate) use plan::dump_extensions;
