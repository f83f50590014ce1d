//! The bridge from the engine's events to the durable journal: every event
//! but progress ticks is appended (secrets redacted) before `emit` returns,
//! an intent is refused when this run no longer holds its host's lock, and a
//! test hook can SIGKILL the process right after a chosen event.

use remedy_engine::event::{Event, EventSink};
use remedy_engine::redact::Redactor;
use remedy_journal::{Journal, NewEvent};
use serde_json::Value;
use std::sync::atomic::{AtomicU32, Ordering};
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

pub struct JournalSink {
    pub journal: Arc<Journal>,
    pub actor: String,
    pub redactor: Redactor,
    pub fence: Option<Fence>,
    crash: Option<CrashPoint>,
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
            crash: CrashPoint::from_env(),
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
            }
            let text = self.redactor.apply(&payload.to_string());
            let payload = serde_json::from_str(&text).unwrap_or(Value::String(text));
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
                .map_err(|e| e.to_string())?;
        }
        if let Some(c) = &self.crash {
            c.check(&kind, event);
        }
        Ok(())
    }
}

/// Test hook for crash consistency: `REMEDY_CRASH_AFTER=KIND[@HOST][/STEP][#N]`
/// kills this process with SIGKILL right after the N-th (default first)
/// matching event is durable — e.g. `step_intent@master-2/restart` dies with
/// the intent recorded and the apply not started, `waiting@master-1` dies in
/// the middle of a restart with the manifest moved out. Used by the crash
/// tests; an operator never needs it, so only debug builds (what `cargo test`
/// runs) read the variable: a release binary ignores it (`tests/release.rs`).
#[cfg_attr(not(debug_assertions), allow(dead_code))]
struct CrashPoint {
    kind: String,
    host: Option<String>,
    step: Option<String>,
    nth: u32,
    seen: AtomicU32,
}

#[cfg_attr(not(debug_assertions), allow(dead_code))]
impl CrashPoint {
    #[cfg(not(debug_assertions))]
    fn from_env() -> Option<CrashPoint> {
        None
    }

    #[cfg(debug_assertions)]
    fn from_env() -> Option<CrashPoint> {
        let spec = std::env::var("REMEDY_CRASH_AFTER").ok()?;
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
        Some(CrashPoint {
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
            eprintln!("REMEDY_CRASH_AFTER: killing myself after {kind}");
            // SAFETY: signalling our own pid; SIGKILL cannot be caught.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
    }
}
