//! The SSH transport (russh): one connection per host for a whole run,
//! channels multiplexed on it, keepalives, connect and command timeouts,
//! strict host keys, jump-host chains, `ProxyCommand`s, `become` through
//! `sudo -n`.
//!
//! Settings come from the inventory and, where it is silent, from OpenSSH's
//! client configuration as OpenSSH itself resolves it ([`config`]): host
//! name, port, user, identity files, `IdentitiesOnly`, `ProxyJump`,
//! `ProxyCommand`. A setting that changes where or how OpenSSH would connect
//! and that remedy does not honour is reported; a proxy remedy cannot use is
//! refused — never replaced by a direct connection.

pub mod config;
mod proxy_command;
pub mod session;

use crate::shell;

use super::{
    AsyncStream, Connector, FileStat, Local, Output, RawOutput, StreamFailure, StreamTarget,
    TResult, Transport, TransportError, WriteAttrs,
};
use crate::host::{Host, Roster, TransportKind};
use async_trait::async_trait;
use config::{parse_proxy_jump, Ask, ConfigFile, Jump, Proxy, Resolved, Resolver};
pub use session::{ConnectOptions, SshError, SshSession, Target, Via};
use std::collections::{HashMap, HashSet};
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
        SshError::Config { message, .. } => TransportError::Config { host, message },
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

/// Where the connector's messages go: settings it does not honour (always),
/// and with `verbose` how each host is reached. Default: stderr.
pub type Reporter = Arc<dyn Fn(&str) + Send + Sync>;

/// Opens (and keeps) one SSH connection per host; `transport: local` hosts
/// get the local transport.
pub struct SshConnector {
    opts: ConnectOptions,
    hosts: Vec<Host>,
    resolver: Resolver,
    verbose: bool,
    reporter: Reporter,
    /// Lines already reported, so each is said once per run.
    reported: std::sync::Mutex<HashSet<String>>,
    sessions: Mutex<HashMap<String, Arc<OnceCell<Arc<SshSession>>>>>,
    /// Each inventory host's route, resolved once per run: resolving runs
    /// `ssh -G`, a process, and a run asks again for every peer a step
    /// reaches (each etcd member, each load balancer).
    routes: std::sync::Mutex<HashMap<String, (Target, Proxy)>>,
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
            resolver: Resolver::new(ConfigFile::from_setting(settings.config.as_deref())),
            verbose: false,
            reporter: Arc::new(|line: &str| eprintln!("remedy: {line}")),
            reported: std::sync::Mutex::new(HashSet::new()),
            sessions: Mutex::new(HashMap::new()),
            routes: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Read the SSH client configuration with this resolver (tests: a given
    /// file, or without OpenSSH).
    pub fn with_resolver(mut self, resolver: Resolver) -> SshConnector {
        self.resolver = resolver;
        self
    }

    /// Also report how the configuration is read and how each host is reached.
    pub fn verbose(mut self, on: bool) -> SshConnector {
        self.verbose = on;
        self
    }

    pub fn with_reporter(mut self, reporter: Reporter) -> SshConnector {
        self.reporter = reporter;
        self
    }

    fn report(&self, line: String) {
        let fresh = self
            .reported
            .lock()
            .map(|mut seen| seen.insert(line.clone()))
            .unwrap_or(true);
        if fresh {
            (self.reporter)(&line);
        }
    }

    /// OpenSSH's settings for `ask`, reported as they are used.
    async fn resolve(&self, ask: &Ask) -> Result<Resolved, SshError> {
        if self.verbose {
            self.report(self.resolver.describe());
        }
        let file = self.resolver.file().describe();
        let r = self
            .resolver
            .resolve(ask)
            .await
            .map_err(|message| SshError::Config {
                target: ask.name.clone(),
                message: format!(
                    "{message} (SSH client configuration: {file}); remedy will not connect to {}",
                    ask.name
                ),
            })?;
        for u in &r.unhonoured {
            self.report(format!(
                "warning: {}: {file} sets `{} {}`, which remedy does not honour: {}",
                ask.name, u.keyword, u.value, u.why
            ));
        }
        Ok(r)
    }

    fn say_route(&self, target: &Target, proxy: &Proxy) {
        if !self.verbose {
            return;
        }
        let route = match proxy {
            Proxy::Direct => "directly".to_string(),
            Proxy::Jump(j) => format!("through ProxyJump {j}"),
            Proxy::Command(c) => format!("through ProxyCommand `{c}`"),
        };
        let keys = if target.identity_files.is_empty() {
            String::new()
        } else {
            format!(" with {}", target.identity_files.join(", "))
        };
        self.report(format!(
            "ssh: {}: {}@{}:{}{keys}, {route}",
            target.name, target.user, target.hostname, target.port
        ));
    }

    /// Where and as whom to log in to an inventory host, and how to get there.
    pub async fn route_for_host(&self, host: &Host) -> Result<(Target, Proxy), SshError> {
        let known = self.routes_known().get(&host.name).cloned();
        if let Some(route) = known {
            return Ok(route);
        }
        let route = self.resolve_route(host).await?;
        self.routes_known().insert(host.name.clone(), route.clone());
        Ok(route)
    }

    fn routes_known(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Target, Proxy)>> {
        self.routes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn resolve_route(&self, host: &Host) -> Result<(Target, Proxy), SshError> {
        let ask = Ask {
            name: host.name.clone(),
            hostname: host.explicit.address.then(|| host.address.clone()),
            port: host.explicit.port.then_some(host.port),
            user: host.explicit.user.then(|| host.user.clone()),
        };
        let r = self.resolve(&ask).await?;
        let mut identity_files: Vec<String> = host.ssh.identity_file.iter().cloned().collect();
        identity_files.extend(r.identity_files.iter().cloned());
        let target = Target {
            name: host.name.clone(),
            hostname: r.hostname,
            port: r.port,
            user: r.user,
            identity_files,
            identities_only: r.identities_only,
            become_: host.ssh.become_,
        };
        // The inventory's jump wins over the configuration's ProxyJump and
        // ProxyCommand alike.
        let proxy = match &host.ssh.proxy_jump {
            Some(jump) => Proxy::Jump(jump.clone()),
            None => r.proxy,
        };
        Ok((target, proxy))
    }

    /// A jump hop: an inventory host by name, or a name for the configuration.
    async fn route_for_hop(&self, hop: &Jump) -> Result<(Target, Proxy), SshError> {
        if let Some(h) = self.hosts.iter().find(|h| h.name == hop.host) {
            let (mut t, proxy) = self.route_for_host(h).await?;
            if let Some(u) = &hop.user {
                t.user = u.clone();
            }
            if let Some(p) = hop.port {
                t.port = p;
            }
            t.become_ = false;
            return Ok((t, proxy));
        }
        let r = self
            .resolve(&Ask {
                name: hop.host.clone(),
                hostname: None,
                port: hop.port,
                user: hop.user.clone(),
            })
            .await?;
        let target = Target {
            name: hop.host.clone(),
            hostname: r.hostname,
            port: r.port,
            user: r.user,
            identity_files: r.identity_files,
            identities_only: r.identities_only,
            become_: false,
        };
        Ok((target, r.proxy))
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

    /// The session for `target`, connecting (through its proxy) once.
    fn session<'a>(
        &'a self,
        target: Target,
        proxy: Proxy,
        depth: usize,
    ) -> futures::future::BoxFuture<'a, Result<Arc<SshSession>, SshError>> {
        Box::pin(async move {
            if depth > 8 {
                return Err(SshError::Connect {
                    target: target.name.clone(),
                    message: "ProxyJump chain longer than 8 hops (a loop?)".into(),
                });
            }
            self.say_route(&target, &proxy);
            let key = format!(
                "{}@{}:{} {proxy:?}",
                target.user, target.hostname, target.port
            );
            let cell = self.cell(&key).await;
            let session = cell
                .get_or_try_init(|| async {
                    let via = match &proxy {
                        Proxy::Direct => Via::Direct,
                        Proxy::Command(command) => Via::Command(command.clone()),
                        Proxy::Jump(spec) => {
                            Via::Jump(self.through_hops(&target, spec, depth).await?)
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

    /// The session to the last hop of `spec`, the first hop reached as its
    /// own configuration says (it may have a proxy of its own), each later
    /// one through the hop before it.
    async fn through_hops(
        &self,
        target: &Target,
        spec: &str,
        depth: usize,
    ) -> Result<Arc<SshSession>, SshError> {
        let hops = parse_proxy_jump(spec).map_err(|m| SshError::Config {
            target: target.name.clone(),
            message: format!(
                "{m}; remedy will not connect to {} directly instead",
                target.name
            ),
        })?;
        let mut through: Option<Arc<SshSession>> = None;
        for hop in hops {
            let (hop_target, hop_proxy) = self.route_for_hop(&hop).await?;
            through = Some(match through {
                None => self.session(hop_target, hop_proxy, depth + 1).await?,
                Some(prev) => {
                    self.say_route(&hop_target, &Proxy::Jump(prev.target.name.clone()));
                    Arc::new(SshSession::connect(hop_target, &self.opts, Via::Jump(prev)).await?)
                }
            });
        }
        through.ok_or_else(|| SshError::Config {
            target: target.name.clone(),
            message: format!(
                "ProxyJump `{spec}` names no host; remedy will not connect to {} directly instead",
                target.name
            ),
        })
    }

    /// The SSH session to an inventory host.
    pub async fn ssh_session(&self, host: &Host) -> Result<Arc<SshSession>, SshError> {
        let (target, proxy) = self.route_for_host(host).await?;
        self.session(target, proxy, 0).await
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

    fn is_closed(&self) -> bool {
        self.session.is_closed()
    }
}
