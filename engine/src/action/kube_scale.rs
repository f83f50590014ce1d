//! `kube.scale`: set a Deployment's or StatefulSet's replicas through its
//! scale subresource, conditional on the version the plan saw. The prior
//! replicas are in the result; the engine backs the whole object up, so
//! rollback puts the replicas back with the rest of it.

use super::kube::{connect, object_diff, write_unchanged};
use super::{result, Action, ActionError, StepCtx};
use crate::plan::{Change, Plan};
use async_trait::async_trait;
use remedy_k8s::{content_sha256, resource_version, ObjectRef};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeScale {
    api_version: Option<String>,
    kind: String,
    namespace: Option<String>,
    name: String,
    replicas: i64,
}

impl KubeScale {
    fn reference(&self) -> Result<ObjectRef, ActionError> {
        if !matches!(
            self.kind.as_str(),
            "Deployment" | "StatefulSet" | "ReplicaSet"
        ) {
            return Err(ActionError::BadArguments {
                action: "kube.scale",
                message: format!(
                    "`kind` is {}; it must be Deployment or StatefulSet",
                    self.kind
                ),
            });
        }
        if self.replicas < 0 {
            return Err(ActionError::BadArguments {
                action: "kube.scale",
                message: format!("`replicas` is {}; it cannot be negative", self.replicas),
            });
        }
        Ok(ObjectRef {
            api_version: self.api_version.clone().unwrap_or_else(|| "apps/v1".into()),
            kind: self.kind.clone(),
            namespace: self.namespace.clone().filter(|s| !s.is_empty()),
            name: self.name.clone(),
        })
    }
}

/// `spec.replicas` (1 when unset, as the API defaults it).
fn replicas(obj: &Value) -> i64 {
    obj["spec"]["replicas"].as_i64().unwrap_or(1)
}

#[async_trait]
impl Action for KubeScale {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        let r = self.reference()?;
        let kube = connect(ctx).await?;
        let Some(live) = kube.get(&r).await? else {
            return Err(ActionError::precondition(
                format!("{r} does not exist on {}", kube.server()),
                "check its name and namespace",
            ));
        };
        let prior = replicas(&live);
        let fields = json!({ "prior_replicas": prior, "replicas": self.replicas });
        if prior == self.replicas {
            return Ok(Plan::noop(
                format!("{r} already has {prior} replica(s)"),
                result(false, fields),
            ));
        }
        let rv = resource_version(&live);
        kube.scale(&r, self.replicas, rv.as_deref(), true).await?;
        let mut after = live.clone();
        after["spec"]["replicas"] = json!(self.replicas);
        Ok(Plan {
            summary: format!("scale {r} from {prior} to {} replica(s)", self.replicas),
            changes: vec![Change::Object {
                object: r.clone(),
                op: "scale".into(),
                resource_version: rv,
                content_sha256: Some(content_sha256(&live)),
                diff: object_diff(&r, Some(&live), Some(&after)),
            }],
            modifies: Vec::new(),
            result: None,
        })
    }

    async fn apply(&self, ctx: &StepCtx<'_>, plan: &Plan) -> Result<Value, ActionError> {
        let r = self.reference()?;
        let kube = connect(ctx).await?;
        let replicas_wanted = self.replicas;
        let written = write_unchanged(&kube, &plan.changes, &r, |rv| {
            let (kube, r) = (&kube, &r);
            async move { kube.scale(r, replicas_wanted, rv.as_deref(), false).await }
        })
        .await?;
        let prior = match written {
            Some((Some(before), _)) => replicas(&before),
            _ => {
                return Err(ActionError::failed(format!(
                    "{r} was deleted after the plan"
                )))
            }
        };
        Ok(result(
            true,
            json!({ "prior_replicas": prior, "replicas": self.replicas }),
        ))
    }
}
