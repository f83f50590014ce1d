//! A plan: what one step would change on one host, said precisely enough to
//! show an operator (diffs, commands, moves) and to back up (the paths it will
//! modify, the objects it will change). Actions make plans with a
//! read-only transport.

use serde::Serialize;
use serde_json::Value;

/// One thing a step would do.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// A file's content changes; `diff` is unified, `created` when it is new.
    File {
        path: String,
        diff: String,
        created: bool,
        /// sha256 of the content now (None: absent) and after the change:
        /// what an approval is bound to, beyond the lines the diff shows.
        before_sha256: Option<String>,
        after_sha256: String,
    },
    /// A command would run.
    Command { cmd: String },
    /// A file would be moved.
    Move { from: String, to: String },
    /// A static pod is restarted (manifest out and back), then checked.
    Restart { pod: String, detail: String },
    /// A file's permission bits change (octal, e.g. "0600").
    Mode {
        path: String,
        from: String,
        to: String,
    },
    /// A server's state on a load balancer changes (`from`/`to` as
    /// HAProxy shows it: admin state, status, weight, sessions).
    Server {
        lb: String,
        backend: String,
        server: String,
        from: String,
        to: String,
        /// `from` and `to` as values, for scripts (`-o json`).
        before: ServerValues,
        after: ServerValues,
        /// A drain that takes the server out of this LB's rotation: what
        /// the whole rollout is checked against.
        #[serde(skip_serializing_if = "Option::is_none")]
        guard: Option<DrainGuard>,
    },
    /// A Kubernetes object changes through the API server (`op`: apply,
    /// create, patch, delete, scale). `diff` is the live object against the
    /// server's dry-run result, as YAML. The engine backs the object up
    /// before apply, and apply goes ahead only while the object is still
    /// what the plan saw: the same `content_sha256` (the object without
    /// status and the metadata every write changes, so a controller's
    /// status write is not a conflict); `resource_version` is the version
    /// the plan saw (`None`: it does not exist yet).
    Object {
        object: remedy_k8s::ObjectRef,
        op: String,
        resource_version: Option<String>,
        /// `None` for an absent object, and in plans journaled before the
        /// hash was recorded (those compare `resource_version`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content_sha256: Option<String>,
        diff: String,
    },
    /// A key is deleted in etcd directly (`etcd.delete_key`, a last
    /// resort). The engine backs its value up before apply (raw bytes), and
    /// the deletion is conditional on `mod_revision` — the revision the plan
    /// saw.
    EtcdKey {
        key: String,
        op: String,
        mod_revision: i64,
        size: u64,
        sha256: String,
    },
    /// A certificate is renewed: a new key, a later expiry. `text` is the
    /// line a plan shows; `before`/`after` the same as values.
    Certificate {
        file: String,
        path: String,
        text: String,
        before: CertificateValues,
        after: CertificateValues,
    },
    /// Anything else worth telling (e.g. a wait).
    Note { text: String },
}

/// A server on one LB as a [`Change::Server`] finds it (`before`: every
/// field) or leaves it (`after`: what the step sets or waits for; a field
/// it neither sets nor waits for is absent).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServerValues {
    /// HAProxy's admin state: ready, drain, maint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin: Option<String>,
    /// HAProxy's status text: UP, DOWN, `UP 1/2`, MAINT…
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Current sessions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions: Option<u64>,
}

impl ServerValues {
    /// Every field, as HAProxy shows the server now.
    pub fn of(s: &remedy_haproxy::ServerState) -> ServerValues {
        ServerValues {
            admin: Some(s.admin.to_string()),
            status: Some(s.status.clone()),
            weight: Some(s.weight),
            sessions: Some(s.scur),
        }
    }
}

/// A certificate before or after a [`Change::Certificate`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CertificateValues {
    /// Lowercase hex; absent after (the new one is made at apply).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// End of validity, unix seconds; absent after (known to the day only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after: Option<i64>,
    /// The day it expires, `YYYY-MM-DD` (UTC).
    pub expires_on: String,
}

impl Change {
    /// The change a renewal makes to one certificate.
    pub fn certificate(e: &remedy_pki::ExpiryChange) -> Change {
        Change::Certificate {
            file: e.file.clone(),
            path: e.path.clone(),
            text: e.note(),
            before: CertificateValues {
                serial: Some(e.serial.clone()),
                not_after: Some(e.not_after),
                expires_on: remedy_pki::renewal::expiry_day(e.not_after),
            },
            after: CertificateValues {
                serial: None,
                not_after: None,
                expires_on: e.renewed_expires_on.clone(),
            },
        }
    }
}

/// What a drain of one server on one LB must leave: `min_up` other servers
/// taking traffic, out of those taking it now (`up`, the drained one
/// included). A plan of one host is checked against the state now; the
/// executor checks a dry-run's drains over the whole rollout, where earlier
/// batches may have drained others.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrainGuard {
    pub min_up: usize,
    pub up: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// One line: what and where.
    pub summary: String,
    /// Empty when the host is already as wanted.
    pub changes: Vec<Change>,
    /// Paths apply will create, change or remove: the engine backs each up
    /// (or records that it was absent) before apply, and restores on rollback.
    pub modifies: Vec<String>,
    /// The step's result, when it is known without applying (read-only
    /// actions, or nothing to change).
    pub result: Option<Value>,
}

impl Plan {
    /// Nothing to change: apply is skipped.
    pub fn noop(summary: impl Into<String>, result: Value) -> Plan {
        Plan {
            summary: summary.into(),
            changes: Vec::new(),
            modifies: Vec::new(),
            result: Some(result),
        }
    }

    pub fn is_noop(&self) -> bool {
        self.changes.is_empty()
    }
}

/// A unified diff of two texts, with the path in the header.
pub fn unified_diff(path: &str, old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("{path} (current)"), &format!("{path} (planned)"))
        .to_string()
}
