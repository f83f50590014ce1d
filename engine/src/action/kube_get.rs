//! `kube.get`: objects by kind and name, or by label selector, from the API
//! server; the result (`objects`, `object`, `count`) is what later steps'
//! Rhai sees. Read-only, so a dry-run knows it.

use super::kube::connect;
use super::{result, Action, ActionError, StepCtx};
use crate::plan::Plan;
use async_trait::async_trait;
use remedy_k8s::ObjectRef;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeGet {
    api_version: Option<String>,
    kind: String,
    namespace: Option<String>,
    name: Option<String>,
    selector: Option<String>,
}

impl KubeGet {
    async fn read(&self, ctx: &StepCtx<'_>) -> Result<(String, Value), ActionError> {
        let kube = connect(ctx).await?;
        let api_version = self.api_version.clone().unwrap_or_else(|| "v1".into());
        let namespace = self.namespace.clone().filter(|s| !s.is_empty());
        let (objects, object) = match self.name.as_deref().filter(|s| !s.is_empty()) {
            Some(name) => {
                let r = ObjectRef {
                    api_version: api_version.clone(),
                    kind: self.kind.clone(),
                    namespace,
                    name: name.to_string(),
                };
                let found = kube.get(&r).await?;
                (found.iter().cloned().collect::<Vec<_>>(), found)
            }
            None => (
                kube.list(
                    &api_version,
                    &self.kind,
                    namespace.as_deref(),
                    self.selector.as_deref(),
                )
                .await?,
                None,
            ),
        };
        let what = match (&self.name, &self.selector) {
            (Some(n), _) => format!("{} {n}", self.kind),
            (None, Some(s)) => format!("{} matching `{s}`", self.kind),
            (None, None) => format!("every {}", self.kind),
        };
        let summary = format!("{what}: {} found on {}", objects.len(), kube.server());
        Ok((
            summary,
            result(
                false,
                json!({
                    "count": objects.len(),
                    "objects": objects,
                    "object": object,
                    "server": kube.server(),
                }),
            ),
        ))
    }
}

#[async_trait]
impl Action for KubeGet {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        let (summary, value) = self.read(ctx).await?;
        Ok(Plan::noop(summary, value))
    }

    async fn apply(&self, ctx: &StepCtx<'_>, _plan: &Plan) -> Result<Value, ActionError> {
        Ok(self.read(ctx).await?.1)
    }
}
