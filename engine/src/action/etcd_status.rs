//! `etcd.status`: every member's id, endpoint, leadership, raft term and
//! index, revision, database size and size in use, fragmentation, alarms,
//! version and health — like `etcdctl endpoint status -w table`
//! (`remedy_etcd::Cluster::status_report`). Read-only.

use super::etcd::connect_all;
use super::{result, ActionError, Reads, StepCtx};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdStatus {}

#[async_trait]
impl Reads for EtcdStatus {
    async fn read(&self, ctx: &StepCtx<'_>) -> Result<(String, Value), ActionError> {
        let report = connect_all(ctx).await?.status_report().await;
        Ok((report.summary, result(false, report.fields)))
    }
}
