//! `etcd.status`: every member's id, endpoint, leadership, raft term and
//! index, revision, database size and size in use, fragmentation, alarms,
//! version and health — like `etcdctl endpoint status -w table`
//! (`remedy_etcd::Cluster::status_report`). Read-only.

use super::etcd::connect_all;
use super::{result, Action, ActionError, StepCtx};
use crate::plan::Plan;
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdStatus {}

impl EtcdStatus {
    async fn read(&self, ctx: &StepCtx<'_>) -> Result<(String, Value), ActionError> {
        let report = connect_all(ctx).await?.status_report().await;
        Ok((report.summary, result(false, report.fields)))
    }
}

#[async_trait]
impl Action for EtcdStatus {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        let (summary, value) = self.read(ctx).await?;
        Ok(Plan::noop(summary, value))
    }

    async fn apply(&self, ctx: &StepCtx<'_>, _plan: &Plan) -> Result<Value, ActionError> {
        Ok(self.read(ctx).await?.1)
    }
}
