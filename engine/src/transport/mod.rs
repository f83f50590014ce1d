//! How remedy touches a host. Every action goes through [`Transport`], so the
//! same runbook runs on the local machine (tests, a jump host fixing itself)
//! and, with the SSH transport, on masters.
//!
//! [`ReadOnly`] wraps any transport and refuses every mutating call: planning
//! only ever gets one, so a dry-run cannot write even by mistake.

mod local;
mod read_only;

pub use local::Local;
pub use read_only::ReadOnly;

use async_trait::async_trait;
use std::time::Duration;

/// What a finished command produced.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Output {
    /// Exit status; `None` when the command died by a signal or the status
    /// never arrived — always a failure.
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }
}

/// What `stat` tells about a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileStat {
    /// Permission bits (e.g. 0o600).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub is_dir: bool,
}

/// Mode and owner to give a file written from scratch. `None` fields keep
/// what an existing file has (or use defaults for a new one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteAttrs {
    pub mode: Option<u32>,
    pub owner: Option<(u32, u32)>,
}

/// Why a transport call failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// A file operation failed on the host.
    #[error("{op} {path} on {host}: {message}")]
    Io {
        host: String,
        op: &'static str,
        path: String,
        message: String,
    },
    /// A command ran longer than allowed and was stopped.
    #[error("`{cmd}` on {host} did not finish within {secs}s and was stopped")]
    Timeout {
        host: String,
        cmd: String,
        secs: u64,
    },
    /// The command could not be started at all.
    #[error("could not start `{cmd}` on {host}: {message}")]
    Spawn {
        host: String,
        cmd: String,
        message: String,
    },
    /// A mutating call reached a read-only transport: a bug in an action's plan.
    #[error("{op} {target} refused on {host}: planning is read-only (this is a bug in the action's plan, please report it)")]
    ReadOnly {
        host: String,
        op: &'static str,
        target: String,
    },
    /// The host cannot be reached with this transport.
    #[error("cannot reach {host}: {message}")]
    Unreachable { host: String, message: String },
}

impl TransportError {
    /// Worth trying again (with backoff) rather than failing the step at once.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            TransportError::Timeout { .. } | TransportError::Unreachable { .. }
        )
    }
}

pub type TResult<T> = Result<T, TransportError>;

/// The operations remedy needs on a host. Paths are the host's paths.
#[async_trait]
pub trait Transport: Send + Sync {
    /// The inventory name of the host, for messages.
    fn host(&self) -> &str;

    /// Run `sh -c cmd`; may change the host.
    async fn exec(&self, cmd: &str, timeout: Duration) -> TResult<Output>;

    /// Run a command the runbook or action declares read-only (`test -e`,
    /// `cat`, a health probe). Allowed while planning.
    async fn probe(&self, cmd: &str, timeout: Duration) -> TResult<Output>;

    async fn read_file(&self, path: &str) -> TResult<Vec<u8>>;

    /// `None` when nothing is at `path`.
    async fn stat(&self, path: &str) -> TResult<Option<FileStat>>;

    /// Replace `path` atomically (temporary file in the same directory, fsync,
    /// rename). An existing file keeps its mode and owner unless `attrs` says
    /// otherwise; a new one gets `attrs` or 0644 and the transport user's owner.
    async fn write_file_atomic(&self, path: &str, bytes: &[u8], attrs: WriteAttrs) -> TResult<()>;

    async fn rename(&self, from: &str, to: &str) -> TResult<()>;

    async fn mkdir_p(&self, path: &str) -> TResult<()>;

    /// Remove a file; removing what is not there is not an error.
    async fn remove(&self, path: &str) -> TResult<()>;

    /// True for [`ReadOnly`].
    fn is_read_only(&self) -> bool {
        false
    }
}

/// Opens a transport to a host (one per host for a whole run).
#[async_trait]
pub trait Connector: Send + Sync {
    async fn connect(&self, host: &crate::inventory::Host) -> TResult<Box<dyn Transport>>;
}

/// Connects hosts marked `transport: local`. SSH hosts are refused with a
/// clear message: this build has no SSH transport yet.
pub struct LocalConnector;

#[async_trait]
impl Connector for LocalConnector {
    async fn connect(&self, host: &crate::inventory::Host) -> TResult<Box<dyn Transport>> {
        match host.transport {
            crate::inventory::TransportKind::Local => Ok(Box::new(Local::new(host.name.clone()))),
            crate::inventory::TransportKind::Ssh => Err(TransportError::Unreachable {
                host: host.name.clone(),
                message: "this build of remedy has no SSH transport yet; mark the host `transport: local` to run on this machine".into(),
            }),
        }
    }
}
