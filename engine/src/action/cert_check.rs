//! `cert.check`: every certificate of a master — the PKI directory and the
//! client certificates embedded in the kubeconfigs — with subject, issuer,
//! expiry and whether its CA's key is present, like
//! `kubeadm certs check-expiration` (`remedy_pki::Layout::expiration`).
//! Read-only: it runs fully in a dry-run. Also what `cert.renew` shares:
//! where the PKI is, and reading it.

use super::{result, ActionError, Reads, StepCtx};
use async_trait::async_trait;
use remedy_pki::{kubeadm, Found, Layout, PkiError};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertCheck {
    pki: Option<String>,
    kubeconfigs: Option<Vec<String>>,
}

/// Where the PKI and kubeconfigs are on this host: the arguments, else
/// host vars `pki_dir` / `kube_dir`, else kubeadm's (`names` under it).
pub fn layout(
    ctx: &StepCtx<'_>,
    pki: &Option<String>,
    kubeconfigs: &Option<Vec<String>>,
    names: &[&str],
) -> Layout {
    let kube = ctx
        .host
        .var("kube_dir")
        .unwrap_or_else(|| "/etc/kubernetes".into());
    let pki_dir = pki
        .clone()
        .or_else(|| ctx.host.var("pki_dir"))
        .unwrap_or_else(|| format!("{kube}/pki"));
    let confs = kubeconfigs
        .clone()
        .unwrap_or_else(|| names.iter().map(|n| format!("{kube}/{n}")).collect());
    Layout::new(pki_dir, confs)
}

/// Read what the layout names from the host: certificates and kubeconfigs
/// where they exist, and which CA keys exist.
pub async fn read_pki(ctx: &StepCtx<'_>, layout: &Layout) -> Result<Found, ActionError> {
    let t = ctx.transport;
    if t.stat(&layout.pki_dir).await?.is_none() {
        return Err(ActionError::precondition(
            format!("no PKI directory {} on {}", layout.pki_dir, ctx.host.name),
            "set the host var `pki_dir` (or `kube_dir`) in the inventory",
        ));
    }
    let mut found = Found::default();
    for key in layout.keys() {
        if t.stat(&key).await?.is_some() {
            found.mark_present(&key);
        }
    }
    for path in layout.contents() {
        if t.stat(&path).await?.is_some() {
            found.add(&path, t.read_file(&path).await?);
        }
    }
    Ok(found)
}

pub fn now_unix(ctx: &StepCtx<'_>) -> i64 {
    ctx.clock
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl From<PkiError> for ActionError {
    fn from(e: PkiError) -> ActionError {
        ActionError::failed(e.to_string())
    }
}

#[async_trait]
impl Reads for CertCheck {
    async fn read(&self, ctx: &StepCtx<'_>) -> Result<(String, Value), ActionError> {
        let mut names = kubeadm::KUBECONFIGS.to_vec();
        names.push(kubeadm::KUBELET_CONF);
        let layout = layout(ctx, &self.pki, &self.kubeconfigs, &names);
        let found = read_pki(ctx, &layout).await?;
        let report = layout.expiration(&found, now_unix(ctx))?;
        let (min_days_left, expired) = (report.min_days_left(), report.expired());
        let summary = format!(
            "{} certificates, {}; earliest renewable expiry in {min_days_left} days\n{}",
            report.entries.len(),
            if expired == 0 {
                "none expired".to_string()
            } else {
                format!("{expired} EXPIRED")
            },
            report.table()
        );
        Ok((
            summary,
            result(
                false,
                json!({ "certificates": report.entries, "min_days_left": min_days_left, "expired": expired, "external_ca": report.external_ca() }),
            ),
        ))
    }
}
