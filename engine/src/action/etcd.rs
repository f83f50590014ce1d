//! What the `etcd.*` actions share: one etcd client per member (group
//! `etcd`), each reached through an SSH direct-tcpip channel to the member's
//! client address on its own master and authenticated with the client
//! certificate read from that master — so it works from a jump host that has
//! only SSH. Statuses, health, the quota each member runs with, and the
//! `member` values a defrag rule sees.

use super::{ActionError, StepCtx};
use crate::inventory::Host;
use async_trait::async_trait;
use remedy_etcd::{Member, MemberStatus, RuleInputs, Tls};
use remedy_pki::kubeadm;
use remedy_transport::{StreamOpener, StreamTarget, Transport};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// How long one member operation may take (connect, status, health).
pub const OP_TIMEOUT: Duration = Duration::from_secs(15);

/// Dials through a master's transport (SSH direct-tcpip, or local).
struct Through(Arc<dyn StreamOpener>);

#[async_trait]
impl remedy_etcd::Dialer for Through {
    async fn dial(&self, host: &str, port: u16) -> std::io::Result<remedy_etcd::BoxStream> {
        let s = self
            .0
            .open(&StreamTarget::Tcp(host.to_string(), port))
            .await
            .map_err(std::io::Error::other)?;
        Ok(Box::new(s))
    }
}

/// One member: its host, the client (when it could connect), its status
/// (when it answered), and the quota it runs with.
pub struct Conn {
    pub host: Host,
    pub endpoint: String,
    pub member: Result<Member, String>,
    pub quota: Option<u64>,
}

impl Conn {
    pub fn name(&self) -> &str {
        &self.host.name
    }
}

/// The member's client URL as its master reaches it: host var
/// `etcd_endpoint`, else `https://<node_ip or address>:2379`.
pub fn endpoint(host: &Host) -> String {
    host.var("etcd_endpoint").unwrap_or_else(|| {
        format!(
            "https://{}:2379",
            host.var("node_ip").unwrap_or_else(|| host.address.clone())
        )
    })
}

async fn read_tls(t: &dyn Transport, host: &Host) -> Result<Tls, String> {
    let pki = host
        .var("pki_dir")
        .unwrap_or_else(|| "/etc/kubernetes/pki".into());
    let ca = t
        .read_file(&format!("{pki}/{}", kubeadm::ETCD_CA))
        .await
        .map_err(|e| format!("cannot read etcd's CA on {}: {e}", host.name))?;
    for (crt, key) in kubeadm::ETCD_CLIENTS {
        if let (Ok(c), Ok(k)) = (
            t.read_file(&format!("{pki}/{crt}")).await,
            t.read_file(&format!("{pki}/{key}")).await,
        ) {
            return Ok(Tls {
                ca_pem: ca,
                cert_pem: c,
                key_pem: k,
            });
        }
    }
    Err(format!(
        "no etcd client certificate on {} ({pki}/etcd/healthcheck-client.* or {pki}/apiserver-etcd-client.*)",
        host.name
    ))
}

/// `--quota-backend-bytes` from the member's etcd manifest, if set.
async fn read_quota(t: &dyn Transport, host: &Host) -> Option<u64> {
    let dir = host
        .var("manifests_dir")
        .unwrap_or_else(|| "/etc/kubernetes/manifests".into());
    let text = t.read_file(&format!("{dir}/etcd.yaml")).await.ok()?;
    remedy_manifest::flag_value(&String::from_utf8_lossy(&text), "quota-backend-bytes")?
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .ok()
}

/// Connect to every member of group `etcd`. A member that cannot be reached
/// is kept with its error: callers decide whether that stops them.
pub async fn connect_all(ctx: &StepCtx<'_>) -> Result<Vec<Conn>, ActionError> {
    if ctx.etcd.is_empty() {
        return Err(ActionError::precondition(
            "the inventory has no etcd members",
            "put the masters that run etcd in group `etcd` (`groups: [masters, etcd]`)",
        ));
    }
    let mut out = Vec::new();
    for host in ctx.etcd {
        let endpoint = endpoint(host);
        let peer;
        let t: &dyn Transport = if host.name == ctx.host.name {
            ctx.transport
        } else {
            match ctx.connect_peer(host).await {
                Ok(p) => {
                    peer = p;
                    peer.as_ref()
                }
                Err(e) => {
                    out.push(Conn {
                        host: host.clone(),
                        endpoint,
                        member: Err(format!("cannot reach {} over SSH: {e}", host.name)),
                        quota: None,
                    });
                    continue;
                }
            }
        };
        let quota = read_quota(t, host).await;
        let member = match (t.opener(), read_tls(t, host).await) {
            (None, _) => Err(format!("{}: its transport cannot open tunnels", host.name)),
            (_, Err(e)) => Err(e),
            (Some(opener), Ok(tls)) => remedy_etcd::connect(
                &host.name,
                &endpoint,
                Some(&tls),
                Arc::new(Through(opener)),
                OP_TIMEOUT,
            )
            .await
            .map_err(|e| e.to_string()),
        };
        out.push(Conn {
            host: host.clone(),
            endpoint,
            member,
            quota,
        });
    }
    Ok(out)
}

/// Each member's status, or why there is none.
pub async fn statuses(conns: &[Conn]) -> Vec<Result<MemberStatus, String>> {
    let mut out = Vec::new();
    for c in conns {
        out.push(match &c.member {
            Ok(m) => m.status().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.clone()),
        });
    }
    out
}

/// Every member healthy (a linearizable read, no alarm but NOSPACE — a full
/// member still serves reads, compaction and defragmentation, which is how it
/// is recovered), or the first that is not, named, with why.
pub async fn all_healthy(conns: &[Conn]) -> Result<(), String> {
    for c in conns {
        match &c.member {
            Err(e) => return Err(format!("etcd member {} is unreachable: {e}", c.name())),
            Ok(m) => match m.health().await {
                Ok(_) => {}
                Err(e) if e.is_nospace() => {}
                Err(e) => return Err(format!("etcd member {} is not healthy: {e}", c.name())),
            },
        }
    }
    Ok(())
}

/// The values a rule sees as `member`.
pub fn rule_value(c: &Conn, s: &MemberStatus) -> Value {
    let r = RuleInputs::new(s, c.quota);
    json!({
        "name": c.name(),
        "leader": s.is_leader,
        "db_size": r.db_size,
        "db_size_in_use": r.db_size_in_use,
        "db_size_free": r.db_size_free,
        "quota": r.quota,
        "quota_usage": r.quota_usage,
        "fragmentation": r.fragmentation,
    })
}

/// One member as a result entry.
pub fn status_value(c: &Conn, s: &Result<MemberStatus, String>) -> Value {
    match s {
        Ok(s) => {
            let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
            v["host"] = json!(c.name());
            v["fragmentation"] = json!(remedy_etcd::fragmentation(s));
            v["quota"] = json!(RuleInputs::new(s, c.quota).quota);
            v["healthy"] = json!(s.errors.is_empty());
            v
        }
        Err(e) => json!({ "host": c.name(), "endpoint": c.endpoint, "error": e, "healthy": false }),
    }
}

/// The statuses that answered, with their connections, or an error naming
/// every member that did not.
pub fn require_all<'a>(
    conns: &'a [Conn],
    statuses: &[Result<MemberStatus, String>],
    doing: &str,
) -> Result<Vec<(&'a Conn, MemberStatus)>, ActionError> {
    let down: Vec<String> = conns
        .iter()
        .zip(statuses)
        .filter_map(|(c, s)| s.as_ref().err().map(|e| format!("{}: {e}", c.name())))
        .collect();
    if !down.is_empty() {
        return Err(ActionError::precondition(
            format!(
                "{} of {} etcd member(s) did not answer, so nothing was {doing}: {}",
                down.len(),
                conns.len(),
                down.join("; ")
            ),
            "bring the member back first (is its etcd static pod running? `remedy exec -i INV HOST -- crictl ps`), then run again",
        ));
    }
    Ok(conns
        .iter()
        .zip(statuses)
        .filter_map(|(c, s)| s.as_ref().ok().map(|s| (c, s.clone())))
        .collect())
}

/// Evaluate a Rhai rule over `member` in the sandbox.
pub fn eval_rule(rule: &str, member: &Value) -> Result<bool, ActionError> {
    let engine = remedy_dsl::expr::sandbox();
    let mut scope = rhai::Scope::new();
    let dynamic = rhai::serde::to_dynamic(member)
        .map_err(|e| ActionError::failed(format!("cannot pass the member to the rule: {e}")))?;
    scope.push("member", dynamic);
    engine
        .eval_expression_with_scope::<bool>(&mut scope, rule)
        .map_err(|e| ActionError::Precondition {
            message: format!("the rule `{rule}` failed: {e}"),
            hint: Some(
                "a Rhai expression over member.db_size, db_size_in_use, db_size_free, quota, quota_usage, fragmentation, leader, name"
                    .into(),
            ),
        })
}

/// Wait until `c` answers a health check, up to `limit`, reporting progress.
pub async fn wait_healthy(ctx: &StepCtx<'_>, c: &Conn, limit: Duration) -> Result<(), ActionError> {
    let Ok(m) = &c.member else {
        return Err(ActionError::failed(format!(
            "etcd member {} is unreachable",
            c.name()
        )));
    };
    let start = ctx.clock.now();
    loop {
        let err = match m.health().await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_nospace() => return Ok(()),
            Err(e) => e.to_string(),
        };
        let waited = ctx.clock.now().duration_since(start).unwrap_or_default();
        if waited >= limit {
            return Err(ActionError::Failed {
                message: format!(
                    "etcd member {} did not become healthy within {}s: {err}",
                    c.name(),
                    limit.as_secs()
                ),
                hint: Some("look at the member's log on its master; the other members were not touched after it".into()),
            });
        }
        (ctx.progress)(
            &format!("etcd member {} to be healthy", c.name()),
            waited.as_secs(),
        );
        ctx.clock.sleep(Duration::from_secs(1)).await;
    }
}

/// An integer argument given as a number or as text (`"${params.n}"`).
pub fn int(v: &Option<Value>, name: &str, default: i64) -> Result<i64, ActionError> {
    match v {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| ActionError::failed(format!("`{name}` must be an integer, found {n}"))),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map_err(|_| ActionError::failed(format!("`{name}` must be an integer, found `{s}`"))),
        Some(other) => Err(ActionError::failed(format!(
            "`{name}` must be an integer, found {other}"
        ))),
    }
}

/// A boolean argument given as a bool or as text.
pub fn flag(v: &Option<Value>, default: bool) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.as_str(), "true" | "yes" | "1"),
        _ => default,
    }
}
