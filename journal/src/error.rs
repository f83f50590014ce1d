//! The journal's errors. Each message says what happened and what to do next;
//! the SQLite cause is part of the message (not only a chained source) so a
//! one-line print is complete.

use std::path::{Path, PathBuf};

use crate::lock::LockRecord;

/// Everything the journal can fail with.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// SQLite refused an operation on the journal file.
    #[error("journal {}: {action} failed: {cause}; {}", .path.display(), sqlite_hint(.cause))]
    Sqlite {
        path: PathBuf,
        action: &'static str,
        cause: rusqlite::Error,
    },
    /// Creating the journal's directory or file failed.
    #[error("{action} {} failed: {cause}; check you may write there, or set REMEDY_HOME to a directory you own", .path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        cause: std::io::Error,
    },
    /// The file system cannot do WAL (shared memory), so other processes
    /// could not read while a run writes.
    #[error("journal {}: SQLite could not switch to WAL mode (it stayed in {mode}); put REMEDY_HOME on a local file system", .path.display())]
    NoWal { path: PathBuf, mode: String },
    /// A newer remedy migrated the file; this build cannot know its tables.
    #[error("journal {} has schema version {found} but this remedy knows only up to {known}; upgrade remedy on this host", .path.display())]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    /// The chain head disagrees with the events, so appending would extend a
    /// damaged chain. Refused rather than papered over.
    #[error("journal {}: cannot append: {what}; run `remedy audit verify`, keep a copy of the file, and if you must act now point REMEDY_HOME at a fresh directory", .path.display())]
    ChainDamaged { path: PathBuf, what: String },
    /// The reserve that lets a run record its end on a full disk cannot be
    /// made: too little room under the journal to start a run.
    #[error("cannot keep {} MiB free beside the journal ({}: {cause}), so a rollback could not be recorded if the disk filled up; free space there or set REMEDY_HOME to a roomier file system. Nothing was changed", crate::RESERVE_BYTES / (1024 * 1024), .path.display())]
    NoReserve {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// Less free space than a run needs to record itself (besides the reserve).
    #[error("only {} KiB are free beside the journal {} (a run needs {} MiB besides the {} MiB it keeps in reserve to record a rollback); free space there or set REMEDY_HOME to a roomier file system. Nothing was changed", .free / 1024, .path.display(), crate::FLOOR_BYTES / (1024 * 1024), crate::RESERVE_BYTES / (1024 * 1024))]
    NoRoom { path: PathBuf, free: u64 },
    /// A run's row no longer matches what the chain recorded for it.
    #[error("journal {}: the record of run {run_id} was changed outside remedy, so it is not used: {}; run `remedy audit verify`, and compare with an exported copy", .path.display(), .edits.join("; "))]
    RunEdited {
        path: PathBuf,
        run_id: String,
        edits: Vec<String>,
    },
    /// No run, event or lock by that name.
    #[error("{what} not found in the journal; {hint}")]
    NotFound { what: String, hint: String },
    /// A run-id prefix matched more than one run.
    #[error("run id part `{prefix}` matches {} runs ({}); type more of the id — its last characters are random, its first ones are its start time — or `last` for the newest run", .matches.len(), .matches.join(", "))]
    Ambiguous {
        prefix: String,
        matches: Vec<String>,
    },
    /// An approval vote that cannot count (not an approver, the requester,
    /// already voted, the request no longer pending).
    #[error("{why}")]
    Refused { why: String },
    /// A target lock is held or was lost.
    #[error(transparent)]
    Lock(#[from] LockError),
}

impl JournalError {
    pub(crate) fn sqlite(path: &Path, action: &'static str, cause: rusqlite::Error) -> Self {
        JournalError::Sqlite {
            path: path.to_path_buf(),
            action,
            cause,
        }
    }

    /// True when SQLite (or the file system) said the disk is full.
    pub fn is_disk_full(&self) -> bool {
        match self {
            JournalError::Sqlite { cause, .. } => {
                cause.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
            }
            JournalError::Io { cause, .. } | JournalError::NoReserve { cause, .. } => {
                cause.raw_os_error() == Some(28) // ENOSPC
            }
            _ => false,
        }
    }

    pub(crate) fn run_not_found(run: &str) -> Self {
        JournalError::NotFound {
            what: format!("run {run}"),
            hint: "list runs with `remedy runs`".to_string(),
        }
    }
}

/// What to do about a SQLite failure, by its cause.
fn sqlite_hint(cause: &rusqlite::Error) -> &'static str {
    use rusqlite::ErrorCode::*;
    match cause.sqlite_error_code() {
        Some(DatabaseBusy | DatabaseLocked) => {
            "another remedy process held the journal for over 30 s; find it with `remedy runs` and retry"
        }
        Some(ReadOnly | PermissionDenied | CannotOpen) => {
            "check that you own the journal file and its directory (or set REMEDY_HOME)"
        }
        Some(DiskFull) => "free disk space and retry",
        Some(DatabaseCorrupt | NotADatabase) => {
            "the file is damaged or not a remedy journal; keep a copy and point REMEDY_HOME at a fresh directory"
        }
        Some(ConstraintViolation) => {
            "the journal already has this record or its rows were edited outside remedy; run `remedy audit verify`"
        }
        _ => "the journal may have been edited outside remedy; run `remedy audit verify` and retry",
    }
}

/// A target lock could not be taken or is no longer held.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another run holds `target`. Stale holders are refused too: a crashed
    /// run may have left the target half-changed, so a human decides.
    /// (The record is boxed to keep every `Result` small.)
    #[error("{}", held_message(.target, .holder))]
    Held {
        target: String,
        holder: Box<LockRecord>,
    },
    /// The run holds no locks any more (released or broken by someone else).
    #[error("run {run_id} holds no target locks any more (released, or broken with `remedy lock break`); stop changing its targets and check `remedy lock list`")]
    Lost { run_id: String },
}

fn held_message(target: &str, h: &LockRecord) -> String {
    let who = format!(
        "target {target} is locked by run {} ({}@{}, pid {})",
        h.run_id, h.user, h.host, h.pid
    );
    match &h.stale_reason {
        Some(why) => format!(
            "{who}, but the holder is gone ({why}): finish that run with `remedy resume {}` or break the lock with `remedy lock break {target}`",
            h.run_id
        ),
        None => format!("{who}; wait for it, or see `remedy runs`"),
    }
}
