//! `etcd.compact`: remove history up to the current revision minus an
//! optional retention, physically (etcd frees the space for the next
//! defragmentation). Refused while any member does not answer.

use super::etcd::{connect_all, flag, int, require_all, statuses};
use super::{result, Action, ActionError, StepCtx};
use crate::plan::{Change, Plan};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdCompact {
    retention: Option<Value>,
    physical: Option<Value>,
}

impl EtcdCompact {
    async fn target(&self, ctx: &StepCtx<'_>) -> Result<(i64, i64), ActionError> {
        let conns = connect_all(ctx).await?;
        let st = statuses(&conns).await;
        let all = require_all(&conns, &st, "compacted")?;
        let revision = all.iter().map(|(_, s)| s.revision).max().unwrap_or(0);
        let retention = int(&self.retention, "retention", 0)?.max(0);
        Ok((revision, revision - retention))
    }
}

#[async_trait]
impl Action for EtcdCompact {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        let (revision, target) = self.target(ctx).await?;
        let physical = flag(&self.physical, true);
        let fields =
            json!({ "revision": target, "current_revision": revision, "physical": physical });
        if target <= 1 {
            return Ok(Plan::noop(
                format!("nothing to compact (revision {revision})"),
                result(false, fields),
            ));
        }
        Ok(Plan {
            summary: format!(
                "compact etcd to revision {target} (current {revision}{}){}",
                if target < revision {
                    format!(", keeping the last {}", revision - target)
                } else {
                    String::new()
                },
                if physical { ", physically" } else { "" }
            ),
            changes: vec![Change::Command {
                cmd: format!(
                    "compact revision {target}{}",
                    if physical { " --physical" } else { "" }
                ),
            }],
            modifies: Vec::new(),
            result: None,
        })
    }

    async fn apply(&self, ctx: &StepCtx<'_>, _plan: &Plan) -> Result<Value, ActionError> {
        let conns = connect_all(ctx).await?;
        let st = statuses(&conns).await;
        let all = require_all(&conns, &st, "compacted")?;
        let revision = all.iter().map(|(_, s)| s.revision).max().unwrap_or(0);
        let target = revision - int(&self.retention, "retention", 0)?.max(0);
        let physical = flag(&self.physical, true);
        let leader = all
            .iter()
            .find(|(_, s)| s.is_leader)
            .or(all.first())
            .map(|(c, _)| *c)
            .ok_or_else(|| ActionError::failed("no etcd member answered"))?;
        let member = leader
            .member
            .as_ref()
            .map_err(|e| ActionError::failed(e.clone()))?;
        let done = member.compact(target, physical).await?;
        let (changed, at) = match done {
            remedy_etcd::Compaction::Compacted { revision } => (true, revision),
            remedy_etcd::Compaction::AlreadyCompacted { revision } => (false, revision),
        };
        if changed && physical {
            // A physical compaction waits only on the member it was sent to;
            // the others free their pages on their own schedule. Wait until
            // every member's size in use holds still, so a defragmentation
            // decided next sees the space that was freed.
            let mut last: Vec<u64> = Vec::new();
            for _ in 0..20 {
                let now: Vec<u64> = statuses(&conns)
                    .await
                    .iter()
                    .map(|s| s.as_ref().map(|s| s.db_size_in_use).unwrap_or(0))
                    .collect();
                if now == last {
                    break;
                }
                last = now;
                ctx.clock.sleep(std::time::Duration::from_millis(500)).await;
            }
        }
        Ok(result(
            changed,
            json!({ "revision": at, "current_revision": revision, "physical": physical }),
        ))
    }
}
