//! What a journal says about an interrupted run, as the executor needs it to
//! continue: which hosts are finished, which steps are done (with the result
//! later steps see), which backups were taken, and which host was rolling
//! back. Built from the journal's events (kind + payload JSON) so the engine
//! does not depend on the store.

use crate::backup::BackupRecord;
use crate::report::{HostStatus, StepStatus};
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default)]
pub struct ResumeState {
    pub hosts: BTreeMap<String, HostResume>,
}

#[derive(Debug, Clone, Default)]
pub struct HostResume {
    /// `host_finished` was recorded with an end status: nothing more to do
    /// on this host. A host recorded as `interrupted` (Ctrl-C stopped it
    /// between two steps) is not finished: its remaining steps still run.
    pub finished: Option<HostStatus>,
    /// Steps that ended (`step_done`), by id.
    pub done: BTreeMap<String, DoneStep>,
    /// Backups taken, by step, in the order they were taken. A step that did
    /// not end (cut off before or after its intent) reuses them: they hold
    /// the bytes from before the run, which a second backup would not.
    pub backups: BTreeMap<String, Vec<BackupRecord>>,
    /// `rollback_started` without `host_finished` (the rollback was cut
    /// off), or the host finished `ROLLBACK FAILED`: resuming retries it.
    pub rolling_back: bool,
}

#[derive(Debug, Clone)]
pub struct DoneStep {
    pub status: StepStatus,
    pub result: Value,
}

/// One recorded event, as the store gives it back.
pub struct Recorded<'a> {
    pub host: Option<&'a str>,
    pub step: Option<&'a str>,
    pub kind: &'a str,
    pub payload: &'a Value,
}

impl ResumeState {
    pub fn from_events<'a>(events: impl IntoIterator<Item = Recorded<'a>>) -> ResumeState {
        let mut state = ResumeState::default();
        for e in events {
            let Some(host) = e.host else { continue };
            let h = state.hosts.entry(host.to_string()).or_default();
            let step = e.step.unwrap_or_default().to_string();
            match e.kind {
                "backup_taken" => {
                    if let Ok(b) =
                        serde_json::from_value::<BackupRecord>(e.payload["backup"].clone())
                    {
                        h.backups.entry(step).or_default().push(b);
                    }
                }
                "step_done" => {
                    let status = serde_json::from_value(e.payload["status"].clone())
                        .unwrap_or(StepStatus::Changed);
                    h.done.insert(
                        step,
                        DoneStep {
                            status,
                            result: e.payload["result"].clone(),
                        },
                    );
                }
                "rollback_started" => h.rolling_back = true,
                "host_finished" => {
                    let status = e.payload["status"]
                        .as_str()
                        .and_then(HostStatus::from_name)
                        .unwrap_or(HostStatus::Failed);
                    // A rollback that failed (the host stopped answering)
                    // is not finished: resuming retries it. Nor is a host
                    // Ctrl-C stopped between two steps: resuming continues
                    // it from its first unfinished step.
                    let retry = status == HostStatus::RollbackFailed;
                    h.rolling_back = retry;
                    h.finished = (!retry && status != HostStatus::Interrupted).then_some(status);
                }
                _ => {}
            }
        }
        state
    }

    /// Steps done and hosts finished, for the "resuming …" line.
    pub fn describe(&self) -> String {
        let finished = self.hosts.values().filter(|h| h.finished.is_some()).count();
        let done: usize = self
            .hosts
            .values()
            .filter(|h| h.finished.is_none())
            .map(|h| h.done.len())
            .sum();
        format!("{finished} host(s) finished, {done} step(s) done on the others")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev<'a>(host: &'a str, step: &'a str, kind: &'a str, payload: &'a Value) -> Recorded<'a> {
        Recorded {
            host: Some(host),
            step: (!step.is_empty()).then_some(step),
            kind,
            payload,
        }
    }

    /// Issue 13, defect 1: Ctrl-C after `renew` on master-1 recorded it as
    /// `interrupted`; resume must continue it from its first unfinished
    /// step, not count it as finished.
    #[test]
    fn issue_13_a_host_stopped_by_ctrl_c_is_not_finished() {
        let done = json!({"status": "changed", "result": {"changed": true}});
        let interrupted = json!({"status": "interrupted"});
        let failed = json!({"status": "failed"});
        let events = vec![
            ev("m1", "renew", "step_done", &done),
            ev("m1", "", "host_finished", &interrupted),
            ev("m2", "renew", "step_done", &done),
            ev("m2", "", "host_finished", &failed),
        ];
        let s = ResumeState::from_events(events);
        assert_eq!(s.hosts["m1"].finished, None);
        assert_eq!(s.hosts["m1"].done["renew"].status, StepStatus::Changed);
        assert_eq!(s.hosts["m2"].finished, Some(HostStatus::Failed));
        assert_eq!(
            s.describe(),
            "1 host(s) finished, 1 step(s) done on the others"
        );
    }

    #[test]
    fn a_step_without_outcome_is_not_done_and_keeps_its_backups() {
        let none = json!({});
        let backup = json!({"backup": {"path": "/etc/x", "existed": true, "sha256": "ab", "location": "/b/x", "mode": 420, "owner": [0, 0], "size": 3}});
        let done = json!({"status": "changed", "result": {"changed": true}});
        let fin = json!({"status": "changed"});
        let events = vec![
            ev("m1", "a", "step_intent", &none),
            ev("m1", "a", "step_done", &done),
            ev("m1", "", "host_finished", &fin),
            ev("m2", "a", "step_intent", &none),
            ev("m2", "a", "step_done", &done),
            ev("m2", "b", "backup_taken", &backup),
            ev("m2", "b", "step_intent", &none),
        ];
        let s = ResumeState::from_events(events);
        assert_eq!(s.hosts["m1"].finished, Some(HostStatus::Changed));
        let m2 = &s.hosts["m2"];
        assert_eq!(m2.finished, None);
        assert_eq!(m2.done["a"].status, StepStatus::Changed);
        assert!(!m2.done.contains_key("b"), "b never ended");
        assert_eq!(m2.backups["b"].len(), 1, "{:?}", m2.backups);
        assert_eq!(
            s.describe(),
            "1 host(s) finished, 1 step(s) done on the others"
        );
    }

    #[test]
    fn a_failed_rollback_is_not_finished_and_is_retried() {
        let none = json!({});
        let failed = json!({"status": "ROLLBACK FAILED"});
        let events = vec![
            ev("m2", "", "rollback_started", &none),
            ev("m2", "restart", "rollback_failed", &none),
            ev("m2", "", "host_finished", &failed),
        ];
        let s = ResumeState::from_events(events);
        assert_eq!(s.hosts["m2"].finished, None);
        assert!(s.hosts["m2"].rolling_back);
    }
}
