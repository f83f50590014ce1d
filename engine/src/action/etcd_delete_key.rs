//! `etcd.delete_key`: the last resort — delete keys in etcd directly,
//! bypassing the API server (e.g. a webhook configuration the API cannot
//! change: `/registry/validatingwebhookconfigurations/NAME`).
//! Through the run's etcd clients (the SSH tunnels). The plan reads each
//! key (its size, sha256 and mod revision) and says loudly what this
//! bypasses; the engine backs each value up (raw bytes, `etcd_backup`)
//! before apply; apply streams a snapshot to the jump host first, then
//! deletes each key only if it is still at the revision the plan saw.
//! Rollback puts the saved bytes back.

use super::etcd::connect_all;
use super::{result, Action, ActionError, StepCtx};
use crate::backup::sha256_hex;
use crate::plan::{Change, Plan};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdDeleteKey {
    keys: Vec<String>,
    snapshot_dir: String,
}

/// What the plan says about a deletion, whatever the key.
fn warning(snapshot_dir: &str) -> String {
    format!(
        "WARNING — LAST RESORT: these keys are deleted in etcd directly, bypassing the API server: no admission, no validation, no finalizers or owner references, no audit log entry. Each API server's watch cache learns of the deletion from etcd's watch and stops serving the object within seconds (clients watching it see it deleted). A snapshot of etcd is streamed to {}/ on the jump host right before the deletion — to go back to it: `remedy run etcd-restore --param snapshot=<that file>`; rollback of this run puts each key's saved bytes back (only while it is still absent).",
        snapshot_dir.trim_end_matches('/')
    )
}

#[async_trait]
impl Action for EtcdDeleteKey {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        if self
            .keys
            .iter()
            .any(|k| !k.starts_with('/') || k.trim() == "/")
        {
            return Err(ActionError::BadArguments {
                action: "etcd.delete_key",
                message: format!(
                    "keys must be full etcd keys such as /registry/validatingwebhookconfigurations/NAME, got {:?}",
                    self.keys
                ),
            });
        }
        let cluster = connect_all(ctx).await?;
        let source = cluster.snapshot_source(None).await?;
        let member = source.client()?;
        let mut changes = Vec::new();
        let mut absent = Vec::new();
        for key in &self.keys {
            match member
                .get_raw(key)
                .await
                .map_err(|e| ActionError::failed(e.to_string()))?
            {
                Some((bytes, rev)) => changes.push(Change::EtcdKey {
                    key: key.clone(),
                    op: "delete".into(),
                    mod_revision: rev,
                    size: bytes.len() as u64,
                    sha256: sha256_hex(&bytes),
                }),
                None => absent.push(key.clone()),
            }
        }
        if changes.is_empty() {
            return Ok(Plan::noop(
                format!("no key to delete: {} absent in etcd", absent.join(", ")),
                result(
                    false,
                    json!({ "deleted": [], "absent": absent, "snapshot": null }),
                ),
            ));
        }
        let n = changes.len();
        changes.push(Change::Note {
            text: warning(&self.snapshot_dir),
        });
        if !absent.is_empty() {
            changes.push(Change::Note {
                text: format!("already absent, left: {}", absent.join(", ")),
            });
        }
        Ok(Plan {
            summary: format!(
                "LAST RESORT: snapshot etcd (from {}), then delete {n} key(s) in etcd directly",
                source.name
            ),
            changes,
            modifies: Vec::new(),
            result: None,
        })
    }

    async fn apply(&self, ctx: &StepCtx<'_>, plan: &Plan) -> Result<Value, ActionError> {
        let cluster = connect_all(ctx).await?;
        let source = cluster.snapshot_source(None).await?;
        let saved = source
            .save_snapshot(&self.snapshot_dir, ctx.progress)
            .await?;
        let member = source.client()?;
        let mut deleted = Vec::new();
        for c in &plan.changes {
            let Change::EtcdKey {
                key, mod_revision, ..
            } = c
            else {
                continue;
            };
            let done = member
                .delete_if_unchanged(key, *mod_revision)
                .await
                .map_err(|e| ActionError::failed(e.to_string()))?;
            if !done {
                return Err(ActionError::Failed {
                    message: format!(
                        "{key} changed or went away after its backup (mod revision {mod_revision}), so it was not deleted{}",
                        if deleted.is_empty() { String::new() } else { format!("; deleted before it: {}", deleted.join(", ")) }
                    ),
                    hint: Some(format!(
                        "rollback puts back what was deleted; the snapshot taken first is {}",
                        saved.path
                    )),
                });
            }
            deleted.push(key.clone());
        }
        let absent: Vec<&String> = self.keys.iter().filter(|k| !deleted.contains(k)).collect();
        Ok(result(
            true,
            json!({ "deleted": deleted, "absent": absent, "snapshot": saved.path }),
        ))
    }
}
