//! `haproxy.drain`: take this master out of every load balancer before it
//! is restarted (`remedy_haproxy::Fleet::drain`): `state drain` on every LB
//! first, then wait until its sessions reach 0 everywhere within one
//! deadline; at the deadline either cut what is left (`shutdown_sessions`)
//! or fail — putting every LB back as it was. `maint` then takes it out of
//! health checks too.
//!
//! Refused before any change when an LB would be left with fewer than
//! `min_up` other servers taking traffic.

use super::lb;
use super::{result, Action, ActionError, Secs, StepCtx};
use crate::plan::{Change, DrainGuard, Plan, ServerValues};
use async_trait::async_trait;
use remedy_haproxy::{AdminState, Drain};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaproxyDrain {
    server: Option<String>,
    timeout: Option<Secs>,
    #[serde(default)]
    shutdown_sessions: bool,
    #[serde(default)]
    maint: bool,
    min_up: Option<u64>,
}

impl HaproxyDrain {
    fn spec(&self) -> Drain {
        Drain {
            limit: Duration::from_secs(self.timeout.map_or(120, |s| s.0)),
            shutdown_sessions: self.shutdown_sessions,
            maint: self.maint,
            min_up: self.min_up.map_or(1, |n| n as usize),
        }
    }
}

#[async_trait]
impl Action for HaproxyDrain {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        let fleet = lb::fleet(ctx, &self.server).await?;
        let (spec, server) = (self.spec(), &fleet.server);
        let states = fleet.states().await?;
        let priors = fleet.priors(&states);
        if states.iter().all(|s| spec.done(s)) {
            return Ok(Plan::noop(
                format!("{server} is already out of every LB, with no sessions"),
                result(
                    false,
                    json!({ "prior": priors, "waited_secs": 0, "sessions_cut": 0 }),
                ),
            ));
        }
        let taking = fleet.check_drain(&spec, &states).await?;
        let limit = remedy_dsl::param::format_duration(spec.limit.as_secs() as i64);
        let at_deadline = if self.shutdown_sessions {
            "then cut the rest"
        } else {
            "else fail and put it back"
        };
        let changes = (fleet.lbs.iter().zip(&states).zip(taking))
            .map(|((lb, s), up)| {
                let mut to = if Drain::sets_drain(s) {
                    "drain".to_string()
                } else {
                    s.admin.to_string()
                };
                to.push_str(&format!(
                    ", wait up to {limit} for 0 sessions ({at_deadline})"
                ));
                let admin = if self.maint {
                    AdminState::Maint.to_string()
                } else if Drain::sets_drain(s) {
                    "drain".to_string()
                } else {
                    s.admin.to_string()
                };
                if self.maint && s.admin != AdminState::Maint {
                    to.push_str(", then maint");
                }
                Change::Server {
                    lb: lb.name.clone(),
                    backend: lb.backend.clone(),
                    server: server.clone(),
                    from: s.shown(),
                    to,
                    before: ServerValues::of(s),
                    after: ServerValues {
                        admin: Some(admin),
                        sessions: Some(0),
                        ..ServerValues::default()
                    },
                    guard: up.map(|up| DrainGuard {
                        min_up: spec.min_up,
                        up,
                    }),
                }
            })
            .collect();
        Ok(Plan {
            summary: format!("drain {server} on {} LB(s)", fleet.lbs.len()),
            changes,
            modifies: Vec::new(),
            result: None,
        })
    }

    async fn apply(&self, ctx: &StepCtx<'_>, _plan: &Plan) -> Result<Value, ActionError> {
        let fleet = lb::fleet(ctx, &self.server).await?;
        let states = fleet.states().await?;
        let priors = fleet.priors(&states);
        let done = fleet.drain(&self.spec(), &states, ctx.progress).await?;
        Ok(result(
            done.changed,
            json!({ "prior": priors, "waited_secs": done.waited.as_secs(), "sessions_cut": done.sessions_cut }),
        ))
    }
}
