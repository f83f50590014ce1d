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
//! This crate knows nothing of runbooks, the engine or SSH; it must not
//! depend on other remedy crates.

mod defrag_order;
mod dialer;
mod error;
mod member;
mod rule_inputs;
mod snapshot;
mod status;
mod table;
mod tls;

pub use defrag_order::defrag_order;
pub use dialer::{BoxStream, ByteStream, Dialer, TcpDialer};
pub use error::EtcdError;
pub use member::{connect, Compaction, Member, DEFAULT_DEFRAG_TIMEOUT};
pub use rule_inputs::{RuleInputs, DEFAULT_QUOTA_BYTES};
pub use snapshot::{verify_snapshot_file, SnapshotDefect, SnapshotInfo};
pub use status::{fragmentation, Alarm, AlarmKind, MemberInfo, MemberStatus};
pub use table::{human_bytes, status_table};
pub use tls::Tls;

/// Re-exported so callers can use the raw client without naming a version.
pub use etcd_client;
