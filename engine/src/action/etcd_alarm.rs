//! `etcd.alarm`: list the cluster's alarms and, when asked, disarm them —
//! only when every member is back under the quota threshold (disarming
//! NOSPACE on a full member just raises it again on the next write). More
//! alarms can appear while space is freed, so the list is read again and
//! disarmed until it stays empty.

use super::etcd::{connect_all, flag, require_all, rule_value, statuses};
use super::{result, Action, ActionError, StepCtx};
use crate::plan::{Change, Plan};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdAlarm {
    disarm: Option<Value>,
    /// Highest `db_size / quota` at which disarming is allowed (default 0.8).
    threshold: Option<Value>,
}

impl EtcdAlarm {
    fn threshold(&self) -> Result<f64, ActionError> {
        match &self.threshold {
            None | Some(Value::Null) => Ok(0.8),
            Some(Value::Number(n)) => n
                .as_f64()
                .ok_or_else(|| ActionError::failed("`threshold` must be a number")),
            Some(Value::String(s)) => s.trim().parse().map_err(|_| {
                ActionError::failed(format!(
                    "`threshold` must be a number such as 0.8, found `{s}`"
                ))
            }),
            Some(other) => Err(ActionError::failed(format!(
                "`threshold` must be a number, found {other}"
            ))),
        }
    }

    /// (alarms, per-member usage, the first member over the threshold).
    async fn read(
        &self,
        ctx: &StepCtx<'_>,
    ) -> Result<(Vec<Value>, Vec<Value>, Option<String>), ActionError> {
        let conns = connect_all(ctx).await?;
        let st = statuses(&conns).await;
        let all = require_all(&conns, &st, "disarmed")?;
        let mut alarms = Vec::new();
        if let Some((c, _)) = all.first() {
            if let Ok(m) = &c.member {
                alarms = m.alarms().await?;
            }
        }
        let threshold = self.threshold()?;
        let usage: Vec<Value> = all.iter().map(|(c, s)| rule_value(c, s)).collect();
        let over = usage
            .iter()
            .find(|u| u["quota_usage"].as_f64().unwrap_or(0.0) >= threshold)
            .map(|u| {
                format!(
                    "{} is at {:.0}% of its quota (threshold {:.0}%)",
                    u["name"].as_str().unwrap_or("?"),
                    u["quota_usage"].as_f64().unwrap_or(0.0) * 100.0,
                    threshold * 100.0
                )
            });
        let alarms = alarms
            .iter()
            .map(|a| {
                let name = all
                    .iter()
                    .find(|(_, s)| s.id == a.member_id)
                    .map(|(c, _)| c.name().to_string())
                    .unwrap_or_else(|| format!("{:x}", a.member_id));
                json!({ "member": name, "member_id": format!("{:x}", a.member_id), "kind": a.kind.to_string() })
            })
            .collect();
        Ok((alarms, usage, over))
    }
}

#[async_trait]
impl Action for EtcdAlarm {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        let (alarms, usage, over) = self.read(ctx).await?;
        let fields = json!({ "alarms": alarms, "disarmed": [], "usage": usage });
        let listed: Vec<String> = alarms
            .iter()
            .map(|a| {
                format!(
                    "{} on {}",
                    a["kind"].as_str().unwrap_or("?"),
                    a["member"].as_str().unwrap_or("?")
                )
            })
            .collect();
        if alarms.is_empty() || !flag(&self.disarm, false) {
            return Ok(Plan::noop(
                if alarms.is_empty() {
                    "no etcd alarms".to_string()
                } else {
                    format!("etcd alarms: {}", listed.join(", "))
                },
                result(false, fields),
            ));
        }
        // Earlier steps (compact, defrag) may free the space before this one
        // runs, so the plan says what it will check; apply refuses if still over.
        let condition = match over {
            Some(why) => {
                format!(" — only if every member is under the threshold by then (now {why})")
            }
            None => String::new(),
        };
        Ok(Plan {
            summary: format!("disarm {}{condition}", listed.join(", ")),
            changes: listed
                .iter()
                .map(|l| Change::Command {
                    cmd: format!("disarm {l}"),
                })
                .collect(),
            modifies: Vec::new(),
            result: None,
        })
    }

    async fn apply(&self, ctx: &StepCtx<'_>, _plan: &Plan) -> Result<Value, ActionError> {
        let conns = connect_all(ctx).await?;
        let (first, usage, over) = self.read(ctx).await?;
        if let Some(why) = over {
            return Err(ActionError::precondition(
                format!("not disarming: {why}"),
                "free space first: compact, then defragment every member",
            ));
        }
        let Some(m) = conns.iter().find_map(|c| c.member.as_ref().ok()) else {
            return Err(ActionError::failed("no etcd member answered"));
        };
        let mut disarmed = Vec::new();
        // Members that hit the quota later raise their own alarms: repeat.
        for _ in 0..5 {
            let alarms = m.alarms().await?;
            if alarms.is_empty() {
                break;
            }
            for a in &alarms {
                m.disarm(a).await?;
                disarmed.push(json!({ "member_id": format!("{:x}", a.member_id), "kind": a.kind.to_string() }));
            }
        }
        let left = m.alarms().await?;
        if !left.is_empty() {
            return Err(ActionError::failed(format!(
                "alarms came back after disarming: {}",
                left.iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(result(
            !disarmed.is_empty(),
            json!({ "alarms": first, "disarmed": disarmed, "usage": usage }),
        ))
    }
}
