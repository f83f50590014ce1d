//! [`RuntimeApi`]: one HAProxy's admin socket, reached through a transport.
//! Commands are checked before they are sent (one per line, names that cannot
//! smuggle a second command, nothing but reads through a read-only transport).

use crate::error::{DrainRefused, HaproxyError, WaitTimedOut};
use crate::state::{parse_backends, parse_servers, AdminState, ServerState};
use remedy_clock::{Clock, SystemClock};
use remedy_transport::{StreamFailure, StreamTarget, Transport, TransportError};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long one command may take, connecting included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often waits look again.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// More than any `show stat` of a sane configuration; a bound against a
/// socket that is not HAProxy's and never stops talking.
const MAX_REPLY_BYTES: u64 = 64 << 20;

/// A TCP admin socket (`stats socket ipv4@HOST:PORT`) given as `HOST:PORT`
/// (`[v6]:PORT` too), as seen from the LB; `None` when it is not that.
pub fn tcp_socket(addr: &str) -> Option<StreamTarget> {
    let (host, port) = addr.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = port.parse::<u16>().ok()?;
    (!host.is_empty()).then(|| StreamTarget::Tcp(host.to_string(), port))
}

/// HAProxy's names (proxies, servers) are letters, digits and `.-_:`. Checking
/// it keeps a name from smuggling a second command (`;`) into the line.
fn check_name(what: &'static str, name: &str) -> Result<(), HaproxyError> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    if ok {
        Ok(())
    } else {
        Err(HaproxyError::InvalidArgument {
            what,
            value: name.to_string(),
            reason: "HAProxy names are letters, digits, `.`, `-`, `_` and `:`".into(),
        })
    }
}

/// Commands that only read. Anything else counts as a change.
fn is_read_only_command(cmd: &str) -> bool {
    matches!(cmd.split_whitespace().next(), Some("show" | "get" | "help"))
}

/// HAProxy's answer when the socket's level is too low for a command
/// (`Permission denied`; some versions hide such commands entirely).
fn refused_for_level(reply: &str) -> bool {
    let reply = reply.trim_start();
    reply.starts_with("Permission denied") || reply.starts_with("Unknown command")
}

/// What a wait reports after each look: the state seen and the time waited.
pub type Progress<'p> = &'p (dyn Fn(&ServerState, Duration) + Send + Sync);

/// A client for one HAProxy's runtime API socket, reached through `transport`.
pub struct RuntimeApi<'a> {
    transport: &'a dyn Transport,
    socket: StreamTarget,
    timeout: Duration,
    poll_interval: Duration,
    clock: &'a dyn Clock,
}

impl<'a> RuntimeApi<'a> {
    /// `socket` is as seen from the transport's host (the LB).
    pub fn new(transport: &'a dyn Transport, socket: StreamTarget) -> RuntimeApi<'a> {
        RuntimeApi {
            transport,
            socket,
            timeout: DEFAULT_TIMEOUT,
            poll_interval: DEFAULT_POLL_INTERVAL,
            clock: &SystemClock,
        }
    }

    /// Limit for one command, connecting included.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How often waits look again.
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// The clock waits sleep on and measure with.
    pub fn with_clock(mut self, clock: &'a dyn Clock) -> Self {
        self.clock = clock;
        self
    }

    fn host(&self) -> String {
        self.transport.host().to_string()
    }

    /// Send one command, return HAProxy's whole answer. Changes are refused
    /// on a read-only transport; several commands in one line (`;`) and
    /// line breaks are refused always.
    pub async fn command(&self, cmd: &str) -> Result<String, HaproxyError> {
        if cmd.trim().is_empty() || cmd.contains(['\n', '\r', ';']) {
            return Err(HaproxyError::InvalidArgument {
                what: "HAProxy command",
                value: cmd.to_string(),
                reason: "one command per call: no line breaks, no `;`".into(),
            });
        }
        if self.transport.is_read_only() && !is_read_only_command(cmd) {
            return Err(HaproxyError::ReadOnly {
                host: self.host(),
                cmd: cmd.to_string(),
            });
        }
        self.exchange(cmd).await
    }

    /// One connection: the line out, everything up to HAProxy's close back.
    async fn exchange(&self, line: &str) -> Result<String, HaproxyError> {
        let io = |message: String| HaproxyError::Io {
            host: self.host(),
            socket: self.socket.clone(),
            cmd: line.to_string(),
            message,
        };
        let work = async {
            let mut stream = self
                .transport
                .open_stream(&self.socket)
                .await
                .map_err(|e| self.open_error(e))?;
            stream
                .write_all(format!("{line}\n").as_bytes())
                .await
                .map_err(|e| io(format!("sending: {e}")))?;
            stream
                .flush()
                .await
                .map_err(|e| io(format!("sending: {e}")))?;
            let mut reply = Vec::new();
            (&mut stream)
                .take(MAX_REPLY_BYTES)
                .read_to_end(&mut reply)
                .await
                .map_err(|e| io(format!("reading the answer: {e}")))?;
            String::from_utf8(reply).map_err(|_| io("the answer is not UTF-8 text".into()))
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(HaproxyError::Timeout {
                host: self.host(),
                socket: self.socket.clone(),
                cmd: line.to_string(),
                timeout: self.timeout,
            }),
        }
    }

    fn open_error(&self, e: TransportError) -> HaproxyError {
        let TransportError::Stream {
            host,
            target,
            failure,
            message,
        } = e
        else {
            return HaproxyError::Transport(e);
        };
        let socket = target;
        match failure {
            StreamFailure::NotFound | StreamFailure::NotASocket => HaproxyError::NoSocket {
                host,
                socket,
                detail: message,
            },
            StreamFailure::PermissionDenied => HaproxyError::SocketDenied {
                host,
                socket,
                detail: message,
            },
            StreamFailure::Refused => HaproxyError::NotListening {
                host,
                socket,
                detail: message,
            },
            StreamFailure::Other => HaproxyError::Transport(TransportError::Stream {
                host,
                target: socket,
                failure,
                message,
            }),
        }
    }

    /// Send a change to one server; HAProxy answers a success with an empty
    /// line. The names are checked before `cmd`, built from them, is sent.
    async fn change(&self, backend: &str, server: &str, cmd: &str) -> Result<(), HaproxyError> {
        check_name("backend name", backend)?;
        check_name("server name", server)?;
        let reply = self.command(cmd).await?;
        let text = reply.trim();
        if text.is_empty() {
            return Ok(());
        }
        if refused_for_level(text) {
            return Err(HaproxyError::NotAdmin {
                host: self.host(),
                socket: self.socket.clone(),
                cmd: cmd.to_string(),
                reply: text.to_string(),
            });
        }
        match text {
            "No such server." => Err(self.no_such_server(backend, server).await),
            "No such backend." => Err(self.no_such_backend(backend).await),
            _ => Err(HaproxyError::Rejected {
                host: self.host(),
                cmd: cmd.to_string(),
                reply: text.to_string(),
            }),
        }
    }

    /// The backends HAProxy knows.
    pub async fn backends(&self) -> Result<Vec<String>, HaproxyError> {
        Ok(parse_backends(&self.command("show backend").await?))
    }

    async fn no_such_backend(&self, backend: &str) -> HaproxyError {
        HaproxyError::NoSuchBackend {
            host: self.host(),
            backend: backend.to_string(),
            known: self.backends().await.unwrap_or_default(),
        }
    }

    async fn no_such_server(&self, backend: &str, server: &str) -> HaproxyError {
        match self.servers(backend).await {
            Ok(servers) => HaproxyError::NoSuchServer {
                host: self.host(),
                backend: backend.to_string(),
                server: server.to_string(),
                known: servers.into_iter().map(|s| s.server).collect(),
            },
            Err(e) => e,
        }
    }

    /// Every server of `backend`, in configuration order.
    pub async fn servers(&self, backend: &str) -> Result<Vec<ServerState>, HaproxyError> {
        check_name("backend name", backend)?;
        // Both reads on one connection: one round trip, and HAProxy runs them
        // back to back, so the two halves describe the same moment. `show
        // stat` gets every proxy's servers (`-1 4 -1`), not `<backend>`'s: a
        // frontend of the same name (`frontend kube-apiserver` beside
        // `backend kube-apiserver`, as in the lab) would answer for the name
        // with no server rows. parse_servers keeps the backend's.
        let line = format!("show stat -1 4 -1;show servers state {backend}");
        let reply = self.exchange(&line).await?;
        let (stat, state) = reply.split_once("\n\n").unwrap_or((&reply, ""));
        if state.trim() == "Can't find backend." {
            return Err(self.no_such_backend(backend).await);
        }
        parse_servers(stat, state).map_err(|source| HaproxyError::Parse {
            host: self.host(),
            cmd: line,
            source,
        })
    }

    /// One server of `backend`.
    pub async fn server(&self, backend: &str, server: &str) -> Result<ServerState, HaproxyError> {
        check_name("server name", server)?;
        let servers = self.servers(backend).await?;
        let known: Vec<String> = servers.iter().map(|s| s.server.clone()).collect();
        servers
            .into_iter()
            .find(|s| s.server == server)
            .ok_or_else(|| HaproxyError::NoSuchServer {
                host: self.host(),
                backend: backend.to_string(),
                server: server.to_string(),
                known,
            })
    }

    /// `set server <backend>/<server> state ready|drain|maint`. Idempotent.
    pub async fn set_state(
        &self,
        backend: &str,
        server: &str,
        state: AdminState,
    ) -> Result<(), HaproxyError> {
        let cmd = format!("set server {backend}/{server} state {state}");
        self.change(backend, server, &cmd).await
    }

    /// `set server <backend>/<server> weight <weight>` (0–256). Idempotent.
    pub async fn set_weight(
        &self,
        backend: &str,
        server: &str,
        weight: u32,
    ) -> Result<(), HaproxyError> {
        if weight > 256 {
            return Err(HaproxyError::InvalidArgument {
                what: "weight",
                value: weight.to_string(),
                reason: "HAProxy weights are 0 to 256".into(),
            });
        }
        let cmd = format!("set server {backend}/{server} weight {weight}");
        self.change(backend, server, &cmd).await
    }

    /// `shutdown sessions server <backend>/<server>`: cut every session the
    /// server has now.
    pub async fn shutdown_sessions(&self, backend: &str, server: &str) -> Result<(), HaproxyError> {
        let cmd = format!("shutdown sessions server {backend}/{server}");
        self.change(backend, server, &cmd).await
    }

    /// Wait until the server has no current session (`scur` 0).
    pub async fn wait_sessions_zero(
        &self,
        backend: &str,
        server: &str,
        timeout: Duration,
        progress: Progress<'_>,
    ) -> Result<ServerState, HaproxyError> {
        self.wait_for(backend, server, timeout, progress, Awaited::NoSessions)
            .await
    }

    /// Wait until the server's status is exactly `UP` (not `UP 1/2`, which
    /// is a server failing its checks).
    pub async fn wait_status_up(
        &self,
        backend: &str,
        server: &str,
        timeout: Duration,
        progress: Progress<'_>,
    ) -> Result<ServerState, HaproxyError> {
        self.wait_for(backend, server, timeout, progress, Awaited::Up)
            .await
    }

    async fn wait_for(
        &self,
        backend: &str,
        server: &str,
        timeout: Duration,
        progress: Progress<'_>,
        awaited: Awaited,
    ) -> Result<ServerState, HaproxyError> {
        let start = self.clock.now();
        loop {
            let looked = self.server(backend, server).await;
            let waited = self.clock.now().duration_since(start).unwrap_or_default();
            // One slow or refused look (HAProxy reloading) need not end a
            // long wait; the next look decides.
            let state = match looked {
                Ok(state) => state,
                Err(e) if e.retryable() && waited < timeout => {
                    self.clock
                        .sleep(self.poll_interval.min(timeout - waited))
                        .await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            progress(&state, waited);
            if awaited.reached(&state) {
                return Ok(state);
            }
            if waited >= timeout {
                return Err(HaproxyError::WaitTimedOut(Box::new(WaitTimedOut {
                    host: self.host(),
                    backend: backend.to_string(),
                    server: server.to_string(),
                    waited_for: awaited.describe(),
                    timeout,
                    last: format!(
                        "status {}, {} session(s), check {}",
                        state.status,
                        state.scur,
                        state.check_status.as_deref().unwrap_or("none")
                    ),
                    hint: awaited.hint(backend, server),
                })));
            }
            self.clock
                .sleep(self.poll_interval.min(timeout - waited))
                .await;
        }
    }

    /// Refuse to drain `server` when fewer than `min_up` OTHER servers of the
    /// backend would still take traffic (status exactly `UP`, weight above
    /// zero). Returns the backend's servers as seen for the decision.
    pub async fn check_drain_allowed(
        &self,
        backend: &str,
        server: &str,
        min_up: usize,
    ) -> Result<Vec<ServerState>, HaproxyError> {
        let servers = self.servers(backend).await?;
        if !servers.iter().any(|s| s.server == server) {
            return Err(HaproxyError::NoSuchServer {
                host: self.host(),
                backend: backend.to_string(),
                server: server.to_string(),
                known: servers.into_iter().map(|s| s.server).collect(),
            });
        }
        let others = servers.iter().filter(|s| s.server != server);
        let (up, not_up): (Vec<&ServerState>, Vec<&ServerState>) =
            others.partition(|s| s.takes_traffic());
        if up.len() >= min_up {
            return Ok(servers);
        }
        Err(HaproxyError::DrainRefused(Box::new(DrainRefused {
            host: self.host(),
            backend: backend.to_string(),
            server: server.to_string(),
            min_up,
            up: up.iter().map(|s| s.server.clone()).collect(),
            not_up: not_up
                .iter()
                .map(|s| match (s.is_up(), s.weight) {
                    (true, 0) => format!("{} (UP, weight 0)", s.server),
                    _ => format!("{} ({})", s.server, s.status),
                })
                .collect(),
        })))
    }
}

/// What a wait waits for.
#[derive(Clone, Copy)]
enum Awaited {
    NoSessions,
    Up,
}

impl Awaited {
    fn reached(self, s: &ServerState) -> bool {
        match self {
            Awaited::NoSessions => s.scur == 0,
            Awaited::Up => s.is_up(),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Awaited::NoSessions => "zero sessions",
            Awaited::Up => "status UP",
        }
    }

    fn hint(self, backend: &str, server: &str) -> Option<String> {
        match self {
            Awaited::NoSessions => Some(format!(
                "open connections outlive a drain; wait longer, or cut them with `shutdown sessions server {backend}/{server}`"
            )),
            Awaited::Up => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_carry_a_second_command_are_refused() {
        for bad in ["", "k8s;shutdown", "a b", "x\ny", "m1/x"] {
            assert!(check_name("server name", bad).is_err(), "{bad:?}");
        }
        for good in ["k8s", "kube-apiserver", "be_1.x:2"] {
            assert!(check_name("server name", good).is_ok(), "{good}");
        }
    }

    #[test]
    fn only_show_get_and_help_read() {
        assert!(is_read_only_command("show stat"));
        assert!(is_read_only_command("get weight k8s/m1"));
        assert!(!is_read_only_command("set server k8s/m1 state drain"));
        assert!(!is_read_only_command("shutdown sessions server k8s/m1"));
        assert!(!is_read_only_command("showx"));
    }

    /// A socket that answers every connection with HAProxy's captured reply
    /// to `show stat -1 4 -1;show servers state k8s`.
    fn fake_haproxy(path: &std::path::Path) {
        let listener = tokio::net::UnixListener::bind(path).unwrap();
        tokio::spawn(async move {
            let reply = concat!(
                include_str!("../tests/data/stat_healthy.csv"),
                include_str!("../tests/data/state_healthy.txt")
            );
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut line = [0u8; 256];
                let _ = conn.read(&mut line).await;
                let _ = conn.write_all(reply.as_bytes()).await;
            }
        });
    }

    #[tokio::test]
    async fn a_wait_rides_out_haproxy_not_answering_for_a_while() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("admin.sock");
        // What a restarting HAProxy leaves: a socket file nobody accepts on.
        drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
        let local = remedy_transport::Local::new("lb");
        let clock = remedy_clock::ManualClock::new();
        let api = RuntimeApi::new(&local, StreamTarget::Unix(sock.display().to_string()))
            .with_clock(&clock)
            .with_poll_interval(Duration::from_secs(1));
        let err = api.servers("k8s").await.unwrap_err();
        assert!(err.retryable(), "{err}");

        let looks = std::sync::atomic::AtomicUsize::new(0);
        let progress = |_: &ServerState, _: Duration| {
            looks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        };
        let wait = api.wait_status_up("k8s", "m1", Duration::from_secs(60), &progress);
        let restart = async {
            while clock.sleeps().len() < 3 {
                tokio::task::yield_now().await;
            }
            std::fs::remove_file(&sock).unwrap();
            fake_haproxy(&sock);
        };
        let (up, ()) = tokio::join!(wait, restart);
        assert_eq!(up.unwrap().status, "UP");
        assert!(clock.sleeps().len() >= 3, "{:?}", clock.sleeps());
        assert_eq!(looks.into_inner(), 1, "progress reports states seen only");
    }

    #[test]
    fn replies_of_a_socket_below_admin_level() {
        // Captured from HAProxy 2.6 (`level user` and `level operator`).
        assert!(refused_for_level("Permission denied\n\n"));
        assert!(refused_for_level(
            "Unknown command, but maybe one of the following ones is a better match:\n"
        ));
        assert!(!refused_for_level("No such server.\n\n"));
    }

    #[test]
    fn tcp_admin_sockets_are_host_and_port() {
        let tcp = |h: &str, p| Some(StreamTarget::Tcp(h.into(), p));
        assert_eq!(tcp_socket("127.0.0.1:9999"), tcp("127.0.0.1", 9999));
        assert_eq!(tcp_socket("[::1]:9999"), tcp("::1", 9999));
        for bad in ["127.0.0.1", ":9999", "lb:http", "lb:70000"] {
            assert_eq!(tcp_socket(bad), None, "{bad}");
        }
    }
}
