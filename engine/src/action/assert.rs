//! `assert`: fail the host unless a condition holds. Checked while planning
//! too, so a dry-run shows a host that would fail.

use super::{result, Action, ActionError, StepCtx};
use crate::plan::{Change, Plan};
use async_trait::async_trait;
use remedy_dsl::runbook::ArgValue;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assert {
    #[allow(dead_code)]
    that: String,
    message: Option<String>,
}

impl Assert {
    fn check(&self, ctx: &StepCtx<'_>) -> Result<Option<bool>, ActionError> {
        let Some(ArgValue::Expr(e)) = ctx.step.arg("that") else {
            return Err(ActionError::BadArguments {
                action: "assert",
                message: "`that` must be a Rhai expression".into(),
            });
        };
        let holds = ctx.bindings.eval_bool(e, None)?;
        if holds == Some(false) {
            return Err(ActionError::Failed {
                message: self
                    .message
                    .clone()
                    .unwrap_or_else(|| format!("assertion `{}` is false", e.text)),
                hint: None,
            });
        }
        Ok(holds)
    }
}

#[async_trait]
impl Action for Assert {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        match self.check(ctx)? {
            Some(_) => Ok(Plan::noop("assertion holds", result(false, json!({})))),
            None => Ok(Plan {
                summary: "assertion checked when run".into(),
                changes: vec![Change::Note {
                    text: "depends on values only a real run produces".into(),
                }],
                modifies: Vec::new(),
                result: None,
            }),
        }
    }

    async fn apply(&self, ctx: &StepCtx<'_>, _plan: &Plan) -> Result<Value, ActionError> {
        self.check(ctx)?;
        Ok(result(false, json!({})))
    }
}
