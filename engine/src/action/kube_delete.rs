//! `kube.delete`: delete one object or several, with the propagation
//! policy said explicitly (what happens to dependents is never a default).
//! The plan shows each object as it is; deletion is conditional on the
//! version the plan saw, and all or none: when one fails, those already
//! deleted are re-created before the step fails. The engine backs each
//! object up first, and rollback re-creates it without the fields the
//! server sets.

use super::kube::{connect, object_diff, put_back, targets, write_unchanged, Target};
use super::{result, Action, ActionError, StepCtx};
use crate::plan::{Change, Plan};
use async_trait::async_trait;
use remedy_k8s::{content_sha256, resource_version, ObjectRef, PROPAGATION_POLICIES};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeDelete {
    api_version: Option<String>,
    kind: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
    objects: Option<Value>,
    propagation: String,
}

const ACTION: &str = "kube.delete";

impl KubeDelete {
    fn refs(&self) -> Result<Vec<ObjectRef>, ActionError> {
        if !PROPAGATION_POLICIES.contains(&self.propagation.as_str()) {
            return Err(ActionError::BadArguments {
                action: ACTION,
                message: format!(
                    "`propagation` is `{}`; it must be one of {}",
                    self.propagation,
                    PROPAGATION_POLICIES.join(", ")
                ),
            });
        }
        let single = Target {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            patch: None,
        };
        targets(ACTION, single, &self.objects)?
            .iter()
            .map(|t| t.reference(ACTION, "v1"))
            .collect()
    }
}

#[async_trait]
impl Action for KubeDelete {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        let refs = self.refs()?;
        let kube = connect(ctx).await?;
        let mut changes = Vec::new();
        for r in &refs {
            let Some(live) = kube.get(r).await? else {
                continue;
            };
            let rv = resource_version(&live);
            // The server's own dry run: admission and finalizers have their say.
            kube.delete(r, &self.propagation, rv.as_deref(), true)
                .await?;
            changes.push(Change::Object {
                object: r.clone(),
                op: format!("delete (propagationPolicy {})", self.propagation),
                resource_version: rv,
                content_sha256: Some(content_sha256(&live)),
                diff: object_diff(r, Some(&live), None),
            });
        }
        if changes.is_empty() {
            return Ok(Plan::noop(
                "nothing to delete: none of the objects exists",
                result(false, json!({ "deleted": [], "objects": [] })),
            ));
        }
        Ok(Plan {
            summary: format!(
                "delete {} object(s) on {} (propagationPolicy {})",
                changes.len(),
                kube.server(),
                self.propagation
            ),
            changes,
            modifies: Vec::new(),
            result: None,
        })
    }

    async fn apply(&self, ctx: &StepCtx<'_>, plan: &Plan) -> Result<Value, ActionError> {
        let kube = connect(ctx).await?;
        let mut done: Vec<(ObjectRef, Value)> = Vec::new();
        for r in self.refs()? {
            match kube.get(&r).await {
                // Gone already (a resumed run repeating its delete).
                Ok(None) => continue,
                Ok(Some(_)) => {}
                Err(e) => return Err(put_back(&kube, &done, e.into()).await),
            }
            let propagation = self.propagation.as_str();
            let written = write_unchanged(&kube, &plan.changes, &r, |rv| {
                let (kube, r) = (&kube, &r);
                async move { kube.delete(r, propagation, rv.as_deref(), false).await }
            })
            .await;
            match written {
                Ok(Some((Some(before), _))) => done.push((r, before)),
                Ok(_) => continue,
                Err(e) => return Err(put_back(&kube, &done, e).await),
            }
        }
        let deleted: Vec<String> = done.iter().map(|(r, _)| r.display()).collect();
        let objects: Vec<Value> = done.into_iter().map(|(_, o)| o).collect();
        Ok(result(
            !deleted.is_empty(),
            json!({ "deleted": deleted, "objects": objects }),
        ))
    }
}
