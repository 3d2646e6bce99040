//! Exit statuses, defined once for both faces and kept stable: scripts,
//! cron and systemd units test them.
//!
//! | status | meaning |
//! |---|---|
//! | 0 | success: everything asked was done and checked |
//! | 1 | failure: an operation failed (a failed restore was rolled back) |
//! | 2 | usage error: bad options or input; nothing was changed |
//! | 3 | completed with warnings: done, but not everything asked (see the WARNING lines) |
//! | 128+N | interrupted by signal N (129 SIGHUP, 130 SIGINT, 143 SIGTERM); cleaned up as after a failure |
//!
//! The `engine-backup` face keeps oVirt's statuses: 0 and 1 (bad options
//! included; warnings do not change the status), and the same 128+N when
//! interrupted.

use std::process::ExitCode;

use holdfast::Error;

pub const SUCCESS: u8 = 0;
pub const FAILURE: u8 = 1;
pub const USAGE: u8 = 2;
pub const WARNINGS: u8 = 3;

/// The status of a run interrupted by signal `sig`, as a shell reports it.
pub fn interrupted(sig: i32) -> u8 {
    u8::try_from(128 + sig).unwrap_or(FAILURE)
}

/// The text that `holdfast --help` shows after the verbs.
pub const HELP: &str = "\
Exit status:
  0        success: everything asked was done and checked
  1        failure (a failed restore was rolled back)
  2        usage error: bad options or input, nothing was changed
  3        completed with warnings: done, but not everything asked (see the WARNING lines)
  130/143  interrupted by SIGINT/SIGTERM (129 SIGHUP), cleaned up as after a failure";

/// How a run ended.
pub enum Outcome {
    Success,
    /// Done, with this many warnings.
    Warnings(usize),
    /// Failed (or was refused) with this error.
    Failed(Error),
    /// Stopped by a termination request (signal number); the error is how the
    /// operation ended.
    Interrupted(i32, Error),
}

impl Outcome {
    /// The outcome of an operation's result, its warnings and any termination request.
    pub fn of(result: holdfast::Result<()>, warnings: usize) -> Outcome {
        match (result, holdfast::interrupt::requested_signal()) {
            (Ok(()), _) if warnings > 0 => Outcome::Warnings(warnings),
            (Ok(()), _) => Outcome::Success,
            (Err(e), Some(sig)) => Outcome::Interrupted(sig, e),
            (Err(e), None) => Outcome::Failed(e),
        }
    }

    /// The native face's status.
    pub fn code(&self) -> u8 {
        match self {
            Outcome::Success => SUCCESS,
            Outcome::Warnings(_) => WARNINGS,
            Outcome::Failed(e) if e.is_usage() => USAGE,
            Outcome::Failed(_) => FAILURE,
            Outcome::Interrupted(sig, _) => interrupted(*sig),
        }
    }

    /// One line: the outcome, the status and the reason (`message` words the
    /// error in the face's terms).
    pub fn line(&self, message: impl Fn(&Error) -> String) -> String {
        let code = self.code();
        match self {
            Outcome::Success => format!("Outcome: success (exit {code})"),
            Outcome::Warnings(n) => format!(
                "Outcome: completed with {} (exit {code}); see the WARNING lines",
                holdfast::log::count(*n, "warning", "warnings")
            ),
            Outcome::Failed(e) if e.is_usage() => {
                format!("Outcome: usage error (exit {code}): {}", message(e))
            }
            Outcome::Failed(e) => format!("Outcome: failed (exit {code}): {}", message(e)),
            Outcome::Interrupted(sig, e) => format!(
                "Outcome: interrupted by {} (exit {code}): {}",
                holdfast::interrupt::signal_name(*sig),
                message(e)
            ),
        }
    }
}

/// An [`ExitCode`] from a status.
pub fn code(status: u8) -> ExitCode {
    ExitCode::from(status)
}
