//! `Coordination`: the site config's `coordination:` block once checked
//! (the CLI parses it from YAML with positions; here it is plain data).

use std::path::PathBuf;
use std::time::Duration;

/// Where keys go when the config names no prefix.
pub const DEFAULT_PREFIX: &str = "/remedy";

/// How long a run's locks outlive a run that stopped renewing them. A run
/// renews every third of it; a run paused for longer loses its locks.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(60);

/// The ops etcd and how to reach it (TLS with a client certificate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdBackend {
    /// `https://host:port` of every member; a client fails over between them.
    pub endpoints: Vec<String>,
    /// The ops etcd's CA (PEM), the only one trusted for its members.
    pub ca: PathBuf,
    /// This jump host's client certificate and key (PEM).
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Every key remedy writes starts with it (several teams can share an
    /// etcd with different prefixes). No trailing `/`.
    pub prefix: String,
}

/// The whole `coordination:` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coordination {
    pub etcd: EtcdBackend,
    /// How this jump host is named to the others (lock holders, published
    /// chain heads): `jump_host:` in the block, else the machine's hostname.
    pub jump_host: String,
    /// A run's lease: see [`DEFAULT_LEASE_TTL`].
    pub lease_ttl: Duration,
}
