//! `CoordinationError`: what can go wrong with the ops etcd. Each message
//! says what was being done, against which endpoints, and what to do next.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CoordinationError {
    /// A CA, certificate or key file named in `coordination.etcd` is unreadable.
    #[error("coordination.etcd.{field}: cannot read {}: {source}", path.display())]
    File {
        field: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },

    /// No member answered (or the TLS material was refused).
    #[error("the ops etcd ({endpoints}) cannot be reached: {detail}\n  = hint: check that its members run (`etcdctl endpoint health` with the same certificates), that this jump host can reach them and that coordination.etcd's ca/cert/key are the ops etcd's; in an emergency `--break-glass --reason TEXT` runs with this jump host's local locks only (journaled, flagged for review)")]
    Unreachable { endpoints: String, detail: String },

    /// An operation failed or timed out once connected.
    #[error("the ops etcd ({endpoints}): {op} failed: {detail}")]
    Operation {
        endpoints: String,
        op: &'static str,
        detail: String,
    },

    /// A host is locked by another run (on this jump host or another).
    #[error("{host} is locked by run {} ({}@{}, pid {}) in the ops etcd{}\n  = hint: wait for that run to finish (`remedy lock list` on any jump host shows it); its lock ends with its lease, {ttl}s after its process stops renewing it", .holder.run_id, .holder.user, .holder.jump_host, .holder.pid, .remaining.map(|s| format!(", lease {s}s left")).unwrap_or_default())]
    Held {
        host: String,
        holder: Box<crate::LockHolder>,
        remaining: Option<i64>,
        ttl: u64,
    },
}
