//! `cert.check`: every certificate of a master — the PKI directory and the
//! client certificates embedded in the kubeconfigs — with subject, issuer,
//! expiry and whether its CA's key is present, like
//! `kubeadm certs check-expiration`. Read-only: it runs fully in a dry-run.

use super::{result, Action, ActionError, StepCtx};
use crate::plan::Plan;
use async_trait::async_trait;
use remedy_pki::{self as pki, kubeadm, ClientCredential};
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
        let mut certs: Vec<Value> = Vec::new();
        let mut external = false;
        for (name, crt, key) in kubeadm::CAS {
            let path = format!("{pki_dir}/{crt}");
            if !exists(t, &path).await? {
                continue;
            }
            let info = pki::parse_cert_pem(&t.read_file(&path).await?)
                .map_err(|e| ActionError::failed(format!("{path}: {e}")))?;
            let key_present = exists(t, &format!("{pki_dir}/{key}")).await?;
            external |= !key_present;
            certs.push(json!({ "name": name, "path": path, "kind": "ca", "cn": info.subject_cn, "issuer": info.issuer_cn, "not_after": info.not_after, "days_left": pki::days_left(&info, now), "ca_key_present": key_present, "renewable": false, "ca": "" }));
        }
        let ca_key = |ca: &str, certs: &[Value]| {
            certs
                .iter()
                .any(|c| c["name"] == ca && c["ca_key_present"] == true)
        };
        for (name, crt, _key, ca) in kubeadm::LEAVES {
            let path = format!("{pki_dir}/{crt}");
            if !exists(t, &path).await? {
                continue;
            }
            let info = pki::parse_cert_pem(&t.read_file(&path).await?)
                .map_err(|e| ActionError::failed(format!("{path}: {e}")))?;
            let present = ca_key(ca, &certs);
            certs.push(json!({ "name": name, "path": path, "kind": "leaf", "cn": info.subject_cn, "issuer": info.issuer_cn, "sans": info.dns_sans.iter().cloned().chain(info.ip_sans.iter().map(|i| i.to_string())).collect::<Vec<_>>(), "not_after": info.not_after, "days_left": pki::days_left(&info, now), "ca_key_present": present, "renewable": present, "ca": ca }));
        }
        for conf in &confs {
            if !exists(t, conf).await? {
                continue;
            }
            let name = conf.rsplit('/').next().unwrap_or(conf).to_string();
            let text = String::from_utf8_lossy(&t.read_file(conf).await?).into_owned();
            match pki::client_credential(&text)
                .map_err(|e| ActionError::failed(format!("{conf}: {e}")))?
            {
                ClientCredential::Embedded { cert_pem, .. } => {
                    let info = pki::parse_cert_pem(&cert_pem)
                        .map_err(|e| ActionError::failed(format!("{conf}: {e}")))?;
                    let renewable = name != kubeadm::KUBELET_CONF && ca_key("ca", &certs);
                    certs.push(json!({ "name": name, "path": conf, "kind": "kubeconfig", "cn": info.subject_cn, "issuer": info.issuer_cn, "not_after": info.not_after, "days_left": pki::days_left(&info, now), "ca_key_present": ca_key("ca", &certs), "renewable": renewable, "ca": "ca" }));
                }
                ClientCredential::Files { cert_path, .. } => {
                    certs.push(json!({ "name": name, "path": conf, "kind": "kubeconfig", "cn": "", "issuer": "", "not_after": null, "days_left": null, "ca_key_present": ca_key("ca", &certs), "renewable": false, "ca": "ca", "note": format!("uses {} (rotated by the kubelet)", cert_path.unwrap_or_default()) }));
                }
            }
        }
        let renewable_days: Vec<i64> = certs
            .iter()
            .filter(|c| c["kind"] != "ca")
            .filter_map(|c| c["days_left"].as_i64())
            .collect();
        let min_days_left = renewable_days.iter().copied().min().unwrap_or(36_500);
        let expired = certs
            .iter()
            .filter(|c| c["days_left"].as_i64().is_some_and(|d| d < 0))
            .count();
        // The table kubeadm operators know.
        let mut table = format!(
            "{:<26} {:<24} {:>9}  {:<15} {}",
            "CERTIFICATE", "EXPIRES", "RESIDUAL", "AUTHORITY", "EXTERNALLY MANAGED"
        );
        for c in &certs {
            let residual = c["days_left"]
                .as_i64()
                .map(|d| {
                    if d < 0 {
                        "expired".to_string()
                    } else {
                        format!("{d}d")
                    }
                })
                .unwrap_or_else(|| "-".into());
            let expires = c["not_after"]
                .as_i64()
                .map(kubeadm::expiry_date)
                .unwrap_or_else(|| c["note"].as_str().unwrap_or("-").to_string());
            table.push_str(&format!(
                "\n{:<26} {:<24} {:>9}  {:<15} {}",
                c["name"].as_str().unwrap_or(""),
                expires,
                residual,
                c["ca"].as_str().unwrap_or(""),
                if c["ca_key_present"] == true {
                    "no"
                } else {
                    "yes"
                }
            ));
        }
        let summary = format!(
            "{} certificates, {}; earliest renewable expiry in {min_days_left} days\n{table}",
            certs.len(),
            if expired == 0 {
                "none expired".to_string()
            } else {
                format!("{expired} EXPIRED")
            }
        );
        Ok((
            summary,
            result(
                false,
                json!({ "certificates": certs, "min_days_left": min_days_left, "expired": expired, "external_ca": external }),
            ),
        ))
    }
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
