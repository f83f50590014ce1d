//! `etcd.move_leader`: hand raft leadership to another member (the one
//! named, or the first follower: `remedy_etcd::Cluster::leader_move`),
//! e.g. before working on the leader's master.

use super::etcd::connect_all;
use super::{result, Action, ActionError, StepCtx};
use crate::plan::{Change, Plan};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdMoveLeader {
    to: Option<String>,
}

#[async_trait]
impl Action for EtcdMoveLeader {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        let cluster = connect_all(ctx).await?;
        let m = cluster.leader_move(self.to.as_deref()).await?;
        let fields = json!({ "from": m.from.name, "to": m.to.name });
        if m.to_status.is_leader {
            return Ok(Plan::noop(
                format!("{} is already the etcd leader", m.to.name),
                result(false, fields),
            ));
        }
        Ok(Plan {
            summary: format!("move etcd leadership from {} to {}", m.from.name, m.to.name),
            changes: vec![Change::Command {
                cmd: format!("move-leader {:x} ({})", m.to_status.id, m.to.name),
            }],
            modifies: Vec::new(),
            result: None,
        })
    }

    async fn apply(&self, ctx: &StepCtx<'_>, _plan: &Plan) -> Result<Value, ActionError> {
        let cluster = connect_all(ctx).await?;
        let m = cluster.leader_move(self.to.as_deref()).await?;
        let fields = json!({ "from": m.from.name, "to": m.to.name });
        if m.to_status.is_leader {
            return Ok(result(false, fields));
        }
        m.from.client()?.move_leader(m.to_status.id).await?;
        Ok(result(true, fields))
    }
}
