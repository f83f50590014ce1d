//! `etcd.defrag`: defragment the members a Rhai rule picks, one at a time,
//! in `remedy_etcd::DefragPlan`'s order and with its gating (followers
//! first, the leader last or leadership moved away; every member healthy
//! before each, the member healthy again after). The plan shows the order
//! and each member's rule evaluation with its numbers.

use super::etcd::{connect_all, eval_rule, flag};
use super::{result, Action, ActionError, Secs, StepCtx};
use crate::plan::{Change, Plan};
use async_trait::async_trait;
use remedy_etcd::{Cluster, DefragOptions, DefragPlan};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

/// Worth it when a quarter of the file is free and that is at least 1 MiB,
/// or when the member is at 80% of its quota.
pub const DEFAULT_RULE: &str =
    "(member.fragmentation >= 0.25 && member.db_size_free >= 1048576) || member.quota_usage >= 0.8";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdDefrag {
    rule: Option<String>,
    quota: Option<Value>,
    timeout: Option<Secs>,
    settle: Option<Secs>,
    move_leader: Option<Value>,
}

impl EtcdDefrag {
    fn rule(&self) -> &str {
        self.rule
            .as_deref()
            .filter(|r| !r.trim().is_empty())
            .unwrap_or(DEFAULT_RULE)
    }

    fn quota_override(&self) -> Result<Option<u64>, ActionError> {
        Ok(match &self.quota {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => Some(remedy_dsl::param::parse_bytes(s).ok_or_else(|| {
                ActionError::failed(format!("`quota` `{s}` is not a size (e.g. 8GiB)"))
            })? as u64),
            Some(other) => {
                return Err(ActionError::failed(format!(
                    "`quota` must be a size, found {other}"
                )))
            }
        })
    }

    /// Every member answering and healthy, in defrag order, with the rule's verdict.
    async fn decide(&self, ctx: &StepCtx<'_>) -> Result<(Cluster, DefragPlan), ActionError> {
        let mut cluster = connect_all(ctx).await?;
        if let Some(q) = self.quota_override()? {
            for c in cluster.members.iter_mut() {
                c.quota = Some(q);
            }
        }
        let plan = DefragPlan::survey(&cluster).await?;
        let plan = plan.select(|member| eval_rule(self.rule(), member))?;
        Ok((cluster, plan))
    }
}

#[async_trait]
impl Action for EtcdDefrag {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        let (_, p) = self.decide(ctx).await?;
        let lines: Vec<(String, bool)> = (p.candidates.iter().enumerate())
            .map(|(n, c)| (format!("{}. {}", n + 1, c.describe()), c.selected))
            .collect();
        let fields = json!({ "order": p.order(), "members": p.evaluations(), "reclaimed": 0 });
        let picked: Vec<&str> = p.selected().map(|c| c.status.name.as_str()).collect();
        if picked.is_empty() {
            // The numbers now; a real run decides again right before this
            // step, after the steps before it (a compaction) freed space.
            let lines: Vec<String> = lines
                .iter()
                .map(|(l, _)| format!("{l} → skip (rule is false)"))
                .collect();
            return Ok(Plan::noop(
                format!(
                    "no etcd member needs defragmenting by the sizes now (rule: {}); decided again when the step runs\n{}",
                    self.rule(),
                    lines.join("\n")
                ),
                result(false, fields),
            ));
        }
        let mut changes = vec![Change::Note {
            text: format!("rule: {}", self.rule()),
        }];
        changes.extend(lines.into_iter().map(|(line, selected)| match selected {
            true => Change::Command {
                cmd: format!("{line} → defragment, then wait until healthy"),
            },
            false => Change::Note {
                text: format!("{line} → skip (rule is false)"),
            },
        }));
        Ok(Plan {
            summary: format!(
                "defragment {} of {} etcd member(s), one at a time: {}",
                picked.len(),
                p.candidates.len(),
                picked.join(" → ")
            ),
            changes,
            modifies: Vec::new(),
            result: None,
        })
    }

    async fn apply(&self, ctx: &StepCtx<'_>, _plan: &Plan) -> Result<Value, ActionError> {
        let (cluster, p) = self.decide(ctx).await?;
        let opts = DefragOptions {
            timeout: Duration::from_secs(self.timeout.map_or(120, |s| s.0)),
            settle: Duration::from_secs(self.settle.map_or(0, |s| s.0)),
            move_leader: flag(&self.move_leader, false),
        };
        let fields = p.run(&cluster, &opts, ctx.clock, ctx.progress).await?;
        let changed = p.selected().next().is_some();
        Ok(result(changed, fields))
    }
}
