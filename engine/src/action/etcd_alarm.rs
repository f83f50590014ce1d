//! `etcd.alarm`: list the cluster's alarms and, when asked, disarm them —
//! only when every member is back under the quota threshold (disarming
//! NOSPACE on a full member just raises it again on the next write). More
//! alarms can appear while space is freed, so `remedy_etcd::Cluster::
//! disarm_all` reads the list again and disarms until it stays empty.

use super::etcd::{connect_all, flag};
use super::{result, Action, ActionError, StepCtx};
use crate::plan::{Change, Plan};
use async_trait::async_trait;
use remedy_etcd::AlarmSurvey;
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
}

#[async_trait]
impl Action for EtcdAlarm {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        let threshold = self.threshold()?;
        let survey = connect_all(ctx).await?.alarm_survey(threshold).await?;
        let AlarmSurvey {
            alarms,
            usage,
            over,
        } = survey;
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
        let threshold = self.threshold()?;
        let cluster = connect_all(ctx).await?;
        let survey = cluster.alarm_survey(threshold).await?;
        if let Some(why) = survey.over {
            return Err(ActionError::precondition(
                format!("not disarming: {why}"),
                "free space first: compact, then defragment every member",
            ));
        }
        let disarmed = cluster.disarm_all().await?;
        Ok(result(
            !disarmed.is_empty(),
            json!({ "alarms": survey.alarms, "disarmed": disarmed, "usage": survey.usage }),
        ))
    }
}
