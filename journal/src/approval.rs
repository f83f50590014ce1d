//! Approval requests and votes. A run waiting for approval and the people
//! approving it are different processes (`remedy approve` in another shell,
//! `remedy serve` for chat buttons), so the request lives here and every vote
//! is checked and counted in one write transaction, with a journal event.

use rusqlite::{params, OptionalExtension, Row, Transaction};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{now_ms, Journal, JournalError, NewEvent};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewRequest {
    pub request_id: String,
    pub run_id: String,
    /// `run`, `host:NAME` or `step:HOST/STEP`.
    pub scope: String,
    pub plan_hash: String,
    pub summary: String,
    pub requester: String,
    /// Users who may vote (groups already expanded by the caller).
    pub approvers: Vec<String>,
    pub quorum: u32,
    pub forbid_requester: bool,
    pub expires_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Vote {
    pub user: String,
    pub approve: bool,
    pub comment: Option<String>,
    pub channel: String,
    pub time_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestRecord {
    #[serde(flatten)]
    pub request: NewRequest,
    pub created_ms: i64,
    /// pending, approved, denied, expired, superseded.
    pub status: String,
    pub decided_ms: Option<i64>,
    pub votes: Vec<Vote>,
    pub notifications: serde_json::Value,
}

impl RequestRecord {
    pub fn approvals(&self) -> usize {
        self.votes.iter().filter(|v| v.approve).count()
    }
}

const COLUMNS: &str = "request_id, run_id, scope, plan_hash, summary, requester, approvers, \
    quorum, forbid_requester, created_ms, expires_ms, status, decided_ms, notifications";

fn from_row(r: &Row<'_>) -> rusqlite::Result<RequestRecord> {
    let approvers: String = r.get(6)?;
    let notifications: String = r.get(13)?;
    Ok(RequestRecord {
        request: NewRequest {
            request_id: r.get(0)?,
            run_id: r.get(1)?,
            scope: r.get(2)?,
            plan_hash: r.get(3)?,
            summary: r.get(4)?,
            requester: r.get(5)?,
            approvers: serde_json::from_str(&approvers).unwrap_or_default(),
            quorum: r.get::<_, i64>(7)?.try_into().unwrap_or(1),
            forbid_requester: r.get::<_, i64>(8)? != 0,
            expires_ms: r.get(10)?,
        },
        created_ms: r.get(9)?,
        status: r.get(11)?,
        decided_ms: r.get(12)?,
        votes: Vec::new(),
        notifications: serde_json::from_str(&notifications).unwrap_or_default(),
    })
}

fn votes(tx: &Transaction<'_>, request_id: &str) -> rusqlite::Result<Vec<Vote>> {
    let mut stmt = tx.prepare(
        "SELECT user, approve, comment, channel, time_ms FROM approval_votes \
         WHERE request_id = ?1 ORDER BY time_ms",
    )?;
    let rows = stmt.query_map([request_id], |r| {
        Ok(Vote {
            user: r.get(0)?,
            approve: r.get::<_, i64>(1)? != 0,
            comment: r.get(2)?,
            channel: r.get(3)?,
            time_ms: r.get(4)?,
        })
    })?;
    rows.collect()
}

fn load(tx: &Transaction<'_>, request_id: &str) -> rusqlite::Result<Option<RequestRecord>> {
    let rec = tx
        .query_row(
            &format!("SELECT {COLUMNS} FROM approval_requests WHERE request_id = ?1"),
            [request_id],
            from_row,
        )
        .optional()?;
    match rec {
        Some(mut r) => {
            r.votes = votes(tx, request_id)?;
            Ok(Some(r))
        }
        None => Ok(None),
    }
}

impl Journal {
    /// Records a new pending request (and the `approval_requested` event).
    /// Earlier pending requests of the same run and scope are superseded:
    /// only the newest plan can be approved.
    pub fn create_request(&self, r: &NewRequest) -> Result<RequestRecord, JournalError> {
        let action = "recording an approval request";
        let now = now_ms();
        self.write(action, |tx| {
            let sql = self.sql(action);
            tx.execute(
                "UPDATE approval_requests SET status = 'superseded', decided_ms = ?3 \
                 WHERE run_id = ?1 AND scope = ?2 AND status = 'pending'",
                params![r.run_id, r.scope, now],
            )
            .map_err(&sql)?;
            tx.execute(
                &format!("INSERT INTO approval_requests ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'pending', NULL, '[]')"),
                params![
                    r.request_id,
                    r.run_id,
                    r.scope,
                    r.plan_hash,
                    r.summary,
                    r.requester,
                    serde_json::to_string(&r.approvers).unwrap_or_default(),
                    i64::from(r.quorum),
                    i64::from(r.forbid_requester),
                    now,
                    r.expires_ms
                ],
            )
            .map_err(&sql)?;
            self.append_in(
                tx,
                &NewEvent {
                    run_id: r.run_id.clone(),
                    time_ms: now,
                    actor: r.requester.clone(),
                    host: None,
                    step: None,
                    kind: "approval_requested".into(),
                    payload: json!({
                        "request_id": r.request_id,
                        "scope": r.scope,
                        "plan_hash": r.plan_hash,
                        "approvers": r.approvers,
                        "quorum": r.quorum,
                        "forbid_requester": r.forbid_requester,
                        "expires_ms": r.expires_ms,
                        "summary": r.summary,
                    }),
                },
            )?;
            load(tx, &r.request_id)
                .map_err(&sql)?
                .ok_or_else(|| JournalError::NotFound {
                    what: format!("approval request {}", r.request_id),
                    hint: String::new(),
                })
        })
    }

    /// One request, with its votes. Marks it expired (journaled) when its
    /// TTL has passed while still pending.
    pub fn request(&self, request_id: &str) -> Result<RequestRecord, JournalError> {
        let action = "reading an approval request";
        self.write(action, |tx| {
            let rec = load(tx, request_id)
                .map_err(self.sql(action))?
                .ok_or_else(|| JournalError::NotFound {
                    what: format!("approval request {request_id}"),
                    hint: "see the pending requests with `remedy approvals`".into(),
                })?;
            self.expire_if_due(tx, rec)
        })
    }

    fn expire_if_due(
        &self,
        tx: &Transaction<'_>,
        mut rec: RequestRecord,
    ) -> Result<RequestRecord, JournalError> {
        let now = now_ms();
        if rec.status == "pending" && now >= rec.request.expires_ms {
            tx.execute(
                "UPDATE approval_requests SET status = 'expired', decided_ms = ?2 WHERE request_id = ?1",
                params![rec.request.request_id, now],
            )
            .map_err(self.sql("expiring an approval request"))?;
            self.append_in(
                tx,
                &NewEvent {
                    run_id: rec.request.run_id.clone(),
                    time_ms: now,
                    actor: "remedy".into(),
                    host: None,
                    step: None,
                    kind: "approval_expired".into(),
                    payload: json!({
                        "request_id": rec.request.request_id,
                        "approvals": rec.approvals(),
                        "quorum": rec.request.quorum,
                    }),
                },
            )?;
            rec.status = "expired".into();
            rec.decided_ms = Some(now);
        }
        Ok(rec)
    }

    /// Requests of one run (newest last), or every pending one.
    pub fn requests(&self, run_id: Option<&str>) -> Result<Vec<RequestRecord>, JournalError> {
        let action = "listing approval requests";
        self.write(action, |tx| {
            let sql = self.sql(action);
            let ids: Vec<String> = match run_id {
                Some(run) => {
                    let mut stmt = tx
                        .prepare("SELECT request_id FROM approval_requests WHERE run_id = ?1 ORDER BY created_ms")
                        .map_err(&sql)?;
                    let rows = stmt
                        .query_map([run], |r| r.get(0))
                        .map_err(&sql)?
                        .collect::<rusqlite::Result<Vec<String>>>()
                        .map_err(&sql)?;
                    rows
                }
                None => {
                    let mut stmt = tx
                        .prepare("SELECT request_id FROM approval_requests WHERE status = 'pending' ORDER BY created_ms")
                        .map_err(&sql)?;
                    let rows = stmt
                        .query_map([], |r| r.get(0))
                        .map_err(&sql)?
                        .collect::<rusqlite::Result<Vec<String>>>()
                        .map_err(&sql)?;
                    rows
                }
            };
            let mut out = Vec::new();
            for id in ids {
                if let Some(rec) = load(tx, &id).map_err(&sql)? {
                    let rec = self.expire_if_due(tx, rec)?;
                    if run_id.is_some() || rec.status == "pending" {
                        out.push(rec);
                    }
                }
            }
            Ok(out)
        })
    }

    /// Counts one person's vote: refused (with the reason) unless the
    /// request is pending and unexpired, the user is an approver, is not the
    /// requester when that is forbidden, and has not voted. A deny decides at
    /// once; approvals decide when they reach the quorum. Journaled.
    pub fn vote(
        &self,
        request_id: &str,
        user: &str,
        approve: bool,
        comment: Option<&str>,
        channel: &str,
    ) -> Result<RequestRecord, JournalError> {
        self.vote_as(request_id, user, user, approve, comment, channel)
    }

    /// [`Journal::vote`] by `user`, journaled under `actor`: on a shared
    /// account (`--as NAME`) the vote counts for NAME and the event says
    /// which OS user cast it too (`NAME (os user alice)`).
    pub fn vote_as(
        &self,
        request_id: &str,
        user: &str,
        actor: &str,
        approve: bool,
        comment: Option<&str>,
        channel: &str,
    ) -> Result<RequestRecord, JournalError> {
        let action = "recording an approval vote";
        let now = now_ms();
        self.write(action, |tx| {
            let sql = self.sql(action);
            let rec = load(tx, request_id)
                .map_err(&sql)?
                .ok_or_else(|| JournalError::NotFound {
                    what: format!("approval request {request_id}"),
                    hint: "see the pending requests with `remedy approvals`".into(),
                })?;
            let rec = self.expire_if_due(tx, rec)?;
            let req = &rec.request;
            let refuse = |why: String| Err(JournalError::Refused { why });
            if rec.status != "pending" {
                return refuse(format!(
                    "request {request_id} of run {} is {}, not pending{}",
                    req.run_id,
                    rec.status,
                    if rec.status == "superseded" {
                        " (the plan changed; approve the newer request — `remedy approvals`)"
                    } else {
                        ""
                    }
                ));
            }
            if !req.approvers.iter().any(|a| a == user) {
                return refuse(format!(
                    "{user} is not an approver of run {} (approvers: {})",
                    req.run_id,
                    req.approvers.join(", ")
                ));
            }
            if approve && req.forbid_requester && user == req.requester {
                return refuse(format!(
                    "{user} requested run {} and may not approve it (forbid_requester); ask another approver",
                    req.run_id
                ));
            }
            if rec.votes.iter().any(|v| v.user == user) {
                return refuse(format!(
                    "{user} already voted on request {request_id}"
                ));
            }
            tx.execute(
                "INSERT INTO approval_votes (request_id, user, approve, comment, channel, time_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![request_id, user, i64::from(approve), comment, channel, now],
            )
            .map_err(&sql)?;
            let approvals = rec.approvals() + usize::from(approve);
            let status = if !approve {
                "denied"
            } else if approvals >= req.quorum as usize {
                "approved"
            } else {
                "pending"
            };
            if status != "pending" {
                tx.execute(
                    "UPDATE approval_requests SET status = ?2, decided_ms = ?3 WHERE request_id = ?1",
                    params![request_id, status, now],
                )
                .map_err(&sql)?;
            }
            self.append_in(
                tx,
                &NewEvent {
                    run_id: req.run_id.clone(),
                    time_ms: now,
                    actor: actor.to_string(),
                    host: None,
                    step: None,
                    kind: match status {
                        "approved" => "approval_granted",
                        "denied" => "approval_denied",
                        _ => "approval_vote",
                    }
                    .into(),
                    payload: json!({
                        "request_id": request_id,
                        "approve": approve,
                        "comment": comment,
                        "channel": channel,
                        "plan_hash": req.plan_hash,
                        "approvals": approvals,
                        "quorum": req.quorum,
                    }),
                },
            )?;
            load(tx, request_id)
                .map_err(&sql)?
                .ok_or_else(|| JournalError::NotFound {
                    what: format!("approval request {request_id}"),
                    hint: String::new(),
                })
        })
    }

    /// Records how the notifications of a request went (shown by `remedy
    /// approvals`), and journals the failed ones.
    pub fn record_notifications(
        &self,
        request_id: Option<&str>,
        run_id: &str,
        deliveries: &serde_json::Value,
    ) -> Result<(), JournalError> {
        let action = "recording notifications";
        let now = now_ms();
        self.write(action, |tx| {
            if let Some(id) = request_id {
                tx.execute(
                    "UPDATE approval_requests SET notifications = ?2 WHERE request_id = ?1",
                    params![id, deliveries.to_string()],
                )
                .map_err(self.sql(action))?;
            }
            for d in deliveries.as_array().into_iter().flatten() {
                if d["ok"].as_bool() == Some(false) {
                    self.append_in(
                        tx,
                        &NewEvent {
                            run_id: run_id.to_string(),
                            time_ms: now,
                            actor: "remedy".into(),
                            host: None,
                            step: None,
                            kind: "notification_failed".into(),
                            payload: json!({ "request_id": request_id, "delivery": d }),
                        },
                    )?;
                }
            }
            Ok(())
        })
    }

    /// True the first time `key` is seen (replay protection for chat
    /// callbacks). Keys older than a day are forgotten: callbacks carry
    /// timestamps that are refused long before that.
    pub fn first_time(&self, key: &str) -> Result<bool, JournalError> {
        let action = "recording a callback";
        let now = now_ms();
        self.write(action, |tx| {
            tx.execute(
                "DELETE FROM callbacks_seen WHERE time_ms < ?1",
                [now - 86_400_000],
            )
            .map_err(self.sql(action))?;
            let n = tx
                .execute(
                    "INSERT OR IGNORE INTO callbacks_seen (key, time_ms) VALUES (?1, ?2)",
                    params![key, now],
                )
                .map_err(self.sql(action))?;
            Ok(n == 1)
        })
    }
}
