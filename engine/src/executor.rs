//! The executor: hosts in batches by strategy; for each host, each step:
//! `when` → resolve args → plan (read-only) → [dry-run stops here] → backup →
//! intent → apply → `until`/retries → `assert` → register the result. On
//! failure, the step's `on_failure` (or the runbook's) decides: roll back this
//! host's changes in reverse, stop, or continue. `max_failed` stops the rollout
//! before its next batch. Every transition is an event through one sink.

use crate::action::{
    failed_result, instantiate, result, skipped_result, undoes_from_result, ActionError, StepCtx,
};
use crate::backup::{self, BackupRecord};
use crate::bind::BoundRun;
use crate::eval::{Bindings, Resolved, StepValue};
use crate::event::{Event, EventKind, EventSink};
use crate::inventory::Host;
use crate::plan::Plan;
use crate::report::*;
use crate::resume::{HostResume, ResumeState};
use remedy_clock::Clock;
use remedy_dsl::runbook::ArgValue;
use remedy_dsl::{ActionKind, ArgKind, OnFailure, Runbook, Step};
use remedy_transport::{Connector, ReadOnly, Transport};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
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
    /// Approval per host or per step (a run-wide approval is obtained before
    /// the run starts, by the caller).
    pub gate: Option<std::sync::Arc<dyn ApprovalGate>>,
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
            gate: None,
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

    pub async fn execute(&self) -> RunReport {
        // `run_once`: the steps run on the first target; the others are
        // reached by the cluster-wide actions themselves.
        let hosts = match self.runbook.run_once {
            true => &self.run.hosts[..self.run.hosts.len().min(1)],
            false => &self.run.hosts[..],
        };
        let names: Vec<String> = hosts.iter().map(|h| h.name.clone()).collect();
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
                hosts: names,
            },
        };
        let _ = self.emit(None, None, kind);
        // A dry-run only reads: every host at once. A real run follows the strategy.
        let sizes = if self.options.dry_run {
            vec![hosts.len()]
        } else {
            self.runbook.strategy.batch_sizes(hosts.len())
        };
        let mut reports: Vec<HostReport> = Vec::new();
        let mut offset = 0;
        let mut stop_reason: Option<HostStatus> = None;
        for (index, size) in sizes.into_iter().enumerate() {
            let batch = &hosts[offset..offset + size];
            offset += size;
            if stop_reason.is_some() || self.cancel.load(Ordering::SeqCst) {
                let status = if self.cancel.load(Ordering::SeqCst) {
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
            if reports
                .iter()
                .any(|r| r.status == HostStatus::RollbackFailed)
            {
                stop_reason = Some(HostStatus::RollbackFailed);
            } else if !self.options.dry_run && failed > self.runbook.strategy.max_failed as usize {
                stop_reason = Some(HostStatus::Failed);
            }
        }
        let stranded = if self.options.dry_run {
            Vec::new()
        } else {
            self.check_no_stranded_manifests(&reports).await
        };
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
            hosts: reports,
            summary,
        }
    }

    async fn run_host(&self, host: &Host) -> HostReport {
        let name = host.name.as_str();
        let empty = HostResume::default();
        let resumed = self
            .options
            .resume
            .as_ref()
            .map(|r| r.hosts.get(name).unwrap_or(&empty));
        if let Some(status) = resumed.and_then(|r| r.finished) {
            return HostReport {
                host: host.name.clone(),
                status,
                steps: Vec::new(),
                error: None,
                hint: Some("finished before the run was resumed".into()),
            };
        }
        let _ = self.emit(Some(name), None, EventKind::HostStarted);
        let mut report = HostReport {
            host: host.name.clone(),
            status: HostStatus::Unchanged,
            steps: Vec::new(),
            error: None,
            hint: None,
        };
        let transport = match self.connector.connect(host).await {
            Ok(t) => t,
            Err(e) => {
                report.status = HostStatus::Failed;
                report.error = Some(e.to_string());
                report.hint =
                    Some("check the host's address, port and transport in the inventory".into());
                let _ = self.emit(
                    Some(name),
                    None,
                    EventKind::HostFinished {
                        status: "failed".into(),
                    },
                );
                return report;
            }
        };
        let mut bindings = Bindings {
            source: self.runbook.source.clone(),
            params: self.run.params.clone(),
            host: self.host_json(host),
            steps: BTreeMap::new(),
        };
        // Steps that changed the host, with their backups, for rollback.
        let mut applied: Vec<(usize, Vec<BackupRecord>)> = Vec::new();
        let mut skipping: Option<String> = None;
        let mut any_failed = false;
        if let Some(r) = resumed.filter(|r| r.rolling_back) {
            // The process died while undoing this host: restore every backup
            // it recorded again (restoring is idempotent), newest first.
            for step in &self.runbook.steps {
                let done = r
                    .done
                    .get(&step.id)
                    .filter(|d| d.status == StepStatus::Changed);
                let backups = r.backups.get(&step.id).cloned().unwrap_or_default();
                let mut s = StepReport::new(&step.id, step.action.name(), StepStatus::Changed, "");
                s.backups = backups;
                s.result = done.map(|d| d.result.clone());
                if needs_undo(&s) {
                    applied.push((report.steps.len(), s.backups.clone()));
                    report.steps.push(s);
                }
            }
            report.error = Some("the run stopped while rolling this host back".into());
            report.status = self
                .rollback(
                    host,
                    transport.as_ref(),
                    &mut report,
                    &applied,
                    "(resumed)",
                    &bindings,
                )
                .await;
            let _ = self.emit(
                Some(name),
                None,
                EventKind::HostFinished {
                    status: report.status.name().into(),
                },
            );
            return report;
        }
        for step in &self.runbook.steps {
            if let Some(done) = resumed.and_then(|r| r.done.get(&step.id)) {
                bindings.register(&step.id, StepValue::Known(done.result.clone()));
                let mut r = StepReport::new(
                    &step.id,
                    step.action.name(),
                    done.status,
                    "done before the run was resumed",
                );
                r.result = Some(done.result.clone());
                r.backups = resumed
                    .and_then(|h| h.backups.get(&step.id).cloned())
                    .unwrap_or_default();
                if needs_undo(&r) {
                    applied.push((report.steps.len(), r.backups.clone()));
                }
                if step.action == ActionKind::HostSkip && done.status != StepStatus::Skipped {
                    skipping = Some(done.result["reason"].as_str().unwrap_or("").to_string());
                }
                report.steps.push(r);
                continue;
            }
            if let Some(reason) = &skipping {
                bindings.register(&step.id, StepValue::Known(skipped_result(step.action)));
                report.steps.push(StepReport::new(
                    &step.id,
                    step.action.name(),
                    StepStatus::Skipped,
                    format!("host skipped: {reason}"),
                ));
                continue;
            }
            if self.cancel.load(Ordering::SeqCst) {
                report.status = HostStatus::Interrupted;
                report.error = Some(format!("interrupted before step `{}`", step.id));
                break;
            }
            // A step cut off before it ended keeps the backups it took
            // then: they hold the bytes from before the run (a new backup
            // would hold whatever a cut-off apply left).
            let prior = resumed
                .and_then(|r| r.backups.get(&step.id).cloned())
                .unwrap_or_default();
            match self
                .run_step(step, host, transport.as_ref(), &mut bindings, prior)
                .await
            {
                StepEnd::Done(r) => {
                    if needs_undo(&r) {
                        applied.push((report.steps.len(), r.backups.clone()));
                    }
                    report.steps.push(r);
                }
                StepEnd::SkipHost(r) => {
                    skipping = r
                        .result
                        .as_ref()
                        .and_then(|v| v["reason"].as_str().map(str::to_string))
                        .or(Some(String::new()));
                    report.steps.push(r);
                }
                StepEnd::Failed(mut r, err) => {
                    any_failed = true;
                    r.error = Some(err.to_string());
                    r.hint = err.hint().map(str::to_string);
                    let _ = self.emit(
                        Some(name),
                        Some(&step.id),
                        EventKind::StepFailed {
                            error: err.to_string(),
                        },
                    );
                    let policy = step.on_failure.unwrap_or(self.runbook.on_failure);
                    let failed_index = report.steps.len();
                    if !r.backups.is_empty() {
                        applied.push((failed_index, r.backups.clone()));
                    }
                    report.error = Some(format!("step `{}` failed: {err}", step.id));
                    report.hint = r.hint.clone();
                    report.steps.push(r);
                    if self.options.dry_run {
                        // A dry-run shows every host's full plan; a failing
                        // check makes later plans meaningless, so stop here.
                        report.status = HostStatus::Failed;
                        break;
                    }
                    match policy {
                        OnFailure::Continue => {
                            let value = failed_result(step.action, &err.to_string());
                            let _ = self.emit(
                                Some(name),
                                Some(&step.id),
                                EventKind::StepDone {
                                    status: StepStatus::Failed,
                                    result: value.clone(),
                                },
                            );
                            bindings.register(&step.id, StepValue::Known(value));
                            continue;
                        }
                        OnFailure::Stop => {
                            report.status = HostStatus::Failed;
                        }
                        OnFailure::Rollback => {
                            // The failure may have been the connection itself:
                            // ask the connector again (a live connection is
                            // reused, a dead one replaced) before restoring.
                            let fresh = match self.connector.connect(host).await {
                                Ok(t) => Some(t),
                                Err(e) => {
                                    report.error = Some(format!(
                                        "{}; and cannot reconnect to roll back: {e}",
                                        report.error.clone().unwrap_or_default()
                                    ));
                                    None
                                }
                            };
                            let t = fresh.as_deref().unwrap_or(transport.as_ref());
                            report.status = self
                                .rollback(host, t, &mut report, &applied, &step.id, &bindings)
                                .await;
                        }
                    }
                    break;
                }
            }
        }
        if report.status == HostStatus::Unchanged {
            report.status = if any_failed {
                HostStatus::Failed
            } else if skipping.is_some() && !report.steps.iter().any(StepReport::changes_host) {
                HostStatus::Skipped
            } else if report.steps.iter().any(StepReport::changes_host) {
                if self.options.dry_run {
                    HostStatus::WouldChange
                } else {
                    HostStatus::Changed
                }
            } else {
                HostStatus::Unchanged
            };
        }
        let _ = self.emit(
            Some(name),
            None,
            EventKind::HostFinished {
                status: report.status.name().into(),
            },
        );
        report
    }

    /// The invariant every run and resume ends with: no static-pod manifest
    /// is left in a host's staging directory (where `static_pod.restart`
    /// parks it), i.e. outside the manifests directory where the kubelet
    /// would run it. Returns one message per host that breaks it (or that
    /// could not be checked), each also journaled.
    async fn check_no_stranded_manifests(&self, reports: &[HostReport]) -> Vec<String> {
        let mut problems = Vec::new();
        for host in &self.run.hosts {
            let touched = reports
                .iter()
                .any(|r| r.host == host.name && r.status != HostStatus::NotStarted);
            if !touched {
                continue;
            }
            let staging = host
                .var("staging_dir")
                .unwrap_or_else(|| "/var/lib/remedy/staging".into());
            let manifests = host
                .var("manifests_dir")
                .unwrap_or_else(|| "/etc/kubernetes/manifests".into());
            let q = remedy_transport::shell::quote;
            let cmd = format!(
                "cd {} 2>/dev/null || exit 0; for f in *.yaml *.yml *.json; do [ -f \"$f\" ] && echo \"$f\"; done; exit 0",
                q(&staging)
            );
            let listed = match self.connector.connect(host).await {
                Ok(t) => t
                    .probe(&cmd, Duration::from_secs(30))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|o| {
                        if o.status == Some(0) {
                            Ok(o.stdout)
                        } else {
                            Err(o.stderr)
                        }
                    }),
                Err(e) => Err(e.to_string()),
            };
            let (error, hint) = match listed {
                Ok(out) if out.trim().is_empty() => continue,
                Ok(out) => {
                    let files: Vec<&str> = out.lines().collect();
                    (
                        format!(
                            "{}: static-pod manifest(s) left outside {manifests}, in {staging}: {} — the kubelet is not running them",
                            host.name,
                            files.join(", ")
                        ),
                        format!(
                            "put each back: mv {staging}/{} {manifests}/ on {} (or run `remedy run static-pod-restart`, which moves a stranded manifest back and waits for the pod)",
                            files[0], host.name
                        ),
                    )
                }
                Err(e) => (
                    format!(
                        "{}: could not check {staging} for stranded static-pod manifests: {e}",
                        host.name
                    ),
                    format!("look on {} for manifests in {staging}", host.name),
                ),
            };
            let _ = self.emit(
                Some(&host.name),
                None,
                EventKind::InvariantFailed {
                    error: error.clone(),
                    hint: hint.clone(),
                },
            );
            problems.push(format!("{error} ({hint})"));
        }
        problems
    }

    /// What `host` is in Rhai: the inventory host, plus `lbs`, the names of
    /// the load balancers in front of it (group `lbs`).
    fn host_json(&self, host: &Host) -> Value {
        let mut v = host.to_json();
        v["lbs"] = self.run.lbs.iter().map(|h| h.name.clone()).collect();
        v
    }

    /// Undo this host's applied steps in reverse: restore every backup (prior
    /// bytes, mode, owner — or absence), and put back what a step recorded
    /// in its result when its change is not a file (an LB server's state).
    async fn rollback(
        &self,
        host_entry: &Host,
        t: &dyn Transport,
        report: &mut HostReport,
        applied: &[(usize, Vec<BackupRecord>)],
        failed_step: &str,
        bindings: &Bindings,
    ) -> HostStatus {
        let host = host_entry.name.as_str();
        let _ = self.emit(
            Some(host),
            None,
            EventKind::RollbackStarted {
                reason: format!("step `{failed_step}` failed"),
            },
        );
        for (index, backups) in applied.iter().rev() {
            let step_id = report.steps[*index].id.clone();
            let mut restored = Vec::new();
            for b in backups.iter().rev() {
                let local = remedy_transport::Local::new("the jump host");
                let t: &dyn Transport = if b.local { &local } else { t };
                if let Err(e) = backup::restore(t, b).await {
                    let msg = format!(
                        "rollback of step `{step_id}` failed restoring {}: {e}",
                        b.path
                    );
                    let _ = self.emit(
                        Some(host),
                        Some(&step_id),
                        EventKind::RollbackFailed { error: msg.clone() },
                    );
                    report.error = Some(format!(
                        "{}; then {msg}",
                        report.error.clone().unwrap_or_default()
                    ));
                    report.hint = Some(match &b.location {
                        Some(loc) => format!("restore by hand: copy {loc} to {} (sha256 {}), then check the host", b.path, b.sha256.clone().unwrap_or_default()),
                        None => format!("remove {} by hand (it did not exist before the run), then check the host", b.path),
                    });
                    return HostStatus::RollbackFailed;
                }
                restored.push(b.path.clone());
            }
            if let Some(value) = report.steps[*index].result.clone().filter(|_| {
                ActionKind::from_name(&report.steps[*index].action).is_some_and(undoes_from_result)
            }) {
                let step = self.runbook.steps.iter().find(|s| s.id == step_id);
                let undone = match step {
                    Some(step) => {
                        let quiet = |_: &str, _: u64| {};
                        let ctx = self.ctx(
                            t,
                            host_entry,
                            step,
                            bindings,
                            &quiet,
                            self.options.command_timeout,
                        );
                        crate::action::undo(&ctx, &value).await
                    }
                    None => Err(ActionError::failed(format!(
                        "step `{step_id}` is no longer in the runbook"
                    ))),
                };
                match undone {
                    Ok(lines) => restored.extend(lines),
                    Err(e) => {
                        let msg = format!("rollback of step `{step_id}` failed: {e}");
                        let _ = self.emit(
                            Some(host),
                            Some(&step_id),
                            EventKind::RollbackFailed { error: msg.clone() },
                        );
                        report.error = Some(format!(
                            "{}; then {msg}",
                            report.error.clone().unwrap_or_default()
                        ));
                        report.hint = Some(
                            "put the server back by hand on each LB as the message says, then check it with `remedy plan lb-ready`".into(),
                        );
                        return HostStatus::RollbackFailed;
                    }
                }
            }
            if report.steps[*index].status == StepStatus::Changed {
                report.steps[*index].status = StepStatus::RolledBack;
            }
            let _ = self.emit(
                Some(host),
                Some(&step_id),
                EventKind::StepRolledBack { restored },
            );
        }
        // Steps that changed the host without declaring paths (e.g. `shell`
        // without `modifies`) cannot be restored: say so rather than pretend.
        let not_undone: Vec<String> = report
            .steps
            .iter()
            .filter(|s| s.status == StepStatus::Changed && s.backups.is_empty())
            .map(|s| format!("`{}` ({})", s.id, s.action))
            .collect();
        for id in &not_undone {
            let _ = self.emit(
                Some(host),
                None,
                EventKind::RollbackFailed {
                    error: format!(
                        "step {id} changed the host without declared paths; remedy cannot undo it"
                    ),
                },
            );
        }
        if !not_undone.is_empty() {
            report.hint = Some(format!(
                "restored every backed-up file, but could not undo {}: it declared no paths (give `shell` a `modifies:` list); check the host by hand",
                not_undone.join(", ")
            ));
        }
        HostStatus::RolledBack
    }

    async fn run_step(
        &self,
        step: &Step,
        host: &Host,
        transport: &dyn Transport,
        bindings: &mut Bindings,
        prior_backups: Vec<BackupRecord>,
    ) -> StepEnd {
        let name = host.name.as_str();
        let id = step.id.as_str();
        let action_name = step.action.name();
        let fail = |summary: &str, err: ActionError, backups: Vec<BackupRecord>, attempts: u32| {
            let mut r = StepReport::new(id, action_name, StepStatus::Failed, summary);
            r.backups = backups;
            r.attempts = attempts;
            StepEnd::Failed(r, err)
        };
        let mut when_note = None;
        if let Some(when) = &step.when {
            match bindings.eval_bool(when, None) {
                Ok(Some(false)) => {
                    bindings.register(id, StepValue::Known(skipped_result(step.action)));
                    let reason = format!("`when: {}` is false", when.text.trim());
                    let _ = self.emit(
                        Some(name),
                        Some(id),
                        EventKind::StepSkipped {
                            reason: reason.clone(),
                        },
                    );
                    if !self.options.dry_run {
                        let _ = self.emit(
                            Some(name),
                            Some(id),
                            EventKind::StepDone {
                                status: StepStatus::Skipped,
                                result: skipped_result(step.action),
                            },
                        );
                    }
                    return StepEnd::Done(StepReport::new(
                        id,
                        action_name,
                        StepStatus::Skipped,
                        reason,
                    ));
                }
                Ok(Some(true)) => {}
                Ok(None) => {
                    let set_by = when.step_ids().next().unwrap_or("?").to_string();
                    when_note = Some(format!(
                        "`when: {}` is unknown (set by step {set_by}); planned as if true",
                        when.text.trim()
                    ));
                }
                Err(e) => return fail("`when` could not be evaluated", e.into(), Vec::new(), 0),
            }
        }
        // Resolve `with`; expression arguments stay as text for the action.
        let mut with = Map::new();
        let mut unknown = Vec::new();
        for (k, v) in &step.with {
            if let ArgValue::Expr(e) = v {
                with.insert(k.clone(), Value::String(e.text.clone()));
                continue;
            }
            match bindings.resolve(v) {
                Ok(Resolved::Known(j)) => {
                    let kind = step.action.arg(k).map(|a| a.kind);
                    with.insert(k.clone(), coerce(kind, j));
                }
                Ok(Resolved::Unknown { set_by }) => unknown.push((k.clone(), set_by)),
                Err(e) => return fail("arguments could not be evaluated", e.into(), Vec::new(), 0),
            }
        }
        if !unknown.is_empty() {
            // Only a dry-run has unknown values: a real run registers every result.
            bindings.register(
                id,
                StepValue::Unknown {
                    set_by: id.to_string(),
                },
            );
            let _ = self.emit(
                Some(name),
                Some(id),
                EventKind::StepDeferred {
                    unknown: unknown.clone(),
                },
            );
            let list: Vec<String> = unknown
                .iter()
                .map(|(k, s)| format!("`{k}` unknown (set by step {s})"))
                .collect();
            let mut r = StepReport::new(
                id,
                action_name,
                StepStatus::Deferred,
                format!("planned when run: {}", list.join(", ")),
            );
            r.unknown = unknown;
            return StepEnd::Done(r);
        }
        let action = match instantiate(step.action, Value::Object(with)) {
            Ok(a) => a,
            Err(e) => return fail("invalid arguments", e, Vec::new(), 0),
        };
        let sink_progress = |what: &str, secs: u64| {
            let _ = self.emit(
                Some(name),
                Some(id),
                EventKind::Waiting {
                    what: what.to_string(),
                    elapsed_secs: secs,
                },
            );
        };
        let command_timeout = step
            .timeout_secs
            .map(|s| Duration::from_secs(s as u64))
            .unwrap_or(self.options.command_timeout);
        let read_only = ReadOnly::new(transport);
        let plan_result = {
            let ctx = self.ctx(
                &read_only,
                host,
                step,
                bindings,
                &sink_progress,
                command_timeout,
            );
            action.plan(&ctx).await
        };
        // A real run retries a failed plan too (a read-only probe may fail
        // while a component restarts); a dry-run reports it at once.
        if let Ok(p) = &plan_result {
            let _ = self.emit(
                Some(name),
                Some(id),
                EventKind::StepPlanned { plan: p.clone() },
            );
        }
        let mut first_plan = Some(plan_result);
        let summary = |p: &Plan| match &when_note {
            Some(n) => format!("{} ({n})", p.summary),
            None => p.summary.clone(),
        };

        if self.options.dry_run {
            let plan = match first_plan.take() {
                Some(Ok(p)) => p,
                Some(Err(e)) => return fail("planning failed", e, Vec::new(), 0),
                None => unreachable!("the first plan is taken once"),
            };
            let status = if plan.is_noop() {
                StepStatus::Unchanged
            } else {
                StepStatus::WouldChange
            };
            let value = plan.result.clone();
            if let (Some(v), Some(a)) = (&value, &step.assert) {
                if let Ok(Some(false)) = bindings.eval_bool(a, Some(v)) {
                    let err = ActionError::failed(format!(
                        "would fail: `assert: {}` is false",
                        a.text.trim()
                    ));
                    return fail(&summary(&plan), err, Vec::new(), 0);
                }
            }
            bindings.register(
                id,
                match &value {
                    Some(v) => StepValue::Known(v.clone()),
                    None => StepValue::Unknown {
                        set_by: id.to_string(),
                    },
                },
            );
            let mut r = StepReport::new(id, action_name, status, summary(&plan));
            r.result = value;
            r.plan = Some(plan);
            if step.action == ActionKind::HostSkip {
                return StepEnd::SkipHost(r);
            }
            return StepEnd::Done(r);
        }

        let backup_dir = host
            .var("backup_dir")
            .unwrap_or_else(|| "/var/lib/remedy/backups".into());
        let manifests_dir = host
            .var("manifests_dir")
            .unwrap_or_else(|| "/etc/kubernetes/manifests".into());
        let mut backups: Vec<BackupRecord> = prior_backups;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let planned = match first_plan.take() {
                Some(first) => first,
                None => {
                    let ctx = self.ctx(
                        &read_only,
                        host,
                        step,
                        bindings,
                        &sink_progress,
                        command_timeout,
                    );
                    action.plan(&ctx).await
                }
            };
            let plan = match planned {
                Ok(p) => p,
                Err(e) if attempt <= step.retries && e.retryable() => {
                    let wait = Duration::from_secs(step.backoff_secs as u64);
                    let _ = self.emit(
                        Some(name),
                        Some(id),
                        EventKind::StepRetry {
                            attempt,
                            wait_secs: wait.as_secs(),
                            reason: e.to_string(),
                        },
                    );
                    self.clock.sleep(wait).await;
                    continue;
                }
                Err(e) => return fail("planning failed", e, backups, attempt),
            };
            if let (Some(gate), false) = (&self.options.gate, plan.is_noop()) {
                match gate.approve(host, id, &plan).await {
                    Ok(false) => {}
                    Ok(true) => {
                        // Approved after a wait: plan again, and have that
                        // plan approved (at once if it is the same).
                        attempt -= 1;
                        continue;
                    }
                    Err(reason) => {
                        return fail(
                            &plan.summary,
                            ActionError::precondition(
                                format!("not approved: {reason}"),
                                "nothing was changed by this step; ask again with a new run",
                            ),
                            backups,
                            attempt,
                        )
                    }
                }
            }
            let outcome: Result<Value, ActionError> = if plan.is_noop() {
                let mut value = plan
                    .result
                    .clone()
                    .unwrap_or_else(|| result(false, Value::Null));
                // Resumed after an intent with no outcome: nothing left to
                // do, but did the cut-off apply change the host? Its backups
                // say; later `when: steps.X.changed` depends on it.
                if self.changed_since_backups(transport, &backups).await {
                    value["changed"] = Value::Bool(true);
                }
                Ok(value)
            } else {
                if let Err(e) = self
                    .back_up(
                        transport,
                        &backup_dir,
                        &manifests_dir,
                        id,
                        &plan,
                        &mut backups,
                        name,
                    )
                    .await
                {
                    return fail(&plan.summary, e, backups, attempt);
                }
                if let Err(e) = self.back_up_local(&*action, id, &mut backups, name).await {
                    return fail(&plan.summary, e, backups, attempt);
                }
                if let Err(e) = self.emit(Some(name), Some(id), EventKind::StepIntent { attempt }) {
                    return fail(
                        &plan.summary,
                        ActionError::precondition(
                            format!("could not record the intent to apply: {e}"),
                            "nothing was changed; fix the journal and run again",
                        ),
                        backups,
                        attempt,
                    );
                }
                let ctx = self.ctx(
                    transport,
                    host,
                    step,
                    bindings,
                    &sink_progress,
                    command_timeout,
                );
                match step.timeout_secs {
                    Some(secs) => match tokio::time::timeout(
                        Duration::from_secs(secs as u64),
                        action.apply(&ctx, &plan),
                    )
                    .await
                    {
                        Ok(r) => r,
                        Err(_) => Err(ActionError::failed(format!(
                            "step did not finish within its timeout of {}",
                            remedy_dsl::param::format_duration(secs)
                        ))),
                    },
                    None => action.apply(&ctx, &plan).await,
                }
            };
            let retry = |reason: String| async move {
                let wait = Duration::from_secs(step.backoff_secs as u64);
                let _ = self.emit(
                    Some(name),
                    Some(id),
                    EventKind::StepRetry {
                        attempt,
                        wait_secs: wait.as_secs(),
                        reason,
                    },
                );
                self.clock.sleep(wait).await;
            };
            let value = match outcome {
                Ok(v) => v,
                Err(e) if attempt <= step.retries && e.retryable() => {
                    retry(e.to_string()).await;
                    continue;
                }
                Err(e) => return fail(&plan.summary, e, backups, attempt),
            };
            let _ = self.emit(
                Some(name),
                Some(id),
                EventKind::StepApplied {
                    result: value.clone(),
                    attempt,
                },
            );
            if let Some(until) = &step.until {
                match bindings.eval_bool(until, Some(&value)) {
                    Ok(Some(true)) => {}
                    Ok(_) if attempt <= step.retries => {
                        retry(format!("`until: {}` is false", until.text.trim())).await;
                        continue;
                    }
                    Ok(_) => {
                        let err = ActionError::Failed { message: format!("`until: {}` still false after {attempt} attempt(s)", until.text.trim()), hint: Some("raise `retries`/`backoff` if the host is just slow, or look at the step's last result".into()) };
                        let mut end = fail(&plan.summary, err, backups, attempt);
                        if let StepEnd::Failed(r, _) = &mut end {
                            r.result = Some(value);
                        }
                        return end;
                    }
                    Err(e) => return fail(&plan.summary, e.into(), backups, attempt),
                }
            }
            if let Some(assert) = &step.assert {
                match bindings.eval_bool(assert, Some(&value)) {
                    Ok(Some(true)) => {}
                    Ok(_) => {
                        let err = ActionError::failed(format!(
                            "`assert: {}` is false",
                            assert.text.trim()
                        ));
                        let mut end = fail(&plan.summary, err, backups, attempt);
                        if let StepEnd::Failed(r, _) = &mut end {
                            r.result = Some(value);
                        }
                        return end;
                    }
                    Err(e) => return fail(&plan.summary, e.into(), backups, attempt),
                }
            }
            if step.until.is_some() || step.assert.is_some() {
                let _ = self.emit(Some(name), Some(id), EventKind::StepVerified);
            }
            bindings.register(id, StepValue::Known(value.clone()));
            let changed = value["changed"].as_bool().unwrap_or(false);
            let status = if changed {
                StepStatus::Changed
            } else {
                StepStatus::Unchanged
            };
            // Durable before the next step starts: `resume` skips this step.
            let _ = self.emit(
                Some(name),
                Some(id),
                EventKind::StepDone {
                    status,
                    result: value.clone(),
                },
            );
            let mut r = StepReport::new(id, action_name, status, summary(&plan));
            r.result = Some(value);
            r.backups = backups;
            r.attempts = attempt;
            r.plan = Some(plan);
            if step.action == ActionKind::HostSkip {
                return StepEnd::SkipHost(r);
            }
            return StepEnd::Done(r);
        }
    }

    async fn changed_since_backups(&self, t: &dyn Transport, backups: &[BackupRecord]) -> bool {
        let local = remedy_transport::Local::new("the jump host");
        for b in backups {
            let side: &dyn Transport = if b.local { &local } else { t };
            if backup::differs(side, b).await.unwrap_or(false) {
                return true;
            }
        }
        false
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
        }
    }

    /// Back up the jump-host paths an action declares, on the jump host.
    async fn back_up_local(
        &self,
        action: &dyn crate::action::Action,
        step: &str,
        backups: &mut Vec<BackupRecord>,
        host: &str,
    ) -> Result<(), ActionError> {
        let local = remedy_transport::Local::new("the jump host");
        let side = Side {
            dir: &self.options.local_backup_dir,
            local: true,
            setting: "$REMEDY_HOME/backups",
        };
        self.take_backups(&local, &side, step, &action.modifies_local(), backups, host)
            .await
    }

    /// Back up every path the plan declares, on the host, outside its
    /// manifests directory.
    #[allow(clippy::too_many_arguments)]
    async fn back_up(
        &self,
        t: &dyn Transport,
        dir: &str,
        manifests: &str,
        step: &str,
        plan: &Plan,
        backups: &mut Vec<BackupRecord>,
        host: &str,
    ) -> Result<(), ActionError> {
        if plan.modifies.is_empty() {
            return Ok(());
        }
        backup::check_location(dir, manifests).map_err(|e| {
            ActionError::precondition(
                e.to_string(),
                "set the host var `backup_dir` to a directory outside the manifests directory",
            )
        })?;
        let side = Side {
            dir,
            local: false,
            setting: "host var `backup_dir`",
        };
        self.take_backups(t, &side, step, &plan.modifies, backups, host)
            .await
    }

    /// Take (and journal) a backup of each path not yet backed up on this side
    /// in this step. A failure means nothing is changed.
    async fn take_backups(
        &self,
        t: &dyn Transport,
        side: &Side<'_>,
        step: &str,
        paths: &[String],
        backups: &mut Vec<BackupRecord>,
        host: &str,
    ) -> Result<(), ActionError> {
        let dir = side.dir;
        for path in paths {
            if backups
                .iter()
                .any(|b| b.local == side.local && &b.path == path)
            {
                continue;
            }
            let mut record = backup::take(t, dir, &self.options.run_id, step, path)
                .await
                .map_err(|e| {
                    ActionError::precondition(
                        format!(
                            "backup of {path}{} failed, so nothing was changed: {e}",
                            if side.local { " on the jump host" } else { "" }
                        ),
                        format!(
                            "make room or fix permissions under {dir} ({})",
                            side.setting
                        ),
                    )
                })?;
            record.local = side.local;
            self.emit(
                Some(host),
                Some(step),
                EventKind::BackupTaken {
                    backup: record.clone(),
                },
            )
            .map_err(|e| {
                ActionError::precondition(
                    format!("could not record the backup of {path}: {e}"),
                    "nothing was changed",
                )
            })?;
            backups.push(record);
        }
        Ok(())
    }
}

/// A finished step rollback must undo: it took backups, or its change is
/// restored from its result.
fn needs_undo(r: &StepReport) -> bool {
    !r.backups.is_empty()
        || (r.status == StepStatus::Changed
            && r.result.is_some()
            && ActionKind::from_name(&r.action).is_some_and(undoes_from_result))
}

/// Where backups of one side (the host, or the jump host) go.
struct Side<'a> {
    dir: &'a str,
    local: bool,
    /// The setting that chooses `dir`, for messages.
    setting: &'static str,
}

/// A string argument given a number or boolean by `"${...}"` gets its text,
/// as it would have written inline (`cmd: "${params.port}"`).
fn coerce(kind: Option<ArgKind>, value: Value) -> Value {
    let text = |v: Value| match v {
        Value::Number(n) => Value::String(n.to_string()),
        Value::Bool(b) => Value::String(b.to_string()),
        other => other,
    };
    match (kind, value) {
        (Some(ArgKind::Str), v) => text(v),
        (Some(ArgKind::StrList), Value::Array(items)) => {
            Value::Array(items.into_iter().map(text).collect())
        }
        (Some(ArgKind::StrMap), Value::Object(m)) => {
            Value::Object(m.into_iter().map(|(k, v)| (k, text(v))).collect())
        }
        (_, v) => v,
    }
}
