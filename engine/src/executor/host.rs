//! One host of a run, as stages: finished before a resume? → connect →
//! [a rollback the process died in is finished first] → each step (replayed
//! from the journal, skipped, or run) → a failed step's policy (continue,
//! stop, roll back) → the host's status.

use super::rollback::needs_undo;
use super::step::StepRun;
use super::{Executor, StepEnd};
use crate::action::{failed_result, skipped_result, ActionError};
use crate::backup::BackupRecord;
use crate::eval::{Bindings, StepValue, Taint};
use crate::event::EventKind;
use crate::inventory::Host;
use crate::report::{HostReport, HostStatus, StepReport, StepStatus};
use crate::resume::{DoneStep, HostResume};
use remedy_dsl::{ActionKind, OnFailure, Step};
use remedy_transport::{Transport, TransportError};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

/// After a step: go on with the next one, or stop this host.
enum Next {
    Step,
    Stop,
}

/// One host while its steps run.
struct HostRun<'h> {
    exec: &'h Executor<'h>,
    host: &'h Host,
    /// What the journal says was done before a resume.
    resumed: Option<&'h HostResume>,
    transport: Box<dyn Transport>,
    bindings: Bindings,
    report: HostReport,
    /// Steps that changed the host, with their backups, for rollback.
    applied: Vec<(usize, Vec<BackupRecord>)>,
    /// `host.skip` ran: why, for the steps after it.
    skipping: Option<String>,
    any_failed: bool,
}

fn host_report(host: &Host, status: HostStatus) -> HostReport {
    HostReport {
        host: host.name.clone(),
        status,
        steps: Vec::new(),
        error: None,
        hint: None,
    }
}

impl Executor<'_> {
    pub(super) async fn run_host(&self, host: &Host) -> HostReport {
        let resumed = self
            .options
            .resume
            .as_ref()
            .and_then(|r| r.hosts.get(&host.name));
        if let Some(status) = resumed.and_then(|r| r.finished) {
            let mut report = host_report(host, status);
            report.hint = Some("finished before the run was resumed".into());
            return report;
        }
        let _ = self.emit(Some(&host.name), None, EventKind::HostStarted);
        let transport = match self.connector.connect(host).await {
            Ok(t) => t,
            Err(e) => return self.unreachable(host, e),
        };
        let mut run = HostRun {
            exec: self,
            host,
            resumed,
            transport,
            bindings: Bindings {
                source: self.runbook.source.clone(),
                params: self.run.params.clone(),
                host: self.host_json(host),
                steps: BTreeMap::new(),
                taint: Taint {
                    secrets: self.run.secrets.clone(),
                    steps: BTreeMap::new(),
                    derived: self.run.derived.clone(),
                },
            },
            report: host_report(host, HostStatus::Unchanged),
            applied: Vec::new(),
            skipping: None,
            any_failed: false,
        };
        if resumed.is_some_and(|r| r.rolling_back) {
            run.finish_cut_off_rollback().await;
        } else {
            run.steps().await;
            run.settle_status();
        }
        let _ = self.emit(
            Some(&host.name),
            None,
            EventKind::HostFinished {
                status: run.report.status.name().into(),
            },
        );
        run.report
    }

    fn unreachable(&self, host: &Host, e: TransportError) -> HostReport {
        let mut report = host_report(host, HostStatus::Failed);
        report.error = Some(e.to_string());
        report.hint = Some("check the host's address, port and transport in the inventory".into());
        let _ = self.emit(
            Some(&host.name),
            None,
            EventKind::HostFinished {
                status: "failed".into(),
            },
        );
        report
    }
}

impl HostRun<'_> {
    /// Every step in order, until one stops the host.
    async fn steps(&mut self) {
        let exec = self.exec;
        for step in &exec.runbook.steps {
            // Before it runs: its own expressions read the secret it taints.
            self.bindings.taint.step(step);
            if let Some(done) = self.resumed.and_then(|r| r.done.get(&step.id)) {
                self.replay(step, done);
                continue;
            }
            if let Some(reason) = self.skipping.clone() {
                self.skip(step, &reason);
                continue;
            }
            if exec.cancel.load(Ordering::SeqCst) {
                self.report.status = HostStatus::Interrupted;
                self.report.error = Some(format!("interrupted before step `{}`", step.id));
                break;
            }
            // A step cut off before it ended keeps the backups it took
            // then: they hold the bytes from before the run (a new backup
            // would hold whatever a cut-off apply left).
            let prior = self.prior_backups(step);
            let end = StepRun::new(
                exec,
                step,
                self.host,
                self.transport.as_ref(),
                &mut self.bindings,
            )
            .run(prior)
            .await;
            if let Next::Stop = self.after(step, end).await {
                break;
            }
        }
    }

    fn prior_backups(&self, step: &Step) -> Vec<BackupRecord> {
        self.resumed
            .and_then(|r| r.backups.get(&step.id).cloned())
            .unwrap_or_default()
    }

    /// A step the journal says ended before the resume: its result, as then.
    fn replay(&mut self, step: &Step, done: &DoneStep) {
        self.bindings
            .register(&step.id, StepValue::Known(done.result.clone()));
        let mut r = StepReport::new(
            &step.id,
            step.action.name(),
            done.status,
            "done before the run was resumed",
        );
        r.result = Some(done.result.clone());
        r.backups = self.prior_backups(step);
        if needs_undo(&r) {
            self.applied
                .push((self.report.steps.len(), r.backups.clone()));
        }
        if step.action == ActionKind::HostSkip && done.status != StepStatus::Skipped {
            self.skipping = Some(done.result["reason"].as_str().unwrap_or("").to_string());
        }
        self.report.steps.push(r);
    }

    /// After `host.skip`, the host's remaining steps do not run.
    fn skip(&mut self, step: &Step, reason: &str) {
        self.bindings
            .register(&step.id, StepValue::Known(skipped_result(step.action)));
        self.report.steps.push(StepReport::new(
            &step.id,
            step.action.name(),
            StepStatus::Skipped,
            format!("host skipped: {reason}"),
        ));
    }

    async fn after(&mut self, step: &Step, end: StepEnd) -> Next {
        match end {
            StepEnd::Done(r) => {
                if needs_undo(&r) {
                    self.applied
                        .push((self.report.steps.len(), r.backups.clone()));
                }
                self.report.steps.push(r);
                Next::Step
            }
            StepEnd::SkipHost(r) => {
                self.skipping = r
                    .result
                    .as_ref()
                    .and_then(|v| v["reason"].as_str().map(str::to_string))
                    .or(Some(String::new()));
                self.report.steps.push(r);
                Next::Step
            }
            StepEnd::Failed(r, err) => self.failed(step, r, err).await,
        }
    }

    /// A failed step: record it, then do what its `on_failure` (or the
    /// runbook's) says.
    async fn failed(&mut self, step: &Step, mut r: StepReport, err: ActionError) -> Next {
        let policy = step.on_failure.unwrap_or(self.exec.runbook.on_failure);
        // A handled failure is the runbook's to answer (a fallback): the
        // steps that answer it decide how the host ends.
        self.any_failed |= policy != OnFailure::Handled;
        r.error = Some(err.to_string());
        r.hint = err.hint().map(str::to_string);
        let _ = self.exec.emit(
            Some(&self.host.name),
            Some(&step.id),
            EventKind::StepFailed {
                error: err.to_string(),
            },
        );
        if !r.backups.is_empty() {
            self.applied
                .push((self.report.steps.len(), r.backups.clone()));
        }
        if policy != OnFailure::Handled {
            self.report.error = Some(format!("step `{}` failed: {err}", step.id));
            self.report.hint = r.hint.clone();
        }
        self.report.steps.push(r);
        if self.exec.options.dry_run && policy != OnFailure::Handled {
            // A dry-run shows every host's full plan; a failing check makes
            // later plans meaningless, so stop here.
            self.report.status = HostStatus::Failed;
            return Next::Stop;
        }
        match policy {
            OnFailure::Continue | OnFailure::Handled => {
                let value = failed_result(step.action, &err.to_string());
                // A dry-run records nothing as done: it goes on only so the
                // plan shows the way a handled failure takes.
                if !self.exec.options.dry_run {
                    let _ = self.exec.emit(
                        Some(&self.host.name),
                        Some(&step.id),
                        EventKind::StepDone {
                            status: StepStatus::Failed,
                            result: value.clone(),
                        },
                    );
                }
                self.bindings.register(&step.id, StepValue::Known(value));
                Next::Step
            }
            OnFailure::Stop => {
                self.report.status = HostStatus::Failed;
                Next::Stop
            }
            OnFailure::Rollback => {
                self.roll_back(&step.id).await;
                Next::Stop
            }
        }
    }

    /// Roll back after `failed_step`. The failure may have been the
    /// connection itself: ask the connector again (a live connection is
    /// reused, a dead one replaced) before restoring.
    async fn roll_back(&mut self, failed_step: &str) {
        let fresh = match self.exec.connector.connect(self.host).await {
            Ok(t) => Some(t),
            Err(e) => {
                self.report.error = Some(format!(
                    "{}; and cannot reconnect to roll back: {e}",
                    self.report.error.clone().unwrap_or_default()
                ));
                None
            }
        };
        let t = fresh.as_deref().unwrap_or(self.transport.as_ref());
        self.report.status = self
            .exec
            .rollback(
                self.host,
                t,
                &mut self.report,
                &self.applied,
                failed_step,
                &self.bindings,
            )
            .await;
    }

    /// The process died while undoing this host, or the undo failed (the
    /// host stopped answering): restore every backup it recorded again
    /// (restoring is idempotent), newest first.
    async fn finish_cut_off_rollback(&mut self) {
        let (exec, Some(r)) = (self.exec, self.resumed) else {
            return;
        };
        for step in &exec.runbook.steps {
            let done = r
                .done
                .get(&step.id)
                .filter(|d| d.status == StepStatus::Changed);
            let mut s = StepReport::new(&step.id, step.action.name(), StepStatus::Changed, "");
            s.backups = r.backups.get(&step.id).cloned().unwrap_or_default();
            s.result = done.map(|d| d.result.clone());
            if needs_undo(&s) {
                self.applied
                    .push((self.report.steps.len(), s.backups.clone()));
                self.report.steps.push(s);
            }
        }
        self.report.error = Some(
            "the rollback of this host did not finish (the run was cut off, or the host stopped answering): retried".into(),
        );
        self.report.status = self
            .exec
            .rollback(
                self.host,
                self.transport.as_ref(),
                &mut self.report,
                &self.applied,
                "(resumed)",
                &self.bindings,
            )
            .await;
    }

    /// The host's status from its steps, unless a stage already set one.
    fn settle_status(&mut self) {
        if self.report.status != HostStatus::Unchanged {
            return;
        }
        let changed = self.report.steps.iter().any(StepReport::changes_host);
        self.report.status = if self.any_failed {
            HostStatus::Failed
        } else if self.skipping.is_some() && !changed {
            HostStatus::Skipped
        } else if changed && self.exec.options.dry_run {
            HostStatus::WouldChange
        } else if changed {
            HostStatus::Changed
        } else {
            HostStatus::Unchanged
        };
    }
}
