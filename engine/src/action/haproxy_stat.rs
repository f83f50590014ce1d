//! `haproxy.stat`: this master's server and its whole backend on every load
//! balancer, read through HAProxy's runtime API (`show stat` and
//! `show servers state`). Read-only: it runs fully in a dry-run.

use super::lb;
use super::{result, Action, ActionError, StepCtx};
use crate::plan::Plan;
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaproxyStat {
    server: Option<String>,
}

impl HaproxyStat {
    async fn read(&self, ctx: &StepCtx<'_>) -> Result<(String, Value), ActionError> {
        let server = lb::server_name(ctx, &self.server);
        let lbs = lb::connect_all(ctx).await?;
        let mut servers = Vec::new();
        let mut mine = Vec::new();
        let mut up: Option<usize> = None;
        let mut lines = Vec::new();
        for lb in &lbs {
            let all = lb.api(ctx.clock).servers(&lb.backend).await?;
            let Some(own) = all.iter().find(|s| s.server == server) else {
                return Err(remedy_haproxy::HaproxyError::NoSuchServer {
                    host: lb.name().to_string(),
                    backend: lb.backend.clone(),
                    server,
                    known: all.into_iter().map(|s| s.server).collect(),
                }
                .into());
            };
            let taking = all.iter().filter(|s| s.takes_traffic()).count();
            up = Some(up.map_or(taking, |u| u.min(taking)));
            lines.push(format!(
                "{}: {}/{server} {}; {taking} of {} server(s) UP",
                lb.name(),
                lb.backend,
                lb::shown(own),
                all.len()
            ));
            mine.push(lb::entry(lb.name(), own));
            servers.extend(all.iter().map(|s| lb::entry(lb.name(), s)));
        }
        Ok((
            format!("{server} on {} LB(s)\n{}", lbs.len(), lines.join("\n")),
            result(
                false,
                json!({ "servers": servers, "server": mine, "up": up.unwrap_or(0) }),
            ),
        ))
    }
}

#[async_trait]
impl Action for HaproxyStat {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        let (summary, value) = self.read(ctx).await?;
        Ok(Plan::noop(summary, value))
    }

    async fn apply(&self, ctx: &StepCtx<'_>, _plan: &Plan) -> Result<Value, ActionError> {
        Ok(self.read(ctx).await?.1)
    }
}
