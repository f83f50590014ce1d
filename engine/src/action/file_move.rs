//! `file.move`: move a file, e.g. a static-pod manifest out of the manifests
//! directory (the kubelet stops the pod) and back (it starts again).
//! Already moved is a no-op, so a resumed run can repeat it.

use super::{result, Action, ActionError, StepCtx};
use crate::plan::{Change, Plan};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileMove {
    from: String,
    to: String,
}

#[async_trait]
impl Action for FileMove {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        let t = ctx.transport;
        let fields = json!({ "from": self.from, "to": self.to });
        match (t.stat(&self.from).await?, t.stat(&self.to).await?) {
            (Some(_), None) => Ok(Plan {
                summary: format!("move {} -> {}", self.from, self.to),
                changes: vec![Change::Move {
                    from: self.from.clone(),
                    to: self.to.clone(),
                }],
                modifies: vec![self.from.clone(), self.to.clone()],
                result: None,
            }),
            (None, Some(_)) => Ok(Plan::noop(
                format!("{} is already at {}", self.from, self.to),
                result(false, fields),
            )),
            (Some(_), Some(_)) => Err(ActionError::precondition(
                format!(
                    "both {} and {} exist on {}: refusing to overwrite",
                    self.from, self.to, ctx.host.name
                ),
                format!(
                    "compare the two files and remove the stale one by hand (diff {} {})",
                    self.from, self.to
                ),
            )),
            (None, None) => Err(ActionError::precondition(
                format!(
                    "{} does not exist on {} (and neither does {})",
                    self.from, ctx.host.name, self.to
                ),
                "check the path and the host's vars",
            )),
        }
    }

    async fn apply(&self, ctx: &StepCtx<'_>, _plan: &Plan) -> Result<Value, ActionError> {
        let t = ctx.transport;
        if t.stat(&self.from).await?.is_none() && t.stat(&self.to).await?.is_some() {
            return Ok(result(false, json!({ "from": self.from, "to": self.to })));
        }
        if let Some((parent, _)) = self.to.rsplit_once('/') {
            if !parent.is_empty() {
                t.mkdir_p(parent).await?;
            }
        }
        t.rename(&self.from, &self.to).await?;
        Ok(result(true, json!({ "from": self.from, "to": self.to })))
    }
}
