//! `host.skip`: this host needs nothing more; its remaining steps are skipped
//! and it counts as a success (e.g. certificates still fresh).

use super::{result, Action, ActionError, StepCtx};
use crate::plan::Plan;
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSkip {
    reason: String,
}

#[async_trait]
impl Action for HostSkip {
    async fn plan(&self, _ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        Ok(Plan::noop(
            format!("skip host: {}", self.reason),
            result(false, json!({ "reason": self.reason })),
        ))
    }

    async fn apply(&self, _ctx: &StepCtx<'_>, _plan: &Plan) -> Result<Value, ActionError> {
        Ok(result(false, json!({ "reason": self.reason })))
    }
}
