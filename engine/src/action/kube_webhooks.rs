//! `kube.webhooks`: every admission webhook, and those with `failurePolicy:
//! Fail` that can block writes because their backend cannot answer (a
//! service without ready endpoints, a URL that does not answer from this
//! master, or a webhook the API server fails calling on a dry-run probe
//! write). The result groups them per configuration, with the JSON patch
//! that sets `failurePolicy: Ignore` on exactly those — what `kube.patch`
//! takes as `objects`. Read-only.

use super::kube::connect;
use super::{result, Action, ActionError, StepCtx};
use crate::plan::Plan;
use async_trait::async_trait;
use remedy_k8s::webhooks::{self, Finding, UrlProbe};
use remedy_transport::{shell, Transport};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeWebhooks {
    probe_namespace: Option<String>,
}

/// Asks from the master (where the API server calls from) with curl: a
/// URL answers when curl gets any HTTP status.
pub(crate) struct FromMaster<'a>(pub(crate) &'a dyn Transport);

#[async_trait]
impl UrlProbe for FromMaster<'_> {
    async fn answers(&self, url: &str) -> Result<bool, String> {
        let cmd = format!(
            "curl -sk -m 5 -o /dev/null -w '%{{http_code}}' -- {} || true",
            shell::quote(url)
        );
        let out = self
            .0
            .probe(&cmd, Duration::from_secs(15))
            .await
            .map_err(|e| e.to_string())?;
        let code = out.stdout.trim();
        Ok(!code.is_empty() && code != "000")
    }
}

/// The broken webhooks per configuration, as `kube.patch` objects.
fn grouped(broken: &[Finding]) -> Vec<Value> {
    let mut by_config: BTreeMap<(String, String), Vec<&Finding>> = BTreeMap::new();
    for f in broken {
        by_config
            .entry((f.webhook.config.kind.clone(), f.webhook.config.name.clone()))
            .or_default()
            .push(f);
    }
    by_config
        .into_iter()
        .map(|((kind, name), fs)| {
            let indexes: Vec<usize> = fs.iter().map(|f| f.webhook.index).collect();
            json!({
                "api_version": webhooks::API_VERSION,
                "kind": kind,
                "name": name,
                "resource_version": fs[0].webhook.resource_version,
                "webhooks": fs.iter().map(|f| json!({
                    "name": f.webhook.name,
                    "index": f.webhook.index,
                    "backend": f.webhook.backend(),
                    "reasons": f.reasons,
                })).collect::<Vec<_>>(),
                "patch": webhooks::ignore_patch(&indexes),
            })
        })
        .collect()
}

#[async_trait]
impl Action for KubeWebhooks {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        let (summary, value) = self.read(ctx).await?;
        Ok(Plan::noop(summary, value))
    }

    async fn apply(&self, ctx: &StepCtx<'_>, _plan: &Plan) -> Result<Value, ActionError> {
        Ok(self.read(ctx).await?.1)
    }
}

impl KubeWebhooks {
    async fn read(&self, ctx: &StepCtx<'_>) -> Result<(String, Value), ActionError> {
        let kube = connect(ctx).await?;
        let ns = self.probe_namespace.as_deref().unwrap_or("default");
        let survey = webhooks::find_broken(&kube, ns, &FromMaster(ctx.transport)).await?;
        let mut summary = format!(
            "{} webhook(s) on {}, {} with failurePolicy Fail that can block writes",
            survey.webhooks.len(),
            kube.server(),
            survey.broken.len()
        );
        for f in &survey.broken {
            summary.push_str(&format!(
                "\n{} webhook {} → {}: {}",
                f.webhook.config,
                f.webhook.name,
                f.webhook.backend(),
                f.reasons.join("; ")
            ));
        }
        if let Some(e) = &survey.probe_error {
            summary.push_str(&format!("\na probe write (dry run) in {ns} fails: {e}"));
        }
        let hooks: Vec<Value> = survey
            .webhooks
            .iter()
            .map(|w| {
                json!({
                    "config": { "kind": w.config.kind, "name": w.config.name },
                    "index": w.index,
                    "name": w.name,
                    "failure_policy": w.failure_policy,
                    "backend": w.backend(),
                    "rules": w.rules,
                    "timeout_seconds": w.timeout_seconds,
                })
            })
            .collect();
        Ok((
            summary,
            result(
                false,
                json!({
                    "webhooks": hooks,
                    "broken": grouped(&survey.broken),
                    "probe_error": survey.probe_error.unwrap_or_default(),
                }),
            ),
        ))
    }
}
