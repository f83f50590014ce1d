//! `kube.probe_write`: prove the API server takes writes again — create a
//! ConfigMap labelled `remedy.io/probe=true` in a namespace of the
//! runbook's choosing, then delete it. The plan only says so (and whether a
//! server-side dry run of the write goes through now: an earlier step may be
//! what fixes it). It leaves nothing behind, so it reports no change and
//! rollback has nothing to undo; a probe it could not delete is named in
//! the error.

use super::kube::connect;
use super::{result, Action, ActionError, StepCtx};
use crate::plan::{Change, Plan};
use async_trait::async_trait;
use remedy_k8s::ObjectRef;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeProbeWrite {
    namespace: Option<String>,
}

/// The label every probe carries, so a left-over one is easy to find.
pub const PROBE_LABEL: &str = "remedy.io/probe";

impl KubeProbeWrite {
    fn namespace(&self) -> String {
        self.namespace
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".into())
    }

    fn probe(&self, name: &str) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": self.namespace(),
                "labels": { PROBE_LABEL: "true" },
            },
            "data": { "purpose": "remedy checks that the API server takes writes; it deletes this at once" },
        })
    }
}

#[async_trait]
impl Action for KubeProbeWrite {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        let kube = connect(ctx).await?;
        let ns = self.namespace();
        let now = match kube.create(&self.probe("remedy-probe-plan"), true).await {
            Ok(_) => "a dry run of it goes through now".to_string(),
            Err(e) => format!("a dry run of it is refused now (an earlier step may fix that): {e}"),
        };
        Ok(Plan {
            summary: format!(
                "create a ConfigMap labelled {PROBE_LABEL}=true in {ns} on {}, then delete it; {now}",
                kube.server()
            ),
            changes: vec![Change::Command {
                cmd: format!("create ConfigMap {ns}/remedy-probe-… ({PROBE_LABEL}=true), then delete it"),
            }],
            modifies: Vec::new(),
            result: None,
        })
    }

    async fn apply(&self, ctx: &StepCtx<'_>, _plan: &Plan) -> Result<Value, ActionError> {
        let kube = connect(ctx).await?;
        let ns = self.namespace();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let name = format!("remedy-probe-{:x}", nanos & 0xffff_ffff_ffff);
        let r = ObjectRef {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: Some(ns.clone()),
            name: name.clone(),
        };
        let created = kube.create(&self.probe(&name), false).await.map_err(|e| {
            ActionError::Failed {
                message: format!("the API server still refuses writes: creating {r} failed: {e}"),
                hint: Some("see which webhook or limit refuses it in the message; when the API refuses everything, fall back to the SSH steps (RUNBOOK.md, webhook-deadlock-break)".into()),
            }
        })?;
        let uid = created["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        kube.delete(&r, "Background", None, false)
            .await
            .map_err(|e| ActionError::Failed {
                message: format!(
                    "the write went through, but the probe {r} could not be deleted: {e}"
                ),
                hint: Some(format!(
                    "delete it by hand: kubectl -n {ns} delete configmap {name}"
                )),
            })?;
        Ok(result(
            false,
            json!({ "probe": r.display(), "uid": uid, "writes": true }),
        ))
    }
}
