//! Events: every transition of a run goes out as one typed [`Event`] through
//! one [`EventSink`]. The CLI renders them as progress; the journal (audit
//! issue) makes them durable. An intent event is emitted — and must be
//! accepted — before any mutation starts.

use crate::backup::BackupRecord;
use crate::plan::Plan;
use serde::Serialize;
use serde_json::Value;
use std::sync::Mutex;
use std::time::SystemTime;

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub run_id: String,
    #[serde(with = "unix_millis")]
    pub time: SystemTime,
    pub host: Option<String>,
    pub step: Option<String>,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    RunStarted {
        runbook: String,
        dry_run: bool,
        hosts: Vec<String>,
        /// The kubeconfig the run's API steps use, and what named it
        /// (absent: through each master's admin.conf over SSH).
        #[serde(skip_serializing_if = "Option::is_none")]
        kubeconfig: Option<crate::action::kube::KubeconfigUse>,
    },
    BatchStarted {
        index: usize,
        hosts: Vec<String>,
    },
    HostStarted,
    StepSkipped {
        reason: String,
    },
    StepPlanned {
        plan: Plan,
    },
    /// A dry-run could not plan the step: it needs values set by earlier steps.
    StepDeferred {
        unknown: Vec<(String, String)>,
    },
    BackupTaken {
        backup: BackupRecord,
    },
    /// About to change the host. Emitted before the first mutation.
    StepIntent {
        attempt: u32,
    },
    StepApplied {
        result: Value,
        attempt: u32,
    },
    StepRetry {
        attempt: u32,
        wait_secs: u64,
        reason: String,
    },
    /// A long wait is still going (for progress displays).
    Waiting {
        what: String,
        elapsed_secs: u64,
    },
    StepVerified,
    /// The step is over on this host: what `resume` skips, and the result
    /// later steps see.
    StepDone {
        status: crate::report::StepStatus,
        result: Value,
    },
    StepFailed {
        error: String,
    },
    RollbackStarted {
        reason: String,
    },
    StepRolledBack {
        restored: Vec<String>,
    },
    RollbackFailed {
        error: String,
    },
    HostFinished {
        status: String,
    },
    /// `remedy resume`: the run continues; these hosts were already finished.
    RunResumed {
        finished_hosts: Vec<String>,
    },
    /// Before the plan or run: a static-pod manifest found in a host's
    /// staging directory (an earlier run or a person left it there), where
    /// the kubelet does not run it.
    StrandedFound {
        error: String,
        hint: String,
    },
    /// An end-of-run check failed: e.g. a static-pod manifest left outside
    /// the manifests directory.
    InvariantFailed {
        error: String,
        hint: String,
    },
    RunFinished {
        status: String,
        summary: String,
    },
}

/// Where events go. An error means the event could not be recorded; the
/// engine then does not start the mutation it announced.
pub trait EventSink: Send + Sync {
    fn emit(&self, event: &Event) -> Result<(), String>;
}

/// Keeps every event in memory (tests, `-o json` reports).
#[derive(Default)]
pub struct MemorySink {
    events: Mutex<Vec<Event>>,
}

impl MemorySink {
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

impl EventSink for MemorySink {
    fn emit(&self, event: &Event) -> Result<(), String> {
        self.events
            .lock()
            .map_err(|e| e.to_string())?
            .push(event.clone());
        Ok(())
    }
}

/// Sends each event to several sinks; the first failure stops it.
pub struct Tee<'a>(pub Vec<&'a dyn EventSink>);

impl EventSink for Tee<'_> {
    fn emit(&self, event: &Event) -> Result<(), String> {
        self.0.iter().try_for_each(|s| s.emit(event))
    }
}

mod unix_millis {
    use serde::Serializer;
    use std::time::{SystemTime, UNIX_EPOCH};
    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        let ms = t
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        s.serialize_u64(ms)
    }
}
