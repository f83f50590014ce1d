//! The SSH transport (russh): one connection per host for a whole run,
//! channels multiplexed on it, keepalives, connect and command timeouts,
//! strict host keys, jump-host chains, `become` through `sudo -n`.
//!
//! Settings come from the inventory and, where it is silent, from
//! `~/.ssh/config` (`HostName`, `User`, `Port`, `IdentityFile`, `ProxyJump`).

pub mod config;
pub mod session;

use crate::shell;

use super::{
    AsyncStream, Connector, FileStat, Local, Output, RawOutput, StreamFailure, StreamTarget,
    TResult, Transport, TransportError, WriteAttrs,
};
use crate::host::{Host, Roster, TransportKind};
use async_trait::async_trait;
use config::{parse_proxy_jump, SshConfig};
pub use session::{ConnectOptions, SshError, SshSession, Target};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, OnceCell};

/// File operations are quick; they still must not hang forever.
const FILE_OP_TIMEOUT: Duration = Duration::from_secs(120);

fn to_transport_error(host: &str, e: SshError) -> TransportError {
    let host = host.to_string();
    match e {
        SshError::HostKey { message } => TransportError::HostKey { host, message },
        SshError::Auth { .. } => TransportError::Auth {
            host,
            message: e.to_string(),
        },
        SshError::Lost { .. } => TransportError::ConnectionLost {
            host,
            message: e.to_string(),
        },
        SshError::Timeout { cmd, secs, .. } => TransportError::Timeout { host, cmd, secs },
        SshError::Connect { message, .. } => TransportError::Unreachable { host, message },
        SshError::Refused { cmd, .. } => TransportError::Spawn {
            host,
            cmd,
            message: "the server refused the exec request".into(),
        },
    }
}

/// A host reached over an [`SshSession`].
pub struct SshTransport {
    session: Arc<SshSession>,
}

impl SshTransport {
    pub fn session(&self) -> &Arc<SshSession> {
        &self.session
    }

    async fn run(&self, cmd: &str, stdin: Option<&[u8]>, timeout: Duration) -> TResult<RawOutput> {
        self.session
            .run(cmd, stdin, timeout)
            .await
            .map(|r| RawOutput {
                status: r.status,
                signal: r.signal,
                stdout: r.stdout,
                stderr: r.stderr,
            })
            .map_err(|e| to_transport_error(&self.session.target.name, e))
    }

    /// Run a file operation; a non-zero exit is an I/O error with its stderr.
    async fn file_op(
        &self,
        op: &'static str,
        path: &str,
        script: &str,
        stdin: Option<&[u8]>,
    ) -> TResult<Vec<u8>> {
        let out = self.run(script, stdin, FILE_OP_TIMEOUT).await?;
        if out.status == Some(0) {
            return Ok(out.stdout);
        }
        let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(TransportError::Io {
            host: self.session.target.name.clone(),
            op,
            path: path.to_string(),
            message: if msg.is_empty() {
                format!("exit status {:?}", out.status)
            } else {
                msg
            },
        })
    }
}

impl SshTransport {
    /// Say why a stream to `target` failed. The server's refusal of a channel
    /// carries no errno, so for a unix socket the path is examined on the host.
    async fn stream_error(&self, target: &StreamTarget, e: SshError) -> TransportError {
        let host = self.host().to_string();
        if self.session.is_closed() {
            return to_transport_error(&host, e);
        }
        let detail = match &e {
            SshError::Connect { message, .. } => message.clone(),
            other => other.to_string(),
        };
        let (failure, message) = match target {
            StreamTarget::Tcp(..) if detail.to_lowercase().contains("refused") => {
                (StreamFailure::Refused, detail)
            }
            StreamTarget::Tcp(..) => (StreamFailure::Other, detail),
            StreamTarget::Unix(path) => self.unix_socket_failure(path, detail).await,
        };
        TransportError::Stream {
            host,
            target: target.clone(),
            failure,
            message,
        }
    }

    async fn unix_socket_failure(&self, path: &str, detail: String) -> (StreamFailure, String) {
        let Ok(out) = self
            .run(&shell::socket_check(path), None, FILE_OP_TIMEOUT)
            .await
        else {
            return (StreamFailure::Other, detail);
        };
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let user = &self.session.target.user;
        match text.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["absent"] => (StreamFailure::NotFound, "no such file".into()),
            ["not-socket"] => (StreamFailure::NotASocket, "it is not a socket".into()),
            ["hidden"] => (
                StreamFailure::PermissionDenied,
                format!("a directory above it is closed to {user}"),
            ),
            ["socket", owner, mode, access] if !self.session.target.become_ => {
                if *access == "denied" {
                    (
                        StreamFailure::PermissionDenied,
                        format!("permission denied for {user} (socket {owner}, mode {mode})"),
                    )
                } else {
                    (
                        StreamFailure::Refused,
                        format!("the socket exists ({owner}, mode {mode}) but nothing accepts on it: is the service running?"),
                    )
                }
            }
            // `become` does not apply to a stream: it connects as the login
            // user, whose access the (sudo) probe cannot tell.
            ["socket", owner, mode, _] => (
                StreamFailure::PermissionDenied,
                format!("the socket exists ({owner}, mode {mode}) but {user} could not connect: streams connect as the login user ({user}) because `become` does not apply to them, so {user} needs access to the socket (or nothing accepts on it)"),
            ),
            _ => (StreamFailure::Other, detail),
        }
    }
}

#[async_trait]
impl Transport for SshTransport {
    fn host(&self) -> &str {
        &self.session.target.name
    }

    async fn exec(&self, cmd: &str, timeout: Duration) -> TResult<Output> {
        self.run(cmd, None, timeout).await.map(Output::from)
    }

    async fn exec_raw(&self, cmd: &str, timeout: Duration) -> TResult<RawOutput> {
        self.run(cmd, None, timeout).await
    }

    async fn probe(&self, cmd: &str, timeout: Duration) -> TResult<Output> {
        self.run(cmd, None, timeout).await.map(Output::from)
    }

    async fn read_file(&self, path: &str) -> TResult<Vec<u8>> {
        self.file_op(
            "read",
            path,
            &format!("cat -- {}", shell::quote(path)),
            None,
        )
        .await
    }

    async fn stat(&self, path: &str) -> TResult<Option<FileStat>> {
        let out = self.file_op("stat", path, &shell::stat(path), None).await?;
        let text = String::from_utf8_lossy(&out);
        let text = text.trim();
        if text == "absent" {
            return Ok(None);
        }
        let bad = || TransportError::Io {
            host: self.host().into(),
            op: "stat",
            path: path.into(),
            message: format!("unexpected stat output `{text}`"),
        };
        let mut parts = text.splitn(5, ' ');
        let mode = u32::from_str_radix(parts.next().ok_or_else(bad)?, 8).map_err(|_| bad())?;
        let uid = parts.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        let gid = parts.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        let size = parts.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        let kind = parts.next().unwrap_or("");
        Ok(Some(FileStat {
            mode,
            uid,
            gid,
            size,
            is_dir: kind == "directory",
        }))
    }

    async fn write_file_atomic(&self, path: &str, bytes: &[u8], attrs: WriteAttrs) -> TResult<()> {
        self.file_op(
            "write",
            path,
            &shell::write_atomic(path, attrs.mode, attrs.owner),
            Some(bytes),
        )
        .await
        .map(|_| ())
    }

    async fn rename(&self, from: &str, to: &str) -> TResult<()> {
        let script = format!("mv -f -- {} {}", shell::quote(from), shell::quote(to));
        self.file_op("rename", &format!("{from} -> {to}"), &script, None)
            .await
            .map(|_| ())
    }

    async fn mkdir_p(&self, path: &str) -> TResult<()> {
        self.file_op(
            "mkdir -p",
            path,
            &format!("mkdir -p -- {}", shell::quote(path)),
            None,
        )
        .await
        .map(|_| ())
    }

    async fn remove(&self, path: &str) -> TResult<()> {
        self.file_op(
            "remove",
            path,
            &format!("rm -f -- {}", shell::quote(path)),
            None,
        )
        .await
        .map(|_| ())
    }

    fn opener(&self) -> Option<Arc<dyn super::StreamOpener>> {
        Some(Arc::new(SshTransport {
            session: self.session.clone(),
        }))
    }

    async fn open_stream(&self, target: &StreamTarget) -> TResult<Box<dyn AsyncStream>> {
        let opened = match target {
            StreamTarget::Unix(path) => self.session.open_unix(path).await,
            StreamTarget::Tcp(host, port) => self.session.open_tcp(host, *port).await,
        };
        match opened {
            Ok(stream) => Ok(Box::new(stream)),
            Err(e) => Err(self.stream_error(target, e).await),
        }
    }
}

/// Opens (and keeps) one SSH connection per host; `transport: local` hosts
/// get the local transport.
pub struct SshConnector {
    opts: ConnectOptions,
    hosts: Vec<Host>,
    ssh_config: SshConfig,
    sessions: Mutex<HashMap<String, Arc<OnceCell<Arc<SshSession>>>>>,
}

impl SshConnector {
    pub fn new(inventory: &impl Roster, accept_new_host_keys: bool) -> SshConnector {
        let settings = inventory.ssh_settings();
        let known_hosts = settings
            .known_hosts
            .clone()
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
                    .join(".ssh/known_hosts")
            });
        SshConnector {
            opts: ConnectOptions {
                known_hosts,
                accept_new_host_keys,
                connect_timeout: Duration::from_secs(settings.connect_timeout_secs),
                keepalive: Duration::from_secs(15),
            },
            hosts: inventory.hosts().to_vec(),
            ssh_config: SshConfig::load_default(),
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// Use this `~/.ssh/config` instead of the user's (tests).
    pub fn with_ssh_config(mut self, cfg: SshConfig) -> SshConnector {
        self.ssh_config = cfg;
        self
    }

    /// Where and as whom to log in to an inventory host.
    fn target_for_host(&self, host: &Host) -> (Target, Option<String>) {
        let cfg = self.ssh_config.for_host(&host.name);
        let mut identity_files: Vec<String> = host.ssh.identity_file.iter().cloned().collect();
        identity_files.extend(cfg.identity_files.iter().cloned());
        let target = Target {
            name: host.name.clone(),
            hostname: if host.explicit.address {
                host.address.clone()
            } else {
                cfg.hostname.clone().unwrap_or_else(|| host.address.clone())
            },
            port: if host.explicit.port {
                host.port
            } else {
                cfg.port.unwrap_or(host.port)
            },
            user: if host.explicit.user {
                host.user.clone()
            } else {
                cfg.user.clone().unwrap_or_else(|| host.user.clone())
            },
            identity_files,
            become_: host.ssh.become_,
        };
        (target, host.ssh.proxy_jump.clone().or(cfg.proxy_jump))
    }

    /// A jump hop: an inventory host by name, or an ssh_config alias / address.
    fn target_for_hop(&self, hop: &config::Jump) -> (Target, Option<String>) {
        if let Some(h) = self.hosts.iter().find(|h| h.name == hop.host) {
            let (mut t, jump) = self.target_for_host(h);
            if let Some(u) = &hop.user {
                t.user = u.clone();
            }
            if let Some(p) = hop.port {
                t.port = p;
            }
            t.become_ = false;
            return (t, jump);
        }
        let cfg = self.ssh_config.for_host(&hop.host);
        let target = Target {
            name: hop.host.clone(),
            hostname: cfg.hostname.clone().unwrap_or_else(|| hop.host.clone()),
            port: hop.port.or(cfg.port).unwrap_or(22),
            user: hop
                .user
                .clone()
                .or(cfg.user.clone())
                .unwrap_or_else(|| std::env::var("USER").unwrap_or_else(|_| "root".into())),
            identity_files: cfg.identity_files.clone(),
            become_: false,
        };
        (target, cfg.proxy_jump)
    }

    async fn cell(&self, key: &str) -> Arc<OnceCell<Arc<SshSession>>> {
        let mut map = self.sessions.lock().await;
        let cell = map.entry(key.to_string()).or_default().clone();
        if cell.get().is_some_and(|s| s.is_closed()) {
            // The connection died: the next user reconnects.
            let fresh: Arc<OnceCell<Arc<SshSession>>> = Arc::default();
            map.insert(key.to_string(), fresh.clone());
            return fresh;
        }
        cell
    }

    /// The session for `target`, connecting (through its jump chain) once.
    fn session<'a>(
        &'a self,
        target: Target,
        jump: Option<String>,
        depth: usize,
    ) -> futures::future::BoxFuture<'a, Result<Arc<SshSession>, SshError>> {
        Box::pin(async move {
            if depth > 8 {
                return Err(SshError::Connect {
                    target: target.name.clone(),
                    message: "ProxyJump chain longer than 8 hops (a loop?)".into(),
                });
            }
            let key = format!("{}@{}:{}", target.user, target.hostname, target.port);
            let cell = self.cell(&key).await;
            let session = cell
                .get_or_try_init(|| async {
                    let via = match &jump {
                        None => None,
                        Some(spec) => {
                            let hops = parse_proxy_jump(spec).map_err(|m| SshError::Connect {
                                target: target.name.clone(),
                                message: m,
                            })?;
                            let mut via: Option<Arc<SshSession>> = None;
                            for hop in hops {
                                let (hop_target, hop_jump) = self.target_for_hop(&hop);
                                // The first hop may itself need a jump (from ssh_config).
                                let hop_jump = if via.is_none() { hop_jump } else { None };
                                let s = match via {
                                    None => self.session(hop_target, hop_jump, depth + 1).await?,
                                    Some(v) => Arc::new(
                                        SshSession::connect(hop_target, &self.opts, Some(v))
                                            .await?,
                                    ),
                                };
                                via = Some(s);
                            }
                            via
                        }
                    };
                    SshSession::connect(target.clone(), &self.opts, via)
                        .await
                        .map(Arc::new)
                })
                .await?;
            Ok(session.clone())
        })
    }

    /// The SSH session to an inventory host.
    pub async fn ssh_session(&self, host: &Host) -> Result<Arc<SshSession>, SshError> {
        let (target, jump) = self.target_for_host(host);
        self.session(target, jump, 0).await
    }
}

#[async_trait]
impl Connector for SshConnector {
    async fn connect(&self, host: &Host) -> TResult<Box<dyn Transport>> {
        match host.transport {
            TransportKind::Local => Ok(Box::new(Local::new(host.name.clone()))),
            TransportKind::Ssh => {
                let session = self
                    .ssh_session(host)
                    .await
                    .map_err(|e| to_transport_error(&host.name, e))?;
                Ok(Box::new(SshTransport { session }))
            }
        }
    }
}

#[async_trait]
impl super::StreamOpener for SshTransport {
    async fn open(&self, target: &StreamTarget) -> TResult<Box<dyn AsyncStream>> {
        self.open_stream(target).await
    }
}
