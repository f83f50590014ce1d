//! Shared fixtures: a fresh journal file in a temp dir, runs and events.
#![allow(dead_code)] // each test binary uses a different subset

use remedy_journal::{hostname, os_user, process_start, Journal, NewEvent, NewRun, StoredEvent};
use std::path::PathBuf;

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub journal: Journal,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let journal = Journal::open(&dir.path().join("state/remedy.db")).expect("open journal");
        Fixture { dir, journal }
    }

    pub fn path(&self) -> PathBuf {
        self.journal.path().to_path_buf()
    }

    /// Another handle on the same file, as a second process would have.
    pub fn reopen(&self) -> Journal {
        Journal::open(self.journal.path()).expect("reopen journal")
    }

    /// The file as an attacker with write access sees it.
    pub fn raw(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.journal.path()).expect("raw open")
    }
}

/// A run owned by this (live) test process on this host.
pub fn new_run(run_id: &str, started_ms: i64) -> NewRun {
    let pid = std::process::id();
    NewRun {
        run_id: run_id.to_string(),
        runbook: "cert-renew".to_string(),
        runbook_ref: "builtin:cert-renew".to_string(),
        runbook_sha256: "ab".repeat(32),
        inventory: "/etc/remedy/lab.yaml".to_string(),
        limit: Some("cp-1".to_string()),
        params: vec![
            ("days".to_string(), "30".to_string()),
            ("token".to_string(), "env:CA_TOKEN".to_string()),
        ],
        hosts: vec!["cp-1".to_string(), "cp-2".to_string()],
        dry_run: false,
        actor: "alice".to_string(),
        os_user: os_user(),
        jump_host: hostname(),
        pid,
        pid_start: process_start(pid),
        started_ms,
    }
}

pub fn event(run_id: &str, kind: &str, n: i64) -> NewEvent {
    NewEvent {
        run_id: run_id.to_string(),
        time_ms: 1_700_000_000_000 + n,
        actor: "alice".to_string(),
        host: Some("cp-1".to_string()),
        step: Some(format!("step-{n}")),
        kind: kind.to_string(),
        payload: serde_json::json!({"n": n, "note": "ünïcode ✓", "nested": {"b": 1, "a": [1.5, null]}}),
    }
}

/// Appends `n` events alternating between runs A and B (ids 1..=n; odd ids
/// are run A).
pub fn interleaved(journal: &Journal, n: i64) -> Vec<StoredEvent> {
    (1..=n)
        .map(|i| {
            let run = if i % 2 == 1 { RUN_A } else { RUN_B };
            journal
                .append(&event(run, "step_intent", i))
                .expect("append")
        })
        .collect()
}

pub const RUN_A: &str = "0199aaaa-0000-7000-8000-000000000001";
pub const RUN_B: &str = "0199bbbb-0000-7000-8000-000000000002";

/// A pid that certainly belonged to a process that has exited (and was reaped).
pub fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true")
        .spawn()
        .expect("spawn true");
    let pid = child.id();
    child.wait().expect("wait for true");
    pid
}
