//! The bridge from the engine's events to the durable journal: every event
//! but progress ticks is appended (secrets redacted) before `emit` returns,
//! an intent is refused when this run no longer holds its host's lock (the
//! local one, and the ops etcd's when jump hosts are coordinated), and a
//! test hook can SIGKILL the process right after a chosen event.

use remedy_coordination::{Coordinator, HeldLocks};
use remedy_engine::event::{Event, EventSink};
use remedy_engine::redact::Redactor;
use remedy_journal::{Journal, NewEvent};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The lock target for one host of one inventory.
pub fn lock_target(inventory: &str, host: &str) -> String {
    format!("{host}@{inventory}")
}

/// Open the journal, or say where and why not.
pub fn open() -> Result<Arc<Journal>, String> {
    let path = remedy_journal::default_path();
    Journal::open(&path).map(Arc::new).map_err(|e| {
        format!(
            "cannot open the journal {}: {e}\n  = hint: set REMEDY_HOME to a writable directory",
            path.display()
        )
    })
}

/// The event's kind name and its payload (the variant's fields).
pub fn split(event: &Event) -> (String, Value) {
    let mut v = serde_json::to_value(&event.kind).unwrap_or(Value::Null);
    let kind = v
        .as_object_mut()
        .and_then(|m| m.remove("event"))
        .and_then(|k| k.as_str().map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    (kind, v)
}

pub struct Fence {
    pub inventory: String,
    pub token: u64,
}

/// A run's locks in the ops etcd, checked before every intent.
pub struct CoordFence {
    pub coordinator: Coordinator,
    pub held: HeldLocks,
}

impl CoordFence {
    /// Whether this run still holds `host` in the ops etcd: a
    /// linearizable check of the lock key's create revision and lease
    /// (the fencing token), never this process's memory of it — a run
    /// paused past its lease remembers a lock it no longer has.
    fn check(&self, host: &str) -> Result<(), String> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err("cannot check the ops etcd lock here (no async runtime)".into());
        };
        let held = tokio::task::block_in_place(|| {
            runtime.block_on(self.coordinator.still_holds(&self.held, host))
        });
        match held {
            Ok(true) => Ok(()),
            Ok(false) => Err(format!(
                "this run no longer holds its lock on {host} in the ops etcd (fencing token {}): its lease ended — the run was paused or cut off for longer than coordination.lease_ttl ({}s) — and another run may hold the host now; this step changed nothing\n  = hint: `remedy lock list` shows the holder; `remedy resume RUN` once the host is free",
                self.held.revision,
                self.coordinator.config().lease_ttl.as_secs()
            )),
            Err(e) => Err(format!(
                "cannot confirm this run's lock on {host} in the ops etcd, so this step changed nothing: {e}"
            )),
        }
    }
}

pub struct JournalSink {
    pub journal: Arc<Journal>,
    pub actor: String,
    pub redactor: Redactor,
    pub fence: Option<Fence>,
    /// The ops etcd's locks, when jump hosts are coordinated.
    pub coordinated: Option<Arc<CoordFence>>,
    /// Test hooks: `REMEDY_CRASH_AFTER`, `REMEDY_INTERRUPT_AFTER`, `REMEDY_STOP_AFTER`.
    signal_points: Vec<SignalPoint>,
}

impl JournalSink {
    pub fn new(
        journal: Arc<Journal>,
        actor: String,
        redactor: Redactor,
        fence: Option<Fence>,
    ) -> Self {
        JournalSink {
            journal,
            actor,
            redactor,
            fence,
            coordinated: None,
            signal_points: [
                ("REMEDY_CRASH_AFTER", libc::SIGKILL),
                ("REMEDY_INTERRUPT_AFTER", libc::SIGINT),
                ("REMEDY_STOP_AFTER", libc::SIGSTOP),
            ]
            .into_iter()
            .filter_map(|(var, signal)| SignalPoint::from_env(var, signal))
            .collect(),
        }
    }
}

impl EventSink for JournalSink {
    fn emit(&self, event: &Event) -> Result<(), String> {
        let (kind, payload) = split(event);
        // Progress ticks are for the screen, not the record.
        if kind != "waiting" {
            if kind == "step_intent" {
                if let (Some(f), Some(host)) = (&self.fence, &event.host) {
                    let target = lock_target(&f.inventory, host);
                    match self.journal.holds(&target, &event.run_id, f.token) {
                        Ok(true) => {}
                        Ok(false) => {
                            return Err(format!(
                                "this run no longer holds the lock on {host} (it was broken or taken over); see `remedy lock list`"
                            ))
                        }
                        Err(e) => return Err(e.to_string()),
                    }
                }
                if let (Some(c), Some(host)) = (&self.coordinated, &event.host) {
                    c.check(host)?;
                }
            }
            let text = self.redactor.apply(&payload.to_string());
            let payload =
                serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone()));
            self.journal
                .append(&NewEvent {
                    run_id: event.run_id.clone(),
                    time_ms: event
                        .time
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_millis() as i64)
                        .unwrap_or(0),
                    actor: self.actor.clone(),
                    host: event.host.clone(),
                    step: event.step.clone(),
                    kind: kind.clone(),
                    payload,
                })
                .map_err(|e| {
                    // The run goes on (or rolls back) on the hosts whatever
                    // the journal can hold: say what happened, there and now.
                    super::progress::note(&format!(
                        "error: NOT RECORDED in the journal: {}: {e}",
                        unrecorded(&kind, event, &text)
                    ));
                    e.to_string()
                })?;
        }
        for point in &self.signal_points {
            point.check(&kind, event);
        }
        Ok(())
    }
}

/// One line saying what an event that could not be journaled was:
/// `master-1 › edit: step_rolled_back {…}` (the payload is clipped).
fn unrecorded(kind: &str, event: &Event, redacted_payload: &str) -> String {
    let at = match (&event.host, &event.step) {
        (Some(h), Some(s)) => format!("{h} › {s}"),
        (Some(h), None) => h.clone(),
        _ => format!("run {}", event.run_id),
    };
    let mut detail = redacted_payload.to_string();
    if detail.chars().count() > 300 {
        detail = format!("{}…", detail.chars().take(300).collect::<String>());
    }
    format!("{at}: {kind} {detail}")
}

/// Set once this process has handled a Ctrl-C (for the interrupt hook).
pub static CTRL_C_HANDLED: AtomicBool = AtomicBool::new(false);

/// Test hooks for crash consistency: `REMEDY_CRASH_AFTER=KIND[@HOST][/STEP][#N]`
/// kills this process with SIGKILL right after the N-th (default first)
/// matching event is durable — e.g. `step_intent@master-2/restart` dies with
/// the intent recorded and the apply not started, `waiting@master-1` dies in
/// the middle of a restart with the manifest moved out.
/// `REMEDY_INTERRUPT_AFTER` (same syntax) sends this process SIGINT there
/// instead, as Ctrl-C would; `REMEDY_STOP_AFTER` sends it SIGSTOP, so a
/// test can change the world between a step's plan and its apply and then
/// let it go on (SIGCONT). Used by the crash and interrupt tests; an
/// operator never needs them, so only debug builds (what `cargo test` runs)
/// read the variables: a release binary ignores them (`tests/release.rs`).
#[cfg_attr(not(debug_assertions), allow(dead_code))]
struct SignalPoint {
    var: &'static str,
    signal: libc::c_int,
    kind: String,
    host: Option<String>,
    step: Option<String>,
    nth: u32,
    seen: AtomicU32,
}

#[cfg_attr(not(debug_assertions), allow(dead_code))]
impl SignalPoint {
    #[cfg(not(debug_assertions))]
    fn from_env(_var: &'static str, _signal: libc::c_int) -> Option<SignalPoint> {
        None
    }

    #[cfg(debug_assertions)]
    fn from_env(var: &'static str, signal: libc::c_int) -> Option<SignalPoint> {
        let spec = std::env::var(var).ok()?;
        let (rest, nth) = match spec.split_once('#') {
            Some((r, n)) => (r.to_string(), n.parse().unwrap_or(1)),
            None => (spec.clone(), 1),
        };
        let (rest, step) = match rest.split_once('/') {
            Some((r, s)) => (r.to_string(), Some(s.to_string())),
            None => (rest, None),
        };
        let (kind, host) = match rest.split_once('@') {
            Some((k, h)) => (k.to_string(), Some(h.to_string())),
            None => (rest, None),
        };
        Some(SignalPoint {
            var,
            signal,
            kind,
            host,
            step,
            nth,
            seen: AtomicU32::new(0),
        })
    }

    fn check(&self, kind: &str, event: &Event) {
        let matches = kind == self.kind
            && self
                .host
                .as_ref()
                .is_none_or(|h| event.host.as_ref() == Some(h))
            && self
                .step
                .as_ref()
                .is_none_or(|s| event.step.as_ref() == Some(s));
        if matches && self.seen.fetch_add(1, Ordering::SeqCst) + 1 == self.nth {
            eprintln!(
                "{}: signal {} to myself after {kind}",
                self.var, self.signal
            );
            // SAFETY: signalling our own pid.
            unsafe {
                libc::kill(libc::getpid(), self.signal);
            }
            // Ctrl-C is handled by a task: wait until it has been, so the
            // run stops right after this event's step, as the test asked.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while self.signal == libc::SIGINT
                && !CTRL_C_HANDLED.load(Ordering::SeqCst)
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }
}
