//! Target locks: all-or-nothing acquisition, takeover by the same run,
//! staleness, breaking, and fencing tokens.

mod common;

use std::time::Duration;

use common::{dead_pid, new_run, Fixture, RUN_A, RUN_B};
use remedy_journal::{hostname, process_start, Holder, JournalError, LockError};

const TTL: Duration = Duration::from_secs(300);

fn holder(run_id: &str) -> Holder {
    let pid = std::process::id();
    Holder {
        run_id: run_id.to_string(),
        user: "alice".to_string(),
        host: hostname(),
        pid,
        pid_start: process_start(pid),
    }
}

fn targets(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// The `Held` error of a refused acquisition.
fn held(result: Result<u64, JournalError>) -> (String, Box<remedy_journal::LockRecord>, String) {
    match result {
        Err(e @ JournalError::Lock(LockError::Held { .. })) => {
            let message = e.to_string();
            let JournalError::Lock(LockError::Held { target, holder }) = e else {
                unreachable!()
            };
            (target, holder, message)
        }
        other => panic!("expected LockError::Held, got {other:?}"),
    }
}

#[test]
fn overlapping_acquire_is_refused_naming_the_holder() {
    let f = Fixture::new();
    let t1 = f
        .journal
        .acquire(&targets(&["lab/cp-1", "lab/cp-2"]), &holder(RUN_A), TTL)
        .unwrap();
    let (target, by, message) = held(f.journal.acquire(
        &targets(&["lab/cp-2"]),
        &holder(RUN_B),
        TTL,
    ));
    assert_eq!(
        (target.as_str(), by.run_id.as_str(), by.stale),
        ("lab/cp-2", RUN_A, false)
    );
    assert!(
        message.contains(&format!("alice@{}", hostname())),
        "{message}"
    );
    assert!(
        message.contains(RUN_A) && message.contains("wait for it"),
        "{message}"
    );
    assert!(f.journal.holds("lab/cp-2", RUN_A, t1).unwrap());
}

#[test]
fn partial_overlap_takes_nothing() {
    let f = Fixture::new();
    f.journal
        .acquire(&targets(&["lab/cp-2"]), &holder(RUN_A), TTL)
        .unwrap();
    held(f.journal.acquire(
        &targets(&["lab/cp-1", "lab/cp-2", "lab/cp-3"]),
        &holder(RUN_B),
        TTL,
    ));
    let locks = f.journal.locks().unwrap();
    assert_eq!(locks.len(), 1);
    assert_eq!(locks[0].target, "lab/cp-2");
}

#[test]
fn same_run_takes_over_with_a_new_token() {
    let f = Fixture::new();
    let all = targets(&["lab/cp-1", "lab/cp-2"]);
    let first = f.journal.acquire(&all, &holder(RUN_A), TTL).unwrap();
    let mut resumed = holder(RUN_A);
    resumed.pid = 1;
    resumed.pid_start = None;
    let second = f.journal.acquire(&all, &resumed, TTL).unwrap();
    assert!(second > first);
    assert!(
        !f.journal.holds("lab/cp-1", RUN_A, first).unwrap(),
        "the old token is fenced off"
    );
    assert!(f.journal.holds("lab/cp-1", RUN_A, second).unwrap());
    assert!(f
        .journal
        .locks()
        .unwrap()
        .iter()
        .all(|l| l.pid == 1 && l.token == second));
}

#[test]
fn dead_holder_is_stale_and_still_refused() {
    let f = Fixture::new();
    let mut gone = holder(RUN_A);
    gone.pid = dead_pid();
    gone.pid_start = None;
    f.journal.create_run(&new_run(RUN_A, 1)).unwrap();
    f.journal
        .acquire(&targets(&["lab/cp-1"]), &gone, TTL)
        .unwrap();
    let lock = &f.journal.locks().unwrap()[0];
    let why = format!("pid {} on {} is gone", gone.pid, hostname());
    assert_eq!(
        (lock.stale, lock.stale_reason.as_deref()),
        (true, Some(why.as_str()))
    );
    let (_, by, message) = held(
        f.journal
            .acquire(&targets(&["lab/cp-1"]), &holder(RUN_B), TTL),
    );
    assert!(by.stale);
    assert!(message.contains("holder is gone"), "{message}");
    assert!(
        message.contains(&format!("remedy resume {RUN_A}")),
        "{message}"
    );
    assert!(message.contains("remedy lock break lab/cp-1"), "{message}");
}

/// Issue 13, defect 7: a run aborted at its confirmation prompt (a second
/// Ctrl-C) left its lock behind, and the hint named a run the journal did
/// not know. A run is recorded before it changes anything, so the lock of a
/// dead process whose run was never recorded guards nothing: taken over.
#[test]
fn issue_13_a_dead_holder_that_never_recorded_its_run_is_taken_over() {
    let f = Fixture::new();
    let mut gone = holder(RUN_A);
    gone.pid = dead_pid();
    gone.pid_start = None;
    f.journal
        .acquire(&targets(&["lab/cp-1"]), &gone, TTL)
        .unwrap();
    let token = f
        .journal
        .acquire(&targets(&["lab/cp-1"]), &holder(RUN_B), TTL)
        .unwrap();
    assert!(f.journal.holds("lab/cp-1", RUN_B, token).unwrap());
    // A live holder that has not recorded its run yet (at its prompt) keeps it.
    held(
        f.journal
            .acquire(&targets(&["lab/cp-1"]), &holder(RUN_A), TTL),
    );
}

#[test]
fn expired_lease_is_stale_and_still_refused() {
    let f = Fixture::new();
    f.journal
        .acquire(&targets(&["lab/cp-1"]), &holder(RUN_A), Duration::ZERO)
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let lock = &f.journal.locks().unwrap()[0];
    assert!(lock.stale);
    assert!(
        lock.stale_reason
            .as_deref()
            .unwrap()
            .starts_with("lease expired"),
        "{lock:?}"
    );
    let (_, by, _) = held(
        f.journal
            .acquire(&targets(&["lab/cp-1"]), &holder(RUN_B), TTL),
    );
    assert!(by.stale);
    // Renewing makes it live again.
    f.journal.renew(RUN_A, TTL).unwrap();
    assert!(!f.journal.locks().unwrap()[0].stale);
}

#[test]
fn break_lock_removes_and_journals() {
    let f = Fixture::new();
    let token = f
        .journal
        .acquire(&targets(&["lab/cp-1", "lab/cp-2"]), &holder(RUN_A), TTL)
        .unwrap();
    let broken = f
        .journal
        .break_lock("lab/cp-1", "bob", "run A crashed mid-rotation")
        .unwrap();
    assert_eq!((broken.run_id.as_str(), broken.token), (RUN_A, token));
    assert!(!f.journal.holds("lab/cp-1", RUN_A, token).unwrap());
    assert!(f.journal.holds("lab/cp-2", RUN_A, token).unwrap());
    let events = f.journal.events(RUN_A).unwrap();
    let e = events.last().expect("lock_broken event");
    assert_eq!((e.kind.as_str(), e.actor.as_str()), ("lock_broken", "bob"));
    assert_eq!(e.payload["target"], "lab/cp-1");
    assert_eq!(e.payload["reason"], "run A crashed mid-rotation");
    assert_eq!(e.payload["token"], token);
    assert_eq!(e.payload["holder"]["user"], "alice");
    assert!(f.journal.verify(None).unwrap().ok);
    // Now another run may take it.
    f.journal
        .acquire(&targets(&["lab/cp-1"]), &holder(RUN_B), TTL)
        .unwrap();
    let missing = f.journal.break_lock("lab/cp-9", "bob", "x").unwrap_err();
    assert!(
        matches!(missing, JournalError::NotFound { .. }),
        "{missing}"
    );
}

#[test]
fn tokens_strictly_increase_across_releases() {
    let f = Fixture::new();
    let mut last = 0;
    for round in 0..4 {
        let run = if round % 2 == 0 { RUN_A } else { RUN_B };
        let token = f
            .journal
            .acquire(&targets(&["lab/cp-1"]), &holder(run), TTL)
            .unwrap();
        assert!(token > last, "{token} after {last}");
        last = token;
        f.journal.release(run).unwrap();
        f.journal.release(run).unwrap(); // idempotent
    }
    // Tokens survive reopening the file.
    let token = f
        .reopen()
        .acquire(&targets(&["lab/cp-1"]), &holder(RUN_A), TTL)
        .unwrap();
    assert!(token > last);
}

#[test]
fn renew_after_losing_every_lock_is_an_error() {
    let f = Fixture::new();
    f.journal
        .acquire(&targets(&["lab/cp-1"]), &holder(RUN_A), TTL)
        .unwrap();
    f.journal.break_lock("lab/cp-1", "bob", "stuck").unwrap();
    let err = f.journal.renew(RUN_A, TTL).unwrap_err();
    assert!(
        matches!(err, JournalError::Lock(LockError::Lost { .. })),
        "{err}"
    );
}
