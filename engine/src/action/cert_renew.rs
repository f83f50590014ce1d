//! `cert.renew`: what `kubeadm certs renew all` does — a new key for each leaf
//! certificate, CN/O/SANs/usages copied, signed by the local CA for a year, and
//! the client certificates embedded in the kubeconfigs rewritten — either by
//! running kubeadm on the host or natively (`method: native`).
//!
//! Never touches the CAs, `sa.*` or kubelet.conf; refuses when a CA key is
//! absent (an externally managed CA). Every file it writes is declared, so the
//! engine backs it up first and rollback restores it byte for byte.

use super::cert_check::{locations, now_unix};

use super::{result, Action, ActionError, StepCtx};
use crate::plan::{Change, Plan};
use async_trait::async_trait;
use remedy_pki::{self as pki, kubeadm, Ca, ClientCredential, KUBEADM_LEAF_VALIDITY_SECS};
use remedy_transport::WriteAttrs;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertRenew {
    method: Option<String>,
    pki: Option<String>,
    kubeconfigs: Option<Vec<String>>,
}

/// One thing to renew.
enum Item {
    Leaf {
        name: String,
        crt: String,
        key: String,
        ca: String,
    },
    Kubeconfig {
        name: String,
        path: String,
    },
}

struct Work {
    method: &'static str,
    pki: String,
    items: Vec<Item>,
    changes: Vec<Change>,
    modifies: Vec<String>,
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
        let t = ctx.transport;
        let now = now_unix(ctx);
        let method = self.method(ctx).await?;
        let (pki_dir, confs) = locations(ctx, &self.pki, &self.kubeconfigs, kubeadm::KUBECONFIGS);
        if t.stat(&pki_dir).await?.is_none() {
            return Err(ActionError::precondition(
                format!("no PKI directory {pki_dir} on {}", ctx.host.name),
                "set the host var `pki_dir` (or `kube_dir`) in the inventory",
            ));
        }
        let mut missing_keys = Vec::new();
        for (name, _crt, key) in kubeadm::CAS {
            let needed = kubeadm::LEAVES.iter().any(|l| l.3 == *name) || *name == "ca";
            if needed && t.stat(&format!("{pki_dir}/{key}")).await?.is_none() {
                missing_keys.push(format!("{pki_dir}/{key}"));
            }
        }
        if !missing_keys.is_empty() {
            return Err(ActionError::Precondition {
                message: format!("externally managed CA on {}: {} absent, so remedy cannot sign renewed certificates; nothing was changed", ctx.host.name, missing_keys.join(", ")),
                hint: Some("renew these certificates through the CA that issued them (kubeadm certs generate-csr), then restart the control plane with the static-pod-restart runbook".into()),
            });
        }
        let mut items = Vec::new();
        let mut changes = Vec::new();
        let mut modifies = Vec::new();
        // To the day: a plan is hashed for approval, and a new expiry to
        // the minute would make every plan differ from the one approved.
        let new_expiry = kubeadm::expiry_date(now + KUBEADM_LEAF_VALIDITY_SECS)
            .split(' ')
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        for (name, crt, key, ca) in kubeadm::LEAVES {
            let crt_path = format!("{pki_dir}/{crt}");
            if t.stat(&crt_path).await?.is_none() {
                continue;
            }
            let info = pki::parse_cert_pem(&t.read_file(&crt_path).await?)
                .map_err(|e| ActionError::failed(format!("{crt_path}: {e}")))?;
            changes.push(Change::Note {
                text: format!(
                    "{crt}: serial {}…, expires {} → new key, expires {new_expiry}",
                    &info.serial_hex[..info.serial_hex.len().min(12)],
                    kubeadm::expiry_date(info.not_after)
                ),
            });
            modifies.push(crt_path.clone());
            modifies.push(format!("{pki_dir}/{key}"));
            items.push(Item::Leaf {
                name: name.to_string(),
                crt: crt_path,
                key: format!("{pki_dir}/{key}"),
                ca: ca.to_string(),
            });
        }
        for conf in &confs {
            if t.stat(conf).await?.is_none() {
                continue;
            }
            let text = String::from_utf8_lossy(&t.read_file(conf).await?).into_owned();
            if let ClientCredential::Embedded { cert_pem, .. } = pki::client_credential(&text)
                .map_err(|e| ActionError::failed(format!("{conf}: {e}")))?
            {
                let info = pki::parse_cert_pem(&cert_pem)
                    .map_err(|e| ActionError::failed(format!("{conf}: {e}")))?;
                let name = conf.rsplit('/').next().unwrap_or(conf).to_string();
                changes.push(Change::Note {
                    text: format!(
                        "{name}: client certificate {} expires {} → new key, expires {new_expiry}",
                        info.subject_cn,
                        kubeadm::expiry_date(info.not_after)
                    ),
                });
                modifies.push(conf.clone());
                items.push(Item::Kubeconfig {
                    name,
                    path: conf.clone(),
                });
            }
        }
        if method == "kubeadm" {
            changes.insert(
                0,
                Change::Command {
                    cmd: "kubeadm certs renew all".into(),
                },
            );
        }
        Ok(Work {
            method,
            pki: pki_dir,
            items,
            changes,
            modifies,
        })
    }

    fn not_renewed() -> Value {
        json!(kubeadm::NOT_RENEWED
            .iter()
            .map(|(what, why)| json!({ "name": what, "reason": why }))
            .collect::<Vec<_>>())
    }
}

#[async_trait]
impl Action for CertRenew {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        let w = self.work(ctx).await?;
        let count = w.items.len();
        Ok(Plan {
            summary: format!(
                "renew {count} certificates ({}) in {}; not renewed: {}",
                w.method,
                w.pki,
                kubeadm::NOT_RENEWED
                    .iter()
                    .map(|(what, why)| format!("{what} ({why})"))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            changes: w.changes,
            modifies: w.modifies,
            result: None,
        })
    }

    async fn apply(&self, ctx: &StepCtx<'_>, _plan: &Plan) -> Result<Value, ActionError> {
        let t = ctx.transport;
        let w = self.work(ctx).await?;
        let mut renewed = Vec::new();
        if w.method == "kubeadm" {
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
            renewed = w
                .items
                .iter()
                .map(|i| match i {
                    Item::Leaf { name, .. } | Item::Kubeconfig { name, .. } => name.clone(),
                })
                .collect();
            return Ok(result(
                true,
                json!({ "method": "kubeadm", "renewed": renewed, "not_renewed": Self::not_renewed() }),
            ));
        }
        let now = now_unix(ctx);
        let mut cas: HashMap<String, Ca> = HashMap::new();
        for item in &w.items {
            let ca_name = match item {
                Item::Leaf { ca, .. } => ca.as_str(),
                Item::Kubeconfig { .. } => "ca",
            };
            if !cas.contains_key(ca_name) {
                let (_, crt, key) = kubeadm::ca(ca_name)
                    .ok_or_else(|| ActionError::failed(format!("unknown CA {ca_name}")))?;
                let cert = t.read_file(&format!("{}/{crt}", w.pki)).await?;
                let key = t.read_file(&format!("{}/{key}", w.pki)).await?;
                cas.insert(
                    ca_name.to_string(),
                    Ca::from_pem(&cert, &key)
                        .map_err(|e| ActionError::failed(format!("CA {ca_name}: {e}")))?,
                );
            }
            let ca = &cas[ca_name];
            match item {
                Item::Leaf { name, crt, key, .. } => {
                    let old = t.read_file(crt).await?;
                    let new = pki::renew_leaf(&old, ca, now, KUBEADM_LEAF_VALIDITY_SECS)
                        .map_err(|e| ActionError::failed(format!("{crt}: {e}")))?;
                    // The key first: a certificate must never be paired with a key it does not match for longer than a moment.
                    t.write_file_atomic(
                        key,
                        &new.key_pem,
                        WriteAttrs {
                            mode: Some(0o600),
                            owner: None,
                        },
                    )
                    .await?;
                    t.write_file_atomic(crt, &new.cert_pem, WriteAttrs::default())
                        .await?;
                    renewed.push(name.clone());
                }
                Item::Kubeconfig { name, path } => {
                    let text = String::from_utf8_lossy(&t.read_file(path).await?).into_owned();
                    let Some((cert, _)) = pki::embedded_client_cert(&text)
                        .map_err(|e| ActionError::failed(format!("{path}: {e}")))?
                    else {
                        continue;
                    };
                    let new = pki::renew_leaf(&cert, ca, now, KUBEADM_LEAF_VALIDITY_SECS)
                        .map_err(|e| ActionError::failed(format!("{path}: {e}")))?;
                    let rewritten = pki::replace_client_cert(&text, &new.cert_pem, &new.key_pem)
                        .map_err(|e| ActionError::failed(format!("{path}: {e}")))?;
                    t.write_file_atomic(path, rewritten.as_bytes(), WriteAttrs::default())
                        .await?;
                    renewed.push(name.clone());
                }
            }
        }
        Ok(result(
            true,
            json!({ "method": "native", "renewed": renewed, "not_renewed": Self::not_renewed() }),
        ))
    }
}
