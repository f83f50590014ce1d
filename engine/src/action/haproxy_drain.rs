//! `haproxy.drain`: take this master out of every load balancer before it
//! is restarted. `state drain` on every LB first (so no LB sends it new
//! connections), then wait until its sessions reach 0 everywhere within one
//! deadline; at the deadline either cut what is left (`shutdown_sessions`)
//! or fail — putting every LB back as it was. `maint` then takes it out of
//! health checks too.
//!
//! Refused before any change when an LB would be left with fewer than
//! `min_up` other servers taking traffic.

use super::lb::{self, Prior};
use super::{result, Action, ActionError, Secs, StepCtx};
use crate::plan::{Change, Plan};
use async_trait::async_trait;
use remedy_haproxy::{AdminState, HaproxyError, ServerState};
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

/// How long HAProxy may take to close sessions it was told to cut.
const CUT_GRACE: Duration = Duration::from_secs(10);

impl HaproxyDrain {
    fn limit(&self) -> Duration {
        Duration::from_secs(self.timeout.map_or(120, |s| s.0))
    }

    fn min_up(&self) -> usize {
        self.min_up.map_or(1, |n| n as usize)
    }

    /// The admin state this step leaves the server in.
    fn target(&self) -> AdminState {
        if self.maint {
            AdminState::Maint
        } else {
            AdminState::Drain
        }
    }

    /// A server already in maintenance takes no traffic: draining it would
    /// put it *back* into health checks, so it is left alone.
    fn sets_drain(s: &ServerState) -> bool {
        s.admin == AdminState::Ready
    }

    fn done(&self, s: &ServerState) -> bool {
        s.scur == 0 && (s.admin == self.target() || s.admin == AdminState::Maint)
    }

    /// Refuse on every LB before anything changes.
    async fn check_allowed(
        &self,
        ctx: &StepCtx<'_>,
        lbs: &[lb::Lb<'_>],
        states: &[ServerState],
        server: &str,
    ) -> Result<(), ActionError> {
        for (lb, s) in lbs.iter().zip(states) {
            if Self::sets_drain(s) {
                lb.api(ctx.clock)
                    .check_drain_allowed(&lb.backend, server, self.min_up())
                    .await?;
            }
        }
        Ok(())
    }

    /// Wait for no sessions on `lb` within what is left of the deadline;
    /// cut them at the deadline when asked. The sessions cut.
    async fn wait_empty(
        &self,
        ctx: &StepCtx<'_>,
        lb: &lb::Lb<'_>,
        server: &str,
        start: std::time::SystemTime,
    ) -> Result<u64, ActionError> {
        let api = lb.api(ctx.clock);
        let progress = ctx.progress;
        let name = lb.name().to_string();
        let report = move |s: &ServerState, waited: Duration| {
            progress(
                &format!(
                    "{name}: {}/{server} to have no sessions ({} now)",
                    s.backend, s.scur
                ),
                waited.as_secs(),
            )
        };
        let left = lb::remaining(ctx, start, self.limit());
        match api
            .wait_sessions_zero(&lb.backend, server, left, &report)
            .await
        {
            Ok(_) => Ok(0),
            Err(HaproxyError::WaitTimedOut(_)) if self.shutdown_sessions => {
                let open = api.server(&lb.backend, server).await?.scur;
                api.shutdown_sessions(&lb.backend, server).await?;
                api.wait_sessions_zero(&lb.backend, server, CUT_GRACE, &report)
                    .await?;
                Ok(open)
            }
            Err(HaproxyError::WaitTimedOut(mut w)) => {
                // The deadline is shared by every LB: say the one given.
                w.timeout = self.limit();
                Err(ActionError::Failed {
                message: w.to_string(),
                hint: Some(
                    "wait longer (timeout), or let the drain cut them (shutdown_sessions: true)"
                        .into(),
                ),
            })
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn apply_on(
        &self,
        ctx: &StepCtx<'_>,
        lbs: &[lb::Lb<'_>],
        priors: &[Prior],
        states: &[ServerState],
        server: &str,
    ) -> Result<Value, (usize, ActionError)> {
        let fail_all = |e: ActionError| (lbs.len(), e);
        for (i, (lb, s)) in lbs.iter().zip(states).enumerate() {
            if Self::sets_drain(s) {
                // `i + 1`: a change whose answer was lost may have happened.
                lb.api(ctx.clock)
                    .set_state(&lb.backend, server, AdminState::Drain)
                    .await
                    .map_err(|e| (i + 1, e.into()))?;
            }
        }
        let start = ctx.clock.now();
        let mut cut = 0;
        for lb in lbs {
            cut += self
                .wait_empty(ctx, lb, server, start)
                .await
                .map_err(fail_all)?;
        }
        let waited = ctx.clock.now().duration_since(start).unwrap_or_default();
        if self.maint {
            for (lb, s) in lbs.iter().zip(states) {
                if s.admin != AdminState::Maint {
                    lb.api(ctx.clock)
                        .set_state(&lb.backend, server, AdminState::Maint)
                        .await
                        .map_err(|e| fail_all(e.into()))?;
                }
            }
        }
        let changed = states
            .iter()
            .any(|s| s.admin != self.target() && s.admin != AdminState::Maint);
        Ok(result(
            changed,
            json!({ "prior": priors, "waited_secs": waited.as_secs(), "sessions_cut": cut }),
        ))
    }
}

#[async_trait]
impl Action for HaproxyDrain {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        let server = lb::server_name(ctx, &self.server);
        let lbs = lb::connect_all(ctx).await?;
        let states = lb::read_all(ctx, &lbs, &server).await?;
        let priors = lb::priors(&lbs, &states);
        let summary = format!("drain {server} on {} LB(s)", lbs.len());
        if states.iter().all(|s| self.done(s)) {
            return Ok(Plan::noop(
                format!("{server} is already out of every LB, with no sessions"),
                result(
                    false,
                    json!({ "prior": priors, "waited_secs": 0, "sessions_cut": 0 }),
                ),
            ));
        }
        self.check_allowed(ctx, &lbs, &states, &server).await?;
        let limit = remedy_dsl::param::format_duration(self.limit().as_secs() as i64);
        let at_deadline = if self.shutdown_sessions {
            "then cut the rest"
        } else {
            "else fail and put it back"
        };
        let changes = lbs
            .iter()
            .zip(&states)
            .map(|(lb, s)| {
                let mut to = if Self::sets_drain(s) {
                    "drain".to_string()
                } else {
                    s.admin.to_string()
                };
                to.push_str(&format!(
                    ", wait up to {limit} for 0 sessions ({at_deadline})"
                ));
                if self.maint && s.admin != AdminState::Maint {
                    to.push_str(", then maint");
                }
                Change::Server {
                    lb: lb.name().to_string(),
                    backend: lb.backend.clone(),
                    server: server.clone(),
                    from: lb::shown(s),
                    to,
                }
            })
            .collect();
        Ok(Plan {
            summary,
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
        self.check_allowed(ctx, &lbs, &states, &server).await?;
        match self.apply_on(ctx, &lbs, &priors, &states, &server).await {
            Ok(v) => Ok(v),
            Err((touched, e)) => Err(lb::abandon(ctx, &lbs, &priors, touched, e).await),
        }
    }
}
