//! `haproxy.ready`: put this master back into every load balancer after its
//! restart — `state ready` on every LB, then wait until its status is
//! exactly `UP` on each (`UP 1/2` is a server failing its checks, `DOWN 1/2`
//! one still rising) within one deadline. A server that does not come up is
//! put back as it was (drained), and the step fails.

use super::lb::{self, Prior};
use super::{result, Action, ActionError, Secs, StepCtx};
use crate::plan::{Change, Plan};
use async_trait::async_trait;
use remedy_haproxy::{AdminState, ServerState};
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

    async fn apply_on(
        &self,
        ctx: &StepCtx<'_>,
        lbs: &[lb::Lb<'_>],
        priors: &[Prior],
        states: &[ServerState],
        server: &str,
    ) -> Result<Value, (usize, ActionError)> {
        for (i, (lb, s)) in lbs.iter().zip(states).enumerate() {
            if s.admin != AdminState::Ready {
                lb.api(ctx.clock)
                    .set_state(&lb.backend, server, AdminState::Ready)
                    .await
                    .map_err(|e| (i + 1, e.into()))?;
            }
        }
        let start = ctx.clock.now();
        for lb in lbs {
            let progress = ctx.progress;
            let name = lb.name().to_string();
            let report = move |s: &ServerState, waited: Duration| {
                progress(
                    &format!("{name}: {}/{server} to be UP ({} now)", s.backend, s.status),
                    waited.as_secs(),
                )
            };
            lb.api(ctx.clock)
                .wait_status_up(
                    &lb.backend,
                    server,
                    lb::remaining(ctx, start, self.limit()),
                    &report,
                )
                .await
                .map_err(|e| (lbs.len(), e.into()))?;
        }
        let waited = ctx.clock.now().duration_since(start).unwrap_or_default();
        let changed = states.iter().any(|s| s.admin != AdminState::Ready);
        Ok(result(
            changed,
            json!({ "prior": priors, "waited_secs": waited.as_secs() }),
        ))
    }
}

#[async_trait]
impl Action for HaproxyReady {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        let server = lb::server_name(ctx, &self.server);
        let lbs = lb::connect_all(ctx).await?;
        let states = lb::read_all(ctx, &lbs, &server).await?;
        let priors = lb::priors(&lbs, &states);
        if states
            .iter()
            .all(|s| s.admin == AdminState::Ready && s.is_up())
        {
            return Ok(Plan::noop(
                format!("{server} is already ready and UP on every LB"),
                result(false, json!({ "prior": priors, "waited_secs": 0 })),
            ));
        }
        let limit = remedy_dsl::param::format_duration(self.limit().as_secs() as i64);
        let changes = lbs
            .iter()
            .zip(&states)
            .map(|(lb, s)| Change::Server {
                lb: lb.name().to_string(),
                backend: lb.backend.clone(),
                server: server.clone(),
                from: lb::shown(s),
                to: format!("ready, wait up to {limit} for status UP"),
            })
            .collect();
        Ok(Plan {
            summary: format!("ready {server} on {} LB(s)", lbs.len()),
            changes,
            modifies: Vec::new(),
            result: None,
        })
    }

    async fn apply(&self, ctx: &StepCtx<'_>, _plan: &Plan) -> Result<Value, ActionError> {
        let server = lb::server_name(ctx, &self.server);
        let lbs = lb::connect_all(ctx).await?;
        let states = lb::read_all(ctx, &lbs, &server).await?;
        let priors = lb::priors(&lbs, &states);
        match self.apply_on(ctx, &lbs, &priors, &states, &server).await {
            Ok(v) => Ok(v),
            Err((touched, e)) => Err(lb::abandon(ctx, &lbs, &priors, touched, e).await),
        }
    }
}
