//! remedy-k8s: the Kubernetes API, when it answers, over any byte stream.
//!
//! remedy reaches an API server the way an on-call engineer on a jump host
//! would: through the SSH connection to a master (a direct-tcpip channel to
//! that master's API server, given as a `remedy_transport::StreamOpener`),
//! with the credentials of the master's admin.conf read over SSH and kept in
//! memory ([`Access::from_kubeconfig`]); or with a local kubeconfig
//! ([`Access::from_file`]) over TCP. TLS is verified against the cluster CA
//! and the certificate's SANs even through the tunnel, and every call has a
//! client-side timeout, so a hung API server fails a call instead of hanging
//! a run. A client opened read-only refuses writes before they are sent
//! (server-side dry runs are reads): what planning gets.
//!
//! - [`Kube`]: raw and JSON requests, discovery ([`Kind`]), and objects of
//!   any kind ([`ObjectRef`]: get, list, apply, patch, delete, create,
//!   replace, scale — each with a dry run and a `resourceVersion` precondition).
//! - [`health`]: `/livez` and `/readyz?verbose` as named checks.
//! - [`webhooks`]: admission webhooks and whether their backends answer.
//! - [`metrics`]: a Prometheus text scrape, summed by name and labels; APF rejections.
//! - [`nodes`]: the control-plane Nodes (InternalIP, Ready) and the etcd members.
//! - [`restore`]: put an object back as a backup recorded it.
//!
//! This crate knows nothing of runbooks, runs or the engine; it depends on
//! `remedy-transport` (the trait, without SSH) and nothing else of remedy's.

mod access;
mod client;
mod connect;
mod error;
pub mod health;
pub mod metrics;
pub mod nodes;
mod object;
pub mod restore;
pub mod webhooks;

pub use access::{Access, Identity};
pub use client::{Answer, Kind, Kube, DEFAULT_TIMEOUT, FIELD_MANAGER};
pub use error::KubeError;
pub use object::{
    content_sha256, parse_manifest, resource_version, status_written_fields, to_yaml,
    without_server_fields, ObjectRef, PatchType, PROPAGATION_POLICIES,
};

/// Make aws-lc-rs the process's rustls crypto provider, if none is yet: call
/// this at the top of `main`. It is the only provider in the build (ring is
/// kept out: the etcd client and reqwest are built for aws-lc-rs), but
/// reqwest and tonic ask for the process's default rather than pick one.
/// (This crate's own TLS names its provider and does not need it.)
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Re-exported so callers name the same versions.
pub use k8s_openapi;
pub use kube;
