//! The event chain: appending, reading back, verifying, and every kind of
//! tampering an attacker with raw write access to the file might try.

mod common;

use common::{event, interleaved, Fixture, RUN_A, RUN_B};
use remedy_journal::{JournalError, ProblemKind, Verification};

fn first_problem(v: &Verification) -> &remedy_journal::Problem {
    assert!(!v.ok, "tampering went unnoticed");
    v.problems.first().expect("a problem")
}

#[test]
fn append_round_trips_and_numbers_seq_per_run() {
    let f = Fixture::new();
    let written = interleaved(&f.journal, 6);
    assert_eq!(written[0].prev_hash, "0".repeat(64));
    for pair in written.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
        assert_eq!(pair[1].id, pair[0].id + 1);
    }
    let a = f.journal.events(RUN_A).unwrap();
    assert_eq!(a.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(a.iter().map(|e| e.id).collect::<Vec<_>>(), [1, 3, 5]);
    assert_eq!(f.journal.events(RUN_B).unwrap()[2].seq, 3);
    // What append returned is exactly what is read back, payload included.
    assert_eq!(f.journal.all_events().unwrap(), written);
    assert!(f.journal.events("no-such-run").unwrap().is_empty());
    let v = f.journal.verify(None).unwrap();
    assert!(v.ok, "{:?}", v.problems);
    assert_eq!(v.checked, 6);
}

#[test]
fn events_of_kind_reads_one_kind_across_runs_in_chain_order() {
    let f = Fixture::new();
    for (i, (run, kind)) in [
        (RUN_A, "backup_taken"),
        (RUN_B, "step_intent"),
        (RUN_B, "backup_taken"),
        (RUN_A, "backup_taken"),
    ]
    .into_iter()
    .enumerate()
    {
        f.journal.append(&event(run, kind, i as i64)).unwrap();
    }
    let backups = f.journal.events_of_kind("backup_taken").unwrap();
    assert_eq!(backups.iter().map(|e| e.id).collect::<Vec<_>>(), [1, 3, 4]);
    assert_eq!(backups[1].run_id, RUN_B);
    assert!(f.journal.events_of_kind("no_such_kind").unwrap().is_empty());
}

#[test]
fn two_handles_on_one_file_keep_one_chain() {
    let f = Fixture::new();
    let other = f.reopen();
    for i in 1..=10 {
        let (journal, run) = if i % 2 == 0 {
            (&f.journal, RUN_A)
        } else {
            (&other, RUN_B)
        };
        journal.append(&event(run, "step_outcome", i)).unwrap();
    }
    assert_eq!(other.all_events().unwrap().len(), 10);
    assert!(f.journal.verify(None).unwrap().ok);
}

#[test]
fn concurrent_writers_serialize_into_one_valid_chain() {
    let f = Fixture::new();
    let writers: Vec<_> = [RUN_A, RUN_B]
        .into_iter()
        .map(|run| {
            let journal = f.reopen();
            std::thread::spawn(move || {
                for i in 0..25 {
                    journal.append(&event(run, "step_intent", i)).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let v = f.journal.verify(None).unwrap();
    assert!(v.ok, "{:?}", v.problems);
    assert_eq!(v.checked, 50);
    for run in [RUN_A, RUN_B] {
        let seqs: Vec<i64> = f
            .journal
            .events(run)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, (1..=25).collect::<Vec<_>>());
    }
}

#[test]
fn edited_payload_is_named() {
    let f = Fixture::new();
    interleaved(&f.journal, 6);
    f.raw()
        .execute("UPDATE events SET payload = '{\"n\":999}' WHERE id = 3", [])
        .unwrap();
    let v = f.journal.verify(None).unwrap();
    let p = first_problem(&v);
    assert_eq!((p.event_id, p.problem), (3, ProblemKind::ContentEdited));
    assert!(
        p.what
            .starts_with(&format!("event 3 (run {RUN_A}, seq 2, step_intent)")),
        "{}",
        p.what
    );
    assert!(p.what.contains("edited"), "{}", p.what);
    assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
}

#[test]
fn edit_with_recomputed_hash_breaks_the_next_link() {
    let f = Fixture::new();
    interleaved(&f.journal, 6);
    // A careful attacker fixes the edited row's hash but not its successors.
    let raw = f.raw();
    raw.execute("UPDATE events SET actor = 'mallory' WHERE id = 3", [])
        .unwrap();
    let forged = f.journal.all_events().unwrap()[2].clone();
    let recomputed = recompute(&raw, forged.id);
    raw.execute("UPDATE events SET hash = ?1 WHERE id = 3", [&recomputed])
        .unwrap();
    let v = f.journal.verify(None).unwrap();
    let p = first_problem(&v);
    assert_eq!((p.event_id, p.problem), (4, ProblemKind::LinkBroken));
    assert!(
        p.what
            .contains("deleted, edited or the rows were reordered"),
        "{}",
        p.what
    );
}

/// The hash verify expects for row `id`, computed the documented way.
fn recompute(raw: &rusqlite::Connection, id: i64) -> String {
    use sha2::Digest;
    let canonical: serde_json::Value = raw
        .query_row(
            "SELECT id, run_id, seq, time_ms, actor, host, step, kind, payload, prev_hash FROM events WHERE id = ?1",
            [id],
            |r| {
                Ok(serde_json::json!([
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, String>(8)?,
                    r.get::<_, String>(9)?,
                ]))
            },
        )
        .unwrap();
    hex::encode(sha2::Sha256::digest(canonical.to_string().as_bytes()))
}

#[test]
fn hash_follows_the_documented_canonical_form() {
    let f = Fixture::new();
    let written = interleaved(&f.journal, 3);
    let raw = f.raw();
    for e in &written {
        assert_eq!(recompute(&raw, e.id), e.hash);
    }
}

#[test]
fn deleted_middle_event_is_an_id_gap() {
    let f = Fixture::new();
    interleaved(&f.journal, 6);
    f.raw()
        .execute("DELETE FROM events WHERE id = 3", [])
        .unwrap();
    let v = f.journal.verify(None).unwrap();
    let p = first_problem(&v);
    assert_eq!((p.event_id, p.problem), (4, ProblemKind::IdGap));
    assert!(p.what.contains("event 3 was deleted"), "{}", p.what);
    // Run A then jumps from seq 1 to 3.
    assert!(v
        .problems
        .iter()
        .any(|p| p.event_id == 5 && p.problem == ProblemKind::SeqGap));
}

#[test]
fn deleted_last_event_is_a_truncated_tail() {
    let f = Fixture::new();
    interleaved(&f.journal, 6);
    f.raw()
        .execute("DELETE FROM events WHERE id = 6", [])
        .unwrap();
    let v = f.journal.verify(None).unwrap();
    let p = first_problem(&v);
    assert_eq!((p.event_id, p.problem), (6, ProblemKind::HeadMismatch));
    assert!(p.what.contains("events after 5 were deleted"), "{}", p.what);
    assert_eq!(v.problems.len(), 1);
}

#[test]
fn append_after_truncation_does_not_hide_it() {
    let f = Fixture::new();
    interleaved(&f.journal, 4);
    f.raw()
        .execute("DELETE FROM events WHERE id >= 3", [])
        .unwrap();
    let next = f.journal.append(&event(RUN_A, "step_intent", 9)).unwrap();
    assert_eq!(next.id, 5, "ids continue from the chain head");
    let p = f.journal.verify(None).unwrap().problems[0].clone();
    assert_eq!((p.event_id, p.problem), (5, ProblemKind::IdGap));
    assert!(p.what.contains("events 3..4 were deleted"), "{}", p.what);
}

#[test]
fn swapped_rows_are_a_broken_link() {
    let f = Fixture::new();
    interleaved(&f.journal, 6);
    let raw = f.raw();
    raw.execute_batch(
        "UPDATE events SET id = -1 WHERE id = 3;
         UPDATE events SET id = 3 WHERE id = 4;
         UPDATE events SET id = 4 WHERE id = -1;",
    )
    .unwrap();
    let v = f.journal.verify(None).unwrap();
    let p = first_problem(&v);
    assert_eq!((p.event_id, p.problem), (3, ProblemKind::LinkBroken));
    assert!(p.what.contains("reordered"), "{}", p.what);
}

#[test]
fn changed_seq_is_named() {
    let f = Fixture::new();
    interleaved(&f.journal, 6);
    f.raw()
        .execute("UPDATE events SET seq = 7 WHERE id = 3", [])
        .unwrap();
    let v = f.journal.verify(None).unwrap();
    let p = first_problem(&v);
    assert_eq!((p.event_id, p.problem), (3, ProblemKind::ContentEdited));
    assert!(v
        .problems
        .iter()
        .any(|p| p.event_id == 3 && p.problem == ProblemKind::SeqGap && p.what.contains("seq 2")));
}

#[test]
fn verify_one_run_reports_only_its_problems() {
    let f = Fixture::new();
    interleaved(&f.journal, 6);
    f.raw()
        .execute("UPDATE events SET payload = '[]' WHERE id = 2", [])
        .unwrap();
    let b = f.journal.verify(Some(RUN_B)).unwrap();
    assert_eq!((b.ok, b.checked), (false, 3));
    assert_eq!(b.problems[0].event_id, 2);
    let a = f.journal.verify(Some(RUN_A)).unwrap();
    assert!(a.ok && a.checked == 3, "{:?}", a.problems);
    match f.journal.verify(Some("nope")) {
        Err(JournalError::NotFound { what, .. }) => assert!(what.contains("nope")),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[test]
fn payload_made_invalid_json_is_reported_not_fatal() {
    let f = Fixture::new();
    interleaved(&f.journal, 3);
    f.raw()
        .execute("UPDATE events SET payload = '{oops' WHERE id = 2", [])
        .unwrap();
    let p = f.journal.verify(None).unwrap().problems[0].clone();
    assert_eq!((p.event_id, p.problem), (2, ProblemKind::ContentEdited));
    let err = f.journal.all_events().unwrap_err().to_string();
    assert!(err.contains("remedy audit verify"), "{err}");
}
