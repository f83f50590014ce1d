//! [`Fleet`]: one server on every load balancer in front of it, changed on
//! all of them or on none. Before a change every LB is read (its [`Prior`]);
//! when one LB fails part-way, the LBs already changed are put back, newest
//! first, before the error is returned ([`HaproxyError::PutBack`] says what
//! was put back and what could not be). Deadlines are shared by all LBs.
//!
//! - drain: `state drain` everywhere first (so no LB sends new connections),
//!   then wait for 0 sessions everywhere, at the deadline cut them or fail;
//!   `maint` after that takes the server out of health checks too. Refused
//!   before any change when an LB would keep fewer than `min_up` others.
//! - ready: `state ready` everywhere, then wait for exactly `UP` everywhere.
//! - weight: set it everywhere; 0 is refused like a drain with no other
//!   server up.
//! - stat: the server and its whole backend on every LB.

use crate::error::WaitTimedOut;
use crate::runtime_api::RuntimeApi;
use crate::{AdminState, HaproxyError, Prior, ServerState};
use remedy_clock::Clock;
use remedy_transport::{StreamTarget, Transport};
use serde::Serialize;
use std::time::{Duration, SystemTime};

/// Reports a long wait: (what, seconds so far).
pub type Waiting<'p> = &'p (dyn Fn(&str, u64) + Send + Sync);

/// How long HAProxy may take to close sessions it was told to cut.
const CUT_GRACE: Duration = Duration::from_secs(10);

/// One load balancer, connected: a transport to it (read-only while
/// planning), its admin socket as seen from it, and the backend.
pub struct Lb {
    pub name: String,
    pub transport: Box<dyn Transport>,
    pub socket: StreamTarget,
    pub backend: String,
}

impl Lb {
    pub fn api<'a>(&'a self, clock: &'a dyn Clock) -> RuntimeApi<'a> {
        RuntimeApi::new(self.transport.as_ref(), self.socket.clone()).with_clock(clock)
    }
}

/// The load balancers in front of one server.
pub struct Fleet<'a> {
    pub lbs: Vec<Lb>,
    /// The server's name on the LBs.
    pub server: String,
    clock: &'a dyn Clock,
}

/// How a drain proceeds.
#[derive(Debug, Clone, Copy)]
pub struct Drain {
    /// One deadline for the sessions to end on every LB.
    pub limit: Duration,
    /// At the deadline, cut the sessions left instead of failing.
    pub shutdown_sessions: bool,
    /// Then put the server in maintenance (out of health checks too).
    pub maint: bool,
    /// Other servers that must keep taking traffic on each LB.
    pub min_up: usize,
}

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Done {
    pub changed: bool,
    pub waited: Duration,
    /// Sessions cut at a drain's deadline.
    pub sessions_cut: u64,
}

/// One server as `haproxy.stat` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct StatEntry {
    pub lb: String,
    pub backend: String,
    pub server: String,
    pub status: String,
    pub admin: AdminState,
    pub weight: u32,
    pub scur: u64,
    pub check_status: Option<String>,
}

/// The server and its backend on every LB.
pub struct Stat {
    /// One line per LB.
    pub summary: String,
    /// Every server of the backend, on every LB.
    pub servers: Vec<StatEntry>,
    /// This server, per LB.
    pub server: Vec<StatEntry>,
    /// The fewest servers taking traffic on any LB.
    pub up: usize,
}

impl StatEntry {
    fn of(lb: &str, s: &ServerState) -> StatEntry {
        StatEntry {
            lb: lb.to_string(),
            backend: s.backend.clone(),
            server: s.server.clone(),
            status: s.status.clone(),
            admin: s.admin,
            weight: s.weight,
            scur: s.scur,
            check_status: s.check_status.clone(),
        }
    }
}

impl Drain {
    /// The admin state a drain leaves the server in.
    pub fn target(&self) -> AdminState {
        if self.maint {
            AdminState::Maint
        } else {
            AdminState::Drain
        }
    }

    /// A server already in maintenance takes no traffic: draining it would
    /// put it *back* into health checks, so it is left alone.
    pub fn sets_drain(s: &ServerState) -> bool {
        s.admin == AdminState::Ready
    }

    /// Nothing left to do on this LB.
    pub fn done(&self, s: &ServerState) -> bool {
        s.scur == 0 && (s.admin == self.target() || s.admin == AdminState::Maint)
    }
}

/// What is left of `limit` after `start`.
fn remaining(clock: &dyn Clock, start: SystemTime, limit: Duration) -> Duration {
    limit.saturating_sub(clock.now().duration_since(start).unwrap_or_default())
}

impl<'a> Fleet<'a> {
    pub fn new(lbs: Vec<Lb>, server: String, clock: &'a dyn Clock) -> Fleet<'a> {
        Fleet { lbs, server, clock }
    }

    fn since(&self, start: SystemTime) -> Duration {
        self.clock.now().duration_since(start).unwrap_or_default()
    }

    /// The server on every LB, as it is now, in LB order.
    pub async fn states(&self) -> Result<Vec<ServerState>, HaproxyError> {
        let mut out = Vec::new();
        for lb in &self.lbs {
            out.push(lb.api(self.clock).server(&lb.backend, &self.server).await?);
        }
        Ok(out)
    }

    /// Each LB's server as found, in LB order.
    pub fn priors(&self, states: &[ServerState]) -> Vec<Prior> {
        (self.lbs.iter().zip(states))
            .map(|(l, s)| Prior::of(&l.name, s))
            .collect()
    }

    /// Failed part-way: put back the first `touched` LBs (newest first) as
    /// `states` found them, then return `err` with what was put back.
    async fn abandon(
        &self,
        states: &[ServerState],
        touched: usize,
        err: HaproxyError,
    ) -> HaproxyError {
        let mut restored = Vec::new();
        let mut stuck = Vec::new();
        for (lb, p) in self.lbs.iter().zip(self.priors(states)).take(touched).rev() {
            match lb.api(self.clock).restore(&p).await {
                Ok(_) => restored.push(p.lb.clone()),
                Err(e) => stuck.push(format!("{e} — restore it {}", p.by_hand())),
            }
        }
        if restored.is_empty() && stuck.is_empty() {
            return err;
        }
        restored.reverse();
        HaproxyError::PutBack {
            cause: Box::new(err),
            restored,
            stuck,
        }
    }

    /// Refuse a drain on every LB before anything changes. Per LB (in LB
    /// order), where the drain takes the server out: the servers of the
    /// backend taking traffic now (this one included) — what a caller
    /// needs to judge several drains in a row.
    pub async fn check_drain(
        &self,
        spec: &Drain,
        states: &[ServerState],
    ) -> Result<Vec<Option<Vec<String>>>, HaproxyError> {
        let mut taking = Vec::new();
        for (lb, s) in self.lbs.iter().zip(states) {
            if !Drain::sets_drain(s) {
                taking.push(None);
                continue;
            }
            let servers = lb
                .api(self.clock)
                .check_drain_allowed(&lb.backend, &self.server, spec.min_up)
                .await?;
            taking.push(Some(
                servers
                    .into_iter()
                    .filter(ServerState::takes_traffic)
                    .map(|s| s.server)
                    .collect(),
            ));
        }
        Ok(taking)
    }

    /// Drain the server on every LB, as the module doc says.
    pub async fn drain(
        &self,
        spec: &Drain,
        states: &[ServerState],
        waiting: Waiting<'_>,
    ) -> Result<Done, HaproxyError> {
        self.check_drain(spec, states).await?;
        match self.drain_all(spec, states, waiting).await {
            Ok(done) => Ok(done),
            Err((touched, e)) => Err(self.abandon(states, touched, e).await),
        }
    }

    async fn drain_all(
        &self,
        spec: &Drain,
        states: &[ServerState],
        waiting: Waiting<'_>,
    ) -> Result<Done, (usize, HaproxyError)> {
        let server = self.server.as_str();
        let all = self.lbs.len();
        for (i, (lb, s)) in self.lbs.iter().zip(states).enumerate() {
            if Drain::sets_drain(s) {
                // `i + 1`: a change whose answer was lost may have happened.
                lb.api(self.clock)
                    .set_state(&lb.backend, server, AdminState::Drain)
                    .await
                    .map_err(|e| (i + 1, e))?;
            }
        }
        let start = self.clock.now();
        let mut sessions_cut = 0;
        for lb in &self.lbs {
            sessions_cut += self
                .wait_empty(spec, lb, start, waiting)
                .await
                .map_err(|e| (all, e))?;
        }
        let waited = self.since(start);
        if spec.maint {
            for (lb, s) in self.lbs.iter().zip(states) {
                if s.admin != AdminState::Maint {
                    lb.api(self.clock)
                        .set_state(&lb.backend, server, AdminState::Maint)
                        .await
                        .map_err(|e| (all, e))?;
                }
            }
        }
        let changed = states
            .iter()
            .any(|s| s.admin != spec.target() && s.admin != AdminState::Maint);
        Ok(Done {
            changed,
            waited,
            sessions_cut,
        })
    }

    /// Wait for no sessions on `lb` within what is left of the deadline;
    /// cut them at the deadline when asked. The sessions cut.
    async fn wait_empty(
        &self,
        spec: &Drain,
        lb: &Lb,
        start: SystemTime,
        waiting: Waiting<'_>,
    ) -> Result<u64, HaproxyError> {
        let (api, server) = (lb.api(self.clock), self.server.as_str());
        let report = |s: &ServerState, waited: Duration| {
            waiting(
                &format!(
                    "{}: {}/{server} to have no sessions ({} now)",
                    lb.name, s.backend, s.scur
                ),
                waited.as_secs(),
            )
        };
        let left = remaining(self.clock, start, spec.limit);
        match api
            .wait_sessions_zero(&lb.backend, server, left, &report)
            .await
        {
            Ok(_) => Ok(0),
            Err(HaproxyError::WaitTimedOut(_)) if spec.shutdown_sessions => {
                let open = api.server(&lb.backend, server).await?.scur;
                api.shutdown_sessions(&lb.backend, server).await?;
                api.wait_sessions_zero(&lb.backend, server, CUT_GRACE, &report)
                    .await?;
                Ok(open)
            }
            Err(HaproxyError::WaitTimedOut(w)) => Err(HaproxyError::SessionsRemain(Box::new(
                // The deadline is shared by every LB: say the one given.
                WaitTimedOut {
                    timeout: spec.limit,
                    ..*w
                },
            ))),
            Err(e) => Err(e),
        }
    }

    /// Ready the server on every LB and wait until it is exactly `UP` on
    /// each within `limit`; put every LB back if it does not come up.
    pub async fn ready(
        &self,
        limit: Duration,
        states: &[ServerState],
        waiting: Waiting<'_>,
    ) -> Result<Done, HaproxyError> {
        match self.ready_all(limit, states, waiting).await {
            Ok(done) => Ok(done),
            Err((touched, e)) => Err(self.abandon(states, touched, e).await),
        }
    }

    async fn ready_all(
        &self,
        limit: Duration,
        states: &[ServerState],
        waiting: Waiting<'_>,
    ) -> Result<Done, (usize, HaproxyError)> {
        let server = self.server.as_str();
        for (i, (lb, s)) in self.lbs.iter().zip(states).enumerate() {
            if s.admin != AdminState::Ready {
                lb.api(self.clock)
                    .set_state(&lb.backend, server, AdminState::Ready)
                    .await
                    .map_err(|e| (i + 1, e))?;
            }
        }
        let start = self.clock.now();
        for lb in &self.lbs {
            let report = |s: &ServerState, waited: Duration| {
                waiting(
                    &format!(
                        "{}: {}/{server} to be UP ({} now)",
                        lb.name, s.backend, s.status
                    ),
                    waited.as_secs(),
                )
            };
            let left = remaining(self.clock, start, limit);
            lb.api(self.clock)
                .wait_status_up(&lb.backend, server, left, &report)
                .await
                .map_err(|e| (self.lbs.len(), e))?;
        }
        Ok(Done {
            changed: states.iter().any(|s| s.admin != AdminState::Ready),
            waited: self.since(start),
            sessions_cut: 0,
        })
    }

    /// Refuse a weight of 0 where the server takes traffic and no other
    /// server of the backend would.
    pub async fn check_weight(
        &self,
        weight: u32,
        states: &[ServerState],
    ) -> Result<(), HaproxyError> {
        if weight != 0 {
            return Ok(());
        }
        for (lb, s) in self.lbs.iter().zip(states) {
            if s.takes_traffic() {
                lb.api(self.clock)
                    .check_drain_allowed(&lb.backend, &self.server, 1)
                    .await?;
            }
        }
        Ok(())
    }

    /// Set the server's weight on every LB where it differs.
    pub async fn set_weight(
        &self,
        weight: u32,
        states: &[ServerState],
    ) -> Result<Done, HaproxyError> {
        for (i, (lb, s)) in self.lbs.iter().zip(states).enumerate() {
            if s.weight == weight {
                continue;
            }
            if let Err(e) = lb
                .api(self.clock)
                .set_weight(&lb.backend, &self.server, weight)
                .await
            {
                return Err(self.abandon(states, i + 1, e).await);
            }
        }
        Ok(Done {
            changed: states.iter().any(|s| s.weight != weight),
            waited: Duration::ZERO,
            sessions_cut: 0,
        })
    }

    /// The server and its whole backend on every LB.
    pub async fn stat(&self) -> Result<Stat, HaproxyError> {
        let server = &self.server;
        let mut stat = Stat {
            summary: format!("{server} on {} LB(s)", self.lbs.len()),
            servers: Vec::new(),
            server: Vec::new(),
            up: 0,
        };
        let mut up: Option<usize> = None;
        for lb in &self.lbs {
            let all = lb.api(self.clock).servers(&lb.backend).await?;
            let Some(own) = all.iter().find(|s| &s.server == server) else {
                return Err(HaproxyError::NoSuchServer {
                    host: lb.name.clone(),
                    backend: lb.backend.clone(),
                    server: server.clone(),
                    known: all.into_iter().map(|s| s.server).collect(),
                });
            };
            let taking = all.iter().filter(|s| s.takes_traffic()).count();
            up = Some(up.map_or(taking, |u| u.min(taking)));
            stat.summary.push_str(&format!(
                "\n{}: {}/{server} {}; {taking} of {} server(s) UP",
                lb.name,
                lb.backend,
                own.shown(),
                all.len()
            ));
            stat.server.push(StatEntry::of(&lb.name, own));
            stat.servers
                .extend(all.iter().map(|s| StatEntry::of(&lb.name, s)));
        }
        stat.up = up.unwrap_or(0);
        Ok(stat)
    }
}
