//! remedy's durable store: a hash-chained, tamper-evident journal of events,
//! the run records that index it, and per-target run locks, all in one SQLite
//! file under `$REMEDY_HOME`.
//!
//! SQLite (WAL, `synchronous=FULL`) rather than an embedded key-value store
//! because several remedy processes share the file at once: a run waiting for
//! approval, `remedy approve` and `remedy audit` in other shells (DESIGN.md §7).
//! Every write that others depend on runs in one `BEGIN IMMEDIATE`
//! transaction, so concurrent processes serialize instead of racing.

mod approval;
mod chain;
mod error;
mod lock;
mod run;
mod schema;
mod system;
mod verify;

use std::fs::{DirBuilder, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, Transaction, TransactionBehavior};

pub use approval::{NewRequest, RequestRecord, Vote};
pub use chain::{NewEvent, StoredEvent};
pub use error::{JournalError, LockError};
pub use lock::{Holder, LockRecord};
pub use remedy_jumphost::{process_alive, process_start};
pub use run::{NewRun, RunFilter, RunRecord};
pub use system::{default_path, hostname, os_user, remedy_home};
pub use verify::{Problem, ProblemKind, Verification};

/// How long a writer waits for another process's transaction before giving
/// up. Writers hold the lock for milliseconds; 30 s only trips on a wedged
/// process, and then the error says so.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// An open journal. `Send + Sync`: one connection behind a mutex, because
/// remedy's writes are small and a single connection keeps each process's
/// writes in the order it issued them.
pub struct Journal {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// Set once a write found the disk full and the reserve was given up so
    /// it could go through.
    reserve_used: AtomicBool,
}

/// Room kept beside the journal (`<journal>.reserve`, a file of zeros) so
/// that the events that finish a run — failures, rollbacks, the final
/// status, lock releases — can still be written when the disk fills up
/// during the run: a write that finds the disk full deletes the reserve and
/// tries again. A run does not start without it (`ensure_reserve`).
pub const RESERVE_BYTES: u64 = 8 * 1024 * 1024;

/// Free space a run needs beside the journal besides the reserve, for the
/// events of a normal run: below it a run does not start.
pub const FLOOR_BYTES: u64 = 4 * 1024 * 1024;

impl Journal {
    /// Opens (creating if needed) the journal at `path` and brings its schema
    /// up to date. Safe while other processes have the file open.
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            // 0700: the journal names hosts, users and what was changed.
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|cause| JournalError::Io {
                    path: parent.to_path_buf(),
                    action: "creating the journal directory",
                    cause,
                })?;
        }
        create_private_file(path)?;
        let sql = |action| move |cause| JournalError::sqlite(path, action, cause);
        let mut conn = Connection::open(path).map_err(sql("opening the journal"))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(sql("setting the busy timeout"))?;
        let mode = switch_to_wal(&conn).map_err(sql("switching to WAL mode"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(JournalError::NoWal {
                path: path.to_path_buf(),
                mode,
            });
        }
        // FULL: a commit is on disk before `append` returns; callers write
        // the intent event and only then start a mutation.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sql("setting synchronous=FULL"))?;
        schema::migrate(&mut conn, path)?;
        Ok(Journal {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            reserve_used: AtomicBool::new(false),
        })
    }

    /// The reserve file kept beside the journal (see [`RESERVE_BYTES`]).
    pub fn reserve_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".reserve");
        PathBuf::from(name)
    }

    /// Makes sure the reserve is in place, creating it if needed; an error
    /// means the disk under the journal has less room than a run needs to
    /// record its end, so a run must not start.
    pub fn ensure_reserve(&self) -> Result<(), JournalError> {
        let path = self.reserve_path();
        if std::fs::metadata(&path).is_ok_and(|m| m.len() >= RESERVE_BYTES) {
            return Ok(());
        }
        let made = (|| -> std::io::Result<()> {
            use std::io::Write;
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&path)?;
            // Written, not sparse: the blocks must really be taken.
            let chunk = vec![0u8; 1024 * 1024];
            for _ in 0..RESERVE_BYTES / chunk.len() as u64 {
                f.write_all(&chunk)?;
            }
            f.sync_all()
        })();
        made.map_err(|cause| {
            let _ = std::fs::remove_file(&path);
            JournalError::NoReserve {
                path: path.clone(),
                cause,
            }
        })
    }

    /// Makes sure a run can start: the reserve is in place and at least
    /// [`FLOOR_BYTES`] more are free on the journal's file system.
    pub fn ensure_room(&self) -> Result<(), JournalError> {
        self.ensure_reserve()?;
        let free = free_bytes(&self.path).map_err(|cause| JournalError::Io {
            path: self.path.clone(),
            action: "checking the free space beside",
            cause,
        })?;
        if free < FLOOR_BYTES {
            return Err(JournalError::NoRoom {
                path: self.path.clone(),
                free,
            });
        }
        Ok(())
    }

    /// True when a write of this handle found the disk full and used the
    /// reserve: the disk needs space before the next run.
    pub fn reserve_used(&self) -> bool {
        self.reserve_used.load(Ordering::Relaxed)
    }

    /// The file this journal lives in (for messages and `remedy audit`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the guard rolled its transaction back on
        // unwind, so the connection is still usable.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Maps a SQLite error to one that names this journal and the action.
    fn sql(&self, action: &'static str) -> impl Fn(rusqlite::Error) -> JournalError + '_ {
        move |cause| JournalError::sqlite(&self.path, action, cause)
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction: the write lock is taken
    /// up front, so two processes never both read "last id = N" and collide.
    /// An `Err` from `f` rolls everything back.
    /// A write that finds the disk full gives up the reserve and is tried
    /// once more, so the end of a run is recorded even then.
    fn write<T>(
        &self,
        action: &'static str,
        mut f: impl FnMut(&Transaction<'_>) -> Result<T, JournalError>,
    ) -> Result<T, JournalError> {
        match self.transact(TransactionBehavior::Immediate, action, &mut f) {
            Err(e) if e.is_disk_full() && std::fs::remove_file(self.reserve_path()).is_ok() => {
                self.reserve_used.store(true, Ordering::Relaxed);
                self.transact(TransactionBehavior::Immediate, action, f)
            }
            other => other,
        }
    }

    /// Runs `f` in a read transaction so it sees one consistent snapshot
    /// (events and chain head together) while others keep writing.
    fn read<T>(
        &self,
        action: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, JournalError>,
    ) -> Result<T, JournalError> {
        self.transact(TransactionBehavior::Deferred, action, f)
    }

    fn transact<T>(
        &self,
        behavior: TransactionBehavior,
        action: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, JournalError>,
    ) -> Result<T, JournalError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(behavior)
            .map_err(self.sql(action))?;
        let out = f(&tx)?;
        tx.commit().map_err(self.sql(action))?;
        Ok(out)
    }
}

/// WAL is a property of the file, set by the first opener. Switching needs an
/// exclusive lock that SQLite does not wait for (the busy handler is not
/// called), so processes opening a fresh file at once retry here, up to the
/// busy timeout, instead of failing.
fn switch_to_wal(conn: &Connection) -> rusqlite::Result<String> {
    let current: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    if current.eq_ignore_ascii_case("wal") {
        return Ok(current);
    }
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    let mut pause = Duration::from_millis(5);
    loop {
        match conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0)) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            other => return other,
        }
    }
}

/// Creates the database file with mode 0600 before SQLite does, so it is never
/// world-readable even for an instant; SQLite gives its `-wal` and `-shm`
/// files the same mode. An existing file keeps its mode: whoever made it
/// shared chose that.
fn create_private_file(path: &Path) -> Result<(), JournalError> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(cause) => Err(JournalError::Io {
            path: path.to_path_buf(),
            action: "creating the journal file",
            cause,
        }),
    }
}

/// Bytes an unprivileged process may still write on `path`'s file system.
#[allow(clippy::useless_conversion)] // fsblkcnt_t and c_ulong are u64 here, not on every target
fn free_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(ErrorKind::InvalidInput, e))?;
    // SAFETY: `c` is a valid NUL-terminated path and `st` a plain C struct
    // that statvfs fills in.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(u64::from(st.f_bavail).saturating_mul(u64::from(st.f_frsize)))
}

/// Milliseconds since the Unix epoch, the journal's only clock.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Stores a `u64` (pid start ticks, fencing tokens) in SQLite's signed
/// integers; real values are far below `i64::MAX`.
fn to_sql_u64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn from_sql_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn journal_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<super::Journal>();
    }
}
