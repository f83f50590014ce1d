//! `etcd.defrag`: defragment the members a rule picks, one at a time,
//! followers first and the leader last (or leadership moved away first).
//! Before each member every member must be healthy and quorum must survive
//! that member being busy; after each, it must be healthy again before the
//! next. The plan shows the order and each member's rule evaluation with its
//! numbers.

use super::etcd::{self, connect_all, flag, require_all, rule_value, statuses, Conn};
use super::{result, Action, ActionError, Secs, StepCtx};
use crate::plan::{Change, Plan};
use async_trait::async_trait;
use remedy_etcd::{human_bytes, MemberStatus};
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

struct Decision {
    index: usize,
    status: MemberStatus,
    member: Value,
    selected: bool,
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
    async fn decide(&self, conns: &mut [Conn]) -> Result<Vec<Decision>, ActionError> {
        if let Some(q) = self.quota_override()? {
            for c in conns.iter_mut() {
                c.quota = Some(q);
            }
        }
        let st = statuses(conns).await;
        let all = require_all(conns, &st, "defragmented")?;
        etcd::all_healthy(conns).await.map_err(|e| {
            ActionError::precondition(
                format!("{e}; nothing was defragmented"),
                "defragment only a healthy cluster: bring the member back first",
            )
        })?;
        let list: Vec<MemberStatus> = all.iter().map(|(_, s)| s.clone()).collect();
        let mut out = Vec::new();
        for i in remedy_etcd::defrag_order(&list) {
            let (c, s) = &all[i];
            let index = conns.iter().position(|x| x.name() == c.name()).unwrap_or(i);
            let member = rule_value(c, s);
            let selected = etcd::eval_rule(self.rule(), &member)?;
            out.push(Decision {
                index,
                status: s.clone(),
                member,
                selected,
            });
        }
        Ok(out)
    }
}

fn describe(d: &Decision) -> String {
    let m = &d.member;
    format!(
        "{} ({}): db {}, in use {}, free {} ({:.0}% fragmented), {:.0}% of quota {}",
        d.status.name,
        if d.status.is_leader {
            "leader"
        } else {
            "follower"
        },
        human_bytes(d.status.db_size),
        human_bytes(d.status.db_size_in_use),
        human_bytes(m["db_size_free"].as_u64().unwrap_or(0)),
        m["fragmentation"].as_f64().unwrap_or(0.0) * 100.0,
        m["quota_usage"].as_f64().unwrap_or(0.0) * 100.0,
        human_bytes(m["quota"].as_u64().unwrap_or(0)),
    )
}

#[async_trait]
impl Action for EtcdDefrag {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        let mut conns = connect_all(ctx).await?;
        let decisions = self.decide(&mut conns).await?;
        let order: Vec<&str> = decisions.iter().map(|d| d.status.name.as_str()).collect();
        let evaluations: Vec<Value> = decisions
            .iter()
            .map(|d| {
                let mut v = d.member.clone();
                v["defragment"] = json!(d.selected);
                v
            })
            .collect();
        let mut changes = vec![Change::Note {
            text: format!("rule: {}", self.rule()),
        }];
        for (n, d) in decisions.iter().enumerate() {
            let line = format!("{}. {}", n + 1, describe(d));
            changes.push(if d.selected {
                Change::Command {
                    cmd: format!("{line} → defragment, then wait until healthy"),
                }
            } else {
                Change::Note {
                    text: format!("{line} → skip (rule is false)"),
                }
            });
        }
        let picked = decisions.iter().filter(|d| d.selected).count();
        let fields = json!({ "order": order, "members": evaluations, "reclaimed": 0 });
        if picked == 0 {
            // The numbers now; a real run decides again right before this
            // step, after the steps before it (a compaction) freed space.
            let lines: Vec<String> = decisions
                .iter()
                .enumerate()
                .map(|(n, d)| format!("{}. {} → skip (rule is false)", n + 1, describe(d)))
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
        Ok(Plan {
            summary: format!(
                "defragment {picked} of {} etcd member(s), one at a time: {}",
                decisions.len(),
                decisions
                    .iter()
                    .filter(|d| d.selected)
                    .map(|d| d.status.name.as_str())
                    .collect::<Vec<_>>()
                    .join(" → ")
            ),
            changes,
            modifies: Vec::new(),
            result: None,
        })
    }

    async fn apply(&self, ctx: &StepCtx<'_>, _plan: &Plan) -> Result<Value, ActionError> {
        let mut conns = connect_all(ctx).await?;
        let decisions = self.decide(&mut conns).await?;
        let timeout = Duration::from_secs(self.timeout.map_or(120, |s| s.0));
        let settle = Duration::from_secs(self.settle.map_or(0, |s| s.0));
        let move_leader = flag(&self.move_leader, false);
        let n = conns.len();
        if n == 2 {
            return Err(ActionError::precondition(
                "a 2-member etcd cluster loses quorum while one member is busy defragmenting",
                "add a third member, or defragment during a maintenance window with `etcdctl defrag` by hand",
            ));
        }
        let mut done: Vec<Value> = Vec::new();
        let mut reclaimed: u64 = 0;
        let stopped = |done: &Vec<Value>, why: String| -> ActionError {
            let names: Vec<&str> = done
                .iter()
                .filter(|d| d["defragmented"] == true)
                .filter_map(|d| d["name"].as_str())
                .collect();
            ActionError::Failed {
                message: format!(
                    "{why}; stopped before the next member (defragmented so far: {})",
                    if names.is_empty() { "none".into() } else { names.join(", ") }
                ),
                hint: Some("bring the member back and run again: members already done are skipped by the rule".into()),
            }
        };
        let selected: Vec<&Decision> = decisions.iter().filter(|d| d.selected).collect();
        for (k, d) in selected.iter().enumerate() {
            let c = &conns[d.index];
            // Before each member: every member healthy, so quorum survives
            // this one being busy.
            if let Err(e) = etcd::all_healthy(&conns).await {
                return Err(stopped(&done, e));
            }
            let member = c
                .member
                .as_ref()
                .map_err(|e| ActionError::failed(e.clone()))?;
            let now = member.status().await?;
            if now.is_leader && move_leader && n > 1 {
                if let Some(to) = decisions.iter().find(|x| x.index != d.index) {
                    member.move_leader(to.status.id).await?;
                    (ctx.progress)(
                        &format!("leadership moved from {} to {}", c.name(), to.status.name),
                        0,
                    );
                }
            }
            let before = member.status().await?;
            (ctx.progress)(&format!("defragmenting etcd member {}", c.name()), 0);
            if let Err(e) = member.defragment().await {
                return Err(stopped(
                    &done,
                    format!("defragmenting etcd member {} failed: {e}", c.name()),
                ));
            }
            if let Err(e) = etcd::wait_healthy(ctx, c, timeout).await {
                return Err(stopped(&done, e.to_string()));
            }
            let after = member.status().await?;
            reclaimed += before.db_size.saturating_sub(after.db_size);
            done.push(json!({
                "name": c.name(),
                "leader": before.is_leader,
                "db_size_before": before.db_size,
                "db_size_after": after.db_size,
                "defragmented": true,
                "at_ms": ctx.clock.now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
            }));
            if !settle.is_zero() && k + 1 < selected.len() {
                let start = ctx.clock.now();
                loop {
                    let waited = ctx.clock.now().duration_since(start).unwrap_or_default();
                    if waited >= settle {
                        break;
                    }
                    (ctx.progress)(
                        &format!("settling after defragmenting {}", c.name()),
                        waited.as_secs(),
                    );
                    ctx.clock.sleep(Duration::from_secs(1)).await;
                }
            }
        }
        for d in decisions.iter().filter(|d| !d.selected) {
            done.push(json!({ "name": d.status.name, "leader": d.status.is_leader, "db_size_before": d.status.db_size, "db_size_after": d.status.db_size, "defragmented": false }));
        }
        let order: Vec<&str> = decisions.iter().map(|d| d.status.name.as_str()).collect();
        Ok(result(
            !selected.is_empty(),
            json!({ "order": order, "members": done, "reclaimed": reclaimed }),
        ))
    }
}
