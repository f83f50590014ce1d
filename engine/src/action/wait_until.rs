//! `wait.until`: poll a read-only probe until a Rhai condition over its
//! result holds, reporting progress on the way. The plan probes once and says
//! whether a wait is needed.

use super::{result, Action, ActionError, Secs, StepCtx};
use crate::eval::{short, Resolved};
use crate::plan::{Change, Plan};
use async_trait::async_trait;
use remedy_dsl::runbook::ArgValue;
use remedy_dsl::Expr;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitUntil {
    command: String,
    /// The text; the compiled expression comes from the step.
    #[allow(dead_code)]
    condition: String,
    interval: Option<Secs>,
    timeout: Option<Secs>,
}

impl WaitUntil {
    fn condition<'a>(&self, ctx: &'a StepCtx<'_>) -> Result<&'a Expr, ActionError> {
        match ctx.step.arg("condition") {
            Some(ArgValue::Expr(e)) => Ok(e),
            _ => Err(ActionError::BadArguments {
                action: "wait.until",
                message: "`condition` must be a Rhai expression".into(),
            }),
        }
    }

    /// Probe once: (condition holds?, the probe's result).
    async fn probe(&self, ctx: &StepCtx<'_>) -> Result<(Option<bool>, Value), ActionError> {
        let out = ctx
            .transport
            .probe(&self.command, ctx.command_timeout)
            .await?;
        let value = json!({ "rc": out.status, "stdout": out.stdout, "stderr": out.stderr });
        let holds = holds(ctx, self.condition(ctx)?, &value)?;
        Ok((holds, value))
    }

    fn limits(&self) -> (Duration, Duration) {
        limits(self.interval, self.timeout)
    }
}

/// Whether a wait's Rhai `condition` holds over `value`: `None` while it
/// cannot be known yet; an error when it is not a boolean.
pub(super) fn holds(
    ctx: &StepCtx<'_>,
    condition: &Expr,
    value: &Value,
) -> Result<Option<bool>, ActionError> {
    match ctx.bindings.eval(condition, Some(value))? {
        Resolved::Known(Value::Bool(b)) => Ok(Some(b)),
        Resolved::Known(other) => Err(ActionError::failed(format!(
            "condition `{}` must be true or false, but is {}",
            condition.text,
            short(&other)
        ))),
        Resolved::Unknown { .. } => Ok(None),
    }
}

/// A wait's poll interval (default 2 s, at least 1 s) and bound (default 5 min).
pub(super) fn limits(interval: Option<Secs>, timeout: Option<Secs>) -> (Duration, Duration) {
    (
        Duration::from_secs(interval.map_or(2, |s| s.0).max(1)),
        Duration::from_secs(timeout.map_or(300, |s| s.0)),
    )
}

#[async_trait]
impl Action for WaitUntil {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        let cond = &self.condition(ctx)?.text;
        let (holds, value) = self.probe(ctx).await?;
        if holds == Some(true) {
            let mut fields = value;
            fields["attempts"] = json!(1);
            fields["waited"] = json!(0);
            return Ok(Plan::noop(
                format!("`{cond}` already holds"),
                result(false, fields),
            ));
        }
        let (_, timeout) = self.limits();
        Ok(Plan {
            summary: format!("wait until `{cond}`"),
            changes: vec![Change::Note {
                text: format!(
                    "would poll `{}` until `{cond}` (up to {}; it does not hold now)",
                    self.command,
                    remedy_dsl::param::format_duration(timeout.as_secs() as i64)
                ),
            }],
            modifies: Vec::new(),
            result: None,
        })
    }

    async fn apply(&self, ctx: &StepCtx<'_>, _plan: &Plan) -> Result<Value, ActionError> {
        let (interval, timeout) = self.limits();
        let cond = self.condition(ctx)?.text.clone();
        let start = ctx.clock.now();
        let mut attempts = 0u64;
        loop {
            attempts += 1;
            let (holds, mut value) = self.probe(ctx).await?;
            let waited = ctx.clock.now().duration_since(start).unwrap_or_default();
            if holds == Some(true) {
                value["attempts"] = json!(attempts);
                value["waited"] = json!(waited.as_secs());
                return Ok(result(false, value));
            }
            if waited >= timeout {
                let last = value["stdout"]
                    .as_str()
                    .map(super::tail)
                    .unwrap_or_default();
                return Err(ActionError::Failed {
                    message: format!("`{cond}` still false after {} ({attempts} probes of `{}`); last output: {}", remedy_dsl::param::format_duration(waited.as_secs() as i64), self.command, if last.is_empty() { "(none)".into() } else { last }),
                    hint: Some("look at the component on the host; raise `timeout` if it is just slow".into()),
                });
            }
            (ctx.progress)(&format!("waiting until `{cond}`"), waited.as_secs());
            ctx.clock.sleep(interval).await;
        }
    }
}
