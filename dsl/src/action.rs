//! The catalogue of action kinds: their names, the arguments each takes under
//! `with`, and the results each registers under `steps.<id>`.
//!
//! This is data only; the engine implements each kind with an exhaustive match
//! on [`ActionKind`], so adding an action is one variant here plus one file there.

use crate::expr::Context;
use serde::Serialize;

/// Every action a step can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum ActionKind {
    Shell,
    FileWrite,
    FileEdit,
    FileMove,
    FileCopy,
    FileFetch,
    WaitUntil,
    Assert,
    Script,
    HostSkip,
    StaticPodRestart,
    CertCheck,
    CertRenew,
    CertServed,
    HaproxyStat,
    HaproxyDrain,
    HaproxyReady,
    HaproxyWeight,
    EtcdStatus,
    EtcdSnapshot,
    EtcdCompact,
    EtcdDefrag,
    EtcdAlarm,
    EtcdMoveLeader,
    EtcdDeleteKey,
    KubeGet,
    KubeApply,
    KubePatch,
    KubeDelete,
    KubeRestore,
    KubeScale,
    KubeWait,
    KubeWebhooks,
    KubeProbeWrite,
    ApiHealth,
    ApiserverDiagnose,
    EtcdRestore,
}

/// The type an argument's value must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    Str,
    /// A shell command: each `${...}` is inserted as one shell-quoted word,
    /// unless it is `${shell_raw(...)}`.
    Command,
    Int,
    Bool,
    /// `30s`, `5m`; an integer is seconds.
    Duration,
    StrList,
    /// A mapping of strings to strings (e.g. flags to values).
    StrMap,
    /// A Rhai expression (not a `${}` string) evaluated in the given context.
    Expr(Context),
    /// A Rhai script.
    Script,
    /// Any YAML value — a mapping, a list, a scalar — whose strings may
    /// hold `${}`; a string that is one `${...}` gives that value as it is
    /// (a list or map from an earlier step).
    Value,
}

impl ArgKind {
    pub fn describe(self) -> &'static str {
        match self {
            ArgKind::Str => "a string",
            ArgKind::Command => "a shell command (a string)",
            ArgKind::Int => "an integer",
            ArgKind::Bool => "a boolean",
            ArgKind::Duration => "a duration (e.g. 30s, 5m)",
            ArgKind::StrList => "a list of strings",
            ArgKind::StrMap => "a mapping of strings",
            ArgKind::Expr(_) => "a Rhai expression",
            ArgKind::Script => "a Rhai script",
            ArgKind::Value => "a YAML value",
        }
    }
}

/// One argument an action accepts.
#[derive(Debug, Clone, Copy)]
pub struct ArgSpec {
    pub name: &'static str,
    pub kind: ArgKind,
    pub required: bool,
    pub doc: &'static str,
}

/// One field of an action's result.
#[derive(Debug, Clone, Copy)]
pub struct ResultSpec {
    pub name: &'static str,
    pub doc: &'static str,
}

// Struct literals (not const fn calls) so the tables below are promoted to statics.
macro_rules! arg {
    ($name:expr, $kind:expr, $required:expr, $doc:expr) => {
        ArgSpec {
            name: $name,
            kind: $kind,
            required: $required,
            doc: $doc,
        }
    };
}

macro_rules! res {
    ($name:expr, $doc:expr) => {
        ResultSpec {
            name: $name,
            doc: $doc,
        }
    };
}

/// Fields every step registers, whatever its action.
pub const COMMON_RESULTS: &[ResultSpec] = &[
    res!(
        "changed",
        "true when the step changed something on the host"
    ),
    res!(
        "skipped",
        "true when `when` was false or the host was skipped"
    ),
    res!(
        "failed",
        "true when the step failed and `on_failure: continue` or `handled` let the host go on"
    ),
    res!("error", "the failure's message when `failed`, else empty"),
];

/// The `server` argument every `haproxy.*` action takes.
const SERVER_ARG: ArgSpec = arg!(
    "server",
    ArgKind::Str,
    false,
    "this master's server name in the LBs' backend (default: host var haproxy_server, else the host's inventory name)"
);

/// What `haproxy.drain|ready|weight` found before changing anything: what
/// undo (rollback) restores.
const PRIOR_RESULT: ResultSpec = res!(
    "prior",
    "per LB, the server before the step: {lb, backend, server, admin, weight, status}; rollback restores admin state and weight exactly"
);

/// Which object a `kube.*` step names (without `objects`).
const KUBE_API_VERSION_ARG: ArgSpec = arg!(
    "api_version",
    ArgKind::Str,
    false,
    "the object's apiVersion (default v1; apps/v1 for kube.scale)"
);
const KUBE_KIND_ARG: ArgSpec = arg!(
    "kind",
    ArgKind::Str,
    false,
    "the object's kind, e.g. ConfigMap, ValidatingWebhookConfiguration"
);
const KUBE_NAMESPACE_ARG: ArgSpec = arg!(
    "namespace",
    ArgKind::Str,
    false,
    "its namespace, for namespaced kinds (default: default)"
);
const KUBE_NAME_ARG: ArgSpec = arg!("name", ArgKind::Str, false, "its name");
const KUBE_OBJECTS_ARG: ArgSpec = arg!(
    "objects",
    ArgKind::Value,
    false,
    "several objects instead of one: a list of {api_version, kind, namespace, name} (kube.patch: each may carry its own `patch`)"
);

impl ActionKind {
    pub const ALL: [ActionKind; 37] = [
        ActionKind::Shell,
        ActionKind::FileWrite,
        ActionKind::FileEdit,
        ActionKind::FileMove,
        ActionKind::FileCopy,
        ActionKind::FileFetch,
        ActionKind::WaitUntil,
        ActionKind::Assert,
        ActionKind::Script,
        ActionKind::HostSkip,
        ActionKind::StaticPodRestart,
        ActionKind::CertCheck,
        ActionKind::CertRenew,
        ActionKind::CertServed,
        ActionKind::HaproxyStat,
        ActionKind::HaproxyDrain,
        ActionKind::HaproxyReady,
        ActionKind::HaproxyWeight,
        ActionKind::EtcdStatus,
        ActionKind::EtcdSnapshot,
        ActionKind::EtcdCompact,
        ActionKind::EtcdDefrag,
        ActionKind::EtcdAlarm,
        ActionKind::EtcdMoveLeader,
        ActionKind::EtcdDeleteKey,
        ActionKind::KubeGet,
        ActionKind::KubeApply,
        ActionKind::KubePatch,
        ActionKind::KubeDelete,
        ActionKind::KubeRestore,
        ActionKind::KubeScale,
        ActionKind::KubeWait,
        ActionKind::KubeWebhooks,
        ActionKind::KubeProbeWrite,
        ActionKind::ApiHealth,
        ActionKind::ApiserverDiagnose,
        ActionKind::EtcdRestore,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ActionKind::Shell => "shell",
            ActionKind::FileWrite => "file.write",
            ActionKind::FileEdit => "file.edit",
            ActionKind::FileMove => "file.move",
            ActionKind::FileCopy => "file.copy",
            ActionKind::FileFetch => "file.fetch",
            ActionKind::WaitUntil => "wait.until",
            ActionKind::Assert => "assert",
            ActionKind::Script => "script",
            ActionKind::HostSkip => "host.skip",
            ActionKind::StaticPodRestart => "static_pod.restart",
            ActionKind::CertCheck => "cert.check",
            ActionKind::CertRenew => "cert.renew",
            ActionKind::CertServed => "cert.served",
            ActionKind::HaproxyStat => "haproxy.stat",
            ActionKind::HaproxyDrain => "haproxy.drain",
            ActionKind::HaproxyReady => "haproxy.ready",
            ActionKind::HaproxyWeight => "haproxy.weight",
            ActionKind::EtcdStatus => "etcd.status",
            ActionKind::EtcdSnapshot => "etcd.snapshot",
            ActionKind::EtcdDeleteKey => "etcd.delete_key",
            ActionKind::EtcdCompact => "etcd.compact",
            ActionKind::EtcdDefrag => "etcd.defrag",
            ActionKind::EtcdAlarm => "etcd.alarm",
            ActionKind::EtcdMoveLeader => "etcd.move_leader",
            ActionKind::KubeGet => "kube.get",
            ActionKind::KubeApply => "kube.apply",
            ActionKind::KubePatch => "kube.patch",
            ActionKind::KubeDelete => "kube.delete",
            ActionKind::KubeRestore => "kube.restore",
            ActionKind::KubeScale => "kube.scale",
            ActionKind::KubeWait => "kube.wait",
            ActionKind::KubeWebhooks => "kube.webhooks",
            ActionKind::KubeProbeWrite => "kube.probe_write",
            ActionKind::ApiHealth => "api.health",
            ActionKind::ApiserverDiagnose => "apiserver.diagnose",
            ActionKind::EtcdRestore => "etcd.restore",
        }
    }

    pub fn from_name(name: &str) -> Option<ActionKind> {
        ActionKind::ALL.into_iter().find(|k| k.name() == name)
    }

    pub fn summary(self) -> &'static str {
        match self {
            ActionKind::Shell => {
                "run a command; `creates`/`unless` guards let a dry-run tell whether it would run"
            }
            ActionKind::FileWrite => "write a whole file atomically (mode and owner preserved)",
            ActionKind::FileEdit => {
                "edit a static-pod manifest: set/remove container flags and resource values"
            }
            ActionKind::FileMove => {
                "move a file (e.g. a manifest out of the manifests directory and back)"
            }
            ActionKind::FileCopy => "copy a file on the host (e.g. a renewed admin.conf to where people use it); the destination is backed up",
            ActionKind::FileFetch => "copy a file from the host to the jump host (e.g. a renewed admin.conf); the local destination is backed up",
            ActionKind::WaitUntil => "poll a read-only probe command until a Rhai condition holds",
            ActionKind::Assert => "fail the host unless a Rhai condition holds",
            ActionKind::Script => {
                "compute values in Rhai (no I/O); its returned map is the step result"
            }
            ActionKind::HostSkip => "stop this host's remaining steps, successfully",
            ActionKind::StaticPodRestart => "restart static pods by moving their manifests out and back, waiting for a new container and health",
            ActionKind::CertCheck => "list every certificate of a master with its expiry, like `kubeadm certs check-expiration` (read-only)",
            ActionKind::CertRenew => "renew the leaf certificates and kubeconfig client certificates like `kubeadm certs renew all`",
            ActionKind::CertServed => "check that an endpoint serves the certificate in a file (by SHA-256 fingerprint)",
            ActionKind::HaproxyStat => "read this master's server and its backend on every load balancer (group `lbs`) through HAProxy's runtime API (read-only)",
            ActionKind::HaproxyDrain => "take this master out of every load balancer: state drain, wait for its sessions to end, optionally cut them and set maint; refused when too few other servers would stay UP",
            ActionKind::HaproxyReady => "put this master back into every load balancer: state ready, then wait until its status is exactly UP everywhere",
            ActionKind::HaproxyWeight => "set this master's weight on every load balancer",
            ActionKind::EtcdStatus => "every etcd member's status, like `etcdctl endpoint status -w table`: leader, raft term/index, revision, db size and in use, fragmentation, alarms, health (read-only)",
            ActionKind::EtcdSnapshot => "stream an etcd snapshot to a new file on the jump host, checking its size and sha256",
            ActionKind::EtcdDeleteKey => "LAST RESORT: delete keys in etcd directly, bypassing the API server — a snapshot first, each value backed up (raw bytes, sha256) and put back by rollback",
            ActionKind::EtcdCompact => "compact etcd's history to the current revision minus a retention, physically",
            ActionKind::EtcdDefrag => "defragment the members a rule picks, one at a time, followers first and the leader last, with health gates before and after each",
            ActionKind::EtcdAlarm => "list etcd's alarms; disarm them only when every member is under the quota threshold",
            ActionKind::EtcdMoveLeader => "move etcd leadership to another member",
            ActionKind::KubeGet => "read objects from the API server by kind and name or label selector (read-only)",
            ActionKind::KubeApply => "server-side apply an object; the plan is the server's dry-run result and a diff of the live object against it",
            ActionKind::KubePatch => "patch objects (merge, JSON or strategic patch); the plan is the server's dry-run result and its diff",
            ActionKind::KubeDelete => "delete objects with an explicit propagationPolicy; the plan shows each object",
            ActionKind::KubeRestore => "put one object back from a backup remedy took (on the jump host, checked by its sha256); the plan is a diff from the live object to the backup",
            ActionKind::KubeScale => "set the replicas of a Deployment or StatefulSet; the prior replicas are recorded",
            ActionKind::KubeWait => "poll an object until a status condition or a Rhai condition over it holds (read-only)",
            ActionKind::KubeProbeWrite => "prove the API server takes writes: create a ConfigMap labelled remedy.io/probe=true, then delete it (leaves nothing behind)",
            ActionKind::KubeWebhooks => "list admission webhooks and find those with failurePolicy Fail whose backend cannot answer (read-only)",
            ActionKind::ApiHealth => "the API servers' /livez and /readyz?verbose as named checks, per API server and through the load balancer (read-only)",
            ActionKind::EtcdRestore => "rebuild every etcd member from one snapshot: API servers and etcd stopped everywhere (manifests to staging), old data dirs moved aside (never deleted), `etcdutl snapshot restore` per member, etcd started everywhere and healthy with a leader, then the API servers",
            ActionKind::ApiserverDiagnose => "why this master's API server is not healthy (stranded or unparseable manifest, health endpoint, its log's last error quoted) and the remedy apiserver-recover may apply: a good backup of the manifest from the journal, or the one flag the log names (read-only)",
        }
    }

    /// True when the action never changes the host, so it runs fully in a dry-run.
    pub fn read_only(self) -> bool {
        matches!(
            self,
            ActionKind::WaitUntil
                | ActionKind::Assert
                | ActionKind::Script
                | ActionKind::HostSkip
                | ActionKind::HaproxyStat
                | ActionKind::EtcdStatus
                | ActionKind::KubeGet
                | ActionKind::KubeWait
                | ActionKind::KubeWebhooks
                | ActionKind::ApiHealth
        )
    }

    pub fn args(self) -> &'static [ArgSpec] {
        use ArgKind::*;
        match self {
            ActionKind::Shell => &[
                arg!("cmd", Command, true, "the command, run by `sh -c` on the host; each `${...}` goes in as one quoted word (`${shell_raw(...)}` for shell text)"),
                arg!("creates", Str, false, "skip when this path exists (checked in dry-run too)"),
                arg!("unless", Command, false, "skip when this read-only command exits 0 (it runs in dry-run too)"),
                arg!("read_only", Bool, false, "the command only reads: it also runs in dry-run, so its result is known"),
                arg!("modifies", StrList, false, "paths the command changes; they are backed up first and restored on rollback"),
                arg!("ok_codes", StrList, false, "exit codes that count as success (default: 0)"),
            ],
            ActionKind::FileWrite => &[
                arg!("path", Str, true, "file to write"),
                arg!("content", Str, true, "the new content"),
                arg!("mode", Str, false, "octal mode the file ends with, quoted (\"0600\"); without it an existing file keeps its mode and a new one gets 0644"),
            ],
            ActionKind::FileEdit => &[
                arg!("path", Str, true, "the static-pod manifest"),
                arg!("container", Str, false, "container name (default: the pod's only or first container)"),
                arg!("set_flags", StrMap, false, "flags to set in the container's command: a mapping {--max-requests-inflight: \"800\"} or a list of `--flag=value`"),
                arg!("remove_flags", StrList, false, "flags to remove from the container's command"),
                arg!("add_to_flags", StrMap, false, "comma-separated items to add to a list flag, keeping the items it has (the flag is created when absent): {--disable-admission-plugins: \"ValidatingAdmissionWebhook,MutatingAdmissionWebhook\"}; first container only"),
                arg!("set_resources", StrMap, false, "resource values: a mapping {limits.memory: 2Gi} or a list of `limits.memory=2Gi`"),
                arg!("remove_resources", StrList, false, "resource values to remove, e.g. [limits.cpu]"),
                arg!("check", Bool, false, "only find out whether the edit would change the file (result `would_change`), writing nothing — e.g. to drain a master before an edit the kubelet restarts it for"),
            ],
            ActionKind::FileMove => &[
                arg!("from", Str, true, "the file to move"),
                arg!("to", Str, true, "where it goes (a full file path); its directory is created"),
            ],
            ActionKind::FileCopy => &[
                arg!("from", Str, true, "the file to copy"),
                arg!("to", Str, true, "the destination file; its directory is created"),
                arg!("mode", Str, false, "octal mode of the copy, quoted (\"0600\"); default (or empty): the source's mode"),
                arg!("sha256", Str, false, "the sha256 `from` must have (e.g. a backup's recorded one); anything else is refused before a byte is written"),
            ],
            ActionKind::FileFetch => &[
                arg!("from", Str, true, "the file on the host"),
                arg!("to", Str, true, "the destination on the jump host (remedy's machine); its directory is created"),
                arg!("mode", Str, false, "octal mode of the copy, quoted (\"0600\"; default \"0600\")"),
            ],
            ActionKind::WaitUntil => &[
                arg!("command", Command, true, "a read-only probe command, run until `condition` holds"),
                arg!("condition", Expr(Context::Result), true, "Rhai over `result` (rc, stdout, stderr)"),
                arg!("interval", Duration, false, "time between probes (default 2s)"),
                arg!("timeout", Duration, false, "give up after this long (default 5m)"),
            ],
            ActionKind::Assert => &[
                arg!("that", Expr(Context::Step), true, "Rhai condition that must be true"),
                arg!("message", Str, false, "what to tell the operator when it is false"),
            ],
            ActionKind::Script => &[arg!("code", Script, true, "the Rhai script; a returned map becomes the step result")],
            ActionKind::HostSkip => &[arg!("reason", Str, true, "why the host needs nothing")],
            ActionKind::StaticPodRestart => &[
                arg!("pods", StrList, true, "static pods to restart, in order (e.g. [etcd, kube-apiserver])"),
                arg!("timeout", Duration, false, "how long each wait may take: gone, running again, healthy (default 2m)"),
                arg!("health", StrMap, false, "health URL per pod, checked on the host with curl; default from the manifest's flags; `none` skips"),
            ],
            ActionKind::CertCheck => &[
                arg!("pki", Str, false, "the PKI directory (default: host var pki_dir, /etc/kubernetes/pki)"),
                arg!("kubeconfigs", StrList, false, "kubeconfigs to check (default: admin, super-admin, controller-manager, scheduler and kubelet .conf in kube_dir)"),
                arg!("served", Str, false, "an endpoint (host:port, reached from the host) that must serve the PKI's apiserver.crt; `stale` when it serves another"),
                arg!("pods", StrList, false, "static pods whose running container must have started after the certificates and kubeconfigs they load last changed (read with crictl); `stale` when one started before"),
            ],
            ActionKind::CertRenew => &[
                arg!("method", Str, false, "auto (kubeadm when the host has it, else native), kubeadm, or native"),
                arg!("pki", Str, false, "the PKI directory (default: host var pki_dir)"),
                arg!("kubeconfigs", StrList, false, "kubeconfigs whose client certificates are renewed (default: admin, super-admin, controller-manager, scheduler .conf)"),
            ],
            ActionKind::CertServed => &[
                arg!("endpoint", Str, true, "host:port to open TLS to, from the host itself"),
                arg!("expect", Str, true, "path of the certificate (PEM) the endpoint must serve"),
            ],
            ActionKind::HaproxyStat => &[SERVER_ARG],
            ActionKind::HaproxyDrain => &[
                SERVER_ARG,
                arg!("timeout", Duration, false, "how long to wait for the server's sessions to end on every LB (default 2m)"),
                arg!("shutdown_sessions", Bool, false, "when sessions remain at the timeout, cut them (`shutdown sessions server`) instead of failing (default false)"),
                arg!("maint", Bool, false, "after draining, put the server into maintenance (default false)"),
                arg!("min_up", Int, false, "other servers of the backend that must stay UP (weight above 0) on each LB, or the drain is refused (default 1)"),
            ],
            ActionKind::HaproxyReady => &[
                SERVER_ARG,
                arg!("timeout", Duration, false, "how long to wait for status exactly UP on every LB (default 2m)"),
            ],
            ActionKind::HaproxyWeight => &[
                SERVER_ARG,
                arg!("weight", Int, true, "the weight, 0 to 256"),
            ],
            ActionKind::EtcdStatus => &[],
            ActionKind::EtcdDeleteKey => &[
                arg!("keys", StrList, true, "the full etcd keys to delete, e.g. /registry/validatingwebhookconfigurations/NAME; an absent one is reported and left"),
                arg!("snapshot_dir", Str, true, "directory on the jump host for the snapshot streamed right before the deletion (as etcd.snapshot's `dir`)"),
            ],
            ActionKind::EtcdSnapshot => &[
                arg!("dir", Str, true, "directory on the jump host; the file is etcd-snapshot-MEMBER-TIME.db, a new one each time"),
                arg!("member", Str, false, "member (inventory host) to stream from (default: the first healthy one)"),
            ],
            ActionKind::EtcdCompact => &[
                arg!("retention", Int, false, "revisions to keep before the current one (default 0)"),
                arg!("physical", Bool, false, "wait until the space is really freed in the backend (default true)"),
                arg!("settle", Duration, false, "with physical: the longest wait for every member's size in use to hold still; it ends as soon as they do (default 10s)"),
            ],
            ActionKind::EtcdDefrag => &[
                arg!("rule", Str, false, "Rhai over `member` (db_size, db_size_in_use, db_size_free, quota, quota_usage, fragmentation, leader, name) deciding per member; default: (fragmentation >= 0.25 and 1 MiB free) or quota_usage >= 0.8"),
                arg!("quota", Str, false, "the quota to judge by, e.g. 8GiB (default: each member's --quota-backend-bytes from its manifest, else etcd's 2GiB)"),
                arg!("timeout", Duration, false, "how long each member may take to be healthy again (default 2m)"),
                arg!("settle", Duration, false, "pause between members (default 0)"),
                arg!("move_leader", Bool, false, "move leadership away before defragmenting the leader (default false: the leader goes last)"),
            ],
            ActionKind::EtcdAlarm => &[
                arg!("disarm", Bool, false, "disarm the alarms (default false: only list)"),
                arg!("threshold", Str, false, "highest db_size/quota of any member at which disarming is allowed (default 0.8)"),
                arg!("prove_writes", Bool, false, "then write a remedy-owned key (/remedy/maintenance/write-check) and fail if etcd refuses it (default false)"),
            ],
            ActionKind::EtcdMoveLeader => &[arg!("to", Str, false, "the member to lead (default: the first follower)")],
            ActionKind::KubeGet => &[
                KUBE_API_VERSION_ARG,
                arg!("kind", Str, true, "the kind, e.g. Node, ConfigMap"),
                arg!("namespace", Str, false, "the namespace (namespaced kinds; default: every namespace when no name is given, else default)"),
                arg!("name", Str, false, "one object by name (default: every object that matches `selector`)"),
                arg!("selector", Str, false, "a label selector, e.g. node-role.kubernetes.io/control-plane"),
            ],
            ActionKind::KubeApply => &[
                arg!("manifest", Value, true, "the object: a mapping, or a YAML/JSON string"),
                arg!("force", Bool, false, "take fields another field manager owns (default false: such a conflict fails the step)"),
            ],
            ActionKind::KubePatch => &[
                KUBE_API_VERSION_ARG,
                KUBE_KIND_ARG,
                KUBE_NAMESPACE_ARG,
                KUBE_NAME_ARG,
                KUBE_OBJECTS_ARG,
                arg!("patch", Value, false, "the patch: a mapping (merge, strategic) or a list of operations (json); required unless every entry of `objects` has one"),
                arg!("type", Str, false, "merge (default), json or strategic"),
            ],
            ActionKind::KubeRestore => &[
                KUBE_API_VERSION_ARG,
                KUBE_KIND_ARG,
                KUBE_NAMESPACE_ARG,
                KUBE_NAME_ARG,
                arg!("backup", Str, true, "the backup's location on the jump host (`remedy backup show ID`)"),
                arg!("sha256", Str, true, "the sha256 the journal recorded for it; any other content is refused while planning"),
            ],
            ActionKind::KubeDelete => &[
                KUBE_API_VERSION_ARG,
                KUBE_KIND_ARG,
                KUBE_NAMESPACE_ARG,
                KUBE_NAME_ARG,
                KUBE_OBJECTS_ARG,
                arg!("propagation", Str, true, "propagationPolicy: Background, Foreground or Orphan (what happens to dependents)"),
            ],
            ActionKind::KubeScale => &[
                KUBE_API_VERSION_ARG,
                arg!("kind", Str, true, "Deployment or StatefulSet"),
                KUBE_NAMESPACE_ARG,
                arg!("name", Str, true, "its name"),
                arg!("replicas", Int, true, "the replicas to set"),
            ],
            ActionKind::KubeWait => &[
                KUBE_API_VERSION_ARG,
                arg!("kind", Str, true, "the kind"),
                KUBE_NAMESPACE_ARG,
                arg!("name", Str, true, "its name"),
                arg!("status_condition", Str, false, "wait until the status condition of this type is True (e.g. Available, Ready)"),
                arg!("condition", Expr(Context::Result), false, "or: Rhai over `result.object` (null while it does not exist) and `result.exists`"),
                arg!("interval", Duration, false, "time between reads (default 2s)"),
                arg!("timeout", Duration, false, "give up after this long (default 5m)"),
            ],
            ActionKind::KubeProbeWrite => &[arg!("namespace", Str, false, "where the probe ConfigMap is written (default: default)")],
            ActionKind::KubeWebhooks => &[
                arg!("probe_namespace", Str, false, "where a probe ConfigMap is written with a server-side dry run, to see which webhooks the API server fails calling (default: default)"),
            ],
            ActionKind::ApiHealth => &[
                arg!("all", Bool, false, "check every target master's API server, not only this host's (default false)"),
                arg!("through_lb", Bool, false, "also check through the address in the master's admin.conf, the load balancer in a kubeadm cluster (default true)"),
            ],
            ActionKind::EtcdRestore => &[
                arg!("snapshot", Str, true, "the snapshot file on the jump host, or a directory: its newest *.db"),
                arg!("etcdutl", Str, false, "etcdutl on the masters (default: etcdutl from the PATH)"),
                arg!("local_etcdutl", Str, false, "etcdutl on the jump host, to read the snapshot's revision for the plan (default: etcdutl; without it the revision is unknown)"),
                arg!("upload_dir", Str, false, "where the snapshot is copied on each master (default /var/lib/remedy/etcd-restore)"),
                arg!("expect_key", Str, false, "a key the snapshot holds, read back once etcd is healthy, before the API servers start (default /registry/namespaces/kube-system)"),
                arg!("timeout", Duration, false, "how long each wait (stopped, leader and health, API servers healthy) may take (default 5m)"),
            ],
            ActionKind::ApiserverDiagnose => &[
                arg!("lines", Int, false, "how many of the log's last lines to read (default 40)"),
                arg!("health", Str, false, "the health URL on this master (default: from the manifest's flags)"),
            ],
        }
    }

    /// Result fields, besides [`COMMON_RESULTS`]. `None` means free-form (scripts).
    pub fn results(self) -> Option<&'static [ResultSpec]> {
        Some(match self {
            ActionKind::Shell => &[
                res!("rc", "exit status"),
                res!("stdout", "standard output"),
                res!("stderr", "standard error"),
                res!(
                    "ran",
                    "false when a guard (`creates`/`unless`) skipped the command"
                ),
            ],
            ActionKind::FileWrite => &[
                res!("path", "the file"),
                res!("sha256", "sha256 of the new content"),
                res!(
                    "previous_sha256",
                    "sha256 before the change (empty if the file was new)"
                ),
            ],
            ActionKind::FileEdit => &[
                res!("path", "the file"),
                res!("sha256", "sha256 of the new content"),
                res!(
                    "previous_sha256",
                    "sha256 before the change (empty if the file was new)"
                ),
                res!(
                    "would_change",
                    "with `check: true`: whether the edit would change the file (nothing is written)"
                ),
            ],
            ActionKind::FileMove => &[res!("from", "source path"), res!("to", "destination path")],
            ActionKind::FileCopy => &[res!("to", "the destination"), res!("sha256", "sha256 of the copied content")],
            ActionKind::FileFetch => &[res!("to", "the destination on the jump host"), res!("sha256", "sha256 of the fetched content")],
            ActionKind::WaitUntil => &[
                res!("rc", "exit status of the last probe"),
                res!("stdout", "standard output of the last probe"),
                res!("stderr", "standard error of the last probe"),
                res!("attempts", "how many probes ran"),
                res!("waited", "seconds spent waiting"),
            ],
            ActionKind::Assert => &[],
            ActionKind::Script => return None,
            ActionKind::HostSkip => &[res!("reason", "the reason given")],
            ActionKind::StaticPodRestart => &[
                res!("restarted", "the pods restarted, in order"),
                res!(
                    "containers",
                    "per pod: the container before and after ({old, new})"
                ),
            ],
            ActionKind::CertCheck => &[
                res!("certificates", "one entry per certificate: name, path, kind (ca, leaf, kubeconfig), cn, not_after, days_left, ca_key_present, renewable"),
                res!("min_days_left", "days until the first certificate a renewal renews expires (negative: expired); kubelet.conf's does not count"),
                res!("expired", "how many certificates have expired (kubelet.conf's does not count)"),
                res!("external_ca", "true when a CA's private key is absent (an externally managed CA)"),
                res!("left_to_kubelet", "kubelet.conf, which the kubelet rotates itself and no renewal renews: {name, path, days_left}"),
                res!("served", "with `served`: matches, differs or `nothing answers`"),
                res!("stale_pods", "with `pods`: the pods running a container started before their files last changed"),
                res!("stale", "true when the running control plane does not use the certificates on disk (served differs, or a stale pod): it needs a restart"),
            ],
            ActionKind::CertRenew => &[
                res!("method", "kubeadm or native"),
                res!("renewed", "the certificates and kubeconfigs renewed"),
                res!("not_renewed", "what was left alone, and why (CAs, sa.key, kubelet.conf)"),
            ],
            ActionKind::CertServed => &[
                res!("served_sha256", "fingerprint of the certificate the endpoint serves"),
                res!("expected_sha256", "fingerprint of the certificate in the file"),
                res!("matches", "true when they are the same certificate"),
            ],
            ActionKind::HaproxyStat => &[
                res!("servers", "every server of the backend on every LB: {lb, backend, server, status, admin, weight, scur, check_status}"),
                res!("server", "this master's own server, one entry per LB (same fields)"),
                res!("up", "the fewest servers taking traffic (status exactly UP, weight above 0) in the backend on any LB"),
            ],
            ActionKind::HaproxyDrain => &[
                PRIOR_RESULT,
                res!("waited_secs", "seconds spent waiting for sessions to end"),
                res!("sessions_cut", "sessions cut by `shutdown_sessions` (0 when they ended by themselves)"),
            ],
            ActionKind::HaproxyReady => &[
                PRIOR_RESULT,
                res!("waited_secs", "seconds spent waiting for status UP"),
            ],
            ActionKind::HaproxyWeight => &[PRIOR_RESULT],
            ActionKind::EtcdStatus => &[
                res!("members", "per member: host, name, id, endpoint, is_leader, raft_term, raft_index, revision, db_size, db_size_in_use, fragmentation, quota, version, errors, healthy (or error)"),
                res!("leader", "the leader's name"),
                res!("healthy", "how many members are healthy"),
                res!("alarms", "active alarms: {member_id, kind}"),
            ],
            ActionKind::EtcdDeleteKey => &[
                res!("deleted", "the keys deleted"),
                res!("absent", "the keys that were already absent"),
                res!("snapshot", "the snapshot file taken first, on the jump host"),
            ],
            ActionKind::EtcdSnapshot => &[
                res!("path", "the snapshot file on the jump host"),
                res!("member", "the member it came from"),
                res!("bytes", "file size (database plus its 32-byte sha256)"),
                res!("db_bytes", "database size"),
                res!("sha256", "sha256 of the file"),
            ],
            ActionKind::EtcdCompact => &[
                res!("revision", "the revision compacted to"),
                res!("current_revision", "the revision when the step ran"),
                res!("physical", "whether it waited for the space to be freed"),
            ],
            ActionKind::EtcdDefrag => &[
                res!("order", "the members in the order they were considered (followers first, leader last)"),
                res!("members", "per member: name, leader, db_size_before, db_size_after, defragmented (with the rule's inputs in a dry-run)"),
                res!("reclaimed", "bytes given back across members"),
            ],
            ActionKind::EtcdAlarm => &[
                res!("alarms", "the alarms found: {member, member_id, kind}"),
                res!("disarmed", "the alarms disarmed"),
                res!("usage", "per member: the quota usage values the threshold was checked against"),
                res!("write_revision", "with prove_writes: the revision the proving write got (0 without)"),
            ],
            ActionKind::EtcdMoveLeader => &[res!("from", "the previous leader"), res!("to", "the new leader")],
            ActionKind::KubeGet => &[
                res!("objects", "the objects found (each with apiVersion and kind)"),
                res!("object", "the named object, or null"),
                res!("count", "how many were found"),
                res!("server", "the API server asked"),
            ],
            ActionKind::KubeApply => &[
                res!("object", "the object as the server has it after the apply"),
                res!("created", "true when it did not exist before"),
                res!("resource_version", "its resourceVersion after the apply"),
            ],
            ActionKind::KubePatch => &[
                res!("objects", "each object as the server has it after the patch"),
                res!("patched", "the objects patched, e.g. ValidatingWebhookConfiguration/x"),
            ],
            ActionKind::KubeRestore => &[
                res!("restored", "what was done, e.g. put back ValidatingWebhookConfiguration/x"),
                res!("object", "the object as the server has it after the restore"),
            ],
            ActionKind::KubeDelete => &[
                res!("deleted", "the objects deleted"),
                res!("objects", "each object as it was before (also in the backup store)"),
            ],
            ActionKind::KubeScale => &[
                res!("prior_replicas", "the replicas before the step"),
                res!("replicas", "the replicas set"),
            ],
            ActionKind::KubeWait => &[
                res!("object", "the object at the last read (null when it does not exist)"),
                res!("exists", "whether it exists"),
                res!("attempts", "how many reads"),
                res!("waited", "seconds spent waiting"),
            ],
            ActionKind::KubeProbeWrite => &[
                res!("writes", "true: the probe was created and deleted"),
                res!("probe", "the probe's name, e.g. ConfigMap default/remedy-probe-1a2b"),
                res!("uid", "the probe's uid while it existed"),
            ],
            ActionKind::KubeWebhooks => &[
                res!("webhooks", "every webhook: config (kind, name), index, name, failure_policy, backend, rules, timeout_seconds"),
                res!("broken", "per configuration with a webhook that can block writes: {api_version, kind, name, resource_version, webhooks: [{name, index, backend, reasons}], patch (the JSON patch setting failurePolicy Ignore on them)}"),
                res!("probe_error", "the server's error to a dry-run probe write, or empty when writes go through"),
            ],
            ActionKind::ApiHealth => &[
                res!("servers", "per API server checked: {server, host, via, livez, readyz (ok), failed (names of failed checks), checks, error}"),
                res!("healthy", "how many answered both livez and readyz with ok"),
                res!("total", "how many were checked"),
                res!("ok", "true when every one is healthy"),
            ],
            ActionKind::EtcdRestore => &[
                res!("snapshot", "the snapshot file restored from"),
                res!("sha256", "its sha256"),
                res!("snapshot_revision", "its revision (null when the jump host has no etcdutl)"),
                res!("members_before", "each member's revision before the restore, or why it did not answer"),
                res!("members", "per member: host, name, data_dir, moved_aside (where the old data is kept)"),
                res!("revision", "the cluster's revision after the restore"),
                res!("key_found", "the key read back after the restore"),
            ],
            ActionKind::ApiserverDiagnose => &[
                res!("healthy", "true when the health endpoint answers 200"),
                res!("cause", "healthy, stranded_manifest, unparseable_manifest, bad_flag, file_not_found, certificate_expired, etcd_unreachable, address_in_use or unknown"),
                res!("remedy", "none, restore (the backup below), remove_flag (the flag below), set_flag (`set` below), unstrand, cert-renew or stop"),
                res!("line", "the log line (or parse error) the finding rests on, quoted in `finding`"),
                res!("flag", "with bad_flag: the flag the log names (e.g. --bogus-flag); with set_flag: the flag naming the missing file"),
                res!("set", "with set_flag: `--flag=kubeadm's path` (e.g. --tls-cert-file=/etc/kubernetes/pki/apiserver.crt)"),
                res!("finding", "what was found and what to do, in words"),
                res!("manifest", "the manifest's path"),
                res!("staging", "where a restart parks the manifest"),
                res!("backup", "with remedy restore: the chosen backup's copy on this host"),
                res!("backup_id", "its id in the journal (`remedy backup show ID`)"),
                res!("backup_sha256", "the sha256 the journal recorded for it"),
                res!("backup_mode", "the manifest's mode when it was taken (e.g. 0600)"),
            ],
        })
    }

    pub fn arg(self, name: &str) -> Option<&'static ArgSpec> {
        self.args().iter().find(|a| a.name == name)
    }
}

impl std::fmt::Display for ActionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
