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
