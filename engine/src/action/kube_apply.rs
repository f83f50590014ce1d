//! `kube.apply`: server-side apply of one object, as field manager
//! `remedy`. The plan is the server's own dry-run of the apply and a diff of
//! the live object against it; apply is conditional on the version the plan
//! saw. The engine backs the object up first (or records that it was
//! absent), so rollback restores or deletes it.

use super::kube::{connect, object_diff, write_unchanged};
use super::{result, Action, ActionError, StepCtx};
use crate::plan::{Change, Plan};
use async_trait::async_trait;
use remedy_k8s::{content_sha256, resource_version, ObjectRef};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeApply {
    manifest: Value,
    #[serde(default)]
    force: bool,
}

impl KubeApply {
    /// The object to apply, and which object that is.
    fn object(&self) -> Result<(Value, ObjectRef), ActionError> {
        let bad = |message: String| ActionError::BadArguments {
            action: "kube.apply",
            message,
        };
        let obj = match &self.manifest {
            Value::String(text) => remedy_k8s::parse_manifest(text)
                .map_err(|e| bad(format!("`manifest` is not YAML: {e}")))?,
            other => other.clone(),
        };
        if !obj.is_object() {
            return Err(bad("`manifest` must be one object (a mapping)".into()));
        }
        let r = ObjectRef::of(&obj).map_err(|e| bad(format!("`manifest`: {e}")))?;
        Ok((obj, r))
    }

    fn fields(after: &Value, created: bool) -> Value {
        json!({
            "object": after,
            "created": created,
            "resource_version": resource_version(after),
        })
    }
}

#[async_trait]
impl Action for KubeApply {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        let (obj, r) = self.object()?;
        let kube = connect(ctx).await?;
        let live = kube.get(&r).await?;
        let dry = kube.apply(&obj, self.force, true).await?;
        if let Some(l) = &live {
            if remedy_k8s::restore::same_object(l, &dry) {
                return Ok(Plan::noop(
                    format!("{r} is already as the manifest says"),
                    result(false, Self::fields(l, false)),
                ));
            }
        }
        let op = if live.is_some() { "apply" } else { "create" };
        if let (None, Some(planned)) = (&live, ctx.planned_objects) {
            planned.record(&ctx.host.name, &r, &ctx.step.id, &dry);
        }
        Ok(Plan {
            summary: format!(
                "{op} {r} (server-side apply, checked by a dry run on {})",
                kube.server()
            ),
            changes: vec![Change::Object {
                object: r.clone(),
                op: op.into(),
                resource_version: live.as_ref().and_then(resource_version),
                content_sha256: live.as_ref().map(content_sha256),
                diff: object_diff(&r, live.as_ref(), Some(&dry)),
            }],
            modifies: Vec::new(),
            result: None,
        })
    }

    async fn apply(&self, ctx: &StepCtx<'_>, plan: &Plan) -> Result<Value, ActionError> {
        let (obj, r) = self.object()?;
        let kube = connect(ctx).await?;
        let force = self.force;
        let written = write_unchanged(&kube, &plan.changes, &r, |rv| {
            let (kube, mut obj) = (&kube, obj.clone());
            async move {
                if let Some(rv) = rv {
                    // Server-side apply with a resourceVersion is conditional on it.
                    obj["metadata"]["resourceVersion"] = json!(rv);
                }
                kube.apply(&obj, force, false).await
            }
        })
        .await?;
        let Some((before, after)) = written else {
            return Err(ActionError::failed(format!(
                "the plan does not apply {r}: run again"
            )));
        };
        Ok(result(true, Self::fields(&after, before.is_none())))
    }
}
