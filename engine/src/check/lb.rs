//! The load balancers: every master's server on every LB (group `lbs`),
//! through HAProxy's admin socket, read-only.

use super::{within, CheckCtx, Collector, Finding, Severity};
use async_trait::async_trait;
use remedy_haproxy::{AdminState, RuntimeApi};
use remedy_transport::{ReadOnly, StreamTarget};

pub struct LoadBalancers;

#[async_trait]
impl Collector for LoadBalancers {
    fn name(&self) -> &'static str {
        "load balancers"
    }

    async fn collect(&self, ctx: &CheckCtx<'_>) -> Vec<Finding> {
        let each = ctx.lbs.iter().map(|lb| async move {
            let check = format!("lb/{}", lb.name);
            let socket = match (lb.var("haproxy_socket"), lb.var("haproxy_admin")) {
                (Some(path), _) => Some(StreamTarget::Unix(path)),
                (None, Some(addr)) => remedy_haproxy::tcp_socket(&addr),
                (None, None) => None,
            };
            let (Some(socket), Some(backend)) = (socket, lb.var("haproxy_backend")) else {
                return vec![Finding::new(
                    &lb.name,
                    check,
                    Severity::Warn,
                    "no haproxy_socket/haproxy_admin or haproxy_backend host var: not checked",
                )];
            };
            let servers = within(ctx, &format!("HAProxy on {}", lb.name), async {
                let t =
                    ReadOnly::owned(ctx.connector.connect(lb).await.map_err(|e| e.to_string())?);
                RuntimeApi::new(&t, socket)
                    .with_timeout(ctx.left())
                    .servers(&backend)
                    .await
                    .map_err(|e| e.to_string())
            })
            .await
            .and_then(|r| r);
            let servers = match servers {
                Ok(s) => s,
                Err(e) => {
                    return vec![Finding::new(
                        &lb.name,
                        check,
                        Severity::Critical,
                        format!("cannot read HAProxy: {}", e.lines().next().unwrap_or("")),
                    )
                    .evidence([e])]
                }
            };
            ctx.masters
                .iter()
                .map(|m| {
                    let server = m.var("haproxy_server").unwrap_or_else(|| m.name.clone());
                    match servers.iter().find(|s| s.server == server) {
                        None => Finding::new(
                            &m.name,
                            check.clone(),
                            Severity::Warn,
                            format!("not in backend {backend} on {}", lb.name),
                        ),
                        Some(s) if s.admin != AdminState::Ready => Finding::new(
                            &m.name,
                            check.clone(),
                            Severity::Warn,
                            format!("{} on {}: takes no new connections", s.shown(), lb.name),
                        )
                        .fix(ctx.run_fix("lb-ready", &format!("-l {}", m.name))),
                        Some(s) if !s.is_up() => Finding::new(
                            &m.name,
                            check.clone(),
                            Severity::Critical,
                            format!("{} on {}: fails HAProxy's health check", s.shown(), lb.name),
                        )
                        .evidence(s.check_status.clone()),
                        Some(s) => Finding::ok(
                            &m.name,
                            check.clone(),
                            format!("{} on {}", s.shown(), lb.name),
                        ),
                    }
                })
                .collect()
        });
        futures::future::join_all(each)
            .await
            .into_iter()
            .flatten()
            .collect()
    }
}
