//! One runner at a time per database: a session-level PostgreSQL advisory lock.
//!
//! Session level, not transaction level, because a run spans several transactions
//! when a script cannot run inside one; and it dies with the session, so a crashed
//! runner never leaves a stale lock behind.

use std::time::{Duration, Instant};

use postgres::Client;

use crate::pg::error_text;
use crate::{Error, Result};

/// First half of the lock key: "Hold" in ASCII. The second half is
/// `hashtext(current_database())`, so runners on different databases never wait
/// for each other.
const LOCK_CLASS: i32 = 0x486f_6c64;

/// How often a waiting runner retries.
const POLL: Duration = Duration::from_millis(200);

/// The held lock; released when dropped only by closing the session, or
/// explicitly with [`SchemaLock::release`].
#[derive(Debug)]
pub struct SchemaLock {
    _private: (),
}

impl SchemaLock {
    /// Take the lock, waiting up to `timeout`. While waiting, `say` gets one line
    /// naming the session that holds it.
    pub fn acquire(
        client: &mut Client,
        database: &str,
        timeout: Duration,
        say: &mut dyn FnMut(&str),
    ) -> Result<SchemaLock> {
        let deadline = Instant::now() + timeout;
        let mut announced = false;
        loop {
            let got: bool = client
                .query_one(
                    "SELECT pg_try_advisory_lock($1, hashtext(current_database()))",
                    &[&LOCK_CLASS],
                )
                .map_err(|e| {
                    Error::postgres(format!("cannot take the schema lock: {}", error_text(&e)))
                })?
                .get(0);
            if got {
                return Ok(SchemaLock { _private: () });
            }
            let holder = holder(client)?;
            if Instant::now() >= deadline {
                return Err(Error::failed(format!(
                    "another schema runner is working on database '{database}' ({holder}); \
                     gave up after {} s: wait for it to finish or raise --lock-timeout",
                    timeout.as_secs()
                )));
            }
            if !announced {
                say(&format!(
                    "Waiting for another schema runner on database '{database}' ({holder}) \
                     to finish (up to {} s)...",
                    timeout.as_secs()
                ));
                announced = true;
            }
            std::thread::sleep(POLL.min(deadline.saturating_duration_since(Instant::now())));
        }
    }

    /// Release the lock before the session ends.
    pub fn release(self, client: &mut Client) -> Result<()> {
        client
            .query_one(
                "SELECT pg_advisory_unlock($1, hashtext(current_database()))",
                &[&LOCK_CLASS],
            )
            .map_err(|e| {
                Error::postgres(format!(
                    "cannot release the schema lock: {}",
                    error_text(&e)
                ))
            })?;
        Ok(())
    }
}

/// `pid N, user U, application A, from ADDR, since T` of the lock's holder.
fn holder(client: &mut Client) -> Result<String> {
    let rows = client
        .query(
            "SELECT l.pid, coalesce(a.usename, '?'), coalesce(a.application_name, ''), \
                    coalesce(host(a.client_addr), 'local socket'), \
                    coalesce(to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS'), '?') \
             FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND l.database = \
                   (SELECT oid FROM pg_database WHERE datname = current_database()) \
               AND l.classid = $1::int4::oid AND l.objid = hashtext(current_database())::oid \
               AND l.objsubid = 2",
            &[&LOCK_CLASS],
        )
        .map_err(|e| Error::postgres(format!("cannot inspect pg_locks: {}", error_text(&e))))?;
    Ok(match rows.first() {
        Some(r) => {
            let pid: i32 = r.get(0);
            let user: String = r.get(1);
            let app: String = r.get(2);
            let from: String = r.get(3);
            let since: String = r.get(4);
            format!(
                "held by pid {pid}, user {user}, application '{app}', from {from}, since {since}"
            )
        }
        None => "holder not visible".to_string(),
    })
}
