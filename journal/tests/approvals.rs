//! Approval requests: quorum, the requester rule, one vote each, deny,
//! expiry, superseding by a newer plan, and replay keys — with the events
//! each decision leaves in the chain.

mod common;

use common::{Fixture, RUN_A};
use remedy_journal::{JournalError, NewRequest};

fn request(id: &str, quorum: u32, expires_in_ms: i64) -> NewRequest {
    NewRequest {
        request_id: id.into(),
        run_id: RUN_A.into(),
        scope: "run".into(),
        plan_hash: "ab".repeat(32),
        summary: "renew 10 certificates on cp-1".into(),
        requester: "alice".into(),
        approvers: vec!["alice".into(), "bob".into(), "carol".into()],
        quorum,
        forbid_requester: true,
        expires_ms: now() + expires_in_ms,
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn refused(r: Result<remedy_journal::RequestRecord, JournalError>) -> String {
    match r {
        Err(JournalError::Refused { why }) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn quorum_of_two_refuses_the_requester_and_double_votes() {
    let f = Fixture::new();
    f.journal.create_request(&request("r1", 2, 60_000)).unwrap();
    let why = refused(f.journal.vote("r1", "alice", true, None, "cli"));
    assert!(why.contains("may not approve"), "{why}");
    let why = refused(f.journal.vote("r1", "mallory", true, None, "cli"));
    assert!(
        why.contains("not an approver") && why.contains("bob"),
        "{why}"
    );
    let r = f
        .journal
        .vote("r1", "bob", true, Some("looks right"), "cli")
        .unwrap();
    assert_eq!((r.status.as_str(), r.approvals()), ("pending", 1));
    let why = refused(f.journal.vote("r1", "bob", true, None, "cli"));
    assert!(why.contains("already voted"), "{why}");
    let r = f.journal.vote("r1", "carol", true, None, "slack").unwrap();
    assert_eq!(r.status, "approved");
    let why = refused(f.journal.vote("r1", "alice", false, None, "cli"));
    assert!(why.contains("is approved, not pending"), "{why}");
    let kinds: Vec<String> = f
        .journal
        .events(RUN_A)
        .unwrap()
        .into_iter()
        .map(|e| format!("{}:{}", e.kind, e.actor))
        .collect();
    assert_eq!(
        kinds,
        [
            "approval_requested:alice",
            "approval_vote:bob",
            "approval_granted:carol"
        ]
    );
    assert!(f.journal.verify(None).unwrap().ok);
}

/// Issue 13, item 11: a vote cast with `--as` journaled only the chosen
/// name; the OS user who cast it is journaled too.
#[test]
fn issue_13_a_vote_on_a_shared_account_journals_the_os_user_too() {
    let f = Fixture::new();
    f.journal.create_request(&request("r1", 1, 60_000)).unwrap();
    let r = f
        .journal
        .vote_as("r1", "bob", "bob (os user ops)", true, None, "cli")
        .unwrap();
    assert_eq!(
        (r.status.as_str(), r.votes[0].user.as_str()),
        ("approved", "bob")
    );
    let last = f.journal.events(RUN_A).unwrap().pop().unwrap();
    assert_eq!(
        (last.kind.as_str(), last.actor.as_str()),
        ("approval_granted", "bob (os user ops)")
    );
}

#[test]
fn a_deny_decides_at_once_and_the_requester_may_deny() {
    let f = Fixture::new();
    f.journal.create_request(&request("r1", 2, 60_000)).unwrap();
    let r = f
        .journal
        .vote("r1", "alice", false, Some("wrong cluster"), "cli")
        .unwrap();
    assert_eq!(r.status, "denied");
    assert_eq!(r.votes[0].comment.as_deref(), Some("wrong cluster"));
}

#[test]
fn an_expired_request_is_expired_and_refuses_votes() {
    let f = Fixture::new();
    f.journal.create_request(&request("r1", 1, -1)).unwrap();
    let r = f.journal.request("r1").unwrap();
    assert_eq!(r.status, "expired");
    let why = refused(f.journal.vote("r1", "bob", true, None, "cli"));
    assert!(why.contains("expired"), "{why}");
    assert!(
        f.journal.requests(None).unwrap().is_empty(),
        "no longer pending"
    );
    let kinds: Vec<String> = f
        .journal
        .events(RUN_A)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["approval_requested", "approval_expired"]);
}

#[test]
fn a_newer_plan_supersedes_the_pending_request() {
    let f = Fixture::new();
    f.journal.create_request(&request("r1", 1, 60_000)).unwrap();
    f.journal.create_request(&request("r2", 1, 60_000)).unwrap();
    let why = refused(f.journal.vote("r1", "bob", true, None, "cli"));
    assert!(
        why.contains("superseded") && why.contains("newer request"),
        "{why}"
    );
    let pending = f.journal.requests(None).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].request.request_id, "r2");
}

#[test]
fn callback_keys_are_accepted_once_across_handles() {
    let f = Fixture::new();
    let other = f.reopen();
    assert!(f.journal.first_time("slack:v0=abc").unwrap());
    assert!(!other.first_time("slack:v0=abc").unwrap());
    assert!(other.first_time("slack:v0=def").unwrap());
}

#[test]
fn failed_notifications_are_kept_on_the_request_and_journaled() {
    let f = Fixture::new();
    f.journal.create_request(&request("r1", 1, 60_000)).unwrap();
    let deliveries = serde_json::json!([
        {"notifier": "slack", "ok": false, "attempts": 4, "error": "HTTP 500"},
        {"notifier": "command", "ok": true, "attempts": 1, "error": null}
    ]);
    f.journal
        .record_notifications(Some("r1"), RUN_A, &deliveries)
        .unwrap();
    let r = f.journal.request("r1").unwrap();
    assert_eq!(r.notifications, deliveries);
    let failed = f
        .journal
        .events(RUN_A)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "notification_failed")
        .count();
    assert_eq!(failed, 1);
}
