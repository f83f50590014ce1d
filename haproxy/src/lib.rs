//! remedy-haproxy: HAProxy's runtime API (the `stats socket`), spoken over any
//! transport: read the servers of a backend, drain / ready / maint them,
//! change weights, cut sessions, and wait for sessions to end or for a server
//! to be fully `UP`.
//!
//! [`Fleet`] is one server on every LB in front of it: read together,
//! changed on all of them or on none (drain, ready, weight), put back as
//! found when one fails.
//!
//! One connection per command, in HAProxy's non-interactive mode: send the
//! command and a newline, read until HAProxy closes. Nothing to keep in sync,
//! and a connection lost mid-command loses one command only.
//!
//! A dry-run gets a read-only transport, which still opens streams (reading
//! the LB's state is what a plan needs); this crate is what refuses to send
//! anything but `show`/`get`/`help` through it.
//!
//! The byte stream comes from [`remedy_transport::Transport::open_stream`]
//! (an SSH direct-streamlocal channel in production, a local socket in
//! tests); the transport, not a dialer of its own, because whether it is
//! read-only decides what may be sent. This crate knows nothing of runbooks
//! or runs: it must not depend on the engine, nor on russh.

mod error;
mod fleet;
mod prior;
mod runtime_api;
mod state;

pub use error::{DrainRefused, HaproxyError, WaitTimedOut};
pub use fleet::{Done, Drain, Fleet, Lb, Stat, StatEntry, Waiting};
pub use prior::Prior;
pub use runtime_api::{tcp_socket, Progress, RuntimeApi, DEFAULT_POLL_INTERVAL, DEFAULT_TIMEOUT};
pub use state::{parse_backends, parse_servers, AdminState, OpState, ParseError, ServerState};
