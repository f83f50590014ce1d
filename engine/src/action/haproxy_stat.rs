//! `haproxy.stat`: this master's server and its whole backend on every load
//! balancer, read through HAProxy's runtime API (`show stat` and
//! `show servers state`; `remedy_haproxy::Fleet::stat`). Read-only: it runs
//! fully in a dry-run.

use super::lb;
use super::{result, ActionError, Reads, StepCtx};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaproxyStat {
    server: Option<String>,
}

#[async_trait]
impl Reads for HaproxyStat {
    async fn read(&self, ctx: &StepCtx<'_>) -> Result<(String, Value), ActionError> {
        let stat = lb::fleet(ctx, &self.server).await?.stat().await?;
        let fields = json!({ "servers": stat.servers, "server": stat.server, "up": stat.up });
        Ok((stat.summary, result(false, fields)))
    }
}
