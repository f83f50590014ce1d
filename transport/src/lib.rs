//! remedy-transport: how remedy touches a host. Every action goes through
//! [`Transport`], so the same runbook runs on the local machine (tests, a jump
//! host fixing itself) and, with the SSH transport, on masters. A
//! [`Connector`] opens one per [`Host`].
//!
//! The SSH transport (russh: sessions, `~/.ssh/config`, jump hosts, tunnels)
//! is the `ssh` feature, on by default. The engine and the domain crates take
//! this crate without it: they work through the trait and never name russh;
//! only the binary (and tests that need a real sshd) turn it on.
//!
//! This crate knows nothing of runbooks, runs or Kubernetes, and must not
//! depend on the engine.
//!
//! [`ReadOnly`] wraps any transport and refuses every mutating call: planning
//! only ever gets one, so a dry-run cannot write even by mistake.
//!
//! [`Transport::open_stream`] gives a raw byte stream to a unix socket or a
//! TCP port *as seen from the host* (an HAProxy admin socket, say). A stream
//! is neither read-only nor mutating by itself, so `ReadOnly` passes it
//! through: whoever speaks over it must check [`Transport::is_read_only`]
//! before sending anything that changes state.

pub mod host;
mod local;
mod read_only;
pub mod shell;
#[cfg(feature = "ssh")]
pub mod ssh;

pub use host::{Host, TransportKind};

pub use local::Local;
pub use read_only::ReadOnly;

use async_trait::async_trait;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// Where [`Transport::open_stream`] connects, as seen from the host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StreamTarget {
    /// A unix socket path on the host.
    Unix(String),
    /// A TCP address and port, resolved and reached from the host.
    Tcp(String, u16),
}

impl std::fmt::Display for StreamTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamTarget::Unix(path) => write!(f, "{path}"),
            StreamTarget::Tcp(host, port) if host.contains(':') => write!(f, "[{host}]:{port}"),
            StreamTarget::Tcp(host, port) => write!(f, "{host}:{port}"),
        }
    }
}

/// A connected byte stream from [`Transport::open_stream`].
pub trait AsyncStream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> AsyncStream for T {}

/// Why a stream could not be opened, so callers can say what to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFailure {
    /// Nothing at that path.
    NotFound,
    /// Something is there, but it is not a socket.
    NotASocket,
    /// The user the transport acts as may not connect to it.
    PermissionDenied,
    /// A socket is there but nothing accepts on it (a stale unix socket, a
    /// closed port): the service may be down or restarting.
    Refused,
    /// Anything else; the message says what.
    Other,
}

/// A finished command's raw bytes (for `remedy exec`, which must pass output
/// through unchanged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawOutput {
    pub status: Option<i32>,
    /// The signal that killed it, if one did.
    pub signal: Option<String>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl From<RawOutput> for Output {
    fn from(r: RawOutput) -> Output {
        let mut stderr = String::from_utf8_lossy(&r.stderr).into_owned();
        if let Some(sig) = &r.signal {
            stderr.push_str(&format!("(killed by signal {sig})"));
        }
        Output {
            status: r.status,
            stdout: String::from_utf8_lossy(&r.stdout).into_owned(),
            stderr,
        }
    }
}

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
    /// The SSH client configuration (`~/.ssh/config`, the inventory) says
    /// something remedy cannot do for this host, or cannot be read: remedy
    /// refuses rather than connect some other way. Never retried.
    #[error("{message}")]
    Config { host: String, message: String },
    /// The host's key is unknown or changed: never retried.
    #[error("{message}")]
    HostKey { host: String, message: String },
    /// No way of logging in worked.
    #[error("{message}")]
    Auth { host: String, message: String },
    /// The connection died under a command: its outcome is unknown.
    #[error("{message}")]
    ConnectionLost { host: String, message: String },
    /// A byte stream to a socket or port on the host could not be opened.
    #[error("cannot connect to {target} on {host}: {message}")]
    Stream {
        host: String,
        target: StreamTarget,
        failure: StreamFailure,
        message: String,
    },
    /// This transport cannot do that at all.
    #[error("{op} is not supported by the transport to {host}")]
    Unsupported { host: String, op: &'static str },
}

impl TransportError {
    /// Worth trying again (with backoff) rather than failing the step at once.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            TransportError::Timeout { .. }
                | TransportError::Unreachable { .. }
                | TransportError::Stream {
                    failure: StreamFailure::Refused,
                    ..
                }
        )
    }

    /// The host this error is about.
    pub fn host(&self) -> &str {
        match self {
            TransportError::Io { host, .. }
            | TransportError::Timeout { host, .. }
            | TransportError::Spawn { host, .. }
            | TransportError::ReadOnly { host, .. }
            | TransportError::Unreachable { host, .. }
            | TransportError::Config { host, .. }
            | TransportError::HostKey { host, .. }
            | TransportError::Auth { host, .. }
            | TransportError::ConnectionLost { host, .. }
            | TransportError::Stream { host, .. }
            | TransportError::Unsupported { host, .. } => host,
        }
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

    /// Like `exec`, with the output as raw bytes.
    async fn exec_raw(&self, cmd: &str, timeout: Duration) -> TResult<RawOutput>;

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

    /// A byte stream to a unix socket or TCP port as seen from the host.
    /// Opening one changes nothing; what is sent over it may, so a caller
    /// that writes commands must refuse mutating ones when
    /// [`is_read_only`](Transport::is_read_only) says so.
    async fn open_stream(&self, target: &StreamTarget) -> TResult<Box<dyn AsyncStream>> {
        let _ = target;
        Err(TransportError::Unsupported {
            host: self.host().to_string(),
            op: "opening a socket stream",
        })
    }

    /// True for [`ReadOnly`].
    fn is_read_only(&self) -> bool {
        false
    }

    /// An owned handle that opens streams like [`open_stream`](Transport::open_stream)
    /// and may outlive this borrow — what a long-lived client (etcd's gRPC
    /// channel) needs to dial again. `None` where streams are not supported.
    fn opener(&self) -> Option<std::sync::Arc<dyn StreamOpener>> {
        None
    }
}

/// Opens streams through a host, independent of any borrow of its transport.
#[async_trait]
pub trait StreamOpener: Send + Sync + 'static {
    async fn open(&self, target: &StreamTarget) -> TResult<Box<dyn AsyncStream>>;

    /// The connection under it is gone: every stream it opens fails, and a
    /// new transport from the connector (which reconnects) is needed. A
    /// client kept for a whole run checks this before it is reused.
    fn is_closed(&self) -> bool {
        false
    }
}

/// Opens a transport to a host (one per host for a whole run).
#[async_trait]
pub trait Connector: Send + Sync {
    async fn connect(&self, host: &Host) -> TResult<Box<dyn Transport>>;
}

/// Connects hosts marked `transport: local`. SSH hosts are refused with a
/// clear message: this build has no SSH transport yet.
pub struct LocalConnector;

#[async_trait]
impl Connector for LocalConnector {
    async fn connect(&self, host: &Host) -> TResult<Box<dyn Transport>> {
        match host.transport {
            TransportKind::Local => Ok(Box::new(Local::new(host.name.clone()))),
            TransportKind::Ssh => Err(TransportError::Unreachable {
                host: host.name.clone(),
                message: "this build of remedy has no SSH transport yet; mark the host `transport: local` to run on this machine".into(),
            }),
        }
    }
}
