//! `cert.check`: every certificate of a master — the PKI directory and the
//! client certificates embedded in the kubeconfigs — with subject, issuer,
//! expiry and whether its CA's key is present, like
//! `kubeadm certs check-expiration` (`remedy_pki::Layout::expiration`).
//! Read-only: it runs fully in a dry-run. Also what `cert.renew` shares:
//! where the PKI is, and reading it.
//!
//! Files are not the whole story: a renewal cut off before its restart
//! leaves fresh files and components running with the old certificates.
//! With `served` (an endpoint) and `pods`, it also reports whether what runs
//! is what is on disk (`stale`): the endpoint serves the PKI's
//! `apiserver.crt`, and each pod's running container started after the
//! files it loads last changed.

use super::cert_served::served_fingerprints;
use super::{result, ActionError, Reads, StepCtx};
use crate::inventory::Host;
use async_trait::async_trait;
use remedy_pki::{kubeadm, Found, Layout, PkiError};
use remedy_transport::Transport;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertCheck {
    pki: Option<String>,
    kubeconfigs: Option<Vec<String>>,
    served: Option<String>,
    #[serde(default)]
    pods: Vec<String>,
}

/// Days of kubelet.conf's certificate under which the check warns.
const KUBELET_WARN_DAYS: i64 = 30;

/// Where the PKI and kubeconfigs are on this host: the arguments, else
/// host vars `pki_dir` / `kube_dir`, else kubeadm's (`names` under it).
pub fn layout(
    ctx: &StepCtx<'_>,
    pki: &Option<String>,
    kubeconfigs: &Option<Vec<String>>,
    names: &[&str],
) -> Layout {
    host_layout(ctx.host, pki, kubeconfigs, names)
}

/// [`layout`] for any host (`remedy check` has no step).
pub fn host_layout(
    host: &Host,
    pki: &Option<String>,
    kubeconfigs: &Option<Vec<String>>,
    names: &[&str],
) -> Layout {
    let kube = host
        .var("kube_dir")
        .unwrap_or_else(|| "/etc/kubernetes".into());
    let pki_dir = pki
        .clone()
        .or_else(|| host.var("pki_dir"))
        .unwrap_or_else(|| format!("{kube}/pki"));
    let confs = kubeconfigs
        .clone()
        .unwrap_or_else(|| names.iter().map(|n| format!("{kube}/{n}")).collect());
    Layout::new(pki_dir, confs)
}

/// Read what the layout names from the host: certificates and kubeconfigs
/// where they exist, and which CA keys exist.
pub async fn read_pki(ctx: &StepCtx<'_>, layout: &Layout) -> Result<Found, ActionError> {
    read_host_pki(ctx.transport, &ctx.host.name, layout).await
}

/// [`read_pki`] through any transport to host `name`.
pub async fn read_host_pki(
    t: &dyn Transport,
    name: &str,
    layout: &Layout,
) -> Result<Found, ActionError> {
    if t.stat(&layout.pki_dir).await?.is_none() {
        return Err(ActionError::precondition(
            format!("no PKI directory {} on {name}", layout.pki_dir),
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
        let in_use = self.in_use(ctx, &layout, &report).await?;
        let mut summary = format!(
            "{} certificates, {}; earliest renewable expiry in {min_days_left} days",
            report.entries.len(),
            if expired == 0 {
                "none expired".to_string()
            } else {
                format!("{expired} EXPIRED")
            },
        );
        for line in in_use.lines().into_iter().chain(left_to_kubelet(&report)) {
            summary.push_str(&format!("\n{line}"));
        }
        summary.push_str(&format!("\n{}", report.table()));
        let kubelet: Vec<Value> = report
            .left_to_kubelet()
            .map(|e| json!({ "name": e.name, "path": e.path, "days_left": e.days_left }))
            .collect();
        Ok((
            summary,
            result(
                false,
                json!({
                    "certificates": report.entries,
                    "min_days_left": min_days_left,
                    "expired": expired,
                    "external_ca": report.external_ca(),
                    "left_to_kubelet": kubelet,
                    "served": in_use.served,
                    "stale_pods": in_use.stale_pods,
                    "stale": in_use.stale(),
                }),
            ),
        ))
    }
}

/// kubelet.conf is not renewed: say so, and warn when it is close.
fn left_to_kubelet(report: &remedy_pki::Expiration) -> Vec<String> {
    report
        .left_to_kubelet()
        .filter_map(|e| e.days_left.map(|d| (e, d)))
        .map(|(e, d)| {
            let when = if d < 0 {
                "has EXPIRED".to_string()
            } else {
                format!("expires in {d} days")
            };
            let what = format!("{} ({}): its client certificate {when}; not renewed here: on a real master the kubelet rotates it itself", e.name, e.path);
            if d < KUBELET_WARN_DAYS {
                format!("WARNING: {what} — check the kubelet's certificate rotation (rotateCertificates, /var/lib/kubelet/pki)")
            } else {
                what
            }
        })
        .collect()
}

/// Whether the running control plane uses the certificates on disk.
#[derive(Default)]
struct InUse {
    /// `matches`, `differs`, `nothing answers`; empty when not asked.
    served: String,
    endpoint: String,
    /// Pods whose running container started before their files changed,
    /// or that have no running container (their restart brings them back).
    stale_pods: Vec<String>,
    down_pods: Vec<String>,
    /// Pods whose start time could not be read (no crictl on the host).
    unknown_pods: Vec<String>,
}

impl InUse {
    fn stale(&self) -> bool {
        self.served == "differs" || !self.stale_pods.is_empty()
    }

    fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        match self.served.as_str() {
            "differs" => out.push(format!("STALE: {} serves another certificate than apiserver.crt on disk: the API server must be restarted", self.endpoint)),
            "nothing answers" => out.push(format!("{} does not answer (not compared)", self.endpoint)),
            _ => {}
        }
        let started_before: Vec<&String> = self
            .stale_pods
            .iter()
            .filter(|p| !self.down_pods.contains(p))
            .collect();
        if !started_before.is_empty() {
            out.push(format!(
                "STALE: {} started before the certificates they load last changed: they must be restarted",
                started_before.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
        if !self.down_pods.is_empty() {
            out.push(format!(
                "STALE: {} not running: they must be restarted",
                self.down_pods.join(", ")
            ));
        }
        if !self.unknown_pods.is_empty() {
            out.push(format!(
                "{}: start time unknown (no crictl, or crictl inspect shows none): not compared",
                self.unknown_pods.join(", ")
            ));
        }
        out
    }
}

impl CertCheck {
    /// The served certificate and the pods' start times against the files.
    async fn in_use(
        &self,
        ctx: &StepCtx<'_>,
        layout: &Layout,
        report: &remedy_pki::Expiration,
    ) -> Result<InUse, ActionError> {
        let mut in_use = InUse::default();
        if let Some(endpoint) = &self.served {
            let expect = layout.path("apiserver.crt");
            let (served, file) = served_fingerprints(ctx, endpoint, &expect).await?;
            in_use.endpoint = endpoint.clone();
            in_use.served = if served == "none" {
                "nothing answers"
            } else if served == file {
                "matches"
            } else {
                "differs"
            }
            .into();
        }
        if self.pods.is_empty() {
            return Ok(in_use);
        }
        let files: Vec<String> = report.loaded_by_pods().map(quote).collect();
        let mut script = format!(
            "echo \"files $(stat -c %Y {} 2>/dev/null | sort -n | tail -n1)\"; crictl ps -q >/dev/null 2>&1 || exit 0; echo crictl; ",
            files.join(" ")
        );
        for pod in &self.pods {
            script.push_str(&format!(
                "id=$(crictl ps --name {re} --state running -q 2>/dev/null | head -n1); t=; [ -n \"$id\" ] && t=$(crictl inspect \"$id\" 2>/dev/null | sed -n 's/^ *\"startedAt\": *\"\\([^\"]*\\)\".*/\\1/p' | head -n1); s=; [ -n \"$t\" ] && s=$(date -d \"$t\" +%s 2>/dev/null); echo pod {p} ${{id:+started}} $s; ",
                re = quote(&format!("^{pod}$")),
                p = quote(pod),
            ));
        }
        let out = ctx.transport.probe(&script, ctx.command_timeout).await?;
        let mut changed: Option<i64> = None;
        // Per pod: None, not running; Some(None), start time unknown.
        let mut started = std::collections::BTreeMap::new();
        let mut crictl = false;
        for line in out.stdout.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["files", t] => changed = t.parse().ok(),
                ["crictl"] => crictl = true,
                ["pod", p] => {
                    started.insert(p.to_string(), None);
                }
                ["pod", p, "started", t @ ..] => {
                    started.insert(
                        p.to_string(),
                        Some(t.first().and_then(|t| t.parse::<i64>().ok())),
                    );
                }
                _ => {}
            }
        }
        for pod in &self.pods {
            match (crictl, started.get(pod), changed) {
                (true, Some(None), _) => {
                    in_use.stale_pods.push(pod.clone());
                    in_use.down_pods.push(pod.clone());
                }
                (true, Some(Some(Some(s))), Some(c)) if *s < c => {
                    in_use.stale_pods.push(pod.clone())
                }
                (true, Some(Some(Some(_))), _) => {}
                _ => in_use.unknown_pods.push(pod.clone()),
            }
        }
        Ok(in_use)
    }
}

fn quote(s: &str) -> String {
    remedy_transport::shell::quote(s)
}
