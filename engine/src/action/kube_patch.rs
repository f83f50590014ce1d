//! `kube.patch`: merge, JSON or strategic patches to one object or several
//! (`objects`, each with its own `patch` or the step's). The plan is the
//! server's dry-run of each patch and a diff of the live object against
//! it; apply is conditional on the versions the plan saw, and all or none:
//! when one object fails, the ones already patched are put back before the
//! step fails. The engine backs every object up first.
//!
//! In a dry run, an object an earlier step would create (`kube.apply`) is
//! not there yet: its patch is planned against the object that step's own
//! dry run returned, and says so. A real run plans each step after the
//! steps before it ran, against the live object, and a plan made against
//! an object that did not exist is never applied.

use super::kube::{connect, object_diff, put_back, targets, write_unchanged, Target};
use super::{result, Action, ActionError, StepCtx};
use crate::object_backup::Planned;
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
        let mut ahead = Vec::new();
        for (r, patch) in &work {
            let Some(live) = kube.get(r).await? else {
                let planned = ctx.planned_objects.and_then(|p| p.get(&ctx.host.name, r));
                let Some((step, created)) = planned else {
                    return Err(ActionError::precondition(
                        format!("{r} does not exist on {}", kube.server()),
                        "check its name and namespace (kube.get lists what there is)",
                    ));
                };
                changes.push(planned_patch(r, &created, patch, ty));
                ahead.push(format!("`{step}`"));
                continue;
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
        let ahead = if ahead.is_empty() {
            String::new()
        } else {
            ahead.dedup();
            format!(
                "; planned against the object(s) step {} will create, so the server checks the patch only when this step runs",
                ahead.join(", ")
            )
        };
        Ok(Plan {
            summary: format!(
                "patch {} object(s) ({}) on {}{ahead}",
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
            // Only a dry run plans against an object not there yet (one an
            // earlier step would create); such a plan is never applied.
            if matches!(
                Planned::of(&plan.changes, &r),
                Some(Planned {
                    resource_version: None,
                    ..
                })
            ) {
                let e = ActionError::Failed {
                    message: format!("{r} was planned against the object an earlier step would create, not a live one, so it was not patched"),
                    hint: Some("plan it again: a real run plans each step after the steps before it ran".into()),
                };
                return Err(put_back(&kube, &done, e).await);
            }
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

/// The change a patch would make to an object an earlier step would create:
/// a merge patch applied here to that object (RFC 7386); a JSON or strategic
/// patch, which only the server applies faithfully, shown as it is.
fn planned_patch(r: &ObjectRef, created: &Value, patch: &Value, ty: PatchType) -> Change {
    let diff = match ty {
        PatchType::Merge => {
            let mut after = created.clone();
            merge_patch(&mut after, patch);
            object_diff(r, Some(created), Some(&after))
        }
        PatchType::Json | PatchType::Strategic => format!(
            "# {r}: this {} patch, applied by the server when the step runs:\n{}",
            format!("{ty:?}").to_lowercase(),
            remedy_k8s::to_yaml(patch)
        ),
    };
    Change::Object {
        object: r.clone(),
        op: "patch".into(),
        resource_version: None,
        content_sha256: None,
        diff,
    }
}

/// RFC 7386: `patch`'s members replace `target`'s, `null` removes one,
/// mappings merge recursively.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(members) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Value::Object(t) = target {
        for (k, v) in members {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merge_patch_replaces_merges_and_removes_as_rfc_7386_says() {
        let mut target = json!({ "a": "b", "c": { "d": "e", "f": "g" }, "l": [1, 2] });
        merge_patch(
            &mut target,
            &json!({ "a": "z", "c": { "f": null, "h": 1 }, "l": [3], "n": { "o": true } }),
        );
        assert_eq!(
            target,
            json!({ "a": "z", "c": { "d": "e", "h": 1 }, "l": [3], "n": { "o": true } })
        );
    }
}
