//! remedy-coordination: several jump hosts working on the same clusters,
//! coordinated through an etcd the team runs for operations (never the
//! cluster's own etcd: that is what remedy may be repairing).
//!
//! What lives there, under one key prefix:
//! - `locks/<host>`: a run's lock on a host, attached to the run's lease and
//!   kept alive while the run lives ([`Coordinator::acquire`]). The lock
//!   key's create revision is the fencing token: [`Coordinator::still_holds`]
//!   compares it (and the lease) in one transaction before every intent, so a
//!   run that lost its lease — paused, cut off — cannot change the host.
//! - `daemon/leader` and `schedules/<name>/<slot>`: one `remedy daemon`
//!   leads; each schedule slot is settled (run or skipped) by exactly one
//!   daemon ([`Coordinator::claim_slot`]), also when a leader dies.
//! - `approvals/<request>/{request,votes/<user>,results/<user>}`: a run
//!   waiting for approval on one jump host, decided from any other.
//! - `audit/<jump host>`: the journal's chain head after each run
//!   ([`Coordinator::publish_head`]), so a journal cut back on one jump host
//!   is caught by `remedy audit verify` against it.
//!
//! The site config's `coordination:` block is parsed by the CLI into
//! [`Coordination`]; this crate knows nothing of runbooks, runs or the
//! journal — it stores JSON it is given.

mod approvals;
mod client;
mod config;
mod election;
mod error;
mod lock;
mod witness;

pub use approvals::{PublishedRequest, RemoteVote, VoteResult};
pub use client::Coordinator;
pub use config::{Coordination, EtcdBackend, DEFAULT_LEASE_TTL, DEFAULT_PREFIX};
pub use election::{Candidate, SlotClaim};
pub use error::CoordinationError;
pub use lock::{HeldLocks, LockEntry, LockHolder};
pub use witness::PublishedHead;
