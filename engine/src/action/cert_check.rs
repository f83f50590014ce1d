//! `cert.check`: every certificate of a master — the PKI directory and the
//! client certificates embedded in the kubeconfigs — with subject, issuer,
//! expiry and whether its CA's key is present, like
//! `kubeadm certs check-expiration`. Read-only: it runs fully in a dry-run.

use super::{result, Action, ActionError, StepCtx};
use crate::plan::Plan;
use async_trait::async_trait;
use remedy_pki::{self as pki, kubeadm, ClientCredential, Expiration};
use remedy_transport::Transport;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertCheck {
    pki: Option<String>,
    kubeconfigs: Option<Vec<String>>,
}

/// Where the PKI and kubeconfigs are on this host.
pub fn locations(
    ctx: &StepCtx<'_>,
    pki: &Option<String>,
    kubeconfigs: &Option<Vec<String>>,
    names: &[&str],
) -> (String, Vec<String>) {
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
    (pki_dir, confs)
}

pub fn now_unix(ctx: &StepCtx<'_>) -> i64 {
    ctx.clock
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

async fn exists(t: &dyn Transport, path: &str) -> Result<bool, ActionError> {
    Ok(t.stat(path).await?.is_some())
}

impl CertCheck {
    async fn check(&self, ctx: &StepCtx<'_>) -> Result<(String, Value), ActionError> {
        let t = ctx.transport;
        let now = now_unix(ctx);
        let mut names = kubeadm::KUBECONFIGS.to_vec();
        names.push(kubeadm::KUBELET_CONF);
        let (pki_dir, confs) = locations(ctx, &self.pki, &self.kubeconfigs, &names);
        if t.stat(&pki_dir).await?.is_none() {
            return Err(ActionError::precondition(
                format!("no PKI directory {pki_dir} on {}", ctx.host.name),
                "set the host var `pki_dir` (or `kube_dir`) in the inventory",
            ));
        }
        let mut report = Expiration::new(now);
        for (name, crt, key) in kubeadm::CAS {
            let path = format!("{pki_dir}/{crt}");
            if !exists(t, &path).await? {
                continue;
            }
            let info = read_cert(&t.read_file(&path).await?, &path)?;
            let key_present = exists(t, &format!("{pki_dir}/{key}")).await?;
            report.add_ca(name, &path, &info, key_present);
        }
        for (name, crt, _key, ca) in kubeadm::LEAVES {
            let path = format!("{pki_dir}/{crt}");
            if !exists(t, &path).await? {
                continue;
            }
            let info = read_cert(&t.read_file(&path).await?, &path)?;
            report.add_leaf(name, &path, &info, ca);
        }
        for conf in &confs {
            if !exists(t, conf).await? {
                continue;
            }
            let name = conf.rsplit('/').next().unwrap_or(conf);
            let text = String::from_utf8_lossy(&t.read_file(conf).await?).into_owned();
            match pki::client_credential(&text)
                .map_err(|e| ActionError::failed(format!("{conf}: {e}")))?
            {
                ClientCredential::Embedded { cert_pem, .. } => {
                    report.add_kubeconfig(name, conf, &read_cert(&cert_pem, conf)?)
                }
                ClientCredential::Files { cert_path, .. } => {
                    report.add_kubeconfig_files(name, conf, cert_path)
                }
            }
        }
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

fn read_cert(pem: &[u8], path: &str) -> Result<pki::CertInfo, ActionError> {
    pki::parse_cert_pem(pem).map_err(|e| ActionError::failed(format!("{path}: {e}")))
}

#[async_trait]
impl Action for CertCheck {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        let (summary, value) = self.check(ctx).await?;
        Ok(Plan::noop(summary, value))
    }

    async fn apply(&self, ctx: &StepCtx<'_>, _plan: &Plan) -> Result<Value, ActionError> {
        Ok(self.check(ctx).await?.1)
    }
}
