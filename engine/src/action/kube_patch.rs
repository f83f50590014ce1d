//! `kube.patch`: merge, JSON or strategic patches to one object or several
//! (`objects`, each with its own `patch` or the step's). The plan is the
//! server's dry-run of each patch and a diff of the live object against
//! it; apply is conditional on the versions the plan saw, and all or none:
//! when one object fails, the ones already patched are put back before the
//! step fails. The engine backs every object up first.

use super::kube::{connect, object_diff, put_back, targets, write_unchanged, Target};
use super::{result, Action, ActionError, StepCtx};
use crate::plan::{Change, Plan};
use async_trait::async_trait;
use remedy_k8s::{content_sha256, resource_version, ObjectRef, PatchType};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubePatch {
    api_version: Option<String>,
    kind: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
    objects: Option<Value>,
    patch: Option<Value>,
    #[serde(rename = "type")]
    ty: Option<String>,
}

const ACTION: &str = "kube.patch";

impl KubePatch {
    fn patch_type(&self) -> Result<PatchType, ActionError> {
        let t = self.ty.as_deref().unwrap_or("merge");
        PatchType::parse(t).ok_or_else(|| ActionError::BadArguments {
            action: ACTION,
            message: format!("`type` is `{t}`; it must be merge, json or strategic"),
        })
    }

    /// Each object with the patch it gets.
    fn work(&self) -> Result<Vec<(ObjectRef, Value)>, ActionError> {
        let single = Target {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            patch: None,
        };
        let ty = self.patch_type()?;
        targets(ACTION, single, &self.objects)?
            .into_iter()
            .map(|t| {
                let r = t.reference(ACTION, "v1")?;
                let patch = t.patch.clone().or_else(|| self.patch.clone()).ok_or_else(|| {
                    ActionError::BadArguments {
                        action: ACTION,
                        message: format!("no patch for {r}: give `patch`, or a `patch` in its entry of `objects`"),
                    }
                })?;
                let patch = match patch {
                    Value::String(text) => remedy_k8s::parse_manifest(&text).map_err(|e| {
                        ActionError::BadArguments {
                            action: ACTION,
                            message: format!("the patch for {r} is not YAML/JSON: {e}"),
                        }
                    })?,
                    other => other,
                };
                match (ty, &patch) {
                    (PatchType::Json, Value::Array(_)) | (PatchType::Merge | PatchType::Strategic, Value::Object(_)) => Ok((r, patch)),
                    _ => Err(ActionError::BadArguments {
                        action: ACTION,
                        message: format!("the {ty:?} patch for {r} must be {}", if ty == PatchType::Json { "a list of operations" } else { "a mapping" }).to_lowercase(),
                    }),
                }
            })
            .collect()
    }
}

#[async_trait]
impl Action for KubePatch {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        let ty = self.patch_type()?;
        let work = self.work()?;
        let kube = connect(ctx).await?;
        let mut changes = Vec::new();
        let mut unchanged = Vec::new();
        for (r, patch) in &work {
            let Some(live) = kube.get(r).await? else {
                return Err(ActionError::precondition(
                    format!("{r} does not exist on {}", kube.server()),
                    "check its name and namespace (kube.get lists what there is)",
                ));
            };
            let rv = resource_version(&live);
            let dry = kube.patch(r, patch, ty, rv.as_deref(), true).await?;
            if remedy_k8s::restore::same_object(&live, &dry) {
                unchanged.push(live);
                continue;
            }
            changes.push(Change::Object {
                object: r.clone(),
                op: "patch".into(),
                resource_version: rv,
                content_sha256: Some(content_sha256(&live)),
                diff: object_diff(r, Some(&live), Some(&dry)),
            });
        }
        if changes.is_empty() {
            let names: Vec<String> = work.iter().map(|(r, _)| r.display()).collect();
            return Ok(Plan::noop(
                format!("{} already as patched", names.join(", ")),
                result(false, json!({ "objects": unchanged, "patched": [] })),
            ));
        }
        Ok(Plan {
            summary: format!(
                "patch {} object(s) ({}) on {}",
                changes.len(),
                self.ty.as_deref().unwrap_or("merge"),
                kube.server()
            ),
            changes,
            modifies: Vec::new(),
            result: None,
        })
    }

    async fn apply(&self, ctx: &StepCtx<'_>, plan: &Plan) -> Result<Value, ActionError> {
        let ty = self.patch_type()?;
        let kube = connect(ctx).await?;
        let mut done: Vec<(ObjectRef, Value)> = Vec::new();
        let mut objects = Vec::new();
        for (r, patch) in self.work()? {
            let written = write_unchanged(&kube, &plan.changes, &r, |rv| {
                let (kube, r, patch) = (&kube, &r, &patch);
                async move { kube.patch(r, patch, ty, rv.as_deref(), false).await }
            })
            .await;
            match written {
                // Already as patched when planned.
                Ok(None) => continue,
                Ok(Some((Some(before), after))) => {
                    objects.push(after);
                    done.push((r, before));
                }
                Ok(Some((None, _))) => {
                    let e = ActionError::Failed {
                        message: format!("{r} was deleted after the plan"),
                        hint: Some("run again: the new plan shows what there is now".into()),
                    };
                    return Err(put_back(&kube, &done, e).await);
                }
                Err(e) => return Err(put_back(&kube, &done, e).await),
            }
        }
        let patched: Vec<String> = done.iter().map(|(r, _)| r.display()).collect();
        Ok(result(
            !patched.is_empty(),
            json!({ "objects": objects, "patched": patched }),
        ))
    }
}
