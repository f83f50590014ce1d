//! `etcd.compact`: remove history up to the current revision minus an
//! optional retention, physically (etcd frees the space for the next
//! defragmentation; `remedy_etcd::Cluster::compact` waits for every member
//! to, and until every member's size in use holds still, up to `settle`).
//! Refused while any member does not answer.

use super::etcd::{connect_all, flag, int};
use super::{result, Action, ActionError, Secs, StepCtx};
use crate::plan::{Change, Plan};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

/// The longest wait, after a physical compaction, for every member's size
/// in use to hold still (it ends as soon as they do).
const DEFAULT_SETTLE_SECS: u64 = 10;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdCompact {
    retention: Option<Value>,
    physical: Option<Value>,
    settle: Option<Secs>,
}

#[async_trait]
impl Action for EtcdCompact {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        let cluster = connect_all(ctx).await?;
        let retention = int(&self.retention, "retention", 0)?;
        let t = cluster.compaction_target(retention).await?;
        let (revision, target) = (t.current, t.target);
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
        let cluster = connect_all(ctx).await?;
        let retention = int(&self.retention, "retention", 0)?;
        let physical = flag(&self.physical, true);
        let settle = Duration::from_secs(self.settle.map_or(DEFAULT_SETTLE_SECS, |s| s.0));
        let (changed, t) = cluster
            .compact(retention, physical, settle, ctx.clock)
            .await?;
        Ok(result(
            changed,
            json!({ "revision": t.target, "current_revision": t.current, "physical": physical }),
        ))
    }
}
