//! Through the Kubernetes API, when it answers: admission webhooks that can
//! block every write (`failurePolicy: Fail` with a backend that cannot
//! answer), and API Priority and Fairness rejections (clients seeing 429s).
//! Reached like `kube.*` steps by default: through a master's SSH
//! connection with its admin.conf, read-only (a probe write is a server-side
//! dry run). The first master whose API server answers is asked; when none
//! does, the masters' own findings already say why, and this says what was
//! not checked.
//!
//! Also the control-plane Nodes' Ready condition (a master whose kubelet
//! stopped posting it, filed under that master), and the requests in flight
//! against the server's concurrency limit.

use super::{CheckCtx, Collector, Finding, Severity};
use crate::action::kube::{admin_access, api_server};
use crate::action::kube_webhooks::FromMaster;
use async_trait::async_trait;
use remedy_k8s::nodes::{control_plane_nodes, ControlPlaneNode};
use remedy_k8s::webhooks;
use remedy_k8s::{metrics, Kube};
use remedy_transport::{ReadOnly, Transport};
use std::time::Duration;

pub struct Api;

/// The most one master's API server is given before the next is asked.
const PER_MASTER: Duration = Duration::from_secs(4);

/// The host the API-side findings are filed under.
const HOST: &str = "api";

#[async_trait]
impl Collector for Api {
    fn name(&self) -> &'static str {
        "the Kubernetes API"
    }

    async fn collect(&self, ctx: &CheckCtx<'_>) -> Vec<Finding> {
        let mut why_not = Vec::new();
        for host in ctx.masters {
            // Each master gets a slice of the budget, so one that hangs
            // leaves time to ask the next.
            let slice = ctx.left().min(PER_MASTER);
            let asked = tokio::time::timeout(slice, async {
                let raw = ctx
                    .connector
                    .connect(host)
                    .await
                    .map_err(|e| e.to_string())?;
                // Commands and files read-only; a tunnel to the API server
                // is not a change (ReadOnly does not forward tunnels).
                let t = ReadOnly::new(raw.as_ref());
                let access = admin_access(&t, host).await.map_err(|e| e.to_string())?;
                let opener = raw
                    .opener()
                    .ok_or_else(|| format!("the transport to {} cannot open tunnels", host.name))?;
                let kube =
                    Kube::connect(&access.with_server(&api_server(host)), opener, slice, true)
                        .map_err(|e| e.to_string())?;
                // The cheapest call first: a server that does not answer
                // it is skipped for the next master.
                kube.get_text("/livez").await.map_err(|e| e.to_string())?;
                Ok::<_, String>(survey(ctx, &kube, &t, &host.name).await)
            })
            .await
            .map_err(|_| format!("no answer within {:.1}s", slice.as_secs_f64()))
            .and_then(|r| r);
            match asked {
                Ok(found) => return found,
                Err(e) => why_not.push(format!("{}: {e}", host.name)),
            }
        }
        vec![Finding::new(
            HOST,
            "api",
            Severity::Warn,
            "no API server answered: webhooks and API Priority and Fairness were not checked",
        )
        .evidence(why_not)]
    }
}

/// What the API says, asked through `host`'s API server.
async fn survey(ctx: &CheckCtx<'_>, kube: &Kube, t: &dyn Transport, host: &str) -> Vec<Finding> {
    let via = format!("asked through {host}'s API server");
    let mut found = Vec::new();
    match webhooks::find_broken(kube, "default", &FromMaster(t)).await {
        Err(e) => found.push(
            Finding::new(
                HOST,
                "api/webhooks",
                Severity::Warn,
                "cannot list the admission webhooks",
            )
            .evidence([e.to_string()]),
        ),
        Ok(s) if s.broken.is_empty() => found.push(
            Finding::ok(
                HOST,
                "api/webhooks",
                format!(
                    "{} admission webhooks, none with failurePolicy Fail and a dead backend",
                    s.webhooks.len()
                ),
            )
            .evidence([via.clone()]),
        ),
        Ok(s) => {
            for b in &s.broken {
                let w = &b.webhook;
                found.push(
                    Finding::new(
                        HOST,
                        format!("api/webhook/{}", w.config.name),
                        Severity::Critical,
                        format!(
                            "{} {} webhook {} (failurePolicy Fail) blocks the writes it matches: {}",
                            w.config.kind,
                            w.config.name,
                            w.name,
                            b.reasons.join("; ")
                        ),
                    )
                    .evidence(s.probe_error.iter().cloned().chain([via.clone()]))
                    .fix(ctx.run_fix("webhook-deadlock-break", "")),
                );
            }
        }
    }
    match control_plane_nodes(kube).await {
        Err(e) => found.push(
            Finding::new(
                HOST,
                "api/nodes",
                Severity::Warn,
                "cannot list the control-plane Nodes",
            )
            .evidence([e.to_string()]),
        ),
        Ok(nodes) => found.extend(node_findings(ctx, &nodes, &via)),
    }
    match metrics::scrape(kube).await {
        Err(e) => found.push(
            Finding::new(
                HOST,
                "api/flowcontrol",
                Severity::Warn,
                "cannot read /metrics",
            )
            .evidence([e.to_string()]),
        ),
        Ok(m) => {
            found.push(inflight_finding(&m, &via));
            let rejected = metrics::apf_rejections(&m);
            found.push(if rejected.is_empty() {
                Finding::ok(HOST, "api/flowcontrol", "API Priority and Fairness rejected no request")
                    .evidence([via])
            } else {
                let total: f64 = rejected.iter().map(|r| r.3).sum();
                Finding::new(
                    HOST,
                    "api/flowcontrol",
                    Severity::Warn,
                    format!("API Priority and Fairness rejected {total} requests (429) since the API server started"),
                )
                .evidence(rejected.iter().take(5).map(|(p, f, r, v)| {
                    format!("apiserver_flowcontrol_rejected_requests_total{{priority_level=\"{p}\",flow_schema=\"{f}\",reason=\"{r}\"}} {v}")
                }))
            });
        }
    }
    found
}

/// Each control-plane Node's Ready, under its master when the inventory
/// has it (only the masters asked for, with `--limit`), under `api` when
/// the inventory does not know it.
fn node_findings(ctx: &CheckCtx<'_>, nodes: &[ControlPlaneNode], via: &str) -> Vec<Finding> {
    let known = |n: &str| ctx.masters.iter().chain(ctx.etcd).any(|h| h.name == n);
    let asked = |n: &str| ctx.masters.iter().any(|h| h.name == n);
    if nodes.is_empty() {
        return vec![Finding::new(
            HOST,
            "api/nodes",
            Severity::Warn,
            format!(
                "no Node has the {} label: the control plane's kubelets never registered",
                remedy_k8s::nodes::CONTROL_PLANE_LABEL
            ),
        )
        .evidence([via.to_string()])];
    }
    nodes
        .iter()
        .filter(|n| asked(&n.name) || !known(&n.name))
        .map(|n| {
            let host = if known(&n.name) { n.name.as_str() } else { HOST };
            let check = if known(&n.name) {
                "node".to_string()
            } else {
                format!("node/{}", n.name)
            };
            match n.ready {
                Some(true) => Finding::ok(host, check, "the Node is Ready").evidence([via.to_string()]),
                _ => Finding::new(
                    host,
                    check,
                    Severity::Critical,
                    format!(
                        "Node {} is not Ready: its kubelet stopped posting status (static pods are not restarted, and its pods get evicted){}",
                        n.name,
                        if known(&n.name) { "" } else { " — and the inventory does not know this control-plane Node" }
                    ),
                )
                .evidence(n.why_not_ready.iter().cloned().chain([via.to_string()]))
                .fix(Some(format!(
                    "on {}: systemctl status kubelet; journalctl -u kubelet -n 50; systemctl restart kubelet",
                    n.name
                ))),
            }
        })
        .collect()
}

/// At or above this share of the server's concurrency limit, a warning.
const INFLIGHT_WARN: f64 = 0.8;

/// Requests being served against the limit they share: with API Priority
/// and Fairness (the default) the server's concurrency limit is
/// `--max-requests-inflight` + `--max-mutating-requests-inflight`, split
/// into the priority levels' nominal seats.
fn inflight_finding(m: &metrics::Metrics, via: &str) -> Finding {
    let inflight = m.sum("apiserver_current_inflight_requests", &[]);
    let limit = m.sum("apiserver_flowcontrol_nominal_limit_seats", &[]);
    let seen = format!(
        "apiserver_current_inflight_requests {inflight}; apiserver_flowcontrol_nominal_limit_seats (summed) {limit}"
    );
    if limit <= 0.0 {
        return Finding::ok(
            HOST,
            "api/inflight",
            format!("{inflight} requests in flight (no concurrency limit reported)"),
        )
        .evidence([seen, via.to_string()]);
    }
    let share = inflight / limit;
    let message = format!(
        "{inflight} requests in flight of the server's {limit} ({:.0}%)",
        share * 100.0
    );
    if share >= INFLIGHT_WARN {
        Finding::new(HOST, "api/inflight", Severity::Warn, format!("{message}: close to the limit, new requests queue and then get 429s (--max-requests-inflight, --max-mutating-requests-inflight)"))
            .evidence([seen, via.to_string()])
    } else {
        Finding::ok(HOST, "api/inflight", message).evidence([seen, via.to_string()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inflight_is_judged_against_the_summed_nominal_seats() {
        let m = |inflight: u32| {
            metrics::Metrics::parse(&format!(
                "apiserver_current_inflight_requests{{request_kind=\"mutating\"}} 10\n\
                 apiserver_current_inflight_requests{{request_kind=\"readOnly\"}} {inflight}\n\
                 apiserver_flowcontrol_nominal_limit_seats{{priority_level=\"a\"}} 400\n\
                 apiserver_flowcontrol_nominal_limit_seats{{priority_level=\"b\"}} 200\n"
            ))
        };
        let calm = inflight_finding(&m(1), "v");
        assert_eq!(calm.severity, Severity::Ok, "{calm:?}");
        let busy = inflight_finding(&m(480), "v");
        assert_eq!(busy.severity, Severity::Warn, "{busy:?}");
        assert!(
            busy.message
                .starts_with("490 requests in flight of the server's 600 (82%)"),
            "{}",
            busy.message
        );
    }
}
