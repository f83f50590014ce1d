//! Actions: one kind of step each. `plan` probes read-only and says exactly
//! what `apply` would change; `apply` makes it so and is idempotent (a resumed
//! run may repeat it). The closed [`ActionKind`] enum with the exhaustive match
//! in [`instantiate`] is the registry: a new action is one variant plus one file.

mod api_health;
mod apiserver_diagnose;
mod assert;
pub(crate) mod cert_check;
mod cert_renew;
mod cert_served;
pub(crate) mod etcd;
mod etcd_alarm;
mod etcd_compact;
mod etcd_defrag;
mod etcd_delete_key;
mod etcd_move_leader;
mod etcd_restore;
mod etcd_snapshot;
mod etcd_status;
mod file_copy;
mod file_edit;
mod file_fetch;
mod file_move;
mod file_write;
mod haproxy_drain;
mod haproxy_ready;
mod haproxy_stat;
mod haproxy_weight;
mod host_skip;
pub mod kube;
mod kube_apply;
mod kube_delete;
mod kube_get;
mod kube_patch;
mod kube_probe_write;
mod kube_restore;
mod kube_scale;
mod kube_wait;
pub(crate) mod kube_webhooks;
mod lb;
mod script;
mod shell;
mod static_pod_restart;
mod wait_until;

pub use etcd::EtcdClients;

use crate::eval::{Bindings, EvalError};
use crate::inventory::Host;
use crate::plan::Plan;
use async_trait::async_trait;
use remedy_clock::Clock;
use remedy_dsl::{ActionKind, Step};
use remedy_haproxy::HaproxyError;
use remedy_transport::{Connector, ReadOnly, Transport, TransportError};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::time::Duration;

/// What an action sees while planning or applying one step on one host.
pub struct StepCtx<'a> {
    /// Read-only while planning.
    pub transport: &'a dyn Transport,
    pub host: &'a Host,
    pub step: &'a Step,
    pub bindings: &'a Bindings,
    pub clock: &'a dyn Clock,
    /// Reports a long wait: (what, seconds so far).
    pub progress: &'a (dyn Fn(&str, u64) + Send + Sync),
    /// Limit for one command on the host.
    pub command_timeout: Duration,
    /// The run's connector, for actions that act on other inventory hosts
    /// (the load balancers); see [`StepCtx::connect_peer`].
    pub connector: &'a dyn Connector,
    /// The inventory's load balancers (group `lbs`).
    pub lbs: &'a [Host],
    /// The hosts of the etcd members (group `etcd`).
    pub etcd: &'a [Host],
    /// Every target of the run (`api.health` with `all: true` asks each).
    pub targets: &'a [Host],
    /// How `kube.*` steps reach the API server.
    pub kube: &'a kube::KubeAccess,
    /// Backups earlier runs took, every host's, oldest first (from the
    /// journal; empty where the caller has none): see [`StepCtx::backups_of`].
    pub backups: &'a [crate::backup::KnownBackup],
    /// The run's clients to those members, shared by every step.
    pub etcd_clients: &'a EtcdClients,
    /// Dry-run only: the objects earlier steps' plans would create, so a
    /// later step plans against them rather than failing on their absence.
    pub planned_objects: Option<&'a kube::PlannedObjects>,
}

impl StepCtx<'_> {
    /// The backups of `path` on this host, newest first.
    pub fn backups_of(&self, path: &str) -> Vec<&crate::backup::KnownBackup> {
        let mut found: Vec<_> = self
            .backups
            .iter()
            .filter(|b| b.host == self.host.name && b.record.path == path && b.record.existed)
            .collect();
        found.sort_by_key(|b| std::cmp::Reverse((b.time_ms, b.id)));
        found
    }

    /// True while planning: `transport` is read-only.
    pub fn planning(&self) -> bool {
        self.transport.is_read_only()
    }

    /// A transport to another inventory host (an LB in front of this
    /// master), through the run's connector — so the run's one connection
    /// per host is reused. Read-only while planning, like `transport`.
    pub async fn connect_peer(&self, peer: &Host) -> Result<Box<dyn Transport>, ActionError> {
        let t = self.connector.connect(peer).await?;
        Ok(if self.planning() {
            Box::new(ReadOnly::owned(t))
        } else {
            t
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Eval(#[from] EvalError),
    /// A load balancer's HAProxy refused, failed or timed out (see
    /// `lb.rs` for the errors that become `Failed` instead).
    #[error(transparent)]
    Haproxy(HaproxyError),
    /// The action ran and the host said no (non-zero exit, failed assert…).
    #[error("{message}")]
    Failed {
        message: String,
        hint: Option<String>,
    },
    /// An etcd member refused, failed or timed out.
    #[error(transparent)]
    Etcd(#[from] remedy_etcd::EtcdError),
    /// The Kubernetes API refused, failed or timed out.
    #[error(transparent)]
    Kube(#[from] remedy_k8s::KubeError),
    /// An argument's value (after interpolation) is not usable.
    #[error("invalid arguments for `{action}`: {message}")]
    BadArguments {
        action: &'static str,
        message: String,
    },
    /// The host is not in a state the action can work from.
    #[error("{message}")]
    Precondition {
        message: String,
        hint: Option<String>,
    },
}

impl ActionError {
    pub fn failed(message: impl Into<String>) -> ActionError {
        ActionError::Failed {
            message: message.into(),
            hint: None,
        }
    }
    pub fn precondition(message: impl Into<String>, hint: impl Into<String>) -> ActionError {
        ActionError::Precondition {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }
    /// The operator's next step, when the action knows one.
    pub fn hint(&self) -> Option<&str> {
        match self {
            ActionError::Failed { hint, .. } | ActionError::Precondition { hint, .. } => {
                hint.as_deref()
            }
            _ => None,
        }
    }
    pub fn retryable(&self) -> bool {
        match self {
            ActionError::Transport(t) => t.retryable(),
            ActionError::Haproxy(h) => h.retryable(),
            ActionError::Etcd(e) => e.retryable(),
            ActionError::Kube(e) => e.retryable(),
            ActionError::Failed { .. } => true,
            _ => false,
        }
    }
}

#[async_trait]
pub trait Action: Send + Sync {
    /// Read-only: probe the host and say what apply would change.
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError>;
    /// Make the change; return the step's result. Idempotent.
    async fn apply(&self, ctx: &StepCtx<'_>, plan: &Plan) -> Result<Value, ActionError>;

    /// Paths on the jump host (remedy's own machine) that apply changes; the
    /// engine backs them up there, as it does the plan's `modifies` on the host.
    fn modifies_local(&self) -> Vec<String> {
        Vec::new()
    }
}

/// An action that only reads: it runs fully while planning, so a dry-run
/// shows its result, and applying reads again.
#[async_trait]
pub trait Reads: Send + Sync {
    /// What was read: a summary for the plan, and the step's result.
    async fn read(&self, ctx: &StepCtx<'_>) -> Result<(String, Value), ActionError>;
}

#[async_trait]
impl<T: Reads> Action for T {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        let (summary, value) = self.read(ctx).await?;
        Ok(Plan::noop(summary, value))
    }

    async fn apply(&self, ctx: &StepCtx<'_>, _plan: &Plan) -> Result<Value, ActionError> {
        Ok(self.read(ctx).await?.1)
    }
}

fn args<T: DeserializeOwned>(kind: ActionKind, args: Value) -> Result<T, ActionError> {
    serde_json::from_value(args).map_err(|e| ActionError::BadArguments {
        action: kind.name(),
        message: e.to_string(),
    })
}

/// Build the action for a step from its resolved `with` arguments.
pub fn instantiate(kind: ActionKind, with: Value) -> Result<Box<dyn Action>, ActionError> {
    Ok(match kind {
        ActionKind::Shell => Box::new(args::<shell::Shell>(kind, with)?),
        ActionKind::FileWrite => Box::new(args::<file_write::FileWrite>(kind, with)?),
        ActionKind::FileEdit => Box::new(args::<file_edit::FileEdit>(kind, with)?),
        ActionKind::FileMove => Box::new(args::<file_move::FileMove>(kind, with)?),
        ActionKind::WaitUntil => Box::new(args::<wait_until::WaitUntil>(kind, with)?),
        ActionKind::Assert => Box::new(args::<assert::Assert>(kind, with)?),
        ActionKind::Script => Box::new(script::Script),
        ActionKind::HostSkip => Box::new(args::<host_skip::HostSkip>(kind, with)?),
        ActionKind::StaticPodRestart => {
            Box::new(args::<static_pod_restart::StaticPodRestart>(kind, with)?)
        }
        ActionKind::FileCopy => Box::new(args::<file_copy::FileCopy>(kind, with)?),
        ActionKind::FileFetch => Box::new(args::<file_fetch::FileFetch>(kind, with)?),
        ActionKind::CertCheck => Box::new(args::<cert_check::CertCheck>(kind, with)?),
        ActionKind::CertRenew => Box::new(args::<cert_renew::CertRenew>(kind, with)?),
        ActionKind::CertServed => Box::new(args::<cert_served::CertServed>(kind, with)?),
        ActionKind::HaproxyStat => Box::new(args::<haproxy_stat::HaproxyStat>(kind, with)?),
        ActionKind::HaproxyDrain => Box::new(args::<haproxy_drain::HaproxyDrain>(kind, with)?),
        ActionKind::HaproxyReady => Box::new(args::<haproxy_ready::HaproxyReady>(kind, with)?),
        ActionKind::HaproxyWeight => Box::new(args::<haproxy_weight::HaproxyWeight>(kind, with)?),
        ActionKind::EtcdStatus => Box::new(args::<etcd_status::EtcdStatus>(kind, with)?),
        ActionKind::EtcdSnapshot => Box::new(args::<etcd_snapshot::EtcdSnapshot>(kind, with)?),
        ActionKind::EtcdDeleteKey => Box::new(args::<etcd_delete_key::EtcdDeleteKey>(kind, with)?),
        ActionKind::EtcdCompact => Box::new(args::<etcd_compact::EtcdCompact>(kind, with)?),
        ActionKind::EtcdDefrag => Box::new(args::<etcd_defrag::EtcdDefrag>(kind, with)?),
        ActionKind::EtcdAlarm => Box::new(args::<etcd_alarm::EtcdAlarm>(kind, with)?),
        ActionKind::EtcdMoveLeader => {
            Box::new(args::<etcd_move_leader::EtcdMoveLeader>(kind, with)?)
        }
        ActionKind::KubeGet => Box::new(args::<kube_get::KubeGet>(kind, with)?),
        ActionKind::KubeApply => Box::new(args::<kube_apply::KubeApply>(kind, with)?),
        ActionKind::KubePatch => Box::new(args::<kube_patch::KubePatch>(kind, with)?),
        ActionKind::KubeDelete => Box::new(args::<kube_delete::KubeDelete>(kind, with)?),
        ActionKind::KubeRestore => Box::new(args::<kube_restore::KubeRestore>(kind, with)?),
        ActionKind::KubeScale => Box::new(args::<kube_scale::KubeScale>(kind, with)?),
        ActionKind::KubeWait => Box::new(args::<kube_wait::KubeWait>(kind, with)?),
        ActionKind::KubeWebhooks => Box::new(args::<kube_webhooks::KubeWebhooks>(kind, with)?),
        ActionKind::KubeProbeWrite => {
            Box::new(args::<kube_probe_write::KubeProbeWrite>(kind, with)?)
        }
        ActionKind::ApiHealth => Box::new(args::<api_health::ApiHealth>(kind, with)?),
        ActionKind::EtcdRestore => Box::new(args::<etcd_restore::EtcdRestore>(kind, with)?),
        ActionKind::ApiserverDiagnose => {
            Box::new(args::<apiserver_diagnose::ApiserverDiagnose>(kind, with)?)
        }
    })
}

/// Whether [`undo`] puts back this kind's changes from its recorded
/// result. Files are the engine's job (backups); this is for changes that
/// are not files, such as a server's state on a load balancer.
pub fn undoes_from_result(kind: ActionKind) -> bool {
    match kind {
        ActionKind::HaproxyDrain | ActionKind::HaproxyReady | ActionKind::HaproxyWeight => true,
        ActionKind::Shell
        | ActionKind::FileWrite
        | ActionKind::FileEdit
        | ActionKind::FileMove
        | ActionKind::FileCopy
        | ActionKind::FileFetch
        | ActionKind::WaitUntil
        | ActionKind::Assert
        | ActionKind::Script
        | ActionKind::HostSkip
        | ActionKind::StaticPodRestart
        | ActionKind::CertCheck
        | ActionKind::CertRenew
        | ActionKind::CertServed
        | ActionKind::HaproxyStat
        | ActionKind::EtcdStatus
        | ActionKind::EtcdSnapshot
        | ActionKind::EtcdCompact
        | ActionKind::EtcdDefrag
        | ActionKind::EtcdAlarm
        | ActionKind::EtcdMoveLeader
        // Keys are restored from the backup store, like objects.
        | ActionKind::EtcdDeleteKey
        | ActionKind::KubeGet
        | ActionKind::KubeWait
        | ActionKind::KubeWebhooks
        | ActionKind::KubeProbeWrite
        | ActionKind::ApiHealth
        // Objects are restored from the backup store, like files.
        | ActionKind::KubeApply
        | ActionKind::KubePatch
        | ActionKind::KubeDelete
        | ActionKind::KubeRestore
        | ActionKind::KubeScale
        | ActionKind::EtcdRestore
        | ActionKind::ApiserverDiagnose => false,
    }
}

/// Undo a finished step of a kind [`undoes_from_result`] names, from its
/// result: what was put back, one line each, for the journal.
pub async fn undo(ctx: &StepCtx<'_>, result: &Value) -> Result<Vec<String>, ActionError> {
    lb::restore_recorded(ctx, result).await
}

/// A duration argument: seconds as a number, or text like `30s`.
#[derive(Debug, Clone, Copy)]
pub struct Secs(pub u64);

impl<'de> serde::Deserialize<'de> for Secs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Secs, D::Error> {
        match Value::deserialize(d)? {
            Value::Number(n) if n.as_u64().is_some() => Ok(Secs(n.as_u64().unwrap_or(0))),
            Value::String(s) => remedy_dsl::param::parse_duration(&s)
                .map(|v| Secs(v as u64))
                .ok_or_else(|| {
                    serde::de::Error::custom(format!("`{s}` is not a duration (e.g. 30s, 5m)"))
                }),
            other => Err(serde::de::Error::custom(format!(
                "expected a duration, found {other}"
            ))),
        }
    }
}

/// The result every step registers, plus the action's own fields.
pub fn result(changed: bool, fields: Value) -> Value {
    let mut map = match fields {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    map.insert("changed".into(), Value::Bool(changed));
    map.insert("skipped".into(), Value::Bool(false));
    map.insert("failed".into(), Value::Bool(false));
    map.insert("error".into(), Value::String(String::new()));
    Value::Object(map)
}

/// A result with every field of `kind` present but empty (null), so a later
/// `steps.x.rc == 0` is simply false instead of a "property not found" error.
fn empty_result(kind: ActionKind) -> Value {
    let fields: serde_json::Map<String, Value> = kind
        .results()
        .unwrap_or(&[])
        .iter()
        .map(|r| (r.name.to_string(), Value::Null))
        .collect();
    result(false, Value::Object(fields))
}

/// The result of a step that did not run (`when` false, host skipped).
pub fn skipped_result(kind: ActionKind) -> Value {
    let mut v = empty_result(kind);
    v["skipped"] = Value::Bool(true);
    v
}

/// The result of a failed step under `on_failure: continue`.
pub fn failed_result(kind: ActionKind, error: &str) -> Value {
    let mut v = empty_result(kind);
    v["failed"] = Value::Bool(true);
    v["error"] = Value::String(error.to_string());
    v
}

/// The last few lines of a command's output, for error messages.
pub fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let start = lines.len().saturating_sub(5);
    lines[start..].join("\n")
}
