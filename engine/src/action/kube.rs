//! What the `kube.*` and `api.health` actions share: reaching the API
//! server, and naming objects.
//!
//! By default a step talks to the API server of the master it runs for,
//! through that master's SSH connection (a direct-tcpip channel to
//! `api_server`, default `https://<node_ip or address>:6443`), with the
//! credentials of the master's admin.conf (`kube_dir`/admin.conf) read over
//! SSH and kept in memory — never written to the jump host. With
//! `--kubeconfig` (or `KUBECONFIG`) it uses that local kubeconfig instead,
//! over TCP from the jump host, after checking that its CA is the master's.
//! A client made while planning is read-only: it refuses writes before they
//! leave (server-side dry runs are reads).

use super::{ActionError, StepCtx};
use crate::inventory::Host;
use crate::object_backup::Planned;
use crate::plan::Change;
use remedy_k8s::{Access, Kube, ObjectRef};
use remedy_transport::{Local, Transport};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How steps reach the Kubernetes API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum KubeAccess {
    /// Through the target master's SSH connection, with its admin.conf.
    #[default]
    Ssh,
    /// With a kubeconfig on the jump host (`--kubeconfig`, `KUBECONFIG`).
    Kubeconfig {
        path: PathBuf,
        context: Option<String>,
        from: KubeconfigFrom,
    },
}

/// What named the kubeconfig a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum KubeconfigFrom {
    #[serde(rename = "--kubeconfig")]
    Flag,
    #[serde(rename = "KUBECONFIG")]
    Env,
}

impl std::fmt::Display for KubeconfigFrom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KubeconfigFrom::Flag => "--kubeconfig",
            KubeconfigFrom::Env => "KUBECONFIG",
        })
    }
}

/// The kubeconfig a run's `kube.*` and `api.health` steps use, as its
/// report, its journal (run start) and its JSON output say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KubeconfigUse {
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    pub from: KubeconfigFrom,
}

impl std::fmt::Display for KubeconfigUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (from {}", self.path, self.from)?;
        if let Some(c) = &self.context {
            write!(f, ", context {c}")?;
        }
        f.write_str(")")
    }
}

impl KubeAccess {
    /// The kubeconfig used, when it is one.
    pub fn kubeconfig(&self) -> Option<KubeconfigUse> {
        match self {
            KubeAccess::Ssh => None,
            KubeAccess::Kubeconfig {
                path,
                context,
                from,
            } => Some(KubeconfigUse {
                path: path.display().to_string(),
                context: context.clone(),
                from: *from,
            }),
        }
    }
}

/// Dry-run: the objects earlier steps would create, by host and object, with
/// the step that creates each and the object as the server's dry run of that
/// creation returned it. A real run never consults it: each of its steps is
/// planned against the live object after the steps before it changed it.
#[derive(Debug, Clone, Default)]
pub struct PlannedObjects(Arc<Mutex<HashMap<(String, String), Creation>>>);

/// The step that would create an object, and the object as its dry run returned it.
type Creation = (String, Value);

impl PlannedObjects {
    fn key(host: &str, r: &ObjectRef) -> (String, String) {
        (
            host.to_string(),
            format!("{} {}", r.api_version, r.display()),
        )
    }

    /// Step `step` on `host` would create `r` as `object`.
    pub fn record(&self, host: &str, r: &ObjectRef, step: &str, object: &Value) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(Self::key(host, r), (step.to_string(), object.clone()));
        }
    }

    /// The step that would create `r` on `host`, and the object it would create.
    pub fn get(&self, host: &str, r: &ObjectRef) -> Option<Creation> {
        self.0.lock().ok()?.get(&Self::key(host, r)).cloned()
    }
}

/// Whether any step of `runbook` reaches the Kubernetes API (and so would
/// use a kubeconfig).
pub fn reaches_api(runbook: &remedy_dsl::Runbook) -> bool {
    runbook.steps.iter().any(|s| {
        let name = s.action.name();
        name.starts_with("kube.") || name == "api.health"
    })
}

/// The longest one API call may take (a step's shorter `timeout` wins).
pub const CALL_TIMEOUT: Duration = remedy_k8s::DEFAULT_TIMEOUT;

/// The master's own API server URL: host var `api_server`, else
/// `https://<node_ip or address>:6443`.
pub fn api_server(host: &Host) -> String {
    host.var("api_server").unwrap_or_else(|| {
        let ip = host.var("node_ip").unwrap_or_else(|| host.address.clone());
        if ip.contains(':') {
            format!("https://[{ip}]:6443")
        } else {
            format!("https://{ip}:6443")
        }
    })
}

/// The admin kubeconfig on a master: `kube_dir`/admin.conf.
pub fn admin_conf(host: &Host) -> String {
    format!(
        "{}/admin.conf",
        host.var("kube_dir")
            .unwrap_or_else(|| "/etc/kubernetes".into())
    )
}

fn call_timeout(ctx: &StepCtx<'_>) -> Duration {
    CALL_TIMEOUT.min(ctx.command_timeout)
}

/// The credentials in a master's admin.conf, read over its transport.
pub async fn admin_access(t: &dyn Transport, host: &Host) -> Result<Access, ActionError> {
    let path = admin_conf(host);
    let bytes = t.read_file(&path).await.map_err(|e| {
        ActionError::precondition(
            format!("cannot read {path} on {}: {e}", host.name),
            "the API is reached with the master's admin kubeconfig: check host var kube_dir, or pass --kubeconfig",
        )
    })?;
    Ok(Access::from_kubeconfig(
        &String::from_utf8_lossy(&bytes),
        &format!("{}:{path}", host.name),
        None,
        None,
    )?)
}

/// A client for the API server `host` runs, through `t` (its transport).
/// `through_lb`: the server named in its admin.conf (the load balancer in a
/// kubeadm cluster) instead of its own.
pub async fn connect_via(
    ctx: &StepCtx<'_>,
    t: &dyn Transport,
    host: &Host,
    through_lb: bool,
) -> Result<Kube, ActionError> {
    let read_only = ctx.planning();
    match ctx.kube {
        KubeAccess::Ssh => {
            let access = admin_access(t, host).await?;
            let access = if through_lb {
                access
            } else {
                access.with_server(&api_server(host))
            };
            let opener = t.opener().ok_or_else(|| {
                ActionError::precondition(
                    format!("the transport to {} cannot open tunnels", host.name),
                    "reach the API with --kubeconfig instead",
                )
            })?;
            Ok(Kube::connect(
                &access,
                opener,
                call_timeout(ctx),
                read_only,
            )?)
        }
        KubeAccess::Kubeconfig { path, context, .. } => {
            let access = Access::from_file(path, context.as_deref())?;
            same_cluster(t, host, &access).await?;
            let local: Arc<dyn remedy_transport::StreamOpener> =
                Arc::new(Local::new("the jump host"));
            Ok(Kube::connect(&access, local, call_timeout(ctx), read_only)?)
        }
    }
}

/// A local kubeconfig must be for the cluster the inventory names: its CA
/// is the master's `pki_dir`/ca.crt when that can be read.
async fn same_cluster(t: &dyn Transport, host: &Host, access: &Access) -> Result<(), ActionError> {
    let pki = host
        .var("pki_dir")
        .unwrap_or_else(|| "/etc/kubernetes/pki".into());
    let Ok(ca) = t.read_file(&format!("{pki}/ca.crt")).await else {
        return Ok(());
    };
    let norm = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .split_whitespace()
            .collect::<String>()
    };
    if norm(&ca) != norm(&access.ca_pem) {
        return Err(ActionError::precondition(
            format!(
                "the kubeconfig {} is for another cluster: its CA is not {}:{pki}/ca.crt",
                access.source_name, host.name
            ),
            "pass the kubeconfig of this inventory's cluster (--kubeconfig, KUBECONFIG), or unset it to go through the master",
        ));
    }
    Ok(())
}

/// A client for this step's master's API server.
pub async fn connect(ctx: &StepCtx<'_>) -> Result<Kube, ActionError> {
    connect_via(ctx, ctx.transport, ctx.host, false).await
}

/// One object as a step names it.
#[derive(Debug, Clone, Deserialize)]
pub struct Target {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// `kube.patch`: this object's own patch.
    #[serde(default)]
    pub patch: Option<Value>,
}

impl Target {
    /// The reference, with `default_api_version` when none is given.
    pub fn reference(
        &self,
        action: &'static str,
        default_api_version: &str,
    ) -> Result<ObjectRef, ActionError> {
        let missing = |what: &str| ActionError::BadArguments {
            action,
            message: format!("an object needs `{what}`"),
        };
        Ok(ObjectRef {
            api_version: self
                .api_version
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| default_api_version.to_string()),
            kind: self
                .kind
                .clone()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| missing("kind"))?,
            namespace: self.namespace.clone().filter(|s| !s.is_empty()),
            name: self
                .name
                .clone()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| missing("name"))?,
        })
    }
}

/// The objects a step names: its `objects` list, else its own
/// api_version/kind/namespace/name.
pub fn targets(
    action: &'static str,
    single: Target,
    objects: &Option<Value>,
) -> Result<Vec<Target>, ActionError> {
    match objects {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                serde_json::from_value::<Target>(v.clone()).map_err(|e| ActionError::BadArguments {
                    action,
                    message: format!("an entry of `objects` is not an object reference: {e}"),
                })
            })
            .collect(),
        Some(Value::Null) | None => Ok(vec![single]),
        Some(other) => Err(ActionError::BadArguments {
            action,
            message: format!("`objects` must be a list, found {other}"),
        }),
    }
}

/// How often a write is tried again when the object moved between reading
/// it and writing it without becoming something else (a status write).
const WRITE_ATTEMPTS: u32 = 5;

/// Write `r` as the plan said, while it is still what the plan saw: read
/// it, compare it with the plan's (status and the metadata every write
/// changes aside), and write conditional on the version just read. A 409
/// meanwhile (a controller writing the status) is read and compared again.
/// `None`: the plan does not change `r`; else the object as it was before
/// the write (`None`: absent), and what the write returned.
pub async fn write_unchanged<T, F, Fut>(
    kube: &Kube,
    changes: &[Change],
    r: &ObjectRef,
    mut write: F,
) -> Result<Option<(Option<Value>, T)>, ActionError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<T, remedy_k8s::KubeError>>,
{
    let Some(planned) = Planned::of(changes, r) else {
        return Ok(None);
    };
    let mut attempt = 1;
    loop {
        let live = kube.get(r).await?;
        if let Err(changed) = planned.check(r, live.as_ref()) {
            return Err(ActionError::Failed {
                message: changed.to_string(),
                hint: Some("run again: the new plan shows the object as it is now".into()),
            });
        }
        match write(live.as_ref().and_then(remedy_k8s::resource_version)).await {
            Ok(v) => return Ok(Some((live, v))),
            Err(e) if e.is_conflict() && attempt < WRITE_ATTEMPTS => attempt += 1,
            Err(e) => return Err(conflict(r, e)),
        }
    }
}

/// A unified diff between two versions of an object, as YAML without the
/// fields the server sets.
pub fn object_diff(r: &ObjectRef, before: Option<&Value>, after: Option<&Value>) -> String {
    let text = |v: Option<&Value>| {
        v.map(|o| remedy_k8s::to_yaml(&remedy_k8s::without_server_fields(o)))
            .unwrap_or_default()
    };
    crate::plan::unified_diff(&r.display(), &text(before), &text(after))
}

/// A 409 from a precondition, said as what happened.
pub fn conflict(r: &ObjectRef, e: remedy_k8s::KubeError) -> ActionError {
    if e.is_conflict() {
        ActionError::Failed {
            message: format!("{r} changed after the plan, so it was left as it is: {e}"),
            hint: Some("run again: the new plan shows the object as it is now".into()),
        }
    } else {
        e.into()
    }
}

/// A step failed part-way: put the objects it changed back as they were
/// (newest first), then fail with `err`, saying what was put back — the
/// engine's backups are there for anything that could not be.
pub async fn put_back(kube: &Kube, done: &[(ObjectRef, Value)], err: ActionError) -> ActionError {
    if done.is_empty() {
        return err;
    }
    let mut back = Vec::new();
    let mut stuck = Vec::new();
    for (r, before) in done.iter().rev() {
        match remedy_k8s::restore::restore(kube, r, Some(before)).await {
            Ok(_) => back.push(r.display()),
            Err(e) => stuck.push(format!("{r}: {e}")),
        }
    }
    let hint = err.hint().map(str::to_string);
    let mut message = format!("{err}; put back as they were: {}", back.join(", "));
    if !stuck.is_empty() {
        message.push_str(&format!(
            "; NOT put back (rollback restores them from the backups): {}",
            stuck.join("; ")
        ));
    }
    ActionError::Failed { message, hint }
}
