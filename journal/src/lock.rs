//! Per-target run locks with a lease (TTL) and fencing tokens. A second run
//! on a target is refused with the holder's name; a stale lock is reported
//! as stale but never taken over silently, because the run that left it may
//! have left the target half-changed — unless its process is gone and its
//! run was never recorded: a run is recorded before it changes anything, so
//! such a lock (a run aborted at its confirmation prompt) guards nothing.

use std::time::Duration;

use rusqlite::{params, OptionalExtension, Row, Transaction};
use serde::Serialize;

use crate::chain::NewEvent;
use crate::system::hostname;
use crate::{from_sql_u64, now_ms, to_sql_u64, Journal, JournalError, LockError};
use remedy_jumphost::process_alive;

/// Who takes a lock.
#[derive(Clone, Debug)]
pub struct Holder {
    pub run_id: String,
    pub user: String,
    /// The jump host the run executes on.
    pub host: String,
    pub pid: u32,
    pub pid_start: Option<u64>,
}

/// A lock as stored, with its staleness worked out at read time.
#[derive(Serialize, Clone, Debug)]
pub struct LockRecord {
    pub target: String,
    pub run_id: String,
    pub user: String,
    pub host: String,
    pub pid: u32,
    pub pid_start: Option<u64>,
    pub acquired_ms: i64,
    pub expires_ms: i64,
    /// Fencing token of the acquisition; compare with `Journal::holds`.
    pub token: u64,
    /// The holder's lease expired or its process is gone.
    pub stale: bool,
    /// Why it is stale, e.g. "pid 4242 on jump-1 is gone".
    pub stale_reason: Option<String>,
}

const LOCK_COLUMNS: &str =
    "target, run_id, user, host, pid, pid_start, acquired_ms, expires_ms, token";

impl LockRecord {
    /// Reads a row and judges it against `now` and this machine's processes
    /// (a holder on another host can only go stale by its lease).
    fn from_row(r: &Row<'_>, now: i64, here: &str) -> rusqlite::Result<LockRecord> {
        let mut lock = LockRecord {
            target: r.get(0)?,
            run_id: r.get(1)?,
            user: r.get(2)?,
            host: r.get(3)?,
            pid: r.get(4)?,
            pid_start: r.get::<_, Option<i64>>(5)?.map(from_sql_u64),
            acquired_ms: r.get(6)?,
            expires_ms: r.get(7)?,
            token: from_sql_u64(r.get(8)?),
            stale: false,
            stale_reason: None,
        };
        lock.stale_reason = if lock.host == here && !process_alive(lock.pid, lock.pid_start) {
            Some(format!("pid {} on {} is gone", lock.pid, lock.host))
        } else if lock.expires_ms < now {
            Some(format!(
                "lease expired {} ago",
                human_duration(now - lock.expires_ms)
            ))
        } else {
            None
        };
        lock.stale = lock.stale_reason.is_some();
        Ok(lock)
    }
}

/// "45 s", "3 min", "2 h 5 min": enough precision to judge a lease.
fn human_duration(ms: i64) -> String {
    let secs = ms.max(0) / 1000;
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        _ => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
    }
}

fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

fn lock_on(
    tx: &Transaction<'_>,
    target: &str,
    now: i64,
    here: &str,
) -> rusqlite::Result<Option<LockRecord>> {
    tx.query_row(
        &format!("SELECT {LOCK_COLUMNS} FROM locks WHERE target = ?1"),
        [target],
        |r| LockRecord::from_row(r, now, here),
    )
    .optional()
}

/// Whether the journal has a record of `run_id` (`create_run` was called).
fn run_recorded(tx: &Transaction<'_>, run_id: &str) -> rusqlite::Result<bool> {
    tx.query_row("SELECT 1 FROM runs WHERE run_id = ?1", [run_id], |_| Ok(()))
        .optional()
        .map(|found| found.is_some())
}

impl Journal {
    /// Locks every target for `holder`, or none of them, and returns the
    /// fencing token of this acquisition (one token for all targets, larger
    /// than any handed out before). Locks already held by the same run are
    /// taken over: that is a resumed run. So are locks whose holder process
    /// is gone and whose run the journal never recorded (it was aborted
    /// before it could change anything). Any other holder, stale or live,
    /// is refused with `LockError::Held`.
    pub fn acquire(
        &self,
        targets: &[String],
        holder: &Holder,
        ttl: Duration,
    ) -> Result<u64, JournalError> {
        let action = "taking target locks";
        let now = now_ms();
        let here = hostname();
        self.write(action, |tx| {
            for target in targets {
                if let Some(lock) = lock_on(tx, target, now, &here).map_err(self.sql(action))? {
                    let abandoned = lock.host == here
                        && !process_alive(lock.pid, lock.pid_start)
                        && !run_recorded(tx, &lock.run_id).map_err(self.sql(action))?;
                    if lock.run_id != holder.run_id && !abandoned {
                        return Err(LockError::Held {
                            target: target.clone(),
                            holder: Box::new(lock),
                        }
                        .into());
                    }
                }
            }
            let token: i64 = tx
                .query_row(
                    "UPDATE fencing SET last_token = last_token + 1 WHERE one = 1 RETURNING last_token",
                    [],
                    |r| r.get(0),
                )
                .map_err(self.sql(action))?;
            let expires = now.saturating_add(ttl_ms(ttl));
            for target in targets {
                tx.execute(
                    &format!(
                        "INSERT OR REPLACE INTO locks ({LOCK_COLUMNS}) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                    ),
                    params![
                        target,
                        holder.run_id,
                        holder.user,
                        holder.host,
                        holder.pid,
                        holder.pid_start.map(to_sql_u64),
                        now,
                        expires,
                        token
                    ],
                )
                .map_err(self.sql(action))?;
            }
            Ok(from_sql_u64(token))
        })
    }

    /// Extends the lease of every lock `run_id` holds to now + `ttl`.
    /// `LockError::Lost` if it holds none: someone broke them, and the run
    /// must stop touching its targets.
    pub fn renew(&self, run_id: &str, ttl: Duration) -> Result<(), JournalError> {
        let action = "renewing target locks";
        let expires = now_ms().saturating_add(ttl_ms(ttl));
        let renewed = self.write(action, |tx| {
            tx.execute(
                "UPDATE locks SET expires_ms = ?2 WHERE run_id = ?1",
                params![run_id, expires],
            )
            .map_err(self.sql(action))
        })?;
        if renewed == 0 {
            return Err(LockError::Lost {
                run_id: run_id.to_string(),
            }
            .into());
        }
        Ok(())
    }

    /// Releases every lock of `run_id`. Releasing nothing is fine (idempotent,
    /// so cleanup paths can call it twice).
    pub fn release(&self, run_id: &str) -> Result<(), JournalError> {
        let action = "releasing target locks";
        self.write(action, |tx| {
            tx.execute("DELETE FROM locks WHERE run_id = ?1", [run_id])
                .map_err(self.sql(action))
        })?;
        Ok(())
    }

    /// Every lock, by target, each judged stale or not.
    pub fn locks(&self) -> Result<Vec<LockRecord>, JournalError> {
        let action = "listing target locks";
        let now = now_ms();
        let here = hostname();
        self.read(action, |tx| {
            let mut stmt = tx
                .prepare(&format!("SELECT {LOCK_COLUMNS} FROM locks ORDER BY target"))
                .map_err(self.sql(action))?;
            let rows = stmt
                .query_map([], |r| LockRecord::from_row(r, now, &here))
                .map_err(self.sql(action))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(self.sql(action))
        })
    }

    /// The fencing check before a mutation: does `run_id` still hold
    /// `target` under `token`? False once the lock was broken or taken over,
    /// even by a later acquisition of the same run. An expired lease still
    /// holds (nobody else may take it).
    pub fn holds(&self, target: &str, run_id: &str, token: u64) -> Result<bool, JournalError> {
        let action = "checking a target lock";
        self.read(action, |tx| {
            tx.query_row(
                "SELECT 1 FROM locks WHERE target = ?1 AND run_id = ?2 AND token = ?3",
                params![target, run_id, to_sql_u64(token)],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
            .map_err(self.sql(action))
        })
    }

    /// Removes the lock on `target` by hand and journals who did it and why
    /// (event `lock_broken` in the holder's run), in one transaction. Returns
    /// the lock as it was.
    pub fn break_lock(
        &self,
        target: &str,
        actor: &str,
        reason: &str,
    ) -> Result<LockRecord, JournalError> {
        let action = "breaking a target lock";
        let now = now_ms();
        let here = hostname();
        self.write(action, |tx| {
            let lock = lock_on(tx, target, now, &here)
                .map_err(self.sql(action))?
                .ok_or_else(|| JournalError::NotFound {
                    what: format!("lock on target {target}"),
                    hint: "see the locked targets with `remedy lock list`".to_string(),
                })?;
            tx.execute("DELETE FROM locks WHERE target = ?1", [target])
                .map_err(self.sql(action))?;
            self.append_in(
                tx,
                &NewEvent {
                    run_id: lock.run_id.clone(),
                    time_ms: now,
                    actor: actor.to_string(),
                    host: None,
                    step: None,
                    kind: "lock_broken".to_string(),
                    payload: serde_json::json!({
                        "target": target,
                        "holder": {
                            "run_id": lock.run_id,
                            "user": lock.user,
                            "host": lock.host,
                            "pid": lock.pid,
                            "pid_start": lock.pid_start,
                            "acquired_ms": lock.acquired_ms,
                            "expires_ms": lock.expires_ms,
                            "stale_reason": lock.stale_reason,
                        },
                        "reason": reason,
                        "token": lock.token,
                        "broken_on": here,
                    }),
                },
            )?;
            Ok(lock)
        })
    }
}
