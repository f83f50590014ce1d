//! What the `haproxy.*` actions share: the load balancers in front of a
//! master (the inventory's group `lbs`), reached through the run's
//! connector, as a `remedy_haproxy::Fleet` — which changes them all or none
//! and puts back what it changed when one fails; this master's server name
//! on them; HAProxy's errors as the step's; and rollback of a finished step
//! from the `prior` its result recorded ([`restore_recorded`]).

use super::{ActionError, StepCtx};
use crate::inventory::Host;
use remedy_haproxy::{Fleet, HaproxyError, Lb, Prior};
use remedy_transport::StreamTarget;
use serde_json::Value;

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

/// This master's server (the `server` argument, else host var
/// `haproxy_server`, else its inventory name) on every LB of the inventory,
/// connected (read-only while planning). Fails before anything is sent when
/// there is none, a var is missing, or one cannot be reached.
pub async fn fleet<'a>(
    ctx: &StepCtx<'a>,
    server: &Option<String>,
) -> Result<Fleet<'a>, ActionError> {
    let server = server
        .clone()
        .or_else(|| ctx.host.var("haproxy_server"))
        .unwrap_or_else(|| ctx.host.name.clone());
    if ctx.lbs.is_empty() {
        return Err(ActionError::precondition(
            "the inventory has no load balancers: haproxy.* steps act on the hosts of group `lbs`",
            "add the LB hosts to group lbs with host vars haproxy_socket and haproxy_backend, or guard the step with `when: host.lbs.len() > 0`",
        ));
    }
    let mut lbs = Vec::new();
    for lb in ctx.lbs {
        let socket = socket_of(lb)?;
        let backend = lb.var("haproxy_backend").ok_or_else(|| {
            ActionError::precondition(
                format!("load balancer {} has no host var haproxy_backend", lb.name),
                "set haproxy_backend to the backend that balances the API servers (e.g. kube-apiserver)",
            )
        })?;
        lbs.push(Lb {
            name: lb.name.clone(),
            transport: ctx.connect_peer(lb).await?,
            socket,
            backend,
        });
    }
    Ok(Fleet::new(lbs, server, ctx.clock))
}

impl From<HaproxyError> for ActionError {
    /// Errors with a next step of their own, and changes put back after a
    /// failure, fail the step with that message and hint.
    fn from(e: HaproxyError) -> ActionError {
        match (&e, e.hint()) {
            (HaproxyError::PutBack { .. }, hint) | (_, hint @ Some(_)) => ActionError::Failed {
                hint: hint.map(str::to_string),
                message: e.to_string(),
            },
            _ => ActionError::Haproxy(e),
        }
    }
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
                name: host.name.clone(),
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
