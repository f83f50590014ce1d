//! remedy-coordination: several jump hosts working on the same clusters,
//! coordinated through an etcd the team runs for operations (never the
//! cluster's own etcd: that is what remedy may be repairing).
//!
//! The site config's `coordination:` block is parsed by the CLI into
//! [`Coordination`]; this crate knows nothing of runbooks, runs or the
//! journal.

mod config;

pub use config::{Coordination, EtcdBackend, DEFAULT_LEASE_TTL, DEFAULT_PREFIX};
