//! Why talking to HAProxy failed, or why it said no: one enum, with the
//! next step in each message and whether trying again could help.

use crate::state::ParseError;
use remedy_transport::{StreamTarget, TransportError};
use std::time::Duration;

/// Why talking to HAProxy failed, or why it said no.
#[derive(Debug, thiserror::Error)]
pub enum HaproxyError {
    /// Nothing usable at the configured socket path.
    #[error("no HAProxy admin socket at {socket} on {host} ({detail}): check `stats socket` in haproxy.cfg and the host var haproxy_socket")]
    NoSocket {
        host: String,
        socket: StreamTarget,
        detail: String,
    },
    /// The socket is there, but the user remedy connects as may not use it.
    #[error("permission denied on HAProxy's socket {socket} on {host}: {detail}")]
    SocketDenied {
        host: String,
        socket: StreamTarget,
        detail: String,
    },
    /// Nothing accepts connections there: HAProxy is down or restarting.
    #[error("HAProxy does not answer on {socket} on {host}: {detail}; is haproxy running?")]
    NotListening {
        host: String,
        socket: StreamTarget,
        detail: String,
    },
    /// The socket answers, but refuses commands that change state.
    #[error("the socket {socket} on {host} is not at admin level: HAProxy answered `{reply}` to `{cmd}`; declare it with `stats socket {socket} … level admin` in haproxy.cfg")]
    NotAdmin {
        host: String,
        socket: StreamTarget,
        cmd: String,
        reply: String,
    },
    /// No complete answer in time.
    #[error("HAProxy on {host} ({socket}) did not answer `{cmd}` within {}", seconds(*timeout))]
    Timeout {
        host: String,
        socket: StreamTarget,
        cmd: String,
        timeout: Duration,
    },
    /// The connection failed while the command was sent or answered: for a
    /// change, whether it happened is unknown.
    #[error("talking to HAProxy on {host} ({socket}) during `{cmd}`: {message}")]
    Io {
        host: String,
        socket: StreamTarget,
        cmd: String,
        message: String,
    },
    /// The transport could not open a stream at all.
    #[error(transparent)]
    Transport(TransportError),
    /// HAProxy answered a change with an error.
    #[error("HAProxy on {host} refused `{cmd}`: {reply}")]
    Rejected {
        host: String,
        cmd: String,
        reply: String,
    },
    #[error(
        "no server {server} in backend {backend} on {host}: the names HAProxy knows are {}",
        names(known)
    )]
    NoSuchServer {
        host: String,
        backend: String,
        server: String,
        known: Vec<String>,
    },
    #[error(
        "no backend {backend} on {host}: the backends HAProxy knows are {}",
        names(known)
    )]
    NoSuchBackend {
        host: String,
        backend: String,
        known: Vec<String>,
    },
    /// HAProxy's answer is not in the format this module reads.
    #[error("unexpected answer from HAProxy on {host} to `{cmd}`: {source}")]
    Parse {
        host: String,
        cmd: String,
        source: ParseError,
    },
    /// A change was about to be sent through a read-only transport: a bug in
    /// an action's plan.
    #[error("`{cmd}` refused on {host}: planning is read-only (this is a bug in the action's plan, please report it)")]
    ReadOnly { host: String, cmd: String },
    /// A value remedy will not put into a command.
    #[error("invalid {what} `{value}`: {reason}")]
    InvalidArgument {
        what: &'static str,
        value: String,
        reason: String,
    },
    /// A wait ran out of time.
    #[error(transparent)]
    WaitTimedOut(Box<WaitTimedOut>),
    /// Draining would leave too few servers taking traffic.
    #[error(transparent)]
    DrainRefused(Box<DrainRefused>),
    /// A drain's sessions did not end by its deadline (and were not to be cut).
    #[error(transparent)]
    SessionsRemain(Box<WaitTimedOut>),
    /// A change across several LBs failed on one of them; the LBs changed
    /// before it were put back as they were (`restored`), or could not be
    /// (`stuck`, each with how to do it by hand).
    #[error("{cause}{}{}", put_back(restored), not_put_back(stuck))]
    PutBack {
        cause: Box<HaproxyError>,
        restored: Vec<String>,
        stuck: Vec<String>,
    },
}

fn put_back(restored: &[String]) -> String {
    match restored.is_empty() {
        true => String::new(),
        false => format!(
            "; the server was put back as it was on {}",
            restored.join(", ")
        ),
    }
}

fn not_put_back(stuck: &[String]) -> String {
    match stuck.is_empty() {
        true => String::new(),
        false => format!("; and NOT put back: {}", stuck.join("; ")),
    }
}

/// A wait that ran out of time, with what it saw last.
#[derive(Debug, thiserror::Error)]
#[error("server {server} in backend {backend} on {host}: {waited_for} not reached within {}; last seen: {last}{}", seconds(*timeout), hint.as_deref().map(|h| format!("; {h}")).unwrap_or_default())]
pub struct WaitTimedOut {
    pub host: String,
    pub backend: String,
    pub server: String,
    pub waited_for: &'static str,
    pub timeout: Duration,
    /// The last state seen, for the message.
    pub last: String,
    /// What the operator can do about it.
    pub hint: Option<String>,
}

/// Why a drain was refused: the other servers, up and not.
#[derive(Debug, thiserror::Error)]
#[error("refusing to drain {server} in backend {backend} on {host}: {} other server(s) would take traffic, fewer than min_up {min_up}; up: {}; not up: {}", up.len(), names(up), names(not_up))]
pub struct DrainRefused {
    pub host: String,
    pub backend: String,
    pub server: String,
    pub min_up: usize,
    /// Other servers fully `UP` with a weight above zero.
    pub up: Vec<String>,
    /// The other servers, as `name (status)`.
    pub not_up: Vec<String>,
}

/// `90s`, `1.5s`, `0.3s`: whole seconds unless there is a fraction to show.
pub(crate) fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

pub(crate) fn names(list: &[String]) -> String {
    if list.is_empty() {
        "none".into()
    } else {
        list.join(", ")
    }
}

impl HaproxyError {
    /// The operator's next step, where it is not in the message already.
    pub fn hint(&self) -> Option<&str> {
        match self {
            HaproxyError::SessionsRemain(_) => {
                Some("wait longer (timeout), or let the drain cut them (shutdown_sessions: true)")
            }
            HaproxyError::PutBack { cause, .. } => cause.hint(),
            _ => None,
        }
    }

    /// Worth trying again: HAProxy was restarting or slow, or the path to it
    /// hiccupped. A change whose outcome is unknown ([`HaproxyError::Io`]) is
    /// not retried blindly; read the state first.
    pub fn retryable(&self) -> bool {
        match self {
            HaproxyError::Timeout { .. } | HaproxyError::NotListening { .. } => true,
            HaproxyError::Transport(e) => e.retryable(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timed_out() -> WaitTimedOut {
        WaitTimedOut {
            host: "lb-1".into(),
            backend: "k8s".into(),
            server: "m1".into(),
            waited_for: "no sessions",
            timeout: Duration::from_secs(90),
            last: "status DRAIN, 1 session(s), check L4OK".into(),
            hint: None,
        }
    }

    #[test]
    fn put_back_says_what_was_restored_and_keeps_the_cause_hint() {
        let cause = HaproxyError::SessionsRemain(Box::new(timed_out()));
        let hint = cause.hint().map(str::to_string);
        assert!(hint.as_deref().unwrap().starts_with("wait longer"));
        let e = HaproxyError::PutBack {
            cause: Box::new(cause),
            restored: vec!["lb-1".into(), "lb-2".into()],
            stuck: vec![],
        };
        assert_eq!(
            e.to_string(),
            "server m1 in backend k8s on lb-1: no sessions not reached within 90s; last seen: status DRAIN, 1 session(s), check L4OK; the server was put back as it was on lb-1, lb-2"
        );
        assert_eq!(e.hint().map(str::to_string), hint);
        let e = HaproxyError::PutBack {
            cause: Box::new(HaproxyError::ReadOnly {
                host: "lb-2".into(),
                cmd: "x".into(),
            }),
            restored: vec![],
            stuck: vec!["a".into(), "b".into()],
        };
        assert!(e
            .to_string()
            .ends_with("please report it); and NOT put back: a; b"));
        assert_eq!(e.hint(), None);
    }
}
