//! `EtcdError`: every way an operation on one etcd member can fail, and
//! `MaintenanceError`: why work across the members was refused or stopped.
//!
//! Each message names the member (and the endpoint when connecting), says
//! which operation failed, and ends with what an on-call SRE should do next.
//! Nothing here talks to etcd; `member.rs` builds these.

use std::time::Duration;

use thiserror::Error;

use crate::snapshot::SnapshotDefect;

/// An operation on one etcd member failed.
#[derive(Debug, Error)]
pub enum EtcdError {
    /// The endpoint is not an `http://` or `https://` URL with a host and a port,
    /// or TLS was asked for on `http://` (or missing on `https://`).
    #[error("etcd member {member}: endpoint {endpoint:?} is not usable: {reason}")]
    Endpoint {
        member: String,
        endpoint: String,
        reason: String,
    },

    /// The CA, certificate or key could not be loaded.
    #[error(
        "etcd member {member}: TLS material rejected: {detail}; check that the CA, \
         certificate and key are PEM and that the key belongs to the certificate"
    )]
    Tls { member: String, detail: String },

    /// Dialing the member or the TLS/HTTP2 handshake failed.
    #[error("etcd member {member} ({endpoint}): cannot connect: {detail}; {hint}")]
    Connect {
        member: String,
        endpoint: String,
        detail: String,
        hint: &'static str,
    },

    /// The member did not answer within the operation's timeout.
    #[error(
        "etcd member {member}: {op} timed out after {after:?}; the member may be \
         overloaded, partitioned or stopped: check its health, then retry"
    )]
    Timeout {
        member: String,
        op: &'static str,
        after: Duration,
    },

    /// The member answered with an error, or the connection broke during the call.
    #[error("etcd member {member}: {op} failed: {detail}; {hint}")]
    Rpc {
        member: String,
        op: &'static str,
        /// The gRPC status code when the member answered, `None` for transport failures.
        code: Option<tonic::Code>,
        detail: String,
        hint: &'static str,
    },

    /// An operation that only the raft leader accepts was sent to a follower.
    #[error(
        "etcd member {member}: {op} must be sent to the leader, and this member is \
         not it (leader id {leader_id:x}); connect to the leader and retry"
    )]
    NotLeader {
        member: String,
        op: &'static str,
        leader_id: u64,
    },

    /// The member reports active alarms (health check).
    #[error("etcd member {member}: unhealthy, active alarm(s): {alarms}; {hint}")]
    Alarmed {
        member: String,
        alarms: String,
        hint: &'static str,
    },

    /// A snapshot stream was empty, cut short, or its checksum did not match.
    #[error(
        "etcd member {member}: snapshot refused: {defect}; the written copy is not a \
         usable backup: delete it and take the snapshot again"
    )]
    Snapshot {
        member: String,
        defect: SnapshotDefect,
    },

    /// A snapshot file on disk failed verification.
    #[error("snapshot file {path}: {defect}; it is not a usable backup")]
    SnapshotFile {
        path: String,
        defect: SnapshotDefect,
    },

    /// A snapshot file could not be read.
    #[error("snapshot file {path}: cannot read it: {source}")]
    ReadSnapshotFile {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// Writing the snapshot to the caller's writer failed.
    #[error("etcd member {member}: {op}: {source}")]
    Io {
        member: String,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl EtcdError {
    /// Whether trying the same operation again may succeed without a human
    /// changing anything (the member was busy, unreachable or mid-election).
    pub fn retryable(&self) -> bool {
        match self {
            EtcdError::Timeout { .. } | EtcdError::Connect { .. } => true,
            EtcdError::Rpc { code, .. } => matches!(
                code,
                None | Some(tonic::Code::Unavailable)
                    | Some(tonic::Code::DeadlineExceeded)
                    | Some(tonic::Code::Aborted)
            ),
            _ => false,
        }
    }

    /// Whether etcd refused a write because the backend quota is exhausted
    /// (`mvcc: database space exceeded`, which raises the NOSPACE alarm).
    pub fn is_nospace(&self) -> bool {
        match self {
            EtcdError::Rpc { detail, .. } => detail.contains(NOSPACE_MESSAGE),
            EtcdError::Alarmed { alarms, .. } => alarms.contains("NOSPACE"),
            _ => false,
        }
    }
}

/// Why cluster-wide maintenance (several members, in order) did not run or
/// stopped, beyond one member's own failure.
#[derive(Debug, Error)]
pub enum MaintenanceError {
    /// Refused before anything changed: the cluster (or the jump host) is not
    /// in a state to do it; `hint` says what to fix first.
    #[error("{message}")]
    Refused { message: String, hint: String },
    /// It failed or stopped part-way; the message says what was done.
    #[error("{message}")]
    Failed {
        message: String,
        hint: Option<String>,
    },
    /// One member refused, failed or timed out.
    #[error(transparent)]
    Member(#[from] EtcdError),
}

impl MaintenanceError {
    pub(crate) fn refused(message: impl Into<String>, hint: impl Into<String>) -> Self {
        MaintenanceError::Refused {
            message: message.into(),
            hint: hint.into(),
        }
    }

    pub(crate) fn failed(message: impl Into<String>) -> Self {
        MaintenanceError::Failed {
            message: message.into(),
            hint: None,
        }
    }

    /// The operator's next step, when there is one apart from the message.
    pub fn hint(&self) -> Option<&str> {
        match self {
            MaintenanceError::Refused { hint, .. } => Some(hint),
            MaintenanceError::Failed { hint, .. } => hint.as_deref(),
            MaintenanceError::Member(_) => None,
        }
    }
}

/// What etcd says when a write would exceed `--quota-backend-bytes`.
pub(crate) const NOSPACE_MESSAGE: &str = "database space exceeded";

/// The error and all its causes, `outer: inner: innermost`, because tonic's
/// transport errors print only "transport error" on their own.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

/// The advice that goes with a failure, chosen from its text.
pub(crate) fn hint(code: Option<tonic::Code>, detail: &str) -> &'static str {
    let lower = detail.to_ascii_lowercase();
    if lower.contains(NOSPACE_MESSAGE) {
        "the backend quota is exhausted (NOSPACE): compact, defragment every member, \
         then disarm the NOSPACE alarm"
    } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake")
    {
        "check that the endpoint's address is in etcd's server certificate SANs, that the \
         CA is etcd's CA (etcd/ca.crt) and that the client certificate is signed by it"
    } else if lower.contains("compacted") {
        "that revision is already compacted: nothing to do"
    } else if lower.contains("future revision") {
        "the revision is newer than the store: read the current revision from status first"
    } else if lower.contains("leader changed") || lower.contains("no leader") {
        "the cluster is electing a leader: wait a few seconds and retry"
    } else if code == Some(tonic::Code::PermissionDenied)
        || code == Some(tonic::Code::Unauthenticated)
    {
        "the client certificate is not allowed to do this: use the healthcheck-client or \
         apiserver-etcd-client certificate"
    } else {
        "is etcd running on that master (its static pod) and is the tunnel to it up? \
         check the member's logs, then retry"
    }
}

/// Converts an etcd-client error into the text and code that `EtcdError::Rpc` carries.
pub(crate) fn describe(err: &etcd_client::Error) -> (Option<tonic::Code>, String) {
    match err {
        etcd_client::Error::GRpcStatus(status) => match std::error::Error::source(status) {
            // tonic wraps a broken or refused connection in a status (code
            // Unknown or Unavailable) with the transport error as its source:
            // the member never answered, so report it as a transport failure.
            Some(source) => (None, chain(source)),
            None => (
                Some(status.code()),
                format!("{:?}: {}", status.code(), status.message()),
            ),
        },
        etcd_client::Error::TransportError(e) => (None, chain(e)),
        other => (None, other.to_string()),
    }
}
