//! `script`: compute in Rhai. Scripts decide, actions act: a script has no
//! I/O, so it runs in a dry-run as well; its returned map is the step result.

use super::{result, Action, ActionError, StepCtx};
use crate::eval::Resolved;
use crate::plan::{Change, Plan};
use async_trait::async_trait;
use remedy_dsl::runbook::ArgValue;
use serde_json::{json, Value};

pub struct Script;

impl Script {
    fn run(&self, ctx: &StepCtx<'_>) -> Result<Option<Value>, ActionError> {
        let Some(ArgValue::Expr(code)) = ctx.step.arg("code") else {
            return Err(ActionError::BadArguments {
                action: "script",
                message: "missing `code`".into(),
            });
        };
        Ok(match ctx.bindings.eval(code, None)? {
            Resolved::Unknown { .. } => None,
            Resolved::Known(Value::Object(m)) => Some(result(false, Value::Object(m))),
            Resolved::Known(Value::Null) => Some(result(false, json!({}))),
            Resolved::Known(other) => Some(result(false, json!({ "value": other }))),
        })
    }
}

#[async_trait]
impl Action for Script {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        match self.run(ctx)? {
            Some(value) => Ok(Plan::noop("script evaluated", value)),
            None => Ok(Plan {
                summary: "script runs when its inputs are known".into(),
                changes: vec![Change::Note {
                    text: "reads results only a real run produces".into(),
                }],
                modifies: Vec::new(),
                result: None,
            }),
        }
    }

    async fn apply(&self, ctx: &StepCtx<'_>, _plan: &Plan) -> Result<Value, ActionError> {
        self.run(ctx)?
            .ok_or_else(|| ActionError::failed("script inputs are still unknown"))
    }
}
