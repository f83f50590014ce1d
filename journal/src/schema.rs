//! The journal's tables, created and upgraded by `PRAGMA user_version`
//! migrations. Migrations only ever append: released files are never rewritten.

use std::path::Path;

use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::JournalError;

/// Version 1. Tables are STRICT so a value of the wrong type (hand-edited
/// rows) is rejected instead of silently stored.
const V1: &str = r#"
CREATE TABLE runs (
    run_id         TEXT PRIMARY KEY,
    runbook        TEXT NOT NULL,
    runbook_ref    TEXT NOT NULL,
    runbook_sha256 TEXT NOT NULL,
    inventory      TEXT NOT NULL,
    host_limit     TEXT,
    params         TEXT NOT NULL,   -- JSON [[name, value], ...] as given; secrets are references
    hosts          TEXT NOT NULL,   -- JSON [host, ...]
    dry_run        INTEGER NOT NULL,
    actor          TEXT NOT NULL,
    os_user        TEXT NOT NULL,
    jump_host      TEXT NOT NULL,
    pid            INTEGER NOT NULL,
    pid_start      INTEGER,
    started_ms     INTEGER NOT NULL,
    finished_ms    INTEGER,
    status         TEXT NOT NULL,
    review         TEXT
) STRICT;
CREATE INDEX runs_by_start ON runs (started_ms);

-- The chain: id is the global position, assigned as chain_head.last_id + 1.
CREATE TABLE events (
    id        INTEGER PRIMARY KEY,
    run_id    TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    time_ms   INTEGER NOT NULL,
    actor     TEXT NOT NULL,
    host      TEXT,
    step      TEXT,
    kind      TEXT NOT NULL,
    payload   TEXT NOT NULL,        -- the exact compact JSON that was hashed
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX events_by_run ON events (run_id, seq);

-- The last appended event. Lets `verify` see a truncated tail, which the
-- rows alone cannot show.
CREATE TABLE chain_head (
    one       INTEGER PRIMARY KEY CHECK (one = 1),
    last_id   INTEGER NOT NULL,
    last_hash TEXT NOT NULL
) STRICT;
INSERT INTO chain_head (one, last_id, last_hash)
    VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE locks (
    target      TEXT PRIMARY KEY,
    run_id      TEXT NOT NULL,
    user        TEXT NOT NULL,
    host        TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    pid_start   INTEGER,
    acquired_ms INTEGER NOT NULL,
    expires_ms  INTEGER NOT NULL,
    token       INTEGER NOT NULL
) STRICT;
CREATE INDEX locks_by_run ON locks (run_id);

-- Fencing tokens only grow, across releases and breaks.
CREATE TABLE fencing (
    one        INTEGER PRIMARY KEY CHECK (one = 1),
    last_token INTEGER NOT NULL
) STRICT;
INSERT INTO fencing (one, last_token) VALUES (1, 0);
"#;

/// Version 2: approval requests and their votes, and the callback keys seen
/// (replay protection for `remedy serve`, shared by every process).
const V2: &str = r#"
CREATE TABLE approval_requests (
    request_id       TEXT PRIMARY KEY,
    run_id           TEXT NOT NULL,
    scope            TEXT NOT NULL,   -- "run", "host:NAME" or "step:HOST/STEP"
    plan_hash        TEXT NOT NULL,
    summary          TEXT NOT NULL,
    requester        TEXT NOT NULL,
    approvers        TEXT NOT NULL,   -- JSON [user, ...], groups already expanded
    quorum           INTEGER NOT NULL,
    forbid_requester INTEGER NOT NULL,
    created_ms       INTEGER NOT NULL,
    expires_ms       INTEGER NOT NULL,
    status           TEXT NOT NULL,   -- pending, approved, denied, expired, superseded
    decided_ms       INTEGER,
    notifications    TEXT NOT NULL    -- JSON [{notifier, ok, attempts, error}, ...]
) STRICT;
CREATE INDEX approval_requests_by_run ON approval_requests (run_id);

CREATE TABLE approval_votes (
    request_id TEXT NOT NULL,
    user       TEXT NOT NULL,
    approve    INTEGER NOT NULL,
    comment    TEXT,
    channel    TEXT NOT NULL,
    time_ms    INTEGER NOT NULL,
    PRIMARY KEY (request_id, user)
) STRICT;

CREATE TABLE callbacks_seen (
    key     TEXT PRIMARY KEY,
    time_ms INTEGER NOT NULL
) STRICT;
"#;

/// One schema step: SQL, or Rust for what SQL cannot do (hashing).
enum Migration {
    Sql(&'static str),
    Rust(fn(&Transaction<'_>, &Path) -> Result<(), JournalError>),
}

/// Version 3: run records are chained (`run_recorded`, `run_updated`
/// events); runs recorded before are chained as they read now.
const V3: Migration = Migration::Rust(crate::run::chain_existing_runs);

const MIGRATIONS: &[Migration] = &[Migration::Sql(V1), Migration::Sql(V2), V3];

/// The schema version this build writes.
const VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the file up to `VERSION`. Several processes may open a fresh file
/// at once, so the version is re-read under the write lock and each
/// migration commits together with its version bump.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), JournalError> {
    let sql = |action| move |cause| JournalError::sqlite(path, action, cause);
    let user_version = |c: &Connection| -> Result<i64, JournalError> {
        c.query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sql("reading the schema version"))
    };
    // Fast path without the write lock: opening for `remedy audit` should not
    // wait behind a writer.
    if user_version(conn)? == VERSION {
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql("locking the journal to upgrade its schema"))?;
    let found = user_version(&tx)?;
    if found > VERSION {
        return Err(JournalError::SchemaTooNew {
            path: path.to_path_buf(),
            found,
            known: VERSION,
        });
    }
    let done = usize::try_from(found).unwrap_or(0);
    for migration in MIGRATIONS.get(done..).unwrap_or_default() {
        match migration {
            Migration::Sql(text) => tx
                .execute_batch(text)
                .map_err(sql("upgrading the journal schema"))?,
            Migration::Rust(step) => step(&tx, path)?,
        }
    }
    tx.pragma_update(None, "user_version", VERSION)
        .map_err(sql("recording the schema version"))?;
    tx.commit().map_err(sql("upgrading the journal schema"))
}
