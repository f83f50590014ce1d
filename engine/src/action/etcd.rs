//! What the `etcd.*` actions share: reaching every member (group `etcd`)
//! as a `remedy_etcd::Cluster`, each through an SSH direct-tcpip channel to
//! the member's client address on its own master and authenticated with the
//! client certificate read from that master — so it works from a jump host
//! that has only SSH — with the quota its manifest sets; Rhai rules over a
//! member; arguments given as text; etcd's errors as the step's. The
//! clients are the run's ([`EtcdClients`]), opened once per member.

use super::{ActionError, StepCtx};
use crate::inventory::Host;
use async_trait::async_trait;
use remedy_etcd::{Cluster, ClusterMember, MaintenanceError, Member, Tls};
use remedy_pki::kubeadm;
use remedy_transport::{StreamOpener, StreamTarget, Transport};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::OnceCell;

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
    let pair = |(crt, key): &(&str, &str)| {
        let (crt, key) = (format!("{pki}/{crt}"), format!("{pki}/{key}"));
        async move { futures::join!(t.read_file(&crt), t.read_file(&key)) }
    };
    // The CA and the first pair at once (each read is a round trip).
    let ca_path = format!("{pki}/{}", kubeadm::ETCD_CA);
    let (ca, first) = futures::join!(t.read_file(&ca_path), pair(&kubeadm::ETCD_CLIENTS[0]));
    let ca = ca.map_err(|e| format!("cannot read etcd's CA on {}: {e}", host.name))?;
    let mut first = Some(first);
    for p in kubeadm::ETCD_CLIENTS {
        let read = match first.take() {
            Some(read) => read,
            None => pair(p).await,
        };
        if let (Ok(c), Ok(k)) = read {
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

/// The run's etcd clients, one per member (by host name). The first step
/// that reaches a member — in a real run, its preview — opens the client
/// (client certificate read over SSH, one direct-tcpip channel, one TLS
/// handshake); the plan and the apply of every later step use the same one,
/// so a run makes one connection per member instead of two per step. The
/// channel reconnects through the same SSH session if etcd drops it (a
/// member restarted). A member that could not be reached is not kept: the
/// next step tries again. Clones share the clients; `RunOptions` carries
/// them, so the preview and the run it approves share them too.
#[derive(Clone, Default)]
pub struct EtcdClients(Arc<Mutex<HashMap<String, Arc<OnceCell<Opened>>>>>);

/// A member's client and the tunnel opener it dials through.
struct Opened {
    member: Member,
    opener: Arc<dyn StreamOpener>,
}

impl std::fmt::Debug for EtcdClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.cells().keys().cloned().collect();
        f.debug_tuple("EtcdClients").field(&names).finish()
    }
}

impl EtcdClients {
    fn cells(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<OnceCell<Opened>>>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `host`'s member: the run's client, else a new one opened through `t`
    /// — also when the SSH connection the kept one dials through is gone
    /// (the connector reconnects; the kept client could never dial again).
    async fn member(
        &self,
        host: &Host,
        endpoint: &str,
        t: &dyn Transport,
    ) -> Result<Member, String> {
        let cell = {
            let mut cells = self.cells();
            let cell = cells.entry(host.name.clone()).or_default();
            if cell.get().is_some_and(|o| o.opener.is_closed()) {
                *cell = Arc::default();
            }
            cell.clone()
        };
        cell.get_or_try_init(|| open(host, endpoint, t))
            .await
            .map(|o| o.member.clone())
    }
}

/// A new client to `host`'s member, through `t`'s tunnels, with the client
/// certificate read from `host`.
async fn open(host: &Host, endpoint: &str, t: &dyn Transport) -> Result<Opened, String> {
    let Some(opener) = t.opener() else {
        return Err(format!("{}: its transport cannot open tunnels", host.name));
    };
    let tls = read_tls(t, host).await?;
    let member = remedy_etcd::connect(
        &host.name,
        endpoint,
        Some(&tls),
        Arc::new(Through(opener.clone())),
        OP_TIMEOUT,
    )
    .await
    .map_err(|e| e.to_string())?;
    // Learns whether the member reports its quota (see `connect_all`). One
    // that does not answer at once has its manifest read; the step asks it
    // again anyway.
    let _ = tokio::time::timeout(Duration::from_secs(2), member.status()).await;
    Ok(Opened { member, opener })
}

/// The hosts of group `etcd`, refused when there are none.
pub fn etcd_hosts<'a>(ctx: &StepCtx<'a>) -> Result<&'a [Host], ActionError> {
    if ctx.etcd.is_empty() {
        return Err(ActionError::precondition(
            "the inventory has no etcd members",
            "put the masters that run etcd in group `etcd` (`groups: [masters, etcd]`)",
        ));
    }
    Ok(ctx.etcd)
}

/// Every member of group `etcd`, reached at once (the run's clients, see
/// [`EtcdClients`]). A member that cannot be reached is kept with its
/// error: callers decide whether that stops them. A member's quota is the
/// one it reports in its status (etcd 3.6 and later: what it enforces, so
/// an earlier step that changed it and restarted etcd shows); for a member
/// that does not report it, it is read from its manifest every time.
pub async fn connect_all(ctx: &StepCtx<'_>) -> Result<Cluster, ActionError> {
    let hosts = etcd_hosts(ctx)?;
    let members = futures::future::join_all(hosts.iter().map(|host| reach(ctx, host))).await;
    Ok(Cluster { members })
}

/// One member: its quota and the run's client to it.
async fn reach(ctx: &StepCtx<'_>, host: &Host) -> ClusterMember {
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
                return ClusterMember {
                    name: host.name.clone(),
                    endpoint,
                    member: Err(format!("cannot reach {} over SSH: {e}", host.name)),
                    quota: None,
                }
            }
        }
    };
    let member = ctx.etcd_clients.member(host, &endpoint, t).await;
    let quota = match &member {
        Ok(m) if m.reports_quota() => None,
        _ => read_quota(t, host).await,
    };
    ClusterMember {
        name: host.name.clone(),
        endpoint,
        member,
        quota,
    }
}

/// One member through its master's transport (`t`), with its client
/// certificate and quota read from that master; `timeout` for each call.
pub async fn connect_member(t: &dyn Transport, host: &Host, timeout: Duration) -> ClusterMember {
    let endpoint = endpoint(host);
    let quota = read_quota(t, host).await;
    let member = match (t.opener(), read_tls(t, host).await) {
        (None, _) => Err(format!("{}: its transport cannot open tunnels", host.name)),
        (_, Err(e)) => Err(e),
        (Some(opener), Ok(tls)) => remedy_etcd::connect(
            &host.name,
            &endpoint,
            Some(&tls),
            Arc::new(Through(opener)),
            timeout,
        )
        .await
        .map_err(|e| e.to_string()),
    };
    ClusterMember {
        name: host.name.clone(),
        endpoint,
        member,
        quota,
    }
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

impl From<MaintenanceError> for ActionError {
    fn from(e: MaintenanceError) -> ActionError {
        match e {
            MaintenanceError::Refused { message, hint } => ActionError::Precondition {
                message,
                hint: Some(hint),
            },
            MaintenanceError::Failed { message, hint } => ActionError::Failed { message, hint },
            MaintenanceError::Member(e) => ActionError::Etcd(e),
        }
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
