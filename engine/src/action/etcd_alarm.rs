//! `etcd.alarm`: list the cluster's alarms and, when asked, disarm them —
//! only when every member is back under the quota threshold (disarming
//! NOSPACE on a full member just raises it again on the next write). More
//! alarms can appear while space is freed, so `remedy_etcd::Cluster::
//! disarm_all` reads the list again and disarms until it stays empty. With
//! `prove_writes`, a remedy-owned key is then written: etcd must take it.

use super::etcd::{connect_all, flag};
use super::{result, Action, ActionError, StepCtx};
use crate::plan::{Change, Plan};
use async_trait::async_trait;
use remedy_etcd::{AlarmSurvey, WRITE_CHECK_KEY};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdAlarm {
    disarm: Option<Value>,
    /// Highest `db_size / quota` at which disarming is allowed (default 0.8).
    threshold: Option<Value>,
    /// Then write a remedy-owned key: etcd takes writes again.
    prove_writes: Option<Value>,
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
        let fields =
            json!({ "alarms": alarms, "disarmed": [], "usage": usage, "write_revision": 0 });
        let prove = flag(&self.prove_writes, false).then(|| Change::Command {
            cmd: format!("write {WRITE_CHECK_KEY}: etcd must take it"),
        });
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
        if (alarms.is_empty() || !flag(&self.disarm, false)) && prove.is_none() {
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
        let disarming = !alarms.is_empty() && flag(&self.disarm, false);
        let summary = match (disarming, &prove) {
            (true, None) => format!("disarm {}{condition}", listed.join(", ")),
            (true, Some(_)) => format!(
                "disarm {}{condition}, then prove etcd takes writes",
                listed.join(", ")
            ),
            (false, _) => "prove etcd takes writes".to_string(),
        };
        Ok(Plan {
            summary,
            changes: (listed.iter())
                .filter(|_| disarming)
                .map(|l| Change::Command {
                    cmd: format!("disarm {l}"),
                })
                .chain(prove)
                .collect(),
            modifies: Vec::new(),
            result: None,
        })
    }

    async fn apply(&self, ctx: &StepCtx<'_>, _plan: &Plan) -> Result<Value, ActionError> {
        let threshold = self.threshold()?;
        let cluster = connect_all(ctx).await?;
        let survey = cluster.alarm_survey(threshold).await?;
        let disarmed = match (flag(&self.disarm, false), survey.over) {
            (true, Some(why)) => {
                return Err(ActionError::precondition(
                    format!("not disarming: {why}"),
                    "free space first: compact, then defragment every member",
                ))
            }
            (true, None) => cluster.disarm_all().await?,
            (false, _) => Vec::new(),
        };
        let write_revision = match flag(&self.prove_writes, false) {
            true => cluster.prove_writes().await?,
            false => 0,
        };
        Ok(result(
            !disarmed.is_empty() || write_revision > 0,
            json!({ "alarms": survey.alarms, "disarmed": disarmed, "usage": survey.usage, "write_revision": write_revision }),
        ))
    }
}
