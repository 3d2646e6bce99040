//! Taking provisioning back: the recorded server changes undone in reverse
//! order, waiting a while for a server that went away to come back.

use std::time::{Duration, Instant};

use crate::log::Log;
use crate::pg::provision;
use crate::Result;

use super::apply::Undo;

/// Undo server changes in reverse order, roles last (a role cannot be
/// dropped while a database holds grants to it); returns (done, remains) phrases.
pub fn rollback(
    undo: &mut Vec<Undo>,
    patience: &Patience,
    log: &Log,
) -> (Vec<String>, Vec<String>) {
    let (mut done, mut remains) = (Vec::new(), Vec::new());
    let (roles, others): (Vec<Undo>, Vec<Undo>) = std::mem::take(undo)
        .into_iter()
        .partition(|u| matches!(u, Undo::DropRole(..)));
    let (clusters, others): (Vec<Undo>, Vec<Undo>) = others
        .into_iter()
        .partition(|u| matches!(u, Undo::Cluster(..)));
    // Reversed below: other steps first, then roles, the cluster last.
    let order = clusters.into_iter().chain(roles).chain(others);
    for step in order.collect::<Vec<_>>().into_iter().rev() {
        let (what, result) = match &step {
            Undo::Cluster(c) => (
                format!(
                    "removed the cluster holdfast initialised ({})",
                    c.init.describe()
                ),
                provision::remove_cluster(c),
            ),
            Undo::DropRole(a, r) => (
                format!("dropped role '{r}'"),
                patience
                    .retry(|| a.check())
                    .and_then(|()| provision::drop_role(a, r)),
            ),
            Undo::DropDatabase(a, d) => (
                format!("dropped database '{d}'"),
                patience
                    .retry(|| a.check())
                    .and_then(|()| provision::drop_database(a, d)),
            ),
            Undo::DropExtension(a, d, e) => (
                format!("dropped extension '{e}' from database '{d}'"),
                patience
                    .retry(|| a.check())
                    .and_then(|()| provision::drop_extension(a, d, e)),
            ),
            Undo::RestorePassword(a, r, h) => (
                format!("put back the password of role '{r}'"),
                patience
                    .retry(|| a.check())
                    .and_then(|()| provision::restore_password_hash(a, r, h.as_deref())),
            ),
            Undo::RestoreOwner(a, d, o) => (
                format!("gave database '{d}' back to '{o}'"),
                patience
                    .retry(|| a.check())
                    .and_then(|()| provision::set_database_owner(a, d, o)),
            ),
        };
        match result {
            Ok(()) => done.push(what),
            Err(e) => {
                log.line(&format!("rollback: could not do '{what}': {e}"));
                remains.push(format!("not {what} ({e})"));
            }
        }
    }
    (done, remains)
}

/// How long a rollback waits, in all, for a server that went away (a restart)
/// to come back before it reports what it could not undo. Only reaching the
/// server is retried; each undo step itself runs once.
pub struct Patience {
    deadline: Instant,
}

impl Patience {
    /// The 30 s start now.
    pub fn from_now() -> Patience {
        Patience {
            deadline: Instant::now() + Duration::from_secs(30),
        }
    }

    /// Run `step` until it succeeds or the shared deadline passes.
    pub fn retry(&self, mut step: impl FnMut() -> Result<()>) -> Result<()> {
        loop {
            match step() {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= self.deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }
}
