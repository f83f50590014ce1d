//! `haproxy.ready`: put this master back into every load balancer after its
//! restart (`remedy_haproxy::Fleet::ready`) — `state ready` on every LB,
//! then wait until its status is exactly `UP` on each (`UP 1/2` is a server
//! failing its checks, `DOWN 1/2` one still rising) within one deadline. A
//! server that does not come up is put back as it was (drained), and the
//! step fails.

use super::lb;
use super::{result, Action, ActionError, Secs, StepCtx};
use crate::plan::{Change, Plan, ServerValues};
use async_trait::async_trait;
use remedy_haproxy::AdminState;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaproxyReady {
    server: Option<String>,
    timeout: Option<Secs>,
}

impl HaproxyReady {
    fn limit(&self) -> Duration {
        Duration::from_secs(self.timeout.map_or(120, |s| s.0))
    }
}

#[async_trait]
impl Action for HaproxyReady {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        let fleet = lb::fleet(ctx, &self.server).await?;
        let server = &fleet.server;
        let states = fleet.states().await?;
        if states
            .iter()
            .all(|s| s.admin == AdminState::Ready && s.is_up())
        {
            return Ok(Plan::noop(
                format!("{server} is already ready and UP on every LB"),
                result(
                    false,
                    json!({ "prior": fleet.priors(&states), "waited_secs": 0 }),
                ),
            ));
        }
        let limit = remedy_dsl::param::format_duration(self.limit().as_secs() as i64);
        let changes = (fleet.lbs.iter().zip(&states))
            .map(|(lb, s)| Change::Server {
                lb: lb.name.clone(),
                backend: lb.backend.clone(),
                server: server.clone(),
                from: s.shown(),
                to: format!("ready, wait up to {limit} for status UP"),
                before: ServerValues::of(s),
                after: ServerValues {
                    admin: Some("ready".into()),
                    status: Some("UP".into()),
                    ..ServerValues::default()
                },
                guard: None,
            })
            .collect();
        Ok(Plan {
            summary: format!("ready {server} on {} LB(s)", fleet.lbs.len()),
            changes,
            modifies: Vec::new(),
            result: None,
        })
    }

    async fn apply(&self, ctx: &StepCtx<'_>, _plan: &Plan) -> Result<Value, ActionError> {
        let fleet = lb::fleet(ctx, &self.server).await?;
        let states = fleet.states().await?;
        let priors = fleet.priors(&states);
        let done = fleet.ready(self.limit(), &states, ctx.progress).await?;
        Ok(result(
            done.changed,
            json!({ "prior": priors, "waited_secs": done.waited.as_secs() }),
        ))
    }
}
