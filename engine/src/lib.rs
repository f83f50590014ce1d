//! remedy-engine: the workflow between a checked runbook and a changed host.
//!
//! `inventory` + `bind` turn a runbook and the user's request into concrete
//! hosts and typed params; `executor` plans and applies steps through a
//! `remedy_transport::Transport`, taking `backup`s first and emitting `event`s
//! for every transition; `action` holds one file per action kind, each turning
//! a domain crate's calls (`remedy-pki`, `remedy-manifest`, `remedy-haproxy`,
//! `remedy-etcd`, `remedy-k8s`) into plan and apply; `object_backup` keeps
//! Kubernetes objects in the backup store like files.
//!
//! Knowledge of Kubernetes components belongs in those crates, not here; the
//! engine works through the Transport trait and never names russh, and it
//! must not depend on `remedy-lab`.

pub mod action;
pub mod backup;
pub mod bind;
pub mod check;
pub mod etcd_backup;
pub mod eval;
pub mod event;
pub mod executor;
pub mod inventory;
pub mod object_backup;
pub mod output_schema;
pub mod plan;
pub mod redact;
pub mod report;
pub mod resume;

pub use bind::{bind, BoundRun, Request};
pub use executor::{Executor, RunOptions};
pub use inventory::{Host, Inventory};
pub use report::{HostStatus, RunReport, RunStatus, StepStatus};
