//! remedy-etcd: etcd maintenance, one member at a time, over any byte stream.
//!
//! remedy reaches each etcd member through an SSH tunnel to its master, so
//! connecting takes a [`Dialer`]; TLS (with the server's IP SANs verified) and
//! gRPC run on top of the stream it returns. A [`Member`] talks to exactly one
//! member: maintenance RPCs act on the member that receives them.
//!
//! Pure pieces (no I/O) for planning and rules: [`defrag_order`],
//! [`RuleInputs`], [`fragmentation`], [`status_table`].
//!
//! Across the members, given every one the caller reached ([`Cluster`]):
//! who answers and is healthy, the status report, [`DefragPlan`] (order,
//! the caller's rule, gating between members), compaction, alarms,
//! leadership, snapshots saved to a file ([`ClusterMember::save_snapshot`]).
//!
//! This crate knows nothing of runbooks, the engine or SSH; of remedy's
//! crates it depends on `remedy-clock` only (waits between members).

mod cluster;
mod defrag_order;
mod defrag_plan;
mod dialer;
mod error;
mod maintenance;
mod member;
mod rule_inputs;
mod snapshot;
mod snapshot_save;
mod status;
mod table;
mod tls;

pub use cluster::{Answer, Cluster, ClusterMember, Progress, StatusReport};
pub use defrag_order::defrag_order;
pub use defrag_plan::{Candidate, DefragOptions, DefragPlan};
pub use dialer::{BoxStream, ByteStream, Dialer, TcpDialer};
pub use error::{chain as error_chain, EtcdError, MaintenanceError};
pub use maintenance::{AlarmSurvey, CompactionTarget, LeaderMove, WRITE_CHECK_KEY};
pub use member::{connect, Compaction, Member, DEFAULT_DEFRAG_TIMEOUT, REMEDY_KEYS};
pub use rule_inputs::{RuleInputs, DEFAULT_QUOTA_BYTES};
pub use snapshot::{verify_snapshot_file, SnapshotDefect, SnapshotInfo};
pub use snapshot_save::{snapshot_file_name, SavedSnapshot};
pub use status::{fragmentation, Alarm, AlarmKind, MemberInfo, MemberStatus};
pub use table::{human_bytes, status_table};
pub use tls::Tls;

/// Re-exported so callers can use the raw client without naming a version.
pub use etcd_client;
