//! `kube.wait`: read one object until a status condition is True, or a
//! Rhai condition over it holds (`result.object`, `result.exists`),
//! reporting progress on the way. Read-only; the plan reads once and says
//! whether a wait is needed.

use super::kube::connect;
use super::wait_until;
use super::{result, Action, ActionError, Secs, StepCtx};
use crate::plan::{Change, Plan};
use async_trait::async_trait;
use remedy_dsl::runbook::ArgValue;
use remedy_k8s::{Kube, ObjectRef};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeWait {
    api_version: Option<String>,
    kind: String,
    namespace: Option<String>,
    name: String,
    status_condition: Option<String>,
    /// The text; the compiled expression comes from the step.
    #[allow(dead_code)]
    condition: Option<String>,
    interval: Option<Secs>,
    timeout: Option<Secs>,
}

impl KubeWait {
    fn reference(&self) -> ObjectRef {
        ObjectRef {
            api_version: self.api_version.clone().unwrap_or_else(|| "v1".into()),
            kind: self.kind.clone(),
            namespace: self.namespace.clone().filter(|s| !s.is_empty()),
            name: self.name.clone(),
        }
    }

    /// What is waited for, in words.
    fn what(&self, ctx: &StepCtx<'_>) -> Result<String, ActionError> {
        match (&self.status_condition, ctx.step.arg("condition")) {
            (Some(c), _) => Ok(format!("condition {c} is True")),
            (None, Some(ArgValue::Expr(e))) => Ok(format!("`{}`", e.text)),
            (None, _) => Err(ActionError::BadArguments {
                action: "kube.wait",
                message: "give `status_condition` (e.g. Available) or `condition` (Rhai over result.object)".into(),
            }),
        }
    }

    /// Read once: (holds?, the result value).
    async fn read(
        &self,
        ctx: &StepCtx<'_>,
        kube: &Kube,
    ) -> Result<(Option<bool>, Value), ActionError> {
        let obj = kube.get(&self.reference()).await?;
        let value = json!({ "object": obj, "exists": obj.is_some() });
        if let Some(c) = &self.status_condition {
            let holds = obj.as_ref().is_some_and(|o| {
                o["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|x| x["type"] == c.as_str() && x["status"] == "True")
            });
            return Ok((Some(holds), value));
        }
        let Some(ArgValue::Expr(expr)) = ctx.step.arg("condition") else {
            return Ok((None, value));
        };
        Ok((wait_until::holds(ctx, expr, &value)?, value))
    }

    fn limits(&self) -> (Duration, Duration) {
        wait_until::limits(self.interval, self.timeout)
    }
}

#[async_trait]
impl Action for KubeWait {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        let what = self.what(ctx)?;
        let kube = connect(ctx).await?;
        let (holds, mut value) = self.read(ctx, &kube).await?;
        let r = self.reference();
        if holds == Some(true) {
            value["attempts"] = json!(1);
            value["waited"] = json!(0);
            return Ok(Plan::noop(
                format!("{r}: {what} already"),
                result(false, value),
            ));
        }
        let (_, timeout) = self.limits();
        Ok(Plan {
            summary: format!("wait until {r}: {what}"),
            changes: vec![Change::Note {
                text: format!(
                    "would read {r} until {what} (up to {}; it does not hold now)",
                    remedy_dsl::param::format_duration(timeout.as_secs() as i64)
                ),
            }],
            modifies: Vec::new(),
            result: None,
        })
    }

    async fn apply(&self, ctx: &StepCtx<'_>, _plan: &Plan) -> Result<Value, ActionError> {
        let what = self.what(ctx)?;
        let (interval, timeout) = self.limits();
        let kube = connect(ctx).await?;
        let r = self.reference();
        let start = ctx.clock.now();
        let mut attempts = 0u64;
        loop {
            attempts += 1;
            // A read that times out is one more attempt, not the end: the
            // server may be coming back.
            let read = self.read(ctx, &kube).await;
            let waited = ctx.clock.now().duration_since(start).unwrap_or_default();
            let last = match read {
                Ok((Some(true), mut value)) => {
                    value["attempts"] = json!(attempts);
                    value["waited"] = json!(waited.as_secs());
                    return Ok(result(false, value));
                }
                Ok(_) => "it does not hold".to_string(),
                Err(ActionError::Kube(e)) if e.retryable() => e.to_string(),
                Err(e) => return Err(e),
            };
            if waited >= timeout {
                return Err(ActionError::Failed {
                    message: format!(
                        "{r}: {what} still not so after {} ({attempts} reads; last: {last})",
                        remedy_dsl::param::format_duration(waited.as_secs() as i64)
                    ),
                    hint: Some("look at the object (kube.get) and its controller; raise `timeout` if it is just slow".into()),
                });
            }
            (ctx.progress)(&format!("{r}: {what}"), waited.as_secs());
            ctx.clock.sleep(interval).await;
        }
    }
}
