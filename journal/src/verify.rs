//! Checking the chain. What it proves, honestly: any edit, deletion or
//! reordering of events by someone who does not rewrite everything after it,
//! and any edit of a run's row (it is compared with the run's chained
//! record). Someone with write access who recomputes every later hash and the
//! chain head consistently — or cuts the tail and sets the head to match — is
//! NOT detected by the file alone; a head kept elsewhere ([`Journal::witness`],
//! carried by every run-finished notification) or an exported copy
//! (`all_events`) anchors it, after which such a rewrite no longer matches.

use std::collections::HashMap;

use rusqlite::OptionalExtension;
use serde::Serialize;

use crate::chain::{chain_head, EventRow, EVENT_COLUMNS, GENESIS_HASH};
use crate::run::{edited_runs, RUN_RECORDED};
use crate::{Journal, JournalError};

/// The outcome of `Journal::verify`.
#[derive(Serialize, Clone, Debug)]
pub struct Verification {
    /// True when there are no problems.
    pub ok: bool,
    /// Events checked (of the run, when verifying one run).
    pub checked: usize,
    /// Every problem, in chain order; the first one matters most, later ones
    /// are often its consequences.
    pub problems: Vec<Problem>,
}

/// One thing wrong with the chain.
#[derive(Serialize, Clone, Debug)]
pub struct Problem {
    /// The event where the problem shows. For a chain-head mismatch, the id
    /// the head records as last (that row may be gone).
    pub event_id: i64,
    /// The run, seq and kind of that event (empty / 0 for a missing one).
    pub run_id: String,
    pub seq: i64,
    /// The event's kind, e.g. `step_intent`.
    pub kind: String,
    /// What is wrong.
    pub problem: ProblemKind,
    /// A sentence naming the event and what was probably done to it.
    pub what: String,
}

/// The kinds of damage `verify` tells apart.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// Ids jump: events in between were deleted.
    IdGap,
    /// `prev_hash` is not the previous event's hash.
    LinkBroken,
    /// The stored hash does not match the event's fields.
    ContentEdited,
    /// The run's seq numbers are not 1, 2, 3… in chain order.
    SeqGap,
    /// The chain head does not match the last event.
    HeadMismatch,
    /// A run's row (params, actor, status, …) differs from what the chain
    /// recorded for it, or was deleted.
    RunEdited,
    /// The head given with `--head` (from a notification or an earlier
    /// `audit head`) is not in the journal: the chain was cut or rewritten.
    WitnessMissing,
}

impl Journal {
    /// Walks the whole chain in id order. With `Some(run_id)` only that run's
    /// problems are reported (the walk still covers everything, because links
    /// cross runs); problems at the chain head are always reported since the
    /// deleted tail may have been that run's. `NotFound` if the run has
    /// neither a record nor events.
    pub fn verify(&self, run_id: Option<&str>) -> Result<Verification, JournalError> {
        let action = "verifying the chain";
        let in_scope = |r: &EventRow| run_id.is_none_or(|id| r.run_id == id);
        // One read transaction: rows and head from the same snapshot while
        // others keep appending. Rows are streamed; only the previous event
        // and each run's last seq are kept, so a long journal fits in memory.
        let (mut walk, head, runs, run_known) = self.read(action, |tx| {
            let mut walk = Walk::default();
            let mut stmt = tx
                .prepare(&format!("SELECT {EVENT_COLUMNS} FROM events ORDER BY id"))
                .map_err(self.sql(action))?;
            let mut rows = stmt.query([]).map_err(self.sql(action))?;
            while let Some(r) = rows.next().map_err(self.sql(action))? {
                let row = EventRow::from_row(r).map_err(self.sql(action))?;
                walk.step(row, in_scope);
            }
            let head = chain_head(tx).map_err(self.sql(action))?;
            let runs = edited_runs(tx, run_id).map_err(self.sql(action))?;
            let run_known = match run_id {
                Some(id) => tx
                    .query_row("SELECT 1 FROM runs WHERE run_id = ?1", [id], |_| Ok(()))
                    .optional()
                    .map_err(self.sql(action))?
                    .is_some(),
                None => true,
            };
            Ok((walk, head, runs, run_known))
        })?;
        if let Some(id) = run_id {
            if !run_known && walk.checked == 0 {
                return Err(JournalError::run_not_found(id));
            }
        }
        walk.problems.extend(check_head(head, walk.prev.as_ref()));
        // Run records last: an event cut off the end also leaves its run's
        // row ahead of the chain, and the cut is what to report first.
        walk.problems
            .extend(runs.into_iter().map(|(run, event_id, what)| Problem {
                event_id,
                run_id: run,
                seq: 0,
                kind: RUN_RECORDED.to_string(),
                problem: ProblemKind::RunEdited,
                what,
            }));
        Ok(Verification {
            ok: walk.problems.is_empty(),
            checked: walk.checked,
            problems: walk.problems,
        })
    }
}

impl Journal {
    /// The chain head: the last event's id and hash (0 and the genesis hash
    /// for an empty journal). Kept somewhere else — the run-finished
    /// notification carries it — it is the external witness that lets
    /// [`Journal::witness`] catch a cut-off tail, which no local check can.
    pub fn head(&self) -> Result<(i64, String), JournalError> {
        let action = "reading the chain head";
        self.read(action, |tx| {
            chain_head(tx)
                .map_err(self.sql(action))?
                .ok_or_else(|| JournalError::ChainDamaged {
                    path: self.path.clone(),
                    what: "the chain head row is missing".to_string(),
                })
        })
    }

    /// Checks that a head recorded earlier (`hash`, 64 hex digits, as
    /// `audit head` printed it or a notification carried it) is still an
    /// event of this journal. `Some(problem)` when it is not: the events up
    /// to it were deleted or the chain was rewritten.
    pub fn witness(&self, hash: &str) -> Result<Option<Problem>, JournalError> {
        let hash = hash.trim().to_ascii_lowercase();
        if hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(JournalError::Refused {
                why: format!("`{hash}` is not a chain head: expected the 64 hex digits `remedy audit head` prints"),
            });
        }
        if hash == GENESIS_HASH {
            return Ok(None);
        }
        let action = "looking up a chain head";
        let found: Option<i64> = self.read(action, |tx| {
            tx.query_row("SELECT id FROM events WHERE hash = ?1", [&hash], |r| {
                r.get(0)
            })
            .optional()
            .map_err(self.sql(action))
        })?;
        Ok(found.is_none().then(|| Problem {
            event_id: 0,
            run_id: String::new(),
            seq: 0,
            kind: String::new(),
            problem: ProblemKind::WitnessMissing,
            what: format!("the chain head {hash} recorded outside this journal is not in it: the events up to it were deleted, or the chain was rewritten"),
        }))
    }
}

/// The state of a walk along the chain.
#[derive(Default)]
struct Walk {
    prev: Option<EventRow>,
    last_seq: HashMap<String, i64>,
    checked: usize,
    problems: Vec<Problem>,
}

impl Walk {
    fn step(&mut self, row: EventRow, in_scope: impl Fn(&EventRow) -> bool) {
        let found = check_event(
            &row,
            self.prev.as_ref(),
            self.last_seq.get(&row.run_id).copied(),
        );
        if in_scope(&row) {
            self.checked += 1;
            self.problems
                .extend(found.into_iter().map(|(problem, what)| Problem {
                    event_id: row.id,
                    run_id: row.run_id.clone(),
                    seq: row.seq,
                    kind: row.kind.clone(),
                    problem,
                    what,
                }));
        }
        self.last_seq.insert(row.run_id.clone(), row.seq);
        self.prev = Some(row);
    }
}

/// The problems of one event given the one before it in the chain and the
/// previous seq of its run, most telling first.
fn check_event(
    row: &EventRow,
    prev: Option<&EventRow>,
    run_last_seq: Option<i64>,
) -> Vec<(ProblemKind, String)> {
    let mut found = Vec::new();
    let desc = row.describe();
    let expected_id = prev.map_or(1, |p| p.id + 1);
    let gap = row.id != expected_id;
    if gap {
        let missing = if row.id == expected_id + 1 {
            format!("event {expected_id} was")
        } else {
            format!("events {expected_id}..{} were", row.id - 1)
        };
        found.push((
            ProblemKind::IdGap,
            format!("{desc}: {missing} deleted before it"),
        ));
    }
    let expected_prev = prev.map_or(GENESIS_HASH, |p| p.hash.as_str());
    // After a gap the link cannot match; saying so again adds nothing.
    if !gap && row.prev_hash != expected_prev {
        found.push((
            ProblemKind::LinkBroken,
            format!(
                "{desc}: its link to the previous event is broken: the event before it was deleted, edited or the rows were reordered"
            ),
        ));
    }
    if row.compute_hash() != row.hash {
        found.push((
            ProblemKind::ContentEdited,
            format!("{desc}: its content was edited after it was written (the stored hash does not match its fields)"),
        ));
    }
    let expected_seq = run_last_seq.map_or(1, |s| s + 1);
    if row.seq != expected_seq {
        found.push((
            ProblemKind::SeqGap,
            format!(
                "{desc}: run {} should be at seq {expected_seq} here: events of this run were deleted or reordered",
                row.run_id
            ),
        ));
    }
    found
}

/// The chain head against the last row: only the head can show that events
/// were cut off the end.
fn check_head(head: Option<(i64, String)>, last: Option<&EventRow>) -> Option<Problem> {
    let (last_id, last_hash) = last.map_or((0, GENESIS_HASH), |r| (r.id, r.hash.as_str()));
    let problem = |event_id: i64, what: String| {
        let event = last.filter(|r| r.id == event_id);
        Problem {
            event_id,
            run_id: event.map(|r| r.run_id.clone()).unwrap_or_default(),
            seq: event.map_or(0, |r| r.seq),
            kind: event.map(|r| r.kind.clone()).unwrap_or_default(),
            problem: ProblemKind::HeadMismatch,
            what,
        }
    };
    let Some((head_id, head_hash)) = head else {
        return Some(problem(
            last_id,
            "the chain head row is missing: it was deleted outside remedy, so a truncated tail cannot be ruled out".to_string(),
        ));
    };
    if head_id > last_id {
        let missing = if head_id == last_id + 1 {
            format!("event {head_id} was")
        } else {
            format!("events {}..{head_id} were", last_id + 1)
        };
        return Some(problem(
            head_id,
            format!("events after {last_id} were deleted: {missing} cut off the end of the chain (the chain head records event {head_id} as the last)"),
        ));
    }
    if head_id < last_id {
        return Some(problem(
            last_id,
            format!("events {}..{last_id} are not covered by the chain head (it records event {head_id}): they were added outside remedy", head_id + 1),
        ));
    }
    if head_hash != last_hash {
        return Some(problem(
            last_id,
            format!("the last event {last_id} does not match the chain head's hash: it was replaced, or the head was edited"),
        ));
    }
    None
}
