//! `etcd.snapshot`: stream a snapshot from one member (the one named, else
//! the first healthy one) to a new file on the jump host, through the SSH
//! tunnel — `remedy_etcd::ClusterMember::save_snapshot`, which checks
//! etcd's appended SHA-256 and the announced size as it arrives and the
//! written file again after, and removes a refused partial file. Each
//! snapshot is a new file (member and time in its name), so nothing is
//! overwritten and rollback never deletes one.

use super::etcd::connect_all;
use super::{result, Action, ActionError, StepCtx};
use crate::plan::{Change, Plan};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdSnapshot {
    dir: String,
    member: Option<String>,
}

#[async_trait]
impl Action for EtcdSnapshot {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        let cluster = connect_all(ctx).await?;
        // The sizes beside the choice of member: one round trip, not two.
        let (c, statuses) = futures::join!(
            cluster.snapshot_source(self.member.as_deref()),
            cluster.statuses()
        );
        let c = c?;
        let size = (cluster.members.iter().zip(&statuses))
            .find(|(m, _)| m.name == c.name)
            .and_then(|(_, s)| s.as_ref().ok())
            .map_or(0, |s| s.db_size);
        let dir = self.dir.trim_end_matches('/');
        Ok(Plan {
            summary: format!(
                "snapshot etcd from {} (db {}) to {dir}/ on the jump host",
                c.name,
                remedy_etcd::human_bytes(size),
            ),
            changes: vec![Change::Command {
                cmd: format!(
                    "stream a snapshot of {} to {dir}/etcd-snapshot-{}-<time>.db (sha256 checked)",
                    c.name, c.name
                ),
            }],
            modifies: Vec::new(),
            result: None,
        })
    }

    async fn apply(&self, ctx: &StepCtx<'_>, _plan: &Plan) -> Result<Value, ActionError> {
        let cluster = connect_all(ctx).await?;
        let c = cluster.snapshot_source(self.member.as_deref()).await?;
        let saved = c.save_snapshot(&self.dir, ctx.progress).await?;
        Ok(result(
            true,
            json!({
                "path": saved.path,
                "member": c.name,
                "bytes": saved.bytes,
                "db_bytes": saved.db_bytes,
                "sha256": saved.sha256,
            }),
        ))
    }
}
