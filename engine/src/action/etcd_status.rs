//! `etcd.status`: every member's id, endpoint, leadership, raft term and
//! index, revision, database size and size in use, fragmentation, alarms,
//! version and health — like `etcdctl endpoint status -w table`. Read-only.

use super::etcd::{connect_all, status_value, statuses};
use super::{result, Action, ActionError, StepCtx};
use crate::plan::Plan;
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdStatus {}

impl EtcdStatus {
    async fn read(&self, ctx: &StepCtx<'_>) -> Result<(String, Value), ActionError> {
        let conns = connect_all(ctx).await?;
        let st = statuses(&conns).await;
        let ok: Vec<remedy_etcd::MemberStatus> =
            st.iter().filter_map(|s| s.as_ref().ok().cloned()).collect();
        let mut alarms = Vec::new();
        for c in &conns {
            if let Ok(m) = &c.member {
                if let Ok(a) = m.alarms().await {
                    alarms = a;
                    break;
                }
            }
        }
        let mut members = Vec::new();
        for (c, s) in conns.iter().zip(&st) {
            let mut v = status_value(c, s);
            if let (Ok(m), Ok(_)) = (&c.member, s) {
                v["healthy"] = json!(m.health().await.is_ok());
            }
            members.push(v);
        }
        let leader = ok.iter().find(|s| s.is_leader).map(|s| s.name.clone());
        let mut text = remedy_etcd::status_table(&ok);
        for (c, s) in conns.iter().zip(&st) {
            if let Err(e) = s {
                text.push_str(&format!("{}: NOT ANSWERING: {e}\n", c.name()));
            }
        }
        for a in &alarms {
            text.push_str(&format!("ALARM {a}\n"));
        }
        let healthy = members.iter().filter(|m| m["healthy"] == true).count();
        let summary = format!(
            "{} of {} etcd member(s) healthy, leader {}{}\n{}",
            healthy,
            conns.len(),
            leader.as_deref().unwrap_or("none"),
            if alarms.is_empty() {
                String::new()
            } else {
                format!(", {} alarm(s)", alarms.len())
            },
            text.trim_end()
        );
        Ok((
            summary,
            result(
                false,
                json!({
                    "members": members,
                    "leader": leader,
                    "healthy": healthy,
                    "alarms": alarms.iter().map(|a| json!({ "member_id": format!("{:x}", a.member_id), "kind": a.kind.to_string() })).collect::<Vec<_>>(),
                }),
            ),
        ))
    }
}

#[async_trait]
impl Action for EtcdStatus {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        let (summary, value) = self.read(ctx).await?;
        Ok(Plan::noop(summary, value))
    }

    async fn apply(&self, ctx: &StepCtx<'_>, _plan: &Plan) -> Result<Value, ActionError> {
        Ok(self.read(ctx).await?.1)
    }
}
