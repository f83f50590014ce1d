//! `haproxy.weight`: set this master's weight on every load balancer
//! (`remedy_haproxy::Fleet::set_weight`, all or none). A weight of 0 takes
//! it out of rotation like a drain, so it is refused when no other server
//! of the backend would take traffic.

use super::lb;
use super::{result, Action, ActionError, StepCtx};
use crate::plan::{Change, Plan, ServerValues};
use async_trait::async_trait;
use remedy_haproxy::{Fleet, ServerState};
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
    ) -> Result<(Fleet<'a>, Vec<ServerState>), ActionError> {
        if self.weight > 256 {
            return Err(ActionError::BadArguments {
                action: "haproxy.weight",
                message: format!("weight {} is out of HAProxy's range 0 to 256", self.weight),
            });
        }
        let fleet = lb::fleet(ctx, &self.server).await?;
        let states = fleet.states().await?;
        fleet.check_weight(self.weight, &states).await?;
        Ok((fleet, states))
    }
}

#[async_trait]
impl Action for HaproxyWeight {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        let (fleet, states) = self.inspect(ctx).await?;
        let server = &fleet.server;
        let changes: Vec<Change> = (fleet.lbs.iter().zip(&states))
            .filter(|(_, s)| s.weight != self.weight)
            .map(|(lb, s)| Change::Server {
                lb: lb.name.clone(),
                backend: lb.backend.clone(),
                server: server.clone(),
                from: s.shown(),
                to: format!("weight {}", self.weight),
                before: ServerValues::of(s),
                after: ServerValues {
                    weight: Some(self.weight),
                    ..ServerValues::default()
                },
                guard: None,
            })
            .collect();
        if changes.is_empty() {
            return Ok(Plan::noop(
                format!("{server} already has weight {} on every LB", self.weight),
                result(false, json!({ "prior": fleet.priors(&states) })),
            ));
        }
        Ok(Plan {
            summary: format!(
                "set the weight of {server} to {} on {} LB(s)",
                self.weight,
                fleet.lbs.len()
            ),
            changes,
            modifies: Vec::new(),
            result: None,
        })
    }

    async fn apply(&self, ctx: &StepCtx<'_>, _plan: &Plan) -> Result<Value, ActionError> {
        let (fleet, states) = self.inspect(ctx).await?;
        let priors = fleet.priors(&states);
        let done = fleet.set_weight(self.weight, &states).await?;
        Ok(result(done.changed, json!({ "prior": priors })))
    }
}
