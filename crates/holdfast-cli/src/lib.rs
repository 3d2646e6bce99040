//! The command lines of holdfast: the native `holdfast <verb>` ([`cmd`]) and the
//! `engine-backup` drop-in ([`engine_backup`]). Both turn what was typed into a
//! validated request of the `holdfast` library and run it; neither holds
//! behaviour of its own, and neither imports the other: what both need is in
//! [`shared`].

pub mod cmd;
pub mod engine_backup;
pub mod exit;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod progress;
pub mod shared;
