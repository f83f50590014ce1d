//! One step on one host, as a sequence of stages: `when` → resolve `with` →
//! plan (read-only) → [a dry-run reports here] → approve → back up → intent →
//! apply → `until` (retrying) → `assert` → register the result. A stage that
//! ends the step early returns how it ended as its error, so [`StepRun::run`]
//! and [`StepRun::attempt`] read as the list of stages.

use super::{Executor, StepEnd};
use crate::action::{instantiate, result, skipped_result, Action, ActionError, StepCtx};
use crate::backup::BackupRecord;
use crate::eval::{Bindings, Resolved, StepValue};
use crate::event::EventKind;
use crate::inventory::Host;
use crate::plan::Plan;
use crate::report::{StepReport, StepStatus};
use remedy_dsl::runbook::ArgValue;
use remedy_dsl::{ActionKind, ArgKind, Step};
use remedy_transport::{ReadOnly, Transport};
use serde_json::{Map, Value};
use std::time::Duration;

/// One step on one host while it runs.
pub(super) struct StepRun<'s> {
    exec: &'s Executor<'s>,
    step: &'s Step,
    host: &'s Host,
    transport: &'s dyn Transport,
    bindings: &'s mut Bindings,
    /// Limit for one command: the step's `timeout`, else the run's.
    command_timeout: Duration,
    /// Set when `when` could not be decided in a dry-run.
    when_note: Option<String>,
    /// Backups taken (or reused from a cut-off attempt) once applying starts.
    backups: Vec<BackupRecord>,
    /// Attempts at applying so far (0 before applying starts).
    attempt: u32,
}

/// Why an attempt at applying the step did not finish it.
enum Stop {
    /// Try again after the step's backoff, for this reason.
    Retry(String),
    /// Approved after a wait: plan again without counting an attempt.
    Replan,
    /// The step is over.
    End(Box<StepEnd>),
}

impl From<StepEnd> for Stop {
    fn from(end: StepEnd) -> Stop {
        Stop::End(Box::new(end))
    }
}

/// A stage's outcome: a value for the next stage, or how the step ended.
type Staged<T> = Result<T, Box<StepEnd>>;

impl<'s> StepRun<'s> {
    pub(super) fn new(
        exec: &'s Executor<'s>,
        step: &'s Step,
        host: &'s Host,
        transport: &'s dyn Transport,
        bindings: &'s mut Bindings,
    ) -> StepRun<'s> {
        let command_timeout = step
            .timeout_secs
            .map(|s| Duration::from_secs(s as u64))
            .unwrap_or(exec.options.command_timeout);
        StepRun {
            exec,
            step,
            host,
            transport,
            bindings,
            command_timeout,
            when_note: None,
            backups: Vec::new(),
            attempt: 0,
        }
    }

    /// The step from start to end. `prior_backups`: what a cut-off earlier
    /// attempt backed up (the bytes from before the run), reused.
    pub(super) async fn run(mut self, prior_backups: Vec<BackupRecord>) -> StepEnd {
        match self.stages(prior_backups).await {
            Ok(end) => end,
            Err(end) => *end,
        }
    }

    async fn stages(&mut self, prior_backups: Vec<BackupRecord>) -> Staged<StepEnd> {
        self.when_note = self.when()?;
        let with = self.resolve()?;
        let action = self.instantiate(with)?;
        let first_plan = self.plan(action.as_ref()).await;
        if let Ok(p) = &first_plan {
            let _ = self.emit(EventKind::StepPlanned { plan: p.clone() });
        }
        if self.exec.options.dry_run {
            return self.report_dry_run(first_plan);
        }
        self.backups = prior_backups;
        Ok(self.apply_with_retries(action.as_ref(), first_plan).await)
    }

    /// Attempts until one finishes the step or the retries run out.
    async fn apply_with_retries(
        &mut self,
        action: &dyn Action,
        first_plan: Result<Plan, ActionError>,
    ) -> StepEnd {
        let mut first_plan = Some(first_plan);
        loop {
            self.attempt += 1;
            match self.attempt(action, first_plan.take()).await {
                Ok(end) => return end,
                Err(Stop::End(end)) => return *end,
                Err(Stop::Replan) => self.attempt -= 1,
                Err(Stop::Retry(reason)) => self.back_off(reason).await,
            }
        }
    }

    /// One attempt, stage by stage.
    async fn attempt(
        &mut self,
        action: &dyn Action,
        first_plan: Option<Result<Plan, ActionError>>,
    ) -> Result<StepEnd, Stop> {
        let plan = self.plan_attempt(action, first_plan).await?;
        self.approve(&plan).await?;
        let value = if plan.is_noop() {
            self.nothing_to_apply(&plan).await
        } else {
            self.back_up(action, &plan).await?;
            self.intent(&plan)?;
            self.apply(action, &plan).await?
        };
        let _ = self.emit(EventKind::StepApplied {
            result: value.clone(),
            attempt: self.attempt,
        });
        self.until(&value, &plan)?;
        self.assert(&value, &plan)?;
        Ok(self.register(value, plan))
    }

    fn emit(&self, kind: EventKind) -> Result<(), String> {
        self.exec
            .emit(Some(&self.host.name), Some(&self.step.id), kind)
    }

    fn report(&self, status: StepStatus, summary: impl Into<String>) -> StepReport {
        StepReport::new(&self.step.id, self.step.action.name(), status, summary)
    }

    /// The step failed: with the backups and attempts so far.
    fn fail(&mut self, summary: &str, err: ActionError) -> StepEnd {
        let mut r = self.report(StepStatus::Failed, summary);
        r.backups = std::mem::take(&mut self.backups);
        r.attempts = self.attempt;
        StepEnd::Failed(r, err)
    }

    /// A failure that keeps the step's last result in its report.
    fn fail_with(&mut self, plan: &Plan, err: ActionError, value: &Value) -> Stop {
        let mut end = self.fail(&plan.summary, err);
        if let StepEnd::Failed(r, _) = &mut end {
            r.result = Some(value.clone());
        }
        end.into()
    }

    /// The plan's summary, with the note on an undecided `when`.
    fn summary(&self, plan: &Plan) -> String {
        match &self.when_note {
            Some(n) => format!("{} ({n})", plan.summary),
            None => plan.summary.clone(),
        }
    }

    /// What the action sees, reporting long waits as events.
    fn ctx<'a>(
        &'a self,
        transport: &'a dyn Transport,
        progress: &'a (dyn Fn(&str, u64) + Send + Sync),
    ) -> StepCtx<'a> {
        self.exec.ctx(
            transport,
            self.host,
            self.step,
            self.bindings,
            progress,
            self.command_timeout,
        )
    }

    fn waiting(&self, what: &str, secs: u64) {
        let _ = self.emit(EventKind::Waiting {
            what: what.to_string(),
            elapsed_secs: secs,
        });
    }

    /// `when`: false skips the step (and says why); unknown in a dry-run is
    /// planned as if true, with a note.
    fn when(&mut self) -> Staged<Option<String>> {
        let Some(when) = &self.step.when else {
            return Ok(None);
        };
        match self.bindings.eval_bool(when, None) {
            Ok(Some(true)) => Ok(None),
            Ok(Some(false)) => {
                let skipped = skipped_result(self.step.action);
                self.bindings
                    .register(&self.step.id, StepValue::Known(skipped.clone()));
                let reason = format!("`when: {}` is false", when.text.trim());
                let _ = self.emit(EventKind::StepSkipped {
                    reason: reason.clone(),
                });
                if !self.exec.options.dry_run {
                    let _ = self.emit(EventKind::StepDone {
                        status: StepStatus::Skipped,
                        result: skipped,
                    });
                }
                Err(StepEnd::Done(self.report(StepStatus::Skipped, reason)).into())
            }
            Ok(None) => Ok(Some(format!(
                "`when: {}` is unknown (set by step {}); planned as if true",
                when.text.trim(),
                when.step_ids().next().unwrap_or("?")
            ))),
            Err(e) => Err(self.fail("`when` could not be evaluated", e.into()).into()),
        }
    }

    /// Resolve `with`; expression arguments stay as text for the action. An
    /// argument only a real run would know defers the step (dry-run only: a
    /// real run registers every result).
    fn resolve(&mut self) -> Staged<Map<String, Value>> {
        let mut with = Map::new();
        let mut unknown = Vec::new();
        for (k, v) in &self.step.with {
            if let ArgValue::Expr(e) = v {
                with.insert(k.clone(), Value::String(e.text.clone()));
                continue;
            }
            match self.bindings.resolve(v) {
                Ok(Resolved::Known(j)) => {
                    let kind = self.step.action.arg(k).map(|a| a.kind);
                    with.insert(k.clone(), coerce(kind, j));
                }
                Ok(Resolved::Unknown { set_by }) => unknown.push((k.clone(), set_by)),
                Err(e) => {
                    return Err(self
                        .fail("arguments could not be evaluated", e.into())
                        .into())
                }
            }
        }
        if unknown.is_empty() {
            return Ok(with);
        }
        let id = self.step.id.clone();
        self.bindings
            .register(&id, StepValue::Unknown { set_by: id.clone() });
        let _ = self.emit(EventKind::StepDeferred {
            unknown: unknown.clone(),
        });
        let list: Vec<String> = unknown
            .iter()
            .map(|(k, s)| format!("`{k}` unknown (set by step {s})"))
            .collect();
        let mut r = self.report(
            StepStatus::Deferred,
            format!("planned when run: {}", list.join(", ")),
        );
        r.unknown = unknown;
        Err(StepEnd::Done(r).into())
    }

    fn instantiate(&mut self, with: Map<String, Value>) -> Staged<Box<dyn Action>> {
        instantiate(self.step.action, Value::Object(with))
            .map_err(|e| self.fail("invalid arguments", e).into())
    }

    /// Plan through a read-only view of the host.
    async fn plan(&self, action: &dyn Action) -> Result<Plan, ActionError> {
        let read_only = ReadOnly::new(self.transport);
        let progress = |what: &str, secs: u64| self.waiting(what, secs);
        action.plan(&self.ctx(&read_only, &progress)).await
    }

    /// A dry-run ends with the plan: its result when knowable (`unknown`
    /// otherwise), and an `assert` it would already fail.
    fn report_dry_run(&mut self, planned: Result<Plan, ActionError>) -> Staged<StepEnd> {
        let plan = planned.map_err(|e| self.fail("planning failed", e))?;
        let status = if plan.is_noop() {
            StepStatus::Unchanged
        } else {
            StepStatus::WouldChange
        };
        let value = plan.result.clone();
        if let (Some(v), Some(a)) = (&value, &self.step.assert) {
            if let Ok(Some(false)) = self.bindings.eval_bool(a, Some(v)) {
                let err = ActionError::failed(format!(
                    "would fail: `assert: {}` is false",
                    a.text.trim()
                ));
                return Err(self.fail(&self.summary(&plan), err).into());
            }
        }
        let id = self.step.id.clone();
        let registered = match &value {
            Some(v) => StepValue::Known(v.clone()),
            None => StepValue::Unknown { set_by: id.clone() },
        };
        self.bindings.register(&id, registered);
        let mut r = self.report(status, self.summary(&plan));
        r.result = value;
        r.plan = Some(plan);
        Ok(self.ended(r))
    }

    /// `host.skip` ends the host's steps; anything else goes on.
    fn ended(&self, r: StepReport) -> StepEnd {
        if self.step.action == ActionKind::HostSkip {
            StepEnd::SkipHost(r)
        } else {
            StepEnd::Done(r)
        }
    }

    async fn back_off(&self, reason: String) {
        let wait = Duration::from_secs(self.step.backoff_secs as u64);
        let _ = self.emit(EventKind::StepRetry {
            attempt: self.attempt,
            wait_secs: wait.as_secs(),
            reason,
        });
        self.exec.clock.sleep(wait).await;
    }

    /// An error that may go away (a connection, a restarting component) is
    /// tried again while the step's retries last.
    fn retry_or_fail(&mut self, summary: &str, e: ActionError) -> Stop {
        if self.attempt <= self.step.retries && e.retryable() {
            Stop::Retry(e.to_string())
        } else {
            self.fail(summary, e).into()
        }
    }

    /// The plan made before the first attempt, or a fresh one (the host may
    /// have changed since). A real run retries a failed plan too: a read-only
    /// probe may fail while a component restarts.
    async fn plan_attempt(
        &mut self,
        action: &dyn Action,
        first_plan: Option<Result<Plan, ActionError>>,
    ) -> Result<Plan, Stop> {
        let planned = match first_plan {
            Some(first) => first,
            None => self.plan(action).await,
        };
        planned.map_err(|e| self.retry_or_fail("planning failed", e))
    }

    /// The run's approval gate for this host or step, right before anything
    /// changes.
    async fn approve(&mut self, plan: &Plan) -> Result<(), Stop> {
        let Some(gate) = self.exec.options.gate.as_ref().filter(|_| !plan.is_noop()) else {
            return Ok(());
        };
        match gate.approve(self.host, &self.step.id, plan).await {
            Ok(false) => Ok(()),
            // Approved after a wait: plan again, and have that plan approved
            // (at once if it is the same).
            Ok(true) => Err(Stop::Replan),
            Err(reason) => {
                let err = ActionError::precondition(
                    format!("not approved: {reason}"),
                    "nothing was changed by this step; ask again with a new run",
                );
                Err(self.fail(&plan.summary, err).into())
            }
        }
    }

    /// A plan with nothing to do still has a result. Resumed after an intent
    /// with no outcome: did the cut-off apply change the host? Its backups
    /// say; a later `when: steps.X.changed` depends on it.
    async fn nothing_to_apply(&self, plan: &Plan) -> Value {
        let mut value = plan
            .result
            .clone()
            .unwrap_or_else(|| result(false, Value::Null));
        let quiet = |_: &str, _: u64| {};
        if self
            .exec
            .changed_since_backups(&self.ctx(self.transport, &quiet), &self.backups)
            .await
        {
            value["changed"] = Value::Bool(true);
        }
        value
    }

    /// Back up what the plan modifies on the host, what the action changes
    /// on the jump host, and the objects the plan changes.
    async fn back_up(&mut self, action: &dyn Action, plan: &Plan) -> Result<(), Stop> {
        let (exec, host, id) = (self.exec, self.host, &self.step.id);
        let mut taken = exec
            .back_up(self.transport, host, id, plan, &mut self.backups)
            .await;
        if taken.is_ok() {
            taken = exec
                .back_up_local(action, id, &mut self.backups, &host.name)
                .await;
        }
        if taken.is_ok() {
            let mut backups = std::mem::take(&mut self.backups);
            let quiet = |_: &str, _: u64| {};
            taken = exec
                .back_up_objects(&self.ctx(self.transport, &quiet), id, plan, &mut backups)
                .await;
            if taken.is_ok() {
                taken = exec
                    .back_up_etcd_keys(&self.ctx(self.transport, &quiet), id, plan, &mut backups)
                    .await;
            }
            self.backups = backups;
        }
        taken.map_err(|e| self.fail(&plan.summary, e).into())
    }

    /// The intent must be on record before anything changes.
    fn intent(&mut self, plan: &Plan) -> Result<(), Stop> {
        let recorded = self.emit(EventKind::StepIntent {
            attempt: self.attempt,
        });
        recorded.map_err(|e| {
            let err = ActionError::precondition(
                format!("could not record the intent to apply: {e}"),
                "nothing was changed; fix the journal and run again",
            );
            self.fail(&plan.summary, err).into()
        })
    }

    /// Apply, within the step's `timeout` when it has one.
    async fn apply(&mut self, action: &dyn Action, plan: &Plan) -> Result<Value, Stop> {
        let outcome = {
            let progress = |what: &str, secs: u64| self.waiting(what, secs);
            let ctx = self.ctx(self.transport, &progress);
            match self.step.timeout_secs {
                Some(secs) => {
                    tokio::time::timeout(Duration::from_secs(secs as u64), action.apply(&ctx, plan))
                        .await
                        .unwrap_or_else(|_| {
                            Err(ActionError::failed(format!(
                                "step did not finish within its timeout of {}",
                                remedy_dsl::param::format_duration(secs)
                            )))
                        })
                }
                None => action.apply(&ctx, plan).await,
            }
        };
        outcome.map_err(|e| self.retry_or_fail(&plan.summary, e))
    }

    /// `until`: false tries again while retries last.
    fn until(&mut self, value: &Value, plan: &Plan) -> Result<(), Stop> {
        let Some(until) = &self.step.until else {
            return Ok(());
        };
        match self.bindings.eval_bool(until, Some(value)) {
            Ok(Some(true)) => Ok(()),
            Ok(_) if self.attempt <= self.step.retries => Err(Stop::Retry(format!(
                "`until: {}` is false",
                until.text.trim()
            ))),
            Ok(_) => {
                let err = ActionError::Failed {
                    message: format!(
                        "`until: {}` still false after {} attempt(s)",
                        until.text.trim(),
                        self.attempt
                    ),
                    hint: Some("raise `retries`/`backoff` if the host is just slow, or look at the step's last result".into()),
                };
                Err(self.fail_with(plan, err, value))
            }
            Err(e) => Err(self.fail(&plan.summary, e.into()).into()),
        }
    }

    /// `assert`: false fails the step, with its result kept for the report.
    fn assert(&mut self, value: &Value, plan: &Plan) -> Result<(), Stop> {
        if let Some(assert) = &self.step.assert {
            match self.bindings.eval_bool(assert, Some(value)) {
                Ok(Some(true)) => {}
                Ok(_) => {
                    let err =
                        ActionError::failed(format!("`assert: {}` is false", assert.text.trim()));
                    return Err(self.fail_with(plan, err, value));
                }
                Err(e) => return Err(self.fail(&plan.summary, e.into()).into()),
            }
        }
        if self.step.until.is_some() || self.step.assert.is_some() {
            let _ = self.emit(EventKind::StepVerified);
        }
        Ok(())
    }

    /// The result is what later steps see as `steps.<id>`; `step_done` is
    /// durable before the next step starts, so `resume` skips this one.
    fn register(&mut self, value: Value, plan: Plan) -> StepEnd {
        self.bindings
            .register(&self.step.id, StepValue::Known(value.clone()));
        let status = if value["changed"].as_bool().unwrap_or(false) {
            StepStatus::Changed
        } else {
            StepStatus::Unchanged
        };
        let _ = self.emit(EventKind::StepDone {
            status,
            result: value.clone(),
        });
        let mut r = self.report(status, self.summary(&plan));
        r.result = Some(value);
        r.backups = std::mem::take(&mut self.backups);
        r.attempts = self.attempt;
        r.plan = Some(plan);
        self.ended(r)
    }
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
        (Some(ArgKind::Str | ArgKind::Command), v) => text(v),
        (Some(ArgKind::StrList), Value::Array(items)) => {
            Value::Array(items.into_iter().map(text).collect())
        }
        (Some(ArgKind::StrMap), Value::Object(m)) => {
            Value::Object(m.into_iter().map(|(k, v)| (k, text(v))).collect())
        }
        (_, v) => v,
    }
}
