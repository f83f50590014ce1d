//! `haproxy.weight`: set this master's weight on every load balancer. A
//! weight of 0 takes it out of rotation like a drain, so it is refused when
//! no other server of the backend would take traffic.

use super::lb;
use super::{result, Action, ActionError, StepCtx};
use crate::plan::{Change, Plan};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaproxyWeight {
    server: Option<String>,
    weight: u32,
}

impl HaproxyWeight {
    /// What each LB looks like now; refused before any change when the
    /// weight is out of range, or 0 would leave no other server up.
    async fn inspect<'a>(
        &self,
        ctx: &StepCtx<'a>,
        server: &str,
    ) -> Result<(Vec<lb::Lb<'a>>, Vec<remedy_haproxy::ServerState>), ActionError> {
        if self.weight > 256 {
            return Err(ActionError::BadArguments {
                action: "haproxy.weight",
                message: format!("weight {} is out of HAProxy's range 0 to 256", self.weight),
            });
        }
        let lbs = lb::connect_all(ctx).await?;
        let states = lb::read_all(ctx, &lbs, server).await?;
        if self.weight == 0 {
            for (lb, s) in lbs.iter().zip(&states) {
                if s.takes_traffic() {
                    lb.api(ctx.clock)
                        .check_drain_allowed(&lb.backend, server, 1)
                        .await?;
                }
            }
        }
        Ok((lbs, states))
    }
}

#[async_trait]
impl Action for HaproxyWeight {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        let server = lb::server_name(ctx, &self.server);
        let (lbs, states) = self.inspect(ctx, &server).await?;
        let priors = lb::priors(&lbs, &states);
        let changes: Vec<Change> = lbs
            .iter()
            .zip(&states)
            .filter(|(_, s)| s.weight != self.weight)
            .map(|(lb, s)| Change::Server {
                lb: lb.name().to_string(),
                backend: lb.backend.clone(),
                server: server.clone(),
                from: lb::shown(s),
                to: format!("weight {}", self.weight),
            })
            .collect();
        if changes.is_empty() {
            return Ok(Plan::noop(
                format!("{server} already has weight {} on every LB", self.weight),
                result(false, json!({ "prior": priors })),
            ));
        }
        Ok(Plan {
            summary: format!(
                "set the weight of {server} to {} on {} LB(s)",
                self.weight,
                lbs.len()
            ),
            changes,
            modifies: Vec::new(),
            result: None,
        })
    }

    async fn apply(&self, ctx: &StepCtx<'_>, _plan: &Plan) -> Result<Value, ActionError> {
        let server = lb::server_name(ctx, &self.server);
        let (lbs, states) = self.inspect(ctx, &server).await?;
        let priors = lb::priors(&lbs, &states);
        for (i, (lb, s)) in lbs.iter().zip(&states).enumerate() {
            if s.weight == self.weight {
                continue;
            }
            if let Err(e) = lb
                .api(ctx.clock)
                .set_weight(&lb.backend, &server, self.weight)
                .await
            {
                return Err(lb::abandon(ctx, &lbs, &priors, i + 1, e.into()).await);
            }
        }
        let changed = states.iter().any(|s| s.weight != self.weight);
        Ok(result(changed, json!({ "prior": priors })))
    }
}
