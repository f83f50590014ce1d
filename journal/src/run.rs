//! Run records: one row per `remedy run`, the index `remedy runs`, `resume`
//! and `audit` start from. The events themselves are in the chain.

use rusqlite::types::Type;
use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use std::path::Path;

use rusqlite::Transaction;
use serde_json::{json, Map, Value};

use crate::chain::{append_tx, NewEvent};
use crate::system::{hostname, os_user};

/// Names the newest real run wherever a run id is asked for.
const LAST: &str = "last";

use crate::{from_sql_u64, now_ms, to_sql_u64, Journal, JournalError};
use remedy_jumphost::process_alive;

/// What a run records when it starts.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct NewRun {
    pub run_id: String,
    /// The runbook's name.
    pub runbook: String,
    /// Where it came from: `builtin:cert-renew` or a file path.
    pub runbook_ref: String,
    /// So `resume` can refuse a runbook that changed since.
    pub runbook_sha256: String,
    /// Inventory file path.
    pub inventory: String,
    pub limit: Option<String>,
    /// Parameters as the user gave them; secret ones are references such as
    /// `env:NAME`, never values.
    pub params: Vec<(String, String)>,
    pub hosts: Vec<String>,
    pub dry_run: bool,
    pub actor: String,
    pub os_user: String,
    pub jump_host: String,
    pub pid: u32,
    pub pid_start: Option<u64>,
    pub started_ms: i64,
}

/// A run as stored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RunRecord {
    pub run_id: String,
    pub runbook: String,
    pub runbook_ref: String,
    pub runbook_sha256: String,
    pub inventory: String,
    pub limit: Option<String>,
    pub params: Vec<(String, String)>,
    pub hosts: Vec<String>,
    pub dry_run: bool,
    pub actor: String,
    pub os_user: String,
    pub jump_host: String,
    pub pid: u32,
    pub pid_start: Option<u64>,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
    /// As stored: running, ok, failed, interrupted, rollback_failed, denied
    /// (unknown strings are kept verbatim). See [`RunRecord::effective_status`].
    pub status: String,
    /// Why the run must be reviewed (break-glass), if it must.
    pub review: Option<String>,
}

impl RunRecord {
    /// The status to show. A run that crashed never wrote its final status,
    /// so a stored "running" whose process on this host is gone reads
    /// "interrupted". Runs from other jump hosts cannot be checked and keep
    /// their stored status.
    pub fn effective_status(&self) -> String {
        if self.status == "running"
            && self.jump_host == hostname()
            && !process_alive(self.pid, self.pid_start)
        {
            "interrupted".to_string()
        } else {
            self.status.clone()
        }
    }
}

/// Which runs `Journal::runs` returns; `Default` is all of them.
#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    /// Started at or after this time.
    pub since_ms: Option<i64>,
    /// Runbook name, exact.
    pub runbook: Option<String>,
    /// The run's hosts contain this one.
    pub host: Option<String>,
    /// Effective status, exact.
    pub status: Option<String>,
    /// At most this many, newest first.
    pub limit: Option<usize>,
}

const RUN_COLUMNS: &str = "run_id, runbook, runbook_ref, runbook_sha256, inventory, host_limit, \
     params, hosts, dry_run, actor, os_user, jump_host, pid, pid_start, started_ms, finished_ms, \
     status, review";

fn run_from_row(r: &Row<'_>) -> rusqlite::Result<RunRecord> {
    fn json<T: serde::de::DeserializeOwned>(r: &Row<'_>, idx: usize) -> rusqlite::Result<T> {
        let text: String = r.get(idx)?;
        serde_json::from_str(&text)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e)))
    }
    Ok(RunRecord {
        run_id: r.get(0)?,
        runbook: r.get(1)?,
        runbook_ref: r.get(2)?,
        runbook_sha256: r.get(3)?,
        inventory: r.get(4)?,
        limit: r.get(5)?,
        params: json(r, 6)?,
        hosts: json(r, 7)?,
        dry_run: r.get(8)?,
        actor: r.get(9)?,
        os_user: r.get(10)?,
        jump_host: r.get(11)?,
        pid: r.get(12)?,
        pid_start: r.get::<_, Option<i64>>(13)?.map(from_sql_u64),
        started_ms: r.get(14)?,
        finished_ms: r.get(15)?,
        status: r.get(16)?,
        review: r.get(17)?,
    })
}

impl Journal {
    /// Records a new run with status "running", and the same record as a
    /// `run_recorded` event in the chain (one transaction): `resume` and
    /// `audit show` read the run from the chain, so an edited row is caught.
    pub fn create_run(&self, run: &NewRun) -> Result<(), JournalError> {
        let params_json = serde_json::to_string(&run.params).unwrap_or_default();
        let hosts_json = serde_json::to_string(&run.hosts).unwrap_or_default();
        self.write("recording a new run", |tx| {
            tx.execute(
                &format!(
                    "INSERT INTO runs ({RUN_COLUMNS}) VALUES \
                     (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, NULL, 'running', NULL)"
                ),
                params![
                    run.run_id,
                    run.runbook,
                    run.runbook_ref,
                    run.runbook_sha256,
                    run.inventory,
                    run.limit,
                    params_json,
                    hosts_json,
                    run.dry_run,
                    run.actor,
                    run.os_user,
                    run.jump_host,
                    run.pid,
                    run.pid_start.map(to_sql_u64),
                    run.started_ms,
                ],
            )
            .map_err(self.sql("recording a new run"))?;
            self.append_in(
                tx,
                &run_event(
                    &run.run_id,
                    RUN_RECORDED,
                    serde_json::to_value(run).unwrap_or_default(),
                ),
            )?;
            Ok(())
        })
    }

    /// Records how a run ended and when.
    pub fn finish_run(&self, run_id: &str, status: &str) -> Result<(), JournalError> {
        let finished_ms = now_ms();
        self.update_run(
            "finishing a run",
            run_id,
            "UPDATE runs SET status = ?2, finished_ms = ?3 WHERE run_id = ?1",
            params![run_id, status, finished_ms],
            json!({ "status": status, "finished_ms": finished_ms }),
        )
    }

    /// Marks a run as running again in this process (`remedy resume`).
    pub fn reopen_run(
        &self,
        run_id: &str,
        pid: u32,
        pid_start: Option<u64>,
        jump_host: &str,
    ) -> Result<(), JournalError> {
        self.update_run(
            "reopening a run",
            run_id,
            "UPDATE runs SET status = 'running', finished_ms = NULL, pid = ?2, pid_start = ?3, \
             jump_host = ?4 WHERE run_id = ?1",
            params![run_id, pid, pid_start.map(to_sql_u64), jump_host],
            json!({ "status": "running", "finished_ms": null, "pid": pid, "pid_start": pid_start, "jump_host": jump_host }),
        )
    }

    /// Flags a run for human review, e.g. after a break-glass override.
    pub fn set_review(&self, run_id: &str, reason: &str) -> Result<(), JournalError> {
        self.update_run(
            "flagging a run for review",
            run_id,
            "UPDATE runs SET review = ?2 WHERE run_id = ?1",
            params![run_id, reason],
            json!({ "review": reason }),
        )
    }

    /// Changes a run's row and chains the change (`run_updated`, with the
    /// fields and their new values) in the same transaction.
    fn update_run(
        &self,
        action: &'static str,
        run_id: &str,
        sql: &str,
        params: impl rusqlite::Params + Copy,
        fields: serde_json::Value,
    ) -> Result<(), JournalError> {
        self.write(action, |tx| {
            let changed = tx.execute(sql, params).map_err(self.sql(action))?;
            if changed == 0 {
                return Err(JournalError::run_not_found(run_id));
            }
            self.append_in(tx, &run_event(run_id, RUN_UPDATED, fields.clone()))?;
            Ok(())
        })
    }

    /// The run with this exact id, the only one whose id starts or ends
    /// with it, or — for `last` — the newest run that was not a dry-run, as
    /// the chain records it: a row that differs from its chained record
    /// (edited outside remedy) is refused with [`JournalError::RunEdited`],
    /// so neither `resume` nor `audit show` ever acts on an edited row.
    pub fn run(&self, id_or_prefix: &str) -> Result<RunRecord, JournalError> {
        if id_or_prefix.is_empty() {
            return Err(JournalError::run_not_found("with an empty id"));
        }
        let action = "looking up a run";
        let mut found = self.read(action, |tx| {
            let exact = tx
                .query_row(
                    &format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?1"),
                    [id_or_prefix],
                    run_from_row,
                )
                .optional()
                .map_err(self.sql(action))?;
            if let Some(run) = exact {
                return Ok(vec![run]);
            }
            if id_or_prefix == LAST {
                let last = tx
                    .query_row(
                        &format!(
                            "SELECT {RUN_COLUMNS} FROM runs WHERE dry_run = 0 \
                             ORDER BY started_ms DESC, run_id DESC LIMIT 1"
                        ),
                        [],
                        run_from_row,
                    )
                    .optional()
                    .map_err(self.sql(action))?;
                return Ok(last.into_iter().collect());
            }
            // A UUIDv7 starts with its time, so runs started close together
            // share their first characters; its end is random. Either end
            // names a run. substr, not LIKE: `_` or `%` must match literally.
            let mut stmt = tx
                .prepare(&format!(
                    "SELECT {RUN_COLUMNS} FROM runs \
                     WHERE substr(run_id, 1, length(?1)) = ?1 \
                        OR substr(run_id, -length(?1)) = ?1 ORDER BY run_id"
                ))
                .map_err(self.sql(action))?;
            let rows = stmt
                .query_map([id_or_prefix], run_from_row)
                .map_err(self.sql(action))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(self.sql(action))
        })?;
        match found.len() {
            0 => Err(JournalError::run_not_found(id_or_prefix)),
            1 => {
                let row = found.remove(0);
                let edits =
                    self.read(action, |tx| run_edits(tx, &row).map_err(self.sql(action)))?;
                if edits.is_empty() {
                    Ok(row)
                } else {
                    Err(JournalError::RunEdited {
                        path: self.path.clone(),
                        run_id: row.run_id,
                        edits,
                    })
                }
            }
            _ => Err(JournalError::Ambiguous {
                prefix: id_or_prefix.to_string(),
                matches: found.into_iter().map(|r| r.run_id).collect(),
            }),
        }
    }

    /// Runs matching `filter`, newest first.
    pub fn runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, JournalError> {
        let action = "listing runs";
        let all = self.read(action, |tx| {
            let mut stmt = tx
                .prepare(&format!(
                    "SELECT {RUN_COLUMNS} FROM runs \
                     WHERE (?1 IS NULL OR started_ms >= ?1) AND (?2 IS NULL OR runbook = ?2) \
                     ORDER BY started_ms DESC, run_id DESC"
                ))
                .map_err(self.sql(action))?;
            let rows = stmt
                .query_map(params![filter.since_ms, filter.runbook], run_from_row)
                .map_err(self.sql(action))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(self.sql(action))
        })?;
        // Host and effective status are checked here: one needs the JSON
        // list, the other this machine's process table.
        Ok(all
            .into_iter()
            .filter(|r| filter.host.as_ref().is_none_or(|h| r.hosts.contains(h)))
            .filter(|r| {
                filter
                    .status
                    .as_ref()
                    .is_none_or(|s| *s == r.effective_status())
            })
            .take(filter.limit.unwrap_or(usize::MAX))
            .collect())
    }
}

/// The chained event that records a run as created (its payload is the
/// [`NewRun`]; a run chained by the schema migration also carries `status`,
/// `finished_ms` and `review`).
pub(crate) const RUN_RECORDED: &str = "run_recorded";
/// The chained event for each later change of a run's row: the changed
/// fields and their new values.
pub(crate) const RUN_UPDATED: &str = "run_updated";

fn run_event(run_id: &str, kind: &str, payload: Value) -> NewEvent {
    NewEvent {
        run_id: run_id.to_string(),
        time_ms: now_ms(),
        actor: os_user(),
        host: None,
        step: None,
        kind: kind.to_string(),
        payload,
    }
}

/// The run as its chained events record it (`None`: no `run_recorded`
/// event). Payloads that do not parse leave the field as the row has it;
/// `verify` reports the edited event itself.
fn chained_run(tx: &Transaction<'_>, run_id: &str) -> rusqlite::Result<Option<Map<String, Value>>> {
    let mut stmt = tx.prepare(
        "SELECT kind, payload FROM events WHERE run_id = ?1 AND kind IN (?2, ?3) ORDER BY id",
    )?;
    let rows = stmt.query_map(params![run_id, RUN_RECORDED, RUN_UPDATED], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut record: Option<Map<String, Value>> = None;
    for row in rows {
        let (kind, payload) = row?;
        let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(&payload) else {
            continue;
        };
        match (kind.as_str(), record.as_mut()) {
            (RUN_RECORDED, None) => {
                let mut r = fields;
                r.entry("status").or_insert(json!("running"));
                r.entry("finished_ms").or_insert(Value::Null);
                r.entry("review").or_insert(Value::Null);
                r.remove("migrated");
                record = Some(r);
            }
            (RUN_UPDATED, Some(r)) => r.extend(fields),
            _ => {}
        }
    }
    Ok(record)
}

/// How a run's row differs from its chained record, one sentence per field
/// (empty: they agree).
pub(crate) fn run_edits(tx: &Transaction<'_>, row: &RunRecord) -> rusqlite::Result<Vec<String>> {
    let Some(chained) = chained_run(tx, &row.run_id)? else {
        return Ok(vec![format!(
            "run {} has no `{RUN_RECORDED}` event in the chain: its row was added outside remedy, or that event was deleted",
            row.run_id
        )]);
    };
    let Ok(Value::Object(stored)) = serde_json::to_value(row) else {
        return Ok(Vec::new());
    };
    Ok(stored
        .iter()
        .filter_map(|(field, value)| {
            let recorded = chained.get(field).unwrap_or(&Value::Null);
            (recorded != value).then(|| {
                format!(
                    "run {}: `{}` was edited outside remedy: the chain recorded {recorded}, the row says {value}",
                    row.run_id,
                    column_name(field)
                )
            })
        })
        .collect())
}

/// The `runs` column a [`RunRecord`] field is stored in.
fn column_name(field: &str) -> &str {
    match field {
        "limit" => "host_limit",
        other => other,
    }
}

/// Schema migration 3: chain every run recorded before runs were chained,
/// as its row reads at the migration (so edits from then on are caught).
pub(crate) fn chain_existing_runs(tx: &Transaction<'_>, path: &Path) -> Result<(), JournalError> {
    let sql = |cause| JournalError::sqlite(path, "chaining the existing runs", cause);
    let rows = {
        let mut stmt = tx
            .prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM runs ORDER BY started_ms, run_id"
            ))
            .map_err(sql)?;
        let rows = stmt.query_map([], run_from_row).map_err(sql)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql)?
    };
    for run in rows {
        let mut payload = serde_json::to_value(&run).unwrap_or_default();
        payload["migrated"] = json!(true);
        append_tx(tx, path, &run_event(&run.run_id, RUN_RECORDED, payload))?;
    }
    Ok(())
}

/// Every run whose row and chained record disagree, or whose row is gone
/// while the chain recorded it: (run id, the run's first chained event id,
/// what is wrong). Only `run_id`'s when given.
pub(crate) fn edited_runs(
    tx: &Transaction<'_>,
    run_id: Option<&str>,
) -> rusqlite::Result<Vec<(String, i64, String)>> {
    let mut found = Vec::new();
    let rows = {
        let mut stmt = tx.prepare(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE ?1 IS NULL OR run_id = ?1 ORDER BY started_ms, run_id"
        ))?;
        let rows = stmt.query_map([run_id], run_from_row)?;
        rows.collect::<Result<Vec<_>, _>>()?
    };
    let recorded = |tx: &Transaction<'_>, id: &str| -> rusqlite::Result<Option<i64>> {
        tx.query_row(
            "SELECT MIN(id) FROM events WHERE run_id = ?1 AND kind = ?2",
            params![id, RUN_RECORDED],
            |r| r.get(0),
        )
    };
    for row in &rows {
        let event_id = recorded(tx, &row.run_id)?.unwrap_or(0);
        for what in run_edits(tx, row)? {
            found.push((row.run_id.clone(), event_id, what));
        }
    }
    // A chained run whose row was deleted: `runs` and `audit show` lose it.
    let mut stmt = tx.prepare(
        "SELECT run_id, MIN(id) FROM events WHERE kind = ?1 AND (?2 IS NULL OR run_id = ?2) \
         AND run_id NOT IN (SELECT run_id FROM runs) GROUP BY run_id ORDER BY MIN(id)",
    )?;
    let gone = stmt.query_map(params![RUN_RECORDED, run_id], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })?;
    for g in gone {
        let (id, event_id) = g?;
        found.push((
            id.clone(),
            event_id,
            format!("run {id}: its row in `runs` was deleted outside remedy (the chain recorded it at event {event_id})"),
        ));
    }
    Ok(found)
}
