//! Run records: creation, lookup by prefix, lifecycle and filtering.

mod common;

use common::{dead_pid, new_run, Fixture, RUN_A, RUN_B};
use remedy_journal::{JournalError, RunFilter};

#[test]
fn run_round_trips_and_finishes() {
    let f = Fixture::new();
    let new = new_run(RUN_A, 1000);
    f.journal.create_run(&new).unwrap();
    let r = f.journal.run(RUN_A).unwrap();
    assert_eq!(
        (r.params.clone(), r.hosts.clone()),
        (new.params.clone(), new.hosts.clone())
    );
    assert_eq!((r.status.as_str(), r.finished_ms), ("running", None));
    assert_eq!(r.effective_status(), "running");
    f.journal.finish_run(RUN_A, "rollback_failed").unwrap();
    let r = f.journal.run(RUN_A).unwrap();
    assert_eq!(r.status, "rollback_failed");
    assert!(r.finished_ms.is_some());
    f.journal.set_review(RUN_A, "break-glass by bob").unwrap();
    f.journal
        .reopen_run(RUN_A, 4242, Some(7), "jump-9")
        .unwrap();
    let r = f.journal.run(RUN_A).unwrap();
    assert_eq!(
        (r.status.as_str(), r.finished_ms, r.pid, r.pid_start),
        ("running", None, 4242, Some(7))
    );
    assert_eq!(
        (r.jump_host.as_str(), r.review.as_deref()),
        ("jump-9", Some("break-glass by bob"))
    );
    // Another jump host's process cannot be checked: stored status stands.
    assert_eq!(r.effective_status(), "running");
    assert!(matches!(
        f.journal.finish_run("nope", "ok"),
        Err(JournalError::NotFound { .. })
    ));
}

#[test]
fn prefix_lookup() {
    let f = Fixture::new();
    f.journal.create_run(&new_run(RUN_A, 1)).unwrap();
    f.journal.create_run(&new_run(RUN_B, 2)).unwrap();
    assert_eq!(f.journal.run("0199a").unwrap().run_id, RUN_A);
    match f.journal.run("0199") {
        Err(e @ JournalError::Ambiguous { .. }) => {
            let JournalError::Ambiguous { matches, .. } = &e else {
                unreachable!()
            };
            assert_eq!(matches, &[RUN_A, RUN_B]);
            assert!(e.to_string().contains("type more of the id"), "{e}");
        }
        other => panic!("expected Ambiguous, got {other:?}"),
    }
    let missing = f.journal.run("0199c").unwrap_err();
    assert!(matches!(missing, JournalError::NotFound { .. }));
    assert!(missing.to_string().contains("remedy runs"), "{missing}");
    // `_` is not a wildcard.
    assert!(f.journal.run("0199_").is_err());
    assert!(f.journal.run("").is_err());
}

/// Issue 13, item 11: UUIDv7 ids start with their time, so 8-character
/// prefixes of runs started close together are ambiguous. Their random end
/// names them too, and `last` is the newest real run.
#[test]
fn issue_13_a_run_is_found_by_its_end_or_as_last() {
    let f = Fixture::new();
    f.journal.create_run(&new_run(RUN_A, 1)).unwrap();
    f.journal.create_run(&new_run(RUN_B, 2)).unwrap();
    let mut plan = new_run("0199cccc-0000-7000-8000-000000000003", 3);
    plan.dry_run = true;
    f.journal.create_run(&plan).unwrap();
    assert_eq!(f.journal.run("00001").unwrap().run_id, RUN_A);
    assert_eq!(f.journal.run("last").unwrap().run_id, RUN_B);
    let e = f.journal.run("0199").unwrap_err();
    assert!(e.to_string().contains("or `last`"), "{e}");
    assert!(matches!(
        Fixture::new().journal.run("last"),
        Err(JournalError::NotFound { .. })
    ));
}

#[test]
fn dead_holder_reads_interrupted() {
    let f = Fixture::new();
    let mut run = new_run(RUN_A, 1);
    run.pid = dead_pid();
    run.pid_start = None;
    f.journal.create_run(&run).unwrap();
    let r = f.journal.run(RUN_A).unwrap();
    assert_eq!(
        (r.status.as_str(), r.effective_status().as_str()),
        ("running", "interrupted")
    );
    // The same pid with another start time is another process: also gone.
    let mut reused = new_run(RUN_B, 2);
    reused.pid_start = reused.pid_start.map(|s| s + 1);
    f.journal.create_run(&reused).unwrap();
    assert_eq!(
        f.journal.run(RUN_B).unwrap().effective_status(),
        "interrupted"
    );
    let interrupted = RunFilter {
        status: Some("interrupted".into()),
        ..RunFilter::default()
    };
    assert_eq!(f.journal.runs(&interrupted).unwrap().len(), 2);
}

#[test]
fn runs_filter_newest_first() {
    let f = Fixture::new();
    let ids = ["r-1", "r-2", "r-3", "r-4"];
    for (i, id) in ids.iter().enumerate() {
        let mut run = new_run(id, 100 * (i as i64 + 1));
        if i == 2 {
            run.runbook = "etcd-defrag".into();
            run.hosts = vec!["cp-3".into()];
        }
        f.journal.create_run(&run).unwrap();
    }
    f.journal.finish_run("r-4", "ok").unwrap();
    let ids_of = |filter: RunFilter| -> Vec<String> {
        f.journal
            .runs(&filter)
            .unwrap()
            .into_iter()
            .map(|r| r.run_id)
            .collect()
    };
    assert_eq!(ids_of(RunFilter::default()), ["r-4", "r-3", "r-2", "r-1"]);
    assert_eq!(
        ids_of(RunFilter {
            since_ms: Some(200),
            ..Default::default()
        }),
        ["r-4", "r-3", "r-2"]
    );
    assert_eq!(
        ids_of(RunFilter {
            runbook: Some("etcd-defrag".into()),
            ..Default::default()
        }),
        ["r-3"]
    );
    assert_eq!(
        ids_of(RunFilter {
            host: Some("cp-1".into()),
            ..Default::default()
        }),
        ["r-4", "r-2", "r-1"]
    );
    assert_eq!(
        ids_of(RunFilter {
            status: Some("running".into()),
            limit: Some(2),
            ..Default::default()
        }),
        ["r-3", "r-2"]
    );
}

#[test]
fn open_creates_private_dirs_and_file_and_reopens() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let path = f.path();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    f.journal.create_run(&new_run(RUN_A, 1)).unwrap();
    drop(f.reopen());
    assert_eq!(f.reopen().run(RUN_A).unwrap().run_id, RUN_A);
}

#[test]
fn newer_schema_is_refused() {
    let f = Fixture::new();
    f.raw().pragma_update(None, "user_version", 99).unwrap();
    let err = remedy_journal::Journal::open(&f.path())
        .err()
        .expect("refused");
    assert!(
        matches!(err, JournalError::SchemaTooNew { found: 99, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade remedy"), "{err}");
}

#[test]
fn many_processes_opening_a_fresh_file_at_once_agree_on_the_schema() {
    // Switching a fresh file to WAL needs an exclusive lock that SQLite does
    // not wait for; found when CI's parallel test processes raced on one
    // journal. Many rounds, many openers, a barrier so they really collide.
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("remedy.db");
        let n = 12;
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(n));
        let openers: Vec<_> = (0..n)
            .map(|i| {
                let path = path.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    let journal = remedy_journal::Journal::open(&path)
                        .unwrap_or_else(|e| panic!("round {round}, opener {i}: {e}"));
                    journal
                        .create_run(&new_run(&format!("run-{i}"), i as i64))
                        .unwrap();
                })
            })
            .collect();
        for o in openers {
            o.join().unwrap();
        }
        let journal = remedy_journal::Journal::open(&path).unwrap();
        assert_eq!(journal.runs(&RunFilter::default()).unwrap().len(), n);
    }
}

#[test]
fn open_errors_name_the_file_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("not-a-db");
    std::fs::write(&garbage, vec![b'x'; 4096]).unwrap();
    let err = remedy_journal::Journal::open(&garbage)
        .err()
        .expect("refused");
    let message = err.to_string();
    assert!(
        message.contains(&garbage.display().to_string()),
        "{message}"
    );
    assert!(message.contains("REMEDY_HOME"), "{message}");

    let under_a_file = garbage.join("remedy.db");
    let message = remedy_journal::Journal::open(&under_a_file)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        message.contains("creating the journal directory"),
        "{message}"
    );
}

/// Issue 14 (5a): every field `resume` and `audit show` use is chained. An
/// edit of each kind to a run's row is named by `verify` and refused by
/// `run` (so resume never acts on it); deleting the row is named too.
#[test]
fn issue_14_edited_run_rows_are_named_and_refused() {
    use remedy_journal::ProblemKind;
    let f = Fixture::new();
    f.journal.create_run(&new_run(RUN_A, 1000)).unwrap();
    f.journal.set_review(RUN_A, "break-glass by bob").unwrap();
    f.journal.finish_run(RUN_A, "failed").unwrap();
    f.journal.create_run(&new_run(RUN_B, 2000)).unwrap();
    assert!(f.journal.verify(None).unwrap().ok);
    let pristine = f.dir.path().join("pristine.db");
    f.raw()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    std::fs::copy(f.path(), &pristine).unwrap();
    let edits = [
        (
            r#"UPDATE runs SET params = '[["days","30"],["extra_flags","--anonymous-auth=true"]]'"#,
            "`params`",
        ),
        ("UPDATE runs SET actor = 'mallory'", "`actor`"),
        ("UPDATE runs SET status = 'ok'", "`status`"),
        (r#"UPDATE runs SET hosts = '["cp-9"]'"#, "`hosts`"),
        ("UPDATE runs SET review = NULL", "`review`"),
        ("UPDATE runs SET host_limit = NULL", "`host_limit`"),
        (
            "UPDATE runs SET runbook_ref = '/tmp/evil.yaml'",
            "`runbook_ref`",
        ),
        ("UPDATE runs SET finished_ms = 1", "`finished_ms`"),
    ];
    for (sql, field) in edits {
        f.raw()
            .execute(&format!("{sql} WHERE run_id = '{RUN_A}'"), [])
            .unwrap();
        let v = f.journal.verify(None).unwrap();
        assert!(!v.ok, "{sql} went unnoticed");
        let p = &v.problems[0];
        assert_eq!(
            (p.problem, p.run_id.as_str()),
            (ProblemKind::RunEdited, RUN_A)
        );
        assert!(
            p.what.contains(field) && p.what.contains("edited"),
            "{}",
            p.what
        );
        // Only that run: the other is intact.
        assert!(f.journal.verify(Some(RUN_B)).unwrap().ok);
        let err = f.journal.run(RUN_A).unwrap_err();
        assert!(
            matches!(err, JournalError::RunEdited { .. }) && err.to_string().contains(field),
            "{err}"
        );
        // Put the row back as the chain has it.
        let good = remedy_journal::Journal::open(&pristine)
            .unwrap()
            .run(RUN_A)
            .unwrap();
        f.raw()
            .execute(
                "UPDATE runs SET params = ?2, actor = ?3, status = ?4, hosts = ?5, review = ?6, host_limit = ?7, runbook_ref = ?8, finished_ms = ?9 WHERE run_id = ?1",
                rusqlite::params![
                    RUN_A,
                    serde_json::to_string(&good.params).unwrap(),
                    good.actor,
                    good.status,
                    serde_json::to_string(&good.hosts).unwrap(),
                    good.review,
                    good.limit,
                    good.runbook_ref,
                    good.finished_ms
                ],
            )
            .unwrap();
        assert!(f.journal.verify(None).unwrap().ok, "restored after {sql}");
    }
    // A row deleted, and one added by hand.
    f.raw()
        .execute(&format!("DELETE FROM runs WHERE run_id = '{RUN_B}'"), [])
        .unwrap();
    let v = f.journal.verify(None).unwrap();
    assert!(v.problems[0].what.contains("deleted"), "{:?}", v.problems);
    f.raw()
        .execute(
            &format!("INSERT INTO runs SELECT 'forged', runbook, runbook_ref, runbook_sha256, inventory, host_limit, params, hosts, dry_run, actor, os_user, jump_host, pid, pid_start, started_ms, finished_ms, status, review FROM runs WHERE run_id = '{RUN_A}'"),
            [],
        )
        .unwrap();
    let err = f.journal.run("forged").unwrap_err();
    assert!(err.to_string().contains("added outside remedy"), "{err}");
}

/// Issue 14 (5): a journal written before runs were chained (schema 2) is
/// upgraded: its runs are chained as they read then, stay readable, and an
/// edit after the upgrade is caught.
#[test]
fn issue_14_runs_of_an_older_journal_are_chained_by_the_upgrade() {
    let f = Fixture::new();
    let path = f.dir.path().join("old.db");
    {
        // Schema 2 exactly as this build's file has it, minus the chained runs.
        let src = f.raw();
        let old = rusqlite::Connection::open(&path).unwrap();
        let mut stmt = src
            .prepare("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL")
            .unwrap();
        let ddl: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for sql in ddl {
            old.execute_batch(&sql).unwrap();
        }
        old.execute_batch(
            "INSERT INTO chain_head VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
             INSERT INTO fencing VALUES (1, 0);
             INSERT INTO runs VALUES ('old-run', 'cert-renew', 'builtin:cert-renew', 'ab', '/inv.yaml', NULL, '[[\"days\",\"30\"]]', '[\"cp-1\"]', 0, 'alice', 'alice', 'jump', 1, NULL, 5, 6, 'ok', NULL);
             PRAGMA user_version = 2;",
        )
        .unwrap();
    }
    let j = remedy_journal::Journal::open(&path).unwrap();
    let r = j.run("old-run").unwrap();
    assert_eq!(
        (r.status.as_str(), r.params.clone()),
        ("ok", vec![("days".to_string(), "30".to_string())])
    );
    assert!(j.verify(None).unwrap().ok);
    let e = j.events("old-run").unwrap();
    assert_eq!(e[0].kind, "run_recorded");
    assert_eq!(e[0].payload["migrated"], true);
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("UPDATE runs SET status = 'failed'", [])
        .unwrap();
    assert!(!j.verify(None).unwrap().ok);
    // Opening again does not chain it twice.
    drop(j);
    let j = remedy_journal::Journal::open(&path).unwrap();
    assert_eq!(j.events("old-run").unwrap().len(), 1);
}

/// Issue 14 (5b): the head kept elsewhere is the witness of a cut-off tail
/// that the journal alone cannot see (rows deleted and `chain_head` set to
/// match).
#[test]
fn issue_14_a_tail_cut_consistently_is_caught_by_the_witness_head() {
    use remedy_journal::ProblemKind;
    let f = Fixture::new();
    for i in 0..3 {
        f.journal
            .append(&common::event(RUN_A, "step_done", i))
            .unwrap();
    }
    let (before_id, before) = f.journal.head().unwrap();
    f.journal
        .append(&common::event(RUN_A, "step_rolled_back", 9))
        .unwrap();
    let (id, head) = f.journal.head().unwrap();
    assert_eq!((before_id, id), (3, 4));
    assert_eq!(f.journal.witness(&head).unwrap().map(|p| p.what), None);
    // Cut the last event and make the head agree: locally invisible.
    f.raw()
        .execute_batch(&format!(
            "DELETE FROM events WHERE id = 4; UPDATE chain_head SET last_id = 3, last_hash = '{before}';"
        ))
        .unwrap();
    assert!(
        f.journal.verify(None).unwrap().ok,
        "no local check can see this"
    );
    let p = f.journal.witness(&head).unwrap().expect("caught");
    assert_eq!(p.problem, ProblemKind::WitnessMissing);
    assert!(
        p.what.contains(&head) && p.what.contains("deleted"),
        "{}",
        p.what
    );
    assert!(f.journal.witness(&before).unwrap().is_none());
    assert!(f.journal.witness("abc").is_err());
}

/// Issue 14 (6): the reserve beside the journal is given up when the disk
/// fills, so the write goes through; without room for it, a run cannot
/// start (`ensure_reserve` fails).
#[test]
fn issue_14_ensure_reserve_makes_a_real_file_and_says_when_there_is_no_room() {
    let f = Fixture::new();
    f.journal.ensure_reserve().unwrap();
    let meta = std::fs::metadata(f.journal.reserve_path()).unwrap();
    assert_eq!(meta.len(), remedy_journal::RESERVE_BYTES);
    use std::os::unix::fs::MetadataExt;
    assert!(
        meta.blocks() * 512 >= remedy_journal::RESERVE_BYTES,
        "not sparse"
    );
    assert!(!f.journal.reserve_used());
}
