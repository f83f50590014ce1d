//! `kube.restore`: put one object back from a backup remedy took of it (a
//! copy in the backup store on the jump host, `object_backup`) — what
//! `remedy backup restore ID` runs for an object backup. The copy must
//! still hash to the sha256 the journal recorded: any other content is
//! refused while planning, before anything is written. The plan is the diff
//! from the live object to the backup (without the fields the server sets);
//! the engine backs the live object up first, so the restore can itself be
//! restored, and apply is refused when the object changed after the plan.

use super::kube::connect;
use super::kube::object_diff;
use super::{result, Action, ActionError, StepCtx};
use crate::backup::BackupRecord;
use crate::object_backup::{self, ObjectBackup, Planned};
use crate::plan::{Change, Plan};
use async_trait::async_trait;
use remedy_k8s::{content_sha256, resource_version, ObjectRef};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeRestore {
    api_version: Option<String>,
    kind: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
    backup: String,
    sha256: String,
}

const ACTION: &str = "kube.restore";

impl KubeRestore {
    /// The object, and the backup record the step names.
    fn record(&self) -> Result<(ObjectRef, BackupRecord), ActionError> {
        let r = super::kube::Target {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            patch: None,
        }
        .reference(ACTION, "v1")?;
        if self.backup.is_empty() || self.sha256.is_empty() {
            return Err(ActionError::BadArguments {
                action: ACTION,
                message: "`backup` and `sha256` must name the copy and its recorded sha256 (`remedy backup show ID`)".into(),
            });
        }
        let record = BackupRecord {
            path: object_backup::record_path(&r),
            existed: true,
            sha256: Some(self.sha256.clone()),
            location: Some(self.backup.clone()),
            mode: None,
            owner: None,
            size: None,
            local: true,
            object: Some(ObjectBackup {
                object: r.clone(),
                resource_version: None,
                uid: None,
            }),
            etcd_key: None,
        };
        Ok((r, record))
    }

    /// The backed-up object, checked against the recorded sha256 and
    /// against the object the step names.
    async fn stored(r: &ObjectRef, record: &BackupRecord) -> Result<Value, ActionError> {
        let backup = object_backup::stored(record)
            .await
            .map_err(|e| {
                ActionError::precondition(
                e.to_string(),
                "`remedy backup list` shows every backup; restore from another copy, or by hand",
            )
            })?
            .ok_or_else(|| ActionError::failed(format!("no copy of {r} was recorded")))?;
        match ObjectRef::of(&backup) {
            Ok(held) if held == *r => Ok(backup),
            Ok(held) => Err(ActionError::precondition(
                format!(
                    "the backup {} holds {held}, not {r}",
                    record.location.as_deref().unwrap_or("?")
                ),
                "pass the object the backup holds (`remedy backup show ID`)",
            )),
            Err(e) => Err(ActionError::failed(format!(
                "the backup {} is not an object: {e}",
                record.location.as_deref().unwrap_or("?")
            ))),
        }
    }
}

#[async_trait]
impl Action for KubeRestore {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        let (r, record) = self.record()?;
        let backup = Self::stored(&r, &record).await?;
        let kube = connect(ctx).await?;
        let live = kube.get(&r).await?;
        if let Some(l) = &live {
            if remedy_k8s::restore::same_object(l, &backup) {
                return Ok(Plan::noop(
                    format!("{r} is already as the backup recorded it"),
                    result(false, json!({ "restored": "", "object": l })),
                ));
            }
        }
        let op = if live.is_some() {
            "put back from the backup"
        } else {
            "re-create from the backup"
        };
        Ok(Plan {
            summary: format!(
                "{op} {r} on {} (backup {}, sha256 {}…)",
                kube.server(),
                self.backup,
                &self.sha256[..self.sha256.len().min(12)]
            ),
            changes: vec![Change::Object {
                object: r.clone(),
                op: op.into(),
                resource_version: live.as_ref().and_then(resource_version),
                content_sha256: live.as_ref().map(content_sha256),
                diff: object_diff(&r, live.as_ref(), Some(&backup)),
            }],
            modifies: Vec::new(),
            result: None,
        })
    }

    async fn apply(&self, ctx: &StepCtx<'_>, plan: &Plan) -> Result<Value, ActionError> {
        let (r, record) = self.record()?;
        let kube = connect(ctx).await?;
        let planned = Planned::of(&plan.changes, &r).ok_or_else(|| {
            ActionError::failed(format!("the plan does not restore {r}: run again"))
        })?;
        if let Err(changed) = planned.check(&r, kube.get(&r).await?.as_ref()) {
            return Err(ActionError::Failed {
                message: changed.to_string(),
                hint: Some("run again: the new plan shows the object as it is now".into()),
            });
        }
        let done =
            object_backup::restore(&kube, &record)
                .await
                .map_err(|e| ActionError::Failed {
                    message: format!("restoring {r}: {e}"),
                    hint: Some(object_backup::by_hand(&record)),
                })?;
        let after = kube.get(&r).await?;
        Ok(result(true, json!({ "restored": done, "object": after })))
    }
}
