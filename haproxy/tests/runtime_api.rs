//! The HAProxy runtime-API client against a real HAProxy, through the Local
//! transport's `open_stream`: reading state, drain and the sessions it
//! leaves, ready and the exact `UP`, weights, the drain guard, and the
//! messages for unknown names, a socket below admin level, a missing socket,
//! and a dry-run.

use remedy_haproxy::{AdminState, HaproxyError, RuntimeApi, ServerState};
use remedy_testkit::haproxy::{nothing_listens, TestHaproxy, Upstream};
use remedy_transport::{Local, ReadOnly, StreamTarget};
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

const BE: &str = "k8s";

/// Each test its own loopback address, so they run in parallel.
fn addr(test: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 120, test)
}

fn lb() -> Local {
    Local::new("lb")
}

fn no_progress(_: &ServerState, _: Duration) {}

/// Poll until every named server shows `status` (health checks need a few
/// hundred milliseconds after start or a state change).
async fn settle(api: &RuntimeApi<'_>, want: &[(&str, &str)]) -> Vec<ServerState> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let servers = api.servers(BE).await.unwrap();
        let status = |name: &str| {
            servers
                .iter()
                .find(|s| s.server == name)
                .map(|s| s.status.clone())
        };
        if want
            .iter()
            .all(|(name, st)| status(name).as_deref() == Some(*st))
        {
            return servers;
        }
        assert!(
            Instant::now() < deadline,
            "servers did not reach {want:?}: {servers:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A client connected through the frontend, and the server it landed on.
async fn client_on(api: &RuntimeApi<'_>, h: &TestHaproxy) -> (tokio::net::TcpStream, String) {
    let client = tokio::net::TcpStream::connect(h.frontend).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let servers = api.servers(BE).await.unwrap();
        if let Some(s) = servers.iter().find(|s| s.scur == 1) {
            return (client, s.server.clone());
        }
        assert!(Instant::now() < deadline, "no session seen: {servers:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An LB with backend `k8s`: m1 and m2 (weight 50) up, m3 with nothing
/// listening; reached through the Local transport.
struct Lb {
    h: TestHaproxy,
    upstreams: [Upstream; 2],
    local: Local,
}

impl Lb {
    async fn start(test: u8) -> Lb {
        let upstreams = [
            Upstream::start(addr(test)).await,
            Upstream::start(addr(test)).await,
        ];
        let h = TestHaproxy::start(
            addr(test),
            &[
                ("m1", upstreams[0].addr, 1),
                ("m2", upstreams[1].addr, 50),
                ("m3", nothing_listens(addr(test)), 1),
            ],
        );
        Lb {
            h,
            upstreams,
            local: lb(),
        }
    }

    /// The admin unix socket, polling quickly.
    fn api(&self) -> RuntimeApi<'_> {
        RuntimeApi::new(&self.local, StreamTarget::Unix(self.h.admin_path()))
            .with_poll_interval(Duration::from_millis(50))
    }
}

#[tokio::test]
async fn reads_the_state_of_a_real_backend_over_unix_and_tcp_sockets() {
    let lb = Lb::start(1).await;
    let servers = settle(&lb.api(), &[("m1", "UP"), ("m2", "UP"), ("m3", "DOWN")]).await;
    let summary: Vec<_> = servers
        .iter()
        .map(|s| {
            (
                s.server.as_str(),
                s.admin,
                s.weight,
                s.initial_weight,
                s.scur,
                s.check_status.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("m1", AdminState::Ready, 1, 1, 0, Some("L4OK")),
            ("m2", AdminState::Ready, 50, 50, 0, Some("L4OK")),
            ("m3", AdminState::Ready, 1, 1, 0, Some("L4CON")),
        ]
    );
    assert_eq!(servers[0].addr, lb.upstreams[0].addr.to_string());
    assert_eq!(servers[1].addr, lb.upstreams[1].addr.to_string());

    let (ip, port) = lb.h.admin_tcp;
    let over_tcp = RuntimeApi::new(&lb.local, StreamTarget::Tcp(ip.to_string(), port));
    let again = over_tcp.servers(BE).await.unwrap();
    assert_eq!(
        again.iter().map(|s| &s.server).collect::<Vec<_>>(),
        ["m1", "m2", "m3"]
    );
    assert_eq!(over_tcp.backends().await.unwrap(), [BE]);
}

#[tokio::test]
async fn after_a_drain_sessions_reach_zero_once_the_client_leaves() {
    let lb = Lb::start(2).await;
    let api = lb.api();
    settle(&api, &[("m1", "UP"), ("m2", "UP")]).await;
    let (client, server) = client_on(&api, &lb.h).await;

    api.set_state(BE, &server, AdminState::Drain).await.unwrap();
    let drained = api.server(BE, &server).await.unwrap();
    assert_eq!(
        (drained.admin, drained.status.as_str(), drained.scur),
        (AdminState::Drain, "DRAIN", 1),
        "an open connection survives the drain"
    );

    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        drop(client);
    });
    let seen = Mutex::new(Vec::new());
    let progress = |s: &ServerState, waited: Duration| {
        seen.lock().unwrap().push((s.scur, waited));
    };
    let done = api
        .wait_sessions_zero(BE, &server, Duration::from_secs(10), &progress)
        .await
        .unwrap();
    assert_eq!((done.scur, done.admin), (0, AdminState::Drain));
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen.first().map(|s| s.0), Some(1), "{seen:?}");
    assert_eq!(seen.last().map(|s| s.0), Some(0), "{seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0].1 <= w[1].1),
        "waited time only grows: {seen:?}"
    );
}

#[tokio::test]
async fn a_drain_wait_times_out_on_an_open_connection_and_shutdown_sessions_cuts_it() {
    let lb = Lb::start(3).await;
    let api = lb.api();
    settle(&api, &[("m1", "UP"), ("m2", "UP")]).await;
    let (mut client, server) = client_on(&api, &lb.h).await;
    api.set_state(BE, &server, AdminState::Drain).await.unwrap();

    let started = Instant::now();
    let err = api
        .wait_sessions_zero(BE, &server, Duration::from_secs(1), &no_progress)
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(err, HaproxyError::WaitTimedOut(_)));
    assert_eq!(
        err.to_string(),
        format!(
            "server {server} in backend k8s on lb: zero sessions not reached within 1s; \
             last seen: status DRAIN, 1 session(s), check L4OK; open connections outlive a \
             drain; wait longer, or cut them with `shutdown sessions server k8s/{server}`"
        )
    );

    api.shutdown_sessions(BE, &server).await.unwrap();
    let done = api
        .wait_sessions_zero(BE, &server, Duration::from_secs(5), &no_progress)
        .await
        .unwrap();
    assert_eq!(done.scur, 0);
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf))
        .await
        .expect("the client's connection was cut");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

#[tokio::test]
async fn ready_waits_for_exactly_up() {
    let lb = Lb::start(4).await;
    let api = lb.api();
    settle(&api, &[("m1", "UP")]).await;
    api.set_state(BE, "m1", AdminState::Maint).await.unwrap();
    let maint = api.server(BE, "m1").await.unwrap();
    assert_eq!(
        (maint.admin, maint.status.as_str()),
        (AdminState::Maint, "MAINT")
    );

    api.set_state(BE, "m1", AdminState::Ready).await.unwrap();
    let seen = Mutex::new(Vec::new());
    let progress = |s: &ServerState, _: Duration| seen.lock().unwrap().push(s.status.clone());
    let up = api
        .wait_status_up(BE, "m1", Duration::from_secs(10), &progress)
        .await
        .unwrap();
    assert_eq!((up.status.as_str(), up.admin), ("UP", AdminState::Ready));
    let seen = seen.into_inner().unwrap();
    let (last, before) = seen.split_last().unwrap();
    assert_eq!(last, "UP");
    assert!(
        !before.is_empty() && before.iter().all(|s| s != "UP"),
        "HAProxy passes through other statuses first (`UP 1/2`, `DOWN…`): {seen:?}"
    );

    // A server that never comes up: the wait ends with what it saw.
    let err = api
        .wait_status_up(BE, "m3", Duration::from_millis(300), &no_progress)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "server m3 in backend k8s on lb: status UP not reached within 0.3s; last seen: status DOWN, 0 session(s), check L4CON"
    );
}

#[tokio::test]
async fn a_weight_is_set_and_the_prior_state_restored_exactly() {
    let lb = Lb::start(5).await;
    let api = lb.api();
    settle(&api, &[("m2", "UP")]).await;
    let prior = api.server(BE, "m2").await.unwrap();

    api.set_weight(BE, "m2", 10).await.unwrap();
    api.set_state(BE, "m2", AdminState::Drain).await.unwrap();
    let changed = api.server(BE, "m2").await.unwrap();
    assert_eq!(
        (changed.weight, changed.initial_weight, changed.admin),
        (10, 50, AdminState::Drain)
    );

    api.set_weight(BE, "m2", prior.weight).await.unwrap();
    api.set_state(BE, "m2", prior.admin).await.unwrap();
    let restored = api
        .wait_status_up(BE, "m2", Duration::from_secs(10), &no_progress)
        .await
        .unwrap();
    assert_eq!(restored, prior, "every field as before");

    let err = api.set_weight(BE, "m2", 300).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid weight `300`: HAProxy weights are 0 to 256"
    );
}

#[tokio::test]
async fn draining_the_last_server_that_takes_traffic_is_refused() {
    let lb = Lb::start(6).await;
    let api = lb.api();
    settle(&api, &[("m1", "UP"), ("m2", "UP"), ("m3", "DOWN")]).await;

    let servers = api.check_drain_allowed(BE, "m1", 1).await.unwrap();
    assert_eq!(servers.len(), 3);
    let err = api.check_drain_allowed(BE, "m1", 2).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "refusing to drain m1 in backend k8s on lb: 1 other server(s) would take traffic, fewer than min_up 2; up: m2; not up: m3 (DOWN)"
    );

    api.set_state(BE, "m2", AdminState::Drain).await.unwrap();
    let err = api.check_drain_allowed(BE, "m1", 1).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "refusing to drain m1 in backend k8s on lb: 0 other server(s) would take traffic, fewer than min_up 1; up: none; not up: m2 (DRAIN), m3 (DOWN)"
    );

    // UP with weight 0 takes no new connection either.
    api.set_state(BE, "m2", AdminState::Ready).await.unwrap();
    api.set_weight(BE, "m2", 0).await.unwrap();
    settle(&api, &[("m2", "UP")]).await;
    let err = api.check_drain_allowed(BE, "m1", 1).await.unwrap_err();
    assert!(
        err.to_string()
            .ends_with("not up: m2 (UP, weight 0), m3 (DOWN)"),
        "{err}"
    );
    assert_eq!(
        api.check_drain_allowed(BE, "m9", 0)
            .await
            .unwrap_err()
            .to_string(),
        "no server m9 in backend k8s on lb: the names HAProxy knows are m1, m2, m3"
    );
}

#[tokio::test]
async fn unknown_servers_and_backends_are_named_with_what_exists() {
    let lb = Lb::start(7).await;
    let api = lb.api();
    let no_server = "no server m9 in backend k8s on lb: the names HAProxy knows are m1, m2, m3";
    let no_backend = "no backend nope on lb: the backends HAProxy knows are k8s";
    assert_eq!(
        api.server(BE, "m9").await.unwrap_err().to_string(),
        no_server
    );
    // The same words when it is HAProxy that says `No such server.`.
    assert_eq!(
        api.set_state(BE, "m9", AdminState::Drain)
            .await
            .unwrap_err()
            .to_string(),
        no_server
    );
    assert_eq!(
        api.shutdown_sessions(BE, "m9")
            .await
            .unwrap_err()
            .to_string(),
        no_server
    );
    assert_eq!(
        api.servers("nope").await.unwrap_err().to_string(),
        no_backend
    );
    assert_eq!(
        api.set_weight("nope", "m1", 3)
            .await
            .unwrap_err()
            .to_string(),
        no_backend
    );
    assert!(matches!(
        api.set_state(BE, "m1;shutdown", AdminState::Drain).await,
        Err(HaproxyError::InvalidArgument { .. })
    ));
    assert!(matches!(
        api.command("show info; set server k8s/m1 state maint")
            .await,
        Err(HaproxyError::InvalidArgument { .. })
    ));
    assert_eq!(
        api.server(BE, "m1").await.unwrap().admin,
        AdminState::Ready,
        "nothing smuggled through"
    );
}

#[tokio::test]
async fn a_socket_below_admin_level_reads_and_says_so_for_changes() {
    let lb = Lb::start(8).await;
    let user = lb.h.user_socket.display().to_string();
    let api = RuntimeApi::new(&lb.local, StreamTarget::Unix(user.clone()));
    assert_eq!(api.servers(BE).await.unwrap().len(), 3);
    let err = api
        .set_state(BE, "m1", AdminState::Drain)
        .await
        .unwrap_err();
    assert!(matches!(err, HaproxyError::NotAdmin { .. }));
    assert_eq!(
        err.to_string(),
        format!(
            "the socket {user} on lb is not at admin level: HAProxy answered `Permission denied` \
             to `set server k8s/m1 state drain`; declare it with `stats socket {user} … level admin` in haproxy.cfg"
        )
    );
}

#[tokio::test]
async fn a_dry_run_reads_the_lb_but_sends_no_change() {
    let lb = Lb::start(9).await;
    let ro = ReadOnly::new(&lb.local);
    let api = RuntimeApi::new(&ro, StreamTarget::Unix(lb.h.admin_path()));
    assert_eq!(api.servers(BE).await.unwrap().len(), 3);
    assert!(api.command("show servers state").await.is_ok());
    for err in [
        api.set_state(BE, "m1", AdminState::Maint)
            .await
            .unwrap_err(),
        api.set_weight(BE, "m1", 0).await.unwrap_err(),
        api.shutdown_sessions(BE, "m1").await.unwrap_err(),
        api.command("disable server k8s/m1").await.unwrap_err(),
    ] {
        assert!(matches!(err, HaproxyError::ReadOnly { .. }), "{err}");
    }
    let m1 = api.server(BE, "m1").await.unwrap();
    assert_eq!((m1.admin, m1.weight), (AdminState::Ready, 1));
}

#[tokio::test]
async fn a_missing_socket_a_dead_port_and_a_silent_socket() {
    let dir = tempfile::tempdir().unwrap();
    let t = lb();
    let path = dir.path().join("admin.sock").display().to_string();
    let err = RuntimeApi::new(&t, StreamTarget::Unix(path.clone()))
        .servers(BE)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "no HAProxy admin socket at {path} on lb (No such file or directory (os error 2)): \
             check `stats socket` in haproxy.cfg and the host var haproxy_socket"
        )
    );
    assert!(!err.retryable());

    let port = remedy_testkit::haproxy::free_port(addr(10));
    let err = RuntimeApi::new(&t, StreamTarget::Tcp(addr(10).to_string(), port))
        .servers(BE)
        .await
        .unwrap_err();
    assert!(matches!(err, HaproxyError::NotListening { .. }), "{err}");
    assert!(err.retryable(), "HAProxy may be restarting");

    // A socket that accepts and never answers: the command times out.
    let silent = dir.path().join("silent.sock");
    let listener = tokio::net::UnixListener::bind(&silent).unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    let err = RuntimeApi::new(&t, StreamTarget::Unix(silent.display().to_string()))
        .with_timeout(Duration::from_millis(300))
        .servers(BE)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "HAProxy on lb ({}) did not answer `show stat -1 4 -1;show servers state k8s` within 0.3s",
            silent.display()
        )
    );
    assert!(err.retryable());
}
