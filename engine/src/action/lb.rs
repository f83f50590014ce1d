//! What the `haproxy.*` actions share: the load balancers in front of a
//! master (the inventory's group `lbs`), reached through the run's
//! connector; this master's server name on them; the state found before a
//! change (`prior`), and putting it back.
//!
//! A change is made on every LB or on none: when one LB fails part-way, the
//! LBs already changed are put back before the step fails, so nothing is
//! left half-done. A step that finished records `prior` in its result, and
//! rollback puts exactly that back ([`restore_recorded`]); what a prior
//! state is and how HAProxy is told to restore it is `remedy_haproxy::Prior`.

use super::{ActionError, StepCtx};
use crate::inventory::Host;
use remedy_clock::Clock;
pub use remedy_haproxy::Prior;
use remedy_haproxy::{RuntimeApi, ServerState};
use remedy_transport::{StreamTarget, Transport};
use serde_json::{json, Value};
use std::time::Duration;

/// One load balancer, connected.
pub struct Lb<'h> {
    pub host: &'h Host,
    transport: Box<dyn Transport>,
    socket: StreamTarget,
    pub backend: String,
}

impl Lb<'_> {
    pub fn name(&self) -> &str {
        &self.host.name
    }

    pub fn api<'a>(&'a self, clock: &'a dyn Clock) -> RuntimeApi<'a> {
        RuntimeApi::new(self.transport.as_ref(), self.socket.clone()).with_clock(clock)
    }
}

/// The admin socket of an LB host: `haproxy_socket` (a unix path on the LB)
/// or `haproxy_admin` (`host:port`, as seen from the LB).
fn socket_of(lb: &Host) -> Result<StreamTarget, ActionError> {
    if let Some(path) = lb.var("haproxy_socket") {
        return Ok(StreamTarget::Unix(path));
    }
    let Some(addr) = lb.var("haproxy_admin") else {
        return Err(ActionError::precondition(
            format!("load balancer {} has neither host var haproxy_socket nor haproxy_admin", lb.name),
            "set haproxy_socket to the path of a `stats socket … level admin` from haproxy.cfg (or haproxy_admin: HOST:PORT for an `ipv4@` one)",
        ));
    };
    remedy_haproxy::tcp_socket(&addr).ok_or_else(|| {
        ActionError::precondition(
            format!(
                "host var haproxy_admin of {} is `{addr}`, not HOST:PORT",
                lb.name
            ),
            "e.g. haproxy_admin: 127.0.0.1:9999",
        )
    })
}

/// Every LB of the inventory, connected (read-only while planning). Fails
/// before anything is sent when there is none, a var is missing, or one
/// cannot be reached.
pub async fn connect_all<'a>(ctx: &StepCtx<'a>) -> Result<Vec<Lb<'a>>, ActionError> {
    if ctx.lbs.is_empty() {
        return Err(ActionError::precondition(
            "the inventory has no load balancers: haproxy.* steps act on the hosts of group `lbs`",
            "add the LB hosts to group lbs with host vars haproxy_socket and haproxy_backend, or guard the step with `when: host.lbs.len() > 0`",
        ));
    }
    let mut out = Vec::new();
    for lb in ctx.lbs {
        let socket = socket_of(lb)?;
        let backend = lb.var("haproxy_backend").ok_or_else(|| {
            ActionError::precondition(
                format!("load balancer {} has no host var haproxy_backend", lb.name),
                "set haproxy_backend to the backend that balances the API servers (e.g. kube-apiserver)",
            )
        })?;
        let transport = ctx.connect_peer(lb).await?;
        out.push(Lb {
            host: lb,
            transport,
            socket,
            backend,
        });
    }
    Ok(out)
}

/// This master's server name on the LBs: the `server` argument, else host
/// var `haproxy_server`, else its inventory name.
pub fn server_name(ctx: &StepCtx<'_>, arg: &Option<String>) -> String {
    arg.clone()
        .or_else(|| ctx.host.var("haproxy_server"))
        .unwrap_or_else(|| ctx.host.name.clone())
}

/// Each LB's server as found, in LB order.
pub fn priors(lbs: &[Lb<'_>], states: &[ServerState]) -> Vec<Prior> {
    lbs.iter()
        .zip(states)
        .map(|(l, s)| Prior::of(l.name(), s))
        .collect()
}

/// `ready (UP, weight 1, 0 sessions)`: a server as plans show it.
pub fn shown(s: &ServerState) -> String {
    format!(
        "{} ({}, weight {}, {} session{})",
        s.admin,
        s.status,
        s.weight,
        s.scur,
        if s.scur == 1 { "" } else { "s" }
    )
}

/// One server as `haproxy.stat` reports it.
pub fn entry(lb: &str, s: &ServerState) -> Value {
    json!({
        "lb": lb,
        "backend": s.backend,
        "server": s.server,
        "status": s.status,
        "admin": s.admin,
        "weight": s.weight,
        "scur": s.scur,
        "check_status": s.check_status,
    })
}

/// This master's server on every LB, as it is now.
pub async fn read_all(
    ctx: &StepCtx<'_>,
    lbs: &[Lb<'_>],
    server: &str,
) -> Result<Vec<ServerState>, ActionError> {
    let mut out = Vec::new();
    for lb in lbs {
        out.push(lb.api(ctx.clock).server(&lb.backend, server).await?);
    }
    Ok(out)
}

/// A step failed part-way: put back the first `touched` LBs (newest first),
/// then fail with `err`, saying what was put back — or what could not be
/// and how to do it by hand.
pub async fn abandon(
    ctx: &StepCtx<'_>,
    lbs: &[Lb<'_>],
    priors: &[Prior],
    touched: usize,
    err: ActionError,
) -> ActionError {
    let mut restored = Vec::new();
    let mut stuck = Vec::new();
    for (lb, p) in lbs.iter().zip(priors).take(touched).rev() {
        match lb.api(ctx.clock).restore(p).await {
            Ok(_) => restored.push(p.lb.clone()),
            Err(e) => stuck.push(format!("{e} — restore it {}", p.by_hand())),
        }
    }
    if restored.is_empty() && stuck.is_empty() {
        return err;
    }
    let hint = err.hint().map(str::to_string);
    let mut message = err.to_string();
    if !restored.is_empty() {
        restored.reverse();
        message.push_str(&format!(
            "; the server was put back as it was on {}",
            restored.join(", ")
        ));
    }
    if !stuck.is_empty() {
        message.push_str(&format!("; and NOT put back: {}", stuck.join("; ")));
    }
    ActionError::Failed { message, hint }
}

/// Rollback of a finished `haproxy.drain|ready|weight`: put each server
/// back as its result's `prior` recorded (weight and admin state), newest
/// LB first. Every LB is tried; the first failure is returned after.
pub async fn restore_recorded(
    ctx: &StepCtx<'_>,
    result: &Value,
) -> Result<Vec<String>, ActionError> {
    let priors: Vec<Prior> =
        serde_json::from_value(result["prior"].clone()).map_err(|e| ActionError::Failed {
            message: format!("the step's recorded `prior` is unreadable: {e}"),
            hint: None,
        })?;
    let mut restored = Vec::new();
    let mut failures = Vec::new();
    for p in priors.iter().rev() {
        let Some(host) = ctx.lbs.iter().find(|h| h.name == p.lb) else {
            failures.push(format!(
                "{} is no longer a load balancer of the inventory — restore it {}",
                p.lb,
                p.by_hand()
            ));
            continue;
        };
        let lb = match (socket_of(host), ctx.connect_peer(host).await) {
            (Ok(socket), Ok(transport)) => Lb {
                host,
                transport,
                socket,
                backend: p.backend.clone(),
            },
            (Err(e), _) | (_, Err(e)) => {
                failures.push(format!("{e} — restore it {}", p.by_hand()));
                continue;
            }
        };
        match lb.api(ctx.clock).restore(p).await {
            Ok(line) => restored.push(line),
            Err(e) => failures.push(format!("{e} — restore it {}", p.by_hand())),
        }
    }
    if failures.is_empty() {
        Ok(restored)
    } else {
        Err(ActionError::Failed {
            message: format!(
                "{}{}",
                failures.join("; "),
                if restored.is_empty() {
                    String::new()
                } else {
                    format!(" (put back: {})", restored.join("; "))
                }
            ),
            hint: None,
        })
    }
}

/// What is left of `limit` after `start`, on the step's clock.
pub fn remaining(ctx: &StepCtx<'_>, start: std::time::SystemTime, limit: Duration) -> Duration {
    limit.saturating_sub(ctx.clock.now().duration_since(start).unwrap_or_default())
}
