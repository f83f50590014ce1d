//! What a run did (or, in a dry-run, would do), per host and step: the value
//! the CLI renders and `-o json` prints.

use crate::backup::BackupRecord;
use crate::plan::{Change, Plan};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Ok,
    /// At least one host failed (and was rolled back, or stopped, per policy).
    Failed,
    /// Ctrl-C: stopped after the step that was running.
    Interrupted,
    /// A rollback could not complete: a host needs a human now.
    RollbackFailed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostStatus {
    Unchanged,
    Changed,
    /// Dry-run: a real run would change this host.
    WouldChange,
    /// `host.skip`: nothing to do.
    Skipped,
    /// Failed and left as it was at the failure (`on_failure: stop`), or
    /// failed steps with `on_failure: continue`.
    Failed,
    /// Failed, then restored to how it was before the run.
    RolledBack,
    RollbackFailed,
    Interrupted,
    /// Not reached: the rollout stopped before its batch.
    NotStarted,
}

impl HostStatus {
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            HostStatus::Failed | HostStatus::RolledBack | HostStatus::RollbackFailed
        )
    }
    /// The status a journal recorded with [`HostStatus::name`].
    pub fn from_name(name: &str) -> Option<HostStatus> {
        ALL_HOST_STATUSES.into_iter().find(|s| s.name() == name)
    }
    pub fn name(self) -> &'static str {
        match self {
            HostStatus::Unchanged => "unchanged",
            HostStatus::Changed => "changed",
            HostStatus::WouldChange => "to change",
            HostStatus::Skipped => "skipped",
            HostStatus::Failed => "failed",
            HostStatus::RolledBack => "failed, rolled back",
            HostStatus::RollbackFailed => "ROLLBACK FAILED",
            HostStatus::Interrupted => "interrupted",
            HostStatus::NotStarted => "not started",
        }
    }
}

pub const ALL_HOST_STATUSES: [HostStatus; 9] = [
    HostStatus::Unchanged,
    HostStatus::Changed,
    HostStatus::WouldChange,
    HostStatus::Skipped,
    HostStatus::Failed,
    HostStatus::RolledBack,
    HostStatus::RollbackFailed,
    HostStatus::Interrupted,
    HostStatus::NotStarted,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// `when` was false, or the host was skipped before it.
    Skipped,
    Unchanged,
    Changed,
    /// Dry-run: would change.
    WouldChange,
    /// Dry-run: cannot be planned before earlier steps really run.
    Deferred,
    Failed,
    /// Applied, then undone by rollback.
    RolledBack,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub id: String,
    pub action: String,
    pub status: StepStatus,
    pub summary: String,
    pub plan: Option<Plan>,
    /// Dry-run: arguments whose values only a real run would know, with the
    /// step that sets them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<(String, String)>,
    pub result: Option<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub backups: Vec<BackupRecord>,
    pub error: Option<String>,
    pub hint: Option<String>,
    pub attempts: u32,
}

impl StepReport {
    pub fn new(
        id: &str,
        action: &str,
        status: StepStatus,
        summary: impl Into<String>,
    ) -> StepReport {
        StepReport {
            id: id.into(),
            action: action.into(),
            status,
            summary: summary.into(),
            plan: None,
            unknown: Vec::new(),
            result: None,
            backups: Vec::new(),
            error: None,
            hint: None,
            attempts: 0,
        }
    }

    /// True when the step (would) change the host, notes aside.
    pub fn changes_host(&self) -> bool {
        match self.status {
            StepStatus::Changed | StepStatus::RolledBack => true,
            StepStatus::WouldChange => self
                .plan
                .as_ref()
                .is_some_and(|p| p.changes.iter().any(|c| !matches!(c, Change::Note { .. }))),
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    pub host: String,
    pub status: HostStatus,
    pub steps: Vec<StepReport>,
    pub error: Option<String>,
    pub hint: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run_id: String,
    pub runbook: String,
    pub dry_run: bool,
    pub status: RunStatus,
    /// The kubeconfig the run's API steps use and what named it
    /// (`--kubeconfig` or `KUBECONFIG`); absent when they go through the
    /// masters' admin.conf, or the runbook has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<crate::action::kube::KubeconfigUse>,
    /// Found before the plan or run began, on the run's hosts: static-pod
    /// manifests stranded in staging (the kubelet is not running them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub found: Vec<Finding>,
    pub hosts: Vec<HostReport>,
    pub summary: String,
}

/// Something wrong on a host that the run did not cause, and how to fix it.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub host: String,
    pub error: String,
    pub hint: String,
}

/// "3 hosts: 2 to change, 1 unchanged".
pub fn summarize(hosts: &[HostReport]) -> String {
    let order = [
        HostStatus::WouldChange,
        HostStatus::Changed,
        HostStatus::Unchanged,
        HostStatus::Skipped,
        HostStatus::Failed,
        HostStatus::RolledBack,
        HostStatus::RollbackFailed,
        HostStatus::Interrupted,
        HostStatus::NotStarted,
    ];
    let parts: Vec<String> = order
        .iter()
        .filter_map(|s| {
            let n = hosts.iter().filter(|h| h.status == *s).count();
            (n > 0).then(|| format!("{n} {}", s.name()))
        })
        .collect();
    let n = hosts.len();
    format!(
        "{n} host{}: {}",
        if n == 1 { "" } else { "s" },
        if parts.is_empty() {
            "nothing to do".into()
        } else {
            parts.join(", ")
        }
    )
}
