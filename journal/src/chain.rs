//! The event chain: one global, append-only sequence across all runs, each
//! event carrying the hash of the one before it.

use rusqlite::{params, OptionalExtension, Row, Transaction};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use std::path::Path;

use crate::{Journal, JournalError};

/// `prev_hash` of the first event.
pub(crate) const GENESIS_HASH: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";

/// An event to append. Payloads must already have secrets redacted: the
/// journal keeps them forever.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub run_id: String,
    pub time_ms: i64,
    pub actor: String,
    pub host: Option<String>,
    pub step: Option<String>,
    pub kind: String,
    pub payload: serde_json::Value,
}

/// An event as stored in the chain.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct StoredEvent {
    /// Global chain position, from 1.
    pub id: i64,
    pub run_id: String,
    /// Position within the run, from 1.
    pub seq: i64,
    pub time_ms: i64,
    pub actor: String,
    pub host: Option<String>,
    pub step: Option<String>,
    pub kind: String,
    pub payload: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

/// An event row exactly as stored, payload still the hashed text. `verify`
/// works on these so a payload edited into invalid JSON is still reported
/// rather than failing the walk.
pub(crate) struct EventRow {
    pub id: i64,
    pub run_id: String,
    pub seq: i64,
    pub time_ms: i64,
    pub actor: String,
    pub host: Option<String>,
    pub step: Option<String>,
    pub kind: String,
    pub payload: String,
    pub prev_hash: String,
    pub hash: String,
}

pub(crate) const EVENT_COLUMNS: &str =
    "id, run_id, seq, time_ms, actor, host, step, kind, payload, prev_hash, hash";

impl EventRow {
    pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<EventRow> {
        Ok(EventRow {
            id: r.get(0)?,
            run_id: r.get(1)?,
            seq: r.get(2)?,
            time_ms: r.get(3)?,
            actor: r.get(4)?,
            host: r.get(5)?,
            step: r.get(6)?,
            kind: r.get(7)?,
            payload: r.get(8)?,
            prev_hash: r.get(9)?,
            hash: r.get(10)?,
        })
    }

    /// sha256 (hex) of the compact JSON array
    /// `[id, run_id, seq, time_ms, actor, host, step, kind, payload, prev_hash]`
    /// where `payload` is the stored JSON text as a string, so reading the
    /// row back never changes what was hashed.
    pub(crate) fn compute_hash(&self) -> String {
        let canonical = serde_json::json!([
            self.id,
            self.run_id,
            self.seq,
            self.time_ms,
            self.actor,
            self.host,
            self.step,
            self.kind,
            self.payload,
            self.prev_hash,
        ]);
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    }

    /// How problems name this event: `event 17 (run 0199…, seq 5, step_intent)`.
    pub(crate) fn describe(&self) -> String {
        format!(
            "event {} (run {}, seq {}, {})",
            self.id, self.run_id, self.seq, self.kind
        )
    }

    fn into_stored(self, path: &std::path::Path) -> Result<StoredEvent, JournalError> {
        let payload =
            serde_json::from_str(&self.payload).map_err(|e| JournalError::ChainDamaged {
                path: path.to_path_buf(),
                what: format!("the payload of {} is not JSON ({e})", self.describe()),
            })?;
        Ok(StoredEvent {
            id: self.id,
            run_id: self.run_id,
            seq: self.seq,
            time_ms: self.time_ms,
            actor: self.actor,
            host: self.host,
            step: self.step,
            kind: self.kind,
            payload,
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

/// The chain head row: (last id, last hash), `None` if the row was deleted.
pub(crate) fn chain_head(tx: &Transaction<'_>) -> rusqlite::Result<Option<(i64, String)>> {
    tx.query_row(
        "SELECT last_id, last_hash FROM chain_head WHERE one = 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

impl Journal {
    /// Appends `e` to the chain and returns it as stored. Durable when this
    /// returns (`synchronous=FULL`): write the intent event, then mutate.
    pub fn append(&self, e: &NewEvent) -> Result<StoredEvent, JournalError> {
        self.write("appending an event", |tx| self.append_in(tx, e))
    }

    /// Appends inside the caller's transaction, so a change and the event
    /// recording it (e.g. a broken lock) commit together.
    pub(crate) fn append_in(
        &self,
        tx: &Transaction<'_>,
        e: &NewEvent,
    ) -> Result<StoredEvent, JournalError> {
        append_tx(tx, &self.path, e)
    }

    /// One run's events in seq order (empty for an unknown run).
    pub fn events(&self, run_id: &str) -> Result<Vec<StoredEvent>, JournalError> {
        self.stored_events(
            &format!("SELECT {EVENT_COLUMNS} FROM events WHERE run_id = ?1 ORDER BY seq, id"),
            params![run_id],
        )
    }

    /// Every event of one kind across all runs, in chain order: e.g. every
    /// `backup_taken`, for `remedy backup list`.
    pub fn events_of_kind(&self, kind: &str) -> Result<Vec<StoredEvent>, JournalError> {
        self.stored_events(
            &format!("SELECT {EVENT_COLUMNS} FROM events WHERE kind = ?1 ORDER BY id"),
            params![kind],
        )
    }

    /// Every event in chain order, for export. Shipping these (with their
    /// hashes) to a SIEM anchors the chain outside this machine.
    pub fn all_events(&self) -> Result<Vec<StoredEvent>, JournalError> {
        self.stored_events(
            &format!("SELECT {EVENT_COLUMNS} FROM events ORDER BY id"),
            params![],
        )
    }

    fn stored_events(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<StoredEvent>, JournalError> {
        let action = "reading events";
        let rows = self.read(action, |tx| {
            let mut stmt = tx.prepare(sql).map_err(self.sql(action))?;
            let rows = stmt
                .query_map(params, EventRow::from_row)
                .map_err(self.sql(action))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(self.sql(action))
        })?;
        rows.into_iter()
            .map(|row| row.into_stored(&self.path))
            .collect()
    }
}

/// Appends `e` inside `tx` (also used by migrations, which have no
/// `Journal` yet).
pub(crate) fn append_tx(
    tx: &Transaction<'_>,
    path: &Path,
    e: &NewEvent,
) -> Result<StoredEvent, JournalError> {
    let sql = |cause| JournalError::sqlite(path, "appending an event", cause);
    let damaged = |what: String| JournalError::ChainDamaged {
        path: path.to_path_buf(),
        what,
    };
    // The head, not MAX(id), decides the next id: after a truncated tail
    // the new event then shows a gap instead of quietly reusing the ids.
    let (last_id, last_hash) = chain_head(tx)
        .map_err(&sql)?
        .ok_or_else(|| damaged("the chain head row is missing".to_string()))?;
    let max_id: Option<i64> = tx
        .query_row("SELECT MAX(id) FROM events", [], |r| r.get(0))
        .map_err(&sql)?;
    if let Some(max_id) = max_id.filter(|&m| m > last_id) {
        return Err(damaged(format!(
                "the chain head says the last event is {last_id} but event {max_id} exists (rows were added outside remedy)"
            )));
    }
    let seq: i64 = tx
        .query_row(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE run_id = ?1",
            [&e.run_id],
            |r| r.get(0),
        )
        .map_err(&sql)?;
    let mut row = EventRow {
        id: last_id + 1,
        run_id: e.run_id.clone(),
        seq,
        time_ms: e.time_ms,
        actor: e.actor.clone(),
        host: e.host.clone(),
        step: e.step.clone(),
        kind: e.kind.clone(),
        payload: e.payload.to_string(),
        prev_hash: last_hash,
        hash: String::new(),
    };
    row.hash = row.compute_hash();
    tx.execute(
        &format!(
            "INSERT INTO events ({EVENT_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        ),
        params![
            row.id,
            row.run_id,
            row.seq,
            row.time_ms,
            row.actor,
            row.host,
            row.step,
            row.kind,
            row.payload,
            row.prev_hash,
            row.hash
        ],
    )
    .map_err(&sql)?;
    tx.execute(
        "UPDATE chain_head SET last_id = ?1, last_hash = ?2 WHERE one = 1",
        params![row.id, row.hash],
    )
    .map_err(&sql)?;
    Ok(StoredEvent {
        id: row.id,
        run_id: row.run_id,
        seq: row.seq,
        time_ms: row.time_ms,
        actor: row.actor,
        host: row.host,
        step: row.step,
        kind: row.kind,
        payload: e.payload.clone(),
        prev_hash: row.prev_hash,
        hash: row.hash,
    })
}
