//! `Fleet` against two real HAProxies in front of the same two servers,
//! through the Local transport: drain (sessions cut at the deadline, then
//! maint), ready, weight, the min_up refusal, and a change that fails on the
//! second LB putting the first back as it was.

use remedy_clock::SystemClock;
use remedy_haproxy::{AdminState, Drain, Fleet, HaproxyError, Lb};
use remedy_testkit::haproxy::{TestHaproxy, Upstream};
use remedy_transport::{Local, StreamTarget};
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Each test its own loopback addresses, so they run in parallel.
fn addr(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 122, n)
}

/// Two LBs (`lb-1`, `lb-2`), each balancing m1 and m2 (both listening).
struct Pair {
    lbs: [TestHaproxy; 2],
    _upstreams: [Upstream; 2],
}

impl Pair {
    async fn start(first: u8) -> Pair {
        let upstreams = [
            Upstream::start(addr(first)).await,
            Upstream::start(addr(first)).await,
        ];
        let servers = [("m1", upstreams[0].addr, 1), ("m2", upstreams[1].addr, 1)];
        let lbs = [
            TestHaproxy::start(addr(first), &servers),
            TestHaproxy::start(addr(first + 1), &servers),
        ];
        Pair {
            lbs,
            _upstreams: upstreams,
        }
    }

    /// `server` on both LBs, through the given socket of each.
    fn fleet<'c>(&self, server: &str, sockets: [&Path; 2], clock: &'c SystemClock) -> Fleet<'c> {
        let lbs = (1..=2)
            .zip(sockets)
            .map(|(i, socket)| Lb {
                name: format!("lb-{i}"),
                transport: Box::new(Local::new(format!("lb-{i}"))),
                socket: StreamTarget::Unix(socket.display().to_string()),
                backend: "k8s".into(),
            })
            .collect();
        Fleet::new(lbs, server.to_string(), clock)
    }

    fn admin(&self) -> [&Path; 2] {
        [&self.lbs[0].admin_socket, &self.lbs[1].admin_socket]
    }
}

/// Until both servers are UP on every LB of `fleet`.
async fn all_up(fleet: &Fleet<'_>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    for lb in &fleet.lbs {
        loop {
            let servers = lb.api(&SystemClock).servers("k8s").await.unwrap();
            if servers.iter().all(|s| s.is_up()) {
                break;
            }
            assert!(Instant::now() < deadline, "not UP: {servers:#?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn drain(limit: Duration) -> Drain {
    Drain {
        limit,
        shutdown_sessions: false,
        maint: false,
        min_up: 1,
    }
}

#[tokio::test]
async fn drain_cuts_sessions_at_the_deadline_then_ready_and_weight_apply_everywhere() {
    let pair = Pair::start(1).await;
    let clock = SystemClock;
    let probe = pair.fleet("m1", pair.admin(), &clock);
    all_up(&probe).await;
    // A client through lb-1 stays open on whichever server it landed on.
    let _client = tokio::net::TcpStream::connect(pair.lbs[0].frontend)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let busy = loop {
        let servers = probe.lbs[0].api(&clock).servers("k8s").await.unwrap();
        if let Some(s) = servers.iter().find(|s| s.scur == 1) {
            break s.server.clone();
        }
        assert!(Instant::now() < deadline, "no session: {servers:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let fleet = pair.fleet(&busy, pair.admin(), &clock);

    let states = fleet.states().await.unwrap();
    let refused = Drain {
        min_up: 2,
        ..drain(Duration::from_secs(1))
    };
    let err = fleet
        .drain(&refused, &states, &|_, _| {})
        .await
        .unwrap_err();
    assert!(matches!(err, HaproxyError::DrainRefused(_)), "{err}");
    assert_eq!(fleet.states().await.unwrap(), states, "nothing changed");

    let seen = Mutex::new(Vec::new());
    let waiting = |what: &str, _: u64| seen.lock().unwrap().push(what.to_string());
    let spec = Drain {
        shutdown_sessions: true,
        maint: true,
        ..drain(Duration::from_secs(1))
    };
    let done = fleet.drain(&spec, &states, &waiting).await.unwrap();
    assert!(done.changed);
    assert_eq!(done.sessions_cut, 1);
    assert!(seen
        .lock()
        .unwrap()
        .iter()
        .any(|w| w.starts_with(&format!("lb-1: k8s/{busy} to have no sessions"))));
    for s in fleet.states().await.unwrap() {
        assert_eq!((s.admin, s.scur), (AdminState::Maint, 0), "{s:?}");
    }

    let states = fleet.states().await.unwrap();
    let done = fleet
        .ready(Duration::from_secs(10), &states, &|_, _| {})
        .await
        .unwrap();
    assert!(done.changed);
    for s in fleet.states().await.unwrap() {
        assert_eq!((s.admin, s.status.as_str()), (AdminState::Ready, "UP"));
    }

    let states = fleet.states().await.unwrap();
    fleet.check_weight(0, &states).await.unwrap();
    assert!(fleet.set_weight(0, &states).await.unwrap().changed);
    let zero = fleet.states().await.unwrap();
    assert!(zero.iter().all(|s| s.weight == 0), "{zero:?}");
    assert!(!fleet.set_weight(0, &zero).await.unwrap().changed);

    let stat = fleet.stat().await.unwrap();
    assert_eq!(stat.server.len(), 2);
    assert_eq!(stat.servers.len(), 4);
    assert_eq!(stat.up, 1, "{}", stat.summary);
    assert!(
        stat.summary.starts_with(&format!(
            "{busy} on 2 LB(s)\nlb-1: k8s/{busy} ready (UP, weight 0,"
        )),
        "{}",
        stat.summary
    );
}

#[tokio::test]
async fn a_change_that_fails_on_the_second_lb_puts_the_first_back() {
    let pair = Pair::start(3).await;
    let clock = SystemClock;
    // lb-2 through its `level user` socket: it reads, and refuses changes.
    let fleet = pair.fleet(
        "m1",
        [&pair.lbs[0].admin_socket, &pair.lbs[1].user_socket],
        &clock,
    );
    all_up(&fleet).await;
    let states = fleet.states().await.unwrap();
    let err = fleet
        .drain(&drain(Duration::from_secs(5)), &states, &|_, _| {})
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, HaproxyError::PutBack { .. }), "{text}");
    assert!(
        text.contains("is not at admin level") && text.contains("`set server k8s/m1 state drain`"),
        "{text}"
    );
    // lb-2 counts as touched too (an answer lost may hide a change made);
    // putting it back fails the same way, and the message says how by hand.
    assert!(
        text.contains("; the server was put back as it was on lb-1; and NOT put back: ")
            && text.ends_with(
                "— restore it on lb-2: `set server k8s/m1 weight 1` and `set server k8s/m1 state ready`"
            ),
        "{text}"
    );
    assert_eq!(err.hint(), None);
    let after = fleet.states().await.unwrap();
    assert_eq!(after[0].admin, AdminState::Ready, "lb-1 is back");
    assert_eq!(after[1].admin, AdminState::Ready);

    let err = fleet.set_weight(7, &states).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("; the server was put back as it was on lb-1; and NOT put back: "),
        "{err}"
    );
    assert_eq!(
        fleet.states().await.unwrap()[0].weight,
        1,
        "weight put back"
    );
}
