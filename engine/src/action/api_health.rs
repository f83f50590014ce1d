//! `api.health`: `/livez` and `/readyz?verbose` of the API server on this
//! master (or on every target master, `all: true`) through its own SSH
//! tunnel, and through the address its admin.conf names — the load
//! balancer in a kubeadm cluster. Each answer is parsed into named checks.
//! A server that does not answer is reported, not a failed step: a runbook
//! decides with `assert`/`when` over `ok`, `healthy` and `servers`.
//! Read-only.

use super::kube::{api_server, connect_via};
use super::{result, Action, ActionError, StepCtx};
use crate::inventory::Host;
use crate::plan::Plan;
use async_trait::async_trait;
use remedy_k8s::health::{health, Health};
use remedy_transport::Transport;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiHealth {
    #[serde(default)]
    all: bool,
    through_lb: Option<bool>,
}

/// One server's two answers, or why there are none.
async fn ask(ctx: &StepCtx<'_>, t: &dyn Transport, host: &Host, through_lb: bool) -> Value {
    let via = if through_lb { "load balancer" } else { "own" };
    let kube = match connect_via(ctx, t, host, through_lb).await {
        Ok(k) => k,
        Err(e) => {
            return json!({ "host": host.name, "via": via, "server": if through_lb { Value::Null } else { json!(api_server(host)) }, "ok": false, "error": e.to_string() })
        }
    };
    let mut out = json!({ "host": host.name, "via": via, "server": kube.server() });
    let mut ok = true;
    let mut failed = Vec::new();
    let mut checks = serde_json::Map::new();
    for endpoint in ["livez", "readyz"] {
        match health(&kube, endpoint).await {
            Ok(Health {
                ok: good,
                checks: c,
                ..
            }) => {
                ok &= good;
                failed.extend(c.iter().filter(|x| !x.ok).map(|x| x.name.clone()));
                out[endpoint] = json!(good);
                checks.insert(endpoint.into(), json!(c));
            }
            Err(e) => {
                ok = false;
                out[endpoint] = json!(false);
                out["error"] = json!(e.to_string());
                break;
            }
        }
    }
    out["ok"] = json!(ok);
    out["failed"] = json!(failed);
    out["checks"] = Value::Object(checks);
    out
}

impl ApiHealth {
    async fn read(&self, ctx: &StepCtx<'_>) -> Result<(String, Value), ActionError> {
        let hosts: Vec<&Host> = if self.all {
            ctx.targets.iter().collect()
        } else {
            vec![ctx.host]
        };
        let mut servers = Vec::new();
        for host in hosts {
            if host.name == ctx.host.name {
                servers.push(ask(ctx, ctx.transport, host, false).await);
                continue;
            }
            match ctx.connect_peer(host).await {
                Ok(t) => servers.push(ask(ctx, t.as_ref(), host, false).await),
                Err(e) => servers.push(json!({ "host": host.name, "via": "own", "server": api_server(host), "ok": false, "error": e.to_string() })),
            }
        }
        if self.through_lb.unwrap_or(true) {
            servers.push(ask(ctx, ctx.transport, ctx.host, true).await);
        }
        let healthy = servers.iter().filter(|s| s["ok"] == true).count();
        let mut summary = format!("{healthy} of {} API server check(s) healthy", servers.len());
        for s in &servers {
            let state = if s["ok"] == true {
                "ok".to_string()
            } else if let Some(e) = s["error"].as_str() {
                format!("NOT ANSWERING: {e}")
            } else {
                format!("NOT READY: {}", s["failed"])
            };
            summary.push_str(&format!(
                "\n{} ({}, {}): {state}",
                s["host"].as_str().unwrap_or_default(),
                s["via"].as_str().unwrap_or_default(),
                s["server"].as_str().unwrap_or("?"),
            ));
        }
        let total = servers.len();
        Ok((
            summary,
            result(
                false,
                json!({ "servers": servers, "healthy": healthy, "total": total, "ok": healthy == total }),
            ),
        ))
    }
}

#[async_trait]
impl Action for ApiHealth {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        let (summary, value) = self.read(ctx).await?;
        Ok(Plan::noop(summary, value))
    }

    async fn apply(&self, ctx: &StepCtx<'_>, _plan: &Plan) -> Result<Value, ActionError> {
        Ok(self.read(ctx).await?.1)
    }
}
