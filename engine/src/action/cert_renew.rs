//! `cert.renew`: what `kubeadm certs renew all` does — a new key for each leaf
//! certificate, CN/O/SANs/usages copied, signed by the local CA for a year, and
//! the client certificates embedded in the kubeconfigs rewritten — either by
//! running kubeadm on the host or natively (`method: native`), the renewal
//! worked out by `remedy_pki::Renewal`.
//!
//! Never touches the CAs, `sa.*` or kubelet.conf; refuses when a CA key is
//! absent (an externally managed CA). Every file it writes is declared, so the
//! engine backs it up first and rollback restores it byte for byte.

use super::cert_check::{layout, now_unix, read_pki};
use super::{result, Action, ActionError, StepCtx};
use crate::plan::{Change, Plan};
use async_trait::async_trait;
use remedy_pki::{kubeadm, renewal::NOT_RENEWED, Found, Layout, Renewal};
use remedy_transport::WriteAttrs;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertRenew {
    method: Option<String>,
    pki: Option<String>,
    kubeconfigs: Option<Vec<String>>,
}

/// What this step would do on this host.
struct Work {
    method: &'static str,
    layout: Layout,
    found: Found,
    renewal: Renewal,
}

impl CertRenew {
    async fn method(&self, ctx: &StepCtx<'_>) -> Result<&'static str, ActionError> {
        match self.method.as_deref().unwrap_or("auto") {
            "native" => Ok("native"),
            "kubeadm" => Ok("kubeadm"),
            "auto" => {
                let has = ctx
                    .transport
                    .probe("command -v kubeadm >/dev/null 2>&1", ctx.command_timeout)
                    .await?
                    .success();
                Ok(if has { "kubeadm" } else { "native" })
            }
            other => Err(ActionError::BadArguments {
                action: "cert.renew",
                message: format!("method `{other}` is not auto, kubeadm or native"),
            }),
        }
    }

    async fn work(&self, ctx: &StepCtx<'_>) -> Result<Work, ActionError> {
        let method = self.method(ctx).await?;
        let layout = layout(ctx, &self.pki, &self.kubeconfigs, kubeadm::KUBECONFIGS);
        let found = read_pki(ctx, &layout).await?;
        let missing_keys = layout.missing_ca_keys(&found);
        if !missing_keys.is_empty() {
            return Err(ActionError::Precondition {
                message: format!("externally managed CA on {}: {} absent, so remedy cannot sign renewed certificates; nothing was changed", ctx.host.name, missing_keys.join(", ")),
                hint: Some("renew these certificates through the CA that issued them (kubeadm certs generate-csr), then restart the control plane with the static-pod-restart runbook".into()),
            });
        }
        let renewal = layout.renewal(&found, now_unix(ctx))?;
        Ok(Work {
            method,
            layout,
            found,
            renewal,
        })
    }

    fn result(method: &str, renewed: Vec<String>) -> Value {
        let not_renewed: Vec<Value> = (NOT_RENEWED.iter())
            .map(|(what, why)| json!({ "name": what, "reason": why }))
            .collect();
        result(
            true,
            json!({ "method": method, "renewed": renewed, "not_renewed": not_renewed }),
        )
    }
}

#[async_trait]
impl Action for CertRenew {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        let w = self.work(ctx).await?;
        let mut changes: Vec<Change> = w.renewal.expiries.iter().map(Change::certificate).collect();
        if w.method == "kubeadm" {
            let cmd = "kubeadm certs renew all".into();
            changes.insert(0, Change::Command { cmd });
        }
        Ok(Plan {
            summary: format!(
                "renew {} certificates ({}) in {}; not renewed: {}",
                w.renewal.targets.len(),
                w.method,
                w.layout.pki_dir,
                NOT_RENEWED
                    .iter()
                    .map(|(what, why)| format!("{what} ({why})"))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            changes,
            modifies: w.renewal.modifies,
            result: None,
        })
    }

    async fn apply(&self, ctx: &StepCtx<'_>, _plan: &Plan) -> Result<Value, ActionError> {
        let t = ctx.transport;
        let Work {
            method,
            layout,
            mut found,
            renewal,
        } = self.work(ctx).await?;
        if method == "kubeadm" {
            let out = t
                .exec("kubeadm certs renew all", ctx.command_timeout)
                .await?;
            if !out.success() {
                return Err(ActionError::failed(format!(
                    "`kubeadm certs renew all` exited {:?}: {}",
                    out.status,
                    super::tail(&out.stderr)
                )));
            }
            return Ok(Self::result("kubeadm", renewal.names()));
        }
        for path in renewal.ca_files(&layout) {
            if found.get(&path).is_none() {
                found.add(&path, t.read_file(&path).await?);
            }
        }
        let (files, renewed) = renewal.renew(&layout, &found, now_unix(ctx))?;
        for f in files {
            let attrs = WriteAttrs {
                mode: f.private.then_some(0o600),
                owner: None,
            };
            t.write_file_atomic(&f.path, &f.bytes, attrs).await?;
        }
        Ok(Self::result("native", renewed))
    }
}
