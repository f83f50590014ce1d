//! The executor: hosts in batches by strategy; for each host, each step:
//! `when` → resolve args → plan (read-only) → [dry-run stops here] → approve →
//! backup → intent → apply → `until`/retries → `assert` → register the result
//! (`step.rs`). On failure, the step's `on_failure` (or the runbook's)
//! decides: roll back this host's changes in reverse (`rollback.rs`), stop,
//! or continue (`host.rs`). `max_failed` stops the rollout before its next
//! batch. Every transition is an event through one sink.

mod backups;
mod host;
mod invariant;
mod restore;
mod rollback;
mod rollout;
mod step;

use crate::action::{ActionError, EtcdClients, StepCtx};
use crate::bind::BoundRun;
use crate::eval::Bindings;
use crate::event::{Event, EventKind, EventSink};
use crate::inventory::Host;
use crate::plan::Plan;
use crate::report::{summarize, Finding, HostReport, HostStatus, RunReport, RunStatus, StepReport};
use crate::resume::ResumeState;
use remedy_clock::Clock;
use remedy_dsl::{Runbook, Step};
use remedy_transport::{Connector, Transport};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub run_id: String,
    pub dry_run: bool,
    /// Limit for one command when the step sets no `timeout`.
    pub command_timeout: Duration,
    /// Hosts worked on at once within a batch (a dry-run is one batch of all
    /// hosts, so this bounds its fan-out).
    pub max_parallel: usize,
    /// Where jump-host files an action changes are backed up
    /// (`$REMEDY_HOME/backups`).
    pub local_backup_dir: String,
    /// `remedy resume`: what the journal says was already done.
    pub resume: Option<ResumeState>,
    /// The inventory's path, for the commands hints give.
    pub inventory: Option<String>,
    /// Approval per host or per step (a run-wide approval is obtained before
    /// the run starts, by the caller).
    pub gate: Option<std::sync::Arc<dyn ApprovalGate>>,
    /// How `kube.*` steps reach the API server.
    pub kube: crate::action::kube::KubeAccess,
    /// Backups earlier runs took (from the journal), for actions that
    /// restore one; each action sees its own host's (`StepCtx::backups`).
    pub known_backups: Vec<crate::backup::KnownBackup>,
    /// The run's etcd clients. A caller that previews and then runs passes
    /// the same ones (a clone) to both, so the run reuses the preview's
    /// connections.
    pub etcd_clients: EtcdClients,
    /// Dry-run: the objects earlier steps' plans would create.
    pub planned_objects: crate::action::kube::PlannedObjects,
}

/// Asked right before a step changes a host. `Ok(true)`: approved after a
/// wait, so the executor plans the step again (the host may have changed
/// meanwhile) and asks again — an approval is for one plan only. `Ok(false)`:
/// already approved for exactly this plan. `Err`: denied or expired; the step
/// fails with nothing changed.
#[async_trait::async_trait(?Send)]
pub trait ApprovalGate: Send + Sync + std::fmt::Debug {
    async fn approve(&self, host: &Host, step: &str, plan: &Plan) -> Result<bool, String>;
}

/// `$REMEDY_HOME/backups` (default `~/.local/state/remedy/backups`).
pub fn default_local_backup_dir() -> String {
    let home = std::env::var("REMEDY_HOME").unwrap_or_else(|_| {
        format!(
            "{}/.local/state/remedy",
            std::env::var("HOME").unwrap_or_else(|_| "/root".into())
        )
    });
    format!("{}/backups", home.trim_end_matches('/'))
}

impl RunOptions {
    pub fn new(dry_run: bool) -> RunOptions {
        RunOptions {
            run_id: uuid::Uuid::now_v7().to_string(),
            dry_run,
            command_timeout: Duration::from_secs(600),
            max_parallel: 32,
            local_backup_dir: default_local_backup_dir(),
            resume: None,
            inventory: None,
            gate: None,
            kube: Default::default(),
            known_backups: Vec::new(),
            etcd_clients: EtcdClients::default(),
            planned_objects: Default::default(),
        }
    }
}

pub struct Executor<'a> {
    pub runbook: &'a Runbook,
    pub run: &'a BoundRun,
    pub connector: &'a dyn Connector,
    pub sink: &'a dyn EventSink,
    pub clock: &'a dyn Clock,
    /// Set (e.g. by Ctrl-C) to stop after the current step.
    pub cancel: &'a AtomicBool,
    pub options: RunOptions,
}

/// How one step ended, for the host loop.
enum StepEnd {
    Done(StepReport),
    /// `host.skip`: the rest of the host's steps are skipped.
    SkipHost(StepReport),
    Failed(StepReport, ActionError),
}

impl Executor<'_> {
    fn emit(&self, host: Option<&str>, step: Option<&str>, kind: EventKind) -> Result<(), String> {
        self.sink.emit(&Event {
            run_id: self.options.run_id.clone(),
            time: self.clock.now(),
            host: host.map(str::to_string),
            step: step.map(str::to_string),
            kind,
        })
    }

    /// The whole run: announce it, the batches, the end-of-run invariant,
    /// the report.
    pub async fn execute(&self) -> RunReport {
        let hosts = self.targets();
        self.announce(hosts);
        let found = self.stranded_before().await;
        let mut reports = self.run_batches(hosts).await;
        if self.options.dry_run {
            self.check_rollout(&mut reports);
        }
        let stranded = if self.options.dry_run {
            Vec::new()
        } else {
            self.check_no_stranded_manifests(&reports).await
        };
        self.finish(found, reports, stranded)
    }

    /// `run_once`: the steps run on the first target; the others are
    /// reached by the cluster-wide actions themselves.
    fn targets(&self) -> &[Host] {
        match self.runbook.run_once {
            true => &self.run.hosts[..self.run.hosts.len().min(1)],
            false => &self.run.hosts[..],
        }
    }

    fn announce(&self, hosts: &[Host]) {
        let kind = match &self.options.resume {
            Some(state) => EventKind::RunResumed {
                finished_hosts: state
                    .hosts
                    .iter()
                    .filter(|(_, h)| h.finished.is_some())
                    .map(|(n, _)| n.clone())
                    .collect(),
            },
            None => EventKind::RunStarted {
                runbook: self.runbook.name.clone(),
                dry_run: self.options.dry_run,
                hosts: hosts.iter().map(|h| h.name.clone()).collect(),
                kubeconfig: self.kubeconfig(),
            },
        };
        let _ = self.emit(None, None, kind);
    }

    /// A dry-run only reads: every host at once. A real run follows the
    /// strategy, and stops before the next batch when too many failed (or a
    /// rollback failed, or Ctrl-C).
    async fn run_batches(&self, hosts: &[Host]) -> Vec<HostReport> {
        let sizes = if self.options.dry_run {
            vec![hosts.len()]
        } else {
            self.runbook.strategy.batch_sizes(hosts.len())
        };
        let mut reports: Vec<HostReport> = Vec::new();
        let mut offset = 0;
        let mut stopped = false;
        for (index, size) in sizes.into_iter().enumerate() {
            let batch = &hosts[offset..offset + size];
            offset += size;
            let cancelled = self.cancel.load(Ordering::SeqCst);
            if stopped || cancelled {
                let status = if cancelled {
                    HostStatus::Interrupted
                } else {
                    HostStatus::NotStarted
                };
                reports.extend(batch.iter().map(|h| HostReport {
                    host: h.name.clone(),
                    status,
                    steps: Vec::new(),
                    error: None,
                    hint: None,
                }));
                continue;
            }
            let _ = self.emit(
                None,
                None,
                EventKind::BatchStarted {
                    index,
                    hosts: batch.iter().map(|h| h.name.clone()).collect(),
                },
            );
            use futures::stream::StreamExt;
            let done: Vec<HostReport> =
                futures::stream::iter(batch.iter().map(|h| self.run_host(h)))
                    .buffered(self.options.max_parallel.max(1))
                    .collect()
                    .await;
            reports.extend(done);
            let failed = reports.iter().filter(|r| r.status.is_failure()).count();
            stopped = reports
                .iter()
                .any(|r| r.status == HostStatus::RollbackFailed)
                || (!self.options.dry_run && failed > self.runbook.strategy.max_failed as usize);
        }
        reports
    }

    fn finish(
        &self,
        found: Vec<Finding>,
        reports: Vec<HostReport>,
        stranded: Vec<String>,
    ) -> RunReport {
        let status = if reports
            .iter()
            .any(|r| r.status == HostStatus::RollbackFailed)
        {
            RunStatus::RollbackFailed
        } else if reports.iter().any(|r| r.status.is_failure()) || !stranded.is_empty() {
            RunStatus::Failed
        } else if reports.iter().any(|r| r.status == HostStatus::Interrupted) {
            RunStatus::Interrupted
        } else {
            RunStatus::Ok
        };
        let mut summary = summarize(&reports);
        for s in &stranded {
            summary.push_str(&format!("; {s}"));
        }
        let _ = self.emit(
            None,
            None,
            EventKind::RunFinished {
                status: format!("{status:?}").to_lowercase(),
                summary: summary.clone(),
            },
        );
        RunReport {
            run_id: self.options.run_id.clone(),
            runbook: self.runbook.name.clone(),
            dry_run: self.options.dry_run,
            status,
            kubeconfig: self.kubeconfig(),
            found,
            hosts: reports,
            summary,
        }
    }

    /// The kubeconfig this run's API steps use, if it has any.
    fn kubeconfig(&self) -> Option<crate::action::kube::KubeconfigUse> {
        crate::action::kube::reaches_api(self.runbook)
            .then(|| self.options.kube.kubeconfig())
            .flatten()
    }

    /// What `host` is in Rhai: the inventory host, plus `lbs`, the names of
    /// the load balancers in front of it (group `lbs`), and `first`: whether
    /// it is the run's first target (where cluster-wide steps run once).
    fn host_json(&self, host: &Host) -> Value {
        let mut v = host.to_json();
        v["lbs"] = self.run.lbs.iter().map(|h| h.name.clone()).collect();
        v["first"] = Value::Bool(self.targets().first().map(|h| &h.name) == Some(&host.name));
        v
    }

    /// What an action sees for one step on one host.
    fn ctx<'a>(
        &'a self,
        transport: &'a dyn Transport,
        host: &'a Host,
        step: &'a Step,
        bindings: &'a Bindings,
        progress: &'a (dyn Fn(&str, u64) + Send + Sync),
        command_timeout: Duration,
    ) -> StepCtx<'a> {
        StepCtx {
            transport,
            host,
            step,
            bindings,
            clock: self.clock,
            progress,
            command_timeout,
            connector: self.connector,
            lbs: &self.run.lbs,
            etcd: &self.run.etcd,
            targets: &self.run.hosts,
            kube: &self.options.kube,
            backups: &self.options.known_backups,
            etcd_clients: &self.options.etcd_clients,
            planned_objects: self
                .options
                .dry_run
                .then_some(&self.options.planned_objects),
        }
    }
}
