//! `etcd.move_leader`: hand raft leadership to another member (the one
//! named, or the first healthy follower), e.g. before working on the
//! leader's master.

use super::etcd::{connect_all, require_all, statuses};
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
        let conns = connect_all(ctx).await?;
        let st = statuses(&conns).await;
        let all = require_all(&conns, &st, "moved")?;
        let leader = all
            .iter()
            .find(|(_, s)| s.is_leader)
            .ok_or_else(|| ActionError::failed("the etcd cluster has no leader"))?;
        let target = match self.to.as_deref().filter(|t| !t.is_empty()) {
            Some(t) => all.iter().find(|(c, _)| c.name() == t).ok_or_else(|| {
                ActionError::precondition(
                    format!("no etcd member `{t}`"),
                    format!(
                        "members: {}",
                        all.iter()
                            .map(|(c, _)| c.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?,
            None => all
                .iter()
                .find(|(_, s)| !s.is_leader)
                .ok_or_else(|| ActionError::failed("no follower to move leadership to"))?,
        };
        let fields = json!({ "from": leader.0.name(), "to": target.0.name() });
        if target.1.is_leader {
            return Ok(Plan::noop(
                format!("{} is already the etcd leader", target.0.name()),
                result(false, fields),
            ));
        }
        Ok(Plan {
            summary: format!(
                "move etcd leadership from {} to {}",
                leader.0.name(),
                target.0.name()
            ),
            changes: vec![Change::Command {
                cmd: format!("move-leader {:x} ({})", target.1.id, target.0.name()),
            }],
            modifies: Vec::new(),
            result: None,
        })
    }

    async fn apply(&self, ctx: &StepCtx<'_>, _plan: &Plan) -> Result<Value, ActionError> {
        let conns = connect_all(ctx).await?;
        let st = statuses(&conns).await;
        let all = require_all(&conns, &st, "moved")?;
        let (lc, _) = all
            .iter()
            .find(|(_, s)| s.is_leader)
            .ok_or_else(|| ActionError::failed("the etcd cluster has no leader"))?;
        let (tc, ts) = match self.to.as_deref().filter(|t| !t.is_empty()) {
            Some(t) => all.iter().find(|(c, _)| c.name() == t),
            None => all.iter().find(|(_, s)| !s.is_leader),
        }
        .ok_or_else(|| ActionError::failed("no member to move leadership to"))?;
        if ts.is_leader {
            return Ok(result(false, json!({ "from": lc.name(), "to": tc.name() })));
        }
        let m = lc
            .member
            .as_ref()
            .map_err(|e| ActionError::failed(e.clone()))?;
        m.move_leader(ts.id).await?;
        Ok(result(true, json!({ "from": lc.name(), "to": tc.name() })))
    }
}
